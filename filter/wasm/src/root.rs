//! The root context: parses the plugin configuration once per VM, hands each HTTP stream the
//! validated [`Filter`] (with the control plane's price overrides over its table: see
//! `price_sync`) and the VM's [`Charging`], and on its tick charges the streams that ended,
//! drains the settlement queue and fetches the price overrides when due.
//!
//! Settlement is per worker: each VM's root context posts its own batches on its own tick
//! (one post in flight at a time). The control plane de-duplicates by request id, and each
//! charge enters exactly one worker's queue once, so nothing is charged twice whatever the
//! number of workers; a shared queue would only add a hop through another worker's VM.

use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};
use tollgate_filter_core::charging::{self, Charging};
use tollgate_filter_core::host::{Callout, Host};
use tollgate_filter_core::lease::{Post, Purpose};
use tollgate_filter_core::plugin::Filter;
use tollgate_filter_core::price_sync::PriceSync;
use tollgate_filter_core::settle::SettleQueue;

use crate::host::EnvoyHost;
use crate::http::HttpExchange;

/// How long a settle post may take before it counts as failed (and is retried).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a lease's ask, renewal or return may take (off every request's path).
const LEASE_TIMEOUT: Duration = Duration::from_secs(2);

/// One per VM.
#[derive(Default)]
pub struct TollgateRoot {
    /// The configuration's JSON as Envoy gave it (the control plane's price file is applied
    /// to a filter built again from it).
    config: Vec<u8>,
    /// What new streams get: the configuration with the control plane's price overrides.
    filter: Option<Rc<Filter>>,
    charging: Rc<Charging>,
    /// The settle post in flight.
    posting: Option<u32>,
    /// The control plane's price overrides (`price_sync`).
    prices: PriceSync,
    /// The lease posts in flight (`lease.rs`): their tokens and what they are for.
    lease_posts: Vec<(u32, Purpose)>,
}

impl TollgateRoot {
    /// Starts a fetch of the price overrides when one is due.
    fn poll_prices(&mut self) {
        let Some(cp) = self.filter.as_ref().and_then(|f| f.control_plane.as_ref()) else {
            return;
        };
        let mut metrics = self.charging.metrics.borrow_mut();
        self.prices.poll(&EnvoyHost, cp, &mut metrics);
    }

    /// The price overrides' fetch answered: new streams get the new prices.
    fn prices_answered(&mut self, num_headers: usize, body_size: usize) {
        let status = (num_headers > 0)
            .then(|| self.get_http_call_response_header(":status"))
            .flatten()
            .and_then(|s| s.parse::<u16>().ok());
        let body = self
            .get_http_call_response_body(0, body_size)
            .unwrap_or_default();
        let mut metrics = self.charging.metrics.borrow_mut();
        if let Some(filter) =
            self.prices
                .answered(&EnvoyHost, &mut metrics, &self.config, status, &body)
        {
            self.filter = Some(Rc::new(filter));
        }
    }

    /// Asks for, renews and returns the leases of the keys this VM's calls want.
    fn look_after_leases(&mut self) {
        let now_ms = EnvoyHost.now().timestamp_millis();
        let posts = self.charging.leases.borrow_mut().tick(&EnvoyHost, now_ms);
        for post in posts {
            self.post_lease(post);
        }
    }

    fn post_lease(&mut self, post: Post) {
        let Some(cp) = self.filter.as_ref().and_then(|f| f.control_plane.as_ref()) else {
            return;
        };
        let call = Callout {
            upstream: &cp.cluster,
            headers: &cp.post_headers(post.path),
            body: &post.body,
            timeout: LEASE_TIMEOUT,
        };
        match EnvoyHost.dispatch_http_call(&call) {
            Ok(token) => self.lease_posts.push((token, post.purpose)),
            Err(_) => {
                // As if it got no answer: the key is free to be asked for again.
                let now_ms = EnvoyHost.now().timestamp_millis();
                self.charging.leases.borrow_mut().answered(
                    &EnvoyHost,
                    &post.purpose,
                    None,
                    &[],
                    now_ms,
                );
            }
        }
    }

    /// A lease post was answered (`num_headers == 0`: reset, no answer).
    fn lease_answered(&mut self, purpose: &Purpose, num_headers: usize, body_size: usize) {
        let status = (num_headers > 0)
            .then(|| self.get_http_call_response_header(":status"))
            .flatten()
            .and_then(|s| s.parse::<u16>().ok());
        let body = if body_size > 0 {
            self.get_http_call_response_body(0, body_size)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let now_ms = EnvoyHost.now().timestamp_millis();
        let next = self
            .charging
            .leases
            .borrow_mut()
            .answered(&EnvoyHost, purpose, status, &body, now_ms);
        if let Some(post) = next {
            self.post_lease(post);
        }
    }

    fn post_due_batch(&mut self) {
        let Some(cp) = self.filter.as_ref().and_then(|f| f.control_plane.as_ref()) else {
            return;
        };
        let now = EnvoyHost.now();
        let Some(body) = self
            .charging
            .settlements
            .borrow_mut()
            .as_mut()
            .and_then(|queue| queue.due(now))
        else {
            return;
        };
        let headers = SettleQueue::headers(&cp.authority, &cp.authorization);
        let call = Callout {
            upstream: &cp.cluster,
            headers: &headers,
            body: &body,
            timeout: SETTLE_TIMEOUT,
        };
        match EnvoyHost.dispatch_http_call(&call) {
            Ok(token) => self.posting = Some(token),
            Err(_) => {
                self.charging
                    .metrics
                    .borrow_mut()
                    .control_plane_problem(&EnvoyHost, "not_sent");
                if let Some(queue) = self.charging.settlements.borrow_mut().as_mut() {
                    queue.answered(None, now);
                }
            }
        }
    }
}

impl Context for TollgateRoot {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        if self.prices.is_answer(token_id) {
            self.prices_answered(num_headers, body_size);
            return;
        }
        if let Some(i) = self.lease_posts.iter().position(|(t, _)| *t == token_id) {
            let (_, purpose) = self.lease_posts.swap_remove(i);
            self.lease_answered(&purpose, num_headers, body_size);
            return;
        }
        if self.posting != Some(token_id) {
            return;
        }
        self.posting = None;
        // A reset post comes with no headers at all.
        let status = (num_headers > 0)
            .then(|| self.get_http_call_response_header(":status"))
            .flatten()
            .and_then(|s| s.parse::<u16>().ok());
        if self
            .charging
            .settle_post_answered(&EnvoyHost, status)
            .is_none()
        {
            return;
        }
        // Keep draining a backlog without waiting for the next tick.
        self.post_due_batch();
    }

    fn on_done(&mut self) -> bool {
        // The plugin is going away (Envoy exits, or a new configuration replaced it): count
        // what waits, then count and log the settlements that cannot be posted any more. At
        // exit the event loop is already gone (docs/enforcement.md, "Envoy shutting down").
        self.charging.charge_waiting(&EnvoyHost);
        self.charging.drop_queued(&EnvoyHost);
        true
    }
}

impl RootContext for TollgateRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        match Filter::from_json(&config) {
            Ok(filter) => {
                #[cfg(feature = "vm-bench")]
                crate::vm_bench::run(&filter);
                // The tick charges the streams that ended (about `charging::TICK` after; later
                // when the worker is busy).
                let mut tick = charging::TICK;
                if let Some(cp) = filter.control_plane.as_ref() {
                    // A new configuration keeps the charges still waiting under the old one.
                    self.charging
                        .settlements
                        .borrow_mut()
                        .get_or_insert_with(|| SettleQueue::new(cp.settle));
                    // This worker's id as a lease holder: its start time.
                    let id = EnvoyHost.now().timestamp_nanos_opt().unwrap_or_default();
                    self.charging.leases.borrow_mut().start(id.unsigned_abs());
                    // Tick often enough that a partial batch waits about its max delay.
                    tick = tick.min((cp.settle.max_delay / 4).max(Duration::from_millis(10)));
                }
                self.set_tick_period(tick);
                let with_prices = self.prices.reconfigured(&EnvoyHost, &config);
                self.filter = Some(Rc::new(with_prices.unwrap_or(filter)));
                self.config = config;
                true
            }
            Err(e) => {
                let _ = proxy_wasm::hostcalls::log(LogLevel::Critical, &e.to_string());
                false
            }
        }
    }

    fn on_tick(&mut self) {
        self.charging.charge_waiting(&EnvoyHost);
        if self.posting.is_none() {
            self.post_due_batch();
        }
        self.poll_prices();
        self.look_after_leases();
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Envoy creates streams only after a successful on_configure.
        let filter = self.filter.clone()?;
        Some(Box::new(HttpExchange::new(filter, self.charging.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
