//! The forecasting methods, each fitted to a series of per-step spend and asked for the next
//! `h` steps: a point path and the structure of its errors, from which the interval of any
//! weighted sum of steps follows ([`Errors::cumulative_sd`]).
//!
//! - [`Method::Holt`]: exponential smoothing of level and trend with additive errors
//!   (`augurs-ets`, ETS(A,A,N), undamped).
//! - [`Method::Seasonal`]: MSTL (`augurs-mstl`) removes the hour-of-day or day-of-week
//!   pattern, the same ETS forecasts what is left, the pattern is added back.
//! - [`Method::LinearTrend`]: ordinary least squares on time, written here: `augurs` has no
//!   regression model. Its interval counts the uncertainty of the fitted line as well as the
//!   noise (the ETS intervals of `augurs` count the noise only).
//!
//! `augurs` gives per-step intervals, not the interval of a sum of steps, which is what the
//! spend at period end is. For its additive-error models the h-step error is
//! `ε(n+h) + Σ c(k) ε(n+h-k)` with the library's per-step variance `σ²(1 + Σ c(k)²)`, so the
//! loadings `c(k)` are read back from consecutive per-step interval widths and the sum's
//! variance is then exact for the model.

use augurs_core::{Fit, Predict};
use augurs_ets::AutoETS;
use augurs_mstl::MSTLModel;
use serde::Serialize;

/// z of the two-sided 95 % normal interval.
pub const Z95: f64 = 1.959_963_984_540_054;
/// z of the two-sided 80 % normal interval.
pub const Z80: f64 = 1.281_551_565_544_600_4;

/// A forecasting method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// A straight line fitted by least squares.
    LinearTrend,
    /// Exponential smoothing of level and trend (ETS, additive errors).
    Holt,
    /// MSTL seasonal decomposition (hour of day or day of week) with ETS on the rest.
    Seasonal,
    /// Too little history for any model: the period's average rate so far, carried on.
    RunRate,
}

/// How a method's forecast errors relate across steps.
#[derive(Debug, Clone)]
pub enum Errors {
    /// `e(h) = ε(n+h) + Σ_{k=1}^{h-1} psi[k] ε(n+h-k)`, ε independent with sd `sigma`.
    Shocks {
        /// One-step error sd.
        sigma: f64,
        /// Loadings; `psi[0] = 1`.
        psi: Vec<f64>,
    },
    /// A least-squares line: independent noise plus the fitted line's own uncertainty.
    Line {
        /// Residual sd.
        sigma: f64,
        /// Points fitted.
        n: f64,
        /// Mean of the fitted times.
        x_mean: f64,
        /// Σ (x - x̄)².
        sxx: f64,
        /// The time index of the first forecast step.
        x0: f64,
    },
}

impl Errors {
    /// The sd of `Σ_{h≤K} w[h] e(h)` for each K = 1..=w.len().
    pub fn cumulative_sd(&self, w: &[f64]) -> Vec<f64> {
        let mut out = Vec::with_capacity(w.len());
        match self {
            Errors::Shocks { sigma, psi } => {
                // a[j]: the loading of shock j in the partial sum so far.
                let mut a: Vec<f64> = Vec::with_capacity(w.len());
                for (k, &wk) in w.iter().enumerate() {
                    for (j, aj) in a.iter_mut().enumerate() {
                        *aj += wk * psi.get(k - j).copied().unwrap_or(0.0);
                    }
                    a.push(wk);
                    let var: f64 = a.iter().map(|x| x * x).sum();
                    out.push(sigma * var.sqrt());
                }
            }
            Errors::Line {
                sigma,
                n,
                x_mean,
                sxx,
                x0,
            } => {
                let (mut sw, mut sw2, mut swx) = (0.0, 0.0, 0.0);
                for (k, &wk) in w.iter().enumerate() {
                    let x = x0 + k as f64;
                    sw += wk;
                    sw2 += wk * wk;
                    swx += wk * (x - x_mean);
                    let var = sw2 + sw * sw / n + swx * swx / sxx.max(f64::MIN_POSITIVE);
                    out.push(sigma * var.sqrt());
                }
            }
        }
        out
    }
}

/// A method's forecast of the next steps.
#[derive(Debug, Clone)]
pub struct Path {
    /// Point forecast per step.
    pub point: Vec<f64>,
    /// Its errors.
    pub errors: Errors,
}

/// The fewest steps each method is fitted to.
pub fn min_history(m: Method, season: usize) -> usize {
    match m {
        Method::LinearTrend => 3,
        Method::Holt => 6,
        Method::Seasonal => 2 * season + 2,
        Method::RunRate => 0,
    }
}

/// Fits `m` to `y` and forecasts `h` steps (`h ≥ 1`); `None` when the method cannot be
/// fitted (too short, a library error, a non-finite answer).
pub fn fit(m: Method, y: &[f64], season: usize, h: usize) -> Option<Path> {
    if y.len() < min_history(m, season) || h == 0 || y.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let path = match m {
        Method::LinearTrend => Some(linear(y, h)),
        // The library unwraps internally on some degenerate inputs: a panic there is a
        // method that did not fit, not a failed request.
        Method::Holt => std::panic::catch_unwind(|| holt(y, h)).ok().flatten(),
        Method::Seasonal => std::panic::catch_unwind(|| seasonal(y, season, h))
            .ok()
            .flatten(),
        Method::RunRate => None,
    }?;
    let finite = path.point.iter().all(|v| v.is_finite())
        && match &path.errors {
            Errors::Shocks { sigma, psi } => sigma.is_finite() && psi.iter().all(|v| v.is_finite()),
            Errors::Line { sigma, .. } => sigma.is_finite(),
        };
    finite.then_some(path)
}

fn linear(y: &[f64], h: usize) -> Path {
    let n = y.len() as f64;
    let x_mean = (n - 1.0) / 2.0;
    let y_mean = y.iter().sum::<f64>() / n;
    let mut sxx = 0.0;
    let mut sxy = 0.0;
    for (i, v) in y.iter().enumerate() {
        let dx = i as f64 - x_mean;
        sxx += dx * dx;
        sxy += dx * (v - y_mean);
    }
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let at = |x: f64| y_mean + slope * (x - x_mean);
    let sse: f64 = y
        .iter()
        .enumerate()
        .map(|(i, v)| (v - at(i as f64)).powi(2))
        .sum();
    let sigma = (sse / (n - 2.0).max(1.0)).sqrt();
    Path {
        point: (0..h).map(|k| at(n + k as f64)).collect(),
        errors: Errors::Line {
            sigma,
            n,
            x_mean,
            sxx,
            x0: n,
        },
    }
}

fn shocks_from(point: Vec<f64>, upper: &[f64]) -> Option<Path> {
    let sd: Vec<f64> = point
        .iter()
        .zip(upper)
        .map(|(p, u)| ((u - p) / Z95).max(0.0))
        .collect();
    let sigma = *sd.first()?;
    let mut psi = vec![1.0];
    for k in 1..sd.len() {
        let step = (sd[k] * sd[k] - sd[k - 1] * sd[k - 1]).max(0.0);
        psi.push(if sigma > 0.0 {
            step.sqrt() / sigma
        } else {
            0.0
        });
    }
    Some(Path {
        point,
        errors: Errors::Shocks { sigma, psi },
    })
}

/// Holt's model: additive error and trend, undamped, no season (one model fitted, not a
/// search: the forecasts of a thousand budgets must take under a second).
fn ets() -> Option<AutoETS> {
    AutoETS::new(1, "AAN").ok()?.damped(false).ok()
}

fn holt(y: &[f64], h: usize) -> Option<Path> {
    let fitted = ets()?.fit(y).ok()?;
    let f = fitted.predict(h, 0.95).ok()?;
    let upper = f.intervals?.upper;
    shocks_from(f.point, &upper)
}

fn seasonal(y: &[f64], season: usize, h: usize) -> Option<Path> {
    let model = MSTLModel::new(vec![season], ets()?.into_trend_model());
    let fitted = model.fit(y).ok()?;
    let f = fitted.predict(h, 0.95).ok()?;
    let upper = f.intervals?.upper;
    shocks_from(f.point, &upper)
}

/// Symmetric mean absolute percentage error, percent (0 to 200): steps where both the
/// actual and the forecast are zero count as exact.
pub fn smape(actual: &[f64], forecast: &[f64]) -> f64 {
    let n = actual.len().min(forecast.len());
    if n == 0 {
        return 0.0;
    }
    let sum: f64 = actual
        .iter()
        .zip(forecast)
        .map(|(a, f)| {
            let d = a.abs() + f.abs();
            if d == 0.0 {
                0.0
            } else {
                200.0 * (a - f).abs() / d
            }
        })
        .sum();
    sum / n as f64
}
