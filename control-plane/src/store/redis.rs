//! The Redis store: counters, reservations and documents in Redis, changed only through the
//! Lua scripts in `store/redis/` (run with EVALSHA; loaded on first use and again after a
//! Redis restart empties the script cache). Key scheme: `docs/redis-keys.md`.
//!
//! Every Redis failure (refused, reset, timed out, still loading its AOF) becomes
//! [`StoreError::Unavailable`]: the caller answers `503 store_unavailable`, never a guess; a
//! Redis at `maxmemory` is [`StoreError::Full`] (`503 store_full`). Connections: `conn.rs`;
//! the eviction and persistence checks: `health.rs`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::{AsyncCommands, Script, Value};
use tollgate_model::wire::v1::DenyReason;

use crate::ledger::import::SpendRow;
use crate::ledger::{RecordPage, RollupQuery, RollupRow, TimeRange};

use super::{
    ALERTS_CAP, AUDIT_CAP, AlertEvent, Collection, Counters, Expect, LeaseAmounts, LeaseOp,
    LeaseOutcome, LeaseTakeOp, LeaseView, Line, ReserveOp, ReserveOutcome, SETTLE_CHUNK, SettleOp,
    SettleOutcome, SpendOutcome, Store, StoreError, Versioned, WriteConflict,
};

mod conn;
mod health;

use conn::Conn;
pub use conn::{RedisConnect, Topology};
pub use health::{NodeFacts, ServerCheckError};

const COMMON_LUA: &str = include_str!("redis/common.lua");
const RESERVE_LUA: &str = include_str!("redis/reserve.lua");
const SETTLE_LUA: &str = include_str!("redis/settle.lua");
const LEDGER_LUA: &str = include_str!("redis/ledger.lua");
const ROLLUP_LUA: &str = include_str!("redis/rollup.lua");
const IMPORT_LUA: &str = include_str!("redis/import.lua");

mod import;
const LEASE_LUA: &str = include_str!("redis/lease.lua");

mod lease;
mod ledger;
mod records;
mod rollup;
mod rollup_read;
mod stored;
const DOCS_LUA: &str = include_str!("redis/docs.lua");

/// How to reach Redis.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://host:port/db`, or `rediss://` for TLS: the one node [`RedisStore::new`]
    /// connects to ([`RedisStore::connect`] takes a [`RedisConnect`] instead).
    pub url: String,
    /// Prefix of every key, so several deployments can share one Redis.
    pub key_prefix: String,
    /// How long one command may take before the store reports itself unavailable.
    pub timeout_ms: u64,
}

/// Most window keys one `MGET` of [`Store::counters_many`] reads.
const MGET_KEYS: usize = 512;

/// The Redis store.
pub struct RedisStore {
    conn: Conn,
    prefix: String,
    reserve: Script,
    settle: Script,
    rollup: Script,
    import: Script,
    docs: Script,
    lease: Script,
    ledger: ledger::LedgerState,
    guard: health::Guard,
}

/// A Redis error as the store reports it. `OOM` (Redis at `maxmemory` under `noeviction`)
/// is [`StoreError::Full`]: Redis refuses a script whose first write meets the limit before
/// anything is written, so nothing is half-applied; the API logs why and answers 503.
fn unavailable(e: redis::RedisError) -> StoreError {
    let full = e.code() == Some("OOM") || e.to_string().contains("OOM command not allowed");
    let reason = if full { "full" } else { "unavailable" };
    metrics::counter!("tollgate_store_errors_total", "store" => "redis", "reason" => reason)
        .increment(1);
    if full {
        StoreError::Full(e.to_string())
    } else {
        StoreError::Unavailable(e.to_string())
    }
}

fn corrupt(what: &str, v: &Value) -> StoreError {
    StoreError::Corrupt(format!("{what}: unexpected reply {v:?}"))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Okay => Some("OK".into()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => text(other)?.parse().ok(),
    }
}

/// The counters reserve.lua answers with a refusal: spent, rsv, tok, rtok, req, thr.
fn counters_at(items: &[Value], at: usize) -> Option<Counters> {
    Some(Counters {
        threshold_pct: u16::try_from(items.get(at + 5).and_then(int)?).ok()?,
        ..first_counters_at(items, at)?
    })
}

/// The counters lease.lua answers with a refusal: spent, rsv, tok, rtok, req, rreq.
fn counters_at_lease(items: &[Value], at: usize) -> Option<Counters> {
    Some(Counters {
        reserved_requests: items.get(at + 5).and_then(int)?,
        ..first_counters_at(items, at)?
    })
}

/// The five counters both scripts' refusals start with: spent, rsv, tok, rtok, req.
fn first_counters_at(items: &[Value], at: usize) -> Option<Counters> {
    let n = |i: usize| items.get(at + i).and_then(int);
    Some(Counters {
        spent_nanos: n(0)?,
        reserved_nanos: n(1)?,
        tokens: n(2)?,
        reserved_tokens: n(3)?,
        requests: n(4)?,
        threshold_pct: 0,
        reserved_requests: 0,
    })
}

/// A refusal from reserve.lua or lease.lua ({'deny', line (1-based), reason, counters...}):
/// the line's index, the reason, and the counters `counters` reads from the fourth item on.
fn refusal_at(
    items: &[Value],
    counters: fn(&[Value], usize) -> Option<Counters>,
) -> Option<(usize, DenyReason, Counters)> {
    let line = items
        .get(1)
        .and_then(int)
        .and_then(|i| usize::try_from(i - 1).ok())?;
    let reason = items.get(2).and_then(text).and_then(|r| deny_reason(&r))?;
    Some((line, reason, counters(items, 3)?))
}

/// One crossed threshold from settle.lua's reply: "<budget_id>|<window_index>", pct, spent.
fn alert_of(c: &[Value], at_ms: i64) -> Option<AlertEvent> {
    let who = text(c.first()?)?;
    // Budget ids hold no '|'.
    let (budget_id, window_index) = who.split_once('|')?;
    Some(AlertEvent {
        budget_id: budget_id.to_owned(),
        window_index: window_index.parse().ok()?,
        threshold_pct: u16::try_from(int(c.get(1)?)?).ok()?,
        spent_nanos: int(c.get(2)?)?,
        at_ms,
    })
}

/// Window keys joined by ' ': what a reservation record and a settlement compare to know they
/// charge the same windows (settle.lua). Keys never hold a space (the prefix is validated;
/// scope values and budget ids exclude whitespace).
fn signature(window_keys: &[String]) -> String {
    window_keys.join(" ")
}

fn opt(v: Option<i64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

impl RedisStore {
    /// A store on `config.url`. Connects lazily: the service starts even while Redis is
    /// down, and `/readyz` says so.
    pub fn new(config: &RedisConfig) -> Result<RedisStore, StoreError> {
        Self::connect(config, &RedisConnect::standalone(&config.url))
    }

    /// A store on the deployment `connect` describes (standalone, Cluster or Sentinel; TLS;
    /// credentials); `config.url` is not used. Connects lazily, as [`RedisStore::new`] does.
    pub fn connect(config: &RedisConfig, connect: &RedisConnect) -> Result<RedisStore, StoreError> {
        let timeout = Duration::from_millis(config.timeout_ms.max(1));
        let conn = Conn::open(connect, timeout).map_err(unavailable)?;
        Ok(RedisStore {
            conn,
            prefix: config.key_prefix.clone(),
            reserve: Script::new(&format!("{COMMON_LUA}\n{RESERVE_LUA}")),
            settle: Script::new(&format!("{COMMON_LUA}\n{LEDGER_LUA}\n{SETTLE_LUA}")),
            rollup: Script::new(ROLLUP_LUA),
            import: Script::new(IMPORT_LUA),
            docs: Script::new(DOCS_LUA),
            lease: Script::new(&format!("{COMMON_LUA}\n{LEASE_LUA}")),
            ledger: ledger::LedgerState::default(),
            guard: health::Guard::default(),
        })
    }

    fn window_key(&self, line: &Line) -> String {
        format!(
            "{}:{{{}}}:w:{}:{}",
            self.prefix, line.tag, line.budget_id, line.window_index
        )
    }

    fn line_keys(&self, line: &Line) -> [String; 3] {
        let p = &self.prefix;
        [
            self.window_key(line),
            format!("{p}:{{{}}}:susp:{}", line.tag, line.budget_id),
            format!("{p}:{{{}}}:alerts", line.tag),
        ]
    }

    fn record_key(&self, tag: &str, request_id: &str) -> String {
        format!("{}:{{{tag}}}:r:{request_id}", self.prefix)
    }

    fn expiries_key(&self, tag: &str) -> String {
        format!("{}:{{{tag}}}:exp", self.prefix)
    }

    fn docs_key(&self, coll: Collection) -> String {
        format!("{}:docs:{}", self.prefix, coll.as_str())
    }

    /// The window keys of `lines`, each built once per call: they are the script's KEYS, the
    /// signature and the record's lines.
    fn window_keys(&self, lines: &[Line]) -> Vec<String> {
        lines.iter().map(|line| self.window_key(line)).collect()
    }

    /// A line as the scripts store it in a reservation record and take it as a settle
    /// fallback line: `<window key>|<expire_at_ms>|<d>[|<detail>]` (see common.lua).
    fn line_record(line: &Line, window_key: &str, out: &mut String) {
        use std::fmt::Write as _;
        out.push_str(window_key);
        out.push('|');
        out.push_str(&opt(line.expire_at_ms));
        if line.suspend_on_exceed || !line.thresholds_pct.is_empty() {
            let _ = write!(
                out,
                "|1|{}|{}|{}|{}|{}|{}|",
                u8::from(line.suspend_on_exceed),
                opt(line.limit_nanos),
                opt(line.limit_tokens),
                opt(line.limit_requests),
                line.budget_id,
                line.window_index,
            );
            for (i, t) in line.thresholds_pct.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{t}");
            }
        } else {
            out.push_str("|0");
        }
    }

    async fn run(
        &self,
        what: &'static str,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<Vec<Value>, StoreError> {
        let mut conn = self.conn.clone();
        let started = Instant::now();
        let reply: Result<Value, _> = inv.invoke_async(&mut conn).await;
        metrics::histogram!("tollgate_redis_seconds", "script" => what)
            .record(started.elapsed().as_secs_f64());
        match reply.map_err(unavailable)? {
            Value::Array(items) => Ok(items),
            other => Err(corrupt(what, &other)),
        }
    }
}

fn deny_reason(s: &str) -> Option<DenyReason> {
    Some(match s {
        "suspended" => DenyReason::Suspended,
        "requests" => DenyReason::Requests,
        "usd" => DenyReason::Usd,
        "tokens" => DenyReason::Tokens,
        _ => return None,
    })
}

#[async_trait]
impl Store for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        self.checked().await
    }

    async fn reserve(&self, op: &ReserveOp) -> Result<ReserveOutcome, StoreError> {
        let mut inv = self.reserve.prepare_invoke();
        inv.key(self.record_key(&op.request_tag, &op.request_id));
        inv.key(self.expiries_key(&op.request_tag));
        let keys = self.window_keys(&op.lines);
        for key in &keys {
            inv.key(key);
        }
        // The record (which windows this hold is on, and the amounts to take off them) is
        // built here, not in Lua: string building is what the scripts can least afford.
        // The signature rides on the first line, after the amounts, where the previous
        // release's scripts (which read "<-cost>|<-tokens" there and a line after each "\n")
        // do not see it: a rollback or a mixed-version deploy still settles these records.
        let mut record = format!(
            "{}|{}|",
            op.cost_nanos.saturating_neg(),
            op.tokens.saturating_neg()
        );
        record.push_str(&signature(&keys));
        for (line, key) in op.lines.iter().zip(&keys) {
            record.push('\n');
            Self::line_record(line, key, &mut record);
        }
        inv.arg(&op.request_id)
            .arg(op.cost_nanos)
            .arg(op.tokens)
            .arg(op.now_ms)
            .arg(op.now_ms.saturating_add(op.reservation_ttl_ms))
            .arg(op.record_ttl_ms.max(1))
            .arg(record);
        for line in &op.lines {
            inv.arg(opt(line.limit_nanos))
                .arg(opt(line.limit_tokens))
                .arg(opt(line.limit_requests))
                .arg(u8::from(line.enforce) + 2 * u8::from(line.suspend_on_exceed))
                .arg(opt(line.expire_at_ms));
        }
        let items = self.run("reserve", &inv).await?;
        let bad = || StoreError::Corrupt(format!("reserve: unexpected reply {items:?}"));
        match items.first().and_then(text).as_deref() {
            Some("dup") => Ok(ReserveOutcome::Duplicate),
            Some("deny") => {
                let (line, reason, counters) = refusal_at(&items, counters_at).ok_or_else(bad)?;
                Ok(ReserveOutcome::Refused {
                    line,
                    reason,
                    counters,
                })
            }
            Some("ok") => {
                let shadow_over = items
                    .get(1)
                    .and_then(text)
                    .ok_or_else(bad)?
                    .split(',')
                    .filter_map(|s| s.parse::<usize>().ok())
                    .map(|i| i.saturating_sub(1))
                    .collect();
                let used_nanos = items
                    .get(2..2 + op.lines.len())
                    .and_then(|used| used.iter().map(int).collect::<Option<Vec<_>>>())
                    .ok_or_else(bad)?;
                Ok(ReserveOutcome::Reserved {
                    used_nanos,
                    shadow_over,
                })
            }
            _ => Err(bad()),
        }
    }

    async fn settle(&self, op: &SettleOp) -> Result<SettleOutcome, StoreError> {
        let mut out = self.settle_chunk(&[op]).await?;
        out.pop()
            .ok_or_else(|| StoreError::Corrupt("settle: empty reply".into()))
    }

    async fn settle_many(&self, ops: &[SettleOp]) -> Result<Vec<SettleOutcome>, StoreError> {
        // One script call per org (its keys share a slot), time and dedupe TTL (the script
        // takes them once), and chunk; outcomes back in the order of `ops`.
        fn group_of(op: &SettleOp) -> (&str, i64, i64) {
            (&op.request_tag, op.now_ms, op.dedupe_ttl_ms)
        }
        let mut order: Vec<usize> = (0..ops.len()).collect();
        order.sort_by_key(|&i| group_of(&ops[i]));
        let mut out: Vec<Option<SettleOutcome>> = vec![None; ops.len()];
        for group in order.chunk_by(|&a, &b| group_of(&ops[a]) == group_of(&ops[b])) {
            for chunk in group.chunks(SETTLE_CHUNK) {
                let batch: Vec<&SettleOp> = chunk.iter().map(|&i| &ops[i]).collect();
                let outcomes = self.settle_chunk(&batch).await?;
                for (&i, o) in chunk.iter().zip(outcomes) {
                    out[i] = Some(o);
                }
            }
        }
        out.into_iter()
            .map(|o| o.ok_or_else(|| StoreError::Corrupt("settle: reply too short".into())))
            .collect()
    }

    async fn counters(&self, line: &Line) -> Result<Counters, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Option<Vec<u8>> = conn.get(self.window_key(line)).await.map_err(unavailable)?;
        raw.map_or(Ok(Counters::default()), |r| parse_window(&r))
    }

    async fn counters_many(&self, lines: &[Line]) -> Result<Vec<Counters>, StoreError> {
        // One MGET per hash tag (a Cluster serves one slot per command) and at most
        // MGET_KEYS keys (one command never holds Redis long), all sent at once.
        let mut by_tag: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, line) in lines.iter().enumerate() {
            by_tag.entry(line.tag.as_str()).or_default().push(i);
        }
        let chunks: Vec<Vec<usize>> = by_tag
            .into_values()
            .flat_map(|idx| {
                idx.chunks(MGET_KEYS)
                    .map(<[usize]>::to_vec)
                    .collect::<Vec<_>>()
            })
            .collect();
        let reads = chunks.into_iter().map(|idx| {
            let mut conn = self.conn.clone();
            let keys: Vec<String> = idx.iter().map(|&i| self.window_key(&lines[i])).collect();
            async move {
                let raw: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)?;
                Ok::<_, StoreError>((idx, raw))
            }
        });
        let mut out = vec![Counters::default(); lines.len()];
        for (idx, raw) in futures_util::future::try_join_all(reads).await? {
            if raw.len() != idx.len() {
                return Err(StoreError::Corrupt(format!(
                    "MGET of {} windows answered {}",
                    idx.len(),
                    raw.len()
                )));
            }
            for (i, r) in idx.into_iter().zip(raw) {
                if let Some(r) = r {
                    out[i] = parse_window(&r)?;
                }
            }
        }
        Ok(out)
    }

    async fn reset_window(&self, line: &Line) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let [w, _, _] = self.line_keys(line);
        let _: i64 = conn.del(w).await.map_err(unavailable)?;
        Ok(())
    }

    async fn is_suspended(&self, line: &Line) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let [_, s, _] = self.line_keys(line);
        conn.exists(s).await.map_err(unavailable)
    }

    async fn reopen(&self, line: &Line) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let [_, s, _] = self.line_keys(line);
        let n: i64 = conn.del(s).await.map_err(unavailable)?;
        Ok(n > 0)
    }

    async fn alerts(&self, tags: &[String], limit: usize) -> Result<Vec<AlertEvent>, StoreError> {
        let mut conn = self.conn.clone();
        let mut all = Vec::new();
        let end = isize::try_from(limit.min(ALERTS_CAP)).unwrap_or(0) - 1;
        for tag in tags {
            let key = format!("{}:{{{tag}}}:alerts", self.prefix);
            let raw: Vec<String> = conn.lrange(key, 0, end).await.map_err(unavailable)?;
            for r in raw {
                let f: Vec<&str> = r.split('|').collect();
                // budget ids hold no '|', so the last four fields are always the numbers.
                if let [id, idx, t, spent, at] = f.as_slice() {
                    all.push(AlertEvent {
                        budget_id: (*id).to_owned(),
                        window_index: idx.parse().unwrap_or(0),
                        threshold_pct: t.parse().unwrap_or(0),
                        spent_nanos: spent.parse().unwrap_or(0),
                        at_ms: at.parse().unwrap_or(0),
                    });
                }
            }
        }
        all.sort_by_key(|a| std::cmp::Reverse(a.at_ms));
        all.truncate(limit);
        Ok(all)
    }

    async fn get_doc(&self, coll: Collection, id: &str) -> Result<Option<Versioned>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = conn
            .hget(self.docs_key(coll), id)
            .await
            .map_err(unavailable)?;
        raw.map(|r| parse_doc(&r)).transpose()
    }

    async fn list_docs(&self, coll: Collection) -> Result<Vec<(String, Versioned)>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Vec<(String, String)> = conn
            .hgetall(self.docs_key(coll))
            .await
            .map_err(unavailable)?;
        let mut out = raw
            .into_iter()
            .map(|(k, v)| Ok((k, parse_doc(&v)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    async fn put_doc(
        &self,
        coll: Collection,
        id: &str,
        json: &str,
        expect: Expect,
    ) -> Result<Result<u64, WriteConflict>, StoreError> {
        self.write_doc(coll, id, "put", json, expect).await
    }

    async fn delete_doc(
        &self,
        coll: Collection,
        id: &str,
        expect: Expect,
    ) -> Result<Result<(), WriteConflict>, StoreError> {
        Ok(self
            .write_doc(coll, id, "del", "", expect)
            .await?
            .map(|_| ()))
    }

    async fn audit(&self, json: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let key = format!("{}:audit", self.prefix);
        let cap = isize::try_from(AUDIT_CAP).unwrap_or(isize::MAX) - 1;
        let _: () = redis::pipe()
            .atomic()
            .lpush(&key, json)
            .ignore()
            .ltrim(&key, 0, cap)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn audit_log(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        let end = isize::try_from(limit).unwrap_or(isize::MAX) - 1;
        conn.lrange(format!("{}:audit", self.prefix), 0, end)
            .await
            .map_err(unavailable)
    }

    async fn rollups(&self, q: &RollupQuery) -> Result<Vec<RollupRow>, StoreError> {
        self.read_rollups(q).await
    }

    async fn import_spend(
        &self,
        tag: &str,
        rows: &[SpendRow],
        now_ms: i64,
        dedupe_ttl_ms: i64,
    ) -> Result<Vec<SpendOutcome>, StoreError> {
        self.write_spend(tag, rows, now_ms, dedupe_ttl_ms).await
    }

    async fn ledger_upkeep(&self) -> Result<(), StoreError> {
        self.roll_up_all().await
    }

    async fn records(
        &self,
        range: TimeRange,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<RecordPage, StoreError> {
        self.read_records(range, cursor, limit).await
    }

    async fn lease(&self, op: &LeaseOp) -> Result<LeaseOutcome, StoreError> {
        self.grant_lease(op).await
    }

    async fn lease_take(&self, op: &LeaseTakeOp) -> Result<Option<LeaseAmounts>, StoreError> {
        self.take_lease(op).await
    }

    async fn leases(&self, now_ms: i64) -> Result<Vec<LeaseView>, StoreError> {
        self.list_leases(now_ms).await
    }
}

impl RedisStore {
    /// Settles `ops` (all of one request tag, time and dedupe TTL) in one run of settle.lua.
    async fn settle_chunk(&self, ops: &[&SettleOp]) -> Result<Vec<SettleOutcome>, StoreError> {
        let Some(first) = ops.first() else {
            return Ok(Vec::new());
        };
        if ops.iter().any(|op| op.ledger.is_some()) {
            self.list_ledger_tag(&first.request_tag).await?;
        }
        // The batch's windows, each once (its key and the line first naming it: one batch's
        // lines come from one budget snapshot), and each settlement's windows by number.
        let mut windows: Vec<(String, &Line)> = Vec::new();
        let mut numbers: HashMap<String, usize> = HashMap::new();
        let refs: Vec<Vec<usize>> = ops
            .iter()
            .map(|op| {
                op.lines
                    .iter()
                    .map(|line| {
                        *numbers
                            .entry(self.window_key(line))
                            .or_insert_with_key(|key| {
                                windows.push((key.clone(), line));
                                windows.len()
                            })
                    })
                    .collect()
            })
            .collect();
        let mut inv = self.settle.prepare_invoke();
        inv.key(self.expiries_key(&first.request_tag));
        inv.arg(first.now_ms).arg(first.dedupe_ttl_ms.max(1));
        self.ledger_args(&mut inv, first, ops);
        inv.arg(windows.len());
        for (key, line) in &windows {
            inv.key(key);
            let thresholds = line
                .thresholds_pct
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(",");
            inv.arg(opt(line.expire_at_ms))
                .arg(u8::from(line.suspend_on_exceed))
                .arg(opt(line.limit_nanos))
                .arg(opt(line.limit_tokens))
                .arg(opt(line.limit_requests))
                .arg(format!("{}|{}", line.budget_id, line.window_index))
                .arg(thresholds);
        }
        for (op, refs) in ops.iter().zip(&refs) {
            inv.key(self.record_key(&op.request_tag, &op.request_id));
            inv.arg(&op.request_id)
                .arg(op.cost_nanos)
                .arg(op.tokens)
                .arg(refs.len());
            for n in refs {
                inv.arg(n);
            }
        }
        let items = self.run("settle", &inv).await?;
        let bad = || StoreError::Corrupt(format!("settle: unexpected reply {items:?}"));
        let mut out = Vec::with_capacity(ops.len());
        let mut rest = items.as_slice();
        for op in ops {
            let (head, tail) = rest.split_first().ok_or_else(bad)?;
            rest = tail;
            match text(head).as_deref() {
                Some("dup") => out.push(SettleOutcome::Duplicate),
                Some("ok") => {
                    let (m, tail) = rest.split_first().ok_or_else(bad)?;
                    let m = int(m)
                        .and_then(|m| usize::try_from(m).ok())
                        .ok_or_else(bad)?;
                    let (triples, tail) = tail.split_at_checked(3 * m).ok_or_else(bad)?;
                    rest = tail;
                    let alerts = triples
                        .chunks(3)
                        .map(|c| alert_of(c, op.now_ms))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(bad)?;
                    out.push(SettleOutcome::Applied { alerts });
                }
                _ => return Err(bad()),
            }
        }
        Ok(out)
    }

    async fn write_doc(
        &self,
        coll: Collection,
        id: &str,
        action: &str,
        json: &str,
        expect: Expect,
    ) -> Result<Result<u64, WriteConflict>, StoreError> {
        let expect = match expect {
            Expect::Absent => "absent".to_owned(),
            Expect::Exists => "exists".to_owned(),
            Expect::Version(v) => v.to_string(),
        };
        let mut inv = self.docs.prepare_invoke();
        inv.key(self.docs_key(coll))
            .arg(id)
            .arg(action)
            .arg(expect)
            .arg(json);
        let items = self.run("docs", &inv).await?;
        let n = |i: usize| {
            items
                .get(i)
                .and_then(int)
                .and_then(|v| u64::try_from(v).ok())
        };
        Ok(match items.first().and_then(text).as_deref() {
            Some("ok") => Ok(n(1).unwrap_or(0)),
            Some("exists") => Err(WriteConflict::AlreadyExists),
            Some("missing") => Err(WriteConflict::Missing),
            Some("mismatch") => Err(WriteConflict::VersionMismatch {
                current: n(1).unwrap_or(0),
            }),
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "docs: unexpected reply {items:?}"
                )));
            }
        })
    }
}

fn parse_doc(raw: &str) -> Result<Versioned, StoreError> {
    let (v, json) = raw
        .split_once(':')
        .ok_or_else(|| StoreError::Corrupt("document without version".into()))?;
    let version = v
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("document version {v:?}")))?;
    Ok(Versioned {
        json: json.to_owned(),
        version,
    })
}

/// A window's value: seven big-endian signed 64-bit fields `spent rsv tok rtok req thr rreq`,
/// written with BITFIELD (see common.lua); missing trailing bytes read as zero, as BITFIELD
/// reads them (a value written before leases has six).
fn parse_window(raw: &[u8]) -> Result<Counters, StoreError> {
    if raw.len() > 56 {
        return Err(StoreError::Corrupt(format!(
            "window value of {} bytes",
            raw.len()
        )));
    }
    let mut b = [0u8; 56];
    b[..raw.len()].copy_from_slice(raw);
    let f = |i: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[8 * i..8 * i + 8]);
        i64::from_be_bytes(x)
    };
    Ok(Counters {
        spent_nanos: f(0),
        reserved_nanos: f(1),
        tokens: f(2),
        reserved_tokens: f(3),
        requests: f(4),
        threshold_pct: u16::try_from(f(5)).unwrap_or(0),
        reserved_requests: f(6),
    })
}
