//! The HTTP server: `run(listener, state, shutdown)` serves until `shutdown` resolves, then
//! lets in-flight requests finish (tests bind port 0 and pass their own shutdown future).
//! Alert delivery, the forecast refresh (gauges, run-out alerts), the anomaly detector and
//! the ledger's upkeep (`Store::ledger_upkeep`, every second) and the lease sweep
//! (`api::lease::start`) run beside it as background tasks, stopped when serving ends.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::state::AppState;
use crate::store::Store;

/// Serves the API on `listener` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::metrics::install();
    let delivery = crate::alerts::worker::start(&state);
    let forecasts = crate::api::forecasts::start(&state);
    let detector = crate::alerts::anomaly_task::start(&state);
    let upkeep = tokio::spawn(ledger_upkeep(state.store.clone()));
    let lease_sweep = crate::api::lease::start(&state);
    let app = crate::api::router(state);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    for task in [delivery, detector].into_iter().flatten() {
        task.abort();
    }
    forecasts.abort();
    upkeep.abort();
    lease_sweep.abort();
    served
}

/// How often the ledger's upkeep runs: the rollups' lag behind the records between reads
/// (every read catches up first) and the most the record streams grow past their limits.
const UPKEEP_EVERY: Duration = Duration::from_secs(1);

async fn ledger_upkeep(store: Arc<dyn Store>) {
    let mut tick = tokio::time::interval(UPKEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = store.ledger_upkeep().await {
            metrics::counter!("tollgate_ledger_upkeep_errors_total").increment(1);
            tracing::warn!(error = %e, "ledger upkeep failed; retried in a second");
        }
    }
}
