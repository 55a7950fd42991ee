//! `POST /v1/channels/{id}/test` against real receivers: a signed webhook that checks the
//! signature with its own HMAC gets one `channel_test` alert; a receiver answering 500 and a
//! port where nothing listens are answered as failed attempts with their status or error;
//! the test is sent whatever the channel's `min_severity`, stores no event and no delivery
//! record, and is audited.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)] // the SMTP sink and the holding receiver are alert_delivery.rs's
#[path = "support/receivers.rs"]
mod receivers;
mod support;

use std::sync::Arc;

use receivers::Receiver;
use reqwest::Method;
use serde_json::{Value, json};
use support::app::TestApp;
use tollgate_control_plane::store::memory::MemoryStore;

const SECRET: &str = "whsec-0123456789abcdef";

async fn call(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = app.admin(method, path);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn channel(app: &TestApp, id: &str, url: &str, min_severity: &str) {
    let (s, b) = call(
        app,
        Method::POST,
        "/v1/channels",
        Some(json!({ "id": id, "min_severity": min_severity,
            "target": { "kind": "webhook", "url": url, "secret": SECRET } })),
    )
    .await;
    assert_eq!(s, 201, "{b}");
}

#[tokio::test]
async fn a_channel_test_sends_one_signed_test_alert_and_answers_how_it_went() {
    let app = TestApp::start(Arc::new(MemoryStore::new()), |_| {}).await;
    let rx = Receiver::start(Some(SECRET), 0, 200).await;
    // Critical only: a test is sent anyway (the admin asked for it).
    channel(&app, "ops", &rx.url, "critical").await;

    let (s, attempt) = call(&app, Method::POST, "/v1/channels/ops/test", None).await;
    assert_eq!(s, 200, "{attempt}");
    assert_eq!(attempt["ok"], true, "{attempt}");
    assert_eq!(attempt["status"], 200, "{attempt}");
    assert!(attempt.get("error").is_none(), "{attempt}");

    let got = rx.received();
    assert_eq!(got.len(), 1);
    assert!(
        got[0].signature_ok,
        "the receiver's own HMAC checks the signature"
    );
    let alert = &got[0].body["alert"];
    assert_eq!(alert["kind"], "channel_test");
    assert_eq!(alert["severity"], "info");
    let id = alert["id"].as_str().unwrap();
    assert!(id.starts_with("test.ops."), "{id}");
    assert_eq!(got[0].alert_id.as_deref(), Some(id));
    assert!(
        got[0].body["summary"]
            .as_str()
            .unwrap()
            .contains("test alert"),
        "{}",
        got[0].body
    );

    // Nothing is kept: no event to list, no delivery record; the test is in the audit trail.
    let (_, alerts) = call(&app, Method::GET, "/v1/alerts", None).await;
    assert_eq!(alerts, json!([]), "{alerts}");
    let (_, deliveries) = call(
        &app,
        Method::GET,
        &format!("/v1/alerts/{id}/deliveries"),
        None,
    )
    .await;
    assert_eq!(deliveries, json!([]));
    let (_, audit) = call(&app, Method::GET, "/v1/audit", None).await;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "channel.test" && e["target"] == "ops"),
        "{audit}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_failed_channel_test_names_the_receivers_status_or_the_error() {
    let app = TestApp::start(Arc::new(MemoryStore::new()), |_| {}).await;
    let failing = Receiver::start(Some(SECRET), usize::MAX, 500).await;
    channel(&app, "failing", &failing.url, "info").await;
    let (s, attempt) = call(&app, Method::POST, "/v1/channels/failing/test", None).await;
    assert_eq!(s, 200, "{attempt}");
    assert_eq!(attempt["ok"], false, "{attempt}");
    assert_eq!(attempt["status"], 500, "{attempt}");
    assert!(
        attempt["error"].as_str().unwrap().contains("HTTP 500"),
        "{attempt}"
    );
    assert_eq!(failing.received().len(), 1, "one attempt, no retry");

    let nowhere = format!("http://127.0.0.1:{}/hook", support::free_port());
    channel(&app, "nowhere", &nowhere, "info").await;
    let (s, attempt) = call(&app, Method::POST, "/v1/channels/nowhere/test", None).await;
    assert_eq!(s, 200, "{attempt}");
    assert_eq!(attempt["ok"], false, "{attempt}");
    assert!(attempt.get("status").is_none(), "{attempt}");
    assert!(
        attempt["error"]
            .as_str()
            .unwrap()
            .contains("HTTP request failed"),
        "{attempt}"
    );

    let (s, e) = call(&app, Method::POST, "/v1/channels/absent/test", None).await;
    assert_eq!(s, 404, "{e}");
    assert_eq!(e["error"]["code"], "not_found", "{e}");
    app.stop().await;
}
