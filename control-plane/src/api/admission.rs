//! `POST /v1/admission/reserve` and `POST /v1/admission/settle`: the data-plane API the
//! filter calls (wire types from `tollgate_model::wire::v1`).

use axum::Json;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tollgate_model::wire::v1::{
    PriceOverrides, ReserveRequest, ReserveResponse, SettleBatch, SettleResponse,
};

use super::error::ApiError;
use super::json::JsonBody;
use crate::admission::Admission;
use crate::catalog::Snapshot;
use crate::state::AppState;

fn outcome_label(r: &ReserveResponse) -> &'static str {
    match r {
        ReserveResponse::Allow { .. } => "allow",
        ReserveResponse::Downgrade { .. } => "downgrade",
        ReserveResponse::Deny { .. } => "deny",
    }
}

/// The admission step over this replica's store, its cached budgets and its clock.
pub(super) fn admission<'a>(state: &'a AppState, snap: &'a Snapshot) -> Admission<'a> {
    Admission {
        store: state.store.as_ref(),
        snap,
        settings: state.settings,
        unknown_model: &state.unknown_model,
        now: state.now(),
        sightings: &state.unpriced,
    }
}

/// Raises the `unpriced_model` alerts admission noted, off the answer's path.
fn raise_unpriced(state: &AppState) {
    for alert in state.unpriced.take() {
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::alerts::events::raise(&state, alert).await {
                tracing::warn!(error = %e, "unpriced-model alert not raised");
            }
        });
    }
}

/// Reserve a call's estimate against every matching budget.
#[utoipa::path(
    post, path = "/v1/admission/reserve", tag = "admission",
    request_body(content = ReserveRequest, description = "The call's worst-case estimate"),
    responses(
        (status = 200, description = "Decision: allow, downgrade or deny", body = ReserveResponse),
        (status = 400, description = "invalid_json / invalid_field", body = super::error::ErrorBody),
        (status = 401, description = "missing_token / invalid_token", body = super::error::ErrorBody),
        (status = 403, description = "forbidden (admin token)", body = super::error::ErrorBody),
        (status = 413, description = "payload_too_large", body = super::error::ErrorBody),
        (status = 503, description = "store_unavailable or store_full, and no budget the call matches sets a fail mode: apply the filter's fail mode", body = super::error::ErrorBody),
    ),
    security(("dataplane" = []))
)]
pub async fn reserve(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<ReserveRequest>,
) -> Result<Json<ReserveResponse>, ApiError> {
    let snap = state
        .catalog
        .snapshot_for_admission(state.store.as_ref())
        .await?;
    let adm = admission(&state, &snap);
    let resp = adm.reserve(&req).await?;
    raise_unpriced(&state);
    metrics::counter!("tollgate_admission_total", "outcome" => outcome_label(&resp)).increment(1);
    Ok(Json(resp))
}

/// Settle a batch of calls with their actual cost, idempotently by request id.
#[utoipa::path(
    post, path = "/v1/admission/settle", tag = "admission",
    request_body(content = SettleBatch, description = "Finished calls with their exact cost"),
    responses(
        (status = 200, description = "Applied and duplicate counts", body = SettleResponse),
        (status = 400, description = "invalid_json / invalid_field", body = super::error::ErrorBody),
        (status = 401, description = "missing_token / invalid_token", body = super::error::ErrorBody),
        (status = 403, description = "forbidden", body = super::error::ErrorBody),
        (status = 413, description = "payload_too_large", body = super::error::ErrorBody),
        (status = 503, description = "store_unavailable or store_full: retry the whole batch later (replays are harmless)", body = super::error::ErrorBody),
    ),
    security(("dataplane" = []))
)]
pub async fn settle(
    State(state): State<AppState>,
    JsonBody(batch): JsonBody<SettleBatch>,
) -> Result<Json<SettleResponse>, ApiError> {
    let snap = state.catalog.snapshot(state.store.as_ref()).await?;
    let adm = admission(&state, &snap);
    let (resp, alerts, failed_open) = adm.settle_with_alerts(&batch).await?;
    raise_unpriced(&state);
    // Never waits: delivery runs on its own task (alerts::worker).
    state.alerts.notify(&alerts);
    if !failed_open.is_empty() {
        // Counted off the answer's path: an outage's backlog settles without waiting on it.
        let store = state.store.clone();
        let now_ms = state.now().timestamp_millis();
        tokio::spawn(async move {
            if let Err(e) =
                crate::alerts::failopen::note(store.as_ref(), &failed_open, now_ms).await
            {
                tracing::warn!(error = %e, calls = failed_open.len(), "fail-open calls not counted");
            }
        });
    }
    metrics::counter!("tollgate_settlements_total", "result" => "applied")
        .increment(u64::from(resp.applied));
    metrics::counter!("tollgate_settlements_total", "result" => "duplicate")
        .increment(u64::from(resp.duplicates));
    Ok(Json(resp))
}

/// The price overrides in force, for the filter to apply over its built-in table (so that its
/// estimates, response headers and metrics use the prices admission charges). `ETag` is the
/// set's version; `If-None-Match` with it answers `304` and no body while the set is
/// unchanged.
#[utoipa::path(
    get, path = "/v1/admission/prices", tag = "admission",
    params(("If-None-Match" = Option<String>, Header, description = "The version last fetched, quoted")),
    responses(
        (status = 200, description = "The overrides as a price file (docs/prices.md) whose `table_version` is the set's version", body = PriceOverrides),
        (status = 304, description = "unchanged since the version in If-None-Match"),
        (status = 401, description = "missing_token / invalid_token", body = super::error::ErrorBody),
        (status = 503, description = "store_unavailable", body = super::error::ErrorBody),
    ),
    security(("dataplane" = []))
)]
pub async fn prices(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let snap = state.catalog.snapshot(state.store.as_ref()).await?;
    let overrides: &PriceOverrides = &snap.overrides;
    let etag = format!("\"{}\"", overrides.table_version);
    let etag_value = HeaderValue::from_str(&etag).map_err(|_| ApiError::Internal)?;
    let unchanged = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == etag)
        });
    if unchanged {
        return Ok((StatusCode::NOT_MODIFIED, [(ETAG, etag_value)]).into_response());
    }
    let json = HeaderValue::from_static("application/json");
    Ok((
        [(ETAG, etag_value), (CONTENT_TYPE, json)],
        snap.overrides_json.clone(),
    )
        .into_response())
}
