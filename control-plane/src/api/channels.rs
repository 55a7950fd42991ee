//! Alert channels: `POST /v1/channels`, `GET /v1/channels`, `GET|PUT|DELETE
//! /v1/channels/{id}`, and `POST /v1/channels/{id}/test` (one test alert sent now). Answers
//! are [`ChannelView`]s: secrets are written, never read back. Changes and tests are audited
//! (without the secrets).

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, ErrorBody};
use super::json::JsonBody;
use super::path::Path;
use super::{audit, conflict, if_match};
use crate::alerts::channel::{ChannelSpec, ChannelView, StoredChannel};
use crate::alerts::record::Attempt;
use crate::alerts::send::Senders;
use crate::alerts::worker::wall_secs;
use crate::alerts::{Alert, AlertKind, Severity};
use crate::state::AppState;
use crate::store::{Collection, Expect};

fn with_etag(status: StatusCode, view: ChannelView) -> Response {
    let version = view.version;
    let mut resp = (status, Json(view)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

fn validated(spec: &ChannelSpec) -> Result<(), ApiError> {
    spec.validate()
        .map_err(|e| ApiError::invalid(e.field, e.message))
}

fn parse(json: &str) -> Result<StoredChannel, ApiError> {
    serde_json::from_str(json).map_err(|e| {
        tracing::error!(error = %e, "stored channel unreadable");
        ApiError::Internal
    })
}

async fn write(state: &AppState, stored: &StoredChannel, expect: Expect) -> Result<u64, ApiError> {
    let json = serde_json::to_string(stored).map_err(|_| ApiError::Internal)?;
    let id = &stored.spec.id;
    state
        .store
        .put_doc(Collection::Channels, id, &json, expect)
        .await?
        .map_err(|c| conflict(c, &format!("channel {id:?}")))
}

/// Create an alert channel.
#[utoipa::path(post, path = "/v1/channels", tag = "alerts",
    request_body(content = ChannelSpec, description = "The channel, with its secrets"),
    responses((status = 201, body = ChannelView, description = "Created (secrets left out); ETag holds the version"),
        (status = 400, body = ErrorBody, description = "invalid_json / invalid_field"),
        (status = 409, body = ErrorBody, description = "already_exists")),
    security(("admin" = [])))]
pub async fn create(
    State(state): State<AppState>,
    JsonBody(spec): JsonBody<ChannelSpec>,
) -> Result<Response, ApiError> {
    validated(&spec)?;
    let stored = StoredChannel {
        spec,
        created_at_ms: state.now().timestamp_millis(),
    };
    let version = write(&state, &stored, Expect::Absent).await?;
    let view = ChannelView::new(&stored, version);
    audit(
        &state,
        "channel.create",
        &view.id,
        serde_json::json!({ "version": version }),
    )
    .await;
    Ok(with_etag(StatusCode::CREATED, view))
}

/// List alert channels, by id.
#[utoipa::path(get, path = "/v1/channels", tag = "alerts",
    responses((status = 200, body = [ChannelView])), security(("admin" = [])))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<ChannelView>>, ApiError> {
    let mut out = Vec::new();
    for (_, doc) in state.store.list_docs(Collection::Channels).await? {
        out.push(ChannelView::new(&parse(&doc.json)?, doc.version));
    }
    Ok(Json(out))
}

/// One alert channel.
#[utoipa::path(get, path = "/v1/channels/{id}", tag = "alerts",
    params(("id" = String, Path, description = "Channel id")),
    responses((status = 200, body = ChannelView), (status = 404, body = ErrorBody)),
    security(("admin" = [])))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let doc = state
        .store
        .get_doc(Collection::Channels, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("channel {id:?}")))?;
    Ok(with_etag(
        StatusCode::OK,
        ChannelView::new(&parse(&doc.json)?, doc.version),
    ))
}

/// Replace an alert channel (secrets included: what is not sent is not kept).
#[utoipa::path(put, path = "/v1/channels/{id}", tag = "alerts",
    params(("id" = String, Path, description = "Channel id"),
        ("If-Match" = Option<String>, Header, description = "ETag from a read")),
    request_body(content = ChannelSpec, description = "The whole channel"),
    responses((status = 200, body = ChannelView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 412, body = ErrorBody, description = "precondition_failed")),
    security(("admin" = [])))]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(spec): JsonBody<ChannelSpec>,
) -> Result<Response, ApiError> {
    if spec.id != id {
        return Err(ApiError::invalid("id", "must equal the id in the path"));
    }
    let expect = if_match(&headers)?;
    validated(&spec)?;
    // The creation time stays: it bounds which past alerts a sweep sends here.
    let created_at_ms = match state.store.get_doc(Collection::Channels, &id).await? {
        Some(doc) => parse(&doc.json)?.created_at_ms,
        None => return Err(ApiError::NotFound(format!("channel {id:?}"))),
    };
    let stored = StoredChannel {
        spec,
        created_at_ms,
    };
    let version = write(&state, &stored, expect).await?;
    audit(
        &state,
        "channel.update",
        &id,
        serde_json::json!({ "version": version }),
    )
    .await;
    Ok(with_etag(
        StatusCode::OK,
        ChannelView::new(&stored, version),
    ))
}

/// Delete an alert channel (deliveries in flight to it finish their current attempt).
#[utoipa::path(delete, path = "/v1/channels/{id}", tag = "alerts",
    params(("id" = String, Path, description = "Channel id"),
        ("If-Match" = Option<String>, Header, description = "ETag from a read")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody),
        (status = 412, body = ErrorBody)),
    security(("admin" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    super::delete_doc(
        &state,
        Collection::Channels,
        &id,
        &headers,
        "channel",
        "channel.delete",
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Send one test alert (`kind` `channel_test`, severity `info`, id
/// `test.<channel>.<Unix ms>`) to a channel now, whatever its `min_severity` and `enabled`,
/// and answer how the one attempt went. Nothing is stored and nothing is retried: a failed
/// test is `200` with `ok: false` and the receiver's status or the error.
#[utoipa::path(post, path = "/v1/channels/{id}/test", tag = "alerts",
    params(("id" = String, Path, description = "Channel id")),
    responses((status = 200, body = Attempt, description = "The attempt: `ok`, the receiver's `status`, the `error`, `duration_ms`"),
        (status = 404, body = ErrorBody)),
    security(("admin" = [])))]
pub async fn test(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Attempt>, ApiError> {
    let doc = state
        .store
        .get_doc(Collection::Channels, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("channel {id:?}")))?;
    let stored = parse(&doc.json)?;
    let senders =
        Senders::new(Duration::from_millis(state.alert_settings.timeout_ms)).map_err(|e| {
            tracing::error!(error = %e, "alert senders not built");
            ApiError::Internal
        })?;
    let at_ms = state.now().timestamp_millis();
    let alert = Alert::new(
        format!("test.{id}.{at_ms}"),
        AlertKind::ChannelTest,
        Severity::Info,
        at_ms,
    );
    let started = Instant::now();
    let result = senders
        .send(&stored.spec.target, &alert, 1, wall_secs())
        .await;
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let attempt = match result {
        Ok(status) => Attempt {
            at_ms,
            ok: true,
            status,
            error: None,
            duration_ms,
        },
        Err(e) => Attempt {
            at_ms,
            ok: false,
            status: e.status(),
            error: Some(e.to_string()),
            duration_ms,
        },
    };
    audit(
        &state,
        "channel.test",
        &id,
        serde_json::json!({ "ok": attempt.ok, "status": attempt.status }),
    )
    .await;
    Ok(Json(attempt))
}
