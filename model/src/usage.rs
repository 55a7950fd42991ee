//! The normalized usage of one call, whatever the provider.
//!
//! Providers disagree about what "input tokens" means (OpenAI and Gemini include cached
//! tokens in the prompt count, Anthropic and Bedrock exclude them). The provider readers in
//! the filter translate each dialect into this one shape, in which **no field overlaps
//! another except the parts**: `reasoning_tokens` and `audio_output_tokens` are parts of
//! `output_tokens`, `audio_input_tokens` a part of `uncached_input_tokens`. Parts, not extra
//! kinds, so that a reader that does not know them (an older control plane during a rolling
//! upgrade) still counts every token once, at the text price.

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

/// Counts this release added to the wire are left out while zero, so that a message without
/// them is byte for byte what the previous release wrote (`control-plane/tests/wire_versions.rs`).
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Token and unit counts for one call, in the one meaning Tollgate prices. On the wire, a
/// field this release does not know is ignored (a newer filter may send more kinds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Usage {
    /// Input tokens neither read from nor written to a cache, audio ones included (billed at
    /// the plain input price, except `audio_input_tokens`).
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
    /// Of `uncached_input_tokens`, those that are audio (billed at the audio input price).
    #[serde(skip_serializing_if = "is_zero")]
    pub audio_input_tokens: u64,
    /// Of `output_tokens`, those that are audio (billed at the audio output price).
    #[serde(skip_serializing_if = "is_zero")]
    pub audio_output_tokens: u64,
    /// Searches a provider-side web search tool ran (Anthropic's
    /// `server_tool_use.web_search_requests`), billed per search.
    #[serde(skip_serializing_if = "is_zero")]
    pub web_searches: u64,
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
    /// The worst case of a call before it runs, as a reservation prices it: `input_tokens` of
    /// plain input and `max_output_tokens` of output, every output token counted as audio
    /// too (an audio model's audio output price is its dearest: $80 against $10 per million
    /// for `gpt-4o-audio-preview`; a model without one prices audio as text, so this costs
    /// the same as text output there). Marked estimated.
    pub fn worst_case(input_tokens: u64, max_output_tokens: u64) -> Usage {
        Usage {
            uncached_input_tokens: input_tokens,
            output_tokens: max_output_tokens,
            audio_output_tokens: max_output_tokens,
            estimated: true,
            ..Usage::default()
        }
    }

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

    /// Output tokens billed at the text output price: neither reasoning nor audio.
    pub fn text_output_tokens(&self) -> u64 {
        self.non_reasoning_output_tokens()
            .saturating_sub(self.audio_output_tokens)
    }

    /// Uncached input tokens billed at the text input price (not audio).
    pub fn text_input_tokens(&self) -> u64 {
        self.uncached_input_tokens
            .saturating_sub(self.audio_input_tokens)
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
    fn audio_tokens_are_parts_of_the_input_and_output_counts_not_extra_ones() {
        let u = Usage {
            uncached_input_tokens: 100,
            audio_input_tokens: 60,
            output_tokens: 50,
            reasoning_tokens: 10,
            audio_output_tokens: 30,
            ..Usage::default()
        };
        assert_eq!(u.total_tokens(), 150);
        assert_eq!(u.text_input_tokens(), 40);
        assert_eq!(u.text_output_tokens(), 10);
        let malformed = Usage {
            output_tokens: 5,
            audio_output_tokens: 9,
            ..Usage::default()
        };
        assert_eq!(malformed.text_output_tokens(), 0);
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
