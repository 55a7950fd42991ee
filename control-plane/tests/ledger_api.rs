//! `/v1/ledger/…` over real HTTP on both stores: import (idempotent, never touching budget
//! counters), streamed exports that re-import, and bad input answered 400 naming the field.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};
use support::RedisServer;
use support::app::{TestApp, redis_store};
use tollgate_control_plane::store::Store;
use tollgate_control_plane::store::memory::MemoryStore;

/// Three calls as LiteLLM's spend logs export them (2027-01-15, before the tests' clock).
const LITELLM: &str = "request_id,call_type,api_key,spend,total_tokens,prompt_tokens,completion_tokens,startTime,endTime,model,model_group,custom_llm_provider,user,team_id,end_user,request_tags
chatcmpl-a1,acompletion,88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b,0.000105,45,20,25,2027-01-15 07:00:00.000,2027-01-15 07:00:01.250,openai/gpt-4o-mini,gpt-4o-mini,openai,alice,team-a,,\"[\"\"prod\"\"]\"
chatcmpl-a2,acompletion,88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b,0.0125,1500,1000,500,2027-01-15 07:10:00.000,2027-01-15 07:10:04.000,openai/gpt-4o,gpt-4o,openai,alice,team-a,,[]
msg-b1,acompletion,5f0c1b7e9d3a2c4b6e8f0a1c3e5d7b9f1a3c5e7d9b1f3a5c7e9d1b3f5a7c9e1d,0.003,300,100,200,2027-01-15 08:30:00.000,2027-01-15 08:30:02.000,anthropic/claude-sonnet-4-5,claude-sonnet-4-5,anthropic,bob,team-b,,
";

async fn import(app: &TestApp, format: &str, body: &str) -> (u16, Value) {
    let r = app
        .admin(Method::POST, &format!("/v1/ledger/import?format={format}"))
        .header("content-type", "text/csv")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn get_text(app: &TestApp, path: &str) -> (u16, String) {
    let r = app.admin(Method::GET, path).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

const DAY: &str = "from=2027-01-15T00:00:00Z&to=2027-01-16T00:00:00Z";

async fn an_import_is_idempotent_leaves_budgets_alone_and_exports_back(store: Arc<dyn Store>) {
    let app = TestApp::start(store, |_| {}).await;
    app.create_budget(
        json!({ "id": "ta", "scopes": ["team:team-a"], "limit_usd": "10", "period": "daily" }),
    )
    .await;
    assert_eq!(
        import(&app, "litellm_csv", LITELLM).await,
        (200, json!({ "imported": 3, "duplicates": 0 }))
    );
    assert_eq!(
        import(&app, "litellm_csv", LITELLM).await,
        (200, json!({ "imported": 0, "duplicates": 3 }))
    );
    let usage = app.budget("ta").await;
    assert_eq!(usage["usage"]["spent_nanos"], 0, "{usage}");

    // Rollups: the calls at their own hours.
    let (s, body) = get_text(
        &app,
        &format!("/v1/ledger/rollups?{DAY}&scope=team:team-a&format=jsonl"),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let rows: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let costs: Vec<(i64, &str, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["bucket_start_ms"].as_i64().unwrap(),
                r["model"].as_str().unwrap(),
                r["cost_nanos"].as_i64().unwrap(),
            )
        })
        .collect();
    let seven = 1_800_000_000_000 / 86_400_000 * 86_400_000 + 7 * 3_600_000;
    assert_eq!(
        costs,
        vec![
            (seven, "gpt-4o", 12_500_000),
            (seven, "gpt-4o-mini", 105_000)
        ]
    );

    // Records as CSV (imports are recorded at the import's time, the tests' clock).
    let (s, csv) = get_text(&app, &format!("/v1/ledger/records?{DAY}")).await;
    assert_eq!(s, 200, "{csv}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[0].starts_with("request_id,started_at,ended_at,recorded_at,scopes,"));
    assert!(
        lines[1].starts_with("chatcmpl-a1,2027-01-15T07:00:00.000Z,2027-01-15T07:00:01.250Z,"),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains(",105000,0.000105,"), "{}", lines[1]);

    // The export is Tollgate's import format: it loads into another control plane whole.
    let other = TestApp::memory().await;
    assert_eq!(
        import(&other, "tollgate_csv", &csv).await,
        (200, json!({ "imported": 3, "duplicates": 0 }))
    );
    let (_, again) = get_text(&other, &format!("/v1/ledger/records?{DAY}&format=jsonl")).await;
    let first: Value = serde_json::from_str(again.lines().next().unwrap()).unwrap();
    assert_eq!(first["request_id"], "chatcmpl-a1");
    assert_eq!(first["cost_nanos"], 105_000);
    assert_eq!(first["source"], "import");
    assert_eq!(
        first["scopes"],
        json!([
            "team:team-a",
            "user:alice",
            "key:88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
            "tag:prod"
        ])
    );
    // And its JSON lines load too.
    let third = TestApp::memory().await;
    assert_eq!(
        import(&third, "tollgate_jsonl", &again).await,
        (200, json!({ "imported": 3, "duplicates": 0 }))
    );
    other.stop().await;
    third.stop().await;
    app.stop().await;
}

async fn bad_ranges_formats_and_rows_get_400_naming_the_field(store: Arc<dyn Store>) {
    let app = TestApp::start(store, |_| {}).await;
    let field = |body: &str| -> String {
        let v: Value = serde_json::from_str(body).unwrap();
        v["error"]["field"].as_str().unwrap_or_default().to_owned()
    };
    for (path, want) in [
        ("/v1/ledger/records?to=2027-01-16T00:00:00Z", "from"),
        ("/v1/ledger/records?from=2027-01-15T00:00:00Z", "to"),
        (
            "/v1/ledger/records?from=yesterday&to=2027-01-16T00:00:00Z",
            "from",
        ),
        (
            "/v1/ledger/records?from=2027-01-16T00:00:00Z&to=2027-01-15T00:00:00Z",
            "to",
        ),
        (
            "/v1/ledger/records?from=2020-01-01T00:00:00Z&to=2027-01-15T00:00:00Z",
            "to",
        ),
        (
            "/v1/ledger/records?from=2027-01-15T00:00:00Z&to=2027-01-16T00:00:00Z&format=xml",
            "format",
        ),
        (
            "/v1/ledger/records?from=2027-01-15T00:00:00Z&to=2027-01-16T00:00:00Z&cursor=x",
            "",
        ),
        (
            "/v1/ledger/rollups?from=2026-01-01T00:00:00Z&to=2027-01-15T00:00:00Z",
            "to",
        ),
        (
            "/v1/ledger/rollups?from=2027-01-15T00:00:00Z&to=2027-01-16T00:00:00Z&granularity=week",
            "granularity",
        ),
        (
            "/v1/ledger/rollups?from=2027-01-15T00:00:00Z&to=2027-01-16T00:00:00Z&scope=squad:x",
            "scope",
        ),
    ] {
        let (s, body) = get_text(&app, path).await;
        if want.is_empty() {
            // An unknown parameter is not an error.
            assert_eq!(s, 200, "{path}: {body}");
            continue;
        }
        assert_eq!((s, field(&body)), (400, want.to_owned()), "{path}: {body}");
    }
    // A whole year of days is fine; of hours it is too many.
    let (s, _) = get_text(
        &app,
        "/v1/ledger/rollups?from=2026-02-01T00:00:00Z&to=2027-01-15T00:00:00Z&granularity=day",
    )
    .await;
    assert_eq!(s, 200);
    let bad = LITELLM.replace("2027-01-15 08:30:02.000", "soon");
    let (s, body) = import(&app, "litellm_csv", &bad).await;
    assert_eq!(
        (s, body["error"]["field"].as_str()),
        (400, Some("line 4: endTime")),
        "{body}"
    );
    let (s, body) = import(&app, "excel", LITELLM).await;
    assert_eq!(
        (s, body["error"]["field"].as_str()),
        (400, Some("format")),
        "{body}"
    );
    // Nothing of a refused file was imported.
    let (_, csv) = get_text(&app, &format!("/v1/ledger/records?{DAY}")).await;
    assert_eq!(csv.lines().count(), 1, "{csv}");
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
    an_import_is_idempotent_leaves_budgets_alone_and_exports_back,
    bad_ranges_formats_and_rows_get_400_naming_the_field,
);
