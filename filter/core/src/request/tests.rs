use super::*;
use crate::providers::{Provider, RouteTable};

fn prices() -> PriceTable {
    PriceTable::shipped().unwrap()
}

fn read(path: &str, body: &str) -> RequestInfo {
    let route = RouteTable::builtin()
        .match_request("POST", path, None)
        .unwrap();
    read_request(&route, body.as_bytes(), &prices(), RequestLimits::default())
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn openai_chat_fields_are_read() {
    let info = read(
        "/v1/chat/completions",
        r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":50,"n":2}"#,
    );
    assert_eq!(info.model.as_deref(), Some("gpt-4o"));
    assert!(!info.streaming);
    assert_eq!(info.max_output_tokens, 100);
    assert!(info.estimated_input_tokens > 8);
    assert_eq!(info.rewritten_body, None);
    assert_eq!(info.problem, None);
}

#[test]
fn a_request_without_a_cap_gets_the_models_default() {
    let info = read(
        "/v1/messages",
        r#"{"model":"claude-sonnet-4-5","messages":[]}"#,
    );
    assert_eq!(info.requested_max_output_tokens, None);
    assert_eq!(
        info.max_output_tokens,
        u64::from(prices().default_max_output_tokens("claude-sonnet-4-5"))
    );
}

#[test]
fn gemini_and_bedrock_take_the_model_from_the_path_and_the_cap_from_config() {
    let info = read(
        "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
        r#"{"contents":[],"generationConfig":{"maxOutputTokens":256}}"#,
    );
    assert_eq!(info.model.as_deref(), Some("gemini-2.5-pro"));
    assert!(info.streaming);
    assert_eq!(info.max_output_tokens, 256);
    let info = read(
        "/model/anthropic.claude-3-haiku-20240307-v1:0/converse",
        r#"{"messages":[],"inferenceConfig":{"maxTokens":99}}"#,
    );
    assert_eq!(
        info.model.as_deref(),
        Some("anthropic.claude-3-haiku-20240307-v1:0")
    );
    assert_eq!(info.max_output_tokens, 99);
}

#[test]
fn streamed_openai_requests_are_rewritten_to_ask_for_usage() {
    let body =
        r#"{"model":"gpt-4o", "stream":true,"messages":[{"role":"user","content":"a \"b\""}]}"#;
    let info = read("/v1/chat/completions", body);
    let rewritten = info.rewritten_body.unwrap();
    let mut expected = json(body.as_bytes());
    expected["stream_options"] = serde_json::json!({"include_usage": true});
    assert_eq!(json(&rewritten), expected);
}

#[test]
fn existing_stream_options_are_edited_in_place() {
    let cases = [
        (
            r#"{"model":"m","stream":true,"stream_options":{}}"#,
            r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#,
        ),
        (
            r#"{"model":"m","stream":true,"stream_options":{"x":1}}"#,
            r#"{"model":"m","stream":true,"stream_options":{"include_usage":true,"x":1}}"#,
        ),
        (
            r#"{"model":"m","stream":true,"stream_options":{"include_usage": false}}"#,
            r#"{"model":"m","stream":true,"stream_options":{"include_usage": true}}"#,
        ),
        (
            r#"{"model":"m","stream":true,"stream_options":null}"#,
            r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#,
        ),
    ];
    for (body, want) in cases {
        let info = read("/v1/chat/completions", body);
        assert_eq!(
            String::from_utf8(info.rewritten_body.unwrap()).unwrap(),
            want
        );
    }
    let already = read(
        "/v1/chat/completions",
        r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#,
    );
    assert_eq!(already.rewritten_body, None);
}

#[test]
fn responses_and_anthropic_streams_are_never_rewritten() {
    assert_eq!(
        read("/v1/responses", r#"{"model":"gpt-5","stream":true}"#).rewritten_body,
        None
    );
    assert_eq!(
        read(
            "/v1/messages",
            r#"{"model":"claude-opus-4-1","stream":true}"#
        )
        .rewritten_body,
        None
    );
}

#[test]
fn broken_bodies_get_a_problem_and_a_conservative_estimate() {
    let truncated = read("/v1/chat/completions", r#"{"model":"gpt-4o","messages":[{"#);
    assert!(matches!(
        truncated.problem,
        Some(RequestProblem::InvalidJson(_))
    ));
    assert!(truncated.estimated_input_tokens > 0);

    let route = Route::new(Provider::Openai, Api::ChatCompletions);
    let not_utf8 = read_request(
        &route,
        b"{\"model\":\"\xff\"}",
        &prices(),
        RequestLimits::default(),
    );
    assert!(matches!(
        not_utf8.problem,
        Some(RequestProblem::InvalidJson(_))
    ));

    let big = vec![b' '; 100];
    let over = read_request(
        &route,
        &big,
        &prices(),
        RequestLimits {
            max_body_bytes: 10,
            ..RequestLimits::default()
        },
    );
    assert_eq!(over.estimated_input_tokens, 100);
    assert!(matches!(
        over.problem,
        Some(RequestProblem::TooLarge { size: 100, cap: 10 })
    ));

    let no_model = read_request(&route, b"{}", &prices(), RequestLimits::default());
    assert_eq!(no_model.problem, Some(RequestProblem::NoModel));
}

#[test]
fn negative_or_absurd_caps_fall_back_to_the_default() {
    let info = read(
        "/v1/chat/completions",
        r#"{"model":"gpt-4o","max_tokens":-1}"#,
    );
    assert_eq!(info.requested_max_output_tokens, None);
    let info = read(
        "/v1/chat/completions",
        r#"{"model":"gpt-4o","max_tokens":1e99}"#,
    );
    assert_eq!(info.requested_max_output_tokens, None);
}

#[test]
fn embeddings_reserve_no_output() {
    assert_eq!(
        read(
            "/v1/embeddings",
            r#"{"model":"text-embedding-3-small","input":"x"}"#
        )
        .max_output_tokens,
        0
    );
}

#[test]
fn the_usage_option_rewrite_can_be_turned_off() {
    let route = Route::new(Provider::OpenaiCompatible, Api::ChatCompletions);
    let limits = RequestLimits {
        add_stream_usage_option: false,
        ..RequestLimits::default()
    };
    let info = read_request(&route, br#"{"model":"m","stream":true}"#, &prices(), limits);
    assert!(info.streaming);
    assert_eq!(info.rewritten_body, None);
}

#[test]
fn a_streamed_mistral_or_old_azure_request_goes_without_stream_options() {
    let body = br#"{"model":"mistral-small-latest","stream":true,"messages":[]}"#;
    for (path, host) in [
        ("/v1/chat/completions", "api.mistral.ai"),
        (
            "/openai/deployments/d/chat/completions?api-version=2024-06-01",
            "acme.openai.azure.com",
        ),
    ] {
        let route = RouteTable::builtin()
            .match_request("POST", path, Some(host))
            .unwrap();
        assert!(!may_add_stream_usage_option(
            &route,
            RequestLimits::default()
        ));
        let info = read_request(&route, body, &prices(), RequestLimits::default());
        assert!(info.streaming);
        assert_eq!(info.rewritten_body, None, "{host}");
    }
}
