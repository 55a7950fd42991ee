//! Reading a response as it passes: the framings ([`sse`], [`json_array`], [`event_stream`])
//! and [`ResponseReader`], which turns any of them into the call's usage.
//!
//! Chunks are read and passed on at once; only the pending event (bounded) is held. Each
//! complete event is first scanned for the usage key ([`crate::usage::locate`]); only events
//! that have it are parsed. Text values are counted on the way ([`text`]) so that a stream
//! that ends without usage (client hung up, provider omitted it) still gets an estimate,
//! flagged `estimated`.

pub mod event_stream;
pub mod json_array;
pub mod sse;
pub mod text;
pub mod usage_chunk;

use std::sync::OnceLock;

use base64::Engine;
use memchr::memmem;
use serde::Deserialize;
use tollgate_model::Usage;

use crate::estimate::TokenEstimator;
use crate::json_keys;
use crate::providers::{Dialect, Framing};
use crate::usage::UsageReport;
use crate::usage::locate::UsageFinder;
use event_stream::{EventMessage, EventStreamReader};
use json_array::JsonArrayReader;
use sse::SseReader;

/// Bounds on what a [`ResponseReader`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// The most one pending stream event (SSE event, array element, event-stream message)
    /// may hold; larger events are dropped and counted.
    pub max_event_bytes: usize,
    /// The most of a non-streamed JSON body kept: the usage object is at the end, so when a
    /// body is longer only its tail is kept.
    pub max_json_tail_bytes: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_event_bytes: 1024 * 1024,
            max_json_tail_bytes: 256 * 1024,
        }
    }
}

/// What a [`ResponseReader`] counted, for metrics and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponseStats {
    /// Response bytes fed.
    pub bytes: u64,
    /// Events (or array elements, or event-stream messages) read.
    pub events: u64,
    /// Events whose usage was parsed.
    pub usage_events: u64,
    /// Events dropped for being over [`StreamLimits::max_event_bytes`].
    pub oversized_events: u64,
    /// Event-stream messages with a bad CRC or header, plus one if the framing broke.
    pub corrupt_events: u64,
    /// Usage fields that were present but not plausible counts.
    pub invalid_usage_fields: u32,
}

/// The usage of one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseOutcome {
    /// The normalized usage; `usage.estimated` is set when any part of it is Tollgate's
    /// estimate rather than the provider's final report.
    pub usage: Usage,
    /// The raw, merged report the usage came from.
    pub report: UsageReport,
    /// The model the response names (`"model"`, Gemini's `"modelVersion"`), if any: the
    /// real model behind an Azure deployment name, or the dated snapshot behind an alias.
    pub model: Option<String>,
    /// Counters.
    pub stats: ResponseStats,
}

#[derive(Debug, Clone)]
enum Framer {
    Json(Vec<u8>),
    Sse(SseReader),
    JsonArray(JsonArrayReader),
    EventStream(EventStreamReader),
}

/// Reads one response, chunk by chunk, into its usage.
#[derive(Debug, Clone)]
pub struct ResponseReader {
    dialect: Dialect,
    framer: Framer,
    limits: StreamLimits,
    report: UsageReport,
    usage_seen: bool,
    finish_seen: bool,
    output_text: TokenEstimator,
    model: Option<String>,
    /// Events left in which to look for the model (providers name it in the first ones).
    model_tries: u8,
    searchers: &'static Searchers,
    /// The response is a stream of events (not one JSON body): see [`UsageFinder::find_in_event`].
    streamed: bool,
    /// The framing is still to be confirmed by the body's first byte (see
    /// [`ResponseReader::confirm_framing`]).
    unconfirmed: bool,
    stats: ResponseStats,
}

/// A dialect's searchers, built once per process (once per VM in Envoy), not per response:
/// building a memchr searcher (its prefilter and two-way tables) costs more than searching a
/// short answer with it, and a reader uses up to seven.
#[derive(Debug)]
struct Searchers {
    usage: UsageFinder,
    text: text::TextCounter,
    /// The event that marks a dialect's final usage (see [`ResponseReader::complete`]).
    finish: Option<memmem::Finder<'static>>,
    /// The keys that name the model in an answer (see [`reported_model`]).
    model: [memmem::Finder<'static>; 2],
}

impl Searchers {
    fn new(dialect: Dialect) -> Searchers {
        Searchers {
            usage: UsageFinder::new(dialect),
            text: text::TextCounter::new(dialect),
            finish: match dialect {
                Dialect::Anthropic => Some(json_keys::finder(b"\"message_delta\"")),
                Dialect::Gemini => Some(json_keys::finder(b"\"finishReason\"")),
                _ => None,
            },
            model: MODEL_KEYS.map(json_keys::finder),
        }
    }

    fn of(dialect: Dialect) -> &'static Searchers {
        static OPENAI_CHAT: OnceLock<Searchers> = OnceLock::new();
        static OPENAI_RESPONSES: OnceLock<Searchers> = OnceLock::new();
        static ANTHROPIC: OnceLock<Searchers> = OnceLock::new();
        static GEMINI: OnceLock<Searchers> = OnceLock::new();
        static CONVERSE: OnceLock<Searchers> = OnceLock::new();
        static COHERE: OnceLock<Searchers> = OnceLock::new();
        let cell = match dialect {
            Dialect::OpenaiChat => &OPENAI_CHAT,
            Dialect::OpenaiResponses => &OPENAI_RESPONSES,
            Dialect::Anthropic => &ANTHROPIC,
            Dialect::Gemini => &GEMINI,
            Dialect::Converse => &CONVERSE,
            Dialect::Cohere => &COHERE,
        };
        cell.get_or_init(|| Searchers::new(dialect))
    }
}

#[derive(Deserialize)]
struct InvokeChunk<'a> {
    #[serde(borrow)]
    bytes: &'a str,
}

impl ResponseReader {
    /// A reader for a response in `dialect`, framed as `framing`.
    pub fn new(dialect: Dialect, framing: Framing, limits: StreamLimits) -> ResponseReader {
        let framer = match framing {
            Framing::Json => Framer::Json(Vec::new()),
            Framing::Sse => Framer::Sse(SseReader::new(limits.max_event_bytes)),
            Framing::JsonArray => Framer::JsonArray(JsonArrayReader::new(limits.max_event_bytes)),
            Framing::EventStream => {
                Framer::EventStream(EventStreamReader::new(limits.max_event_bytes))
            }
        };
        ResponseReader {
            dialect,
            framer,
            limits,
            report: UsageReport::default(),
            usage_seen: false,
            finish_seen: false,
            output_text: TokenEstimator::new(),
            model: None,
            model_tries: 4,
            searchers: Searchers::of(dialect),
            streamed: framing != Framing::Json,
            unconfirmed: framing != Framing::EventStream,
            stats: ResponseStats::default(),
        }
    }

    /// Reads the framing from what the body is rather than from what the request asked
    /// for: a server may answer a streamed request with one JSON body (an error, a proxy
    /// that ignores `stream`) or a plain one with events (a compatible server that always
    /// streams), whatever its content type says. A JSON body starts with `{` (Gemini's
    /// streamed array with `[`); an event stream with a field name or a comment. Decided
    /// once, on the first byte that is not whitespace; the AWS event-stream's binary framing
    /// is never in question.
    fn confirm_framing(&mut self, chunk: &[u8]) {
        let Some(&first) = chunk.iter().find(|b| !b.is_ascii_whitespace()) else {
            return;
        };
        self.unconfirmed = false;
        let framing = match (first, self.dialect) {
            (b'[', Dialect::Gemini) => Framing::JsonArray,
            (b'{' | b'[', _) => Framing::Json,
            _ => Framing::Sse,
        };
        let current = match self.framer {
            Framer::Json(_) => Framing::Json,
            Framer::Sse(_) => Framing::Sse,
            Framer::JsonArray(_) => Framing::JsonArray,
            Framer::EventStream(_) => Framing::EventStream,
        };
        if framing != current {
            // Only whitespace was fed before: nothing is lost.
            *self = ResponseReader {
                stats: self.stats,
                unconfirmed: false,
                ..ResponseReader::new(self.dialect, framing, self.limits)
            };
        }
    }

    /// Reads one chunk of the response body.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.unconfirmed {
            self.confirm_framing(chunk);
        }
        self.stats.bytes = self.stats.bytes.saturating_add(chunk.len() as u64);
        let mut framer = std::mem::replace(&mut self.framer, Framer::Json(Vec::new()));
        match &mut framer {
            Framer::Json(tail) => {
                match chunk.len().checked_sub(self.limits.max_json_tail_bytes) {
                    // Only the body's last `max_json_tail_bytes` are ever read, and this chunk
                    // alone holds them: nothing before it is needed, nor more of it.
                    Some(skip) => {
                        tail.clear();
                        tail.extend_from_slice(chunk.get(skip..).unwrap_or_default());
                    }
                    None => tail.extend_from_slice(chunk),
                }
            }
            Framer::Sse(reader) => reader.feed(chunk, &mut |_, data| self.on_json(data)),
            Framer::JsonArray(reader) => reader.feed(chunk, &mut |json| self.on_json(json)),
            Framer::EventStream(reader) => reader.feed(chunk, &mut |m| self.on_message(m)),
        }
        self.framer = framer;
        self.trim_json_tail();
    }

    /// Reads one chunk the caller no longer needs: the first chunk of a JSON body (most
    /// answers come whole in one) is kept as it is instead of copied, which spares an
    /// allocation and a copy of the answer on the request's path. Only a chunk whose
    /// allocation is within the tail's bound: a larger one is cut to its tail, as
    /// [`ResponseReader::feed`] does, rather than held in full until the charge.
    pub fn feed_owned(&mut self, chunk: Vec<u8>) {
        if self.unconfirmed {
            self.confirm_framing(&chunk);
        }
        match &mut self.framer {
            Framer::Json(tail)
                if tail.is_empty() && chunk.capacity() <= self.limits.max_json_tail_bytes =>
            {
                self.stats.bytes = self.stats.bytes.saturating_add(chunk.len() as u64);
                *tail = chunk;
            }
            _ => self.feed(&chunk),
        }
    }

    /// Keeps at most twice the JSON tail's bound, trimming to the bound: amortized O(1) a byte.
    fn trim_json_tail(&mut self) {
        if let Framer::Json(tail) = &mut self.framer
            && tail.len() > 2 * self.limits.max_json_tail_bytes
        {
            let cut = tail.len() - self.limits.max_json_tail_bytes;
            tail.drain(..cut);
        }
    }

    /// The usage so far (for a mid-stream budget check): the reports seen, with the output
    /// raised to the streamed-text estimate when that is higher.
    pub fn usage_so_far(&self, estimated_input_tokens: u64) -> Usage {
        self.current(|| estimated_input_tokens)
    }

    /// The bytes this reader holds in its buffers (a JSON body's tail, a partial event).
    pub fn held_bytes(&self) -> usize {
        match &self.framer {
            Framer::Json(tail) => tail.capacity(),
            Framer::Sse(reader) => reader.held_bytes(),
            Framer::JsonArray(reader) => reader.held_bytes(),
            Framer::EventStream(reader) => reader.held_bytes(),
        }
    }

    /// The response ended (or the client went away): the final usage.
    ///
    /// `input_estimate` (the request reader's estimate) stands in for the input count when
    /// the provider never reported one; it is called only then, as making it may cost a pass
    /// over the request body ([`crate::request::deferred`]).
    pub fn finish(mut self, input_estimate: impl FnOnce() -> u64) -> ResponseOutcome {
        let framer = std::mem::replace(&mut self.framer, Framer::Json(Vec::new()));
        match framer {
            Framer::Json(tail) => {
                let start = tail.len().saturating_sub(self.limits.max_json_tail_bytes);
                let body = tail.get(start..).unwrap_or_default();
                self.on_json(body);
                // A whole body is final by definition.
                self.finish_seen = true;
            }
            Framer::Sse(mut reader) => {
                reader.finish(&mut |_, data| self.on_json(data));
                let s = reader.stats();
                self.stats.events = s.events;
                self.stats.oversized_events = s.oversized_events;
            }
            Framer::JsonArray(reader) => {
                let s = reader.stats();
                self.stats.events = s.elements;
                self.stats.oversized_events = s.oversized_elements;
            }
            Framer::EventStream(reader) => {
                let s = reader.stats();
                self.stats.events = s.messages;
                self.stats.oversized_events = s.oversized_messages;
                self.stats.corrupt_events = s.corrupt_messages + u64::from(s.broken);
            }
        }
        self.stats.invalid_usage_fields = self.report.invalid_fields;
        ResponseOutcome {
            usage: self.current(input_estimate),
            report: self.report,
            model: self.model,
            stats: self.stats,
        }
    }

    fn complete(&self) -> bool {
        // Anthropic and Gemini send usage before the end (message_start; every Gemini
        // chunk): only the final event's makes it final. Other dialects send usage once, last.
        let needs_finish = matches!(self.dialect, Dialect::Anthropic | Dialect::Gemini);
        self.usage_seen && (!needs_finish || self.finish_seen)
    }

    fn current(&self, input_estimate: impl FnOnce() -> u64) -> Usage {
        let mut usage = self.report.normalize(self.dialect);
        if !self.complete() {
            usage.estimated = true;
            if self.report.input.is_none() {
                usage.uncached_input_tokens = input_estimate();
            }
            usage.output_tokens = usage.output_tokens.max(self.output_text.tokens());
        }
        usage
    }

    fn on_json(&mut self, json: &[u8]) {
        if json == b"[DONE]" {
            return;
        }
        // One search both rules out events without the key and finds the value.
        let report = if self.streamed {
            self.searchers.usage.find_in_event(json)
        } else {
            self.searchers.usage.find(json)
        };
        let mut event_output = None;
        if let Some(report) = report
            && !report.is_empty()
        {
            event_output = report.output;
            self.report.merge(&report);
            self.usage_seen = true;
            self.stats.usage_events += 1;
        }
        // Anthropic's final output count is the one in `message_delta`: a `message_delta`
        // without a readable one (cut inside the event, no usage member) leaves
        // `message_start`'s placeholder (1 token), which is no final count, so the usage
        // stays estimated. Gemini's cumulative usage rides on every chunk: its finish marks
        // the last.
        if self
            .searchers
            .finish
            .as_ref()
            .is_some_and(|f| f.find(json).is_some())
            && (self.dialect != Dialect::Anthropic || event_output.is_some())
        {
            self.finish_seen = true;
        }
        // The text only matters when no usage arrives: a stream may yet end without it, but a
        // whole body that had it is charged from it.
        if self.streamed || !self.usage_seen {
            self.searchers.text.count(json, &mut self.output_text);
        }
        if self.model.is_none() && self.model_tries > 0 {
            self.model_tries -= 1;
            self.model = reported_model(&self.searchers.model, json);
        }
    }

    fn on_message(&mut self, message: EventMessage<'_>) {
        if message.message_type != b"event" {
            return;
        }
        if message.event_type == b"chunk" {
            // InvokeModelWithResponseStream: {"bytes":"<base64 of the provider's event>"}.
            let decoded = serde_json::from_slice::<InvokeChunk<'_>>(message.payload)
                .ok()
                .and_then(|c| {
                    base64::engine::general_purpose::STANDARD
                        .decode(c.bytes)
                        .ok()
                });
            if let Some(json) = decoded {
                self.on_json(&json);
            }
            return;
        }
        self.on_json(message.payload);
    }
}

/// The keys that name the model in an answer: `"model"`, and Gemini's `"modelVersion"`.
const MODEL_KEYS: [&[u8]; 2] = [b"\"model\"", b"\"modelVersion\""];

/// The first non-empty `"model"` (or `"modelVersion"`) string value in `json`; `keys` are
/// the searchers for [`MODEL_KEYS`].
fn reported_model(keys: &[memmem::Finder<'static>; 2], json: &[u8]) -> Option<String> {
    for key in keys {
        for at in key.find_iter(json) {
            let Some(value) = text::string_value_after(json, at + key.needle().len()) else {
                continue;
            };
            match std::str::from_utf8(value) {
                Ok(name) if !name.is_empty() && !name.contains('\\') => {
                    return Some(name.to_owned());
                }
                _ => {}
            }
        }
    }
    None
}

#[cfg(test)]
mod tests;
