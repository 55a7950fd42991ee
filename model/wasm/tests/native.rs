//! The shared case table (`cost_cases.json`) is what the native `PriceTable::cost` answers,
//! and the bindings' plain-Rust side gives the same: the wasm tests (`web.rs`) and the
//! dashboard's calculator are then held to the same figures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use serde_json::Value;
use tollgate_model::{PriceTable, Usage};
use tollgate_model_wasm::calc::Calc;

fn cases() -> Vec<Value> {
    let table: Value = serde_json::from_str(include_str!("cost_cases.json")).unwrap();
    table["cases"].as_array().unwrap().clone()
}

#[test]
fn the_shared_cases_are_what_the_native_cost_answers() {
    let table = PriceTable::shipped().unwrap();
    let mut wrong = Vec::new();
    for case in cases() {
        let usage: Usage = serde_json::from_value(case["usage"].clone()).unwrap();
        let at = chrono::DateTime::parse_from_rfc3339(case["at"].as_str().unwrap())
            .unwrap()
            .to_utc();
        let got = table
            .cost(case["model"].as_str().unwrap(), &usage, at)
            .unwrap()
            .total
            .nanos()
            .to_string();
        if got != case["total_nanos"].as_str().unwrap() {
            wrong.push(format!("{}: {got}", case["name"]));
        }
    }
    assert!(wrong.is_empty(), "native totals differ: {wrong:#?}");
}

#[test]
fn the_bindings_rust_side_gives_the_shared_cases() {
    let calc = Calc::shipped().unwrap();
    for case in cases() {
        let got = calc
            .cost(
                case["model"].as_str().unwrap(),
                &case["usage"].to_string(),
                case["at"].as_str().unwrap(),
            )
            .unwrap();
        assert_eq!(got["total_nanos"], case["total_nanos"], "{}", case["name"]);
    }
}

#[test]
fn a_pasted_request_is_priced_as_the_filter_reserves_it() {
    let calc = Calc::shipped().unwrap();
    let body = r#"{"model":"gpt-4o-mini","max_tokens":256,"messages":[{"role":"user","content":"Summarise the quarter."}]}"#;
    let got = calc
        .estimate_request(body, None, "2026-03-01T12:00:00Z")
        .unwrap();
    let input = tollgate_filter_core::request::estimate_request_tokens(body.as_bytes());
    assert_eq!(got["input_tokens"], input);
    assert_eq!(got["max_output_tokens"], 256);
    let usage = Usage {
        uncached_input_tokens: input,
        output_tokens: 256,
        ..Usage::default()
    };
    let want = PriceTable::shipped()
        .unwrap()
        .cost(
            "gpt-4o-mini",
            &usage,
            "2026-03-01T12:00:00Z".parse().unwrap(),
        )
        .unwrap();
    assert_eq!(got["total_nanos"], want.total.nanos().to_string());
}

#[test]
fn an_unknown_model_and_bad_input_are_refused_with_a_message() {
    let calc = Calc::shipped().unwrap();
    let at = "2026-03-01T12:00:00Z";
    let e = calc.cost("no-such-model", "{}", at).unwrap_err();
    assert_eq!(e.to_string(), "no price for model \"no-such-model\"");
    assert!(calc.cost("gpt-4o", r#""tokens""#, at).is_err());
    assert!(calc.cost("gpt-4o", "{}", "yesterday").is_err());
    let e = calc
        .estimate_request(r#"{"messages":[]}"#, None, at)
        .unwrap_err();
    assert!(e.to_string().contains("no \"model\""), "{e}");
}

#[test]
fn an_override_entry_replaces_the_shipped_price() {
    let mut calc = Calc::shipped().unwrap();
    calc.apply_override(OVERRIDE).unwrap();
    let got = calc
        .cost(
            "gpt-4o-mini",
            r#"{"uncached_input_tokens":1000000,"output_tokens":1000000}"#,
            "2026-03-01T00:00:00Z",
        )
        .unwrap();
    assert_eq!(got["total_usd"], "3");
}

/// gpt-4o-mini at 1 USD in, 2 USD out per million tokens (as `GET /v1/prices/{model}`'s
/// `entry` gives an override).
pub const OVERRIDE: &str = r#"{"id":"gpt-4o-mini","provider":"openai","source":"an admin","checked":"2026-03-01","prices":[{"effective_from":"2024-01-01","input":"1","output":"2"}]}"#;
