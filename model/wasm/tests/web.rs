//! The bindings as JavaScript calls them, compiled to wasm32-unknown-unknown and run by
//! wasm-bindgen-test in Node and in headless Chromium (`scripts/test.sh ui`): every case of
//! the shared table (`cost_cases.json`) gives the native total.

#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use serde_json::Value;
use tollgate_model_wasm::Calculator;
use wasm_bindgen_test::wasm_bindgen_test;

fn cases() -> Vec<Value> {
    let table: Value = serde_json::from_str(include_str!("cost_cases.json")).unwrap();
    table["cases"].as_array().unwrap().clone()
}

#[wasm_bindgen_test]
fn every_shared_case_costs_in_wasm_what_the_native_cost_answers() {
    let calc = Calculator::new().map_err(|_| "shipped table").unwrap();
    for case in cases() {
        let json = calc
            .cost(
                case["model"].as_str().unwrap(),
                &case["usage"].to_string(),
                case["at"].as_str().unwrap(),
            )
            .map_err(|_| "cost")
            .unwrap();
        let got: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(got["total_nanos"], case["total_nanos"], "{}", case["name"]);
    }
}

#[wasm_bindgen_test]
fn an_override_changes_the_price_as_it_does_in_the_control_plane() {
    let mut calc = Calculator::new().map_err(|_| "shipped table").unwrap();
    let entry = r#"{"id":"gpt-4o-mini","provider":"openai","source":"an admin","checked":"2026-03-01","prices":[{"effective_from":"2024-01-01","input":"1","output":"2"}]}"#;
    calc.apply_override(entry).map_err(|_| "override").unwrap();
    let json = calc
        .cost(
            "gpt-4o-mini",
            r#"{"uncached_input_tokens":1000000,"output_tokens":1000000}"#,
            "2026-03-01T00:00:00Z",
        )
        .map_err(|_| "cost")
        .unwrap();
    let got: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(got["total_usd"], "3");
}

#[wasm_bindgen_test]
fn the_shipped_models_are_listed() {
    let calc = Calculator::new().map_err(|_| "shipped table").unwrap();
    let models = calc.models();
    assert!(models.iter().any(|m| m == "gpt-4o-mini"));
    assert!(models.windows(2).all(|w| w[0] <= w[1]));
}
