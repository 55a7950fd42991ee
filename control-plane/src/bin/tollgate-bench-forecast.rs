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

mod bench_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bench_support::{REDIS_SERVER, RedisServer, arg, summary_ms};

use chrono::{DateTime, TimeDelta, Utc};
use tollgate_control_plane::analytics::forecast::{self, Request, Step};
use tollgate_control_plane::analytics::series::{self, Hours};
use tollgate_control_plane::api::forecasts::for_budgets;
use tollgate_control_plane::ledger::{Granularity, synthetic};
use tollgate_control_plane::store::Store;
use tollgate_control_plane::store::memory::MemoryStore;
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
    Args {
        calls: arg("--calls", 1_000_000),
        budgets: arg("--budgets", 1_000),
        runs: arg("--runs", 5),
        store: arg("--store", "redis".to_owned()),
        redis_server: arg("--redis-server", REDIS_SERVER.to_owned()),
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

async fn bench(a: Args) -> Result<(), String> {
    let (_server, store): (Option<RedisServer>, Arc<dyn Store>) = match a.store.as_str() {
        "memory" => (None, Arc::new(MemoryStore::new())),
        _ => {
            let server = RedisServer::start(&a.redis_server)?;
            let store = server.store("bench", 10_000)?;
            (Some(server), store)
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
        summary_ms(&mut whole)
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
        summary_ms(&mut pure)
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

fn main() -> std::process::ExitCode {
    bench_support::main_two_workers("tollgate-bench-forecast", bench(args()))
}
