//! Spend forecasts: `GET /v1/forecasts` (every budget, or one scope with `?scope=`) and
//! `GET /v1/forecasts/{budget}`. Each reads the budgets' hourly series
//! (`analytics::series`), their counters (spent so far, as the budget counts now: a reset
//! or an edit mid-period is what the forecast starts from) and hands them to
//! `analytics::forecast`. Every computation also sets the per-budget gauges and raises a
//! `budget_forecast_runout` alert the first time in a window that a budget is forecast to
//! run out before its period ends; [`start`] repeats it in the background.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use tollgate_model::PriceTable;
use tollgate_model::budget::Budget;
use tollgate_model::period::{Period, Window};
use tollgate_model::scope::Scope;

use super::error::{ApiError, ErrorBody};
use crate::admission::line_for;
use crate::alerts::{Alert, AlertKind, Severity};
use crate::analytics::forecast::{self, Forecast, Request, RunoutStatus, Step};
use crate::analytics::series::{self, Hours, SeriesError};
use crate::ledger::Granularity;
use crate::state::AppState;
use crate::store::{Store, StoreError};

/// How often the background task recomputes every budget's forecast.
pub const REFRESH: Duration = Duration::from_secs(600);

impl From<SeriesError> for ApiError {
    fn from(e: SeriesError) -> ApiError {
        match e {
            SeriesError::Store(s) => s.into(),
            SeriesError::TooManyRecords(_) => ApiError::invalid("budget", e.to_string()),
        }
    }
}

/// One budget's forecast.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BudgetForecast {
    /// The budget.
    pub budget_id: String,
    /// Its current window (index within its period).
    pub window_index: i64,
    /// The forecast.
    pub forecast: Forecast,
}

/// Budgets' forecasts, and a scope's own when one was asked for.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ForecastList {
    /// The scope's own spend forecast (`scope=` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<ScopeForecast>,
    /// One per budget, by id: every budget, or (`scope=`) those whose selector holds the scope.
    pub budgets: Vec<BudgetForecast>,
}

/// One scope's forecast over a calendar period of its own.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScopeForecast {
    /// The scope (`team:a`, or `global`).
    pub scope: String,
    /// The period forecast to the end of.
    pub period: Period,
    /// Its time zone.
    pub timezone: String,
    /// The forecast (no limit: a scope has none).
    pub forecast: Forecast,
}

/// The history a forecast at `step` reads, and from which rollups: the last week of whole
/// hours before `now`'s hour, or the last eight weeks of whole UTC days before today
/// (day rows: 24 times fewer to read).
fn history(now: DateTime<Utc>, step: Step) -> (Hours, Granularity) {
    match step {
        Step::Hour => (Hours::before(now, step.history_hours()), Granularity::Hour),
        Step::Day => {
            let midnight = DateTime::from_timestamp_millis(
                Granularity::Day.bucket_start(now.timestamp_millis()),
            )
            .unwrap_or(now);
            (
                Hours::before(midnight, step.history_hours()),
                Granularity::Day,
            )
        }
    }
}

/// Forecasts `budgets` at `now`: one read of the rollups per step (and of the records for
/// multi-scope budgets), one batched read of their counters, and the forecasts themselves
/// on every core, off the async runtime (a thousand budgets are a few hundred ms of fitting).
pub async fn for_budgets(
    store: &dyn Store,
    prices: &PriceTable,
    budgets: &[&Budget],
    now: DateTime<Utc>,
) -> Result<Vec<BudgetForecast>, ApiError> {
    // One read per step: budgets forecast in hours, and in days.
    let mut all: Vec<Option<series::Hourly>> = vec![None; budgets.len()];
    for step in [Step::Hour, Step::Day] {
        let idx: Vec<usize> = (0..budgets.len())
            .filter(|&i| {
                let w = series::period_of(budgets[i], now);
                Step::for_period(w.start, w.end) == step
            })
            .collect();
        if idx.is_empty() {
            continue;
        }
        let (hours, g) = history(now, step);
        let these: Vec<&Budget> = idx.iter().map(|&i| budgets[i]).collect();
        let read = series::read_budgets(store, &these, prices, hours, g, now).await?;
        for (i, h) in idx.into_iter().zip(read) {
            all[i] = Some(h);
        }
    }
    let histories: Vec<series::Hourly> = all
        .into_iter()
        .collect::<Option<_>>()
        .ok_or(ApiError::Internal)?;
    let (lines, windows): (Vec<_>, Vec<_>) = budgets.iter().map(|b| line_for(b, now)).unzip();
    let counters = store.counters_many(&lines).await?;
    let asked: Vec<(Window, i64, Option<i64>)> = budgets
        .iter()
        .zip(&windows)
        .zip(&counters)
        .map(|((b, w), c)| (*w, c.spent_nanos, b.limit.map(|l| l.0)))
        .collect();
    let fs = tokio::task::spawn_blocking(move || {
        let reqs: Vec<Request<'_>> = asked
            .iter()
            .zip(&histories)
            .map(|(&(w, spent_nanos, limit_nanos), history)| Request {
                now,
                period_start: w.start,
                period_end: w.end,
                history,
                spent_nanos,
                limit_nanos,
            })
            .collect();
        forecast::batch::forecast_all(&reqs, forecast::batch::cores())
    })
    .await
    .ok()
    .flatten()
    .ok_or(ApiError::Internal)?;
    Ok(budgets
        .iter()
        .zip(windows)
        .zip(fs)
        .map(|((b, w), f)| BudgetForecast {
            budget_id: b.id.clone(),
            window_index: w.index,
            forecast: f,
        })
        .collect())
}

/// Sets the gauges of `fs` and raises the run-out alerts not raised yet in their windows.
pub async fn publish(state: &AppState, fs: &[BudgetForecast], now: DateTime<Utc>) {
    for f in fs {
        let id = f.budget_id.clone();
        if let Some(e) = f.forecast.end_of_period {
            metrics::gauge!("tollgate_budget_forecast_usd", "budget" => id.clone())
                .set(e.point_usd);
        }
        let runout = match (f.forecast.runout.status, f.forecast.runout.at) {
            (RunoutStatus::NoLimit, _) => None,
            (_, Some(at)) => Some((at - now).num_seconds().max(0) as f64),
            (_, None) => Some(f64::INFINITY),
        };
        if let Some(secs) = runout {
            metrics::gauge!("tollgate_budget_runout_seconds", "budget" => id).set(secs);
        }
        if f.forecast.runout.status == RunoutStatus::BeforePeriodEnd
            && let Err(e) = crate::alerts::events::raise(state, runout_alert(f, now)).await
        {
            tracing::warn!(budget = %f.budget_id, error = %e, "forecast run-out alert not raised");
        }
    }
}

/// The `budget_forecast_runout` alert of `f`: one per budget window.
pub fn runout_alert(f: &BudgetForecast, now: DateTime<Utc>) -> Alert {
    Alert {
        budget_id: Some(f.budget_id.clone()),
        window_index: Some(f.window_index),
        spent_nanos: Some(f.forecast.spent_nanos),
        runout_at_ms: f.forecast.runout.at.map(|t| t.timestamp_millis()),
        ..Alert::new(
            format!("forecast.{}.w{}", f.budget_id, f.window_index),
            AlertKind::BudgetForecastRunout,
            Severity::Warning,
            now.timestamp_millis(),
        )
    }
}

async fn all_budgets(state: &AppState) -> Result<(Vec<Arc<Budget>>, Arc<PriceTable>), StoreError> {
    let snap = state.catalog.snapshot(state.store.as_ref()).await?;
    Ok((snap.budgets.clone(), snap.prices.clone()))
}

/// Recomputes every budget's forecast every [`REFRESH`] (gauges and run-out alerts).
pub fn start(state: &AppState) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(REFRESH);
        loop {
            tick.tick().await;
            let now = state.now();
            let done = async {
                let (budgets, prices) = all_budgets(&state).await?;
                let refs: Vec<&Budget> = budgets.iter().map(Arc::as_ref).collect();
                for_budgets(state.store.as_ref(), &prices, &refs, now).await
            };
            match done.await {
                Ok(fs) => publish(&state, &fs, now).await,
                Err(e) => tracing::warn!(error = %e, "forecast refresh failed"),
            }
        }
    })
}

/// Query of `GET /v1/forecasts`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ForecastQuery {
    /// A scope (`team:a`, `global`): forecast its spend instead of the budgets'.
    scope: Option<String>,
    /// With `scope`: the period to forecast to the end of (`daily`, `weekly`, `monthly`
    /// (default), `quarterly`, `yearly`).
    period: Option<String>,
    /// With `scope`: the IANA zone of the period (default `UTC`).
    timezone: Option<String>,
}

/// Every budget's forecast; with `scope=`, that scope's own spend forecast and those of the
/// budgets whose selector holds it.
#[utoipa::path(get, path = "/v1/forecasts", tag = "forecasts",
    params(ForecastQuery),
    responses((status = 200, body = ForecastList),
        (status = 400, body = ErrorBody, description = "invalid_field naming `scope`, `period` or `timezone`")),
    security(("admin" = [])))]
pub async fn list(
    State(state): State<AppState>,
    q: Result<Query<ForecastQuery>, QueryRejection>,
) -> Result<Json<ForecastList>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let now = state.now();
    let scope = match q.scope {
        Some(s) => Some(scope_forecast(&state, &s, q.period, q.timezone, now).await?),
        None if q.period.is_some() || q.timezone.is_some() => {
            return Err(ApiError::invalid(
                "scope",
                "`period` and `timezone` apply to a scope's forecast: give `scope` too",
            ));
        }
        None => None,
    };
    let (budgets, prices) = all_budgets(&state).await?;
    let global = Scope::global().to_string();
    let mut refs: Vec<&Budget> = budgets
        .iter()
        .map(Arc::as_ref)
        .filter(|b| {
            scope.as_ref().is_none_or(|s| {
                b.scopes.iter().any(|x| x.to_string() == s.scope)
                    || (b.scopes.is_empty() && s.scope == global)
            })
        })
        .collect();
    refs.sort_by(|a, b| a.id.cmp(&b.id));
    let fs = for_budgets(state.store.as_ref(), &prices, &refs, now).await?;
    publish(&state, &fs, now).await;
    Ok(Json(ForecastList { scope, budgets: fs }))
}

/// One budget's forecast.
#[utoipa::path(get, path = "/v1/forecasts/{budget}", tag = "forecasts",
    params(("budget" = String, Path, description = "A budget id")),
    responses((status = 200, body = BudgetForecast), (status = 404, body = ErrorBody)),
    security(("admin" = [])))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<BudgetForecast>, ApiError> {
    let now = state.now();
    let (budgets, prices) = all_budgets(&state).await?;
    let b = budgets
        .iter()
        .find(|b| b.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("budget {id:?}")))?;
    let mut fs = for_budgets(state.store.as_ref(), &prices, &[b.as_ref()], now).await?;
    publish(&state, &fs, now).await;
    fs.pop().map(Json).ok_or(ApiError::Internal)
}

fn parse_period(p: Option<String>) -> Result<Period, ApiError> {
    let Some(p) = p else {
        return Ok(Period::Monthly);
    };
    match p.as_str() {
        "daily" => Ok(Period::Daily),
        "weekly" => Ok(Period::Weekly),
        "monthly" => Ok(Period::Monthly),
        "quarterly" => Ok(Period::Quarterly),
        "yearly" => Ok(Period::Yearly),
        _ => Err(ApiError::invalid(
            "period",
            format!("{p:?} is not one of daily, weekly, monthly, quarterly, yearly"),
        )),
    }
}

async fn scope_forecast(
    state: &AppState,
    scope: &str,
    period: Option<String>,
    timezone: Option<String>,
    now: DateTime<Utc>,
) -> Result<ScopeForecast, ApiError> {
    let s: Scope = scope
        .parse()
        .map_err(|e: tollgate_model::scope::ScopeError| {
            ApiError::invalid("scope", e.to_string())
        })?;
    let period = parse_period(period)?;
    let tz_name = timezone.unwrap_or_else(|| "UTC".to_owned());
    let tz: Tz = tz_name
        .parse()
        .map_err(|_| ApiError::invalid("timezone", format!("{tz_name:?} is not an IANA zone")))?;
    let window = period.window(now, tz);
    // The history (in hours: one scope is a small read), then what it spent since the
    // period began, up to now.
    let (hist, _) = history(now, Step::for_period(window.start, window.end));
    let through_now = Hours::between(hist.start.min(window.start), now + TimeDelta::hours(1));
    let mut read = series::read_scopes(
        state.store.as_ref(),
        std::slice::from_ref(&s),
        through_now,
        now,
    )
    .await?;
    let h = read
        .remove(&s)
        .unwrap_or_else(|| series::Hourly::zeros(through_now));
    let spent = h
        .slice(window.start, through_now.end())
        .total_cost_nanos()
        .ok_or(ApiError::Internal)?;
    let past = h.slice(hist.start, hist.end());
    let f = forecast::forecast(&Request {
        now,
        period_start: window.start,
        period_end: window.end,
        history: &past,
        spent_nanos: spent,
        limit_nanos: None,
    });
    Ok(ScopeForecast {
        scope: s.to_string(),
        period,
        timezone: tz_name,
        forecast: f,
    })
}
