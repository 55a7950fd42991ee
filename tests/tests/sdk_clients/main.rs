//! Each provider's official Python client, called as its users call it, through real Envoy
//! running the built filter (issue 17): openai, AzureOpenAI, anthropic, google-genai, boto3
//! bedrock-runtime, mistralai, cohere and groq, each non-streamed and streamed.
//!
//! The gateway is reached as an egress gateway: each client keeps the provider's own host
//! name in its base URL (plain `http://`, as behind a mesh that originates TLS) and goes
//! through Envoy as its HTTP proxy (`HTTP_PROXY`), so Envoy routes by the real host. The
//! upstream is the strict mock ([`MockProvider::start_strict`]): it refuses `stream_options`
//! where the provider does and verifies Bedrock's SigV4 signature.
//!
//! Every script runs twice: straight to the mock (what the client sends) and through Envoy.
//! Each test checks that the client got the content the upstream sent; that the upstream
//! received what the client sent, but for the rewrites `docs/filter.md` announces
//! (`stream_options.include_usage`, `accept-encoding: identity`); that each call was charged exactly its recorded usage at
//! the shipped prices; and that it carries the provider's label.
//!
//! [`MockProvider::start_strict`]: tollgate_e2e::mock_provider::MockProvider::start_strict

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod anthropic_gemini;
mod bedrock_cohere;
mod openai_family;

use serde_json::Value;
use tollgate_e2e::charges::{self, cost_nanos, fixture_usage};
use tollgate_e2e::mock_provider::RecordedRequest;
use tollgate_e2e::python;
use tollgate_e2e::stack::{Stack, StackOptions, StoreKind};

/// The headers that carry a client's credentials, by provider.
const AUTH_HEADERS: [&str; 4] = ["authorization", "api-key", "x-api-key", "x-goog-api-key"];

/// One call a script makes, in order.
pub struct Expected {
    /// The recording the strict mock answers it with (`tests/fixtures/STEM.*`).
    pub stem: &'static str,
    /// The text the client must print.
    pub text: &'static str,
    /// The model it is charged as.
    pub model: &'static str,
    /// The answer reports usage: the charge is exact (else it is an estimate).
    pub exact: bool,
}

/// A client script: prints one JSON string (the answer's text) per call.
pub struct Client<'a> {
    /// The provider label the calls must carry.
    pub label: &'static str,
    /// The Python script.
    pub script: &'a str,
    /// Its calls.
    pub calls: Vec<Expected>,
}

/// What one run printed and what the upstream received.
struct Run {
    texts: Vec<String>,
    received: Vec<RecordedRequest>,
}

async fn run_script(stack: &Stack, proxy: &str, script: &str) -> Run {
    let before = stack.mock.requests().len();
    let env = [("HTTP_PROXY", proxy), ("http_proxy", proxy)];
    let run = python::run(script, &env).await.unwrap();
    assert!(run.ok(), "{run}\n--- envoy ---\n{}", stack.envoy.log());
    let texts = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<String>(l).unwrap_or_else(|_| panic!("{run}")))
        .collect();
    Run {
        texts,
        received: stack.mock.requests()[before..].to_vec(),
    }
}

/// The body without `stream_options`, the one field the filter may add.
fn without_stream_options(body: &[u8]) -> Value {
    let mut json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if let Some(object) = json.as_object_mut() {
        object.remove("stream_options");
    }
    json
}

/// Whether the filter may have added `stream_options` to a request `sent` as it was.
fn may_have_added_usage_option(sent: &RecordedRequest) -> bool {
    let json: Value = serde_json::from_slice(&sent.body).unwrap_or(Value::Null);
    json["stream"] == true && json.get("stream_options").is_none()
}

/// Checks that what reached the provider through the gateway is what the client sent
/// straight to it.
fn same_request(direct: &RecordedRequest, gateway: &RecordedRequest, label: &str) {
    assert_eq!(gateway.method, direct.method, "{label}");
    assert_eq!(gateway.path, direct.path, "{label}: path and query");
    assert_eq!(gateway.header("host"), direct.header("host"), "{label}");
    if gateway.body != direct.body {
        assert!(
            may_have_added_usage_option(direct),
            "{label}: the body changed\n{}\n{}",
            String::from_utf8_lossy(&direct.body),
            String::from_utf8_lossy(&gateway.body)
        );
        assert_eq!(
            without_stream_options(&gateway.body),
            without_stream_options(&direct.body),
            "{label}: the body changed beyond stream_options"
        );
        let added: Value = serde_json::from_slice(&gateway.body).unwrap();
        assert_eq!(added["stream_options"]["include_usage"], true, "{label}");
    }
    // The other announced rewrite: the gateway asks for what it can read (docs/filter.md);
    // the clients but boto3 ask for gzip, which the strict mock then sends them.
    assert_eq!(
        gateway.header("accept-encoding"),
        Some("identity"),
        "{label}"
    );
    for name in AUTH_HEADERS {
        let (d, g) = (direct.header(name), gateway.header(name));
        if name == "authorization" && d.is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256")) {
            // Signed at each run's own time; the strict mock verified this one.
            let scope = |v: Option<&str>| {
                v.map(|v| v.split("Signature=").next().unwrap_or("").to_owned())
                    .map(|v| v.split('/').next().unwrap_or("").to_owned())
            };
            assert_eq!(scope(g), scope(d), "{label}: {name}");
            assert!(g.is_some_and(|v| v.contains("Signature=")), "{label}");
        } else {
            assert_eq!(g, d, "{label}: {name}");
        }
    }
}

/// Runs `client` straight to the mock and through the gateway, and checks both the way the
/// module docs say. Returns the stack for further checks.
pub async fn check_client(client: Client<'_>) -> Stack {
    let stack = Stack::start(StackOptions {
        store: StoreKind::Memory,
        strict_provider: true,
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let mock_proxy = format!("http://{}", stack.mock.addr);
    let direct = run_script(&stack, &mock_proxy, client.script).await;
    let gateway = run_script(&stack, &stack.envoy.url(), client.script).await;
    let label = client.label;

    let want_texts: Vec<&str> = client.calls.iter().map(|c| c.text).collect();
    assert_eq!(direct.texts, want_texts, "{label}: straight to the mock");
    assert_eq!(gateway.texts, want_texts, "{label}: through the gateway");
    assert_eq!(direct.received.len(), client.calls.len(), "{label}");
    assert_eq!(gateway.received.len(), client.calls.len(), "{label}");
    for (d, g) in direct.received.iter().zip(&gateway.received) {
        same_request(d, g, label);
    }

    let mut want_cost = 0;
    for call in client.calls.iter().filter(|c| c.exact) {
        want_cost += cost_nanos(call.model, &fixture_usage(call.stem).unwrap()).unwrap();
    }
    let settled = wait_settled(&stack, client.calls.len()).await;
    let mut settled_cost = 0;
    for (call, s) in client.calls.iter().zip(&settled) {
        assert_eq!(s.provider, label, "{label} {}: provider label", call.stem);
        assert_eq!(
            s.model,
            charges::price_table_id(call.model),
            "{label} {}",
            call.stem
        );
        if !call.exact {
            assert!(s.usage.estimated, "{label} {}: {s:?}", call.stem);
            continue;
        }
        let usage = fixture_usage(call.stem).unwrap();
        let mut tokens = s.usage;
        tokens.service_tier = usage.service_tier;
        assert_eq!(tokens, usage, "{label} {}: {s:?}", call.stem);
        assert!(!s.usage.estimated, "{label} {}: estimated", call.stem);
        settled_cost += s.cost.nanos();
    }
    assert_eq!(settled_cost, want_cost, "{label}: the charge");
    stack
}

/// The settlements of the gateway's calls, in the order the calls were made.
async fn wait_settled(stack: &Stack, n: usize) -> Vec<tollgate_model::wire::v1::Settlement> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let mut settled = stack.control_plane.settlements();
        if settled.len() >= n {
            settled.sort_by_key(|s| s.at_unix_ms);
            return settled;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {n} calls settled\n{}",
            settled.len(),
            stack.envoy.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
