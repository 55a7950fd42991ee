//! The Redis store's ledger: the settle script's ledger arguments (ledger.lua writes them in
//! the settlement's atomic step), the compact stored form of a record, and the readers.
//!
//! Keys, all under the org's hash tag so that one settlement's keys share one slot:
//! `<p>:{tag}:lrec` (stream of records), `<p>:{tag}:rh:<hour>` / `<p>:{tag}:rd:<day>` (hash
//! of the bucket's rows, written by the rollup pass: `rollup.rs`) and `<p>:{tag}:lcur` (the
//! pass's cursor). The tags that have a ledger are listed in `<p>:ledger:tags`, written
//! before the script runs (a record never exists under an unlisted tag; the set is an
//! index, so that write needs no atomicity with the settlement). Layout and sizes:
//! docs/redis-keys.md.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::{AsyncCommands, Value};
use tollgate_model::scope::ScopeKind;

use super::stored::{batch_elements, decode_record, encode_batch};
use super::{RedisStore, text, unavailable};
use crate::ledger::row::{self, VALUES, Values};
use crate::ledger::{Granularity, LedgerLimits, RequestRecord, RollupQuery, RollupRow};
use crate::store::{SettleOp, StoreError};

/// How long a tag stays known to be listed before it is listed again (a flushed Redis
/// relists its tags within this time).
const TAG_RELIST: Duration = Duration::from_secs(60);

/// Most rollup reads pipelined in one round trip.
const READ_PIPELINE: usize = 128;

/// The ledger's per-store state.
#[derive(Default)]
pub(super) struct LedgerState {
    pub(super) limits: LedgerLimits,
    /// Tags listed in `<p>:ledger:tags` lately, and when.
    listed: Mutex<HashMap<String, Instant>>,
}

/// A stream entry id `<ms>-<seq>` as numbers.
pub(super) fn parse_id(id: &str) -> Option<(i64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

impl RedisStore {
    /// Keeps the ledger within `limits` (default: [`LedgerLimits::default`]).
    pub fn with_ledger_limits(mut self, limits: LedgerLimits) -> RedisStore {
        self.ledger.limits = limits;
        self
    }

    fn tags_key(&self) -> String {
        format!("{}:ledger:tags", self.prefix)
    }

    pub(super) fn stream_key(&self, tag: &str) -> String {
        format!("{}:{{{tag}}}:lrec", self.prefix)
    }

    /// A bucket's hash: `<p>:{tag}:rh:<hour>:<kind>` / `rd:<day>:<kind>`, the rows of one
    /// scope kind; `kind` `None`: the hash of every kind the previous release wrote (read
    /// until it expires, never written).
    pub(super) fn bucket_key(
        &self,
        tag: &str,
        g: Granularity,
        start_ms: i64,
        kind: Option<ScopeKind>,
    ) -> String {
        let (what, len) = match g {
            Granularity::Hour => ("rh", Granularity::Hour.millis()),
            Granularity::Day => ("rd", Granularity::Day.millis()),
        };
        let at = start_ms.div_euclid(len);
        match kind {
            Some(k) => format!("{}:{{{tag}}}:{what}:{at}:{}", self.prefix, k.as_str()),
            None => format!("{}:{{{tag}}}:{what}:{at}", self.prefix),
        }
    }

    /// Lists `tag` in the ledger's tag set unless that was done lately. Runs before the
    /// settle script, so a tag's records are never unlisted.
    pub(super) async fn list_ledger_tag(&self, tag: &str) -> Result<(), StoreError> {
        let fresh = {
            let listed = self.ledger.listed.lock().unwrap_or_else(|e| e.into_inner());
            listed.get(tag).is_some_and(|at| at.elapsed() < TAG_RELIST)
        };
        if fresh {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let _: i64 = conn.sadd(self.tags_key(), tag).await.map_err(unavailable)?;
        self.ledger
            .listed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tag.to_owned(), Instant::now());
        Ok(())
    }

    /// The ledger's KEYS and ARGV for a settle batch (see ledger.lua): the stream (declared
    /// always), the batch's records (`''` when none has one) and the entry id.
    pub(super) fn ledger_args(
        &self,
        inv: &mut redis::ScriptInvocation<'_>,
        first: &SettleOp,
        ops: &[&SettleOp],
    ) {
        let records: Vec<Option<&RequestRecord>> =
            ops.iter().map(|op| op.ledger.as_ref()).collect();
        inv.key(self.stream_key(&first.request_tag));
        inv.arg(encode_batch(&records).unwrap_or_default())
            .arg(format!("{}-*", first.now_ms.max(0)));
    }

    pub(super) async fn ledger_tags(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        let mut tags: Vec<String> = conn.smembers(self.tags_key()).await.map_err(unavailable)?;
        tags.sort();
        Ok(tags)
    }

    /// `Store::rollups` on Redis: the rollup pass first (every settled record counted),
    /// then each bucket's hash, pipelined; the rows that pass the filter.
    pub(super) async fn read_rollups(&self, q: &RollupQuery) -> Result<Vec<RollupRow>, StoreError> {
        let keep = self.ledger.limits.hourly_retention_ms;
        let hourly = |day: i64| {
            q.granularity == Granularity::Hour && row::day_is_hourly(day, q.now_ms, keep)
        };
        // Every bucket that answers for the range, with its granularity.
        let mut buckets: Vec<(Granularity, i64)> = Vec::new();
        let mut day = Granularity::Day.bucket_start(q.range.from_ms);
        while day < q.range.to_ms {
            if hourly(day) {
                let first = Granularity::Hour.bucket_start(q.range.from_ms).max(day);
                let mut h = first;
                while h < q.range.to_ms && h < day + Granularity::Day.millis() {
                    buckets.push((Granularity::Hour, h));
                    h += Granularity::Hour.millis();
                }
            } else {
                buckets.push((Granularity::Day, day));
            }
            day += Granularity::Day.millis();
        }
        // The kinds whose hashes can hold a row the filter keeps, and the previous release's
        // hash of every kind.
        let f = &q.filter;
        let kinds: Vec<Option<ScopeKind>> = ScopeKind::ALL
            .into_iter()
            .filter(|k| f.scope_kinds.is_empty() || f.scope_kinds.contains(k))
            .filter(|k| f.scopes.is_empty() || f.scopes.iter().any(|s| s.kind() == *k))
            .map(Some)
            .chain([None])
            .collect();
        // Every record settled so far is counted before the rows are read.
        self.roll_up_all().await?;
        let mut out = Vec::new();
        let mut conn = self.conn.clone();
        for tag in self.ledger_tags().await? {
            let tag = tag.as_str();
            let keys: Vec<(Granularity, i64, String)> = buckets
                .iter()
                .flat_map(|&(g, start)| {
                    kinds
                        .iter()
                        .map(move |&k| (g, start, self.bucket_key(tag, g, start, k)))
                })
                .collect();
            for chunk in keys.chunks(READ_PIPELINE) {
                let mut pipe = redis::pipe();
                for (_, _, key) in chunk {
                    pipe.hgetall(key);
                }
                let rows: Vec<Vec<(String, Vec<u8>)>> =
                    pipe.query_async(&mut conn).await.map_err(unavailable)?;
                for (&(g, start, _), rows) in chunk.iter().zip(rows) {
                    for (f, raw) in rows {
                        let Some((scope, provider, model)) = row::parse_field(&f) else {
                            continue;
                        };
                        if q.filter.keeps(&scope, &model, &provider) {
                            let v = parse_row(&raw)?;
                            out.push(row::rollup_row(start, g, scope, provider, model, &v));
                        }
                    }
                }
            }
        }
        merge_tags(&mut out);
        Ok(out)
    }
}

/// A stream entry id as numbers.
pub(super) type Id = (i64, u64);

/// One record of an entry: its position in the entry, and the record, or its stored text
/// when this release cannot read it.
pub(super) type Stored = (usize, Result<RequestRecord, String>);

/// One XRANGE entry: its id and its records, replays left out. A batch entry (field `b`,
/// replays listed in `x`) holds a settle batch's records; an entry of a release before
/// batches holds one (field `r`, position 0).
pub(super) fn entry(e: &Value) -> Option<(Id, Vec<Stored>)> {
    let Value::Array(parts) = e else { return None };
    let id = parse_id(&text(parts.first()?)?)?;
    let Value::Array(fields) = parts.get(1)? else {
        return None;
    };
    let (mut single, mut batch, mut skip, mut spend) = (None, None, None, false);
    let mut it = fields.iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        match text(k).as_deref() {
            Some("r") => single = Some(text(v)?),
            Some("b") => batch = Some(text(v)?),
            Some("x") => skip = Some(text(v)?),
            Some("h") => spend = true,
            _ => {}
        }
    }
    if spend {
        // Imported spend rows (read by the rollup pass: `rollup_read.rs`): no records.
        return Some((id, Vec::new()));
    }
    let read = |raw: &str| decode_record(raw, id.0).ok_or_else(|| raw.to_owned());
    if let Some(raw) = batch {
        let skipped: Vec<usize> = skip
            .iter()
            .flat_map(|x| x.split(','))
            .filter_map(|p| p.parse().ok())
            .collect();
        let Some(all) = batch_elements(&raw) else {
            return Some((id, vec![(0, Err(raw))]));
        };
        let records = all
            .iter()
            .enumerate()
            .filter(|(i, _)| !skipped.contains(i))
            .filter_map(|(i, v)| v.map(|v| (i, read(v.get()))))
            .collect();
        return Some((id, records));
    }
    Some((id, vec![(0, read(&single?))]))
}

/// A row's value: twelve big-endian i64 (the 11 amounts and the write count).
pub(super) fn parse_row(raw: &[u8]) -> Result<Values, StoreError> {
    if raw.len() > 8 * (VALUES + 1) {
        return Err(StoreError::Corrupt(format!(
            "ledger row of {} bytes",
            raw.len()
        )));
    }
    let mut b = [0u8; 8 * (VALUES + 1)];
    b[..raw.len()].copy_from_slice(raw);
    let mut v = [0i64; VALUES];
    for (i, slot) in v.iter_mut().enumerate() {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[8 * i..8 * i + 8]);
        *slot = i64::from_be_bytes(x);
    }
    Ok(v)
}

/// Rows of the same bucket and identity from different tags (a scope seen under two orgs,
/// or `global`) summed into one, then sorted as `Store::rollups` promises.
fn merge_tags(rows: &mut Vec<RollupRow>) {
    row::sort_rows(rows);
    let mut merged: Vec<RollupRow> = Vec::with_capacity(rows.len());
    for r in rows.drain(..) {
        match merged.last_mut() {
            Some(m)
                if m.bucket_start_ms == r.bucket_start_ms
                    && m.granularity == r.granularity
                    && m.scope == r.scope
                    && m.provider == r.provider
                    && m.model == r.model =>
            {
                let mut a = row_values(m);
                row::add(&mut a, &row_values(&r));
                *m = row::rollup_row(
                    m.bucket_start_ms,
                    m.granularity,
                    m.scope.clone(),
                    m.provider.clone(),
                    m.model.clone(),
                    &a,
                );
            }
            _ => merged.push(r),
        }
    }
    *rows = merged;
}

fn row_values(r: &RollupRow) -> Values {
    let mut v = [0i64; VALUES];
    v[0] = r.cost_nanos;
    v[1] = r.requests;
    v[2] = r.denied;
    v[3..].copy_from_slice(&r.tokens.to_array());
    v
}
