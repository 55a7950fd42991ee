//! OpenAI background responses (issue 16): the creating call is answered `queued` with no
//! usage, and is charged once, when a retrieval brings its usage — by polling or by resuming
//! its event stream — whichever comes first; later retrievals charge nothing more.

use std::time::Duration;

use serde_json::json;
use tollgate_e2e::charges::cost_nanos;
use tollgate_e2e::stack::{Stack, StackOptions, TEAM_HEADER};
use tollgate_model::Usage;

use super::{answer, budget};

const TEAM: &str = "background";
const BUDGET: &str = "background-budget";

/// A GET through Envoy as the team's client sends it, answered by the mock with `fixture`.
fn get(stack: &Stack, path: &str, fixture: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .get(format!("{}{path}", stack.envoy.url()))
        .header("host", "api.openai.com")
        .header(TEAM_HEADER, TEAM)
        .header("x-mock-fixture", fixture)
}

/// The usage of `openai-responses-background-completed.json` (and of the resumed stream's
/// `response.completed`), as Tollgate reads it.
fn completed_usage() -> Usage {
    Usage {
        uncached_input_tokens: 1842 - 1024,
        cached_input_tokens: 1024,
        output_tokens: 2290,
        reasoning_tokens: 2176,
        ..Usage::default()
    }
}

#[tokio::test]
async fn a_background_response_is_charged_once_by_whichever_retrieval_brings_its_usage() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    stack
        .control_plane
        .create_budget(&budget(BUDGET, TEAM, "100"))
        .await
        .unwrap();
    let create = json!({
        "model": "o3",
        "input": "Summarise the quarter's filings.",
        "background": true,
        "max_output_tokens": 4000,
        "metadata": {"team": "research"},
    });
    let resp = stack
        .post(
            "/v1/responses",
            TEAM,
            "openai-responses-background-queued.json",
            &create,
        )
        .send()
        .await
        .unwrap();
    let (status, _, body) = answer(resp).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("queued")));
    // The provider got the request tagged with the call's settlement id, its own metadata kept.
    let sent = stack.upstream_bodies().pop().unwrap();
    assert_eq!(sent["metadata"]["team"], "research");
    let tag = sent["metadata"]["tollgate_request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(body["metadata"]["tollgate_request_id"], tag.as_str());

    // Queued: the worst case stays reserved, nothing is charged.
    let held = stack.control_plane.usage(BUDGET).await.unwrap();
    assert!(held.reserved_nanos > 0, "{held:?}");
    assert_eq!((held.spent_nanos, held.requests), (0, 1));

    // A poll while it runs brings no usage: nothing settled.
    let resp = get(
        &stack,
        "/v1/responses/resp_68b6f3c4",
        "openai-responses-background-queued.json",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();

    // Resuming the event stream brings the usage: the creating call's id is charged exactly.
    let resp = get(
        &stack,
        "/v1/responses/resp_68b6f3c4?stream=true&starting_after=2",
        "openai-responses-background-resumed.sse",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let streamed = resp.text().await.unwrap();
    assert!(streamed.contains("response.completed"), "{streamed}");
    let exact = cost_nanos("o3", &completed_usage()).unwrap();
    let after = stack.control_plane.wait_spent(BUDGET, exact).await.unwrap();
    assert_eq!((after.reserved_nanos, after.requests), (0, 1), "{after:?}");

    // Polling the finished response afterwards settles the same id again: a replay.
    let resp = get(
        &stack,
        "/v1/responses/resp_68b6f3c4",
        "openai-responses-background-completed.json",
    )
    .send()
    .await
    .unwrap();
    resp.bytes().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stack
        .control_plane
        .settlements()
        .iter()
        .filter(|s| s.request_id == tag)
        .count()
        < 2
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no second settlement"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let settled: Vec<_> = stack
        .control_plane
        .settlements()
        .into_iter()
        .filter(|s| s.request_id == tag)
        .collect();
    assert!(
        settled
            .iter()
            .all(|s| s.reserved && s.cost.nanos() == exact)
    );
    let last = stack.control_plane.usage(BUDGET).await.unwrap();
    assert_eq!((last.spent_nanos, last.requests), (exact, 1), "{last:?}");
    assert_eq!(
        stack.control_plane.settlements().len(),
        2,
        "only the two retrievals with usage settled anything"
    );
}
