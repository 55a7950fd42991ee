//! A real control plane on a free port, with a clock the test moves, and an HTTP client.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tollgate_control_plane::auth::Auth;
use tollgate_control_plane::server::run;
use tollgate_control_plane::state::AppState;
use tollgate_control_plane::store::Store;
use tollgate_control_plane::store::memory::MemoryStore;
use tollgate_control_plane::store::redis::{RedisConfig, RedisStore};

pub const ADMIN: &str = "admin-secret";
pub const DATAPLANE: &str = "dataplane-secret";
/// 2027-01-15T10:00:00Z: mid-month, mid-day.
pub const T0_MS: i64 = 1_800_000_000_000;

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub now_ms: Arc<AtomicI64>,
    /// The alert queue of the app's state (tests wait on its sweeps).
    pub alerts: Arc<tollgate_control_plane::alerts::worker::AlertHub>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub fn redis_store(url: &str) -> Arc<dyn Store> {
    Arc::new(
        RedisStore::new(&RedisConfig {
            url: url.to_owned(),
            key_prefix: "tg".into(),
            timeout_ms: 1_000,
        })
        .unwrap(),
    )
}

impl TestApp {
    pub async fn memory() -> TestApp {
        Self::start(Arc::new(MemoryStore::new()), |_| {}).await
    }

    pub async fn start(store: Arc<dyn Store>, tweak: impl FnOnce(&mut AppState)) -> TestApp {
        let auth = Auth::new(
            vec![ADMIN.into(), "second-admin".into()],
            vec![DATAPLANE.into()],
        );
        // Refresh 0: every call sees the store's current budgets (writes go through it anyway).
        let mut state = AppState::new(store, auth, 0).unwrap();
        let now_ms = Arc::new(AtomicI64::new(T0_MS));
        let clock = now_ms.clone();
        state.clock = Arc::new(move || {
            DateTime::<Utc>::from_timestamp_millis(clock.load(Ordering::SeqCst)).unwrap()
        });
        state.body_limit_bytes = 1 << 20;
        tweak(&mut state);
        let alerts = state.alerts.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(run(listener, state, async {
            let _ = rx.await;
        }));
        TestApp {
            base,
            http: reqwest::Client::new(),
            now_ms,
            alerts,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn advance_ms(&self, ms: i64) {
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(ADMIN)
    }

    pub async fn create_budget(&self, spec: Value) -> Value {
        let r = self
            .admin(reqwest::Method::POST, "/v1/budgets")
            .json(&spec)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 201, "{body}");
        body
    }

    /// `GET /v1/budgets/{id}`: the budget and its current window's usage.
    pub async fn budget(&self, id: &str) -> Value {
        self.admin(reqwest::Method::GET, &format!("/v1/budgets/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// POSTs a reserve; returns (status, body).
    pub async fn reserve(&self, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url("/v1/admission/reserve"))
            .bearer_auth(DATAPLANE)
            .json(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    pub async fn settle(&self, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url("/v1/admission/settle"))
            .bearer_auth(DATAPLANE)
            .json(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A model the control plane's table lacks but the filter priced (a newer filter's table):
/// its reservations and settlements keep the filter's cost, so tests of admission's
/// mechanics choose their amounts.
pub const FILTER_PRICED: &str = "model-only-the-filter-prices";

pub fn reserve_req(id: &str, scopes: &[&str], model: &str, cost: i64) -> Value {
    json!({
        "request_id": id,
        "scopes": scopes,
        "model": model,
        "provider": "openai",
        "estimated_cost": cost,
        "estimated_input_tokens": 1000,
        "max_output_tokens": 1000,
        "at_unix_ms": T0_MS,
    })
}

pub fn settlement(id: &str, scopes: &[&str], model: &str, cost: i64, reserved: bool) -> Value {
    json!({
        "request_id": id,
        "scopes": scopes,
        "model": model,
        "provider": "openai",
        "cost": cost,
        "usage": { "uncached_input_tokens": 100, "output_tokens": 50 },
        "reserved": reserved,
        "at_unix_ms": T0_MS,
    })
}
