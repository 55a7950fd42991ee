//! Emergency switches: `PUT /v1/emergency/{scope}` puts a scope into deny-all or
//! downgrade-all at once; `DELETE` lifts it; `GET /v1/emergency` lists them. Every change is
//! audited.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use tollgate_model::scope::Scope;

use super::error::{ApiError, ErrorBody};
use super::json::JsonBody;
use super::path::Path;
use super::views::SwitchView;
use super::{audit, conflict};
use crate::catalog::{Switch, SwitchMode};
use crate::state::AppState;
use crate::store::{Collection, Expect};

fn scope(raw: &str) -> Result<Scope, ApiError> {
    raw.parse()
        .map_err(|e: tollgate_model::scope::ScopeError| ApiError::invalid("scope", e.to_string()))
}

/// Switch a scope to deny-all or downgrade-all.
#[utoipa::path(put, path = "/v1/emergency/{scope}", tag = "emergency",
    params(("scope" = String, Path, description = "A scope (team:a) or global")),
    request_body = Switch,
    responses((status = 200, body = SwitchView), (status = 400, body = ErrorBody)),
    security(("admin" = [])))]
pub async fn put(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    JsonBody(switch): JsonBody<Switch>,
) -> Result<Json<SwitchView>, ApiError> {
    let s = scope(&raw)?;
    match (switch.mode, switch.model.as_deref()) {
        (SwitchMode::DowngradeAll, Some(m)) if !m.trim().is_empty() => {}
        (SwitchMode::DowngradeAll, _) => {
            return Err(ApiError::invalid("model", "downgrade_all needs a model"));
        }
        (SwitchMode::DenyAll, Some(_)) => {
            return Err(ApiError::invalid("model", "deny_all takes no model"));
        }
        (SwitchMode::DenyAll, None) => {}
    }
    let key = s.to_string();
    let json = serde_json::to_string(&switch).map_err(|_| ApiError::Internal)?;
    let current = state.store.get_doc(Collection::Switches, &key).await?;
    let expect = current.map_or(Expect::Absent, |d| Expect::Version(d.version));
    state
        .store
        .put_doc(Collection::Switches, &key, &json, expect)
        .await?
        .map_err(|c| conflict(c, &format!("switch {key:?}")))?;
    state.catalog.invalidate();
    let detail = serde_json::to_value(&switch).unwrap_or_default();
    audit(&state, "emergency.set", &key, detail).await;
    switch_event(&state, &key, Some(&switch)).await;
    Ok(Json(SwitchView { scope: key, switch }))
}

/// Lift a scope's switch.
#[utoipa::path(delete, path = "/v1/emergency/{scope}", tag = "emergency",
    params(("scope" = String, Path, description = "A scope")),
    responses((status = 204, description = "Lifted"), (status = 404, body = ErrorBody)),
    security(("admin" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let key = scope(&raw)?.to_string();
    state
        .store
        .delete_doc(Collection::Switches, &key, Expect::Exists)
        .await?
        .map_err(|c| conflict(c, &format!("switch {key:?}")))?;
    state.catalog.invalidate();
    audit(&state, "emergency.clear", &key, serde_json::Value::Null).await;
    switch_event(&state, &key, None).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Raises the `emergency_switch` alert of an admin's change (logged, never failing the change).
async fn switch_event(state: &AppState, scope: &str, switch: Option<&Switch>) {
    let alert = crate::alerts::events::switch_alert(
        scope,
        switch.map(|s| (s.mode, s.model.clone())),
        None,
        "admin",
        state.now().timestamp_millis(),
    );
    if let Err(e) = crate::alerts::events::raise(state, alert).await {
        tracing::warn!(scope, error = %e, "emergency switch event not written");
    }
}

/// Every active switch.
#[utoipa::path(get, path = "/v1/emergency", tag = "emergency",
    responses((status = 200, body = [SwitchView])),
    security(("admin" = [])))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<SwitchView>>, ApiError> {
    let mut out = Vec::new();
    for (key, doc) in state.store.list_docs(Collection::Switches).await? {
        let switch = serde_json::from_str(&doc.json).map_err(|_| ApiError::Internal)?;
        out.push(SwitchView { scope: key, switch });
    }
    Ok(Json(out))
}
