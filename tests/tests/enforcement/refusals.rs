//! An exhausted budget: the call never reaches the provider, and the client gets a 429 in its
//! provider's own error shape with the budget headers, so SDKs raise their usual rate-limit
//! error carrying Tollgate's message.

use serde_json::Value;
use tollgate_e2e::python;
use tollgate_e2e::stack::{Stack, StackOptions};

use super::{answer, anthropic_messages, budget, chat_call, gemini_contents, header, same_usd};

/// Less than any call's worst case: every call on the team is refused.
const TINY_LIMIT_USD: &str = "0.000001";

async fn exhausted(team: &str, id: &str) -> Stack {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    stack
        .control_plane
        .create_budget(&budget(id, team, TINY_LIMIT_USD))
        .await
        .unwrap();
    stack
}

/// Status 429, the budget headers, nothing sent upstream; returns the body.
async fn refused(stack: &Stack, resp: reqwest::Response, id: &str) -> Value {
    let (status, headers, body) = answer(resp).await;
    assert_eq!(status, 429, "{body}\n{}", stack.envoy.log());
    assert_eq!(header(&headers, "x-tollgate-budget"), id);
    let remaining = header(&headers, "x-tollgate-remaining-usd");
    assert!(
        same_usd(remaining, TINY_LIMIT_USD),
        "remaining {remaining:?}"
    );
    let retry: u64 = header(&headers, "retry-after").parse().unwrap_or(0);
    assert!(
        (1..=86_400).contains(&retry),
        "retry-after should be the seconds to the daily window's end: {headers:?}"
    );
    assert!(
        header(&headers, "content-type").starts_with("application/json"),
        "{headers:?}"
    );
    assert!(
        stack.mock.requests().is_empty(),
        "a refused call reached the provider: {:?}",
        stack.mock.requests()
    );
    body
}

#[tokio::test]
async fn an_exhausted_budget_refuses_an_openai_call_with_429_in_openai_error_shape() {
    let stack = exhausted("deny-openai", "deny-openai-budget").await;
    let resp = chat_call(&stack, "deny-openai").send().await.unwrap();
    let body = refused(&stack, resp, "deny-openai-budget").await;
    let error = &body["error"];
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("deny-openai-budget")),
        "{body}"
    );
    assert!(error["type"].is_string(), "{body}");
    assert_eq!(error["code"], "budget_exceeded", "{body}");
}

#[tokio::test]
async fn an_exhausted_budget_refuses_an_anthropic_call_with_429_in_anthropic_error_shape() {
    let stack = exhausted("deny-anthropic", "deny-anthropic-budget").await;
    let resp = stack
        .post(
            "/v1/messages",
            "deny-anthropic",
            "anthropic-messages.json",
            &anthropic_messages("claude-sonnet-4-5", 256, false),
        )
        .send()
        .await
        .unwrap();
    let body = refused(&stack, resp, "deny-anthropic-budget").await;
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("deny-anthropic-budget")),
        "{body}"
    );
}

#[tokio::test]
async fn an_exhausted_budget_refuses_a_gemini_call_with_429_in_gemini_error_shape() {
    let stack = exhausted("deny-gemini", "deny-gemini-budget").await;
    let resp = stack
        .post(
            "/v1beta/models/gemini-2.5-flash:generateContent",
            "deny-gemini",
            "gemini-generate-content-thinking-cache.json",
            &gemini_contents(256),
        )
        .send()
        .await
        .unwrap();
    let body = refused(&stack, resp, "deny-gemini-budget").await;
    let error = &body["error"];
    assert_eq!(error["code"], 429, "{body}");
    assert_eq!(error["status"], "RESOURCE_EXHAUSTED", "{body}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("deny-gemini-budget")),
        "{body}"
    );
}

/// Runs an SDK script that must exit 0 after catching the SDK's `RateLimitError`, printing
/// its class, status and message.
async fn sdk_refusal(stack: &Stack, script: &str, base_url: &str, team: &str, id: &str) {
    let run = python::run(script, &[("BASE_URL", base_url), ("TEAM", team)])
        .await
        .unwrap();
    assert!(run.ok(), "{run}\n--- envoy ---\n{}", stack.envoy.log());
    let mut lines = run.stdout.lines();
    assert_eq!(lines.next(), Some("RateLimitError 429"), "{run}");
    let message: Vec<&str> = lines.collect();
    assert!(
        message.join("\n").contains(id),
        "the SDK's message should name the budget: {run}"
    );
    assert!(stack.mock.requests().is_empty(), "reached the provider");
}

#[tokio::test]
async fn the_openai_python_sdk_raises_rate_limit_error_with_the_budget_message() {
    let stack = exhausted("sdk-openai", "sdk-openai-budget").await;
    let script = r#"
import os, sys, openai
client = openai.OpenAI(
    base_url=os.environ["BASE_URL"], api_key="sk-test", max_retries=0,
    default_headers={"x-tollgate-team": os.environ["TEAM"], "x-mock-fixture": "chat.json"},
)
try:
    client.chat.completions.create(
        model="gpt-4o-mini", max_tokens=256,
        messages=[{"role": "user", "content": "Summarise the quarter."}],
    )
except openai.RateLimitError as e:
    print(type(e).__name__, e.status_code)
    print(e.message)
    sys.exit(0)
print("no RateLimitError")
sys.exit(1)
"#;
    let base = format!("{}/v1", stack.envoy.url());
    sdk_refusal(&stack, script, &base, "sdk-openai", "sdk-openai-budget").await;
}

#[tokio::test]
async fn the_anthropic_python_sdk_raises_rate_limit_error_with_the_budget_message() {
    let stack = exhausted("sdk-anthropic", "sdk-anthropic-budget").await;
    let script = r#"
import os, sys, anthropic
client = anthropic.Anthropic(
    base_url=os.environ["BASE_URL"], api_key="sk-ant-test", max_retries=0,
    default_headers={"x-tollgate-team": os.environ["TEAM"], "x-mock-fixture": "anthropic-messages.json"},
)
try:
    client.messages.create(
        model="claude-sonnet-4-5", max_tokens=256,
        messages=[{"role": "user", "content": "Summarise the quarter."}],
    )
except anthropic.RateLimitError as e:
    print(type(e).__name__, e.status_code)
    print(e.message)
    sys.exit(0)
print("no RateLimitError")
sys.exit(1)
"#;
    let base = stack.envoy.url();
    sdk_refusal(
        &stack,
        script,
        &base,
        "sdk-anthropic",
        "sdk-anthropic-budget",
    )
    .await;
}
