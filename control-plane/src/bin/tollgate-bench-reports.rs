//! Reports benchmark: loads a month of ledger history (default 1 000 000 calls over 30 days,
//! 50 teams, 20 models, 3 providers) into a real `redis-server` through the store's settle
//! path (each call writes its record and its hour and day rollups in the settlement's atomic
//! step), then times the report API over real HTTP:
//! - a month's report by team × model (day rollups),
//! - a day's report by hour (hour rollups),
//! - the same day by hour and team (hour rollups plus the derived no-team group),
//! - a month's chargeback by team, shared proportionally.
//!
//! Run: `cargo run --release -p tollgate-control-plane --bin tollgate-bench-reports
//! [-- --calls 1000000 --runs 20 --redis-server /usr/bin/redis-server]`

// Rates and latencies are timing statistics, not money.
#![allow(clippy::float_arithmetic)]

mod bench_support;

use std::sync::Arc;
use std::time::Instant;

use bench_support::{REDIS_SERVER, RedisServer, Service, arg, summary_ms};

use chrono::{DateTime, Utc};
use tollgate_control_plane::alerts::anomaly_task::AnomalySettings;
use tollgate_control_plane::auth::Auth;
use tollgate_control_plane::ledger::{CallOutcome, RecordSource, RequestRecord, TokenCounts};
use tollgate_control_plane::state::AppState;
use tollgate_control_plane::store::{SettleOp, Store};

const TEAMS: u64 = 50;
const MODELS: u64 = 20;
const PROVIDERS: [&str; 3] = ["openai", "anthropic", "google"];
/// The bench's "now": history is the 30 days before it.
const NOW: &str = "2026-12-01T00:00:00Z";
const DAY_MS: i64 = 86_400_000;

struct Args {
    calls: u64,
    runs: usize,
    redis_server: String,
}

fn args() -> Args {
    Args {
        calls: arg("--calls", 1_000_000),
        runs: arg("--runs", 20),
        redis_server: arg("--redis-server", REDIS_SERVER.to_owned()),
    }
}

/// A small deterministic generator (SplitMix64), so every run loads the same history.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Call `i` of `n`, spread evenly over the 30 days before `now_ms`.
fn call(i: u64, n: u64, now_ms: i64) -> SettleOp {
    let r = mix(i);
    let team = r % TEAMS;
    let model = (r >> 8) % MODELS;
    let span = 30 * DAY_MS;
    let offset = i64::try_from(i).unwrap_or(0) * span / i64::try_from(n.max(1)).unwrap_or(1);
    let ended = now_ms - span + offset;
    let input = i64::try_from((r >> 16) % 4_000 + 100).unwrap_or(100);
    let output = i64::try_from((r >> 32) % 1_000 + 10).unwrap_or(10);
    // About 2.5 and 10 USD per million input and output tokens, in nano-USD.
    let cost = input * 2_500 + output * 10_000;
    // One call in ten carries no team: the reports' unallocated spend. Decided on bits the
    // team does not use (with `r % 10`, the teams divisible by 10 never appeared).
    let mut scopes = vec!["org:acme".to_owned()];
    if !(r >> 40).is_multiple_of(10) {
        scopes.push(format!("team:t{team:02}"));
    }
    let id = format!("bench-{i}");
    let record = RequestRecord {
        request_id: id.clone(),
        started_at_ms: ended - 800,
        ended_at_ms: ended,
        recorded_at_ms: 0,
        scopes: scopes.iter().filter_map(|s| s.parse().ok()).collect(),
        provider: PROVIDERS[usize::try_from(model % 3).unwrap_or(0)].to_owned(),
        api: Some("chat_completions".into()),
        requested_model: format!("model-{model:02}"),
        charged_model: format!("model-{model:02}"),
        tokens: TokenCounts {
            uncached_input: input,
            output,
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
    SettleOp {
        request_id: id,
        request_tag: "acme".into(),
        lines: Vec::new(),
        cost_nanos: cost,
        tokens: input + output,
        now_ms: ended,
        dedupe_ttl_ms: 60_000,
        ledger: Some(record),
    }
}

async fn load(store: &Arc<dyn Store>, n: u64, now_ms: i64) -> Result<(), String> {
    const TASKS: u64 = 4;
    const BATCH: u64 = 64;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = t * BATCH;
            while i < n {
                let ops: Vec<SettleOp> = (i..(i + BATCH).min(n))
                    .map(|j| call(j, n, now_ms))
                    .collect();
                store.settle_many(&ops).await.map_err(|e| e.to_string())?;
                i += TASKS * BATCH;
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    // Loaded = every call counted in its rollups (the rollup pass, as the control plane's
    // upkeep runs it).
    store.ledger_upkeep().await.map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "loaded {n} calls through Store::settle_many and the rollup pass in {secs:.1} s ({:.0} settlements/s)",
        n as f64 / secs
    );
    Ok(())
}

async fn time(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
    runs: usize,
) -> Result<(), String> {
    let mut ms = Vec::with_capacity(runs);
    let mut rows = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let r = http
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status();
        let v: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        if !status.is_success() {
            return Err(format!("{path}: {status} {v}"));
        }
        rows = v["rows"].as_array().map_or(0, Vec::len);
    }
    println!(
        "{path}\n    {rows} rows; over {runs} runs: {}",
        summary_ms(&mut ms)
    );
    Ok(())
}

async fn bench(a: Args) -> Result<(), String> {
    let server = RedisServer::start(&a.redis_server)?;
    let store = server.store("bench", 10_000)?;
    let now: DateTime<Utc> = NOW.parse().map_err(|e| format!("{e}"))?;
    load(&store, a.calls, now.timestamp_millis()).await?;

    let token = "bench-admin";
    let mut state = AppState::new(
        store,
        Auth::new(vec![token.into()], vec!["dp".into()]),
        1_000,
    )?;
    state.clock = Arc::new(move || now);
    // The anomaly detector's first pass over the loaded month takes seconds of CPU and would
    // run beside the timed reports (tollgate-bench-anomaly measures it).
    state.anomaly_settings = Arc::new(AnomalySettings {
        enabled: false,
        ..AnomalySettings::default()
    });
    let service = Service::start(state).await?;
    let base = service.base.clone();
    let http = reqwest::Client::new();
    println!("report latency over HTTP (the service and redis-server on this machine):");
    for path in [
        "/v1/reports/spend?from=2026-11-01&to=2026-12-01&group_by=team,model",
        "/v1/reports/spend?from=2026-11-30&to=2026-12-01&bucket=hour",
        "/v1/reports/spend?from=2026-11-30&to=2026-12-01&bucket=hour&group_by=team",
        "/v1/reports/chargeback?from=2026-11-01&to=2026-12-01&by=team&allocation=proportional",
    ] {
        time(&http, &base, token, path, a.runs).await?;
    }
    service.stop().await;
    Ok(())
}

fn main() -> std::process::ExitCode {
    bench_support::main_two_workers("tollgate-bench-reports", bench(args()))
}
