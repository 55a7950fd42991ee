//! Alert deliveries: `GET /v1/alerts/{id}/deliveries` (every channel's attempts at one alert)
//! and `GET /v1/alerts/dead-letters` (deliveries that gave up).

use axum::Json;
use axum::extract::State;

use super::error::{ApiError, ErrorBody};
use super::path::Path;
use crate::alerts::record::{self, DeliveryRecord, DeliveryState};
use crate::state::AppState;

/// Every channel's delivery of one alert (its id from `GET /v1/alerts`), by channel id. An
/// alert no channel wanted has none: an empty list.
#[utoipa::path(get, path = "/v1/alerts/{id}/deliveries", tag = "alerts",
    params(("id" = String, Path, description = "Alert id")),
    responses((status = 200, body = [DeliveryRecord]), (status = 400, body = ErrorBody)),
    security(("admin" = [])))]
pub async fn deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<DeliveryRecord>>, ApiError> {
    if id.contains('@') {
        return Err(ApiError::invalid("id", "an alert id holds no '@'"));
    }
    Ok(Json(record::of_alert(state.store.as_ref(), &id).await?))
}

/// Deliveries that failed every attempt (kept 7 days), newest alert first.
#[utoipa::path(get, path = "/v1/alerts/dead-letters", tag = "alerts",
    responses((status = 200, body = [DeliveryRecord])), security(("admin" = [])))]
pub async fn dead_letters(
    State(state): State<AppState>,
) -> Result<Json<Vec<DeliveryRecord>>, ApiError> {
    let mut dead: Vec<DeliveryRecord> = record::all(state.store.as_ref())
        .await?
        .into_iter()
        .filter(|r| r.state == DeliveryState::Dead)
        .collect();
    dead.sort_by_key(|r| std::cmp::Reverse(r.alert.at_ms));
    Ok(Json(dead))
}
