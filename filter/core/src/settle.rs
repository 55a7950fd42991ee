//! The settlement queue: charges waiting to be posted to the control plane in batches.
//!
//! Each VM keeps one queue; its root context drains it on its tick. A batch goes when it is
//! full or its oldest charge has waited `max_delay`; one batch is in flight at a time. A failed
//! post puts the batch back at the front and backs off (doubling, capped); the control plane
//! de-duplicates by request id, so a batch that did arrive but whose answer was lost is
//! harmless to send again. A 413 halves the batch size. A 400 (a settlement the control plane
//! refuses as invalid) halves it too, down to the one settlement at fault, which is then
//! dropped and counted: one bad record must not block every later one. The queue is bounded:
//! when full, the new charge is dropped and counted, never silently.
//!
//! Mixed releases: a control plane older than the ledger refuses settlement fields it does
//! not know with a 400. So the first 400 of a batch sent in the current form is answered by
//! sending the same batch again at once in the previous release's form (the same charges
//! without the ledger's extra fields), and later batches go in that form for
//! [`LEGACY_HOLD`]; only a 400 to that form starts the halving.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tollgate_model::wire::v1::{MAX_SETTLE_BATCH, SETTLE_PATH, SettleBatch, Settlement};

/// How long batches go in the previous release's form after a control plane refused the
/// current one (then the current form is tried again: the upgrade may have finished).
pub const LEGACY_HOLD: Duration = Duration::from_secs(300);

/// Queue limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettleLimits {
    /// Most charges held (default 10 000).
    pub capacity: usize,
    /// Most charges per post (default 200, at most the wire limit).
    pub max_batch: usize,
    /// Longest a charge waits before a partial batch goes (default 1 s).
    pub max_delay: Duration,
    /// Longest back-off after failures (default 30 s).
    pub max_backoff: Duration,
}

impl Default for SettleLimits {
    fn default() -> Self {
        SettleLimits {
            capacity: 10_000,
            max_batch: 200,
            max_delay: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// What a post's answer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostOutcome {
    /// Accepted; the batch is gone.
    Done,
    /// Failed; the batch is back at the front and will be retried after the back-off.
    Retry,
    /// The control plane refused the one settlement of this batch as invalid: dropped
    /// (counted in [`SettleQueue::rejected`]).
    Rejected,
}

/// The queue.
#[derive(Debug)]
pub struct SettleQueue {
    limits: SettleLimits,
    pending: VecDeque<(DateTime<Utc>, Settlement)>,
    in_flight: Vec<(DateTime<Utc>, Settlement)>,
    batch_size: usize,
    backoff: Duration,
    retry_at: Option<DateTime<Utc>>,
    dropped: u64,
    rejected: u64,
    /// Until when batches go in the previous release's form.
    legacy_until: Option<DateTime<Utc>>,
    /// Whether the batch in flight went in that form.
    in_flight_legacy: bool,
}

impl SettleQueue {
    /// An empty queue.
    pub fn new(limits: SettleLimits) -> SettleQueue {
        let batch_size = limits.max_batch.clamp(1, MAX_SETTLE_BATCH);
        SettleQueue {
            limits,
            pending: VecDeque::new(),
            in_flight: Vec::new(),
            batch_size,
            backoff: Duration::ZERO,
            retry_at: None,
            dropped: 0,
            rejected: 0,
            legacy_until: None,
            in_flight_legacy: false,
        }
    }

    /// Queues a charge. `false` when the queue is full and the charge was dropped (counted
    /// in [`SettleQueue::dropped`]).
    pub fn push(&mut self, settlement: Settlement, now: DateTime<Utc>) -> bool {
        if self.pending.len() + self.in_flight.len() >= self.limits.capacity {
            self.dropped += 1;
            return false;
        }
        self.pending.push_back((now, settlement));
        true
    }

    /// Charges waiting or in flight.
    pub fn len(&self) -> usize {
        self.pending.len() + self.in_flight.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Charges dropped because the queue was full, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Settlements the control plane refused as invalid, since start.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// The next batch to post, if one is due: nothing in flight, not backing off, and either a
    /// full batch waits or the oldest charge has waited `max_delay`. Returns the JSON body;
    /// the batch is in flight until [`SettleQueue::answered`].
    pub fn due(&mut self, now: DateTime<Utc>) -> Option<Vec<u8>> {
        if !self.in_flight.is_empty()
            || self.pending.is_empty()
            || self.retry_at.is_some_and(|t| now < t)
        {
            return None;
        }
        let oldest = self.pending.front().map(|(t, _)| *t)?;
        let waited = (now - oldest).to_std().unwrap_or(Duration::ZERO);
        if self.pending.len() < self.batch_size && waited < self.limits.max_delay {
            return None;
        }
        let n = self.pending.len().min(self.batch_size);
        self.in_flight = self.pending.drain(..n).collect();
        self.in_flight_legacy = self.legacy_until.is_some_and(|t| now < t);
        let batch = SettleBatch {
            settlements: self
                .in_flight
                .iter()
                .map(|(_, s)| match self.in_flight_legacy {
                    true => s.previous_release_form(),
                    false => s.clone(),
                })
                .collect(),
        };
        Some(serde_json::to_vec(&batch).unwrap_or_default())
    }

    /// The answer to the batch in flight: its status, or `None` when the post could not be
    /// sent. Envoy's own 503/504 for a refused connection or a timeout are failures like any
    /// other non-200.
    pub fn answered(&mut self, status: Option<u16>, now: DateTime<Utc>) -> PostOutcome {
        if status == Some(200) {
            self.in_flight.clear();
            self.backoff = Duration::ZERO;
            self.retry_at = None;
            self.batch_size = self.limits.max_batch.clamp(1, MAX_SETTLE_BATCH);
            return PostOutcome::Done;
        }
        if status == Some(400) && !self.in_flight_legacy {
            // Perhaps an older control plane refusing the new fields: the same batch again,
            // now, in the form it knows.
            self.legacy_until = chrono::TimeDelta::from_std(LEGACY_HOLD)
                .ok()
                .map(|d| now + d);
            for item in self.in_flight.drain(..).rev() {
                self.pending.push_front(item);
            }
            return PostOutcome::Retry;
        }
        if status == Some(400) {
            if self.in_flight.len() == 1 {
                self.in_flight.clear();
                self.rejected += 1;
                return PostOutcome::Rejected;
            }
            // Find the bad one by halving; the good halves go through at once.
            self.batch_size = (self.in_flight.len() / 2).max(1);
            for item in self.in_flight.drain(..).rev() {
                self.pending.push_front(item);
            }
            return PostOutcome::Retry;
        }
        if status == Some(413) {
            self.batch_size = (self.batch_size / 2).max(1);
        }
        for item in self.in_flight.drain(..).rev() {
            self.pending.push_front(item);
        }
        self.backoff =
            (self.backoff * 2).clamp(Duration::from_millis(100), self.limits.max_backoff);
        self.retry_at = chrono::TimeDelta::from_std(self.backoff)
            .ok()
            .map(|d| now + d);
        PostOutcome::Retry
    }

    /// Headers of a settle post.
    pub fn headers<'a>(authority: &'a str, authorization: &'a str) -> [(&'a str, &'a str); 5] {
        [
            (":method", "POST"),
            (":path", SETTLE_PATH),
            (":authority", authority),
            ("content-type", "application/json"),
            ("authorization", authorization),
        ]
    }
}

#[cfg(test)]
mod tests;
