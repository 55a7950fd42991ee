//! What enforcement costs: the Tollgate filter in real Envoy reserving every call with the real
//! control plane (`tollgate serve`, a child process) backed by a real `redis-server` (or the
//! in-memory store), and settling it in batches; against the same Envoy's filter-less route.
//!
//! `cargo run --release -p tollgate-e2e --bin bench-enforcement -- [--requests N]
//!  [--concurrency 1,16] [--store redis|memory] [--envoy-workers N] [--stream-pairs N]
//!  [--pace-ms N] [--cpu-requests N] [--settle-max-delay-ms N] [--lease exact|N%]`
//!
//! `--lease` is the budget's `lease` setting (unset: the control plane's default, 1 %):
//! `exact` reserves every call; with leases a key's calls after its first are admitted from
//! a lease with no round trip (docs/leases.md).
//!
//! Prints added latency (filter − bypass, interleaved, p50 and p99) for non-streamed 1 KB and
//! 100 KB requests at each concurrency, time to first byte and per-event delay of a paced
//! stream, CPU time per governed request in Envoy, the control plane and Redis, and checks that
//! the budget's settled spend equals what the filter charged. See docs/benchmarks.md.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tollgate_e2e::bench_stack::{
    self, ADMIN_TOKEN, ControlPlaneProcess, DATAPLANE_TOKEN, RedisProcess, StoreChoice,
};
use tollgate_e2e::envoy::Envoy;
use tollgate_e2e::gateway_config::{GatewayConfig, WasmFilter, reference_plugin_config};
use tollgate_e2e::mock_provider::MockProvider;
use tollgate_e2e::{bench_bodies, paths};
use tollgate_model::money::NanoUsd;
use tollgate_model::scope::Scope;
use tollgate_model::wire::v1::{RESERVE_PATH, ReserveRequest};

/// The budget every governed request is reserved and settled against.
const BUDGET_ID: &str = "bench";
/// The team header that puts requests in the budget's scope.
const TEAM: &str = "bench";
/// The budget and team of the reserves the bench sends to the control plane itself.
const DIRECT_BUDGET_ID: &str = "bench-direct";
const DIRECT_TEAM: &str = "bench-direct";
/// Concurrent paced streams: each mostly waits on the mock's pacing, so a few at once keep
/// the stream phase short without loading the machine.
const STREAM_CONCURRENCY: usize = 4;
/// Longest wait for the last settle batches to land (the filter posts them every
/// `settle_max_delay_ms`, 200 ms by default) and the lease to be returned (10 s idle).
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);
/// The targets for added latency at concurrency 1, in ns.
const TARGET_P50_NS: i64 = 300_000;
const TARGET_P99_NS: i64 = 1_000_000;

/// Requests sent through the filter route, and those among them the filter admitted neither
/// by a reserve nor from a lease (no `x-tollgate-reserved-usd` on the answer: fail-open, or no
/// budget matched).
static GOVERNED: AtomicU64 = AtomicU64::new(0);
static UNRESERVED: AtomicU64 = AtomicU64::new(0);

struct Args {
    requests: usize,
    concurrency: Vec<usize>,
    store: String,
    envoy_workers: u32,
    stream_pairs: usize,
    pace_ms: u64,
    cpu_requests: usize,
    settle_delay_ms: u64,
    /// The budget's `lease` setting (`None`: unset, the control plane's default).
    lease: Option<String>,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        requests: 2000,
        concurrency: vec![1, 16],
        store: "redis".into(),
        envoy_workers: 1,
        stream_pairs: 150,
        pace_ms: 2,
        cpu_requests: 0,
        settle_delay_ms: 200,
        lease: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| anyhow!("{flag} needs a value"))?;
        let bad = || format!("{flag} {value}");
        match flag.as_str() {
            "--requests" => a.requests = value.parse().with_context(bad)?,
            "--concurrency" => {
                a.concurrency = value
                    .split(',')
                    .map(|c| c.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .with_context(bad)?;
            }
            "--store" => a.store = value,
            "--envoy-workers" => a.envoy_workers = value.parse().with_context(bad)?,
            "--stream-pairs" => a.stream_pairs = value.parse().with_context(bad)?,
            "--pace-ms" => a.pace_ms = value.parse().with_context(bad)?,
            "--cpu-requests" => a.cpu_requests = value.parse().with_context(bad)?,
            "--settle-max-delay-ms" => a.settle_delay_ms = value.parse().with_context(bad)?,
            "--lease" => a.lease = Some(value),
            other => bail!("unknown flag {other} (see the doc comment of bench-enforcement.rs)"),
        }
    }
    anyhow::ensure!(
        a.requests > 0 && !a.concurrency.is_empty() && a.concurrency.iter().all(|&c| c > 0),
        "--requests and --concurrency must be positive"
    );
    anyhow::ensure!(
        matches!(a.store.as_str(), "redis" | "memory"),
        "--store redis|memory"
    );
    if a.cpu_requests == 0 {
        a.cpu_requests = a.requests;
    }
    Ok(a)
}

/// Everything a request needs, shared by the tasks.
#[derive(Clone)]
struct Target {
    url: String,
    body: Bytes,
    fixture: &'static str,
    pace_ms: Option<u64>,
}

/// One request's timings, ns from sending: first body byte, last byte.
#[derive(Clone, Copy)]
struct Sample {
    first_ns: u64,
    total_ns: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let started = Instant::now();
    let stack = Stack::start(&args).await?;
    println!(
        "bench-enforcement: store={} envoy_workers={} requests={} concurrency={:?} stream_pairs={} pace_ms={} cpu_requests={} settle_max_delay_ms={} lease={}",
        args.store,
        args.envoy_workers,
        args.requests,
        args.concurrency,
        args.stream_pairs,
        args.pace_ms,
        args.cpu_requests,
        args.settle_delay_ms,
        args.lease.as_deref().unwrap_or("(unset: 1%)")
    );
    println!("load at start: {}", load_average());
    let url = format!("{}/v1/chat/completions", stack.envoy.url());
    let small = Target {
        url,
        body: Bytes::from(bench_bodies::chat_request(1024)),
        fixture: "chat.json",
        pace_ms: None,
    };
    let large = Target {
        body: Bytes::from(bench_bodies::chat_request(100 * 1024)),
        ..small.clone()
    };
    let streamed = Target {
        body: Bytes::from(bench_bodies::chat_request_streamed(1024)),
        fixture: "chat-64-events.sse",
        pace_ms: Some(args.pace_ms),
        ..small.clone()
    };
    ensure_reserved(&small).await?;
    // JIT, connection pools, the control plane's caches.
    interleave(&small, 300, 1, 0).await?;
    let direct = reserve_direct(&stack.control_plane, args.requests).await?;

    let mut rows = Vec::new();
    for (label, target) in [
        ("1 KB, non-streamed", &small),
        ("100 KB, non-streamed", &large),
    ] {
        for &c in &args.concurrency {
            let warmup = (args.requests / 10).clamp(20, 200);
            let (bypass, filter) = interleave(target, args.requests, c, warmup).await?;
            let row = Row::new(label, c, &totals(&bypass), &totals(&filter), c == 1);
            eprintln!("{}", row.line());
            rows.push(row);
        }
    }
    for row in stream_rows(&streamed, args.stream_pairs).await? {
        eprintln!("{}", row.line());
        rows.push(row);
    }
    let cpu_concurrency = args.concurrency.iter().copied().max().unwrap_or(1);
    let cpu = measure_cpu(&stack, &small, args.cpu_requests, cpu_concurrency).await?;
    let drained = wait_drained(&stack.admin, &stack.envoy, true).await?;

    println!();
    println!("load at end: {}", load_average());
    print_latency(&rows);
    println!(
        "reserve round trip alone (bench -> tollgate serve -> {} -> bench, no Envoy, c=1, n={}): p50 {} µs, p99 {} µs",
        args.store,
        args.requests,
        us(direct[0]),
        us(direct[1])
    );
    println!();
    print_cpu(&cpu, args.cpu_requests, cpu_concurrency);
    println!();
    let ok = print_correctness(&drained, &stack.envoy).await?;
    println!("elapsed: {:.1?}", started.elapsed());
    if !ok {
        println!("--- control plane log ---\n{}", stack.control_plane.log());
    }
    stack.envoy.stop().await?;
    anyhow::ensure!(
        ok,
        "the budget's settled spend differs from what the filter charged"
    );
    Ok(())
}

/// The parts under test, running. Dropping it stops them.
struct Stack {
    envoy: Envoy,
    control_plane: ControlPlaneProcess,
    admin: Admin,
    pids: Pids,
    redis: Option<RedisProcess>,
    _mock: MockProvider,
    _fixtures: tempfile::TempDir,
}

impl Stack {
    /// Mock provider, Redis (unless `--store memory`), the control plane with the two
    /// budgets, and Envoy with the filter and the bypass route.
    async fn start(args: &Args) -> anyhow::Result<Stack> {
        let fixtures = tempfile::tempdir()?;
        bench_bodies::write_fixtures(fixtures.path())?;
        let mock = MockProvider::start(fixtures.path().to_path_buf()).await?;
        let redis = match args.store.as_str() {
            "redis" => Some(RedisProcess::start().await?),
            _ => None,
        };
        let store = redis
            .as_ref()
            .map_or(StoreChoice::Memory, |r| StoreChoice::Redis(r.url()));
        let control_plane =
            ControlPlaneProcess::start(&bench_stack::control_plane_binary()?, &store).await?;
        let admin = Admin {
            http: reqwest::Client::new(),
            base: control_plane.url(),
        };
        admin
            .create_budget(BUDGET_ID, TEAM, args.lease.as_deref())
            .await?;
        // Direct reserves leave their reservations open: a budget of their own keeps them apart.
        admin
            .create_budget(DIRECT_BUDGET_ID, DIRECT_TEAM, Some("exact"))
            .await?;

        let mut plugin_config = reference_plugin_config();
        let control = plugin_config
            .get_mut("control_plane")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| anyhow!("envoy/plugin-config.json has no control_plane object"))?;
        control.insert("token".into(), json!(DATAPLANE_TOKEN));
        // Loopback on a loaded 2-core box: a reserve must not fail open on a scheduling hiccup.
        control.insert("timeout_ms".into(), json!(250));
        control.insert("settle_max_delay_ms".into(), json!(args.settle_delay_ms));
        let wasm = WasmFilter {
            path: paths::filter_wasm()?,
            plugin_config,
        };
        let mut config =
            GatewayConfig::loopback(mock.addr.port(), control_plane.addr.port(), Some(wasm));
        config.bench_bypass_route = true;
        let envoy = Envoy::start(&config.render(), args.envoy_workers)
            .await
            .context("starting envoy")?;
        let pids = Pids {
            envoy: bench_stack::child_named("envoy")?,
            control_plane: control_plane.pid()?,
            redis: redis.as_ref().map(RedisProcess::pid).transpose()?,
        };
        Ok(Stack {
            envoy,
            control_plane,
            admin,
            pids,
            redis,
            _mock: mock,
            _fixtures: fixtures,
        })
    }
}

/// Time to first byte and delay per event of a paced stream, filter against bypass.
async fn stream_rows(streamed: &Target, pairs: usize) -> anyhow::Result<[Row; 2]> {
    let (bypass, filter) = interleave(streamed, pairs, STREAM_CONCURRENCY, 20).await?;
    let gaps = bench_bodies::chat_stream_64_events()
        .matches("\n\n")
        .count()
        .saturating_sub(1)
        .max(1) as u64;
    let per_event = |s: &[Sample]| -> Vec<u64> {
        s.iter()
            .map(|x| x.total_ns.saturating_sub(x.first_ns) / gaps)
            .collect()
    };
    let firsts = |s: &[Sample]| s.iter().map(|x| x.first_ns).collect::<Vec<_>>();
    let pace = streamed.pace_ms.unwrap_or(0);
    Ok([
        Row::new(
            &format!("paced SSE ({pace} ms), first byte"),
            STREAM_CONCURRENCY,
            &firsts(&bypass),
            &firsts(&filter),
            false,
        ),
        Row::new(
            &format!("paced SSE ({pace} ms), per event"),
            STREAM_CONCURRENCY,
            &per_event(&bypass),
            &per_event(&filter),
            false,
        ),
    ])
}

/// The admin API of the control plane.
struct Admin {
    http: reqwest::Client,
    base: String,
}

impl Admin {
    async fn create_budget(&self, id: &str, team: &str, lease: Option<&str>) -> anyhow::Result<()> {
        let mut spec = json!({
            "id": id,
            "scopes": [format!("team:{team}")],
            "limit_usd": "1000000",
            "period": "monthly",
        });
        if let Some(lease) = lease {
            spec["lease"] = lease.into();
        }
        let resp = self
            .http
            .post(format!("{}/v1/budgets", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(spec.to_string())
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        anyhow::ensure!(status.as_u16() == 201, "POST /v1/budgets: {status} {text}");
        Ok(())
    }

    /// The budget's current window: `usage` of `GET /v1/budgets/{id}`.
    async fn usage(&self) -> anyhow::Result<Value> {
        let resp = self
            .http
            .get(format!("{}/v1/budgets/{BUDGET_ID}", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        anyhow::ensure!(
            status.is_success(),
            "GET /v1/budgets/{BUDGET_ID}: {status} {text}"
        );
        let view: Value = serde_json::from_str(&text)?;
        Ok(view["usage"].clone())
    }
}

/// The budget may reach the admission cache a moment after it is created: wait until a
/// request through the filter comes back reserved against it.
async fn ensure_reserved(target: &Target) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = UNRESERVED.load(Ordering::Relaxed);
        one(&client, target, false).await?;
        if UNRESERVED.load(Ordering::Relaxed) == before {
            // Start the count of unreserved requests from the measured runs.
            UNRESERVED.store(0, Ordering::Relaxed);
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("requests through the filter are not reserved against budget {BUDGET_ID:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// p50 and p99 of `n` reserves posted straight to the control plane, one at a time: the floor
/// under the filter's admission round trip.
async fn reserve_direct(cp: &ControlPlaneProcess, n: usize) -> anyhow::Result<[i64; 2]> {
    let client = reqwest::Client::new();
    let url = format!("{}{RESERVE_PATH}", cp.url());
    let scope: Scope = format!("team:{DIRECT_TEAM}")
        .parse()
        .map_err(|e| anyhow!("scope: {e:?}"))?;
    let warmup = (n / 10).clamp(20, 200);
    let mut samples = Vec::with_capacity(n);
    for i in 0..(warmup + n) {
        let body = serde_json::to_string(&ReserveRequest {
            request_id: format!("bench-direct-{i}"),
            scopes: vec![scope.clone()],
            model: "gpt-4o-mini".into(),
            provider: "openai".into(),
            estimated_cost: NanoUsd(200_000),
            estimated_input_tokens: 256,
            max_output_tokens: 256,
            at_unix_ms: unix_ms(),
        })?;
        let start = Instant::now();
        let resp = client
            .post(&url)
            .bearer_auth(DATAPLANE_TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        let elapsed = nanos(start.elapsed());
        anyhow::ensure!(
            status.is_success() && text.contains("\"allow\""),
            "direct reserve: {status} {text}"
        );
        if i >= warmup {
            samples.push(elapsed);
        }
    }
    Ok([percentile(&samples, 50), percentile(&samples, 99)])
}

/// `pairs` requests on each route (plus `warmup` pairs not kept), by `concurrency` tasks that
/// each alternate the routes and which of them goes first.
async fn interleave(
    target: &Target,
    pairs: usize,
    concurrency: usize,
    warmup: usize,
) -> anyhow::Result<(Vec<Sample>, Vec<Sample>)> {
    let per_task = pairs.div_ceil(concurrency);
    let warm_per_task = warmup.div_ceil(concurrency);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let (mut bypass, mut filter) = (Vec::new(), Vec::new());
            for i in 0..(warm_per_task + per_task) {
                for side in [i % 2 == 0, i % 2 != 0] {
                    let s = one(&client, &target, side).await?;
                    if i >= warm_per_task {
                        if side { &mut bypass } else { &mut filter }.push(s);
                    }
                }
            }
            anyhow::Ok((bypass, filter))
        }));
    }
    let (mut bypass, mut filter) = (Vec::new(), Vec::new());
    for t in tasks {
        let (b, f) = t.await??;
        bypass.extend(b);
        filter.extend(f);
    }
    Ok((bypass, filter))
}

/// `n` requests through one route only, by `concurrency` tasks.
async fn one_side(
    target: &Target,
    n: usize,
    concurrency: usize,
    bypass: bool,
) -> anyhow::Result<()> {
    let per_task = n.div_ceil(concurrency);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for _ in 0..per_task {
                one(&client, &target, bypass).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

async fn one(client: &reqwest::Client, target: &Target, bypass: bool) -> anyhow::Result<Sample> {
    let mut req = client
        .post(&target.url)
        .header("content-type", "application/json")
        .header("x-mock-fixture", target.fixture)
        .header("x-tollgate-team", TEAM)
        .body(target.body.clone());
    if bypass {
        req = req.header("x-tollgate-bench-bypass", "1");
    } else {
        GOVERNED.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(pace) = target.pace_ms {
        req = req.header("x-mock-pace-ms", pace.to_string());
    }
    let start = Instant::now();
    let resp = req.send().await?;
    let status = resp.status();
    if !bypass && !resp.headers().contains_key("x-tollgate-reserved-usd") {
        UNRESERVED.fetch_add(1, Ordering::Relaxed);
    }
    let mut stream = resp.bytes_stream();
    let mut first = None;
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        first.get_or_insert_with(|| start.elapsed());
        if !status.is_success() {
            body.extend_from_slice(&chunk);
        }
    }
    let total = start.elapsed();
    anyhow::ensure!(
        status.is_success(),
        "{} route: {status} {}",
        if bypass { "bypass" } else { "filter" },
        String::from_utf8_lossy(&body)
    );
    Ok(Sample {
        first_ns: nanos(first.unwrap_or(total)),
        total_ns: nanos(total),
    })
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn totals(s: &[Sample]) -> Vec<u64> {
    s.iter().map(|x| x.total_ns).collect()
}

/// Nearest-rank percentile of `values`, ns.
fn percentile(values: &[u64], pct: usize) -> i64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = (pct * v.len()).div_ceil(100).max(1);
    v.get(rank - 1)
        .map_or(0, |&x| i64::try_from(x).unwrap_or(i64::MAX))
}

/// ns as µs with one decimal, sign kept.
fn us(ns: i64) -> String {
    let sign = if ns < 0 { "-" } else { "" };
    let a = ns.unsigned_abs();
    format!("{sign}{}.{}", a / 1000, (a % 1000) / 100)
}

/// One line of the latency table.
struct Row {
    label: String,
    concurrency: usize,
    n: usize,
    bypass: [i64; 2],
    filter: [i64; 2],
    /// Whether the targets apply (concurrency 1, non-streamed).
    targeted: bool,
}

impl Row {
    fn new(label: &str, concurrency: usize, bypass: &[u64], filter: &[u64], targeted: bool) -> Row {
        Row {
            label: label.to_owned(),
            concurrency,
            n: filter.len().min(bypass.len()),
            bypass: [percentile(bypass, 50), percentile(bypass, 99)],
            filter: [percentile(filter, 50), percentile(filter, 99)],
            targeted,
        }
    }

    fn added(&self) -> [i64; 2] {
        [
            self.filter[0] - self.bypass[0],
            self.filter[1] - self.bypass[1],
        ]
    }

    fn verdict(&self) -> &'static str {
        let [p50, p99] = self.added();
        match (self.targeted, p50 <= TARGET_P50_NS && p99 <= TARGET_P99_NS) {
            (false, _) => "",
            (true, true) => "met",
            (true, false) => "MISSED",
        }
    }

    fn line(&self) -> String {
        let [a50, a99] = self.added();
        format!(
            "{:<32} {:>4} {:>6} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9} | {}",
            self.label,
            self.concurrency,
            self.n,
            us(self.bypass[0]),
            us(self.filter[0]),
            us(a50),
            us(self.bypass[1]),
            us(self.filter[1]),
            us(a99),
            self.verdict()
        )
    }
}

fn print_latency(rows: &[Row]) {
    println!("Added latency = filter route − bypass route of the same Envoy, interleaved; µs");
    println!(
        "{:<32} {:>4} {:>6} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9} | target at c=1",
        "scenario", "conc", "n", "byp p50", "flt p50", "added", "byp p99", "flt p99", "added"
    );
    for row in rows {
        println!("{}", row.line());
    }
    println!(
        "targets (c=1, non-streamed): added p50 <= {} µs, added p99 <= {} µs; \"per event\" = (last byte − first byte) / events after the first",
        us(TARGET_P50_NS),
        us(TARGET_P99_NS)
    );
    println!(
        "requests through the filter: {}, of which not reserved (fail-open or no budget): {}",
        GOVERNED.load(Ordering::Relaxed),
        UNRESERVED.load(Ordering::Relaxed)
    );
}

/// The processes whose CPU time is split.
struct Pids {
    envoy: u32,
    control_plane: u32,
    redis: Option<u32>,
}

/// CPU time, µs, of each process over a phase.
struct CpuSplit {
    envoy_us: u64,
    control_plane_us: u64,
    redis_us: Option<u64>,
    bench_us: u64,
    /// Envoy over the same number of bypass requests.
    envoy_bypass_us: u64,
    drained: bool,
    /// Redis's commands over the phase (those scripts ran included): name, calls, µs.
    redis_commands: Vec<(String, u64, u64)>,
}

/// `INFO commandstats`' lines (`cmdstat_<name>:calls=N,usec=N,...`) as (name, calls, µs),
/// the most time first.
fn command_stats(info: &str) -> Vec<(String, u64, u64)> {
    let mut out: Vec<(String, u64, u64)> = info
        .lines()
        .filter_map(|l| {
            let (name, stats) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |k: &str| {
                stats
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('=')?.parse().ok())
            };
            Some((name.to_owned(), field("calls")?, field("usec")?))
        })
        .collect();
    out.sort_by_key(|c| std::cmp::Reverse(c.2));
    out
}

fn cpu_now(pids: &Pids) -> anyhow::Result<[Option<u64>; 4]> {
    let ticks = |pid: u32| bench_stack::proc_stat(pid).map(|(_, s)| s.cpu_ticks);
    Ok([
        Some(ticks(pids.envoy)?),
        Some(ticks(pids.control_plane)?),
        pids.redis.map(ticks).transpose()?,
        Some(ticks(std::process::id())?),
    ])
}

/// CPU time per process over `n` governed requests (from just before the first until the
/// last settlement has landed), then Envoy's over `n` bypass requests for reference.
async fn measure_cpu(
    stack: &Stack,
    target: &Target,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<CpuSplit> {
    let tick_us = 1_000_000 / bench_stack::clock_ticks_per_sec()?.max(1);
    let delta = |a: &[Option<u64>; 4], b: &[Option<u64>; 4], i: usize| -> Option<u64> {
        match (a.get(i).copied().flatten(), b.get(i).copied().flatten()) {
            (Some(x), Some(y)) => Some(y.saturating_sub(x) * tick_us),
            _ => None,
        }
    };
    let (admin, envoy, pids) = (&stack.admin, &stack.envoy, &stack.pids);
    // Settled, not released: waiting for an idle lease's return would add the processes'
    // idle timers to the calls' CPU.
    wait_drained(admin, envoy, false).await?;
    if let Some(r) = &stack.redis {
        r.command(&["CONFIG", "RESETSTAT"]).await?;
    }
    let before = cpu_now(pids)?;
    one_side(target, n, concurrency, false).await?;
    let drained = wait_drained(admin, envoy, false).await?.converged;
    let after = cpu_now(pids)?;
    let redis_commands = match &stack.redis {
        Some(r) => command_stats(&r.command(&["INFO", "commandstats"]).await?),
        None => Vec::new(),
    };
    one_side(target, n, concurrency, true).await?;
    let bypass_end = cpu_now(pids)?;
    Ok(CpuSplit {
        envoy_us: delta(&before, &after, 0).unwrap_or(0),
        control_plane_us: delta(&before, &after, 1).unwrap_or(0),
        redis_us: delta(&before, &after, 2),
        bench_us: delta(&before, &after, 3).unwrap_or(0),
        envoy_bypass_us: delta(&after, &bypass_end, 0).unwrap_or(0),
        drained,
        redis_commands,
    })
}

fn print_cpu(cpu: &CpuSplit, n: usize, concurrency: usize) {
    let per = |total_us: u64| {
        let tenths = total_us * 10 / (n.max(1) as u64);
        format!("{:>7}.{} µs", tenths / 10, tenths % 10)
    };
    println!(
        "CPU per governed request: {n} x 1 KB through the filter at concurrency {concurrency}, utime+stime from /proc/<pid>/stat, from before the first request until the last settle batch landed{}",
        if cpu.drained {
            ""
        } else {
            " (NOT drained in time)"
        }
    );
    println!(
        "  envoy          {}  all threads: proxying, the filter in V8, reserve callouts, settle posts",
        per(cpu.envoy_us)
    );
    println!(
        "  control plane  {}  tollgate serve: reserve and settle handlers, HTTP, its timers, this bench's GET /v1/budgets polls",
        per(cpu.control_plane_us)
    );
    match cpu.redis_us {
        Some(r) => println!(
            "  redis          {}  redis-server: the reserve and settle scripts, its own cron",
            per(r)
        ),
        None => println!("  redis              n/a     (--store memory)"),
    }
    if !cpu.redis_commands.is_empty() {
        // Per 1 000 governed requests: calls and their time as Redis counts it (a script's
        // own commands are counted both under their name and in its EVALSHA).
        let per_k = |x: u64| x * 1_000 / (n.max(1) as u64);
        let list: Vec<String> = cpu
            .redis_commands
            .iter()
            .map(|(name, calls, us)| format!("{name} {} ({} µs)", per_k(*calls), per_k(*us)))
            .collect();
        println!(
            "                 redis commands per 1 000 requests, calls (their µs): {}",
            list.join(", ")
        );
    }
    let total = cpu.envoy_us + cpu.control_plane_us + cpu.redis_us.unwrap_or(0);
    println!("  sum            {}", per(total));
    println!(
        "  for reference, nothing subtracted above: envoy per bypass request {}; bench client + in-process mock provider per governed request {}",
        per(cpu.envoy_bypass_us).trim_start(),
        per(cpu.bench_us).trim_start()
    );
}

/// The budget's counters and the filter's charges at one moment.
struct Drained {
    spent_nanos: i64,
    reserved_nanos: i64,
    requests: i64,
    charged_nanos: u64,
    converged: bool,
}

/// Polls until the settled spend equals the filter's charges and, when `released`, nothing
/// is held either (a lease is returned 10 s after its last call), or [`DRAIN_DEADLINE`]
/// passes; returns the last reading either way.
async fn wait_drained(admin: &Admin, envoy: &Envoy, released: bool) -> anyhow::Result<Drained> {
    let deadline = Instant::now() + DRAIN_DEADLINE;
    loop {
        let charged_nanos = charged(envoy).await?;
        let usage = admin.usage().await?;
        let field = |name: &str| {
            usage[name]
                .as_i64()
                .ok_or_else(|| anyhow!("no usage.{name} in {usage}"))
        };
        let mut d = Drained {
            spent_nanos: field("spent_nanos")?,
            reserved_nanos: field("reserved_nanos")?,
            requests: field("requests")?,
            charged_nanos,
            converged: false,
        };
        d.converged = (!released || d.reserved_nanos == 0)
            && u64::try_from(d.spent_nanos) == Ok(charged_nanos);
        if d.converged || Instant::now() > deadline {
            return Ok(d);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The sum of `tollgate_cost_nanousd_total` over its labels in Envoy's Prometheus stats.
async fn charged(envoy: &Envoy) -> anyhow::Result<u64> {
    let text = envoy.admin_get("/stats/prometheus").await?;
    let mut sum = 0u64;
    for line in metric_lines(&text, "tollgate_cost_nanousd_total") {
        let value = line.rsplit(' ').next().unwrap_or_default();
        sum += value
            .parse::<u64>()
            .with_context(|| format!("metric line {line:?}"))?;
    }
    Ok(sum)
}

fn metric_lines<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> {
    text.lines().filter(move |l| {
        l.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
    })
}

async fn print_correctness(d: &Drained, envoy: &Envoy) -> anyhow::Result<bool> {
    println!(
        "Correctness, after settlement drained{}:",
        if d.converged {
            ""
        } else {
            " (deadline passed)"
        }
    );
    println!(
        "  budget {BUDGET_ID:?} settled spent_nanos     {}",
        d.spent_nanos
    );
    println!(
        "  envoy tollgate_cost_nanousd_total (sum) {}",
        d.charged_nanos
    );
    println!(
        "  still reserved_nanos                    {}",
        d.reserved_nanos
    );
    println!(
        "  requests admitted by the budget {} / sent through the filter {}",
        d.requests,
        GOVERNED.load(Ordering::Relaxed)
    );
    let text = envoy.admin_get("/stats/prometheus").await?;
    let mut metrics = String::new();
    for name in [
        "tollgate_admission_total",
        "tollgate_settle_posts_total",
        "tollgate_settlements_lost_total",
        "tollgate_control_plane_problems_total",
    ] {
        for line in metric_lines(&text, name).filter(|l| !l.ends_with(" 0")) {
            let _ = write!(metrics, "\n  {line}");
        }
    }
    println!("  filter metrics:{metrics}");
    let ok = d.converged;
    println!(
        "  {}",
        if ok {
            "OK: spent equals the sum charged"
        } else {
            "MISMATCH"
        }
    );
    Ok(ok)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}
