//! The control plane's price file in the filter: a price override, and a model only the
//! control plane prices, change what a call reserves, what `x-tollgate-reserved-usd` says and
//! what the call is charged (`GET /v1/admission/prices`, fetched every
//! `control_plane.price_refresh_ms`).

use std::time::{Duration, Instant};

use serde_json::json;
use tollgate_e2e::charges::{chat_json_usage, cost_nanos, usd};
use tollgate_e2e::stack::{Stack, StackOptions};
use tollgate_model::Usage;

use super::{answer, budget, header, openai_chat, same_usd};

/// `"0.004608"` → 4 608 000 nano-USD; `None` when the header is absent.
fn usd_nanos(text: &str) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let fraction = format!("{fraction:0<9}");
    Some(whole.parse::<i64>().ok()? * 1_000_000_000 + fraction.get(..9)?.parse::<i64>().ok()?)
}

/// The header's amount for a call of `model` by `team` (256 output tokens at most) and its
/// text (absent when the reserve was not answered in time and the call failed open).
async fn reserved_for(stack: &Stack, model: &str, team: &str) -> (Option<i64>, String) {
    let sent = openai_chat(model, 256, false);
    let resp = stack
        .post("/v1/chat/completions", team, "chat.json", &sent)
        .send()
        .await
        .unwrap();
    let (status, headers, body) = answer(resp).await;
    assert_eq!(status, 200, "{body}\n{}", stack.envoy.log());
    let reserved = header(&headers, "x-tollgate-reserved-usd").to_owned();
    (usd_nanos(&reserved), reserved)
}

/// Whether `nanos` is 256 output tokens at $12/M plus some input at $3/M.
fn is_at_3_and_12(nanos: Option<i64>) -> bool {
    nanos.is_some_and(|n| n > 256 * 12_000 && (n - 256 * 12_000) % 3_000 == 0)
}

/// Prices `model` at $3 / $12 per million tokens on the control plane, then calls it as a
/// team no budget limits until the worker's filter reserves it at that price (the file is
/// fetched every second; 20 s at most).
async fn price_at_3_and_12(stack: &Stack, model: &str) {
    stack
        .control_plane
        .put_price(&json!({
            "id": model, "provider": "openai", "source": "contract", "checked": "2026-10-01",
            "prices": [{ "effective_from": "2024-07-18", "input": "3", "output": "12" }]
        }))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (nanos, reserved) = reserved_for(stack, model, "probe").await;
        if is_at_3_and_12(nanos) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the filter still reserves {reserved} USD for {model}\n{}",
            stack.envoy.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn at_3_and_12(u: &Usage) -> i64 {
    i64::try_from(u.uncached_input_tokens * 3_000 + u.output_tokens * 12_000).unwrap()
}

/// Calls `model` for `team` (256 output tokens at most); checks that the header names the
/// worst case at $3 / $12 and that the budget is charged the answer's usage at that price.
async fn call_is_priced_at_3_and_12(stack: &Stack, model: &str, team: &str) {
    // The header: 256 output tokens at $12/M plus the input estimate (which only the filter
    // knows) at $3/M.
    let (nanos, reserved) = reserved_for(stack, model, team).await;
    assert!(is_at_3_and_12(nanos), "{reserved}");
    let nanos = nanos.unwrap();
    let worst = Usage {
        uncached_input_tokens: u64::try_from((nanos - 256 * 12_000) / 3_000).unwrap(),
        output_tokens: 256,
        ..Usage::default()
    };
    assert!(same_usd(&reserved, &usd(at_3_and_12(&worst))), "{reserved}");

    stack
        .control_plane
        .wait_spent(&format!("{team}-budget"), at_3_and_12(&chat_json_usage()))
        .await
        .unwrap();
}

fn fetched_every_second() -> StackOptions {
    StackOptions {
        price_refresh_ms: 1000,
        ..StackOptions::default()
    }
}

#[tokio::test]
async fn a_price_override_changes_the_reserved_header_and_the_charge() {
    let stack = Stack::start(fetched_every_second()).await.unwrap();
    stack
        .control_plane
        .create_budget(&budget("override-budget", "override", "100"))
        .await
        .unwrap();
    // gpt-4o-mini at 20 times its built-in price.
    price_at_3_and_12(&stack, "gpt-4o-mini").await;
    let built_in = cost_nanos("gpt-4o-mini", &chat_json_usage()).unwrap();
    assert!(at_3_and_12(&chat_json_usage()) > 10 * built_in);
    call_is_priced_at_3_and_12(&stack, "gpt-4o-mini", "override").await;
    let applied = "wasmcustom.tollgate_price_overrides_applied_total";
    assert!(stack.envoy.stat(applied).await.unwrap() >= Some(2));
}

#[tokio::test]
async fn a_model_only_the_control_plane_prices_is_reserved_and_reported_at_its_price() {
    let stack = Stack::start(fetched_every_second()).await.unwrap();
    stack
        .control_plane
        .create_budget(&budget("imported-budget", "imported", "100"))
        .await
        .unwrap();
    let model = "acme-chat-1";
    assert!(cost_nanos(model, &chat_json_usage()).is_err());
    price_at_3_and_12(&stack, model).await;
    call_is_priced_at_3_and_12(&stack, model, "imported").await;
}
