//! Streamed answers: charged exactly from the usage events, charged an estimate when the client
//! hangs up before them, and cut off with a provider-shaped error event when the running cost
//! passes what is left of a `cutoff_mid_stream` budget.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tollgate_e2e::charges::{cost_nanos, fixture_usage, usd};
use tollgate_e2e::mock_provider::strict::without_usage_chunk;
use tollgate_e2e::stack::{LONG_STREAM_FIXTURE, Stack, StackOptions};
use tollgate_model::Usage;

use super::{anthropic_messages, budget, gemini_contents, openai_chat};

/// Sends one streamed call answered by a recorded fixture, checks the client got it byte for
/// byte, and that the budget was charged exactly the fixture's usage priced for `model`.
async fn streamed_exactly(
    team: &str,
    path: &str,
    stem: &str,
    ext: &str,
    model: &str,
    body: Value,
) -> Stack {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let id = format!("{team}-budget");
    stack
        .control_plane
        .create_budget(&budget(&id, team, "10"))
        .await
        .unwrap();
    let fixture = format!("{stem}.{ext}");
    let resp = stack
        .post(path, team, &fixture, &body)
        .header("x-mock-pace-ms", "5")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", stack.envoy.log());
    // `response_headers`: what the call reserved and the least left in its budgets.
    for name in ["x-tollgate-reserved-usd", "x-tollgate-remaining-usd"] {
        assert!(
            resp.headers().contains_key(name),
            "{name}: {:?}",
            resp.headers()
        );
    }
    let got = resp.bytes().await.unwrap();
    let recorded = std::fs::read(tollgate_e2e::paths::fixtures_dir().join(&fixture)).unwrap();
    // Where the filter asked for the usage chunk, the client, which did not, does not get it.
    let added_usage_option = path.ends_with("/chat/completions")
        && body["stream"] == true
        && body.get("stream_options").is_none();
    let recorded = if added_usage_option {
        without_usage_chunk(&recorded)
    } else {
        recorded
    };
    assert!(got == recorded, "the stream was altered");

    let usage = fixture_usage(stem).unwrap();
    let want = cost_nanos(model, &usage).unwrap();
    stack.control_plane.wait_spent(&id, want).await.unwrap();
    let settled: Vec<_> = stack
        .control_plane
        .settlements_by_request()
        .into_values()
        .collect();
    assert_eq!(settled.len(), 1, "{settled:?}");
    // Tokens as recorded, not estimated (the service tier is the answer's, not the fixture's).
    let mut tokens = settled[0].usage;
    tokens.service_tier = usage.service_tier;
    assert_eq!(tokens, usage, "{:?}", settled[0]);
    assert_eq!(settled[0].cost.nanos(), want);
    stack
}

#[tokio::test]
async fn a_streamed_openai_call_gets_include_usage_injected_and_is_charged_exactly() {
    let stack = streamed_exactly(
        "stream-openai",
        "/v1/chat/completions",
        "openai-chat-stream-include-usage",
        "sse",
        "gpt-4o-mini",
        openai_chat("gpt-4o-mini", 256, true),
    )
    .await;
    let upstream = stack.upstream_bodies();
    assert_eq!(
        upstream[0]["stream_options"]["include_usage"],
        json!(true),
        "{}",
        upstream[0]
    );
}

#[tokio::test]
async fn a_streamed_anthropic_call_is_charged_exactly() {
    streamed_exactly(
        "stream-anthropic",
        "/v1/messages",
        "anthropic-messages-stream-cache",
        "sse",
        "claude-sonnet-4-5",
        anthropic_messages("claude-sonnet-4-5", 1024, true),
    )
    .await;
}

#[tokio::test]
async fn a_streamed_gemini_call_is_charged_exactly() {
    streamed_exactly(
        "stream-gemini",
        "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
        "gemini-stream-sse-tool-use",
        "sse",
        "gemini-2.5-pro",
        gemini_contents(1024),
    )
    .await;
}

/// What the whole long stream would cost: an upper bound for anything charged for part of it.
fn long_stream_full_cost() -> i64 {
    let usage = Usage {
        uncached_input_tokens: 20,
        output_tokens: 4_000, // 400 deltas of ~10 tokens, as stack::long_chat_stream(400) says
        ..Usage::default()
    };
    cost_nanos("gpt-4o-mini", &usage).unwrap()
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_is_charged_an_estimate_flagged_estimated() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    stack
        .control_plane
        .create_budget(&budget("hang-up-budget", "hang-up", "10"))
        .await
        .unwrap();
    let resp = stack
        .post(
            "/v1/chat/completions",
            "hang-up",
            LONG_STREAM_FIXTURE,
            &openai_chat("gpt-4o-mini", 4_000, true),
        )
        .header("x-mock-pace-ms", "20")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", stack.envoy.log());
    let mut stream = resp.bytes_stream();
    let mut seen = Vec::new();
    while seen.windows(2).filter(|w| w == b"\n\n").count() < 5 {
        seen.extend_from_slice(&stream.next().await.unwrap().unwrap());
    }
    drop(stream); // hang up after five events, long before the usage event

    let u = stack
        .control_plane
        .wait_usage("hang-up-budget", Duration::from_secs(10), |u| {
            u.spent_nanos > 0
        })
        .await
        .unwrap();
    let settled: Vec<_> = stack
        .control_plane
        .settlements_by_request()
        .into_values()
        .collect();
    assert_eq!(settled.len(), 1, "{settled:?}");
    assert!(settled[0].usage.estimated, "{:?}", settled[0]);
    assert_eq!(settled[0].cost.nanos(), u.spent_nanos);
    assert!(
        u.spent_nanos < long_stream_full_cost(),
        "charged {} for a few events",
        u.spent_nanos
    );
}

#[tokio::test]
async fn a_mid_stream_cutoff_ends_the_stream_with_a_provider_shaped_error_at_the_budget() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    // Admits a call capped at 16 output tokens, but holds only ~100 tokens of output: the
    // 4,000-token answer runs past it early.
    let limit = cost_nanos(
        "gpt-4o-mini",
        &Usage {
            uncached_input_tokens: 200,
            output_tokens: 100,
            ..Usage::default()
        },
    )
    .unwrap();
    let mut spec = budget("cutoff-budget", "cutoff", &usd(limit));
    spec["cutoff_mid_stream"] = json!(true);
    stack.control_plane.create_budget(&spec).await.unwrap();

    let resp = stack
        .post(
            "/v1/chat/completions",
            "cutoff",
            LONG_STREAM_FIXTURE,
            &openai_chat("gpt-4o-mini", 16, true),
        )
        .header("x-mock-pace-ms", "2")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", stack.envoy.log());
    let mut stream = resp.bytes_stream();
    let mut seen = Vec::new();
    // The stream ends early, cleanly or with a reset; either way it ends.
    while let Some(Ok(chunk)) = stream.next().await {
        seen.extend_from_slice(&chunk);
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(!text.contains("[DONE]"), "the stream ran to its end");
    let last = text
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .last()
        .unwrap_or("");
    let event: Value = serde_json::from_str(last.trim_start_matches("data: ")).unwrap_or_default();
    // The filter knows the amount it was allowed, not which budget set it (an allow answer
    // names none), so the event says "budget" without an id.
    assert_eq!(
        event["error"]["code"],
        "budget_exceeded",
        "the last event should be an OpenAI-shaped error: {last}\n{}",
        stack.envoy.log()
    );
    assert!(
        event["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("budget")),
        "{last}"
    );
    assert!(event["error"]["type"].is_string(), "{last}");
    let u = stack
        .control_plane
        .wait_usage("cutoff-budget", Duration::from_secs(10), |u| {
            u.spent_nanos > 0
        })
        .await
        .unwrap();
    assert!(u.spent_nanos < long_stream_full_cost(), "{u:?}");
    // Charged for what was streamed, as an estimate (the usage event never came).
    let settled: Vec<_> = stack
        .control_plane
        .settlements_by_request()
        .into_values()
        .collect();
    assert_eq!(settled.len(), 1, "{settled:?}");
    assert!(settled[0].usage.estimated, "{:?}", settled[0]);
    assert_eq!(settled[0].cost.nanos(), u.spent_nanos);
}
