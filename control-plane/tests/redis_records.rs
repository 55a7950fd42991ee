//! Redis only: reservation records cross releases in both directions. Records written by
//! the previous release (before they carried their windows' signature) are settled by this
//! one, and the previous release's scripts (`fixtures/previous-release-scripts`) settle and
//! release the records this one writes: an upgrade, a rollback or a mixed-version deploy
//! strands no hold and loses no charge for the day records live.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use tollgate_control_plane::store::redis::RedisStore;
use tollgate_control_plane::store::{Line, ReserveOp, ReserveOutcome, SettleOp, Store};

use support::lines::NOW;

/// [`support::lines::line`] with one alert threshold.
fn line(id: &str) -> Line {
    Line {
        thresholds_pct: vec![50],
        ..support::lines::line(id)
    }
}

#[tokio::test]
async fn a_record_in_the_previous_format_still_settles_and_releases_its_hold() {
    let server = support::RedisServer::start();
    let store = support::redis_store(&server);
    let lines = vec![line("a"), line("b")];
    let op = reserve_op("r1", &lines, NOW);
    assert!(matches!(
        store.reserve(&op).await.unwrap(),
        ReserveOutcome::Reserved { .. }
    ));
    // Rewrite the record as the previous release wrote it: "<-cost>|<-tokens" then one
    // "\n<line>" per window, no signature.
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let key = "tg:{acme}:r:r1";
    let rec: String = redis::cmd("GET").arg(key).query(&mut conn).unwrap();
    let (head, rows) = rec.split_once('\n').unwrap();
    let (amounts, _signature) = head.rsplit_once('|').unwrap();
    let old = format!("{amounts}\n{rows}");
    assert_eq!(amounts, "-300|-10");
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(&old)
        .arg("KEEPTTL")
        .query(&mut conn)
        .unwrap();
    // Settled with lines that match (the fast path would apply to a new record).
    let settle = SettleOp {
        request_id: "r1".into(),
        request_tag: "acme".into(),
        lines: lines.clone(),
        cost_nanos: 600,
        tokens: 7,
        now_ms: NOW + 1_000,
        dedupe_ttl_ms: 3_600_000,
        ledger: None,
    };
    store.settle(&settle).await.unwrap();
    assert_charged_once(&store, &lines).await;
    for l in &lines {
        assert_eq!(
            store.counters(l).await.unwrap().threshold_pct,
            50,
            "thresholds come from the old record's lines"
        );
    }
    drop(server);
}

/// Each window charged 600 nano-USD and 7 tokens for one request, with no hold left.
async fn assert_charged_once(store: &RedisStore, lines: &[Line]) {
    for l in lines {
        let c = store.counters(l).await.unwrap();
        assert_eq!(
            (
                c.spent_nanos,
                c.reserved_nanos,
                c.tokens,
                c.reserved_tokens,
                c.requests
            ),
            (600, 0, 7, 0, 1),
            "window {}: charged once, hold released",
            l.budget_id
        );
    }
}

/// The previous release's reserve or settle script (its `common.lua` prepended, as it loaded
/// them).
fn previous_release_script(name: &str) -> redis::Script {
    // This crate's directory as cargo gives it at run time: a test binary reused from a shared
    // build cache may have been built in another checkout.
    let crate_dir =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let dir = format!("{crate_dir}/tests/fixtures/previous-release-scripts");
    let read = |f: &str| std::fs::read_to_string(format!("{dir}/{f}.lua")).unwrap();
    redis::Script::new(&format!("{}\n{}", read("common"), read(name)))
}

fn reserve_op(request_id: &str, lines: &[Line], now_ms: i64) -> ReserveOp {
    ReserveOp {
        request_id: request_id.into(),
        request_tag: "acme".into(),
        lines: lines.to_vec(),
        cost_nanos: 300,
        tokens: 10,
        now_ms,
        reservation_ttl_ms: 60_000,
        record_ttl_ms: 600_000,
    }
}

#[tokio::test]
async fn the_previous_release_settles_a_record_this_one_wrote() {
    let server = support::RedisServer::start();
    let store = support::redis_store(&server);
    let lines = vec![line("a"), line("b")];
    assert!(matches!(
        store.reserve(&reserve_op("r1", &lines, NOW)).await.unwrap(),
        ReserveOutcome::Reserved { .. }
    ));
    // Its settle: KEYS record, expiry set (no fallback lines: the record has them); ARGV
    // request id, cost, tokens, now, dedupe TTL, number of fallback lines.
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let reply: Vec<redis::Value> = previous_release_script("settle")
        .key("tg:{acme}:r:r1")
        .key("tg:{acme}:exp")
        .arg("r1")
        .arg(600)
        .arg(7)
        .arg(NOW + 1_000)
        .arg(3_600_000)
        .arg(0)
        .invoke(&mut conn)
        .unwrap();
    assert_eq!(
        reply.first(),
        Some(&redis::Value::BulkString(b"ok".to_vec()))
    );
    assert_charged_once(&store, &lines).await;
    // And this release sees it as settled: a replay charges nothing.
    let replay = SettleOp {
        request_id: "r1".into(),
        request_tag: "acme".into(),
        lines: lines.clone(),
        cost_nanos: 600,
        tokens: 7,
        now_ms: NOW + 2_000,
        dedupe_ttl_ms: 3_600_000,
        ledger: None,
    };
    store.settle(&replay).await.unwrap();
    assert_eq!(store.counters(&lines[0]).await.unwrap().spent_nanos, 600);
}

#[tokio::test]
async fn the_previous_release_releases_an_expired_hold_this_one_made() {
    let server = support::RedisServer::start();
    let store = support::redis_store(&server);
    let lines = vec![line("a"), line("b")];
    assert!(matches!(
        store.reserve(&reserve_op("r1", &lines, NOW)).await.unwrap(),
        ReserveOutcome::Reserved { .. }
    ));
    // A minute later r1's hold has expired; the previous release's reserve of r2 releases it
    // on its way. Its ARGV: request id, cost, tokens, now, hold ends, record TTL, number of
    // lines, -cost, -tokens, record, then per line limit nanos, limit tokens, limit requests,
    // flags (1 = enforce), window expiry.
    let now = NOW + 61_000;
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut record = String::from("-50|-1");
    for l in &lines {
        record.push_str(&format!(
            "\ntg:{{acme}}:w:{}:7|{}|0",
            l.budget_id,
            NOW + 3_600_000
        ));
    }
    let mut keys = vec!["tg:{acme}:r:r2".to_owned(), "tg:{acme}:exp".to_owned()];
    keys.extend(
        lines
            .iter()
            .map(|l| format!("tg:{{acme}}:w:{}:7", l.budget_id)),
    );
    let reserve = previous_release_script("reserve");
    let mut call = reserve.prepare_invoke();
    for k in &keys {
        call.key(k);
    }
    call.arg("r2")
        .arg(50)
        .arg(1)
        .arg(now)
        .arg(now + 60_000)
        .arg(600_000)
        .arg(lines.len())
        .arg(-50)
        .arg(-1)
        .arg(&record);
    for _ in &lines {
        call.arg(1_000).arg("").arg("").arg(1).arg(NOW + 3_600_000);
    }
    let reply: Vec<redis::Value> = call.invoke(&mut conn).unwrap();
    assert_eq!(
        reply.first(),
        Some(&redis::Value::BulkString(b"ok".to_vec()))
    );
    for l in &lines {
        let c = store.counters(l).await.unwrap();
        assert_eq!(
            (c.reserved_nanos, c.reserved_tokens, c.requests),
            (50, 1, 2),
            "window {}: r1's hold released, r2's taken",
            l.budget_id
        );
    }
}
