//! Budget profiles under `/v1/profiles`: list, get (with the budgets that use it), put
//! (create, replace, or change a shipped tier) and delete (a changed shipped tier goes back
//! to as shipped). A change reaches every budget that names the profile at the next catalog
//! load (at once on this replica); one that would leave such a budget invalid is refused.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use tollgate_model::profile::ProfileSpec;

use super::error::{ApiError, ErrorBody};
use super::json::JsonBody;
use super::{audit, conflict, if_match};
use crate::profiles::{self, LoadedProfile, ProfileOrigin, Profiles};
use crate::state::AppState;
use crate::store::{Collection, Expect};

/// A profile with where it comes from and who uses it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProfileView {
    /// The id.
    pub id: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The settings budgets inherit.
    pub settings: tollgate_model::profile::Settings,
    /// `shipped`, `override` (a shipped tier changed) or `custom`.
    pub origin: ProfileOrigin,
    /// The stored version (send in `If-Match`); absent for a tier as shipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Ids of the budgets that name it (on single reads and writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budgets: Option<Vec<String>>,
}

fn view(p: &LoadedProfile, budgets: Option<Vec<String>>) -> ProfileView {
    ProfileView {
        id: p.spec.id.clone(),
        description: p.spec.description.clone(),
        settings: p.spec.settings.clone(),
        origin: p.origin,
        version: p.version,
        budgets,
    }
}

/// Checks every budget naming `id` against `profiles` (which hold the profile's new form).
async fn check_users(
    state: &AppState,
    id: &str,
    profiles: &Profiles,
) -> Result<Vec<String>, ApiError> {
    let mut ids = Vec::new();
    for (budget_id, doc) in profiles::users_of(state.store.as_ref(), id).await? {
        doc.resolve(profiles).map_err(|e| {
            ApiError::invalid(
                format!("settings.{}", e.field),
                format!("budget {budget_id:?} would become invalid: {}", e.message),
            )
        })?;
        ids.push(budget_id);
    }
    Ok(ids)
}

/// Every profile: the shipped tiers (as shipped or changed) and custom ones, by id.
#[utoipa::path(get, path = "/v1/profiles", tag = "profiles",
    responses((status = 200, body = [ProfileView])),
    security(("admin" = [])))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<ProfileView>>, ApiError> {
    let all = profiles::load(state.store.as_ref()).await?;
    Ok(Json(all.values().map(|p| view(p, None)).collect()))
}

/// One profile and the budgets that name it.
#[utoipa::path(get, path = "/v1/profiles/{id}", tag = "profiles",
    params(("id" = String, Path, description = "Profile id")),
    responses((status = 200, body = ProfileView), (status = 404, body = ErrorBody)),
    security(("admin" = [])))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ProfileView>, ApiError> {
    let all = profiles::load(state.store.as_ref()).await?;
    let p = all
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("profile {id:?}")))?;
    let users = profiles::users_of(state.store.as_ref(), &id).await?;
    Ok(Json(view(
        p,
        Some(users.into_iter().map(|(b, _)| b).collect()),
    )))
}

/// Create or replace a profile (a shipped tier's id changes that tier). Refused when a
/// budget naming it would no longer validate.
#[utoipa::path(put, path = "/v1/profiles/{id}", tag = "profiles",
    params(("id" = String, Path, description = "Profile id; must equal the body's id"),
        ("If-Match" = Option<String>, Header, description = "Version from a read")),
    request_body(content = ProfileSpec, description = "`id`, optional `description`, `settings`"),
    responses((status = 200, body = ProfileView), (status = 400, body = ErrorBody),
        (status = 412, body = ErrorBody)),
    security(("admin" = [])))]
pub async fn put(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(spec): JsonBody<ProfileSpec>,
) -> Result<Json<ProfileView>, ApiError> {
    if spec.id != id {
        return Err(ApiError::invalid("id", "must equal the id in the path"));
    }
    spec.validate().map_err(|e| {
        let field = if matches!(e.field, "id" | "description") {
            e.field.to_owned()
        } else {
            format!("settings.{}", e.field)
        };
        ApiError::invalid(field, e.reason)
    })?;
    if let Some(policy) = &spec.settings.unknown_model {
        crate::unpriced::check_policy(policy, state.catalog.shipped())
            .map_err(|e| ApiError::invalid("settings.unknown_model", e))?;
    }
    let current = state.store.get_doc(Collection::Profiles, &id).await?;
    let expect = match (headers.contains_key(axum::http::header::IF_MATCH), &current) {
        (true, _) => if_match(&headers)?,
        (false, Some(d)) => Expect::Version(d.version),
        (false, None) => Expect::Absent,
    };
    let mut all = profiles::load(state.store.as_ref()).await?;
    let origin = match all.get(&id).map(|p| p.origin) {
        Some(ProfileOrigin::Shipped | ProfileOrigin::Override) => ProfileOrigin::Override,
        _ => ProfileOrigin::Custom,
    };
    all.insert(
        id.clone(),
        LoadedProfile {
            spec: spec.clone(),
            origin,
            version: None,
        },
    );
    let users = check_users(&state, &id, &all).await?;
    let json = serde_json::to_string(&spec).map_err(|_| ApiError::Internal)?;
    let version = state
        .store
        .put_doc(Collection::Profiles, &id, &json, expect)
        .await?
        .map_err(|c| conflict(c, &format!("profile {id:?}")))?;
    state.catalog.invalidate();
    audit(
        &state,
        "profile.put",
        &id,
        serde_json::json!({ "version": version, "budgets": users }),
    )
    .await;
    let loaded = LoadedProfile {
        spec,
        origin,
        version: Some(version),
    };
    Ok(Json(view(&loaded, Some(users))))
}

/// Delete a custom profile no budget names, or put a changed shipped tier back as shipped.
#[utoipa::path(delete, path = "/v1/profiles/{id}", tag = "profiles",
    params(("id" = String, Path, description = "Profile id"),
        ("If-Match" = Option<String>, Header, description = "Version from a read")),
    responses((status = 204, description = "Deleted (or back to as shipped)"),
        (status = 400, body = ErrorBody, description = "A tier as shipped, or budgets still name it"),
        (status = 404, body = ErrorBody), (status = 412, body = ErrorBody)),
    security(("admin" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let mut all = profiles::load(state.store.as_ref()).await?;
    match all.get(&id).map(|p| p.origin) {
        None => return Err(ApiError::NotFound(format!("profile {id:?}"))),
        Some(ProfileOrigin::Shipped) => {
            return Err(ApiError::invalid(
                "id",
                "a shipped tier cannot be deleted; change it with PUT instead",
            ));
        }
        Some(ProfileOrigin::Override) => {
            // Back to as shipped: its budgets must still validate over the shipped settings.
            if let Some(shipped) = tollgate_model::profile::shipped()
                .into_iter()
                .find(|p| p.id == id)
            {
                all.insert(
                    id.clone(),
                    LoadedProfile {
                        spec: shipped,
                        origin: ProfileOrigin::Shipped,
                        version: None,
                    },
                );
            }
            check_users(&state, &id, &all).await?;
        }
        Some(ProfileOrigin::Custom) => {
            let users = profiles::users_of(state.store.as_ref(), &id).await?;
            if !users.is_empty() {
                let ids: Vec<String> = users.into_iter().map(|(b, _)| b).collect();
                return Err(ApiError::invalid(
                    "id",
                    format!("budgets {ids:?} name this profile: change or delete them first"),
                ));
            }
        }
    }
    super::delete_doc(
        &state,
        Collection::Profiles,
        &id,
        &headers,
        "profile",
        "profile.delete",
    )
    .await?;
    state.catalog.invalidate();
    Ok(StatusCode::NO_CONTENT)
}
