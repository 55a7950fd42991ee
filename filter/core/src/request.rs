//! The request reader: what a call asks for, read from the buffered request body.
//!
//! A structural walk over the body ([`scan`]) hands the few top-level fields that matter
//! (model, stream flag, output caps, `n`, `stream_options`) to serde and skips the rest
//! without parsing it; one
//! byte pass estimates the input tokens ([`crate::estimate`]). Every body, however broken,
//! gets a [`RequestInfo`]: a problem is reported beside a conservative fallback, never as a
//! panic, so the caller can still decide (and count a metric) per its fail mode.

use std::ops::Range;

use serde::Deserialize;
use tollgate_model::PriceTable;

use crate::estimate::{REQUEST_OVERHEAD_TOKENS, estimate_body_tokens};
use crate::providers::{Api, Dialect, Route};
use crate::usage::count::Count;

/// Limits and choices for the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Bodies longer than this are not parsed (the filter's buffer cap).
    pub max_body_bytes: usize,
    /// Rewrite streamed OpenAI-style requests to ask for usage
    /// (`stream_options.include_usage`). Off for a server that rejects the option: its
    /// streams are then charged by estimate unless it sends usage anyway.
    pub add_stream_usage_option: bool,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_body_bytes: 8 * 1024 * 1024,
            add_stream_usage_option: true,
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
    /// The conservative input-token estimate ([`estimate_request_tokens`]); 0 from
    /// [`read_request_unestimated`], whose caller makes it later.
    pub estimated_input_tokens: u64,
    /// A replacement body when the request must ask for streamed usage
    /// (`stream_options.include_usage`); `None` when the body can go as it is.
    pub rewritten_body: Option<Vec<u8>>,
    /// What went wrong reading the body, if anything.
    pub problem: Option<RequestProblem>,
    /// The body asks for an OpenAI background response (`"background": true`): the answer
    /// says only that it is queued; its usage arrives when the response is retrieved.
    pub background: bool,
    /// Where the body's top-level object starts and its `metadata` value lies (to tag a
    /// background response with its settlement id, `request/background.rs`).
    pub(crate) object_start: usize,
    pub(crate) metadata: Option<Range<usize>>,
}

impl RequestInfo {
    /// Whether the body was within the cap, so that its input estimate is made from it (for
    /// a body over the cap, its length stands in).
    pub fn body_is_estimable(&self) -> bool {
        !matches!(self.problem, Some(RequestProblem::TooLarge { .. }))
    }
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

/// The top-level fields the reader wants; value ranges index into the body.
#[derive(Default)]
struct Envelope {
    model: Option<String>,
    stream: Option<bool>,
    max_tokens: Count,
    max_completion_tokens: Count,
    max_output_tokens: Count,
    n: Count,
    generation_config: Option<GenerationConfig>,
    inference_config: Option<InferenceConfig>,
    /// Where the top-level object starts.
    object_start: usize,
    /// The raw `stream_options` value.
    stream_options: Option<Range<usize>>,
    background: Option<bool>,
    /// The raw `metadata` value.
    metadata: Option<Range<usize>>,
}

/// Reads the wanted top-level members; the rest are skipped unparsed ([`scan`]).
fn read_envelope(body: &[u8]) -> Result<Envelope, String> {
    let mut envelope = Envelope::default();
    let mut error = None;
    let object = scan::for_each_member(body, 0, |key, range| {
        let Some(value) = body.get(range.clone()) else {
            return;
        };
        let parsed = match key {
            b"model" => serde_json::from_slice(value).map(|m| envelope.model = m),
            b"stream" => serde_json::from_slice(value).map(|s| envelope.stream = s),
            b"max_tokens" => serde_json::from_slice(value).map(|c| envelope.max_tokens = c),
            b"max_completion_tokens" => {
                serde_json::from_slice(value).map(|c| envelope.max_completion_tokens = c)
            }
            b"max_output_tokens" => {
                serde_json::from_slice(value).map(|c| envelope.max_output_tokens = c)
            }
            b"n" => serde_json::from_slice(value).map(|c| envelope.n = c),
            b"generationConfig" => {
                serde_json::from_slice(value).map(|g| envelope.generation_config = g)
            }
            b"inferenceConfig" => {
                serde_json::from_slice(value).map(|c| envelope.inference_config = c)
            }
            b"stream_options" => {
                envelope.stream_options = Some(range);
                Ok(())
            }
            b"background" => serde_json::from_slice(value).map(|b| envelope.background = b),
            b"metadata" => {
                envelope.metadata = Some(range);
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(e) = parsed {
            let name = String::from_utf8_lossy(key);
            error.get_or_insert_with(|| format!("{name}: {e}"));
        }
    })
    .map_err(|e| format!("not a JSON object (at byte {})", e.at))?;
    envelope.object_start = object.start;
    match error {
        Some(e) => Err(e),
        None => Ok(envelope),
    }
}

/// Reads a request body for `route`. `prices` supplies the default output cap.
pub fn read_request(
    route: &Route,
    body: &[u8],
    prices: &PriceTable,
    limits: RequestLimits,
) -> RequestInfo {
    let mut info = read_request_unestimated(route, body, prices, limits);
    if info.body_is_estimable() {
        info.estimated_input_tokens = estimate_request_tokens(body);
    }
    info
}

/// The conservative input-token estimate of a whole request body: the body's text
/// ([`estimate_body_tokens`]) and the provider's framing ([`REQUEST_OVERHEAD_TOKENS`]).
pub fn estimate_request_tokens(body: &[u8]) -> u64 {
    estimate_body_tokens(body).saturating_add(REQUEST_OVERHEAD_TOKENS)
}

/// [`read_request`] without the input estimate, for a caller that makes it later
/// ([`deferred`]): `estimated_input_tokens` is 0, except for a body over the cap (its
/// length, as [`read_request`] gives it).
pub fn read_request_unestimated(
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
        background: false,
        object_start: 0,
        metadata: None,
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
    match read_envelope(body) {
        Ok(envelope) => apply(&mut info, route, body, &envelope, limits),
        Err(e) => info.problem = Some(RequestProblem::InvalidJson(e)),
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

/// The output cap of a request that sets none: the model's default, 0 for embeddings.
pub(crate) fn default_cap(route: &Route, model: Option<&str>, prices: &PriceTable) -> u64 {
    if route.api == Api::Embeddings {
        return 0;
    }
    u64::from(prices.default_max_output_tokens(model.unwrap_or("")))
}

fn apply(
    info: &mut RequestInfo,
    route: &Route,
    body: &[u8],
    envelope: &Envelope,
    limits: RequestLimits,
) {
    if let Some(model) = envelope.model.as_deref().filter(|m| !m.is_empty()) {
        info.model = Some(model.to_owned());
    }
    info.streaming = route.streams(envelope.stream.unwrap_or(false));
    info.background = route.api == Api::Responses && envelope.background == Some(true);
    info.object_start = envelope.object_start;
    info.metadata = envelope.metadata.clone();
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
    if info.streaming && may_add_stream_usage_option(route, limits) {
        info.rewritten_body =
            with_include_usage(body, envelope.object_start, envelope.stream_options.clone());
    }
}

/// Whether a streamed request on `route` gets `stream_options.include_usage` added (when it
/// does not ask for it already): the only rewrite of a body without a control plane. Known
/// from the route alone, at the headers, before the body (and its stream flag) is read. Only
/// where the provider accepts the option ([`Route::accepts_stream_options`]); the others
/// report streamed usage on their own (Mistral on its last chunk, Groq in `x_groq`) or are
/// charged by estimate.
pub fn may_add_stream_usage_option(route: &Route, limits: RequestLimits) -> bool {
    limits.add_stream_usage_option
        && route.accepts_stream_options
        && route.api.dialect() == Dialect::OpenaiChat
        && matches!(route.api, Api::ChatCompletions | Api::Completions)
}

/// `body` with `stream_options.include_usage` set to `true`, or `None` when it already is.
/// Only the bytes of that one option change; everything else is copied verbatim.
fn with_include_usage(
    body: &[u8],
    object_start: usize,
    stream_options: Option<Range<usize>>,
) -> Option<Vec<u8>> {
    let Some(options) = stream_options else {
        let at = object_start + 1;
        return Some(splice(
            body,
            at,
            at,
            br#""stream_options":{"include_usage":true},"#,
        ));
    };
    let mut flag = None;
    let mut members = 0;
    let scanned = scan::for_each_member(body, options.start, |key, range| {
        members += 1;
        if key == b"include_usage" {
            flag = Some(range);
        }
    });
    if scanned.is_err() {
        // `null` or not an object: replace the whole value.
        return Some(splice(
            body,
            options.start,
            options.end,
            br#"{"include_usage":true}"#,
        ));
    }
    match flag {
        Some(range) if body.get(range.clone()) == Some(b"true") => None,
        Some(range) => Some(splice(body, range.start, range.end, b"true")),
        None => {
            let insert: &[u8] = if members == 0 {
                br#""include_usage":true"#
            } else {
                br#""include_usage":true,"#
            };
            Some(splice(body, options.start + 1, options.start + 1, insert))
        }
    }
}

pub(crate) fn splice(body: &[u8], start: usize, end: usize, insert: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + insert.len());
    out.extend_from_slice(body.get(..start).unwrap_or_default());
    out.extend_from_slice(insert);
    out.extend_from_slice(body.get(end..).unwrap_or_default());
    out
}

pub mod background;
pub mod deferred;
pub mod rewrite;
pub mod scan;

#[cfg(test)]
mod tests;
