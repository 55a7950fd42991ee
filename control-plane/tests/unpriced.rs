//! A model no price table knows never rides free past a USD budget: the unknown-model policy
//! (docs/prices.md) refuses it or prices it as a named model, per budget or for the service,
//! on both stores.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use serde_json::{Value, json};
use support::RedisServer;
use support::app::{TestApp, redis_store, reserve_req, settlement};
use tollgate_control_plane::store::memory::MemoryStore;
use tollgate_model::pricing::UnknownModelPolicy;

const UNKNOWN: &str = "model-no-table-prices";

fn budget(id: &str, limit_usd: &str) -> Value {
    json!({ "id": id, "scopes": ["team:a"], "limit_usd": limit_usd, "period": "daily" })
}

async fn an_unknown_model_is_refused_where_a_usd_budget_applies(app: TestApp) {
    app.create_budget(budget("usd", "100")).await;
    // What the filter sends for a model its table lacks: cost 0.
    let (s, d) = app
        .reserve(&reserve_req("r1", &["team:a"], UNKNOWN, 0))
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        d,
        json!({ "decision": "deny", "budget_id": "usd", "reason": "unknown_model", "remaining": 0, "fail_mode": "open" })
    );
    let u = app.budget("usd").await;
    assert_eq!(u["usage"]["requests"], 0, "nothing reserved");
    // A call no USD budget limits goes through (there is no USD limit to keep), counted.
    let (_, d) = app
        .reserve(&reserve_req("r2", &["team:b"], UNKNOWN, 0))
        .await;
    assert_eq!(d["decision"], "allow");
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    let line = |action: &str| {
        text.lines().any(|l| {
            l.starts_with("tollgate_unpriced_calls_total{")
                && l.contains(&format!("action=\"{action}\""))
                && l.contains("stage=\"reserve\"")
        })
    };
    assert!(line("refused") && line("unlimited"), "{text}");
    app.stop().await;
}

async fn a_budget_prices_an_unknown_model_as_the_model_it_names(app: TestApp) {
    let mut b = budget("priced", "1");
    b["unknown_model"] = json!({ "price_as": "gpt-5" });
    app.create_budget(b).await;
    // gpt-5: 1000 in × 1250 + 1000 out × 10 000 nano.
    let (_, d) = app
        .reserve(&reserve_req("r1", &["team:a"], UNKNOWN, 0))
        .await;
    assert_eq!(d["decision"], "allow", "{d}");
    assert_eq!(
        app.budget("priced").await["usage"]["reserved_nanos"],
        11_250_000
    );
    // The settlement (usage 100 in, 50 out; the filter's cost 0) at the same stand-in price.
    let batch = json!({ "settlements": [settlement("r1", &["team:a"], UNKNOWN, 0, true)] });
    assert_eq!(app.settle(&batch).await.0, 200);
    let u = app.budget("priced").await;
    assert_eq!(u["usage"]["spent_nanos"], 100 * 1250 + 50 * 10_000);
    assert_eq!(u["usage"]["reserved_nanos"], 0);
    app.stop().await;
}

async fn a_stand_in_without_a_price_is_refused_naming_the_field(app: TestApp) {
    let mut b = budget("bad", "1");
    b["unknown_model"] = json!({ "price_as": "no-such-stand-in" });
    let r = app
        .admin(reqwest::Method::POST, "/v1/budgets")
        .json(&b)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["field"], "unknown_model", "{body}");
    app.stop().await;
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(TestApp::start(Arc::new(MemoryStore::new()), |_| {}).await).await;
                }
            )*
        }
        mod redis {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let server = RedisServer::start();
                    super::$name(TestApp::start(redis_store(&server.url()), |_| {}).await).await;
                }
            )*
        }
    };
}

on_both_stores!(
    an_unknown_model_is_refused_where_a_usd_budget_applies,
    a_budget_prices_an_unknown_model_as_the_model_it_names,
    a_stand_in_without_a_price_is_refused_naming_the_field,
);

#[tokio::test]
async fn the_service_policy_prices_per_provider_and_the_dearest_stand_in_wins() {
    let policy: UnknownModelPolicy = serde_json::from_value(
        json!({ "price_as_per_provider": { "openai": "gpt-4o-mini", "*": "gpt-5" } }),
    )
    .unwrap();
    let app = TestApp::start(Arc::new(MemoryStore::new()), |s| {
        s.unknown_model = Arc::new(policy);
    })
    .await;
    app.create_budget(budget("service", "1")).await;
    // gpt-4o-mini: 1000 × 150 + 1000 × 600 nano.
    let (_, d) = app
        .reserve(&reserve_req("r1", &["team:a"], UNKNOWN, 0))
        .await;
    assert_eq!(d["decision"], "allow", "{d}");
    assert_eq!(
        app.budget("service").await["usage"]["reserved_nanos"],
        750_000
    );
    // Another budget on the same call prices it as gpt-5: the call is reserved at the
    // dearer stand-in on both, so neither is charged less than its own policy says.
    let mut own =
        json!({ "id": "own", "scopes": ["user:bob"], "limit_usd": "1", "period": "daily" });
    own["unknown_model"] = json!({ "price_as": "gpt-5" });
    app.create_budget(own).await;
    let (_, d) = app
        .reserve(&reserve_req("r2", &["team:a", "user:bob"], UNKNOWN, 0))
        .await;
    assert_eq!(d["decision"], "allow", "{d}");
    assert_eq!(
        app.budget("own").await["usage"]["reserved_nanos"],
        11_250_000
    );
    assert_eq!(
        app.budget("service").await["usage"]["reserved_nanos"],
        750_000 + 11_250_000
    );
    app.stop().await;
}
