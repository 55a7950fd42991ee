//! Shared service state handed to every handler.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tollgate_model::pricing::UnknownModelPolicy;

use crate::admission::AdmissionSettings;
use crate::alerts::anomaly_task::AnomalySettings;
use crate::alerts::worker::{AlertHub, DeliverySettings};
use crate::auth::Auth;
use crate::catalog::Catalog;
use crate::store::Store;

/// The clock, injected so tests can move time.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Cached budgets, switches and prices.
    pub catalog: Arc<Catalog>,
    /// Tokens.
    pub auth: Arc<Auth>,
    /// Admission timings.
    pub settings: AdmissionSettings,
    /// Largest request body accepted, bytes.
    pub body_limit_bytes: usize,
    /// The time source.
    pub clock: Clock,
    /// The queue feeding alert delivery (started by `server::run`).
    pub alerts: Arc<AlertHub>,
    /// Alert delivery retries and timeouts, read when delivery starts.
    pub alert_settings: DeliverySettings,
    /// Anomaly detection settings, read when the detector starts and by `GET /v1/anomalies`.
    pub anomaly_settings: Arc<AnomalySettings>,
    /// What admission does with a model no price table knows, unless a budget says.
    pub unknown_model: Arc<UnknownModelPolicy>,
    /// Unpriced models seen and not yet alerted.
    pub unpriced: Arc<crate::unpriced::Sightings>,
}

impl AppState {
    /// State over `store` with the shipped prices and default settings; `refresh_ms` is how
    /// long a cached budget snapshot is trusted.
    pub fn new(store: Arc<dyn Store>, auth: Auth, refresh_ms: u64) -> Result<AppState, String> {
        let shipped = tollgate_model::PriceTable::shipped().map_err(|e| e.to_string())?;
        let imported = crate::prices::imported_layer()?;
        Ok(AppState {
            store,
            catalog: Arc::new(Catalog::with_imported(
                shipped,
                imported,
                std::time::Duration::from_millis(refresh_ms),
            )),
            auth: Arc::new(auth),
            settings: AdmissionSettings::default(),
            body_limit_bytes: 1 << 20,
            clock: Arc::new(|| DateTime::<Utc>::from(std::time::SystemTime::now())),
            alerts: Arc::new(AlertHub::default()),
            alert_settings: DeliverySettings::default(),
            anomaly_settings: Arc::new(AnomalySettings::default()),
            unknown_model: Arc::new(UnknownModelPolicy::default()),
            unpriced: Arc::default(),
        })
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }
}
