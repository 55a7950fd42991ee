//! What one phase of an exchange touches when it finds the caches cold: the cache lines of
//! code and data it fetches from memory. In Envoy that, not the instruction count, is most
//! of what the filter costs on a busy worker (docs/benchmarks.md).
//!
//! `scripts/footprint.sh` runs this under callgrind's cache simulation, one phase per run:
//! the VM's first calls are made (lazy tables, metric ids), 128 MiB are written, then the
//! phase runs once. Callgrind counts are exact and repeatable, so a change that touches
//! fewer lines shows at once, where cold timings of one build spread by a third or more.
//!
//! `footprint PHASE`, PHASE one of [`PHASES`].

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use tollgate_filter_core::metrics::Metrics;
use tollgate_filter_core::plugin::Filter;
use tollgate_filter_core::testing::FakeHost;

#[path = "../benches/calls/mod.rs"]
mod calls;

/// The phases, in the order a call meets them: [`calls::PHASES`] of the bench's 1 KB OpenAI
/// chat call, then one event in the middle of its 64-event stream.
const PHASES: [&str; 6] = [
    "request-headers",
    "request-body",
    "response-headers",
    "response-body",
    "finish",
    "stream-event",
];

#[inline(never)]
fn measured(f: impl FnOnce()) {
    f();
}

fn main() {
    let wanted = std::env::args().nth(1).unwrap_or_default();
    let Some(phase) = PHASES.iter().position(|p| *p == wanted) else {
        eprintln!("usage: footprint {}", PHASES.join("|"));
        std::process::exit(2);
    };
    let filter = Filter::from_json(b"{}").unwrap();
    let host = FakeHost::at(Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap());
    let mut metrics = Metrics::default();
    let small = calls::request(1024, false);
    let answer = [calls::ANSWER.as_bytes()];
    let streamed = calls::request(1024, true);
    let events = calls::stream_events();
    let events: Vec<&[u8]> = events.iter().map(|e| e.as_bytes()).collect();
    // What a VM has after its first calls (lazy tables, metric ids).
    let whole = calls::PHASES.len();
    for _ in 0..20 {
        black_box(calls::exchange_upto(
            &filter,
            &mut metrics,
            &host,
            &small,
            &answer,
            whole,
        ));
        black_box(calls::exchange_upto(
            &filter,
            &mut metrics,
            &host,
            &streamed,
            &events,
            whole,
        ));
    }
    // The exchange up to the measured phase, and what it will be given; the stream's event
    // is a response-body phase of one chunk.
    let (mut x, step, body, chunks): (_, _, &[u8], &[&[u8]]) = if phase < whole {
        let x = calls::exchange_upto(&filter, &mut metrics, &host, &small, &answer, phase);
        (x, phase, &small, &answer)
    } else {
        let before = &events[..10];
        let x = calls::exchange_upto(&filter, &mut metrics, &host, &streamed, before, 4);
        (x, 3, &streamed, &events[10..11])
    };
    let mut evict = vec![0u8; 128 << 20];
    for b in evict.iter_mut().step_by(64) {
        *b = b.wrapping_add(1);
    }
    black_box(&mut evict);
    measured(|| calls::run_phase(&mut x, &filter, &mut metrics, &host, step, body, chunks));
    black_box(x);
}
