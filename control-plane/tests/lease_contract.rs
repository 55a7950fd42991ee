//! The lease contract (docs/leases.md), on both stores: every test runs against the
//! in-memory store, a real redis-server on a free port and a real 3-node Redis Cluster.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use tollgate_control_plane::store::memory::MemoryStore;
use tollgate_control_plane::store::{
    LeaseAmounts, LeaseMeta, LeaseOp, LeaseOutcome, LeaseTakeOp, Line, ReserveOp, ReserveOutcome,
    SettleOp, SettleOutcome, Store,
};
use tollgate_model::wire::v1::DenyReason;

use support::lines::{NOW, line};

/// What a lease holds after its admit-until passes, until it is released.
const GRACE_MS: i64 = 60_000;
const TTL_MS: i64 = 30_000;

fn amounts(usd_nanos: i64, tokens: i64, requests: i64) -> LeaseAmounts {
    LeaseAmounts {
        usd_nanos,
        tokens,
        requests,
    }
}

fn grant(id: &str, lines: &[Line], a: LeaseAmounts) -> LeaseOp {
    LeaseOp {
        lease_id: format!("{id}@acme"),
        tag: "acme".into(),
        lines: lines.to_vec(),
        amounts: a,
        renew: false,
        now_ms: NOW,
        admit_until_ms: NOW + TTL_MS,
        release_at_ms: NOW + TTL_MS + GRACE_MS,
        meta: LeaseMeta {
            holder: "vm-1".into(),
            scopes: vec!["org:acme".into(), "team:a".into()],
            model: "gpt-4o".into(),
            provider: "openai".into(),
            budgets: lines.iter().map(|l| l.budget_id.clone()).collect(),
            granted_at_ms: NOW,
        },
    }
}

fn take(id: &str, a: LeaseAmounts, returned: bool) -> LeaseTakeOp {
    LeaseTakeOp {
        lease_id: format!("{id}@acme"),
        tag: "acme".into(),
        amounts: a,
        returned,
        now_ms: NOW + 1_000,
    }
}

/// A line limiting requests only (10), no USD limit.
fn requests_line(id: &str) -> Line {
    Line {
        limit_nanos: None,
        limit_requests: Some(10),
        ..line(id)
    }
}

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

/// The settle of a leased call: no reservation record, charged on the lines given.
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

async fn a_lease_holds_its_amounts_on_every_window_and_reserves_see_them(s: Arc<dyn Store>) {
    let l = [line("usd"), requests_line("req")];
    let o = s.lease(&grant("l1", &l, amounts(400, 0, 3))).await.unwrap();
    assert_eq!(o, LeaseOutcome::Granted(amounts(400, 0, 3)));
    for x in &l {
        let c = s.counters(x).await.unwrap();
        assert_eq!(
            (
                c.reserved_nanos,
                c.reserved_requests,
                c.requests,
                c.spent_nanos
            ),
            (400, 3, 0, 0),
            "{}",
            x.budget_id
        );
    }
    // 400 held: a reserve of 601 passes the USD limit of 1 000.
    let o = s.reserve(&reserve("r1", &l[..1], 601)).await.unwrap();
    assert!(matches!(
        o,
        ReserveOutcome::Refused {
            reason: DenyReason::Usd,
            ..
        }
    ));
    // 3 requests held of 10: seven reserves pass, the eighth is refused.
    for i in 0..7 {
        let o = s
            .reserve(&reserve(&format!("q{i}"), &l[1..], 1))
            .await
            .unwrap();
        assert!(matches!(o, ReserveOutcome::Reserved { .. }), "{i}: {o:?}");
    }
    let o = s.reserve(&reserve("q7", &l[1..], 1)).await.unwrap();
    assert!(matches!(
        o,
        ReserveOutcome::Refused {
            reason: DenyReason::Requests,
            ..
        }
    ));
}

async fn a_lease_with_no_room_on_one_window_holds_nothing_anywhere(s: Arc<dyn Store>) {
    let mut tight = line("tight");
    tight.limit_nanos = Some(300);
    let l = [line("wide"), tight];
    let o = s.lease(&grant("l1", &l, amounts(400, 0, 0))).await.unwrap();
    assert!(matches!(
        o,
        LeaseOutcome::Refused {
            line: 1,
            reason: DenyReason::Usd,
            ..
        }
    ));
    for x in &l {
        assert_eq!(s.counters(x).await.unwrap().reserved_nanos, 0);
    }
    assert!(s.leases(NOW).await.unwrap().is_empty());
}

async fn a_settled_leased_call_moves_from_the_lease_to_spent_once(s: Arc<dyn Store>) {
    let l = [line("usd"), requests_line("req")];
    s.lease(&grant("l1", &l, amounts(400, 0, 3))).await.unwrap();
    // The call took 150 from the lease and cost 120: the settle charges it (and counts the
    // request), the take moves its 150 and one request out of the lease.
    let o = s.settle(&settle("call-1", &l, 120)).await.unwrap();
    assert!(matches!(o, SettleOutcome::Applied { .. }));
    let taken = s.lease_take(&take("l1", amounts(150, 0, 1), false)).await;
    assert_eq!(taken.unwrap(), Some(amounts(150, 0, 1)));
    assert_eq!(
        s.settle(&settle("call-1", &l, 120)).await.unwrap(),
        SettleOutcome::Duplicate
    );
    for x in &l {
        let c = s.counters(x).await.unwrap();
        assert_eq!(
            (
                c.spent_nanos,
                c.reserved_nanos,
                c.requests,
                c.reserved_requests
            ),
            (120, 250, 1, 2),
            "{}",
            x.budget_id
        );
    }
    let listed = s.leases(NOW + 1_000).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].held, amounts(250, 0, 2));
    assert_eq!(listed[0].meta.holder, "vm-1");
    assert_eq!(listed[0].meta.budgets, vec!["usd", "req"]);
    assert!(!listed[0].returned);
}

async fn a_return_gives_back_the_unused_part_and_the_rest_waits_for_its_calls(s: Arc<dyn Store>) {
    let l = [line("b")];
    s.lease(&grant("l1", &l, amounts(400, 0, 0))).await.unwrap();
    // 100 is in flight; 300 returned.
    let back = s.lease_take(&take("l1", amounts(300, 0, 0), true)).await;
    assert_eq!(back.unwrap(), Some(amounts(300, 0, 0)));
    assert_eq!(s.counters(&l[0]).await.unwrap().reserved_nanos, 100);
    let listed = s.leases(NOW + 1_000).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].returned);
    // A returned lease is never topped up again.
    let renew = LeaseOp {
        renew: true,
        ..grant("l1", &l, amounts(400, 0, 0))
    };
    assert_eq!(s.lease(&renew).await.unwrap(), LeaseOutcome::Gone);
    // The call in flight settles: nothing is held any more and the lease is gone.
    s.lease_take(&take("l1", amounts(100, 0, 0), false))
        .await
        .unwrap();
    assert_eq!(s.counters(&l[0]).await.unwrap().reserved_nanos, 0);
    assert!(s.leases(NOW + 1_000).await.unwrap().is_empty());
    assert_eq!(
        s.lease_take(&take("l1", amounts(1, 0, 0), true))
            .await
            .unwrap(),
        None
    );
}

async fn a_take_never_takes_more_than_the_lease_holds(s: Arc<dyn Store>) {
    let l = [line("b")];
    s.lease(&grant("l1", &l, amounts(400, 0, 2))).await.unwrap();
    let taken = s.lease_take(&take("l1", amounts(900, 5, 3), false)).await;
    assert_eq!(taken.unwrap(), Some(amounts(400, 0, 2)));
    let c = s.counters(&l[0]).await.unwrap();
    assert_eq!((c.reserved_nanos, c.reserved_requests), (0, 0));
}

async fn a_renewal_tops_up_to_two_slices_and_moves_the_times_on(s: Arc<dyn Store>) {
    let l = [line("b")];
    s.lease(&grant("l1", &l, amounts(200, 0, 0))).await.unwrap();
    let renew = |add_ms: i64| LeaseOp {
        renew: true,
        now_ms: NOW + add_ms,
        admit_until_ms: NOW + add_ms + TTL_MS,
        release_at_ms: NOW + add_ms + TTL_MS + GRACE_MS,
        ..grant("l1", &l, amounts(200, 0, 0))
    };
    // Nothing used: it holds two slices after one top-up, and no more after another.
    assert_eq!(
        s.lease(&renew(10_000)).await.unwrap(),
        LeaseOutcome::Granted(amounts(200, 0, 0))
    );
    assert_eq!(
        s.lease(&renew(20_000)).await.unwrap(),
        LeaseOutcome::Granted(amounts(0, 0, 0))
    );
    assert_eq!(s.counters(&l[0]).await.unwrap().reserved_nanos, 400);
    let listed = s.leases(NOW + 20_000).await.unwrap();
    assert_eq!(listed[0].admit_until_ms, NOW + 20_000 + TTL_MS);
    assert_eq!(listed[0].release_at_ms, NOW + 20_000 + TTL_MS + GRACE_MS);
    // A renewal over another window (the period rolled over) is not this lease's.
    let mut next = line("b");
    next.window_index += 1;
    let moved = LeaseOp {
        lines: vec![next],
        ..renew(30_000)
    };
    assert_eq!(s.lease(&moved).await.unwrap(), LeaseOutcome::Moved);
    let unknown = LeaseOp {
        lease_id: "nobody@acme".into(),
        ..renew(30_000)
    };
    assert_eq!(s.lease(&unknown).await.unwrap(), LeaseOutcome::Gone);
}

async fn an_expired_lease_returns_its_unused_part_after_the_grace(s: Arc<dyn Store>) {
    let l = [line("b"), requests_line("r")];
    s.lease(&grant("l1", &l, amounts(400, 0, 3))).await.unwrap();
    s.lease_take(&take("l1", amounts(100, 0, 1), false))
        .await
        .unwrap();
    // Past admit-until but inside the grace: still held (a call admitted at the last
    // moment is covered until it settles).
    let held = s.leases(NOW + TTL_MS + GRACE_MS - 1).await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(s.counters(&l[0]).await.unwrap().reserved_nanos, 300);
    // At the release time: the rest comes off every window.
    assert!(s.leases(NOW + TTL_MS + GRACE_MS).await.unwrap().is_empty());
    for x in &l {
        let c = s.counters(x).await.unwrap();
        assert_eq!(
            (c.reserved_nanos, c.reserved_requests, c.reserved_tokens),
            (0, 0, 0)
        );
    }
    assert_eq!(
        s.lease_take(&take("l1", amounts(1, 0, 0), false))
            .await
            .unwrap(),
        None
    );
}

async fn a_reserve_releases_expired_leases_of_its_org_before_it_checks(s: Arc<dyn Store>) {
    let l = [line("b")];
    s.lease(&grant("l1", &l, amounts(900, 0, 0))).await.unwrap();
    // Another lease's grant (memory: any store call) sweeps the expired one first.
    let later = LeaseOp {
        now_ms: NOW + TTL_MS + GRACE_MS,
        admit_until_ms: NOW + 2 * TTL_MS + GRACE_MS,
        release_at_ms: NOW + 2 * TTL_MS + 2 * GRACE_MS,
        ..grant("l2", &l, amounts(900, 0, 0))
    };
    assert_eq!(
        s.lease(&later).await.unwrap(),
        LeaseOutcome::Granted(amounts(900, 0, 0))
    );
    assert_eq!(s.counters(&l[0]).await.unwrap().reserved_nanos, 900);
}

async fn a_window_only_a_lease_holds_survives_a_refused_reserve(s: Arc<dyn Store>) {
    let mut tight = line("tight");
    tight.limit_nanos = Some(10);
    let b = line("b");
    s.lease(&grant("l1", std::slice::from_ref(&b), amounts(400, 0, 0)))
        .await
        .unwrap();
    // The reserve adds its hold on b, is refused by `tight`, and takes the hold off again:
    // b's window must keep the lease's hold (it has no spend and no request of its own).
    let o = s
        .reserve(&reserve("r1", &[b.clone(), tight], 50))
        .await
        .unwrap();
    assert!(matches!(o, ReserveOutcome::Refused { line: 1, .. }));
    assert_eq!(s.counters(&b).await.unwrap().reserved_nanos, 400);
    // An expired reservation released on the same window (before the lease's release
    // time) leaves it too.
    s.reserve(&reserve("r2", std::slice::from_ref(&b), 50))
        .await
        .unwrap();
    let later = ReserveOp {
        now_ms: NOW + 70_000,
        ..reserve("r3", &[line("other")], 1)
    };
    s.reserve(&later).await.unwrap();
    assert_eq!(s.counters(&b).await.unwrap().reserved_nanos, 400);
}

/// 64 tasks race to lease slices of 10 from a budget of exactly 100: never more than 100
/// held, and every grant was held on the window.
async fn sixty_four_racing_grants_never_hold_more_than_the_limit(s: Arc<dyn Store>) {
    let b = Arc::new(Line {
        limit_nanos: None,
        limit_requests: Some(100),
        ..line("race")
    });
    let mut tasks = Vec::new();
    for t in 0..64 {
        let (s, b) = (s.clone(), b.clone());
        tasks.push(tokio::spawn(async move {
            let op = grant(&format!("t{t}"), &[(*b).clone()], amounts(0, 0, 10));
            matches!(s.lease(&op).await.unwrap(), LeaseOutcome::Granted(_))
        }));
    }
    let mut granted = 0;
    for t in tasks {
        granted += i64::from(t.await.unwrap());
    }
    assert_eq!(granted, 10);
    assert_eq!(s.counters(&b).await.unwrap().reserved_requests, 100);
    assert_eq!(s.leases(NOW).await.unwrap().len(), 10);
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
    a_lease_holds_its_amounts_on_every_window_and_reserves_see_them,
    a_lease_with_no_room_on_one_window_holds_nothing_anywhere,
    a_settled_leased_call_moves_from_the_lease_to_spent_once,
    a_return_gives_back_the_unused_part_and_the_rest_waits_for_its_calls,
    a_take_never_takes_more_than_the_lease_holds,
    a_renewal_tops_up_to_two_slices_and_moves_the_times_on,
    an_expired_lease_returns_its_unused_part_after_the_grace,
    a_reserve_releases_expired_leases_of_its_org_before_it_checks,
    a_window_only_a_lease_holds_survives_a_refused_reserve,
    sixty_four_racing_grants_never_hold_more_than_the_limit,
);
