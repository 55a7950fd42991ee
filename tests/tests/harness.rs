//! The harness itself against real Envoy: a plain proxy (no filter) in front of the mock
//! provider passes bodies through untouched and streams event by event.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use futures_util::StreamExt;
use tollgate_e2e::envoy::Envoy;
use tollgate_e2e::gateway_config::GatewayConfig;
use tollgate_e2e::mock_provider::MockProvider;

const STREAM: &str = "data: {\"n\":1}\n\ndata: {\"n\":2}\n\ndata: {\"n\":3}\n\ndata: [DONE]\n\n";

async fn plain_gateway() -> (MockProvider, Envoy, tempfile::TempDir) {
    let fixtures = tempfile::tempdir().unwrap();
    std::fs::write(fixtures.path().join("hello.json"), br#"{"ok":true}"#).unwrap();
    std::fs::write(fixtures.path().join("count.sse"), STREAM).unwrap();
    let mock = MockProvider::start(fixtures.path().to_path_buf())
        .await
        .unwrap();
    let config = GatewayConfig::loopback(mock.addr.port(), 1, None).render();
    let envoy = Envoy::start(&config, 1).await.unwrap();
    (mock, envoy, fixtures)
}

#[tokio::test]
async fn plain_envoy_passes_request_and_response_bodies_through_byte_identical() {
    let (mock, envoy, _dir) = plain_gateway().await;
    let body = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", envoy.url()))
        .header("x-mock-fixture", "hello.json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), r#"{"ok":true}"#);
    let seen = mock.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/chat/completions");
    assert_eq!(seen[0].body, body.as_bytes());
    envoy.stop().await.unwrap();
}

#[tokio::test]
async fn a_paced_stream_reaches_the_client_before_the_provider_finishes() {
    let (mock, envoy, _dir) = plain_gateway().await;
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", envoy.url()))
        .header("x-mock-fixture", "count.sse")
        .header("x-mock-pace-ms", "150")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut stream = resp.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: {\"n\":1}"), "{first:?}");
    assert_eq!(
        mock.streams_finished(),
        0,
        "the first event came only after the last was sent"
    );
    let mut all = first.to_vec();
    while let Some(chunk) = stream.next().await {
        all.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(all, STREAM.as_bytes());
    assert_eq!(mock.streams_finished(), 1);
    // What bench-gateway times each event's delay from: one piece per event, in order.
    let pieces = mock.last_stream_pieces();
    assert_eq!(pieces.len(), STREAM.matches("\n\n").count());
    assert_eq!(pieces.iter().map(|p| p.1).sum::<usize>(), STREAM.len());
    assert!(
        pieces
            .windows(2)
            .all(|w| w[1].0 - w[0].0 >= Duration::from_millis(150))
    );
}

#[tokio::test]
async fn provider_routes_follow_the_template() {
    let (mock, envoy, _dir) = plain_gateway().await;
    let client = reqwest::Client::new();
    for path in [
        "/v1/messages",
        "/v1beta/models/gemini-2.5-pro:generateContent",
        "/v1/embeddings",
    ] {
        let resp = client
            .post(format!("{}{path}", envoy.url()))
            .header("x-mock-fixture", "hello.json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    assert_eq!(mock.requests().len(), 3);
    let unrouted = client
        .post(format!("{}/other", envoy.url()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unrouted.status(), 404);
}

#[tokio::test]
async fn the_bench_bypass_route_skips_the_wasm_filter_in_the_same_envoy() {
    let fixtures = tempfile::tempdir().unwrap();
    std::fs::write(fixtures.path().join("hello.json"), br#"{"ok":true}"#).unwrap();
    let mock = MockProvider::start(fixtures.path().to_path_buf())
        .await
        .unwrap();
    let noop = tollgate_e2e::paths::built_wasm("tollgate_noop_filter").unwrap();
    let wasm = tollgate_e2e::gateway_config::WasmFilter {
        path: noop,
        plugin_config: serde_json::json!({}),
    };
    let mut config = GatewayConfig::loopback(mock.addr.port(), 1, Some(wasm));
    config.bench_bypass_route = true;
    let envoy = Envoy::start(&config.render(), 1).await.unwrap();
    let client = reqwest::Client::new();
    for bypass in [false, true, true] {
        let mut req = client
            .post(format!("{}/v1/chat/completions", envoy.url()))
            .header("x-mock-fixture", "hello.json");
        if bypass {
            req = req.header("x-tollgate-bench-bypass", "1");
        }
        assert_eq!(req.body("{}").send().await.unwrap().status(), 200);
    }
    assert_eq!(
        envoy
            .stat("wasmcustom.tollgate_noop_requests_total")
            .await
            .unwrap(),
        Some(1),
        "{}",
        envoy.log()
    );
    assert_eq!(mock.requests().len(), 3);
}
