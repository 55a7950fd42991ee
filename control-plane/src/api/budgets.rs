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
use crate::profiles::{self, BudgetDoc, Profiles, Resolved};
use crate::state::AppState;
use crate::store::{Collection, Expect, Versioned};

/// The body of a budget write, for the OpenAPI document: a plain budget or one naming a
/// profile (read by `BudgetDoc::from_value`, which tells them apart by the `profile` field).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // A schema only.
pub enum BudgetBody {
    /// Every setting written on the budget.
    Plain(BudgetSpec),
    /// A profile's settings, some overridden.
    Profiled(tollgate_model::profile::ProfiledBudgetSpec),
}

/// A request body as a budget document (plain, or naming a profile), resolved over the
/// current profiles; errors name the field.
async fn validate(
    state: &AppState,
    body: serde_json::Value,
) -> Result<(BudgetDoc, Resolved), ApiError> {
    let doc = BudgetDoc::from_value(body).map_err(|e| ApiError::InvalidJson {
        field: e.field,
        message: e.message,
    })?;
    let profiles = profiles::load(state.store.as_ref()).await?;
    let r = doc
        .resolve(&profiles)
        .map_err(|e| ApiError::invalid(e.field, e.message))?;
    if let Some(policy) = &r.budget.unknown_model {
        crate::unpriced::check_policy(policy, state.catalog.shipped())
            .map_err(|e| ApiError::invalid("unknown_model", e))?;
    }
    if r.budget.limit.is_some_and(|l| l.nanos() > MAX_LIMIT_NANOS) {
        return Err(ApiError::invalid(
            "limit_usd",
            "must be at most 9007199.254740991 USD per window",
        ));
    }
    Ok((doc, r))
}

/// The document stored for `doc`: a plain budget in its normalised form, a profiled one as
/// written (so it keeps inheriting what it does not override).
fn to_json(doc: &BudgetDoc, r: &Resolved) -> Result<String, ApiError> {
    match doc {
        BudgetDoc::Plain(_) => serde_json::to_string(&BudgetSpec::from(&r.budget)),
        BudgetDoc::Profiled(_) => doc.to_json(),
    }
    .map_err(|_| ApiError::Internal)
}

fn parse_doc(doc: &Versioned, profiles: &Profiles) -> Result<Resolved, ApiError> {
    profiles::resolve_json(&doc.json, profiles).map_err(|e| {
        tracing::error!(error = %e, "stored budget does not resolve");
        ApiError::Internal
    })
}

fn view(r: Resolved, version: u64, usage: Option<UsageView>) -> BudgetView {
    BudgetView {
        budget: BudgetSpec::from(&r.budget),
        version,
        usage,
        profile: r.profile,
    }
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

async fn load(state: &AppState, id: &str) -> Result<(Resolved, u64), ApiError> {
    let doc = state
        .store
        .get_doc(Collection::Budgets, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("budget {id:?}")))?;
    let profiles = profiles::load(state.store.as_ref()).await?;
    Ok((parse_doc(&doc, &profiles)?, doc.version))
}

/// Create a budget.
#[utoipa::path(post, path = "/v1/budgets", tag = "budgets",
    request_body(content = BudgetBody, description = "A budget: every setting written, or a `profile` and the settings it overrides"),
    responses((status = 201, body = BudgetView, description = "Created; ETag holds the version"),
        (status = 400, body = ErrorBody, description = "invalid_json / invalid_field"),
        (status = 409, body = ErrorBody, description = "already_exists")),
    security(("admin" = [])))]
pub async fn create(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Response, ApiError> {
    let (doc, r) = validate(&state, body).await?;
    let b = &r.budget;
    let version = state
        .store
        .put_doc(
            Collection::Budgets,
            &b.id,
            &to_json(&doc, &r)?,
            Expect::Absent,
        )
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
    let usage = Some(usage_of(&state, b).await?);
    Ok(with_etag(
        StatusCode::CREATED,
        version,
        view(r, version, usage),
    ))
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
    let profiles = profiles::load(state.store.as_ref()).await?;
    for (id, doc) in state.store.list_docs(Collection::Budgets).await? {
        if q.cursor.as_deref().is_some_and(|c| id.as_str() <= c) {
            continue;
        }
        let r = parse_doc(&doc, &profiles)?;
        if scope.as_ref().is_some_and(|s| !r.budget.scopes.contains(s)) {
            continue;
        }
        if items.len() == limit {
            next_cursor = items.last().map(|v: &BudgetView| v.budget.id.clone());
            break;
        }
        items.push(view(r, doc.version, None));
    }
    Ok(Json(BudgetPage { items, next_cursor }))
}

/// A budget with its current window's usage; for a budget naming a profile, the effective
/// settings and where each came from.
#[utoipa::path(get, path = "/v1/budgets/{id}", tag = "budgets",
    params(("id" = String, Path, description = "Budget id")),
    responses((status = 200, body = BudgetView), (status = 404, body = ErrorBody)),
    security(("admin" = [])))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (r, version) = load(&state, &id).await?;
    let usage = Some(usage_of(&state, &r.budget).await?);
    Ok(with_etag(StatusCode::OK, version, view(r, version, usage)))
}

/// Replace a budget; with `If-Match`, only if it is still at that version.
#[utoipa::path(put, path = "/v1/budgets/{id}", tag = "budgets",
    params(("id" = String, Path, description = "Budget id"),
        ("If-Match" = Option<String>, Header, description = "ETag from a read")),
    request_body(content = BudgetBody, description = "The budget (same id), plain or naming a profile"),
    responses((status = 200, body = BudgetView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 412, body = ErrorBody, description = "precondition_failed")),
    security(("admin" = [])))]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Response, ApiError> {
    let (doc, r) = validate(&state, body).await?;
    if doc.id() != id {
        return Err(ApiError::invalid("id", "must equal the id in the path"));
    }
    let expect = if_match(&headers)?;
    let version = state
        .store
        .put_doc(Collection::Budgets, &id, &to_json(&doc, &r)?, expect)
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
    let usage = Some(usage_of(&state, &r.budget).await?);
    Ok(with_etag(StatusCode::OK, version, view(r, version, usage)))
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
    super::delete_doc(
        &state,
        Collection::Budgets,
        &id,
        &headers,
        "budget",
        "budget.delete",
    )
    .await?;
    state.catalog.invalidate();
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
    let (r, _) = load(&state, &id).await?;
    let b = r.budget;
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
    let (r, _) = load(&state, &id).await?;
    let (line, _) = line_for(&r.budget, state.now());
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
    let profiles = profiles::load(state.store.as_ref()).await?;
    for (_, doc) in state.store.list_docs(Collection::Budgets).await? {
        let b = parse_doc(&doc, &profiles)?.budget;
        if b.scopes.contains(&scope) {
            out.push(usage_of(&state, &b).await?);
        }
    }
    Ok(Json(out))
}
