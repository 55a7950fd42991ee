//! One HTTP exchange through the filter: Envoy's callbacks in, decisions out.
//!
//! The proxy-wasm adapter owns one [`Exchange`] per stream and forwards each callback; the
//! exchange answers with what Envoy should do. Nothing here calls Envoy and the adapter keeps
//! no state of its own: it does what the answer says, so the whole lifecycle is testable
//! natively. Where the request stands is one state machine (`flow/stage.rs`).
//!
//! Lifecycle: [`Exchange::on_request_headers`] matches the route (and asks the adapter to
//! drop `content-length` when the body may be rewritten); [`Exchange::on_request_body`]
//! buffers until the end of the body, then reads it (model, stream flag, output cap, input
//! estimate) and may replace it (streamed-usage injection);
//! [`Exchange::on_response_headers`] and [`Exchange::on_response_chunk`] (the one entry for
//! every response chunk) feed the usage reader without ever holding a chunk back once the
//! call is admitted; [`Exchange::finish`] (once the stream ended, on the VM's next tick: see
//! [`crate::charging`]; a second call does nothing) prices the usage, counts the metrics and
//! returns the [`Charge`].
//!
//! With a control plane configured, admission sits in between (see `flow/enforce.rs`): the
//! exchange asks the adapter to post a reservation ([`HeadersAction::Reserve`] or
//! [`BodyAction::Reserve`]) and hold the request until [`Exchange::on_reserve_answer`]; the
//! answer lets the call through, downgrades it or refuses it ([`Resume`]), and releases an
//! answer the upstream sent meanwhile or replaces it with the refusal. The charge then
//! becomes a settlement ([`Charge::settlement`]).

use chrono::{DateTime, Utc};
use tollgate_model::wire::v1::Settlement;
use tollgate_model::{Cost, NanoUsd, Scope, Usage};

use crate::host::{Host, LogLevel};
use crate::metrics::{Metrics, Outcome};
use crate::plugin::{Filter, OversizedPolicy, UnmatchedPolicy};
use crate::providers::{Api, Route};
use crate::reply::LocalReply;
use crate::request::background::tag_body;
use crate::request::deferred::DeferredEstimate;
use crate::request::{
    RequestInfo, RequestProblem, may_add_stream_usage_option, read_request,
    read_request_unestimated,
};
use crate::scopes::{Lookup, Resolved};
use crate::stream::ResponseReader;
use crate::stream::usage_chunk::UsageChunkFilter;

mod answer;
mod background;
mod client_stream;
mod enforce;
mod stage;

pub use answer::{ChunkAction, NewBody, Release, ResponseAction, ResponseHeaders, Resume};
use stage::{Admit, Held, Stage};

/// The request line and host, as Envoy saw them.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// `:method`.
    pub method: &'a str,
    /// `:path`, with the query.
    pub path: &'a str,
    /// `:authority`.
    pub authority: Option<&'a str>,
    /// The request ended with its headers: no body callback will come.
    pub ends_stream: bool,
}

/// The `accept-encoding` a governed request goes upstream with, replacing the client's: the
/// usage reader reads plain bytes only, and providers compress when allowed (OpenAI's JSON
/// in gzip or brotli, Anthropic's SSE streams in gzip). `identity` asks for exactly what the
/// filter can read; the client still gets a valid answer (an encoding it listed is a
/// permission, not a demand), and the filter spends no CPU or `.wasm` size on decompressing.
pub const UPSTREAM_ACCEPT_ENCODING: &str = "identity";

/// What to do after the request headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadersAction {
    /// Not a provider API: let everything through untouched.
    PassThrough,
    /// A provider API: continue; the body comes next. When `may_rewrite`, remove
    /// `content-length` first: the body may change size (streamed-usage injection, a
    /// downgrade), and the headers leave before the body is read.
    ReadBody {
        /// The body may be replaced by one of another length.
        may_rewrite: bool,
    },
    /// Answer locally and stop.
    Reply(LocalReply),
    /// Hold the request (headers and body), post this `reserve` body to the control plane,
    /// and pass its answer to [`Exchange::on_reserve_answer`]. Only for APIs whose model is in
    /// the path, so that a downgrade can still change the path; their body is never
    /// rewritten, so `content-length` stays.
    Reserve(Vec<u8>),
}

/// What to do after a piece of the request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyAction {
    /// Keep buffering: the body is not complete.
    Buffer,
    /// Send the body as it is.
    Continue,
    /// Send this body instead.
    Replace(Vec<u8>),
    /// Answer locally and stop.
    Reply(LocalReply),
    /// Replace the body with `replace` (when set), post `call` to the control plane's
    /// `reserve`, and hold the request until [`Exchange::on_reserve_answer`].
    Reserve {
        /// The new body (streamed-usage injection), if any.
        replace: Option<Vec<u8>>,
        /// The `reserve` body.
        call: Vec<u8>,
    },
}

/// The priced result of one exchange: what gets settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The provider label.
    pub provider: &'static str,
    /// Who the call is attributed to.
    pub scopes: Vec<Scope>,
    /// The model the request named (after any alias), if any.
    pub model: Option<String>,
    /// The usage (with its `estimated` flag).
    pub usage: Usage,
    /// The cost, when the model is priced.
    pub cost: Option<Cost>,
    /// How it ended.
    pub outcome: Outcome,
    /// The call's id for the control plane.
    pub request_id: String,
    /// `Some(true)` when a reservation was made, `Some(false)` when the control plane could
    /// not be asked and the fail mode let the call through; `None` without a control plane
    /// (nothing to settle).
    pub reserved: Option<bool>,
    /// The API called, when a route matched.
    pub api: Option<&'static str>,
    /// When the reservation was asked for, Unix ms.
    pub started_at_ms: Option<i64>,
    /// The model asked for, when a downgrade replaced it.
    pub requested_model: Option<String>,
    /// Who asked for the downgrade.
    pub downgraded_by: Option<String>,
    /// Whether a budget's cut-off stopped the stream.
    pub cut_off: bool,
    /// What the call took from a lease, when it was admitted from one.
    pub lease: Option<crate::lease::Taken>,
}

impl Charge {
    /// What the control plane is told, when it must be told anything: the exact cost (zero
    /// when the call could not be priced; that still releases its reservation).
    pub fn settlement(&self, at_unix_ms: i64) -> Option<Settlement> {
        Some(Settlement {
            request_id: self.request_id.clone(),
            scopes: self.scopes.clone(),
            model: self.model.clone().unwrap_or_default(),
            provider: self.provider.to_owned(),
            cost: self.cost.as_ref().map_or(NanoUsd::ZERO, |c| c.total),
            usage: self.usage,
            reserved: self.reserved?,
            at_unix_ms,
            started_at_unix_ms: self.started_at_ms,
            requested_model: self.requested_model.clone(),
            downgraded_by: self.downgraded_by.clone(),
            api: self.api.map(str::to_owned),
            breakdown: self.cost.as_ref().map(|c| c.breakdown),
            cut_off: self.cut_off,
            billed: Some(self.outcome.is_billed()),
            lease_id: self.lease.as_ref().map(|t| t.lease_id.clone()),
            lease_usd: self.lease.as_ref().map(|t| t.usd),
            lease_tokens: self.lease.as_ref().map(|t| t.tokens),
        })
    }
}

/// One stream's state.
#[derive(Debug, Default)]
pub struct Exchange {
    /// Where the request stands (`flow/stage.rs`).
    stage: Stage,
    route: Option<Route>,
    scopes: Vec<Scope>,
    request: Option<RequestInfo>,
    /// The request's input estimate, when it is made at the charge and only if needed (no
    /// control plane: see [`crate::request::deferred`]).
    deferred_estimate: Option<DeferredEstimate>,
    /// Set when the body was too large to read: its length stands in for the input estimate.
    unread_body_bytes: Option<u64>,
    reader: Option<ResponseReader>,
    status: Option<u16>,
    /// What admission knows of the call (see `flow/enforce.rs`).
    admission: enforce::Admitted,
    /// Takes out the usage chunk the client did not ask for (`flow/client_stream.rs`).
    usage_chunk: Option<UsageChunkFilter>,
    /// A stored response's retrieval or cancel: finds the tag of the call that created it
    /// (`flow/background.rs`).
    stored: Option<background::StoredResponse>,
    /// A background response's creation, tagged with this exchange's settlement id: a
    /// retrieval settles it.
    background_tagged: bool,
}

impl Exchange {
    /// A new exchange, before any callback.
    pub fn new() -> Exchange {
        Exchange::default()
    }

    /// The matched route, once the headers were seen.
    pub fn route(&self) -> Option<&Route> {
        self.route.as_ref()
    }

    /// The request's scopes, once the headers were seen.
    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }

    /// What the request body said, once read. Its `estimated_input_tokens` is 0 when the
    /// estimate is made later: [`Exchange::input_estimate`] has it either way.
    pub fn request(&self) -> Option<&RequestInfo> {
        self.request.as_ref()
    }

    /// The request's input estimate, once its body was read (made now if it was deferred).
    pub fn input_estimate(&self) -> Option<u64> {
        match (&self.deferred_estimate, &self.request) {
            (Some(deferred), _) => Some(deferred.tokens()),
            (None, Some(info)) => Some(info.estimated_input_tokens),
            (None, None) => None,
        }
    }

    /// The request's input estimate while it is not made (no control plane), for the
    /// adapter to count the body it keeps ([`crate::charging::Charging::keep_for_estimate`]).
    pub fn deferred_estimate(&self) -> Option<&DeferredEstimate> {
        self.deferred_estimate.as_ref()
    }

    /// Whether the response's callbacks must reach this exchange: it reads the answer, or
    /// holds it until the call is admitted. `false` for a path it does not govern and once it
    /// is refused or finished, so that the adapter can skip reading the status and copying
    /// each chunk out of the host (a hostcall and a copy per chunk).
    pub fn reads_response(&self) -> bool {
        matches!(self.stage, Stage::Answering { .. }) || self.stage.answer_waits()
    }

    /// Request headers arrived. `lookup` answers the header and property questions of scope
    /// resolution.
    pub fn on_request_headers(
        &mut self,
        filter: &Filter,
        metrics: &mut Metrics,
        host: &dyn Host,
        head: RequestHead<'_>,
        lookup: &mut dyn FnMut(Lookup<'_>) -> Option<String>,
    ) -> HeadersAction {
        match filter
            .routes
            .match_request(head.method, head.path, head.authority)
        {
            Some(route) => {
                let (resolved, rejected) = filter.scopes.resolve(lookup);
                metrics.scope_values_rejected(host, u64::from(rejected));
                let Resolved::Scopes(scopes) = resolved else {
                    self.stage = Stage::Done;
                    metrics.request(host, route.provider.as_str(), Outcome::Rejected);
                    return HeadersAction::Reply(LocalReply::error(
                        Some(&route),
                        403,
                        "no_scope",
                        "this gateway cannot tell who is calling: send the headers your platform team configured",
                    ));
                };
                // Only a downgrade (with a control plane) or the streamed-usage option
                // rewrites a body; the other calls keep the length their client sent.
                let may_rewrite = filter.control_plane.is_some()
                    || may_add_stream_usage_option(&route, filter.request_limits);
                self.scopes = scopes;
                if matches!(route.api, Api::ResponseRetrieval | Api::ResponseCancel) {
                    // Not a new call: nothing to read or reserve; the answer may carry the
                    // usage of the background call that created the response.
                    self.route = Some(route);
                    self.stage = Stage::answering(Admit::Free);
                    self.stored = Some(background::StoredResponse::new());
                    return HeadersAction::ReadBody { may_rewrite: false };
                }
                self.route = Some(route);
                let admit = if filter.control_plane.is_some() {
                    Admit::Undecided
                } else {
                    Admit::Free
                };
                self.stage = Stage::Reading {
                    admit,
                    answer: None,
                };
                match self.reserve_at_headers(filter, host, head, lookup) {
                    None if self.leased() => {
                        self.count_leased(metrics, host);
                        self.stage = Stage::Reading {
                            admit: Admit::Leased,
                            answer: None,
                        };
                        HeadersAction::ReadBody { may_rewrite }
                    }
                    Some(call) => {
                        self.stage = Stage::Waiting {
                            held: Held::Headers {
                                body_follows: !head.ends_stream,
                            },
                            answer: None,
                        };
                        HeadersAction::Reserve(call)
                    }
                    None => HeadersAction::ReadBody { may_rewrite },
                }
            }
            None => {
                self.stage = Stage::Done;
                metrics.request(host, "none", Outcome::Unmatched);
                match filter.unmatched_path {
                    UnmatchedPolicy::Pass => HeadersAction::PassThrough,
                    UnmatchedPolicy::Deny => HeadersAction::Reply(LocalReply::error(
                        None,
                        403,
                        "unmatched_path",
                        "this gateway only forwards known LLM provider APIs",
                    )),
                }
            }
        }
    }

    /// A piece of the request body arrived; `buffered` is the size of everything buffered so
    /// far. `read` fetches the whole buffered body; it is called only at the end.
    pub fn on_request_body(
        &mut self,
        filter: &Filter,
        metrics: &mut Metrics,
        host: &dyn Host,
        buffered: usize,
        end_of_stream: bool,
        read: &mut dyn FnMut() -> Option<Vec<u8>>,
    ) -> BodyAction {
        let admit = match &self.stage {
            // More body arrived while the reservation is in flight: keep holding it.
            Stage::Waiting { .. } => return BodyAction::Buffer,
            Stage::Reading { admit, .. } => *admit,
            _ => return BodyAction::Continue,
        };
        let Some(route) = self.route.as_ref() else {
            return BodyAction::Continue;
        };
        let cap = filter.request_limits.max_body_bytes;
        if buffered > cap {
            metrics.body_problem(host, "too_large");
            host.log(
                LogLevel::Warn,
                &format!("tollgate: request body of {buffered}+ bytes is over the {cap}-byte cap"),
            );
            return match filter.oversized_request {
                OversizedPolicy::Pass => {
                    self.unread_body_bytes = Some(buffered as u64);
                    match self.body_read(filter, metrics, host, admit, buffered) {
                        Some(call) => BodyAction::Reserve {
                            replace: None,
                            call,
                        },
                        None => BodyAction::Continue,
                    }
                }
                OversizedPolicy::Reject => {
                    self.stage = Stage::Done;
                    metrics.request(host, route.provider.as_str(), Outcome::Rejected);
                    BodyAction::Reply(LocalReply::error(
                        Some(route),
                        413,
                        "request_too_large",
                        &format!("request body is over this gateway's {cap}-byte limit"),
                    ))
                }
            };
        }
        if !end_of_stream {
            return BodyAction::Buffer;
        }
        let body = read().unwrap_or_default();
        // Without a control plane only the charge needs the input estimate, and only when the
        // answer reports no usage: most calls never make it.
        let defer = filter.control_plane.is_none();
        let (prices, limits) = (&filter.prices, filter.request_limits);
        let mut info = if defer {
            read_request_unestimated(route, &body, prices, limits)
        } else {
            read_request(route, &body, prices, limits)
        };
        // A background response is tagged with its settlement id, which its retrievals read
        // back (`request/background.rs`).
        let background_tag = (info.background && !defer)
            .then(|| tag_body(&body, &info, self.admission.request_id()))
            .flatten();
        if defer && info.body_is_estimable() {
            self.deferred_estimate = Some(DeferredEstimate::new(body));
        }
        if let Some(problem) = &info.problem {
            let word = match problem {
                RequestProblem::TooLarge { .. } => "too_large",
                RequestProblem::InvalidJson(_) => "invalid_json",
                RequestProblem::NoModel => "no_model",
            };
            metrics.body_problem(host, word);
            host.log(LogLevel::Info, &format!("tollgate: {problem}"));
        }
        let mut replace = info.rewritten_body.take();
        if let Some(tagged) = background_tag {
            replace = Some(tagged);
            self.background_tagged = true;
        }
        if replace.is_some() && !self.background_tagged {
            // The filter asked for streamed usage: the client did not.
            self.usage_chunk = Some(UsageChunkFilter::new());
        }
        self.request = Some(info);
        // Held for a reservation, a body-less call keeps no body: there is no body buffer to
        // replace (`buffered == 0`).
        let held_len = match &replace {
            Some(body) if buffered > 0 => body.len(),
            _ => buffered,
        };
        if let Some(call) = self.body_read(filter, metrics, host, admit, held_len) {
            let replace = replace.filter(|_| buffered > 0);
            return BodyAction::Reserve { replace, call };
        }
        match replace {
            Some(new_body) => BodyAction::Replace(new_body),
            None => BodyAction::Continue,
        }
    }

    /// The bytes the exchange holds for its charge (the response reader's buffers).
    pub fn held_bytes(&self) -> usize {
        self.reader.as_ref().map_or(0, ResponseReader::held_bytes)
            + self
                .usage_chunk
                .as_ref()
                .map_or(0, UsageChunkFilter::held_bytes)
            + self
                .stored
                .as_ref()
                .map_or(0, background::StoredResponse::held_bytes)
    }

    /// Whether [`Exchange::finish`] still has something to do: a governed stream that was
    /// not finished yet. The adapter skips keeping anything for the others.
    pub fn is_open(&self) -> bool {
        !matches!(self.stage, Stage::New | Stage::Done)
    }

    /// The stream is over (completed, reset or abandoned) at `ended_at`. Prices what was used
    /// at the prices of that time, counts the metrics and returns the charge; `None` when
    /// there is nothing to charge or when this exchange was already finished.
    ///
    /// `ended_at` is given rather than read from `host`: the adapter may finish an exchange
    /// a little after its stream ended (on the next tick, off the request's path).
    pub fn finish(
        &mut self,
        filter: &Filter,
        metrics: &mut Metrics,
        host: &dyn Host,
        ended_at: DateTime<Utc>,
    ) -> Option<Charge> {
        let stage = std::mem::replace(&mut self.stage, Stage::Done);
        if matches!(stage, Stage::Waiting { .. }) {
            self.abandon_admission(metrics, host);
        }
        let end = End {
            settles: stage.settles(),
            cut_off: stage.cut_off(),
        };
        let route = self.route.as_ref()?;
        let provider = route.provider.as_str();
        let release = |x: &mut Exchange, outcome| {
            // Nothing was used; a reservation that was (or may have been) made is released.
            end.settles?;
            let model = x.priced_model();
            Some(x.charge(provider, model, Usage::default(), None, outcome, end))
        };
        match stage {
            Stage::Answering { .. } => {}
            Stage::Released => return release(self, Outcome::Denied),
            // The client left while its request was read or held for the control plane.
            Stage::Reading { .. }
            | Stage::Waiting {
                held: Held::Headers { .. },
                ..
            } => return release(self, Outcome::NoResponse),
            // Held at the end of its body: the request was read, no answer was.
            Stage::Waiting {
                held: Held::Body { .. },
                ..
            } => {
                metrics.request(host, provider, Outcome::NoResponse);
                return release(self, Outcome::NoResponse);
            }
            Stage::New | Stage::Done => return None,
        }
        let Some(reader) = self.reader.take() else {
            // No answer at all: providers do not bill a call that never got a response. A
            // reservation is still released (settled at zero) rather than left to expire.
            metrics.request(host, provider, Outcome::NoResponse);
            return release(self, Outcome::NoResponse);
        };
        let outcome = reader.finish(|| {
            self.input_estimate()
                .or(self.unread_body_bytes)
                .unwrap_or(0)
        });
        metrics.dropped_events(host, provider, "oversized", outcome.stats.oversized_events);
        metrics.dropped_events(host, provider, "corrupt", outcome.stats.corrupt_events);
        metrics.invalid_usage_fields(
            host,
            provider,
            u64::from(outcome.stats.invalid_usage_fields),
        );
        if let Some(stored) = self.stored.take() {
            return self.finish_retrieval(filter, metrics, host, ended_at, &stored, outcome);
        }
        let usage = outcome.usage;
        if self.waits_for_retrieval(filter, &usage) {
            // Queued: the retrieval that brings the usage settles this call's id.
            metrics.request(host, provider, Outcome::Background);
            return None;
        }
        // The request's model (or the path's: Azure deployment, Gemini, Bedrock) decides the
        // price; the model the answer reports prices what those do not name or the table does
        // not know (an unmapped Azure deployment, a body too large to read).
        let named = self.priced_model();
        let model = match (&named, &outcome.model) {
            (Some(n), Some(reported))
                if filter.prices.resolve(n).is_none()
                    && filter.prices.resolve(reported).is_some() =>
            {
                Some(reported.clone())
            }
            (None, reported) => reported.clone(),
            (named, _) => named.clone(),
        };
        if self.status.is_some_and(|s| s >= 400) && usage.estimated {
            // Providers do not bill failed calls; one that still reports usage is charged for it.
            metrics.request(host, provider, Outcome::ProviderError);
            return Some(self.charge(provider, model, usage, None, Outcome::ProviderError, end));
        }
        metrics.tokens(host, provider, &usage);
        let (cost, outcome) = match model.as_deref() {
            None => (None, Outcome::NoModel),
            Some(m) => match filter.prices.cost(m, &usage, ended_at) {
                Ok(cost) => {
                    metrics.cost(host, provider, cost.total.nanos());
                    (
                        Some(cost),
                        if usage.estimated {
                            Outcome::Estimated
                        } else {
                            Outcome::Charged
                        },
                    )
                }
                Err(e) => {
                    host.log(
                        LogLevel::Warn,
                        &format!("tollgate: {e}: usage counted, not priced"),
                    );
                    (None, Outcome::UnknownModel)
                }
            },
        };
        metrics.request(host, provider, outcome);
        Some(self.charge(provider, model, usage, cost, outcome, end))
    }
}

/// What the stage a stream ended in says of its charge.
#[derive(Debug, Default, Clone, Copy)]
struct End {
    /// `Some(reserved)` when the charge is settled (see [`Charge::reserved`]).
    settles: Option<bool>,
    /// A budget's cut-off stopped the stream.
    cut_off: bool,
}

impl Exchange {
    /// The exchange's charge, taking its scopes (it is built once, at the end).
    fn charge(
        &mut self,
        provider: &'static str,
        model: Option<String>,
        usage: Usage,
        cost: Option<Cost>,
        outcome: Outcome,
        end: End,
    ) -> Charge {
        let (started_at_ms, requested_model, downgraded_by) = self.admission.ledger_facts();
        Charge {
            api: self.route.as_ref().map(|r| r.api.as_str()),
            started_at_ms,
            requested_model,
            downgraded_by,
            cut_off: end.cut_off,
            provider,
            scopes: std::mem::take(&mut self.scopes),
            model,
            usage,
            cost,
            outcome,
            request_id: self.admission.request_id().to_owned(),
            reserved: end.settles,
            lease: self.admission.lease.take(),
        }
    }

    /// The model the request named: the body's, else the path's (after any downgrade).
    fn priced_model(&self) -> Option<String> {
        self.request
            .as_ref()
            .and_then(|r| r.model.clone())
            .or_else(|| self.route.as_ref().and_then(|r| r.path_model.clone()))
    }
}

#[cfg(test)]
mod tests;
