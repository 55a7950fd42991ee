//! The normalized usage of one call, whatever the provider.
//!
//! Providers disagree about what "input tokens" means (OpenAI and Gemini include cached
//! tokens in the prompt count, Anthropic and Bedrock exclude them). The provider readers in
//! the filter translate each dialect into this one shape, in which **no field overlaps
//! another except `reasoning_tokens`**, which is a part of `output_tokens`.

use serde::{Deserialize, Serialize};

/// How the provider scheduled the call; it scales the price (see `PriceVersion`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ServiceTier {
    /// The ordinary, synchronous tier.
    #[default]
    Standard,
    /// Asynchronous batch APIs (usually half price).
    Batch,
    /// Paid priority processing.
    Priority,
}

/// Token and unit counts for one call, in the one meaning Tollgate prices. On the wire, a
/// field this release does not know is ignored (a newer filter may send more kinds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Usage {
    /// Input tokens billed at the plain input price: neither read from nor written to a cache.
    pub uncached_input_tokens: u64,
    /// Input tokens read from the provider's prompt cache (billed at the cached-input price).
    pub cached_input_tokens: u64,
    /// Input tokens written to a cache that lives five minutes (Anthropic's default TTL).
    pub cache_write_5m_tokens: u64,
    /// Input tokens written to a cache that lives one hour.
    pub cache_write_1h_tokens: u64,
    /// Every output token, **including** `reasoning_tokens`.
    pub output_tokens: u64,
    /// Of `output_tokens`, those spent on hidden reasoning / thinking.
    pub reasoning_tokens: u64,
    /// Images generated (priced per image where the model has a per-image fee).
    pub images: u64,
    /// Seconds of audio processed (priced per minute where the model has such a fee).
    pub audio_seconds: u64,
    /// The scheduling tier the provider reported.
    pub service_tier: ServiceTier,
    /// `true` when these counts are Tollgate's estimate, not the provider's report (the stream
    /// ended without a usage event, for example).
    pub estimated: bool,
}

impl Usage {
    /// Every input token, cached and cache-written ones included (the count that long-context
    /// price tiers compare with their threshold).
    pub fn total_input_tokens(&self) -> u64 {
        self.uncached_input_tokens
            .saturating_add(self.cached_input_tokens)
            .saturating_add(self.cache_write_5m_tokens)
            .saturating_add(self.cache_write_1h_tokens)
    }

    /// Input plus output tokens: the count token budgets are charged with.
    pub fn total_tokens(&self) -> u64 {
        self.total_input_tokens().saturating_add(self.output_tokens)
    }

    /// Output tokens that are not reasoning tokens. A provider that reports more reasoning
    /// than output (malformed) yields zero here rather than an underflow.
    pub fn non_reasoning_output_tokens(&self) -> u64 {
        self.output_tokens.saturating_sub(self.reasoning_tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_count_every_input_kind_once() {
        let u = Usage {
            uncached_input_tokens: 10,
            cached_input_tokens: 20,
            cache_write_5m_tokens: 30,
            cache_write_1h_tokens: 40,
            output_tokens: 7,
            reasoning_tokens: 5,
            ..Usage::default()
        };
        assert_eq!(u.total_input_tokens(), 100);
        assert_eq!(u.total_tokens(), 107);
        assert_eq!(u.non_reasoning_output_tokens(), 2);
    }

    #[test]
    fn reasoning_above_output_does_not_underflow() {
        let u = Usage {
            output_tokens: 3,
            reasoning_tokens: 9,
            ..Usage::default()
        };
        assert_eq!(u.non_reasoning_output_tokens(), 0);
    }

    #[test]
    fn wire_form_accepts_defaults_and_ignores_kinds_it_does_not_know() {
        let u: Usage = serde_json::from_str(r#"{"output_tokens":4}"#).unwrap();
        assert_eq!(u.output_tokens, 4);
        assert_eq!(u.service_tier, ServiceTier::Standard);
        let later: Usage =
            serde_json::from_str(r#"{"output_tokens":4,"video_seconds":2}"#).unwrap();
        assert_eq!(later.output_tokens, 4);
    }
}
