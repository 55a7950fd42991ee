//! Budget profiles in the service: the shipped tiers with the admin's changes and custom
//! profiles over them, and how a stored budget document becomes the budget admission uses.
//!
//! A budget document either is a plain `BudgetSpec` or names a profile (it has a `profile`
//! field: a `ProfiledBudgetSpec`). The second kind is merged over its profile each time the
//! budgets are loaded, so a changed profile changes every budget that names it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tollgate_model::budget::{Budget, BudgetSpec};
use tollgate_model::profile::{self, ProfileSpec, ProfiledBudgetSpec, SettingSource};

use crate::store::{Collection, Store, StoreError, Versioned};

/// Where a profile comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProfileOrigin {
    /// A shipped tier as shipped.
    Shipped,
    /// A shipped tier an admin changed (deleting it restores the shipped one).
    Override,
    /// A profile an admin created.
    Custom,
}

/// One profile as the service sees it.
#[derive(Debug, Clone)]
pub struct LoadedProfile {
    /// The profile.
    pub spec: ProfileSpec,
    /// Where it comes from.
    pub origin: ProfileOrigin,
    /// The stored document's version (`None` for a shipped tier never changed).
    pub version: Option<u64>,
}

/// Every profile, by id.
pub type Profiles = BTreeMap<String, LoadedProfile>;

/// The shipped tiers with the stored profiles over them. A stored profile that no longer
/// reads is skipped with an error log (its budgets then fail to resolve, loudly).
pub async fn load(store: &dyn Store) -> Result<Profiles, StoreError> {
    Ok(from_docs(&store.list_docs(Collection::Profiles).await?))
}

/// The shipped tiers with `docs` (the stored profiles, as `list_docs` gives them) over them.
pub fn from_docs(docs: &[(String, Versioned)]) -> Profiles {
    let mut out: Profiles = profile::shipped()
        .into_iter()
        .map(|spec| {
            let loaded = LoadedProfile {
                spec,
                origin: ProfileOrigin::Shipped,
                version: None,
            };
            (loaded.spec.id.clone(), loaded)
        })
        .collect();
    for (id, doc) in docs {
        match serde_json::from_str::<ProfileSpec>(&doc.json) {
            Ok(spec) => {
                let origin = if out.contains_key(id) {
                    ProfileOrigin::Override
                } else {
                    ProfileOrigin::Custom
                };
                out.insert(
                    id.clone(),
                    LoadedProfile {
                        spec,
                        origin,
                        version: Some(doc.version),
                    },
                );
            }
            Err(e) => tracing::error!(profile = %id, error = %e, "stored profile skipped"),
        }
    }
    out
}

/// A budget document as written.
#[derive(Debug, Clone)]
pub enum BudgetDoc {
    /// Every setting written on the budget.
    Plain(BudgetSpec),
    /// Settings from a profile, some overridden.
    Profiled(ProfiledBudgetSpec),
}

/// How a budget uses its profile (shown by `GET /v1/budgets/{id}`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProfileUse {
    /// The profile's id.
    pub id: String,
    /// Per setting: `budget` (overridden), `profile` (inherited) or `default`.
    pub settings_from: BTreeMap<String, SettingSource>,
    /// The budget as written: selector, profile and overrides (send this back to update it;
    /// sending the effective `budget` instead would turn every setting into an override).
    pub written: ProfiledBudgetSpec,
}

/// A budget document resolved: the effective budget, and its profile use if any.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The budget admission uses.
    pub budget: Budget,
    /// How it uses a profile.
    pub profile: Option<ProfileUse>,
}

/// Why a budget document does not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ResolveError {
    /// The field at fault.
    pub field: String,
    /// Why.
    pub message: String,
}

impl BudgetDoc {
    /// Reads a budget from JSON (a request body or a stored document): a `profile` field
    /// makes it a profiled budget. Errors name the JSON path.
    pub fn from_value(value: serde_json::Value) -> Result<BudgetDoc, ResolveError> {
        let profiled = value.get("profile").is_some();
        let fail = |e: serde_path_to_error::Error<serde_json::Error>| ResolveError {
            field: e.path().to_string(),
            message: e.inner().to_string(),
        };
        if profiled {
            serde_path_to_error::deserialize(value)
                .map(BudgetDoc::Profiled)
                .map_err(fail)
        } else {
            serde_path_to_error::deserialize(value)
                .map(BudgetDoc::Plain)
                .map_err(fail)
        }
    }

    /// The document's id.
    pub fn id(&self) -> &str {
        match self {
            BudgetDoc::Plain(s) => &s.id,
            BudgetDoc::Profiled(p) => &p.id,
        }
    }

    /// The profile it names.
    pub fn profile_id(&self) -> Option<&str> {
        match self {
            BudgetDoc::Plain(_) => None,
            BudgetDoc::Profiled(p) => Some(&p.profile),
        }
    }

    /// The document to store.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        match self {
            BudgetDoc::Plain(s) => serde_json::to_string(s),
            BudgetDoc::Profiled(p) => serde_json::to_string(p),
        }
    }

    /// The effective budget over `profiles`; errors name the field (`profile` when the
    /// profile does not exist).
    pub fn resolve(&self, profiles: &Profiles) -> Result<Resolved, ResolveError> {
        let invalid = |e: tollgate_model::budget::BudgetError| ResolveError {
            field: e.field.to_owned(),
            message: e.reason,
        };
        match self {
            BudgetDoc::Plain(spec) => Ok(Resolved {
                budget: Budget::try_from(spec.clone()).map_err(invalid)?,
                profile: None,
            }),
            BudgetDoc::Profiled(p) => {
                let found = profiles.get(&p.profile).ok_or_else(|| ResolveError {
                    field: "profile".into(),
                    message: format!("no profile {:?}", p.profile),
                })?;
                let (spec, from) = profile::resolve(p, &found.spec.settings).map_err(invalid)?;
                Ok(Resolved {
                    budget: Budget::try_from(spec).map_err(invalid)?,
                    profile: Some(ProfileUse {
                        id: p.profile.clone(),
                        settings_from: from.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                        written: p.clone(),
                    }),
                })
            }
        }
    }
}

/// Reads and resolves a stored budget document.
pub fn resolve_json(json: &str, profiles: &Profiles) -> Result<Resolved, ResolveError> {
    let value = serde_json::from_str(json).map_err(|e| ResolveError {
        field: ".".into(),
        message: e.to_string(),
    })?;
    BudgetDoc::from_value(value)?.resolve(profiles)
}

/// Ids of the stored budgets that name `profile_id`, with their documents.
pub async fn users_of(
    store: &dyn Store,
    profile_id: &str,
) -> Result<Vec<(String, BudgetDoc)>, StoreError> {
    let mut out = Vec::new();
    for (id, doc) in store.list_docs(Collection::Budgets).await? {
        let parsed = serde_json::from_str(&doc.json)
            .ok()
            .and_then(|v| BudgetDoc::from_value(v).ok());
        if let Some(d) = parsed
            && d.profile_id() == Some(profile_id)
        {
            out.push((id, d));
        }
    }
    Ok(out)
}
