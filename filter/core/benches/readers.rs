//! Criterion benches for the request reader, the usage extractor and the stream scanner
//! (targets from issue 4: request 10 KB ≤ 5 µs, 100 KB ≤ 40 µs; usage from a 1.4 KB JSON
//! response ≤ 1 µs; SSE scan of chunks without usage ≥ 1 GB/s).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tollgate_filter_core::providers::{Api, Dialect, Framing, Provider, Route};
use tollgate_filter_core::request::{RequestLimits, read_request};
use tollgate_filter_core::stream::{ResponseReader, StreamLimits};
use tollgate_filter_core::usage::extract_usage;
use tollgate_model::PriceTable;

const PROSE: &str = "The quick brown fox jumps over the lazy dog while the committee reviews \
the quarterly budget, noting that infrastructure costs rose by 12% since March. ";

/// An OpenAI chat request of about `size` bytes: a system prompt and alternating turns.
fn chat_request(size: usize) -> Vec<u8> {
    let mut messages = Vec::new();
    let mut total = 0;
    let mut turn = 0;
    while total < size {
        let content = PROSE.repeat(4);
        total += content.len() + 40;
        let role = if turn % 2 == 0 { "user" } else { "assistant" };
        messages.push(serde_json::json!({"role": role, "content": content}));
        turn += 1;
    }
    serde_json::to_vec(&serde_json::json!({
        "model": "gpt-4o",
        "messages": messages,
        "max_completion_tokens": 1024,
        "stream": true,
        "temperature": 0.2,
    }))
    .unwrap()
}

/// A non-streamed chat completion of about 1.4 KB.
fn chat_response() -> Vec<u8> {
    let content = PROSE.repeat(6);
    serde_json::to_vec(&serde_json::json!({
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": 1741570283,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content,
            "refusal": null, "annotations": []}, "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1117, "completion_tokens": 46, "total_tokens": 1163,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
        "service_tier": "default",
        "system_fingerprint": "fp_fc9f1d7035"
    }))
    .unwrap()
}

/// OpenAI content-delta events (no usage), about 1 MiB.
fn sse_stream() -> Vec<u8> {
    let mut out = Vec::new();
    let words = PROSE.split(' ').collect::<Vec<_>>();
    let mut i = 0;
    while out.len() < 1 << 20 {
        let event = format!(
            "data: {{\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" {}\"}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null}}\n\n",
            words[i % words.len()]
        );
        out.extend_from_slice(event.as_bytes());
        i += 1;
    }
    out
}

fn benches(c: &mut Criterion) {
    let prices = PriceTable::shipped().unwrap();
    let route = Route::new(Provider::Openai, Api::ChatCompletions);
    for (name, size) in [
        ("request_read_10KB", 10 * 1024),
        ("request_read_100KB", 100 * 1024),
    ] {
        let body = chat_request(size);
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function("openai_chat", |b| {
            b.iter(|| read_request(&route, black_box(&body), &prices, RequestLimits::default()))
        });
        // The two halves of the reader, to see where the time goes.
        group.bench_function("estimate_only", |b| {
            b.iter(|| tollgate_filter_core::estimate::estimate_tokens(black_box(&body)))
        });
        group.bench_function("scan_only", |b| {
            b.iter(|| {
                tollgate_filter_core::request::scan::for_each_member(black_box(&body), 0, |_, _| {})
            })
        });
        group.finish();
    }

    let response = chat_response();
    let mut group = c.benchmark_group("usage_json_1_4KB");
    group.throughput(Throughput::Bytes(response.len() as u64));
    group.bench_function("openai_chat", |b| {
        b.iter(|| extract_usage(Dialect::OpenaiChat, black_box(&response)))
    });
    group.finish();

    let stream = sse_stream();
    let mut group = c.benchmark_group("sse_scan_no_usage");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("openai_chat_16KiB_chunks", |b| {
        b.iter(|| {
            let mut reader =
                ResponseReader::new(Dialect::OpenaiChat, Framing::Sse, StreamLimits::default());
            for chunk in stream.chunks(16 * 1024) {
                reader.feed(black_box(chunk));
            }
            reader.finish(|| 0)
        })
    });
    group.finish();
}

criterion_group!(readers, benches);
criterion_main!(readers);
