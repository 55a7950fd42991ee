//! The embedded store: everything in process memory behind one mutex.
//!
//! One mutex makes each reserve and settle atomic exactly as the Redis script is: a call sees
//! and changes every line it touches with nothing in between. The critical sections are a few
//! hash lookups, so the lock is held for well under a microsecond. Nothing survives a restart;
//! this store is for development, tests and single-replica trials.
//!
//! Hot path: windows are looked up by borrowed `(tag, budget_id, index)` (no key is built per
//! call), a hold lives once in its request's record (not once per window), and the record
//! shares the op's lines behind an `Arc`, so a reserve allocates the record's key, its
//! expiry entry and one copy of its lines, and a settle nothing but its marker.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

mod lease;
mod ledger;

use super::{
    ALERTS_CAP, AUDIT_CAP, AlertEvent, Collection, Counters, Expect, LeaseAmounts, LeaseOp,
    LeaseOutcome, LeaseTakeOp, LeaseView, Line, ReserveOp, ReserveOutcome, SettleOp, SettleOutcome,
    SpendOutcome, Store, StoreError, Versioned, WriteConflict, limit_reached, new_thresholds,
    refusal,
};
use crate::ledger::import::SpendRow;
use crate::ledger::{LedgerLimits, RecordPage, RollupQuery, RollupRow, TimeRange};

/// Sweep expired windows after this many mutating calls (records expire through their own
/// queue, a few per call, not by a scan: a scan of every record cost more than everything
/// else together once a day's records had piled up).
const SWEEP_EVERY: u64 = 4096;

/// A window's identity: (tag, budget id, window index).
#[derive(PartialEq, Eq, Hash)]
struct WindowKey(String, String, i64);

/// The borrowed form of [`WindowKey`], so a lookup builds no `String`.
trait KeyView {
    fn view(&self) -> (&str, &str, i64);
}

impl KeyView for WindowKey {
    fn view(&self) -> (&str, &str, i64) {
        (&self.0, &self.1, self.2)
    }
}

impl KeyView for Line {
    fn view(&self) -> (&str, &str, i64) {
        (&self.tag, &self.budget_id, self.window_index)
    }
}

impl<'a> Borrow<dyn KeyView + 'a> for WindowKey {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.view() == other.view()
    }
}

impl Eq for dyn KeyView + '_ {}

impl Hash for dyn KeyView + '_ {
    // Must hash exactly as the derived `Hash` of `WindowKey` does.
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (tag, id, idx) = self.view();
        tag.hash(state);
        id.hash(state);
        idx.hash(state);
    }
}

#[derive(Default)]
struct Window {
    counters: Counters,
    /// Which incarnation of this key (a reset or expiry drops the window; a hold taken on an
    /// older one must not come off a newer one).
    generation: u64,
    expire_at_ms: Option<i64>,
}

/// A reservation still counted on its windows.
struct Hold {
    /// When it releases itself (also its key in `Inner::expiries`, with `seq`).
    expires_ms: i64,
    seq: u64,
    cost: i64,
    tokens: i64,
    /// The generation of each line's window when the hold was taken.
    generations: Vec<u64>,
}

enum Record {
    /// Reserved on these lines; the record itself lives until `until_ms`. `hold` is `None`
    /// once the hold has been released by expiry.
    Reserved {
        lines: Arc<[Line]>,
        until_ms: i64,
        hold: Option<Hold>,
    },
    /// Settled; replays are ignored until `until_ms`.
    Settled { until_ms: i64 },
}

impl Record {
    fn until_ms(&self) -> i64 {
        match self {
            Record::Reserved { until_ms, .. } | Record::Settled { until_ms } => *until_ms,
        }
    }
}

#[derive(Default)]
struct Inner {
    windows: HashMap<WindowKey, Window>,
    suspended: HashSet<(String, String)>,
    records: HashMap<Arc<str>, Record>,
    /// Records by when they may be dropped: (until, seq) -> request id. An entry whose record
    /// has since been replaced (reserved, then settled) is skipped when it comes up.
    record_expiries: BTreeMap<(i64, u64), Arc<str>>,
    /// Holds by when they release themselves: (expires, seq) -> request id.
    expiries: BTreeMap<(i64, u64), Arc<str>>,
    docs: HashMap<Collection, BTreeMap<String, Versioned>>,
    audit: VecDeque<String>,
    alerts: HashMap<String, VecDeque<AlertEvent>>,
    ops: u64,
    ledger: ledger::MemLedger,
    leases: lease::Leases,
    /// Last generation / hold sequence number handed out.
    seq: u64,
}

impl Inner {
    fn window(&mut self, line: &Line) -> &mut Window {
        if !self.windows.contains_key(line as &dyn KeyView) {
            self.seq += 1;
            let w = Window {
                generation: self.seq,
                ..Window::default()
            };
            self.windows.insert(
                WindowKey(line.tag.clone(), line.budget_id.clone(), line.window_index),
                w,
            );
        }
        let Some(w) = self.windows.get_mut(line as &dyn KeyView) else {
            unreachable!("inserted above")
        };
        w.expire_at_ms = line.expire_at_ms;
        w
    }

    fn sweep(&mut self, now_ms: i64) {
        self.release_expired(now_ms);
        self.release_expired_leases(now_ms);
        while let Some(entry) = self.record_expiries.first_entry() {
            if entry.key().0 > now_ms {
                break;
            }
            let rid = entry.remove();
            if self
                .records
                .get(&rid)
                .is_some_and(|r| r.until_ms() <= now_ms)
            {
                self.records.remove(&rid);
            }
        }
        self.ops += 1;
        if !self.ops.is_multiple_of(SWEEP_EVERY) {
            return;
        }
        self.windows
            .retain(|_, w| w.expire_at_ms.is_none_or(|at| at > now_ms));
    }

    /// Takes a hold off the windows it was taken on (those still in the same incarnation).
    fn unhold(&mut self, lines: &[Line], hold: &Hold) {
        for (line, &generation) in lines.iter().zip(&hold.generations) {
            if let Some(w) = self.windows.get_mut(line as &dyn KeyView)
                && w.generation == generation
            {
                // A hold taken on a saturated counter took less than its amount: clamp at
                // zero, as the Redis scripts do, rather than go negative.
                let c = &mut w.counters;
                c.reserved_nanos = c.reserved_nanos.saturating_sub(hold.cost).max(0);
                c.reserved_tokens = c.reserved_tokens.saturating_sub(hold.tokens).max(0);
            }
        }
    }

    /// Releases holds whose time is up (what the Redis script does lazily too).
    fn release_expired(&mut self, now_ms: i64) {
        while let Some(entry) = self.expiries.first_entry() {
            if entry.key().0 > now_ms {
                break;
            }
            let rid = entry.remove();
            let released = match self.records.get_mut(&rid) {
                Some(Record::Reserved { lines, hold, .. }) => {
                    hold.take().map(|h| (Arc::clone(lines), h))
                }
                _ => None,
            };
            if let Some((lines, hold)) = released {
                self.unhold(&lines, &hold);
            }
        }
    }

    /// Stores a record (returning the one it replaces) and queues its expiry.
    fn put_record(&mut self, rid: Arc<str>, record: Record) -> Option<Record> {
        self.seq += 1;
        self.record_expiries
            .insert((record.until_ms(), self.seq), Arc::clone(&rid));
        self.records.insert(rid, record)
    }

    /// Takes the hold of a record being replaced off its windows (a stale record whose hold
    /// has not been released yet).
    fn drop_hold(&mut self, old: Option<Record>) {
        if let Some(Record::Reserved {
            lines,
            hold: Some(hold),
            ..
        }) = old
        {
            self.expiries.remove(&(hold.expires_ms, hold.seq));
            self.unhold(&lines, &hold);
        }
    }

    fn live_record(&self, rid: &str, now_ms: i64) -> Option<&Record> {
        self.records.get(rid).filter(|r| r.until_ms() > now_ms)
    }

    fn charge(&mut self, line: &Line, op: &SettleOp, reserved: bool, alerts: &mut Vec<AlertEvent>) {
        let w = self.window(line);
        if !reserved {
            // No reservation counted this request yet (fail-open admission).
            w.counters.requests += 1;
        }
        w.counters.spent_nanos = w.counters.spent_nanos.saturating_add(op.cost_nanos);
        w.counters.tokens = w.counters.tokens.saturating_add(op.tokens);
        let counters = w.counters;
        if line.thresholds_pct.is_empty() && !line.suspend_on_exceed {
            return;
        }
        let crossed = new_thresholds(line, &counters);
        if let Some(&top) = crossed.last() {
            w.counters.threshold_pct = top;
        }
        if line.suspend_on_exceed && limit_reached(line, &counters) {
            self.suspended
                .insert((line.tag.clone(), line.budget_id.clone()));
        }
        if crossed.is_empty() {
            return;
        }
        let log = self.alerts.entry(line.tag.clone()).or_default();
        for t in crossed {
            let e = AlertEvent {
                budget_id: line.budget_id.clone(),
                window_index: line.window_index,
                threshold_pct: t,
                spent_nanos: counters.spent_nanos,
                at_ms: op.now_ms,
            };
            log.push_front(e.clone());
            alerts.push(e);
        }
        log.truncate(ALERTS_CAP);
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

    /// An empty store keeping the ledger within `limits` (default: [`LedgerLimits::default`]).
    pub fn with_ledger_limits(limits: LedgerLimits) -> MemoryStore {
        let store = MemoryStore::default();
        store.lock().ledger.limits = limits;
        store
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
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.sweep(op.now_ms);
        if inner.live_record(&op.request_id, op.now_ms).is_some() {
            return Ok(ReserveOutcome::Duplicate);
        }
        // Check every line before changing any: all or nothing.
        let mut shadow_over = Vec::new();
        for (i, line) in op.lines.iter().enumerate() {
            // Only suspend_on_exceed budgets can be suspended; skip the lookup for the rest.
            let suspended = line.suspend_on_exceed
                && inner
                    .suspended
                    .contains(&(line.tag.clone(), line.budget_id.clone()));
            let c = inner
                .windows
                .get(line as &dyn KeyView)
                .map(|w| w.counters)
                .unwrap_or_default();
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
        }
        let mut used_nanos = Vec::with_capacity(op.lines.len());
        let mut generations = Vec::with_capacity(op.lines.len());
        for line in &op.lines {
            let w = inner.window(line);
            // Saturating, as the settled counters are: a huge charge must not wrap.
            w.counters.reserved_nanos = w.counters.reserved_nanos.saturating_add(op.cost_nanos);
            w.counters.reserved_tokens = w.counters.reserved_tokens.saturating_add(op.tokens);
            w.counters.requests = w.counters.requests.saturating_add(1);
            used_nanos.push(
                w.counters
                    .spent_nanos
                    .saturating_add(w.counters.reserved_nanos),
            );
            generations.push(w.generation);
        }
        inner.seq += 1;
        let hold = Hold {
            expires_ms: op.now_ms.saturating_add(op.reservation_ttl_ms),
            seq: inner.seq,
            cost: op.cost_nanos,
            tokens: op.tokens,
            generations,
        };
        let rid: Arc<str> = op.request_id.as_str().into();
        inner
            .expiries
            .insert((hold.expires_ms, hold.seq), Arc::clone(&rid));
        let stale = inner.put_record(
            rid,
            Record::Reserved {
                lines: op.lines.as_slice().into(),
                until_ms: op.now_ms.saturating_add(op.record_ttl_ms),
                hold: Some(hold),
            },
        );
        inner.drop_hold(stale);
        Ok(ReserveOutcome::Reserved {
            used_nanos,
            shadow_over,
        })
    }

    async fn settle(&self, op: &SettleOp) -> Result<SettleOutcome, StoreError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.sweep(op.now_ms);
        let settled = Record::Settled {
            until_ms: op.now_ms.saturating_add(op.dedupe_ttl_ms),
        };
        // The settled marker replaces the record; its lines and hold come back out of it.
        let (rid, previous) = match inner.records.get_key_value(op.request_id.as_str()) {
            Some((_, Record::Settled { until_ms })) if *until_ms > op.now_ms => {
                return Ok(SettleOutcome::Duplicate);
            }
            Some((rid, r)) => {
                let live = r.until_ms() > op.now_ms;
                (Arc::clone(rid), live)
            }
            None => (op.request_id.as_str().into(), false),
        };
        let old = inner.put_record(rid, settled);
        let previous = if previous {
            old
        } else {
            // A stale record (or none): charged as if there were none.
            inner.drop_hold(old);
            None
        };
        let mut alerts = Vec::new();
        match previous {
            Some(Record::Reserved { lines, hold, .. }) => {
                // A hold already released by expiry charges all the same, with nothing to free.
                if let Some(hold) = hold {
                    inner.expiries.remove(&(hold.expires_ms, hold.seq));
                    inner.unhold(&lines, &hold);
                }
                // As in the Redis store: when the settlement names the windows the call
                // reserved on (the usual case), the budgets' settings as they are now
                // (thresholds, suspend_on_exceed, limits) apply; when a window has rolled
                // over since, the reserved windows are charged with their recorded lines.
                let same_windows = lines.len() == op.lines.len()
                    && lines.iter().zip(&op.lines).all(|(a, b)| a.same_window(b));
                let charged: &[Line] = if same_windows { &op.lines } else { &lines };
                for line in charged {
                    inner.charge(line, op, true, &mut alerts);
                }
            }
            _ => {
                for line in &op.lines {
                    inner.charge(line, op, false, &mut alerts);
                }
            }
        }
        if let Some(record) = &op.ledger {
            inner.ledger.write(record, op.now_ms);
        }
        Ok(SettleOutcome::Applied { alerts })
    }

    async fn counters(&self, line: &Line) -> Result<Counters, StoreError> {
        Ok(self
            .lock()
            .windows
            .get(line as &dyn KeyView)
            .map(|w| w.counters)
            .unwrap_or_default())
    }

    async fn counters_many(&self, lines: &[Line]) -> Result<Vec<Counters>, StoreError> {
        let inner = self.lock();
        Ok(lines
            .iter()
            .map(|line| {
                inner
                    .windows
                    .get(line as &dyn KeyView)
                    .map(|w| w.counters)
                    .unwrap_or_default()
            })
            .collect())
    }

    async fn reset_window(&self, line: &Line) -> Result<(), StoreError> {
        self.lock().windows.remove(line as &dyn KeyView);
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

    async fn rollups(&self, q: &RollupQuery) -> Result<Vec<RollupRow>, StoreError> {
        Ok(self.lock().ledger.rollups(q))
    }

    async fn import_spend(
        &self,
        _tag: &str,
        rows: &[SpendRow],
        now_ms: i64,
        dedupe_ttl_ms: i64,
    ) -> Result<Vec<SpendOutcome>, StoreError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.sweep(now_ms);
        let until_ms = now_ms.saturating_add(dedupe_ttl_ms);
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            // The same marker namespace as an imported record's settlement (`import:<id>`);
            // spend row ids carry their format, so the two never meet.
            let rid: Arc<str> = format!("import:{}", r.id).into();
            let seen = matches!(
                inner.records.get(&rid),
                Some(Record::Settled { until_ms }) if *until_ms > now_ms
            );
            if seen {
                out.push(SpendOutcome::Duplicate);
                continue;
            }
            let outcome = SpendOutcome::of_new(r, &inner.ledger.limits, now_ms);
            if outcome == SpendOutcome::Added {
                inner.put_record(rid, Record::Settled { until_ms });
                inner.ledger.add_spend(r, now_ms);
            }
            out.push(outcome);
        }
        Ok(out)
    }

    async fn records(
        &self,
        range: TimeRange,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<RecordPage, StoreError> {
        self.lock().ledger.records(range, cursor, limit)
    }

    async fn lease(&self, op: &LeaseOp) -> Result<LeaseOutcome, StoreError> {
        let mut inner = self.lock();
        inner.sweep(op.now_ms);
        Ok(inner.lease(op))
    }

    async fn lease_take(&self, op: &LeaseTakeOp) -> Result<Option<LeaseAmounts>, StoreError> {
        let mut inner = self.lock();
        inner.sweep(op.now_ms);
        Ok(inner.lease_take(op))
    }

    async fn leases(&self, now_ms: i64) -> Result<Vec<LeaseView>, StoreError> {
        let mut inner = self.lock();
        inner.release_expired_leases(now_ms);
        Ok(inner.lease_views())
    }
}
