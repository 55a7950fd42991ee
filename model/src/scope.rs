//! Scopes: who or what a request is attributed to (`team:payments`, `key:3fa1…`, `global`).
//!
//! A request carries a set of scopes; a budget selects the requests whose scopes include all
//! of its own. On the wire and in config a scope is the string `kind:value`, or `global`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest scope value accepted, in bytes.
pub const MAX_SCOPE_VALUE_LEN: usize = 200;

/// What a scope names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ScopeKind {
    /// An organisation; also the Redis Cluster hash tag, so one org's counters share a slot.
    Org,
    /// A team.
    Team,
    /// A project.
    Project,
    /// An end user.
    User,
    /// An API key, always as a hash, never the raw key.
    Key,
    /// A model id.
    Model,
    /// A provider (`openai`, `anthropic`…).
    Provider,
    /// A free-form tag.
    Tag,
    /// Everything; has no value.
    Global,
}

impl ScopeKind {
    /// Every kind, in a stable order.
    pub const ALL: [ScopeKind; 9] = [
        ScopeKind::Org,
        ScopeKind::Team,
        ScopeKind::Project,
        ScopeKind::User,
        ScopeKind::Key,
        ScopeKind::Model,
        ScopeKind::Provider,
        ScopeKind::Tag,
        ScopeKind::Global,
    ];

    /// The lowercase name used in scope strings.
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Org => "org",
            ScopeKind::Team => "team",
            ScopeKind::Project => "project",
            ScopeKind::User => "user",
            ScopeKind::Key => "key",
            ScopeKind::Model => "model",
            ScopeKind::Provider => "provider",
            ScopeKind::Tag => "tag",
            ScopeKind::Global => "global",
        }
    }
}

impl FromStr for ScopeKind {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ScopeKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ScopeError::UnknownKind(s.to_owned()))
    }
}

/// A scope string that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// The part before `:` is not a scope kind.
    #[error(
        "unknown scope kind {0:?} (expected one of org, team, project, user, key, model, provider, tag, global)"
    )]
    UnknownKind(String),
    /// A kind other than `global` needs a value after `:`.
    #[error("scope {0:?} needs a value: write kind:value")]
    MissingValue(String),
    /// `global` takes no value.
    #[error("scope \"global\" takes no value")]
    GlobalWithValue,
    /// The value is too long or holds whitespace, control characters or braces.
    #[error(
        "scope value {0:?} must be 1-200 bytes without whitespace, control characters or braces"
    )]
    BadValue(String),
}

/// One scope: a kind and, except for `global`, a value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    kind: ScopeKind,
    value: String,
}

impl Scope {
    /// A checked scope. `global` must have an empty value.
    pub fn new(kind: ScopeKind, value: impl Into<String>) -> Result<Scope, ScopeError> {
        let value = value.into();
        if kind == ScopeKind::Global {
            if !value.is_empty() {
                return Err(ScopeError::GlobalWithValue);
            }
            return Ok(Scope { kind, value });
        }
        if value.is_empty() {
            return Err(ScopeError::MissingValue(kind.as_str().to_owned()));
        }
        // Braces are refused because `{…}` is the Redis Cluster hash-tag syntax in keys.
        let bad = |c: char| c.is_whitespace() || c.is_control() || c == '{' || c == '}';
        if value.len() > MAX_SCOPE_VALUE_LEN || value.chars().any(bad) {
            return Err(ScopeError::BadValue(value));
        }
        Ok(Scope { kind, value })
    }

    /// The `global` scope.
    pub fn global() -> Scope {
        Scope {
            kind: ScopeKind::Global,
            value: String::new(),
        }
    }

    /// The kind.
    pub fn kind(&self) -> ScopeKind {
        self.kind
    }

    /// The value (empty for `global`).
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == ScopeKind::Global {
            f.write_str("global")
        } else {
            write!(f, "{}:{}", self.kind.as_str(), self.value)
        }
    }
}

impl FromStr for Scope {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            None if s == "global" => Ok(Scope::global()),
            None => match s.parse::<ScopeKind>()? {
                ScopeKind::Global => Ok(Scope::global()),
                _ => Err(ScopeError::MissingValue(s.to_owned())),
            },
            Some((kind, value)) => Scope::new(kind.parse()?, value),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        // `invalid_value`, not `custom`: a well-formed string that is no scope is a bad value
        // (the API's `invalid_field`), not a bad shape.
        s.parse().map_err(|e: ScopeError| {
            let expected = format!("a scope ({e})");
            serde::de::Error::invalid_value(serde::de::Unexpected::Str(&s), &expected.as_str())
        })
    }
}

/// What to do when the control plane (or its store) cannot answer in time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Let the request through and charge it when the control plane is back.
    #[default]
    Open,
    /// Refuse the request (503 in the provider's error shape).
    Closed,
}

/// A scope is written as one string (`team:payments`, `global`) in every API body.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Scope {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "`kind:value` (kinds: org, team, project, user, key, model, provider, tag) or `global`",
            ))
            .examples(["team:payments"])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Scope {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_through_their_string_form() {
        for s in [
            "team:payments",
            "user:ana@example.com",
            "key:3fa1c2",
            "global",
            "tag:env:prod",
        ] {
            let scope: Scope = s.parse().unwrap();
            assert_eq!(scope.to_string(), s);
            let json = serde_json::to_string(&scope).unwrap();
            assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), scope);
        }
        let tag: Scope = "tag:env:prod".parse().unwrap();
        assert_eq!((tag.kind(), tag.value()), (ScopeKind::Tag, "env:prod"));
    }

    #[test]
    fn bad_scopes_say_why() {
        assert_eq!(
            "squad:a".parse::<Scope>(),
            Err(ScopeError::UnknownKind("squad".into()))
        );
        assert_eq!(
            "team".parse::<Scope>(),
            Err(ScopeError::MissingValue("team".into()))
        );
        assert_eq!(
            "team:".parse::<Scope>(),
            Err(ScopeError::MissingValue("team".into()))
        );
        assert_eq!(
            "global:x".parse::<Scope>(),
            Err(ScopeError::GlobalWithValue)
        );
        assert!(matches!(
            "team:a b".parse::<Scope>(),
            Err(ScopeError::BadValue(_))
        ));
        assert!(matches!(
            "org:{x}".parse::<Scope>(),
            Err(ScopeError::BadValue(_))
        ));
        assert!(matches!(
            format!("user:{}", "x".repeat(201)).parse::<Scope>(),
            Err(ScopeError::BadValue(_))
        ));
    }
}
