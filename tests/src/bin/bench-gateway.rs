//! Added latency of a Wasm filter in real Envoy: the same Envoy, the same mock provider, one
//! route through the filter and one with the filter disabled, requests interleaved so both
//! sides see the same machine state.
//!
//! `cargo run --release -p tollgate-e2e --bin bench-gateway -- [--filter noop|noop-buffer|noop-reads|tollgate]
//!  [--path P] [--requests N] [--concurrency N] [--paced-streams N] [--envoy-workers N]`
//!
//! Prints p50/p90/p99 per side and the p50 difference for: a 1 KB request with a 1.4 KB JSON
//! answer, a 100 KB request, and a 64-event SSE stream sent back to back (time to first byte
//! and to the end); then the delay of each event of a stream whose events are 2 ms apart,
//! from the mock provider handing it over to the client having it; then Envoy's CPU time
//! per 1 KB call through each route alone (`--cpu-requests N`, default 10 000, 0 skips it;
//! `--cpu-concurrency N`, default 16, as `bench-enforcement`'s): with `--filter noop` that
//! is the do-nothing filter's cost, the floor `bench-enforcement`'s Envoy figure is read
//! against.

// Latency statistics in floating point: microseconds, not money.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_arithmetic)]

use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use tollgate_e2e::envoy::Envoy;
use tollgate_e2e::gateway_config::{GatewayConfig, WasmFilter};
use tollgate_e2e::mock_provider::MockProvider;
use tollgate_e2e::{bench_bodies, bench_stack, paths};

struct Args {
    filter: String,
    path: String,
    requests: usize,
    concurrency: usize,
    /// Streams for the per-event delays (events 2 ms apart); 0 skips them.
    paced_streams: Option<usize>,
    /// Envoy's worker threads (each runs its own Wasm VM): the memory printed at the end,
    /// run with 1 and with N, gives what a worker adds.
    envoy_workers: u32,
    /// Calls per route for Envoy's CPU per call; 0 skips it.
    cpu_requests: usize,
    /// Client tasks for those calls.
    cpu_concurrency: usize,
}

fn args() -> Args {
    let mut a = Args {
        filter: "noop".into(),
        path: "/v1/chat/completions".into(),
        requests: 5000,
        concurrency: 1,
        paced_streams: None,
        envoy_workers: 1,
        cpu_requests: 10_000,
        cpu_concurrency: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--filter" => a.filter = value,
            // A path the filter does not govern (`/v1/files`) isolates the cost of Wasm itself.
            "--path" => a.path = value,
            "--requests" => a.requests = value.parse().unwrap_or(a.requests),
            "--concurrency" => a.concurrency = value.parse().unwrap_or(a.concurrency),
            "--paced-streams" => a.paced_streams = value.parse().ok(),
            "--envoy-workers" => a.envoy_workers = value.parse().unwrap_or(a.envoy_workers),
            "--cpu-requests" => a.cpu_requests = value.parse().unwrap_or(a.cpu_requests),
            "--cpu-concurrency" => {
                a.cpu_concurrency = value.parse().unwrap_or(a.cpu_concurrency).max(1)
            }
            other => eprintln!("ignoring unknown flag {other}"),
        }
    }
    a
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = args();
    let fixtures = tempfile::tempdir()?;
    bench_bodies::write_fixtures(fixtures.path())?;
    let mock = MockProvider::start(fixtures.path().to_path_buf()).await?;
    mock.stop_recording();
    let (path, plugin_config) = match args.filter.as_str() {
        "noop" => (
            paths::built_wasm("tollgate_noop_filter")?,
            serde_json::json!({}),
        ),
        // The do-nothing filter that still holds and reads the request body: the floor for
        // any filter that must see the body before the call leaves.
        "noop-buffer" => (
            paths::built_wasm("tollgate_noop_filter")?,
            serde_json::json!("buffer"),
        ),
        // The do-nothing filter that also makes Tollgate's hostcalls (headers, body, status,
        // each response chunk, the clock) and ignores their answers: the floor for a filter
        // that must read what Tollgate reads.
        "noop-reads" => (
            paths::built_wasm("tollgate_noop_filter")?,
            serde_json::json!("reads"),
        ),
        // $TOLLGATE_WASM picks another build of the filter (another opt-level, say).
        // Measuring only: the filter's own work, no admission round trip.
        "tollgate" => (paths::filter_wasm()?, {
            let mut config = tollgate_e2e::gateway_config::reference_plugin_config();
            if let Some(fields) = config.as_object_mut() {
                fields.remove("control_plane");
            }
            config
        }),
        other => anyhow::bail!("--filter noop|noop-buffer|noop-reads|tollgate, not {other}"),
    };
    let wasm = WasmFilter {
        path,
        plugin_config,
    };
    let mut config = GatewayConfig::loopback(mock.addr.port(), 1, Some(wasm));
    config.bench_bypass_route = true;
    let envoy = Envoy::start(&config.render(), args.envoy_workers)
        .await
        .context("starting envoy")?;
    let url = format!("{}{}", envoy.url(), args.path);
    println!(
        "bench-gateway: filter={} requests={} concurrency={} envoy_concurrency={}",
        args.filter, args.requests, args.concurrency, args.envoy_workers
    );

    let small = bench_bodies::chat_request(1024);
    let large = bench_bodies::chat_request(100 * 1024);
    for (label, body, fixture) in [
        ("1KB request, 1.4KB JSON answer", &small, "chat.json"),
        ("100KB request, 1.4KB JSON answer", &large, "chat.json"),
    ] {
        let (plain, filtered) =
            interleave(&url, body, fixture, args.requests, args.concurrency, false).await?;
        report(label, &totals(&plain), &totals(&filtered));
    }
    let n = (args.requests / 10).max(200);
    let streamed = bench_bodies::chat_request_streamed(1024);
    let (plain, filtered) = interleave(&url, &streamed, "chat-64-events.sse", n, 1, true).await?;
    report(
        "64-event SSE stream, time to first byte",
        &firsts(&plain),
        &firsts(&filtered),
    );
    let (plain_totals, filtered_totals) = (totals(&plain), totals(&filtered));
    report(
        "64-event SSE stream, whole stream",
        &plain_totals,
        &filtered_totals,
    );
    let (p, f) = (
        percentile(&plain_totals, 50.0),
        percentile(&filtered_totals, 50.0),
    );
    println!(
        "  added per event (p50 whole stream / 64): {:.2} µs",
        (f - p) / 64.0
    );
    let paced = args.paced_streams.unwrap_or((args.requests / 20).max(60));
    if paced > 0 {
        per_event_delays(&url, &mock, &streamed, paced).await?;
    }
    if args.cpu_requests > 0 {
        let pid = bench_stack::child_named("envoy")?;
        let tick_us = 1_000_000 / bench_stack::clock_ticks_per_sec()?.max(1);
        let (mut per_call, mut sent) = ([0.0; 2], 0);
        for (slot, bypass) in [(0, false), (1, true)] {
            let before = bench_stack::proc_stat(pid)?.1.cpu_ticks;
            sent = one_side(
                &url,
                &small,
                args.cpu_requests,
                args.cpu_concurrency,
                bypass,
            )
            .await?;
            let ticks = bench_stack::proc_stat(pid)?.1.cpu_ticks - before;
            per_call[slot] = (ticks * tick_us) as f64 / sent as f64;
        }
        println!(
            "envoy CPU per 1 KB call ({} calls a route at concurrency {}, utime+stime from /proc): filter route {:.1} µs, plain route {:.1} µs",
            sent, args.cpu_concurrency, per_call[0], per_call[1]
        );
    }
    if let Ok(mem) = envoy.admin_get("/memory").await {
        println!(
            "envoy /memory: {}",
            mem.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
    if let Some(rss) = envoy.resident_bytes() {
        println!("envoy VmRSS: {rss} bytes");
    }
    envoy.stop().await?;
    Ok(())
}

/// What each event of a stream costs on its way through.
///
/// Sent back to back (above), a stream's 64 events reach Envoy in a few reads, so Envoy
/// passes them on in a few chunks and the whole stream's time says little about one event.
/// Here the mock sends an event every 2 ms (2–3: tokio's timer has 1 ms steps), as a
/// provider does (tens of ms apart), so each is its own chunk through Envoy and the filter,
/// and each event's delay is timed: from the mock handing it to its HTTP server to the client
/// holding its last byte (one clock: the mock runs in this process). The stream is 65 pieces,
/// the 64 events and `data: [DONE]`; per stream, the median over the 63 between the first
/// (which carries the response headers' work) and `[DONE]`, and `[DONE]`'s own delay. The
/// stream's end (`on_log`) may come after `[DONE]` has gone out: no figure here holds it.
async fn per_event_delays(
    url: &str,
    mock: &MockProvider,
    body: &str,
    streams: usize,
) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let warmup = 20;
    let (mut plain, mut filtered) = (Vec::new(), Vec::new());
    let (mut plain_last, mut filtered_last) = (Vec::new(), Vec::new());
    for i in 0..(warmup + streams) {
        for bypass in sides(i) {
            let delays = event_delays(&client, url, body, mock, bypass).await?;
            if i < warmup {
                continue;
            }
            let (middle, last) = match delays.as_slice() {
                [_, middle @ .., last] if !middle.is_empty() => (percentile(middle, 50.0), *last),
                _ => anyhow::bail!("a stream of {} events", delays.len()),
            };
            let (m, l) = if bypass {
                (&mut plain, &mut plain_last)
            } else {
                (&mut filtered, &mut filtered_last)
            };
            m.push(middle);
            l.push(last);
        }
    }
    report(
        "64-event SSE stream, events 2 ms apart: an event's delay (median of a stream's 63 middle events)",
        &plain,
        &filtered,
    );
    report(
        "64-event SSE stream, events 2 ms apart: the delay of its closing `data: [DONE]`",
        &plain_last,
        &filtered_last,
    );
    Ok(())
}

/// One stream paced 2 ms an event: each event's delay in µs, from the mock's hand-over to
/// the arrival of the chunk holding its last byte.
async fn event_delays(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    mock: &MockProvider,
    bypass: bool,
) -> anyhow::Result<Vec<f64>> {
    let req = request(client, url, body, "chat-64-events.sse", bypass, Some("2"));
    let resp = req.send().await?;
    anyhow::ensure!(resp.status().is_success(), "status {}", resp.status());
    let mut stream = resp.bytes_stream();
    // (arrival, bytes received so far) per chunk.
    let mut arrivals = Vec::new();
    let mut received = 0;
    while let Some(chunk) = stream.next().await {
        received += chunk?.len();
        arrivals.push((Instant::now(), received));
    }
    let mut delays = Vec::new();
    let mut sent = 0;
    for (at, len) in mock.last_stream_pieces() {
        sent += len;
        let arrived = arrivals
            .iter()
            .find(|(_, upto)| *upto >= sent)
            .map(|(t, _)| *t)
            .context("an event the client never got")?;
        delays.push(micros(arrived.duration_since(at)));
    }
    Ok(delays)
}

/// The two sides in the order round `i` runs them (`true`: the plain route), alternated so
/// that neither always follows the other.
fn sides(i: usize) -> [bool; 2] {
    if i.is_multiple_of(2) {
        [true, false]
    } else {
        [false, true]
    }
}

/// One call to the mock through Envoy: answered with `fixture`, on the plain route when
/// `bypass`, as a stream paced `pace_ms` an event when given.
fn request(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    fixture: &str,
    bypass: bool,
    pace_ms: Option<&str>,
) -> reqwest::RequestBuilder {
    let mut req = client
        .post(url)
        .header("x-mock-fixture", fixture)
        .body(body.to_owned());
    if bypass {
        req = req.header("x-tollgate-bench-bypass", "1");
    }
    if let Some(pace) = pace_ms {
        req = req.header("x-mock-pace-ms", pace);
    }
    req
}

/// (time to first body byte, time to last byte) of one request, in µs.
type Sample = (f64, f64);

async fn interleave(
    url: &str,
    body: &str,
    fixture: &str,
    requests: usize,
    concurrency: usize,
    pace: bool,
) -> anyhow::Result<(Vec<Sample>, Vec<Sample>)> {
    let warmup = (requests / 10).clamp(50, 500);
    let per_task = requests.div_ceil(concurrency);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (url, body, fixture) = (url.to_owned(), body.to_owned(), fixture.to_owned());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(4)
                .build()?;
            let (mut plain, mut filtered) = (Vec::new(), Vec::new());
            for i in 0..(warmup + per_task) {
                for bypass in sides(i) {
                    let s = one(&client, &url, &body, &fixture, bypass, pace).await?;
                    if i >= warmup {
                        if bypass {
                            plain.push(s)
                        } else {
                            filtered.push(s)
                        }
                    }
                }
            }
            anyhow::Ok((plain, filtered))
        }));
    }
    let (mut plain, mut filtered) = (Vec::new(), Vec::new());
    for t in tasks {
        let (p, f) = t.await??;
        plain.extend(p);
        filtered.extend(f);
    }
    Ok((plain, filtered))
}

/// About `n` calls through one route only (`bypass`: the plain one), over `concurrency`
/// tasks; returns how many were sent.
async fn one_side(
    url: &str,
    body: &str,
    n: usize,
    concurrency: usize,
    bypass: bool,
) -> anyhow::Result<usize> {
    let per_task = n.div_ceil(concurrency);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (url, body) = (url.to_owned(), body.to_owned());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(4)
                .build()?;
            for _ in 0..per_task {
                one(&client, &url, &body, "chat.json", bypass, false).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(per_task * concurrency)
}

async fn one(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    fixture: &str,
    bypass: bool,
    pace: bool,
) -> anyhow::Result<Sample> {
    let req = request(client, url, body, fixture, bypass, pace.then_some("0"));
    let start = Instant::now();
    let resp = req.send().await?;
    anyhow::ensure!(resp.status().is_success(), "status {}", resp.status());
    let mut stream = resp.bytes_stream();
    let mut first = None;
    while let Some(chunk) = stream.next().await {
        chunk?;
        first.get_or_insert_with(|| start.elapsed());
    }
    let total = start.elapsed();
    Ok((micros(first.unwrap_or(total)), micros(total)))
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn firsts(s: &[Sample]) -> Vec<f64> {
    s.iter().map(|x| x.0).collect()
}

fn totals(s: &[Sample]) -> Vec<f64> {
    s.iter().map(|x| x.1).collect()
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[rank.min(v.len() - 1)]
}

fn report(label: &str, plain: &[f64], filtered: &[f64]) {
    let row = |v: &[f64]| {
        format!(
            "p50 {:8.1} µs  p90 {:8.1} µs  p99 {:8.1} µs  (n={})",
            percentile(v, 50.0),
            percentile(v, 90.0),
            percentile(v, 99.0),
            v.len()
        )
    };
    println!("{label}");
    println!("  plain route   : {}", row(plain));
    println!("  filter route  : {}", row(filtered));
    println!(
        "  added p50     : {:8.1} µs",
        percentile(filtered, 50.0) - percentile(plain, 50.0)
    );
}
