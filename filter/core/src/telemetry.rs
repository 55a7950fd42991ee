//! Metrics and log lines for the defined outcomes of bad input: every problem the readers
//! cope with (unreadable or over-cap request, usage missing or partly invalid, oversized or
//! corrupt stream events, unknown model) is counted and logged once, through [`Host`].
//!
//! Metric names are fixed and carry no per-request labels (bounded cardinality).

use crate::host::{Host, LogLevel, MetricId, MetricKind};
use crate::request::{RequestInfo, RequestProblem};
use crate::stream::ResponseOutcome;

/// The counters, defined once per VM (in the root context).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metrics {
    request_unreadable: Option<MetricId>,
    request_over_cap: Option<MetricId>,
    request_no_model: Option<MetricId>,
    usage_estimated: Option<MetricId>,
    usage_invalid_fields: Option<MetricId>,
    stream_oversized_events: Option<MetricId>,
    stream_corrupt_events: Option<MetricId>,
    unknown_model: Option<MetricId>,
}

/// The counter names, as Prometheus shows them.
pub const METRIC_NAMES: [&str; 8] = [
    "tollgate_request_unreadable_total",
    "tollgate_request_over_cap_total",
    "tollgate_request_no_model_total",
    "tollgate_usage_estimated_total",
    "tollgate_usage_invalid_fields_total",
    "tollgate_stream_oversized_events_total",
    "tollgate_stream_corrupt_events_total",
    "tollgate_unknown_model_total",
];

impl Metrics {
    /// Defines the counters with the host. A counter the host refuses is skipped later.
    pub fn define(host: &impl Host) -> Metrics {
        let [a, b, c, d, e, f, g, h] =
            METRIC_NAMES.map(|name| host.define_metric(MetricKind::Counter, name));
        Metrics {
            request_unreadable: a,
            request_over_cap: b,
            request_no_model: c,
            usage_estimated: d,
            usage_invalid_fields: e,
            stream_oversized_events: f,
            stream_corrupt_events: g,
            unknown_model: h,
        }
    }

    /// Counts and logs what went wrong reading a request (nothing when nothing did).
    pub fn record_request(&self, host: &impl Host, request_id: &str, info: &RequestInfo) {
        let Some(problem) = &info.problem else {
            return;
        };
        let metric = match problem {
            RequestProblem::TooLarge { .. } => self.request_over_cap,
            RequestProblem::InvalidJson(_) => self.request_unreadable,
            RequestProblem::NoModel => self.request_no_model,
        };
        bump(host, metric, 1);
        host.log(
            LogLevel::Warn,
            &format!(
                "request {request_id}: {problem}; estimating {} input tokens",
                info.estimated_input_tokens
            ),
        );
    }

    /// Counts and logs what went wrong reading a response.
    pub fn record_response(&self, host: &impl Host, request_id: &str, outcome: &ResponseOutcome) {
        let stats = &outcome.stats;
        bump(
            host,
            self.usage_invalid_fields,
            u64::from(stats.invalid_usage_fields),
        );
        bump(host, self.stream_oversized_events, stats.oversized_events);
        bump(host, self.stream_corrupt_events, stats.corrupt_events);
        if outcome.usage.estimated {
            bump(host, self.usage_estimated, 1);
        }
        if outcome.usage.estimated
            || stats.invalid_usage_fields > 0
            || stats.oversized_events > 0
            || stats.corrupt_events > 0
        {
            host.log(
                LogLevel::Warn,
                &format!(
                    "request {request_id}: usage estimated={} (invalid usage fields {}, \
                     oversized events {}, corrupt events {})",
                    outcome.usage.estimated,
                    stats.invalid_usage_fields,
                    stats.oversized_events,
                    stats.corrupt_events
                ),
            );
        }
    }

    /// Counts and logs a model the price table does not know.
    pub fn record_unknown_model(&self, host: &impl Host, request_id: &str, model: &str) {
        bump(host, self.unknown_model, 1);
        host.log(
            LogLevel::Warn,
            &format!("request {request_id}: unknown model {model:?}"),
        );
    }
}

fn bump(host: &impl Host, metric: Option<MetricId>, by: u64) {
    if let Some(id) = metric
        && by > 0
    {
        host.increment_metric(id, i64::try_from(by).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{Api, Dialect, Framing, Provider, Route};
    use crate::request::{RequestLimits, read_request};
    use crate::stream::{ResponseReader, StreamLimits};
    use crate::testing::FakeHost;
    use tollgate_model::PriceTable;

    #[test]
    fn a_truncated_request_is_counted_and_logged_once() {
        let host = FakeHost::default();
        let metrics = Metrics::define(&host);
        let route = Route::new(Provider::Openai, Api::ChatCompletions);
        let prices = PriceTable::shipped().unwrap();
        let info = read_request(&route, b"{\"model\":", &prices, RequestLimits::default());
        metrics.record_request(&host, "req-1", &info);
        assert_eq!(host.metric("tollgate_request_unreadable_total"), 1);
        let logs = host.logs();
        assert_eq!(logs.len(), 1);
        assert!(logs[0].1.starts_with("request req-1: "));
    }

    #[test]
    fn a_stream_without_usage_is_counted_as_estimated() {
        let host = FakeHost::default();
        let metrics = Metrics::define(&host);
        let mut reader =
            ResponseReader::new(Dialect::OpenaiChat, Framing::Sse, StreamLimits::default());
        reader.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n");
        let outcome = reader.finish(10);
        metrics.record_response(&host, "req-2", &outcome);
        assert_eq!(host.metric("tollgate_usage_estimated_total"), 1);
        assert_eq!(host.logs().len(), 1);
    }

    #[test]
    fn a_clean_call_records_nothing() {
        let host = FakeHost::default();
        let metrics = Metrics::define(&host);
        let mut reader =
            ResponseReader::new(Dialect::OpenaiChat, Framing::Json, StreamLimits::default());
        reader.feed(br#"{"usage":{"prompt_tokens":1,"completion_tokens":1}}"#);
        metrics.record_response(&host, "req-3", &reader.finish(0));
        assert!(host.logs().is_empty());
        assert!(METRIC_NAMES.iter().all(|n| host.metric(n) == 0));
    }
}
