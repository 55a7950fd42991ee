//! One HTTP stream: forwards Envoy's callbacks to the core's [`Exchange`] and carries out
//! its answers with hostcalls.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};
use tollgate_filter_core::flow::{BodyAction, Exchange, HeadersAction, RequestHead};
use tollgate_filter_core::metrics::Metrics;
use tollgate_filter_core::plugin::Filter;
use tollgate_filter_core::reply::LocalReply;

use tollgate_filter_core::scopes::Lookup;

use crate::host::EnvoyHost;

/// Answers scope resolution's questions with hostcalls (request phase only). A missing
/// header or property is `None`; a property that is not UTF-8 is skipped.
fn lookup(what: Lookup<'_>) -> Option<String> {
    match what {
        Lookup::Header(name) => hostcalls::get_map_value(MapType::HttpRequestHeaders, name)
            .ok()
            .flatten(),
        Lookup::Property(path) => {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            let bytes = hostcalls::get_property(path).ok().flatten()?;
            String::from_utf8(bytes).ok()
        }
    }
}

/// Per-stream state.
pub struct HttpExchange {
    filter: Rc<Filter>,
    metrics: Rc<RefCell<Metrics>>,
    exchange: Exchange,
}

impl HttpExchange {
    /// A stream governed by `filter`, counting into the VM's `metrics`.
    pub fn new(filter: Rc<Filter>, metrics: Rc<RefCell<Metrics>>) -> HttpExchange {
        HttpExchange {
            filter,
            metrics,
            exchange: Exchange::new(),
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

    fn request_body(&mut self, buffered: usize, end_of_stream: bool) -> Action {
        // A hostcall, not the trait helper, so the closure does not borrow `self`.
        // With nothing buffered (a body-less call ends at its headers) there is no body buffer
        // to ask for: no hostcall outside the phase Envoy allows it in.
        let mut read = || {
            if buffered == 0 {
                return Some(Vec::new());
            }
            hostcalls::get_buffer(BufferType::HttpRequestBody, 0, buffered)
                .ok()
                .flatten()
        };
        let action = {
            let mut metrics = self.metrics.borrow_mut();
            self.exchange.on_request_body(
                &self.filter,
                &mut metrics,
                &EnvoyHost,
                buffered,
                end_of_stream,
                &mut read,
            )
        };
        match action {
            BodyAction::Buffer => Action::Pause,
            BodyAction::Continue => Action::Continue,
            BodyAction::Replace(body) => {
                self.set_http_request_body(0, buffered, &body);
                Action::Continue
            }
            BodyAction::Reply(reply) => self.reply(&reply),
        }
    }
}

impl Context for HttpExchange {}

impl HttpContext for HttpExchange {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let method = self.get_http_request_header(":method").unwrap_or_default();
        let path = self.get_http_request_header(":path").unwrap_or_default();
        let authority = self.get_http_request_header(":authority");
        let head = RequestHead {
            method: &method,
            path: &path,
            authority: authority.as_deref(),
        };
        let action = {
            let mut metrics = self.metrics.borrow_mut();
            self.exchange.on_request_headers(
                &self.filter,
                &mut metrics,
                &EnvoyHost,
                head,
                &mut lookup,
            )
        };
        match action {
            HeadersAction::PassThrough => Action::Continue,
            HeadersAction::ReadBody => {
                // The body may be rewritten (usage injection): a stale length would corrupt it.
                self.set_http_request_header("content-length", None);
                if end_of_stream {
                    // No body will come; read the empty one now.
                    return self.request_body(0, true);
                }
                Action::Continue
            }
            HeadersAction::Reply(reply) => self.reply(&reply),
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.request_body(body_size, end_of_stream)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let status = self
            .get_http_response_header(":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        self.exchange.on_response_headers(&self.filter, status);
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, _end_of_stream: bool) -> Action {
        // Each chunk is passed on at once; only a copy is scanned for usage.
        if body_size > 0
            && let Some(chunk) = self.get_http_response_body(0, body_size)
        {
            self.exchange.on_response_body(&chunk);
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        // Envoy calls on_log then on_done at every stream end, client resets included;
        // finish() charges once and ignores the second call.
        let mut metrics = self.metrics.borrow_mut();
        let _charge = self.exchange.finish(&self.filter, &mut metrics, &EnvoyHost);
    }
}
