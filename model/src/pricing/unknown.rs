//! What to do with a call whose model no price table knows: a USD budget must hold whatever
//! the model is called, so such a call is never charged $0 silently.
//!
//! Written in JSON (and TOML) as `"refuse"`, `{"price_as": "gpt-4o"}` or
//! `{"price_as_per_provider": {"openai": "gpt-4o", "*": "claude-opus-4-1"}}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The provider key of [`UnknownModelPolicy::PriceAsPerProvider`] that stands for any
/// provider not named.
pub const ANY_PROVIDER: &str = "*";

/// What the control plane does with a call for a model it cannot price (globally, and per
/// budget for the calls that count toward it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum UnknownModelPolicy {
    /// Refuse it, in the provider's error shape naming the model, when it counts toward an
    /// enforced USD budget (a call no such budget limits goes through, counted as unpriced).
    #[default]
    Refuse,
    /// Price it as this model (a price-table id or name).
    PriceAs(String),
    /// Price it as the model named for its provider, or for [`ANY_PROVIDER`]; refuse it
    /// (as [`UnknownModelPolicy::Refuse`]) when neither is named.
    PriceAsPerProvider(BTreeMap<String, String>),
}

impl UnknownModelPolicy {
    /// The model a call to `provider` is priced as; `None` means refuse.
    pub fn stand_in(&self, provider: &str) -> Option<&str> {
        match self {
            UnknownModelPolicy::Refuse => None,
            UnknownModelPolicy::PriceAs(model) => Some(model),
            UnknownModelPolicy::PriceAsPerProvider(map) => map
                .get(provider)
                .or_else(|| map.get(ANY_PROVIDER))
                .map(String::as_str),
        }
    }

    /// Every model the policy may price as (to check that each has a price).
    pub fn stand_ins(&self) -> Vec<&str> {
        match self {
            UnknownModelPolicy::Refuse => Vec::new(),
            UnknownModelPolicy::PriceAs(model) => vec![model.as_str()],
            UnknownModelPolicy::PriceAsPerProvider(map) => {
                map.values().map(String::as_str).collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_form_reads_and_names_its_stand_in() {
        let read = |json: &str| serde_json::from_str::<UnknownModelPolicy>(json).unwrap();
        assert_eq!(read(r#""refuse""#).stand_in("openai"), None);
        assert_eq!(
            read(r#"{"price_as":"gpt-4o"}"#).stand_in("bedrock"),
            Some("gpt-4o")
        );
        let per = read(r#"{"price_as_per_provider":{"openai":"gpt-4o","*":"claude-opus-4-1"}}"#);
        assert_eq!(per.stand_in("openai"), Some("gpt-4o"));
        assert_eq!(per.stand_in("mistral"), Some("claude-opus-4-1"));
        let only = read(r#"{"price_as_per_provider":{"openai":"gpt-4o"}}"#);
        assert_eq!(
            only.stand_in("mistral"),
            None,
            "no provider and no * refuses"
        );
        assert!(serde_json::from_str::<UnknownModelPolicy>(r#""free""#).is_err());
        assert!(serde_json::from_str::<UnknownModelPolicy>(r#"{"price_as":1}"#).is_err());
    }
}
