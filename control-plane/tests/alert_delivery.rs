//! Alert delivery against real local receivers: a signed webhook that fails then recovers, a
//! receiver that never recovers (dead letter), one that never answers (admission goes on), a
//! Slack-compatible hook, email to a real SMTP server (aiosmtpd: plain, STARTTLS and SMTPS), and
//! two replicas on one
//! Redis delivering a dead replica's alert exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/receivers.rs"]
mod receivers;
mod support;

use std::sync::Arc;
use std::time::Duration;

use receivers::{Receiver, SmtpSink};
use reqwest::Method;
use serde_json::{Value, json};
use support::RedisServer;
use support::app::{FILTER_PRICED, TestApp, redis_store, settlement};
use tollgate_control_plane::alerts::worker::DeliverySettings;
use tollgate_control_plane::store::Store;
use tollgate_control_plane::store::memory::MemoryStore;

const SECRET: &str = "whsec-0123456789abcdef";

/// Fast retries; the sweep only at start unless a test wants it.
fn fast(sweep_interval_ms: u64) -> DeliverySettings {
    DeliverySettings {
        max_attempts: 3,
        backoff_base_ms: 10,
        backoff_max_ms: 40,
        timeout_ms: 10_000,
        sweep_interval_ms,
        ..DeliverySettings::default()
    }
}

async fn app_on(store: Arc<dyn Store>, settings: DeliverySettings) -> TestApp {
    TestApp::start(store, move |s| s.alert_settings = settings).await
}

async fn post(app: &TestApp, path: &str, body: Value) -> Value {
    let r = app
        .admin(Method::POST, path)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {v}");
    v
}

async fn get(app: &TestApp, path: &str) -> Value {
    app.admin(Method::GET, path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A $1 monthly budget on team:a alerting at the given thresholds.
async fn budget(app: &TestApp, thresholds: &[u16]) {
    app.create_budget(
        json!({ "id": "team-a", "scopes": ["team:a"], "limit_usd": "1",
        "period": "monthly", "thresholds_pct": thresholds }),
    )
    .await;
}

async fn webhook(app: &TestApp, id: &str, url: &str, min_severity: &str) {
    post(
        app,
        "/v1/channels",
        json!({ "id": id, "min_severity": min_severity,
        "target": { "kind": "webhook", "url": url, "secret": SECRET } }),
    )
    .await;
}

/// Settles `nanos` on team:a; returns the ids of the alerts it raised.
async fn spend(app: &TestApp, id: &str, nanos: i64) -> Vec<String> {
    let before: Vec<Value> = get(app, "/v1/alerts").await.as_array().unwrap().clone();
    let (s, body) = app
        .settle(
            &json!({ "settlements": [settlement(id, &["team:a"], FILTER_PRICED, nanos, false)] }),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let after: Vec<Value> = get(app, "/v1/alerts").await.as_array().unwrap().clone();
    after[..after.len() - before.len()]
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Polls the alert's deliveries until every one of `channels` is no longer pending.
async fn settled_deliveries(app: &TestApp, alert: &str, channels: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let d = get(app, &format!("/v1/alerts/{alert}/deliveries")).await;
        let d = d.as_array().unwrap().clone();
        if d.len() == channels && d.iter().all(|r| r["state"] != "pending") {
            return d;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "deliveries of {alert} still pending after 30 s: {d:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn a_failing_webhook_gets_the_alert_once_it_recovers(store: Arc<dyn Store>) {
    let rx = Receiver::start(Some(SECRET), 2, 503).await;
    let app = app_on(store, fast(3_600_000)).await;
    budget(&app, &[80]).await;
    webhook(&app, "ops", &rx.url, "info").await;
    let ids = spend(&app, "r1", 900_000_000).await;
    assert_eq!(ids.len(), 1);
    let d = settled_deliveries(&app, &ids[0], 1).await;
    assert_eq!(d[0]["state"], "delivered", "{d:?}");
    assert_eq!(d[0]["channel_kind"], "webhook");
    let attempts = d[0]["attempts"].as_array().unwrap();
    let outcome: Vec<(bool, u64)> = attempts
        .iter()
        .map(|a| (a["ok"].as_bool().unwrap(), a["status"].as_u64().unwrap()))
        .collect();
    assert_eq!(outcome, [(false, 503), (false, 503), (true, 200)]);

    let got = rx.received();
    assert_eq!(got.len(), 3);
    for (i, r) in got.iter().enumerate() {
        assert!(r.signature_ok, "request {i} failed the signature check");
        assert_eq!(r.alert_id.as_deref(), Some(ids[0].as_str()));
        assert_eq!(r.attempt.as_deref(), Some((i + 1).to_string().as_str()));
        assert_eq!(r.body["type"], "tollgate.alert");
        assert_eq!(r.body["alert"]["id"], ids[0].as_str());
        assert_eq!(r.body["alert"]["severity"], "warning");
        assert_eq!(r.body["alert"]["threshold_pct"], 80);
        assert_eq!(r.body["alert"]["spent_nanos"], 900_000_000);
    }
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
        metrics.contains(
            "tollgate_alert_delivery_attempts_total{channel_kind=\"webhook\",outcome=\"failed\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "tollgate_alert_deliveries_total{channel_kind=\"webhook\",outcome=\"delivered\"}"
        ),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_signed_webhook_that_fails_twice_gets_the_alert_on_the_third_attempt_in_memory() {
    a_failing_webhook_gets_the_alert_once_it_recovers(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn a_signed_webhook_that_fails_twice_gets_the_alert_on_the_third_attempt_on_redis() {
    let server = RedisServer::start();
    a_failing_webhook_gets_the_alert_once_it_recovers(redis_store(&server.url())).await;
}

#[tokio::test]
async fn a_receiver_that_never_recovers_becomes_a_dead_letter() {
    let rx = Receiver::start(Some(SECRET), usize::MAX, 500).await;
    let app = app_on(Arc::new(MemoryStore::new()), fast(3_600_000)).await;
    budget(&app, &[100]).await;
    webhook(&app, "down", &rx.url, "info").await;
    let ids = spend(&app, "r1", 1_000_000_000).await;
    let d = settled_deliveries(&app, &ids[0], 1).await;
    assert_eq!(d[0]["state"], "dead");
    assert_eq!(d[0]["attempts"].as_array().unwrap().len(), 3);
    assert_eq!(rx.received().len(), 3);
    let dead = get(&app, "/v1/alerts/dead-letters").await;
    assert_eq!(dead.as_array().unwrap().len(), 1, "{dead}");
    assert_eq!(dead[0]["alert"]["id"], ids[0].as_str());
    assert_eq!(dead[0]["alert"]["severity"], "critical");
    assert_eq!(
        dead[0]["attempts"][2]["error"],
        "receiver answered HTTP 500"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_receiver_that_never_answers_delays_neither_reserve_nor_settle() {
    let rx = Receiver::holding(Some(SECRET)).await;
    let app = app_on(Arc::new(MemoryStore::new()), fast(3_600_000)).await;
    budget(&app, &[10, 20]).await;
    webhook(&app, "stuck", &rx.url, "info").await;
    tokio::time::timeout(Duration::from_secs(20), spend(&app, "r1", 150_000_000))
        .await
        .expect("a settle waited on alert delivery");
    // The delivery is now in flight and the receiver holds it unanswered.
    rx.wait_for(1).await;
    // Admission goes on while it hangs: another threshold, a reserve, a settle. Were any of
    // them waiting on the delivery, it would wait forever: the timeout turns that into a
    // failure (the receiver answers only on release, below).
    let bounded = Duration::from_secs(20);
    let ids = tokio::time::timeout(bounded, spend(&app, "r2", 100_000_000))
        .await
        .expect("a settle waited on a hung alert receiver");
    assert_eq!(ids.len(), 1);
    let (s, body) = tokio::time::timeout(
        bounded,
        app.reserve(&support::app::reserve_req(
            "r3",
            &["team:a"],
            FILTER_PRICED,
            1_000,
        )),
    )
    .await
    .expect("a reserve waited on a hung alert receiver");
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["decision"], "allow", "{body}");
    // Still unanswered: nothing above waited for it.
    assert!(rx.received().iter().all(|r| r.status == 200));
    let pending = get(&app, &format!("/v1/alerts/{}/deliveries", ids[0])).await;
    assert!(
        pending
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["state"] == "pending"),
        "{pending}"
    );
    rx.release();
    app.stop().await;
}

#[tokio::test]
async fn slack_gets_the_summary_and_a_channel_gets_only_its_severities() {
    let slack = Receiver::start(None, 0, 200).await;
    let pager = Receiver::start(Some(SECRET), 0, 200).await;
    let app = app_on(Arc::new(MemoryStore::new()), fast(3_600_000)).await;
    budget(&app, &[80, 100]).await;
    post(
        &app,
        "/v1/channels",
        json!({ "id": "team-slack",
        "target": { "kind": "slack", "url": slack.url } }),
    )
    .await;
    webhook(&app, "pager", &pager.url, "critical").await;

    let warn = spend(&app, "r1", 850_000_000).await;
    let d = settled_deliveries(&app, &warn[0], 1).await;
    assert_eq!(d[0]["channel_id"], "team-slack");
    let crit = spend(&app, "r2", 200_000_000).await;
    let d = settled_deliveries(&app, &crit[0], 2).await;
    assert!(d.iter().all(|r| r["state"] == "delivered"), "{d:?}");

    let texts: Vec<String> = slack
        .received()
        .iter()
        .map(|r| r.body["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts.len(), 2);
    assert!(
        texts[0].contains("[warning] budget team-a crossed 80%"),
        "{texts:?}"
    );
    assert!(
        texts[1].contains("[critical] budget team-a crossed 100%"),
        "{texts:?}"
    );
    let paged = pager.received();
    assert_eq!(paged.len(), 1, "the pager wants critical alerts only");
    assert_eq!(paged[0].alert_id.as_deref(), Some(crit[0].as_str()));
    app.stop().await;
}

#[tokio::test]
async fn email_reaches_a_real_smtp_server_with_auth_and_an_unreachable_one_is_a_dead_letter() {
    // The server requires AUTH: a message in its maildir proves the login worked.
    let smtp = SmtpSink::start(Some(("tollgate", "mail-pass")));
    let app = app_on(Arc::new(MemoryStore::new()), fast(3_600_000)).await;
    budget(&app, &[50]).await;
    let mail = |id: &str, port: u16| {
        json!({ "id": id, "target": { "kind": "email", "host": "127.0.0.1", "port": port,
            "tls": "none", "username": "tollgate", "password": "mail-pass",
            "from": "Tollgate <alerts@example.com>", "to": ["finops@example.com", "lead@example.com"] } })
    };
    post(&app, "/v1/channels", mail("finops-mail", smtp.port)).await;
    // Nothing listens there.
    post(
        &app,
        "/v1/channels",
        mail("wrong-mail", support::free_port()),
    )
    .await;
    let ids = spend(&app, "r1", 600_000_000).await;
    let d = settled_deliveries(&app, &ids[0], 2).await;
    let by_id = |id: &str| d.iter().find(|r| r["channel_id"] == id).unwrap().clone();
    assert_eq!(by_id("finops-mail")["state"], "delivered", "{d:?}");
    let wrong = by_id("wrong-mail");
    assert_eq!(wrong["state"], "dead");
    assert!(
        wrong["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("SMTP"),
        "{wrong}"
    );

    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "one message, for both recipients");
    let m = &messages[0];
    assert!(
        m.contains("Subject: [info] budget team-a crossed 50% of its limit"),
        "{m}"
    );
    assert!(
        m.contains("To: finops@example.com, lead@example.com"),
        "{m}"
    );
    assert!(m.contains(&format!("id: {}", ids[0])), "{m}");
    assert!(m.contains("threshold_pct: 50"), "{m}");
    app.stop().await;
}

/// A replica raised the alert and died before delivering it (here: its only channel was
/// disabled, then enabled once the replica was gone). Two replicas started on the same Redis
/// both find it in their first sweeps and race for it: the receiver gets it once.
#[tokio::test]
async fn two_replicas_on_redis_deliver_a_dead_replicas_alert_exactly_once() {
    let server = RedisServer::start();
    let rx = Receiver::start(Some(SECRET), 0, 200).await;
    let first = app_on(redis_store(&server.url()), fast(3_600_000)).await;
    budget(&first, &[90]).await;
    post(
        &first,
        "/v1/channels",
        json!({ "id": "ops", "enabled": false,
        "target": { "kind": "webhook", "url": rx.url, "secret": SECRET } }),
    )
    .await;
    let ids = spend(&first, "r1", 950_000_000).await;
    let r = first
        .admin(Method::PUT, "/v1/channels/ops")
        .json(&json!({ "id": "ops", "target": { "kind": "webhook", "url": rx.url, "secret": SECRET } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    first.stop().await;
    assert!(rx.received().is_empty());

    let a = app_on(redis_store(&server.url()), fast(20)).await;
    let b = app_on(redis_store(&server.url()), fast(20)).await;
    let d = settled_deliveries(&a, &ids[0], 1).await;
    assert_eq!(d[0]["state"], "delivered");
    // Both replicas sweep three more times after the delivery: neither sends it again.
    for app in [&a, &b] {
        let mut sweeps = app_sweeps(app);
        let target = *sweeps.borrow() + 3;
        tokio::time::timeout(Duration::from_secs(30), sweeps.wait_for(|n| *n >= target))
            .await
            .unwrap()
            .unwrap();
    }
    // The budget at 95 % also raises its forecast run-out alert: count the crossing's.
    let got = rx.received();
    let crossing = got
        .iter()
        .filter(|r| r.alert_id.as_deref() == Some(ids[0].as_str()));
    assert_eq!(crossing.count(), 1, "{got:?}");
    let d = get(&b, &format!("/v1/alerts/{}/deliveries", ids[0])).await;
    assert_eq!(d[0]["attempts"].as_array().unwrap().len(), 1, "{d}");
    a.stop().await;
    b.stop().await;
}

fn app_sweeps(app: &TestApp) -> tokio::sync::watch::Receiver<u64> {
    app.alerts.sweeps()
}

/// STARTTLS to a relay whose certificate a private CA signed: trusted through the channel's
/// `ca_pem` (AUTH only after STARTTLS, as the server requires); the same relay without
/// `ca_pem` fails verification against the system roots; a server that does not offer
/// STARTTLS is refused rather than sent to in the clear.
#[tokio::test]
async fn starttls_trusts_the_channels_ca_and_never_falls_back_to_plain_text() {
    let pki = support::topologies::TestPki::new();
    let (cert, key) = (pki.path("server.pem"), pki.path("server.key"));
    let tls_smtp = SmtpSink::start_with(Some(("tollgate", "mail-pass")), Some((&cert, &key)));
    let plain_smtp = SmtpSink::start(None);
    let ca = std::fs::read_to_string(pki.path("ca.pem")).unwrap();
    let app = app_on(Arc::new(MemoryStore::new()), fast(3_600_000)).await;
    budget(&app, &[50]).await;
    let mail = |id: &str, port: u16, ca: Option<&str>| {
        let mut c = json!({ "id": id, "target": { "kind": "email", "host": "127.0.0.1", "port": port,
            "tls": "starttls", "username": "tollgate", "password": "mail-pass",
            "from": "alerts@example.com", "to": ["finops@example.com"] } });
        if let Some(ca) = ca {
            c["target"]["ca_pem"] = json!(ca);
        }
        c
    };
    post(
        &app,
        "/v1/channels",
        mail("private-ca", tls_smtp.port, Some(&ca)),
    )
    .await;
    post(
        &app,
        "/v1/channels",
        mail("system-roots", tls_smtp.port, None),
    )
    .await;
    post(
        &app,
        "/v1/channels",
        mail("no-starttls", plain_smtp.port, Some(&ca)),
    )
    .await;
    let ids = spend(&app, "r1", 600_000_000).await;
    let d = settled_deliveries(&app, &ids[0], 3).await;
    let state = |id: &str| {
        let r = d.iter().find(|r| r["channel_id"] == id).unwrap();
        (
            r["state"].as_str().unwrap().to_owned(),
            r["attempts"][0]["error"].clone(),
        )
    };
    assert_eq!(state("private-ca").0, "delivered", "{d:?}");
    let (s, e) = state("system-roots");
    assert_eq!(s, "dead", "{d:?}");
    assert!(
        e.as_str()
            .unwrap()
            .contains("invalid peer certificate: UnknownIssuer"),
        "{e}"
    );
    let (s, e) = state("no-starttls");
    assert_eq!(s, "dead", "{d:?}");
    assert!(
        e.as_str().unwrap().contains("STARTTLS is not supported"),
        "{e}"
    );
    assert_eq!(tls_smtp.messages().len(), 1);
    assert!(tls_smtp.messages()[0].contains(&ids[0]));
    assert!(plain_smtp.messages().is_empty(), "sent in the clear");
    app.stop().await;
}

/// SMTPS (`tls`: TLS from the first byte, port 465's protocol) to a relay whose certificate a
/// private CA signed, trusted through `ca_pem`, with AUTH inside the TLS session; the same
/// channel pointed at a relay that speaks plain SMTP first fails the handshake rather than
/// sending in the clear.
#[tokio::test]
async fn smtps_delivers_over_implicit_tls_and_never_to_a_plain_server() {
    let pki = support::topologies::TestPki::new();
    let (cert, key) = (pki.path("server.pem"), pki.path("server.key"));
    let smtps = SmtpSink::start_implicit_tls(("tollgate", "mail-pass"), &cert, &key);
    let plain = SmtpSink::start(None);
    let ca = std::fs::read_to_string(pki.path("ca.pem")).unwrap();
    let app = app_on(Arc::new(MemoryStore::new()), fast(3_600_000)).await;
    budget(&app, &[50]).await;
    let mail = |id: &str, port: u16| {
        json!({ "id": id, "target": { "kind": "email", "host": "127.0.0.1", "port": port,
            "tls": "tls", "ca_pem": ca, "username": "tollgate", "password": "mail-pass",
            "from": "alerts@example.com", "to": ["finops@example.com"] } })
    };
    post(&app, "/v1/channels", mail("smtps", smtps.port)).await;
    post(&app, "/v1/channels", mail("plain-server", plain.port)).await;
    let ids = spend(&app, "r1", 600_000_000).await;
    let d = settled_deliveries(&app, &ids[0], 2).await;
    let rec = |id: &str| d.iter().find(|r| r["channel_id"] == id).unwrap().clone();
    assert_eq!(rec("smtps")["state"], "delivered", "{d:?}");
    let failed = rec("plain-server");
    assert_eq!(failed["state"], "dead", "{d:?}");
    assert!(
        failed["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("InvalidContentType")
            || failed["attempts"][0]["error"]
                .as_str()
                .unwrap()
                .contains("tls"),
        "{failed}"
    );
    let got = smtps.messages();
    assert_eq!(got.len(), 1);
    assert!(got[0].contains(&ids[0]), "{}", got[0]);
    assert!(plain.messages().is_empty(), "sent in the clear");
    app.stop().await;
}
