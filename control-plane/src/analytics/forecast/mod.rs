//! Spend forecasts to the end of a budget's period: a pure function over an hourly series
//! handed in ([`forecast`]), no store or clock access.
//!
//! The series is summed into **steps**: hours for periods of up to two days (the pattern
//! that matters is the hour of day, season 24), otherwise 24-hour blocks ending where the
//! history ends (day of week, season 7; the API hands in history up to a UTC midnight, read
//! from the day rollups). Leading steps before the first spend are dropped, so a new
//! team's history is as short as it really is, and so is its first step with spend (it is
//! usually partial).
//!
//! Each method of [`methods`] that has enough history is fitted to all but the last steps
//! and scored by sMAPE on them (the **backtest**, as long as the horizon up to a quarter of
//! the history); the best is refitted to everything and forecasts the steps up to the period
//! end, the first and last weighted by how much of them is still ahead. The interval of the
//! sum is the model's (see [`methods::Errors`]). Too little history (under two weeks of days
//! or three days of hours) is said (`short_history`) and the interval's spread is widened by
//! half; with no model fitted at all, the period's run rate so far is carried on with a
//! spread as large as the forecast itself.
//!
//! Money already spent and limits are exact nano-USD; everything forecast is an estimate
//! (f64 USD) and is never below what is already spent.

// Statistics are estimates in f64 by nature; exact money (spent, limits) is never computed
// here, only carried through as nano-USD.
#![allow(clippy::float_arithmetic)]

pub mod batch;
pub mod methods;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::series::Hourly;
use methods::{Method, Path, Z80, Z95};

/// Steps of history below which a forecast is flagged `short_history` (days).
pub const SHORT_DAYS: usize = 14;
/// Steps of history below which a forecast is flagged `short_history` (hours).
pub const SHORT_HOURS: usize = 72;
/// How far ahead the run-out of a budget whose period never ends is looked for.
pub const OPEN_HORIZON_DAYS: i64 = 30;
/// Most steps of history used (older ones are dropped): eight weeks of days, one of hours.
pub const MAX_DAYS: usize = 56;
/// See [`MAX_DAYS`].
pub const MAX_HOURS: usize = 168;
const WIDEN_SHORT: f64 = 1.5;
const HOUR_NANOS_PER_USD: f64 = 1e9;

/// The length of one forecast step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// One hour (periods of up to two days).
    Hour,
    /// 24 hours (longer periods).
    Day,
}

impl Step {
    /// The step for a period `[start, end)` (`end` `None`: a period that never ends).
    pub fn for_period(start: DateTime<Utc>, end: Option<DateTime<Utc>>) -> Step {
        match end {
            Some(e) if e - start <= TimeDelta::days(2) => Step::Hour,
            _ => Step::Day,
        }
    }

    fn hours(self) -> usize {
        match self {
            Step::Hour => 1,
            Step::Day => 24,
        }
    }

    fn season(self) -> usize {
        match self {
            Step::Hour => 24,
            Step::Day => 7,
        }
    }

    /// Hours of history a forecast at this step uses at most.
    pub fn history_hours(self) -> usize {
        match self {
            Step::Hour => MAX_HOURS,
            Step::Day => MAX_DAYS * 24,
        }
    }
}

/// What one forecast is asked.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The current time.
    pub now: DateTime<Utc>,
    /// The current period's start.
    pub period_start: DateTime<Utc>,
    /// Its end; `None` for a period that never ends (run-out looked for 30 days ahead).
    pub period_end: Option<DateTime<Utc>>,
    /// Whole hours of spend up to the hour holding `now` (excluded), any length.
    pub history: &'a Hourly,
    /// Spent in the current period so far, exact nano-USD (a budget's own counter, so a
    /// reset or an edit mid-period is counted as the budget now counts).
    pub spent_nanos: i64,
    /// The USD limit, exact nano-USD.
    pub limit_nanos: Option<i64>,
}

/// An interval of USD.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Interval {
    /// Low end.
    pub low_usd: f64,
    /// High end.
    pub high_usd: f64,
}

/// The spend forecast at the period's end.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EndOfPeriod {
    /// Point forecast, USD.
    pub point_usd: f64,
    /// 80 % interval.
    pub p80: Interval,
    /// 95 % interval.
    pub p95: Interval,
}

/// Whether and when the limit is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunoutStatus {
    /// Spent already reaches the limit.
    Exhausted,
    /// The point forecast reaches the limit before the period ends (a period that never
    /// ends: within the next 30 days).
    BeforePeriodEnd,
    /// The point forecast stays under the limit this period (or the next 30 days).
    NotThisPeriod,
    /// No USD limit.
    NoLimit,
}

/// When the USD limit is forecast to be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Runout {
    /// The verdict.
    pub status: RunoutStatus,
    /// When the point forecast reaches the limit (`exhausted`: now).
    pub at: Option<DateTime<Utc>>,
    /// The earliest it may: when the 95 % interval's high end reaches it, if this period.
    pub earliest: Option<DateTime<Utc>>,
}

/// Spend rates, USD per hour.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BurnRate {
    /// Over the last 24 whole hours.
    pub last_24h_usd_per_hour: f64,
    /// Over the period so far (spent / time elapsed).
    pub period_usd_per_hour: f64,
    /// Forecast from now to the period end (or 30 days ahead).
    pub forecast_usd_per_hour: f64,
}

/// How the method was chosen: each candidate's sMAPE on the held-out last steps.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Backtest {
    /// Steps held out.
    pub holdout_steps: usize,
    /// The chosen method's sMAPE, percent (0-200).
    pub smape_pct: f64,
    /// Every method tried, with its sMAPE.
    pub candidates: Vec<Candidate>,
}

/// One method's backtest score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Candidate {
    /// The method.
    pub method: Method,
    /// Its sMAPE on the held-out steps, percent.
    pub smape_pct: f64,
}

/// A forecast of one series.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Forecast {
    /// The current period's start.
    pub period_start: DateTime<Utc>,
    /// Its end (`None`: never ends).
    pub period_end: Option<DateTime<Utc>>,
    /// Spent this period so far, exact nano-USD.
    pub spent_nanos: i64,
    /// The USD limit, exact nano-USD.
    pub limit_nanos: Option<i64>,
    /// Spend at the period's end (`None` for a period that never ends).
    pub end_of_period: Option<EndOfPeriod>,
    /// When the limit is reached.
    pub runout: Runout,
    /// Spend rates.
    pub burn_rate: BurnRate,
    /// The method used.
    pub method: Method,
    /// The step it forecast in.
    pub step: Step,
    /// Steps of history it was fitted to.
    pub history_steps: usize,
    /// The backtest that chose it (`None`: too little history to hold any out).
    pub backtest: Option<Backtest>,
    /// True when the history is too short to trust: the interval was widened.
    pub short_history: bool,
}

/// The per-step spend (nano-USD) of `h`, in steps, oldest first, leading zeros dropped
/// (and the first step with spend after them).
fn steps_of(h: &Hourly, step: Step) -> Vec<f64> {
    let per = step.hours();
    let max = match step {
        Step::Hour => MAX_HOURS,
        Step::Day => MAX_DAYS,
    };
    let full = (h.cost_nanos.len() / per).min(max);
    let tail = &h.cost_nanos[h.cost_nanos.len() - full * per..];
    let y: Vec<f64> = tail
        .chunks(per)
        .map(|c| c.iter().map(|&v| v as f64).sum())
        .collect();
    let mut first = y.iter().position(|&v| v != 0.0).unwrap_or(y.len());
    // Spend that began inside the window began part-way through its first step: that step
    // is left out too (a team starting at noon is not a team that doubled the next day).
    if first > 0 && y.len() - first >= 4 {
        first += 1;
    }
    y[first..].to_vec()
}

/// Which method forecasts `y` best on its own last steps, and by how much its interval
/// must be widened: the held-out sum's error in units of the sd the model gave it, when
/// that is more than one (a model that missed its own recent past is not trusted more).
fn choose(y: &[f64], season: usize, horizon: usize) -> (Method, Option<Backtest>, f64) {
    let n = y.len();
    let hold = horizon.clamp(1, (n / 4).max(1));
    let mut candidates = Vec::new();
    if n >= 4 {
        let (train, test) = y.split_at(n - hold);
        for m in [Method::LinearTrend, Method::Holt, Method::Seasonal] {
            if let Some(p) = methods::fit(m, train, season, hold) {
                let pts: Vec<f64> = p.point.iter().map(|v| v.max(0.0)).collect();
                let miss = (test.iter().sum::<f64>() - pts.iter().sum::<f64>()).abs();
                let sd = p
                    .errors
                    .cumulative_sd(&vec![1.0; hold])
                    .last()
                    .copied()
                    .unwrap_or(0.0);
                let widen = if sd > 0.0 { (miss / sd).max(1.0) } else { 1.0 };
                candidates.push((m, methods::smape(test, &pts), widen));
            }
        }
    }
    let best = candidates
        .iter()
        .copied()
        .min_by(|a, b| a.1.total_cmp(&b.1));
    match best {
        Some((m, s, widen)) => (
            m,
            Some(Backtest {
                holdout_steps: hold,
                smape_pct: s,
                candidates: candidates
                    .into_iter()
                    .map(|(method, smape_pct, _)| Candidate { method, smape_pct })
                    .collect(),
            }),
            widen,
        ),
        None => (Method::LinearTrend, None, 1.0),
    }
}

/// A forecast path priced in steps from `from`, each weighted by its part in `[now, end)`.
struct Ahead {
    /// Each step's `[start, end)` clipped to `[now, end)`.
    spans: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// Each step's weight (its share still ahead).
    w: Vec<f64>,
}

fn ahead(from: DateTime<Utc>, now: DateTime<Utc>, end: DateTime<Utc>, step: Step) -> Ahead {
    let len = TimeDelta::hours(i64::try_from(step.hours()).unwrap_or(24));
    let mut spans = Vec::new();
    let mut w = Vec::new();
    let mut t = from;
    while t < end {
        let (a, b) = (t.max(now), (t + len).min(end));
        if b > a {
            spans.push((a, b));
            w.push((b - a).num_milliseconds() as f64 / len.num_milliseconds() as f64);
        }
        t += len;
    }
    Ahead { spans, w }
}

/// When the cumulative `cum` (nano-USD, per step, after `spent`) first reaches `limit`.
fn crossing(
    spans: &[(DateTime<Utc>, DateTime<Utc>)],
    cum: &[f64],
    spent: f64,
    limit: f64,
) -> Option<DateTime<Utc>> {
    let mut before = spent;
    for (&(a, b), &c) in spans.iter().zip(cum) {
        let after = spent + c;
        if after >= limit {
            let frac = if after > before {
                ((limit - before) / (after - before)).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let ms = ((b - a).num_milliseconds() as f64 * frac) as i64;
            return Some(a + TimeDelta::milliseconds(ms));
        }
        before = after;
    }
    None
}

fn usd(nanos: f64) -> f64 {
    nanos / HOUR_NANOS_PER_USD
}

/// What a forecast is fitted to, and where it is priced: everything of a [`Request`] the
/// fitting depends on ([`Plan::fit_key`]), and the steps ahead.
pub(crate) struct Plan {
    step: Step,
    end: DateTime<Utc>,
    ahead: Ahead,
    /// Per-step spend, nano-USD.
    y: Vec<f64>,
    short: bool,
}

impl Plan {
    fn of(req: &Request<'_>) -> Plan {
        let step = Step::for_period(req.period_start, req.period_end);
        let history_end = req.history.hours().end();
        let end = req
            .period_end
            .unwrap_or(req.now + TimeDelta::days(OPEN_HORIZON_DAYS));
        let ahead = ahead(history_end.min(req.now), req.now, end, step);
        let y = steps_of(req.history, step);
        let short = y.len()
            < match step {
                Step::Hour => SHORT_HOURS,
                Step::Day => SHORT_DAYS,
            };
        Plan {
            step,
            end,
            ahead,
            y,
            short,
        }
    }

    /// Two plans with the same key get the same [`Fitted`]: the step (its season), the
    /// steps ahead and the history's exact values (budgets counting the same calls, such as
    /// a team's daily and shadow budgets, share one fit).
    pub(crate) fn fit_key(&self) -> (Step, usize, Vec<u64>) {
        (
            self.step,
            self.ahead.w.len(),
            self.y.iter().map(|v| v.to_bits()).collect(),
        )
    }

    /// Chooses the method by backtest and fits it: the costly part of a forecast.
    pub(crate) fn fit(&self) -> Fitted {
        let horizon = self.ahead.w.len();
        let season = self.step.season();
        let (method, backtest, calibrate) = choose(&self.y, season, horizon);
        let path = if horizon == 0 {
            None
        } else {
            methods::fit(method, &self.y, season, horizon)
        };
        Fitted {
            method,
            backtest,
            calibrate,
            path,
        }
    }
}

/// A series' chosen method and its path ahead ([`Plan::fit`]).
#[derive(Debug, Clone)]
pub(crate) struct Fitted {
    method: Method,
    backtest: Option<Backtest>,
    calibrate: f64,
    path: Option<Path>,
}

/// Forecasts one series to its period's end.
pub fn forecast(req: &Request<'_>) -> Forecast {
    let plan = Plan::of(req);
    let fitted = plan.fit();
    finish(req, plan, fitted)
}

/// The forecast of `req` from its plan and fit: intervals, run-out, burn rate (cheap).
pub(crate) fn finish(req: &Request<'_>, plan: Plan, fitted: Fitted) -> Forecast {
    let Plan {
        step,
        end,
        ahead,
        y,
        short,
    } = plan;
    let Fitted {
        mut method,
        backtest,
        calibrate,
        path,
    } = fitted;
    let horizon = ahead.w.len();
    let spent = req.spent_nanos as f64;
    let elapsed_h = ((req.now - req.period_start).num_milliseconds() as f64 / 3.6e6).max(1.0);

    // Point and sd of the spend still to come, cumulated step by step.
    let (cum, cum_sd): (Vec<f64>, Vec<f64>) = match path {
        Some(Path { point, errors }) => {
            let mut acc = 0.0;
            let cum = point
                .iter()
                .zip(&ahead.w)
                .map(|(p, w)| {
                    acc += p.max(0.0) * w;
                    acc
                })
                .collect();
            let widen = calibrate * if short { WIDEN_SHORT } else { 1.0 };
            let sd = errors
                .cumulative_sd(&ahead.w)
                .into_iter()
                .map(|s| s * widen)
                .collect();
            (cum, sd)
        }
        None => {
            // No model: the period's rate so far, with a spread the size of the forecast.
            method = Method::RunRate;
            let rate = spent / elapsed_h;
            let mut acc = 0.0;
            let cum: Vec<f64> = ahead
                .spans
                .iter()
                .map(|(a, b)| {
                    acc += rate * (*b - *a).num_milliseconds() as f64 / 3.6e6;
                    acc
                })
                .collect();
            (cum.clone(), cum)
        }
    };
    let rest = cum.last().copied().unwrap_or(0.0);
    let rest_sd = cum_sd.last().copied().unwrap_or(0.0);
    let band = |z: f64| Interval {
        low_usd: usd(spent + (rest - z * rest_sd).max(0.0)),
        high_usd: usd(spent + rest + z * rest_sd),
    };
    let end_of_period = req.period_end.map(|_| EndOfPeriod {
        point_usd: usd(spent + rest),
        p80: band(Z80),
        p95: band(Z95),
    });
    let runout = match req.limit_nanos {
        None => Runout {
            status: RunoutStatus::NoLimit,
            at: None,
            earliest: None,
        },
        Some(l) if req.spent_nanos >= l => Runout {
            status: RunoutStatus::Exhausted,
            at: Some(req.now),
            earliest: Some(req.now),
        },
        Some(l) => {
            let high: Vec<f64> = cum.iter().zip(&cum_sd).map(|(c, s)| c + Z95 * s).collect();
            let at = crossing(&ahead.spans, &cum, spent, l as f64);
            Runout {
                status: if at.is_some() {
                    RunoutStatus::BeforePeriodEnd
                } else {
                    RunoutStatus::NotThisPeriod
                },
                at,
                earliest: crossing(&ahead.spans, &high, spent, l as f64),
            }
        }
    };
    let last24: i64 = req.history.cost_nanos.iter().rev().take(24).sum();
    let ahead_h = ((end - req.now).num_milliseconds() as f64 / 3.6e6).max(f64::MIN_POSITIVE);
    Forecast {
        period_start: req.period_start,
        period_end: req.period_end,
        spent_nanos: req.spent_nanos,
        limit_nanos: req.limit_nanos,
        end_of_period,
        runout,
        burn_rate: BurnRate {
            last_24h_usd_per_hour: usd(last24 as f64) / 24.0,
            period_usd_per_hour: usd(spent) / elapsed_h,
            forecast_usd_per_hour: if horizon == 0 {
                0.0
            } else {
                usd(rest) / ahead_h
            },
        },
        method,
        step,
        history_steps: y.len(),
        backtest: if method == Method::RunRate {
            None
        } else {
            backtest
        },
        short_history: short,
    }
}

#[cfg(test)]
mod tests;
