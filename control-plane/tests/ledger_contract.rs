//! The ledger's contract, run against the in-memory store and a real redis-server: what a
//! settlement writes (once), how rollups sum and answer, how records page, and the bounds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use tollgate_control_plane::ledger::{
    CallOutcome, CostParts, Granularity, LedgerLimits, RecordSource, RequestRecord, RollupFilter,
    RollupQuery, RollupRow, TimeRange, TokenCounts,
};
use tollgate_control_plane::store::memory::MemoryStore;
use tollgate_control_plane::store::{SettleOp, SettleOutcome, Store, StoreError};
use tollgate_model::scope::{Scope, ScopeKind};
use tollgate_model::wire::v1::DenyReason;

use support::lines::{NOW, line};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

fn scope(s: &str) -> Scope {
    s.parse().unwrap()
}

fn record(rid: &str, scopes: &[&str], model: &str, cost: i64, ended: i64) -> RequestRecord {
    RequestRecord {
        request_id: rid.into(),
        started_at_ms: ended - 1_500,
        ended_at_ms: ended,
        recorded_at_ms: 0,
        scopes: scopes.iter().map(|s| scope(s)).collect(),
        provider: "openai".into(),
        api: Some("chat_completions".into()),
        requested_model: model.into(),
        charged_model: model.into(),
        tokens: TokenCounts {
            uncached_input: 100,
            cached_input: 20,
            output: 30,
            reasoning: 10,
            ..TokenCounts::default()
        },
        cost_nanos: cost,
        breakdown: Some(CostParts {
            uncached_input_nanos: cost - 1,
            output_nanos: 1,
            ..CostParts::default()
        }),
        estimated: false,
        outcome: CallOutcome::Allowed,
        deny_reason: None,
        budget_id: None,
        source: RecordSource::Live,
    }
}

fn settle(rid: &str, rec: Option<RequestRecord>, now: i64) -> SettleOp {
    SettleOp {
        request_id: rid.into(),
        request_tag: "acme".into(),
        lines: vec![line("b")],
        cost_nanos: rec.as_ref().map_or(0, |r| r.cost_nanos),
        tokens: 150,
        now_ms: now,
        dedupe_ttl_ms: 3_600_000,
        ledger: rec,
    }
}

fn everything(now: i64) -> RollupQuery {
    RollupQuery {
        range: TimeRange::new(now - 30 * DAY, now + DAY).unwrap(),
        filter: RollupFilter::default(),
        granularity: Granularity::Hour,
        now_ms: now,
    }
}

fn all_time() -> TimeRange {
    TimeRange::new(0, i64::MAX).unwrap()
}

/// (scope, model, cost, requests) of each row, in the store's order.
fn summary(rows: &[RollupRow]) -> Vec<(String, String, i64, i64)> {
    rows.iter()
        .map(|r| {
            (
                r.scope.to_string(),
                r.model.clone(),
                r.cost_nanos,
                r.requests,
            )
        })
        .collect()
}

async fn all_records(s: &dyn Store, range: TimeRange, page: usize) -> Vec<RequestRecord> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let p = s.records(range, cursor.as_deref(), page).await.unwrap();
        assert!(p.records.len() <= page);
        out.extend(p.records);
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

async fn a_settlement_writes_one_record_and_its_rollups_and_a_replay_writes_nothing(
    s: Arc<dyn Store>,
) {
    let rec = record("r1", &["org:acme", "team:a"], "gpt-4o", 700, NOW);
    let applied = s
        .settle(&settle("r1", Some(rec.clone()), NOW + 5))
        .await
        .unwrap();
    assert!(matches!(applied, SettleOutcome::Applied { .. }));
    let replay = s
        .settle(&settle("r1", Some(rec.clone()), NOW + 9))
        .await
        .unwrap();
    assert_eq!(replay, SettleOutcome::Duplicate);
    let records = all_records(s.as_ref(), all_time(), 10).await;
    let mut want = rec;
    want.recorded_at_ms = NOW + 5;
    assert_eq!(records, vec![want]);
    let rows = s.rollups(&everything(NOW)).await.unwrap();
    assert_eq!(
        summary(&rows),
        vec![
            ("org:acme".into(), "gpt-4o".into(), 700, 1),
            ("team:a".into(), "gpt-4o".into(), 700, 1),
            ("global".into(), "gpt-4o".into(), 700, 1),
        ]
    );
    let r = &rows[0];
    assert_eq!(r.bucket_start_ms, Granularity::Hour.bucket_start(NOW));
    assert_eq!(r.granularity, Granularity::Hour);
    assert_eq!(r.provider, "openai");
    assert_eq!(
        (
            r.tokens.uncached_input,
            r.tokens.cached_input,
            r.tokens.output,
            r.tokens.reasoning
        ),
        (100, 20, 30, 10)
    );
    assert_eq!(r.denied, 0);
}

async fn a_settlement_without_a_record_writes_no_history(s: Arc<dyn Store>) {
    s.settle(&settle("r1", None, NOW)).await.unwrap();
    assert!(all_records(s.as_ref(), all_time(), 10).await.is_empty());
    assert!(s.rollups(&everything(NOW)).await.unwrap().is_empty());
}

async fn rollups_sum_by_hour_scope_model_and_provider(s: Arc<dyn Store>) {
    let hour = Granularity::Hour.bucket_start(NOW);
    let mut other_provider = record("r4", &["team:a"], "gpt-4o", 4, hour + 5);
    other_provider.provider = "azure".into();
    let mut denied = record("r5", &["team:b"], "gpt-4o", 0, hour + 6);
    denied.outcome = CallOutcome::Denied;
    denied.deny_reason = Some(DenyReason::Usd);
    denied.tokens = TokenCounts::default();
    let ops = vec![
        settle(
            "r1",
            Some(record("r1", &["team:a"], "gpt-4o", 1, hour + 1)),
            NOW,
        ),
        settle(
            "r2",
            Some(record("r2", &["team:a"], "gpt-4o", 2, hour + HOUR - 1)),
            NOW,
        ),
        settle(
            "r3",
            Some(record("r3", &["team:a"], "o3", 3, hour + 2)),
            NOW,
        ),
        settle("r4", Some(other_provider), NOW),
        settle("r5", Some(denied), NOW),
        settle(
            "r6",
            Some(record("r6", &["team:a"], "gpt-4o", 6, hour + HOUR)),
            NOW,
        ),
    ];
    s.settle_many(&ops).await.unwrap();
    let rows = s.rollups(&everything(NOW)).await.unwrap();
    let by = |start: i64, sc: &str, provider: &str, model: &str| {
        rows.iter()
            .find(|r| {
                r.bucket_start_ms == start
                    && r.scope == scope(sc)
                    && r.provider == provider
                    && r.model == model
            })
            .map(|r| (r.cost_nanos, r.requests, r.denied, r.tokens.output))
    };
    assert_eq!(by(hour, "team:a", "openai", "gpt-4o"), Some((3, 2, 0, 60)));
    assert_eq!(by(hour, "team:a", "openai", "o3"), Some((3, 1, 0, 30)));
    assert_eq!(by(hour, "team:a", "azure", "gpt-4o"), Some((4, 1, 0, 30)));
    assert_eq!(by(hour, "team:b", "openai", "gpt-4o"), Some((0, 1, 1, 0)));
    assert_eq!(by(hour, "global", "openai", "gpt-4o"), Some((3, 3, 1, 60)));
    assert_eq!(
        by(hour + HOUR, "team:a", "openai", "gpt-4o"),
        Some((6, 1, 0, 30))
    );
    assert_eq!(rows.len(), 9, "{rows:#?}");
    // Sorted by bucket, then scope, provider, model.
    let keys: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.bucket_start_ms,
                r.scope.clone(),
                r.provider.clone(),
                r.model.clone(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    // In days: one row per scope, model and provider, summing both hours.
    let mut q = everything(NOW);
    q.granularity = Granularity::Day;
    let days = s.rollups(&q).await.unwrap();
    assert!(days.iter().all(|r| r.granularity == Granularity::Day));
    let day_total: i64 = days
        .iter()
        .filter(|r| r.scope == Scope::global())
        .map(|r| r.cost_nanos)
        .sum();
    assert_eq!(day_total, 1 + 2 + 3 + 4 + 6);
}

async fn rollup_filters_select_scopes_kinds_models_providers_and_time(s: Arc<dyn Store>) {
    let hour = Granularity::Hour.bucket_start(NOW);
    let ops = vec![
        settle(
            "r1",
            Some(record("r1", &["team:a", "project:x"], "gpt-4o", 1, hour)),
            NOW,
        ),
        settle("r2", Some(record("r2", &["team:b"], "o3", 2, hour)), NOW),
        settle(
            "r3",
            Some(record("r3", &["team:b"], "o3", 4, hour + 3 * HOUR)),
            NOW,
        ),
    ];
    s.settle_many(&ops).await.unwrap();
    let q = |f: RollupFilter| RollupQuery {
        filter: f,
        ..everything(NOW)
    };
    let teams = s
        .rollups(&q(RollupFilter {
            scope_kinds: vec![ScopeKind::Team],
            ..RollupFilter::default()
        }))
        .await
        .unwrap();
    assert_eq!(
        summary(&teams),
        vec![
            ("team:a".into(), "gpt-4o".into(), 1, 1),
            ("team:b".into(), "o3".into(), 2, 1),
            ("team:b".into(), "o3".into(), 4, 1),
        ]
    );
    let one = s
        .rollups(&q(RollupFilter {
            scopes: vec![scope("project:x")],
            ..RollupFilter::default()
        }))
        .await
        .unwrap();
    assert_eq!(
        summary(&one),
        vec![("project:x".into(), "gpt-4o".into(), 1, 1)]
    );
    let o3_global = s
        .rollups(&q(RollupFilter {
            scope_kinds: vec![ScopeKind::Global],
            models: vec!["o3".into()],
            providers: vec!["openai".into()],
            ..RollupFilter::default()
        }))
        .await
        .unwrap();
    assert_eq!(o3_global.iter().map(|r| r.cost_nanos).sum::<i64>(), 6);
    let none = s
        .rollups(&q(RollupFilter {
            providers: vec!["anthropic".into()],
            ..RollupFilter::default()
        }))
        .await
        .unwrap();
    assert!(none.is_empty());
    // A range covering only the later hour.
    let later = s
        .rollups(&RollupQuery {
            range: TimeRange::new(hour + 3 * HOUR, hour + 4 * HOUR).unwrap(),
            ..everything(NOW)
        })
        .await
        .unwrap();
    assert_eq!(
        later.iter().map(|r| r.cost_nanos).collect::<Vec<_>>(),
        vec![4, 4]
    );
}

async fn records_page_in_write_order_within_their_recorded_range(s: Arc<dyn Store>) {
    for i in 0..25 {
        let now = NOW + i * 1_000;
        let rec = record(&format!("r{i:02}"), &["team:a"], "gpt-4o", i, now);
        s.settle(&settle(&format!("r{i:02}"), Some(rec), now))
            .await
            .unwrap();
    }
    let ids = |rs: &[RequestRecord]| rs.iter().map(|r| r.request_id.clone()).collect::<Vec<_>>();
    let all = all_records(s.as_ref(), all_time(), 7).await;
    assert_eq!(
        ids(&all),
        (0..25).map(|i| format!("r{i:02}")).collect::<Vec<_>>()
    );
    let some = all_records(
        s.as_ref(),
        TimeRange::new(NOW + 5_000, NOW + 10_000).unwrap(),
        2,
    )
    .await;
    assert_eq!(ids(&some), vec!["r05", "r06", "r07", "r08", "r09"]);
    assert!(some.iter().all(|r| r.recorded_at_ms == r.ended_at_ms));
    match s.records(all_time(), Some("not a cursor"), 5).await {
        Err(StoreError::BadCursor(c)) => assert_eq!(c, "not a cursor"),
        other => panic!("expected BadCursor, got {other:?}"),
    }
}

async fn records_are_bounded_by_count_oldest_first(s: Arc<dyn Store>) {
    // The store under test keeps 200 records (bounded_stores below).
    let ops: Vec<SettleOp> = (0..600)
        .map(|i| {
            let now = NOW + i;
            settle(
                &format!("r{i}"),
                Some(record(&format!("r{i}"), &[], "m", 1, now)),
                now,
            )
        })
        .collect();
    s.settle_many(&ops).await.unwrap();
    let kept = all_records(s.as_ref(), all_time(), 1000).await;
    // Redis trims at its count marks (every 200 / 64 records, at the end of a stream entry,
    // which holds a settle batch of up to 16): at most a batch and a mark's spacing more.
    assert!((200..=220).contains(&kept.len()), "{}", kept.len());
    let last: Vec<&str> = kept
        .iter()
        .rev()
        .take(200)
        .map(|r| r.request_id.as_str())
        .collect();
    assert_eq!(last.first(), Some(&"r599"));
    assert_eq!(last.last(), Some(&"r400"));
    assert!(kept.iter().all(|r| r.request_id != "r0"));
    // Rollups keep counting what the stream dropped.
    let rows = s.rollups(&everything(NOW)).await.unwrap();
    let global: i64 = rows
        .iter()
        .filter(|r| r.scope == Scope::global())
        .map(|r| r.requests)
        .sum();
    assert_eq!(global, 600);
}

async fn records_past_their_age_are_dropped(s: Arc<dyn Store>) {
    // The store under test keeps records one day (bounded_stores below).
    let ops: Vec<SettleOp> = (0..250)
        .map(|i| {
            settle(
                &format!("old{i}"),
                Some(record(&format!("old{i}"), &[], "m", 1, NOW)),
                NOW,
            )
        })
        .collect();
    s.settle_many(&ops).await.unwrap();
    let later = NOW + DAY + 1;
    s.settle(&settle(
        "new",
        Some(record("new", &[], "m", 1, later)),
        later,
    ))
    .await
    .unwrap();
    let kept = all_records(s.as_ref(), all_time(), 1000).await;
    let old = kept
        .iter()
        .filter(|r| r.request_id.starts_with("old"))
        .count();
    assert_eq!(old, 0, "{old} old records kept");
    assert_eq!(kept.last().map(|r| r.request_id.as_str()), Some("new"));
}

fn real_now() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(d.as_millis()).unwrap()
}

async fn rollups_past_the_hourly_retention_answer_in_days_and_past_the_daily_one_are_gone(
    s: Arc<dyn Store>,
) {
    // Retention runs on real time in Redis (key expiry), so this test uses the real clock.
    // The store under test keeps hours 2 days and days 5 days (bounded_stores below).
    let now = real_now();
    let three_days_ago = now - 3 * DAY;
    let ten_days_ago = now - 10 * DAY;
    let ops = vec![
        settle(
            "a",
            Some(record("a", &["team:a"], "m", 5, three_days_ago)),
            now,
        ),
        settle(
            "b",
            Some(record("b", &["team:a"], "m", 7, ten_days_ago)),
            now,
        ),
        settle("c", Some(record("c", &["team:a"], "m", 11, now)), now),
    ];
    s.settle_many(&ops).await.unwrap();
    let rows = s.rollups(&everything(now)).await.unwrap();
    let got: Vec<(i64, Granularity, i64)> = rows
        .iter()
        .filter(|r| r.scope == scope("team:a"))
        .map(|r| (r.bucket_start_ms, r.granularity, r.cost_nanos))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                Granularity::Day.bucket_start(three_days_ago),
                Granularity::Day,
                5
            ),
            (Granularity::Hour.bucket_start(now), Granularity::Hour, 11),
        ]
    );
    // The records themselves are kept by their own limits.
    assert_eq!(all_records(s.as_ref(), all_time(), 10).await.len(), 3);
}

async fn a_call_without_scopes_counts_under_global_only(s: Arc<dyn Store>) {
    let mut rec = record("r1", &[], "gpt-4o", 9, NOW);
    rec.scopes = vec![Scope::global()];
    s.settle(&settle("r1", Some(rec), NOW)).await.unwrap();
    let rows = s.rollups(&everything(NOW)).await.unwrap();
    assert_eq!(
        summary(&rows),
        vec![("global".into(), "gpt-4o".into(), 9, 1)]
    );
}

async fn every_call_counts_once_while_settles_and_upkeep_race(s: Arc<dyn Store>) {
    // 480 calls on 120 models under 3 scopes: 3 840 distinct rows (more than one rollup step
    // writes in Redis), settled in 8 tasks while 3 tasks run the ledger's upkeep, then one
    // replay of each. Every row must hold its calls exactly once.
    let ops: Vec<SettleOp> = (0..480)
        .map(|i| {
            let rec = record(
                &format!("c{i}"),
                &[
                    "org:acme",
                    &format!("team:t{}", i % 7),
                    &format!("project:p{}", i % 11),
                ],
                &format!("model-{}", i % 120),
                1_000_000_007 + i,
                NOW + (i % 3) * HOUR,
            );
            settle(&format!("c{i}"), Some(rec), NOW)
        })
        .collect();
    let ops = Arc::new(ops);
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (s, ops) = (s.clone(), ops.clone());
        tasks.push(tokio::spawn(async move {
            for chunk in ops.chunks(16).skip(t).step_by(8) {
                s.settle_many(chunk).await.unwrap();
            }
        }));
    }
    let upkeep: Vec<_> = (0..3)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    s.ledger_upkeep().await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for t in tasks.into_iter().chain(upkeep) {
        t.await.unwrap();
    }
    let replays = s.settle_many(&ops).await.unwrap();
    assert!(replays.iter().all(|o| *o == SettleOutcome::Duplicate));
    let rows = s.rollups(&everything(NOW)).await.unwrap();
    let want_cost: i64 = ops.iter().map(|o| o.cost_nanos).sum();
    for kind in [
        ScopeKind::Global,
        ScopeKind::Org,
        ScopeKind::Team,
        ScopeKind::Project,
    ] {
        let of_kind: Vec<&RollupRow> = rows.iter().filter(|r| r.scope.kind() == kind).collect();
        let requests: i64 = of_kind.iter().map(|r| r.requests).sum();
        let cost: i64 = of_kind.iter().map(|r| r.cost_nanos).sum();
        let output: i64 = of_kind.iter().map(|r| r.tokens.output).sum();
        assert_eq!(
            (requests, cost, output),
            (480, want_cost, 480 * 30),
            "{kind:?}"
        );
    }
    let days = s
        .rollups(&RollupQuery {
            granularity: Granularity::Day,
            ..everything(NOW)
        })
        .await
        .unwrap();
    let day_cost: i64 = days
        .iter()
        .filter(|r| r.scope == Scope::global())
        .map(|r| r.cost_nanos)
        .sum();
    assert_eq!(day_cost, want_cost);
    assert_eq!(all_records(s.as_ref(), all_time(), 100).await.len(), 480);
}

async fn records_of_several_orgs_page_in_time_order_at_any_page_size(s: Arc<dyn Store>) {
    // Records of three orgs (three hash tags in Redis: three streams merged per page).
    for i in 0..30 {
        let org = ["acme", "beta", "corp"][i % 3];
        let rid = format!("m{i:02}");
        let now = NOW + i64::try_from(i).unwrap() * 10;
        let mut op = settle(
            &rid,
            Some(record(&rid, &[&format!("org:{org}")], "m", 1, now)),
            now,
        );
        op.request_tag = org.into();
        op.lines = Vec::new();
        s.settle(&op).await.unwrap();
    }
    let want: Vec<String> = (0..30).map(|i| format!("m{i:02}")).collect();
    for page in [1, 4, 7, 30, 100] {
        let got: Vec<String> = all_records(s.as_ref(), all_time(), page)
            .await
            .into_iter()
            .map(|r| r.request_id)
            .collect();
        assert_eq!(got, want, "page size {page}");
    }
    let later = TimeRange::new(NOW + 95, NOW + 205).unwrap();
    let got: Vec<String> = all_records(s.as_ref(), later, 2)
        .await
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    assert_eq!(got, want[10..=20].to_vec());
}

async fn a_batch_with_replays_records_each_new_call_once_and_pages_at_any_size(s: Arc<dyn Store>) {
    // Five calls settled first; then one batch of 16 (one org, one time: one stream entry in
    // Redis) that repeats those five and adds ten new ones and one without a record.
    let op = |i: usize| {
        let rid = format!("b{i:02}");
        settle(&rid, Some(record(&rid, &["team:a"], "m", 10, NOW)), NOW)
    };
    let first: Vec<SettleOp> = (0..5).map(op).collect();
    s.settle_many(&first).await.unwrap();
    let mut batch: Vec<SettleOp> = (0..15).map(op).collect();
    batch.insert(7, settle("no-record", None, NOW));
    batch.swap(0, 12);
    let outcomes = s.settle_many(&batch).await.unwrap();
    let dups = outcomes
        .iter()
        .filter(|o| **o == SettleOutcome::Duplicate)
        .count();
    assert_eq!(dups, 5);
    let old: Vec<String> = first.iter().map(|o| o.request_id.clone()).collect();
    let new = batch
        .iter()
        .filter(|o| o.ledger.is_some() && !old.contains(&o.request_id))
        .map(|o| o.request_id.clone());
    let want: Vec<String> = old.iter().cloned().chain(new).collect();
    assert_eq!(want.len(), 15);
    for page in [1, 2, 3, 7, 16, 100] {
        let got: Vec<String> = all_records(s.as_ref(), all_time(), page)
            .await
            .into_iter()
            .map(|r| r.request_id)
            .collect();
        assert_eq!(got, want, "page size {page}");
    }
    let rows = s.rollups(&everything(NOW)).await.unwrap();
    assert_eq!(
        summary(&rows),
        vec![
            ("team:a".into(), "m".into(), 150, 15),
            ("global".into(), "m".into(), 150, 15)
        ]
    );
}

macro_rules! contract {
    ($limits:expr; $($name:ident),* $(,)?) => {
        $(
            mod $name {
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_memory() {
                    super::$name(Arc::new(MemoryStore::with_ledger_limits($limits))).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_redis() {
                    let server = support::RedisServer::start();
                    let store = support::redis_store(&server).with_ledger_limits($limits);
                    super::$name(Arc::new(store)).await;
                    drop(server);
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_cluster() {
                    let cluster = support::topologies::Cluster::start();
                    let store = support::cluster_store(&cluster).with_ledger_limits($limits);
                    super::$name(Arc::new(store)).await;
                    drop(cluster);
                }
            }
        )*
    };
}

const BOUNDED: LedgerLimits = LedgerLimits {
    records_max: 200,
    records_max_age_ms: DAY,
    hourly_retention_ms: 2 * DAY,
    daily_retention_ms: 5 * DAY,
};

contract!(LedgerLimits::default();
    a_settlement_writes_one_record_and_its_rollups_and_a_replay_writes_nothing,
    a_settlement_without_a_record_writes_no_history,
    rollups_sum_by_hour_scope_model_and_provider,
    rollup_filters_select_scopes_kinds_models_providers_and_time,
    records_page_in_write_order_within_their_recorded_range,
    a_call_without_scopes_counts_under_global_only,
    every_call_counts_once_while_settles_and_upkeep_race,
    records_of_several_orgs_page_in_time_order_at_any_page_size,
    a_batch_with_replays_records_each_new_call_once_and_pages_at_any_size,
);

contract!(BOUNDED;
    records_are_bounded_by_count_oldest_first,
    records_past_their_age_are_dropped,
    rollups_past_the_hourly_retention_answer_in_days_and_past_the_daily_one_are_gone,
);
