//! Budget definitions: what is limited, for whom, over which period, and what happens when
//! the limit would be passed.
//!
//! [`BudgetSpec`] is the JSON an admin writes (unknown fields refused); [`Budget`] is the
//! validated runtime form, built with `TryFrom`, whose errors name the field.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::money::NanoUsd;
use crate::period::Period;
use crate::pricing::UnknownModelPolicy;
use crate::scope::{FailMode, Scope, ScopeKind};

/// The longest budget id accepted.
pub const MAX_BUDGET_ID_LEN: usize = 64;

/// Threshold percentages used when a budget names none.
pub const DEFAULT_THRESHOLDS_PCT: [u16; 4] = [50, 80, 90, 100];

/// The share of each limit one lease carves when a budget does not say (`"1%"`).
pub const DEFAULT_LEASE_BASIS_POINTS: u16 = 100;
/// The largest share of a limit one lease may carve (`"25%"`).
pub const MAX_LEASE_BASIS_POINTS: u16 = 2_500;

/// How the control plane leases a budget to the filters (docs/leases.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseShare {
    /// No leases: every call counting toward the budget is reserved on its own, and so are
    /// the calls of every key this budget matches.
    Exact,
    /// Each lease carves this many hundredths of a percent of each of the budget's limits
    /// (at least one unit of each).
    BasisPoints(u16),
}

impl Default for LeaseShare {
    fn default() -> Self {
        LeaseShare::BasisPoints(DEFAULT_LEASE_BASIS_POINTS)
    }
}

impl LeaseShare {
    /// Reads `"exact"` or a percentage such as `"2%"` or `"0.5%"` (above 0, at most 25 %,
    /// two decimal places at most).
    pub fn parse(s: &str) -> Result<LeaseShare, String> {
        if s == "exact" {
            return Ok(LeaseShare::Exact);
        }
        let bad = || {
            format!(
                "{s:?} is neither \"exact\" nor a percentage such as \"2%\" (above 0, at most 25%, at most two decimals)"
            )
        };
        let pct = s.strip_suffix('%').ok_or_else(bad)?;
        let pct = Decimal::from_str(pct.trim()).map_err(|_| bad())?;
        let bp = pct * Decimal::from(100);
        if bp != bp.trunc() || bp <= Decimal::ZERO || bp > Decimal::from(MAX_LEASE_BASIS_POINTS) {
            return Err(bad());
        }
        u16::try_from(bp.mantissa() / 10i128.pow(bp.scale()))
            .map(LeaseShare::BasisPoints)
            .map_err(|_| bad())
    }

    /// The setting as written (`"exact"`, `"2%"`, `"0.5%"`).
    pub fn as_setting(self) -> String {
        match self {
            LeaseShare::Exact => "exact".to_owned(),
            LeaseShare::BasisPoints(bp) => {
                format!("{}%", (Decimal::from(bp) / Decimal::from(100)).normalize())
            }
        }
    }

    /// One lease's slice of `limit` (at least 1), or `None` for `Exact`.
    pub fn slice_of(self, limit: i64) -> Option<i64> {
        match self {
            LeaseShare::Exact => None,
            LeaseShare::BasisPoints(bp) => {
                let slice = i128::from(limit) * i128::from(bp) / 10_000;
                Some(i64::try_from(slice).unwrap_or(i64::MAX).max(1))
            }
        }
    }
}

/// What happens to a request that would pass the limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Enforcement {
    /// Refuse it (429 in the provider's error shape).
    #[default]
    Hard,
    /// Rewrite its model to the cheaper one this map names; refuse models it does not name.
    Downgrade(BTreeMap<String, String>),
    /// Let it through; record and alert only.
    Shadow,
}

/// A budget as written in the API or a config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    /// Stable id: 1-64 of `A-Z a-z 0-9 . _ -`.
    pub id: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The request must carry **all** of these scopes (`["team:a","user:bob"]`, or `["global"]`).
    pub scopes: Vec<String>,
    /// Only requests for this model count (a price-table id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Spend limit in USD, at most 9 decimal places.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    pub limit_usd: Option<Decimal>,
    /// Token limit (input + output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_tokens: Option<u64>,
    /// Request-count limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_requests: Option<u64>,
    /// How often the counters start again.
    pub period: Period,
    /// IANA zone that calendar periods follow (default `UTC`).
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// What happens past the limit.
    #[serde(default)]
    pub enforcement: Enforcement,
    /// Percentages of the limit that raise an alert, once per window.
    #[serde(default = "default_thresholds")]
    pub thresholds_pct: Vec<u16>,
    /// What the control plane answers for a call counting toward this budget when its store
    /// (Redis) is down or full: `open` admits it unreserved (charged when the store is
    /// back), `closed` refuses it (503, `store_unavailable`); any `closed` budget among a
    /// call's wins. Unset: the store error reaches the filter, whose own fail mode applies,
    /// as it always does when the control plane itself cannot be reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_mode: Option<FailMode>,
    /// Once exceeded, stay closed in later windows too until an admin reopens.
    #[serde(default)]
    pub suspend_on_exceed: bool,
    /// Cut a stream off when its running cost passes what is left.
    #[serde(default)]
    pub cutoff_mid_stream: bool,
    /// What a call counting toward this budget gets when no price table knows its model
    /// (default: the control plane's `unknown_model` setting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_model: Option<UnknownModelPolicy>,
    /// How much of each limit one lease to a filter VM carves: `"exact"` (no leases: every
    /// call is reserved on its own) or a percentage, `"0.01%"` to `"25%"`. Unset: `"1%"`.
    /// Leasing stops while less than two slices are left (docs/leases.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
}

fn default_timezone() -> String {
    "UTC".to_owned()
}

fn default_thresholds() -> Vec<u16> {
    DEFAULT_THRESHOLDS_PCT.to_vec()
}

/// A budget field that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct BudgetError {
    /// The field at fault, as written in JSON.
    pub field: &'static str,
    /// Why.
    pub reason: String,
}

fn err(field: &'static str, reason: impl Into<String>) -> BudgetError {
    BudgetError {
        field,
        reason: reason.into(),
    }
}

/// A validated budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// Stable id.
    pub id: String,
    /// Free text.
    pub description: Option<String>,
    /// Sorted, de-duplicated selector scopes.
    pub scopes: Vec<Scope>,
    /// Model filter.
    pub model: Option<String>,
    /// USD limit in nano-USD.
    pub limit: Option<NanoUsd>,
    /// Token limit.
    pub limit_tokens: Option<u64>,
    /// Request limit.
    pub limit_requests: Option<u64>,
    /// Period.
    pub period: Period,
    /// Time zone for calendar periods.
    pub timezone: Tz,
    /// Enforcement.
    pub enforcement: Enforcement,
    /// Sorted, de-duplicated threshold percentages.
    pub thresholds_pct: Vec<u16>,
    /// Fail mode on a store outage, when the budget sets one.
    pub fail_mode: Option<FailMode>,
    /// Suspend after exceeding.
    pub suspend_on_exceed: bool,
    /// Mid-stream cut-off.
    pub cutoff_mid_stream: bool,
    /// Unknown-model policy, when the budget sets its own.
    pub unknown_model: Option<UnknownModelPolicy>,
    /// The lease setting, when the budget sets one (else [`LeaseShare::default`]).
    pub lease: Option<LeaseShare>,
}

impl TryFrom<BudgetSpec> for Budget {
    type Error = BudgetError;

    fn try_from(spec: BudgetSpec) -> Result<Self, Self::Error> {
        let id_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if spec.id.is_empty() || spec.id.len() > MAX_BUDGET_ID_LEN || !spec.id.chars().all(id_ok) {
            return Err(err("id", "must be 1-64 characters of A-Z a-z 0-9 . _ -"));
        }
        if spec.scopes.is_empty() {
            return Err(err(
                "scopes",
                "needs at least one scope (use [\"global\"] for everything)",
            ));
        }
        let mut scopes = BTreeSet::new();
        for s in &spec.scopes {
            let scope = Scope::from_str(s).map_err(|e| err("scopes", e.to_string()))?;
            scopes.insert(scope);
        }
        if scopes.len() > 1 && scopes.iter().any(|s| s.kind() == ScopeKind::Global) {
            return Err(err(
                "scopes",
                "\"global\" cannot be combined with other scopes",
            ));
        }
        if spec.model.as_deref().is_some_and(|m| m.trim().is_empty()) {
            return Err(err("model", "must be non-empty when given"));
        }
        let limit = match spec.limit_usd {
            None => None,
            Some(usd) if usd <= Decimal::ZERO => return Err(err("limit_usd", "must be above 0")),
            Some(usd) => {
                Some(NanoUsd::from_usd_exact(usd).map_err(|e| err("limit_usd", e.to_string()))?)
            }
        };
        if spec.limit_tokens == Some(0) {
            return Err(err("limit_tokens", "must be above 0"));
        }
        if spec.limit_requests == Some(0) {
            return Err(err("limit_requests", "must be above 0"));
        }
        if limit.is_none() && spec.limit_tokens.is_none() && spec.limit_requests.is_none() {
            return Err(err(
                "limit_usd",
                "a budget needs limit_usd, limit_tokens or limit_requests",
            ));
        }
        spec.period
            .validate()
            .map_err(|e| err("period", e.to_string()))?;
        let timezone = Tz::from_str(&spec.timezone).map_err(|_| {
            err(
                "timezone",
                format!("{:?} is not an IANA time zone", spec.timezone),
            )
        })?;
        if let Enforcement::Downgrade(map) = &spec.enforcement {
            if map.is_empty() {
                return Err(err(
                    "enforcement",
                    "downgrade needs at least one model → cheaper model",
                ));
            }
            if let Some((from, _)) = map
                .iter()
                .find(|(from, to)| from == to || to.trim().is_empty())
            {
                return Err(err(
                    "enforcement",
                    format!("downgrade of {from:?} must name a different model"),
                ));
            }
        }
        let lease = spec
            .lease
            .as_deref()
            .map(LeaseShare::parse)
            .transpose()
            .map_err(|e| err("lease", e))?;
        let thresholds: BTreeSet<u16> = spec.thresholds_pct.iter().copied().collect();
        if thresholds.iter().any(|&p| p == 0 || p > 1000) {
            return Err(err("thresholds_pct", "each percentage must be 1..=1000"));
        }
        Ok(Budget {
            id: spec.id,
            description: spec.description,
            scopes: scopes.into_iter().collect(),
            model: spec.model,
            limit,
            limit_tokens: spec.limit_tokens,
            limit_requests: spec.limit_requests,
            period: spec.period,
            timezone,
            enforcement: spec.enforcement,
            thresholds_pct: thresholds.into_iter().collect(),
            fail_mode: spec.fail_mode,
            suspend_on_exceed: spec.suspend_on_exceed,
            cutoff_mid_stream: spec.cutoff_mid_stream,
            unknown_model: spec.unknown_model,
            lease,
        })
    }
}

impl From<&Budget> for BudgetSpec {
    fn from(b: &Budget) -> BudgetSpec {
        BudgetSpec {
            id: b.id.clone(),
            description: b.description.clone(),
            scopes: b.scopes.iter().map(ToString::to_string).collect(),
            model: b.model.clone(),
            limit_usd: b.limit.map(NanoUsd::to_usd),
            limit_tokens: b.limit_tokens,
            limit_requests: b.limit_requests,
            period: b.period,
            timezone: b.timezone.name().to_owned(),
            enforcement: b.enforcement.clone(),
            thresholds_pct: b.thresholds_pct.clone(),
            fail_mode: b.fail_mode,
            suspend_on_exceed: b.suspend_on_exceed,
            cutoff_mid_stream: b.cutoff_mid_stream,
            unknown_model: b.unknown_model.clone(),
            lease: b.lease.map(LeaseShare::as_setting),
        }
    }
}

impl Budget {
    /// Whether a request with these scopes, for this (price-table) model, counts against this
    /// budget: it carries every selector scope (`global` matches all) and the model filter.
    pub fn matches(&self, request_scopes: &[Scope], model: &str) -> bool {
        self.matches_any_model(request_scopes, &[model])
    }

    /// [`Budget::matches`] for a call that counts as any of `models` (the price-table ids of
    /// its model's family: `PriceTable::model_family`), so that a dated snapshot, an alias or
    /// an inference profile counts toward a budget limited to its base model.
    pub fn matches_any_model(&self, request_scopes: &[Scope], models: &[&str]) -> bool {
        if self.model.as_deref().is_some_and(|m| !models.contains(&m)) {
            return false;
        }
        self.scopes
            .iter()
            .all(|s| s.kind() == ScopeKind::Global || request_scopes.contains(s))
    }

    /// How this budget is leased (its own setting, or the default share).
    pub fn lease_share(&self) -> LeaseShare {
        self.lease.unwrap_or_default()
    }

    /// The cheaper model a downgrade budget maps `model` to, if any.
    pub fn downgrade_target(&self, model: &str) -> Option<&str> {
        match &self.enforcement {
            Enforcement::Downgrade(map) => map.get(model).map(String::as_str),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Result<Budget, BudgetError> {
        Budget::try_from(serde_json::from_str::<BudgetSpec>(json).unwrap())
    }

    #[test]
    fn a_full_budget_validates_with_defaults() {
        let b =
            spec(r#"{"id":"team-a","scopes":["team:a"],"limit_usd":"100.5","period":"monthly"}"#)
                .unwrap();
        assert_eq!(b.limit, Some(NanoUsd(100_500_000_000)));
        assert_eq!(b.timezone, Tz::UTC);
        assert_eq!(b.thresholds_pct, vec![50, 80, 90, 100]);
        assert_eq!(b.enforcement, Enforcement::Hard);
        assert_eq!(b.fail_mode, None);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                r#"{"id":"a b","scopes":["team:a"],"limit_usd":"1","period":"daily"}"#,
                "id",
            ),
            (
                r#"{"id":"a","scopes":[],"limit_usd":"1","period":"daily"}"#,
                "scopes",
            ),
            (
                r#"{"id":"a","scopes":["squad:x"],"limit_usd":"1","period":"daily"}"#,
                "scopes",
            ),
            (
                r#"{"id":"a","scopes":["global","team:a"],"limit_usd":"1","period":"daily"}"#,
                "scopes",
            ),
            (
                r#"{"id":"a","scopes":["team:a"],"limit_usd":"-1","period":"daily"}"#,
                "limit_usd",
            ),
            (
                r#"{"id":"a","scopes":["team:a"],"limit_usd":"0.0000000001","period":"daily"}"#,
                "limit_usd",
            ),
            (
                r#"{"id":"a","scopes":["team:a"],"period":"daily"}"#,
                "limit_usd",
            ),
            (
                r#"{"id":"a","scopes":["team:a"],"limit_tokens":0,"period":"daily"}"#,
                "limit_tokens",
            ),
            (
                r#"{"id":"a","scopes":["team:a"],"limit_requests":1,"period":{"seconds":0}}"#,
                "period",
            ),
            (
                r#"{"id":"a","scopes":["team:a"],"limit_usd":"1","period":"daily","timezone":"Mars/Base"}"#,
                "timezone",
            ),
            (
                r#"{"id":"a","scopes":["team:a"],"limit_usd":"1","period":"daily","enforcement":{"downgrade":{}}}"#,
                "enforcement",
            ),
            (
                r#"{"id":"a","scopes":["team:a"],"limit_usd":"1","period":"daily","enforcement":{"downgrade":{"x":"x"}}}"#,
                "enforcement",
            ),
            (
                r#"{"id":"a","scopes":["team:a"],"limit_usd":"1","period":"daily","thresholds_pct":[0]}"#,
                "thresholds_pct",
            ),
            (
                r#"{"id":"a","scopes":["team:a"],"limit_usd":"1","period":"daily","lease":"26%"}"#,
                "lease",
            ),
            (
                r#"{"id":"a","scopes":["team:a"],"limit_usd":"1","period":"daily","lease":"0%"}"#,
                "lease",
            ),
            (
                r#"{"id":"a","scopes":["team:a"],"limit_usd":"1","period":"daily","lease":"0.001%"}"#,
                "lease",
            ),
            (
                r#"{"id":"a","scopes":["team:a"],"limit_usd":"1","period":"daily","lease":"2"}"#,
                "lease",
            ),
            (
                r#"{"id":"a","scopes":["team:a"],"limit_usd":"1","period":"daily","lease":"Exact"}"#,
                "lease",
            ),
        ];
        for (json, field) in cases {
            assert_eq!(spec(json).unwrap_err().field, field, "{json}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = serde_json::from_str::<BudgetSpec>(
            r#"{"id":"a","scopes":["team:a"],"limit_usd":"1","period":"daily","limt":1}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("limt"));
    }

    #[test]
    fn every_selector_scope_must_be_present() {
        let b = spec(r#"{"id":"a","scopes":["team:a","user:bob"],"limit_usd":"1","period":"daily","model":"gpt-4o"}"#).unwrap();
        let req: Vec<Scope> = ["team:a", "user:bob", "org:x"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert!(b.matches(&req, "gpt-4o"));
        assert!(!b.matches(&req, "gpt-4o-mini"));
        assert!(!b.matches(&req[..1], "gpt-4o"));
        let g =
            spec(r#"{"id":"g","scopes":["global"],"limit_requests":5,"period":"hourly"}"#).unwrap();
        assert!(g.matches(&[], "anything"));
    }

    #[test]
    fn lease_settings_read_as_written_and_slice_each_limit() {
        for (written, share) in [
            ("exact", LeaseShare::Exact),
            ("1%", LeaseShare::BasisPoints(100)),
            ("0.5%", LeaseShare::BasisPoints(50)),
            ("0.01%", LeaseShare::BasisPoints(1)),
            ("25%", LeaseShare::BasisPoints(2_500)),
        ] {
            assert_eq!(LeaseShare::parse(written), Ok(share), "{written}");
            assert_eq!(share.as_setting(), written);
        }
        assert_eq!(LeaseShare::parse("2.50%"), Ok(LeaseShare::BasisPoints(250)));
        assert_eq!(LeaseShare::default().slice_of(1_000_000), Some(10_000));
        assert_eq!(LeaseShare::BasisPoints(1_000).slice_of(100), Some(10));
        // At least one unit, so a small request limit still leases one request at a time.
        assert_eq!(LeaseShare::BasisPoints(100).slice_of(30), Some(1));
        assert_eq!(LeaseShare::Exact.slice_of(100), None);
        let b = spec(
            r#"{"id":"a","scopes":["team:a"],"limit_usd":"1","period":"daily","lease":"exact"}"#,
        )
        .unwrap();
        assert_eq!(b.lease_share(), LeaseShare::Exact);
        let d = spec(r#"{"id":"a","scopes":["team:a"],"limit_usd":"1","period":"daily"}"#).unwrap();
        assert_eq!(
            d.lease_share(),
            LeaseShare::BasisPoints(DEFAULT_LEASE_BASIS_POINTS)
        );
        assert_eq!(BudgetSpec::from(&d).lease, None);
    }

    #[test]
    fn spec_round_trips() {
        let b = spec(r#"{"id":"a","scopes":["team:a"],"limit_usd":"12.25","period":{"seconds":60},"timezone":"Europe/Berlin","enforcement":{"downgrade":{"gpt-4o":"gpt-4o-mini"}},"thresholds_pct":[90,50,90],"lease":"3%"}"#).unwrap();
        assert_eq!(b.downgrade_target("gpt-4o"), Some("gpt-4o-mini"));
        assert_eq!(b.thresholds_pct, vec![50, 90]);
        let again = Budget::try_from(BudgetSpec::from(&b)).unwrap();
        assert_eq!(again, b);
    }
}
