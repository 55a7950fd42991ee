use chrono::{TimeDelta, TimeZone};
use tollgate_model::{NanoUsd, Usage};

use super::*;

fn t(ms: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap() + TimeDelta::milliseconds(ms)
}

fn charge(id: u32) -> Settlement {
    Settlement {
        request_id: format!("r{id}"),
        scopes: vec!["team:a".parse().unwrap()],
        model: "gpt-4o-mini".into(),
        provider: "openai".into(),
        cost: NanoUsd(100),
        usage: Usage {
            output_tokens: 1,
            ..Usage::default()
        },
        reserved: true,
        at_unix_ms: 0,
        started_at_unix_ms: Some(-5),
        requested_model: Some("gpt-4o".into()),
        downgraded_by: Some("team-a".into()),
        api: Some("chat_completions".into()),
        breakdown: Some(tollgate_model::CostBreakdown {
            output: NanoUsd(100),
            ..Default::default()
        }),
        cut_off: true,
        billed: Some(true),
        lease_id: None,
        lease_usd: None,
        lease_tokens: None,
    }
}

fn ids(body: &[u8]) -> Vec<String> {
    let batch: SettleBatch = serde_json::from_slice(body).unwrap();
    batch
        .settlements
        .into_iter()
        .map(|s| s.request_id)
        .collect()
}

fn limits(capacity: usize, max_batch: usize) -> SettleLimits {
    SettleLimits {
        capacity,
        max_batch,
        max_delay: Duration::from_millis(1000),
        max_backoff: Duration::from_secs(30),
    }
}

#[test]
fn a_full_batch_goes_at_once_and_a_partial_one_after_the_delay() {
    let mut q = SettleQueue::new(limits(100, 3));
    for i in 0..4 {
        q.push(charge(i), t(0));
    }
    assert_eq!(ids(&q.due(t(0)).unwrap()), ["r0", "r1", "r2"]);
    assert_eq!(q.due(t(0)), None, "one batch in flight at a time");
    assert_eq!(q.answered(Some(200), t(10)), PostOutcome::Done);
    assert_eq!(q.due(t(500)), None, "r3 has not waited long enough");
    assert_eq!(ids(&q.due(t(1000)).unwrap()), ["r3"]);
}

#[test]
fn a_failed_post_is_retried_first_after_a_growing_backoff() {
    let mut q = SettleQueue::new(limits(100, 2));
    for i in 0..3 {
        q.push(charge(i), t(0));
    }
    let first = ids(&q.due(t(0)).unwrap());
    assert_eq!(q.answered(Some(503), t(0)), PostOutcome::Retry);
    assert_eq!(q.due(t(50)), None, "backing off 100 ms");
    assert_eq!(
        ids(&q.due(t(100)).unwrap()),
        first,
        "the same charges, in the same order"
    );
    q.answered(Some(504), t(100));
    assert_eq!(q.due(t(250)), None, "backing off 200 ms now");
    assert!(q.due(t(300)).is_some());
    q.answered(Some(200), t(300));
    assert_eq!(ids(&q.due(t(2000)).unwrap()), ["r2"]);
    assert_eq!(q.dropped(), 0);
}

#[test]
fn a_413_halves_the_batch() {
    let mut q = SettleQueue::new(limits(100, 4));
    for i in 0..4 {
        q.push(charge(i), t(0));
    }
    q.due(t(0)).unwrap();
    q.answered(Some(413), t(0));
    assert_eq!(ids(&q.due(t(1000)).unwrap()).len(), 2);
}

#[test]
fn a_full_queue_drops_and_counts_new_charges() {
    let mut q = SettleQueue::new(limits(2, 10));
    assert!(q.push(charge(0), t(0)) && q.push(charge(1), t(0)));
    assert!(!q.push(charge(2), t(0)));
    assert_eq!((q.len(), q.dropped()), (2, 1));
}

#[test]
fn a_400_is_bisected_down_to_the_bad_settlement_which_alone_is_dropped() {
    let mut q = SettleQueue::new(limits(100, 4));
    for i in 0..4 {
        q.push(charge(i), t(0));
    }
    // The control plane refuses any batch holding r2.
    let mut posted = Vec::new();
    let mut now = 0;
    while let Some(body) = q.due(t(now)) {
        let batch = ids(&body);
        let status = if batch.iter().any(|id| id == "r2") {
            400
        } else {
            200
        };
        if q.answered(Some(status), t(now)) == PostOutcome::Done {
            posted.extend(batch);
        }
        now += 1000;
        assert!(now < 100_000, "bisection must end");
    }
    assert_eq!(posted, ["r0", "r1", "r3"]);
    assert_eq!((q.rejected(), q.len()), (1, 0));
}

#[test]
fn a_control_plane_that_refuses_the_ledger_fields_gets_the_same_charges_without_them() {
    let mut q = SettleQueue::new(limits(100, 2));
    for i in 0..4 {
        q.push(charge(i), t(0));
    }
    // An older control plane: any field it does not know is a 400.
    let older = |body: &[u8]| {
        let text = String::from_utf8_lossy(body);
        if text.contains("breakdown") || text.contains("requested_model") {
            400
        } else {
            200
        }
    };
    let mut posted = Vec::new();
    let mut statuses = Vec::new();
    while let Some(body) = q.due(t(0)) {
        let status = older(&body);
        statuses.push(status);
        if q.answered(Some(status), t(0)) == PostOutcome::Done {
            let batch: SettleBatch = serde_json::from_slice(&body).unwrap();
            // The previous release's form: the charge whole, the ledger's fields gone.
            assert!(batch.settlements.iter().all(|s| s.cost == NanoUsd(100)
                && s.usage.output_tokens == 1
                && s.breakdown.is_none()
                && !s.cut_off));
            posted.extend(ids(&body));
        }
    }
    // One refused post, then every batch (the refused one first) in the older form.
    assert_eq!(statuses, [400, 200, 200]);
    assert_eq!(posted, ["r0", "r1", "r2", "r3"]);
    assert_eq!(q.rejected(), 0);
    // After the hold, the current form is tried again.
    q.push(charge(9), t(0));
    let later = t(0) + TimeDelta::from_std(LEGACY_HOLD).unwrap();
    let body = q.due(later).unwrap();
    assert!(String::from_utf8_lossy(&body).contains("breakdown"));
}
