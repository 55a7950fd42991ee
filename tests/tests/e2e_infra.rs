//! The end-to-end suite's own parts, checked before anything relies on them: Redis keeps its
//! AOF data across a kill and restart, the control plane comes back on the same port with its
//! budgets, settle batches are recorded, and the venv's provider SDKs import and talk to a
//! server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use serde_json::{Value, json};
use tollgate_e2e::control_plane::{ControlPlane, StoreChoice};
use tollgate_e2e::mock_provider::MockProvider;
use tollgate_e2e::redis_server::{Persistence, RedisServer};
use tollgate_e2e::{charges, paths, python};
use tollgate_model::wire::v1::SettleBatch;

fn budget(id: &str, team: &str) -> Value {
    json!({"id": id, "scopes": [format!("team:{team}")], "limit_usd": "10", "period": "monthly"})
}

/// One unreserved settlement (as after a fail-open admission) of `cost` nano-USD.
fn settle_batch(request_id: &str, team: &str, cost: i64) -> SettleBatch {
    serde_json::from_value(json!({"settlements": [{
        "request_id": request_id,
        "scopes": [format!("team:{team}")],
        // A model the control plane's table lacks: it then charges the filter's cost as sent,
        // which these tests choose (a model it prices, it re-prices from the usage).
        "model": "model-only-the-filter-prices",
        "provider": "openai",
        "cost": cost,
        "usage": {"uncached_input_tokens": 10, "output_tokens": 5},
        "reserved": false,
        "at_unix_ms": charges::now_unix_ms(),
    }]}))
    .unwrap()
}

#[tokio::test]
async fn redis_restarted_with_aof_keeps_every_acknowledged_write_on_the_same_port() {
    let mut redis = RedisServer::start(Persistence::AppendOnly).await.unwrap();
    let port = redis.port();
    assert_eq!(redis.command("SET e2e:k v1").await.unwrap(), "+OK\r\n");
    redis.restart().await.unwrap();
    assert_eq!(redis.port(), port);
    assert_eq!(redis.command("GET e2e:k").await.unwrap(), "$2\r\nv1\r\n");
    assert!(
        redis.dir().join("appendonlydir").is_dir(),
        "{}",
        redis.log()
    );
}

#[tokio::test]
async fn redis_without_persistence_comes_back_empty() {
    let mut redis = RedisServer::start(Persistence::None).await.unwrap();
    assert_eq!(redis.command("SET e2e:k v1").await.unwrap(), "+OK\r\n");
    redis.stop().await.unwrap();
    assert!(!redis.is_running());
    assert!(redis.command("PING").await.is_err(), "still answering");
    redis.restart().await.unwrap();
    assert_eq!(redis.command("GET e2e:k").await.unwrap(), "$-1\r\n");
}

#[tokio::test]
async fn the_control_plane_on_redis_keeps_budgets_and_charges_across_a_redis_restart() {
    let mut redis = RedisServer::start(Persistence::AppendOnly).await.unwrap();
    let cp = ControlPlane::start(StoreChoice::Redis(redis.url()))
        .await
        .unwrap();
    cp.create_budget(&budget("infra-redis", "infra"))
        .await
        .unwrap();
    let first = cp
        .settle(&settle_batch("r-1", "infra", 1_234))
        .await
        .unwrap();
    assert_eq!((first.applied, first.duplicates), (1, 0));
    redis.restart().await.unwrap();
    // The store reconnects on its own; its first command after the kill may fail (503).
    let usage = cp
        .wait_usage("infra-redis", std::time::Duration::from_secs(10), |u| {
            u.spent_nanos == 1_234
        })
        .await
        .unwrap();
    assert_eq!(usage.requests, 1);
    let replay = cp
        .settle(&settle_batch("r-1", "infra", 1_234))
        .await
        .unwrap();
    assert_eq!(
        (replay.applied, replay.duplicates),
        (0, 1),
        "dedupe marker lost"
    );
    assert_eq!(cp.settle_batches().len(), 2, "both batches recorded");
}

#[tokio::test]
async fn the_control_plane_stops_and_starts_again_on_the_same_port_with_its_store() {
    let mut cp = ControlPlane::start(StoreChoice::Memory).await.unwrap();
    let port = cp.port();
    cp.create_budget(&budget("infra-mem", "infra"))
        .await
        .unwrap();
    cp.settle(&settle_batch("r-1", "infra", 99)).await.unwrap();
    cp.stop().await.unwrap();
    assert!(!cp.is_running());
    let refused = reqwest::get(format!("{}/healthz", cp.url())).await;
    assert!(refused.is_err(), "still serving: {refused:?}");
    cp.start_again().await.unwrap();
    assert_eq!(cp.port(), port);
    let usage = cp.usage("infra-mem").await.unwrap();
    assert_eq!(usage.spent_nanos, 99);
    assert!(
        cp.start_again().await.is_err(),
        "a second start must refuse"
    );
    let recorded = cp.settlements();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].request_id, "r-1");
}

#[tokio::test]
async fn the_venv_has_the_pinned_provider_sdks() {
    let pins =
        std::fs::read_to_string(paths::workspace_root().join("scripts/requirements.txt")).unwrap();
    let run = python::run(
        "import openai, anthropic; print(f'openai=={openai.__version__}'); print(f'anthropic=={anthropic.__version__}')",
        &[],
    )
    .await
    .unwrap();
    assert!(run.ok(), "{run}");
    for line in run.stdout.lines() {
        assert!(
            pins.lines().any(|p| p.trim() == line),
            "{line} is not pinned in scripts/requirements.txt:\n{pins}"
        );
    }
    assert_eq!(run.stdout.lines().count(), 2, "{run}");
}

#[tokio::test]
async fn the_openai_sdk_reads_a_recorded_answer_through_the_python_helper() {
    let mock = MockProvider::start(paths::fixtures_dir()).await.unwrap();
    let base = format!("http://{}/v1", mock.addr);
    let run = python::run(
        r#"
import os, openai
client = openai.OpenAI(base_url=os.environ["BASE_URL"], api_key="sk-test", max_retries=0)
r = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
print(r.usage.prompt_tokens, r.usage.completion_tokens)
"#,
        &[("BASE_URL", &base)],
    )
    .await
    .unwrap();
    assert!(run.ok(), "{run}");
    let usage = charges::fixture_usage("openai-chat-cache-reasoning").unwrap();
    let prompt = usage.uncached_input_tokens + usage.cached_input_tokens;
    assert_eq!(
        run.stdout.trim(),
        format!("{prompt} {}", usage.output_tokens),
        "{run}"
    );
    assert_eq!(mock.requests().len(), 1);
}
