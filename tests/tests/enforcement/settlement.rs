//! Settlement: exactly once, whatever happens around it — Redis killed and restarted
//! mid-run, a batch posted twice — and each threshold alert raised once.

use serde_json::json;
use tollgate_e2e::charges::{chat_json_usage, cost_nanos, fixture_usage, now_unix_ms, usd};
use tollgate_e2e::redis_server::Persistence;
use tollgate_e2e::stack::{Stack, StackOptions, StoreKind};
use tollgate_model::wire::v1::SettleBatch;

use super::{budget, chat_calls_pass, openai_chat};

const LOOPS: usize = 4;
const CALLS_PER_LOOP: usize = 10;

#[tokio::test]
async fn a_redis_restart_mid_run_with_aof_loses_no_charge_and_charges_nothing_twice() {
    let mut stack = Stack::start(StackOptions {
        store: StoreKind::Redis(Persistence::AppendOnly),
        ..StackOptions::default()
    })
    .await
    .unwrap();
    stack
        .control_plane
        .create_budget(&budget("redis-restart-budget", "redis-restart", "100"))
        .await
        .unwrap();
    // Paced streams (~6 events, 10 ms apart) keep each call in flight long enough for
    // the restart to land while calls are reserving, streaming and settling.
    let mut loops = Vec::new();
    for _ in 0..LOOPS {
        let requests: Vec<_> = (0..CALLS_PER_LOOP)
            .map(|_| {
                stack
                    .post(
                        "/v1/chat/completions",
                        "redis-restart",
                        "openai-chat-stream-include-usage.sse",
                        &openai_chat("gpt-4o-mini", 256, true),
                    )
                    .header("x-mock-pace-ms", "10")
            })
            .collect();
        loops.push(tokio::spawn(async move {
            let mut ok = 0usize;
            for r in requests {
                if let Ok(resp) = r.send().await
                    && resp.status() == 200
                    && resp.bytes().await.is_ok()
                {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while stack.mock.requests().len() < LOOPS * CALLS_PER_LOOP / 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "calls are not flowing"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let before_restart = stack.mock.requests().len();
    assert!(
        before_restart < LOOPS * CALLS_PER_LOOP,
        "every call was sent before the restart"
    );
    let redis = stack.redis.as_mut().unwrap();
    redis.restart().await.unwrap();
    let mut ok = 0;
    for l in loops {
        ok += l.await.unwrap();
    }
    assert_eq!(
        ok,
        LOOPS * CALLS_PER_LOOP,
        "fail-open keeps every call going"
    );

    let each = cost_nanos(
        "gpt-4o-mini",
        &fixture_usage("openai-chat-stream-include-usage").unwrap(),
    )
    .unwrap();
    let n = i64::try_from(ok).unwrap();
    let u = stack
        .control_plane
        .wait_usage(
            "redis-restart-budget",
            std::time::Duration::from_secs(30),
            |u| u.spent_nanos >= n * each,
        )
        .await
        .unwrap();
    assert_eq!(u.spent_nanos, n * each, "no double charge: {u:?}");
    let settled = stack.control_plane.settlements_by_request();
    assert_eq!(settled.len(), ok);
    eprintln!(
        "restart after {before_restart} calls; {} settle posts, {} settlements unreserved",
        stack.control_plane.settle_batches().len(),
        settled.values().filter(|s| !s.reserved).count()
    );
    let sum: i64 = settled.values().map(|s| s.cost.nanos()).sum();
    assert_eq!(sum, u.spent_nanos, "spent equals the sum of the charges");
}

#[tokio::test]
async fn a_replayed_settle_batch_is_counted_as_duplicates_and_charged_once() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    stack
        .control_plane
        .create_budget(&budget("replay-budget", "replay", "10"))
        .await
        .unwrap();
    chat_calls_pass(&stack, "replay", 1).await;
    let each = cost_nanos("gpt-4o-mini", &chat_json_usage()).unwrap();
    stack
        .control_plane
        .wait_spent("replay-budget", each)
        .await
        .unwrap();

    // The filter's own batch, posted again twice.
    let filters: SettleBatch = stack.control_plane.settle_batches().remove(0);
    let n = u32::try_from(filters.settlements.len()).unwrap();
    for _ in 0..2 {
        let r = stack.control_plane.settle(&filters).await.unwrap();
        assert_eq!((r.applied, r.duplicates), (0, n));
    }
    // A new batch, posted twice: applied, then a duplicate.
    let fresh: SettleBatch = serde_json::from_value(json!({"settlements": [{
        "request_id": "replay-test-1",
        "scopes": ["team:replay"],
        "model": "gpt-4o-mini",
        "provider": "openai",
        "cost": each,
        "usage": {"uncached_input_tokens": 231, "output_tokens": 103},
        "reserved": false,
        "at_unix_ms": now_unix_ms(),
    }]}))
    .unwrap();
    let first = stack.control_plane.settle(&fresh).await.unwrap();
    let again = stack.control_plane.settle(&fresh).await.unwrap();
    assert_eq!((first.applied, first.duplicates), (1, 0));
    assert_eq!((again.applied, again.duplicates), (0, 1));
    let u = stack.control_plane.usage("replay-budget").await.unwrap();
    assert_eq!(u.spent_nanos, 2 * each, "{u:?}");
}

#[tokio::test]
async fn each_threshold_crossing_is_recorded_once() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let each = cost_nanos("gpt-4o-mini", &chat_json_usage()).unwrap();
    // Shadow: never refuses, so four calls take it to 40, 80, 120 and 160 %.
    let mut spec = budget("threshold-budget", "threshold", &usd(each * 5 / 2));
    spec["enforcement"] = json!("shadow");
    spec["thresholds_pct"] = json!([50, 100]);
    stack.control_plane.create_budget(&spec).await.unwrap();
    chat_calls_pass(&stack, "threshold", 4).await;
    let u = stack
        .control_plane
        .wait_spent("threshold-budget", 4 * each)
        .await
        .unwrap();
    assert_eq!(u.thresholds_crossed, vec![50, 100]);
    let alerts = stack.control_plane.alerts().await.unwrap();
    let mut crossed: Vec<u16> = alerts
        .iter()
        .filter(|a| a.budget_id == "threshold-budget")
        .map(|a| a.threshold_pct)
        .collect();
    crossed.sort_unstable();
    assert_eq!(crossed, vec![50, 100], "{alerts:?}");
}

#[tokio::test]
async fn charges_queued_when_envoy_starts_draining_are_posted_during_the_drain() {
    // docs/enforcement.md: Envoy's drain, not the plugin's `on_done`, is when queued charges
    // go. A 2 s batch delay: the charges are still queued when the drain starts.
    let stack = Stack::start(StackOptions {
        settle_max_delay_ms: 2_000,
        ..StackOptions::default()
    })
    .await
    .unwrap();
    stack
        .control_plane
        .create_budget(&budget("drain-budget", "drain", "10"))
        .await
        .unwrap();
    const CALLS: usize = 3;
    chat_calls_pass(&stack, "drain", CALLS).await;
    assert!(
        stack.control_plane.settle_batches().is_empty(),
        "still queued when the drain starts"
    );
    let drain = reqwest::Client::new()
        .post(format!(
            "http://{}/drain_listeners?graceful",
            stack.envoy.admin
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(drain.status(), 200);
    let each = cost_nanos("gpt-4o-mini", &chat_json_usage()).unwrap();
    let n = i64::try_from(CALLS).unwrap();
    let u = stack
        .control_plane
        .wait_spent("drain-budget", n * each)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", stack.envoy.log()));
    assert_eq!(u.spent_nanos, n * each);
    assert_eq!(stack.control_plane.settlements_by_request().len(), CALLS);
}
