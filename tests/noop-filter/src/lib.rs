//! The latency baselines for Tollgate's benches: the least a Rust proxy-wasm filter can do
//! (one request-header callback, one counter). What Tollgate adds over this is its own work;
//! what this adds over a plain route is the cost of Wasm in Envoy.
//!
//! With the configuration `buffer` it also holds the request body until its end (as any
//! filter that reads the body before the call leaves must) and reads it once: the floor for
//! a body-reading filter.

// `proxy_wasm::main!` expands to an undocumented `pub extern "C" fn _start`.
#![allow(missing_docs)]

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(NoopRoot { requests: None, buffer: false }) });
}}

struct NoopRoot {
    requests: Option<u32>,
    buffer: bool,
}

impl Context for NoopRoot {}

impl RootContext for NoopRoot {
    fn on_vm_start(&mut self, _: usize) -> bool {
        self.requests =
            hostcalls::define_metric(MetricType::Counter, "tollgate_noop_requests_total").ok();
        true
    }

    fn on_configure(&mut self, _: usize) -> bool {
        self.buffer = self
            .get_plugin_configuration()
            .is_some_and(|c| String::from_utf8_lossy(&c).contains("buffer"));
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(NoopHttp {
            requests: self.requests,
            buffer: self.buffer,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct NoopHttp {
    requests: Option<u32>,
    buffer: bool,
}

impl Context for NoopHttp {}

impl HttpContext for NoopHttp {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        if let Some(id) = self.requests {
            let _ = hostcalls::increment_metric(id, 1);
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.buffer {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let _ = self.get_http_request_body(0, body_size);
        Action::Continue
    }
}
