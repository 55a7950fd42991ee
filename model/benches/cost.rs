//! `cost()` for a known model with every dimension non-zero (issue target: ≤ 200 ns native).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use tollgate_model::{PriceTable, Usage};

fn bench_cost(c: &mut Criterion) {
    let table = PriceTable::shipped().unwrap();
    let at = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    let usage = Usage {
        uncached_input_tokens: 12_345,
        cached_input_tokens: 40_000,
        cache_write_5m_tokens: 2_048,
        cache_write_1h_tokens: 1_024,
        output_tokens: 1_500,
        reasoning_tokens: 700,
        images: 0,
        audio_seconds: 0,
        ..Usage::default()
    };
    let model = if table.resolve("claude-sonnet-4-5").is_some() {
        "claude-sonnet-4-5"
    } else {
        "gpt-4o"
    };
    c.bench_function(&format!("cost/{model}/all-dimensions"), |b| {
        b.iter(|| {
            table
                .cost(black_box(model), black_box(&usage), black_box(at))
                .unwrap()
        })
    });
    c.bench_function("cost/dated-snapshot-normalised", |b| {
        b.iter(|| {
            table
                .cost(
                    black_box("gpt-4o-2024-08-06"),
                    black_box(&usage),
                    black_box(at),
                )
                .unwrap()
        })
    });
}

criterion_group!(benches, bench_cost);
criterion_main!(benches);
