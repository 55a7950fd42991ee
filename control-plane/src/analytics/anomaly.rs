//! Anomaly detection over one hourly series (a scope and model's spend or request count):
//! pure functions, no store, no clock. docs/anomalies.md describes the method and its
//! settings; the background task that feeds them is [`crate::alerts::anomaly_task`].
//!
//! Two detectors judge an hour, each only from the hours before it (so a judgement never
//! changes as later hours arrive, and every replica computing it agrees):
//!
//! - **Hour of week** (completed hours, both directions). Values are compared on a log scale
//!   (`ln(1 + x)`: spend and traffic vary multiplicatively, and quiet hours stay finite). The
//!   baseline of hour `t` is the median of the same hour of week in the previous
//!   `lookback_weeks` weeks; its residual is `ln(1 + x_t) − ln(1 + baseline_t)`. The score is
//!   the residual's distance from the median of the residuals of the previous
//!   `lookback_weeks × 168` hours, in units of their MAD scaled to a normal deviation
//!   (`1.4826 × MAD`), floored at [`MIN_SCALE`]. An hour is anomalous when `|score| ≥
//!   threshold` and the value differs from the expected one by at least the metric's minimum.
//! - **Fast** (any hour, the one still in progress included; upward only). An EWMA of the
//!   recent residuals (mean and variance, weight `ewma_alpha`) follows the series' current
//!   level; the hour's value so far is scored against it. The value so far only grows within
//!   an hour, so once this fires it stays fired: a spike is reported minutes into its hour,
//!   not after it.
//!
//! [`incidents`] turns anomalous hours into incidents: a flag with no other flag in the
//! `cooldown_hours` before it starts one; the rest belong to it. One incident, one event.
//!
//! Floating point is confined to the scores (statistics, not money): values stay exact
//! integers in and out, an expected value is rounded back to an integer once.
#![allow(clippy::float_arithmetic)]

use serde::{Deserialize, Serialize};

/// Hours in a week: the season of the hour-of-week baseline.
pub const WEEK_HOURS: usize = 168;
/// Smallest residual scale, in log units (about 5 %): a perfectly regular series has a MAD
/// of zero, and a score against zero would flag every rounding.
pub const MIN_SCALE: f64 = 0.05;
/// A MAD times this estimates a normal distribution's standard deviation.
const MAD_TO_SD: f64 = 1.4826;

/// What is measured.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Settled spend per hour, nano-USD.
    Spend,
    /// Requests per hour.
    Requests,
}

impl Metric {
    /// The lowercase name used in ids, labels and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Spend => "spend",
            Metric::Requests => "requests",
        }
    }
}

/// Which detector flagged an hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// The hour against the same hour of previous weeks (median / MAD).
    HourOfWeek,
    /// The hour so far against an EWMA of recent hours.
    Fast,
}

/// Above or below what was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// More than expected (a spike, a level shift up).
    Up,
    /// Less than expected (a drop, traffic stopped).
    Down,
}

/// How the detectors judge (part of `[anomaly]`, see [`crate::alerts::anomaly_task`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sensitivity {
    /// Hour-of-week score at or above which an hour is anomalous.
    pub threshold: f64,
    /// Fast-detector score at or above which the hour so far is anomalous.
    pub fast_threshold: f64,
    /// Weight of the newest hour in the fast detector's EWMA (0 < α ≤ 1).
    pub ewma_alpha: f64,
    /// Hours of history (from the series' first non-zero hour) before an hour is judged.
    pub min_history_hours: usize,
    /// Weeks of the same hour the baseline's median is taken over (and weeks of residuals
    /// the scale is measured on).
    pub lookback_weeks: usize,
    /// Smallest difference from the expected value that counts (nano-USD for spend,
    /// requests for the request count): a tiny series tripling is not an incident.
    pub min_delta: i64,
}

/// One anomalous hour.
#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    /// Index of the hour in the series.
    pub index: usize,
    /// Which detector.
    pub detector: Detector,
    /// Above or below.
    pub direction: Direction,
    /// The hour's value (so far, for the hour in progress).
    pub observed: i64,
    /// What the detector expected for the whole hour.
    pub expected: i64,
    /// The score (signed: negative below expectation).
    pub score: f64,
}

fn ln1p(x: i64) -> f64 {
    #[allow(clippy::cast_precision_loss)] // statistics, not money: 2^53 nano-USD is $9M/hour.
    let v = x.max(0) as f64;
    v.ln_1p()
}

fn back(y: f64) -> i64 {
    #[allow(clippy::cast_possible_truncation)] // rounded and clamped to i64's range first.
    let v = y.exp_m1().round().clamp(0.0, 9.0e18) as i64;
    v
}

/// Median of `v` (reordered in place); `None` when empty.
pub fn median(v: &mut [f64]) -> Option<f64> {
    let n = v.len();
    if n == 0 {
        return None;
    }
    let mid = n / 2;
    let (lo, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let m = *m;
    if n % 2 == 1 {
        return Some(m);
    }
    let below = lo.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some(f64::midpoint(below, m))
}

/// Median and scaled MAD (`1.4826 × MAD`, floored at [`MIN_SCALE`]) of `v`.
pub fn median_scale(v: &[f64], buf: &mut Vec<f64>) -> Option<(f64, f64)> {
    buf.clear();
    buf.extend_from_slice(v);
    let med = median(buf)?;
    for x in buf.iter_mut() {
        *x = (*x - med).abs();
    }
    let mad = median(buf)?;
    Some((med, (MAD_TO_SD * mad).max(MIN_SCALE)))
}

/// The per-hour baseline of a series: `ln(1 + median of the same hour in previous weeks)`,
/// `None` where no previous week exists.
fn baselines(values: &[i64], weeks: usize) -> Vec<Option<f64>> {
    let mut buf = Vec::with_capacity(weeks);
    (0..values.len())
        .map(|t| {
            buf.clear();
            buf.extend(
                (1..=weeks)
                    .filter_map(|k| t.checked_sub(k * WEEK_HOURS))
                    .map(|s| ln1p(values[s])),
            );
            median(&mut buf)
        })
        .collect()
}

/// Judges the hours `from..values.len()` of one series. `values[i]` is hour `i`'s total (the
/// last one so far, when `last_in_progress`). Hours before `from` are history only.
pub fn scan(values: &[i64], from: usize, last_in_progress: bool, s: &Sensitivity) -> Vec<Flag> {
    let n = values.len();
    let Some(first_active) = values.iter().position(|&v| v > 0) else {
        return Vec::new();
    };
    let base = baselines(values, s.lookback_weeks);
    let resid: Vec<Option<f64>> = values
        .iter()
        .zip(&base)
        .map(|(&v, b)| b.map(|b| ln1p(v) - b))
        .collect();
    let window = s.lookback_weeks * WEEK_HOURS;
    let mut flags = Vec::new();
    let mut buf = Vec::with_capacity(window);
    let mut hist = Vec::with_capacity(window);
    // The EWMA over completed residuals, started where residuals start.
    let mut ewma: Option<(f64, f64)> = None;
    for t in 0..n {
        let in_progress = last_in_progress && t + 1 == n;
        let judged = t >= from && t >= first_active + s.min_history_hours;
        if let (true, Some(b), Some(r)) = (judged, base[t], resid[t]) {
            hist.clear();
            hist.extend(resid[t.saturating_sub(window)..t].iter().flatten());
            if let Some((center, scale)) = median_scale(&hist, &mut buf) {
                let expected = back(b + center);
                let delta = values[t].saturating_sub(expected);
                let score = (r - center) / scale;
                if !in_progress && score.abs() >= s.threshold && delta.abs() >= s.min_delta {
                    flags.push(Flag {
                        index: t,
                        detector: Detector::HourOfWeek,
                        direction: if score > 0.0 {
                            Direction::Up
                        } else {
                            Direction::Down
                        },
                        observed: values[t],
                        expected,
                        score,
                    });
                } else if let Some((m, var)) = ewma {
                    let fast = (r - m) / var.sqrt().max(MIN_SCALE);
                    let expected = back(b + m);
                    let delta = values[t].saturating_sub(expected);
                    if fast >= s.fast_threshold && delta >= s.min_delta {
                        flags.push(Flag {
                            index: t,
                            detector: Detector::Fast,
                            direction: Direction::Up,
                            observed: values[t],
                            expected,
                            score: fast,
                        });
                    }
                }
            }
        }
        if let (false, Some(r)) = (in_progress, resid[t]) {
            ewma = Some(match ewma {
                None => (r, MIN_SCALE * MIN_SCALE),
                Some((m, var)) => {
                    let d = r - m;
                    let a = s.ewma_alpha;
                    (m + a * d, (1.0 - a) * (var + a * d * d))
                }
            });
        }
    }
    flags
}

/// The flags that start an incident: no other flag in the `cooldown_hours` before them.
/// A flag within `cooldown_hours` of the series' first judged hour `from` is not a start
/// either (the incident may have begun before what was scanned).
pub fn incidents(flags: &[Flag], from: usize, cooldown_hours: usize) -> Vec<&Flag> {
    let mut out = Vec::new();
    let mut last: Option<usize> = None;
    for f in flags {
        let quiet_before = last.is_none_or(|l| f.index - l > cooldown_hours);
        if quiet_before && f.index >= from + cooldown_hours {
            out.push(f);
        }
        last = Some(f.index);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sens() -> Sensitivity {
        Sensitivity {
            threshold: 5.0,
            fast_threshold: 6.0,
            ewma_alpha: 0.2,
            min_history_hours: 2 * WEEK_HOURS,
            lookback_weeks: 4,
            min_delta: 1,
        }
    }

    fn weekly(weeks: usize) -> Vec<i64> {
        (0..weeks * WEEK_HOURS)
            .map(|t| {
                1_000
                    + 500 * i64::try_from((t % 24).min(12)).unwrap()
                    + i64::try_from(t % 7).unwrap()
            })
            .collect()
    }

    #[test]
    fn median_of_odd_and_even_lengths() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }

    #[test]
    fn a_regular_weekly_series_raises_nothing() {
        let v = weekly(6);
        assert!(scan(&v, 0, false, &sens()).is_empty());
    }

    #[test]
    fn a_spike_is_flagged_with_its_expected_value() {
        let mut v = weekly(6);
        let t = 5 * WEEK_HOURS + 10;
        let normal = v[t];
        v[t] *= 4;
        let flags = scan(&v, 4 * WEEK_HOURS, false, &sens());
        assert_eq!(flags.len(), 1, "{flags:?}");
        let f = &flags[0];
        assert_eq!(
            (f.index, f.direction, f.detector),
            (t, Direction::Up, Detector::HourOfWeek)
        );
        assert!(
            (f.expected - normal).abs() <= normal / 50,
            "{} vs {normal}",
            f.expected
        );
        assert_eq!(f.observed, 4 * normal);
    }

    #[test]
    fn the_fast_detector_fires_on_the_hour_in_progress() {
        let mut v = weekly(6);
        let t = 5 * WEEK_HOURS + 10;
        v.truncate(t + 1);
        v[t] *= 3;
        let flags = scan(&v, 4 * WEEK_HOURS, true, &sens());
        assert_eq!(flags.len(), 1, "{flags:?}");
        assert_eq!((flags[0].index, flags[0].detector), (t, Detector::Fast));
    }

    #[test]
    fn min_history_and_min_delta_each_silence_a_flag() {
        let mut v = weekly(6);
        let t = 5 * WEEK_HOURS + 10;
        v[t] *= 4;
        let short = Sensitivity {
            min_history_hours: 6 * WEEK_HOURS,
            ..sens()
        };
        assert!(scan(&v, 0, false, &short).is_empty());
        let big = Sensitivity {
            min_delta: 1_000_000,
            ..sens()
        };
        assert!(scan(&v, 0, false, &big).is_empty());
        let deaf = Sensitivity {
            threshold: 1e9,
            fast_threshold: 1e9,
            ..sens()
        };
        assert!(scan(&v, 0, false, &deaf).is_empty());
    }

    #[test]
    fn flags_within_the_cooldown_are_one_incident() {
        let f = |index| Flag {
            index,
            detector: Detector::HourOfWeek,
            direction: Direction::Up,
            observed: 0,
            expected: 0,
            score: 9.0,
        };
        let flags = [f(10), f(11), f(14), f(30), f(31)];
        let starts: Vec<usize> = incidents(&flags, 0, 6).iter().map(|f| f.index).collect();
        assert_eq!(starts, [10, 30]);
        // The first flag is too close to where the scan began to be known as a start.
        let starts: Vec<usize> = incidents(&flags, 5, 6).iter().map(|f| f.index).collect();
        assert_eq!(starts, [30]);
    }
}
