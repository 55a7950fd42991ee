//! A downgrade on Bedrock, against the strict mock (which checks SigV4 signatures as AWS
//! does): the path names Bedrock's own id of the cheaper model, and a request signed over
//! its path is refused naming that id instead of being sent where AWS would refuse it.

use serde_json::json;
use tollgate_e2e::charges::{cost_nanos, fixture_usage, usd};
use tollgate_e2e::mock_provider::strict::{TEST_BEDROCK_API_KEY, sigv4_signed};
use tollgate_e2e::stack::{Stack, StackOptions};
use tollgate_model::{PriceTable, Usage};

use super::{answer, budget, header};

const HOST: &str = "bedrock-runtime.us-east-1.amazonaws.com";
const SONNET_PATH: &str = "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse";
const HAIKU_BEDROCK_ID: &str = "anthropic.claude-haiku-4-5-20251001-v1:0";
const FIXTURE: &str = "bedrock-converse-cache";

fn converse_body() -> Vec<u8> {
    json!({
        "messages": [{"role": "user", "content": [{"text": "Summarise the quarter."}]}],
        "inferenceConfig": {"maxTokens": 256},
    })
    .to_string()
    .into_bytes()
}

/// A strict stack where Bedrock's id of claude-haiku-4-5 is a configured name, and the
/// budget `{team}-budget` has room for haiku's worst case on a path-model call (one token
/// per body byte, well under 1000, plus the default output cap), not for sonnet's.
async fn stack(team: &str) -> Stack {
    let stack = Stack::start(StackOptions {
        strict_provider: true,
        model_aliases: &[(HAIKU_BEDROCK_ID, "claude-haiku-4-5")],
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let prices = PriceTable::shipped().unwrap();
    let worst = |model: &str, input: u64| {
        let usage = Usage {
            uncached_input_tokens: input,
            output_tokens: u64::from(prices.default_max_output_tokens(model)),
            ..Usage::default()
        };
        cost_nanos(model, &usage).unwrap()
    };
    let haiku_worst = worst("claude-haiku-4-5", 1000);
    assert!(haiku_worst < worst("claude-sonnet-4-5", 0));
    let mut spec = budget(&format!("{team}-budget"), team, &usd(haiku_worst));
    spec["enforcement"] = json!({"downgrade": {"claude-sonnet-4-5": "claude-haiku-4-5"}});
    stack.control_plane.create_budget(&spec).await.unwrap();
    stack
}

fn post(stack: &Stack, team: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(format!("{}{SONNET_PATH}", stack.envoy.url()))
        .header("host", HOST)
        .header("x-tollgate-team", team)
        .header("x-mock-fixture", format!("{FIXTURE}.json"))
        .header("content-type", "application/json")
        .body(body)
}

#[tokio::test]
async fn a_bedrock_downgrade_sends_bedrocks_own_id_of_the_cheaper_model() {
    let stack = stack("bedrock-downgrade").await;
    let resp = post(&stack, "bedrock-downgrade", converse_body())
        .bearer_auth(TEST_BEDROCK_API_KEY)
        .send()
        .await
        .unwrap();
    let (status, headers, body) = answer(resp).await;
    assert_eq!(status, 200, "{body}\n{}", stack.envoy.log());
    assert_eq!(
        header(&headers, "x-tollgate-downgraded-from"),
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    );
    let upstream = stack.mock.requests();
    assert_eq!(upstream.len(), 1);
    assert_eq!(
        upstream[0].path, "/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/converse",
        "the profile prefix kept, Bedrock's id of the cheaper model"
    );
    let usage = fixture_usage(FIXTURE).unwrap();
    stack
        .control_plane
        .wait_spent(
            "bedrock-downgrade-budget",
            cost_nanos("claude-haiku-4-5", &usage).unwrap(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_sigv4_signed_call_is_refused_naming_the_cheaper_model_rather_than_sent_changed() {
    let stack = stack("signed-downgrade").await;
    let body = converse_body();
    let signed = sigv4_signed(SONNET_PATH, HOST, &body).unwrap();

    // The signature holds through the gateway: a call no budget downgrades passes.
    let resp = post(&stack, "no-budget", body.clone())
        .headers(signed.clone())
        .send()
        .await
        .unwrap();
    let (status, _, text) = answer(resp).await;
    assert_eq!(status, 200, "{text}\n{}", stack.envoy.log());

    let resp = post(&stack, "signed-downgrade", body)
        .headers(signed)
        .send()
        .await
        .unwrap();
    let (status, headers, refusal) = answer(resp).await;
    assert_eq!(status, 429, "{refusal}\n{}", stack.envoy.log());
    assert_eq!(
        header(&headers, "x-tollgate-budget"),
        "signed-downgrade-budget"
    );
    let message = refusal["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("us.{HAIKU_BEDROCK_ID}")) && message.contains("SigV4"),
        "{refusal}"
    );
    assert_eq!(
        stack.mock.requests().len(),
        1,
        "the refused call never left"
    );
    // Its reservation is released: nothing stays reserved, nothing is charged.
    let usage = stack
        .control_plane
        .wait_usage(
            "signed-downgrade-budget",
            std::time::Duration::from_secs(10),
            |u| u.reserved_nanos == 0,
        )
        .await
        .unwrap();
    assert_eq!(usage.spent_nanos, 0);
}
