//! The ledger's file formats: request records and rollup rows as CSV (with a header line) or
//! JSON lines, one line at a time so an export can stream. The records' CSV is also
//! Tollgate's own import format (`import.rs` reads it back). Columns: docs/ledger.md.

use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;

use super::{RequestRecord, RollupRow};

/// How long an export pauses after each page, in percent of the time the page took to read
/// and format: 100 keeps an export to about half of one core, so reserves and settles
/// sharing the control plane's cores (and Redis) with it keep their latency. The export's
/// rate halves (docs/ledger.md, `tollgate-bench-ledger`).
pub const PAUSE_PCT: u32 = 100;

/// The pause after a page that took `busy` (see [`PAUSE_PCT`]).
pub fn pause_after(busy: std::time::Duration) -> std::time::Duration {
    busy.saturating_mul(PAUSE_PCT) / 100
}

/// An export's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Comma-separated values with a header line (RFC 4180 quoting).
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl Format {
    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Jsonl => "application/x-ndjson",
        }
    }
}

/// The records' CSV columns, in order.
pub const RECORD_COLUMNS: [&str; 25] = [
    "request_id",
    "started_at",
    "ended_at",
    "recorded_at",
    "scopes",
    "provider",
    "api",
    "requested_model",
    "charged_model",
    "uncached_input_tokens",
    "cached_input_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "images",
    "audio_seconds",
    "cost_nanos",
    "cost_usd",
    "estimated",
    "outcome",
    "deny_reason",
    "budget_id",
    "source",
    "breakdown_nanos",
];

/// The rollups' CSV columns, in order.
pub const ROLLUP_COLUMNS: [&str; 17] = [
    "bucket_start",
    "granularity",
    "scope",
    "provider",
    "model",
    "requests",
    "denied",
    "cost_nanos",
    "cost_usd",
    "uncached_input_tokens",
    "cached_input_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "images",
    "audio_seconds",
];

/// Unix ms as RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// Nano-USD as an exact decimal dollar amount.
pub fn usd(nanos: i64) -> String {
    Decimal::new(nanos, 9).normalize().to_string()
}

fn csv_line(fields: &[String]) -> String {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::with_capacity(256));
    // Writing to a Vec cannot fail.
    let _ = w.write_record(fields);
    w.into_inner()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The header line of a CSV export (none for JSON lines).
pub fn header(columns: &[&str], format: Format) -> String {
    match format {
        Format::Csv => csv_line(&columns.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>()),
        Format::Jsonl => String::new(),
    }
}

fn enum_str<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// One record as a line (ending in `\n`).
pub fn record_line(r: &RequestRecord, format: Format) -> String {
    match format {
        Format::Jsonl => {
            let mut s = serde_json::to_string(r).unwrap_or_default();
            s.push('\n');
            s
        }
        Format::Csv => {
            let t = r.tokens;
            let scopes: Vec<String> = r.scopes.iter().map(ToString::to_string).collect();
            let breakdown = r
                .breakdown
                .and_then(|b| serde_json::to_string(&b).ok())
                .unwrap_or_default();
            csv_line(&[
                r.request_id.clone(),
                rfc3339(r.started_at_ms),
                rfc3339(r.ended_at_ms),
                rfc3339(r.recorded_at_ms),
                scopes.join(" "),
                r.provider.clone(),
                r.api.clone().unwrap_or_default(),
                r.requested_model.clone(),
                r.charged_model.clone(),
                t.uncached_input.to_string(),
                t.cached_input.to_string(),
                t.cache_write_5m.to_string(),
                t.cache_write_1h.to_string(),
                t.output.to_string(),
                t.reasoning.to_string(),
                t.images.to_string(),
                t.audio_seconds.to_string(),
                r.cost_nanos.to_string(),
                usd(r.cost_nanos),
                r.estimated.to_string(),
                enum_str(&r.outcome),
                r.deny_reason.map(|d| enum_str(&d)).unwrap_or_default(),
                r.budget_id.clone().unwrap_or_default(),
                enum_str(&r.source),
                breakdown,
            ])
        }
    }
}

/// One rollup row as a line (ending in `\n`).
pub fn rollup_line(r: &RollupRow, format: Format) -> String {
    match format {
        Format::Jsonl => {
            let mut s = serde_json::to_string(r).unwrap_or_default();
            s.push('\n');
            s
        }
        Format::Csv => {
            let t = r.tokens;
            csv_line(&[
                rfc3339(r.bucket_start_ms),
                enum_str(&r.granularity),
                r.scope.to_string(),
                r.provider.clone(),
                r.model.clone(),
                r.requests.to_string(),
                r.denied.to_string(),
                r.cost_nanos.to_string(),
                usd(r.cost_nanos),
                t.uncached_input.to_string(),
                t.cached_input.to_string(),
                t.cache_write_5m.to_string(),
                t.cache_write_1h.to_string(),
                t.output.to_string(),
                t.reasoning.to_string(),
                t.images.to_string(),
                t.audio_seconds.to_string(),
            ])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_are_exact_decimals() {
        assert_eq!(usd(1), "0.000000001");
        assert_eq!(usd(1_500_000_000), "1.5");
        assert_eq!(usd(i64::MAX), "9223372036.854775807");
    }
}
