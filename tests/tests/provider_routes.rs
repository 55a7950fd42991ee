//! The reference routes (`envoy/envoy.template.yaml`) in real Envoy with the built filter:
//! each provider's calls reach that provider's cluster and no other, under the providers'
//! own host names (an egress gateway) and under the gateway's own name with a path prefix;
//! the filter labels each call with the provider whose cluster it reached; a provider host
//! the gateway has no cluster for is refused before anything leaves.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use serde_json::json;
use tollgate_e2e::envoy::Envoy;
use tollgate_e2e::gateway_config::{GatewayConfig, WasmFilter, reference_plugin_config};
use tollgate_e2e::mock_provider::MockProvider;
use tollgate_e2e::paths;

/// The provider clusters of the reference config.
const CLUSTERS: [&str; 9] = [
    "openai",
    "azure_openai",
    "anthropic",
    "gemini",
    "bedrock",
    "mistral",
    "cohere",
    "groq",
    "openai_compatible",
];

/// One call: where it is sent, what it should reach, and the label the filter gives it.
struct Call {
    host: Option<&'static str>,
    path: &'static str,
    cluster: &'static str,
    /// The path the provider receives (a gateway prefix is stripped).
    upstream_path: &'static str,
    label: &'static str,
    fixture: &'static str,
    body: serde_json::Value,
}

fn chat(model: &str) -> serde_json::Value {
    json!({"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]})
}

fn gemini() -> serde_json::Value {
    json!({"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]})
}

fn converse() -> serde_json::Value {
    json!({"messages": [{"role": "user", "content": [{"text": "Hi"}]}]})
}

const AZURE_PATH: &str = "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21";
const BEDROCK_PATH: &str = "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse";

/// Every provider under its own host name, as an egress gateway sees it.
fn egress_calls() -> Vec<Call> {
    let call = |host, path, cluster, label, fixture, body| Call {
        host: Some(host),
        path,
        cluster,
        upstream_path: path,
        label,
        fixture,
        body,
    };
    let chat_json = "openai-chat-cache-reasoning.json";
    vec![
        call(
            "api.openai.com",
            "/v1/chat/completions",
            "openai",
            "openai",
            chat_json,
            chat("gpt-4o-mini"),
        ),
        call(
            "acme.openai.azure.com",
            AZURE_PATH,
            "azure_openai",
            "azure_openai",
            chat_json,
            chat("gpt-4o"),
        ),
        call(
            "api.anthropic.com",
            "/v1/messages",
            "anthropic",
            "anthropic",
            "anthropic-messages.json",
            chat("claude-sonnet-4-5"),
        ),
        call(
            "generativelanguage.googleapis.com",
            "/v1beta/models/gemini-2.5-flash:generateContent",
            "gemini",
            "gemini",
            "gemini-generate-content-thinking-cache.json",
            gemini(),
        ),
        call(
            "bedrock-runtime.us-east-1.amazonaws.com",
            BEDROCK_PATH,
            "bedrock",
            "bedrock",
            "bedrock-converse-cache.json",
            converse(),
        ),
        call(
            "api.mistral.ai",
            "/v1/chat/completions",
            "mistral",
            "mistral",
            chat_json,
            chat("mistral-small-latest"),
        ),
        call(
            "api.cohere.com",
            "/v2/chat",
            "cohere",
            "cohere",
            "cohere-chat.json",
            chat("command-a-03-2025"),
        ),
        call(
            "api.groq.com",
            "/openai/v1/chat/completions",
            "groq",
            "groq",
            chat_json,
            chat("llama-3.3-70b-versatile"),
        ),
        call(
            "vllm.internal:8000",
            "/v1/chat/completions",
            "openai_compatible",
            "openai_compatible",
            chat_json,
            chat("gpt-4o-mini"),
        ),
    ]
}

/// Every provider under the gateway's own name, by its path prefix.
fn prefixed_calls() -> Vec<Call> {
    let call = |path, upstream_path, cluster, label, fixture, body| Call {
        host: None,
        path,
        cluster,
        upstream_path,
        label,
        fixture,
        body,
    };
    let chat_json = "openai-chat-cache-reasoning.json";
    vec![
        call(
            "/openai/v1/chat/completions",
            "/v1/chat/completions",
            "openai",
            "openai",
            chat_json,
            chat("gpt-4o-mini"),
        ),
        call(
            "/azure/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
            AZURE_PATH,
            "azure_openai",
            "azure_openai",
            chat_json,
            chat("gpt-4o"),
        ),
        call(
            "/anthropic/v1/messages",
            "/v1/messages",
            "anthropic",
            "anthropic",
            "anthropic-messages.json",
            chat("claude-sonnet-4-5"),
        ),
        call(
            "/gemini/v1beta/models/gemini-2.5-flash:generateContent",
            "/v1beta/models/gemini-2.5-flash:generateContent",
            "gemini",
            "gemini",
            "gemini-generate-content-thinking-cache.json",
            gemini(),
        ),
        call(
            "/mistral/v1/chat/completions",
            "/v1/chat/completions",
            "mistral",
            "mistral",
            chat_json,
            chat("mistral-small-latest"),
        ),
        call(
            "/cohere/v2/chat",
            "/v2/chat",
            "cohere",
            "cohere",
            "cohere-chat.json",
            chat("command-a-03-2025"),
        ),
        call(
            "/groq/openai/v1/chat/completions",
            "/openai/v1/chat/completions",
            "groq",
            "groq",
            chat_json,
            chat("llama-3.3-70b-versatile"),
        ),
        call(
            "/compat/v1/chat/completions",
            "/v1/chat/completions",
            "openai_compatible",
            "openai_compatible",
            chat_json,
            chat("gpt-4o-mini"),
        ),
        // Without a prefix: the self-hosted server, as before any prefix existed.
        call(
            "/v1/chat/completions",
            "/v1/chat/completions",
            "openai_compatible",
            "openai_compatible",
            chat_json,
            chat("gpt-4o-mini"),
        ),
    ]
}

struct Gateway {
    mock: MockProvider,
    envoy: Envoy,
}

async fn gateway() -> Gateway {
    let mock = MockProvider::start(paths::fixtures_dir()).await.unwrap();
    // The shipped plugin config (its gateway prefixes), measuring only.
    let mut plugin_config = reference_plugin_config();
    plugin_config
        .as_object_mut()
        .unwrap()
        .remove("control_plane");
    let wasm = WasmFilter {
        path: paths::filter_wasm().unwrap(),
        plugin_config,
    };
    let config = GatewayConfig::loopback(mock.addr.port(), 1, Some(wasm)).render();
    let envoy = Envoy::start(&config, 1).await.unwrap();
    Gateway { mock, envoy }
}

impl Gateway {
    async fn upstream_requests(&self) -> Vec<u64> {
        let mut counts = Vec::new();
        for cluster in CLUSTERS {
            let name = format!("cluster.{cluster}.upstream_rq_total");
            counts.push(self.envoy.stat(&name).await.unwrap().unwrap_or(0));
        }
        counts
    }

    /// `tollgate_requests_total` of `label`, whatever the outcome.
    async fn labelled(&self, label: &str) -> u64 {
        let body = self
            .envoy
            .admin_get(&format!(
                "/stats?filter=^wasmcustom\\.tollgate_requests_total\\.provider\\.{label}\\."
            ))
            .await
            .unwrap();
        body.lines()
            .filter_map(|l| l.split_once(": "))
            .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
            .sum()
    }

    async fn send(
        &self,
        host: Option<&str>,
        path: &str,
        fixture: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        let mut req = reqwest::Client::new()
            .post(format!("{}{path}", self.envoy.url()))
            .header("x-mock-fixture", fixture)
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(host) = host {
            req = req.header("host", host);
        }
        req.send().await.unwrap()
    }

    /// Sends `call` and checks it reached its cluster only, unchanged but for the prefix, and
    /// was labelled with its provider.
    async fn check(&self, call: &Call) {
        let before = self.upstream_requests().await;
        let labelled_before = self.labelled(call.label).await;
        let seen_before = self.mock.requests().len();
        let resp = self
            .send(call.host, call.path, call.fixture, &call.body)
            .await;
        let what = format!("{:?} {}", call.host, call.path);
        assert_eq!(resp.status(), 200, "{what}\n{}", self.envoy.log());
        resp.bytes().await.unwrap();
        let after = self.upstream_requests().await;
        for (i, cluster) in CLUSTERS.iter().enumerate() {
            let want = u64::from(*cluster == call.cluster);
            assert_eq!(after[i] - before[i], want, "{what}: cluster {cluster}");
        }
        let seen = self.mock.requests();
        assert_eq!(seen.len(), seen_before + 1, "{what}");
        let got = &seen[seen_before];
        assert_eq!(got.path, call.upstream_path, "{what}");
        if let Some(host) = call.host {
            assert_eq!(
                got.header("host"),
                Some(host),
                "{what}: the Host reached the provider unchanged"
            );
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.labelled(call.label).await == labelled_before {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not labelled {}",
                call.label
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn each_providers_host_reaches_only_its_own_cluster_and_is_labelled_with_it() {
    let gw = gateway().await;
    for call in egress_calls() {
        gw.check(&call).await;
    }
}

#[tokio::test]
async fn each_gateway_prefix_reaches_only_its_providers_cluster_and_is_labelled_with_it() {
    let gw = gateway().await;
    for call in prefixed_calls() {
        gw.check(&call).await;
    }
}

#[tokio::test]
async fn a_provider_host_without_a_cluster_is_refused_and_nothing_leaves() {
    let gw = gateway().await;
    for (host, path) in [
        ("other.openai.azure.com", AZURE_PATH),
        ("bedrock-runtime.eu-west-1.amazonaws.com", BEDROCK_PATH),
        ("api.deepseek.com", "/chat/completions"),
        ("api.x.ai", "/v1/chat/completions"),
        (
            "us-east5-aiplatform.googleapis.com",
            "/v1/projects/p/locations/l/publishers/google/models/gemini-2.5-flash:generateContent",
        ),
    ] {
        let resp = gw
            .send(
                Some(host),
                path,
                "openai-chat-cache-reasoning.json",
                &chat("gpt-4o-mini"),
            )
            .await;
        assert_eq!(resp.status(), 404, "{host}");
    }
    assert!(gw.upstream_requests().await.iter().all(|n| *n == 0));
    assert!(gw.mock.requests().is_empty());
}
