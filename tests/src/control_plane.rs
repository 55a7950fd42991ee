//! The real control plane, in-process, on a loopback port that survives a stop: tests stop it
//! ("control plane down") and start it again on the same port, with the same store, so Envoy's
//! `tollgate_control_plane` cluster finds it again.
//!
//! It serves exactly what `tollgate_control_plane::server::run` serves (the same router, the
//! metrics recorder, graceful shutdown), plus one outer layer that records every settle batch
//! the filter posts. The batch is the only place the filter's own figures are visible: the
//! charge per request and the `estimated` flag, which the store does not keep. Tests compare
//! them with what the budgets were charged, and replay them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use axum::body::Body;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tollgate_control_plane::admission::AdmissionSettings;
use tollgate_control_plane::api::views::{BudgetView, UsageView};
use tollgate_control_plane::auth::Auth;
use tollgate_control_plane::state::AppState;
use tollgate_control_plane::store::memory::MemoryStore;
use tollgate_control_plane::store::redis::{RedisConfig, RedisStore};
use tollgate_control_plane::store::{AlertEvent, Store};
use tollgate_model::wire::v1::{SETTLE_PATH, SettleBatch, SettleResponse, Settlement};

/// The admin token every test control plane accepts.
pub const ADMIN_TOKEN: &str = "e2e-admin-token";
/// The data-plane token every test control plane accepts (the filter's `control_plane.token`).
pub const DATAPLANE_TOKEN: &str = "e2e-dataplane-token";

/// Largest settle body the recorder reads (the API's own limit is 1 MiB).
const RECORD_LIMIT_BYTES: usize = 4 << 20;

/// How long tests wait for settlements: they travel in batches on each Envoy worker's tick.
pub const SETTLE_WAIT: Duration = Duration::from_secs(10);

/// How long a Redis command may take before the store answers 503.
const REDIS_TIMEOUT_MS: u64 = 1_000;

/// Which store the control plane keeps its counters in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// The embedded in-memory store (kept across stop/start: the test holds it).
    Memory,
    /// A Redis store at this URL.
    Redis(String),
}

type Recorded = Arc<Mutex<Vec<SettleBatch>>>;

/// A control plane for one test. Stops (without waiting) on drop.
pub struct ControlPlane {
    addr: SocketAddr,
    store: Arc<dyn Store>,
    recorded: Recorded,
    settings: AdmissionSettings,
    http: reqwest::Client,
    running: Option<(oneshot::Sender<()>, JoinHandle<std::io::Result<()>>)>,
}

impl ControlPlane {
    /// Starts one on a free loopback port.
    pub async fn start(store: StoreChoice) -> anyhow::Result<ControlPlane> {
        ControlPlane::start_with(store, AdmissionSettings::default()).await
    }

    /// Starts one with these admission timings (short lease and reservation lifetimes, for
    /// tests of what expires).
    pub async fn start_with(
        store: StoreChoice,
        settings: AdmissionSettings,
    ) -> anyhow::Result<ControlPlane> {
        let store: Arc<dyn Store> = match store {
            StoreChoice::Memory => Arc::new(MemoryStore::new()),
            StoreChoice::Redis(url) => Arc::new(
                RedisStore::new(&RedisConfig {
                    url,
                    key_prefix: "tg".into(),
                    timeout_ms: REDIS_TIMEOUT_MS,
                })
                .map_err(|e| anyhow!("redis store: {e}"))?,
            ),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let mut cp = ControlPlane {
            addr: listener.local_addr()?,
            store,
            recorded: Recorded::default(),
            settings,
            http: reqwest::Client::new(),
            running: None,
        };
        cp.serve(listener)?;
        Ok(cp)
    }

    /// Its port (what `GatewayConfig::loopback` takes).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Whether it is serving.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Stops serving: no new connections, in-flight requests finish, the port is released.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(());
            task.await.context("control plane task")??;
        }
        Ok(())
    }

    /// Serves again on the same port, with the same store (budgets and counters kept).
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        if self.running.is_some() {
            bail!("the control plane is already running");
        }
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .with_context(|| format!("binding {} again", self.addr))?;
        self.serve(listener)
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
        let auth = Auth::new(vec![ADMIN_TOKEN.into()], vec![DATAPLANE_TOKEN.into()]);
        // Refresh 0: admission always sees the budgets a test has just written.
        let mut state = AppState::new(self.store.clone(), auth, 0).map_err(|e| anyhow!(e))?;
        state.settings = self.settings;
        let recorded = self.recorded.clone();
        // What `server::run` does, with the recorder as the outermost layer: alerts are
        // delivered to the channels a test creates (the forecast and anomaly tasks are left
        // out: tests ask the API, which computes both on demand).
        tollgate_control_plane::metrics::install();
        let delivery = tollgate_control_plane::alerts::worker::start(&state);
        let app = tollgate_control_plane::api::router(state).layer(middleware::from_fn(
            move |req: Request, next: Next| record_settle(recorded.clone(), req, next),
        ));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Some(delivery) = delivery {
                delivery.abort();
            }
            served
        });
        self.running = Some((stop, task));
        Ok(())
    }

    fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url()))
            .bearer_auth(ADMIN_TOKEN)
    }

    /// `PUT /v1/prices/{id}` with one price-file entry (JSON).
    pub async fn put_price(&self, entry: &Value) -> anyhow::Result<()> {
        let id = entry["id"].as_str().context("the entry has no id")?;
        let resp = self
            .admin(reqwest::Method::PUT, &format!("/v1/prices/{id}"))
            .header("content-type", "application/json")
            .body(entry.to_string())
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("price {id}: {} {}", resp.status(), resp.text().await?);
        }
        Ok(())
    }

    /// `POST /v1/budgets` with a `BudgetSpec` (JSON); the created budget's view.
    pub async fn create_budget(&self, spec: &Value) -> anyhow::Result<BudgetView> {
        let resp = self
            .admin(reqwest::Method::POST, "/v1/budgets")
            .header("content-type", "application/json")
            .body(spec.to_string())
            .send()
            .await?;
        json_of(resp, 201).await
    }

    /// `GET path` with the admin token: the answer's text (`/metrics`, or JSON to read).
    pub async fn admin_get(&self, path: &str) -> anyhow::Result<String> {
        let resp = self.admin(reqwest::Method::GET, path).send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("GET {path}: {status} {text}");
        }
        Ok(text)
    }

    /// The budget's current window: spent, reserved, requests, tokens, thresholds crossed.
    pub async fn usage(&self, budget_id: &str) -> anyhow::Result<UsageView> {
        let resp = self
            .admin(reqwest::Method::GET, &format!("/v1/budgets/{budget_id}"))
            .send()
            .await?;
        let view: BudgetView = json_of(resp, 200).await?;
        view.usage
            .ok_or_else(|| anyhow!("budget {budget_id}: no usage in the answer"))
    }

    /// Polls the budget until `done` holds for its usage, or fails after `within` with the
    /// last usage seen. Settlements arrive in batches on each worker's tick.
    pub async fn wait_usage(
        &self,
        budget_id: &str,
        within: Duration,
        done: impl Fn(&UsageView) -> bool,
    ) -> anyhow::Result<UsageView> {
        let deadline = Instant::now() + within;
        loop {
            let last = self.usage(budget_id).await;
            if let Ok(u) = &last
                && done(u)
            {
                return last;
            }
            if Instant::now() > deadline {
                bail!("budget {budget_id}: condition not met after {within:?}; last: {last:?}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Polls until the budget's settled spend reaches `spent_nanos`; fails unless it is exactly
    /// that (an overshoot is a double or wrong charge).
    pub async fn wait_spent(&self, budget_id: &str, spent_nanos: i64) -> anyhow::Result<UsageView> {
        let u = self
            .wait_usage(budget_id, SETTLE_WAIT, |u| u.spent_nanos >= spent_nanos)
            .await?;
        if u.spent_nanos != spent_nanos {
            bail!(
                "budget {budget_id}: spent {} nano-USD, expected {spent_nanos}; {u:?}",
                u.spent_nanos
            );
        }
        Ok(u)
    }

    /// `GET /v1/alerts`: threshold alerts, newest first.
    pub async fn alerts(&self) -> anyhow::Result<Vec<AlertEvent>> {
        let resp = self
            .admin(reqwest::Method::GET, "/v1/alerts?limit=1000")
            .send()
            .await?;
        json_of(resp, 200).await
    }

    /// `POST /v1/admission/settle` with the data-plane token, as the filter posts it.
    pub async fn settle(&self, batch: &SettleBatch) -> anyhow::Result<SettleResponse> {
        let resp = self
            .http
            .post(format!("{}{SETTLE_PATH}", self.url()))
            .bearer_auth(DATAPLANE_TOKEN)
            .header("content-type", "application/json")
            .body(serde_json::to_string(batch)?)
            .send()
            .await?;
        json_of(resp, 200).await
    }

    /// Every settle batch received so far (the filter's and the test's own), in order.
    pub fn settle_batches(&self) -> Vec<SettleBatch> {
        self.recorded.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The settlements received so far, one per request id (a retried or replayed batch
    /// repeats them; the last copy wins).
    pub fn settlements_by_request(&self) -> std::collections::BTreeMap<String, Settlement> {
        self.settlements()
            .into_iter()
            .map(|s| (s.request_id.clone(), s))
            .collect()
    }

    /// Every settlement received so far, flattened, in order (replays included).
    pub fn settlements(&self) -> Vec<Settlement> {
        self.settle_batches()
            .into_iter()
            .flat_map(|b| b.settlements)
            .collect()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some((stop, _)) = self.running.take() {
            let _ = stop.send(());
        }
    }
}

/// Records a settle batch that parses (what the API would accept), then passes the request on
/// unchanged. Anything else passes through untouched.
async fn record_settle(recorded: Recorded, req: Request, next: Next) -> Response {
    if req.uri().path() != SETTLE_PATH {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, RECORD_LIMIT_BYTES).await {
        Ok(b) => b,
        Err(_) => return next.run(Request::from_parts(parts, Body::empty())).await,
    };
    if let Ok(batch) = serde_json::from_slice::<SettleBatch>(&bytes)
        && let Ok(mut all) = recorded.lock()
    {
        all.push(batch);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

async fn json_of<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
    want: u16,
) -> anyhow::Result<T> {
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    if status != want {
        bail!("control plane answered {status} (expected {want}): {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("reading {text}"))
}
