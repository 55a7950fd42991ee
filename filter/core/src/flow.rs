//! One HTTP exchange through the filter: Envoy's callbacks in, decisions out.
//!
//! The proxy-wasm adapter owns one [`Exchange`] per stream and forwards each callback; the
//! exchange answers with what Envoy should do. Nothing here calls Envoy: the adapter does
//! what the answer says, so the whole lifecycle is testable natively.
//!
//! Lifecycle: [`Exchange::on_request_headers`] matches the route (and asks the adapter to
//! drop `content-length`, because the body may be rewritten); [`Exchange::on_request_body`]
//! buffers until the end of the body, then reads it (model, stream flag, output cap, input
//! estimate) and may replace it (streamed-usage injection);
//! [`Exchange::on_response_headers`] and [`Exchange::on_response_body`] feed the usage
//! reader without ever holding a chunk back; [`Exchange::finish`] (from `on_log` or
//! `on_done`, whichever comes first; the second call does nothing) prices the usage, counts
//! the metrics and returns the [`Charge`].

use tollgate_model::{Cost, Scope, Usage};

use crate::host::{Host, LogLevel};
use crate::metrics::{Metrics, Outcome};
use crate::plugin::{Filter, OversizedPolicy, UnmatchedPolicy};
use crate::providers::Route;
use crate::reply::LocalReply;
use crate::request::{RequestInfo, RequestProblem, read_request};
use crate::scopes::{Lookup, Resolved};
use crate::stream::ResponseReader;

/// The request line and host, as Envoy saw them.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// `:method`.
    pub method: &'a str,
    /// `:path`, with the query.
    pub path: &'a str,
    /// `:authority`.
    pub authority: Option<&'a str>,
}

/// What to do after the request headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadersAction {
    /// Not a provider API: let everything through untouched.
    PassThrough,
    /// A provider API: remove `content-length` (the body may change size) and continue;
    /// the body comes next.
    ReadBody,
    /// Answer locally and stop.
    Reply(LocalReply),
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
}

#[derive(Debug, Default)]
enum Phase {
    #[default]
    New,
    /// Governed, request body not read yet.
    ReadingRequest,
    /// Request read (or skipped); waiting for / reading the answer.
    Answered,
    /// Charged or abandoned; every later callback is a no-op.
    Done,
}

/// One stream's state.
#[derive(Debug, Default)]
pub struct Exchange {
    phase: Phase,
    route: Option<Route>,
    scopes: Vec<Scope>,
    request: Option<RequestInfo>,
    /// Set when the body was too large to read: its length stands in for the input estimate.
    unread_body_bytes: Option<u64>,
    reader: Option<ResponseReader>,
    status: Option<u16>,
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

    /// What the request body said, once read.
    pub fn request(&self) -> Option<&RequestInfo> {
        self.request.as_ref()
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
                    self.phase = Phase::Done;
                    metrics.request(host, route.provider.as_str(), Outcome::Rejected);
                    return HeadersAction::Reply(LocalReply::error(
                        Some(&route),
                        403,
                        "no_scope",
                        "this gateway cannot tell who is calling: send the headers your platform team configured",
                    ));
                };
                self.scopes = scopes;
                self.route = Some(route);
                self.phase = Phase::ReadingRequest;
                HeadersAction::ReadBody
            }
            None => {
                self.phase = Phase::Done;
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
        if !matches!(self.phase, Phase::ReadingRequest) {
            return BodyAction::Continue;
        }
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
                    self.phase = Phase::Answered;
                    BodyAction::Continue
                }
                OversizedPolicy::Reject => {
                    self.phase = Phase::Done;
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
        let mut info = read_request(route, &body, &filter.prices, filter.request_limits);
        self.phase = Phase::Answered;
        if let Some(problem) = &info.problem {
            let word = match problem {
                RequestProblem::TooLarge { .. } => "too_large",
                RequestProblem::InvalidJson(_) => "invalid_json",
                RequestProblem::NoModel => "no_model",
            };
            metrics.body_problem(host, word);
            host.log(LogLevel::Info, &format!("tollgate: {problem}"));
        }
        let action = match info.rewritten_body.take() {
            Some(new_body) => BodyAction::Replace(new_body),
            None => BodyAction::Continue,
        };
        self.request = Some(info);
        action
    }

    /// Response headers arrived with `status`.
    pub fn on_response_headers(&mut self, filter: &Filter, status: u16) {
        if !matches!(self.phase, Phase::Answered) {
            return;
        }
        let Some(route) = self.route.as_ref() else {
            return;
        };
        let streaming = self.request.as_ref().is_some_and(|r| r.streaming) || route.stream_endpoint;
        self.status = Some(status);
        self.reader = Some(ResponseReader::new(
            route.api.dialect(),
            route.framing(streaming),
            filter.stream_limits,
        ));
    }

    /// A piece of the response body passed through (it is never held back).
    pub fn on_response_body(&mut self, chunk: &[u8]) {
        if let Some(reader) = self.reader.as_mut() {
            reader.feed(chunk);
        }
    }

    /// The stream is over (completed, reset or abandoned). Prices what was used, counts the
    /// metrics and returns the charge; `None` when there is nothing to charge or when this
    /// exchange was already finished.
    pub fn finish(
        &mut self,
        filter: &Filter,
        metrics: &mut Metrics,
        host: &dyn Host,
    ) -> Option<Charge> {
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        if !matches!(phase, Phase::Answered) {
            return None;
        }
        let route = self.route.as_ref()?;
        let provider = route.provider.as_str();
        let Some(reader) = self.reader.take() else {
            // No answer at all: providers do not bill a call that never got a response.
            metrics.request(host, provider, Outcome::NoResponse);
            return None;
        };
        let input_estimate = self
            .request
            .as_ref()
            .map(|r| r.estimated_input_tokens)
            .or(self.unread_body_bytes)
            .unwrap_or(0);
        let outcome = reader.finish(input_estimate);
        metrics.dropped_events(host, provider, "oversized", outcome.stats.oversized_events);
        metrics.dropped_events(host, provider, "corrupt", outcome.stats.corrupt_events);
        metrics.invalid_usage_fields(
            host,
            provider,
            u64::from(outcome.stats.invalid_usage_fields),
        );
        let usage = outcome.usage;
        // The request's model (or the path's: Azure deployment, Gemini, Bedrock) decides the
        // price; the model the answer reports prices what those do not name or the table does
        // not know (an unmapped Azure deployment, a body too large to read).
        let named = self
            .request
            .as_ref()
            .and_then(|r| r.model.clone())
            .or_else(|| route.path_model.clone());
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
            return Some(Charge {
                provider,
                scopes: std::mem::take(&mut self.scopes),
                model,
                usage,
                cost: None,
                outcome: Outcome::ProviderError,
            });
        }
        metrics.tokens(host, provider, &usage);
        let (cost, outcome) = match model.as_deref() {
            None => (None, Outcome::NoModel),
            Some(m) => match filter.prices.cost(m, &usage, host.now()) {
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
        Some(Charge {
            provider,
            scopes: std::mem::take(&mut self.scopes),
            model,
            usage,
            cost,
            outcome,
        })
    }
}

#[cfg(test)]
mod tests;
