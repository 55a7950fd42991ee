//! Added latency of a Wasm filter in real Envoy: the same Envoy, the same mock provider, one
//! route through the filter and one with the filter disabled, requests interleaved so both
//! sides see the same machine state.
//!
//! `cargo run --release -p tollgate-e2e --bin bench-gateway -- [--filter noop|noop-buffer|noop-reads|tollgate]
//!  [--requests N] [--concurrency N]`
//!
//! Prints p50/p90/p99 per side and the p50 difference for: a 1 KB request with a 1.4 KB JSON
//! answer, a 100 KB request, and a 64-event SSE stream (time to first byte and to the end).

// Latency statistics in floating point: microseconds, not money.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_arithmetic)]

use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use tollgate_e2e::envoy::Envoy;
use tollgate_e2e::gateway_config::{GatewayConfig, WasmFilter};
use tollgate_e2e::mock_provider::MockProvider;
use tollgate_e2e::{bench_bodies, paths};

struct Args {
    filter: String,
    path: String,
    requests: usize,
    concurrency: usize,
}

fn args() -> Args {
    let mut a = Args {
        filter: "noop".into(),
        path: "/v1/chat/completions".into(),
        requests: 5000,
        concurrency: 1,
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
    let envoy = Envoy::start(&config.render(), 1)
        .await
        .context("starting envoy")?;
    let url = format!("{}{}", envoy.url(), args.path);
    println!(
        "bench-gateway: filter={} requests={} concurrency={} envoy_concurrency=1",
        args.filter, args.requests, args.concurrency
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
    if let Ok(mem) = envoy.admin_get("/memory").await {
        println!(
            "envoy /memory: {}",
            mem.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
    envoy.stop().await?;
    Ok(())
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
                // Alternate which side goes first so neither always follows the other.
                let order = if i % 2 == 0 {
                    [true, false]
                } else {
                    [false, true]
                };
                for bypass in order {
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

async fn one(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    fixture: &str,
    bypass: bool,
    pace: bool,
) -> anyhow::Result<Sample> {
    let mut req = client
        .post(url)
        .header("x-mock-fixture", fixture)
        .body(body.to_owned());
    if bypass {
        req = req.header("x-tollgate-bench-bypass", "1");
    }
    if pace {
        req = req.header("x-mock-pace-ms", "0");
    }
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
