//! The lease API over real HTTP (docs/leases.md): grant, settle from, renew, return, list and
//! expire, on the memory store and a real redis-server; a control plane restarted on Redis
//! still knows the leases outstanding.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use serde_json::{Value, json};
use support::RedisServer;
use support::app::{DATAPLANE, T0_MS, TestApp, redis_store, settlement};
use tollgate_control_plane::store::memory::MemoryStore;

const SCOPES: [&str; 2] = ["org:acme", "team:a"];
const MODEL: &str = "gpt-4o-mini";

async fn post(app: &TestApp, path: &str, body: &Value) -> (u16, Value) {
    let r = app
        .http
        .post(app.url(path))
        .bearer_auth(DATAPLANE)
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn lease(app: &TestApp, renew: Option<&str>) -> Value {
    let mut body = json!({
        "holder": "vm-1",
        "scopes": SCOPES,
        "model": MODEL,
        "provider": "openai",
        "at_unix_ms": T0_MS,
    });
    if let Some(id) = renew {
        body["lease_id"] = json!(id);
    }
    let (status, answer) = post(app, "/v1/admission/lease", &body).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

async fn leases(app: &TestApp) -> Value {
    app.admin(reqwest::Method::GET, "/v1/leases")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A team budget of 100 USD leased 10 % at a time, and an org budget of 1 000 calls (the
/// default share: 1 %, 10 calls).
async fn budgets(app: &TestApp) {
    app.create_budget(json!({"id": "team-a", "scopes": ["org:acme", "team:a"],
        "limit_usd": "100", "period": "monthly", "lease": "10%"}))
        .await;
    app.create_budget(json!({"id": "org", "scopes": ["org:acme"],
        "limit_requests": 1000, "period": "daily"}))
        .await;
}

async fn a_lease_is_carved_from_every_budget_and_its_calls_settle_once(app: TestApp) {
    budgets(&app).await;
    let answer = lease(&app, None).await;
    let l = &answer["lease"];
    let id = l["lease_id"].as_str().unwrap().to_owned();
    assert!(id.ends_with("@acme"), "{id}");
    assert_eq!(l["usd"], 10_000_000_000_i64);
    assert_eq!(l["requests"], 10);
    assert!(l.get("tokens").is_none(), "no budget limits tokens: {l}");
    assert_eq!(l["admit_until_unix_ms"], T0_MS + 30_000);
    for b in ["team-a", "org"] {
        let u = &app.budget(b).await["usage"];
        assert_eq!(u["reserved_nanos"], 10_000_000_000_i64, "{b}");
        assert_eq!(u["reserved_requests"], 10, "{b}");
    }
    // A call taken from the lease (its estimate 0.5 USD) settles with its lease id.
    let mut s = settlement("call-1", &SCOPES, MODEL, 0, true);
    s["lease_id"] = json!(id);
    s["lease_usd"] = json!(500_000_000);
    s["lease_tokens"] = json!(2_000);
    let batch = json!({"settlements": [s]});
    let (status, r) = app.settle(&batch).await;
    assert_eq!((status, r["applied"].clone()), (200, json!(1)), "{r}");
    let (_, r) = app.settle(&batch).await;
    assert_eq!(
        r["duplicates"], 1,
        "a replay takes nothing more off the lease"
    );
    let listed = leases(&app).await;
    assert_eq!(listed["outstanding"], 1);
    let held = &listed["leases"][0]["held"];
    assert_eq!(held["usd_nanos"], 9_500_000_000_i64);
    assert_eq!(held["requests"], 9);
    assert_eq!(listed["leases"][0]["meta"]["holder"], "vm-1");
    assert_eq!(
        listed["leases"][0]["meta"]["budgets"],
        json!(["org", "team-a"])
    );
    let team = &app.budget("team-a").await["usage"];
    assert_eq!(team["requests"], 1);
    assert_eq!(team["reserved_requests"], 9);
    assert_eq!(team["reserved_nanos"], 9_500_000_000_i64);
    let spent = team["spent_nanos"].as_i64().unwrap();
    assert!(spent > 0, "the call's exact cost is charged: {team}");
    // The holder returns what it did not use: nothing is held any more.
    let (status, r) = post(
        &app,
        "/v1/admission/lease/return",
        &json!({"lease_id": id, "usd": 9_500_000_000_i64, "requests": 9, "at_unix_ms": T0_MS}),
    )
    .await;
    assert_eq!((status, r), (200, json!({"known": true})));
    assert_eq!(leases(&app).await["outstanding"], 0);
    let team = &app.budget("team-a").await["usage"];
    assert_eq!(
        (
            team["reserved_nanos"].clone(),
            team["reserved_requests"].clone()
        ),
        (json!(0), json!(0))
    );
    assert_eq!(team["spent_nanos"], spent);
    app.stop().await;
}

async fn a_renewal_tops_the_lease_up_and_an_expired_one_returns_its_unused_part(app: TestApp) {
    budgets(&app).await;
    let first = lease(&app, None).await;
    let id = first["lease"]["lease_id"].as_str().unwrap().to_owned();
    app.advance_ms(20_000);
    // Nothing used yet: the top-up brings it to two slices.
    let again = lease(&app, Some(&id)).await;
    assert_eq!(again["lease"]["lease_id"], id.as_str());
    assert_eq!(again["lease"]["usd"], 10_000_000_000_i64);
    assert_eq!(again["lease"]["admit_until_unix_ms"], T0_MS + 50_000);
    assert_eq!(
        app.budget("team-a").await["usage"]["reserved_nanos"],
        20_000_000_000_i64
    );
    // Never returned: held until admit-until + the reservation TTL (600 s), then released.
    app.advance_ms(30_000 + 600_000 - 1);
    assert_eq!(leases(&app).await["outstanding"], 1);
    app.advance_ms(1);
    assert_eq!(leases(&app).await["outstanding"], 0);
    for b in ["team-a", "org"] {
        let u = &app.budget(b).await["usage"];
        assert_eq!(u["reserved_nanos"], 0, "{b}");
        assert_eq!(u["reserved_requests"], 0, "{b}");
    }
    // Renewing a released lease grants a new one.
    let fresh = lease(&app, Some(&id)).await;
    assert_ne!(fresh["lease"]["lease_id"], id.as_str());
    app.stop().await;
}

async fn keys_that_cannot_be_leased_say_why(app: TestApp) {
    let (_, none) = post(
        &app,
        "/v1/admission/lease",
        &json!({"holder": "vm-1", "scopes": ["team:zzz"], "model": MODEL, "provider": "openai", "at_unix_ms": 0}),
    )
    .await;
    assert_eq!(none, json!({"no_lease": "no_budget"}));
    app.create_budget(
        json!({"id": "exact", "scopes": ["team:a"], "limit_usd": "5",
        "period": "daily", "lease": "exact"}),
    )
    .await;
    assert_eq!(lease(&app, None).await, json!({"no_lease": "exact"}));
    app.admin(reqwest::Method::DELETE, "/v1/budgets/exact")
        .send()
        .await
        .unwrap();
    // 10 calls leased 2 at a time: leasing stops while fewer than 2 slices (4 calls) are left.
    app.create_budget(
        json!({"id": "small", "scopes": ["team:a"], "limit_requests": 10,
        "period": "daily", "lease": "20%"}),
    )
    .await;
    let mut granted = 0;
    loop {
        let a = lease(&app, None).await;
        if a.get("lease").is_none() {
            assert_eq!(a, json!({"no_lease": "near_end"}));
            break;
        }
        assert_eq!(a["lease"]["requests"], 2);
        granted += 2;
    }
    assert_eq!(granted, 8);
    app.stop().await;
}

async fn bad_lease_input_is_refused_naming_the_field(app: TestApp) {
    budgets(&app).await;
    for (body, field) in [
        (
            json!({"holder": "", "scopes": SCOPES, "model": MODEL, "provider": "openai", "at_unix_ms": 0}),
            "holder",
        ),
        (
            json!({"holder": "vm", "scopes": SCOPES, "model": MODEL, "provider": "openai", "at_unix_ms": 0, "lease_id": "no-tag"}),
            "lease_id",
        ),
        (
            json!({"holder": "vm", "scopes": SCOPES, "model": MODEL, "provider": "openai", "at_unix_ms": 0, "lease_id": "ab@other-org"}),
            "lease_id",
        ),
    ] {
        let (status, r) = post(&app, "/v1/admission/lease", &body).await;
        assert_eq!(status, 400, "{body}: {r}");
        assert!(r.to_string().contains(field), "{r}");
    }
    let mut s = settlement("c1", &SCOPES, MODEL, 0, true);
    s["lease_id"] = json!("not a lease");
    let (status, r) = app.settle(&json!({"settlements": [s]})).await;
    assert_eq!(status, 400);
    assert!(r.to_string().contains("settlements[0].lease_id"), "{r}");
    let (status, r) = post(
        &app,
        "/v1/admission/lease/return",
        &json!({"lease_id": "x@acme", "usd": -1, "at_unix_ms": 0}),
    )
    .await;
    assert_eq!(status, 400, "{r}");
    let (status, r) = post(
        &app,
        "/v1/admission/lease/return",
        &json!({"lease_id": "gone@acme", "at_unix_ms": 0}),
    )
    .await;
    assert_eq!((status, r), (200, json!({"known": false})));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_carved_from_every_budget_and_its_calls_settle_once_in_memory() {
    a_lease_is_carved_from_every_budget_and_its_calls_settle_once(TestApp::memory().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_carved_from_every_budget_and_its_calls_settle_once_on_redis() {
    let server = RedisServer::start();
    let app = TestApp::start(redis_store(&server.url()), |_| {}).await;
    a_lease_is_carved_from_every_budget_and_its_calls_settle_once(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_tops_the_lease_up_and_an_expired_one_returns_its_unused_part_in_memory() {
    let app = TestApp::start(Arc::new(MemoryStore::new()), |_| {}).await;
    a_renewal_tops_the_lease_up_and_an_expired_one_returns_its_unused_part(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_tops_the_lease_up_and_an_expired_one_returns_its_unused_part_on_redis() {
    let server = RedisServer::start();
    let app = TestApp::start(redis_store(&server.url()), |_| {}).await;
    a_renewal_tops_the_lease_up_and_an_expired_one_returns_its_unused_part(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_that_cannot_be_leased_say_why_in_memory() {
    keys_that_cannot_be_leased_say_why(TestApp::memory().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_that_cannot_be_leased_say_why_on_redis() {
    let server = RedisServer::start();
    let app = TestApp::start(redis_store(&server.url()), |_| {}).await;
    keys_that_cannot_be_leased_say_why(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lease_input_is_refused_naming_the_field_in_memory() {
    bad_lease_input_is_refused_naming_the_field(TestApp::memory().await).await;
}

/// A control plane restarted on the same Redis lists the leases outstanding, renews them
/// and takes their settled calls off them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_restarted_on_redis_knows_the_leases_outstanding() {
    let server = RedisServer::start();
    let first = TestApp::start(redis_store(&server.url()), |_| {}).await;
    budgets(&first).await;
    let id = lease(&first, None).await["lease"]["lease_id"]
        .as_str()
        .unwrap()
        .to_owned();
    first.stop().await;
    let second = TestApp::start(redis_store(&server.url()), |_| {}).await;
    let listed = leases(&second).await;
    assert_eq!(listed["outstanding"], 1, "{listed}");
    assert_eq!(listed["leases"][0]["lease_id"], id.as_str());
    let mut s = settlement("after-restart", &SCOPES, MODEL, 0, true);
    s["lease_id"] = json!(id);
    s["lease_usd"] = json!(1_000_000_000);
    let (status, _) = second.settle(&json!({"settlements": [s]})).await;
    assert_eq!(status, 200);
    let renewed = lease(&second, Some(&id)).await;
    assert_eq!(renewed["lease"]["lease_id"], id.as_str());
    // It held one slice less one call's 1 USD: the top-up brings it to two slices.
    assert_eq!(renewed["lease"]["usd"], 10_000_000_000_i64);
    let held = &leases(&second).await["leases"][0]["held"];
    assert_eq!(held["usd_nanos"], 19_000_000_000_i64);
    assert_eq!(held["requests"], 19);
    second.stop().await;
}
