//! What the suite expects a call to be charged: the recorded fixture's usage priced with the
//! shipped price table, in integer nano-USD, exactly as the filter and control plane price it.
//! Tests never hard-code amounts, so a price-table update cannot break them.

use anyhow::{Context, anyhow};
use tollgate_model::{PriceTable, Usage};

/// The usage a recorded fixture carries (`tests/fixtures/STEM.expected.json`).
pub fn fixture_usage(stem: &str) -> anyhow::Result<Usage> {
    let path = crate::paths::fixtures_dir().join(format!("{stem}.expected.json"));
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let expected: serde_json::Value = serde_json::from_str(&text)?;
    Ok(serde_json::from_value(expected["usage"].clone())?)
}

/// The usage in [`crate::bench_bodies::CHAT_JSON`] (`chat.json`): 231 prompt, 103 completion.
pub fn chat_json_usage() -> Usage {
    Usage {
        uncached_input_tokens: 231,
        output_tokens: 103,
        ..Usage::default()
    }
}

/// What `usage` of `model` costs now, nano-USD.
pub fn cost_nanos(model: &str, usage: &Usage) -> anyhow::Result<i64> {
    let prices = PriceTable::shipped().map_err(|e| anyhow!("shipped prices: {e}"))?;
    let now = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
    let cost = prices
        .cost(model, usage, now)
        .map_err(|e| anyhow!("pricing {model}: {e}"))?;
    Ok(cost.total.nanos())
}

/// The price-table id a model name resolves to (what a settlement names since the control
/// plane became the price authority), or the name itself when the table does not know it.
pub fn price_table_id(model: &str) -> String {
    PriceTable::shipped()
        .ok()
        .and_then(|t| t.resolve(model).map(|m| m.id().to_owned()))
        .unwrap_or_else(|| model.to_owned())
}

/// The wall clock in Unix milliseconds (the filter stamps reserves and settlements so).
pub fn now_unix_ms() -> i64 {
    chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now()).timestamp_millis()
}

/// Nano-USD as the exact decimal USD string a `BudgetSpec` takes (`limit_usd`).
pub fn usd(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    format!("{sign}{}.{:09}", n / 1_000_000_000, n % 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usd_strings_are_exact() {
        assert_eq!(usd(1), "0.000000001");
        assert_eq!(usd(2_500_000_000), "2.500000000");
        assert_eq!(usd(-5), "-0.000000005");
    }

    #[test]
    fn recorded_usage_is_priced() {
        let usage = fixture_usage("openai-chat-stream-include-usage").unwrap();
        assert_eq!(usage.output_tokens, 9);
        let mini = cost_nanos("gpt-4o-mini", &chat_json_usage()).unwrap();
        let full = cost_nanos("gpt-4o", &chat_json_usage()).unwrap();
        assert!(0 < mini && mini < full, "{mini} {full}");
    }
}
