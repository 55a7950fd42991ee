//! Spend history for the anomaly tests, as a `tollgate_csv` ledger import: one $1 call at
//! half past every hour of the four weeks before `T0_MS`, then a spike (`spike_usd` dollars)
//! in the hour two hours before `T0_MS`.

use super::app::T0_MS;

const HOUR_MS: i64 = 3_600_000;

/// The CSV: `ended_at` (Unix ms), provider, model, cost and scopes.
pub fn spike_csv(scope: &str, model: &str, spike_usd: i64) -> String {
    let mut csv = String::from("request_id,ended_at,provider,charged_model,cost_nanos,scopes\n");
    let hours = 28 * 24;
    for h in (1..=hours).rev() {
        let at = T0_MS - h * HOUR_MS + HOUR_MS / 2;
        let cost = if h == 2 {
            spike_usd * 1_000_000_000
        } else {
            1_000_000_000
        };
        csv.push_str(&format!("hist-{h},{at},openai,{model},{cost},{scope}\n"));
    }
    csv
}

/// The start of the spike's hour, Unix ms.
pub fn spike_hour_ms() -> i64 {
    T0_MS - 2 * HOUR_MS
}
