//! The whole per-request work of the filter, natively, for the three cases the Envoy bench
//! measures (`tests/src/bin/bench-gateway.rs`): what the guest costs before V8 and hostcalls.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tollgate_filter_core::flow::{Exchange, RequestHead};
use tollgate_filter_core::metrics::Metrics;
use tollgate_filter_core::plugin::Filter;
use tollgate_filter_core::testing::FakeHost;

const PROSE: &str =
    "The quarterly report shows steady growth across all regions, with costs held flat. ";

fn request(bytes: usize, stream: bool) -> Vec<u8> {
    let head = format!(
        r#"{{"model":"gpt-4o-mini","stream":{stream},"max_tokens":256,"messages":[{{"role":"user","content":""#
    );
    let tail = r#""}]}"#;
    let content: String = PROSE
        .chars()
        .cycle()
        .take(bytes.saturating_sub(head.len() + tail.len()))
        .collect();
    format!("{head}{content}{tail}").into_bytes()
}

const ANSWER: &str = r#"{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion","created":1741570283,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Revenue grew in every region this quarter while operating costs stayed flat, so margins widened. The strongest growth came from the northern region, driven by renewals and two large new accounts. Headcount was unchanged. The main risk for next quarter is currency: a stronger dollar would reduce reported revenue from Europe by roughly two percent. Recommended actions: keep hiring frozen until the renewal cycle closes, hedge euro exposure for the next two quarters, and review pricing for the smallest accounts, which have the lowest margins.","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":231,"completion_tokens":103,"total_tokens":334,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_06737a9306"}"#;

fn stream_events() -> Vec<String> {
    let mut events: Vec<String> = (0..62)
        .map(|i| format!("data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" word{i}\"}},\"finish_reason\":null}}],\"usage\":null}}\n\n"))
        .collect();
    events.push("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{\"prompt_tokens\":231,\"completion_tokens\":61,\"total_tokens\":292}}\n\n".into());
    events.push("data: [DONE]\n\n".into());
    events
}

fn exchange(
    filter: &Filter,
    host: &FakeHost,
    metrics: &mut Metrics,
    body: &[u8],
    chunks: &[&[u8]],
) {
    let mut x = Exchange::new();
    let head = RequestHead {
        method: "POST",
        path: "/v1/chat/completions",
        authority: Some("api.openai.com"),
    };
    x.on_request_headers(filter, metrics, host, head, &mut |_| None);
    x.on_request_body(filter, metrics, host, body.len(), true, &mut || {
        Some(body.to_vec())
    });
    x.on_response_headers(filter, 200);
    for c in chunks {
        x.on_response_body(c);
    }
    black_box(x.finish(filter, metrics, host));
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
