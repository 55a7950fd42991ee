//! Times the filter core's work inside Envoy's own V8 (feature `vm-bench`; never in the
//! shipped module): `scripts/bench-in-envoy-vm.sh` builds it, starts Envoy and prints the
//! lines this logs.
//!
//! Why: node's V8 (`scripts/bench-exchange-v8.sh`) runs the same code 2.5–3× faster than
//! Envoy's, so it cannot say what a change saves in Envoy. This runs when a VM is configured,
//! so each worker prints its own set; the clock is Envoy's (`proxy_get_current_time`).

#![allow(clippy::float_arithmetic)]

use std::hint::black_box;

use tollgate_filter_core::estimate::{estimate_body_tokens, estimate_tokens};
use tollgate_filter_core::flow::Exchange;
use tollgate_filter_core::host::{Host, LogLevel};
use tollgate_filter_core::metrics::Metrics;
use tollgate_filter_core::plugin::Filter;
use tollgate_filter_core::providers::{Api, Provider, Route};
use tollgate_filter_core::request::{RequestLimits, read_request, read_request_unestimated, scan};

use crate::host::EnvoyHost;

#[path = "../../core/benches/calls/mod.rs"]
mod calls;

use calls::PHASES;

/// Calls timed per case, after a tenth as many to warm up.
const CALLS: u32 = 400;

fn time(name: &str, f: &mut dyn FnMut()) {
    for _ in 0..CALLS / 10 {
        f();
    }
    let start = EnvoyHost.now();
    for _ in 0..CALLS {
        f();
    }
    let took = EnvoyHost.now() - start;
    let us = took.num_nanoseconds().unwrap_or(0) as f64 / 1000.0 / f64::from(CALLS);
    EnvoyHost.log(
        LogLevel::Warn,
        &format!("tollgate vm-bench: {name:<40} {us:>8.2} µs"),
    );
}

/// Like [`time`], but each call finds cold caches, as on a busy worker (between two calls of
/// one VM, Envoy, the kernel, the client and the provider all run): 128 MiB (4× this
/// machine's L3) are written before each call, and the call alone is timed (Envoy's clock
/// has 1 µs steps: the median of `CALLS / 4` calls; the "nothing" line is the clock's own
/// cold cost, in every other line too). `setup` makes what `f` works on, before the caches
/// are made cold.
fn time_cold<T>(name: &str, setup: &mut dyn FnMut() -> T, f: &mut dyn FnMut(&mut T)) {
    let mut evict = vec![0u8; 128 << 20];
    let mut took = Vec::new();
    for _ in 0..CALLS / 4 {
        let mut state = setup();
        for b in evict.iter_mut().step_by(64) {
            *b = b.wrapping_add(1);
        }
        black_box(&mut evict);
        let start = EnvoyHost.now();
        f(&mut state);
        took.push((EnvoyHost.now() - start).num_nanoseconds().unwrap_or(0));
        black_box(state);
    }
    took.sort_unstable();
    let us = took.get(took.len() / 2).copied().unwrap_or(0) as f64 / 1000.0;
    EnvoyHost.log(
        LogLevel::Warn,
        &format!("tollgate vm-bench: {name:<40} {us:>8.2} µs (cold)"),
    );
}

/// One exchange as `bench-gateway` sends it, run up to and including `PHASES[..upto]`.
fn exchange(
    filter: &Filter,
    metrics: &mut Metrics,
    body: &[u8],
    chunks: &[&[u8]],
    upto: usize,
) -> Exchange {
    calls::exchange_upto(filter, metrics, &EnvoyHost, body, chunks, upto)
}

/// Times the exchange phase by phase on the bench's 1 KB call (each line runs one more
/// phase, so a phase costs the difference of two lines) and on its 64-event stream. The
/// metrics are Envoy's own (defined on first use), counted as each call is finished: in the
/// shipped filter the root's tick finishes the call and counts them in batches.
fn exchange_phases() {
    let Ok(filter) = Filter::from_json(b"{}") else {
        return;
    };
    let mut metrics = Metrics::default();
    let small = calls::request(1024, false);
    let answer = [calls::ANSWER.as_bytes()];
    for upto in 1..=PHASES.len() {
        time(&format!("1 KB call: to {}", PHASES[upto - 1]), &mut || {
            black_box(exchange(&filter, &mut metrics, &small, &answer, upto));
        });
    }
    time_cold("nothing", &mut || (), &mut |()| {});
    for upto in [1, PHASES.len() - 1, PHASES.len()] {
        time_cold(
            &format!("1 KB call: to {}", PHASES[upto - 1]),
            &mut || (),
            &mut |()| {
                black_box(exchange(&filter, &mut metrics, &small, &answer, upto));
            },
        );
    }
    let streamed = calls::request(1024, true);
    let events = calls::stream_events();
    let chunks: Vec<&[u8]> = events.iter().map(|e| e.as_bytes()).collect();
    time("stream: no events, finished", &mut || {
        black_box(exchange(
            &filter,
            &mut metrics,
            &streamed,
            &[],
            PHASES.len(),
        ));
    });
    time("stream: 64 events, not finished", &mut || {
        black_box(exchange(
            &filter,
            &mut metrics,
            &streamed,
            &chunks,
            PHASES.len() - 1,
        ));
    });
    time("stream: 64 events, finished", &mut || {
        black_box(exchange(
            &filter,
            &mut metrics,
            &streamed,
            &chunks,
            PHASES.len(),
        ));
    });
    // One event as it arrives mid-stream, each to a stream read up to its 10th event.
    let mut event_metrics = Metrics::default();
    time_cold(
        "stream: its 11th event",
        &mut || {
            exchange(
                &filter,
                &mut metrics,
                &streamed,
                &chunks[..10],
                PHASES.len() - 1,
            )
        },
        &mut |x| {
            black_box(x.on_response_chunk(
                &filter,
                &mut event_metrics,
                &EnvoyHost,
                chunks[10].to_vec(),
            ));
        },
    );
}

/// Times the request reader's parts on the bench's 1 KB and 100 KB chat bodies, then the
/// whole exchange's phases.
pub fn run(filter: &Filter) {
    exchange_phases();
    let prices = &filter.prices;
    let route = Route::new(Provider::Openai, Api::ChatCompletions);
    let limits = RequestLimits::default();
    for kb in [1, 100] {
        let body = calls::request(kb * 1024, false);
        let body = body.as_slice();
        time(&format!("{kb} KB: copy"), &mut || {
            black_box(black_box(body).to_vec());
        });
        time(&format!("{kb} KB: structural scan"), &mut || {
            black_box(scan::for_each_member(black_box(body), 0, |_, r| {
                black_box(r);
            }))
            .ok();
        });
        time(&format!("{kb} KB: estimate_tokens"), &mut || {
            black_box(estimate_tokens(black_box(body)));
        });
        time(&format!("{kb} KB: estimate_body_tokens"), &mut || {
            black_box(estimate_body_tokens(black_box(body)));
        });
        time(&format!("{kb} KB: read_request_unestimated"), &mut || {
            black_box(read_request_unestimated(
                &route,
                black_box(body),
                prices,
                limits,
            ));
        });
        time(&format!("{kb} KB: read_request"), &mut || {
            black_box(read_request(&route, black_box(body), prices, limits));
        });
    }
}
