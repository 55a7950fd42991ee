//! Alert events other than threshold crossings, end to end through a real control plane to a
//! real signed-webhook receiver: a budget suspended, an emergency switch set and lifted, a
//! fail-open episode (settlements with `reserved: false`, replays not counted). Each incident
//! is one event however many sweeps (and replicas, on Redis) see it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)] // the SMTP sink is alert_delivery.rs's
#[path = "support/receivers.rs"]
mod receivers;
mod support;

use std::sync::Arc;
use std::time::Duration;

use receivers::Receiver;
use reqwest::Method;
use serde_json::{Value, json};
use support::RedisServer;
use support::app::{FILTER_PRICED, T0_MS, TestApp, redis_store, settlement};
use tollgate_control_plane::alerts::worker::DeliverySettings;
use tollgate_control_plane::store::Store;
use tollgate_control_plane::store::memory::MemoryStore;

const SECRET: &str = "whsec-0123456789abcdef";

fn fast() -> DeliverySettings {
    DeliverySettings {
        max_attempts: 3,
        backoff_base_ms: 10,
        backoff_max_ms: 40,
        timeout_ms: 10_000,
        sweep_interval_ms: 20,
        fail_open_quiet_ms: 120_000,
    }
}

async fn app_on(store: Arc<dyn Store>) -> TestApp {
    TestApp::start(store, |s| s.alert_settings = fast()).await
}

async fn send(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = app.admin(method, path);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn webhook(app: &TestApp, url: &str) {
    let (s, b) = send(
        app,
        Method::POST,
        "/v1/channels",
        Some(json!({ "id": "ops", "target": { "kind": "webhook", "url": url, "secret": SECRET } })),
    )
    .await;
    assert_eq!(s, 201, "{b}");
}

/// Waits for `n` more sweeps of the app's delivery task.
async fn sweeps(app: &TestApp, n: u64) {
    let mut w = app.alerts.sweeps();
    let target = *w.borrow() + n;
    tokio::time::timeout(Duration::from_secs(30), w.wait_for(|s| *s >= target))
        .await
        .unwrap()
        .unwrap();
}

/// The alerts of `kind` listed by `GET /v1/alerts`.
async fn listed(app: &TestApp, kind: &str) -> Vec<Value> {
    let (_, v) = send(app, Method::GET, "/v1/alerts", None).await;
    v.as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == kind)
        .cloned()
        .collect()
}

async fn a_suspended_budget_raises_one_critical_event(store: Arc<dyn Store>) {
    let rx = Receiver::start(Some(SECRET), 0, 200).await;
    let app = app_on(store).await;
    webhook(&app, &rx.url).await;
    app.advance_ms(1);
    app.create_budget(
        json!({ "id": "team-a", "scopes": ["team:a"], "limit_usd": "1",
        "period": "monthly", "thresholds_pct": [], "suspend_on_exceed": true }),
    )
    .await;
    let (s, b) = app
        .settle(&json!({ "settlements": [settlement("r1", &["team:a"], FILTER_PRICED, 1_200_000_000, true)] }))
        .await;
    assert_eq!(s, 200, "{b}");
    sweeps(&app, 3).await;
    rx.wait_for(1).await;
    sweeps(&app, 3).await;
    let got = rx.received();
    assert_eq!(
        got.len(),
        1,
        "one event however many sweeps see it: {got:?}"
    );
    let a = &got[0].body["alert"];
    assert!(got[0].signature_ok);
    assert_eq!(a["kind"], "budget_suspended");
    assert_eq!(a["severity"], "critical");
    assert_eq!(a["budget_id"], "team-a");
    assert!(a["id"].as_str().unwrap().starts_with("team-a.w"), "{a}");
    assert!(
        got[0].body["summary"]
            .as_str()
            .unwrap()
            .contains("budget team-a is suspended")
    );
    assert_eq!(listed(&app, "budget_suspended").await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_suspended_budget_raises_one_critical_event_on_the_memory_store() {
    a_suspended_budget_raises_one_critical_event(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn a_suspended_budget_raises_one_critical_event_on_redis() {
    let server = RedisServer::start();
    a_suspended_budget_raises_one_critical_event(redis_store(&server.url())).await;
}

#[tokio::test]
async fn setting_and_lifting_an_emergency_switch_each_raise_an_event() {
    let rx = Receiver::start(Some(SECRET), 0, 200).await;
    let app = app_on(Arc::new(MemoryStore::new())).await;
    webhook(&app, &rx.url).await;
    app.advance_ms(1);
    let (s, b) = send(
        &app,
        Method::PUT,
        "/v1/emergency/team:a",
        Some(json!({ "mode": "downgrade_all", "model": "gpt-4o-mini" })),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    app.advance_ms(1);
    let (s, _) = send(&app, Method::DELETE, "/v1/emergency/team:a", None).await;
    assert_eq!(s, 204);
    rx.wait_for(2).await;
    let mut got: Vec<Value> = rx.received().into_iter().map(|r| r.body).collect();
    got.sort_by_key(|b| b["alert"]["at_ms"].as_i64());
    assert_eq!(got[0]["alert"]["kind"], "emergency_switch");
    assert_eq!(got[0]["alert"]["severity"], "warning");
    assert_eq!(got[0]["alert"]["scope"], "team:a");
    assert_eq!(
        got[0]["alert"]["emergency"],
        json!({ "mode": "downgrade_all", "model": "gpt-4o-mini", "by": "admin" })
    );
    assert_eq!(got[1]["alert"]["severity"], "info");
    assert_eq!(got[1]["alert"]["emergency"], json!({ "by": "admin" }));
    assert!(
        got[1]["summary"]
            .as_str()
            .unwrap()
            .contains("lifted by admin"),
        "{}",
        got[1]
    );
    app.stop().await;
}

fn failed_open(id: &str, at_ms: i64) -> Value {
    let mut s = settlement(id, &["team:a"], FILTER_PRICED, 1_000, false);
    s["at_unix_ms"] = json!(at_ms);
    s
}

async fn fail_open_calls_become_one_episode(store: Arc<dyn Store>) {
    let rx = Receiver::start(Some(SECRET), 0, 200).await;
    let app = app_on(store).await;
    webhook(&app, &rx.url).await;
    // An outage: calls ended over three minutes, settled in two batches once the control
    // plane answers again; the first batch is sent twice (a retried batch: its replays are
    // duplicates, not more calls). One reserved call in the middle is not fail-open.
    let first = json!({ "settlements": [
        failed_open("f1", T0_MS - 170_000), failed_open("f2", T0_MS - 150_000),
        settlement("ok1", &["team:a"], FILTER_PRICED, 1_000, true),
    ] });
    for _ in 0..2 {
        let (s, b) = app.settle(&first).await;
        assert_eq!(s, 200, "{b}");
    }
    let (s, b) = app
        .settle(&json!({ "settlements": [failed_open("f3", T0_MS - 40_000)] }))
        .await;
    assert_eq!(s, 200, "{b}");
    // Not quiet for fail_open_quiet_ms yet: no episode.
    sweeps(&app, 3).await;
    assert!(listed(&app, "fail_open_episode").await.is_empty());
    app.advance_ms(121_000);
    sweeps(&app, 3).await;
    rx.wait_for(1).await;
    sweeps(&app, 3).await;
    let got = rx.received();
    assert_eq!(got.len(), 1, "{got:?}");
    let a = &got[0].body["alert"];
    assert_eq!(a["kind"], "fail_open_episode");
    assert_eq!(a["severity"], "warning");
    assert_eq!(a["id"], format!("failopen.{}", T0_MS - 170_000));
    assert_eq!(
        a["fail_open"],
        json!({ "start_ms": T0_MS - 170_000, "end_ms": T0_MS - 40_000, "calls": 3 })
    );
    assert!(
        got[0].body["summary"]
            .as_str()
            .unwrap()
            .starts_with("[warning] 3 calls admitted fail-open")
    );
    app.stop().await;
}

#[tokio::test]
async fn fail_open_calls_become_one_episode_on_the_memory_store() {
    fail_open_calls_become_one_episode(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn fail_open_calls_become_one_episode_on_redis() {
    let server = RedisServer::start();
    fail_open_calls_become_one_episode(redis_store(&server.url())).await;
}

/// Two replicas on one Redis see the same unpriced model: one event, delivered once.
#[tokio::test]
async fn a_model_no_table_prices_raises_one_event_a_day_across_replicas() {
    let server = RedisServer::start();
    let rx = Receiver::start(Some(SECRET), 0, 200).await;
    let a = app_on(redis_store(&server.url())).await;
    let b = app_on(redis_store(&server.url())).await;
    webhook(&a, &rx.url).await;
    for (i, app) in [&a, &b, &a].into_iter().enumerate() {
        let (s, d) = app
            .reserve(&support::app::reserve_req(
                &format!("r{i}"),
                &["team:x"],
                "vendor/model-nobody-prices:1",
                0,
            ))
            .await;
        assert_eq!((s, d["decision"].as_str()), (200, Some("allow")), "{d}");
    }
    rx.wait_for(1).await;
    sweeps(&a, 3).await;
    let got = rx.received();
    assert_eq!(got.len(), 1, "{got:?}");
    let alert = &got[0].body["alert"];
    assert_eq!(alert["kind"], "unpriced_model");
    assert_eq!(
        alert["severity"], "critical",
        "an unlimited call is charged nothing"
    );
    assert_eq!(
        alert["unpriced"],
        json!({ "provider": "openai", "model": "vendor/model-nobody-prices:1", "action": "unlimited" })
    );
    assert!(
        alert["id"]
            .as_str()
            .unwrap()
            .starts_with("unpriced.openai.vendor~2Fmodel-nobody-prices~3A1."),
        "{alert}"
    );
    let summary = got[0].body["summary"].as_str().unwrap();
    assert!(summary.contains("which no price table knows"), "{summary}");
    assert_eq!(listed(&b, "unpriced_model").await.len(), 1);
    a.stop().await;
    b.stop().await;
}
