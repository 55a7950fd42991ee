//! Forecast benchmark: loads the synthetic month of ledger history (`ledger::synthetic`:
//! default 1 000 000 calls over 30 days, 50 teams in 5 orgs, 100 projects, 20 models) into a
//! real `redis-server` (or `--store memory`) through the settle path, makes 1 000 budgets
//! (teams, projects and orgs; a quarter limited to one model; monthly, weekly and daily
//! periods) and times `api::forecasts::for_budgets`, the whole forecast of every budget:
//! the rollup reads, one counter read per budget and the forecasts themselves, which are also
//! timed alone on the series already read.
//!
//! Run: `cargo run --release -p tollgate-control-plane --bin tollgate-bench-forecast
//! [-- --calls 1000000 --budgets 1000 --runs 5 --store redis|memory --redis-server PATH]`

// Timings are statistics, not money.
#![allow(clippy::float_arithmetic)]

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use tollgate_control_plane::analytics::forecast::{self, Request, Step};
use tollgate_control_plane::analytics::series::{self, Hours};
use tollgate_control_plane::api::forecasts::for_budgets;
use tollgate_control_plane::ledger::{Granularity, synthetic};
use tollgate_control_plane::store::Store;
use tollgate_control_plane::store::memory::MemoryStore;
use tollgate_control_plane::store::redis::{RedisConfig, RedisStore};
use tollgate_model::PriceTable;
use tollgate_model::budget::{Budget, BudgetSpec};

/// History starts here; "now" is 30 days later, just as it ends.
const START: &str = "2026-11-01T00:00:00Z";

struct Args {
    calls: usize,
    budgets: usize,
    runs: usize,
    store: String,
    redis_server: String,
}

fn args() -> Args {
    let mut a = Args {
        calls: 1_000_000,
        budgets: 1_000,
        runs: 5,
        store: "redis".into(),
        redis_server: "/usr/bin/redis-server".into(),
    };
    let v: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i + 1 < v.len() {
        match v[i].as_str() {
            "--calls" => a.calls = v[i + 1].parse().unwrap_or(a.calls),
            "--budgets" => a.budgets = v[i + 1].parse().unwrap_or(a.budgets),
            "--runs" => a.runs = v[i + 1].parse().unwrap_or(a.runs),
            "--store" => a.store = v[i + 1].clone(),
            "--redis-server" => a.redis_server = v[i + 1].clone(),
            _ => {}
        }
        i += 2;
    }
    a
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Budget `i`: on a team, a project or an org; every fourth limited to one model; one in
/// ten daily (forecast in hours), one in ten weekly, the rest monthly.
fn budget(i: usize) -> Result<Budget, String> {
    let scope = match i % 3 {
        0 => format!("team:t{:02}", i % synthetic::TEAMS),
        1 => format!("project:p{}", i % 100),
        _ => format!("org:o{}", i % 5),
    };
    let period = match i % 10 {
        0 => "daily",
        1 => "weekly",
        _ => "monthly",
    };
    let model = if i.is_multiple_of(4) {
        format!(",\"model\":\"model-{:02}\"", i % synthetic::MODELS)
    } else {
        String::new()
    };
    let json = format!(
        "{{\"id\":\"b{i:04}\",\"scopes\":[\"{scope}\"],\"limit_usd\":\"{}\",\"period\":\"{period}\"{model}}}",
        50 + i * 7
    );
    let spec: BudgetSpec = serde_json::from_str(&json).map_err(|e| e.to_string())?;
    Budget::try_from(spec).map_err(|e| e.to_string())
}

async fn redis(path: &str) -> Result<(Server, Arc<dyn Store>), String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let server = Server(
        Command::new(path)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("{path}: {e} (install redis-server)"))?,
    );
    let store: Arc<dyn Store> = Arc::new(
        RedisStore::new(&RedisConfig {
            url: format!("redis://127.0.0.1:{port}/"),
            key_prefix: "bench".into(),
            timeout_ms: 10_000,
        })
        .map_err(|e| e.to_string())?,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.ping().await.is_err() {
        if Instant::now() > deadline {
            return Err("redis-server did not answer within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((server, store))
}

fn stats(ms: &mut [f64]) -> String {
    ms.sort_by(f64::total_cmp);
    format!(
        "min {:.0} ms, median {:.0} ms, max {:.0} ms",
        ms[0],
        ms[ms.len() / 2],
        ms[ms.len() - 1]
    )
}

async fn bench(a: Args) -> Result<(), String> {
    let (_server, store): (Option<Server>, Arc<dyn Store>) = match a.store.as_str() {
        "memory" => (None, Arc::new(MemoryStore::new())),
        _ => {
            let (s, st) = redis(&a.redis_server).await?;
            (Some(s), st)
        }
    };
    let start: DateTime<Utc> = START.parse().map_err(|e| format!("{e}"))?;
    let now = start + TimeDelta::days(synthetic::DAYS) - TimeDelta::minutes(30);
    let t = Instant::now();
    synthetic::load(store.as_ref(), a.calls, start.timestamp_millis(), 256)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "loaded {} calls into the {} store in {:.1} s",
        a.calls,
        a.store,
        t.elapsed().as_secs_f64()
    );
    let budgets: Vec<Budget> = (0..a.budgets).map(budget).collect::<Result<_, _>>()?;
    let refs: Vec<&Budget> = budgets.iter().collect();
    let prices = PriceTable::shipped().map_err(|e| e.to_string())?;

    let mut whole = Vec::new();
    let mut last = Vec::new();
    for _ in 0..a.runs {
        let t = Instant::now();
        last = for_budgets(store.as_ref(), &prices, &refs, now)
            .await
            .map_err(|e| e.to_string())?;
        whole.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "forecast of every budget ({} budgets: rollup reads, counters, forecasts), {} runs: {}",
        a.budgets,
        a.runs,
        stats(&mut whole)
    );

    // The reads alone, and the forecasts alone on what they read.
    let day_hours = Hours::before(
        DateTime::from_timestamp_millis(Granularity::Day.bucket_start(now.timestamp_millis()))
            .unwrap_or(now),
        Step::Day.history_hours(),
    );
    let t = Instant::now();
    let series = series::read_budgets(
        store.as_ref(),
        &refs,
        &prices,
        day_hours,
        Granularity::Day,
        now,
    )
    .await
    .map_err(|e| e.to_string())?;
    println!(
        "  of which one day-rollup read for all {} budgets: {:.0} ms",
        a.budgets,
        t.elapsed().as_secs_f64() * 1e3
    );
    let mut pure = Vec::new();
    for _ in 0..a.runs {
        let t = Instant::now();
        for (b, h) in refs.iter().zip(&series) {
            let w = series::period_of(b, now);
            std::hint::black_box(forecast::forecast(&Request {
                now,
                period_start: w.start,
                period_end: w.end,
                history: h,
                spent_nanos: 0,
                limit_nanos: b.limit.map(|l| l.0),
            }));
        }
        pure.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "  the forecasts alone (pure functions, one core): {}",
        stats(&mut pure)
    );

    let mut methods: BTreeMap<String, usize> = BTreeMap::new();
    let mut smape: Vec<f64> = Vec::new();
    let mut runout = 0;
    for f in &last {
        *methods
            .entry(format!("{:?}", f.forecast.method))
            .or_default() += 1;
        if let Some(b) = &f.forecast.backtest {
            smape.push(b.smape_pct);
        }
        runout += usize::from(f.forecast.runout.status == forecast::RunoutStatus::BeforePeriodEnd);
    }
    smape.sort_by(f64::total_cmp);
    println!(
        "methods chosen {methods:?}; backtest sMAPE median {:.1} %; {runout} budgets run out before period end",
        smape.get(smape.len() / 2).copied().unwrap_or(f64::NAN)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match bench(args()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tollgate-bench-forecast: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
