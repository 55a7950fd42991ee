//! Redis only: reservation records written by the previous release (before records carried
//! their windows' signature) are still settled correctly, so an upgrade strands no hold and
//! loses no charge for the day such records live.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use tollgate_control_plane::store::redis::{RedisConfig, RedisStore};
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
    let store = RedisStore::new(&RedisConfig {
        url: server.url(),
        key_prefix: "tg".into(),
        timeout_ms: 2_000,
    })
    .unwrap();
    let lines = vec![line("a"), line("b")];
    let op = ReserveOp {
        request_id: "r1".into(),
        request_tag: "acme".into(),
        lines: lines.clone(),
        cost_nanos: 300,
        tokens: 10,
        now_ms: NOW,
        reservation_ttl_ms: 60_000,
        record_ttl_ms: 600_000,
    };
    assert!(matches!(
        store.reserve(&op).await.unwrap(),
        ReserveOutcome::Reserved { .. }
    ));
    // Rewrite the record as the previous release wrote it: "<-cost>|<-tokens>" then one
    // "\n<line>" per window, no signature block.
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let key = "tg:{acme}:r:r1";
    let rec: String = redis::cmd("GET").arg(key).query(&mut conn).unwrap();
    let (head, rest) = rec.split_once('\n').unwrap();
    let (_signature, rows) = rest.split_once("\n\n").unwrap();
    let old = format!("{head}\n{rows}");
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
    };
    store.settle(&settle).await.unwrap();
    for l in &lines {
        let c = store.counters(l).await.unwrap();
        assert_eq!(
            (
                c.spent_nanos,
                c.reserved_nanos,
                c.tokens,
                c.reserved_tokens,
                c.requests
            ),
            (600, 0, 7, 0, 1)
        );
        assert_eq!(
            c.threshold_pct, 50,
            "thresholds come from the old record's lines"
        );
    }
    drop(server);
}
