//! The anomaly detector's settings (`[anomaly]`) and its background task: every
//! `interval_ms`, one replica at a time, it reads the recent hourly series of every scope and
//! model, runs [`crate::analytics::anomaly`] over them and raises one alert event per
//! incident. docs/anomalies.md.

use serde::Deserialize;

use crate::analytics::anomaly::Sensitivity;

/// Anomaly detection settings (the `[anomaly]` config section; docs/anomalies.md).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalySettings {
    /// Whether the background task runs (`GET /v1/anomalies` answers either way).
    pub enabled: bool,
    /// How often a pass runs, ms.
    pub interval_ms: u64,
    /// Hour-of-week robust score at or above which an hour is anomalous.
    pub threshold: f64,
    /// Fast (EWMA) score at or above which the hour so far is a spike.
    pub fast_threshold: f64,
    /// Weight of the newest hour in the fast detector's EWMA.
    pub ewma_alpha: f64,
    /// Hours of history a series needs before its hours are judged.
    pub min_history_hours: usize,
    /// Weeks of history behind each judgement.
    pub lookback_weeks: usize,
    /// Flags closer than this to the previous one belong to the same incident (one event).
    pub cooldown_hours: usize,
    /// Smallest spend difference from the expected hour that counts, nano-USD.
    pub min_spend_delta_nanos: i64,
    /// Smallest request-count difference from the expected hour that counts.
    pub min_requests_delta: i64,
    /// Most series one pass judges (the largest by spend first): the bound on a pass's cost.
    pub max_series: usize,
}

impl Default for AnomalySettings {
    fn default() -> AnomalySettings {
        AnomalySettings {
            enabled: true,
            interval_ms: 300_000,
            threshold: 4.5,
            fast_threshold: 6.0,
            ewma_alpha: 0.2,
            min_history_hours: 336,
            lookback_weeks: 4,
            cooldown_hours: 24,
            min_spend_delta_nanos: 100_000_000,
            min_requests_delta: 20,
            max_series: 5_000,
        }
    }
}

impl AnomalySettings {
    /// The detectors' settings for the spend series.
    pub fn sensitivity(&self) -> Sensitivity {
        Sensitivity {
            threshold: self.threshold,
            fast_threshold: self.fast_threshold,
            ewma_alpha: self.ewma_alpha,
            min_history_hours: self.min_history_hours,
            lookback_weeks: self.lookback_weeks,
            min_delta: self.min_spend_delta_nanos,
        }
    }

    /// A rule the settings break: the key and what is wrong.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        let finite_pos = |x: f64| x.is_finite() && x > 0.0;
        if self.interval_ms < 1_000 {
            return Err(("anomaly.interval_ms", "must be at least 1000"));
        }
        if !finite_pos(self.threshold) {
            return Err(("anomaly.threshold", "must be a number above 0"));
        }
        if !finite_pos(self.fast_threshold) {
            return Err(("anomaly.fast_threshold", "must be a number above 0"));
        }
        if !(finite_pos(self.ewma_alpha) && self.ewma_alpha <= 1.0) {
            return Err(("anomaly.ewma_alpha", "must be above 0 and at most 1"));
        }
        if !(1..=12).contains(&self.lookback_weeks) {
            return Err(("anomaly.lookback_weeks", "must be 1-12"));
        }
        if self.min_history_hours < 168 || self.min_history_hours > self.lookback_weeks * 168 + 168
        {
            return Err((
                "anomaly.min_history_hours",
                "must be 168 (a week) up to a week past anomaly.lookback_weeks",
            ));
        }
        if self.cooldown_hours == 0 || self.cooldown_hours > 168 {
            return Err(("anomaly.cooldown_hours", "must be 1-168"));
        }
        if self.min_spend_delta_nanos < 0 {
            return Err(("anomaly.min_spend_delta_nanos", "must not be negative"));
        }
        if self.min_requests_delta < 0 {
            return Err(("anomaly.min_requests_delta", "must not be negative"));
        }
        if self.max_series == 0 {
            return Err(("anomaly.max_series", "must be above 0"));
        }
        Ok(())
    }
}
