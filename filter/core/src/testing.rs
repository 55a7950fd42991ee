//! An in-memory [`Host`] for tests: a settable clock, shared data with real CAS semantics,
//! recorded callouts, metrics and log lines.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::host::{
    Callout, CalloutError, Cas, Host, LogLevel, MetricId, MetricKind, SharedDataError,
};

/// A callout the fake host recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCallout {
    /// The token returned for it.
    pub token: u32,
    /// Its upstream name.
    pub upstream: String,
    /// Its headers.
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub body: Vec<u8>,
}

/// A price table whose one model, `model` (an OpenAI one), costs $10 input and $30 output per
/// million tokens from 2026-01-01 and half that from `cut` (`YYYY-MM-DD`): for tests of
/// which price a charge takes.
pub fn price_cut_table(
    model: &str,
    cut: &str,
) -> Result<tollgate_model::PriceTable, tollgate_model::pricing::PriceFileError> {
    let json = format!(
        r#"{{"schema_version": 1, "table_version": "test", "currency": "USD", "default_max_output_tokens": 4096,
            "models": [{{"id": "{model}", "provider": "openai", "source": "test", "checked": "2026-01-01",
              "prices": [{{"effective_from": "2026-01-01", "input": "10", "output": "30"}},
                         {{"effective_from": "{cut}", "input": "5", "output": "15"}}]}}]}}"#
    );
    tollgate_model::PriceTable::from_json("test", &json)
}

/// A deterministic, single-threaded [`Host`] for unit tests.
#[derive(Debug, Default)]
pub struct FakeHost {
    now: Cell<DateTime<Utc>>,
    shared: RefCell<HashMap<String, (Vec<u8>, Cas)>>,
    callouts: RefCell<Vec<RecordedCallout>>,
    refuse_callouts: Cell<bool>,
    /// Name, kind, value and how many increments made it.
    metrics: RefCell<Vec<(String, MetricKind, i64, u32)>>,
    logs: RefCell<Vec<(LogLevel, String)>>,
}

impl FakeHost {
    /// A host whose clock reads `now`.
    pub fn at(now: DateTime<Utc>) -> FakeHost {
        let host = FakeHost::default();
        host.now.set(now);
        host
    }

    /// Moves the clock.
    pub fn set_now(&self, now: DateTime<Utc>) {
        self.now.set(now);
    }

    /// Makes every later callout fail at once, as an unknown cluster does in Envoy.
    pub fn refuse_callouts(&self, refuse: bool) {
        self.refuse_callouts.set(refuse);
    }

    /// The callouts made so far.
    pub fn callouts(&self) -> Vec<RecordedCallout> {
        self.callouts.borrow().clone()
    }

    /// The value of the metric called `name` (0 when it was never defined).
    pub fn metric(&self, name: &str) -> i64 {
        self.metrics
            .borrow()
            .iter()
            .find(|(n, ..)| n == name)
            .map_or(0, |(_, _, v, _)| *v)
    }

    /// How many increments (hostcalls) the metric called `name` got.
    pub fn increments(&self, name: &str) -> u32 {
        self.metrics
            .borrow()
            .iter()
            .find(|(n, ..)| n == name)
            .map_or(0, |(.., calls)| *calls)
    }

    /// The log lines written so far.
    pub fn logs(&self) -> Vec<(LogLevel, String)> {
        self.logs.borrow().clone()
    }
}

impl Host for FakeHost {
    fn now(&self) -> DateTime<Utc> {
        self.now.get()
    }

    fn get_shared_data(&self, key: &str) -> Option<(Vec<u8>, Cas)> {
        self.shared.borrow().get(key).cloned()
    }

    fn set_shared_data(
        &self,
        key: &str,
        value: &[u8],
        cas: Option<Cas>,
    ) -> Result<(), SharedDataError> {
        let mut shared = self.shared.borrow_mut();
        let current = shared.get(key).map_or(0, |(_, c)| *c);
        if let Some(expected) = cas {
            // Envoy treats a CAS of 0 as "unconditional"; mirror that.
            if expected != 0 && expected != current {
                return Err(SharedDataError::CasMismatch);
            }
        }
        shared.insert(key.to_owned(), (value.to_vec(), current.wrapping_add(1)));
        Ok(())
    }

    fn dispatch_http_call(&self, call: &Callout<'_>) -> Result<u32, CalloutError> {
        if self.refuse_callouts.get() {
            return Err(CalloutError::Refused);
        }
        let mut callouts = self.callouts.borrow_mut();
        let token = u32::try_from(callouts.len())
            .unwrap_or(u32::MAX)
            .wrapping_add(1);
        callouts.push(RecordedCallout {
            token,
            upstream: call.upstream.to_owned(),
            headers: call
                .headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: call.body.to_vec(),
        });
        Ok(token)
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<MetricId> {
        let mut metrics = self.metrics.borrow_mut();
        let index = match metrics.iter().position(|(n, ..)| n == name) {
            Some(i) => i,
            None => {
                metrics.push((name.to_owned(), kind, 0, 0));
                metrics.len() - 1
            }
        };
        MetricId::try_from(index).ok()
    }

    fn increment_metric(&self, id: MetricId, delta: i64) {
        if let Some(m) = self.metrics.borrow_mut().get_mut(id as usize) {
            m.2 = m.2.saturating_add(delta);
            m.3 += 1;
        }
    }

    fn record_metric(&self, id: MetricId, value: u64) {
        if let Some(m) = self.metrics.borrow_mut().get_mut(id as usize) {
            m.2 = i64::try_from(value).unwrap_or(i64::MAX);
        }
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.logs.borrow_mut().push((level, message.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_cas_token_is_refused_and_a_fresh_one_accepted() {
        let host = FakeHost::default();
        host.set_shared_data("k", b"a", None).unwrap();
        let (_, cas) = host.get_shared_data("k").unwrap();
        host.set_shared_data("k", b"b", Some(cas)).unwrap();
        assert_eq!(
            host.set_shared_data("k", b"c", Some(cas)),
            Err(SharedDataError::CasMismatch)
        );
        assert_eq!(host.get_shared_data("k").unwrap().0, b"b");
    }

    #[test]
    fn metrics_are_defined_once_and_counted() {
        let host = FakeHost::default();
        let a = host.define_metric(MetricKind::Counter, "x").unwrap();
        let b = host.define_metric(MetricKind::Counter, "x").unwrap();
        assert_eq!(a, b);
        host.increment_metric(a, 2);
        host.increment_metric(b, 3);
        assert_eq!(host.metric("x"), 5);
    }

    #[test]
    fn refused_callouts_are_errors_not_panics() {
        let host = FakeHost::default();
        host.refuse_callouts(true);
        let call = Callout {
            upstream: "cp",
            headers: &[(":method", "POST")],
            body: b"{}",
            timeout: std::time::Duration::from_millis(50),
        };
        assert_eq!(host.dispatch_http_call(&call), Err(CalloutError::Refused));
        assert!(host.callouts().is_empty());
    }
}
