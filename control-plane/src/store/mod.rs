//! The `Store` trait: everything the control plane keeps, behind one interface with two
//! implementations (`memory` for the embedded default, `redis` for production) that pass one
//! contract suite (`tests/store_contract.rs`).
//!
//! Admission is expressed as *lines*: one budget's current window, with the limits to check.
//! The service works out which budgets match and which window each is in; the store checks
//! and reserves every line in one atomic step, so two concurrent requests can never both take
//! the last dollar of a budget.

pub mod lease;
pub mod memory;
pub mod redis;

pub use lease::{
    LeaseAmounts, LeaseMeta, LeaseOp, LeaseOutcome, LeaseTakeOp, LeaseView, lease_refusal,
};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tollgate_model::wire::v1::DenyReason;

use crate::ledger::import::SpendRow;
use crate::ledger::{RecordPage, RequestRecord, RollupQuery, RollupRow, TimeRange};

/// A store call that failed. Never turned into an admission answer: the API maps it to
/// `503 store_unavailable` (or `500` for corrupt data), so a broken store is never a wrong
/// allow or deny.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or timed out.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend refuses writes because it is full (Redis at `maxmemory` with
    /// `noeviction`): nothing was written; the caller answers 503 and the fail mode applies.
    #[error("store full: {0}")]
    Full(String),
    /// The backend answered something this code cannot read.
    #[error("store data corrupt: {0}")]
    Corrupt(String),
    /// A ledger page cursor that this store did not hand out (the API answers 400).
    #[error("cursor {0:?} is not one this store handed out")]
    BadCursor(String),
}

/// One budget's current window, as admission checks and charges it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// The budget's id.
    pub budget_id: String,
    /// The cluster hash tag of the budget's keys (its org scope value, or `global`).
    pub tag: String,
    /// The window's index within its period (part of the counter's key).
    pub window_index: i64,
    /// When the window's counters may be dropped (window end + grace), Unix ms; `None` keeps
    /// them (total budgets).
    pub expire_at_ms: Option<i64>,
    /// USD limit in nano-USD.
    pub limit_nanos: Option<i64>,
    /// Token limit.
    pub limit_tokens: Option<i64>,
    /// Request limit.
    pub limit_requests: Option<i64>,
    /// False for shadow budgets: checked and recorded, never refused.
    pub enforce: bool,
    /// Close the budget (across windows) once a limit is reached, until an admin reopens it.
    pub suspend_on_exceed: bool,
    /// Alert thresholds in percent, ascending.
    pub thresholds_pct: Vec<u16>,
}

impl Line {
    /// Whether `other` is the same budget window (what a settlement compares with the
    /// windows its call reserved on).
    pub fn same_window(&self, other: &Line) -> bool {
        self.budget_id == other.budget_id
            && self.tag == other.tag
            && self.window_index == other.window_index
    }
}

/// A window's counters. `reserved_*` are outstanding reservations, not yet settled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Settled spend, nano-USD.
    pub spent_nanos: i64,
    /// Reserved, unsettled spend, nano-USD.
    pub reserved_nanos: i64,
    /// Settled tokens.
    pub tokens: i64,
    /// Reserved, unsettled tokens.
    pub reserved_tokens: i64,
    /// Requests admitted (counted at reservation, or at settlement when none was made).
    pub requests: i64,
    /// Requests held by leases, not yet taken by a settled call (a leased call is counted
    /// in `requests` when it settles, and taken off here then).
    pub reserved_requests: i64,
    /// Highest alert threshold crossed in this window, percent (0 = none).
    pub threshold_pct: u16,
}

impl Counters {
    /// USD left under `limit` after settled and reserved spend (never negative).
    pub fn remaining_nanos(&self, limit: i64) -> i64 {
        left_under(limit, self.spent_nanos.saturating_add(self.reserved_nanos))
    }
}

/// USD left under `limit` when `used_nanos` (settled + reserved) is taken (never negative).
pub fn left_under(limit: i64, used_nanos: i64) -> i64 {
    limit.saturating_sub(used_nanos).max(0)
}

/// Reserve a call's estimate against every line at once.
#[derive(Debug, Clone)]
pub struct ReserveOp {
    /// The call's id; a second reserve with the same id reserves nothing more.
    pub request_id: String,
    /// Hash tag of the call's own keys (reservation record): its org, or `global`.
    pub request_tag: String,
    /// The lines to check and reserve on.
    pub lines: Vec<Line>,
    /// Estimated cost, nano-USD.
    pub cost_nanos: i64,
    /// Estimated tokens.
    pub tokens: i64,
    /// The current time, Unix ms.
    pub now_ms: i64,
    /// How long the reservation holds before it releases itself.
    pub reservation_ttl_ms: i64,
    /// How long the reservation's record (which windows it touched) is kept, so that a late
    /// settlement still charges the windows it reserved on; longer than the reservation.
    pub record_ttl_ms: i64,
}

/// What a reserve did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// Reserved on every line. `used_nanos[i]` is line `i`'s settled plus reserved USD after
    /// the reservation (all admission needs: what is left under each limit); `shadow_over`
    /// lists shadow lines that would have refused. Other counters: [`Store::counters`].
    Reserved {
        /// Settled + reserved nano-USD per line, after this reservation.
        used_nanos: Vec<i64>,
        /// Indexes of shadow lines whose limit was passed.
        shadow_over: Vec<usize>,
    },
    /// This request id already holds a reservation (or was settled); nothing changed.
    Duplicate,
    /// Line `line` refused; nothing was reserved anywhere.
    Refused {
        /// Index into the op's lines.
        line: usize,
        /// Which limit.
        reason: DenyReason,
        /// That line's counters before the refused reservation.
        counters: Counters,
    },
}

/// Settle one call: replace its reservation with the actual charge.
#[derive(Debug, Clone)]
pub struct SettleOp {
    /// The call's id.
    pub request_id: String,
    /// Hash tag of the call's own keys: the same rule as [`ReserveOp::request_tag`].
    pub request_tag: String,
    /// Lines to charge when the store holds no reservation record for the id (fail-open
    /// admission, or a record long gone): the budgets matching the settlement now.
    pub lines: Vec<Line>,
    /// Actual cost, nano-USD.
    pub cost_nanos: i64,
    /// Actual tokens.
    pub tokens: i64,
    /// The current time, Unix ms.
    pub now_ms: i64,
    /// How long the "settled" marker that makes replays harmless is kept.
    pub dedupe_ttl_ms: i64,
    /// The ledger record to write with the charge (`None`: ledger off). Written only when
    /// the settlement is applied, never for a replay; its `recorded_at_ms` is set to
    /// `now_ms`. The store also adds it to its hour's and day's rollup rows.
    pub ledger: Option<RequestRecord>,
}

/// What [`Store::import_spend`] did with a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendOutcome {
    /// Added to the rollups now.
    Added,
    /// Imported before (same id): nothing added.
    Duplicate,
    /// Its day ended longer ago than the daily retention: every row it would add is already
    /// past its retention, so nothing is written (not even its marker).
    TooOld,
}

impl SpendOutcome {
    /// The outcome of a row not imported before, by the store's retention.
    pub fn of_new(row: &SpendRow, limits: &crate::ledger::LedgerLimits, now_ms: i64) -> Self {
        let day = crate::ledger::Granularity::Day;
        let kept_until = day
            .bucket_start(row.bucket_start_ms)
            .saturating_add(day.millis())
            .saturating_add(limits.daily_retention_ms);
        if kept_until <= now_ms {
            SpendOutcome::TooOld
        } else {
            SpendOutcome::Added
        }
    }
}

/// A threshold crossed by a settlement: recorded once per window per budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlertEvent {
    /// The budget.
    pub budget_id: String,
    /// The window it happened in.
    pub window_index: i64,
    /// The threshold, percent of the limit.
    pub threshold_pct: u16,
    /// Settled spend when it happened, nano-USD.
    pub spent_nanos: i64,
    /// When, Unix ms.
    pub at_ms: i64,
}

/// What a settle did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettleOutcome {
    /// Charged now; thresholds crossed by this charge.
    Applied {
        /// New alert events.
        alerts: Vec<AlertEvent>,
    },
    /// Already settled earlier: nothing charged.
    Duplicate,
}

/// A stored document with its version, for optimistic concurrency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The JSON document.
    pub json: String,
    /// Increases on every write; the API's `ETag`.
    pub version: u64,
}

/// The version a write expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The document must not exist (create).
    Absent,
    /// The document must exist at this version (`If-Match`).
    Version(u64),
    /// The document must exist, any version.
    Exists,
}

/// A versioned write that did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteConflict {
    /// Create of an existing document.
    AlreadyExists,
    /// Update or delete of a missing document.
    Missing,
    /// Stored version differs from the expected one.
    VersionMismatch {
        /// The stored version.
        current: u64,
    },
}

/// Collections of small JSON documents the store keeps for the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Collection {
    /// Budget specs, by budget id.
    Budgets,
    /// Price overrides (price-file entries), by model id.
    Prices,
    /// Emergency switches, by scope.
    Switches,
    /// Budget profiles (`ProfileSpec`), by profile id.
    Profiles,
    /// Alert channels, by channel id (`alerts::channel::StoredChannel`).
    Channels,
    /// Alert delivery records, by `<alert id>@<channel id>` (`alerts::record`).
    Deliveries,
    /// Alert events other than threshold crossings, by alert id (`alerts::events`).
    Events,
    /// Fail-open calls per minute, by `m<minute start ms>` (`alerts::failopen`), and the
    /// background tasks' leases, by `lease.<task>`.
    Tasks,
}

impl Collection {
    /// Stable short name, used in keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Collection::Budgets => "budgets",
            Collection::Prices => "prices",
            Collection::Switches => "switches",
            Collection::Profiles => "profiles",
            Collection::Channels => "channels",
            Collection::Deliveries => "deliveries",
            Collection::Events => "events",
            Collection::Tasks => "tasks",
        }
    }
}

/// Everything the control plane keeps. Implementations must be safe to share across tasks.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A short name for logs (`memory`, `redis`).
    fn kind(&self) -> &'static str;

    /// Cheap round trip, for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Checks and reserves every line in one atomic step.
    async fn reserve(&self, op: &ReserveOp) -> Result<ReserveOutcome, StoreError>;

    /// Charges a settlement, idempotently by request id.
    async fn settle(&self, op: &SettleOp) -> Result<SettleOutcome, StoreError>;

    /// Charges a batch of settlements, each exactly as [`Store::settle`] would; outcomes in
    /// the order of `ops`. A store may group them into fewer round trips (Redis: one script
    /// call per org and up to [`SETTLE_CHUNK`] settlements). On an error some may have been
    /// applied: a retried batch charges those as duplicates, never twice.
    async fn settle_many(&self, ops: &[SettleOp]) -> Result<Vec<SettleOutcome>, StoreError> {
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            out.push(self.settle(op).await?);
        }
        Ok(out)
    }

    /// A window's counters (zero when it has none yet). Expired reservations are not released
    /// by a read, so `reserved_*` may include some until the next reserve on the window.
    async fn counters(&self, line: &Line) -> Result<Counters, StoreError>;

    /// The counters of many windows, in the order of `lines`, each as [`Store::counters`]
    /// reads it. A store may read them in fewer round trips (Redis: one `MGET` per hash tag,
    /// the tags' reads sent together), so reading a thousand budgets costs about one.
    async fn counters_many(&self, lines: &[Line]) -> Result<Vec<Counters>, StoreError> {
        let mut out = Vec::with_capacity(lines.len());
        for line in lines {
            out.push(self.counters(line).await?);
        }
        Ok(out)
    }

    /// Drops a window's counters and its reservations (admin reset).
    async fn reset_window(&self, line: &Line) -> Result<(), StoreError>;

    /// Whether a `suspend_on_exceed` budget is closed.
    async fn is_suspended(&self, line: &Line) -> Result<bool, StoreError>;

    /// Reopens a suspended budget; true when it was suspended.
    async fn reopen(&self, line: &Line) -> Result<bool, StoreError>;

    /// Recent alert events for these tags, newest first.
    async fn alerts(&self, tags: &[String], limit: usize) -> Result<Vec<AlertEvent>, StoreError>;

    /// Reads one document.
    async fn get_doc(&self, coll: Collection, id: &str) -> Result<Option<Versioned>, StoreError>;

    /// Every document of a collection, by id order.
    async fn list_docs(&self, coll: Collection) -> Result<Vec<(String, Versioned)>, StoreError>;

    /// Writes a document if it is at the expected version; returns the new version.
    async fn put_doc(
        &self,
        coll: Collection,
        id: &str,
        json: &str,
        expect: Expect,
    ) -> Result<Result<u64, WriteConflict>, StoreError>;

    /// Deletes a document if it is at the expected version.
    async fn delete_doc(
        &self,
        coll: Collection,
        id: &str,
        expect: Expect,
    ) -> Result<Result<(), WriteConflict>, StoreError>;

    /// Appends an audit record (JSON), keeping the newest `cap`.
    async fn audit(&self, json: &str) -> Result<(), StoreError>;

    /// Recent audit records, newest first.
    async fn audit_log(&self, limit: usize) -> Result<Vec<String>, StoreError>;

    /// Ledger rollup rows whose bucket overlaps `q.range` and that pass `q.filter`, sorted
    /// by (bucket start, scope, provider, model). With `q.granularity` `Hour`: hourly rows
    /// while the store keeps them (the hourly retention before `q.now_ms`), daily rows for
    /// older days, never both for the same time; with `Day`: daily rows only. A range edge
    /// inside a day answered in days takes in the whole day.
    async fn rollups(&self, q: &RollupQuery) -> Result<Vec<RollupRow>, StoreError>;

    /// Adds imported spend rows (all under the hash tag `tag`) to the rollups, each exactly
    /// as the calls it sums would be ([`SpendRow::fields`], by [`SpendRow::additions`]), and
    /// each once: a row whose id was imported within `dedupe_ttl_ms` adds nothing. Writes no
    /// request record and never touches a budget's counters. Per row, in order: `true` when
    /// added now. On an error some rows may have been added: a retry counts them as
    /// duplicates, never twice. Rows are visible to [`Store::rollups`] once this returns.
    /// A row whose day is past the daily retention is not written ([`SpendOutcome::TooOld`]).
    async fn import_spend(
        &self,
        tag: &str,
        rows: &[SpendRow],
        now_ms: i64,
        dedupe_ttl_ms: i64,
    ) -> Result<Vec<SpendOutcome>, StoreError>;

    /// The ledger's background work, run every second or so by the control plane (Redis:
    /// the rollup pass, which adds the records settled since the last pass to their rows
    /// and trims the record streams; `rollups` and `records` run it too before reading, so
    /// a read never misses a settled call). The memory store has none.
    async fn ledger_upkeep(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Up to `limit` request records whose `recorded_at_ms` is in `range`, in the order
    /// they were written, starting after `cursor` (a previous page's `next_cursor`; `None`
    /// for the first page). A cursor this store cannot read is [`StoreError::BadCursor`].
    async fn records(
        &self,
        range: TimeRange,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<RecordPage, StoreError>;

    /// Grants a lease (`op.renew` false) or tops one up (true), checking and holding its
    /// amounts on every line in one atomic step, as a reservation is held (docs/leases.md).
    /// Leases whose release time has passed are released first (a few per call).
    async fn lease(&self, op: &LeaseOp) -> Result<LeaseOutcome, StoreError>;

    /// Takes `op.amounts` (each at most what the lease still holds) off a lease's hold on
    /// its windows: what a settled leased call took, or (`op.returned`) what its holder gives
    /// back, after which it is never topped up again. `None`: no such lease (released).
    async fn lease_take(&self, op: &LeaseTakeOp) -> Result<Option<LeaseAmounts>, StoreError>;

    /// Releases every lease whose release time is at or before `now_ms` (its hold comes off
    /// its windows), then lists the leases outstanding, by tag then id.
    async fn leases(&self, now_ms: i64) -> Result<Vec<LeaseView>, StoreError>;
}

/// Most settlements one store call groups (Redis: one script run, which blocks the server
/// while it runs: 64 settlements take about half a millisecond on a slow 2-core VM). A
/// script run has a fixed cost of its own (tens of µs there), paid once per chunk: a
/// gateway's settle post of 200 is 4 runs, not 13.
pub const SETTLE_CHUNK: usize = 64;

/// Newest audit records kept.
pub const AUDIT_CAP: usize = 10_000;
/// Newest alert events kept per tag.
pub const ALERTS_CAP: usize = 1_000;

/// Thresholds of `line` that `c` has now reached (settled usage against any limit) and that
/// are above the highest already recorded. Both stores use this rule.
pub(crate) fn new_thresholds(line: &Line, c: &Counters) -> Vec<u16> {
    let basis = [
        (c.spent_nanos, line.limit_nanos),
        (c.tokens, line.limit_tokens),
        (c.requests, line.limit_requests),
    ];
    line.thresholds_pct
        .iter()
        .copied()
        .filter(|&t| t > c.threshold_pct)
        .filter(|&t| {
            basis.iter().any(|&(used, limit)| {
                limit.is_some_and(|l| {
                    l > 0 && i128::from(used) * 100 >= i128::from(t) * i128::from(l)
                })
            })
        })
        .collect()
}

/// Whether settled usage has reached any of the line's limits (`suspend_on_exceed`).
pub(crate) fn limit_reached(line: &Line, c: &Counters) -> bool {
    line.limit_nanos.is_some_and(|l| c.spent_nanos >= l)
        || line.limit_tokens.is_some_and(|l| c.tokens >= l)
        || line.limit_requests.is_some_and(|l| c.requests >= l)
}

/// Which limit, if any, refuses `cost`/`tokens`/one request on top of `c`.
pub(crate) fn refusal(line: &Line, c: &Counters, cost: i64, tokens: i64) -> Option<DenyReason> {
    let over = |used: i64, reserved: i64, add: i64, limit: Option<i64>| {
        limit.is_some_and(|l| {
            i128::from(used) + i128::from(reserved) + i128::from(add) > i128::from(l)
        })
    };
    if over(c.requests, c.reserved_requests, 1, line.limit_requests) {
        Some(DenyReason::Requests)
    } else if over(c.spent_nanos, c.reserved_nanos, cost, line.limit_nanos) {
        Some(DenyReason::Usd)
    } else if over(c.tokens, c.reserved_tokens, tokens, line.limit_tokens) {
        Some(DenyReason::Tokens)
    } else {
        None
    }
}
