//! The service's view of budgets, emergency switches and prices, cached from the store.
//!
//! Admission reads budgets on every call, so they are not fetched from the store each time:
//! a snapshot is kept and reloaded when it is older than the refresh interval, or at once
//! after a write through this replica. Other replicas see a change within one interval.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tollgate_model::PriceTable;
use tollgate_model::budget::Budget;
use tollgate_model::pricing::ModelPrices;
use tollgate_model::scope::Scope;

use crate::store::{Collection, Store, StoreError};

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
    /// Shipped prices with the overrides merged over them.
    pub prices: Arc<PriceTable>,
}

/// The cached snapshot and how to refresh it.
pub struct Catalog {
    shipped: PriceTable,
    refresh: Duration,
    cached: RwLock<Option<(Instant, Arc<Snapshot>)>>,
    reload: tokio::sync::Mutex<()>,
}

impl Catalog {
    /// A catalog over the shipped price table, reloading after `refresh`.
    pub fn new(shipped: PriceTable, refresh: Duration) -> Catalog {
        Catalog {
            shipped,
            refresh,
            cached: RwLock::new(None),
            reload: tokio::sync::Mutex::new(()),
        }
    }

    /// The shipped table (without overrides).
    pub fn shipped(&self) -> &PriceTable {
        &self.shipped
    }

    fn fresh(&self) -> Option<Arc<Snapshot>> {
        let guard = self.cached.read().unwrap_or_else(|e| e.into_inner());
        guard
            .as_ref()
            .filter(|(at, _)| at.elapsed() < self.refresh)
            .map(|(_, s)| s.clone())
    }

    /// Forgets the snapshot: the next call reloads (after a write through this replica).
    pub fn invalidate(&self) {
        *self.cached.write().unwrap_or_else(|e| e.into_inner()) = None;
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
        let snap = Arc::new(self.load(store).await?);
        *self.cached.write().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), snap.clone()));
        Ok(snap)
    }

    async fn load(&self, store: &dyn Store) -> Result<Snapshot, StoreError> {
        let prices = self.load_prices(store).await?;
        let mut budgets = Vec::new();
        let profiles = crate::profiles::load(store).await?;
        for (id, doc) in store.list_docs(Collection::Budgets).await? {
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
        for (scope, doc) in store.list_docs(Collection::Switches).await? {
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
        Ok(Snapshot {
            budgets,
            switches,
            prices: Arc::new(prices),
        })
    }

    /// The shipped table with the stored price overrides merged over it.
    async fn load_prices(&self, store: &dyn Store) -> Result<PriceTable, StoreError> {
        let mut prices = self.shipped.clone();
        for (model, doc) in store.list_docs(Collection::Prices).await? {
            match ModelPrices::from_entry_json(&doc.json)
                .map_err(|e| e.to_string())
                .and_then(|m| prices.upsert(m).map_err(|e| e.to_string()))
            {
                Ok(()) => {}
                Err(e) => tracing::error!(model = %model, error = %e, "price override skipped"),
            }
        }
        Ok(prices)
    }
}
