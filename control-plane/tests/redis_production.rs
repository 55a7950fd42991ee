//! The Redis store against production-shaped Redis, all real and local: a full Redis
//! (`maxmemory` reached under `noeviction`), an evicting one, a TLS-only one with ACL
//! credentials and client certificates, and a Sentinel-managed primary killed mid-run.
//! (The whole store contract on a 3-node Cluster is in `store_contract.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::RedisServer;
use support::app::{FILTER_PRICED, TestApp, redis_store, reserve_req, settlement};
use support::topologies::{SENTINEL_MASTER, SentinelSet, TestPki, tls_server};
use tollgate_control_plane::config::Config;
use tollgate_control_plane::store::redis::{
    RedisConfig, RedisConnect, RedisStore, ServerCheckError, Topology,
};
use tollgate_control_plane::store::{Store, StoreError};

fn config(timeout_ms: u64) -> RedisConfig {
    RedisConfig {
        url: String::new(),
        key_prefix: "tg".into(),
        timeout_ms,
    }
}

fn budget(id: &str, limit_usd: &str) -> Value {
    json!({ "id": id, "scopes": ["team:a"], "limit_usd": limit_usd, "period": "daily" })
}

fn set_config(server: &RedisServer, key: &str, value: &str) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(key)
        .arg(value)
        .query(&mut server.client())
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_redis_answers_store_full_writes_nothing_and_the_retried_settle_charges_once() {
    let server = RedisServer::start();
    let app = TestApp::start(redis_store(&server.url()), |_| {}).await;
    app.create_budget(budget("b", "1")).await;
    let (s, d) = app
        .reserve(&reserve_req("r1", &["team:a"], FILTER_PRICED, 50_000))
        .await;
    assert_eq!((s, d["decision"].as_str()), (200, Some("allow")));

    // Redis at maxmemory with noeviction (its default policy) refuses every write.
    set_config(&server, "maxmemory", "1");
    let (s, d) = app
        .reserve(&reserve_req("r2", &["team:a"], FILTER_PRICED, 50_000))
        .await;
    assert_eq!((s, d["error"]["code"].as_str()), (503, Some("store_full")));
    let batch =
        json!({ "settlements": [settlement("r1", &["team:a"], FILTER_PRICED, 20_000, true)] });
    let (s, d) = app.settle(&batch).await;
    assert_eq!((s, d["error"]["code"].as_str()), (503, Some("store_full")));
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
        metrics
            .lines()
            .any(|l| l.starts_with("tollgate_store_errors_total") && l.contains("reason=\"full\"")),
        "{metrics}"
    );
    let u = app.budget("b").await;
    assert_eq!(
        (&u["usage"]["spent_nanos"], &u["usage"]["reserved_nanos"]),
        (&json!(0), &json!(50_000)),
        "nothing was written while full"
    );

    // Memory back: the filter's retried batch is charged, once.
    set_config(&server, "maxmemory", "0");
    assert_eq!(
        app.settle(&batch).await,
        (200, json!({ "applied": 1, "duplicates": 0 }))
    );
    assert_eq!(
        app.settle(&batch).await,
        (200, json!({ "applied": 0, "duplicates": 1 }))
    );
    let u = app.budget("b").await;
    assert_eq!(u["usage"]["spent_nanos"], 20_000);
    assert_eq!(u["usage"]["reserved_nanos"], 0);
    assert_eq!(u["usage"]["requests"], 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_a_budgets_own_fail_mode_decides_and_a_budget_without_one_leaves_it_to_the_filter()
 {
    let dir = tempfile::tempdir().unwrap();
    let mut server = RedisServer::start_with_aof(dir.path());
    let app = TestApp::start(redis_store(&server.url()), |_| {}).await;
    let with_mode = |id: &str, team: &str, mode: &str| json!({ "id": id, "scopes": [format!("team:{team}")], "limit_usd": "1", "period": "daily", "fail_mode": mode });
    app.create_budget(with_mode("shut", "a", "closed")).await;
    app.create_budget(with_mode("pass", "b", "open")).await;
    app.create_budget(with_mode("pass-too", "c", "open")).await;
    app.create_budget(with_mode("shut-too", "c", "closed"))
        .await;
    app.create_budget(
        json!({ "id": "plain", "scopes": ["team:d"], "limit_usd": "1", "period": "daily" }),
    )
    .await;
    app.create_budget(
        json!({ "id": "watch", "scopes": ["team:e"], "limit_usd": "1", "period": "daily",
        "enforcement": "shadow", "fail_mode": "closed" }),
    )
    .await;
    assert_eq!(app.budget("plain").await["budget"].get("fail_mode"), None);

    // A running control plane has loaded its budgets before the outage.
    let (s, _) = app
        .reserve(&reserve_req("warm", &["team:z"], FILTER_PRICED, 1))
        .await;
    assert_eq!(s, 200);
    server.stop();
    let reserve =
        |id: &str, team: &str| reserve_req(id, &[&format!("team:{team}")], FILTER_PRICED, 50_000);
    let (s, d) = app.reserve(&reserve("r-a", "a")).await;
    assert_eq!(
        (s, d),
        (
            200,
            json!({ "decision": "deny", "budget_id": "shut", "reason": "store_unavailable",
            "remaining": 0, "retry_after_secs": 1, "fail_mode": "closed" })
        )
    );
    let (s, d) = app.reserve(&reserve("r-b", "b")).await;
    assert_eq!(
        (s, d),
        (200, json!({ "decision": "allow", "unreserved": true }))
    );
    // One closed budget among the call's refuses it.
    let (s, d) = app.reserve(&reserve("r-c", "c")).await;
    assert_eq!((s, d["budget_id"].as_str()), (200, Some("shut-too")));
    // No budget sets one, or only a shadow budget does: the filter's own fail mode decides.
    for (id, team) in [("r-d", "d"), ("r-e", "e")] {
        let (s, d) = app.reserve(&reserve(id, team)).await;
        assert_eq!(
            (s, d["error"]["code"].as_str()),
            (503, Some("store_unavailable")),
            "{team}"
        );
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
    for mode in ["closed", "open"] {
        let line = format!("tollgate_store_down_admissions_total{{fail_mode=\"{mode}\"}} 2");
        let line = if mode == "open" {
            line.replace(" 2", " 1")
        } else {
            line
        };
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }

    // The store back, the call admitted unreserved is charged on its budget's window.
    server.restart();
    let batch =
        json!({ "settlements": [settlement("r-b", &["team:b"], FILTER_PRICED, 20_000, false)] });
    assert_eq!(
        app.settle(&batch).await,
        (200, json!({ "applied": 1, "duplicates": 0 }))
    );
    let u = app.budget("pass").await;
    assert_eq!(
        (&u["usage"]["spent_nanos"], &u["usage"]["requests"]),
        (&json!(20_000), &json!(1))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicting_redis_is_refused_unless_eviction_is_allowed() {
    let server = RedisServer::start();
    set_config(&server, "maxmemory-policy", "allkeys-lru");
    let store = support::redis_store(&server);
    match store.check_server().await {
        Err(ServerCheckError::Evicts { policy, .. }) => assert_eq!(policy, "allkeys-lru"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    match store.ping().await {
        Err(StoreError::Unavailable(m)) => assert!(m.contains("allkeys-lru"), "{m}"),
        other => panic!("/readyz must fail on an evicting Redis, got {other:?}"),
    }
    let allowed = support::redis_store(&server).with_eviction_allowed(true);
    let facts = allowed.check_server().await.unwrap();
    assert_eq!(facts[0].maxmemory_policy, "allkeys-lru");
    allowed.ping().await.unwrap();

    // The real binary refuses to start, naming the policy and the way out.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("serve")
        .env("TOLLGATE_LISTEN", "127.0.0.1:0")
        .env("TOLLGATE_ADMIN_TOKEN", "adm")
        .env("TOLLGATE_DATAPLANE_TOKEN", "dp")
        .env("TOLLGATE_REDIS_URL", server.url())
        .env_remove("TOLLGATE_REDIS_ALLOW_EVICTION")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "serve started on an evicting Redis");
    assert!(
        stderr.contains("maxmemory-policy allkeys-lru") && stderr.contains("redis_allow_eviction"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca_client_certificate_and_acl_credentials_from_a_file() {
    let pki = TestPki::new();
    let node = tls_server(&pki, "s3cret");
    let pw = pki.path("password");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let url = format!("rediss://127.0.0.1:{}/", node.port);
    let file = |n: &str| pki.path(n).display().to_string();
    let env = [
        ("TOLLGATE_REDIS_URL", url.clone()),
        ("TOLLGATE_REDIS_USERNAME", "tollgate".into()),
        ("TOLLGATE_REDIS_PASSWORD_FILE", pw.display().to_string()),
        ("TOLLGATE_REDIS_TLS_CA_FILE", file("ca.pem")),
        ("TOLLGATE_REDIS_TLS_CERT_FILE", file("client.pem")),
        ("TOLLGATE_REDIS_TLS_KEY_FILE", file("client.key")),
    ];
    let load = |skip: &str| {
        let env: Vec<(&str, String)> = env.iter().filter(|(k, _)| *k != skip).cloned().collect();
        Config::load(None, move |k| {
            env.iter().find(|(e, _)| *e == k).map(|(_, v)| v.clone())
        })
        .unwrap()
        .redis_connect()
        .unwrap()
        .unwrap()
    };
    let store = RedisStore::connect(&config(2_000), &load("")).unwrap();
    store.ping().await.unwrap();
    let app = TestApp::start(Arc::new(store), |_| {}).await;
    app.create_budget(budget("b", "1")).await;
    let (_, d) = app
        .reserve(&reserve_req("r1", &["team:a"], FILTER_PRICED, 50_000))
        .await;
    assert_eq!(d["decision"], "allow");
    let batch =
        json!({ "settlements": [settlement("r1", &["team:a"], FILTER_PRICED, 20_000, true)] });
    assert_eq!(app.settle(&batch).await.0, 200);
    assert_eq!(app.budget("b").await["usage"]["spent_nanos"], 20_000);
    app.stop().await;

    // Each missing piece is a refusal, never a silent plain-text or unauthenticated link.
    let mut wrong_password = load("");
    wrong_password.password = Some("guess".into());
    let mut no_client_cert = load("");
    no_client_cert.tls_client_pem = None;
    let mut plain = load("");
    plain.topology = Some(Topology::Standalone {
        url: format!("redis://127.0.0.1:{}/", node.port),
    });
    plain.tls_ca_pem = None;
    plain.tls_client_pem = None;
    for (what, connect) in [
        (
            "the system roots do not know the test CA",
            load("TOLLGATE_REDIS_TLS_CA_FILE"),
        ),
        ("no client certificate", no_client_cert),
        ("a wrong password", wrong_password),
        ("plain TCP to the TLS port", plain),
    ] {
        let store = RedisStore::connect(&config(1_000), &connect).unwrap();
        assert!(store.ping().await.is_err(), "{what}: connected anyway");
    }
}

/// Reserve + settle one call of 1 000 nano-USD through the API. The settlement joins
/// `pending`, posted as one batch (as the filter keeps and retries its batch while the store
/// is unavailable). Returns how many settlements a 200 acknowledged (applied now, or found
/// already applied: a reply lost in the failover), 0 when the call or the post failed.
async fn one_call(app: &TestApp, id: &str, pending: &mut Vec<Value>) -> i64 {
    let (s, d) = app
        .reserve(&reserve_req(id, &["team:a"], FILTER_PRICED, 1_000))
        .await;
    if s != 200 {
        return 0;
    }
    assert_eq!(d["decision"], "allow", "{d}");
    pending.push(settlement(id, &["team:a"], FILTER_PRICED, 1_000, true));
    let (s, _) = app.settle(&json!({ "settlements": pending })).await;
    if s != 200 {
        return 0;
    }
    let n = i64::try_from(pending.len()).unwrap();
    pending.clear();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_follows_a_sentinel_failover_without_a_restart() {
    let mut set = SentinelSet::start();
    let connect = RedisConnect {
        topology: Some(Topology::Sentinel {
            sentinels: set.sentinel_urls(),
            master: SENTINEL_MASTER.into(),
        }),
        ..RedisConnect::default()
    };
    let store = RedisStore::connect(&config(500), &connect).unwrap();
    let app = TestApp::start(Arc::new(store), |_| {}).await;
    app.create_budget(budget("b", "1000")).await;

    let mut pending = Vec::new();
    let (mut before, mut calls) = (0_i64, 0);
    while before < 300 {
        calls += 1;
        before += one_call(&app, &format!("c{calls}"), &mut pending).await;
    }
    // The primary dies mid-run (SIGKILL: what it acknowledged but had not yet sent to the
    // replica is gone); calls fail (503: the fail mode applies) until Sentinel promotes.
    set.primary.kill();
    let killed = Instant::now();
    let (mut failed, mut after) = (0, 0_i64);
    let mut first_success = None;
    while after < 300 {
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "never recovered"
        );
        calls += 1;
        let n = one_call(&app, &format!("c{calls}"), &mut pending).await;
        if n > 0 {
            first_success.get_or_insert_with(|| killed.elapsed());
            after += n;
        } else {
            failed += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert!(
        pending.is_empty(),
        "every settlement was acknowledged in the end"
    );
    set.wait_promoted();
    let u = app.budget("b").await;
    let spent = u["usage"]["spent_nanos"].as_i64().unwrap();
    let charged = (before + after) * 1_000;
    eprintln!(
        "sentinel failover: {before} charges acknowledged before the kill, {after} after; \
         {failed} calls refused, first success {:?} after the kill; charged {charged} \
         nano-USD, counted {spent}: {} acknowledged charges lost",
        first_success.unwrap_or_default(),
        (charged - spent) / 1_000
    );
    assert!(spent <= charged, "a charge was counted twice");
    assert!(
        spent >= after * 1_000,
        "every charge acknowledged after the promotion is on the new primary"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_call_whose_budgets_name_another_org_is_refused_and_writes_nothing() {
    use tollgate_control_plane::store::ReserveOp;
    let cluster = support::topologies::Cluster::start();
    let store = support::cluster_store(&cluster);
    let mut other_org = support::lines::line("b");
    // "beta" and "acme" hash to different slots (the first key names the node).
    other_org.tag = "beta".into();
    let op = ReserveOp {
        request_id: "r1".into(),
        request_tag: "acme".into(),
        lines: vec![other_org.clone()],
        cost_nanos: 100,
        tokens: 1,
        now_ms: support::lines::NOW,
        reservation_ttl_ms: 60_000,
        record_ttl_ms: 600_000,
    };
    match store.reserve(&op).await {
        Err(StoreError::Unavailable(m)) => {
            assert!(m.to_ascii_lowercase().contains("crossslot"), "{m}");
        }
        other => panic!("expected a cross-slot refusal, got {other:?}"),
    }
    let c = store.counters(&other_org).await.unwrap();
    assert_eq!(c, Default::default(), "nothing was reserved");
    drop(cluster);
}
