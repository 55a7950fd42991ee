//! One HTTP stream: forwards Envoy's callbacks to the core's [`Exchange`] and carries out
//! its answers with hostcalls. It keeps no state of its own: where the request stands (held
//! for the control plane, its answer held until admission) is the exchange's.
//!
//! The SDK panics on host statuses it does not expect, so each hostcall here is made only in
//! a phase where Envoy allows it: request headers and `:path` only while the headers are
//! held (a header-time reservation), the request body only while it is buffered, the
//! callout's headers only when the callout produced an answer.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};
use tollgate_filter_core::charging::Charging;
use tollgate_filter_core::flow::{
    BodyAction, ChunkAction, Exchange, HeadersAction, RequestHead, ResponseAction, ResponseHeaders,
    Resume, UPSTREAM_ACCEPT_ENCODING,
};
use tollgate_filter_core::host::{Callout, Host};
use tollgate_filter_core::plugin::Filter;
use tollgate_filter_core::reply::LocalReply;
use tollgate_filter_core::scopes::Lookup;

use crate::host::EnvoyHost;

/// The request headers, read with one hostcall in `on_http_request_headers`.
///
/// Reading a header by name costs a hostcall and, when it is there, a call from Envoy back
/// into the VM to allocate its copy: about 1.4 µs each in Envoy 1.40's V8, 0.24 µs for an
/// absent one. A governed request asks for eleven (`:method`, `:path`, `:authority`, then
/// one per scope source and four for the API key); all of them at once cost one of each.
struct RequestHeaders(Vec<(String, Vec<u8>)>);

impl RequestHeaders {
    /// All of them (request-headers phase only).
    fn read() -> RequestHeaders {
        RequestHeaders(hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default())
    }

    /// The first value of `name`, as Envoy answers a lookup by name; `None` when the header
    /// is missing or its value is not UTF-8 (skipped, like a property that is not).
    fn get(&self, name: &str) -> Option<&str> {
        std::str::from_utf8(self.bytes(name)?).ok()
    }

    /// The first value of `name` with any bytes that are not UTF-8 replaced (U+FFFD).
    fn get_lossy(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        self.bytes(name).map(String::from_utf8_lossy)
    }

    /// The first value of `name`, as Envoy gave it.
    fn bytes(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Answers scope resolution's questions: headers from this map, properties with a
    /// hostcall (request phase only). A missing header or property is `None`.
    fn lookup(&self, what: Lookup<'_>) -> Option<String> {
        match what {
            Lookup::Header(name) => self.get(name).map(str::to_owned),
            Lookup::Property(path) => {
                let path: Vec<&str> = path.iter().map(String::as_str).collect();
                let bytes = hostcalls::get_property(path).ok().flatten()?;
                String::from_utf8(bytes).ok()
            }
        }
    }
}

/// The buffered request body's first `len` bytes (a hostcall, not the trait helper, so a
/// closure using it does not borrow the context). Only while Envoy holds a body: `len > 0`.
fn buffered_request_body(len: usize) -> Option<Vec<u8>> {
    hostcalls::get_buffer(BufferType::HttpRequestBody, 0, len)
        .ok()
        .flatten()
}

/// Per-stream state: the core's exchange (the adapter keeps none of its own).
pub struct HttpExchange {
    filter: Rc<Filter>,
    charging: Rc<Charging>,
    exchange: Exchange,
}

/// What the control plane's answer came to, for the held request.
enum Decided {
    /// Nothing waited for it.
    Nothing,
    /// Refused: the local reply went out (it also replaces an answer held meanwhile).
    Refused,
    /// Admitted, the request changed as the core said: let it go, then release the answer
    /// held meanwhile, if any, with these header changes.
    Go(Option<ResponseHeaders>),
}

impl HttpExchange {
    /// A stream governed by `filter`, counting and charged through the VM's `charging`.
    pub fn new(filter: Rc<Filter>, charging: Rc<Charging>) -> HttpExchange {
        HttpExchange {
            filter,
            charging,
            exchange: Exchange::new(),
        }
    }

    /// Makes the exchange's changes to the response headers. Not inlined: it has two
    /// callers, and a copy in each cost the `.wasm` ~10 KB.
    #[inline(never)]
    fn change_response_headers(&mut self, headers: &ResponseHeaders) {
        for (name, value) in &headers.add {
            self.add_http_response_header(name, value);
        }
        if headers.drop_content_length {
            self.set_http_response_header("content-length", None);
        }
    }

    fn reply(&self, reply: &LocalReply) -> Action {
        let headers: Vec<(&str, &str)> = reply
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        self.send_http_response(u32::from(reply.status), headers, Some(&reply.body));
        Action::Pause
    }

    /// Posts a reservation and holds the request; when the post cannot even start, the
    /// answer (the fail mode) is carried out at once.
    fn reserve(&mut self, call: &[u8]) -> Action {
        let token = self.filter.control_plane.as_ref().and_then(|cp| {
            EnvoyHost
                .dispatch_http_call(&Callout {
                    upstream: &cp.cluster,
                    headers: &cp.reserve_headers(),
                    body: call,
                    timeout: cp.timeout,
                })
                .ok()
        });
        if token.is_some() {
            return Action::Pause;
        }
        match self.decided(None) {
            Decided::Refused => Action::Pause,
            Decided::Nothing => Action::Continue,
            Decided::Go(answer) => {
                if let Some(headers) = answer {
                    self.release_answer(&headers);
                }
                Action::Continue
            }
        }
    }

    /// Hands the control plane's answer to the exchange and carries out what it decided for
    /// the held request: the refusal is sent, or the request's changes are made.
    fn decided(&mut self, answer: Option<(u16, &[u8])>) -> Decided {
        let resume = {
            let mut metrics = self.charging.metrics.borrow_mut();
            self.exchange.on_reserve_answer(
                &self.filter,
                &mut metrics,
                &EnvoyHost,
                answer,
                // The core asks only for a body it holds (`len > 0`), while Envoy buffers it.
                &mut buffered_request_body,
            )
        };
        match resume {
            Resume::Nothing => Decided::Nothing,
            Resume::Reply(reply) => {
                self.reply(&reply);
                Decided::Refused
            }
            Resume::Go(release) => {
                if let Some(path) = release.path {
                    self.set_http_request_header(":path", Some(&path));
                }
                if let Some(body) = release.body {
                    self.set_http_request_body(0, body.replaces, &body.bytes);
                }
                Decided::Go(release.answer)
            }
        }
    }

    /// An answer held until admission goes on, with the exchange's header changes.
    fn release_answer(&mut self, headers: &ResponseHeaders) {
        self.change_response_headers(headers);
        self.resume_http_response();
    }

    fn request_body(&mut self, buffered: usize, end_of_stream: bool) -> Action {
        // A hostcall, not the trait helper, so the closure does not borrow `self`.
        // With nothing buffered (a body-less call ends at its headers) there is no body buffer
        // to ask for: no hostcall outside the phase Envoy allows it in.
        let mut read = || {
            if buffered == 0 {
                return Some(Vec::new());
            }
            buffered_request_body(buffered)
        };
        let action = {
            let mut metrics = self.charging.metrics.borrow_mut();
            self.exchange.on_request_body(
                &self.filter,
                &mut metrics,
                &EnvoyHost,
                buffered,
                end_of_stream,
                &mut read,
            )
        };
        if let Some(estimate) = self.exchange.deferred_estimate() {
            // Kept for the charge, which needs it only if the answer reports no usage.
            self.charging.keep_for_estimate(estimate);
        }
        match action {
            BodyAction::Buffer => Action::Pause,
            BodyAction::Continue => Action::Continue,
            BodyAction::Replace(body) => {
                self.set_http_request_body(0, buffered, &body);
                Action::Continue
            }
            BodyAction::Reply(reply) => self.reply(&reply),
            BodyAction::Reserve { replace, call } => {
                if let Some(body) = replace {
                    self.set_http_request_body(0, buffered, &body);
                }
                self.reserve(&call)
            }
        }
    }
}

impl Context for HttpExchange {
    fn on_http_call_response(
        &mut self,
        _token_id: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        // A reset callout comes with no headers at all: nothing to read.
        let answer = (num_headers > 0).then(|| {
            let status = self
                .get_http_call_response_header(":status")
                .and_then(|s| s.parse::<u16>().ok())
                .unwrap_or(0);
            let body = if body_size > 0 {
                self.get_http_call_response_body(0, body_size)
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            (status, body)
        });
        if let Decided::Go(answer) = self.decided(answer.as_ref().map(|(s, b)| (*s, b.as_slice())))
        {
            self.resume_http_request();
            if let Some(headers) = answer {
                self.release_answer(&headers);
            }
        }
    }
}

impl HttpContext for HttpExchange {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let headers = RequestHeaders::read();
        // Read lossily: a byte that is not UTF-8 (say in the query) must not make the path
        // match no route, which would pass the call ungoverned.
        let (method, path, authority) = (
            headers.get_lossy(":method"),
            headers.get_lossy(":path"),
            headers.get_lossy(":authority"),
        );
        let head = RequestHead {
            method: method.as_deref().unwrap_or_default(),
            path: path.as_deref().unwrap_or_default(),
            authority: authority.as_deref(),
            ends_stream: end_of_stream,
        };
        let action = {
            let mut metrics = self.charging.metrics.borrow_mut();
            self.exchange.on_request_headers(
                &self.filter,
                &mut metrics,
                &EnvoyHost,
                head,
                &mut |what| headers.lookup(what),
            )
        };
        if matches!(
            action,
            HeadersAction::ReadBody { .. } | HeadersAction::Reserve(_)
        ) {
            // The answer must come in bytes the usage reader can read.
            self.set_http_request_header("accept-encoding", Some(UPSTREAM_ACCEPT_ENCODING));
        }
        match action {
            HeadersAction::PassThrough => Action::Continue,
            HeadersAction::ReadBody { may_rewrite } => {
                // A body that may be rewritten (usage injection, a downgrade) must not go with
                // the old length: Envoy sends these headers on before the body is read (a
                // pause here would hold the body back from this filter too: proxy-wasm turns
                // it into StopAllIterationAndWatermark). The upstream then gets it chunked.
                if may_rewrite {
                    self.set_http_request_header("content-length", None);
                }
                if end_of_stream {
                    // No body will come; read the empty one now.
                    return self.request_body(0, true);
                }
                Action::Continue
            }
            // The length stays: only APIs that name the model in the path reserve here, and
            // their downgrade rewrites the path, never the body.
            HeadersAction::Reserve(call) => self.reserve(&call),
            HeadersAction::Reply(reply) => self.reply(&reply),
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.request_body(body_size, end_of_stream)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if !self.exchange.reads_response() {
            return Action::Continue;
        }
        let status = self
            .get_http_response_header(":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        match self.exchange.on_response_headers(&self.filter, status) {
            // The upstream answered before the call was admitted: Envoy buffers the answer
            // until the control plane decides.
            ResponseAction::Hold => Action::Pause,
            ResponseAction::Continue(headers) => {
                self.change_response_headers(&headers);
                Action::Continue
            }
        }
    }

    fn on_http_response_body(&mut self, body_size: usize, _end_of_stream: bool) -> Action {
        if !self.exchange.reads_response() {
            return Action::Continue;
        }
        // A copy goes to the exchange; while the answer is held it is everything Envoy
        // buffered so far.
        let chunk = if body_size > 0 {
            self.get_http_response_body(0, body_size)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let action = {
            let mut metrics = self.charging.metrics.borrow_mut();
            self.exchange
                .on_response_chunk(&self.filter, &mut metrics, &EnvoyHost, chunk)
        };
        match action {
            ChunkAction::Pass => {}
            ChunkAction::Replace(body) => self.set_http_response_body(0, body_size, &body),
            // The client already has the error event; this also closes the upstream
            // connection, which is what stops the provider generating.
            ChunkAction::Reset => self.reset_http_response(),
            ChunkAction::Hold => return Action::Pause,
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        // Envoy calls on_log at every stream end, client resets included. The charge waits
        // for the root's tick: on_log runs before the client has its last byte.
        self.charging
            .ended(&EnvoyHost, &self.filter, std::mem::take(&mut self.exchange));
    }
}
