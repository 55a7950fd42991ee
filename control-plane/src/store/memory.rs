//! The embedded store: everything in process memory behind one mutex.
//!
//! One mutex makes each reserve and settle atomic exactly as the Redis script is: a call sees
//! and changes every line it touches with nothing in between. The critical sections are a few
//! hash lookups, so the lock is held for well under a microsecond. Nothing survives a restart;
//! this store is for development, tests and single-replica trials.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::{
    ALERTS_CAP, AUDIT_CAP, AlertEvent, Collection, Counters, Expect, Line, ReserveOp,
    ReserveOutcome, SettleOp, SettleOutcome, Store, StoreError, Versioned, WriteConflict,
    limit_reached, new_thresholds, refusal,
};

/// Sweep expired windows and records after this many mutating calls.
const SWEEP_EVERY: u64 = 4096;

type WindowKey = (String, String, i64);

#[derive(Default)]
struct Window {
    counters: Counters,
    /// request id → (expires at ms, cost, tokens).
    reservations: HashMap<String, (i64, i64, i64)>,
    by_expiry: BTreeSet<(i64, String)>,
    expire_at_ms: Option<i64>,
}

impl Window {
    /// Releases reservations whose time is up (what the Redis script does lazily too).
    fn release_expired(&mut self, now_ms: i64) {
        while let Some((at, rid)) = self.by_expiry.first().cloned() {
            if at > now_ms {
                break;
            }
            self.by_expiry.pop_first();
            if let Some((_, cost, tokens)) = self.reservations.remove(&rid) {
                self.counters.reserved_nanos -= cost;
                self.counters.reserved_tokens -= tokens;
            }
        }
    }

    fn release(&mut self, rid: &str) -> bool {
        match self.reservations.remove(rid) {
            Some((at, cost, tokens)) => {
                self.by_expiry.remove(&(at, rid.to_owned()));
                self.counters.reserved_nanos -= cost;
                self.counters.reserved_tokens -= tokens;
                true
            }
            None => false,
        }
    }
}

enum Record {
    /// Reserved on these lines; the record itself lives until `until_ms`.
    Reserved { lines: Vec<Line>, until_ms: i64 },
    /// Settled; replays are ignored until `until_ms`.
    Settled { until_ms: i64 },
}

#[derive(Default)]
struct Inner {
    windows: HashMap<WindowKey, Window>,
    suspended: HashSet<(String, String)>,
    records: HashMap<String, Record>,
    docs: HashMap<Collection, BTreeMap<String, Versioned>>,
    audit: VecDeque<String>,
    alerts: HashMap<String, VecDeque<AlertEvent>>,
    ops: u64,
}

fn key(line: &Line) -> WindowKey {
    (line.tag.clone(), line.budget_id.clone(), line.window_index)
}

impl Inner {
    fn window(&mut self, line: &Line) -> &mut Window {
        let w = self.windows.entry(key(line)).or_default();
        w.expire_at_ms = line.expire_at_ms;
        w
    }

    fn sweep(&mut self, now_ms: i64) {
        self.ops += 1;
        if !self.ops.is_multiple_of(SWEEP_EVERY) {
            return;
        }
        self.windows
            .retain(|_, w| w.expire_at_ms.is_none_or(|at| at > now_ms));
        self.records.retain(|_, r| match r {
            Record::Reserved { until_ms, .. } | Record::Settled { until_ms } => *until_ms > now_ms,
        });
    }

    fn live_record(&self, rid: &str, now_ms: i64) -> Option<&Record> {
        self.records.get(rid).filter(|r| match r {
            Record::Reserved { until_ms, .. } | Record::Settled { until_ms } => *until_ms > now_ms,
        })
    }

    fn charge(&mut self, line: &Line, op: &SettleOp, reserved: bool) -> Vec<AlertEvent> {
        let w = self.window(line);
        // A reservation already released by expiry charges all the same, with nothing to free.
        if reserved {
            w.release(&op.request_id);
        } else {
            // No reservation counted this request yet (fail-open admission).
            w.counters.requests += 1;
        }
        w.counters.spent_nanos = w.counters.spent_nanos.saturating_add(op.cost_nanos);
        w.counters.tokens = w.counters.tokens.saturating_add(op.tokens);
        let crossed = new_thresholds(line, &w.counters);
        if let Some(&top) = crossed.last() {
            w.counters.threshold_pct = top;
        }
        let counters = w.counters;
        if line.suspend_on_exceed && limit_reached(line, &counters) {
            self.suspended
                .insert((line.tag.clone(), line.budget_id.clone()));
        }
        let events: Vec<AlertEvent> = crossed
            .into_iter()
            .map(|t| AlertEvent {
                budget_id: line.budget_id.clone(),
                window_index: line.window_index,
                threshold_pct: t,
                spent_nanos: counters.spent_nanos,
                at_ms: op.now_ms,
            })
            .collect();
        let log = self.alerts.entry(line.tag.clone()).or_default();
        for e in &events {
            log.push_front(e.clone());
        }
        log.truncate(ALERTS_CAP);
        events
    }
}

/// The in-memory store.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied reserve (each call
        // checks everything before it changes anything), so a poisoned lock is still sound.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn check_version(current: Option<&Versioned>, expect: Expect) -> Result<u64, WriteConflict> {
    match (current, expect) {
        (Some(_), Expect::Absent) => Err(WriteConflict::AlreadyExists),
        (None, Expect::Absent) => Ok(0),
        (None, _) => Err(WriteConflict::Missing),
        (Some(v), Expect::Version(want)) if v.version != want => {
            Err(WriteConflict::VersionMismatch { current: v.version })
        }
        (Some(v), _) => Ok(v.version),
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn reserve(&self, op: &ReserveOp) -> Result<ReserveOutcome, StoreError> {
        let mut inner = self.lock();
        inner.sweep(op.now_ms);
        if inner.live_record(&op.request_id, op.now_ms).is_some() {
            return Ok(ReserveOutcome::Duplicate);
        }
        // Check every line before changing any: all or nothing.
        let mut before = Vec::with_capacity(op.lines.len());
        let mut shadow_over = Vec::new();
        for (i, line) in op.lines.iter().enumerate() {
            // Only suspend_on_exceed budgets can be suspended; skip the lookup for the rest.
            let suspended = line.suspend_on_exceed
                && inner
                    .suspended
                    .contains(&(line.tag.clone(), line.budget_id.clone()));
            let w = inner.window(line);
            w.release_expired(op.now_ms);
            let c = w.counters;
            let reason = if suspended {
                Some(tollgate_model::wire::v1::DenyReason::Suspended)
            } else {
                refusal(line, &c, op.cost_nanos, op.tokens)
            };
            match reason {
                Some(reason) if line.enforce => {
                    if line.suspend_on_exceed && !suspended {
                        inner
                            .suspended
                            .insert((line.tag.clone(), line.budget_id.clone()));
                    }
                    return Ok(ReserveOutcome::Refused {
                        line: i,
                        reason,
                        counters: c,
                    });
                }
                Some(_) => shadow_over.push(i),
                None => {}
            }
            before.push(c);
        }
        let expires = op.now_ms.saturating_add(op.reservation_ttl_ms);
        let mut counters = Vec::with_capacity(op.lines.len());
        for line in &op.lines {
            let w = inner.window(line);
            w.counters.reserved_nanos += op.cost_nanos;
            w.counters.reserved_tokens += op.tokens;
            w.counters.requests += 1;
            w.reservations
                .insert(op.request_id.clone(), (expires, op.cost_nanos, op.tokens));
            w.by_expiry.insert((expires, op.request_id.clone()));
            counters.push(w.counters);
        }
        inner.records.insert(
            op.request_id.clone(),
            Record::Reserved {
                lines: op.lines.clone(),
                until_ms: op.now_ms.saturating_add(op.record_ttl_ms),
            },
        );
        Ok(ReserveOutcome::Reserved {
            counters,
            shadow_over,
        })
    }

    async fn settle(&self, op: &SettleOp) -> Result<SettleOutcome, StoreError> {
        let mut inner = self.lock();
        inner.sweep(op.now_ms);
        let (lines, reserved) = match inner.live_record(&op.request_id, op.now_ms) {
            Some(Record::Settled { .. }) => return Ok(SettleOutcome::Duplicate),
            Some(Record::Reserved { lines, .. }) => (lines.clone(), true),
            None => (op.lines.clone(), false),
        };
        let mut alerts = Vec::new();
        for line in &lines {
            alerts.extend(inner.charge(line, op, reserved));
        }
        inner.records.insert(
            op.request_id.clone(),
            Record::Settled {
                until_ms: op.now_ms.saturating_add(op.dedupe_ttl_ms),
            },
        );
        Ok(SettleOutcome::Applied { alerts })
    }

    async fn counters(&self, line: &Line) -> Result<Counters, StoreError> {
        Ok(self
            .lock()
            .windows
            .get(&key(line))
            .map(|w| w.counters)
            .unwrap_or_default())
    }

    async fn reset_window(&self, line: &Line) -> Result<(), StoreError> {
        self.lock().windows.remove(&key(line));
        Ok(())
    }

    async fn is_suspended(&self, line: &Line) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .suspended
            .contains(&(line.tag.clone(), line.budget_id.clone())))
    }

    async fn reopen(&self, line: &Line) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .suspended
            .remove(&(line.tag.clone(), line.budget_id.clone())))
    }

    async fn alerts(&self, tags: &[String], limit: usize) -> Result<Vec<AlertEvent>, StoreError> {
        let inner = self.lock();
        let mut all: Vec<AlertEvent> = tags
            .iter()
            .filter_map(|t| inner.alerts.get(t))
            .flat_map(|log| log.iter().take(limit).cloned())
            .collect();
        all.sort_by_key(|a| std::cmp::Reverse(a.at_ms));
        all.truncate(limit);
        Ok(all)
    }

    async fn get_doc(&self, coll: Collection, id: &str) -> Result<Option<Versioned>, StoreError> {
        Ok(self.lock().docs.get(&coll).and_then(|d| d.get(id)).cloned())
    }

    async fn list_docs(&self, coll: Collection) -> Result<Vec<(String, Versioned)>, StoreError> {
        Ok(self
            .lock()
            .docs
            .get(&coll)
            .map(|d| d.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }

    async fn put_doc(
        &self,
        coll: Collection,
        id: &str,
        json: &str,
        expect: Expect,
    ) -> Result<Result<u64, WriteConflict>, StoreError> {
        let mut inner = self.lock();
        let docs = inner.docs.entry(coll).or_default();
        let version = match check_version(docs.get(id), expect) {
            Ok(v) => v + 1,
            Err(c) => return Ok(Err(c)),
        };
        docs.insert(
            id.to_owned(),
            Versioned {
                json: json.to_owned(),
                version,
            },
        );
        Ok(Ok(version))
    }

    async fn delete_doc(
        &self,
        coll: Collection,
        id: &str,
        expect: Expect,
    ) -> Result<Result<(), WriteConflict>, StoreError> {
        let mut inner = self.lock();
        let docs = inner.docs.entry(coll).or_default();
        if let Err(c) = check_version(docs.get(id), expect) {
            return Ok(Err(c));
        }
        docs.remove(id);
        Ok(Ok(()))
    }

    async fn audit(&self, json: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.audit.push_front(json.to_owned());
        inner.audit.truncate(AUDIT_CAP);
        Ok(())
    }

    async fn audit_log(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        Ok(self.lock().audit.iter().take(limit).cloned().collect())
    }
}
