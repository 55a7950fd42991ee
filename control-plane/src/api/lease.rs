//! Leases (docs/leases.md): `POST /v1/admission/lease` (grant or renew) and
//! `POST /v1/admission/lease/return` for the filter, `GET /v1/leases` (the leases
//! outstanding) for admins, and the sweep that releases expired leases and keeps the
//! `tollgate_leases_outstanding` gauge.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use tollgate_model::wire::v1::{LeaseRequest, LeaseResponse, LeaseReturn, LeaseReturned};

use super::admission::admission;
use super::error::{ApiError, ErrorBody};
use super::json::JsonBody;
use crate::state::AppState;
use crate::store::{LeaseView, StoreError};

/// Grant a lease for a key (scopes, model, provider), or renew one (`lease_id`).
#[utoipa::path(
    post, path = "/v1/admission/lease", tag = "admission",
    request_body(content = LeaseRequest, description = "The key, the holder, and the lease to renew if any"),
    responses(
        (status = 200, description = "A lease (`lease`) or why there is none (`no_lease`: reserve each call)", body = LeaseResponse),
        (status = 400, description = "invalid_json / invalid_field (names the field)", body = ErrorBody),
        (status = 401, description = "missing_token / invalid_token", body = ErrorBody),
        (status = 403, description = "forbidden (admin token)", body = ErrorBody),
        (status = 413, description = "payload_too_large", body = ErrorBody),
    ),
    security(("dataplane" = []))
)]
pub async fn lease(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<LeaseRequest>,
) -> Result<Json<LeaseResponse>, ApiError> {
    let snap = match state
        .catalog
        .snapshot_for_admission(state.store.as_ref())
        .await
    {
        Ok(snap) => snap,
        // No budgets to lease from: the filter reserves per call, where fail modes apply.
        Err(StoreError::Unavailable(_) | StoreError::Full(_)) => {
            return Ok(Json(LeaseResponse {
                lease: None,
                no_lease: Some(tollgate_model::wire::v1::NoLeaseReason::StoreUnavailable),
            }));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Json(admission(&state, &snap).lease(&req).await?))
}

/// Give back the unused part of a lease.
#[utoipa::path(
    post, path = "/v1/admission/lease/return", tag = "admission",
    request_body(content = LeaseReturn, description = "The lease and what of it was never used"),
    responses(
        (status = 200, description = "Whether the lease was still held", body = LeaseReturned),
        (status = 400, description = "invalid_json / invalid_field", body = ErrorBody),
        (status = 401, description = "missing_token / invalid_token", body = ErrorBody),
        (status = 403, description = "forbidden (admin token)", body = ErrorBody),
        (status = 503, description = "store_unavailable or store_full: the unused part is released when the lease expires", body = ErrorBody),
    ),
    security(("dataplane" = []))
)]
pub async fn return_lease(
    State(state): State<AppState>,
    JsonBody(r): JsonBody<LeaseReturn>,
) -> Result<Json<LeaseReturned>, ApiError> {
    let snap = state.catalog.snapshot(state.store.as_ref()).await?;
    Ok(Json(admission(&state, &snap).return_lease(&r).await?))
}

/// The leases outstanding.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LeaseList {
    /// Every lease still holding something, by org tag then id (expired ones are released
    /// before the list is read).
    pub leases: Vec<LeaseView>,
    /// Their number.
    pub outstanding: usize,
}

/// The leases outstanding: who holds what of which budgets, until when.
#[utoipa::path(
    get, path = "/v1/leases", tag = "admission",
    responses(
        (status = 200, description = "The leases outstanding", body = LeaseList),
        (status = 401, description = "missing_token / invalid_token", body = ErrorBody),
        (status = 503, description = "store_unavailable", body = ErrorBody),
    ),
    security(("admin" = []))
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<LeaseList>, ApiError> {
    let leases = state.store.leases(state.now().timestamp_millis()).await?;
    gauge(&leases);
    Ok(Json(LeaseList {
        outstanding: leases.len(),
        leases,
    }))
}

fn gauge(leases: &[LeaseView]) {
    #[allow(clippy::cast_precision_loss)] // a count and a sum of nano-USD, for a gauge
    {
        metrics::gauge!("tollgate_leases_outstanding").set(leases.len() as f64);
        let held: i64 = leases
            .iter()
            .fold(0i64, |a, l| a.saturating_add(l.held.usd_nanos));
        metrics::gauge!("tollgate_lease_held_nanos").set(held as f64);
    }
}

/// How often expired leases are released and the gauges refreshed.
pub const SWEEP_EVERY: Duration = Duration::from_secs(2);

/// Starts the lease sweep: every [`SWEEP_EVERY`], what expired leases still hold is
/// released (after their in-flight grace) and the gauges are set from what is left.
pub fn start(state: &AppState) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match state.store.leases(state.now().timestamp_millis()).await {
                Ok(leases) => gauge(&leases),
                Err(e) => {
                    metrics::counter!("tollgate_lease_sweep_errors_total").increment(1);
                    tracing::warn!(error = %e, "lease sweep failed; retried shortly");
                }
            }
        }
    })
}
