//! `GET /v1/recommendations`: cheaper models and prompt-cache opportunities from the last
//! `days` whole UTC days of one scope's day rollups (default `global`, the whole gateway),
//! and budgets that will run out before their period ends or were never used, from the
//! forecasts (`analytics::recommend`, docs/forecasts.md).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use tollgate_model::budget::Budget;
use tollgate_model::scope::Scope;

use super::error::{ApiError, ErrorBody};
use super::forecasts::for_budgets;
use crate::analytics::forecast::RunoutStatus;
use crate::analytics::recommend::{self, CheaperModel, ModelUse, PromptCache};
use crate::ledger::{Granularity, RollupFilter, RollupQuery, TimeRange, TokenCounts};
use crate::state::AppState;

/// Most days of history a recommendation looks at.
pub const MAX_DAYS: i64 = 90;

/// Query of `GET /v1/recommendations`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RecommendQuery {
    /// The scope whose spend is examined (default `global`: every call); budgets are those
    /// whose selector holds it (every budget for `global`).
    scope: Option<String>,
    /// Whole UTC days before today to examine, 1-90 (default 30).
    days: Option<i64>,
}

/// A budget forecast to reach its USD limit before its period ends.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BudgetRunningOut {
    /// The budget.
    pub budget_id: String,
    /// Its USD limit, nano-USD.
    pub limit_nanos: Option<i64>,
    /// Spent this period so far, nano-USD.
    pub spent_nanos: i64,
    /// Forecast spend at the period end, USD.
    pub forecast_end_usd: Option<f64>,
    /// When the forecast reaches the limit.
    pub runout_at: Option<DateTime<Utc>>,
    /// When the period ends.
    pub period_end: Option<DateTime<Utc>>,
}

/// A budget with no spend this period nor in the history a forecast reads.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UnusedBudget {
    /// The budget.
    pub budget_id: String,
    /// Its current period's start.
    pub period_start: DateTime<Utc>,
    /// How far back no spend was seen (the forecast's history), days.
    pub checked_days: i64,
}

/// Every recommendation, each with the numbers behind it (money in exact nano-USD).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Recommendations {
    /// The scope examined.
    pub scope: String,
    /// Start of the days examined.
    pub from: DateTime<Utc>,
    /// End (exclusive): today's UTC midnight.
    pub to: DateTime<Utc>,
    /// Models with a cheaper one of the same provider and class, largest saving first.
    pub cheaper_models: Vec<CheaperModel>,
    /// Large inputs sent without prompt caching to a model whose provider caches.
    pub prompt_cache: Vec<PromptCache>,
    /// Budgets forecast to run out before their period ends.
    pub budgets_running_out: Vec<BudgetRunningOut>,
    /// Budgets never used.
    pub unused_budgets: Vec<UnusedBudget>,
}

/// Cheaper models, prompt-cache opportunities, budgets running out, budgets never used.
#[utoipa::path(get, path = "/v1/recommendations", tag = "forecasts",
    params(RecommendQuery),
    responses((status = 200, body = Recommendations),
        (status = 400, body = ErrorBody, description = "invalid_field naming `scope` or `days`")),
    security(("admin" = [])))]
pub async fn list(
    State(state): State<AppState>,
    q: Result<Query<RecommendQuery>, QueryRejection>,
) -> Result<Json<Recommendations>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let scope: Scope = match q.scope.as_deref() {
        None => Scope::global(),
        Some(s) => s.parse().map_err(|e: tollgate_model::scope::ScopeError| {
            ApiError::invalid("scope", e.to_string())
        })?,
    };
    let days = q.days.unwrap_or(30);
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(ApiError::invalid(
            "days",
            format!("must be 1 to {MAX_DAYS}, got {days}"),
        ));
    }
    let now = state.now();
    let to = DateTime::from_timestamp_millis(Granularity::Day.bucket_start(now.timestamp_millis()))
        .unwrap_or(now);
    let from = to - TimeDelta::days(days);
    let range =
        TimeRange::new(from.timestamp_millis(), to.timestamp_millis()).ok_or(ApiError::Internal)?;
    let rows = state
        .store
        .rollups(&RollupQuery {
            range,
            filter: RollupFilter {
                scopes: vec![scope.clone()],
                ..RollupFilter::default()
            },
            granularity: Granularity::Day,
            now_ms: now.timestamp_millis(),
        })
        .await?;
    let mut uses: BTreeMap<(String, String), ModelUse> = BTreeMap::new();
    for r in rows {
        let u = uses.entry((r.model, r.provider)).or_default();
        u.requests = u.requests.saturating_add(r.requests - r.denied);
        u.cost_nanos = u.cost_nanos.saturating_add(r.cost_nanos);
        let mut t = u.tokens.to_array();
        for (a, b) in t.iter_mut().zip(r.tokens.to_array()) {
            *a = a.saturating_add(b);
        }
        u.tokens = TokenCounts::from_array(t);
    }
    let snap = state.catalog.snapshot(state.store.as_ref()).await?;
    let found = recommend::recommend_models(&uses, &snap.prices, now);

    let global = scope == Scope::global();
    let mut budgets: Vec<&Budget> = snap
        .budgets
        .iter()
        .map(Arc::as_ref)
        .filter(|b| global || b.scopes.contains(&scope))
        .collect();
    budgets.sort_by(|a, b| a.id.cmp(&b.id));
    let fs = for_budgets(state.store.as_ref(), &snap.prices, &budgets, now).await?;
    let mut running_out = Vec::new();
    let mut unused = Vec::new();
    for f in fs {
        let fc = &f.forecast;
        if fc.runout.status == RunoutStatus::BeforePeriodEnd {
            running_out.push(BudgetRunningOut {
                budget_id: f.budget_id.clone(),
                limit_nanos: fc.limit_nanos,
                spent_nanos: fc.spent_nanos,
                forecast_end_usd: fc.end_of_period.map(|e| e.point_usd),
                runout_at: fc.runout.at,
                period_end: fc.period_end,
            });
        }
        if fc.history_steps == 0 && fc.spent_nanos == 0 {
            unused.push(UnusedBudget {
                budget_id: f.budget_id,
                period_start: fc.period_start,
                checked_days: i64::try_from(fc.step.history_hours() / 24).unwrap_or(0),
            });
        }
    }
    Ok(Json(Recommendations {
        scope: scope.to_string(),
        from,
        to,
        cheaper_models: found.cheaper,
        prompt_cache: found.cache,
        budgets_running_out: running_out,
        unused_budgets: unused,
    }))
}
