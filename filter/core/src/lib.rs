//! Tollgate's filter behaviour, independent of proxy-wasm.
//!
//! The proxy-wasm adapter (`filter/wasm`) implements [`host::Host`], validates its plugin
//! config's core part with [`config::CoreConfig::try_from`], and calls, per request:
//! 1. [`providers::RouteTable::match_request`] on the request headers (method, `:path`,
//!    `:authority`); `None` means "not a metered LLM call: pass through";
//! 2. [`request::read_request`] on the buffered request body: model, stream flag, output
//!    cap, conservative input estimate, and `rewritten_body` when streamed usage must be
//!    asked for (then the adapter replaces the body; it removed `content-length` at the
//!    headers for every route where [`request::may_add_stream_usage_option`] holds);
//! 3. a [`stream::ResponseReader`] built from the route's dialect and
//!    [`providers::Route::framing`], fed every response chunk as it passes, then
//!    [`stream::ResponseReader::finish`]ed after the stream ended (also on client
//!    disconnect) with the request's input estimate; its [`tollgate_model::Usage`] goes to
//!    `PriceTable::cost` and the settlement batch;
//! 4. [`flow::Exchange`] ties these together per stream, prices the usage and counts
//!    [`metrics`] through the [`host::Host`]; [`charging::Charging`] keeps the streams that
//!    ended until the root's tick charges them, off the request's path;
//!    [`plugin::Filter`] is the validated plugin config.
//!
//! Nothing here reads the clock or the network: the host, or the caller, passes them in.

pub mod admission;
pub mod charging;
pub mod config;
pub mod estimate;
pub mod flow;
pub mod host;
pub mod inspect;
pub mod json_keys;
pub mod json_path;
pub mod lease;
pub mod metrics;
pub mod plugin;
pub mod price_sync;
pub mod providers;
pub mod reply;
pub mod request;
pub mod scopes;
pub mod settle;
pub mod stream;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod usage;
