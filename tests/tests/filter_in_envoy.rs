//! The built `tollgate_filter.wasm` in real Envoy, in front of the mock provider.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use futures_util::StreamExt;
use serde_json::{Value, json};
use tollgate_e2e::bench_bodies::{self, CHAT_JSON};
use tollgate_e2e::envoy::Envoy;
use tollgate_e2e::gateway_config::{GatewayConfig, WasmFilter};
use tollgate_e2e::mock_provider::MockProvider;
use tollgate_e2e::mock_provider::strict::without_usage_chunk;
use tollgate_e2e::paths;

struct Gateway {
    mock: MockProvider,
    envoy: Envoy,
    _fixtures: tempfile::TempDir,
}

async fn gateway(plugin_config: Value, concurrency: u32) -> Gateway {
    let fixtures = tempfile::tempdir().unwrap();
    bench_bodies::write_fixtures(fixtures.path()).unwrap();
    std::fs::write(
        fixtures.path().join("error.json"),
        r#"{"error":{"message":"overloaded","type":"server_error"}}"#,
    )
    .unwrap();
    let truncated = bench_bodies::chat_stream_64_events();
    std::fs::write(
        fixtures.path().join("truncated.sse"),
        &truncated[..truncated.len() / 2],
    )
    .unwrap();
    std::fs::write(
        fixtures.path().join("not-json.json"),
        "{\"usage\": {\"prompt_tokens\": ",
    )
    .unwrap();
    let recorded = "anthropic-messages.json";
    std::fs::copy(
        paths::fixtures_dir().join(recorded),
        fixtures.path().join(recorded),
    )
    .unwrap();
    let mock = MockProvider::start(fixtures.path().to_path_buf())
        .await
        .unwrap();
    let wasm = WasmFilter {
        path: paths::filter_wasm().unwrap(),
        plugin_config,
    };
    let config = GatewayConfig::loopback(mock.addr.port(), 1, Some(wasm)).render();
    let envoy = Envoy::start(&config, concurrency).await.unwrap();
    Gateway {
        mock,
        envoy,
        _fixtures: fixtures,
    }
}

impl Gateway {
    /// A call as an egress gateway sees it: the provider's own host name in `:authority`
    /// (behind a gateway with its own name, route rules name the provider instead).
    async fn post(
        &self,
        path: &str,
        fixture: &str,
        body: &str,
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        let host = if path.starts_with("/v1/messages") {
            "api.anthropic.com"
        } else {
            "api.openai.com"
        };
        let mut req = reqwest::Client::new()
            .post(format!("{}{path}", self.envoy.url()))
            .header("host", host)
            .header("x-mock-fixture", fixture)
            .header("content-type", "application/json")
            .body(body.to_owned());
        for (n, v) in extra {
            req = req.header(*n, *v);
        }
        req.send().await.unwrap()
    }

    async fn stat(&self, name: &str) -> u64 {
        self.envoy
            .stat(&format!("wasmcustom.{name}"))
            .await
            .unwrap()
            .unwrap_or(0)
    }

    /// A call's counters are written on its worker's tick, about 50 ms after the client has
    /// its last byte, `tollgate_requests_total` last: wait on that one, then read the others.
    async fn wait_stat(&self, name: &str, want: u64) -> u64 {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let got = self.stat(name).await;
            if got >= want || tokio::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

const SMALL_REQUEST: &str =
    r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Summarise the quarter."}]}"#;

// gpt-4o-mini: $0.15 input, $0.60 output per million tokens (shipped table).
const CHAT_JSON_COST_NANOS: u64 = 231 * 150 + 103 * 600;

#[tokio::test]
async fn a_non_streamed_call_passes_through_untouched_and_is_charged_in_envoy_stats() {
    let gw = gateway(json!({}), 1).await;
    let resp = gw
        .post("/v1/chat/completions", "chat.json", SMALL_REQUEST, &[])
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), CHAT_JSON);
    let seen = gw.mock.requests();
    assert_eq!(
        seen[0].body,
        SMALL_REQUEST.as_bytes(),
        "a non-streamed body is not rewritten"
    );
    assert_eq!(
        gw.wait_stat("tollgate_requests_total.provider.openai.outcome.charged", 1)
            .await,
        1,
        "{}",
        gw.envoy.log()
    );
    assert_eq!(
        gw.stat("tollgate_tokens_total.provider.openai.kind.uncached_input")
            .await,
        231
    );
    assert_eq!(
        gw.stat("tollgate_tokens_total.provider.openai.kind.output")
            .await,
        103
    );
    assert_eq!(
        gw.stat("tollgate_cost_nanousd_total.provider.openai").await,
        CHAT_JSON_COST_NANOS
    );
    let prom = gw.envoy.admin_get("/stats/prometheus").await.unwrap();
    assert!(
        prom.contains(r#"tollgate_requests_total{provider="openai",outcome="charged"} 1"#),
        "{prom}"
    );
}

#[tokio::test]
async fn a_streamed_call_gets_include_usage_injected_and_streams_chunk_by_chunk() {
    let gw = gateway(json!({}), 1).await;
    let body = bench_bodies::chat_request_streamed(1024);
    let resp = gw
        .post(
            "/v1/chat/completions",
            "chat-64-events.sse",
            &body,
            &[("x-mock-pace-ms", "20")],
        )
        .await;
    let mut stream = resp.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    assert_eq!(
        gw.mock.streams_finished(),
        0,
        "the first event must arrive before the last is sent"
    );
    let mut all = first.to_vec();
    while let Some(c) = stream.next().await {
        all.extend_from_slice(&c.unwrap());
    }
    // Byte for byte, but for the usage-only chunk the filter asked for and the client did not.
    let recorded = bench_bodies::chat_stream_64_events();
    let shown = without_usage_chunk(recorded.as_bytes());
    assert!(shown.len() < recorded.len());
    assert_eq!(all, shown, "the stream is passed on byte for byte");
    let upstream: Value = serde_json::from_slice(&gw.mock.requests()[0].body).unwrap();
    assert_eq!(upstream["stream_options"]["include_usage"], true);
    let original: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(upstream["messages"], original["messages"]);
    let seen = &gw.mock.requests()[0];
    assert_eq!(
        seen.declared_length(),
        None,
        "the client's length went (the body grew); Envoy sends it chunked: {:?}",
        seen.headers
    );
    assert_eq!(
        gw.wait_stat("tollgate_requests_total.provider.openai.outcome.charged", 1)
            .await,
        1,
        "{}",
        gw.envoy.log()
    );
    assert_eq!(
        gw.stat("tollgate_tokens_total.provider.openai.kind.output")
            .await,
        61
    );
}

#[tokio::test]
async fn a_body_that_is_never_rewritten_goes_with_the_clients_length() {
    let gw = gateway(json!({}), 1).await;
    // Without a control plane only OpenAI-style chat and completions bodies are rewritten.
    let body = r#"{"model":"claude-sonnet-4-5","max_tokens":256,"stream":false,"messages":[{"role":"user","content":"Summarise the quarter."}]}"#;
    let resp = gw
        .post("/v1/messages", "anthropic-messages.json", body, &[])
        .await;
    assert_eq!(resp.status(), 200);
    let _ = resp.bytes().await.unwrap();
    let seen = &gw.mock.requests()[0];
    assert_eq!(seen.body, body.as_bytes());
    assert_eq!(
        seen.declared_length(),
        Some(body.len()),
        "{:?}",
        seen.headers
    );
    assert_eq!(
        gw.wait_stat(
            "tollgate_requests_total.provider.anthropic.outcome.charged",
            1
        )
        .await,
        1,
        "{}",
        gw.envoy.log()
    );
}

#[tokio::test]
async fn a_truncated_stream_is_charged_an_estimate() {
    let gw = gateway(json!({}), 1).await;
    let request = bench_bodies::chat_request_streamed(512);
    let resp = gw
        .post("/v1/chat/completions", "truncated.sse", &request, &[])
        .await;
    assert_eq!(resp.status(), 200);
    let _ = resp.bytes().await.unwrap();
    assert_eq!(
        gw.wait_stat(
            "tollgate_requests_total.provider.openai.outcome.estimated",
            1
        )
        .await,
        1,
        "{}",
        gw.envoy.log()
    );
    assert!(
        gw.stat("tollgate_tokens_total.provider.openai.kind.output")
            .await
            > 0
    );
    // Without a control plane the input estimate is made only now, at the charge, from the
    // body the client sent (kept since it was read; not the body with `include_usage`).
    let estimate = tollgate_filter_core::request::estimate_request_tokens(request.as_bytes());
    assert_eq!(
        gw.stat("tollgate_tokens_total.provider.openai.kind.uncached_input")
            .await,
        estimate
    );
}

#[tokio::test]
async fn malformed_json_from_the_provider_passes_through_and_is_estimated() {
    let gw = gateway(json!({}), 1).await;
    let resp = gw
        .post("/v1/chat/completions", "not-json.json", SMALL_REQUEST, &[])
        .await;
    assert_eq!(
        resp.text().await.unwrap(),
        "{\"usage\": {\"prompt_tokens\": "
    );
    assert_eq!(
        gw.wait_stat(
            "tollgate_requests_total.provider.openai.outcome.estimated",
            1
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_provider_5xx_is_passed_on_and_counted_not_charged() {
    let gw = gateway(json!({}), 1).await;
    let resp = gw
        .post(
            "/v1/chat/completions",
            "error.json",
            SMALL_REQUEST,
            &[("x-mock-status", "503")],
        )
        .await;
    assert_eq!(resp.status(), 503);
    assert_eq!(
        gw.wait_stat(
            "tollgate_requests_total.provider.openai.outcome.provider_error",
            1
        )
        .await,
        1
    );
    assert_eq!(
        gw.stat("tollgate_cost_nanousd_total.provider.openai").await,
        0
    );
}

#[tokio::test]
async fn a_body_over_the_cap_gets_413_in_the_provider_shape_when_configured() {
    let gw = gateway(
        json!({"max_request_body_bytes": 4096, "oversized_request": "reject"}),
        1,
    )
    .await;
    let resp = gw
        .post(
            "/v1/messages",
            "chat.json",
            &bench_bodies::chat_request(8192),
            &[],
        )
        .await;
    assert_eq!(resp.status(), 413);
    let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(body["type"], "error", "Anthropic's error shape: {body}");
    assert_eq!(body["error"]["type"], "request_too_large");
    assert!(gw.mock.requests().is_empty(), "the provider was not called");
    assert_eq!(
        gw.wait_stat("tollgate_request_body_problems_total.problem.too_large", 1)
            .await,
        1
    );
}

#[tokio::test]
async fn a_body_over_the_cap_passes_by_default_and_the_answer_is_still_counted() {
    let gw = gateway(json!({"max_request_body_bytes": 4096}), 1).await;
    let body = bench_bodies::chat_request(8192);
    let resp = gw
        .post("/v1/chat/completions", "chat.json", &body, &[])
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(gw.mock.requests()[0].body, body.as_bytes());
    // The body was not read; the model the answer reports prices the call.
    assert_eq!(
        gw.wait_stat("tollgate_requests_total.provider.openai.outcome.charged", 1)
            .await,
        1
    );
    assert_eq!(
        gw.stat("tollgate_tokens_total.provider.openai.kind.output")
            .await,
        103
    );
}

#[tokio::test]
async fn an_unknown_path_passes_untouched_and_is_counted() {
    let gw = gateway(json!({}), 1).await;
    let resp = gw.post("/v1/files", "chat.json", "{}", &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        gw.wait_stat("tollgate_requests_total.provider.none.outcome.unmatched", 1)
            .await,
        1
    );
}

#[tokio::test]
async fn four_workers_count_correctly_together() {
    let gw = gateway(json!({}), 4).await;
    let calls = (0..40).map(|_| gw.post("/v1/chat/completions", "chat.json", SMALL_REQUEST, &[]));
    for resp in futures_util::future::join_all(calls).await {
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(
        gw.wait_stat(
            "tollgate_requests_total.provider.openai.outcome.charged",
            40
        )
        .await,
        40
    );
    assert_eq!(
        gw.stat("tollgate_cost_nanousd_total.provider.openai").await,
        40 * CHAT_JSON_COST_NANOS
    );
}

#[tokio::test]
async fn a_bad_plugin_config_stops_envoy_with_the_field_named() {
    let fixtures = tempfile::tempdir().unwrap();
    let mock = MockProvider::start(fixtures.path().to_path_buf())
        .await
        .unwrap();
    let wasm = WasmFilter {
        path: paths::filter_wasm().unwrap(),
        plugin_config: json!({"max_request_body_bytes": 0}),
    };
    let config = GatewayConfig::loopback(mock.addr.port(), 1, Some(wasm)).render();
    let err = match Envoy::start(&config, 1).await {
        Ok(_) => panic!("envoy started with a bad plugin config"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains(
            "tollgate config: max_request_body_bytes: 0 is below the minimum of 4096 bytes"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_call_with_no_scope_is_refused_when_configured_and_a_scoped_one_passes() {
    let config = json!({"scopes": {"sources": [{"kind": "team", "header": "x-tollgate-team"}], "when_none": "deny"}});
    let gw = gateway(config, 1).await;
    let refused = gw
        .post("/v1/chat/completions", "chat.json", SMALL_REQUEST, &[])
        .await;
    assert_eq!(refused.status(), 403);
    let body: Value = serde_json::from_slice(&refused.bytes().await.unwrap()).unwrap();
    assert_eq!(
        body["error"]["code"], "no_scope",
        "OpenAI's error shape: {body}"
    );
    assert!(gw.mock.requests().is_empty(), "the provider was not called");
    let passed = gw
        .post(
            "/v1/chat/completions",
            "chat.json",
            SMALL_REQUEST,
            &[("x-tollgate-team", "payments")],
        )
        .await;
    assert_eq!(passed.status(), 200);
    assert_eq!(
        gw.wait_stat(
            "tollgate_requests_total.provider.openai.outcome.rejected",
            1
        )
        .await,
        1
    );
    assert_eq!(
        gw.wait_stat("tollgate_requests_total.provider.openai.outcome.charged", 1)
            .await,
        1
    );
}

#[tokio::test]
async fn a_governed_call_without_a_body_passes_and_envoy_keeps_serving() {
    let gw = gateway(json!({}), 1).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.envoy.url()))
        .header("host", "api.openai.com")
        .header("x-mock-fixture", "chat.json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), CHAT_JSON);
    // The answer names its model, so the call is still priced; and the next call works.
    assert_eq!(
        gw.wait_stat("tollgate_requests_total.provider.openai.outcome.charged", 1)
            .await,
        1,
        "{}",
        gw.envoy.log()
    );
    let next = gw
        .post("/v1/chat/completions", "chat.json", SMALL_REQUEST, &[])
        .await;
    assert_eq!(next.status(), 200);
    assert!(!gw.envoy.log().contains("panic"), "{}", gw.envoy.log());
}

#[tokio::test]
async fn an_unknown_paths_answer_passes_whole_without_being_read() {
    let gw = gateway(json!({}), 1).await;
    let resp = gw.post("/v1/files", "chat.json", "{}", &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), CHAT_JSON);
    let streamed = gw.post("/v1/files", "chat-64-events.sse", "{}", &[]).await;
    assert_eq!(streamed.status(), 200);
    assert_eq!(
        streamed.text().await.unwrap(),
        bench_bodies::chat_stream_64_events()
    );
    assert_eq!(
        gw.wait_stat("tollgate_requests_total.provider.none.outcome.unmatched", 2)
            .await,
        2
    );
}

#[tokio::test]
async fn a_scope_header_that_is_not_utf8_is_skipped_and_the_worker_keeps_serving() {
    let config = json!({"scopes": {"sources": [{"kind": "team", "header": "x-tollgate-team"}], "when_none": "deny"}});
    let gw = gateway(config, 1).await;
    let not_utf8 = reqwest::header::HeaderValue::from_bytes(b"pay\xffments").unwrap();
    let skipped = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.envoy.url()))
        .header("host", "api.openai.com")
        .header("x-mock-fixture", "chat.json")
        .header("x-tollgate-team", not_utf8)
        .body(SMALL_REQUEST)
        .send()
        .await
        .unwrap();
    // No usable scope: refused as configured, by the filter (not by a dead VM).
    assert_eq!(skipped.status(), 403, "{}", gw.envoy.log());
    let body: Value = serde_json::from_slice(&skipped.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "no_scope", "{body}");
    let passed = gw
        .post(
            "/v1/chat/completions",
            "chat.json",
            SMALL_REQUEST,
            &[("x-tollgate-team", "payments")],
        )
        .await;
    assert_eq!(passed.status(), 200);
    assert_eq!(
        gw.wait_stat("tollgate_requests_total.provider.openai.outcome.charged", 1)
            .await,
        1
    );
}

#[tokio::test]
async fn a_path_with_bytes_that_are_not_utf8_is_still_governed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = json!({"scopes": {"sources": [{"kind": "team", "header": "x-tollgate-team"}], "when_none": "deny"}});
    let gw = gateway(config, 1).await;
    // Raw bytes: an HTTP client library would percent-encode the 0xFF.
    let mut request =
        b"POST /v1/chat/completions?x=\xff HTTP/1.1\r\nhost: api.openai.com\r\n".to_vec();
    request.extend_from_slice(b"x-mock-fixture: chat.json\r\ncontent-type: application/json\r\n");
    request.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n{SMALL_REQUEST}",
            SMALL_REQUEST.len()
        )
        .as_bytes(),
    );
    let addr = gw.envoy.url().trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(&request).await.unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.split(' ').nth(1).unwrap_or_default();
    // Refused, by Envoy's codec or by the filter for want of a scope: never passed through
    // ungoverned to the provider. (Envoy 1.40's HTTP/1 codec answers 400 itself; the filter
    // reads `:path` lossily for a codec that lets such bytes through.)
    assert!(status.starts_with('4'), "{answer}\n{}", gw.envoy.log());
    assert!(gw.mock.requests().is_empty(), "the provider was not called");
    eprintln!("a non-UTF-8 path was answered {status}");
}
