//! The control plane's price file, applied over the filter's built-in table.
//!
//! The control plane prices every reservation and settlement with its own table (the shipped
//! one, with the overrides of `PUT /v1/prices/{model}` and the models it knows beyond the
//! shipped table over it). So that the filter's own figures agree with it (the reservation it
//! asks for, `x-tollgate-reserved-usd`, the cost metrics, the mid-stream cut-off), each VM's
//! root fetches that set (`GET /v1/admission/prices`, a price file versioned by its
//! `table_version`: `If-None-Match` answers `304` while it is unchanged) every
//! `control_plane.price_refresh_ms` on its tick, and applies it over the configured table:
//! an entry replaces the built-in entry of the same id, or adds a model the table lacks. New streams use the new prices; a stream in flight keeps the ones it
//! started with. Until the first answer (and whenever the control plane cannot be reached)
//! the filter keeps the last set it had; the control plane's figures win in any case.

use std::time::Duration;

use tollgate_model::pricing::{ModelPrices, read_price_set};
use tollgate_model::wire::v1::PRICES_PATH;

use crate::admission::{AnswerProblem, ControlPlane};
use crate::host::{Callout, Host, LogLevel};
use crate::metrics::Metrics;
use crate::plugin::Filter;

/// How long a fetch may take before it counts as failed (retried at the next refresh).
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// One VM's view of the override set.
#[derive(Debug, Default)]
pub struct PriceSync {
    /// The version applied, sent back as `If-None-Match`.
    version: Option<String>,
    /// The set applied, as fetched (read again over a new configuration).
    applied: Option<String>,
    /// When the next fetch is due, Unix milliseconds.
    next_at_ms: Option<i64>,
    in_flight: Option<u32>,
}

impl PriceSync {
    /// Starts a fetch when one is due (at once after a new configuration, then every
    /// `price_refresh`), unless one is in flight.
    pub fn poll(&mut self, host: &dyn Host, cp: &ControlPlane, metrics: &mut Metrics) {
        let now_ms = host.now().timestamp_millis();
        if self.in_flight.is_some() || self.next_at_ms.is_some_and(|at| now_ms < at) {
            return;
        }
        let refresh_ms = i64::try_from(cp.price_refresh.as_millis()).unwrap_or(i64::MAX);
        self.next_at_ms = Some(now_ms.saturating_add(refresh_ms));
        let etag = self.version.as_ref().map(|v| ["\"", v, "\""].concat());
        let mut headers = vec![
            (":method", "GET"),
            (":path", PRICES_PATH),
            (":authority", cp.authority.as_str()),
            ("authorization", cp.authorization.as_str()),
        ];
        if let Some(etag) = &etag {
            headers.push(("if-none-match", etag.as_str()));
        }
        let call = Callout {
            upstream: &cp.cluster,
            headers: &headers,
            body: &[],
            timeout: FETCH_TIMEOUT,
        };
        match host.dispatch_http_call(&call) {
            Ok(token) => self.in_flight = Some(token),
            Err(_) => metrics.control_plane_problem(host, AnswerProblem::NotSent.as_str()),
        }
    }

    /// Whether the callout answered with `token` is this fetch.
    pub fn is_answer(&self, token: u32) -> bool {
        self.in_flight == Some(token)
    }

    /// The fetch was answered with `status` (`None`: reset) and `body`. Returns the filter
    /// to use from now on (the plugin configuration `config`, with the new set over its
    /// table) when the set changed.
    pub fn answered(
        &mut self,
        host: &dyn Host,
        metrics: &mut Metrics,
        config: &[u8],
        status: Option<u16>,
        body: &[u8],
    ) -> Option<Filter> {
        self.in_flight = None;
        let problem = match status {
            Some(304) => return None,
            Some(200) => match std::str::from_utf8(body)
                .ok()
                .and_then(|text| Some((text, read_price_set(text).ok()?)))
            {
                Some((text, (version, models))) => {
                    self.version = Some(version);
                    self.applied = Some(text.to_owned());
                    metrics.price_overrides_applied(host);
                    return apply(host, config, models);
                }
                None => AnswerProblem::Unreadable,
            },
            other => AnswerProblem::of_status(other),
        };
        metrics.control_plane_problem(host, problem.as_str());
        host.log(
            LogLevel::Warn,
            "tollgate: price overrides not fetched; keeping the prices in use",
        );
        None
    }

    /// A new configuration `config`: the filter it makes with the set last fetched over its
    /// table (`None` when no set was fetched yet: the configuration's own filter serves);
    /// fetched again at the next tick.
    pub fn reconfigured(&mut self, host: &dyn Host, config: &[u8]) -> Option<Filter> {
        self.next_at_ms = None;
        self.in_flight = None;
        let (_, models) = read_price_set(self.applied.as_deref()?).ok()?;
        apply(host, config, models)
    }
}

/// The filter of `config` with `models` over its table. The filter is built again from its
/// configuration rather than cloned: the set changes seldom, and a deep clone of the filter
/// was 8 KB of the module.
fn apply(host: &dyn Host, config: &[u8], models: Vec<ModelPrices>) -> Option<Filter> {
    let mut filter = Filter::from_json(config).ok()?;
    for model in models {
        if filter.prices.upsert(model).is_err() {
            // Its id is an alias of another model in this table: that model keeps its price
            // here; the control plane's figures win in any case.
            host.log(
                LogLevel::Warn,
                "tollgate: a price override names another model's alias; not applied",
            );
        }
    }
    Some(filter)
}

#[cfg(test)]
mod tests;
