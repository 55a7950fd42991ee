//! What the filter needs from its host (Envoy, through proxy-wasm, in production).
//!
//! The core never calls the host directly: every clock read, shared-data access, HTTP
//! callout, metric and log line goes through [`Host`], so the whole filter can run natively
//! against `testing::FakeHost` (feature `testing`) in unit tests. `filter/wasm` implements it with
//! hostcalls; its methods mirror the proxy-wasm ABI closely so that adapter stays thin.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// A compare-and-swap token for shared data: the version a value was read at.
pub type Cas = u32;

/// Why a shared-data write did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SharedDataError {
    /// Another writer changed the value since it was read: read again and retry.
    #[error("compare-and-swap mismatch")]
    CasMismatch,
    /// The host refused the write for another reason (for example, the value is too big).
    #[error("shared data write failed")]
    Failed,
}

/// Why an HTTP callout could not be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CalloutError {
    /// The host refused the call at once (an unknown cluster in Envoy, for example). This is
    /// a fail-mode event, not a bug.
    #[error("callout refused by the host")]
    Refused,
}

/// The kind of a metric, as the host defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// A monotonically increasing count.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// A distribution of recorded values.
    Histogram,
}

/// A metric's id, handed out by [`Host::define_metric`].
pub type MetricId = u32;

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Per-request detail, off in production.
    Debug,
    /// Notable but normal.
    Info,
    /// Something was wrong with the input or a dependency; the filter coped.
    Warn,
    /// The filter could not do its job for this request.
    Error,
}

/// One outgoing HTTP request to an upstream cluster (the control plane, usually).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callout<'a> {
    /// The host's upstream name (an Envoy cluster name, not a URL).
    pub upstream: &'a str,
    /// Request headers; must include `:method`, `:path` and `:authority`.
    pub headers: &'a [(&'a str, &'a str)],
    /// The request body.
    pub body: &'a [u8],
    /// How long the host waits for the answer before it reports a timeout.
    pub timeout: Duration,
}

/// Everything the filter core needs from its host.
///
/// Implementations must not panic: each method reports failure as a value.
pub trait Host {
    /// The current wall-clock time.
    fn now(&self) -> DateTime<Utc>;

    /// Reads a process-wide shared value and its CAS token. `None` when the key is missing.
    fn get_shared_data(&self, key: &str) -> Option<(Vec<u8>, Cas)>;

    /// Writes a process-wide shared value. With `cas = Some(token)` the write only happens if
    /// the value is still at that version; `None` writes unconditionally.
    fn set_shared_data(
        &self,
        key: &str,
        value: &[u8],
        cas: Option<Cas>,
    ) -> Result<(), SharedDataError>;

    /// Starts an HTTP callout and returns the token its answer will arrive with.
    fn dispatch_http_call(&self, call: &Callout<'_>) -> Result<u32, CalloutError>;

    /// Defines a metric once per VM and returns its id (the same id for the same name).
    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<MetricId>;

    /// Adds `delta` to a counter or gauge.
    fn increment_metric(&self, id: MetricId, delta: i64);

    /// Records a value in a histogram, or sets a gauge.
    fn record_metric(&self, id: MetricId, value: u64);

    /// Writes one log line.
    fn log(&self, level: LogLevel, message: &str);
}
