//! Leases on Redis (`lease.lua`): a grant or renewal checks and holds in one script run, a
//! take (a settled leased call, or a return) changes the record and its windows in another,
//! and the listing first releases every lease whose time has passed (a sweep per tag).
//!
//! Keys (docs/redis-keys.md): the record `<p>:{<tag>}:lease:<id>` and the tag's lease set
//! `<p>:{<tag>}:leases`, under the key's org tag; `<p>:lease:tags`, the tags that have had
//! leases (what the listing and the sweep visit), written before the first grant of a tag.

use std::collections::HashMap;

use redis::{AsyncCommands, Value};

use super::{RedisStore, counters_at_lease, int, opt, refusal_at, signature, text, unavailable};
use crate::store::lease::tag_of;
use crate::store::{
    LeaseAmounts, LeaseMeta, LeaseOp, LeaseOutcome, LeaseTakeOp, LeaseView, StoreError,
};

/// Most leases one sweep run releases (the run is repeated while it releases this many).
const SWEEP_RUN: usize = 64;

fn amounts_at(items: &[Value], at: usize) -> Option<LeaseAmounts> {
    Some(LeaseAmounts {
        usd_nanos: int(items.get(at)?)?,
        tokens: int(items.get(at + 1)?)?,
        requests: int(items.get(at + 2)?)?,
    })
}

impl RedisStore {
    fn lease_key(&self, tag: &str, lease_id: &str) -> String {
        format!("{}:{{{tag}}}:lease:{lease_id}", self.prefix)
    }

    fn lease_set_key(&self, tag: &str) -> String {
        format!("{}:{{{tag}}}:leases", self.prefix)
    }

    fn lease_tags_key(&self) -> String {
        format!("{}:lease:tags", self.prefix)
    }

    pub(super) async fn grant_lease(&self, op: &LeaseOp) -> Result<LeaseOutcome, StoreError> {
        if !op.renew {
            let mut conn = self.conn.clone();
            let _: i64 = conn
                .sadd(self.lease_tags_key(), &op.tag)
                .await
                .map_err(unavailable)?;
        }
        let meta = serde_json::to_string(&op.meta)
            .map_err(|e| StoreError::Corrupt(format!("lease meta: {e}")))?;
        let mut inv = self.lease.prepare_invoke();
        inv.key(self.lease_key(&op.tag, &op.lease_id));
        inv.key(self.lease_set_key(&op.tag));
        let keys = self.window_keys(&op.lines);
        for key in &keys {
            inv.key(key);
        }
        inv.arg(if op.renew { "renew" } else { "grant" })
            .arg(&op.lease_id)
            .arg(op.now_ms)
            .arg(op.amounts.usd_nanos)
            .arg(op.amounts.tokens)
            .arg(op.amounts.requests)
            .arg(op.admit_until_ms)
            .arg(op.release_at_ms)
            .arg(meta)
            .arg(signature(&keys));
        for line in &op.lines {
            inv.arg(opt(line.limit_nanos))
                .arg(opt(line.limit_tokens))
                .arg(opt(line.limit_requests))
                .arg(u8::from(line.enforce) + 2 * u8::from(line.suspend_on_exceed))
                .arg(opt(line.expire_at_ms));
        }
        let items = self.run("lease", &inv).await?;
        let bad = || StoreError::Corrupt(format!("lease: unexpected reply {items:?}"));
        match items.first().and_then(text).as_deref() {
            Some("ok") => amounts_at(&items, 1)
                .map(LeaseOutcome::Granted)
                .ok_or_else(bad),
            Some("gone") => Ok(LeaseOutcome::Gone),
            Some("moved") => Ok(LeaseOutcome::Moved),
            Some("deny") => {
                let (line, reason, counters) =
                    refusal_at(&items, counters_at_lease).ok_or_else(bad)?;
                Ok(LeaseOutcome::Refused {
                    line,
                    reason,
                    counters,
                })
            }
            _ => Err(bad()),
        }
    }

    pub(super) async fn take_lease(
        &self,
        op: &LeaseTakeOp,
    ) -> Result<Option<LeaseAmounts>, StoreError> {
        let tag = tag_of(&op.lease_id);
        let mut inv = self.lease.prepare_invoke();
        inv.key(self.lease_key(tag, &op.lease_id));
        inv.key(self.lease_set_key(tag));
        inv.arg("take")
            .arg(&op.lease_id)
            .arg(op.now_ms)
            .arg(op.amounts.usd_nanos.max(0))
            .arg(op.amounts.tokens.max(0))
            .arg(op.amounts.requests.max(0))
            .arg(if op.returned { "1" } else { "0" });
        let items = self.run("lease", &inv).await?;
        match items.first().and_then(text).as_deref() {
            Some("ok") => amounts_at(&items, 1)
                .map(Some)
                .ok_or_else(|| StoreError::Corrupt(format!("lease take: {items:?}"))),
            Some("gone") => Ok(None),
            _ => Err(StoreError::Corrupt(format!("lease take: {items:?}"))),
        }
    }

    /// Releases every lease of `tag` whose release time is at or before `now_ms`.
    async fn sweep_leases(&self, tag: &str, now_ms: i64) -> Result<(), StoreError> {
        let prefix = format!("{}:{{{tag}}}:lease:", self.prefix);
        loop {
            let mut inv = self.lease.prepare_invoke();
            inv.key(self.lease_set_key(tag));
            inv.arg("sweep")
                .arg("")
                .arg(now_ms)
                .arg(&prefix)
                .arg(SWEEP_RUN);
            let mut conn = self.conn.clone();
            let released: Value = inv.invoke_async(&mut conn).await.map_err(unavailable)?;
            let released = int(&released)
                .ok_or_else(|| StoreError::Corrupt(format!("lease sweep: {released:?}")))?;
            if usize::try_from(released).unwrap_or(0) < SWEEP_RUN {
                return Ok(());
            }
        }
    }

    pub(super) async fn list_leases(&self, now_ms: i64) -> Result<Vec<LeaseView>, StoreError> {
        let mut conn = self.conn.clone();
        let mut tags: Vec<String> = conn
            .smembers(self.lease_tags_key())
            .await
            .map_err(unavailable)?;
        tags.sort();
        let mut out = Vec::new();
        for tag in tags {
            self.sweep_leases(&tag, now_ms).await?;
            let ids: Vec<String> = conn
                .zrange(self.lease_set_key(&tag), 0, -1)
                .await
                .map_err(unavailable)?;
            let mut views = Vec::with_capacity(ids.len());
            for id in ids {
                let f: HashMap<String, String> = conn
                    .hgetall(self.lease_key(&tag, &id))
                    .await
                    .map_err(unavailable)?;
                // Released between the set's read and this one.
                if f.is_empty() {
                    continue;
                }
                views.push(view_of(id, &f)?);
            }
            views.sort_by(|a, b| a.lease_id.cmp(&b.lease_id));
            out.extend(views);
        }
        Ok(out)
    }
}

fn view_of(lease_id: String, f: &HashMap<String, String>) -> Result<LeaseView, StoreError> {
    let bad = |what: &str| StoreError::Corrupt(format!("lease {lease_id}: field {what}"));
    let n = |k: &str| -> Result<i64, StoreError> {
        f.get(k).and_then(|v| v.parse().ok()).ok_or_else(|| bad(k))
    };
    let meta: LeaseMeta = f
        .get("m")
        .and_then(|m| serde_json::from_str(m).ok())
        .ok_or_else(|| bad("m"))?;
    Ok(LeaseView {
        meta,
        held: LeaseAmounts {
            usd_nanos: n("u")?,
            tokens: n("t")?,
            requests: n("q")?,
        },
        admit_until_ms: n("a")?,
        release_at_ms: n("r")?,
        returned: f.get("x").is_some_and(|x| x == "1"),
        lease_id,
    })
}
