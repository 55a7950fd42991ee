//! Importing spend summed per hour or day (Tollgate's hourly rows, OpenAI's Costs and Usage
//! API answers) over real HTTP on both stores: the rows land in the rollups once (never as
//! request records, never in budget counters), reports and chargeback over them are exact to
//! the nano-USD, and bad input is a 400 naming the line and field with nothing imported.
//! On Redis the rollup pass adds the imported rows, so imports racing settlements and passes
//! lose nothing. Forecasts read the imported hours as history.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};
use support::RedisServer;
use support::app::{TestApp, redis_store};
use tollgate_control_plane::ledger::import::SpendRow;
use tollgate_control_plane::ledger::{
    CallOutcome, Granularity, RecordSource, RequestRecord, RollupFilter, RollupQuery, TimeRange,
    TokenCounts,
};
use tollgate_control_plane::store::memory::MemoryStore;
use tollgate_control_plane::store::{SettleOp, SpendOutcome, Store};

/// Three hours of spend on 2027-01-14 (the day before the tests' clock).
const HOURLY: &str = "bucket_start,scopes,provider,model,requests,cost_usd,uncached_input_tokens,cached_input_tokens,output_tokens
2027-01-14T09:00:00Z,team:a project:x,openai,gpt-4o,12,0.06,1000,200,300
2027-01-14T09:00:00Z,team:b,openai,gpt-4o,3,1.000000001,10,0,5
2027-01-14T10:00:00Z,,anthropic,claude-sonnet-4-5,4,0.000000007,7,0,7
";

/// OpenAI's documented answers (tests/fixtures/openai-admin/README.md), their bucket moved
/// from 2024-11-01 to 2027-01-14 so that it is inside the ledger's retention.
fn openai(file: &str) -> String {
    documented(file)
        .replace("1730419200", "1799884800")
        .replace("1730505600", "1799971200")
}

/// OpenAI's documented answer as it is (2024-11-01).
fn documented(file: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/openai-admin/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).unwrap()
}

async fn import(app: &TestApp, format: &str, body: &str) -> (u16, Value) {
    let r = app
        .admin(Method::POST, &format!("/v1/ledger/import?format={format}"))
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let r = app.admin(Method::GET, path).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn get_text(app: &TestApp, path: &str) -> String {
    let r = app.admin(Method::GET, path).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

fn groups(report: &Value) -> Vec<(Value, i64)> {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["group"].clone(), r["cost_nanos"].as_i64().unwrap()))
        .collect()
}

const DAY_14: &str = "from=2027-01-14&to=2027-01-15";

async fn hourly_rows_land_in_the_rollups_once_and_reports_sum_them_exactly(store: Arc<dyn Store>) {
    let app = TestApp::start(store, |_| {}).await;
    app.create_budget(
        json!({ "id": "ta", "scopes": ["team:a"], "limit_usd": "10", "period": "monthly" }),
    )
    .await;
    assert_eq!(
        import(&app, "hourly_csv", HOURLY).await,
        (200, json!({ "imported": 3, "duplicates": 0 }))
    );
    assert_eq!(
        import(&app, "hourly_csv", HOURLY).await,
        (200, json!({ "imported": 0, "duplicates": 3 }))
    );
    // The same rows as JSON lines, in another scope order, are the same rows.
    let jsonl = r#"{"bucket_start":"2027-01-14T09:00:00Z","scopes":["project:x","team:a"],"provider":"openai","model":"gpt-4o","requests":12,"cost_usd":"0.06","tokens":{"uncached_input":1000,"cached_input":200,"output":300}}"#;
    assert_eq!(
        import(&app, "hourly_jsonl", jsonl).await,
        (200, json!({ "imported": 0, "duplicates": 1 }))
    );
    // No budget counter moved, and no request record was written.
    let budget = app.budget("ta").await;
    assert_eq!(budget["usage"]["spent_nanos"], 0, "{budget}");
    let records = get_text(
        &app,
        "/v1/ledger/records?from=2027-01-14T00:00:00Z&to=2027-01-16T00:00:00Z",
    )
    .await;
    assert_eq!(records.lines().count(), 1, "{records}");

    // The rollups, as the rollup pass writes them: each scope of a row, and global.
    let rollups = get_text(
        &app,
        "/v1/ledger/rollups?from=2027-01-14T00:00:00Z&to=2027-01-15T00:00:00Z&format=jsonl",
    )
    .await;
    let rows: Vec<Value> = rollups
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |scope: &str, hour: i64| -> (i64, i64, i64) {
        let r = rows
            .iter()
            .find(|r| r["scope"] == scope && r["bucket_start_ms"] == hour)
            .unwrap_or_else(|| panic!("no {scope} row at {hour}: {rollups}"));
        (
            r["cost_nanos"].as_i64().unwrap(),
            r["requests"].as_i64().unwrap(),
            r["tokens"]["cached_input"].as_i64().unwrap(),
        )
    };
    let nine = 1_799_917_200_000; // 2027-01-14T09:00:00Z
    assert_eq!(find("team:a", nine), (60_000_000, 12, 200));
    assert_eq!(find("project:x", nine), (60_000_000, 12, 200));
    assert_eq!(find("team:b", nine), (1_000_000_001, 3, 0));
    assert_eq!(find("global", nine), (1_060_000_001, 15, 200));
    assert_eq!(find("global", nine + 3_600_000), (7, 4, 0));
    assert_eq!(rows.len(), 5, "{rollups}");

    // A report over them: exact totals, by team (the unallocated spend as `null`), by hour.
    let (s, r) = get(&app, &format!("/v1/reports/spend?{DAY_14}&group_by=team")).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        groups(&r),
        vec![
            (json!({"team":"b"}), 1_000_000_001),
            (json!({"team":"a"}), 60_000_000),
            (json!({"team":null}), 7),
        ]
    );
    assert_eq!(r["total"]["cost_nanos"], 1_060_000_008i64);
    assert_eq!(r["total_usd"], "1.060000008");
    assert_eq!(r["total"]["requests"], 19);
    assert_eq!(r["total"]["tokens"]["uncached_input"], 1_017);
    let (_, by_hour) = get(
        &app,
        "/v1/reports/spend?from=2027-01-14T00:00:00Z&to=2027-01-15T00:00:00Z&bucket=hour",
    )
    .await;
    assert_eq!(by_hour["source"], "hour_rollups");
    assert_eq!(
        by_hour["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["cost_nanos"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![1_060_000_001, 7]
    );
    // Chargeback by team sees the same history.
    let (s, c) = get(&app, &format!("/v1/reports/chargeback?{DAY_14}&by=team")).await;
    assert_eq!(s, 200, "{c}");
    let keyed: Vec<(Value, i64)> = c["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["key"].clone(), r["cost_nanos"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        keyed,
        vec![
            (json!("b"), 1_000_000_001),
            (json!("a"), 60_000_000),
            (Value::Null, 7)
        ]
    );
    app.stop().await;
}

async fn openai_costs_and_usage_answers_add_up_in_reports(store: Arc<dyn Store>) {
    let app = TestApp::start(store, |_| {}).await;
    assert_eq!(
        import(&app, "openai_costs", &openai("costs-grouped-page.json")).await,
        (200, json!({ "imported": 1, "duplicates": 0 }))
    );
    assert_eq!(
        import(
            &app,
            "openai_usage_completions",
            &openai("usage-completions-grouped-page.json")
        )
        .await,
        (
            200,
            json!({ "imported": 1, "duplicates": 0, "rows_without_cost": 1 })
        )
    );
    assert_eq!(
        import(&app, "openai_costs", &openai("costs-grouped-page.json")).await,
        (200, json!({ "imported": 0, "duplicates": 1 }))
    );
    // The project's day: the cost from the Costs answer, tokens and requests from the Usage
    // answer.
    let (s, r) = get(
        &app,
        &format!("/v1/reports/spend?{DAY_14}&group_by=project"),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        groups(&r),
        vec![(json!({"project":"proj_abc"}), 60_000_000)]
    );
    assert_eq!(r["total"]["requests"], 5);
    assert_eq!(r["total"]["tokens"]["uncached_input"], 1_300);
    assert_eq!(r["total"]["tokens"]["cached_input"], 4_000);
    assert_eq!(r["total"]["tokens"]["output"], 1_200);
    // By model, then by user (only the usage was grouped by user).
    let (_, m) = get(&app, &format!("/v1/reports/spend?{DAY_14}&group_by=model")).await;
    assert_eq!(
        groups(&m),
        vec![
            (json!({"model":"Image models"}), 60_000_000),
            (json!({"model":"gpt-4o-mini-2024-07-18"}), 0),
        ]
    );
    // The day's cost spread over its hours: $0.06 / 24 each, summing back exactly.
    let (_, h) = get(
        &app,
        "/v1/reports/spend?from=2027-01-14T00:00:00Z&to=2027-01-15T00:00:00Z&bucket=hour&model=Image%20models",
    )
    .await;
    let hours: Vec<i64> = h["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cost_nanos"].as_i64().unwrap())
        .collect();
    assert_eq!(hours, vec![2_500_000; 24], "{h}");

    // A bad page: 400 naming the page's line and the field; nothing of it imported.
    let page = openai("costs-page.json");
    for (body, field) in [
        (
            page.replace("0.06", "-0.06"),
            "line 1: data[0].results[0].amount.value",
        ),
        (
            page.replace("1799971200", "1799928000"),
            "line 1: data[0].end_time",
        ),
        (
            format!("{page}\n{}", page.replace("\"bucket\"", "\"bucket_list\"")),
            "line 25: data[0].object",
        ),
    ] {
        let (s, e) = import(&app, "openai_costs", &body).await;
        assert_eq!((s, e["error"]["field"].as_str()), (400, Some(field)), "{e}");
    }
    let (_, after) = get(&app, &format!("/v1/reports/spend?{DAY_14}")).await;
    assert_eq!(after["total"]["cost_nanos"], 60_000_000);
    // The answer as documented is from 2024-11-01: older than the 400 days of daily rollups
    // the ledger keeps, so nothing is written, and the answer says so.
    assert_eq!(
        import(&app, "openai_costs", &documented("costs-page.json")).await,
        (200, json!({ "imported": 0, "duplicates": 0, "too_old": 1 }))
    );
    app.stop().await;
}

/// Anthropic's documented cost and usage reports (their day moved from 2025-08-01 to
/// 2027-01-14): the cost in cents lands exact, the tokens by kind beside it.
async fn anthropic_cost_and_usage_reports_add_up_in_reports(store: Arc<dyn Store>) {
    let app = TestApp::start(store, |_| {}).await;
    let anthropic = |file: &str| {
        let path = format!(
            "{}/tests/fixtures/anthropic-admin/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(path)
            .unwrap()
            .replace("2025-08-01T00:00:00Z", "2027-01-14T00:00:00Z")
            .replace("2025-08-02T00:00:00Z", "2027-01-15T00:00:00Z")
    };
    let cost = anthropic("cost-report-page.json");
    let usage = anthropic("usage-report-messages-page.json");
    assert_eq!(
        import(&app, "anthropic_cost_report", &cost).await,
        (200, json!({ "imported": 1, "duplicates": 0 }))
    );
    assert_eq!(
        import(&app, "anthropic_usage_messages", &usage).await,
        (
            200,
            json!({ "imported": 1, "duplicates": 0, "rows_without_cost": 1 })
        )
    );
    assert_eq!(
        import(&app, "anthropic_cost_report", &cost).await,
        (200, json!({ "imported": 0, "duplicates": 1 }))
    );
    let (s, r) = get(
        &app,
        &format!("/v1/reports/spend?{DAY_14}&group_by=project,model"),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    // "123.78912" cents = $1.2378912, the workspace's; its tokens beside it.
    assert_eq!(
        groups(&r),
        vec![(
            json!({"project":"wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ","model":"claude-sonnet-4-20250514"}),
            1_237_891_200
        )]
    );
    assert_eq!(r["total_usd"], "1.2378912");
    let t = &r["total"]["tokens"];
    assert_eq!(
        (
            &t["uncached_input"],
            &t["cached_input"],
            &t["cache_write_5m"],
            &t["cache_write_1h"],
            &t["output"]
        ),
        (
            &json!(1_500),
            &json!(200),
            &json!(500),
            &json!(1_000),
            &json!(500)
        )
    );
    let (s, e) = import(
        &app,
        "anthropic_cost_report",
        &cost.replace("\"USD\"", "\"EUR\""),
    )
    .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (400, Some("line 1: data[0].results[0].currency")),
        "{e}"
    );
    app.stop().await;
}

async fn bad_hourly_files_are_refused_whole_naming_line_and_field(store: Arc<dyn Store>) {
    let app = TestApp::start(store, |_| {}).await;
    let cases = [
        (
            "hourly_csv",
            HOURLY.replace("10:00:00Z", "10:30:00Z"),
            "line 4: bucket_start",
        ),
        (
            "hourly_csv",
            HOURLY.replace(",0.06,", ",-0.06,"),
            "line 2: cost_usd",
        ),
        (
            "hourly_csv",
            HOURLY.replace("2027-01-14T10", "2027-03-14T10"),
            "row 3: bucket_start",
        ),
        (
            "hourly_csv",
            format!("{HOURLY}{}", HOURLY.lines().nth(2).unwrap().replace("1.000000001", "2")),
            "line 5: row",
        ),
        (
            "hourly_jsonl",
            r#"{"bucket_start":"2027-01-14T09:00:00Z","provider":"openai","model":"gpt-4o","cost":"1"}"#.to_owned(),
            "line 1: cost",
        ),
    ];
    for (format, body, field) in cases {
        let (s, e) = import(&app, format, &body).await;
        assert_eq!(
            (s, e["error"]["field"].as_str()),
            (400, Some(field)),
            "{body}: {e}"
        );
    }
    let (_, r) = get(&app, &format!("/v1/reports/spend?{DAY_14}")).await;
    assert_eq!(r["total"]["cost_nanos"], 0, "{r}");
    app.stop().await;
}

/// Ten days of a dollar an hour by team:a, imported as hourly rows up to the tests' clock
/// (2027-01-15T08:00Z, a Friday): a scope's forecast sums the imported spend of its period.
async fn a_forecast_reads_imported_hours_as_history(store: Arc<dyn Store>) {
    let app = TestApp::start(store, |_| {}).await;
    let mut csv = String::from("bucket_start,scopes,provider,model,requests,cost_usd\n");
    for h in (1..=240).rev() {
        let at = support::app::T0_MS - h * 3_600_000;
        csv.push_str(&format!("{at},team:a,openai,gpt-4o,1,1\n"));
    }
    assert_eq!(
        import(&app, "hourly_csv", &csv).await,
        (200, json!({ "imported": 240, "duplicates": 0 }))
    );
    let (s, f) = get(&app, "/v1/forecasts?scope=team:a&period=weekly").await;
    assert_eq!(s, 200, "{f}");
    let sc = &f["scope"]["forecast"];
    // The week began Monday 11th 00:00, 104 hours before the clock.
    assert_eq!(sc["period_start"], "2027-01-11T00:00:00Z");
    assert_eq!(sc["spent_nanos"], 104_000_000_000i64, "{sc}");
    assert_eq!(sc["burn_rate"]["last_24h_usd_per_hour"], json!(1.0), "{sc}");
    app.stop().await;
}

/// Rows of two orgs (two hash tags, two slots of a Redis Cluster) in one file: each org's
/// rows are written under its own tag and the report sums both.
async fn rows_of_several_orgs_import_under_their_own_tags(store: Arc<dyn Store>) {
    let app = TestApp::start(store, |_| {}).await;
    let csv = "bucket_start,scopes,provider,model,requests,cost_nanos
2027-01-14T09:00:00Z,org:acme team:a,openai,gpt-4o,1,5
2027-01-14T09:00:00Z,org:beta team:b,openai,gpt-4o,1,7
2027-01-14T11:00:00Z,org:acme,anthropic,claude-sonnet-4-5,2,11
";
    assert_eq!(
        import(&app, "hourly_csv", csv).await,
        (200, json!({ "imported": 3, "duplicates": 0 }))
    );
    assert_eq!(
        import(&app, "hourly_csv", csv).await,
        (200, json!({ "imported": 0, "duplicates": 3 }))
    );
    let (s, r) = get(&app, &format!("/v1/reports/spend?{DAY_14}&group_by=org")).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        groups(&r),
        vec![(json!({"org":"acme"}), 16), (json!({"org":"beta"}), 7)]
    );
    assert_eq!(r["total"]["requests"], 4);
    app.stop().await;
}

fn record(id: &str, ended_ms: i64) -> RequestRecord {
    RequestRecord {
        request_id: id.into(),
        started_at_ms: ended_ms - 1_000,
        ended_at_ms: ended_ms,
        recorded_at_ms: 0,
        scopes: vec!["team:a".parse().unwrap()],
        provider: "openai".into(),
        api: None,
        requested_model: "gpt-4o".into(),
        charged_model: "gpt-4o".into(),
        tokens: TokenCounts {
            output: 1,
            ..TokenCounts::default()
        },
        cost_nanos: 1,
        breakdown: None,
        estimated: false,
        outcome: CallOutcome::Allowed,
        deny_reason: None,
        budget_id: None,
        source: RecordSource::Live,
    }
}

fn spend_row(i: usize, hour_ms: i64) -> SpendRow {
    SpendRow {
        id: format!("race:{i}"),
        bucket_start_ms: hour_ms,
        granularity: Granularity::Hour,
        scopes: vec!["team:a".parse().unwrap()],
        provider: "openai".into(),
        model: "gpt-4o".into(),
        cost_nanos: 1_000,
        tokens: TokenCounts {
            output: 10,
            ..TokenCounts::default()
        },
        requests: 2,
    }
}

/// Settlements, imports and rollup passes at once, into the same rollup rows: every one is
/// counted exactly once (on Redis the pass is the rows' only writer).
async fn imports_racing_settlements_and_rollup_passes_lose_nothing(store: Arc<dyn Store>) {
    let now = support::app::T0_MS;
    let hour = Granularity::Hour.bucket_start(now - 3 * 3_600_000);
    let settles = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..40 {
                let op = SettleOp {
                    request_id: format!("s{i}"),
                    request_tag: "global".into(),
                    lines: Vec::new(),
                    cost_nanos: 1,
                    tokens: 1,
                    now_ms: now,
                    dedupe_ttl_ms: 60_000,
                    ledger: Some(record(&format!("s{i}"), hour + 60_000)),
                };
                store.settle_many(&[op]).await.unwrap();
            }
        })
    };
    let imports = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..40 {
                // Each row twice: the second adds nothing.
                let rows = [spend_row(i, hour), spend_row(i, hour)];
                let added = store
                    .import_spend("global", &rows, now, 60_000)
                    .await
                    .unwrap();
                assert_eq!(added, vec![SpendOutcome::Added, SpendOutcome::Duplicate]);
            }
        })
    };
    let passes = {
        let store = store.clone();
        tokio::spawn(async move {
            for _ in 0..40 {
                store.ledger_upkeep().await.unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    settles.await.unwrap();
    imports.await.unwrap();
    passes.await.unwrap();
    let rows = store
        .rollups(&RollupQuery {
            range: TimeRange::new(hour, hour + 3_600_000).unwrap(),
            filter: RollupFilter {
                scopes: vec!["team:a".parse().unwrap()],
                ..RollupFilter::default()
            },
            granularity: Granularity::Hour,
            now_ms: now,
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(
        (r.cost_nanos, r.requests, r.tokens.output),
        (40 + 40 * 1_000, 40 + 40 * 2, 40 + 40 * 10)
    );
    // The day row holds the same.
    let days = store
        .rollups(&RollupQuery {
            range: TimeRange::new(hour, hour + 1).unwrap(),
            filter: RollupFilter {
                scopes: vec!["team:a".parse().unwrap()],
                ..RollupFilter::default()
            },
            granularity: Granularity::Day,
            now_ms: now,
        })
        .await
        .unwrap();
    assert_eq!(days[0].cost_nanos, 40_040);
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
    hourly_rows_land_in_the_rollups_once_and_reports_sum_them_exactly,
    openai_costs_and_usage_answers_add_up_in_reports,
    anthropic_cost_and_usage_reports_add_up_in_reports,
    bad_hourly_files_are_refused_whole_naming_line_and_field,
    imports_racing_settlements_and_rollup_passes_lose_nothing,
    a_forecast_reads_imported_hours_as_history,
);

mod rows_of_several_orgs_import_under_their_own_tags {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_memory() {
        super::rows_of_several_orgs_import_under_their_own_tags(Arc::new(MemoryStore::new())).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_cluster() {
        let cluster = support::topologies::Cluster::start();
        let store = support::cluster_store(&cluster);
        super::rows_of_several_orgs_import_under_their_own_tags(Arc::new(store)).await;
        drop(cluster);
    }
}
