//! One contract, two stores: every test here runs against the in-memory store, against a
//! real redis-server started on a free port, and against a real 3-node Redis Cluster.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use tollgate_control_plane::store::memory::MemoryStore;
use tollgate_control_plane::store::{
    Collection, Counters, Expect, Line, ReserveOp, ReserveOutcome, SettleOp, SettleOutcome, Store,
    WriteConflict,
};
use tollgate_model::wire::v1::DenyReason;

use support::lines::{NOW, line};

fn reserve(rid: &str, lines: &[Line], cost: i64) -> ReserveOp {
    ReserveOp {
        request_id: rid.into(),
        request_tag: "acme".into(),
        lines: lines.to_vec(),
        cost_nanos: cost,
        tokens: 10,
        now_ms: NOW,
        reservation_ttl_ms: 60_000,
        record_ttl_ms: 600_000,
    }
}

fn settle(rid: &str, lines: &[Line], cost: i64) -> SettleOp {
    SettleOp {
        request_id: rid.into(),
        request_tag: "acme".into(),
        lines: lines.to_vec(),
        cost_nanos: cost,
        tokens: 7,
        now_ms: NOW + 1_000,
        dedupe_ttl_ms: 3_600_000,
        ledger: None,
    }
}

/// Settled + reserved nano-USD per line after a reservation that must have succeeded.
fn reserved(o: ReserveOutcome) -> Vec<i64> {
    match o {
        ReserveOutcome::Reserved { used_nanos, .. } => used_nanos,
        other => panic!("expected Reserved, got {other:?}"),
    }
}

async fn reserve_admits_up_to_the_usd_limit_then_refuses(s: Arc<dyn Store>) {
    let l = [line("b")];
    let used = reserved(s.reserve(&reserve("r1", &l, 600)).await.unwrap());
    assert_eq!(used, vec![600]);
    let c = s.counters(&l[0]).await.unwrap();
    assert_eq!((c.spent_nanos, c.reserved_nanos, c.requests), (0, 600, 1));
    let used = reserved(s.reserve(&reserve("r2", &l, 400)).await.unwrap());
    assert_eq!(used, vec![1_000]);
    assert_eq!(s.counters(&l[0]).await.unwrap().remaining_nanos(1_000), 0);
    let o = s.reserve(&reserve("r3", &l, 1)).await.unwrap();
    assert!(matches!(
        o,
        ReserveOutcome::Refused {
            line: 0,
            reason: DenyReason::Usd,
            ..
        }
    ));
    assert_eq!(s.counters(&l[0]).await.unwrap().reserved_nanos, 1_000);
}

async fn a_refusal_on_one_budget_reserves_nothing_on_the_others(s: Arc<dyn Store>) {
    let mut tight = line("tight");
    tight.limit_nanos = Some(100);
    let l = [line("wide"), tight];
    let o = s.reserve(&reserve("r1", &l, 500)).await.unwrap();
    assert!(matches!(
        o,
        ReserveOutcome::Refused {
            line: 1,
            reason: DenyReason::Usd,
            ..
        }
    ));
    assert_eq!(s.counters(&l[0]).await.unwrap(), Counters::default());
}

async fn a_repeated_reserve_with_the_same_request_id_reserves_nothing_more(s: Arc<dyn Store>) {
    let l = [line("b")];
    reserved(s.reserve(&reserve("r1", &l, 300)).await.unwrap());
    assert_eq!(
        s.reserve(&reserve("r1", &l, 300)).await.unwrap(),
        ReserveOutcome::Duplicate
    );
    assert_eq!(s.counters(&l[0]).await.unwrap().reserved_nanos, 300);
}

async fn settle_replaces_the_reservation_and_a_replay_charges_nothing(s: Arc<dyn Store>) {
    let l = [line("b")];
    reserved(s.reserve(&reserve("r1", &l, 300)).await.unwrap());
    let o = s.settle(&settle("r1", &l, 120)).await.unwrap();
    assert!(matches!(o, SettleOutcome::Applied { .. }));
    assert_eq!(
        s.settle(&settle("r1", &l, 120)).await.unwrap(),
        SettleOutcome::Duplicate
    );
    let c = s.counters(&l[0]).await.unwrap();
    assert_eq!(
        (c.spent_nanos, c.reserved_nanos, c.tokens, c.reserved_tokens),
        (120, 0, 7, 0)
    );
    assert_eq!(c.requests, 1);
}

async fn settle_without_a_reservation_charges_directly(s: Arc<dyn Store>) {
    let l = [line("b"), line("c")];
    s.settle(&settle("open-1", &l, 250)).await.unwrap();
    for x in &l {
        let c = s.counters(x).await.unwrap();
        assert_eq!((c.spent_nanos, c.requests, c.reserved_nanos), (250, 1, 0));
    }
    assert_eq!(
        s.settle(&settle("open-1", &l, 250)).await.unwrap(),
        SettleOutcome::Duplicate
    );
    assert_eq!(s.counters(&l[0]).await.unwrap().spent_nanos, 250);
}

async fn an_expired_reservation_releases_itself_and_a_late_settle_still_charges(s: Arc<dyn Store>) {
    let l = [line("b")];
    reserved(s.reserve(&reserve("r1", &l, 900)).await.unwrap());
    let mut later = reserve("r2", &l, 900);
    later.now_ms = NOW + 60_001;
    let used = reserved(s.reserve(&later).await.unwrap());
    assert_eq!(used, vec![900], "r1's hold was released, r2's taken");
    assert_eq!(s.counters(&l[0]).await.unwrap().reserved_nanos, 900);
    let mut late = settle("r1", &l, 500);
    late.now_ms = NOW + 120_000;
    s.settle(&late).await.unwrap();
    let c = s.counters(&l[0]).await.unwrap();
    assert_eq!((c.spent_nanos, c.reserved_nanos, c.requests), (500, 900, 2));
}

async fn a_settle_after_the_window_rolled_over_charges_the_window_it_reserved_on(
    s: Arc<dyn Store>,
) {
    let reserved_on = line("b");
    let mut now = reserved_on.clone();
    now.window_index += 1;
    reserved(
        s.reserve(&reserve("r1", std::slice::from_ref(&reserved_on), 300))
            .await
            .unwrap(),
    );
    let SettleOutcome::Applied { alerts } = s
        .settle(&settle("r1", std::slice::from_ref(&now), 850))
        .await
        .unwrap()
    else {
        panic!("expected Applied")
    };
    let c = s.counters(&reserved_on).await.unwrap();
    assert_eq!(
        (
            c.spent_nanos,
            c.reserved_nanos,
            c.tokens,
            c.reserved_tokens,
            c.requests
        ),
        (850, 0, 7, 0, 1)
    );
    assert_eq!(s.counters(&now).await.unwrap(), Counters::default());
    let fired: Vec<(i64, u16)> = alerts
        .iter()
        .map(|a| (a.window_index, a.threshold_pct))
        .collect();
    assert_eq!(
        fired,
        vec![(7, 50), (7, 80)],
        "alerts name the window charged"
    );
}

async fn a_replayed_reserve_after_its_settlement_reserves_nothing(s: Arc<dyn Store>) {
    let l = [line("b")];
    reserved(s.reserve(&reserve("r1", &l, 300)).await.unwrap());
    s.settle(&settle("r1", &l, 120)).await.unwrap();
    assert_eq!(
        s.reserve(&reserve("r1", &l, 300)).await.unwrap(),
        ReserveOutcome::Duplicate
    );
    let c = s.counters(&l[0]).await.unwrap();
    assert_eq!((c.spent_nanos, c.reserved_nanos, c.requests), (120, 0, 1));
}

async fn a_settle_batch_charges_each_once_and_a_replayed_batch_charges_nothing(s: Arc<dyn Store>) {
    let mut wide = line("wide");
    wide.limit_nanos = Some(1_000_000);
    let l = [wide];
    let mut other = line("other");
    other.tag = "beta".into();
    reserved(s.reserve(&reserve("r1", &l, 300)).await.unwrap());
    // More settlements than one store call takes, across two orgs, with a reserved one, a
    // fail-open one and a repeat of an id inside the batch.
    let mut ops = vec![settle("r1", &l, 120), settle("r1", &l, 120)];
    for i in 0..40 {
        ops.push(settle(&format!("open-{i}"), &l, 10));
        let mut o = settle(&format!("beta-{i}"), &[other.clone()], 5);
        o.request_tag = "beta".into();
        ops.push(o);
    }
    let first = s.settle_many(&ops).await.unwrap();
    assert_eq!(first.len(), ops.len());
    assert!(matches!(first[0], SettleOutcome::Applied { .. }));
    assert_eq!(
        first[1],
        SettleOutcome::Duplicate,
        "a repeat inside the batch"
    );
    assert!(
        first[2..]
            .iter()
            .all(|o| matches!(o, SettleOutcome::Applied { .. }))
    );
    let c = s.counters(&l[0]).await.unwrap();
    assert_eq!(
        (c.spent_nanos, c.reserved_nanos, c.requests),
        (120 + 400, 0, 41)
    );
    assert_eq!(s.counters(&other).await.unwrap().spent_nanos, 200);
    let replay = s.settle_many(&ops).await.unwrap();
    assert!(replay.iter().all(|o| *o == SettleOutcome::Duplicate));
    assert_eq!(s.counters(&l[0]).await.unwrap().spent_nanos, 520);
    assert_eq!(s.counters(&other).await.unwrap().spent_nanos, 200);
}

async fn thresholds_fire_once_per_window(s: Arc<dyn Store>) {
    let l = [line("b")];
    let SettleOutcome::Applied { alerts } = s.settle(&settle("a", &l, 850)).await.unwrap() else {
        panic!()
    };
    let pcts: Vec<u16> = alerts.iter().map(|a| a.threshold_pct).collect();
    assert_eq!(pcts, vec![50, 80]);
    let SettleOutcome::Applied { alerts } = s.settle(&settle("b", &l, 10)).await.unwrap() else {
        panic!()
    };
    assert!(alerts.is_empty());
    let SettleOutcome::Applied { alerts } = s.settle(&settle("c", &l, 200)).await.unwrap() else {
        panic!()
    };
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].threshold_pct, 100);
    assert_eq!(s.counters(&l[0]).await.unwrap().threshold_pct, 100);
    let mut next = l[0].clone();
    next.window_index += 1;
    let SettleOutcome::Applied { alerts } = s.settle(&settle("d", &[next], 600)).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(alerts.len(), 1, "a new window fires again");
    let listed = s.alerts(&["acme".into()], 10).await.unwrap();
    assert_eq!(listed.len(), 4);
}

/// A budget edited between a call's reserve and its settle (same window): the charge goes
/// on the reserved window, and alerts follow the budget's settings as they are now.
async fn a_settle_applies_the_budgets_current_thresholds(s: Arc<dyn Store>) {
    let mut at_reserve = line("b");
    at_reserve.thresholds_pct = vec![80];
    reserved(
        s.reserve(&reserve("r1", &[at_reserve.clone()], 100))
            .await
            .unwrap(),
    );
    let mut now = at_reserve.clone();
    now.thresholds_pct = vec![50];
    let SettleOutcome::Applied { alerts } = s.settle(&settle("r1", &[now], 600)).await.unwrap()
    else {
        panic!()
    };
    let pcts: Vec<u16> = alerts.iter().map(|a| a.threshold_pct).collect();
    assert_eq!(pcts, vec![50], "60 % spent: the new 50 % threshold fires");
    let c = s.counters(&at_reserve).await.unwrap();
    assert_eq!((c.spent_nanos, c.reserved_nanos), (600, 0));
}

async fn request_and_token_limits_are_checked_in_the_same_step(s: Arc<dyn Store>) {
    let mut rate = line("rate");
    rate.limit_nanos = None;
    rate.limit_requests = Some(2);
    let mut tok = line("tok");
    tok.limit_nanos = None;
    tok.limit_tokens = Some(25);
    let l = [rate.clone()];
    reserved(s.reserve(&reserve("r1", &l, 1)).await.unwrap());
    reserved(s.reserve(&reserve("r2", &l, 1)).await.unwrap());
    let o = s.reserve(&reserve("r3", &l, 1)).await.unwrap();
    assert!(matches!(
        o,
        ReserveOutcome::Refused {
            reason: DenyReason::Requests,
            ..
        }
    ));
    let t = [tok];
    reserved(s.reserve(&reserve("t1", &t, 1)).await.unwrap());
    reserved(s.reserve(&reserve("t2", &t, 1)).await.unwrap());
    let o = s.reserve(&reserve("t3", &t, 1)).await.unwrap();
    assert!(matches!(
        o,
        ReserveOutcome::Refused {
            reason: DenyReason::Tokens,
            ..
        }
    ));
}

async fn shadow_budgets_never_refuse_but_are_reported(s: Arc<dyn Store>) {
    let mut shadow = line("shadow");
    shadow.enforce = false;
    shadow.limit_nanos = Some(10);
    let l = [line("b"), shadow];
    match s.reserve(&reserve("r1", &l, 50)).await.unwrap() {
        ReserveOutcome::Reserved {
            shadow_over,
            used_nanos,
        } => {
            assert_eq!(shadow_over, vec![1]);
            assert_eq!(used_nanos, vec![50, 50]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.counters(&l[1]).await.unwrap().reserved_nanos, 50);
}

async fn a_suspended_budget_stays_closed_in_later_windows_until_reopened(s: Arc<dyn Store>) {
    let mut b = line("susp");
    b.suspend_on_exceed = true;
    s.settle(&settle("big", &[b.clone()], 1_000)).await.unwrap();
    assert!(s.is_suspended(&b).await.unwrap());
    let mut next = b.clone();
    next.window_index += 1;
    let o = s.reserve(&reserve("r1", &[next.clone()], 1)).await.unwrap();
    assert!(matches!(
        o,
        ReserveOutcome::Refused {
            reason: DenyReason::Suspended,
            ..
        }
    ));
    assert!(s.reopen(&b).await.unwrap());
    assert!(!s.reopen(&b).await.unwrap());
    reserved(s.reserve(&reserve("r2", &[next], 1)).await.unwrap());
}

async fn a_refused_suspend_on_exceed_budget_suspends(s: Arc<dyn Store>) {
    let mut b = line("susp2");
    b.suspend_on_exceed = true;
    let o = s
        .reserve(&reserve("r1", &[b.clone()], 5_000))
        .await
        .unwrap();
    assert!(matches!(
        o,
        ReserveOutcome::Refused {
            reason: DenyReason::Usd,
            ..
        }
    ));
    assert!(s.is_suspended(&b).await.unwrap());
}

async fn reset_clears_only_the_current_window(s: Arc<dyn Store>) {
    let b = line("b");
    let mut old = b.clone();
    old.window_index -= 1;
    s.settle(&settle("x", &[b.clone(), old.clone()], 300))
        .await
        .unwrap();
    s.reset_window(&b).await.unwrap();
    assert_eq!(s.counters(&b).await.unwrap(), Counters::default());
    assert_eq!(s.counters(&old).await.unwrap().spent_nanos, 300);
}

async fn documents_are_versioned_for_optimistic_concurrency(s: Arc<dyn Store>) {
    let c = Collection::Budgets;
    assert_eq!(
        s.put_doc(c, "a", "{}", Expect::Absent).await.unwrap(),
        Ok(1)
    );
    assert_eq!(
        s.put_doc(c, "a", "{}", Expect::Absent).await.unwrap(),
        Err(WriteConflict::AlreadyExists)
    );
    assert_eq!(
        s.put_doc(c, "a", "{\"x\":1}", Expect::Version(1))
            .await
            .unwrap(),
        Ok(2)
    );
    assert_eq!(
        s.put_doc(c, "a", "{}", Expect::Version(1)).await.unwrap(),
        Err(WriteConflict::VersionMismatch { current: 2 })
    );
    assert_eq!(
        s.put_doc(c, "zz", "{}", Expect::Exists).await.unwrap(),
        Err(WriteConflict::Missing)
    );
    let got = s.get_doc(c, "a").await.unwrap().unwrap();
    assert_eq!((got.json.as_str(), got.version), ("{\"x\":1}", 2));
    s.put_doc(c, "b", "{}", Expect::Absent)
        .await
        .unwrap()
        .unwrap();
    let ids: Vec<String> = s
        .list_docs(c)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.0)
        .collect();
    assert_eq!(ids, vec!["a", "b"]);
    assert!(s.list_docs(Collection::Prices).await.unwrap().is_empty());
    assert_eq!(
        s.delete_doc(c, "a", Expect::Version(1)).await.unwrap(),
        Err(WriteConflict::VersionMismatch { current: 2 })
    );
    assert_eq!(
        s.delete_doc(c, "a", Expect::Version(2)).await.unwrap(),
        Ok(())
    );
    assert!(s.get_doc(c, "a").await.unwrap().is_none());
}

async fn the_audit_log_lists_newest_first(s: Arc<dyn Store>) {
    s.audit("{\"n\":1}").await.unwrap();
    s.audit("{\"n\":2}").await.unwrap();
    assert_eq!(
        s.audit_log(10).await.unwrap(),
        vec!["{\"n\":2}", "{\"n\":1}"]
    );
    s.ping().await.unwrap();
}

/// 64 tasks race for a budget worth exactly 100 requests: exactly 100 get through.
async fn sixty_four_racing_tasks_admit_exactly_one_hundred(s: Arc<dyn Store>) {
    let mut b = line("race");
    b.limit_nanos = Some(100 * 1_000);
    let b = Arc::new(b);
    let mut tasks = Vec::new();
    for t in 0..64 {
        let (s, b) = (s.clone(), b.clone());
        tasks.push(tokio::spawn(async move {
            let mut admitted = 0;
            for i in 0..4 {
                let op = reserve(&format!("t{t}-{i}"), &[(*b).clone()], 1_000);
                if let ReserveOutcome::Reserved { .. } = s.reserve(&op).await.unwrap() {
                    admitted += 1;
                }
            }
            admitted
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 100);
    let c = s.counters(&b).await.unwrap();
    assert_eq!(c.reserved_nanos, 100_000);
    assert!(c.spent_nanos + c.reserved_nanos <= 100_000);
}

/// Amounts past what an i64 holds saturate at i64::MAX in both stores, never wrap: two huge
/// settles leave `spent` at the bound (Redis's BITFIELD would wrap it negative by default and
/// admit the next call), huge holds saturate `reserved`, and taking them off clamps at zero.
async fn extreme_amounts_saturate_and_never_wrap(s: Arc<dyn Store>) {
    let capped = line("capped");
    for rid in ["huge-1", "huge-2"] {
        let mut op = settle(rid, std::slice::from_ref(&capped), i64::MAX);
        op.tokens = i64::MAX;
        s.settle(&op).await.unwrap();
    }
    let c = s.counters(&capped).await.unwrap();
    assert_eq!(
        (c.spent_nanos, c.tokens, c.requests),
        (i64::MAX, i64::MAX, 2)
    );
    let o = s
        .reserve(&reserve("after", std::slice::from_ref(&capped), 1))
        .await
        .unwrap();
    match o {
        ReserveOutcome::Refused {
            reason, counters, ..
        } => {
            assert_eq!(reason, DenyReason::Usd);
            assert_eq!(counters.spent_nanos, i64::MAX);
        }
        other => panic!("a saturated budget must refuse, got {other:?}"),
    }

    let mut open = line("open");
    open.limit_nanos = None;
    open.thresholds_pct = Vec::new();
    let l = [open];
    for rid in ["big-1", "big-2"] {
        let used = reserved(s.reserve(&reserve(rid, &l, i64::MAX)).await.unwrap());
        assert_eq!(used, vec![i64::MAX], "{rid}");
    }
    assert_eq!(s.counters(&l[0]).await.unwrap().reserved_nanos, i64::MAX);
    for rid in ["big-1", "big-2"] {
        s.settle(&settle(rid, &l, 0)).await.unwrap();
    }
    let c = s.counters(&l[0]).await.unwrap();
    assert_eq!((c.spent_nanos, c.reserved_nanos, c.requests), (0, 0, 2));
}

/// A batch's charges on one window add up exactly, whatever their size: amounts summed in
/// one step (Redis sums a batch's amounts per window before one `BITFIELD`) must neither
/// round past 2^53 nor wrap past i64.
async fn a_batchs_charges_on_one_window_add_up_exactly(s: Arc<dyn Store>) {
    let mut open = line("sums");
    open.limit_nanos = None;
    open.thresholds_pct = Vec::new();
    let l = [open];
    // Just under 2^53, twice, then 2^53 + 1 and an odd amount past it: no double holds the
    // total, and a rounding anywhere shows in the last digit.
    let amounts = [
        (1i64 << 53) - 1,
        (1i64 << 53) - 1,
        (1i64 << 53) + 1,
        1,
        (1i64 << 60) + 3,
        7,
    ];
    let ops: Vec<SettleOp> = amounts
        .iter()
        .enumerate()
        .map(|(i, &cost)| {
            let mut op = settle(&format!("sum-{i}"), &l, cost);
            op.tokens = cost;
            op
        })
        .collect();
    s.settle_many(&ops).await.unwrap();
    let total: i64 = amounts.iter().sum();
    let c = s.counters(&l[0]).await.unwrap();
    assert_eq!(
        (c.spent_nanos, c.tokens, c.requests),
        (total, total, amounts.len() as i64)
    );

    // Past i64 inside one batch: saturates, never wraps.
    let mut capped = line("capped-batch");
    capped.limit_nanos = None;
    capped.thresholds_pct = Vec::new();
    let c_l = [capped];
    let ops: Vec<SettleOp> = (0..3)
        .map(|i| settle(&format!("max-{i}"), &c_l, i64::MAX / 2 + 1))
        .collect();
    s.settle_many(&ops).await.unwrap();
    let c = s.counters(&c_l[0]).await.unwrap();
    assert_eq!((c.spent_nanos, c.requests), (i64::MAX, 3));
}

/// The thresholds a batch's settlements crossed, ascending (none of them may be a replay).
fn crossed(outcomes: &[SettleOutcome]) -> Vec<u16> {
    let mut pcts: Vec<u16> = outcomes
        .iter()
        .flat_map(|o| match o {
            SettleOutcome::Applied { alerts } => alerts.iter().map(|a| a.threshold_pct),
            SettleOutcome::Duplicate => panic!("nothing here is a replay"),
        })
        .collect();
    pcts.sort_unstable();
    pcts
}

/// A batch crossing several thresholds of one window raises each once, and the window
/// remembers the highest (later batches raise only what is above it); reserved and
/// unreserved calls of one batch each count their request once.
async fn a_batch_crossing_thresholds_raises_each_once(s: Arc<dyn Store>) {
    let l = [line("batch-th")];
    reserved(s.reserve(&reserve("held", &l, 100)).await.unwrap());
    let ops = vec![
        settle("held", &l, 300),
        settle("open-1", &l, 300),
        settle("open-2", &l, 300),
    ];
    let outcomes = s.settle_many(&ops).await.unwrap();
    assert_eq!(crossed(&outcomes), vec![50, 80], "900 of 1 000 spent");
    let c = s.counters(&l[0]).await.unwrap();
    assert_eq!(
        (c.spent_nanos, c.reserved_nanos, c.requests, c.threshold_pct),
        (900, 0, 3, 80)
    );
    let outcomes = s
        .settle_many(&[settle("open-3", &l, 50), settle("open-4", &l, 50)])
        .await
        .unwrap();
    assert_eq!(crossed(&outcomes), vec![100]);
    assert_eq!(s.alerts(&["acme".into()], 10).await.unwrap().len(), 3);
}

async fn many_windows_read_together_answer_as_each_read_alone_in_the_order_asked(
    s: Arc<dyn Store>,
) {
    // Windows in three orgs (three hash tags: one slot each in a Cluster), more in one org
    // than one MGET holds, some never charged, the order mixed.
    let mut lines = Vec::new();
    for i in 0..1_100usize {
        let mut l = line(&format!("b{i}"));
        l.tag = ["acme", "globex", "initech"][i % 7 % 3].into();
        l.limit_nanos = None;
        l.thresholds_pct = Vec::new();
        lines.push(l);
    }
    lines.reverse();
    for (i, l) in lines.iter().enumerate().filter(|(i, _)| i % 5 != 0) {
        let cost = i64::try_from(i).unwrap() * 1_000 + 1;
        s.settle(&SettleOp {
            request_tag: l.tag.clone(),
            ..settle(&format!("r{i}"), std::slice::from_ref(l), cost)
        })
        .await
        .unwrap();
    }
    let many = s.counters_many(&lines).await.unwrap();
    assert_eq!(many.len(), lines.len());
    for (i, (l, c)) in lines.iter().zip(&many).enumerate() {
        assert_eq!(*c, s.counters(l).await.unwrap(), "window {i}");
        let expect = if i % 5 == 0 {
            0
        } else {
            i64::try_from(i).unwrap() * 1_000 + 1
        };
        assert_eq!(c.spent_nanos, expect, "window {i}");
    }
    assert!(s.counters_many(&[]).await.unwrap().is_empty());
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(Arc::new(MemoryStore::new())).await;
                }
            )*
        }
        mod redis {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let server = support::RedisServer::start();
                    super::$name(Arc::new(support::redis_store(&server))).await;
                    drop(server);
                }
            )*
        }
        mod cluster {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let cluster = support::topologies::Cluster::start();
                    super::$name(Arc::new(support::cluster_store(&cluster))).await;
                    drop(cluster);
                }
            )*
        }
    };
}

contract!(
    reserve_admits_up_to_the_usd_limit_then_refuses,
    a_refusal_on_one_budget_reserves_nothing_on_the_others,
    a_repeated_reserve_with_the_same_request_id_reserves_nothing_more,
    settle_replaces_the_reservation_and_a_replay_charges_nothing,
    settle_without_a_reservation_charges_directly,
    an_expired_reservation_releases_itself_and_a_late_settle_still_charges,
    thresholds_fire_once_per_window,
    a_settle_after_the_window_rolled_over_charges_the_window_it_reserved_on,
    a_replayed_reserve_after_its_settlement_reserves_nothing,
    a_settle_batch_charges_each_once_and_a_replayed_batch_charges_nothing,
    request_and_token_limits_are_checked_in_the_same_step,
    a_settle_applies_the_budgets_current_thresholds,
    shadow_budgets_never_refuse_but_are_reported,
    a_suspended_budget_stays_closed_in_later_windows_until_reopened,
    a_refused_suspend_on_exceed_budget_suspends,
    reset_clears_only_the_current_window,
    documents_are_versioned_for_optimistic_concurrency,
    the_audit_log_lists_newest_first,
    sixty_four_racing_tasks_admit_exactly_one_hundred,
    extreme_amounts_saturate_and_never_wrap,
    a_batchs_charges_on_one_window_add_up_exactly,
    a_batch_crossing_thresholds_raises_each_once,
    many_windows_read_together_answer_as_each_read_alone_in_the_order_asked,
);
