//! The Redis store's rollup pass with two control planes on one Redis: both run the pass
//! while one settles, and every call is counted exactly once (the pass writes rows only
//! while the cursor is where it read it). The single-store races are in the contract suite
//! (`every_call_counts_once_while_settles_and_upkeep_race`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use tollgate_control_plane::ledger::{
    Granularity, RollupFilter, RollupQuery, TimeRange, synthetic,
};
use tollgate_control_plane::store::{SettleOp, Store};
use tollgate_model::scope::Scope;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_control_planes_running_the_rollup_pass_count_each_call_once() {
    let server = support::RedisServer::start();
    let a: Arc<dyn Store> = Arc::new(support::redis_store(&server));
    let b: Arc<dyn Store> = Arc::new(support::redis_store(&server));
    let n = 3_000;
    let start = 1_800_000_000_000;
    let ops: Vec<SettleOp> = (0..n).map(|i| synthetic::op(i, n, start)).collect();
    let want_cost: i64 = ops.iter().map(|o| o.cost_nanos).sum();
    let settler = {
        let a = a.clone();
        tokio::spawn(async move {
            for chunk in ops.chunks(64) {
                a.settle_many(chunk).await.unwrap();
            }
        })
    };
    let passes: Vec<_> = [a.clone(), b.clone(), b.clone()]
        .into_iter()
        .map(|s| {
            tokio::spawn(async move {
                for _ in 0..30 {
                    s.ledger_upkeep().await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    settler.await.unwrap();
    for p in passes {
        p.await.unwrap();
    }
    let q = RollupQuery {
        range: TimeRange::new(start, start + 31 * 86_400_000).unwrap(),
        filter: RollupFilter {
            scopes: vec![Scope::global()],
            ..RollupFilter::default()
        },
        granularity: Granularity::Day,
        now_ms: start,
    };
    // Read through the store that did not settle: it counts what is left, then reads.
    let rows = b.rollups(&q).await.unwrap();
    let requests: i64 = rows.iter().map(|r| r.requests).sum();
    let cost: i64 = rows.iter().map(|r| r.cost_nanos).sum();
    assert_eq!((requests, cost), (i64::try_from(n).unwrap(), want_cost));
    drop(server);
}
