//! [`Host`] implemented with proxy-wasm hostcalls.
//!
//! The SDK panics on host statuses it does not expect, so each call here is made only in the
//! stream phases where Envoy allows it (the core's lifecycle guarantees that), and every
//! status the SDK returns as a value is mapped to the core's error types.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{LogLevel as WasmLogLevel, MetricType, Status};
use tollgate_filter_core::host::{
    Callout, CalloutError, Cas, Host, LogLevel, MetricId, MetricKind, SharedDataError,
};

/// The Envoy host, through hostcalls. Stateless: every method is a hostcall.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnvoyHost;

impl Host for EnvoyHost {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from(hostcalls::get_current_time().unwrap_or(SystemTime::UNIX_EPOCH))
    }

    fn get_shared_data(&self, key: &str) -> Option<(Vec<u8>, Cas)> {
        match hostcalls::get_shared_data(key) {
            Ok((Some(value), cas)) => Some((value, cas.unwrap_or(0))),
            _ => None,
        }
    }

    fn set_shared_data(
        &self,
        key: &str,
        value: &[u8],
        cas: Option<Cas>,
    ) -> Result<(), SharedDataError> {
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(SharedDataError::CasMismatch),
            Err(_) => Err(SharedDataError::Failed),
        }
    }

    fn dispatch_http_call(&self, call: &Callout<'_>) -> Result<u32, CalloutError> {
        hostcalls::dispatch_http_call(
            call.upstream,
            call.headers.to_vec(),
            Some(call.body),
            Vec::new(),
            call.timeout,
        )
        .map_err(|_| CalloutError::Refused)
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<MetricId> {
        let kind = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Gauge => MetricType::Gauge,
            MetricKind::Histogram => MetricType::Histogram,
        };
        hostcalls::define_metric(kind, name).ok()
    }

    fn increment_metric(&self, id: MetricId, delta: i64) {
        let _ = hostcalls::increment_metric(id, delta);
    }

    fn record_metric(&self, id: MetricId, value: u64) {
        let _ = hostcalls::record_metric(id, value);
    }

    fn log(&self, level: LogLevel, message: &str) {
        let level = match level {
            LogLevel::Debug => WasmLogLevel::Debug,
            LogLevel::Info => WasmLogLevel::Info,
            LogLevel::Warn => WasmLogLevel::Warn,
            LogLevel::Error => WasmLogLevel::Error,
        };
        let _ = hostcalls::log(level, message);
    }
}
