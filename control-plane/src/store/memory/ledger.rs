//! The memory store's ledger: records in write order and rollup rows by bucket, bounded by
//! the same [`LedgerLimits`] as the Redis store (record count and age, rollup retention).

use std::collections::{BTreeMap, HashMap, VecDeque};

use tollgate_model::scope::Scope;

use crate::ledger::import::SpendRow;
use crate::ledger::row::{self, Values};
use crate::ledger::{
    Granularity, LedgerLimits, RecordPage, RequestRecord, RollupFilter, RollupQuery, RollupRow,
    TimeRange,
};
use crate::store::StoreError;

/// A row's identity within a bucket: (scope, provider, model).
type RowKey = (Scope, String, String);

type Buckets = BTreeMap<i64, HashMap<RowKey, Values>>;

#[derive(Default)]
pub(super) struct MemLedger {
    pub(super) limits: LedgerLimits,
    /// (sequence number, record); the sequence number is the page cursor.
    records: VecDeque<(u64, RequestRecord)>,
    seq: u64,
    hours: Buckets,
    days: Buckets,
}

fn bump(buckets: &mut Buckets, start: i64, key: &RowKey, v: &Values) {
    let rows = buckets.entry(start).or_default();
    match rows.get_mut(key) {
        Some(sum) => row::add(sum, v),
        None => {
            rows.insert(key.clone(), *v);
        }
    }
}

/// Drops buckets whose retention has passed (`keep_ms` after the bucket's end).
fn expire(buckets: &mut Buckets, len_ms: i64, keep_ms: i64, now_ms: i64) {
    while let Some(entry) = buckets.first_entry() {
        if entry.key().saturating_add(len_ms).saturating_add(keep_ms) > now_ms {
            break;
        }
        entry.remove();
    }
}

fn emit(
    out: &mut Vec<RollupRow>,
    start: i64,
    g: Granularity,
    rows: &HashMap<RowKey, Values>,
    filter: &RollupFilter,
) {
    for ((scope, provider, model), v) in rows {
        if filter.keeps(scope, model, provider) {
            out.push(row::rollup_row(
                start,
                g,
                scope.clone(),
                provider.clone(),
                model.clone(),
                v,
            ));
        }
    }
}

impl MemLedger {
    /// Writes a record and its rollups (the caller holds the store's lock: this is part of
    /// the settlement's atomic step).
    pub(super) fn write(&mut self, record: &RequestRecord, now_ms: i64) {
        let mut record = record.clone();
        record.recorded_at_ms = now_ms;
        let v = row::values_of(&record);
        let hour = Granularity::Hour.bucket_start(record.ended_at_ms);
        let day = Granularity::Day.bucket_start(record.ended_at_ms);
        for scope in row::scopes_of(&record) {
            let key = (scope, record.provider.clone(), record.charged_model.clone());
            bump(&mut self.hours, hour, &key, &v);
            bump(&mut self.days, day, &key, &v);
        }
        self.seq += 1;
        self.records.push_back((self.seq, record));
        self.trim(now_ms);
    }

    /// Adds an imported spend row to its hour's and day's rows (the caller holds the store's
    /// lock and has checked the row's import marker).
    pub(super) fn add_spend(&mut self, r: &SpendRow, now_ms: i64) {
        let adds = r.additions();
        for scope in r.row_scopes() {
            let key = (scope, r.provider.clone(), r.model.clone());
            for (g, start, v) in &adds {
                let buckets = match g {
                    Granularity::Hour => &mut self.hours,
                    Granularity::Day => &mut self.days,
                };
                bump(buckets, *start, &key, v);
            }
        }
        self.trim(now_ms);
    }

    fn trim(&mut self, now_ms: i64) {
        let l = self.limits;
        while self.records.len() as u64 > l.records_max {
            self.records.pop_front();
        }
        if l.records_max_age_ms > 0 {
            let oldest = now_ms.saturating_sub(l.records_max_age_ms);
            while self
                .records
                .front()
                .is_some_and(|(_, r)| r.recorded_at_ms < oldest)
            {
                self.records.pop_front();
            }
        }
        expire(
            &mut self.hours,
            Granularity::Hour.millis(),
            l.hourly_retention_ms,
            now_ms,
        );
        expire(
            &mut self.days,
            Granularity::Day.millis(),
            l.daily_retention_ms,
            now_ms,
        );
    }

    pub(super) fn rollups(&self, q: &RollupQuery) -> Vec<RollupRow> {
        let (range, filter, now_ms) = (q.range, &q.filter, q.now_ms);
        let keep = self.limits.hourly_retention_ms;
        let hourly =
            |day: i64| q.granularity == Granularity::Hour && row::day_is_hourly(day, now_ms, keep);
        let mut out = Vec::new();
        let first_hour = Granularity::Hour.bucket_start(range.from_ms);
        for (&start, rows) in self.hours.range(first_hour..range.to_ms) {
            if hourly(Granularity::Day.bucket_start(start)) {
                emit(&mut out, start, Granularity::Hour, rows, filter);
            }
        }
        let first_day = Granularity::Day.bucket_start(range.from_ms);
        for (&start, rows) in self.days.range(first_day..range.to_ms) {
            if !hourly(start) {
                emit(&mut out, start, Granularity::Day, rows, filter);
            }
        }
        row::sort_rows(&mut out);
        out
    }

    pub(super) fn records(
        &self,
        range: TimeRange,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<RecordPage, StoreError> {
        let after = match cursor {
            None => 0,
            Some(c) => c
                .parse::<u64>()
                .map_err(|_| StoreError::BadCursor(c.to_owned()))?,
        };
        // Sequence numbers ascend along the queue: start at the first one past the cursor.
        let start = self.records.partition_point(|(seq, _)| *seq <= after);
        let mut page = RecordPage::default();
        let mut last = None;
        for (seq, r) in self.records.range(start..) {
            if page.records.len() >= limit {
                page.next_cursor = last.map(|s: u64| s.to_string());
                return Ok(page);
            }
            if range.contains(r.recorded_at_ms) {
                page.records.push(r.clone());
            }
            last = Some(*seq);
        }
        Ok(page)
    }
}
