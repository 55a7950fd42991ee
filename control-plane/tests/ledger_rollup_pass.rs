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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_release_s_entries_cursor_and_rows_are_read_beside_this_one_s() {
    // The release before batch entries wrote one record per entry (field `r`), a bare entry
    // id as the rollup cursor and one bucket hash of every scope kind. An upgrade leaves
    // them behind.
    let server = support::RedisServer::start();
    let store = support::redis_store(&server);
    let t = 1_800_000_000_000_i64;
    let old = |rid: &str, cost: i64| {
        format!(
            r#"[1,"{rid}",{s},{t},["org:acme","team:a"],"openai","chat_completions","gpt-4o","gpt-4o",[100,0,0,0,30,0,0,0],{cost},null,false,"allowed",null,null,"live"]"#,
            s = t - 1_000
        )
    };
    let mut c = server.client();
    let _: () = redis::cmd("SADD")
        .arg("tg:ledger:tags")
        .arg("acme")
        .query(&mut c)
        .unwrap();
    for (id, rid, cost) in [
        ("1800000000000-0", "old0", 7),
        ("1800000000001-0", "old1", 11),
    ] {
        let _: String = redis::cmd("XADD")
            .arg("tg:{acme}:lrec")
            .arg(id)
            .arg("r")
            .arg(old(rid, cost))
            .query(&mut c)
            .unwrap();
    }
    // The previous release had counted old0, into its hour's hash of every scope kind.
    let _: () = redis::cmd("SET")
        .arg("tg:{acme}:lcur")
        .arg("1800000000000-0")
        .query(&mut c)
        .unwrap();
    let value: Vec<u8> = [7_i64, 1, 0, 100, 0, 0, 0, 30, 0, 0, 0]
        .iter()
        .flat_map(|x| x.to_be_bytes())
        .collect();
    let _: () = redis::cmd("HSET")
        .arg(format!("tg:{{acme}}:rh:{}", t / 3_600_000))
        .arg("team:a\topenai\tgpt-4o")
        .arg(value)
        .query(&mut c)
        .unwrap();
    let mut new = synthetic::op(0, 1, t);
    new.request_id = "new".into();
    new.request_tag = "acme".into();
    if let Some(r) = new.ledger.as_mut() {
        r.request_id = "new".into();
        r.scopes = vec!["org:acme".parse().unwrap(), "team:a".parse().unwrap()];
        r.ended_at_ms = t;
        r.cost_nanos = 1_000;
    }
    new.now_ms = t + 5;
    store.settle_many(&[new]).await.unwrap();
    let page = store
        .records(TimeRange::new(0, i64::MAX).unwrap(), None, 10)
        .await
        .unwrap();
    let ids: Vec<&str> = page.records.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids, ["old0", "old1", "new"]);
    let rows = store
        .rollups(&RollupQuery {
            range: TimeRange::new(t - 86_400_000, t + 86_400_000).unwrap(),
            filter: RollupFilter {
                scopes: vec!["team:a".parse().unwrap()],
                ..RollupFilter::default()
            },
            granularity: Granularity::Hour,
            now_ms: t,
        })
        .await
        .unwrap();
    let (requests, cost): (i64, i64) = rows
        .iter()
        .fold((0, 0), |(n, c), r| (n + r.requests, c + r.cost_nanos));
    // old0 from the previous release's row, old1 and the new call from this one's.
    assert_eq!((requests, cost), (3, 1_018));
    drop(server);
}
