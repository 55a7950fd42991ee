//! Times each phase of one exchange through the filter core, for the calls the Envoy bench
//! makes (1 KB and 100 KB OpenAI chat requests, the 1.4 KB answer, the 64-event stream):
//! natively, or built for wasm32-wasip1 and run in node's V8, the engine Envoy embeds.
//! `scripts/bench-exchange-v8.sh` runs both.
//!
//! It answers what the criterion bench (`benches/exchange.rs`) cannot: how much of the
//! filter's added latency in Envoy is the guest's own computing in V8, and how much is
//! Envoy, hostcalls and the machine. With `cold`, 32 MiB are written between calls, so each
//! call starts with caches as cold as in a busy proxy: on a shared 2-core box, Envoy, the
//! kernel's TCP, the client and the provider all run between two calls of one worker's VM.
//!
//! `exchange_phases [cold]` prints µs per call, the mean over the timed calls, per phase.
//!
//! Envoy's own V8 runs the same code 2.5–3× slower than node's (docs/benchmarks.md): read
//! these as the guest's share, not as what Envoy pays.

#![allow(missing_docs, clippy::unwrap_used, clippy::float_arithmetic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use tollgate_filter_core::flow::Exchange;
use tollgate_filter_core::metrics::Metrics;
use tollgate_filter_core::plugin::Filter;
use tollgate_filter_core::testing::FakeHost;

#[path = "../benches/calls/mod.rs"]
mod calls;

/// A call: its name, the request body and the answer's chunks.
type Case<'a> = (&'static str, Vec<u8>, Vec<&'a [u8]>);

const PHASES: [&str; 6] = [
    "request headers",
    "request body",
    "response headers",
    "response body",
    "input estimate (*)",
    "charge (on the tick)",
];

/// Runs one call; returns the time each phase took.
fn call(
    filter: &Filter,
    host: &FakeHost,
    metrics: &mut Metrics,
    body: &[u8],
    chunks: &[&[u8]],
) -> [Duration; 6] {
    let mut x = Exchange::new();
    let t0 = Instant::now();
    x.on_request_headers(filter, metrics, host, calls::CHAT, &mut |_| None);
    let t1 = Instant::now();
    x.on_request_body(filter, metrics, host, body.len(), true, &mut || {
        Some(body.to_vec())
    });
    let t2 = Instant::now();
    x.on_response_headers(filter, 200);
    let t3 = Instant::now();
    for c in chunks {
        black_box(x.on_response_chunk(filter, metrics, host, c.to_vec()));
    }
    let t4 = Instant::now();
    // Made here so that it is timed on its own: the charge makes it only for an answer
    // without usage (these answers have usage).
    black_box(x.input_estimate());
    let t5 = Instant::now();
    let ended_at = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    black_box(x.finish(filter, metrics, host, ended_at));
    let t6 = Instant::now();
    [t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5]
}

fn main() {
    let cold = std::env::args().any(|a| a == "cold");
    let filter = Filter::from_json(b"{}").unwrap();
    let host = FakeHost::at(Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap());
    let mut metrics = Metrics::default();
    let mut flush = vec![0u8; if cold { 32 << 20 } else { 0 }];
    let events = calls::stream_events();
    let cases: [Case<'_>; 3] = [
        (
            "1 KB request, 1.4 KB answer",
            calls::request(1024, false),
            vec![calls::ANSWER.as_bytes()],
        ),
        (
            "100 KB request, 1.4 KB answer",
            calls::request(100 * 1024, false),
            vec![calls::ANSWER.as_bytes()],
        ),
        (
            "1 KB request, 64-event stream",
            calls::request(1024, true),
            events.iter().map(|e| e.as_bytes()).collect(),
        ),
    ];
    println!("{}", if cold { "cold caches" } else { "hot caches" });
    for (name, body, chunks) in &cases {
        let timed: u32 = if cold { 500 } else { 5000 };
        let mut total = [Duration::ZERO; 6];
        // The first tenth warms up (and lets V8 tier up to TurboFan); it is not counted.
        for i in 0..timed + timed / 10 {
            if cold {
                for byte in flush.iter_mut().step_by(64) {
                    *byte = byte.wrapping_add(1);
                }
                black_box(&flush);
            }
            let took = call(&filter, &host, &mut metrics, body, chunks);
            if i >= timed / 10 {
                for (sum, t) in total.iter_mut().zip(took) {
                    *sum += t;
                }
            }
        }
        println!("{name}:");
        for (phase, sum) in PHASES.iter().zip(total) {
            println!(
                "  {phase:<22} {:>8.2} µs",
                sum.as_secs_f64() * 1e6 / f64::from(timed)
            );
        }
    }
    println!(
        "(*) without a control plane, made only when the answer reports no usage (at the charge); with one, in the request body's phase"
    );
}
