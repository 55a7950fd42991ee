//! Exact usage from provider responses, normalized into [`tollgate_model::Usage`].
//!
//! Each dialect's usage object is read into a [`UsageReport`] of raw, optional fields.
//! Streams send several reports (Anthropic's `message_start` then cumulative
//! `message_delta`s; Gemini's cumulative `usageMetadata` on every chunk); they are combined
//! with [`UsageReport::merge`], where the **last value seen wins, field by field**, never a
//! sum. [`UsageReport::normalize`] then applies the dialect's meaning (DESIGN.md, "Provider
//! usage traps").
//!
//! Fast path: only the usage object is parsed. The usage key is located by a byte search
//! from the end of the body (providers put usage after the content), and serde reads just
//! that value; see [`locate`].

pub mod count;
mod dialects;
pub mod locate;
mod object;

use tollgate_model::{ServiceTier, Usage};

use crate::providers::Dialect;

/// The raw usage fields one or more provider messages reported, before normalization.
///
/// Field meanings follow the dialect: `input` is OpenAI's `prompt_tokens` (cache included) but
/// Anthropic's `input_tokens` (cache excluded), and so on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageReport {
    /// The provider's input / prompt count.
    pub input: Option<u64>,
    /// The provider's output / completion count.
    pub output: Option<u64>,
    /// Cache-read input tokens.
    pub cached: Option<u64>,
    /// Cache-write input tokens (all TTLs).
    pub cache_write: Option<u64>,
    /// Cache writes with a five-minute TTL, when the provider splits them.
    pub cache_write_5m: Option<u64>,
    /// Cache writes with a one-hour TTL, when the provider splits them.
    pub cache_write_1h: Option<u64>,
    /// Reasoning / thinking tokens.
    pub reasoning: Option<u64>,
    /// Gemini's tool-use prompt tokens (extra input).
    pub tool_prompt: Option<u64>,
    /// Of the input, the uncached audio tokens (OpenAI's `prompt_tokens_details.audio_tokens`,
    /// Gemini's `AUDIO` prompt tokens less the cached ones).
    pub audio_input: Option<u64>,
    /// Of the output, the audio tokens.
    pub audio_output: Option<u64>,
    /// Provider-side web searches run (Anthropic's `server_tool_use.web_search_requests`).
    pub web_searches: Option<u64>,
    /// The provider's own total, where it sends one (OpenAI-style `total_tokens`): it tells
    /// whether `output` includes `reasoning` (see [`UsageReport::normalize`]).
    pub total: Option<u64>,
    /// The service tier, when the usage object names one.
    pub service_tier: Option<ServiceTier>,
    /// Fields that were present but not plausible counts (negative, fractional, absurd).
    pub invalid_fields: u32,
}

impl UsageReport {
    /// Whether no count at all was reported.
    pub fn is_empty(&self) -> bool {
        self.input.is_none()
            && self.output.is_none()
            && self.cached.is_none()
            && self.cache_write.is_none()
            && self.cache_write_5m.is_none()
            && self.cache_write_1h.is_none()
            && self.reasoning.is_none()
            && self.tool_prompt.is_none()
            && self.audio_input.is_none()
            && self.audio_output.is_none()
            && self.web_searches.is_none()
            && self.total.is_none()
    }

    /// Takes every field `newer` reports; keeps the others. Streams repeat cumulative counts,
    /// so the latest value is the total: adding would double-charge.
    pub fn merge(&mut self, newer: &UsageReport) {
        fn take(old: &mut Option<u64>, new: Option<u64>) {
            if new.is_some() {
                *old = new;
            }
        }
        take(&mut self.input, newer.input);
        take(&mut self.output, newer.output);
        take(&mut self.cached, newer.cached);
        take(&mut self.cache_write, newer.cache_write);
        take(&mut self.cache_write_5m, newer.cache_write_5m);
        take(&mut self.cache_write_1h, newer.cache_write_1h);
        take(&mut self.reasoning, newer.reasoning);
        take(&mut self.tool_prompt, newer.tool_prompt);
        take(&mut self.audio_input, newer.audio_input);
        take(&mut self.audio_output, newer.audio_output);
        take(&mut self.web_searches, newer.web_searches);
        take(&mut self.total, newer.total);
        if newer.service_tier.is_some() {
            self.service_tier = newer.service_tier;
        }
        self.invalid_fields = self.invalid_fields.saturating_add(newer.invalid_fields);
    }

    /// The usage in Tollgate's one meaning, per the dialect's conventions.
    pub fn normalize(&self, dialect: Dialect) -> Usage {
        let input = self.input.unwrap_or(0);
        let output = self.output.unwrap_or(0);
        let cached = self.cached.unwrap_or(0);
        let reasoning = self.reasoning.unwrap_or(0);
        let (write_5m, write_1h) = self.cache_writes();
        let mut usage = Usage {
            service_tier: self.service_tier.unwrap_or_default(),
            ..Usage::default()
        };
        match dialect {
            // Prompt count includes cache reads and writes; output includes reasoning, except
            // on servers (xAI) whose `completion_tokens` leave reasoning out: their total is
            // prompt + completion + reasoning, which OpenAI's never is when reasoning > 0.
            Dialect::OpenaiChat | Dialect::OpenaiResponses => {
                usage.uncached_input_tokens = input
                    .saturating_sub(cached)
                    .saturating_sub(write_5m)
                    .saturating_sub(write_1h);
                usage.cached_input_tokens = cached;
                let reasoning_apart = reasoning > 0
                    && self.total == Some(input.saturating_add(output).saturating_add(reasoning));
                usage.output_tokens = if reasoning_apart {
                    output.saturating_add(reasoning)
                } else {
                    output
                };
                usage.reasoning_tokens = reasoning.min(usage.output_tokens);
            }
            // Prompt count includes cached content; thoughts and tool-use prompts are extra.
            Dialect::Gemini => {
                usage.uncached_input_tokens = input
                    .saturating_sub(cached)
                    .saturating_add(self.tool_prompt.unwrap_or(0));
                usage.cached_input_tokens = cached;
                usage.output_tokens = output.saturating_add(reasoning);
                usage.reasoning_tokens = reasoning;
            }
            // Input excludes cache reads and writes.
            Dialect::Anthropic | Dialect::Converse => {
                usage.uncached_input_tokens = input;
                usage.cached_input_tokens = cached;
                usage.output_tokens = output;
                usage.reasoning_tokens = reasoning.min(output);
            }
            Dialect::Cohere => {
                usage.uncached_input_tokens = input;
                usage.output_tokens = output;
            }
        }
        usage.cache_write_5m_tokens = write_5m;
        usage.cache_write_1h_tokens = write_1h;
        // Audio counts are parts of the counts above, never extra tokens.
        usage.audio_input_tokens = self
            .audio_input
            .unwrap_or(0)
            .min(usage.uncached_input_tokens);
        usage.audio_output_tokens = self
            .audio_output
            .unwrap_or(0)
            .min(usage.non_reasoning_output_tokens());
        usage.web_searches = self.web_searches.unwrap_or(0);
        usage
    }

    /// Cache writes split by TTL. An unsplit total, or the part of the total the split does
    /// not explain, is taken as five-minute writes (the providers' default TTL).
    fn cache_writes(&self) -> (u64, u64) {
        let one_hour = self.cache_write_1h.unwrap_or(0);
        let split_5m = self.cache_write_5m.unwrap_or(0);
        let total = self.cache_write.unwrap_or(0);
        let five_min = split_5m.max(total.saturating_sub(one_hour));
        (five_min, one_hour)
    }
}

/// The usage a complete (non-streamed) JSON response reports, or `None` when it reports
/// none. Invalid JSON around the usage object does not matter; an invalid usage object is
/// `None`.
pub fn extract_report(dialect: Dialect, body: &[u8]) -> Option<UsageReport> {
    locate::find_usage(dialect, body).filter(|r| !r.is_empty())
}

/// [`extract_report`], normalized.
pub fn extract_usage(dialect: Dialect, body: &[u8]) -> Option<Usage> {
    extract_report(dialect, body).map(|r| r.normalize(dialect))
}

#[cfg(test)]
mod tests;
