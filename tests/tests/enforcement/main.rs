//! End-to-end enforcement (issue 7's "End-to-end suite"): real Envoy running the built filter,
//! the real control plane in-process on a real `redis-server`, and the mock provider. Each
//! test starts its own stack on free ports and names its own team and budget.
//!
//! - [`refusals`]: an exhausted budget refuses in each provider's error shape, and the official
//!   SDKs raise their rate-limit error with the budget's message;
//! - [`admission`]: downgrade, fail-open and fail-closed with the control plane down, and 64
//!   concurrent clients against a budget worth 100 calls on 4 Envoy workers;
//! - [`streams`]: streamed calls charged exactly, a client hanging up, a mid-stream cut-off;
//! - [`edges`]: unreadable bodies against a spent budget, a reserve answered after the timeout;
//! - [`settlement`]: a Redis restart mid-run, replayed batches, threshold alerts;
//! - [`prices`]: aliases counting toward a model's budget, unpriced models and USD budgets;
//! - [`leases`]: calls admitted from a lease the workers share, settled with its id, the
//!   lease returned when idle; a budget in `exact` mode never leased;
//! - [`background`]: an OpenAI background response charged once, by the retrieval (poll or
//!   resumed stream) that brings its usage.
//!
//! Amounts are never written down: each is the fixture's usage priced with the shipped table
//! (`tollgate_e2e::charges`), in integer nano-USD.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod admission;
mod background;
mod bedrock_downgrade;
mod edges;
mod leases;
mod price_file;
mod prices;
mod refusals;
mod settlement;
mod streams;

use serde_json::{Value, json};
use tollgate_e2e::stack::Stack;

/// A budget on `team:TEAM` with a USD limit for the current day (daily, so refusals carry a
/// `retry-after`).
pub fn budget(id: &str, team: &str, limit_usd: &str) -> Value {
    json!({
        "id": id,
        "scopes": [format!("team:{team}")],
        "limit_usd": limit_usd,
        "period": "daily",
    })
}

/// An OpenAI chat request with a fixed output cap (the reservation is priced from it).
pub fn openai_chat(model: &str, max_tokens: u32, stream: bool) -> Value {
    json!({
        "model": model,
        "stream": stream,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "Summarise the quarter."}],
    })
}

/// The suite's plain call: a non-streamed gpt-4o-mini chat by `team`, which the mock
/// answers with `chat.json`.
pub fn chat_call(stack: &Stack, team: &str) -> reqwest::RequestBuilder {
    stack.post(
        "/v1/chat/completions",
        team,
        "chat.json",
        &openai_chat("gpt-4o-mini", 256, false),
    )
}

/// `n` [`chat_call`]s one after another, each of which must pass (200) and be read to its end.
pub async fn chat_calls_pass(stack: &Stack, team: &str, n: usize) {
    for _ in 0..n {
        let resp = chat_call(stack, team).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{}", stack.envoy.log());
        assert!(resp.bytes().await.is_ok());
    }
}

/// An Anthropic Messages request.
pub fn anthropic_messages(model: &str, max_tokens: u32, stream: bool) -> Value {
    json!({
        "model": model,
        "stream": stream,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "Summarise the quarter."}],
    })
}

/// A Gemini generateContent request (the model is in the path).
pub fn gemini_contents(max_output_tokens: u32) -> Value {
    json!({
        "contents": [{"role": "user", "parts": [{"text": "Summarise the quarter."}]}],
        "generationConfig": {"maxOutputTokens": max_output_tokens},
    })
}

/// Status, headers and JSON body of an answer (`Value::Null` when the body is not JSON).
pub async fn answer(resp: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// A header's value as text ("" when absent).
pub fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Whether two decimal USD strings are the same amount (`0.000001` == `0.000001000`).
pub fn same_usd(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s.to_owned()
        }
    };
    norm(a) == norm(b)
}
