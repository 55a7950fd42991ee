//! Every recorded provider answer in `tests/fixtures/` through the real filter in real Envoy:
//! the answer reaches the client byte for byte, and Envoy's stats gain exactly the expected
//! tokens and the cost the price table gives for them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use serde_json::{Value, json};
use tollgate_e2e::envoy::Envoy;
use tollgate_e2e::gateway_config::{GatewayConfig, WasmFilter};
use tollgate_e2e::mock_provider::MockProvider;
use tollgate_e2e::mock_provider::strict::without_usage_chunk;
use tollgate_e2e::paths;
use tollgate_filter_core::providers::RouteTable;
use tollgate_filter_core::request::{RequestLimits, may_add_stream_usage_option};
use tollgate_model::{PriceTable, Usage};

const KINDS: [&str; 6] = [
    "uncached_input",
    "cached_input",
    "cache_write_5m",
    "cache_write_1h",
    "output",
    "reasoning",
];

/// A minimal request body in the fixture's dialect, naming the model the way clients do.
fn request_body(path: &str, host: &str, streaming: bool) -> (Value, Option<&'static str>) {
    if path.contains(":generateContent") || path.contains(":streamGenerateContent") {
        return (
            json!({"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]}),
            None,
        );
    }
    if path.ends_with("/converse") || path.ends_with("/converse-stream") {
        return (
            json!({"messages": [{"role": "user", "content": [{"text": "Hello"}]}], "inferenceConfig": {"maxTokens": 512}}),
            None,
        );
    }
    if path.contains("/model/") || path.contains("/publishers/anthropic/") {
        return (
            json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 512, "messages": [{"role": "user", "content": "Hello"}]}),
            None,
        );
    }
    if path.starts_with("/openai/deployments/") {
        return (
            json!({"stream": streaming, "messages": [{"role": "user", "content": "Hello"}]}),
            None,
        );
    }
    let model = match host {
        "api.anthropic.com" => "claude-sonnet-4-5",
        "api.cohere.com" => "command-a-03-2025",
        "api.deepseek.com" => "deepseek-chat",
        "api.mistral.ai" => "mistral-small-latest",
        "api.groq.com" => "llama-3.3-70b-versatile",
        _ => "gpt-4o-mini",
    };
    let body = if path.ends_with("/embeddings") || path.ends_with("/responses") {
        json!({"model": model, "stream": streaming, "input": "Hello"})
    } else if path.ends_with("/completions") && !path.ends_with("/chat/completions") {
        json!({"model": model, "stream": streaming, "prompt": "Hello", "max_tokens": 256})
    } else {
        json!({"model": model, "stream": streaming, "max_tokens": 256, "messages": [{"role": "user", "content": "Hello"}]})
    };
    (body, Some(model))
}

/// Sums a metric over every provider label.
async fn total(envoy: &Envoy, metric: &str, suffix: &str) -> u64 {
    let body = envoy
        .admin_get(&format!("/stats?filter=^wasmcustom\\.{metric}\\."))
        .await
        .unwrap();
    body.lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(name, _)| name.ends_with(suffix))
        .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
        .sum()
}

async fn snapshot(envoy: &Envoy) -> (Vec<u64>, u64, u64) {
    let mut tokens = Vec::new();
    for kind in KINDS {
        tokens.push(total(envoy, "tollgate_tokens_total", &format!(".kind.{kind}")).await);
    }
    let cost = total(envoy, "tollgate_cost_nanousd_total", "").await;
    let requests = total(envoy, "tollgate_requests_total", "").await;
    (tokens, cost, requests)
}

#[tokio::test]
async fn every_fixture_passes_through_byte_identical_and_is_counted_exactly() {
    let fixtures = paths::fixtures_dir();
    let mock = MockProvider::start(fixtures.clone()).await.unwrap();
    let aliases = json!({"gpt-4o-prod": "gpt-4o"});
    let wasm = WasmFilter {
        path: paths::filter_wasm().unwrap(),
        plugin_config: json!({"model_aliases": aliases}),
    };
    let mut config = GatewayConfig::loopback(mock.addr.port(), 1, Some(wasm));
    config.catch_all_route = true;
    let envoy = Envoy::start(&config.render(), 1).await.unwrap();
    let mut prices = PriceTable::shipped().unwrap();
    prices.add_alias("gpt-4o-prod", "gpt-4o").unwrap();
    let client = reqwest::Client::new();
    let mut priced = 0;

    let mut names: Vec<String> = std::fs::read_dir(&fixtures)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".expected.json"))
        .collect();
    names.sort();
    assert!(names.len() >= 20, "only {} fixtures", names.len());
    for expected_name in names {
        let stem = expected_name.trim_end_matches(".expected.json");
        let answer = ["json", "sse", "bin"]
            .iter()
            .map(|ext| format!("{stem}.{ext}"))
            .find(|f| fixtures.join(f).is_file())
            .unwrap_or_else(|| panic!("no answer file for {stem}"));
        let expected: Value =
            serde_json::from_slice(&std::fs::read(fixtures.join(&expected_name)).unwrap()).unwrap();
        let usage: Usage = serde_json::from_value(expected["usage"].clone()).unwrap();
        let (path, host) = (
            expected["path"].as_str().unwrap(),
            expected["host"].as_str().unwrap(),
        );
        let streaming = expected["streaming"].as_bool().unwrap_or(false);
        let (body, body_model) = request_body(path, host, streaming);

        let before = snapshot(&envoy).await;
        let resp = client
            .post(format!("{}{path}", envoy.url()))
            .header("host", host)
            .header("x-mock-fixture", &answer)
            .header("x-mock-pace-ms", "0")
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{stem}");
        let got = resp.bytes().await.unwrap();
        let recorded = std::fs::read(fixtures.join(&answer)).unwrap();
        // Where the filter asked for streamed usage (the body did not), the client does not
        // get the usage-only chunk.
        let route = RouteTable::builtin().match_request("POST", path, Some(host));
        let added = streaming
            && route.is_some_and(|r| may_add_stream_usage_option(&r, RequestLimits::default()));
        let want = if added {
            without_usage_chunk(&recorded)
        } else {
            recorded
        };
        assert!(got == want, "{stem}: the answer was altered");

        // Stats are written on the worker's tick after the stream ended (about 50 ms), the
        // request count last: once it moved, a new snapshot has all of the call's counters.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut after = snapshot(&envoy).await;
        while after.2 == before.2 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            after = snapshot(&envoy).await;
        }
        after = snapshot(&envoy).await;
        assert_eq!(
            after.2,
            before.2 + 1,
            "{stem}: one request counted\n{}",
            envoy.log()
        );
        if usage.estimated {
            continue; // Estimates depend on this test's request body; the core tests pin them.
        }
        let want = [
            usage.uncached_input_tokens,
            usage.cached_input_tokens,
            usage.cache_write_5m_tokens,
            usage.cache_write_1h_tokens,
            usage.output_tokens,
            usage.reasoning_tokens,
        ];
        for (i, kind) in KINDS.iter().enumerate() {
            assert_eq!(after.0[i] - before.0[i], want[i], "{stem}: {kind} tokens");
        }
        let model = body_model.map(str::to_owned).or_else(|| {
            let p = path.split('?').next().unwrap_or(path);
            let p = p
                .strip_prefix("/openai/deployments/")
                .map(|r| r.split('/').next().unwrap_or(r))
                .unwrap_or(p);
            Some(p.to_owned())
        });
        let now = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
        let want_cost = candidates(path, model.as_deref())
            .iter()
            .find_map(|m| prices.cost(m, &usage, now).ok())
            .map_or(0, |c| u64::try_from(c.total.nanos()).unwrap());
        assert_eq!(after.1 - before.1, want_cost, "{stem}: cost in nano-USD");
        priced += usize::from(want_cost > 0);
    }
    // Guards the cost check against passing at zero because nothing resolved.
    assert!(priced >= 20, "only {priced} fixtures were priced");
    let unexpected = envoy.log().lines().filter(|l| l.contains("panic")).count();
    assert_eq!(unexpected, 0, "{}", envoy.log());
}

/// The model names a call can be priced by: the body's, or the one its path names.
fn candidates(path: &str, body_model: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = body_model.into_iter().map(str::to_owned).collect();
    let path = path.split('?').next().unwrap_or(path);
    if let Some(rest) = path.strip_prefix("/openai/deployments/") {
        out.push(rest.split('/').next().unwrap_or(rest).to_owned());
    }
    if let Some((_, tail)) = path
        .split_once("/models/")
        .or_else(|| path.split_once("/model/"))
    {
        let m = tail
            .split([':', '/'])
            .next()
            .unwrap_or(tail)
            .replace("%3A", ":");
        out.push(m.split('@').next().unwrap_or(&m).to_owned());
        // Bedrock ids keep their `:0` version after the first colon-split; the table resolves both.
        out.push(tail.split('/').next().unwrap_or(tail).replace("%3A", ":"));
    }
    out
}
