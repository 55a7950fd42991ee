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

use super::rollup_read::{RawEntry, View};
use super::{RedisStore, text, unavailable};
use crate::ledger::import::SpendRow;
use crate::ledger::row::{self, VALUES, Values};
use crate::ledger::{Granularity, LedgerLimits};
use crate::store::StoreError;

/// Entries read per step (an entry holds a settle batch: 1 to `SETTLE_CHUNK`, 64, records;
/// so up to about 4 000 records a read).
const READ: usize = 64;

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

/// A bucket of a step: its key and its rows' fields with what the step adds to each.
type BucketRows = (Bucket, String, Vec<(String, Values)>);

/// A pass over one tag's stream: the cursor as this pass knows it (`"<entry id>
/// <records counted>"`, or a bare entry id from a release before batch entries), and the
/// entries read past it and not counted yet (a step counts up to `ROWS_PER_STEP` rows'
/// worth of whole entries; the rest wait for the next step instead of being read again).
#[derive(Default)]
struct Pass {
    started: bool,
    cursor: Option<String>,
    read: VecDeque<RawEntry>,
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

/// The row identities a step has met, by number, so that a record adds to its rows with
/// integer lookups and a row's field text is built once per step, not once per record.
/// Kept per step: its size is bounded by the step's rows.
#[derive(Default)]
struct Names {
    /// A scope as stored → its number (`None`: not a scope; its record is unreadable).
    scope_ids: HashMap<String, Option<u32>>,
    /// By number: the scope's kind and its text (`Scope`'s `Display`).
    scopes: Vec<(ScopeKind, String)>,
    /// `<provider>\t<model>` → number.
    pm_ids: HashMap<String, u32>,
    /// By number: `<provider>\t<model>`.
    pms: Vec<String>,
    /// A buffer for the lookups.
    buf: String,
}

impl Names {
    fn scope(&mut self, raw: &str) -> Option<u32> {
        if let Some(id) = self.scope_ids.get(raw) {
            return *id;
        }
        let id = raw.parse::<Scope>().ok().map(|s| {
            // Two spellings of one scope (`global`, `global:`) share a number.
            let text = s.to_string();
            match self.scopes.iter().position(|(_, t)| *t == text) {
                Some(i) => i as u32,
                None => {
                    self.scopes.push((s.kind(), text));
                    (self.scopes.len() - 1) as u32
                }
            }
        });
        self.scope_ids.insert(raw.to_owned(), id);
        id
    }

    fn provider_model(&mut self, provider: &str, model: &str) -> u32 {
        self.buf.clear();
        self.buf.push_str(provider);
        self.buf.push('\t');
        self.buf.push_str(model);
        if let Some(id) = self.pm_ids.get(self.buf.as_str()) {
            return *id;
        }
        self.pms.push(self.buf.clone());
        let id = (self.pms.len() - 1) as u32;
        self.pm_ids.insert(self.buf.clone(), id);
        id
    }

    /// A record's rows: its scopes' numbers (each distinct scope of the call, then `global`
    /// once, as `row::scopes_of`) appended to `scopes`, and its provider and model's number;
    /// `None` when a scope is unreadable (the record adds to no row, as an export cannot
    /// read it either).
    fn rows_of(&mut self, v: &View<'_>, scopes: &mut Vec<u32>) -> Option<u32> {
        let from = scopes.len();
        for s in &v.scopes {
            let Some(id) = self.scope(&s.0) else {
                scopes.truncate(from);
                return None;
            };
            if self.scopes[id as usize].0 != ScopeKind::Global && !scopes[from..].contains(&id) {
                scopes.push(id);
            }
        }
        scopes.push(self.scope("global")?);
        Some(self.provider_model(&v.provider.0, &v.charged_model.0))
    }

    /// An imported spend row's rows, as [`Names::rows_of`] (its scopes are checked already).
    fn rows_of_spend(&mut self, r: &SpendRow, scopes: &mut Vec<u32>) -> u32 {
        for s in r.row_scopes() {
            if let Some(id) = self.scope(&s.to_string()) {
                scopes.push(id);
            }
        }
        self.provider_model(&r.provider, &r.model)
    }

    /// A row's field (`row::field`).
    fn field(&self, scope: u32, pm: u32) -> String {
        let s = &self.scopes[scope as usize].1;
        let pm = &self.pms[pm as usize];
        let mut f = String::with_capacity(s.len() + 1 + pm.len());
        f.push_str(s);
        f.push('\t');
        f.push_str(pm);
        f
    }
}

/// A row of a step: its granularity, bucket start, scope and provider-model numbers.
type RowKey = (Granularity, i64, u32, u32);

/// What a record or an imported spend row adds, bucket by bucket (the same to each of its
/// rows there).
enum Adds {
    /// A record: its values, in its hour and in its day.
    Record([(Granularity, i64); 2], Values),
    /// An imported spend row (`SpendRow::additions`).
    Spend(Vec<(Granularity, i64, Values)>),
}

impl Adds {
    fn each(&self) -> impl Iterator<Item = (Granularity, i64, &Values)> + '_ {
        let (record, spend) = match self {
            Adds::Record(times, v) => (Some(times.iter().map(move |&(g, s)| (g, s, v))), None),
            Adds::Spend(all) => (None, Some(all.iter().map(|(g, s, v)| (*g, *s, v)))),
        };
        record
            .into_iter()
            .flatten()
            .chain(spend.into_iter().flatten())
    }

    fn buckets(&self) -> usize {
        match self {
            Adds::Record(times, _) => times.len(),
            Adds::Spend(all) => all.len(),
        }
    }
}

/// A record (or imported spend row) resolved to its rows: what it adds, its
/// provider-model, and its scopes' range in the entry's list of scope numbers.
struct Resolved {
    adds: Adds,
    pm: u32,
    scopes: std::ops::Range<usize>,
}

/// The rows one run of records adds to.
#[derive(Default)]
struct Delta {
    rows: HashMap<RowKey, Values>,
}

impl Delta {
    /// The rows the records add to that are not in the delta yet (an upper bound while the
    /// delta is far from `limit`, exact near it).
    fn new_rows(&self, records: &[Resolved], scopes: &[u32], limit: usize) -> usize {
        let most: usize = records
            .iter()
            .map(|r| r.adds.buckets() * r.scopes.len())
            .sum();
        if self.rows.len() + most <= limit {
            return most;
        }
        records
            .iter()
            .flat_map(|r| {
                r.adds.each().flat_map(move |(g, start, _)| {
                    scopes[r.scopes.clone()]
                        .iter()
                        .map(move |&s| (g, start, s, r.pm))
                })
            })
            .filter(|k| !self.rows.contains_key(k))
            .count()
    }

    fn add(&mut self, records: &[Resolved], scopes: &[u32]) {
        for r in records {
            for (g, start, v) in r.adds.each() {
                for &s in &scopes[r.scopes.clone()] {
                    self.rows
                        .entry((g, start, s, r.pm))
                        .and_modify(|sum| row::add(sum, v))
                        .or_insert(*v);
                }
            }
        }
    }

    /// The rows by bucket hash, each with its field.
    fn by_bucket(self, names: &Names) -> BTreeMap<Bucket, Vec<(String, Values)>> {
        let mut out: BTreeMap<Bucket, Vec<(String, Values)>> = BTreeMap::new();
        for ((g, start, s, pm), v) in self.rows {
            let kind = names.scopes[s as usize].0;
            out.entry((g, start, kind))
                .or_default()
                .push((names.field(s, pm), v));
        }
        out
    }
}

/// The hour and the day a record counts in (by its end).
fn times_of(ended_at_ms: i64) -> [(Granularity, i64); 2] {
    [
        (
            Granularity::Hour,
            Granularity::Hour.bucket_start(ended_at_ms),
        ),
        (Granularity::Day, Granularity::Day.bucket_start(ended_at_ms)),
    ]
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
        for e in entries {
            let Some(entry) = RawEntry::from_value(e) else {
                return Err(StoreError::Corrupt(format!(
                    "{stream}: the entry after {} is no ledger entry",
                    pass.read_to.as_deref().unwrap_or("the cursor")
                )));
            };
            pass.read_to = Some(entry.id_text.clone());
            pass.read.push_back(entry);
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
        let mut names = Names::default();
        let mut last: Option<String> = None;
        let (_, mut counted) = pass.cursor();
        let every = self.ledger.limits.records_max.div_ceil(MARKS).max(1);
        let mut marks: Vec<String> = Vec::new();
        let mut records: Vec<Resolved> = Vec::new();
        let mut scopes: Vec<u32> = Vec::new();
        let mut unreadable: Vec<usize> = Vec::new();
        while let Some(e) = pass.read.front() {
            let views = e.views();
            let held = views.len() as u64;
            records.clear();
            scopes.clear();
            unreadable.clear();
            for (pos, v) in views.iter().enumerate() {
                let from = scopes.len();
                match v
                    .as_ref()
                    .and_then(|v| Some((v, names.rows_of(v, &mut scopes)?)))
                {
                    Some((v, pm)) => records.push(Resolved {
                        adds: Adds::Record(times_of(v.ended_at_ms), v.values),
                        pm,
                        scopes: from..scopes.len(),
                    }),
                    None => unreadable.push(pos),
                }
            }
            // An entry of imported spend rows (`Store::import_spend`) holds no records.
            let spend = e.spend_rows();
            for r in spend.as_deref().unwrap_or_default() {
                let from = scopes.len();
                let pm = names.rows_of_spend(r, &mut scopes);
                records.push(Resolved {
                    adds: Adds::Spend(r.additions()),
                    pm,
                    scopes: from..scopes.len(),
                });
            }
            if last.is_some()
                && delta.rows.len() + delta.new_rows(&records, &scopes, ROWS_PER_STEP)
                    > ROWS_PER_STEP
            {
                break;
            }
            delta.add(&records, &scopes);
            for pos in &unreadable {
                // A record this release cannot read adds to no row (an export cannot read
                // it either).
                tracing::warn!(tag = stream, id = %e.id_text, pos, "ledger record not rolled up: unreadable");
            }
            if let Err(raw) = spend {
                // Rows this release cannot read add to nothing.
                tracing::warn!(tag = stream, id = %e.id_text, raw, "imported spend rows not rolled up: unreadable");
            }
            let before = counted;
            counted = counted.saturating_add(held);
            if counted / every > before / every {
                // Every entry up to this one is counted: the id right after it.
                let (ms, seq) = e.id;
                marks.push(format!("{counted} {ms}-{}", seq.saturating_add(1)));
            }
            last = Some(e.id_text.clone());
            pass.read.pop_front();
        }
        let Some(last) = last else {
            return Ok(Step::Done);
        };
        let to_end = pass.read.is_empty() && pass.at_end;
        let cursor = pass.cursor.replace(format!("{last} {counted}"));
        // The rows' current values, then their new ones.
        let buckets: Vec<BucketRows> = delta
            .by_bucket(&names)
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
