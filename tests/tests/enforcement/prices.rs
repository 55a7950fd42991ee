//! Prices end to end: a model with no price cannot pass a USD budget; a name the filter maps
//! to a model (an Azure deployment name) counts toward that model's budget.

use serde_json::json;
use tollgate_e2e::charges::{chat_json_usage, cost_nanos};
use tollgate_e2e::stack::{Stack, StackOptions};

use super::{answer, budget, header, openai_chat};

#[tokio::test]
async fn a_model_with_no_price_cannot_pass_a_usd_budget() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let spec = budget("unpriced-budget", "unpriced", "100");
    stack.control_plane.create_budget(&spec).await.unwrap();

    let sent = openai_chat("gpt-9-unreleased", 256, false);
    let resp = stack
        .post("/v1/chat/completions", "unpriced", "chat.json", &sent)
        .send()
        .await
        .unwrap();
    let (status, headers, body) = answer(resp).await;
    assert_eq!(status, 429, "{body}\n{}", stack.envoy.log());
    assert_eq!(header(&headers, "x-tollgate-budget"), "unpriced-budget");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("\"gpt-9-unreleased\""), "{body}");
    assert_eq!(body["error"]["code"], "model_not_priced", "{body}");
    assert!(
        stack.mock.requests().is_empty(),
        "the call reached the provider"
    );
}

#[tokio::test]
async fn an_azure_deployment_name_counts_toward_its_models_budget() {
    let options = StackOptions {
        model_aliases: &[("prod-mini", "gpt-4o-mini")],
        ..StackOptions::default()
    };
    let stack = Stack::start(options).await.unwrap();
    let mut spec = budget("mini-budget", "alias", "100");
    spec["model"] = json!("gpt-4o-mini");
    stack.control_plane.create_budget(&spec).await.unwrap();

    let sent = openai_chat("prod-mini", 256, false);
    let resp = stack
        .post("/v1/chat/completions", "alias", "chat.json", &sent)
        .send()
        .await
        .unwrap();
    let (status, _, body) = answer(resp).await;
    assert_eq!(status, 200, "{body}\n{}", stack.envoy.log());
    let charged = cost_nanos("gpt-4o-mini", &chat_json_usage()).unwrap();
    let usage = stack
        .control_plane
        .wait_spent("mini-budget", charged)
        .await
        .unwrap();
    assert_eq!(usage.requests, 1);
}
