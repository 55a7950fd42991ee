//! Reports, chargeback and invoices over real HTTP, on both stores, from ledger records
//! written through the store's settlement path with known times and costs: every total is
//! checked to the nano-USD. The invoice PDF is rendered by poppler (`pdftoppm`) and its text
//! read back (`pdftotext`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::Command;
use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};
use support::RedisServer;
use support::app::{TestApp, redis_store};
use tollgate_control_plane::ledger::{CallOutcome, RecordSource, RequestRecord, TokenCounts};
use tollgate_control_plane::store::memory::MemoryStore;
use tollgate_control_plane::store::{SettleOp, Store};

fn at(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_millis()
}

async fn write(store: &dyn Store, id: &str, scopes: &[&str], model: &str, cost: i64, ended: &str) {
    let ended = at(ended);
    let record = RequestRecord {
        request_id: id.into(),
        started_at_ms: ended - 1_000,
        ended_at_ms: ended,
        recorded_at_ms: 0,
        scopes: scopes.iter().map(|s| s.parse().unwrap()).collect(),
        provider: if model.starts_with("claude") {
            "anthropic"
        } else {
            "openai"
        }
        .into(),
        api: None,
        requested_model: model.into(),
        charged_model: model.into(),
        tokens: TokenCounts {
            uncached_input: 10,
            output: 4,
            ..TokenCounts::default()
        },
        cost_nanos: cost,
        breakdown: None,
        estimated: false,
        outcome: CallOutcome::Allowed,
        deny_reason: None,
        budget_id: None,
        source: RecordSource::Live,
    };
    let op = SettleOp {
        request_id: id.into(),
        request_tag: "global".into(),
        lines: Vec::new(),
        cost_nanos: cost,
        tokens: 14,
        now_ms: ended,
        dedupe_ttl_ms: 3_600_000,
        ledger: Some(record),
    };
    store.settle(&op).await.unwrap();
}

/// Five calls before the test clock (2027-01-15T08:00Z): 1 000 000 116 nano-USD in all.
async fn app_with_history(store: Arc<dyn Store>) -> TestApp {
    let s = store.as_ref();
    write(
        s,
        "r1",
        &["team:a", "project:x"],
        "gpt-4o",
        1_000_000_001,
        "2027-01-14T10:00:00Z",
    )
    .await;
    write(
        s,
        "r2",
        &["team:a"],
        "claude-sonnet-4",
        7,
        "2027-01-14T11:30:00Z",
    )
    .await;
    // 00:30 on the 14th in Berlin, still the 13th in UTC.
    write(s, "r3", &["team:b"], "gpt-4o", 5, "2027-01-13T23:30:00Z").await;
    write(s, "r4", &["user:x"], "gpt-4o", 100, "2027-01-14T05:00:00Z").await;
    write(
        s,
        "r5",
        &["team:b", "tag:department=finance"],
        "gpt-4o",
        3,
        "2027-01-14T06:00:00Z",
    )
    .await;
    TestApp::start(store, |_| {}).await
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let r = app.admin(Method::GET, path).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn rows(report: &Value) -> Vec<(Value, i64)> {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["group"].clone(), r["cost_nanos"].as_i64().unwrap()))
        .collect()
}

async fn spend_by_team_and_model_sums_exactly_from_day_rollups(app: TestApp) {
    let (s, r) = get(
        &app,
        "/v1/reports/spend?from=2027-01-13&to=2027-01-15&group_by=team,model",
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["source"], "day_rollups");
    assert_eq!(
        rows(&r),
        vec![
            (json!({"team":"a","model":"gpt-4o"}), 1_000_000_001),
            (json!({"team":null,"model":"gpt-4o"}), 100),
            (json!({"team":"b","model":"gpt-4o"}), 8),
            (json!({"team":"a","model":"claude-sonnet-4"}), 7),
        ]
    );
    assert_eq!(r["total"]["cost_nanos"], 1_000_000_116i64);
    assert_eq!(r["total_usd"], "1.000000116");
    assert_eq!(r["total"]["requests"], 5);
    assert_eq!(r["total"]["tokens"]["uncached_input"], 50);

    // Top 1 by team: team a, and the rest as one "other" row.
    let (_, r) = get(
        &app,
        "/v1/reports/spend?from=2027-01-13&to=2027-01-15&group_by=team&top=1",
    )
    .await;
    assert_eq!(
        rows(&r),
        vec![
            (json!({"team":"a"}), 1_000_000_008),
            (json!({"team":null}), 108)
        ]
    );
    assert_eq!(r["rows"][1]["other"], true);
    app.stop().await;
}

async fn day_buckets_follow_the_time_zone(app: TestApp) {
    let (_, utc) = get(
        &app,
        "/v1/reports/spend?from=2027-01-13&to=2027-01-15&bucket=day",
    )
    .await;
    let days: Vec<(Value, i64)> = utc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["bucket_start"].clone(), r["cost_nanos"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        days,
        vec![
            (json!("2027-01-13T00:00:00+00:00"), 5),
            (json!("2027-01-14T00:00:00+00:00"), 1_000_000_111)
        ]
    );
    let (s, berlin) = get(
        &app,
        "/v1/reports/spend?from=2027-01-13&to=2027-01-15&bucket=day&tz=Europe/Berlin",
    )
    .await;
    assert_eq!(s, 200, "{berlin}");
    assert_eq!(berlin["source"], "hour_rollups");
    assert_eq!(berlin["rows"].as_array().unwrap().len(), 1, "{berlin}");
    assert_eq!(
        berlin["rows"][0]["bucket_start"],
        "2027-01-14T00:00:00+01:00"
    );
    assert_eq!(berlin["total"]["cost_nanos"], 1_000_000_116i64);
    app.stop().await;
}

async fn two_scope_kinds_are_reported_from_the_records(app: TestApp) {
    let (s, r) = get(
        &app,
        "/v1/reports/spend?from=2027-01-13T00:00:00Z&to=2027-01-15T00:00:00Z&group_by=team,project&model=gpt-4o",
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["source"], "records");
    assert_eq!(
        rows(&r),
        vec![
            (json!({"team":"a","project":"x"}), 1_000_000_001),
            (json!({"team":null,"project":null}), 100),
            (json!({"team":"b","project":null}), 8),
        ]
    );
    assert_eq!(r["total"]["cost_nanos"], 1_000_000_109i64);
    app.stop().await;
}

async fn chargeback_shares_the_unallocated_spend_exactly(app: TestApp) {
    let base = "/v1/reports/chargeback?from=2027-01-13&to=2027-01-15";
    let (s, c) = get(&app, &format!("{base}&by=team")).await;
    assert_eq!(s, 200, "{c}");
    let keyed = |c: &Value| -> Vec<(Value, i64, i64)> {
        c["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["key"].clone(),
                    r["shared_nanos"].as_i64().unwrap(),
                    r["cost_nanos"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        keyed(&c),
        vec![
            (json!("a"), 0, 1_000_000_008),
            (json!("b"), 0, 8),
            (Value::Null, 0, 100)
        ]
    );
    let (_, c) = get(&app, &format!("{base}&by=team&allocation=proportional")).await;
    // 100 over 1 000 000 008 : 8 → 99.9999992 and 0.0000008: the one nano left goes to a.
    assert_eq!(
        keyed(&c),
        vec![
            (json!("a"), 100, 1_000_000_108),
            (json!("b"), 0, 8),
            (Value::Null, -100, 0)
        ]
    );
    assert_eq!(c["total_nanos"], 1_000_000_116i64);
    let (_, d) = get(&app, &format!("{base}&by=department")).await;
    assert_eq!(d["source"], "records");
    assert_eq!(
        keyed(&d),
        vec![(json!("finance"), 0, 3), (Value::Null, 0, 1_000_000_113)]
    );
    app.stop().await;
}

fn pdf_text(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("invoice.pdf");
    std::fs::write(&path, pdf).unwrap();
    let run = |cmd: &mut Command| {
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e} (install poppler-utils: scripts/setup.sh)"));
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    // Rendered to an image by poppler: a PDF it cannot draw fails here.
    run(Command::new("pdftoppm")
        .args(["-r", "40", "-png", "-singlefile"])
        .arg(&path)
        .arg(dir.path().join("page")));
    let png = std::fs::read(dir.path().join("page.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 1_000);
    String::from_utf8(run(Command::new("pdftotext")
        .args(["-layout"])
        .arg(&path)
        .arg("-")))
    .unwrap()
}

async fn an_invoice_renders_the_same_totals_as_json_html_and_pdf(app: TestApp) {
    let base = "/v1/reports/invoice?scope=team:a&from=2027-01-01&to=2027-02-01&tz=Europe/Berlin&markup_pct=10&fee_usd=1";
    let (s, inv) = get(&app, base).await;
    assert_eq!(s, 200, "{inv}");
    // gpt-4o: 1 000 000 001 + 10 % (100 000 000.1 → 100 000 000); claude: 7 + 0.7 → 1.
    let lines: Vec<(Value, i64)> = inv["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["model"].clone(), l["amount_nanos"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        lines,
        vec![
            (json!("gpt-4o"), 1_100_000_001),
            (json!("claude-sonnet-4"), 8)
        ]
    );
    assert_eq!(inv["total_nanos"], 2_100_000_009i64);
    assert_eq!(inv["amount_due_usd"], "2.100000009");
    assert_eq!(inv["number"], "INV-team-a-20270101");

    let r = app
        .admin(Method::GET, &format!("{base}&format=html"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let html = r.text().await.unwrap();
    assert!(
        html.contains("<th>Amount due</th><td class=\"n\">$2.100000009</td>"),
        "{html}"
    );

    let r = app
        .admin(Method::GET, &format!("{base}&format=pdf"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/pdf");
    let text = pdf_text(&r.bytes().await.unwrap());
    assert!(text.contains("Invoice INV-team-a-20270101"), "{text}");
    assert!(text.contains("$1.100000001"), "{text}");
    let due = text
        .lines()
        .find(|l| l.starts_with("Amount due"))
        .unwrap_or_default();
    assert!(due.ends_with("$2.100000009"), "{text}");

    let (_, pre) = get(&app, &format!("{base}&billing=prepaid&credit_usd=2")).await;
    assert_eq!(pre["balance_nanos"], -100_000_009i64);
    assert_eq!(pre["amount_due_nanos"], 100_000_009i64);
    app.stop().await;
}

async fn bad_report_parameters_get_400_naming_the_field(app: TestApp) {
    let cases = [
        (
            "/v1/reports/spend?from=2027-01-13&to=2027-01-15&group_by=team,squad",
            "group_by",
        ),
        ("/v1/reports/spend?to=2027-01-15", "from"),
        ("/v1/reports/spend?from=2027-01-13", "to"),
        ("/v1/reports/spend?from=2027-01-15&to=2027-01-13", "to"),
        ("/v1/reports/spend?from=2025-01-01&to=2027-01-13", "from"),
        (
            "/v1/reports/spend?from=2027-01-13&to=2027-01-15&tz=Mars/Base",
            "tz",
        ),
        (
            "/v1/reports/spend?from=2026-01-01&to=2027-01-01&bucket=hour",
            "bucket",
        ),
        (
            "/v1/reports/spend?from=2027-01-13&to=2027-01-15&bucket=fortnight",
            "bucket",
        ),
        (
            "/v1/reports/spend?from=2027-01-13&to=2027-01-15&scope=squad:x",
            "scope",
        ),
        ("/v1/reports/spend?from=yesterday&to=2027-01-15", "from"),
        ("/v1/reports/chargeback?from=2027-01-13&to=2027-01-15", "by"),
        (
            "/v1/reports/chargeback?from=2027-01-13&to=2027-01-15&by=model",
            "by",
        ),
        (
            "/v1/reports/chargeback?from=2027-01-13&to=2027-01-15&by=team&allocation=even",
            "allocation",
        ),
        ("/v1/reports/invoice?from=2027-01-13&to=2027-01-15", "scope"),
        (
            "/v1/reports/invoice?scope=team:a&from=2027-01-13&to=2027-01-15&markup_pct=2000",
            "markup_pct",
        ),
        (
            "/v1/reports/invoice?scope=team:a&from=2027-01-13&to=2027-01-15&fee_usd=-1",
            "fee_usd",
        ),
        (
            "/v1/reports/invoice?scope=team:a&from=2027-01-13&to=2027-01-15&billing=prepaid",
            "credit_usd",
        ),
        (
            "/v1/reports/invoice?scope=team:a&from=2027-01-13&to=2027-01-15&format=docx",
            "format",
        ),
    ];
    for (path, field) in cases {
        let (s, e) = get(&app, path).await;
        assert_eq!(s, 400, "{path}: {e}");
        assert_eq!(e["error"]["field"], field, "{path}: {e}");
    }
    let (s, e) = get(
        &app,
        "/v1/reports/spend?from=2027-01-13&to=2027-01-15&group_by=team&top=0",
    )
    .await;
    assert_eq!((s, e["error"]["field"].as_str()), (400, Some("top")));
    app.stop().await;
}

/// Runs the real `tollgate` binary against `app` (off the async workers: it blocks).
async fn tollgate(app: &TestApp, args: &[&str]) -> String {
    let base = app.base.clone();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .arg("--url")
            .arg(base)
            .args(args)
            .env("TOLLGATE_ADMIN_TOKEN", support::app::ADMIN)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn the_cli_prints_reports_chargebacks_invoices_and_profiles() {
    let app = app_with_history(Arc::new(MemoryStore::new())).await;
    let range = ["--from", "2027-01-13", "--to", "2027-01-15"];
    let table = tollgate(
        &app,
        &[&["report"][..], &range, &["--group-by", "team"]].concat(),
    )
    .await;
    let total = table.lines().last().unwrap();
    assert!(
        total.starts_with("TOTAL") && total.contains("1.000000116"),
        "{table}"
    );
    let json: Value = serde_json::from_str(
        &tollgate(
            &app,
            &[&["--output", "json", "report"][..], &range].concat(),
        )
        .await,
    )
    .unwrap();
    assert_eq!(json["total"]["cost_nanos"], 1_000_000_116i64);
    let cb = tollgate(
        &app,
        &[&["chargeback"][..], &range, &["--by", "team"]].concat(),
    )
    .await;
    assert!(
        cb.lines()
            .any(|l| l.starts_with("(unallocated)") && l.contains("0.0000001")),
        "{cb}"
    );
    let dir = tempfile::tempdir().unwrap();
    let pdf = dir.path().join("a.pdf");
    let pdf_arg = pdf.to_str().unwrap();
    tollgate(
        &app,
        &[
            &[
                "invoice", "--scope", "team:a", "--format", "pdf", "--out", pdf_arg,
            ][..],
            &range,
        ]
        .concat(),
    )
    .await;
    let text = pdf_text(&std::fs::read(&pdf).unwrap());
    assert!(text.contains("$1.000000008"), "{text}");
    let inv = tollgate(
        &app,
        &[
            &["invoice", "--scope", "team:a", "--fee-usd", "1"][..],
            &range,
        ]
        .concat(),
    )
    .await;
    assert!(inv.lines().any(|l| l == "amount due  2.000000008"), "{inv}");
    let profiles = tollgate(&app, &["profile", "list"]).await;
    assert!(
        profiles
            .lines()
            .any(|l| l.starts_with("enterprise") && l.contains("100000")),
        "{profiles}"
    );
    app.stop().await;
}

async fn a_call_settled_through_admission_is_in_the_report(app: TestApp) {
    use support::app::{reserve_req, settlement};
    let (s, _) = app
        .reserve(&reserve_req("live-1", &["team:live"], "gpt-4o", 2_000))
        .await;
    assert_eq!(s, 200);
    let batch =
        json!({ "settlements": [settlement("live-1", &["team:live"], "gpt-4o", 1_234, true)] });
    let (s, b) = app.settle(&batch).await;
    assert_eq!(s, 200, "{b}");
    // The test clock is 2027-01-15T08:00Z.
    let (s, r) = get(
        &app,
        "/v1/reports/spend?from=2027-01-15&to=2027-01-16&scope=team:live&group_by=model",
    )
    .await;
    assert_eq!(s, 200, "{r}");
    // Priced by the control plane (its table is the price authority), whatever the filter
    // said: usage 100 in × 2500 + 50 out × 10 000 nano.
    assert_eq!(rows(&r), vec![(json!({"model":"gpt-4o"}), 750_000)]);
    app.stop().await;
}

async fn a_team_report_where_calls_carry_one_team_reads_the_rollups(app: TestApp) {
    // Team rows plus (global minus their sum) answer; compare
    // `a_call_carrying_two_teams_is_counted_once_from_the_records`.
    let (_, before) = get(
        &app,
        "/v1/reports/spend?from=2027-01-13&to=2027-01-15&group_by=team",
    )
    .await;
    assert_eq!(before["source"], "day_rollups");
    app.stop().await;
}

async fn two_teams_store() -> TestApp {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    write(
        store.as_ref(),
        "t1",
        &["team:a"],
        "gpt-4o",
        10,
        "2027-01-14T10:00:00Z",
    )
    .await;
    write(
        store.as_ref(),
        "t2",
        &["team:a", "team:b"],
        "gpt-4o",
        5,
        "2027-01-14T11:00:00Z",
    )
    .await;
    TestApp::start(store, |_| {}).await
}

#[tokio::test]
async fn a_call_carrying_two_teams_is_counted_once_from_the_records() {
    let app = two_teams_store().await;
    let (s, r) = get(
        &app,
        "/v1/reports/spend?from=2027-01-13&to=2027-01-15&group_by=team",
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["source"], "records");
    assert_eq!(
        rows(&r),
        vec![(json!({"team":"a"}), 10), (json!({"team":"a+b"}), 5)]
    );
    assert_eq!(r["total"]["cost_nanos"], 15);
    app.stop().await;
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(app_with_history(Arc::new(MemoryStore::new())).await).await;
                }
            )*
        }
        mod redis {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let server = RedisServer::start();
                    super::$name(app_with_history(redis_store(&server.url())).await).await;
                }
            )*
        }
    };
}

on_both_stores!(
    spend_by_team_and_model_sums_exactly_from_day_rollups,
    day_buckets_follow_the_time_zone,
    two_scope_kinds_are_reported_from_the_records,
    chargeback_shares_the_unallocated_spend_exactly,
    an_invoice_renders_the_same_totals_as_json_html_and_pdf,
    bad_report_parameters_get_400_naming_the_field,
    a_call_settled_through_admission_is_in_the_report,
    a_team_report_where_calls_carry_one_team_reads_the_rollups,
);
