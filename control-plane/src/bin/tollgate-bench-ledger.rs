//! Ledger benchmark on a real `redis-server` (started on a free loopback port): loads N
//! synthetic calls (30 days, 50 teams, 20 models, 3 providers; `ledger::synthetic`) through
//! the store's settle path, then prints the load rate, Redis memory per million records, the
//! full CSV export's rate and this process's peak RSS, settle throughput with the ledger on
//! and off (with the rollup pass's own rate beside), and settle latency while an export runs
//! against idle.
//!
//! Run: `cargo run --release -p tollgate-control-plane --bin tollgate-bench-ledger
//! [-- --records 1000000 --redis-server /usr/bin/redis-server]`. Flags for the throughput
//! part alone (profiling, quick comparisons): `--settle-only` (no load, export or latency),
//! `--rounds N` (off/on pairs, default 2), `--per-task N` (settlements per task and round,
//! default 4096), `--ledger on|off` (only that side).

// Rates and latencies are timing statistics, not money.
#![allow(clippy::float_arithmetic)]

mod bench_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bench_support::{
    REDIS_SERVER, RedisServer, arg, flag, load_average, peak_rss_kb, process_cpu_us, redis_cpu_us,
    redis_used_memory, wall_ms,
};
use tollgate_control_plane::ledger::export::{self, Format};
use tollgate_control_plane::ledger::{TimeRange, synthetic};
use tollgate_control_plane::store::{Line, SettleOp, Store};

/// Settlement `i` of a throughput run: synthetic call `i`'s scopes, model and usage (so the
/// rows a batch adds to are as varied as the history's), ending now. Calls `i` with the same
/// `i % 5` share an org, so a task keeps its batches in one org as a gateway's settle
/// batches are.
fn settle_op(id: String, ledger: bool, now: i64, i: usize) -> SettleOp {
    let mut op = synthetic::op(i, 1, now);
    op.request_id = id.clone();
    op.now_ms = now;
    if let Some(r) = op.ledger.as_mut() {
        r.request_id = id;
        r.ended_at_ms = now;
    }
    if !ledger {
        op.ledger = None;
    }
    // One budget window, as a settlement usually charges.
    op.lines = vec![Line {
        budget_id: "bench".into(),
        tag: op.request_tag.clone(),
        window_index: 1,
        expire_at_ms: Some(now + 3_600_000),
        limit_nanos: Some(i64::MAX / 4),
        limit_tokens: None,
        limit_requests: None,
        enforce: true,
        suspend_on_exceed: false,
        thresholds_pct: Vec::new(),
    }];
    op
}

/// One throughput run: settlements per second (all of their records counted when the ledger
/// is on), and the rollup pass's own time in the run (the background passes and the final
/// one), seconds.
struct Run {
    rate: f64,
    pass_secs: f64,
}

/// Settles per second: `tasks` tasks, each `per_task` settlements in batches of 16 (task `t`
/// in org `t % 5`). With the ledger on, the rollup pass runs beside them every second as
/// the control plane runs it, and the time it then takes to count what is left is part of
/// the run: the figure is settlements whose records are all counted, per second.
async fn throughput(
    store: Arc<dyn Store>,
    ledger: bool,
    tag: &str,
    tasks: usize,
    per_task: usize,
) -> Run {
    let started = Instant::now();
    let pass_us = Arc::new(AtomicU64::new(0));
    let upkeep = ledger.then(|| spawn_upkeep(store.clone(), pass_us.clone()));
    let mut handles = Vec::new();
    for t in 0..tasks {
        let store = store.clone();
        let tag = tag.to_owned();
        handles.push(tokio::spawn(async move {
            for b in 0..per_task / 16 {
                let now = wall_ms();
                let ops: Vec<SettleOp> = (0..16)
                    .map(|k| {
                        let i = 5 * (t * per_task + b * 16 + k) + t % 5;
                        settle_op(format!("{tag}-{t}-{b}-{k}"), ledger, now, i)
                    })
                    .collect();
                let _ = store.settle_many(&ops).await;
            }
        }));
    }
    for h in handles {
        let _ = h.await;
    }
    if let Some(u) = upkeep {
        u.abort();
        timed_upkeep(store.as_ref(), &pass_us).await;
    }
    Run {
        rate: (tasks * (per_task / 16) * 16) as f64 / started.elapsed().as_secs_f64(),
        pass_secs: pass_us.load(Ordering::Relaxed) as f64 / 1e6,
    }
}

/// One rollup pass, its wall time added to `pass_us`.
async fn timed_upkeep(store: &dyn Store, pass_us: &AtomicU64) {
    let t = Instant::now();
    let _ = store.ledger_upkeep().await;
    let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
    pass_us.fetch_add(us, Ordering::Relaxed);
}

/// The control plane's ledger upkeep (the rollup pass), every second until aborted.
fn spawn_upkeep(store: Arc<dyn Store>, pass_us: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            timed_upkeep(store.as_ref(), &pass_us).await;
        }
    })
}

/// p50 and p99 of single settles, microseconds.
async fn latency(store: &dyn Store, tag: &str, n: usize) -> (u128, u128) {
    let mut us = Vec::with_capacity(n);
    for i in 0..n {
        let op = settle_op(format!("{tag}-{i}"), true, wall_ms(), i);
        let t = Instant::now();
        let _ = store.settle(&op).await;
        us.push(t.elapsed().as_micros());
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    us.sort_unstable();
    (us[n / 2], us[n * 99 / 100])
}

async fn export_all(store: &dyn Store, range: TimeRange) -> (u64, u64) {
    let (mut n, mut bytes) = (0u64, 0u64);
    let mut cursor: Option<String> = None;
    loop {
        let started = Instant::now();
        let Ok(page) = store.records(range, cursor.as_deref(), 1_000).await else {
            break;
        };
        for r in &page.records {
            bytes += export::record_line(r, Format::Csv).len() as u64;
            n += 1;
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        // Paced as the API's export is.
        tokio::time::sleep(export::pause_after(started.elapsed())).await;
    }
    (n, bytes)
}

async fn run() -> Result<(), String> {
    let n: usize = arg("--records", 1_000_000);
    let server = RedisServer::start(&arg("--redis-server", REDIS_SERVER.to_owned()))?;
    let mut conn = server.connection()?;
    let store = server.store("tg", 5_000)?;
    println!("load average at start: {}", load_average());
    if flag("--settle-only") {
        return settle_rounds(&store, &mut conn).await;
    }
    load_and_export(&store, &mut conn, n).await?;
    settle_rounds(&store, &mut conn).await?;
    settle_latency(&store).await;
    println!("load average at end: {}", load_average());
    Ok(())
}

/// Loads `n` synthetic calls, then prints the load rate, Redis memory per million records
/// and the full CSV export's rate and peak RSS.
async fn load_and_export(
    store: &Arc<dyn Store>,
    conn: &mut redis::Connection,
    n: usize,
) -> Result<(), String> {
    let before = redis_used_memory(conn);
    let start = wall_ms() - synthetic::DAYS * 86_400_000;
    let t = Instant::now();
    // Four loaders, each a contiguous quarter (calls stay in time order per loader).
    let mut loaders = Vec::new();
    for q in 0..4 {
        let store = store.clone();
        loaders.push(tokio::spawn(async move {
            let (lo, hi) = (n * q / 4, n * (q + 1) / 4);
            let mut i = lo;
            while i < hi {
                let end = (i + 256).min(hi);
                let ops: Vec<SettleOp> = (i..end).map(|j| synthetic::op(j, n, start)).collect();
                if let Err(e) = store.settle_many(&ops).await {
                    return Err(e.to_string());
                }
                i = end;
            }
            Ok(())
        }));
    }
    let upkeep = spawn_upkeep(store.clone(), Arc::default());
    for l in loaders {
        l.await.map_err(|e| e.to_string())??;
    }
    upkeep.abort();
    // Loaded = every record counted in its rollups.
    store.ledger_upkeep().await.map_err(|e| e.to_string())?;
    let load_s = t.elapsed().as_secs_f64();
    let after = redis_used_memory(conn);
    println!(
        "load: {n} records in {load_s:.1} s = {:.0} records/s",
        n as f64 / load_s
    );
    println!(
        "redis memory: {:.0} MB for {n} records = {:.0} MB per million (stream + rollups + markers)",
        (after - before) / 1e6,
        (after - before) / 1e6 * 1e6 / n as f64
    );
    let rss0 = peak_rss_kb();
    let t = Instant::now();
    let (exported, bytes) = export_all(store.as_ref(), EVERYTHING).await;
    let ex_s = t.elapsed().as_secs_f64();
    println!(
        "csv export: {exported} records, {} MB in {ex_s:.1} s = {:.0} records/s; peak RSS {} MB (before the export {} MB)",
        bytes >> 20,
        exported as f64 / ex_s,
        peak_rss_kb() >> 10,
        rss0 >> 10
    );
    Ok(())
}

/// Every record.
const EVERYTHING: TimeRange = TimeRange {
    from_ms: 0,
    to_ms: i64::MAX,
};

/// Settle throughput with the ledger off and on, alternated (`--rounds` pairs), with Redis's
/// CPU and this process's per settlement and the rollup pass's own rate; then the means.
async fn settle_rounds(store: &Arc<dyn Store>, conn: &mut redis::Connection) -> Result<(), String> {
    let rounds: usize = arg("--rounds", 2);
    let per_task: usize = arg("--per-task", 4_096);
    let only: String = arg("--ledger", String::new());
    let sides: Vec<bool> = match only.as_str() {
        "on" => vec![true],
        "off" => vec![false],
        "" => vec![false, true],
        other => return Err(format!("--ledger {other}: on or off")),
    };
    // Off, on, off, on: the machine's load moves between runs; each run also prints
    // Redis's CPU time per settlement (the rollup pass included when on), which load
    // moves far less.
    let tasks = 16;
    let per_run = (tasks * (per_task / 16) * 16) as f64;
    let mut off = Vec::new();
    let mut on = Vec::new();
    for round in 0..rounds {
        for &ledger in &sides {
            let (cpu0, own0) = (redis_cpu_us(conn), process_cpu_us());
            let tag = format!("r{round}{}", u8::from(ledger));
            let run = throughput(store.clone(), ledger, &tag, tasks, per_task).await;
            let cpu = (redis_cpu_us(conn) - cpu0) / per_run;
            let own = (process_cpu_us() - own0) / per_run;
            let pass = if ledger {
                format!(
                    "; rollup pass {:.0} ms in all = {:.0} records/s while it runs ({:.1}x the settle rate)",
                    run.pass_secs * 1e3,
                    per_run / run.pass_secs,
                    per_run / run.pass_secs / run.rate
                )
            } else {
                String::new()
            };
            println!(
                "settle throughput, ledger {}: {:.0}/s, Redis CPU {cpu:.1} us per settlement, this process (client, rollup pass) {own:.1} us{pass}; load average {}",
                if ledger { "on " } else { "off" },
                run.rate,
                load_average()
            );
            if ledger {
                on.push((run.rate, cpu, own))
            } else {
                off.push((run.rate, cpu, own))
            }
        }
    }
    if off.is_empty() || on.is_empty() {
        return Ok(());
    }
    type Side = (f64, f64, f64);
    let mean = |v: &[Side], f: fn(&Side) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
    let (off_rate, on_rate) = (mean(&off, |x| x.0), mean(&on, |x| x.0));
    let (off_cpu, on_cpu) = (mean(&off, |x| x.1), mean(&on, |x| x.1));
    let (off_own, on_own) = (mean(&off, |x| x.2), mean(&on, |x| x.2));
    println!(
        "settle throughput ({tasks} tasks, batches of 16, means of {rounds}): ledger off {off_rate:.0}/s, on {on_rate:.0}/s = {:.1} % fewer; Redis CPU per settlement off {off_cpu:.1} us, on {on_cpu:.1} us (+{:.0} %); this process off {off_own:.1} us, on {on_own:.1} us",
        (1.0 - on_rate / off_rate) * 100.0,
        (on_cpu / off_cpu - 1.0) * 100.0
    );
    Ok(())
}

/// Settle latency with the rollup pass running beside, as in the control plane: idle, then
/// while full exports run back to back.
async fn settle_latency(store: &Arc<dyn Store>) {
    let upkeep = spawn_upkeep(store.clone(), Arc::default());
    let idle = latency(store.as_ref(), "idle", 2_000).await;
    let exporter = {
        let store = store.clone();
        tokio::spawn(async move {
            loop {
                export_all(store.as_ref(), EVERYTHING).await;
            }
        })
    };
    let busy = latency(store.as_ref(), "busy", 2_000).await;
    exporter.abort();
    upkeep.abort();
    println!(
        "settle latency p50/p99: idle {}/{} us, during a full export {}/{} us",
        idle.0, idle.1, busy.0, busy.1
    );
}

fn main() -> std::process::ExitCode {
    bench_support::main_two_workers("tollgate-bench-ledger", run())
}
