//! Tollgate's proxy-wasm filter: the only crate that names `proxy_wasm`.
//!
//! It turns Envoy's callbacks into calls on [`tollgate_filter_core::flow::Exchange`] and does
//! what the exchange answers; all behaviour lives in `tollgate-filter-core`. One root context
//! per VM (one VM per Envoy worker) parses the plugin configuration once; each HTTP stream
//! gets an [`http::HttpExchange`].
//!
//! A bad configuration makes `on_configure` return false with a critical log line naming the
//! field: Envoy then refuses the filter config (at start-up, Envoy does not start; on an xDS
//! update, the update is rejected and the previous config keeps serving).

// `proxy_wasm::main!` expands to an undocumented `pub extern "C" fn _start`.
#![allow(missing_docs)]

pub mod host;
pub mod http;
pub mod root;
#[cfg(feature = "vm-bench")]
mod vm_bench;

use proxy_wasm::traits::RootContext;
use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    // Our code does not panic (the workspace lints deny it); if a dependency does, say so at
    // critical level before the VM traps, so the reload shows up with its cause in the log.
    std::panic::set_hook(Box::new(|info| {
        let _ = proxy_wasm::hostcalls::log(LogLevel::Critical, &format!("tollgate: panic: {info}"));
    }));
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(root::TollgateRoot::default()) });
}}
