//! Operational routes: `/healthz`, `/readyz`, `/metrics`, `/v1/alerts`, `/v1/audit`.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;

use super::error::{ApiError, ErrorBody};
use super::views::AuditRecord;
use crate::admission::budget_tag;
use crate::alerts::Alert;
use crate::state::AppState;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "ok")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the store answers a ping.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, description = "ready"), (status = 503, body = ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    state.store.ping().await?;
    Ok("ready")
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "metrics")))]
pub async fn metrics() -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(),
    )
}

/// `?limit=` of list routes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LimitQuery {
    /// How many, newest first (1-1000, default 100).
    limit: Option<usize>,
}

fn limit(q: Result<Query<LimitQuery>, QueryRejection>) -> Result<usize, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let n = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&n) {
        return Err(ApiError::invalid("limit", "must be 1..=1000"));
    }
    Ok(n)
}

/// Alert events of every kind (threshold crossings, suspensions, emergency switches,
/// anomalies, fail-open episodes), newest first, each with the id its deliveries are listed
/// under (`/v1/alerts/{id}/deliveries`).
#[utoipa::path(get, path = "/v1/alerts", tag = "ops", params(LimitQuery),
    responses((status = 200, body = [Alert])), security(("admin" = [])))]
pub async fn alerts(
    State(state): State<AppState>,
    q: Result<Query<LimitQuery>, QueryRejection>,
) -> Result<Json<Vec<Alert>>, ApiError> {
    let n = limit(q)?;
    let snap = state.catalog.snapshot(state.store.as_ref()).await?;
    let mut tags: Vec<String> = snap.budgets.iter().map(|b| budget_tag(b)).collect();
    tags.sort();
    tags.dedup();
    let events = state.store.alerts(&tags, n).await?;
    let mut all: Vec<Alert> = events.iter().map(Alert::from).collect();
    all.extend(crate::alerts::events::since(state.store.as_ref(), i64::MIN).await?);
    all.sort_by(|a, b| b.at_ms.cmp(&a.at_ms).then_with(|| a.id.cmp(&b.id)));
    all.truncate(n);
    Ok(Json(all))
}

/// Audit records (admin changes), newest first.
#[utoipa::path(get, path = "/v1/audit", tag = "ops", params(LimitQuery),
    responses((status = 200, body = [AuditRecord])), security(("admin" = [])))]
pub async fn audit(
    State(state): State<AppState>,
    q: Result<Query<LimitQuery>, QueryRejection>,
) -> Result<Json<Vec<AuditRecord>>, ApiError> {
    let n = limit(q)?;
    let raw = state.store.audit_log(n).await?;
    Ok(Json(
        raw.iter()
            .filter_map(|r| serde_json::from_str(r).ok())
            .collect(),
    ))
}
