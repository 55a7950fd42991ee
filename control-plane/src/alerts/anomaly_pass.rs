//! One anomaly pass: read the recent hourly series of every scope and charged model
//! (`analytics::series`, the one ledger reader), judge each with
//! [`crate::analytics::anomaly::scan`] and return the incidents that started in the last
//! [`RECENT_HOURS`] hours (or in the hour in progress). Used by the background task and by
//! `GET /v1/anomalies` alike, so both answer the same.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use tollgate_model::scope::Scope;

use super::Severity;
use super::anomaly_task::AnomalySettings;
use super::events::AnomalyDetail;
use crate::analytics::anomaly::{Detector, Metric, WEEK_HOURS, incidents, scan};
use crate::analytics::series::{Hourly, Hours, SeriesError, read_scope_models};
use crate::ledger::{Granularity, RollupFilter};
use crate::store::Store;

/// Incidents that started this many hours before the hour in progress (or in it) are
/// reported; older ones were reported by an earlier pass.
pub const RECENT_HOURS: usize = 24;
const HOUR_MS: i64 = 3_600_000;

/// An incident found by a pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Anomaly {
    /// The alert id it is raised under: `anomaly.<scope>.<model>.<metric>.<hour_start_ms>`.
    pub id: String,
    /// The scope (`global` for the gateway's total).
    pub scope: String,
    /// `warning`; `critical` when the score is at least twice its detector's threshold.
    pub severity: Severity,
    /// What was seen.
    #[serde(flatten)]
    pub detail: AnomalyDetail,
}

/// What a pass did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PassReport {
    /// When it ran (the hour in progress is judged up to this instant), Unix ms.
    pub at_ms: i64,
    /// Series (scope × model) judged; at most `max_series`, the largest by spend first.
    pub series_judged: usize,
    /// Series left out by `max_series`.
    pub series_skipped: usize,
    /// Incidents that started in the last 24 hours, newest first.
    pub anomalies: Vec<Anomaly>,
}

/// The hours a pass reads: the hour in progress, the [`RECENT_HOURS`] before it and a
/// cooldown before those (to know whether a flag starts an incident), and the history
/// behind them (`lookback_weeks`).
pub fn hours_read(s: &AnomalySettings, now: DateTime<Utc>) -> (Hours, usize) {
    let judged = RECENT_HOURS + s.cooldown_hours + 1;
    let history = s.lookback_weeks * WEEK_HOURS;
    let count = history + judged;
    let current = Granularity::Hour.bucket_start(now.timestamp_millis());
    let back = i64::try_from(count - 1).unwrap_or(0);
    let start = DateTime::from_timestamp_millis(current).unwrap_or(now) - TimeDelta::hours(back);
    (Hours { start, count }, history)
}

/// Judges one series of one scope and model; the incidents it reports.
pub fn judge(
    scope: &Scope,
    model: &str,
    series: &Hourly,
    from: usize,
    s: &AnomalySettings,
) -> Vec<Anomaly> {
    let mut out = Vec::new();
    let start_ms = series.start.timestamp_millis();
    for (metric, values, min_delta) in [
        (Metric::Spend, &series.cost_nanos, s.min_spend_delta_nanos),
        (Metric::Requests, &series.requests, s.min_requests_delta),
    ] {
        let sens = crate::analytics::anomaly::Sensitivity {
            min_delta,
            ..s.sensitivity()
        };
        let flags = scan(values, from, true, &sens);
        for f in incidents(&flags, from, s.cooldown_hours) {
            let hour_start_ms = start_ms + i64::try_from(f.index).unwrap_or(0) * HOUR_MS;
            let limit = match f.detector {
                Detector::HourOfWeek => s.threshold,
                Detector::Fast => s.fast_threshold,
            };
            #[allow(clippy::float_arithmetic)] // a score, not money
            let critical = f.score.abs() >= 2.0 * limit;
            let severity = if critical {
                Severity::Critical
            } else {
                Severity::Warning
            };
            out.push(Anomaly {
                id: format!(
                    "anomaly.{scope}.{model}.{}.{hour_start_ms}",
                    metric.as_str()
                ),
                scope: scope.to_string(),
                severity,
                detail: AnomalyDetail {
                    model: model.to_owned(),
                    metric,
                    detector: f.detector,
                    direction: f.direction,
                    hour_start_ms,
                    observed: f.observed,
                    expected: f.expected,
                    score: f.score,
                },
            });
        }
    }
    out
}

/// Runs a pass over the series `filter` keeps (every scope and model by default).
pub async fn run(
    store: &dyn Store,
    s: &AnomalySettings,
    filter: RollupFilter,
    now: DateTime<Utc>,
) -> Result<PassReport, SeriesError> {
    let (hours, history) = hours_read(s, now);
    let series: BTreeMap<(Scope, String), Hourly> =
        read_scope_models(store, filter, hours, now).await?;
    // The largest series by spend first: the bound on a pass's cost keeps what matters most.
    let mut ranked: Vec<(&(Scope, String), &Hourly)> = series.iter().collect();
    ranked.sort_by_key(|(_, h)| std::cmp::Reverse(h.total_cost_nanos().unwrap_or(i64::MAX)));
    let skipped = ranked.len().saturating_sub(s.max_series);
    ranked.truncate(s.max_series);
    let mut anomalies = Vec::new();
    for ((scope, model), h) in &ranked {
        anomalies.extend(judge(scope, model, h, history, s));
    }
    anomalies.sort_by(|a, b| {
        b.detail
            .hour_start_ms
            .cmp(&a.detail.hour_start_ms)
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(PassReport {
        at_ms: now.timestamp_millis(),
        series_judged: ranked.len(),
        series_skipped: skipped,
        anomalies,
    })
}
