//! `GET /v1/anomalies`: an anomaly pass run now, on demand, over every scope and model (or
//! those a `scope` / `model` filter keeps): the incidents of the last 24 hours, as the
//! background detector finds them. Running it raises no alert.

use axum::Json;
use axum::extract::{Query, State, rejection::QueryRejection};
use serde::Deserialize;
use tollgate_model::scope::Scope;

use super::error::{ApiError, ErrorBody};
use crate::alerts::anomaly_pass::{self, PassReport};
use crate::ledger::RollupFilter;
use crate::state::AppState;

/// Which series to judge.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AnomalyQuery {
    /// Only this scope (`team:a`, `global`).
    pub scope: Option<String>,
    /// Only this charged model.
    pub model: Option<String>,
}

/// Anomalies of the last 24 hours per scope and model (spend and request rate), judged now.
#[utoipa::path(get, path = "/v1/anomalies", tag = "anomalies", params(AnomalyQuery),
    responses((status = 200, body = PassReport), (status = 400, body = ErrorBody)),
    security(("admin" = [])))]
pub async fn list(
    State(state): State<AppState>,
    q: Result<Query<AnomalyQuery>, QueryRejection>,
) -> Result<Json<PassReport>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let mut filter = RollupFilter::default();
    if let Some(raw) = q.scope {
        let scope: Scope = raw
            .parse()
            .map_err(|e: tollgate_model::scope::ScopeError| {
                ApiError::invalid("scope", e.to_string())
            })?;
        filter.scopes = vec![scope];
    }
    if let Some(m) = q.model {
        if m.trim().is_empty() {
            return Err(ApiError::invalid("model", "must not be empty"));
        }
        filter.models = vec![m];
    }
    let report = anomaly_pass::run(
        state.store.as_ref(),
        &state.anomaly_settings,
        filter,
        state.now(),
    )
    .await
    .map_err(|e| match e {
        crate::analytics::series::SeriesError::Store(s) => ApiError::from(s),
        other => {
            tracing::error!(error = %other, "anomaly pass failed");
            ApiError::Internal
        }
    })?;
    Ok(Json(report))
}
