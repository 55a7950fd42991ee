//! Leases in real Envoy (issue 21, the filter's side): after a key's first call, its calls
//! are admitted from a lease the workers share, with no reserve, and settled with the
//! lease's id, to the nano-USD; an idle lease goes back to its budget; a budget in `exact`
//! mode is never leased.

use std::time::Duration;

use serde_json::Value;
use tollgate_e2e::charges::{chat_json_usage, cost_nanos};
use tollgate_e2e::stack::{Stack, StackOptions};

use super::{budget, chat_calls_pass};

const LEASED: &str = "wasmcustom.tollgate_admission_total.provider.openai.outcome.leased";
const RESERVED: &str = "wasmcustom.tollgate_admission_total.provider.openai.outcome.allow";

/// `GET /v1/leases`: the leases outstanding.
async fn leases(stack: &Stack) -> Value {
    let text = stack.control_plane.admin_get("/v1/leases").await.unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Waits (polling, up to `within`) until `GET /v1/leases` lists `n` leases.
pub(super) async fn wait_outstanding(stack: &Stack, n: u64, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let list = leases(stack).await;
        if list["outstanding"].as_u64() == Some(n) {
            return list;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} leases expected: {list}\n--- envoy ---\n{}",
            stack.envoy.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn after_its_first_call_a_keys_calls_come_from_one_shared_lease_and_settle_exactly() {
    // Two workers: the one that served the first call asks for the lease; both take from it.
    let stack = Stack::start(StackOptions {
        concurrency: 2,
        ..StackOptions::default()
    })
    .await
    .unwrap();
    stack
        .control_plane
        .create_budget(&budget("leased-budget", "leased", "100"))
        .await
        .unwrap();
    // Reserved on its own; its key wants a lease, asked for on the worker's next tick.
    chat_calls_pass(&stack, "leased", 1).await;
    wait_outstanding(&stack, 1, Duration::from_secs(10)).await;

    const LEASED_CALLS: usize = 12;
    chat_calls_pass(&stack, "leased", LEASED_CALLS).await;
    let reserved = stack.envoy.stat(RESERVED).await.unwrap();
    // Only the first call was reserved (on a loaded machine its reserve may have timed out
    // and failed open instead).
    assert!(reserved.unwrap_or(0) <= 1, "{reserved:?} reserved");
    let leased = stack.envoy.stat(LEASED).await.unwrap();
    assert_eq!(leased, Some(LEASED_CALLS as u64));

    let each = cost_nanos("gpt-4o-mini", &chat_json_usage()).unwrap();
    let calls = i64::try_from(1 + LEASED_CALLS).unwrap();
    stack
        .control_plane
        .wait_spent("leased-budget", calls * each)
        .await
        .unwrap();
    let settled = stack.control_plane.settlements_by_request();
    assert_eq!(settled.len(), 1 + LEASED_CALLS);
    let from_lease: Vec<_> = settled.values().filter(|s| s.lease_id.is_some()).collect();
    assert_eq!(from_lease.len(), LEASED_CALLS);
    assert!(
        from_lease
            .iter()
            .all(|s| s.reserved && s.lease_usd.is_some_and(|u| u.nanos() >= each)),
        "{from_lease:?}"
    );
    let sum: i64 = settled.values().map(|s| s.cost.nanos()).sum();
    assert_eq!(
        sum,
        calls * each,
        "the settled total is the sum of the calls' costs"
    );

    // Unused for a while, the lease goes back: nothing stays held, nothing spent is lost.
    wait_outstanding(&stack, 0, Duration::from_secs(30)).await;
    let usage = stack.control_plane.usage("leased-budget").await.unwrap();
    assert_eq!(usage.spent_nanos, calls * each);
    assert_eq!(usage.reserved_nanos, 0, "{usage:?}");
    assert_eq!(usage.requests, calls);
}

#[tokio::test]
async fn a_budget_in_exact_mode_is_never_leased_and_every_call_is_reserved() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let mut spec = budget("exact-budget", "exact", "100");
    spec["lease"] = "exact".into();
    stack.control_plane.create_budget(&spec).await.unwrap();
    chat_calls_pass(&stack, "exact", 1).await;
    // The first call's key was asked for a lease, and refused as exact.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let refused = r#"tollgate_lease_answers_total{outcome="none",reason="exact"}"#;
    loop {
        let metrics = stack.control_plane.admin_get("/metrics").await.unwrap();
        if metrics.contains(refused) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    chat_calls_pass(&stack, "exact", 3).await;
    assert_eq!(leases(&stack).await["outstanding"], 0);
    assert_eq!(stack.envoy.stat(LEASED).await.unwrap().unwrap_or(0), 0);
    let each = cost_nanos("gpt-4o-mini", &chat_json_usage()).unwrap();
    stack
        .control_plane
        .wait_spent("exact-budget", 4 * each)
        .await
        .unwrap();
    // Each reserved on its own (or, on a loaded machine, failed open after the 250 ms
    // callout timeout): none settled with a lease.
    let settled = stack.control_plane.settlements_by_request();
    assert_eq!(settled.len(), 4);
    assert!(
        settled.values().all(|s| s.lease_id.is_none()),
        "{settled:?}"
    );
}

/// Leases that end 3 s after their grant, released 1 s after that: what expires is seen
/// within a test.
const SHORT_TTLS: Option<(i64, i64)> = Some((3_000, 1_000));

#[tokio::test]
async fn the_unused_part_of_a_lease_held_by_an_envoy_that_dies_goes_back_when_it_expires() {
    let mut stack = Stack::start(StackOptions {
        lease_and_reservation_ttl_ms: SHORT_TTLS,
        ..StackOptions::default()
    })
    .await
    .unwrap();
    stack
        .control_plane
        .create_budget(&budget("dies-budget", "dies", "100"))
        .await
        .unwrap();
    chat_calls_pass(&stack, "dies", 1).await;
    wait_outstanding(&stack, 1, Duration::from_secs(10)).await;
    chat_calls_pass(&stack, "dies", 3).await;
    let each = cost_nanos("gpt-4o-mini", &chat_json_usage()).unwrap();
    stack
        .control_plane
        .wait_spent("dies-budget", 4 * each)
        .await
        .unwrap();
    let usage = stack.control_plane.usage("dies-budget").await.unwrap();
    assert!(usage.reserved_nanos > 0, "the lease holds: {usage:?}");

    // The VM dies holding its lease: nothing returns it.
    stack.envoy.kill().await.unwrap();
    let (ttl, grace) = SHORT_TTLS.unwrap();
    let within = Duration::from_millis(u64::try_from(ttl + grace).unwrap() + 5_000);
    wait_outstanding(&stack, 0, within).await;
    let usage = stack.control_plane.usage("dies-budget").await.unwrap();
    assert_eq!(
        usage.reserved_nanos, 0,
        "the unused part went back: {usage:?}"
    );
    assert_eq!(usage.spent_nanos, 4 * each, "nothing spent was lost");
    assert_eq!(usage.requests, 4);
}

#[tokio::test]
async fn a_lease_outlives_a_control_plane_outage_only_until_it_ends() {
    // Fail closed: once the lease has ended, a call needs the control plane.
    // Long enough for the calls below to be taken from it once the control plane has stopped
    // (no call is admitted in its last second), short enough to see it end.
    let mut stack = Stack::start(StackOptions {
        fail_mode: "closed",
        lease_and_reservation_ttl_ms: Some((6_000, 1_000)),
        ..StackOptions::default()
    })
    .await
    .unwrap();
    stack
        .control_plane
        .create_budget(&budget("outage-budget", "outage", "100"))
        .await
        .unwrap();
    chat_calls_pass(&stack, "outage", 1).await;
    let listed = wait_outstanding(&stack, 1, Duration::from_secs(10)).await;
    let admit_until = listed["leases"][0]["admit_until_ms"].as_i64().unwrap();

    stack.control_plane.stop().await.unwrap();
    // Admitted from the lease with the control plane down.
    chat_calls_pass(&stack, "outage", 2).await;
    // Once it has ended (renewals go unanswered), calls are reserved one by one: 503.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut passed = 2;
    loop {
        let resp = super::chat_call(&stack, "outage").send().await.unwrap();
        let status = resp.status().as_u16();
        let _ = resp.bytes().await;
        let now_ms = i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap();
        match status {
            200 => {
                assert!(now_ms < admit_until, "admitted after its lease ended");
                passed += 1;
            }
            503 => break,
            other => panic!("{other}\n{}", stack.envoy.log()),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "calls were still admitted long after the lease's end"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Back: the queued settlements land, each call charged once, exactly.
    stack.control_plane.start_again().await.unwrap();
    let each = cost_nanos("gpt-4o-mini", &chat_json_usage()).unwrap();
    let calls = 1 + passed;
    stack
        .control_plane
        .wait_spent("outage-budget", calls * each)
        .await
        .unwrap();
    let usage = stack.control_plane.usage("outage-budget").await.unwrap();
    let settled = stack.control_plane.settlements_by_request();
    assert_eq!(
        (
            usage.requests,
            usage.spent_nanos,
            stack.mock.requests().len()
        ),
        (calls, calls * each, usize::try_from(calls).unwrap()),
        "{usage:?}\n{settled:#?}"
    );
}
