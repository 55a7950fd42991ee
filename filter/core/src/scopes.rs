//! Who a request is attributed to: its scopes, resolved from configured sources.
//!
//! Sources are tried in order and each adds at most one scope: a request header
//! (`x-tollgate-team`), the caller's API key (only ever as a SHA-256 prefix, never the key),
//! an Envoy property (JWT claims that `jwt_authn` put in dynamic metadata, the route name), or a
//! fixed value (a static tag). A request that resolves to no scope at all follows
//! `when_none`: a default scope, or a refusal.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tollgate_model::{Scope, ScopeKind};

/// Hex digits of the key hash kept in `key:` scopes (64 bits: unique per org in practice,
/// and useless for recovering the key).
const KEY_HASH_HEX_LEN: usize = 16;

/// Headers that carry a provider API key, in the order they are looked at.
const API_KEY_HEADERS: [&str; 4] = ["authorization", "x-api-key", "x-goog-api-key", "api-key"];

/// Where one scope comes from (config DTO).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeSourceDto {
    /// The scope kind it yields (`team`, `user`, `key`…; not `global`).
    pub kind: ScopeKind,
    /// Take the value from this request header.
    #[serde(default)]
    pub header: Option<String>,
    /// Take the value from the caller's API key, hashed.
    #[serde(default)]
    pub api_key: bool,
    /// Take the value from this Envoy property path (`["metadata", "filter_metadata",
    /// "envoy.filters.http.jwt_authn", "jwt_payload", "org"]`, `["xds", "route_name"]`).
    #[serde(default)]
    pub property: Option<Vec<String>>,
    /// A fixed value.
    #[serde(default)]
    pub value: Option<String>,
}

/// What to do with a request no source gives a scope to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum WhenNoneDto {
    /// Attribute it to `global` only.
    #[default]
    Global,
    /// Attribute it to this scope (`team:unassigned`).
    Default(String),
    /// Refuse it (403).
    Deny,
}

/// The `scopes` section of the plugin config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeConfigDto {
    /// Sources, in order.
    #[serde(default)]
    pub sources: Vec<ScopeSourceDto>,
    /// Requests with no scope.
    #[serde(default)]
    pub when_none: WhenNoneDto,
}

/// A scope config that cannot work; `field` is its path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ScopeConfigError {
    /// JSON path of the field.
    pub field: String,
    /// Why.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Header(String),
    ApiKey,
    Property(Vec<String>),
    Fixed(Scope),
}

/// What the resolver asks the host about the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// A request header (lower-case name).
    Header(&'a str),
    /// An Envoy property path.
    Property(&'a [String]),
}

/// The outcome of resolving one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// These scopes (never empty: `global` stands in when nothing else applies).
    Scopes(Vec<Scope>),
    /// `when_none` is `deny` and no source applied.
    Deny,
}

/// Validated scope sources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeResolver {
    sources: Vec<(ScopeKind, Source)>,
    when_none: Option<Option<Scope>>, // None = deny; Some(None) = global; Some(Some(s)) = default
}

impl TryFrom<ScopeConfigDto> for ScopeResolver {
    type Error = ScopeConfigError;

    fn try_from(dto: ScopeConfigDto) -> Result<ScopeResolver, ScopeConfigError> {
        let mut sources = Vec::with_capacity(dto.sources.len());
        for (i, s) in dto.sources.into_iter().enumerate() {
            let err = |reason: &str| ScopeConfigError {
                field: format!("scopes.sources[{i}]"),
                reason: reason.to_owned(),
            };
            if s.kind == ScopeKind::Global {
                return Err(err("kind \"global\" needs no source"));
            }
            let given = [
                s.header.is_some(),
                s.api_key,
                s.property.is_some(),
                s.value.is_some(),
            ];
            if given.iter().filter(|g| **g).count() != 1 {
                return Err(err("give exactly one of header, api_key, property, value"));
            }
            let source = if let Some(h) = s.header {
                if h.is_empty() {
                    return Err(err("header must be non-empty"));
                }
                Source::Header(h.to_ascii_lowercase())
            } else if s.api_key {
                Source::ApiKey
            } else if let Some(p) = s.property {
                if p.is_empty() {
                    return Err(err("property must be a non-empty path"));
                }
                Source::Property(p)
            } else {
                let value = s.value.unwrap_or_default();
                Source::Fixed(Scope::new(s.kind, value).map_err(|e| err(&e.to_string()))?)
            };
            sources.push((s.kind, source));
        }
        let when_none = match dto.when_none {
            WhenNoneDto::Global => Some(None),
            WhenNoneDto::Deny => None,
            WhenNoneDto::Default(s) => {
                Some(Some(s.parse::<Scope>().map_err(|e| ScopeConfigError {
                    field: "scopes.when_none.default".into(),
                    reason: e.to_string(),
                })?))
            }
        };
        Ok(ScopeResolver { sources, when_none })
    }
}

impl ScopeResolver {
    /// Resolves a request's scopes. `lookup` answers header and property questions; a value
    /// that is not a valid scope value (whitespace, braces, too long) is skipped and counted in
    /// the returned number of rejected values.
    pub fn resolve(&self, lookup: &mut dyn FnMut(Lookup<'_>) -> Option<String>) -> (Resolved, u32) {
        let mut scopes = Vec::with_capacity(self.sources.len() + 1);
        let mut rejected = 0;
        for (kind, source) in &self.sources {
            let value = match source {
                Source::Fixed(scope) => {
                    scopes.push(scope.clone());
                    continue;
                }
                Source::Header(name) => lookup(Lookup::Header(name)),
                Source::Property(path) => lookup(Lookup::Property(path)),
                Source::ApiKey => API_KEY_HEADERS
                    .iter()
                    .find_map(|h| lookup(Lookup::Header(h)))
                    .and_then(|v| key_hash(&v)),
            };
            let Some(value) = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
                continue;
            };
            match Scope::new(*kind, value) {
                Ok(scope) if !scopes.contains(&scope) => scopes.push(scope),
                Ok(_) => {}
                Err(_) => rejected += 1,
            }
        }
        if scopes.is_empty() {
            match &self.when_none {
                None => return (Resolved::Deny, rejected),
                Some(Some(default)) => scopes.push(default.clone()),
                Some(None) => {}
            }
        }
        if scopes.is_empty() {
            scopes.push(Scope::global());
        }
        (Resolved::Scopes(scopes), rejected)
    }
}

/// The first 16 hex digits of SHA-256 of the key itself (`Bearer ` stripped). `None` for an
/// empty key.
fn key_hash(header_value: &str) -> Option<String> {
    let v = header_value.trim();
    let key = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
        .unwrap_or(v)
        .trim();
    if key.is_empty() {
        return None;
    }
    let digest = Sha256::digest(key.as_bytes());
    let mut hex = String::with_capacity(KEY_HASH_HEX_LEN);
    for b in digest.iter().take(KEY_HASH_HEX_LEN / 2) {
        hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    Some(hex)
}

#[cfg(test)]
mod tests;
