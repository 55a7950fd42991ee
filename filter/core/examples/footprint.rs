//! What one phase of an exchange touches when it finds the caches cold: the cache lines of
//! code and data it fetches from memory. In Envoy that, not the instruction count, is most
//! of what the filter costs on a busy worker (docs/filter.md, "Per event, event by event").
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
use tollgate_filter_core::flow::{Exchange, RequestHead};
use tollgate_filter_core::host::Host;
use tollgate_filter_core::metrics::Metrics;
use tollgate_filter_core::plugin::Filter;
use tollgate_filter_core::testing::FakeHost;

#[path = "../benches/calls/mod.rs"]
mod calls;

/// The phases, in the order a call meets them: the bench's 1 KB OpenAI chat call, then one
/// event in the middle of its 64-event stream.
const PHASES: [&str; 6] = [
    "request-headers",
    "request-body",
    "response-headers",
    "response-body",
    "finish",
    "stream-event",
];

const HEAD: RequestHead<'static> = RequestHead {
    method: "POST",
    path: "/v1/chat/completions",
    authority: Some("api.openai.com"),
};

struct Vm {
    filter: Filter,
    host: FakeHost,
    metrics: Metrics,
}

impl Vm {
    /// The exchange of `body`, run through `phases` phases (answered with `chunks`). Each
    /// chunk is handed over as the adapter's copy out of Envoy, which the exchange may keep.
    fn exchange(&mut self, body: &[u8], chunks: &[&[u8]], phases: usize) -> Exchange {
        let mut x = Exchange::new();
        for phase in 0..phases {
            self.phase(&mut x, phase, body, chunks);
        }
        x
    }

    /// One phase of `x`; the one the run measures is called on its own, after the eviction.
    #[inline(never)]
    fn phase(&mut self, x: &mut Exchange, phase: usize, body: &[u8], chunks: &[&[u8]]) {
        let Vm {
            filter,
            host,
            metrics,
        } = self;
        match phase {
            0 => drop(black_box(x.on_request_headers(
                filter,
                metrics,
                host,
                HEAD,
                &mut |_| None,
            ))),
            1 => drop(black_box(x.on_request_body(
                filter,
                metrics,
                host,
                body.len(),
                true,
                &mut || Some(body.to_vec()),
            ))),
            2 => drop(black_box(x.on_response_headers(filter, 200))),
            3 => {
                for c in chunks {
                    black_box(x.on_response_chunk(filter, metrics, host, c.to_vec()));
                }
            }
            _ => drop(black_box(std::mem::take(x).finish(
                filter,
                metrics,
                host,
                host.now(),
            ))),
        }
    }
}

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
    let mut vm = Vm {
        filter: Filter::from_json(b"{}").unwrap(),
        host: FakeHost::at(Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()),
        metrics: Metrics::default(),
    };
    let small = calls::request(1024, false);
    let answer = [calls::ANSWER.as_bytes()];
    let streamed = calls::request(1024, true);
    let events = calls::stream_events();
    let events: Vec<&[u8]> = events.iter().map(|e| e.as_bytes()).collect();
    for _ in 0..20 {
        black_box(vm.exchange(&small, &answer, 5));
        black_box(vm.exchange(&streamed, &events, 5));
    }
    // The exchange up to the measured phase, and what it will be given.
    let (mut x, body, chunks): (Exchange, &[u8], &[&[u8]]) = if phase < 5 {
        (vm.exchange(&small, &answer, phase), &small, &answer)
    } else {
        let before = &events[..10];
        (
            vm.exchange(&streamed, before, 4),
            &streamed,
            &events[10..11],
        )
    };
    let mut evict = vec![0u8; 128 << 20];
    for b in evict.iter_mut().step_by(64) {
        *b = b.wrapping_add(1);
    }
    black_box(&mut evict);
    // The stream's event is a response-body phase of one chunk.
    let step = if phase == 5 { 3 } else { phase };
    measured(|| vm.phase(&mut x, step, body, chunks));
    black_box(x);
}
