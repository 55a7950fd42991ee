//! The whole gateway for one end-to-end test: a real `redis-server` (or the memory store), the
//! control plane on it, the mock provider, and Envoy running the built filter, wired together
//! on free loopback ports. Nothing is shared between tests.

use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};
use tollgate_control_plane::admission::AdmissionSettings;

use crate::control_plane::{ControlPlane, DATAPLANE_TOKEN, StoreChoice};
use crate::envoy::Envoy;
use crate::gateway_config::{GatewayConfig, WasmFilter};
use crate::mock_provider::MockProvider;
use crate::redis_server::{Persistence, RedisServer};
use crate::{bench_bodies, paths};

/// The request header the test filter config takes the `team` scope from.
pub const TEAM_HEADER: &str = "x-tollgate-team";

/// A long streamed chat answer (see [`long_chat_stream`]), written beside the recorded fixtures.
pub const LONG_STREAM_FIXTURE: &str = "chat-long-stream.sse";

/// Where the control plane keeps its counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The in-memory store.
    Memory,
    /// A real `redis-server` started for the test.
    Redis(Persistence),
}

/// What differs between the suite's gateways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackOptions {
    /// The control plane's store.
    pub store: StoreKind,
    /// `control_plane.fail_mode`: `open` or `closed`.
    pub fail_mode: &'static str,
    /// `control_plane.timeout_ms`: generous, because the tests share two cores with builds.
    pub timeout_ms: u64,
    /// Envoy workers.
    pub concurrency: u32,
    /// `control_plane.settle_max_delay_ms`: how long a partial settle batch waits.
    pub settle_max_delay_ms: u64,
    /// The mock refuses what the real providers refuse and answers as each of them
    /// ([`MockProvider::start_strict`]): for clients that call it as they call a provider.
    pub strict_provider: bool,
    /// `model_aliases`: extra model names (Azure deployment names) → price-table ids.
    pub model_aliases: &'static [(&'static str, &'static str)],
    /// `control_plane.price_refresh_ms`: how often the filter fetches the price file.
    pub price_refresh_ms: u64,
    /// The control plane's `lease_ttl` and `reservation_ttl`, ms (`None`: its defaults, 30 s
    /// and 600 s): short ones let a test see a lease expire.
    pub lease_and_reservation_ttl_ms: Option<(i64, i64)>,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            store: StoreKind::Redis(Persistence::None),
            fail_mode: "open",
            timeout_ms: 250,
            concurrency: 1,
            settle_max_delay_ms: 100,
            strict_provider: false,
            model_aliases: &[],
            price_refresh_ms: 10_000,
            lease_and_reservation_ttl_ms: None,
        }
    }
}

/// A running gateway. Field order is drop order: Envoy first, Redis last.
pub struct Stack {
    /// Envoy with the filter.
    pub envoy: Envoy,
    /// The mock provider behind it.
    pub mock: MockProvider,
    /// The control plane the filter reserves with and settles to.
    pub control_plane: ControlPlane,
    /// The control plane's Redis, when the store is Redis.
    pub redis: Option<RedisServer>,
    http: reqwest::Client,
    _fixtures: tempfile::TempDir,
}

/// The plugin configuration under test: the `team` scope from [`TEAM_HEADER`], admission and
/// settlement through the `tollgate_control_plane` cluster, settle batches every 100 ms
/// unless the options say otherwise.
pub fn plugin_config(options: &StackOptions) -> Value {
    let aliases: serde_json::Map<String, Value> = options
        .model_aliases
        .iter()
        .map(|(alias, model)| ((*alias).to_owned(), json!(model)))
        .collect();
    json!({
        "model_aliases": aliases,
        "scopes": { "sources": [{ "kind": "team", "header": TEAM_HEADER }] },
        "control_plane": {
            "cluster": "tollgate_control_plane",
            "token": DATAPLANE_TOKEN,
            "timeout_ms": options.timeout_ms,
            "fail_mode": options.fail_mode,
            "deny_status": 429,
            "settle_max_batch": 200,
            "settle_max_delay_ms": options.settle_max_delay_ms,
            "price_refresh_ms": options.price_refresh_ms
        },
        "response_headers": true
    })
}

impl Stack {
    /// Starts everything; fails (never skips) when a part is missing.
    pub async fn start(options: StackOptions) -> anyhow::Result<Stack> {
        let (redis, store) = match options.store {
            StoreKind::Memory => (None, StoreChoice::Memory),
            StoreKind::Redis(persistence) => {
                let redis = RedisServer::start(persistence).await?;
                let url = redis.url();
                (Some(redis), StoreChoice::Redis(url))
            }
        };
        let mut settings = AdmissionSettings::default();
        if let Some((lease, reservation)) = options.lease_and_reservation_ttl_ms {
            settings.lease_ttl_ms = lease;
            settings.reservation_ttl_ms = reservation;
        }
        let control_plane = ControlPlane::start_with(store, settings).await?;
        let fixtures = tempfile::tempdir()?;
        write_fixtures(fixtures.path())?;
        let mock = if options.strict_provider {
            MockProvider::start_strict(fixtures.path().to_path_buf()).await?
        } else {
            MockProvider::start(fixtures.path().to_path_buf()).await?
        };
        let wasm = WasmFilter {
            path: paths::filter_wasm()?,
            plugin_config: plugin_config(&options),
        };
        let config =
            GatewayConfig::loopback(mock.addr.port(), control_plane.port(), Some(wasm)).render();
        let envoy = Envoy::start(&config, options.concurrency).await?;
        Ok(Stack {
            envoy,
            mock,
            control_plane,
            redis,
            http: reqwest::Client::new(),
            _fixtures: fixtures,
        })
    }

    /// A POST through Envoy as a client of `team` sends it, answered by the mock with
    /// `fixture`. `host` is the provider's, as an egress gateway sees it.
    pub fn post(
        &self,
        path: &str,
        team: &str,
        fixture: &str,
        body: &Value,
    ) -> reqwest::RequestBuilder {
        self.post_via(&self.envoy, path, team, fixture, body)
    }

    /// [`Stack::post`] through `envoy` (one made by [`Stack::another_envoy`]).
    pub fn post_via(
        &self,
        envoy: &Envoy,
        path: &str,
        team: &str,
        fixture: &str,
        body: &Value,
    ) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", envoy.url()))
            .header("host", provider_host(path))
            .header(TEAM_HEADER, team)
            .header("x-mock-fixture", fixture)
            .header("content-type", "application/json")
            .body(body.to_string())
    }

    /// A second gateway replica: another Envoy, with its own VMs (and so its own leases), the
    /// same filter config, in front of the same mock and control plane.
    pub async fn another_envoy(&self, options: &StackOptions) -> anyhow::Result<Envoy> {
        let wasm = WasmFilter {
            path: paths::filter_wasm()?,
            plugin_config: plugin_config(options),
        };
        let config =
            GatewayConfig::loopback(self.mock.addr.port(), self.control_plane.port(), Some(wasm))
                .render();
        Envoy::start(&config, options.concurrency).await
    }

    /// The requests the mock provider received, as JSON bodies.
    pub fn upstream_bodies(&self) -> Vec<Value> {
        self.mock
            .requests()
            .iter()
            .filter_map(|r| serde_json::from_slice(&r.body).ok())
            .collect()
    }
}

/// The provider's own host for a path.
pub fn provider_host(path: &str) -> &'static str {
    if path.starts_with("/v1/messages") {
        "api.anthropic.com"
    } else if path.starts_with("/v1beta/") {
        "generativelanguage.googleapis.com"
    } else if path.starts_with("/model/") {
        "bedrock-runtime.us-east-1.amazonaws.com"
    } else {
        "api.openai.com"
    }
}

/// Copies the recorded fixtures and adds the generated ones the suite needs.
fn write_fixtures(dir: &Path) -> anyhow::Result<()> {
    let source = paths::fixtures_dir();
    for entry in std::fs::read_dir(&source).with_context(|| source.display().to_string())? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), dir.join(entry.file_name()))?;
        }
    }
    bench_bodies::write_fixtures(dir)?;
    std::fs::write(dir.join(LONG_STREAM_FIXTURE), long_chat_stream(400))?;
    Ok(())
}

/// An OpenAI chat stream of `deltas` content events of ~10 tokens each, then the finish and
/// usage events and `[DONE]`: long enough that a paced client can hang up, or a small budget
/// can run out, well before the end.
pub fn long_chat_stream(deltas: usize) -> String {
    let event = |choices: &str, usage: &str| {
        format!(
            "data: {{\"id\":\"chatcmpl-long\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{choices}],\"usage\":{usage}}}\n\n"
        )
    };
    let mut out = event(
        r#"{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}"#,
        "null",
    );
    for i in 0..deltas {
        let delta = format!(
            r#"{{"index":0,"delta":{{"content":" sentence {i} of the quarterly summary goes here,"}},"finish_reason":null}}"#
        );
        out.push_str(&event(&delta, "null"));
    }
    out.push_str(&event(
        r#"{"index":0,"delta":{},"finish_reason":"stop"}"#,
        "null",
    ));
    let output_tokens = deltas * 10;
    out.push_str(&event(
        "",
        &format!(
            r#"{{"prompt_tokens":20,"completion_tokens":{output_tokens},"total_tokens":{}}}"#,
            output_tokens + 20
        ),
    ));
    out.push_str("data: [DONE]\n\n");
    out
}
