//! Anomaly benchmark on a real `redis-server` (started on a free loopback port): loads the
//! synthetic month of history (`ledger::synthetic`: 1 000 000 calls over the 30 days before
//! now, 50 teams in 5 orgs, 100 projects, 20 models) through the settle path, then
//! - times one anomaly pass over every scope and model (`alerts::anomaly_pass::run`, default
//!   settings: 4 weeks of history plus the judged hours, spend and requests), `--runs` times;
//! - runs reserve + settle over HTTP against the control plane (3 budgets on the team,
//!   `--concurrency` clients) for `--secs` seconds without the detector, then as long with the
//!   detector's pass running back to back on its own thread, and prints admission's rate in
//!   both phases and the detector thread's CPU time (from `/proc/thread-self/stat`): its CPU
//!   share at back-to-back passes and at the default `interval_ms` (5 minutes).
//!
//! Run: `cargo run --release -p tollgate-control-plane --bin tollgate-bench-anomaly
//! [-- --records 1000000 --runs 5 --secs 20 --concurrency 16 --redis-server /usr/bin/redis-server]`

// Rates, latencies and CPU shares are timing statistics, not money.
#![allow(clippy::float_arithmetic)]

mod bench_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bench_support::{REDIS_SERVER, RedisServer, arg, thread_cpu_secs};
use serde_json::json;
use tollgate_control_plane::alerts::anomaly_pass;
use tollgate_control_plane::alerts::anomaly_task::AnomalySettings;
use tollgate_control_plane::auth::Auth;
use tollgate_control_plane::ledger::{RollupFilter, synthetic};
use tollgate_control_plane::state::AppState;

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

async fn run() -> Result<(), String> {
    let n: usize = arg("--records", 1_000_000);
    let runs: usize = arg("--runs", 5);
    let secs: u64 = arg("--secs", 20);
    let concurrency: usize = arg("--concurrency", 16);
    let server = RedisServer::start(&arg("--redis-server", REDIS_SERVER.to_owned()))?;
    let store = server.store("tg", 10_000)?;
    let now = wall_now();
    let start = now.timestamp_millis() - synthetic::DAYS * 86_400_000;
    let t = Instant::now();
    synthetic::load(store.as_ref(), n, start, 256)
        .await
        .map_err(|e| e.to_string())?;
    println!("loaded {n} calls in {:.1} s", t.elapsed().as_secs_f64());

    let settings = AnomalySettings::default();
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let r = anomaly_pass::run(
            store.as_ref(),
            &settings,
            RollupFilter::default(),
            wall_now(),
        )
        .await
        .map_err(|e| e.to_string())?;
        times.push(t.elapsed().as_secs_f64());
        last = Some(r);
    }
    times.sort_by(f64::total_cmp);
    let r = last.ok_or("no pass")?;
    println!(
        "anomaly pass over every scope and model: median {:.3} s, max {:.3} s ({} runs); {} series judged, {} skipped, {} incidents",
        times[times.len() / 2],
        times[times.len() - 1],
        times.len(),
        r.series_judged,
        r.series_skipped,
        r.anomalies.len()
    );

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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let base = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    tokio::spawn(tollgate_control_plane::server::run(
        listener,
        state,
        std::future::pending(),
    ));
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
    let phase = |detector: bool| {
        let (base, store) = (base.clone(), store.clone());
        async move {
            let stop = Arc::new(AtomicBool::new(false));
            let passes = Arc::new(AtomicU64::new(0));
            let det = detector.then(|| {
                let (stop, passes, store) = (stop.clone(), passes.clone(), store.clone());
                std::thread::spawn(move || {
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    else {
                        return 0.0;
                    };
                    let cpu0 = thread_cpu_secs();
                    rt.block_on(async {
                        let s = AnomalySettings::default();
                        while !stop.load(Ordering::Relaxed) {
                            let _ = anomaly_pass::run(
                                store.as_ref(),
                                &s,
                                RollupFilter::default(),
                                wall_now(),
                            )
                            .await;
                            passes.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                    thread_cpu_secs() - cpu0
                })
            });
            let t = Instant::now();
            let load = tokio::spawn(admission_load(base, concurrency, stop.clone()));
            tokio::time::sleep(Duration::from_secs(secs)).await;
            stop.store(true, Ordering::Relaxed);
            let calls = load.await.unwrap_or(0);
            let wall = t.elapsed().as_secs_f64();
            let cpu = det.map_or(0.0, |h| h.join().unwrap_or(0.0));
            (
                calls as f64 / wall,
                cpu,
                passes.load(Ordering::Relaxed),
                wall,
            )
        }
    };
    let (rate_off, _, _, _) = phase(false).await;
    let (rate_on, cpu, passes, wall) = phase(true).await;
    let per_pass = if passes > 0 { cpu / passes as f64 } else { cpu };
    println!(
        "admission (reserve+settle over HTTP, {concurrency} clients): {rate_off:.0} calls/s without the detector, {rate_on:.0} calls/s with passes back to back ({:+.1} %)",
        (rate_on / rate_off - 1.0) * 100.0
    );
    println!(
        "detector thread: {cpu:.2} CPU s over {wall:.1} s ({passes} passes, {per_pass:.3} CPU s a pass): {:.1} % of a core back to back, {:.3} % at interval_ms = {}",
        cpu / wall * 100.0,
        per_pass / (settings.interval_ms as f64 / 1000.0) * 100.0,
        settings.interval_ms
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    bench_support::main_two_workers("tollgate-bench-anomaly", run())
}
