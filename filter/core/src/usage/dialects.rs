//! The usage objects of each dialect, deserialized field by field into a [`UsageReport`].
//!
//! Every field is optional, every unknown field is skipped and a repeated one keeps its last
//! value (see [`super::object`]), so newer provider fields do not break parsing; the meaning
//! of each field is fixed in [`UsageReport::normalize`].

use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, SeqAccess, Visitor};
use tollgate_model::ServiceTier;

use super::UsageReport;
use super::count::Count;
use super::object::{Key, expecting, usage_object};
use crate::providers::Dialect;

usage_object! {
    struct OpenaiDetails {
        "cached_tokens" => cached_tokens: Count,
        "cache_write_tokens" => cache_write_tokens: Count,
        "reasoning_tokens" => reasoning_tokens: Count,
        "audio_tokens" => audio_tokens: Count,
    }
}

usage_object! {
    /// Chat completions, completions, embeddings, Responses and every OpenAI-compatible server.
    struct OpenaiUsage {
        "prompt_tokens" => prompt_tokens: Count,
        "completion_tokens" => completion_tokens: Count,
        // Responses API spelling (some compatible servers use it on chat too).
        "input_tokens" => input_tokens: Count,
        "output_tokens" => output_tokens: Count,
        "total_tokens" => total_tokens: Count,
        "prompt_tokens_details" => prompt_tokens_details: Option<OpenaiDetails>,
        "completion_tokens_details" => completion_tokens_details: Option<OpenaiDetails>,
        "input_tokens_details" => input_tokens_details: Option<OpenaiDetails>,
        "output_tokens_details" => output_tokens_details: Option<OpenaiDetails>,
        // Mistral.
        "num_cached_tokens" => num_cached_tokens: Count,
        // DeepSeek: prompt_tokens = hit + miss.
        "prompt_cache_hit_tokens" => prompt_cache_hit_tokens: Count,
    }
}

usage_object! {
    struct AnthropicCacheCreation {
        "ephemeral_5m_input_tokens" => ephemeral_5m_input_tokens: Count,
        "ephemeral_1h_input_tokens" => ephemeral_1h_input_tokens: Count,
    }
}

usage_object! {
    struct AnthropicUsage {
        "input_tokens" => input_tokens: Count,
        "output_tokens" => output_tokens: Count,
        "cache_read_input_tokens" => cache_read_input_tokens: Count,
        "cache_creation_input_tokens" => cache_creation_input_tokens: Count,
        "cache_creation" => cache_creation: Option<AnthropicCacheCreation>,
        "service_tier" => service_tier: Option<String>,
        "server_tool_use" => server_tool_use: Option<AnthropicServerTools>,
    }
}

usage_object! {
    struct AnthropicServerTools {
        "web_search_requests" => web_search_requests: Count,
    }
}

usage_object! {
    /// One entry of Gemini's per-modality counts (`promptTokensDetails` and the like).
    struct GeminiModalityCount {
        "modality" => modality: IsAudio,
        "tokenCount" => token_count: Count,
    }
}

/// Whether a Gemini `modality` is `AUDIO`.
#[derive(Default)]
struct IsAudio(bool);

impl<'de> Deserialize<'de> for IsAudio {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<IsAudio, D::Error> {
        Key::deserialize(deserializer).map(|k| IsAudio(k.0 == "AUDIO"))
    }
}

/// The `AUDIO` entries of one of Gemini's per-modality lists, summed as they are read (no
/// list is kept: a `Vec` of entries cost the `.wasm` about 4 KB more). A list without audio
/// is zero; an audio entry whose count is not valid makes the sum invalid.
#[derive(Clone, Copy)]
struct AudioTokens(Count);

impl<'de> Deserialize<'de> for AudioTokens {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<AudioTokens, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = AudioTokens;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                expecting(f)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AudioTokens, A::Error> {
                let mut total = Count::Valid(0);
                while let Some(entry) = seq.next_element::<GeminiModalityCount>()? {
                    if entry.modality.0 {
                        total = match (total, entry.token_count) {
                            (Count::Valid(a), Count::Valid(b)) => Count::Valid(a.saturating_add(b)),
                            (Count::Valid(a), Count::Missing) => Count::Valid(a),
                            _ => Count::Invalid,
                        };
                    }
                }
                Ok(AudioTokens(total))
            }
        }
        deserializer.deserialize_seq(ListVisitor)
    }
}

usage_object! {
    struct GeminiUsage {
        "promptTokenCount" => prompt_token_count: Count,
        "candidatesTokenCount" => candidates_token_count: Count,
        "cachedContentTokenCount" => cached_content_token_count: Count,
        "thoughtsTokenCount" => thoughts_token_count: Count,
        "toolUsePromptTokenCount" => tool_use_prompt_token_count: Count,
        "promptTokensDetails" => prompt_tokens_details: Option<AudioTokens>,
        "cacheTokensDetails" => cache_tokens_details: Option<AudioTokens>,
        "candidatesTokensDetails" => candidates_tokens_details: Option<AudioTokens>,
    }
}

usage_object! {
    struct ConverseCacheDetail {
        "ttl" => ttl: Option<String>,
        "inputTokens" => input_tokens: Count,
    }
}

usage_object! {
    struct ConverseUsage {
        "inputTokens" => input_tokens: Count,
        "outputTokens" => output_tokens: Count,
        "cacheReadInputTokens" => cache_read_input_tokens: Count,
        "cacheWriteInputTokens" => cache_write_input_tokens: Count,
        // The `…Count` spellings: Bedrock sends them beside the others (the same numbers) in
        // some answers and alone in others, so each is a field of its own (an alias would
        // make an object with both spellings a repeated field).
        "inputTokenCount" => input_token_count: Count,
        "outputTokenCount" => output_token_count: Count,
        "cacheReadInputTokenCount" => cache_read_input_token_count: Count,
        "cacheWriteInputTokenCount" => cache_write_input_token_count: Count,
        "cacheDetails" => cache_details: Option<Vec<ConverseCacheDetail>>,
    }
}

usage_object! {
    struct CohereUnits {
        "input_tokens" => input_tokens: Count,
        "output_tokens" => output_tokens: Count,
    }
}

usage_object! {
    struct CohereUsage {
        "billed_units" => billed_units: Option<CohereUnits>,
    }
}

/// Collects counts, remembering how many were present but invalid.
#[derive(Default)]
struct Builder {
    report: UsageReport,
}

impl Builder {
    fn take(&mut self, count: Count) -> Option<u64> {
        if count == Count::Invalid {
            self.report.invalid_fields = self.report.invalid_fields.saturating_add(1);
        }
        count.get()
    }

    fn first(&mut self, counts: &[Count]) -> Option<u64> {
        let mut found = None;
        for &c in counts {
            let v = self.take(c);
            found = found.or(v);
        }
        found
    }
}

fn detail(d: Option<&OpenaiDetails>, pick: fn(&OpenaiDetails) -> Count) -> Count {
    d.map_or(Count::Missing, pick)
}

fn openai(u: OpenaiUsage) -> UsageReport {
    let mut b = Builder::default();
    let input_details = u
        .prompt_tokens_details
        .as_ref()
        .or(u.input_tokens_details.as_ref());
    let output_details = u
        .completion_tokens_details
        .as_ref()
        .or(u.output_tokens_details.as_ref());
    b.report.input = b.first(&[u.prompt_tokens, u.input_tokens]);
    b.report.output = b.first(&[u.completion_tokens, u.output_tokens]);
    b.report.cached = b.first(&[
        detail(input_details, |d| d.cached_tokens),
        u.num_cached_tokens,
        u.prompt_cache_hit_tokens,
    ]);
    b.report.cache_write = b.first(&[detail(input_details, |d| d.cache_write_tokens)]);
    b.report.reasoning = b.first(&[detail(output_details, |d| d.reasoning_tokens)]);
    b.report.audio_input = b.take(detail(input_details, |d| d.audio_tokens));
    b.report.audio_output = b.take(detail(output_details, |d| d.audio_tokens));
    b.report.total = b.take(u.total_tokens);
    b.report
}

fn anthropic(u: AnthropicUsage) -> UsageReport {
    let mut b = Builder::default();
    b.report.input = b.take(u.input_tokens);
    b.report.output = b.take(u.output_tokens);
    b.report.cached = b.take(u.cache_read_input_tokens);
    b.report.cache_write = b.take(u.cache_creation_input_tokens);
    if let Some(split) = u.cache_creation {
        b.report.cache_write_5m = b.take(split.ephemeral_5m_input_tokens);
        b.report.cache_write_1h = b.take(split.ephemeral_1h_input_tokens);
    }
    if let Some(tools) = u.server_tool_use {
        b.report.web_searches = b.take(tools.web_search_requests);
    }
    b.report.service_tier = u.service_tier.as_deref().and_then(|t| match t {
        "priority" => Some(ServiceTier::Priority),
        "batch" => Some(ServiceTier::Batch),
        "standard" => Some(ServiceTier::Standard),
        _ => None,
    });
    b.report
}

fn gemini(u: GeminiUsage) -> UsageReport {
    let mut b = Builder::default();
    b.report.input = b.take(u.prompt_token_count);
    b.report.output = b.take(u.candidates_token_count);
    b.report.cached = b.take(u.cached_content_token_count);
    b.report.reasoning = b.take(u.thoughts_token_count);
    b.report.tool_prompt = b.take(u.tool_use_prompt_token_count);
    // Audio is priced apart where a model's audio input differs: the prompt's audio tokens
    // less the cached ones (cache reads keep the cached-input price).
    let audio = |list: Option<AudioTokens>| list.map_or(Count::Missing, |a| a.0);
    let prompt_audio = b.take(audio(u.prompt_tokens_details));
    let cached_audio = b.take(audio(u.cache_tokens_details));
    b.report.audio_input = prompt_audio.map(|n| n.saturating_sub(cached_audio.unwrap_or(0)));
    b.report.audio_output = b.take(audio(u.candidates_tokens_details));
    b.report
}

fn converse(u: ConverseUsage) -> UsageReport {
    let mut b = Builder::default();
    b.report.input = b.first(&[u.input_tokens, u.input_token_count]);
    b.report.output = b.first(&[u.output_tokens, u.output_token_count]);
    b.report.cached = b.first(&[u.cache_read_input_tokens, u.cache_read_input_token_count]);
    b.report.cache_write = b.first(&[u.cache_write_input_tokens, u.cache_write_input_token_count]);
    for d in u.cache_details.unwrap_or_default() {
        let n = b.take(d.input_tokens);
        let slot = match d.ttl.as_deref() {
            Some("1h") => &mut b.report.cache_write_1h,
            _ => &mut b.report.cache_write_5m,
        };
        if let Some(n) = n {
            *slot = Some(slot.unwrap_or(0).saturating_add(n));
        }
    }
    b.report
}

fn cohere(u: CohereUsage) -> UsageReport {
    let mut b = Builder::default();
    if let Some(units) = u.billed_units {
        b.report.input = b.take(units.input_tokens);
        b.report.output = b.take(units.output_tokens);
    }
    b.report
}

/// Deserializes one usage object (the value after the usage key) from the front of `json`;
/// bytes after it are ignored. `Ok(None)` for `null`.
pub(crate) fn parse_usage_value(
    dialect: Dialect,
    json: &[u8],
) -> Result<Option<UsageReport>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let report = match dialect {
        Dialect::OpenaiChat | Dialect::OpenaiResponses => {
            Option::<OpenaiUsage>::deserialize(&mut de)?.map(openai)
        }
        Dialect::Anthropic => Option::<AnthropicUsage>::deserialize(&mut de)?.map(anthropic),
        Dialect::Gemini => Option::<GeminiUsage>::deserialize(&mut de)?.map(gemini),
        Dialect::Converse => Option::<ConverseUsage>::deserialize(&mut de)?.map(converse),
        Dialect::Cohere => Option::<CohereUsage>::deserialize(&mut de)?.map(cohere),
    };
    Ok(report)
}
