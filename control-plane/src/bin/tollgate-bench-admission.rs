//! Admission benchmark: reserve + settle through the admission layer with 3 matching
//! budgets, on the Redis store (a real `redis-server` started on a free loopback port) and
//! on the memory store, at concurrency 1, 16 and 64, on ONE service core (a current-thread
//! runtime). Redis CPU per call comes from `INFO commandstats` (`usec_per_call` of EVALSHA).
//!
//! Run: `cargo run --release -p tollgate-control-plane --bin tollgate-bench-admission
//! [-- --secs 3 --redis-server /usr/bin/redis-server]`
//!
//! `-- --cluster`: instead, reserve+settle on one node against a local 3-node Redis Cluster
//! in the same run, calls spread over 12 orgs (one hash tag each), see `cluster.rs`.

// Rates and latencies are timing statistics, not money.
#![allow(clippy::float_arithmetic)]

mod bench_support;
#[path = "tollgate-bench-admission/cluster.rs"]
mod cluster;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench_support::{
    REDIS_SERVER, RedisServer, arg, flag, free_port, percentile, process_cpu_us, redis_cpu_us,
};

use chrono::{DateTime, Utc};
use tollgate_control_plane::admission::{Admission, AdmissionSettings};
use tollgate_control_plane::catalog::{Catalog, Snapshot};
use tollgate_control_plane::store::memory::MemoryStore;
use tollgate_control_plane::store::{Collection, Expect, Store};
use tollgate_model::NanoUsd;
use tollgate_model::usage::Usage;
use tollgate_model::wire::v1::{ReserveRequest, ReserveResponse, SettleBatch, Settlement};

const BUDGETS: [&str; 3] = [
    r#"{"id":"org","scopes":["org:acme"],"limit_usd":"9000000","period":"monthly"}"#,
    r#"{"id":"team","scopes":["team:a"],"limit_usd":"9000000","period":"daily","enforcement":{"downgrade":{"gpt-5":"gpt-5-mini"}}}"#,
    r#"{"id":"user-rate","scopes":["user:u"],"limit_requests":1000000000,"period":{"seconds":60}}"#,
];

struct Args {
    secs: u64,
    redis_server: String,
    /// Pin redis-server to this core (with `taskset`), away from the bench's own core.
    redis_cpu: Option<String>,
    /// Compare one node with a 3-node cluster (`cluster.rs`) instead.
    cluster: bool,
}

fn args() -> Args {
    Args {
        secs: arg("--secs", 3),
        redis_server: arg("--redis-server", REDIS_SERVER.to_owned()),
        redis_cpu: Some(arg("--redis-cpu", String::new())).filter(|c| !c.is_empty()),
        cluster: flag("--cluster"),
    }
}

fn now() -> DateTime<Utc> {
    DateTime::<Utc>::from(std::time::SystemTime::now())
}

/// A call of org `org` (its hash tag in Redis), team `a`, user `u`.
fn request_in(id: &str, org: &str) -> ReserveRequest {
    ReserveRequest {
        request_id: id.to_owned(),
        scopes: [format!("org:{org}").as_str(), "team:a", "user:u"]
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect(),
        model: "gpt-5".into(),
        provider: "openai".into(),
        estimated_cost: NanoUsd(12_000_000),
        estimated_input_tokens: 1000,
        max_output_tokens: 1000,
        at_unix_ms: 0,
    }
}

fn settlement_in(id: &str, org: &str) -> SettleBatch {
    let r = request_in(id, org);
    SettleBatch {
        settlements: vec![Settlement {
            request_id: r.request_id,
            scopes: r.scopes,
            model: r.model,
            provider: r.provider,
            cost: NanoUsd(6_000_000),
            usage: Usage {
                uncached_input_tokens: 1000,
                output_tokens: 400,
                ..Usage::default()
            },
            reserved: true,
            at_unix_ms: 0,
            started_at_unix_ms: None,
            requested_model: None,
            downgraded_by: None,
            api: Some("chat_completions".into()),
            // What a filter sends: the parts of `cost`.
            breakdown: Some(tollgate_model::CostBreakdown {
                uncached_input: NanoUsd(2_000_000),
                output: NanoUsd(4_000_000),
                ..Default::default()
            }),
            cut_off: false,
            billed: None,
            lease_id: None,
            lease_usd: None,
            lease_tokens: None,
        }],
    }
}

/// What each task does per iteration.
#[derive(Clone)]
enum Work {
    /// Reserve, then settle the same id.
    Pair,
    /// Reserve only.
    Reserve,
    /// Settle the ids an earlier `Reserve` level with the same tag reserved (`n` per task),
    /// this many per batch: isolates the settle script's cost.
    Settle(Arc<Vec<u64>>, u64),
}

struct Level {
    /// Iterations per task (so that a settle level can settle exactly these ids).
    per_task: Vec<u64>,
    /// Service-side CPU (this process) per reserve, microseconds.
    service_cpu_us: f64,
    reserves: u64,
    secs: f64,
    reserve_us: Vec<u64>,
    pair_us: Vec<u64>,
}

async fn run_level(
    store: Arc<dyn Store>,
    snap: Arc<Snapshot>,
    concurrency: usize,
    secs: u64,
    work: Work,
    tag: &str,
    orgs: Option<usize>,
) -> Level {
    let started = Instant::now();
    let cpu0 = process_cpu_us();
    let stop = started + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let (store, snap, tag, work) = (store.clone(), snap.clone(), tag.to_owned(), work.clone());
        tasks.push(tokio::task::spawn_local(async move {
            // Built once: the loop measures admission, not scope parsing.
            let org = orgs.map_or_else(|| "acme".to_owned(), |n| format!("o{}", t % n));
            let template = request_in("x", &org);
            let settle_template = settlement_in("x", &org);
            let mut reserve_us = Vec::new();
            let mut pair_us = Vec::new();
            let mut n = 0u64;
            let (settle_only, per_batch) = match &work {
                Work::Settle(counts, k) => (Some(counts.get(t).copied().unwrap_or(0)), *k),
                _ => (None, 1),
            };
            while settle_only.map_or(Instant::now() < stop, |last| n < last) {
                let id = format!("{tag}-{t}-{n}");
                n += 1;
                let adm = Admission {
                    store: store.as_ref(),
                    snap: &snap,
                    settings: AdmissionSettings::default(),
                    unknown_model: &Default::default(),
                    now: now(),
                    sightings: &Default::default(),
                };
                let t0 = Instant::now();
                if let Some(last) = settle_only {
                    // Ids n-1 .. n-1+k, k = the batch size (or what is left).
                    let k = per_batch.min(last + 1 - n);
                    let mut batch = settle_template.clone();
                    let one = batch.settlements.pop();
                    for j in 0..k {
                        if let Some(mut st) = one.clone() {
                            st.request_id = format!("{tag}-{t}-{}", n - 1 + j);
                            batch.settlements.push(st);
                        }
                    }
                    n += k - 1;
                    if let Err(e) = adm.settle(&batch).await {
                        eprintln!("settle failed: {e}");
                        break;
                    }
                    // One entry per settlement: the level's rate counts settlements.
                    let us = t0.elapsed().as_micros() as u64;
                    reserve_us.extend(std::iter::repeat_n(us, k as usize));
                    continue;
                }
                let mut req = template.clone();
                req.request_id.clone_from(&id);
                match adm.reserve(&req).await {
                    Ok(ReserveResponse::Allow { .. }) => {}
                    other => {
                        eprintln!("unexpected reserve answer: {other:?}");
                        break;
                    }
                }
                let t1 = Instant::now();
                reserve_us.push((t1 - t0).as_micros() as u64);
                if matches!(work, Work::Pair) {
                    let mut batch = settle_template.clone();
                    for st in &mut batch.settlements {
                        st.request_id.clone_from(&id);
                    }
                    if let Err(e) = adm.settle(&batch).await {
                        eprintln!("settle failed: {e}");
                        break;
                    }
                    pair_us.push(t0.elapsed().as_micros() as u64);
                }
                // The memory store never awaits anything; without this one task would run
                // alone for the whole level and "concurrency" would mean nothing.
                tokio::task::yield_now().await;
            }
            (reserve_us, pair_us)
        }));
    }
    let mut level = Level {
        per_task: Vec::new(),
        service_cpu_us: 0.0,
        reserves: 0,
        secs: 0.0,
        reserve_us: Vec::new(),
        pair_us: Vec::new(),
    };
    for t in tasks {
        if let Ok((r, p)) = t.await {
            level.per_task.push(r.len() as u64);
            level.reserve_us.extend(r);
            level.pair_us.extend(p);
        }
    }
    level.secs = started.elapsed().as_secs_f64();
    level.reserves = level.reserve_us.len() as u64;
    level.service_cpu_us = (process_cpu_us() - cpu0) / (level.reserves.max(1) as f64);
    level.reserve_us.sort_unstable();
    level.pair_us.sort_unstable();
    level
}

fn print_level(name: &str, c: usize, l: &Level, redis_us: Option<(f64, u64, f64)>) {
    let rate = l.reserves as f64 / l.secs;
    let redis = redis_us
        .map(|(u, calls, cpu)| {
            let per = if calls > 0 { cpu / calls as f64 } else { 0.0 };
            format!(
                "redis: {u:>6.2} us/evalsha in-command, {per:>6.2} us CPU/evalsha ({calls} calls)"
            )
        })
        .unwrap_or_default();
    println!(
        "{name:<22} c={c:<3} {rate:>7.0} calls/s  service CPU {:>5.1} us/reserve  reserve p50 {:>5} us p99 {:>6} us  reserve+settle p50 {:>5} us p99 {:>6} us  {redis}",
        l.service_cpu_us,
        percentile(&l.reserve_us, 50),
        percentile(&l.reserve_us, 99),
        percentile(&l.pair_us, 50),
        percentile(&l.pair_us, 99),
    );
}

/// (usec_per_call, calls) of EVALSHA since the last CONFIG RESETSTAT.
fn evalsha_stats(conn: &mut redis::Connection) -> Option<(f64, u64)> {
    let info: String = redis::cmd("INFO").arg("commandstats").query(conn).ok()?;
    let line = info.lines().find(|l| l.starts_with("cmdstat_evalsha:"))?;
    let field = |k: &str| {
        line.split([':', ','])
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")).map(str::to_owned))
    };
    Some((
        field("usec_per_call")?.parse().ok()?,
        field("calls")?.parse().ok()?,
    ))
}

async fn setup(store: &Arc<dyn Store>) -> Result<Arc<Snapshot>, String> {
    setup_with(store, &BUDGETS.map(str::to_owned)).await
}

/// Stores `budgets` (JSON specs) and loads the catalog snapshot admission reads.
async fn setup_with(store: &Arc<dyn Store>, budgets: &[String]) -> Result<Arc<Snapshot>, String> {
    for b in budgets {
        let spec: serde_json::Value = serde_json::from_str(b).map_err(|e| e.to_string())?;
        let id = spec["id"].as_str().unwrap_or_default().to_owned();
        let _ = store
            .put_doc(Collection::Budgets, &id, b, Expect::Absent)
            .await
            .map_err(|e| e.to_string())?;
    }
    let shipped = tollgate_model::PriceTable::shipped().map_err(|e| e.to_string())?;
    Catalog::new(shipped, Duration::from_secs(3600))
        .snapshot(store.as_ref())
        .await
        .map_err(|e| e.to_string())
}

fn redis_command(a: &Args) -> Command {
    match &a.redis_cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpu, &a.redis_server]);
            c
        }
        None => Command::new(&a.redis_server),
    }
}

async fn bench(a: Args) -> Result<(), String> {
    if a.cluster {
        return cluster::compare(&a).await;
    }
    let server = RedisServer::start_with(redis_command(&a), free_port()?, &[])?;
    let mut conn = server.connection()?;
    let redis = server.store("bench", 2_000)?;
    let snap = setup(&redis).await?;
    println!(
        "3 matching budgets (org monthly USD, team daily USD downgrade, user 60 s request rate); one service core; {} s per level",
        a.secs
    );
    // Warm up: loads the scripts.
    run_level(redis.clone(), snap.clone(), 4, 1, Work::Pair, "warm", None).await;
    for c in [1, 16, 64] {
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query(&mut conn)
            .map_err(|e| e.to_string())?;
        let cpu0 = redis_cpu_us(&mut conn);
        let l = run_level(
            redis.clone(),
            snap.clone(),
            c,
            a.secs,
            Work::Pair,
            &format!("rs{c}"),
            None,
        )
        .await;
        let cpu = redis_cpu_us(&mut conn) - cpu0;
        let stats = evalsha_stats(&mut conn).map(|(u, n)| (u, n, cpu));
        print_level("redis reserve+settle", c, &l, stats);
    }
    for (c, batch) in [(16, 1), (16, 16), (64, 1)] {
        let mut reserved = Vec::new();
        let settle_name = if batch == 1 {
            "redis settle only".to_owned()
        } else {
            format!("redis settle only x{batch}")
        };
        for (name, work) in [
            ("redis reserve only", Work::Reserve),
            (
                settle_name.as_str(),
                Work::Settle(Arc::new(Vec::new()), batch),
            ),
        ] {
            let work = match work {
                Work::Settle(_, k) => Work::Settle(Arc::new(std::mem::take(&mut reserved)), k),
                w => w,
            };
            let _: () = redis::cmd("CONFIG")
                .arg("RESETSTAT")
                .query(&mut conn)
                .map_err(|e| e.to_string())?;
            let cpu0 = redis_cpu_us(&mut conn);
            let l = run_level(
                redis.clone(),
                snap.clone(),
                c,
                a.secs,
                work,
                &format!("ro{c}x{batch}"),
                None,
            )
            .await;
            let cpu = redis_cpu_us(&mut conn) - cpu0;
            let stats = evalsha_stats(&mut conn).map(|(u, n)| (u, n, cpu));
            print_level(name, c, &l, stats);
            reserved.clone_from(&l.per_task);
        }
    }
    let used: String = redis::cmd("INFO")
        .arg("memory")
        .query(&mut conn)
        .unwrap_or_default();
    if let Some(m) = used.lines().find(|l| l.starts_with("used_memory_human")) {
        println!("redis {m}");
    }
    let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let msnap = setup(&memory).await?;
    for c in [1, 16, 64] {
        let l = run_level(
            memory.clone(),
            msnap.clone(),
            c,
            a.secs,
            Work::Pair,
            &format!("m{c}"),
            None,
        )
        .await;
        print_level("memory reserve+settle", c, &l, None);
    }
    let l = run_level(
        memory.clone(),
        msnap.clone(),
        16,
        a.secs,
        Work::Reserve,
        "mo",
        None,
    )
    .await;
    print_level("memory reserve only", 16, &l, None);
    Ok(())
}

fn main() -> std::process::ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let local = tokio::task::LocalSet::new();
    match local.block_on(&rt, bench(args())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
