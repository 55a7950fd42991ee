//! Providers compress their answers when the request allows it (OpenAI's JSON in gzip or
//! brotli, Anthropic's SSE in gzip); the official SDKs send `accept-encoding: gzip, deflate`.
//! In real Envoy, against a mock that compresses whenever the request accepts it: every
//! governed answer is still charged exactly, and the client that asked for gzip gets an
//! answer it reads.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use serde_json::json;
use tollgate_e2e::charges::{chat_json_usage, fixture_usage};
use tollgate_e2e::stack::{Stack, StackOptions};

#[tokio::test]
async fn gzip_deflate_and_brotli_answers_json_and_sse_are_charged_exactly() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let cases = [
        (
            "/v1/chat/completions",
            "chat.json",
            json!({"model": "gpt-4o-mini", "max_tokens": 256,
                   "messages": [{"role": "user", "content": "Summarise the quarter."}]}),
            chat_json_usage(),
        ),
        (
            "/v1/messages",
            "anthropic-messages-stream-cache.sse",
            json!({"model": "claude-sonnet-4-5", "max_tokens": 256, "stream": true,
                   "messages": [{"role": "user", "content": "Summarise the quarter."}]}),
            fixture_usage("anthropic-messages-stream-cache").unwrap(),
        ),
    ];
    let mut calls = 0;
    for encoding in ["gzip", "deflate", "br"] {
        for (path, fixture, body, usage) in &cases {
            let resp = stack
                .post(path, "compressed", fixture, body)
                .header("accept-encoding", "gzip, deflate, br")
                .header("x-mock-encoding", encoding)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{encoding} {fixture}");
            // What the client gets is plain: it listed encodings it accepts, none it demands.
            assert_eq!(resp.headers().get("content-encoding"), None);
            let text = resp.text().await.unwrap();
            if fixture.ends_with(".sse") {
                let recorded =
                    std::fs::read_to_string(tollgate_e2e::paths::fixtures_dir().join(fixture))
                        .unwrap();
                assert_eq!(
                    text, recorded,
                    "{encoding} {fixture}: the answer arrives whole"
                );
            } else {
                assert!(
                    serde_json::from_str::<serde_json::Value>(&text).is_ok(),
                    "{text}"
                );
            }
            calls += 1;
            let want = *usage;
            let found = wait_settlements(&stack, calls).await;
            let last = found.last().unwrap();
            assert_eq!(last.usage, want, "{encoding} {fixture}: read exactly");
            assert!(!last.usage.estimated, "{encoding} {fixture}");
        }
    }
    for request in stack.mock.requests() {
        assert_eq!(
            request.header("accept-encoding"),
            Some("identity"),
            "the provider is asked for what the filter can read"
        );
    }
}

/// Waits until `n` settlements arrived; returns them in order.
async fn wait_settlements(stack: &Stack, n: usize) -> Vec<tollgate_model::wire::v1::Settlement> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let all = stack.control_plane.settlements();
        if all.len() >= n {
            return all;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {n} settlements\n{}",
            all.len(),
            stack.envoy.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}
