//! Prices one call with the shipped table: `price_a_call [MODEL] [INPUT] [OUTPUT]`.
//! What `scripts/up.sh` runs until the gateway stack lands.

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use tollgate_model::{PriceTable, Usage};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = args.first().map_or("gpt-4o", String::as_str);
    let number =
        |i: usize, default: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let usage = Usage {
        uncached_input_tokens: number(1, 1_000),
        output_tokens: number(2, 500),
        ..Usage::default()
    };
    let table = match PriceTable::shipped() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("price table: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "Tollgate price table {} ({} models)",
        table.table_version(),
        table.models().len()
    );
    match table.cost(
        model,
        &usage,
        DateTime::<Utc>::from(std::time::SystemTime::now()),
    ) {
        Ok(cost) => {
            println!(
                "{model}: {} input + {} output tokens cost {}",
                usage.uncached_input_tokens, usage.output_tokens, cost.total
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
