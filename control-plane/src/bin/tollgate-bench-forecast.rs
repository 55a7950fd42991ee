//! Forecast benchmark: loads the synthetic month of ledger history (`ledger::synthetic`:
//! default 1 000 000 calls over 30 days, 50 teams in 5 orgs, 100 projects, 20 models) into a
//! real `redis-server` (or `--store memory`) through the settle path (4 loaders, then the
//! rollup pass), makes 1 000 budgets (teams, projects and orgs; a quarter limited to one
//! model; monthly, weekly and daily periods) and times, runs interleaved (the order
//! alternating, so both see the same load):
//! - `api::forecasts::for_budgets`, the whole forecast of every budget as the API runs it
//!   (the rollup reads, one batched counter read, the fits on every core, one per distinct
//!   series);
//! - the same sequence done the way it was before (a counter read per budget, every budget
//!   fitted on one core), for comparison;
//! - the parts: each rollup read, the counters read one by one and batched, the pure
//!   forecasts on one core, on every core, and on every core with shared fits.
//!
//! The load average is printed at the start and the end: figures on a loaded machine are not
//! quiet-machine figures.
//!
//! Run: `cargo run --release -p tollgate-control-plane --bin tollgate-bench-forecast
//! [-- --calls 1000000 --budgets 1000 --runs 5 --store redis|memory --redis-server PATH]`

// Timings are statistics, not money.
#![allow(clippy::float_arithmetic)]

mod bench_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bench_support::{
    REDIS_SERVER, RedisServer, arg, load_average, load_synthetic, percentile, process_cpu_us,
    summary_ms,
};

use chrono::{DateTime, TimeDelta, Utc};
use tollgate_control_plane::admission::line_for;
use tollgate_control_plane::analytics::forecast::{self, Request, Step};
use tollgate_control_plane::analytics::series::{self, Hourly, Hours};
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

/// The history a forecast at `step` reads (as `api::forecasts` reads it): the last week of
/// hours, or eight weeks of day rows up to today's UTC midnight.
fn history(now: DateTime<Utc>, step: Step) -> (Hours, Granularity) {
    match step {
        Step::Hour => (Hours::before(now, step.history_hours()), Granularity::Hour),
        Step::Day => (
            Hours::before(
                DateTime::from_timestamp_millis(
                    Granularity::Day.bucket_start(now.timestamp_millis()),
                )
                .unwrap_or(now),
                step.history_hours(),
            ),
            Granularity::Day,
        ),
    }
}

fn step_of(b: &Budget, now: DateTime<Utc>) -> Step {
    let w = series::period_of(b, now);
    Step::for_period(w.start, w.end)
}

/// Every budget's series, each step's budgets read together (as `for_budgets` reads them),
/// in the order of `refs`; the milliseconds each step's read took.
async fn read_all(
    store: &dyn Store,
    prices: &PriceTable,
    refs: &[&Budget],
    now: DateTime<Utc>,
) -> Result<(Vec<Hourly>, [f64; 2]), String> {
    let mut all: Vec<Option<Hourly>> = vec![None; refs.len()];
    let mut ms = [0.0; 2];
    for (k, step) in [Step::Hour, Step::Day].into_iter().enumerate() {
        let idx: Vec<usize> = (0..refs.len())
            .filter(|&i| step_of(refs[i], now) == step)
            .collect();
        let these: Vec<&Budget> = idx.iter().map(|&i| refs[i]).collect();
        let (hours, g) = history(now, step);
        let t = Instant::now();
        let read = series::read_budgets(store, &these, prices, hours, g, now)
            .await
            .map_err(|e| e.to_string())?;
        ms[k] = t.elapsed().as_secs_f64() * 1e3;
        for (i, h) in idx.into_iter().zip(read) {
            all[i] = Some(h);
        }
    }
    let all = all.into_iter().collect::<Option<Vec<_>>>();
    Ok((all.ok_or("a budget without a series")?, ms))
}

/// The whole forecast as it was done before: the same reads, then per budget one counter
/// read and one forecast, all on this thread.
async fn before(
    store: &dyn Store,
    prices: &PriceTable,
    refs: &[&Budget],
    now: DateTime<Utc>,
) -> Result<(), String> {
    let (series, _) = read_all(store, prices, refs, now).await?;
    for (b, h) in refs.iter().zip(&series) {
        let (line, w) = line_for(b, now);
        let c = store.counters(&line).await.map_err(|e| e.to_string())?;
        std::hint::black_box(forecast::forecast(&Request {
            now,
            period_start: w.start,
            period_end: w.end,
            history: h,
            spent_nanos: c.spent_nanos,
            limit_nanos: b.limit.map(|l| l.0),
        }));
    }
    Ok(())
}

/// Every request forecast alone (no fit shared) on `threads` threads, slices taken in turn.
fn each_on(reqs: &[Request<'_>], threads: usize) {
    std::thread::scope(|s| {
        for k in 0..threads {
            s.spawn(move || {
                for r in reqs.iter().skip(k).step_by(threads) {
                    std::hint::black_box(forecast::forecast(r));
                }
            });
        }
    });
}

/// Wall and process-CPU milliseconds of a timed step's runs. On a machine shared with other
/// work the wall time follows the load; the CPU time is the work done (all threads).
#[derive(Default)]
struct Timed {
    wall: Vec<f64>,
    cpu: Vec<f64>,
}

/// When a timed step started.
struct Started(Instant, f64);

impl Started {
    fn cpu_ms(&self) -> f64 {
        (process_cpu_us() - self.1) / 1e3
    }
}

impl Timed {
    fn start() -> Started {
        Started(Instant::now(), process_cpu_us())
    }

    fn stop(&mut self, s: Started) {
        self.wall.push(s.0.elapsed().as_secs_f64() * 1e3);
        self.cpu.push(s.cpu_ms());
    }

    fn summary(&mut self) -> String {
        let wall = summary_ms(&mut self.wall);
        if self.cpu.is_empty() {
            return format!("wall {wall}");
        }
        self.cpu.sort_by(f64::total_cmp);
        format!(
            "wall {wall}; CPU median {:.1} ms",
            percentile(&self.cpu, 50)
        )
    }
}

async fn bench(a: Args) -> Result<(), String> {
    println!("load average at start: {}", load_average());
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
    let (load_s, upkeep_s) = load_synthetic(&store, a.calls, start.timestamp_millis(), 4).await?;
    println!(
        "loaded {} calls into the {} store in {load_s:.1} s (4 loaders), rollup pass {upkeep_s:.1} s",
        a.calls, a.store,
    );
    let budgets: Vec<Budget> = (0..a.budgets).map(budget).collect::<Result<_, _>>()?;
    let refs: Vec<&Budget> = budgets.iter().collect();
    let prices = PriceTable::shipped().map_err(|e| e.to_string())?;
    let cores = forecast::batch::cores();

    // Warm-up (connections, scripts, caches), not timed.
    let mut last = for_budgets(store.as_ref(), &prices, &refs, now)
        .await
        .map_err(|e| e.to_string())?;
    let (mut now_ms, mut before_ms) = (Timed::default(), Timed::default());
    for run in 0..a.runs {
        for first in [run % 2 == 0, run % 2 != 0] {
            let t = Timed::start();
            if first {
                last = for_budgets(store.as_ref(), &prices, &refs, now)
                    .await
                    .map_err(|e| e.to_string())?;
                now_ms.stop(t);
            } else {
                before(store.as_ref(), &prices, &refs, now).await?;
                before_ms.stop(t);
            }
        }
    }
    println!(
        "forecast of every budget ({} budgets over {} calls, {} store: rollup reads, counters, forecasts), {} runs each, interleaved:",
        a.budgets, a.calls, a.store, a.runs
    );
    println!(
        "  for_budgets (batched counters, fits on {cores} cores, shared): {}",
        now_ms.summary()
    );
    println!(
        "  as before (a counter read per budget, one core): {}",
        before_ms.summary()
    );

    // The parts, each timed `runs` times.
    let (series, _) = read_all(store.as_ref(), &prices, &refs, now).await?;
    let lines: Vec<_> = refs.iter().map(|b| line_for(b, now)).collect();
    let line_only: Vec<_> = lines.iter().map(|(l, _)| l.clone()).collect();
    let reqs: Vec<Request<'_>> = refs
        .iter()
        .zip(&series)
        .zip(&lines)
        .map(|((b, h), (_, w))| Request {
            now,
            period_start: w.start,
            period_end: w.end,
            history: h,
            spent_nanos: 0,
            limit_nanos: b.limit.map(|l| l.0),
        })
        .collect();
    let mut parts: [Timed; 7] = Default::default();
    for _ in 0..a.runs {
        let t = Timed::start();
        let (_, ms) = read_all(store.as_ref(), &prices, &refs, now).await?;
        parts[0].cpu.push(t.cpu_ms());
        // Each read's wall time; their CPU together, on the hour read's line.
        parts[0].wall.push(ms[0]);
        parts[1].wall.push(ms[1]);
        let t = Timed::start();
        for l in &line_only {
            store.counters(l).await.map_err(|e| e.to_string())?;
        }
        parts[2].stop(t);
        let t = Timed::start();
        store
            .counters_many(&line_only)
            .await
            .map_err(|e| e.to_string())?;
        parts[3].stop(t);
        let t = Timed::start();
        each_on(&reqs, 1);
        parts[4].stop(t);
        let t = Timed::start();
        each_on(&reqs, cores);
        parts[5].stop(t);
        let t = Timed::start();
        std::hint::black_box(forecast::batch::forecast_all(&reqs, cores));
        parts[6].stop(t);
    }
    let hour_budgets = refs
        .iter()
        .filter(|b| step_of(b, now) == Step::Hour)
        .count();
    let distinct: std::collections::HashSet<(Step, &[i64])> = refs
        .iter()
        .zip(&series)
        .map(|(b, h)| (step_of(b, now), h.cost_nanos.as_slice()))
        .collect();
    let labels = [
        format!("hour-rollup read ({hour_budgets} budgets forecast in hours)"),
        format!("day-rollup read ({} budgets)", a.budgets - hour_budgets),
        "counters, one read per budget".to_owned(),
        "counters, batched (counters_many)".to_owned(),
        "forecasts alone, each fitted, one core".to_owned(),
        format!("forecasts alone, each fitted, {cores} cores"),
        format!(
            "forecasts alone, {cores} cores, one fit per distinct series ({} distinct)",
            distinct.len()
        ),
    ];
    println!("  the parts, {} runs each:", a.runs);
    for (label, p) in labels.iter().zip(parts.iter_mut()) {
        println!("    {label}: {}", p.summary());
    }

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
    println!("load average at end: {}", load_average());
    Ok(())
}

fn main() -> std::process::ExitCode {
    bench_support::main_two_workers("tollgate-bench-forecast", bench(args()))
}
