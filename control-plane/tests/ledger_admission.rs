//! What admission writes to the ledger, over real HTTP on both stores: every settled call
//! once (whatever its outcome, budget or none), every refusal with its reason, nothing with
//! the ledger off.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use serde_json::json;
use support::RedisServer;
use support::app::{FILTER_PRICED, T0_MS, TestApp, redis_store, reserve_req, settlement};
use tollgate_control_plane::ledger::{
    CallOutcome, Granularity, RequestRecord, RollupFilter, RollupQuery, TimeRange,
};
use tollgate_control_plane::store::Store;
use tollgate_control_plane::store::memory::MemoryStore;
use tollgate_model::scope::Scope;
use tollgate_model::wire::v1::DenyReason;

async fn records(store: &dyn Store) -> Vec<RequestRecord> {
    let page = store
        .records(TimeRange::new(0, i64::MAX).unwrap(), None, 100)
        .await
        .unwrap();
    assert!(page.next_cursor.is_none());
    page.records
}

fn by_id<'a>(rs: &'a [RequestRecord], id: &str) -> &'a RequestRecord {
    rs.iter()
        .find(|r| r.request_id == id)
        .unwrap_or_else(|| panic!("{id} not recorded: {rs:#?}"))
}

async fn every_settled_call_is_recorded_once_with_its_outcome(store: Arc<dyn Store>) {
    let app = TestApp::start(store.clone(), |_| {}).await;
    app.create_budget(
        json!({ "id": "t", "scopes": ["team:a"], "limit_usd": "10", "period": "daily" }),
    )
    .await;
    let (s, _) = app
        .reserve(&reserve_req(
            "r1",
            &["org:acme", "team:a"],
            FILTER_PRICED,
            2_000,
        ))
        .await;
    assert_eq!(s, 200);
    let mut allowed = settlement("r1", &["org:acme", "team:a"], FILTER_PRICED, 1_500, true);
    allowed["started_at_unix_ms"] = json!(T0_MS - 2_000);
    allowed["api"] = json!("chat_completions");
    allowed["breakdown"] = json!({ "uncached_input": 500, "output": 1_000 });
    let failed_open = settlement("r2", &["team:zz"], FILTER_PRICED, 700, false);
    // gpt-5-mini is priced by the control plane: 100 in × 250 + 50 out × 2000 nano.
    let mut downgraded = settlement("r3", &["team:a"], "gpt-5-mini", 125_000, true);
    downgraded["requested_model"] = json!("gpt-5");
    downgraded["downgraded_by"] = json!("t");
    let mut cut = settlement("r4", &["team:a"], FILTER_PRICED, 900, true);
    cut["cut_off"] = json!(true);
    let batch = json!({ "settlements": [allowed, failed_open, downgraded, cut] });
    assert_eq!(
        app.settle(&batch).await,
        (200, json!({ "applied": 4, "duplicates": 0 }))
    );
    assert_eq!(
        app.settle(&batch).await,
        (200, json!({ "applied": 0, "duplicates": 4 }))
    );

    let rs = records(store.as_ref()).await;
    assert_eq!(rs.len(), 4, "{rs:#?}");
    let r1 = by_id(&rs, "r1");
    assert_eq!(r1.outcome, CallOutcome::Allowed);
    assert_eq!(
        (r1.started_at_ms, r1.ended_at_ms, r1.recorded_at_ms),
        (T0_MS - 2_000, T0_MS, T0_MS)
    );
    assert_eq!(r1.api.as_deref(), Some("chat_completions"));
    assert_eq!(r1.cost_nanos, 1_500);
    let b = r1.breakdown.unwrap();
    assert_eq!(
        (b.uncached_input_nanos, b.output_nanos, b.total_nanos()),
        (500, 1_000, 1_500)
    );
    assert_eq!((r1.tokens.uncached_input, r1.tokens.output), (100, 50));
    assert_eq!(by_id(&rs, "r2").outcome, CallOutcome::FailedOpen);
    let r3 = by_id(&rs, "r3");
    assert_eq!(r3.outcome, CallOutcome::Downgraded);
    assert_eq!(
        (r3.requested_model.as_str(), r3.charged_model.as_str()),
        ("gpt-5", "gpt-5-mini")
    );
    assert_eq!(r3.budget_id.as_deref(), Some("t"));
    assert_eq!(by_id(&rs, "r4").outcome, CallOutcome::CutOff);

    // Spend no budget matches (team:zz) is in the ledger's total all the same.
    let rows = store
        .rollups(&RollupQuery {
            range: TimeRange::new(T0_MS - 86_400_000, T0_MS + 86_400_000).unwrap(),
            filter: RollupFilter {
                scopes: vec![Scope::global()],
                ..RollupFilter::default()
            },
            granularity: Granularity::Hour,
            now_ms: T0_MS,
        })
        .await
        .unwrap();
    let total: i64 = rows.iter().map(|r| r.cost_nanos).sum();
    assert_eq!(total, 1_500 + 700 + 125_000 + 900);
    app.stop().await;
}

async fn refusals_are_recorded_once_with_zero_cost_and_their_reason(store: Arc<dyn Store>) {
    let app = TestApp::start(store.clone(), |_| {}).await;
    app.create_budget(
        json!({ "id": "tiny", "scopes": ["team:a"], "limit_usd": "0.000001", "period": "daily" }),
    )
    .await;
    let req = reserve_req("d1", &["team:a"], "gpt-5", 2_000);
    let (_, d) = app.reserve(&req).await;
    assert_eq!(d["decision"], "deny");
    // The same call asking again is refused again, and recorded once.
    let (_, d) = app.reserve(&req).await;
    assert_eq!(d["decision"], "deny");
    let r = app
        .admin(reqwest::Method::PUT, "/v1/emergency/team:b")
        .json(&json!({ "mode": "deny_all" }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let (_, d) = app
        .reserve(&reserve_req("d2", &["team:b"], "gpt-5", 2_000))
        .await;
    assert_eq!(d["decision"], "deny");

    let rs = records(store.as_ref()).await;
    assert_eq!(rs.len(), 2, "{rs:#?}");
    let d1 = by_id(&rs, "d1");
    assert_eq!(
        (
            d1.outcome,
            d1.deny_reason,
            d1.cost_nanos,
            d1.budget_id.as_deref()
        ),
        (CallOutcome::Denied, Some(DenyReason::Usd), 0, Some("tiny"))
    );
    let d2 = by_id(&rs, "d2");
    assert_eq!(d2.deny_reason, Some(DenyReason::Emergency));
    assert_eq!(d2.budget_id.as_deref(), Some("emergency:team:b"));
    // The refused id is still free: the call's own settlement (a release) is not a replay.
    let (s, body) = app
        .settle(&json!({ "settlements": [settlement("d1", &["team:a"], "gpt-5", 0, false)] }))
        .await;
    assert_eq!((s, body), (200, json!({ "applied": 1, "duplicates": 0 })));
    app.stop().await;
}

async fn nothing_is_recorded_with_the_ledger_off(store: Arc<dyn Store>) {
    let app = TestApp::start(store.clone(), |s| s.settings.ledger = false).await;
    let batch = json!({ "settlements": [settlement("r1", &["team:a"], "gpt-5", 5, false)] });
    assert_eq!(app.settle(&batch).await.0, 200);
    assert!(records(store.as_ref()).await.is_empty());
    app.stop().await;
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_memory() {
                    super::$name(Arc::new(MemoryStore::new())).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_redis() {
                    let server = RedisServer::start();
                    super::$name(redis_store(&server.url())).await;
                    drop(server);
                }
            }
        )*
    };
}

both!(
    every_settled_call_is_recorded_once_with_its_outcome,
    refusals_are_recorded_once_with_zero_cost_and_their_reason,
    nothing_is_recorded_with_the_ledger_off,
);
