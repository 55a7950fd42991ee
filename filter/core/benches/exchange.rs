//! The whole per-request work of the filter, natively, for the three cases the Envoy bench
//! measures (`tests/src/bin/bench-gateway.rs`): what the guest costs before V8 and hostcalls.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tollgate_filter_core::flow::Exchange;
use tollgate_filter_core::host::Host;
use tollgate_filter_core::metrics::Metrics;
use tollgate_filter_core::plugin::Filter;
use tollgate_filter_core::testing::FakeHost;

mod calls;

use calls::{ANSWER, request, stream_events};

fn exchange(
    filter: &Filter,
    host: &FakeHost,
    metrics: &mut Metrics,
    body: &[u8],
    chunks: &[&[u8]],
) {
    let mut x = Exchange::new();
    x.on_request_headers(filter, metrics, host, calls::CHAT, &mut |_| None);
    x.on_request_body(filter, metrics, host, body.len(), true, &mut || {
        Some(body.to_vec())
    });
    x.on_response_headers(filter, 200);
    for c in chunks {
        black_box(x.on_response_chunk(filter, metrics, host, c.to_vec()));
    }
    black_box(x.finish(filter, metrics, host, host.now()));
}

fn bench(c: &mut Criterion) {
    let filter = Filter::from_json(b"{}").unwrap();
    let host = FakeHost::at(Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap());
    let mut metrics = Metrics::default();
    let mut g = c.benchmark_group("exchange");
    for (name, size) in [
        ("1KB-request-1.4KB-answer", 1024),
        ("100KB-request-1.4KB-answer", 100 * 1024),
    ] {
        let body = request(size, false);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| exchange(&filter, &host, &mut metrics, &body, &[ANSWER.as_bytes()]))
        });
    }
    let body = request(1024, true);
    let events = stream_events();
    let chunks: Vec<&[u8]> = events.iter().map(|e| e.as_bytes()).collect();
    g.throughput(Throughput::Elements(chunks.len() as u64));
    g.bench_function("1KB-request-64-event-stream", |b| {
        b.iter(|| exchange(&filter, &host, &mut metrics, &body, &chunks))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
