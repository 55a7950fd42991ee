//! The rollup pass: adds the ledger records written since the last pass to their rollup
//! rows, a run of records at a time, with the rows' new values computed here and written by
//! `rollup.lua` together with the moved cursor (exactly once: see the script).
//!
//! Why not in the settle script: each record adds to eight rows (its scopes and `global`,
//! hour and day); written per settlement that was eight 12-op `BITFIELD`s inside the
//! settle call, ≈ 85 % of the settle throughput. A pass adds hundreds of records to the rows
//! they share in one `HSET` per bucket, and runs beside admission (the control plane's
//! background task, and before every rollup read, so a read sees every settled call).

use std::collections::{BTreeMap, HashMap, VecDeque};

use redis::{AsyncCommands, Value};
use tollgate_model::scope::{Scope, ScopeKind};

use super::ledger::{Id, entry, entry_spend};
use super::{RedisStore, text, unavailable};
use crate::ledger::import::SpendRow;
use crate::ledger::row::{self, VALUES, Values};
use crate::ledger::{Granularity, LedgerLimits, RequestRecord};
use crate::store::StoreError;

/// Entries read per step (an entry holds a settle batch: 1 to 16 records).
const READ: usize = 250;

/// Count marks per `records_max` records (rollup.lua): the stream keeps up to
/// `records_max / MARKS` records more than its cap.
const MARKS: u64 = 64;

/// Most rows one step writes: the script holds Redis while it runs (≈ 0.3 ms for 512 rows).
const ROWS_PER_STEP: usize = 512;

/// Steps one pass over a tag takes at most: a pass that has not caught up by then (records
/// arriving faster than it counts them) stops, and the next pass goes on.
const STEPS_PER_PASS: usize = 1_000;

/// A bucket hash: its granularity, start and the kind of its rows' scopes (a report reads
/// only the kinds it needs: a team × model month reads team and global rows, not the
/// project rows beside them).
type Bucket = (Granularity, i64, ScopeKind);

/// A record's row: its scope's kind and its field.
type Field = (ScopeKind, String);

/// A bucket of a step: its key and its rows' fields with what the step adds to each.
type BucketRows = (Bucket, String, Vec<(String, Values)>);

/// An entry read and not counted yet: its id, what its readable records (or imported spend
/// rows) add, and how many records it holds (readable or not: what the stream's count limit
/// counts; an entry of imported rows holds none).
type Read = (String, Id, Vec<Addition>, u64);

/// What one record, or one imported spend row (`Store::import_spend`), adds: the same
/// values to each of its rows, in its hour and in its day.
struct Addition {
    /// (bucket, values added to each field there).
    adds: Vec<(Granularity, i64, Values)>,
    fields: Vec<Field>,
}

impl Addition {
    fn of_record(r: &RequestRecord) -> Addition {
        let v = row::values_of(r);
        Addition {
            adds: times_of(r)
                .iter()
                .map(|&(g, start)| (g, start, v))
                .collect(),
            fields: fields_of(r),
        }
    }

    fn of_spend(r: &SpendRow) -> Addition {
        Addition {
            adds: r.additions(),
            fields: r.fields().into_iter().map(|(s, f)| (s.kind(), f)).collect(),
        }
    }
}

/// A pass over one tag's stream: the cursor as this pass knows it (`"<entry id>
/// <records counted>"`, or a bare entry id from a release before batch entries), and the
/// entries read past it and not counted yet (a step counts up to `ROWS_PER_STEP` rows'
/// worth of whole entries; the rest wait for the next step instead of being read again).
#[derive(Default)]
struct Pass {
    started: bool,
    cursor: Option<String>,
    read: VecDeque<Read>,
    read_to: Option<String>,
    at_end: bool,
}

impl Pass {
    /// The cursor's entry id and record count.
    fn cursor(&self) -> (Option<&str>, u64) {
        match self.cursor.as_deref().map(|c| c.split_once(' ')) {
            None => (None, 0),
            Some(None) => (self.cursor.as_deref(), 0),
            Some(Some((id, n))) => (Some(id), n.parse().unwrap_or(0)),
        }
    }
}

/// What one step did.
enum Step {
    /// Counted records and reached the stream's end.
    Done,
    /// Counted records; more follow.
    More,
    /// Another pass moved the cursor first: read again.
    Moved,
}

/// The rows one run of records adds to, by bucket then row field.
#[derive(Default)]
struct Delta {
    buckets: BTreeMap<Bucket, HashMap<String, Values>>,
    rows: usize,
}

impl Delta {
    /// The rows `a` adds to that are not in the delta yet.
    fn new_rows(&self, a: &Addition) -> usize {
        a.adds
            .iter()
            .flat_map(|&(g, start, _)| {
                a.fields.iter().filter(move |(kind, f)| {
                    self.buckets
                        .get(&(g, start, *kind))
                        .is_none_or(|rows| !rows.contains_key(f))
                })
            })
            .count()
    }

    fn add(&mut self, a: &Addition) {
        for (g, start, v) in &a.adds {
            for (kind, f) in &a.fields {
                let rows = self.buckets.entry((*g, *start, *kind)).or_default();
                match rows.get_mut(f) {
                    Some(sum) => row::add(sum, v),
                    None => {
                        rows.insert(f.clone(), *v);
                        self.rows += 1;
                    }
                }
            }
        }
    }
}

/// The hour and the day a record counts in (by its end).
fn times_of(r: &RequestRecord) -> [(Granularity, i64); 2] {
    [
        (
            Granularity::Hour,
            Granularity::Hour.bucket_start(r.ended_at_ms),
        ),
        (
            Granularity::Day,
            Granularity::Day.bucket_start(r.ended_at_ms),
        ),
    ]
}

/// The row fields of a record: one per scope of the call, and `global`.
fn fields_of(r: &RequestRecord) -> Vec<Field> {
    row::scopes_of(r)
        .iter()
        .map(|s: &Scope| (s.kind(), row::field(s, &r.provider, &r.charged_model)))
        .collect()
}

/// When a bucket's hash expires: its end plus its granularity's retention.
fn expiry((g, start, _): Bucket, l: &LedgerLimits) -> i64 {
    let keep = match g {
        Granularity::Hour => l.hourly_retention_ms,
        Granularity::Day => l.daily_retention_ms,
    };
    start.saturating_add(g.millis()).saturating_add(keep)
}

/// A row's stored value: its eleven values as big-endian i64.
pub(super) fn encode_row(v: &Values) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_be_bytes()).collect()
}

impl RedisStore {
    fn cursor_key(&self, tag: &str) -> String {
        format!("{}:{{{tag}}}:lcur", self.prefix)
    }

    /// Counts every record written so far, tag by tag (and trims the streams).
    pub(super) async fn roll_up_all(&self) -> Result<(), StoreError> {
        for tag in self.ledger_tags().await? {
            self.roll_up(&tag).await?;
        }
        Ok(())
    }

    /// Counts the records of `tag` not counted yet.
    async fn roll_up(&self, tag: &str) -> Result<(), StoreError> {
        let mut pass = Pass::default();
        for _ in 0..STEPS_PER_PASS {
            match self.roll_up_step(tag, &mut pass).await? {
                Step::Done => return Ok(()),
                Step::More => {}
                Step::Moved => pass = Pass::default(),
            }
        }
        Ok(())
    }

    /// Reads the next run of the stream into `pass.read`.
    async fn read_more(&self, stream: &str, pass: &mut Pass) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let from = pass
            .read_to
            .as_deref()
            .or(pass.cursor().0)
            .map_or_else(|| "-".to_owned(), |c| format!("({c}"));
        let reply: Value = redis::cmd("XRANGE")
            .arg(stream)
            .arg(&from)
            .arg("+")
            .arg("COUNT")
            .arg(READ)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let Value::Array(entries) = reply else {
            return Err(StoreError::Corrupt(format!("XRANGE reply {reply:?}")));
        };
        pass.at_end = entries.len() < READ;
        for e in &entries {
            let Some((id, stored)) = entry(e) else {
                return Err(StoreError::Corrupt(format!("stream entry {e:?}")));
            };
            let id_text = format!("{}-{}", id.0, id.1);
            let held = stored.len() as u64;
            let mut records: Vec<Addition> = match entry_spend(e) {
                Ok(rows) => rows.iter().map(Addition::of_spend).collect(),
                // Rows this release cannot read add to nothing (logged once, here).
                Err(raw) => {
                    tracing::warn!(tag = stream, id = %id_text, raw, "imported spend rows not rolled up: unreadable");
                    Vec::new()
                }
            };
            records.reserve(stored.len());
            for (pos, r) in stored {
                match r {
                    Ok(r) => records.push(Addition::of_record(&r)),
                    // A record this release cannot read adds to no row (it still exports as
                    // it is).
                    Err(_) => {
                        tracing::warn!(tag = stream, id = %id_text, pos, "ledger record not rolled up: unreadable");
                    }
                }
            }
            pass.read_to = Some(id_text.clone());
            pass.read.push_back((id_text, id, records, held));
        }
        Ok(())
    }

    async fn roll_up_step(&self, tag: &str, pass: &mut Pass) -> Result<Step, StoreError> {
        let mut conn = self.conn.clone();
        let stream = self.stream_key(tag);
        let cursor_key = self.cursor_key(tag);
        if !pass.started {
            pass.cursor = conn.get(&cursor_key).await.map_err(unavailable)?;
            pass.started = true;
        }
        if pass.read.is_empty() {
            self.read_more(&stream, pass).await?;
        }
        let mut delta = Delta::default();
        let mut last: Option<String> = None;
        let (_, mut counted) = pass.cursor();
        let every = self.ledger.limits.records_max.div_ceil(MARKS).max(1);
        let mut marks: Vec<String> = Vec::new();
        while let Some((id, (ms, seq), records, held)) = pass.read.front() {
            if last.is_some() {
                let new: usize = records.iter().map(|a| delta.new_rows(a)).sum();
                if delta.rows + new > ROWS_PER_STEP {
                    break;
                }
            }
            for a in records {
                delta.add(a);
            }
            let before = counted;
            counted = counted.saturating_add(*held);
            if counted / every > before / every {
                // Every entry up to this one is counted: the id right after it.
                marks.push(format!("{counted} {ms}-{}", seq.saturating_add(1)));
            }
            last = Some(id.clone());
            pass.read.pop_front();
        }
        let Some(last) = last else {
            return Ok(Step::Done);
        };
        let to_end = pass.read.is_empty() && pass.at_end;
        let cursor = pass.cursor.replace(format!("{last} {counted}"));
        // The rows' current values, then their new ones.
        let buckets: Vec<BucketRows> = delta
            .buckets
            .into_iter()
            .map(|(b, rows)| {
                (
                    b,
                    self.bucket_key(tag, b.0, b.1, Some(b.2)),
                    rows.into_iter().collect(),
                )
            })
            .collect();
        let mut pipe = redis::pipe();
        for (_, key, rows) in &buckets {
            pipe.cmd("HMGET").arg(key);
            for (f, _) in rows {
                pipe.arg(f);
            }
        }
        let current: Vec<Vec<Option<Vec<u8>>>> =
            pipe.query_async(&mut conn).await.map_err(unavailable)?;
        let limits = self.ledger.limits;
        let mut inv = self.rollup.prepare_invoke();
        inv.key(&cursor_key)
            .key(&stream)
            .key(format!("{}:{{{tag}}}:lmark", self.prefix));
        // Records older than the age limit before the newest one counted (its entry id is
        // the control plane's clock when it was written) go; none past the new cursor.
        let minid = if limits.records_max_age_ms > 0 {
            let last_ms = last
                .split_once('-')
                .and_then(|(ms, _)| ms.parse::<i64>().ok())
                .unwrap_or(0);
            last_ms
                .saturating_sub(limits.records_max_age_ms)
                .to_string()
        } else {
            String::new()
        };
        let floor = i128::from(counted) - i128::from(limits.records_max.max(1));
        inv.arg(cursor.unwrap_or_default())
            .arg(pass.cursor.as_deref().unwrap_or_default())
            .arg(floor.to_string())
            .arg(minid)
            .arg(marks.len());
        for m in &marks {
            inv.arg(m);
        }
        for ((bucket, key, rows), old) in buckets.iter().zip(current) {
            if old.len() != rows.len() {
                return Err(StoreError::Corrupt(format!(
                    "HMGET {key}: {} values",
                    old.len()
                )));
            }
            inv.key(key);
            inv.arg(expiry(*bucket, &limits)).arg(rows.len());
            for ((f, d), old) in rows.iter().zip(old) {
                let mut v = match old {
                    Some(raw) => super::ledger::parse_row(&raw)?,
                    None => [0; VALUES],
                };
                row::add(&mut v, d);
                inv.arg(f).arg(encode_row(&v));
            }
        }
        let reply: Value = inv.invoke_async(&mut conn).await.map_err(unavailable)?;
        match text(&reply).as_deref() {
            Some("ok") if to_end => Ok(Step::Done),
            Some("ok") => Ok(Step::More),
            Some("moved") => Ok(Step::Moved),
            _ => Err(StoreError::Corrupt(format!(
                "rollup: unexpected reply {reply:?}"
            ))),
        }
    }
}
