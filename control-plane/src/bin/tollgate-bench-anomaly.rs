//! Anomaly benchmark on a real `redis-server` (started on a free loopback port): loads the
//! synthetic month of history (`ledger::synthetic`: `--records` calls, default 1 000 000,
//! over the 30 days before now, 50 teams in 5 orgs, 100 projects, 20 models) through the
//! settle path (4 loaders, then the rollup pass, as the control plane's upkeep runs it), then
//! - times one anomaly pass over every scope and model (`alerts::anomaly_pass::run`, default
//!   settings: 4 weeks of history plus the judged hours, spend and requests), `--runs` times,
//!   with the pass's own CPU and Redis's CPU for it (`INFO cpu`);
//! - runs reserve + settle over HTTP against the control plane (3 budgets on the team,
//!   `--concurrency` clients) for `--secs` seconds without the detector and as long with the
//!   detector's pass running back to back on its own thread, alternated `--rounds` times (so
//!   both see the same load), and prints admission's rate both ways and the detector
//!   thread's CPU time (from `/proc/thread-self/stat`): its CPU share at back-to-back passes
//!   and at the default `interval_ms` (5 minutes).
//!
//! The load average is printed at the start and the end; every figure names the record count.
//! A quick run: `--records 100000 --runs 3 --secs 5 --rounds 1`.
//!
//! Run: `cargo run --release -p tollgate-control-plane --bin tollgate-bench-anomaly
//! [-- --records 1000000 --runs 5 --secs 10 --rounds 2 --concurrency 16 --redis-server PATH]`

// Rates, latencies and CPU shares are timing statistics, not money.
#![allow(clippy::float_arithmetic)]

mod bench_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bench_support::{
    REDIS_SERVER, RedisServer, Service, arg, load_average, load_synthetic, process_cpu_us,
    redis_cpu_us, summary_ms, thread_cpu_secs,
};
use serde_json::json;
use tollgate_control_plane::alerts::anomaly_pass;
use tollgate_control_plane::alerts::anomaly_task::AnomalySettings;
use tollgate_control_plane::auth::Auth;
use tollgate_control_plane::ledger::{RollupFilter, synthetic};
use tollgate_control_plane::state::AppState;
use tollgate_control_plane::store::Store;

const ADMIN: &str = "bench-admin";
const DATAPLANE: &str = "bench-dataplane";

fn wall_now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
}

/// Reserve + settle over HTTP with `concurrency` clients until `stop`; calls done.
async fn admission_load(base: String, concurrency: usize, stop: Arc<AtomicBool>) -> u64 {
    let done = Arc::new(AtomicU64::new(0));
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for c in 0..concurrency {
        let (http, base, stop, done) = (http.clone(), base.clone(), stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("bench-{c}-{i}");
                let now = wall_now().timestamp_millis();
                let reserve = json!({ "request_id": id, "scopes": ["team:t00", "org:o0"],
                    "model": "gpt-4o-mini", "provider": "openai", "estimated_cost": 1000,
                    "estimated_input_tokens": 100, "max_output_tokens": 100, "at_unix_ms": now });
                let settle = json!({ "settlements": [{ "request_id": id, "scopes": ["team:t00", "org:o0"],
                    "model": "gpt-4o-mini", "provider": "openai", "cost": 900,
                    "usage": { "uncached_input_tokens": 100, "output_tokens": 50 },
                    "reserved": true, "at_unix_ms": now }] });
                let ok = async {
                    let r = http.post(format!("{base}/v1/admission/reserve")).bearer_auth(DATAPLANE).json(&reserve).send().await.ok()?;
                    r.status().is_success().then_some(())?;
                    let r = http.post(format!("{base}/v1/admission/settle")).bearer_auth(DATAPLANE).json(&settle).send().await.ok()?;
                    r.status().is_success().then_some(())
                };
                if ok.await.is_some() {
                    done.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    done.load(Ordering::Relaxed)
}

/// What one phase of admission load measured.
#[derive(Default)]
struct Phase {
    /// Reserve + settle pairs completed.
    calls: u64,
    /// Admission's rate, calls/s.
    rate: f64,
    /// The detector thread's CPU seconds, wall seconds (its start to its last pass's end)
    /// and passes.
    thread_cpu: f64,
    thread_wall: f64,
    passes: u64,
    /// The whole control plane's CPU seconds over the phase (the Redis connection's
    /// driver, which parses the detector's replies on the main runtime, included), and
    /// Redis's.
    process_cpu: f64,
    redis_cpu: f64,
}

/// One phase of admission load for `secs`, with or without the detector passing back to
/// back on its own thread.
async fn phase(
    base: String,
    store: Arc<dyn Store>,
    redis: &mut redis::Connection,
    concurrency: usize,
    secs: u64,
    detector: bool,
) -> Phase {
    let (cpu0, redis0) = (process_cpu_us(), redis_cpu_us(redis));
    let stop = Arc::new(AtomicBool::new(false));
    let det = detector.then(|| {
        let (stop, store) = (stop.clone(), store.clone());
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return (0.0, 0.0, 0);
            };
            let (cpu0, t) = (thread_cpu_secs(), Instant::now());
            let mut passes = 0u64;
            rt.block_on(async {
                let s = AnomalySettings::default();
                while !stop.load(Ordering::Relaxed) {
                    let _ =
                        anomaly_pass::run(store.as_ref(), &s, RollupFilter::default(), wall_now())
                            .await;
                    passes += 1;
                }
            });
            (thread_cpu_secs() - cpu0, t.elapsed().as_secs_f64(), passes)
        })
    });
    let t = Instant::now();
    let load = tokio::spawn(admission_load(base, concurrency, stop.clone()));
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let calls = load.await.unwrap_or(0);
    let rate = calls as f64 / t.elapsed().as_secs_f64();
    // Joined off the runtime: a worker blocked in a join would stall the tasks queued on it,
    // the Redis connection's among them, which the detector's last pass may be waiting for.
    let (thread_cpu, thread_wall, passes) = match det {
        Some(h) => tokio::task::spawn_blocking(move || h.join().unwrap_or((0.0, 0.0, 0)))
            .await
            .unwrap_or((0.0, 0.0, 0)),
        None => (0.0, 0.0, 0),
    };
    Phase {
        calls,
        rate,
        thread_cpu,
        thread_wall,
        passes,
        process_cpu: (process_cpu_us() - cpu0) / 1e6,
        redis_cpu: (redis_cpu_us(redis) - redis0) / 1e6,
    }
}

async fn run() -> Result<(), String> {
    let n: usize = arg("--records", 1_000_000);
    let runs: usize = arg("--runs", 5);
    let secs: u64 = arg("--secs", 10);
    let rounds: usize = arg("--rounds", 2);
    let concurrency: usize = arg("--concurrency", 16);
    println!("load average at start: {}", load_average());
    let server = RedisServer::start(&arg("--redis-server", REDIS_SERVER.to_owned()))?;
    let store = server.store("tg", 10_000)?;
    let mut redis = server.connection()?;
    let now = wall_now();
    let start = now.timestamp_millis() - synthetic::DAYS * 86_400_000;
    let (load_s, upkeep_s) = load_synthetic(&store, n, start, 4).await?;
    println!(
        "loaded {n} calls in {load_s:.1} s (4 loaders, {:.0} calls/s), rollup pass {upkeep_s:.1} s",
        n as f64 / load_s
    );

    let settings = AnomalySettings::default();
    let (mut wall, mut cpu, mut redis_cpu) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = None;
    for _ in 0..runs.max(1) {
        let (t, c, r) = (Instant::now(), thread_cpu_secs(), redis_cpu_us(&mut redis));
        let report = anomaly_pass::run(
            store.as_ref(),
            &settings,
            RollupFilter::default(),
            wall_now(),
        )
        .await
        .map_err(|e| e.to_string())?;
        wall.push(t.elapsed().as_secs_f64() * 1e3);
        cpu.push((thread_cpu_secs() - c) * 1e3);
        redis_cpu.push((redis_cpu_us(&mut redis) - r) / 1e3);
        last = Some(report);
    }
    let r = last.ok_or("no pass")?;
    println!(
        "anomaly pass over every scope and model ({n} records; {} series judged, {} skipped, {} incidents), {} runs:",
        r.series_judged,
        r.series_skipped,
        r.anomalies.len(),
        wall.len()
    );
    println!("  wall: {}", summary_ms(&mut wall));
    println!(
        "  control plane CPU (this thread): {}",
        summary_ms(&mut cpu)
    );
    println!("  Redis CPU: {}", summary_ms(&mut redis_cpu));

    // Admission over HTTP, without and then with the detector running back to back.
    let mut state = AppState::new(
        store.clone(),
        Auth::new(vec![ADMIN.into()], vec![DATAPLANE.into()]),
        1_000,
    )?;
    state.anomaly_settings = Arc::new(AnomalySettings {
        enabled: false,
        ..AnomalySettings::default()
    });
    let service = Service::start(state).await?;
    let base = service.base.clone();
    let http = reqwest::Client::new();
    for (id, scope) in [
        ("b-team", "team:t00"),
        ("b-org", "org:o0"),
        ("b-both", "team:t00"),
    ] {
        let r = http
            .post(format!("{base}/v1/budgets"))
            .bearer_auth(ADMIN)
            .json(&json!({ "id": id, "scopes": [scope], "limit_usd": "1000000", "period": "monthly" }))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("budget {id}: {}", r.status()));
        }
    }
    let (mut off, mut on) = (Phase::default(), Phase::default());
    let mut rounds_done = 0;
    for round in 0..rounds.max(1) {
        for detector in [round % 2 == 1, round % 2 == 0] {
            let p = phase(
                base.clone(),
                store.clone(),
                &mut redis,
                concurrency,
                secs,
                detector,
            )
            .await;
            let sum = if detector { &mut on } else { &mut off };
            sum.calls += p.calls;
            sum.rate += p.rate;
            sum.thread_cpu += p.thread_cpu;
            sum.thread_wall += p.thread_wall;
            sum.passes += p.passes;
            sum.process_cpu += p.process_cpu;
            sum.redis_cpu += p.redis_cpu;
        }
        rounds_done += 1;
    }
    let (rate_off, rate_on) = (off.rate / rounds_done as f64, on.rate / rounds_done as f64);
    println!(
        "admission (reserve+settle over HTTP, {concurrency} clients, {n} records, {rounds_done} rounds of {secs} s each way, alternated): {rate_off:.0} calls/s without the detector, {rate_on:.0} calls/s with passes back to back ({:+.1} %)",
        (rate_on / rate_off - 1.0) * 100.0
    );
    let passes = on.passes.max(1) as f64;
    let per_pass = on.thread_cpu / passes;
    println!(
        "detector thread: {:.2} CPU s over {:.1} s ({} passes, {per_pass:.3} CPU s a pass): {:.1} % of a core back to back, {:.3} % at interval_ms = {}",
        on.thread_cpu,
        on.thread_wall,
        on.passes,
        on.thread_cpu / on.thread_wall.max(f64::MIN_POSITIVE) * 100.0,
        per_pass / (settings.interval_ms as f64 / 1000.0) * 100.0,
        settings.interval_ms
    );
    // The detector's whole cost: what the phases with it used beyond their calls at the
    // cost per call of the phases without it.
    let calls_off = off.calls.max(1) as f64;
    let (cp_call, redis_call) = (off.process_cpu / calls_off, off.redis_cpu / calls_off);
    let cp_pass = (on.process_cpu - on.calls as f64 * cp_call) / passes;
    let redis_pass = (on.redis_cpu - on.calls as f64 * redis_call) / passes;
    let interval_s = settings.interval_ms as f64 / 1000.0;
    println!(
        "per call without the detector: control plane {:.0} µs CPU, Redis {:.0} µs CPU; the detector's whole cost a pass beyond that: control plane {cp_pass:.3} CPU s, Redis {redis_pass:.3} CPU s ({:.3} % and {:.3} % of a core at interval_ms = {})",
        cp_call * 1e6,
        redis_call * 1e6,
        cp_pass / interval_s * 100.0,
        redis_pass / interval_s * 100.0,
        settings.interval_ms
    );
    println!("load average at end: {}", load_average());
    service.stop().await;
    Ok(())
}

fn main() -> std::process::ExitCode {
    bench_support::main_two_workers("tollgate-bench-anomaly", run())
}
