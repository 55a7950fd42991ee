//! The cost of one call: a per-dimension breakdown whose sum is the total.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{CompiledVersion, tier_index};
use crate::money::NanoUsd;
use crate::usage::{ServiceTier, Usage};

/// The charge per priced dimension. Each is rounded up to a whole nano-USD on its own;
/// [`Cost::total`] is their exact sum. On the wire (a settlement's breakdown) missing parts
/// read as zero and unknown ones are ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct CostBreakdown {
    /// Plain input tokens.
    pub uncached_input: NanoUsd,
    /// Cache-read input tokens.
    pub cached_input: NanoUsd,
    /// 5-minute cache writes.
    pub cache_write_5m: NanoUsd,
    /// 1-hour cache writes.
    pub cache_write_1h: NanoUsd,
    /// Output tokens other than reasoning.
    pub output: NanoUsd,
    /// Reasoning tokens.
    pub reasoning: NanoUsd,
    /// Fees: the per-request fee and the per-search fees of a provider-side web search
    /// (one part, so that the ledger's record keeps its shape).
    pub request_fee: NanoUsd,
    /// Per-image fees.
    pub images: NanoUsd,
    /// Audio: audio input and output tokens at their audio prices, and per-minute fees.
    pub audio: NanoUsd,
}

impl CostBreakdown {
    fn parts(&self) -> [NanoUsd; 9] {
        [
            self.uncached_input,
            self.cached_input,
            self.cache_write_5m,
            self.cache_write_1h,
            self.output,
            self.reasoning,
            self.request_fee,
            self.images,
            self.audio,
        ]
    }
}

/// What a call costs, and which prices made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cost {
    /// The sum of `breakdown`.
    pub total: NanoUsd,
    /// The charge per dimension.
    pub breakdown: CostBreakdown,
    /// Whether the long-context tier applied.
    pub long_context: bool,
    /// The tier the usage was priced at.
    pub service_tier: ServiceTier,
    /// The first day of the price version used.
    pub price_effective_from: NaiveDate,
}

/// Prices `usage` with one compiled version. `None` only on overflow.
pub(super) fn compute(version: &CompiledVersion, usage: &Usage) -> Option<Cost> {
    let tier = tier_index(usage.service_tier);
    let long_context = version
        .long_context_threshold
        .is_some_and(|threshold| usage.total_input_tokens() > threshold);
    let rates = match (&version.long, long_context) {
        (Some(long), true) => long.get(tier)?,
        _ => version.standard.get(tier)?,
    };
    // Audio tokens are parts of the uncached input and of the output: each token is
    // priced once, at the audio rate or the text rate. A part larger than its whole
    // (malformed) is capped at the whole, so nothing is charged twice.
    let audio_input = usage.audio_input_tokens.min(usage.uncached_input_tokens);
    let audio_output = usage
        .audio_output_tokens
        .min(usage.non_reasoning_output_tokens());
    let fees = NanoUsd::checked_sum([
        NanoUsd(version.per_request.charge(1)?),
        NanoUsd(version.per_web_search.charge(usage.web_searches)?),
    ])
    .ok()?;
    let audio = NanoUsd::checked_sum([
        NanoUsd(rates.audio_input.charge(audio_input)?),
        NanoUsd(rates.audio_output.charge(audio_output)?),
        NanoUsd(version.per_audio_second.charge(usage.audio_seconds)?),
    ])
    .ok()?;
    let breakdown = CostBreakdown {
        uncached_input: NanoUsd(rates.uncached_input.charge(usage.text_input_tokens())?),
        cached_input: NanoUsd(rates.cached_input.charge(usage.cached_input_tokens)?),
        cache_write_5m: NanoUsd(rates.cache_write_5m.charge(usage.cache_write_5m_tokens)?),
        cache_write_1h: NanoUsd(rates.cache_write_1h.charge(usage.cache_write_1h_tokens)?),
        output: NanoUsd(rates.output.charge(usage.text_output_tokens())?),
        reasoning: NanoUsd(rates.reasoning.charge(usage.reasoning_tokens)?),
        request_fee: fees,
        images: NanoUsd(version.per_image.charge(usage.images)?),
        audio,
    };
    let total = NanoUsd::checked_sum(breakdown.parts()).ok()?;
    Some(Cost {
        total,
        breakdown,
        long_context,
        service_tier: usage.service_tier,
        price_effective_from: version.effective_from,
    })
}
