//! The filter's metrics, defined through the [`Host`] once per VM and cached.
//!
//! The proxy-wasm ABI has no metric tags, so labels ride in the name as `.label.value` pairs
//! (`tollgate_requests_total.provider.openai.outcome.charged`) and Envoy's `stats_tags`
//! (in `envoy/envoy.yaml`) turn them into Prometheus labels. Every label value comes from a
//! closed set (providers, outcomes, token kinds), so cardinality stays bounded: no model,
//! user or key ever appears in a metric name. The list is in `docs/metrics.md`.

use std::collections::HashMap;

use tollgate_model::Usage;

use crate::host::{Host, MetricId, MetricKind};

/// How a governed request ended, for `tollgate_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Usage reported by the provider and priced.
    Charged,
    /// Usage estimated (no usage in the answer) and priced.
    Estimated,
    /// Usage counted, but the model is not in the price table: no cost.
    UnknownModel,
    /// Neither the body nor the path named a model: no cost.
    NoModel,
    /// The provider answered with an error status.
    ProviderError,
    /// The request ended before any answer came (client or upstream went away).
    NoResponse,
    /// Tollgate answered itself (oversized body, denied path).
    Rejected,
    /// Refused by a budget, or by the fail mode when the control plane could not answer.
    Denied,
    /// The path is not a provider API; passed untouched.
    Unmatched,
    /// An OpenAI background response was created: its usage comes with a retrieval.
    Background,
    /// A stored response was retrieved or cancelled with nothing to charge (no usage yet, or
    /// not a background response this gateway created).
    Retrieved,
}

impl Outcome {
    /// Whether the provider bills a call that ended so (a settlement's `billed`): not an error
    /// answer, nor a call refused or never answered.
    pub fn is_billed(self) -> bool {
        matches!(
            self,
            Outcome::Charged | Outcome::Estimated | Outcome::UnknownModel | Outcome::NoModel
        )
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Charged => "charged",
            Outcome::Estimated => "estimated",
            Outcome::UnknownModel => "unknown_model",
            Outcome::NoModel => "no_model",
            Outcome::ProviderError => "provider_error",
            Outcome::NoResponse => "no_response",
            Outcome::Rejected => "rejected",
            Outcome::Denied => "denied",
            Outcome::Unmatched => "unmatched",
            Outcome::Background => "background",
            Outcome::Retrieved => "retrieved",
        }
    }
}

/// The metrics the filter writes. Names are in Prometheus form; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Name {
    Requests,
    Tokens,
    CostNanos,
    BodyProblems,
    DroppedEvents,
    InvalidUsageFields,
    ScopeValuesRejected,
    Admission,
    ControlPlaneProblems,
    SettlePosts,
    SettlementsLost,
    StreamCutoffs,
    PriceOverridesApplied,
}

impl Name {
    fn base(self) -> &'static str {
        match self {
            Name::Requests => "tollgate_requests_total",
            Name::Tokens => "tollgate_tokens_total",
            Name::CostNanos => "tollgate_cost_nanousd_total",
            Name::BodyProblems => "tollgate_request_body_problems_total",
            Name::DroppedEvents => "tollgate_stream_events_dropped_total",
            Name::InvalidUsageFields => "tollgate_usage_invalid_fields_total",
            Name::ScopeValuesRejected => "tollgate_scope_values_rejected_total",
            Name::Admission => "tollgate_admission_total",
            Name::ControlPlaneProblems => "tollgate_control_plane_problems_total",
            Name::SettlePosts => "tollgate_settle_posts_total",
            Name::SettlementsLost => "tollgate_settlements_lost_total",
            Name::StreamCutoffs => "tollgate_stream_cutoffs_total",
            Name::PriceOverridesApplied => "tollgate_price_overrides_applied_total",
        }
    }
}

/// Per-VM metric ids, defined on first use.
#[derive(Debug, Default)]
pub struct Metrics {
    ids: HashMap<(Name, &'static str, &'static str), Option<MetricId>>,
    /// Increments held back by [`Metrics::hold`], summed per metric, in first-use order.
    held: Option<Vec<(MetricId, i64)>>,
}

impl Metrics {
    /// From now on, sum increments here instead of making a hostcall for each, until
    /// [`Metrics::release`]: charging a tick's worth of streams makes one hostcall per metric
    /// touched instead of about four per stream.
    pub fn hold(&mut self) {
        self.held.get_or_insert_with(Vec::new);
    }

    /// Writes what [`Metrics::hold`] held back, one increment per metric, and stops holding.
    pub fn release(&mut self, host: &dyn Host) {
        for (id, delta) in self.held.take().unwrap_or_default() {
            host.increment_metric(id, delta);
        }
    }

    fn counter(
        &mut self,
        host: &dyn Host,
        name: Name,
        labels: [(&'static str, &'static str); 2],
        delta: u64,
    ) {
        if delta == 0 {
            return;
        }
        let key = (name, labels[0].1, labels[1].1);
        let id = *self.ids.entry(key).or_insert_with(|| {
            let mut full = name.base().to_owned();
            for (label, value) in labels.iter().filter(|(l, _)| !l.is_empty()) {
                full.push('.');
                full.push_str(label);
                full.push('.');
                full.push_str(value);
            }
            host.define_metric(MetricKind::Counter, &full)
        });
        let Some(id) = id else {
            return;
        };
        let delta = i64::try_from(delta).unwrap_or(i64::MAX);
        match self.held.as_mut() {
            None => host.increment_metric(id, delta),
            Some(held) => match held.iter_mut().find(|(held_id, _)| *held_id == id) {
                Some((_, sum)) => *sum = sum.saturating_add(delta),
                None => held.push((id, delta)),
            },
        }
    }

    /// One governed (or unmatched) request ended with `outcome`.
    pub fn request(&mut self, host: &dyn Host, provider: &'static str, outcome: Outcome) {
        self.counter(
            host,
            Name::Requests,
            [("provider", provider), ("outcome", outcome.as_str())],
            1,
        );
    }

    /// The tokens of one charge, by kind.
    pub fn tokens(&mut self, host: &dyn Host, provider: &'static str, usage: &Usage) {
        let kinds = [
            ("uncached_input", usage.uncached_input_tokens),
            ("cached_input", usage.cached_input_tokens),
            ("cache_write_5m", usage.cache_write_5m_tokens),
            ("cache_write_1h", usage.cache_write_1h_tokens),
            ("output", usage.output_tokens),
            ("reasoning", usage.reasoning_tokens),
        ];
        for (kind, n) in kinds {
            self.counter(
                host,
                Name::Tokens,
                [("provider", provider), ("kind", kind)],
                n,
            );
        }
    }

    /// The cost of one charge. Negative costs cannot occur (prices are validated ≥ 0).
    pub fn cost(&mut self, host: &dyn Host, provider: &'static str, nanos: i64) {
        let nanos = u64::try_from(nanos).unwrap_or(0);
        self.counter(
            host,
            Name::CostNanos,
            [("provider", provider), ("", "")],
            nanos,
        );
    }

    /// A request body that could not be read in full (`too_large`, `invalid_json`, `no_model`).
    pub fn body_problem(&mut self, host: &dyn Host, problem: &'static str) {
        self.counter(
            host,
            Name::BodyProblems,
            [("problem", problem), ("", "")],
            1,
        );
    }

    /// Usage fields that were present but not plausible counts (negative, fractional, absurd):
    /// dropped, not trusted.
    pub fn invalid_usage_fields(&mut self, host: &dyn Host, provider: &'static str, n: u64) {
        self.counter(
            host,
            Name::InvalidUsageFields,
            [("provider", provider), ("", "")],
            n,
        );
    }

    /// Header or property values that were not valid scope values (skipped).
    pub fn scope_values_rejected(&mut self, host: &dyn Host, n: u64) {
        self.counter(host, Name::ScopeValuesRejected, [("", ""), ("", "")], n);
    }

    /// An admission decision (`allow`, `downgrade`, `deny`, `failed_open`, `failed_closed`).
    pub fn admission(&mut self, host: &dyn Host, provider: &'static str, outcome: &'static str) {
        self.counter(
            host,
            Name::Admission,
            [("provider", provider), ("outcome", outcome)],
            1,
        );
    }

    /// A control-plane answer that could not be used (`not_sent`, `timeout`, `unavailable`,
    /// `error_status`, `unreadable`), for reserve or settle calls.
    pub fn control_plane_problem(&mut self, host: &dyn Host, problem: &'static str) {
        self.counter(
            host,
            Name::ControlPlaneProblems,
            [("problem", problem), ("", "")],
            1,
        );
    }

    /// A new set of the control plane's price overrides was applied (`price_sync`).
    pub fn price_overrides_applied(&mut self, host: &dyn Host) {
        self.counter(host, Name::PriceOverridesApplied, [("", ""), ("", "")], 1);
    }

    /// A settle post answered (`ok`, `retry`, `rejected`).
    pub fn settle_post(&mut self, host: &dyn Host, outcome: &'static str) {
        self.counter(host, Name::SettlePosts, [("outcome", outcome), ("", "")], 1);
    }

    /// Settlements that will never reach the control plane (`queue_full`: the worker's
    /// queue overflowed; `rejected`: the control plane refused the record as invalid).
    pub fn settlements_lost(&mut self, host: &dyn Host, problem: &'static str, n: u64) {
        self.counter(
            host,
            Name::SettlementsLost,
            [("problem", problem), ("", "")],
            n,
        );
    }

    /// A stream cut off at its budget.
    pub fn stream_cutoff(&mut self, host: &dyn Host, provider: &'static str) {
        self.counter(
            host,
            Name::StreamCutoffs,
            [("provider", provider), ("", "")],
            1,
        );
    }

    /// Stream events dropped (`oversized`, `corrupt`).
    pub fn dropped_events(
        &mut self,
        host: &dyn Host,
        provider: &'static str,
        kind: &'static str,
        n: u64,
    ) {
        self.counter(
            host,
            Name::DroppedEvents,
            [("provider", provider), ("kind", kind)],
            n,
        );
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::testing::FakeHost;

    #[test]
    fn labels_ride_in_the_name_and_ids_are_defined_once() {
        let host = FakeHost::at(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
        let mut m = Metrics::default();
        m.request(&host, "openai", Outcome::Charged);
        m.request(&host, "openai", Outcome::Charged);
        m.cost(&host, "openai", 1500);
        m.tokens(
            &host,
            "openai",
            &Usage {
                output_tokens: 7,
                ..Usage::default()
            },
        );
        assert_eq!(
            host.metric("tollgate_requests_total.provider.openai.outcome.charged"),
            2
        );
        assert_eq!(
            host.metric("tollgate_cost_nanousd_total.provider.openai"),
            1500
        );
        assert_eq!(
            host.metric("tollgate_tokens_total.provider.openai.kind.output"),
            7
        );
        assert_eq!(
            host.metric("tollgate_tokens_total.provider.openai.kind.reasoning"),
            0
        );
    }
}
