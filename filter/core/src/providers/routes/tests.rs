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

#[test]
fn a_gateway_prefix_names_the_provider_on_the_gateways_own_host() {
    let on_gateway = |path: &str| pair(path, Some("llm-gateway.internal:10000"));
    assert_eq!(
        on_gateway("/mistral/v1/chat/completions"),
        Some((Provider::Mistral, Api::ChatCompletions, None))
    );
    assert_eq!(
        on_gateway("/groq/openai/v1/chat/completions"),
        Some((Provider::Groq, Api::ChatCompletions, None))
    );
    assert_eq!(
        on_gateway("/openai/v1/responses"),
        Some((Provider::Openai, Api::Responses, None))
    );
    assert_eq!(
        on_gateway("/azure/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21"),
        Some((
            Provider::AzureOpenai,
            Api::ChatCompletions,
            Some("gpt-4o-prod".into())
        ))
    );
    assert_eq!(
        on_gateway("/anthropic/v1/messages").map(|p| p.0),
        Some(Provider::Anthropic)
    );
    assert_eq!(
        on_gateway("/gemini/v1beta/models/gemini-2.5-flash:generateContent").map(|p| p.0),
        Some(Provider::Gemini)
    );
    assert_eq!(
        on_gateway("/cohere/v2/chat").map(|p| (p.0, p.1)),
        Some((Provider::Cohere, Api::CohereChat))
    );
    assert_eq!(
        on_gateway("/compat/v1/chat/completions").map(|p| p.0),
        Some(Provider::OpenaiCompatible)
    );
    // A prefix with no API after it is not metered; without a prefix, the old labels.
    assert_eq!(on_gateway("/mistral/v1/files"), None);
    assert_eq!(
        on_gateway("/v1/chat/completions").map(|p| p.0),
        Some(Provider::OpenaiCompatible)
    );
}

#[test]
fn a_providers_own_host_is_never_read_as_a_gateway_prefix() {
    // Groq's and Azure's own paths start with `/openai/`, the gateway's OpenAI prefix.
    assert_eq!(
        pair("/openai/v1/chat/completions", Some("api.groq.com")).map(|p| p.0),
        Some(Provider::Groq)
    );
    assert_eq!(
        pair(
            "/openai/deployments/d/chat/completions?api-version=2024-10-21",
            Some("acme.openai.azure.com")
        )
        .map(|p| p.0),
        Some(Provider::AzureOpenai)
    );
    assert_eq!(provider_of_host("api.cohere.com"), Some(Provider::Cohere));
    assert_eq!(
        provider_of_host("bedrock-runtime.eu-west-1.amazonaws.com"),
        Some(Provider::Bedrock)
    );
    assert_eq!(provider_of_host("llm-gateway.internal"), None);
}

#[test]
fn gateway_prefixes_can_be_configured_and_bad_ones_are_refused() {
    let config: RouteConfig = serde_json::from_str(
        r#"{"gateway_prefixes":[{"prefix":"/llm/mistral/","provider":"mistral"}]}"#,
    )
    .unwrap();
    let table = RouteTable::try_from(config).unwrap();
    let r = table
        .match_request("POST", "/llm/mistral/v1/chat/completions", Some("gw"))
        .unwrap();
    assert_eq!(r.provider, Provider::Mistral);
    // The configured list replaces the default one.
    let r = table
        .match_request("POST", "/mistral/v1/chat/completions", Some("gw"))
        .unwrap();
    assert_eq!(r.provider, Provider::OpenaiCompatible);
    for bad in ["mistral/", "/mistral", "/"] {
        let config: RouteConfig = serde_json::from_value(serde_json::json!(
            {"gateway_prefixes": [{"prefix": bad, "provider": "mistral"}]}
        ))
        .unwrap();
        assert!(
            matches!(
                RouteTable::try_from(config),
                Err(RouteError::BadPrefix { index: 0, .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn stream_options_go_only_where_the_provider_accepts_them() {
    let accepts = |path: &str, host: &str| route(path, Some(host)).unwrap().accepts_stream_options;
    assert!(accepts("/v1/chat/completions", "api.openai.com"));
    assert!(!accepts("/v1/chat/completions", "api.mistral.ai"));
    assert!(!accepts("/mistral/v1/chat/completions", "gateway"));
    assert!(!accepts("/openai/v1/chat/completions", "api.groq.com"));
    assert!(accepts("/v1/chat/completions", "vllm.internal:8000"));
    let azure = |query: &str| {
        accepts(
            &format!("/openai/deployments/d/chat/completions{query}"),
            "acme.openai.azure.com",
        )
    };
    assert!(azure("?api-version=2024-10-21"));
    assert!(azure("?api-version=2024-09-01-preview"));
    assert!(azure("?api-version=2025-04-01-preview"));
    assert!(!azure("?api-version=2024-08-01-preview"));
    assert!(!azure("?api-version=2024-06-01"));
    assert!(!azure("?x=1&api-version=2024-02-15-preview"));
    assert!(!azure(""));
    assert!(azure("?api-version=preview"));
    assert!(accepts(
        "/openai/v1/chat/completions",
        "acme.openai.azure.com"
    ));
}

#[test]
fn a_stored_response_is_retrieved_by_get_and_cancelled_by_post() {
    let t = RouteTable::builtin();
    let host = Some("api.openai.com");
    let get = t
        .match_request("GET", "/v1/responses/resp_1", host)
        .unwrap();
    assert_eq!(
        (get.provider, get.api),
        (Provider::Openai, Api::ResponseRetrieval)
    );
    assert_eq!(get.framing(false), Framing::Json);
    let resumed = t
        .match_request(
            "GET",
            "/v1/responses/resp_1?stream=true&starting_after=2",
            host,
        )
        .unwrap();
    assert_eq!(resumed.framing(false), Framing::Sse);
    let cancel = t.match_request("POST", "/v1/responses/resp_1/cancel", host);
    assert_eq!(cancel.map(|r| r.api), Some(Api::ResponseCancel));
    // Through the gateway's own prefix too.
    let prefixed = t.match_request("GET", "/openai/v1/responses/resp_1", Some("gateway"));
    assert_eq!(prefixed.map(|r| r.api), Some(Api::ResponseRetrieval));
    for (method, path) in [
        ("POST", "/v1/responses/resp_1"),
        ("GET", "/v1/responses/resp_1/cancel"),
        ("GET", "/v1/responses/resp_1/input_items"),
        ("DELETE", "/v1/responses/resp_1"),
    ] {
        assert_eq!(t.match_request(method, path, host), None, "{method} {path}");
    }
}
