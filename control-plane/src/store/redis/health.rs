//! What the Redis store checks about the servers it is given: that no primary evicts keys
//! (an evicted window or reservation record is money forgotten: spend that no budget counts
//! any more) and that they persist with AOF (without it a restart loses what was written
//! since the last RDB snapshot). `tollgate serve` refuses to start on an evicting primary
//! unless `redis_allow_eviction` says otherwise; `/readyz` stays false until the check has
//! passed once, so a Redis that was down at start is checked when it comes up.

use std::sync::atomic::{AtomicBool, Ordering};

use redis::Value;

use super::{RedisStore, unavailable};
use crate::store::StoreError;

/// One primary's settings that decide whether it can lose counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    /// `host:port` as the client reached it (`primary` for a single node).
    pub node: String,
    /// `maxmemory-policy`: only `noeviction` never drops a key.
    pub maxmemory_policy: String,
    /// `maxmemory` in bytes (0 = no limit).
    pub maxmemory_bytes: u64,
    /// Whether the append-only file is on.
    pub aof_enabled: bool,
}

/// Why the store will not run on this Redis.
#[derive(Debug, thiserror::Error)]
pub enum ServerCheckError {
    /// Redis could not be asked.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A primary may evict keys.
    #[error(
        "Redis {node} has maxmemory-policy {policy}: under memory pressure it evicts budget \
         counters, reservations and ledger records, which is spend no budget counts any more. \
         Set `maxmemory-policy noeviction` (full memory then refuses writes with a clear 503), \
         or set redis_allow_eviction = true to run anyway (docs/redis-production.md)"
    )]
    Evicts {
        /// The primary.
        node: String,
        /// Its policy.
        policy: String,
    },
}

/// Whether the servers have been checked, and what to do about an evicting one.
#[derive(Debug, Default)]
pub(super) struct Guard {
    allow_eviction: bool,
    passed: AtomicBool,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

/// `INFO`'s answer per node: one text from a single node, a map node → text from a cluster
/// (the client sends `INFO` to every primary).
fn per_node(v: &Value) -> Vec<(String, String)> {
    match v {
        Value::Map(pairs) => pairs
            .iter()
            .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
            .collect(),
        other => text(other)
            .map(|t| vec![("primary".to_owned(), t)])
            .unwrap_or_default(),
    }
}

fn facts_of(node: String, info: &str) -> NodeFacts {
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    NodeFacts {
        node,
        maxmemory_policy: field("maxmemory_policy"),
        maxmemory_bytes: field("maxmemory").parse().unwrap_or(0),
        aof_enabled: field("aof_enabled") == "1",
    }
}

impl RedisStore {
    /// Runs even on an evicting Redis (logged loudly at every check; `tollgate serve` sets
    /// this from `redis_allow_eviction`).
    pub fn with_eviction_allowed(mut self, allow: bool) -> RedisStore {
        self.guard = Guard {
            allow_eviction: allow,
            passed: AtomicBool::new(false),
        };
        self
    }

    /// Each primary's eviction policy, memory limit and AOF switch (`INFO memory` and
    /// `INFO persistence`; managed services that refuse `CONFIG GET` still answer `INFO`).
    pub async fn server_facts(&self) -> Result<Vec<NodeFacts>, StoreError> {
        let mut conn = self.conn.clone();
        let v: Value = redis::cmd("INFO")
            .arg("memory")
            .arg("persistence")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let nodes = per_node(&v);
        if nodes.is_empty() {
            return Err(StoreError::Corrupt(format!("INFO: unexpected reply {v:?}")));
        }
        Ok(nodes
            .into_iter()
            .map(|(node, info)| facts_of(node, &info))
            .collect())
    }

    /// Checks every primary: an evicting one is refused (unless allowed, then logged as an
    /// error), one without AOF is logged as a warning. Sets `tollgate_redis_evicting_primaries`.
    pub async fn check_server(&self) -> Result<Vec<NodeFacts>, ServerCheckError> {
        let facts = self.server_facts().await?;
        let evicting: Vec<&NodeFacts> = facts
            .iter()
            .filter(|f| f.maxmemory_policy != "noeviction")
            .collect();
        #[allow(clippy::cast_precision_loss)] // a handful of nodes
        metrics::gauge!("tollgate_redis_evicting_primaries").set(evicting.len() as f64);
        for f in &evicting {
            let e = ServerCheckError::Evicts {
                node: f.node.clone(),
                policy: f.maxmemory_policy.clone(),
            };
            if !self.guard.allow_eviction {
                return Err(e);
            }
            tracing::error!(node = %f.node, policy = %f.maxmemory_policy,
                "redis_allow_eviction is set, running anyway: {e}");
        }
        for f in facts.iter().filter(|f| !f.aof_enabled) {
            tracing::warn!(node = %f.node,
                "Redis runs without AOF (appendonly no): a restart loses budget counters, \
                 reservations and ledger records written since its last RDB snapshot \
                 (docs/redis-production.md)");
        }
        self.guard.passed.store(true, Ordering::Relaxed);
        Ok(facts)
    }

    /// For `/readyz`: Ok once a check has passed; otherwise runs it (a Redis that was down
    /// at start is checked when it answers), an evicting primary making the store not ready.
    pub(super) async fn checked(&self) -> Result<(), StoreError> {
        if self.guard.passed.load(Ordering::Relaxed) {
            return Ok(());
        }
        match self.check_server().await {
            Ok(_) => Ok(()),
            Err(ServerCheckError::Store(e)) => Err(e),
            Err(e @ ServerCheckError::Evicts { .. }) => Err(StoreError::Unavailable(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_fields_are_read_per_node() {
        let info = "# Memory\r\nmaxmemory:1048576\r\nmaxmemory_human:1.00M\r\n\
                    maxmemory_policy:allkeys-lru\r\n# Persistence\r\naof_enabled:0\r\n";
        let v = Value::Map(vec![(
            Value::BulkString(b"127.0.0.1:7000".to_vec()),
            Value::BulkString(info.as_bytes().to_vec()),
        )]);
        let nodes = per_node(&v);
        let f = facts_of(nodes[0].0.clone(), &nodes[0].1);
        assert_eq!(
            f,
            NodeFacts {
                node: "127.0.0.1:7000".into(),
                maxmemory_policy: "allkeys-lru".into(),
                maxmemory_bytes: 1_048_576,
                aof_enabled: false,
            }
        );
    }
}
