//! Budget profiles: named templates of budget settings (limits, period, time zone,
//! thresholds, enforcement, fail mode…) that budgets take their settings from.
//!
//! A budget that names a profile ([`ProfiledBudgetSpec`]) writes only its selector (scopes,
//! model) and the settings it overrides; [`resolve`] merges it over its profile into an
//! ordinary [`BudgetSpec`], and says where each setting came from. Because the merge happens
//! whenever the budget is read, changing a profile changes every budget that uses it.
//!
//! Four tiers ship ([`shipped`]): `low`, `medium`, `high`, `enterprise`. An admin may change
//! them or add custom profiles.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::budget::{Budget, BudgetError, BudgetSpec, DEFAULT_THRESHOLDS_PCT, Enforcement};
use crate::period::Period;
use crate::pricing::UnknownModelPolicy;
use crate::scope::FailMode;

/// A profile as written in the API: an id and any of a budget's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    /// Stable id: 1-64 of `A-Z a-z 0-9 . _ -`.
    pub id: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The settings budgets inherit (an object, so a profile's own fields stay apart).
    #[serde(default)]
    pub settings: Settings,
}

/// The settings a profile gives and a budget may override; each `None` when not set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Spend limit in USD.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    pub limit_usd: Option<Decimal>,
    /// Token limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_tokens: Option<u64>,
    /// Request limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_requests: Option<u64>,
    /// Period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// IANA time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Enforcement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement: Option<Enforcement>,
    /// Alert thresholds, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds_pct: Option<Vec<u16>>,
    /// Fail mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_mode: Option<FailMode>,
    /// Suspend after an excess.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend_on_exceed: Option<bool>,
    /// Mid-stream cut-off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutoff_mid_stream: Option<bool>,
    /// What a call counting toward the budget gets when no price table knows its model
    /// (unset: the control plane's `unknown_model` setting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_model: Option<UnknownModelPolicy>,
    /// Lease share (`"exact"` or a percentage; unset: `"1%"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
}

/// Field names of [`Settings`], as written in JSON (the order of a budget's `settings_from`).
pub const SETTING_FIELDS: [&str; 12] = [
    "limit_usd",
    "limit_tokens",
    "limit_requests",
    "period",
    "timezone",
    "enforcement",
    "thresholds_pct",
    "fail_mode",
    "suspend_on_exceed",
    "cutoff_mid_stream",
    "unknown_model",
    "lease",
];

/// A budget that takes its settings from a profile and overrides some.
///
/// Unknown fields are refused; serde's `flatten` cannot refuse them, so the settings are
/// listed here again rather than flattened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProfiledBudgetSpec {
    /// Stable id.
    pub id: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Selector scopes, as in [`BudgetSpec::scopes`].
    pub scopes: Vec<String>,
    /// Model filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The profile's id.
    pub profile: String,
    /// Overrides: see [`Settings`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    pub limit_usd: Option<Decimal>,
    /// Override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_tokens: Option<u64>,
    /// Override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_requests: Option<u64>,
    /// Override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// Override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement: Option<Enforcement>,
    /// Override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds_pct: Option<Vec<u16>>,
    /// Override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_mode: Option<FailMode>,
    /// Override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend_on_exceed: Option<bool>,
    /// Override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutoff_mid_stream: Option<bool>,
    /// Override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_model: Option<UnknownModelPolicy>,
    /// Override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
}

impl ProfiledBudgetSpec {
    /// The settings this budget overrides.
    pub fn overrides(&self) -> Settings {
        Settings {
            limit_usd: self.limit_usd,
            limit_tokens: self.limit_tokens,
            limit_requests: self.limit_requests,
            period: self.period,
            timezone: self.timezone.clone(),
            enforcement: self.enforcement.clone(),
            thresholds_pct: self.thresholds_pct.clone(),
            fail_mode: self.fail_mode,
            suspend_on_exceed: self.suspend_on_exceed,
            cutoff_mid_stream: self.cutoff_mid_stream,
            unknown_model: self.unknown_model.clone(),
            lease: self.lease.clone(),
        }
    }
}

/// Where an effective setting came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SettingSource {
    /// The budget overrides it.
    Budget,
    /// The profile gives it.
    Profile,
    /// Neither: the budget default (or unset, for limits).
    Default,
}

/// `budget` over `profile`: the effective spec and, per field of [`SETTING_FIELDS`], where
/// its value came from. A field neither sets keeps the budget default (`UTC`, the default
/// thresholds, `hard`, `false`) or stays unset (limits, the fail mode and the unknown-model
/// policy, which then fall to the filter's and the service's); a missing period is left
/// for validation to report.
pub fn resolve(
    budget: &ProfiledBudgetSpec,
    profile: &Settings,
) -> Result<(BudgetSpec, BTreeMap<&'static str, SettingSource>), BudgetError> {
    let mine = budget.overrides();
    let mut from = BTreeMap::new();
    macro_rules! pick {
        ($field:ident) => {{
            let (value, source) = match (mine.$field.clone(), profile.$field.clone()) {
                (Some(v), _) => (Some(v), SettingSource::Budget),
                (None, Some(v)) => (Some(v), SettingSource::Profile),
                (None, None) => (None, SettingSource::Default),
            };
            from.insert(stringify!($field), source);
            value
        }};
    }
    let limit_usd = pick!(limit_usd);
    let limit_tokens = pick!(limit_tokens);
    let limit_requests = pick!(limit_requests);
    let period = pick!(period).ok_or(BudgetError {
        field: "period",
        reason: format!(
            "neither the budget nor profile {:?} sets a period",
            budget.profile
        ),
    })?;
    let spec = BudgetSpec {
        id: budget.id.clone(),
        description: budget.description.clone(),
        scopes: budget.scopes.clone(),
        model: budget.model.clone(),
        limit_usd,
        limit_tokens,
        limit_requests,
        period,
        timezone: pick!(timezone).unwrap_or_else(|| "UTC".to_owned()),
        enforcement: pick!(enforcement).unwrap_or_default(),
        thresholds_pct: pick!(thresholds_pct).unwrap_or_else(|| DEFAULT_THRESHOLDS_PCT.to_vec()),
        fail_mode: pick!(fail_mode),
        suspend_on_exceed: pick!(suspend_on_exceed).unwrap_or_default(),
        cutoff_mid_stream: pick!(cutoff_mid_stream).unwrap_or_default(),
        // Unset in both: the service's policy applies.
        unknown_model: pick!(unknown_model),
        lease: pick!(lease),
    };
    Ok((spec, from))
}

impl ProfileSpec {
    /// Checks the id and every setting the profile gives, with the budget rules (errors name
    /// the field). A profile need not give a limit or a period: its budgets may.
    pub fn validate(&self) -> Result<(), BudgetError> {
        let probe = ProfiledBudgetSpec {
            id: self.id.clone(),
            description: None,
            scopes: vec!["global".to_owned()],
            model: None,
            profile: self.id.clone(),
            limit_usd: None,
            limit_tokens: None,
            // Stand-ins for what a budget may add, so only the profile's own values are judged.
            limit_requests: (self.settings.limit_usd.is_none()
                && self.settings.limit_tokens.is_none()
                && self.settings.limit_requests.is_none())
            .then_some(1),
            period: self.settings.period.is_none().then_some(Period::Daily),
            timezone: None,
            enforcement: None,
            thresholds_pct: None,
            fail_mode: None,
            suspend_on_exceed: None,
            cutoff_mid_stream: None,
            unknown_model: None,
            lease: None,
        };
        let (spec, _) = resolve(&probe, &self.settings)?;
        Budget::try_from(spec).map(|_| ())
    }
}

/// The tiers that ship: monthly USD limits in UTC, refused past the limit, except
/// `enterprise`, which records and alerts (shadow) rather than refuse.
pub fn shipped() -> Vec<ProfileSpec> {
    let tier = |id: &str, usd: i64, enforcement: Enforcement, thresholds: &[u16], what: &str| {
        ProfileSpec {
            id: id.to_owned(),
            description: Some(what.to_owned()),
            settings: Settings {
                limit_usd: Some(Decimal::from(usd)),
                period: Some(Period::Monthly),
                timezone: Some("UTC".to_owned()),
                enforcement: Some(enforcement),
                thresholds_pct: Some(thresholds.to_vec()),
                ..Settings::default()
            },
        }
    };
    vec![
        tier(
            "low",
            100,
            Enforcement::Hard,
            &[50, 80, 100],
            "Trials and side projects: 100 USD a month, refused past it.",
        ),
        tier(
            "medium",
            1_000,
            Enforcement::Hard,
            &[50, 80, 90, 100],
            "A team in production: 1,000 USD a month, refused past it.",
        ),
        tier(
            "high",
            10_000,
            Enforcement::Hard,
            &[50, 80, 90, 100],
            "Heavy production use: 10,000 USD a month, refused past it.",
        ),
        tier(
            "enterprise",
            100_000,
            Enforcement::Shadow,
            &[50, 80, 90, 100, 120],
            "100,000 USD a month, never refused: recorded and alerted (shadow).",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::NanoUsd;

    fn profiled(json: &str) -> ProfiledBudgetSpec {
        serde_json::from_str(json).unwrap()
    }

    fn medium() -> Settings {
        shipped()
            .into_iter()
            .find(|p| p.id == "medium")
            .unwrap()
            .settings
    }

    #[test]
    fn a_budget_takes_the_profile_settings_it_does_not_override() {
        let b = profiled(
            r#"{"id":"t","scopes":["team:a"],"profile":"medium","limit_usd":"250","fail_mode":"closed"}"#,
        );
        let (spec, from) = resolve(&b, &medium()).unwrap();
        let budget = Budget::try_from(spec).unwrap();
        assert_eq!(budget.limit, Some(NanoUsd(250_000_000_000)));
        assert_eq!(budget.period, Period::Monthly);
        assert_eq!(budget.fail_mode, Some(FailMode::Closed));
        assert_eq!(budget.thresholds_pct, vec![50, 80, 90, 100]);
        assert_eq!(from["limit_usd"], SettingSource::Budget);
        assert_eq!(from["period"], SettingSource::Profile);
        assert_eq!(from["fail_mode"], SettingSource::Budget);
        assert_eq!(from["limit_tokens"], SettingSource::Default);
        assert_eq!(from.len(), SETTING_FIELDS.len());
    }

    #[test]
    fn a_profiled_budget_takes_the_profiles_unknown_model_policy_unless_it_sets_its_own() {
        let mut settings = medium();
        settings.unknown_model = Some(UnknownModelPolicy::PriceAs("gpt-4o".into()));
        let inherits = profiled(r#"{"id":"t","scopes":["team:a"],"profile":"medium"}"#);
        let (spec, from) = resolve(&inherits, &settings).unwrap();
        assert_eq!(
            Budget::try_from(spec).unwrap().unknown_model,
            Some(UnknownModelPolicy::PriceAs("gpt-4o".into()))
        );
        assert_eq!(from["unknown_model"], SettingSource::Profile);
        let own = profiled(
            r#"{"id":"t","scopes":["team:a"],"profile":"medium","unknown_model":"refuse"}"#,
        );
        let (spec, from) = resolve(&own, &settings).unwrap();
        assert_eq!(spec.unknown_model, Some(UnknownModelPolicy::Refuse));
        assert_eq!(from["unknown_model"], SettingSource::Budget);
        let (spec, from) = resolve(&inherits, &medium()).unwrap();
        assert_eq!(spec.unknown_model, None, "the service's policy applies");
        assert_eq!(from["unknown_model"], SettingSource::Default);
    }

    #[test]
    fn a_period_from_nowhere_is_an_error_naming_it() {
        let b = profiled(r#"{"id":"t","scopes":["team:a"],"profile":"p","limit_usd":"1"}"#);
        let e = resolve(&b, &Settings::default()).unwrap_err();
        assert_eq!(e.field, "period");
    }

    #[test]
    fn every_shipped_tier_validates_and_profile_errors_name_the_field() {
        for p in shipped() {
            p.validate().unwrap();
        }
        let bad: ProfileSpec =
            serde_json::from_str(r#"{"id":"x","settings":{"timezone":"Mars/Base"}}"#).unwrap();
        assert_eq!(bad.validate().unwrap_err().field, "timezone");
        let bad: ProfileSpec =
            serde_json::from_str(r#"{"id":"x","settings":{"limit_usd":"-1"}}"#).unwrap();
        assert_eq!(bad.validate().unwrap_err().field, "limit_usd");
        let bad: ProfileSpec = serde_json::from_str(r#"{"id":"a b"}"#).unwrap();
        assert_eq!(bad.validate().unwrap_err().field, "id");
    }

    #[test]
    fn unknown_fields_are_refused_in_profiles_and_profiled_budgets() {
        assert!(
            serde_json::from_str::<ProfiledBudgetSpec>(
                r#"{"id":"t","scopes":["team:a"],"profile":"p","limt":1}"#
            )
            .is_err()
        );
        assert!(serde_json::from_str::<ProfileSpec>(r#"{"id":"p","limt":1}"#).is_err());
        assert!(
            serde_json::from_str::<ProfileSpec>(r#"{"id":"p","settings":{"limt":1}}"#).is_err()
        );
    }
}
