//! Forecasts over real HTTP on the memory store: a budget fed a dollar an hour for ten days
//! is forecast to run out on the day it will, raises one run-out alert, and shows in the
//! gauges; a scope's forecast sums its own spend.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::float_arithmetic
)]

mod support;

use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use support::app::{FILTER_PRICED, T0_MS, TestApp, settlement};

const HOUR_MS: i64 = 3_600_000;
const USD: i64 = 1_000_000_000;

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let r = app.admin(reqwest::Method::GET, path).send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// T0 is 2027-01-15T08:00Z. From T0 - 240 h, one 1 USD call an hour by team:a.
async fn ten_days_of_a_dollar_an_hour() -> TestApp {
    let app = TestApp::memory().await;
    for (id, limit) in [("tight", "500"), ("roomy", "100000")] {
        app.create_budget(json!({ "id": id, "scopes": ["team:a"], "limit_usd": limit,
            "period": "monthly" }))
            .await;
    }
    for h in 0..240 {
        let at = T0_MS - (240 - h) * HOUR_MS + 60_000;
        app.now_ms.store(at, Ordering::SeqCst);
        let mut s = settlement(&format!("c{h}"), &["team:a"], FILTER_PRICED, USD, false);
        s["at_unix_ms"] = json!(at);
        let (code, body) = app.settle(&json!({ "settlements": [s] })).await;
        assert_eq!(code, 200, "{body}");
    }
    app.now_ms.store(T0_MS, Ordering::SeqCst);
    app
}

#[tokio::test]
async fn a_budget_spending_a_dollar_an_hour_is_forecast_to_run_out_when_it_will() {
    let app = ten_days_of_a_dollar_an_hour().await;
    let (s, f) = get(&app, "/v1/forecasts/tight").await;
    assert_eq!(s, 200, "{f}");
    let fc = &f["forecast"];
    assert_eq!(
        fc["spent_nanos"],
        240 * USD,
        "spent is the budget's exact counter"
    );
    assert_eq!(fc["limit_nanos"], 500 * USD);
    assert_eq!(fc["period_end"], "2027-02-01T00:00:00Z");
    // 400 hours remain at 1 USD: 640 USD at the end; the limit is 260 hours ahead.
    let point = fc["end_of_period"]["point_usd"].as_f64().unwrap();
    assert!((point - 640.0).abs() < 5.0, "{fc}");
    assert_eq!(fc["runout"]["status"], "before_period_end");
    let at = chrono::DateTime::parse_from_rfc3339(fc["runout"]["at"].as_str().unwrap()).unwrap();
    let want = chrono::DateTime::parse_from_rfc3339("2027-01-26T04:00:00Z").unwrap();
    assert!((at - want).num_hours().abs() <= 3, "{at}");
    assert_eq!(fc["short_history"], true, "ten days of history is short");
    assert!(fc["backtest"]["smape_pct"].as_f64().unwrap() < 1.0, "{fc}");
    let p95 = &fc["end_of_period"]["p95"];
    assert!(p95["low_usd"].as_f64().unwrap() >= 240.0);
    assert!(p95["high_usd"].as_f64().unwrap() >= point);

    let (_, roomy) = get(&app, "/v1/forecasts/roomy").await;
    assert_eq!(roomy["forecast"]["runout"]["status"], "not_this_period");
    assert_eq!(roomy["forecast"]["runout"]["at"], Value::Null);

    // One run-out alert for the window, however often it is forecast.
    get(&app, "/v1/forecasts").await;
    let (_, alerts) = get(&app, "/v1/alerts").await;
    let runouts: Vec<&Value> = alerts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "budget_forecast_runout")
        .collect();
    assert_eq!(runouts.len(), 1, "{alerts}");
    assert_eq!(runouts[0]["budget_id"], "tight");
    assert_eq!(runouts[0]["severity"], "warning");
    assert!(runouts[0]["runout_at_ms"].as_i64().is_some());

    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("tollgate_budget_forecast_usd{budget=\"tight\"} 6"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tollgate_budget_runout_seconds{budget=\"roomy\"} inf"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_scope_forecast_sums_its_own_spend_in_its_period_and_lists_its_budgets() {
    let app = ten_days_of_a_dollar_an_hour().await;
    let (s, f) = get(&app, "/v1/forecasts?scope=team:a&period=weekly").await;
    assert_eq!(s, 200, "{f}");
    // 2027-01-15 is a Friday: the week began Monday 11th 00:00, 104 hours ago.
    let sc = &f["scope"]["forecast"];
    assert_eq!(sc["period_start"], "2027-01-11T00:00:00Z");
    assert_eq!(sc["spent_nanos"], 104 * USD, "{sc}");
    assert_eq!(sc["runout"]["status"], "no_limit");
    assert_eq!(f["budgets"].as_array().unwrap().len(), 2);
    let (s, e) = get(&app, "/v1/forecasts?scope=nope").await;
    assert_eq!(s, 400, "{e}");
    let (s, e) = get(&app, "/v1/forecasts?period=weekly").await;
    assert_eq!(s, 400, "{e}");
    app.stop().await;
}

#[tokio::test]
async fn recommendations_name_a_cheaper_model_a_cache_opportunity_and_idle_and_tight_budgets() {
    let app = ten_days_of_a_dollar_an_hour().await;
    app.create_budget(
        json!({ "id": "idle", "scopes": ["team:nobody"], "limit_usd": "5",
        "period": "monthly" }),
    )
    .await;
    // Yesterday: 20 gpt-4o calls of 6 000 input tokens each, none read from a cache.
    for i in 0..20 {
        let at = T0_MS - 20 * HOUR_MS + i * 60_000;
        let mut s = settlement(&format!("g{i}"), &["team:a"], "gpt-4o", USD / 100, false);
        s["at_unix_ms"] = json!(at);
        s["usage"] = json!({ "uncached_input_tokens": 6_000, "output_tokens": 500 });
        let (code, body) = app.settle(&json!({ "settlements": [s] })).await;
        assert_eq!(code, 200, "{body}");
    }
    let (s, r) = get(&app, "/v1/recommendations?days=7").await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["scope"], "global");
    assert_eq!(r["to"], "2027-01-15T00:00:00Z");
    let cheaper = r["cheaper_models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["model"] == "gpt-4o")
        .unwrap_or_else(|| panic!("{r}"));
    assert_eq!(cheaper["requests"], 20);
    assert_eq!(cheaper["class"], "openai-flagship");
    let saving = cheaper["saving_nanos"].as_i64().unwrap();
    assert!(saving > 0);
    assert_eq!(
        saving,
        cheaper["repriced_cost_nanos"].as_i64().unwrap()
            - cheaper["alternative_cost_nanos"].as_i64().unwrap()
    );
    let cache = r["prompt_cache"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["model"] == "gpt-4o")
        .unwrap_or_else(|| panic!("{r}"));
    assert_eq!(cache["uncached_input_tokens"], 120_000);
    assert_eq!(cache["avg_input_tokens_per_request"], 6_000);
    assert!(cache["max_saving_nanos"].as_i64().unwrap() > 0);
    let out: Vec<&Value> = r["budgets_running_out"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(out.len(), 1, "{r}");
    assert_eq!(out[0]["budget_id"], "tight");
    assert_eq!(out[0]["limit_nanos"], 500 * USD);
    let unused: Vec<&Value> = r["unused_budgets"].as_array().unwrap().iter().collect();
    assert_eq!(unused.len(), 1, "{r}");
    assert_eq!(unused[0]["budget_id"], "idle");

    let (s, e) = get(&app, "/v1/recommendations?days=0").await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["field"], "days");
    let (s, team) = get(&app, "/v1/recommendations?scope=team:nobody").await;
    assert_eq!(s, 200, "{team}");
    assert_eq!(team["cheaper_models"], json!([]));
    assert_eq!(team["unused_budgets"][0]["budget_id"], "idle");
    app.stop().await;
}
