//! Recommendations: where money is being wasted, from the observed mix of models and tokens
//! (ledger rollups, summed per model over a window) and the price table. Pure functions:
//! the API layer reads the rows and the forecasts and hands them over.
//!
//! - **Cheaper model**: for each model used, the cheapest model of the same provider and
//!   capability class ([`CLASSES`]) that would have billed the same tokens for less, and the
//!   saving: both costs re-priced from the token counts at each model's standard rates
//!   (exact nano-USD), next to the cost the ledger recorded.
//! - **Prompt cache**: a model whose provider prices cache reads below plain input, used with
//!   large inputs (at least [`CACHE_MIN_INPUT`] tokens a call on average) and not one cache
//!   read or write in the window; the saving is an upper bound (every input token read from
//!   the cache instead), because the ledger keeps token counts, not prompts.
//! - **Budgets running out** before their period ends, and **budgets never used**, from the
//!   forecasts.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;
use tollgate_model::PriceTable;
use tollgate_model::pricing::Rates;

use crate::ledger::TokenCounts;

/// Average input tokens a call below which caching is not suggested (the providers' own
/// minimum cacheable prefix is 1 024 tokens).
pub const CACHE_MIN_INPUT: i64 = 1_024;

/// Capability classes: models of one provider that do the same kind of work, so that one
/// can stand in for another. A model in no class gets no cheaper-model suggestion.
pub const CLASSES: &[(&str, &[&str])] = &[
    (
        "openai-flagship",
        &["gpt-5", "gpt-5.1", "gpt-4.1", "gpt-4o"],
    ),
    (
        "openai-small",
        &["gpt-5-mini", "gpt-4.1-mini", "gpt-4o-mini"],
    ),
    ("openai-nano", &["gpt-5-nano", "gpt-4.1-nano"]),
    ("openai-reasoning", &["o3", "o1", "o4-mini", "o3-mini"]),
    (
        "anthropic-opus",
        &["claude-opus-4-5", "claude-opus-4-1", "claude-opus-4"],
    ),
    (
        "anthropic-sonnet",
        &["claude-sonnet-4-5", "claude-sonnet-4", "claude-3-7-sonnet"],
    ),
    (
        "anthropic-haiku",
        &["claude-haiku-4-5", "claude-3-5-haiku", "claude-3-haiku"],
    ),
    ("google-pro", &["gemini-2.5-pro", "gemini-1.5-pro"]),
    (
        "google-flash",
        &["gemini-2.5-flash", "gemini-2.0-flash", "gemini-1.5-flash"],
    ),
    (
        "google-flash-lite",
        &["gemini-2.5-flash-lite", "gemini-2.0-flash-lite"],
    ),
];

/// The observed use of one model over the window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelUse {
    /// Calls.
    pub requests: i64,
    /// The cost the ledger recorded, nano-USD.
    pub cost_nanos: i64,
    /// Tokens by kind.
    pub tokens: TokenCounts,
}

/// A cheaper model of the same class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CheaperModel {
    /// The model used (as charged).
    pub model: String,
    /// Its provider.
    pub provider: String,
    /// The capability class both are in.
    pub class: String,
    /// Calls in the window.
    pub requests: i64,
    /// What the ledger recorded for them, nano-USD.
    pub observed_cost_nanos: i64,
    /// The same tokens at the model's standard rates, nano-USD.
    pub repriced_cost_nanos: i64,
    /// The cheaper model.
    pub alternative: String,
    /// The same tokens at its standard rates, nano-USD.
    pub alternative_cost_nanos: i64,
    /// `repriced_cost_nanos - alternative_cost_nanos`.
    pub saving_nanos: i64,
}

/// A model used with large inputs and no prompt caching.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PromptCache {
    /// The model.
    pub model: String,
    /// Its provider.
    pub provider: String,
    /// Calls in the window.
    pub requests: i64,
    /// Input tokens billed at the plain input price.
    pub uncached_input_tokens: i64,
    /// Their average per call.
    pub avg_input_tokens_per_request: i64,
    /// Plain input price, USD per million tokens.
    pub input_usd_per_million: String,
    /// Cache-read price, USD per million tokens.
    pub cached_input_usd_per_million: String,
    /// The saving if every input token had been a cache read, nano-USD (an upper bound).
    pub max_saving_nanos: i64,
}

/// What [`recommend_models`] finds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelFindings {
    /// Cheaper models, largest saving first.
    pub cheaper: Vec<CheaperModel>,
    /// Caching opportunities, largest saving first.
    pub cache: Vec<PromptCache>,
}

/// The class of `model`, if any.
pub fn class_of(model: &str) -> Option<(&'static str, &'static [&'static str])> {
    CLASSES.iter().copied().find(|(_, ms)| ms.contains(&model))
}

fn rates_of(prices: &PriceTable, model: &str, at: DateTime<Utc>) -> Option<Rates> {
    let m = prices.resolve(model)?;
    let day = at.date_naive();
    let v = m
        .versions()
        .iter()
        .rev()
        .find(|v| v.effective_from <= day)
        .or_else(|| m.versions().first())?;
    Some(v.rates)
}

/// `tokens` at `rates` (USD per million), nano-USD rounded up; `None` past i64.
fn price(t: &TokenCounts, r: &Rates) -> Option<i64> {
    let d = |n: i64| Decimal::from(n.max(0));
    let plain_output = (t.output - t.reasoning).max(0);
    let usd_per_million = d(t.uncached_input).checked_mul(r.input)?
        + d(t.cached_input).checked_mul(r.cached_input)?
        + d(t.cache_write_5m).checked_mul(r.cache_write_5m)?
        + d(t.cache_write_1h).checked_mul(r.cache_write_1h)?
        + d(plain_output).checked_mul(r.output)?
        + d(t.reasoning).checked_mul(r.reasoning)?;
    // USD per million tokens × tokens = µUSD × 10⁶ … : × 10⁹ / 10⁶ = × 1 000 nano-USD.
    usd_per_million
        .checked_mul(Decimal::from(1_000))?
        .ceil()
        .to_i64()
}

/// Cheaper models and caching opportunities for `uses` (by (model, provider)), priced at the
/// rates in force at `at`.
pub fn recommend_models(
    uses: &BTreeMap<(String, String), ModelUse>,
    prices: &PriceTable,
    at: DateTime<Utc>,
) -> ModelFindings {
    let mut out = ModelFindings::default();
    for ((model, provider), u) in uses {
        if u.requests <= 0 {
            continue;
        }
        let Some(own) = rates_of(prices, model, at) else {
            continue;
        };
        if let Some((class, members)) = class_of(model)
            && let Some(repriced) = price(&u.tokens, &own)
        {
            let best = members
                .iter()
                .filter(|m| *m != model)
                .filter(|m| prices.resolve(m).is_some_and(|p| p.provider() == provider))
                .filter_map(|m| Some((*m, price(&u.tokens, &rates_of(prices, m, at)?)?)))
                .min_by_key(|(_, c)| *c);
            if let Some((alt, cost)) = best
                && cost < repriced
            {
                out.cheaper.push(CheaperModel {
                    model: model.clone(),
                    provider: provider.clone(),
                    class: class.to_owned(),
                    requests: u.requests,
                    observed_cost_nanos: u.cost_nanos,
                    repriced_cost_nanos: repriced,
                    alternative: alt.to_owned(),
                    alternative_cost_nanos: cost,
                    saving_nanos: repriced - cost,
                });
            }
        }
        let t = &u.tokens;
        let avg = t.uncached_input / u.requests;
        let no_cache = t.cached_input == 0 && t.cache_write_5m == 0 && t.cache_write_1h == 0;
        if own.cached_input < own.input && no_cache && avg >= CACHE_MIN_INPUT {
            let all_read = TokenCounts {
                uncached_input: 0,
                cached_input: t.uncached_input,
                ..TokenCounts::default()
            };
            let as_is = TokenCounts {
                uncached_input: t.uncached_input,
                ..TokenCounts::default()
            };
            if let (Some(a), Some(b)) = (price(&as_is, &own), price(&all_read, &own)) {
                out.cache.push(PromptCache {
                    model: model.clone(),
                    provider: provider.clone(),
                    requests: u.requests,
                    uncached_input_tokens: t.uncached_input,
                    avg_input_tokens_per_request: avg,
                    input_usd_per_million: own.input.normalize().to_string(),
                    cached_input_usd_per_million: own.cached_input.normalize().to_string(),
                    max_saving_nanos: a - b,
                });
            }
        }
    }
    out.cheaper
        .sort_by_key(|c| std::cmp::Reverse(c.saving_nanos));
    out.cache
        .sort_by_key(|c| std::cmp::Reverse(c.max_saving_nanos));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::testing::utc;

    fn uses(model: &str, provider: &str, u: ModelUse) -> BTreeMap<(String, String), ModelUse> {
        BTreeMap::from([((model.to_owned(), provider.to_owned()), u)])
    }

    fn rates(p: &PriceTable, m: &str) -> Rates {
        rates_of(p, m, utc("2026-12-01T00:00:00Z")).unwrap()
    }

    #[test]
    fn every_class_member_is_a_priced_model_of_one_provider() {
        let p = PriceTable::shipped().unwrap();
        for (class, members) in CLASSES {
            let providers: Vec<&str> = members
                .iter()
                .map(|m| {
                    p.resolve(m)
                        .unwrap_or_else(|| panic!("{m} unpriced"))
                        .provider()
                })
                .collect();
            assert!(providers.iter().all(|x| *x == providers[0]), "{class}");
        }
    }

    #[test]
    fn gpt_4o_use_is_repriced_on_the_cheapest_flagship_with_the_exact_saving() {
        let p = PriceTable::shipped().unwrap();
        let t = TokenCounts {
            uncached_input: 10_000_000,
            output: 2_000_000,
            ..TokenCounts::default()
        };
        let u = ModelUse {
            requests: 5_000,
            cost_nanos: 123,
            tokens: t,
        };
        let f = recommend_models(
            &uses("gpt-4o", "openai", u),
            &p,
            utc("2026-12-01T00:00:00Z"),
        );
        let c = &f.cheaper[0];
        assert_eq!(c.class, "openai-flagship");
        assert_eq!(c.observed_cost_nanos, 123, "the ledger's figure, untouched");
        // Re-price by hand: tokens × USD per million × 1000 nano-USD.
        let own = rates(&p, "gpt-4o");
        let want = (Decimal::from(10_000_000) * own.input + Decimal::from(2_000_000) * own.output)
            * Decimal::from(1000);
        assert_eq!(Decimal::from(c.repriced_cost_nanos), want.ceil());
        let alt = rates(&p, &c.alternative);
        let alt_cost = (Decimal::from(10_000_000) * alt.input
            + Decimal::from(2_000_000) * alt.output)
            * Decimal::from(1000);
        assert_eq!(Decimal::from(c.alternative_cost_nanos), alt_cost.ceil());
        assert_eq!(
            c.saving_nanos,
            c.repriced_cost_nanos - c.alternative_cost_nanos
        );
        assert!(c.saving_nanos > 0);
        for m in ["gpt-5", "gpt-5.1", "gpt-4.1"] {
            let r = rates(&p, m);
            let cost = (Decimal::from(10_000_000) * r.input + Decimal::from(2_000_000) * r.output)
                * Decimal::from(1000);
            assert!(
                cost.ceil() >= Decimal::from(c.alternative_cost_nanos),
                "{m} is cheaper"
            );
        }
    }

    #[test]
    fn large_uncached_inputs_on_a_caching_model_are_a_cache_opportunity_and_small_ones_not() {
        let p = PriceTable::shipped().unwrap();
        let big = ModelUse {
            requests: 100,
            cost_nanos: 1,
            tokens: TokenCounts {
                uncached_input: 400_000,
                output: 1_000,
                ..TokenCounts::default()
            },
        };
        let at = utc("2026-12-01T00:00:00Z");
        let f = recommend_models(&uses("claude-sonnet-4-5", "anthropic", big.clone()), &p, at);
        let c = &f.cache[0];
        assert_eq!(c.avg_input_tokens_per_request, 4_000);
        let r = rates(&p, "claude-sonnet-4-5");
        let want = Decimal::from(400_000) * (r.input - r.cached_input) * Decimal::from(1000);
        assert_eq!(Decimal::from(c.max_saving_nanos), want);
        let mut small = big.clone();
        small.tokens.uncached_input = 50_000;
        let f = recommend_models(&uses("claude-sonnet-4-5", "anthropic", small), &p, at);
        assert!(f.cache.is_empty());
        let mut cached = big;
        cached.tokens.cached_input = 1;
        let f = recommend_models(&uses("claude-sonnet-4-5", "anthropic", cached), &p, at);
        assert!(f.cache.is_empty(), "it already uses the cache");
    }

    #[test]
    fn the_cheapest_model_of_a_class_gets_no_cheaper_suggestion_and_unclassed_models_none() {
        let p = PriceTable::shipped().unwrap();
        let u = ModelUse {
            requests: 10,
            cost_nanos: 1,
            tokens: TokenCounts {
                uncached_input: 1_000,
                output: 1_000,
                ..TokenCounts::default()
            },
        };
        let at = utc("2026-12-01T00:00:00Z");
        let f = recommend_models(&uses("gpt-4o", "openai", u.clone()), &p, at);
        let cheapest = f.cheaper[0].alternative.clone();
        let f = recommend_models(&uses(&cheapest, "openai", u.clone()), &p, at);
        assert!(f.cheaper.is_empty(), "{cheapest}: {f:?}");
        let f = recommend_models(&uses("model-only-here", "openai", u), &p, at);
        assert_eq!(f, ModelFindings::default());
    }
}
