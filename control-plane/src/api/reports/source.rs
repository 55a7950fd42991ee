//! Which ledger reads answer a report, and turning them into the analytics' [`Fact`]s.
//!
//! Rollup rows are one per (bucket, scope, model, provider) and every call adds to one row
//! per scope it carries plus one `global` row, so rows of different kinds overlap. A report
//! reads the rows that count each call once:
//! - no scope grouped or filtered: the `global` rows;
//! - one scope filtered (`scope=team:a`), grouping at most by its kind (not `tag`): that
//!   scope's rows;
//! - grouped by one scope kind other than `tag`, nothing filtered by scope: that kind's rows,
//!   plus per (bucket, model, provider) the `global` row minus their sum as the kind's `null`
//!   group (calls without such a scope). If that difference is ever negative, some calls
//!   carry two values of the kind, and the report falls back to the records;
//! - anything else (two scope kinds, tags, a scope filter with another grouping): the
//!   request records, read page by page, at most [`MAX_RECORDS_SCANNED`].
//!
//! Day rows are read when the report's buckets are days or longer in a zone with no offset
//! from UTC over the range and the range starts and ends at UTC midnights; hour rows
//! otherwise. Rows count in the bucket holding their start, so a range edge inside an hour
//! (a day, for day rows) leaves that hour out.

use std::collections::BTreeMap;

use chrono::{DateTime, Offset, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use tollgate_model::scope::{Scope, ScopeKind};

use crate::analytics::buckets::Bucket;
use crate::analytics::{Fact, TimeRange, Tokens, Totals};
use crate::api::error::ApiError;
use crate::ledger::{
    Granularity, RequestRecord, RollupFilter, RollupQuery, RollupRow, TimeRange as LedgerRange,
    TokenCounts,
};
use crate::store::{Store, StoreError};

/// Most request records one report reads before it is refused as too large.
pub const MAX_RECORDS_SCANNED: usize = 2_000_000;
const PAGE: usize = 10_000;

/// What a report needs from the ledger.
#[derive(Debug, Clone)]
pub struct Need {
    /// The range.
    pub range: TimeRange,
    /// The zone of its buckets.
    pub tz: Tz,
    /// Its bucket (`None`: the whole range).
    pub bucket: Option<Bucket>,
    /// Scope kinds it groups by.
    pub kinds: Vec<ScopeKind>,
    /// Scopes it filters by (every one required).
    pub scopes: Vec<Scope>,
    /// Models it keeps (any).
    pub models: Vec<String>,
    /// Providers it keeps (any).
    pub providers: Vec<String>,
}

/// Where a report's figures came from (returned with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Hourly rollups (daily past the hourly retention).
    HourRollups,
    /// Daily rollups.
    DayRollups,
    /// Request records.
    Records,
}

fn to_tokens(t: &TokenCounts) -> Tokens {
    let u = |x: i64| u64::try_from(x).unwrap_or(0);
    Tokens {
        uncached_input: u(t.uncached_input),
        cached_input: u(t.cached_input),
        cache_write_5m: u(t.cache_write_5m),
        cache_write_1h: u(t.cache_write_1h),
        output: u(t.output),
        reasoning: u(t.reasoning),
    }
}

fn row_fact(r: RollupRow) -> Fact {
    Fact {
        at: DateTime::from_timestamp_millis(r.bucket_start_ms).unwrap_or_default(),
        scopes: if r.scope.kind() == ScopeKind::Global {
            Vec::new()
        } else {
            vec![r.scope]
        },
        model: r.model,
        provider: r.provider,
        totals: Totals {
            cost_nanos: r.cost_nanos,
            requests: u64::try_from(r.requests).unwrap_or(0),
            denied: u64::try_from(r.denied).unwrap_or(0),
            tokens: to_tokens(&r.tokens),
        },
    }
}

fn record_fact(r: RequestRecord) -> Fact {
    Fact {
        at: DateTime::from_timestamp_millis(r.ended_at_ms).unwrap_or_default(),
        scopes: r.scopes,
        model: r.charged_model,
        provider: r.provider,
        totals: Totals {
            cost_nanos: r.cost_nanos,
            requests: 1,
            denied: u64::from(r.outcome == crate::ledger::CallOutcome::Denied),
            tokens: to_tokens(&r.tokens),
        },
    }
}

/// Whether `tz` is UTC's offset at every day of `range` (`Europe/London` is not in summer).
fn utc_like(tz: Tz, range: TimeRange) -> bool {
    let mut at = range.from;
    while at <= range.to {
        if tz
            .offset_from_utc_datetime(&at.naive_utc())
            .fix()
            .local_minus_utc()
            != 0
        {
            return false;
        }
        at += TimeDelta::days(1);
    }
    tz.offset_from_utc_datetime(&range.to.naive_utc())
        .fix()
        .local_minus_utc()
        == 0
}

fn at_utc_midnight(t: DateTime<Utc>) -> bool {
    t.num_seconds_from_midnight() == 0 && t.nanosecond() == 0
}

/// The rollup granularity that answers `need` exactly.
pub fn granularity(need: &Need) -> Granularity {
    let coarse = !matches!(need.bucket, Some(Bucket::Hour));
    if coarse
        && at_utc_midnight(need.range.from)
        && at_utc_midnight(need.range.to)
        && utc_like(need.tz, need.range)
    {
        Granularity::Day
    } else {
        Granularity::Hour
    }
}

fn ledger_range(r: TimeRange) -> Result<LedgerRange, ApiError> {
    LedgerRange::new(r.from.timestamp_millis(), r.to.timestamp_millis())
        .ok_or_else(|| ApiError::invalid("to", "must be after `from`"))
}

async fn rollups(
    store: &dyn Store,
    need: &Need,
    filter: RollupFilter,
    now: DateTime<Utc>,
) -> Result<Vec<RollupRow>, ApiError> {
    let q = RollupQuery {
        range: ledger_range(need.range)?,
        filter: RollupFilter {
            models: need.models.clone(),
            providers: need.providers.clone(),
            ..filter
        },
        granularity: granularity(need),
        now_ms: now.timestamp_millis(),
    };
    Ok(store.rollups(&q).await?)
}

/// The `null` group of `kind`: per (bucket, model, provider), global minus the kind's rows;
/// `None` when that is negative anywhere (calls with two values of the kind).
fn without_kind(rows: &[RollupRow]) -> Option<Vec<RollupRow>> {
    type Key = (i64, Granularity, String, String);
    let mut global: BTreeMap<Key, RollupRow> = BTreeMap::new();
    let mut kinds: Vec<&RollupRow> = Vec::new();
    for r in rows {
        if r.scope.kind() == ScopeKind::Global {
            let key = (
                r.bucket_start_ms,
                r.granularity,
                r.model.clone(),
                r.provider.clone(),
            );
            global.insert(key, r.clone());
        } else {
            kinds.push(r);
        }
    }
    for r in kinds {
        let key = (
            r.bucket_start_ms,
            r.granularity,
            r.model.clone(),
            r.provider.clone(),
        );
        let g = global.get_mut(&key)?;
        g.cost_nanos -= r.cost_nanos;
        g.requests -= r.requests;
        g.denied -= r.denied;
        let mut t = g.tokens.to_array();
        for (x, y) in t.iter_mut().zip(r.tokens.to_array()) {
            *x -= y;
        }
        g.tokens = TokenCounts::from_array(t);
    }
    let mut out = Vec::new();
    for (_, g) in global {
        let t = g.tokens.to_array();
        if g.cost_nanos < 0 || g.requests < 0 || g.denied < 0 || t.iter().any(|&x| x < 0) {
            return None;
        }
        if g.requests > 0 || g.cost_nanos > 0 {
            out.push(g);
        }
    }
    Some(out)
}

async fn records(
    store: &dyn Store,
    need: &Need,
    now: DateTime<Utc>,
) -> Result<Vec<Fact>, ApiError> {
    // Records are kept in the order written (imports: at import time), so every record
    // written since `from` is read and kept by when the call ended.
    let written = LedgerRange::new(
        need.range.from.timestamp_millis(),
        now.timestamp_millis().saturating_add(1),
    );
    let Some(written) = written else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    let mut scanned = 0usize;
    loop {
        let page = store
            .records(written, cursor.as_deref(), PAGE)
            .await
            .map_err(|e| match e {
                StoreError::BadCursor(_) => ApiError::Internal,
                other => other.into(),
            })?;
        scanned += page.records.len();
        if scanned > MAX_RECORDS_SCANNED {
            return Err(ApiError::invalid(
                "from",
                format!(
                    "this report reads request records (it groups by two scope kinds, by tag, or filters by scope and groups by another kind) and more than {MAX_RECORDS_SCANNED} were written since `from`: narrow the range, or group by one scope kind"
                ),
            ));
        }
        for r in page.records {
            let f = record_fact(r);
            if need.range.contains(f.at)
                && need.scopes.iter().all(|s| f.scopes.contains(s))
                && (need.models.is_empty() || need.models.contains(&f.model))
                && (need.providers.is_empty() || need.providers.contains(&f.provider))
            {
                out.push(f);
            }
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok(out)
}

/// The facts that answer `need`, and where they came from.
pub async fn load(
    store: &dyn Store,
    need: &Need,
    now: DateTime<Utc>,
) -> Result<(Vec<Fact>, Source), ApiError> {
    let source = match granularity(need) {
        Granularity::Day => Source::DayRollups,
        Granularity::Hour => Source::HourRollups,
    };
    let facts = |rows: Vec<RollupRow>| rows.into_iter().map(row_fact).collect::<Vec<_>>();
    match (need.kinds.as_slice(), need.scopes.as_slice()) {
        ([], []) => {
            let filter = RollupFilter {
                scope_kinds: vec![ScopeKind::Global],
                ..RollupFilter::default()
            };
            Ok((facts(rollups(store, need, filter, now).await?), source))
        }
        // Grouping tags by tag stays on the records, where a call's other tags show (`a+x`).
        (kinds, [one])
            if kinds.iter().all(|k| *k == one.kind())
                && (kinds.is_empty() || one.kind() != ScopeKind::Tag) =>
        {
            let filter = RollupFilter {
                scopes: vec![one.clone()],
                ..RollupFilter::default()
            };
            Ok((facts(rollups(store, need, filter, now).await?), source))
        }
        ([kind], []) if *kind != ScopeKind::Tag => {
            let filter = RollupFilter {
                scope_kinds: vec![*kind, ScopeKind::Global],
                ..RollupFilter::default()
            };
            let rows = rollups(store, need, filter, now).await?;
            match without_kind(&rows) {
                Some(rest) => {
                    let mut out: Vec<Fact> = rows
                        .into_iter()
                        .filter(|r| r.scope.kind() != ScopeKind::Global)
                        .map(row_fact)
                        .collect();
                    out.extend(rest.into_iter().map(row_fact));
                    Ok((out, source))
                }
                None => Ok((records(store, need, now).await?, Source::Records)),
            }
        }
        _ => Ok((records(store, need, now).await?, Source::Records)),
    }
}
