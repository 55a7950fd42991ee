//! `tollgate serve`: load the config, pick the store, bind, serve until SIGTERM/SIGINT, then
//! let in-flight requests finish.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};
use crate::state::AppState;
use crate::store::Store;
use crate::store::memory::MemoryStore;
use crate::store::redis::{RedisConfig, RedisStore, ServerCheckError};

fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// Refuses to start on a Redis that may evict keys (unless `redis_allow_eviction`); a Redis
/// that cannot be reached yet is checked by `/readyz` once it answers.
async fn check_redis(store: &RedisStore) -> Result<(), String> {
    match store.check_server().await {
        Ok(facts) => {
            for f in facts {
                tracing::info!(node = %f.node, maxmemory_policy = %f.maxmemory_policy,
                    maxmemory_bytes = f.maxmemory_bytes, aof = f.aof_enabled, "redis primary");
            }
            Ok(())
        }
        Err(ServerCheckError::Store(e)) => {
            tracing::warn!(error = %e,
                "Redis not reachable at start: serving 503 until it is; its eviction policy is checked then (/readyz)");
            Ok(())
        }
        Err(e @ ServerCheckError::Evicts { .. }) => Err(e.to_string()),
    }
}

/// Runs the service.
pub async fn serve(config_path: Option<PathBuf>) -> Result<(), String> {
    let config = Config::load(config_path.as_deref(), |k| std::env::var(k).ok())
        .map_err(|e| e.to_string())?;
    init_logs(config.log_format);
    let auth = config.auth().map_err(|e| e.to_string())?;
    if auth.is_disabled() {
        tracing::warn!("authentication is DISABLED: every caller is admin; local use only");
    }
    let store: Arc<dyn Store> = match config.redis_connect().map_err(|e| e.to_string())? {
        Some(connect) => {
            let s = RedisStore::connect(
                &RedisConfig {
                    url: String::new(),
                    key_prefix: config.redis_key_prefix.clone(),
                    timeout_ms: config.redis_timeout_ms,
                },
                &connect,
            )
            .map_err(|e| e.to_string())?
            .with_ledger_limits(config.ledger.limits())
            .with_eviction_allowed(config.redis_allow_eviction);
            tracing::info!(prefix = %config.redis_key_prefix, mode = ?config.redis_mode, "store: redis");
            check_redis(&s).await?;
            Arc::new(s)
        }
        None => {
            tracing::info!(
                "no Redis URL configured: using the embedded in-memory store (counters are lost on restart; one replica only)"
            );
            Arc::new(MemoryStore::with_ledger_limits(config.ledger.limits()))
        }
    };
    let mut state = AppState::new(store, auth, config.budget_refresh_ms)?;
    state.settings = config.admission();
    crate::unpriced::check_policy(&config.unknown_model, state.catalog.shipped())
        .map_err(|e| format!("config error, key 'unknown_model': {e}"))?;
    state.unknown_model = Arc::new(config.unknown_model.clone());
    state.body_limit_bytes = config.body_limit_bytes;
    state.alert_settings = config.alerts;
    state.anomaly_settings = std::sync::Arc::new(config.anomaly.clone());
    let listener = TcpListener::bind(&config.listen)
        .await
        .map_err(|e| format!("bind {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, "tollgate control plane listening");
    crate::server::run(listener, state, shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}
