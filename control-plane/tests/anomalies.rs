//! The anomaly detector end to end: four weeks of imported history with a spike, found by
//! `GET /v1/anomalies` and by the background task, which raises it once to a real signed
//! webhook however many passes see it, switches the scope's emergency mode when a rule says
//! so (audited, and said in the alert) and lifts it when its time is up. Off by default: with
//! no rule, nothing is switched.

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
use support::app::{TestApp, redis_store, reserve_req};
use support::history::{spike_csv, spike_hour_ms};
use tollgate_control_plane::alerts::anomaly_task::{AnomalySettings, AutoEmergency};
use tollgate_control_plane::alerts::worker::DeliverySettings;
use tollgate_control_plane::catalog::SwitchMode;
use tollgate_control_plane::state::AppState;
use tollgate_control_plane::store::Store;
use tollgate_control_plane::store::memory::MemoryStore;

const SECRET: &str = "whsec-0123456789abcdef";

async fn send(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = app.admin(method, path);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn import(app: &TestApp, csv: String) {
    let r = app
        .admin(Method::POST, "/v1/ledger/import?format=tollgate_csv")
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

fn settings(rules: Vec<AutoEmergency>) -> impl FnOnce(&mut AppState) {
    move |s: &mut AppState| {
        s.alert_settings = DeliverySettings {
            backoff_base_ms: 10,
            backoff_max_ms: 40,
            sweep_interval_ms: 3_600_000,
            ..DeliverySettings::default()
        };
        s.anomaly_settings = Arc::new(AnomalySettings {
            interval_ms: 1_000,
            auto_emergency: rules,
            ..AnomalySettings::default()
        });
    }
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

#[tokio::test]
async fn the_api_lists_a_spend_spike_with_its_expected_and_observed_values() {
    let app = TestApp::start(Arc::new(MemoryStore::new()), |_| {}).await;
    import(&app, spike_csv("team:a", "gpt-4o", 20)).await;
    let (s, r) = send(&app, Method::GET, "/v1/anomalies", None).await;
    assert_eq!(s, 200, "{r}");
    let spend: Vec<&Value> = r["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["metric"] == "spend")
        .collect();
    // team:a's series and the gateway's total (global) both jumped.
    let scopes: Vec<&str> = spend.iter().map(|a| a["scope"].as_str().unwrap()).collect();
    assert_eq!(spend.len(), 2, "{r}");
    assert!(
        scopes.contains(&"team:a") && scopes.contains(&"global"),
        "{scopes:?}"
    );
    let a = spend.iter().find(|a| a["scope"] == "team:a").unwrap();
    assert_eq!(a["model"], "gpt-4o");
    assert_eq!(a["direction"], "up");
    assert_eq!(a["detector"], "hour_of_week");
    assert_eq!(a["severity"], "critical");
    assert_eq!(a["hour_start_ms"], spike_hour_ms());
    assert_eq!(a["observed"], 20_000_000_000i64);
    assert_eq!(a["expected"], 1_000_000_000i64);
    assert!(a["score"].as_f64().unwrap() > 9.0, "{a}");
    assert_eq!(
        a["id"],
        format!("anomaly.team:a.gpt-4o.spend.{}", spike_hour_ms())
    );
    assert!(r["series_judged"].as_u64().unwrap() >= 2);

    // Filters, and a bad one named.
    let (_, only) = send(&app, Method::GET, "/v1/anomalies?scope=global", None).await;
    assert!(
        only["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["scope"] == "global")
    );
    let (_, none) = send(&app, Method::GET, "/v1/anomalies?model=other", None).await;
    assert_eq!(none["anomalies"], json!([]));
    let (s, e) = send(&app, Method::GET, "/v1/anomalies?scope=bad%20scope", None).await;
    assert_eq!(s, 400);
    assert_eq!(e["error"]["field"], "scope", "{e}");
    app.stop().await;
}

async fn a_spike_is_raised_once_and_switches_the_scope_for_a_while(store: Arc<dyn Store>) {
    let rx = Receiver::start(Some(SECRET), 0, 200).await;
    let rule = AutoEmergency {
        scope: "team:a".into(),
        min_severity: tollgate_control_plane::alerts::Severity::Critical,
        mode: SwitchMode::DenyAll,
        model: None,
        minutes: 30,
    };
    let app = TestApp::start(store, settings(vec![rule])).await;
    webhook(&app, &rx.url).await;
    app.advance_ms(1);
    import(&app, spike_csv("team:a", "gpt-4o", 20)).await;
    // team:a's and global's spend: two incidents, two events.
    rx.wait_for(2).await;
    let got = rx.received();
    let team = got
        .iter()
        .find(|r| r.body["alert"]["scope"] == "team:a")
        .expect("team:a's anomaly");
    let a = &team.body["alert"];
    assert!(team.signature_ok);
    assert_eq!(a["kind"], "anomaly");
    assert_eq!(a["severity"], "critical");
    assert_eq!(a["anomaly"]["observed"], 20_000_000_000i64);
    assert_eq!(a["emergency"]["mode"], "deny_all");
    assert_eq!(a["emergency"]["by"], "anomaly_detector");
    let until = a["emergency"]["until_ms"].as_i64().unwrap();
    let summary = team.body["summary"].as_str().unwrap();
    assert!(
        summary.contains("spend of team:a on gpt-4o above its usual level"),
        "{summary}"
    );
    assert!(
        summary.contains("emergency switch deny_all set"),
        "{summary}"
    );
    // Only team:a has a rule: global is reported, not switched.
    let global = got
        .iter()
        .find(|r| r.body["alert"]["scope"] == "global")
        .unwrap();
    assert!(global.body["alert"].get("emergency").is_none());

    // The switch is on: team:a is refused.
    let (_, sw) = send(&app, Method::GET, "/v1/emergency", None).await;
    assert_eq!(sw.as_array().unwrap().len(), 1, "{sw}");
    assert_eq!(sw[0]["scope"], "team:a");
    let (s, d) = app
        .reserve(&reserve_req("r1", &["team:a"], "gpt-4o", 1_000))
        .await;
    assert_eq!(s, 200);
    assert_eq!(d["decision"], "deny", "{d}");

    // More passes see the same incident: no second event.
    let mut passes = app.alerts.anomaly_passes();
    let target = *passes.borrow() + 3;
    tokio::time::timeout(Duration::from_secs(30), passes.wait_for(|n| *n >= target))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rx.received().len(), 2);

    // Past its time the detector lifts it, audited, with an event.
    app.now_ms
        .store(until + 1, std::sync::atomic::Ordering::SeqCst);
    rx.wait_for(3).await;
    let lifted = rx
        .received()
        .into_iter()
        .find(|r| r.body["alert"]["kind"] == "emergency_switch")
        .unwrap();
    assert_eq!(
        lifted.body["alert"]["emergency"],
        json!({ "by": "anomaly_detector" })
    );
    let (_, sw) = send(&app, Method::GET, "/v1/emergency", None).await;
    assert_eq!(sw, json!([]));
    let (_, audit) = send(&app, Method::GET, "/v1/audit", None).await;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"emergency.auto_set") && actions.contains(&"emergency.auto_clear"),
        "{actions:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_spike_is_raised_once_and_switches_the_scope_for_a_while_in_memory() {
    a_spike_is_raised_once_and_switches_the_scope_for_a_while(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn a_spike_is_raised_once_and_switches_the_scope_for_a_while_on_redis() {
    let server = RedisServer::start();
    a_spike_is_raised_once_and_switches_the_scope_for_a_while(redis_store(&server.url())).await;
}

#[tokio::test]
async fn without_a_rule_an_anomaly_switches_nothing() {
    let rx = Receiver::start(Some(SECRET), 0, 200).await;
    let app = TestApp::start(Arc::new(MemoryStore::new()), settings(Vec::new())).await;
    webhook(&app, &rx.url).await;
    app.advance_ms(1);
    import(&app, spike_csv("team:a", "gpt-4o", 20)).await;
    rx.wait_for(2).await;
    assert!(
        rx.received()
            .iter()
            .all(|r| r.body["alert"].get("emergency").is_none())
    );
    let (_, sw) = send(&app, Method::GET, "/v1/emergency", None).await;
    assert_eq!(sw, json!([]));
    app.stop().await;
}
