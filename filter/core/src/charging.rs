//! What one VM (one Envoy worker) shares between its root context and its streams: the
//! metrics, the settlement queue, and the streams that ended and wait to be charged.
//!
//! Why streams wait: Envoy calls `on_log` before the client has the response's last byte
//! (the connection writes it on the next pass of the event loop, after the stream's
//! callbacks, `on_log` included, have returned), so whatever `on_log` does is added to every
//! call's latency. Charging there (the usage search and parse, pricing, a hostcall per
//! counter) was 12–15 µs of VM time per call (`docs/filter.md`). So the adapter's `on_log`
//! only hands the exchange to [`Charging::ended`] with the time it ended, and the root
//! context charges what waits ([`Charging::charge_waiting`]) on its tick, at most [`TICK`]
//! later, off every request's path.
//!
//! What that changes: a call's metrics (and its settlement, with a control plane) appear
//! about one tick after the client has its answer (later when the worker is busy: Envoy
//! runs the tick when its event loop gets to it) instead of just before; prices are still
//! those in force when the stream ended, and a settlement's wait for its batch counts from
//! then. A tick charges everything that waits in one go, with one counter hostcall per
//! metric touched ([`Metrics::hold`]), so it holds the worker's event loop for about the
//! charging time of the streams that ended in the last 50 ms (~10 µs each, docs/filter.md).
//! When [`MAX_WAITING`] streams or [`MAX_WAITING_BYTES`] of their buffers already wait, the
//! next stream is charged at once, as before: memory and the tick's length stay bounded and
//! nothing is dropped. When the VM shuts down, the root's `on_done` charges what still waits.
//!
//! Without a control plane a request's input estimate is made at its charge, and only when
//! the answer reported no usage ([`crate::request::deferred`]). The VM keeps at most
//! [`MAX_KEPT_BODY_BYTES`] of request bodies for that ([`Charging::keep_for_estimate`]);
//! past it a body is estimated as it is read.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::admission::AnswerProblem;
use crate::flow::Exchange;
use crate::host::{Host, LogLevel};
use crate::lease::Book;
use crate::metrics::Metrics;
use crate::plugin::Filter;
use crate::request::deferred::DeferredEstimate;
use crate::settle::{PostOutcome, SettleQueue};

/// The root's tick period, at most: about how long a stream's charge waits (longer when the
/// worker's event loop is busy, as Envoy runs the tick when it gets to it).
pub const TICK: Duration = Duration::from_millis(50);

/// The most streams that wait per VM; past it, a stream is charged as it ends. A worker
/// ends more than that within one tick only above ~10 000 governed calls a second.
pub const MAX_WAITING: usize = 512;

/// The most bytes the waiting streams may hold in their readers' buffers (a non-streamed
/// answer's kept tail, a partial event); past it, a stream is charged as it ends.
pub const MAX_WAITING_BYTES: usize = 4 << 20;

/// The most bytes of request bodies a VM keeps for an input estimate that may never be
/// needed ([`Charging::keep_for_estimate`]); past it, a body is estimated as it is read.
/// 200 in-flight calls of 20 KB each, or 40 of 100 KB.
pub const MAX_KEPT_BODY_BYTES: usize = 4 << 20;

/// A stream that ended, with what charging it needs.
#[derive(Debug)]
struct Ended {
    /// The configuration that governed it (a new one may have arrived since).
    filter: Rc<Filter>,
    exchange: Exchange,
    at: DateTime<Utc>,
}

/// The VM's charging state; see the module docs.
#[derive(Debug, Default)]
pub struct Charging {
    /// The VM's metric ids.
    pub metrics: RefCell<Metrics>,
    /// The settlement queue, once a configuration named a control plane (it is kept across
    /// reconfigurations, with the charges still in it).
    pub settlements: RefCell<Option<SettleQueue>>,
    waiting: RefCell<Vec<Ended>>,
    /// What the waiting streams hold ([`Exchange::held_bytes`]).
    waiting_bytes: Cell<usize>,
    /// The bytes of request bodies kept for their input estimate.
    kept_body_bytes: Rc<Cell<usize>>,
    /// The keys this VM's calls want a lease for (`lease.rs`), looked after on the tick.
    pub leases: RefCell<Book>,
}

impl Charging {
    /// The stream of `exchange` ended now: keep it for the next tick, or charge it at once
    /// when [`MAX_WAITING`] streams or [`MAX_WAITING_BYTES`] already wait. A stream with
    /// nothing to charge (not governed, or finished already) is dropped without asking the
    /// host anything.
    pub fn ended(&self, host: &dyn Host, filter: &Rc<Filter>, exchange: Exchange) {
        if !exchange.is_open() {
            return;
        }
        let bytes = exchange.held_bytes();
        let ended = Ended {
            filter: filter.clone(),
            exchange,
            at: host.now(),
        };
        let mut waiting = self.waiting.borrow_mut();
        let total = self.waiting_bytes.get().saturating_add(bytes);
        if waiting.len() < MAX_WAITING && total <= MAX_WAITING_BYTES {
            waiting.push(ended);
            self.waiting_bytes.set(total);
        } else {
            drop(waiting);
            self.charge(host, ended);
        }
    }

    /// A request body was read without a control plane: keep it for an input estimate made
    /// only if its charge needs one, or estimate it now when the VM already keeps
    /// [`MAX_KEPT_BODY_BYTES`]. Handing the same estimate twice does nothing.
    pub fn keep_for_estimate(&self, estimate: &DeferredEstimate) {
        if !estimate.count_in(&self.kept_body_bytes, MAX_KEPT_BODY_BYTES) {
            estimate.tokens();
        }
    }

    /// The bytes of request bodies kept for their input estimate.
    pub fn kept_body_bytes(&self) -> usize {
        self.kept_body_bytes.get()
    }

    /// How many streams wait for [`Charging::charge_waiting`].
    pub fn streams_waiting(&self) -> usize {
        self.waiting.borrow().len()
    }

    /// Charges every stream that waits (the root's tick and `on_done`), with one counter
    /// increment per metric touched.
    pub fn charge_waiting(&self, host: &dyn Host) {
        let mut batch = std::mem::take(&mut *self.waiting.borrow_mut());
        self.waiting_bytes.set(0);
        if batch.is_empty() {
            return;
        }
        self.metrics.borrow_mut().hold();
        for ended in batch.drain(..) {
            self.charge(host, ended);
        }
        self.metrics.borrow_mut().release(host);
        // Keep the list's room for the next tick's streams.
        let mut waiting = self.waiting.borrow_mut();
        if waiting.is_empty() {
            *waiting = batch;
        }
    }

    /// The control plane answered the settle post in flight with `status` (`None`: the post
    /// was reset or never sent): the queue takes the batch off or back (`SettleQueue::answered`),
    /// and the outcome is counted (`tollgate_settle_posts_total`; a failure also by its
    /// problem, a refused settlement as lost) and logged. Returns the outcome.
    pub fn settle_post_answered(
        &self,
        host: &dyn Host,
        status: Option<u16>,
    ) -> Option<PostOutcome> {
        let mut settlements = self.settlements.borrow_mut();
        let queue = settlements.as_mut()?;
        let outcome = queue.answered(status, host.now());
        let waiting = queue.len();
        drop(settlements);
        let mut metrics = self.metrics.borrow_mut();
        match outcome {
            PostOutcome::Done => metrics.settle_post(host, "ok"),
            PostOutcome::Retry => {
                metrics.settle_post(host, "retry");
                let problem = AnswerProblem::of_status(status);
                metrics.control_plane_problem(host, problem.as_str());
                host.log(
                    LogLevel::Warn,
                    &format!(
                        "tollgate: settle post failed ({status:?}); {waiting} settlements wait for a retry"
                    ),
                );
            }
            PostOutcome::Rejected => {
                metrics.settle_post(host, "rejected");
                metrics.settlements_lost(host, "rejected", 1);
                host.log(
                    LogLevel::Error,
                    "tollgate: the control plane refused a settlement as invalid; it was dropped",
                );
            }
        }
        Some(outcome)
    }

    /// The settlements still queued: what a VM that shuts down now cannot post any more.
    /// They are counted (`tollgate_settlements_lost_total{problem="shutdown"}`) and logged,
    /// and their reservations expire on their own (`reservation_ttl_secs`).
    pub fn drop_queued(&self, host: &dyn Host) {
        let Some(queue) = self.settlements.borrow_mut().take() else {
            return;
        };
        let n = queue.len();
        if n == 0 {
            return;
        }
        self.metrics
            .borrow_mut()
            .settlements_lost(host, "shutdown", n as u64);
        host.log(
            LogLevel::Error,
            &format!(
                "tollgate: shutting down with {n} settlements not posted (or not answered); \
                 their reservations expire on their own"
            ),
        );
    }

    /// Prices one stream, counts its metrics and queues its settlement.
    fn charge(&self, host: &dyn Host, mut ended: Ended) {
        if let Some(key) = ended.exchange.lease_wanted() {
            self.leases
                .borrow_mut()
                .want(key.clone(), ended.at.timestamp_millis());
        }
        let charge = ended.exchange.finish(
            &ended.filter,
            &mut self.metrics.borrow_mut(),
            host,
            ended.at,
        );
        let Some(charge) = charge else {
            return;
        };
        let Some(mut settlement) = charge.settlement(ended.at.timestamp_millis()) else {
            return;
        };
        settlement.model = ended.filter.price_table_id(&settlement.model);
        let mut queue = self.settlements.borrow_mut();
        let Some(queue) = queue.as_mut() else {
            return;
        };
        if queue.push(settlement, ended.at) {
            return;
        }
        self.metrics
            .borrow_mut()
            .settlements_lost(host, "queue_full", 1);
        host.log(
            LogLevel::Error,
            &format!(
                "tollgate: settlement queue full; charge for {} ({:?}) lost",
                charge.request_id,
                charge.cost.map(|c| c.total)
            ),
        );
    }
}

#[cfg(test)]
mod tests;
