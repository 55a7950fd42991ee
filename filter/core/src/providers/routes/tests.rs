use super::*;

fn route(path: &str, host: Option<&str>) -> Option<Route> {
    RouteTable::builtin().match_request("POST", path, host)
}

fn pair(path: &str, host: Option<&str>) -> Option<(Provider, Api, Option<String>)> {
    route(path, host).map(|r| (r.provider, r.api, r.path_model))
}

#[test]
fn openai_paths_map_to_their_apis() {
    let host = Some("api.openai.com");
    assert_eq!(
        pair("/v1/chat/completions", host),
        Some((Provider::Openai, Api::ChatCompletions, None))
    );
    assert_eq!(pair("/v1/completions", host).unwrap().1, Api::Completions);
    assert_eq!(pair("/v1/responses", host).unwrap().1, Api::Responses);
    assert_eq!(pair("/v1/embeddings", host).unwrap().1, Api::Embeddings);
}

#[test]
fn azure_deployment_paths_name_the_model_and_ignore_the_query() {
    let r = pair(
        "/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21",
        Some("acme.openai.azure.com:443"),
    );
    assert_eq!(
        r,
        Some((
            Provider::AzureOpenai,
            Api::ChatCompletions,
            Some("gpt-4o-prod".into())
        ))
    );
    let v1 = pair("/openai/v1/responses", Some("acme.openai.azure.com"));
    assert_eq!(v1, Some((Provider::AzureOpenai, Api::Responses, None)));
}

#[test]
fn openai_compatible_hosts_are_labelled_by_host() {
    assert_eq!(
        pair("/openai/v1/chat/completions", Some("api.groq.com"))
            .unwrap()
            .0,
        Provider::Groq
    );
    assert_eq!(
        pair("/v1/chat/completions", Some("api.mistral.ai"))
            .unwrap()
            .0,
        Provider::Mistral
    );
    assert_eq!(
        pair("/v1/chat/completions", Some("vllm.internal:8000"))
            .unwrap()
            .0,
        Provider::OpenaiCompatible
    );
}

#[test]
fn anthropic_messages_match_but_count_tokens_does_not() {
    assert_eq!(
        pair("/v1/messages", Some("api.anthropic.com")),
        Some((Provider::Anthropic, Api::Messages, None))
    );
    assert_eq!(route("/v1/messages/count_tokens", None), None);
    assert_eq!(route("/v1/messages/batches", None), None);
}

#[test]
fn gemini_paths_carry_the_model_and_the_sse_choice() {
    let r = route(
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key=x",
        None,
    )
    .unwrap();
    assert_eq!(r.api, Api::StreamGenerateContent);
    assert_eq!(r.path_model.as_deref(), Some("gemini-2.5-flash"));
    assert_eq!(r.framing(false), Framing::Sse);
    let r = route("/v1beta/models/gemini-2.5-pro:streamGenerateContent", None).unwrap();
    assert_eq!(r.framing(false), Framing::JsonArray);
    let r = route("/v1beta/models/gemini-2.5-pro:generateContent", None).unwrap();
    assert_eq!(
        (r.provider, r.framing(false)),
        (Provider::Gemini, Framing::Json)
    );
}

#[test]
fn vertex_paths_route_gemini_and_anthropic_models() {
    let base = "/v1/projects/p/locations/us-east5/publishers";
    let r = route(
        &format!("{base}/anthropic/models/claude-sonnet-4@20250514:streamRawPredict"),
        None,
    )
    .unwrap();
    assert_eq!((r.provider, r.api), (Provider::VertexAi, Api::Messages));
    assert_eq!(r.path_model.as_deref(), Some("claude-sonnet-4@20250514"));
    assert_eq!(r.framing(false), Framing::Sse);
    let r = route(
        &format!("{base}/google/models/gemini-2.5-pro:generateContent"),
        None,
    )
    .unwrap();
    assert_eq!(
        (r.provider, r.api),
        (Provider::VertexAi, Api::GenerateContent)
    );
}

#[test]
fn bedrock_paths_decode_the_model_id() {
    let r = route(
        "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream",
        Some("bedrock-runtime.us-east-1.amazonaws.com"),
    )
    .unwrap();
    assert_eq!(
        (r.provider, r.api),
        (Provider::Bedrock, Api::ConverseStream)
    );
    assert_eq!(
        r.path_model.as_deref(),
        Some("anthropic.claude-3-5-sonnet-20240620-v1:0")
    );
    assert_eq!(r.framing(false), Framing::EventStream);
    let r = route("/model/anthropic.claude-3-haiku-20240307-v1:0/invoke", None).unwrap();
    assert_eq!((r.api, r.framing(false)), (Api::Messages, Framing::Json));
    let r = route(
        "/model/anthropic.claude-3-haiku-20240307-v1:0/invoke-with-response-stream",
        None,
    )
    .unwrap();
    assert_eq!(r.framing(false), Framing::EventStream);
    assert_eq!(
        route("/model/amazon.titan-text-express-v1/invoke", None),
        None
    );
}

#[test]
fn cohere_v2_chat_matches() {
    assert_eq!(
        pair("/v2/chat", Some("api.cohere.com")),
        Some((Provider::Cohere, Api::CohereChat, None))
    );
}

#[test]
fn only_post_requests_are_metered() {
    assert_eq!(
        RouteTable::builtin().match_request("GET", "/v1/responses", None),
        None
    );
}

#[test]
fn configured_rules_win_over_builtins_and_bad_paths_are_refused() {
    let config: RouteConfig = serde_json::from_str(
        r#"{"rules":[{"host":"GW.example:8080","path":"/llm/*","provider":"anthropic","api":"messages"}]}"#,
    )
    .unwrap();
    let table = RouteTable::try_from(config).unwrap();
    let r = table
        .match_request("POST", "/llm/claude", Some("gw.example"))
        .unwrap();
    assert_eq!((r.provider, r.api), (Provider::Anthropic, Api::Messages));
    assert_eq!(
        table.match_request("POST", "/llm/claude", Some("other")),
        None
    );

    let bad: RouteConfig =
        serde_json::from_str(r#"{"rules":[{"path":"llm","provider":"openai","api":"responses"}]}"#)
            .unwrap();
    assert!(matches!(
        RouteTable::try_from(bad),
        Err(RouteError::BadPath { index: 0, .. })
    ));
    assert!(serde_json::from_str::<RouteConfig>(r#"{"rulez":[]}"#).is_err());
}

#[test]
fn percent_decoding_keeps_invalid_escapes() {
    assert_eq!(percent_decode("a%3Ab"), "a:b");
    assert_eq!(percent_decode("a%zzb%"), "a%zzb%");
    assert_eq!(percent_decode("%ff"), "%ff");
}

#[test]
fn hosts_match_whatever_their_case_and_port() {
    for host in [
        "api.mistral.ai",
        "API.Mistral.AI",
        "api.mistral.ai:443",
        "Api.Mistral.ai:443",
    ] {
        assert_eq!(
            pair("/v1/chat/completions", Some(host)).map(|p| p.0),
            Some(Provider::Mistral),
            "{host}"
        );
    }
    assert_eq!(normalise_host("Api.Example.COM:8443"), "api.example.com");
    assert!(matches!(
        normalise_host("api.example.com:8443"),
        Cow::Borrowed("api.example.com")
    ));
    // A colon not followed by a port is part of the name (an IPv6 literal's last group).
    assert_eq!(normalise_host("[::1]"), "[::1]");
    assert_eq!(normalise_host("api.example.com:"), "api.example.com");
}
