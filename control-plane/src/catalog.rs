//! The service's view of budgets, emergency switches and prices, cached from the store.
//!
//! Admission reads budgets on every call, so they are not fetched from the store each time:
//! a snapshot is kept and reloaded when it is older than the refresh interval, or at once
//! after a write through this replica. Other replicas see a change within one interval.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tollgate_model::PriceTable;
use tollgate_model::budget::Budget;
use tollgate_model::pricing::{ModelDto, ModelPrices};
use tollgate_model::scope::Scope;
use tollgate_model::wire::v1::PriceOverrides;

use crate::store::{Collection, Store, StoreError, Versioned};

/// What an emergency switch does to every request carrying its scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SwitchMode {
    /// Refuse every request.
    DenyAll,
    /// Send every request to `model` instead.
    DowngradeAll,
}

/// A stored emergency switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Switch {
    /// The mode.
    pub mode: SwitchMode,
    /// The model every request is sent to (`downgrade_all` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Why (free text, for the audit trail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One consistent view of the configuration admission needs.
#[derive(Debug)]
pub struct Snapshot {
    /// Valid budgets, by id.
    pub budgets: Vec<Arc<Budget>>,
    /// Active switches, by scope.
    pub switches: HashMap<Scope, Switch>,
    /// Shipped prices, the imported layer under them, and the overrides over both.
    pub prices: Arc<PriceTable>,
    /// What the filter's shipped table lacks: the imported layer's entries and the overrides
    /// (over them), versioned, as the filter fetches them (`GET /v1/admission/prices`).
    pub overrides: Arc<PriceOverrides>,
    /// `overrides` as JSON, serialized once per snapshot: the imported table makes it a few
    /// hundred kilobytes, which every filter VM fetches.
    pub overrides_json: bytes::Bytes,
}

/// How long admission keeps serving the last snapshot after a failed reload before it tries
/// the store again: during an outage every reserve would otherwise queue behind a reload
/// that waits out the store's timeout.
const RELOAD_BACKOFF: Duration = Duration::from_secs(1);

/// The cached snapshot and how to refresh it.
pub struct Catalog {
    /// The shipped table alone: Tollgate's curated entries.
    curated: PriceTable,
    /// The shipped table with the imported layer under it.
    shipped: PriceTable,
    /// The imported layer's entries that took (by id).
    imported: Arc<BTreeMap<String, ModelDto>>,
    refresh: Duration,
    cached: RwLock<Cached>,
    reload: tokio::sync::Mutex<()>,
}

/// The last snapshot loaded (kept through `invalidate`, for admission during an outage),
/// when it was loaded (`None` once invalidated: stale), and when a reload last failed.
#[derive(Default)]
struct Cached {
    snap: Option<Arc<Snapshot>>,
    /// The stored documents `snap` was built from.
    docs: Option<Arc<Docs>>,
    loaded_at: Option<Instant>,
    failed_at: Option<Instant>,
}

/// The stored documents a snapshot is built from, each collection by id order. A reload that
/// reads the same documents keeps the snapshot it has: building one merges the price
/// overrides over the whole shipped table and serializes the filter's overrides (a few
/// hundred kilobytes), milliseconds of CPU that every replica would otherwise spend each
/// `budget_refresh_ms` with nothing changed.
#[derive(PartialEq, Eq)]
struct Docs {
    prices: Vec<(String, Versioned)>,
    profiles: Vec<(String, Versioned)>,
    budgets: Vec<(String, Versioned)>,
    switches: Vec<(String, Versioned)>,
}

impl Docs {
    async fn read(store: &dyn Store) -> Result<Docs, StoreError> {
        Ok(Docs {
            prices: store.list_docs(Collection::Prices).await?,
            profiles: store.list_docs(Collection::Profiles).await?,
            budgets: store.list_docs(Collection::Budgets).await?,
            switches: store.list_docs(Collection::Switches).await?,
        })
    }
}

impl Catalog {
    /// A catalog over the shipped price table, reloading after `refresh`.
    pub fn new(shipped: PriceTable, refresh: Duration) -> Catalog {
        Catalog::with_imported(shipped, Vec::new(), refresh)
    }

    /// A catalog over the shipped table with an imported layer under it (`prices::
    /// imported_layer`): the layer's entries whose name the shipped table carries are left out.
    pub fn with_imported(
        shipped: PriceTable,
        imported: Vec<ModelPrices>,
        refresh: Duration,
    ) -> Catalog {
        let mut base = shipped.clone();
        let imported = base.add_layer(imported);
        Catalog {
            curated: shipped,
            shipped: base,
            imported: Arc::new(imported.into_iter().map(|m| (m.id.clone(), m)).collect()),
            refresh,
            cached: RwLock::default(),
            reload: tokio::sync::Mutex::new(()),
        }
    }

    /// The shipped table with the imported layer (without overrides).
    pub fn shipped(&self) -> &PriceTable {
        &self.shipped
    }

    /// The shipped table alone (Tollgate's curated entries, without the imported layer).
    pub fn curated(&self) -> &PriceTable {
        &self.curated
    }

    /// The imported layer's entries, by id.
    pub fn imported(&self) -> &BTreeMap<String, ModelDto> {
        &self.imported
    }

    fn fresh(&self) -> Option<Arc<Snapshot>> {
        let c = self.cached.read().unwrap_or_else(|e| e.into_inner());
        c.snap
            .clone()
            .filter(|_| c.loaded_at.is_some_and(|at| at.elapsed() < self.refresh))
    }

    /// Forgets the snapshot: the next call reloads (after a write through this replica).
    pub fn invalidate(&self) {
        self.cached
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .loaded_at = None;
    }

    /// The current snapshot, reloading it from `store` when stale.
    pub async fn snapshot(&self, store: &dyn Store) -> Result<Arc<Snapshot>, StoreError> {
        if let Some(s) = self.fresh() {
            return Ok(s);
        }
        // One reload at a time; callers that waited find it done.
        let _one = self.reload.lock().await;
        if let Some(s) = self.fresh() {
            return Ok(s);
        }
        let loaded = Docs::read(store).await.map(|docs| {
            let previous = {
                let c = self.cached.read().unwrap_or_else(|e| e.into_inner());
                c.snap.clone().zip(c.docs.clone())
            };
            match previous {
                Some((snap, old)) if *old == docs => (snap, old),
                _ => (Arc::new(self.build(&docs)), Arc::new(docs)),
            }
        });
        let (snap, docs) = match loaded {
            Ok(pair) => pair,
            Err(e) => {
                self.cached
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .failed_at = Some(Instant::now());
                return Err(e);
            }
        };
        *self.cached.write().unwrap_or_else(|e| e.into_inner()) = Cached {
            snap: Some(snap.clone()),
            docs: Some(docs),
            loaded_at: Some(Instant::now()),
            failed_at: None,
        };
        Ok(snap)
    }

    /// The snapshot admission decides by: [`Catalog::snapshot`], or, while the store cannot
    /// be read, the last one loaded (so that the budgets' own fail modes can still decide;
    /// see `Admission::store_down`). Reloads are retried at most every `RELOAD_BACKOFF` (1 s)
    /// meanwhile. Only before any snapshot was ever loaded does the store error stand.
    pub async fn snapshot_for_admission(
        &self,
        store: &dyn Store,
    ) -> Result<Arc<Snapshot>, StoreError> {
        // A successful load clears `failed_at`, so a fresh snapshot is never backed off from.
        let backing_off = {
            let c = self.cached.read().unwrap_or_else(|e| e.into_inner());
            c.snap
                .clone()
                .filter(|_| c.failed_at.is_some_and(|at| at.elapsed() < RELOAD_BACKOFF))
        };
        if let Some(s) = backing_off {
            return Ok(s);
        }
        match self.snapshot(store).await {
            Err(e @ (StoreError::Unavailable(_) | StoreError::Full(_))) => {
                let last = self
                    .cached
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .snap
                    .clone();
                let Some(s) = last else { return Err(e) };
                metrics::counter!("tollgate_catalog_stale_total").increment(1);
                tracing::warn!(error = %e, "store unreadable: admission uses the last budgets loaded");
                Ok(s)
            }
            other => other,
        }
    }

    /// The snapshot of `docs`.
    fn build(&self, docs: &Docs) -> Snapshot {
        let (prices, overrides) = self.merge_prices(&docs.prices);
        let mut budgets = Vec::new();
        let profiles = crate::profiles::from_docs(&docs.profiles);
        for (id, doc) in &docs.budgets {
            // Stored specs were validated on write; one that no longer validates (a newer
            // build's field, say, or a profile gone) is skipped loudly rather than taking
            // admission down. Profiled budgets are merged over their profile here, so a
            // changed profile reaches every budget that names it.
            match crate::profiles::resolve_json(&doc.json, &profiles) {
                Ok(r) => {
                    let mut b = r.budget;
                    // A budget limited to an alias (`claude-sonnet-4-5-20250929`) is limited
                    // to the model it names, as admission compares price-table ids.
                    if let Some(id) = b.model.as_deref().and_then(|m| prices.canonical_id(m)) {
                        b.model = Some(id.to_owned());
                    }
                    budgets.push(Arc::new(b));
                }
                Err(e) => tracing::error!(budget = %id, error = %e, "stored budget skipped"),
            }
        }
        let mut switches = HashMap::new();
        for (scope, doc) in &docs.switches {
            match (
                scope.parse::<Scope>(),
                serde_json::from_str::<Switch>(&doc.json),
            ) {
                (Ok(s), Ok(sw)) => {
                    switches.insert(s, sw);
                }
                _ => tracing::error!(scope = %scope, "stored switch skipped"),
            }
        }
        Snapshot {
            budgets,
            switches,
            prices: Arc::new(prices),
            overrides_json: serde_json::to_vec(&overrides)
                .map(bytes::Bytes::from)
                .unwrap_or_default(),
            overrides: Arc::new(overrides),
        }
    }

    /// The shipped table with the stored price overrides merged over it, and the overrides
    /// that merged, versioned by their content (every replica computes the same version).
    fn merge_prices(&self, docs: &[(String, Versioned)]) -> (PriceTable, PriceOverrides) {
        let mut prices = self.shipped.clone();
        let mut docs: Vec<&(String, Versioned)> = docs.iter().collect();
        docs.sort_by(|a, b| a.0.cmp(&b.0));
        // The filter's shipped table lacks the imported layer's entries; an override of the
        // same id replaces one.
        let mut served: BTreeMap<String, ModelDto> = (*self.imported).clone();
        for (model, doc) in docs {
            match ModelPrices::from_entry_json(&doc.json)
                .map_err(|e| e.to_string())
                .and_then(|m| {
                    let entry = m.entry().clone();
                    prices.upsert(m).map(|()| entry).map_err(|e| e.to_string())
                }) {
                Ok(entry) => {
                    served.insert(entry.id.clone(), entry);
                }
                Err(e) => tracing::error!(model = %model, error = %e, "price override skipped"),
            }
        }
        // FNV-1a over the entries served, by id: cheap, stable across replicas and releases.
        let mut version: u64 = 0xcbf2_9ce4_8422_2325;
        let models: Vec<ModelDto> = served.into_values().collect();
        for entry in &models {
            let text = serde_json::to_string(entry).unwrap_or_default();
            for byte in text.bytes().chain([0]) {
                version = (version ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        let overrides = PriceOverrides {
            schema_version: tollgate_model::pricing::SCHEMA_VERSION,
            table_version: format!("{version:016x}"),
            currency: "USD".to_owned(),
            default_max_output_tokens: self.shipped.default_max_output_tokens(""),
            models,
        };
        (prices, overrides)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::Expect;
    use crate::store::memory::MemoryStore;

    /// A reload that reads the same documents keeps the snapshot (the same `Arc`); a
    /// written document, from this replica or another, is in the next one.
    #[tokio::test]
    async fn a_reload_keeps_the_snapshot_until_a_document_changes() {
        let store = MemoryStore::new();
        let catalog = Catalog::new(PriceTable::shipped().unwrap(), Duration::ZERO);
        let first = catalog.snapshot(&store).await.unwrap();
        let again = catalog.snapshot(&store).await.unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "nothing changed: same snapshot"
        );
        assert!(first.budgets.is_empty());

        // Written behind this replica's back (no invalidate): seen at the next reload.
        let budget = r#"{"id":"b1","scopes":["team:a"],"limit_usd":"5","period":"monthly"}"#;
        store
            .put_doc(Collection::Budgets, "b1", budget, Expect::Absent)
            .await
            .unwrap()
            .unwrap();
        let changed = catalog.snapshot(&store).await.unwrap();
        assert!(!Arc::ptr_eq(&first, &changed));
        assert_eq!(changed.budgets.len(), 1);
        assert!(Arc::ptr_eq(
            &changed,
            &catalog.snapshot(&store).await.unwrap()
        ));
    }
}
