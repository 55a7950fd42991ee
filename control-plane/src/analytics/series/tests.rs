use super::*;
use crate::analytics::testing::utc;
use crate::ledger::Granularity;
use crate::ledger::LedgerLimits;
use crate::ledger::synthetic;
use crate::store::SettleOp;
use crate::store::memory::MemoryStore;

fn budget(json: &str) -> Budget {
    let spec: tollgate_model::budget::BudgetSpec = serde_json::from_str(json).unwrap();
    Budget::try_from(spec).unwrap()
}

/// A call ending at `at` with `scopes` on `model`, costing `cost`.
fn call(id: &str, at: &str, scopes: &[&str], model: &str, cost: i64) -> SettleOp {
    let mut op = synthetic::op(0, 1, 0);
    let r = op.ledger.as_mut().unwrap();
    r.request_id = id.into();
    r.ended_at_ms = utc(at).timestamp_millis();
    r.started_at_ms = r.ended_at_ms;
    r.scopes = scopes.iter().map(|s| s.parse().unwrap()).collect();
    r.charged_model = model.into();
    r.requested_model = model.into();
    r.cost_nanos = cost;
    op.request_id = id.into();
    op.cost_nanos = cost;
    op.now_ms = r.ended_at_ms;
    op
}

async fn store_with(calls: Vec<SettleOp>, limits: LedgerLimits) -> MemoryStore {
    let s = MemoryStore::with_ledger_limits(limits);
    s.settle_many(&calls).await.unwrap();
    s
}

#[tokio::test]
async fn a_budget_series_is_dense_and_counts_only_its_scope_and_model() {
    let store = store_with(
        vec![
            call("a", "2026-03-02T01:10:00Z", &["team:a"], "gpt-4o", 100),
            call("b", "2026-03-02T01:50:00Z", &["team:a"], "gpt-4o", 20),
            call("c", "2026-03-02T03:00:00Z", &["team:a"], "gpt-4o-mini", 7),
            call("d", "2026-03-02T03:00:00Z", &["team:b"], "gpt-4o", 1_000),
        ],
        LedgerLimits::default(),
    )
    .await;
    let now = utc("2026-03-02T05:30:00Z");
    let hours = Hours::between(utc("2026-03-02T00:00:00Z"), now);
    assert_eq!(hours.count, 5, "the running hour 05:00 is left out");
    let all = budget(r#"{"id":"a","scopes":["team:a"],"limit_usd":"1","period":"monthly"}"#);
    let gpt = budget(
        r#"{"id":"g","scopes":["team:a"],"model":"gpt-4o","limit_usd":"1","period":"monthly"}"#,
    );
    let global = budget(r#"{"id":"t","scopes":["global"],"limit_usd":"1","period":"monthly"}"#);
    let got = read_budgets(
        &store,
        &[&all, &gpt, &global],
        &ExactModel,
        hours,
        Granularity::Hour,
        now,
    )
    .await
    .unwrap();
    assert_eq!(got[0].cost_nanos, vec![0, 120, 0, 7, 0]);
    assert_eq!(got[0].requests, vec![0, 2, 0, 1, 0]);
    assert_eq!(got[1].cost_nanos, vec![0, 120, 0, 0, 0]);
    assert_eq!(got[2].cost_nanos, vec![0, 120, 0, 1_007, 0]);
    assert_eq!(got[2].start, utc("2026-03-02T00:00:00Z"));
    assert!(!got[2].spread_days);
}

#[tokio::test]
async fn a_multi_scope_budget_counts_only_calls_carrying_every_scope() {
    let store = store_with(
        vec![
            call("a", "2026-03-02T01:10:00Z", &["team:a", "user:bob"], "m", 5),
            call(
                "b",
                "2026-03-02T01:20:00Z",
                &["team:a", "user:eve"],
                "m",
                50,
            ),
            call("c", "2026-03-02T02:20:00Z", &["user:bob"], "m", 500),
            call("d", "2026-03-02T02:40:00Z", &["user:bob", "team:a"], "m", 3),
        ],
        LedgerLimits::default(),
    )
    .await;
    let now = utc("2026-03-02T04:00:00Z");
    let b =
        budget(r#"{"id":"ab","scopes":["team:a","user:bob"],"limit_usd":"1","period":"daily"}"#);
    let hours = Hours::before(now, 4);
    let got = read_budgets(&store, &[&b], &ExactModel, hours, Granularity::Hour, now)
        .await
        .unwrap();
    assert_eq!(got[0].cost_nanos, vec![0, 5, 3, 0]);
    assert_eq!(got[0].requests, vec![0, 1, 1, 0]);
}

#[tokio::test]
async fn day_rows_past_the_hourly_retention_are_spread_over_their_hours_summing_exactly() {
    let limits = LedgerLimits {
        hourly_retention_ms: 86_400_000,
        ..LedgerLimits::default()
    };
    let store = store_with(
        vec![
            call("a", "2026-03-01T07:00:00Z", &["team:a"], "m", 50),
            call("b", "2026-03-01T20:00:00Z", &["team:a"], "m", 3),
            call("c", "2026-03-05T02:30:00Z", &["team:a"], "m", 9),
        ],
        limits,
    )
    .await;
    let now = utc("2026-03-05T03:00:00Z");
    let scope: Scope = "team:a".parse().unwrap();
    let hours = Hours::between(utc("2026-03-01T00:00:00Z"), now);
    let got = read_scopes(&store, std::slice::from_ref(&scope), hours, now)
        .await
        .unwrap();
    let s = &got[&scope];
    assert!(s.spread_days);
    let day1: i64 = s.cost_nanos[..24].iter().sum();
    assert_eq!(day1, 53);
    assert_eq!(
        s.cost_nanos[0], 3,
        "53 = 24 × 2 + 5: the first five hours carry 3"
    );
    assert_eq!(s.cost_nanos[23], 2);
    assert_eq!(s.requests[..24].iter().sum::<i64>(), 2);
    assert_eq!(s.cost_nanos[4 * 24 + 2], 9);
    assert_eq!(s.total_cost_nanos(), Some(62));
}

#[tokio::test]
async fn a_scope_without_spend_reads_as_zeros_and_scope_models_split_by_model() {
    let store = store_with(
        vec![
            call("a", "2026-03-02T00:10:00Z", &["team:a"], "m1", 4),
            call("b", "2026-03-02T01:10:00Z", &["team:a"], "m2", 6),
        ],
        LedgerLimits::default(),
    )
    .await;
    let now = utc("2026-03-02T02:00:00Z");
    let hours = Hours::before(now, 2);
    let quiet: Scope = "team:quiet".parse().unwrap();
    let got = read_scopes(&store, std::slice::from_ref(&quiet), hours, now)
        .await
        .unwrap();
    assert_eq!(got[&quiet].cost_nanos, vec![0, 0]);
    let filter = RollupFilter {
        scope_kinds: vec![tollgate_model::scope::ScopeKind::Team],
        ..RollupFilter::default()
    };
    let by_model = read_scope_models(&store, filter, hours, now).await.unwrap();
    let a: Scope = "team:a".parse().unwrap();
    assert_eq!(by_model[&(a.clone(), "m1".into())].cost_nanos, vec![4, 0]);
    assert_eq!(by_model[&(a, "m2".into())].cost_nanos, vec![0, 6]);
    assert_eq!(by_model.len(), 2);
}

#[test]
fn the_period_of_a_berlin_monthly_budget_starts_at_berlin_midnight() {
    let b = budget(
        r#"{"id":"m","scopes":["global"],"limit_usd":"1","period":"monthly","timezone":"Europe/Berlin"}"#,
    );
    let w = period_of(&b, utc("2026-03-15T12:00:00Z"));
    assert_eq!(w.start, utc("2026-02-28T23:00:00Z"));
    assert_eq!(w.end, Some(utc("2026-03-31T22:00:00Z")));
}

#[test]
fn a_slice_keeps_the_hours_inside_and_clamps_to_the_series() {
    let s = Hourly {
        start: utc("2026-03-02T00:00:00Z"),
        cost_nanos: vec![1, 2, 3, 4],
        requests: vec![1, 1, 1, 1],
        spread_days: false,
    };
    let t = s.slice(utc("2026-03-02T01:00:00Z"), utc("2026-03-02T09:00:00Z"));
    assert_eq!(t.start, utc("2026-03-02T01:00:00Z"));
    assert_eq!(t.cost_nanos, vec![2, 3, 4]);
}
