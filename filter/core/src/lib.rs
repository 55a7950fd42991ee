//! Tollgate's filter behaviour, independent of proxy-wasm.
//!
//! The proxy-wasm adapter (`filter/wasm`) calls, per request:
//! 1. [`providers::RouteTable::match_request`] on the request headers;
//! 2. [`request::read_request`] on the buffered request body (model, stream flag, output cap,
//!    input estimate, and a rewritten body when streamed usage must be asked for);
//! 3. [`usage::extract_usage`] on a JSON response, or a [`stream::ResponseReader`] fed every
//!    response chunk and [`stream::ResponseReader::finish`]ed at the end.
//!
//! Everything the host provides (clock, shared data, callouts, metrics, logs) goes through
//! [`host::Host`]; nothing here reads the clock or the network itself.

pub mod estimate;
pub mod host;
pub mod inspect;
pub mod providers;
pub mod request;
pub mod stream;
pub mod telemetry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod usage;
