//! Budgets under `/v1/budgets`: create, list, get (with the current window's usage), update
//! with `If-Match`, delete, reset the current window, reopen a suspended budget; and
//! `/v1/usage/{scope}`.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tollgate_model::budget::{Budget, BudgetSpec};
use tollgate_model::scope::Scope;

use super::error::{ApiError, ErrorBody};
use super::json::JsonBody;
use super::path::Path;
use super::views::{BudgetPage, BudgetView, ReopenView, UsageView};
use super::{audit, conflict, if_match};
use crate::admission::{MAX_LIMIT_NANOS, line_for};
use crate::state::AppState;
use crate::store::{Collection, Expect, Versioned};

fn validate(spec: BudgetSpec) -> Result<Budget, ApiError> {
    let b = Budget::try_from(spec).map_err(|e| ApiError::invalid(e.field, e.reason))?;
    if b.limit.is_some_and(|l| l.nanos() > MAX_LIMIT_NANOS) {
        return Err(ApiError::invalid(
            "limit_usd",
            "must be at most 9007199.254740991 USD per window",
        ));
    }
    Ok(b)
}

fn to_json(b: &Budget) -> Result<String, ApiError> {
    serde_json::to_string(&BudgetSpec::from(b)).map_err(|_| ApiError::Internal)
}

fn parse_doc(doc: &Versioned) -> Result<Budget, ApiError> {
    serde_json::from_str::<BudgetSpec>(&doc.json)
        .ok()
        .and_then(|s| Budget::try_from(s).ok())
        .ok_or(ApiError::Internal)
}

fn with_etag(status: StatusCode, version: u64, view: BudgetView) -> Response {
    let mut resp = (status, Json(view)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

async fn usage_of(state: &AppState, b: &Budget) -> Result<UsageView, ApiError> {
    let (line, window) = line_for(b, state.now());
    let c = state.store.counters(&line).await?;
    let suspended = b.suspend_on_exceed && state.store.is_suspended(&line).await?;
    Ok(UsageView::new(b, &window, &c, suspended))
}

async fn load(state: &AppState, id: &str) -> Result<(Budget, u64), ApiError> {
    let doc = state
        .store
        .get_doc(Collection::Budgets, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("budget {id:?}")))?;
    Ok((parse_doc(&doc)?, doc.version))
}

/// Create a budget.
#[utoipa::path(post, path = "/v1/budgets", tag = "budgets",
    request_body(content = BudgetSpec, description = "The budget"),
    responses((status = 201, body = BudgetView, description = "Created; ETag holds the version"),
        (status = 400, body = ErrorBody, description = "invalid_json / invalid_field"),
        (status = 409, body = ErrorBody, description = "already_exists")),
    security(("admin" = [])))]
pub async fn create(
    State(state): State<AppState>,
    JsonBody(spec): JsonBody<BudgetSpec>,
) -> Result<Response, ApiError> {
    let b = validate(spec)?;
    let version = state
        .store
        .put_doc(Collection::Budgets, &b.id, &to_json(&b)?, Expect::Absent)
        .await?
        .map_err(|c| conflict(c, &format!("budget {:?}", b.id)))?;
    state.catalog.invalidate();
    audit(
        &state,
        "budget.create",
        &b.id,
        serde_json::json!({ "version": version }),
    )
    .await;
    let usage = Some(usage_of(&state, &b).await?);
    let view = BudgetView {
        budget: BudgetSpec::from(&b),
        version,
        usage,
    };
    Ok(with_etag(StatusCode::CREATED, version, view))
}

/// Query of `GET /v1/budgets`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only budgets whose selector includes this scope (`team:a`).
    scope: Option<String>,
    /// Page size, 1-500 (default 50).
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// List budgets, by id, optionally those with a given scope.
#[utoipa::path(get, path = "/v1/budgets", tag = "budgets", params(ListQuery),
    responses((status = 200, body = BudgetPage), (status = 400, body = ErrorBody)),
    security(("admin" = [])))]
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<BudgetPage>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let scope = q
        .scope
        .as_deref()
        .map(str::parse::<Scope>)
        .transpose()
        .map_err(|e| ApiError::invalid("scope", e.to_string()))?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be 1..=500"));
    }
    let mut items = Vec::new();
    let mut next_cursor = None;
    for (id, doc) in state.store.list_docs(Collection::Budgets).await? {
        if q.cursor.as_deref().is_some_and(|c| id.as_str() <= c) {
            continue;
        }
        let b = parse_doc(&doc)?;
        if scope.as_ref().is_some_and(|s| !b.scopes.contains(s)) {
            continue;
        }
        if items.len() == limit {
            next_cursor = items.last().map(|v: &BudgetView| v.budget.id.clone());
            break;
        }
        items.push(BudgetView {
            budget: BudgetSpec::from(&b),
            version: doc.version,
            usage: None,
        });
    }
    Ok(Json(BudgetPage { items, next_cursor }))
}

/// A budget with its current window's usage.
#[utoipa::path(get, path = "/v1/budgets/{id}", tag = "budgets",
    params(("id" = String, Path, description = "Budget id")),
    responses((status = 200, body = BudgetView), (status = 404, body = ErrorBody)),
    security(("admin" = [])))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (b, version) = load(&state, &id).await?;
    let view = BudgetView {
        budget: BudgetSpec::from(&b),
        version,
        usage: Some(usage_of(&state, &b).await?),
    };
    Ok(with_etag(StatusCode::OK, version, view))
}

/// Replace a budget; with `If-Match`, only if it is still at that version.
#[utoipa::path(put, path = "/v1/budgets/{id}", tag = "budgets",
    params(("id" = String, Path, description = "Budget id"),
        ("If-Match" = Option<String>, Header, description = "ETag from a read")),
    request_body(content = BudgetSpec, description = "The budget (same id)"),
    responses((status = 200, body = BudgetView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 412, body = ErrorBody, description = "precondition_failed")),
    security(("admin" = [])))]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(spec): JsonBody<BudgetSpec>,
) -> Result<Response, ApiError> {
    if spec.id != id {
        return Err(ApiError::invalid("id", "must equal the id in the path"));
    }
    let expect = if_match(&headers)?;
    let b = validate(spec)?;
    let version = state
        .store
        .put_doc(Collection::Budgets, &id, &to_json(&b)?, expect)
        .await?
        .map_err(|c| conflict(c, &format!("budget {id:?}")))?;
    state.catalog.invalidate();
    audit(
        &state,
        "budget.update",
        &id,
        serde_json::json!({ "version": version }),
    )
    .await;
    let view = BudgetView {
        budget: BudgetSpec::from(&b),
        version,
        usage: Some(usage_of(&state, &b).await?),
    };
    Ok(with_etag(StatusCode::OK, version, view))
}

/// Delete a budget (its counters expire on their own).
#[utoipa::path(delete, path = "/v1/budgets/{id}", tag = "budgets",
    params(("id" = String, Path, description = "Budget id"),
        ("If-Match" = Option<String>, Header, description = "ETag from a read")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody),
        (status = 412, body = ErrorBody)),
    security(("admin" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let expect = if_match(&headers)?;
    state
        .store
        .delete_doc(Collection::Budgets, &id, expect)
        .await?
        .map_err(|c| conflict(c, &format!("budget {id:?}")))?;
    state.catalog.invalidate();
    audit(&state, "budget.delete", &id, serde_json::Value::Null).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Zero the current window's counters (audited).
#[utoipa::path(post, path = "/v1/budgets/{id}/reset", tag = "budgets",
    params(("id" = String, Path, description = "Budget id")),
    responses((status = 200, body = UsageView), (status = 404, body = ErrorBody)),
    security(("admin" = [])))]
pub async fn reset(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<UsageView>, ApiError> {
    let (b, _) = load(&state, &id).await?;
    let (line, window) = line_for(&b, state.now());
    let before = state.store.counters(&line).await?;
    state.store.reset_window(&line).await?;
    let detail = serde_json::json!({
        "window_index": window.index,
        "spent_nanos_before": before.spent_nanos,
        "reserved_nanos_before": before.reserved_nanos,
    });
    audit(&state, "budget.reset", &id, detail).await;
    Ok(Json(usage_of(&state, &b).await?))
}

/// Reopen a budget closed by `suspend_on_exceed` (audited).
#[utoipa::path(post, path = "/v1/budgets/{id}/reopen", tag = "budgets",
    params(("id" = String, Path, description = "Budget id")),
    responses((status = 200, body = ReopenView), (status = 404, body = ErrorBody)),
    security(("admin" = [])))]
pub async fn reopen(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ReopenView>, ApiError> {
    let (b, _) = load(&state, &id).await?;
    let (line, _) = line_for(&b, state.now());
    let reopened = state.store.reopen(&line).await?;
    audit(
        &state,
        "budget.reopen",
        &id,
        serde_json::json!({ "was_suspended": reopened }),
    )
    .await;
    Ok(Json(ReopenView { reopened }))
}

/// Current usage of every budget whose selector includes `scope`.
#[utoipa::path(get, path = "/v1/usage/{scope}", tag = "budgets",
    params(("scope" = String, Path, description = "A scope, e.g. team:a")),
    responses((status = 200, body = [UsageView]), (status = 400, body = ErrorBody)),
    security(("admin" = [])))]
pub async fn usage(
    State(state): State<AppState>,
    Path(scope): Path<String>,
) -> Result<Json<Vec<UsageView>>, ApiError> {
    let scope: Scope = scope
        .parse()
        .map_err(|e: tollgate_model::scope::ScopeError| {
            ApiError::invalid("scope", e.to_string())
        })?;
    let mut out = Vec::new();
    for (_, doc) in state.store.list_docs(Collection::Budgets).await? {
        let b = parse_doc(&doc)?;
        if b.scopes.contains(&scope) {
            out.push(usage_of(&state, &b).await?);
        }
    }
    Ok(Json(out))
}
