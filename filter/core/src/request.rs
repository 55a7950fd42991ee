//! The request reader: what a call asks for, read from the buffered request body.
//!
//! One serde pass over the body reads the few top-level fields that matter (model, stream
//! flag, output caps, `n`, `stream_options`) and skips the rest without building it; one
//! byte pass estimates the input tokens ([`crate::estimate`]). Every body, however broken,
//! gets a [`RequestInfo`]: a problem is reported beside a conservative fallback, never as a
//! panic, so the caller can still decide (and count a metric) per its fail mode.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use tollgate_model::PriceTable;

use crate::estimate::{REQUEST_OVERHEAD_TOKENS, estimate_tokens};
use crate::providers::{Api, Dialect, Route};
use crate::usage::count::Count;

/// Limits on what the reader will look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Bodies longer than this are not parsed (the filter's buffer cap).
    pub max_body_bytes: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_body_bytes: 8 * 1024 * 1024,
        }
    }
}

/// Why a body could not be read in full. The [`RequestInfo`] beside it holds fallbacks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestProblem {
    /// The body is over [`RequestLimits::max_body_bytes`]; the input estimate is then one
    /// token per byte (an upper bound for text: every token covers at least one byte).
    #[error("request body of {size} bytes is over the {cap}-byte cap")]
    TooLarge {
        /// The body's length.
        size: usize,
        /// The configured cap.
        cap: usize,
    },
    /// The body is not a JSON object of the expected shape.
    #[error("request body is not valid JSON for this API: {0}")]
    InvalidJson(String),
    /// Neither the body nor the path names a model.
    #[error("request names no model")]
    NoModel,
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    /// The model: the body's `model`, else the path's (Azure deployment, Gemini, Bedrock).
    pub model: Option<String>,
    /// Whether the response will stream.
    pub streaming: bool,
    /// The output cap the request set, if it set a valid one.
    pub requested_max_output_tokens: Option<u64>,
    /// The output tokens to reserve for: the requested cap (× `n` choices), else the
    /// model's default from the price table; 0 for embeddings.
    pub max_output_tokens: u64,
    /// The conservative input-token estimate.
    pub estimated_input_tokens: u64,
    /// A replacement body when the request must ask for streamed usage
    /// (`stream_options.include_usage`); `None` when the body can go as it is.
    pub rewritten_body: Option<Vec<u8>>,
    /// What went wrong reading the body, if anything.
    pub problem: Option<RequestProblem>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct GenerationConfig {
    #[serde(rename = "maxOutputTokens")]
    max_output_tokens: Count,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InferenceConfig {
    #[serde(rename = "maxTokens")]
    max_tokens: Count,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Envelope<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    stream: Option<bool>,
    max_tokens: Count,
    max_completion_tokens: Count,
    max_output_tokens: Count,
    n: Count,
    #[serde(rename = "generationConfig")]
    generation_config: Option<GenerationConfig>,
    #[serde(rename = "inferenceConfig")]
    inference_config: Option<InferenceConfig>,
    // `null` must stay visible (as the raw `null`), so no Option handling here.
    #[serde(borrow, deserialize_with = "raw_value")]
    stream_options: Option<&'a RawValue>,
}

fn raw_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Reads a request body for `route`. `prices` supplies the default output cap.
pub fn read_request(
    route: &Route,
    body: &[u8],
    prices: &PriceTable,
    limits: RequestLimits,
) -> RequestInfo {
    let mut info = RequestInfo {
        model: route.path_model.clone(),
        streaming: route.stream_endpoint,
        requested_max_output_tokens: None,
        max_output_tokens: 0,
        estimated_input_tokens: 0,
        rewritten_body: None,
        problem: None,
    };
    if body.len() > limits.max_body_bytes {
        info.estimated_input_tokens = u64::try_from(body.len()).unwrap_or(u64::MAX);
        info.problem = Some(RequestProblem::TooLarge {
            size: body.len(),
            cap: limits.max_body_bytes,
        });
        info.max_output_tokens = default_cap(route, info.model.as_deref(), prices);
        return info;
    }
    info.estimated_input_tokens = estimate_tokens(body).saturating_add(REQUEST_OVERHEAD_TOKENS);
    match serde_json::from_slice::<Envelope<'_>>(body) {
        Ok(envelope) => apply(&mut info, route, body, &envelope),
        Err(e) => info.problem = Some(RequestProblem::InvalidJson(e.to_string())),
    }
    info.max_output_tokens = match info.requested_max_output_tokens {
        Some(cap) => cap,
        None => default_cap(route, info.model.as_deref(), prices),
    };
    if info.model.is_none() && info.problem.is_none() {
        info.problem = Some(RequestProblem::NoModel);
    }
    info
}

fn default_cap(route: &Route, model: Option<&str>, prices: &PriceTable) -> u64 {
    if route.api == Api::Embeddings {
        return 0;
    }
    u64::from(prices.default_max_output_tokens(model.unwrap_or("")))
}

fn apply(info: &mut RequestInfo, route: &Route, body: &[u8], envelope: &Envelope<'_>) {
    if let Some(model) = envelope.model.as_deref().filter(|m| !m.is_empty()) {
        info.model = Some(model.to_owned());
    }
    info.streaming = route.streams(envelope.stream.unwrap_or(false));
    let requested = [
        envelope.max_completion_tokens,
        envelope.max_output_tokens,
        envelope.max_tokens,
        envelope
            .generation_config
            .as_ref()
            .map_or(Count::Missing, |g| g.max_output_tokens),
        envelope
            .inference_config
            .as_ref()
            .map_or(Count::Missing, |c| c.max_tokens),
    ]
    .into_iter()
    .find_map(Count::get);
    // `n` choices each generate up to the cap.
    let choices = envelope.n.get().unwrap_or(1).max(1);
    info.requested_max_output_tokens = requested.map(|cap| cap.saturating_mul(choices));
    let wants_usage_option = route.api.dialect() == Dialect::OpenaiChat
        && matches!(route.api, Api::ChatCompletions | Api::Completions)
        && info.streaming;
    if wants_usage_option {
        info.rewritten_body = with_include_usage(body, envelope.stream_options);
    }
}

/// `body` with `stream_options.include_usage` set to `true`, or `None` when it already is.
/// Only the bytes of that one option change; everything else is copied verbatim.
fn with_include_usage(body: &[u8], stream_options: Option<&RawValue>) -> Option<Vec<u8>> {
    let Some(raw) = stream_options else {
        let open = body.iter().position(|&b| b == b'{')?;
        return Some(splice(
            body,
            open + 1,
            open + 1,
            br#""stream_options":{"include_usage":true},"#,
        ));
    };
    let start = offset_in(body, raw.get())?;
    let end = start + raw.get().len();
    #[derive(Deserialize)]
    struct Options<'a> {
        #[serde(borrow, default)]
        include_usage: Option<&'a RawValue>,
    }
    let options: Option<Options<'_>> = serde_json::from_str(raw.get()).ok().flatten();
    let Some(options) = options else {
        // `null` or not an object: replace the whole value.
        return Some(splice(body, start, end, br#"{"include_usage":true}"#));
    };
    match options.include_usage {
        Some(flag) if flag.get() == "true" => None,
        Some(flag) => {
            let at = offset_in(body, flag.get())?;
            Some(splice(body, at, at + flag.get().len(), b"true"))
        }
        None => {
            let inner = raw.get().get(1..raw.get().len().saturating_sub(1))?;
            let insert: &[u8] = if inner.trim().is_empty() {
                br#""include_usage":true"#
            } else {
                br#""include_usage":true,"#
            };
            Some(splice(body, start + 1, start + 1, insert))
        }
    }
}

/// Where `part` (a slice borrowed from `whole` by serde) starts within `whole`.
fn offset_in(whole: &[u8], part: &str) -> Option<usize> {
    let offset = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (offset + part.len() <= whole.len()).then_some(offset)
}

fn splice(body: &[u8], start: usize, end: usize, insert: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + insert.len());
    out.extend_from_slice(body.get(..start).unwrap_or_default());
    out.extend_from_slice(insert);
    out.extend_from_slice(body.get(end..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests;
