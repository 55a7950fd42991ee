//! Hourly spend series read from the ledger: the one module of `analytics` that reads the
//! store, so that forecasts and anomaly detection stay pure functions over what it hands them.
//!
//! A series is **dense**: one value per UTC hour from its start, zeros filled, cost in exact
//! nano-USD and calls counted (refused ones included). It is read from the hourly rollups:
//! - a **scope** (`team:a`, or `global` for the whole gateway): that scope's rows;
//! - a **budget** with one selector scope (or `global`): that scope's rows, keeping only the
//!   models the budget counts (its model filter, matched as admission matches it: see
//!   [`ModelMatch`]);
//! - a budget with **several** selector scopes (`team:a` + `user:bob`): rollups hold one
//!   scope per row, so the calls carrying all of them are read from the request records
//!   (at most [`MAX_RECORDS_SCANNED`] records written since the series' start).
//!
//! Past the hourly retention the store answers with day rows; a day row's values are spread
//! evenly over its 24 hours (the remainder on the earliest hours, so the day still sums
//! exactly) and the series says so ([`Hourly::spread_days`]).
//!
//! Many series over one range are read together ([`read_scopes`], [`read_budgets`]): the
//! store reads every row of each bucket it is asked for whatever the filter, so one read for
//! a thousand budgets costs the same as one for a single budget.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use tollgate_model::budget::Budget;
use tollgate_model::period::Window;
use tollgate_model::scope::Scope;

use crate::ledger::{Granularity, RollupFilter, RollupQuery, RollupRow, TimeRange};
use crate::store::{Store, StoreError};

/// Most request records one read of multi-scope budgets scans before it is refused.
pub const MAX_RECORDS_SCANNED: usize = 2_000_000;
const PAGE: usize = 10_000;
const HOUR_MS: i64 = 3_600_000;

/// Why a series could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SeriesError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A multi-scope budget's series would scan more than [`MAX_RECORDS_SCANNED`] records.
    #[error(
        "more than {MAX_RECORDS_SCANNED} request records were written since {0}: read a shorter history"
    )]
    TooManyRecords(DateTime<Utc>),
}

/// A span of whole UTC hours: `count` hours from `start` (an hour boundary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hours {
    /// The first hour's start.
    pub start: DateTime<Utc>,
    /// How many hours.
    pub count: usize,
}

impl Hours {
    /// The hours from the one holding `from` up to (not including) the one holding `to`:
    /// `to`'s own hour, still running, is left out.
    pub fn between(from: DateTime<Utc>, to: DateTime<Utc>) -> Hours {
        let start = hour_floor(from);
        let end = hour_floor(to);
        let count = usize::try_from((end - start).num_hours()).unwrap_or(0);
        Hours { start, count }
    }

    /// The `count` whole hours before the one holding `now`.
    pub fn before(now: DateTime<Utc>, count: usize) -> Hours {
        let end = hour_floor(now);
        let back = i64::try_from(count).unwrap_or(i64::MAX / HOUR_MS);
        Hours {
            start: end - TimeDelta::hours(back),
            count,
        }
    }

    /// The first instant after the last hour.
    pub fn end(&self) -> DateTime<Utc> {
        self.start + TimeDelta::hours(i64::try_from(self.count).unwrap_or(0))
    }

    /// The index of the hour holding `at`, if inside.
    pub fn index_of(&self, at_ms: i64) -> Option<usize> {
        let off = at_ms - self.start.timestamp_millis();
        if off < 0 {
            return None;
        }
        let i = usize::try_from(off / HOUR_MS).ok()?;
        (i < self.count).then_some(i)
    }

    fn ledger_range(&self) -> Option<TimeRange> {
        TimeRange::new(self.start.timestamp_millis(), self.end().timestamp_millis())
    }
}

fn hour_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    let ms = Granularity::Hour.bucket_start(t.timestamp_millis());
    DateTime::from_timestamp_millis(ms).unwrap_or(t)
}

/// A dense hourly series: value `i` is the hour starting `start + i` hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hourly {
    /// The first hour's start.
    pub start: DateTime<Utc>,
    /// Cost per hour, nano-USD.
    pub cost_nanos: Vec<i64>,
    /// Calls per hour (refused ones included).
    pub requests: Vec<i64>,
    /// True when some hours were spread from day rows (past the hourly retention).
    pub spread_days: bool,
}

impl Hourly {
    /// A series of zeros over `hours`.
    pub fn zeros(hours: Hours) -> Hourly {
        Hourly {
            start: hours.start,
            cost_nanos: vec![0; hours.count],
            requests: vec![0; hours.count],
            spread_days: false,
        }
    }

    /// The hours it covers.
    pub fn hours(&self) -> Hours {
        Hours {
            start: self.start,
            count: self.cost_nanos.len(),
        }
    }

    /// Its total cost, nano-USD; `None` past i64.
    pub fn total_cost_nanos(&self) -> Option<i64> {
        self.cost_nanos
            .iter()
            .try_fold(0i64, |a, &x| a.checked_add(x))
    }

    /// The sub-series of the hours in `[from, to)` (clamped to the series).
    pub fn slice(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Hourly {
        let h = self.hours();
        let idx = |t: DateTime<Utc>| {
            let off = (t - self.start).num_hours().max(0);
            usize::try_from(off).unwrap_or(0).min(h.count)
        };
        let (a, b) = (idx(from), idx(to).max(idx(from)));
        Hourly {
            start: self.start + TimeDelta::hours(i64::try_from(a).unwrap_or(0)),
            cost_nanos: self.cost_nanos[a..b].to_vec(),
            requests: self.requests[a..b].to_vec(),
            spread_days: self.spread_days,
        }
    }

    /// Adds a row's cost and calls: into its hour, or spread over the hours of its day.
    fn add_row(&mut self, hours: Hours, bucket_ms: i64, g: Granularity, cost: i64, reqs: i64) {
        match g {
            Granularity::Hour => {
                if let Some(i) = hours.index_of(bucket_ms) {
                    self.cost_nanos[i] = self.cost_nanos[i].saturating_add(cost);
                    self.requests[i] = self.requests[i].saturating_add(reqs);
                }
            }
            Granularity::Day => {
                self.spread_days = true;
                for h in 0..24i64 {
                    let Some(i) = hours.index_of(bucket_ms + h * HOUR_MS) else {
                        continue;
                    };
                    self.cost_nanos[i] = self.cost_nanos[i].saturating_add(share(cost, h));
                    self.requests[i] = self.requests[i].saturating_add(share(reqs, h));
                }
            }
        }
    }
}

/// Hour `h`'s share of a day's `total`: the 24 shares sum to `total` exactly.
fn share(total: i64, h: i64) -> i64 {
    let base = total.div_euclid(24);
    base + i64::from(h < total.rem_euclid(24))
}

/// The window of `budget`'s period holding `now`, in its time zone: where the current
/// period starts and ends (`end` is `None` for a `total` budget).
pub fn period_of(budget: &Budget, now: DateTime<Utc>) -> Window {
    budget.period.window(now, budget.timezone)
}

/// Which charged models count toward a budget limited to a model. Admission counts every
/// name of the model's family (dated snapshots, aliases: `PriceTable::model_family`);
/// the caller passes that rule in, so this module needs no price table.
pub trait ModelMatch {
    /// Whether a call charged as `charged` counts toward a budget limited to `budget_model`.
    fn counts(&self, budget_model: &str, charged: &str) -> bool;
}

/// The names must be equal.
pub struct ExactModel;

impl ModelMatch for ExactModel {
    fn counts(&self, budget_model: &str, charged: &str) -> bool {
        budget_model == charged
    }
}

impl ModelMatch for tollgate_model::PriceTable {
    fn counts(&self, budget_model: &str, charged: &str) -> bool {
        budget_model == charged || self.model_family(charged).contains(&budget_model)
    }
}

async fn read_rows(
    store: &dyn Store,
    hours: Hours,
    filter: RollupFilter,
    granularity: Granularity,
    now: DateTime<Utc>,
) -> Result<Vec<RollupRow>, StoreError> {
    let Some(range) = hours.ledger_range() else {
        return Ok(Vec::new());
    };
    store
        .rollups(&RollupQuery {
            range,
            filter,
            granularity,
            now_ms: now.timestamp_millis(),
        })
        .await
}

/// One series per scope over `hours`, all models together (`global`: the gateway's total).
/// Every scope asked for is in the answer, zeros when it spent nothing.
pub async fn read_scopes(
    store: &dyn Store,
    scopes: &[Scope],
    hours: Hours,
    now: DateTime<Utc>,
) -> Result<BTreeMap<Scope, Hourly>, SeriesError> {
    let mut out: BTreeMap<Scope, Hourly> = scopes
        .iter()
        .map(|s| (s.clone(), Hourly::zeros(hours)))
        .collect();
    if scopes.is_empty() {
        return Ok(out);
    }
    let filter = RollupFilter {
        scopes: scopes.to_vec(),
        ..RollupFilter::default()
    };
    for r in read_rows(store, hours, filter, Granularity::Hour, now).await? {
        if let Some(s) = out.get_mut(&r.scope) {
            s.add_row(
                hours,
                r.bucket_start_ms,
                r.granularity,
                r.cost_nanos,
                r.requests,
            );
        }
    }
    Ok(out)
}

/// One series per (scope, charged model) over `hours`, for the scopes `filter` keeps
/// (by scope, scope kind, model, provider). Only pairs that had a row are in the answer.
pub async fn read_scope_models(
    store: &dyn Store,
    filter: RollupFilter,
    hours: Hours,
    now: DateTime<Utc>,
) -> Result<BTreeMap<(Scope, String), Hourly>, SeriesError> {
    let mut out: BTreeMap<(Scope, String), Hourly> = BTreeMap::new();
    for r in read_rows(store, hours, filter, Granularity::Hour, now).await? {
        out.entry((r.scope.clone(), r.model.clone()))
            .or_insert_with(|| Hourly::zeros(hours))
            .add_row(
                hours,
                r.bucket_start_ms,
                r.granularity,
                r.cost_nanos,
                r.requests,
            );
    }
    Ok(out)
}

/// The rollup scope that answers for a budget alone, when one does.
fn single_scope(b: &Budget) -> Option<Scope> {
    match b.scopes.as_slice() {
        [] => Some(Scope::global()),
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// One series per budget over `hours`, in the order given: the spend of the calls the
/// budget counts (its scopes, its model filter through `models`). Reads the rollups once
/// for all single-scope budgets and the records once for all multi-scope ones.
///
/// `granularity = Day` reads the day rows (24 times fewer to read): each day's values are
/// spread over its hours, so only whole-UTC-day sums are meaningful; `hours` should then
/// start and end at UTC midnights.
pub async fn read_budgets(
    store: &dyn Store,
    budgets: &[&Budget],
    models: &(dyn ModelMatch + Sync),
    hours: Hours,
    granularity: Granularity,
    now: DateTime<Utc>,
) -> Result<Vec<Hourly>, SeriesError> {
    let mut out: Vec<Hourly> = budgets.iter().map(|_| Hourly::zeros(hours)).collect();
    let mut by_scope: BTreeMap<Scope, Vec<usize>> = BTreeMap::new();
    let mut multi: Vec<usize> = Vec::new();
    for (i, b) in budgets.iter().enumerate() {
        match single_scope(b) {
            Some(s) => by_scope.entry(s).or_default().push(i),
            None => multi.push(i),
        }
    }
    if !by_scope.is_empty() {
        let filter = RollupFilter {
            scopes: by_scope.keys().cloned().collect(),
            ..RollupFilter::default()
        };
        for r in read_rows(store, hours, filter, granularity, now).await? {
            let Some(idx) = by_scope.get(&r.scope) else {
                continue;
            };
            for &i in idx {
                if counts_model(budgets[i], models, &r.model) {
                    out[i].add_row(
                        hours,
                        r.bucket_start_ms,
                        r.granularity,
                        r.cost_nanos,
                        r.requests,
                    );
                }
            }
        }
    }
    if !multi.is_empty() {
        read_records_into(store, budgets, &multi, models, hours, now, &mut out).await?;
    }
    Ok(out)
}

fn counts_model(b: &Budget, models: &(dyn ModelMatch + Sync), charged: &str) -> bool {
    b.model.as_deref().is_none_or(|m| models.counts(m, charged))
}

async fn read_records_into(
    store: &dyn Store,
    budgets: &[&Budget],
    which: &[usize],
    models: &(dyn ModelMatch + Sync),
    hours: Hours,
    now: DateTime<Utc>,
    out: &mut [Hourly],
) -> Result<(), SeriesError> {
    // Records are kept in the order written, so everything written since the series'
    // start is read and filed by when each call ended.
    let Some(written) = TimeRange::new(
        hours.start.timestamp_millis(),
        now.timestamp_millis().saturating_add(1),
    ) else {
        return Ok(());
    };
    let wanted: BTreeSet<usize> = which.iter().copied().collect();
    let mut cursor: Option<String> = None;
    let mut scanned = 0usize;
    loop {
        let page = store.records(written, cursor.as_deref(), PAGE).await?;
        scanned += page.records.len();
        if scanned > MAX_RECORDS_SCANNED {
            return Err(SeriesError::TooManyRecords(hours.start));
        }
        for r in &page.records {
            if hours.index_of(r.ended_at_ms).is_none() {
                continue;
            }
            for &i in &wanted {
                let b = budgets[i];
                if b.scopes.iter().all(|s| r.scopes.contains(s))
                    && counts_model(b, models, &r.charged_model)
                {
                    out[i].add_row(hours, r.ended_at_ms, Granularity::Hour, r.cost_nanos, 1);
                }
            }
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
