//! Analytics over spend history: pure functions over series handed in, like `model/`. Nothing
//! here reads the store, the clock or the network, except [`series`], the reader that turns
//! ledger rollups into the hourly series the forecasts and anomaly detection take; the API
//! layer loads [`Fact`]s from the ledger and passes `now` where a function needs it.
//!
//! - [`anomaly`]: anomalous hours of a scope and model's spend or request series (hour-of-week
//!   median / MAD, and an EWMA for the hour in progress), grouped into incidents.
//! - [`report`]: spend grouped by scope kinds, model and provider, in calendar buckets of a
//!   time zone, with filters and a top-N "other" row.
//! - [`chargeback`]: spend per team / project / tag for a period, with the unallocated rest
//!   shown as a row or shared out proportionally (largest remainder, so the sum stays exact).
//! - [`forecast`]: spend at the period end, run-out, intervals (docs/forecasts.md).
//! - [`recommend`]: cheaper models of the same class, prompt-cache opportunities.
//! - [`series`]: dense hourly spend series per scope, (scope, model) and budget.
//! - [`invoice`]: an internal invoice (line items by model, markup, fixed fee, prepaid credit)
//!   and its HTML and PDF renderings in [`render`].
//!
//! Every amount is integer nano-USD and every sum is checked: a total is the exact sum of its
//! rows, and an overflow is an error, never a wrap.

pub mod anomaly;
pub mod buckets;
pub mod chargeback;
pub mod forecast;
pub mod invoice;
pub mod recommend;
pub mod render;
pub mod report;
pub mod series;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tollgate_model::scope::{Scope, ScopeKind};

/// One piece of spend: a request record, or an hourly rollup of one (scope, model, provider).
///
/// The facts handed to one function must **partition** the spend they describe: each call is
/// counted by exactly one fact. Request records do by construction; rollups do when they are
/// all of one scope kind (the API layer chooses them so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    /// When the spend happened (a record's end, a rollup's hour start). A fact falls wholly
    /// in the bucket holding this instant.
    pub at: DateTime<Utc>,
    /// The scopes the spend is attributed to (a rollup: its one scope).
    pub scopes: Vec<Scope>,
    /// The charged model (after any downgrade).
    pub model: String,
    /// The provider.
    pub provider: String,
    /// Cost, tokens and requests.
    pub totals: Totals,
}

impl Fact {
    /// The values this fact carries for `kind`, in scope order.
    pub fn values_of(&self, kind: ScopeKind) -> impl Iterator<Item = &str> {
        self.scopes
            .iter()
            .filter(move |s| s.kind() == kind)
            .map(Scope::value)
    }
}

/// Tokens by kind, in `tollgate_model::Usage`'s meaning (no kind overlaps another except
/// `reasoning` ⊂ `output`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tokens {
    /// Input tokens neither read from nor written to a cache.
    pub uncached_input: u64,
    /// Input tokens read from a prompt cache.
    pub cached_input: u64,
    /// Input tokens written to a 5-minute cache.
    pub cache_write_5m: u64,
    /// Input tokens written to a 1-hour cache.
    pub cache_write_1h: u64,
    /// Output tokens, reasoning included.
    pub output: u64,
    /// Of `output`, reasoning tokens.
    pub reasoning: u64,
}

impl Tokens {
    fn checked_add(&self, o: &Tokens) -> Option<Tokens> {
        Some(Tokens {
            uncached_input: self.uncached_input.checked_add(o.uncached_input)?,
            cached_input: self.cached_input.checked_add(o.cached_input)?,
            cache_write_5m: self.cache_write_5m.checked_add(o.cache_write_5m)?,
            cache_write_1h: self.cache_write_1h.checked_add(o.cache_write_1h)?,
            output: self.output.checked_add(o.output)?,
            reasoning: self.reasoning.checked_add(o.reasoning)?,
        })
    }
}

/// Spend, requests and tokens of a set of calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Totals {
    /// Cost, nano-USD.
    pub cost_nanos: i64,
    /// Calls (refused ones included).
    pub requests: u64,
    /// Of `requests`, the calls refused at reserve (zero cost).
    pub denied: u64,
    /// Tokens by kind.
    pub tokens: Tokens,
}

impl Totals {
    /// Adds `o` into `self`; an overflow is an error and leaves `self` unchanged.
    pub fn add(&mut self, o: &Totals) -> Result<(), AnalyticsError> {
        let sum = Totals {
            cost_nanos: self
                .cost_nanos
                .checked_add(o.cost_nanos)
                .ok_or(AnalyticsError::Overflow)?,
            requests: self
                .requests
                .checked_add(o.requests)
                .ok_or(AnalyticsError::Overflow)?,
            denied: self
                .denied
                .checked_add(o.denied)
                .ok_or(AnalyticsError::Overflow)?,
            tokens: self
                .tokens
                .checked_add(&o.tokens)
                .ok_or(AnalyticsError::Overflow)?,
        };
        *self = sum;
        Ok(())
    }
}

/// A half-open time range `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// First instant included.
    pub from: DateTime<Utc>,
    /// First instant after.
    pub to: DateTime<Utc>,
}

impl TimeRange {
    /// A checked range: `from` strictly before `to`, and at most `max_days` long.
    pub fn new(
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        max_days: i64,
    ) -> Result<TimeRange, AnalyticsError> {
        if from >= to {
            return Err(AnalyticsError::invalid("to", "must be after `from`"));
        }
        if to - from > chrono::TimeDelta::days(max_days) {
            return Err(AnalyticsError::invalid(
                "from",
                format!("the range is longer than {max_days} days: narrow it"),
            ));
        }
        Ok(TimeRange { from, to })
    }

    /// Whether `at` is in the range.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.from <= at && at < self.to
    }
}

/// Why an analytics call produced nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnalyticsError {
    /// A parameter breaks a rule; the API answers 400 naming `field`.
    #[error("{field}: {message}")]
    Invalid {
        /// The query parameter at fault.
        field: &'static str,
        /// What is wrong, and what to do about it.
        message: String,
    },
    /// A sum passed i64 nano-USD (or u64 tokens): refused rather than wrapped.
    #[error("a total is too large to represent exactly")]
    Overflow,
}

impl AnalyticsError {
    /// An invalid-parameter error.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> AnalyticsError {
        AnalyticsError::Invalid {
            field,
            message: message.into(),
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A fact at `at` (RFC 3339) with `scopes`, costing `cost` nano-USD, one request and
    /// `cost` output tokens (so token sums are checked along with money).
    pub fn fact(at: &str, scopes: &[&str], model: &str, provider: &str, cost: i64) -> Fact {
        Fact {
            at: DateTime::parse_from_rfc3339(at).unwrap().to_utc(),
            scopes: scopes.iter().map(|s| s.parse().unwrap()).collect(),
            model: model.into(),
            provider: provider.into(),
            totals: Totals {
                cost_nanos: cost,
                requests: 1,
                denied: 0,
                tokens: Tokens {
                    output: cost as u64,
                    ..Tokens::default()
                },
            },
        }
    }

    pub fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }
}
