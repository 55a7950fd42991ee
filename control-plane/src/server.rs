//! The HTTP server: `run(listener, state, shutdown)` serves until `shutdown` resolves, then
//! lets in-flight requests finish (tests bind port 0 and pass their own shutdown future).
//! Alert delivery, the forecast refresh (gauges, run-out alerts) and the anomaly detector
//! run beside it as background tasks, stopped when serving ends.

use std::future::Future;

use tokio::net::TcpListener;

use crate::state::AppState;

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
    let app = crate::api::router(state);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    for task in [delivery, detector].into_iter().flatten() {
        task.abort();
    }
    forecasts.abort();
    served
}
