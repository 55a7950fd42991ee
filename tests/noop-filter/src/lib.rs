//! The latency baselines for Tollgate's benches: the least a Rust proxy-wasm filter can do
//! (one request-header callback, one counter). What Tollgate adds over this is its own work;
//! what this adds over a plain route is the cost of Wasm in Envoy.
//!
//! With the configuration `buffer` it also holds the request body until its end (as any
//! filter that reads the body before the call leaves must) and reads it once: the floor for
//! a body-reading filter.
//!
//! With `reads` it also makes, and ignores the answers of, every hostcall Tollgate makes on a
//! non-streamed call without a control plane: all request headers in one read, the
//! `content-length` removal (on paths ending in `/completions`, as Tollgate on the bench's
//! OpenAI routes), the body, the response's `:status`, a copy of each response chunk, the
//! clock at `on_log`. What Tollgate adds over this is its own computing.

// `proxy_wasm::main!` expands to an undocumented `pub extern "C" fn _start`.
#![allow(missing_docs)]

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(NoopRoot { requests: None, mode: Mode::Nothing }) });
}}

/// How much the filter does, from its configuration.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    /// One request-header callback and one counter.
    Nothing,
    /// Also holds and reads the request body.
    Buffer,
    /// Also makes Tollgate's other hostcalls.
    Reads,
}

struct NoopRoot {
    requests: Option<u32>,
    mode: Mode,
}

impl Context for NoopRoot {}

impl RootContext for NoopRoot {
    fn on_vm_start(&mut self, _: usize) -> bool {
        self.requests =
            hostcalls::define_metric(MetricType::Counter, "tollgate_noop_requests_total").ok();
        true
    }

    fn on_configure(&mut self, _: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        let config = String::from_utf8_lossy(&config);
        self.mode = if config.contains("reads") {
            Mode::Reads
        } else if config.contains("buffer") {
            Mode::Buffer
        } else {
            Mode::Nothing
        };
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(NoopHttp {
            requests: self.requests,
            mode: self.mode,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct NoopHttp {
    requests: Option<u32>,
    mode: Mode,
}

impl Context for NoopHttp {}

impl HttpContext for NoopHttp {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        if let Some(id) = self.requests {
            let _ = hostcalls::increment_metric(id, 1);
        }
        if self.mode == Mode::Reads {
            let headers = hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default();
            // As Tollgate without a control plane: only an OpenAI-style chat or completions
            // body may be rewritten (the streamed-usage option), so only it loses its length.
            let path = headers
                .iter()
                .find(|(name, _)| name == ":path")
                .map(|(_, value)| value.split(|&b| b == b'?').next().unwrap_or_default())
                .unwrap_or_default();
            if path.ends_with(b"/completions") {
                let _ =
                    hostcalls::set_map_value(MapType::HttpRequestHeaders, "content-length", None);
            }
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.mode < Mode::Buffer {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let _ = self.get_http_request_body(0, body_size);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        if self.mode == Mode::Reads {
            let _ = hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, ":status");
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, _: bool) -> Action {
        if self.mode == Mode::Reads && body_size > 0 {
            let _ = hostcalls::get_buffer(BufferType::HttpResponseBody, 0, body_size);
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        if self.mode == Mode::Reads {
            let _ = hostcalls::get_current_time();
        }
    }
}
