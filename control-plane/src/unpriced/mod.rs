//! Calls for a model no price table knows (neither this service's nor the filter's): the
//! unknown-model policy decides, so that a USD budget holds whatever a caller names.
//!
//! The policies that apply are those of the enforced USD budgets the call counts toward (each
//! budget's own `unknown_model`, else the service's); a call no such budget limits gets the
//! service's policy. At reservation a refusing policy refuses the call (`unknown_model`);
//! otherwise the call is priced as the dearest stand-in model among the policies, so that no
//! budget is charged less than its own policy says. A call no USD budget limits and whose
//! policy refuses goes through unpriced: there is no USD limit to keep. Every such call is
//! counted (`tollgate_unpriced_calls_total`), logged, and alerted once a day per model
//! (`sightings.rs`).

mod sightings;

pub use sightings::{Sightings, UnpricedDetail};

use std::sync::Arc;

use tollgate_model::PriceTable;
use tollgate_model::budget::{Budget, Enforcement};
use tollgate_model::pricing::UnknownModelPolicy;

/// Checks that every model a policy prices as has a price in `prices`.
pub fn check_policy(policy: &UnknownModelPolicy, prices: &PriceTable) -> Result<(), String> {
    match policy
        .stand_ins()
        .into_iter()
        .find(|m| prices.resolve(m).is_none())
    {
        Some(m) => Err(format!("{m:?} is not in the price table")),
        None => Ok(()),
    }
}

/// What the policies decide for one unpriced call.
#[derive(Debug)]
pub enum Unpriced<'a> {
    /// Charge this (nano-USD): the dearest stand-in's price.
    Priced(i64),
    /// This budget's policy refuses the call.
    Refused(&'a Budget),
    /// No USD budget limits the call and the policy prices it as nothing: $0, counted.
    Unlimited,
}

impl Unpriced<'_> {
    /// The metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Unpriced::Priced(_) => "priced_as",
            Unpriced::Refused(_) => "refused",
            Unpriced::Unlimited => "unlimited",
        }
    }
}

/// Applies the policies of `budgets` (those the call counts toward) and of the service
/// (`default`) to a call to `provider`; `price` prices the call as a stand-in model
/// (`None` when it cannot). With `refuse` false (a settlement: the call has happened), a
/// refusing policy is passed over and the call is priced by the others.
pub fn decide<'a>(
    budgets: &[&'a Arc<Budget>],
    default: &UnknownModelPolicy,
    provider: &str,
    refuse: bool,
    price: impl Fn(&str) -> Option<i64>,
) -> Unpriced<'a> {
    let limited: Vec<&'a Budget> = budgets
        .iter()
        .map(|&b| b.as_ref())
        .filter(|b| b.limit.is_some() && b.enforcement != Enforcement::Shadow)
        .collect();
    let mut policies: Vec<(Option<&'a Budget>, &UnknownModelPolicy)> = limited
        .iter()
        .map(|&b| (Some(b), b.unknown_model.as_ref().unwrap_or(default)))
        .collect();
    if policies.is_empty() || !refuse {
        policies.push((None, default));
    }
    let mut dearest: Option<i64> = None;
    for (budget, policy) in policies {
        match policy.stand_in(provider).and_then(&price) {
            Some(cost) => dearest = Some(dearest.map_or(cost, |d| d.max(cost))),
            None => {
                if let (true, Some(b)) = (refuse, budget) {
                    return Unpriced::Refused(b);
                }
            }
        }
    }
    dearest.map_or(Unpriced::Unlimited, Unpriced::Priced)
}

/// Counts and logs an unpriced call at `stage` (`reserve` or `settle`).
pub fn record(stage: &'static str, provider: &str, model: &str, outcome: &Unpriced<'_>) {
    let action = outcome.as_str();
    metrics::counter!(
        "tollgate_unpriced_calls_total",
        "stage" => stage,
        "provider" => provider.to_owned(),
        "action" => action
    )
    .increment(1);
    tracing::warn!(
        stage,
        provider,
        model,
        action,
        "a call for a model no price table knows (see docs/prices.md, unknown models)"
    );
}
