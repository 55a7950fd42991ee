//! "What would Tollgate charge for this call?": the logic behind `tollgate-inspect` (and,
//! later, `tollgate inspect` in the CLI). It runs the same route matching, request reader,
//! response readers and pricing as the filter, on recorded bodies.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tollgate_model::{CostBreakdown, PriceTable, Usage};

use crate::providers::{Api, Framing, Provider, Route, RouteTable};
use crate::request::{RequestInfo, RequestLimits, RequestProblem, read_request};
use crate::stream::{ResponseReader, StreamLimits};

/// One recorded call to inspect.
#[derive(Debug, Clone, Copy)]
pub struct InspectInput<'a> {
    /// How the call was routed.
    pub route: &'a Route,
    /// The request body, if recorded.
    pub request: Option<&'a [u8]>,
    /// The response body, if recorded (JSON, SSE, Gemini JSON array or AWS event-stream).
    pub response: Option<&'a [u8]>,
    /// The instant whose prices apply.
    pub at: DateTime<Utc>,
}

/// The usage part of an [`InspectReport`]: `input_tokens` counts **all** input (cached and
/// cache-written included); `output_tokens` includes reasoning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InspectUsage {
    /// Every input token.
    pub input_tokens: u64,
    /// Of those, read from cache.
    pub cached_input_tokens: u64,
    /// Of those, written to a five-minute cache.
    pub cache_write_5m_tokens: u64,
    /// Of those, written to a one-hour cache.
    pub cache_write_1h_tokens: u64,
    /// Every output token.
    pub output_tokens: u64,
    /// Of those, reasoning.
    pub reasoning_tokens: u64,
}

/// The charge per priced dimension, in USD (exact decimal strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InspectBreakdown {
    /// Plain input.
    pub uncached_input: String,
    /// Cache reads.
    pub cached_input: String,
    /// Five-minute cache writes.
    pub cache_write_5m: String,
    /// One-hour cache writes.
    pub cache_write_1h: String,
    /// Output other than reasoning.
    pub output: String,
    /// Reasoning.
    pub reasoning: String,
    /// Per-request fee.
    pub request_fee: String,
    /// Per-image fees.
    pub images: String,
    /// Audio fees.
    pub audio: String,
}

/// What `tollgate-inspect` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InspectReport {
    /// The provider's name.
    pub provider: &'static str,
    /// The API's name.
    pub api: &'static str,
    /// The model, when the request (or the response) names one.
    pub model: Option<String>,
    /// Whether the response streamed.
    pub streaming: bool,
    /// The usage.
    pub usage: InspectUsage,
    /// Whether the usage is Tollgate's estimate.
    pub estimated: bool,
    /// The total in USD, or `null` when the call cannot be priced.
    pub cost_usd: Option<String>,
    /// The charge per dimension.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_breakdown: Option<InspectBreakdown>,
    /// Why the call could not be priced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why a call could not be inspected (the binary prints this as its one-line message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    /// Neither a request nor a response was given.
    #[error("nothing to inspect: give --request and/or --response")]
    NothingGiven,
    /// The request body is not a readable request for this API.
    #[error("request: {0}")]
    BadRequest(String),
    /// The response body yields nothing readable.
    #[error("response: {0}")]
    BadResponse(String),
}

/// Resolves `--provider/--api` or `--path [--host]` to a route, as the filter would.
pub fn resolve_route(
    provider: Option<Provider>,
    api: Option<Api>,
    path: Option<&str>,
    host: Option<&str>,
) -> Result<Route, String> {
    match (provider, api, path) {
        (Some(provider), Some(api), None) => Ok(Route::new(provider, api)),
        (None, None, Some(path)) => RouteTable::builtin()
            .match_request("POST", path, host)
            .ok_or_else(|| format!("path {path:?} is not a metered LLM API")),
        _ => Err("give either --provider and --api, or --path (and optionally --host)".into()),
    }
}

/// Guesses a recorded response's framing from its first bytes; `None` when it cannot tell.
pub fn sniff_framing(body: &[u8]) -> Option<Framing> {
    let first = body.iter().position(|b| !b.is_ascii_whitespace())?;
    let rest = body.get(first..)?;
    match rest.first()? {
        b'{' => return Some(Framing::Json),
        b'[' => return Some(Framing::JsonArray),
        _ => {}
    }
    if [&b"data:"[..], b"event:", b":", b"id:", b"retry:"]
        .iter()
        .any(|p| rest.starts_with(p))
    {
        return Some(Framing::Sse);
    }
    let prelude = body.get(..12)?;
    let crc = u32::from_be_bytes([prelude[8], prelude[9], prelude[10], prelude[11]]);
    (crc32fast::hash(prelude.get(..8)?) == crc).then_some(Framing::EventStream)
}

/// Inspects one call.
pub fn inspect(
    input: &InspectInput<'_>,
    prices: &PriceTable,
) -> Result<InspectReport, InspectError> {
    let route = input.route;
    let dialect = route.api.dialect();
    let request: Option<RequestInfo> = match input.request {
        Some(body) => {
            let info = read_request(route, body, prices, RequestLimits::default());
            match &info.problem {
                Some(p @ (RequestProblem::InvalidJson(_) | RequestProblem::TooLarge { .. })) => {
                    return Err(InspectError::BadRequest(p.to_string()));
                }
                _ => Some(info),
            }
        }
        None => None,
    };
    let estimated_input = request.as_ref().map_or(0, |r| r.estimated_input_tokens);
    let (usage, streaming, response_model) = match input.response {
        Some(body) => {
            let framing = sniff_framing(body)
                .unwrap_or_else(|| route.framing(request.as_ref().is_some_and(|r| r.streaming)));
            let mut reader = ResponseReader::new(dialect, framing, StreamLimits::default());
            reader.feed(body);
            let outcome = reader.finish(|| estimated_input);
            let readable = match framing {
                Framing::Json => serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok(),
                _ => outcome.stats.events > 0,
            };
            if !readable {
                return Err(InspectError::BadResponse(format!(
                    "no {framing:?} content could be read"
                )));
            }
            (outcome.usage, framing != Framing::Json, outcome.model)
        }
        None => match &request {
            // No response: the worst case the filter would reserve.
            Some(r) => (
                Usage::worst_case(r.estimated_input_tokens, r.max_output_tokens),
                r.streaming,
                None,
            ),
            None => return Err(InspectError::NothingGiven),
        },
    };
    let request_model = request.as_ref().and_then(|r| r.model.clone());
    // The request's model decides, as in the filter; when the table does not know it (an
    // Azure deployment name, say), the model the response reports is tried next.
    let mut model = request_model.clone().or_else(|| response_model.clone());
    let mut priced = match &model {
        Some(m) => prices.cost(m, &usage, input.at).map_err(|e| e.to_string()),
        None => Err("the call names no model".to_owned()),
    };
    if priced.is_err()
        && let Some(reported) = response_model.filter(|m| Some(m) != request_model.as_ref())
        && let Ok(cost) = prices.cost(&reported, &usage, input.at)
    {
        priced = Ok(cost);
        model = Some(reported);
    }
    let (cost_usd, cost_breakdown, error) = match priced {
        Ok(cost) => (
            Some(cost.total.to_usd().to_string()),
            Some(breakdown(&cost.breakdown)),
            None,
        ),
        Err(why) => (None, None, Some(why)),
    };
    Ok(InspectReport {
        provider: route.provider.as_str(),
        api: route.api.as_str(),
        model,
        streaming,
        usage: InspectUsage {
            input_tokens: usage.total_input_tokens(),
            cached_input_tokens: usage.cached_input_tokens,
            cache_write_5m_tokens: usage.cache_write_5m_tokens,
            cache_write_1h_tokens: usage.cache_write_1h_tokens,
            output_tokens: usage.output_tokens,
            reasoning_tokens: usage.reasoning_tokens,
        },
        estimated: usage.estimated,
        cost_usd,
        cost_breakdown,
        error,
    })
}

fn breakdown(b: &CostBreakdown) -> InspectBreakdown {
    let usd = |n: tollgate_model::NanoUsd| n.to_usd().to_string();
    InspectBreakdown {
        uncached_input: usd(b.uncached_input),
        cached_input: usd(b.cached_input),
        cache_write_5m: usd(b.cache_write_5m),
        cache_write_1h: usd(b.cache_write_1h),
        output: usd(b.output),
        reasoning: usd(b.reasoning),
        request_fee: usd(b.request_fee),
        images: usd(b.images),
        audio: usd(b.audio),
    }
}
