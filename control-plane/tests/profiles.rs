//! Budget profiles over real HTTP, on both stores: budgets inherit a profile's settings,
//! override some, follow a change of the profile (admission included), and show where each
//! effective setting came from.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};
use support::RedisServer;
use support::app::{TestApp, redis_store, reserve_req};
use tollgate_control_plane::store::memory::MemoryStore;

async fn send(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = app.admin(method, path);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn a_budget_follows_its_profile_and_keeps_its_overrides(app: TestApp) {
    let (s, tiers) = send(&app, Method::GET, "/v1/profiles", None).await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = tiers
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["enterprise", "high", "low", "medium"]);

    let (s, custom) = send(
        &app,
        Method::PUT,
        "/v1/profiles/tiny",
        Some(json!({"id":"tiny","settings":{"limit_usd":"0.000001","period":"daily","thresholds_pct":[50]}})),
    )
    .await;
    assert_eq!(s, 200, "{custom}");
    assert_eq!(custom["origin"], "custom");
    app.create_budget(json!({"id":"t","scopes":["team:a"],"profile":"tiny","fail_mode":"closed"}))
        .await;
    let b = app.budget("t").await;
    assert_eq!(b["budget"]["limit_usd"], "0.000001");
    assert_eq!(b["budget"]["period"], "daily");
    assert_eq!(b["budget"]["fail_mode"], "closed");
    assert_eq!(b["profile"]["id"], "tiny");
    assert_eq!(b["profile"]["settings_from"]["limit_usd"], "profile");
    assert_eq!(b["profile"]["settings_from"]["fail_mode"], "budget");
    assert_eq!(b["profile"]["settings_from"]["timezone"], "default");
    assert_eq!(
        b["profile"]["written"],
        json!({"id":"t","scopes":["team:a"],"profile":"tiny","fail_mode":"closed"})
    );

    // 1000 nano-USD fits under 1000; 1001 is refused.
    let (_, d) = app
        .reserve(&reserve_req("r1", &["team:a"], "gpt-4o", 1_001))
        .await;
    assert_eq!(d["decision"], "deny", "{d}");

    // Raise the profile's limit: the budget (and admission) follow at once.
    let (s, changed) = send(
        &app,
        Method::PUT,
        "/v1/profiles/tiny",
        Some(json!({"id":"tiny","settings":{"limit_usd":"5","period":"daily"}})),
    )
    .await;
    assert_eq!(s, 200, "{changed}");
    assert_eq!(changed["budgets"], json!(["t"]));
    let b = app.budget("t").await;
    assert_eq!(b["budget"]["limit_usd"], "5");
    assert_eq!(b["budget"]["thresholds_pct"], json!([50, 80, 90, 100]));
    assert_eq!(b["profile"]["settings_from"]["thresholds_pct"], "default");
    let (_, d) = app
        .reserve(&reserve_req("r2", &["team:a"], "gpt-4o", 1_001))
        .await;
    assert_eq!(d["decision"], "allow", "{d}");

    // A change that would leave the budget without a period is refused, naming the field.
    let (s, e) = send(
        &app,
        Method::PUT,
        "/v1/profiles/tiny",
        Some(json!({"id":"tiny","settings":{"limit_usd":"5"}})),
    )
    .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (400, Some("settings.period")),
        "{e}"
    );

    // In use: not deletable. Unused after the budget goes: deleted.
    let (s, e) = send(&app, Method::DELETE, "/v1/profiles/tiny", None).await;
    assert_eq!(s, 400, "{e}");
    let (s, _) = send(&app, Method::DELETE, "/v1/budgets/t", None).await;
    assert_eq!(s, 204);
    let (s, _) = send(&app, Method::DELETE, "/v1/profiles/tiny", None).await;
    assert_eq!(s, 204);
    app.stop().await;
}

async fn a_changed_shipped_tier_reaches_its_budgets_and_delete_restores_it(app: TestApp) {
    app.create_budget(json!({"id":"m","scopes":["team:m"],"profile":"medium"}))
        .await;
    assert_eq!(app.budget("m").await["budget"]["limit_usd"], "1000");
    let (s, v) = send(
        &app,
        Method::PUT,
        "/v1/profiles/medium",
        Some(json!({"id":"medium","settings":{"limit_usd":"1500","period":"monthly"}})),
    )
    .await;
    assert_eq!((s, v["origin"].as_str()), (200, Some("override")), "{v}");
    assert_eq!(app.budget("m").await["budget"]["limit_usd"], "1500");
    let (s, _) = send(&app, Method::DELETE, "/v1/profiles/medium", None).await;
    assert_eq!(s, 204);
    assert_eq!(app.budget("m").await["budget"]["limit_usd"], "1000");
    let (s, e) = send(&app, Method::DELETE, "/v1/profiles/medium", None).await;
    assert_eq!((s, e["error"]["field"].as_str()), (400, Some("id")), "{e}");
    app.stop().await;
}

async fn bad_profiles_and_profiled_budgets_get_400_naming_the_field(app: TestApp) {
    let cases = [
        (
            json!({"id":"x","settings":{"timezone":"Mars/Base"}}),
            "settings.timezone",
        ),
        (json!({"id":"x","settings":{"limitusd":"1"}}), "settings"),
        (json!({"id":"y","settings":{}}), "id"),
    ];
    for (body, field) in cases {
        let (s, e) = send(&app, Method::PUT, "/v1/profiles/x", Some(body)).await;
        assert_eq!(s, 400, "{e}");
        assert!(
            e["error"]["field"].as_str().unwrap().starts_with(field),
            "{field}: {e}"
        );
    }
    let (s, e) = send(
        &app,
        Method::POST,
        "/v1/budgets",
        Some(json!({"id":"b","scopes":["team:a"],"profile":"nope"})),
    )
    .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (400, Some("profile")),
        "{e}"
    );
    let (s, e) = send(
        &app,
        Method::POST,
        "/v1/budgets",
        Some(json!({"id":"b","scopes":["team:a"],"profile":"low","limt":1})),
    )
    .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["code"], "invalid_json");
    app.stop().await;
}

/// A profile's unknown-model policy reaches its budgets (before: profiled budgets always got
/// the service's, `refuse`), with its provenance; a budget may set its own.
async fn a_profiled_budget_gets_its_profiles_unknown_model_policy(app: TestApp) {
    let (s, v) = send(
        &app,
        Method::PUT,
        "/v1/profiles/lenient",
        Some(
            json!({"id":"lenient","settings":{"limit_usd":"100","period":"daily",
            "unknown_model":{"price_as":"gpt-4o"}}}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    app.create_budget(json!({"id":"l","scopes":["team:l"],"profile":"lenient"}))
        .await;
    app.create_budget(
        json!({"id":"s","scopes":["team:s"],"profile":"lenient","unknown_model":"refuse"}),
    )
    .await;
    let b = app.budget("l").await;
    assert_eq!(
        b["budget"]["unknown_model"],
        json!({"price_as":"gpt-4o"}),
        "{b}"
    );
    assert_eq!(b["profile"]["settings_from"]["unknown_model"], "profile");
    let b = app.budget("s").await;
    assert_eq!(b["profile"]["settings_from"]["unknown_model"], "budget");

    let unknown = "a-model-no-table-prices";
    let (_, d) = app
        .reserve(&reserve_req("u1", &["team:l"], unknown, 0))
        .await;
    assert_eq!(d["decision"], "allow", "priced as gpt-4o: {d}");
    let (_, d) = app
        .reserve(&reserve_req("u2", &["team:s"], unknown, 0))
        .await;
    assert_eq!(d["decision"], "deny", "{d}");
    assert_eq!(d["reason"], "unknown_model", "{d}");

    // A stand-in with no price is refused, naming the field.
    let (s, e) = send(
        &app,
        Method::PUT,
        "/v1/profiles/lenient",
        Some(
            json!({"id":"lenient","settings":{"limit_usd":"100","period":"daily",
            "unknown_model":{"price_as":"no-such-model"}}}),
        ),
    )
    .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (400, Some("settings.unknown_model")),
        "{e}"
    );
    app.stop().await;
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(TestApp::start(Arc::new(MemoryStore::new()), |_| {}).await).await;
                }
            )*
        }
        mod redis {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let server = RedisServer::start();
                    super::$name(TestApp::start(redis_store(&server.url()), |_| {}).await).await;
                }
            )*
        }
    };
}

on_both_stores!(
    a_budget_follows_its_profile_and_keeps_its_overrides,
    a_changed_shipped_tier_reaches_its_budgets_and_delete_restores_it,
    bad_profiles_and_profiled_budgets_get_400_naming_the_field,
    a_profiled_budget_gets_its_profiles_unknown_model_policy,
);
