//! Admission decisions that let a call through (or not) in other ways: a downgrade to a
//! cheaper model, the control plane being down under each fail mode, and many clients racing
//! for the last of a budget on several Envoy workers.

use std::time::Duration;

use serde_json::{Value, json};
use tollgate_e2e::charges::{chat_json_usage, cost_nanos, fixture_usage, usd};
use tollgate_e2e::stack::{Stack, StackOptions};
use tollgate_model::{PriceTable, Usage};

use super::{answer, anthropic_messages, budget, chat_call, gemini_contents, header, openai_chat};

/// A stack whose budget `{team}-budget` on `team` downgrades `from` to `to`: room for
/// `to`'s worst case (1000 input tokens, 256 out), below `from`'s output cap alone, so the
/// control plane must answer "downgrade" to a call capped at 256 output tokens.
async fn downgrade_stack(team: &str, from: &str, to: &str) -> Stack {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let worst = |model: &str, input| {
        let usage = Usage {
            uncached_input_tokens: input,
            output_tokens: 256,
            ..Usage::default()
        };
        cost_nanos(model, &usage).unwrap()
    };
    let to_worst = worst(to, 1000);
    assert!(to_worst < worst(from, 0));
    let mut spec = budget(&format!("{team}-budget"), team, &usd(to_worst));
    spec["enforcement"] = json!({"downgrade": {from: to}});
    stack.control_plane.create_budget(&spec).await.unwrap();
    stack
}

/// A downgraded call, end to end: the client's answer says `from` was downgraded, the
/// provider got `sent` with only the model changed to `to`, and `usage` was settled once,
/// at `to`'s price, on `team`'s [`downgrade_stack`] budget.
async fn assert_downgraded(
    stack: &Stack,
    resp: reqwest::Response,
    sent: &Value,
    team: &str,
    (from, to): (&str, &str),
    usage: &Usage,
) {
    let (status, headers, body) = answer(resp).await;
    assert_eq!(status, 200, "{body}\n{}", stack.envoy.log());
    assert_eq!(
        header(&headers, "x-tollgate-downgraded-from"),
        from,
        "{headers:?}"
    );
    let mut want = sent.clone();
    want["model"] = json!(to);
    assert_eq!(
        stack.upstream_bodies(),
        vec![want],
        "only the model changes"
    );

    let charged = cost_nanos(to, usage).unwrap();
    assert_ne!(charged, cost_nanos(from, usage).unwrap());
    stack
        .control_plane
        .wait_spent(&format!("{team}-budget"), charged)
        .await
        .unwrap();
    let settled: Vec<_> = stack
        .control_plane
        .settlements_by_request()
        .into_values()
        .collect();
    assert_eq!(settled.len(), 1);
    assert_eq!(settled[0].model, to);
}

#[tokio::test]
async fn a_downgrade_budget_rewrites_the_model_and_charges_the_cheaper_price() {
    let stack = downgrade_stack("downgrade", "gpt-4o", "gpt-4o-mini").await;

    let sent = openai_chat("gpt-4o", 256, false);
    let resp = stack
        .post("/v1/chat/completions", "downgrade", "chat.json", &sent)
        .send()
        .await
        .unwrap();
    // The downgrade is named on the client's answer: for a model named in the body,
    // admission runs at the end of the body, after Envoy has sent the request headers
    // upstream, so the upstream request cannot carry it.
    let models = ("gpt-4o", "gpt-4o-mini");
    assert_downgraded(&stack, resp, &sent, "downgrade", models, &chat_json_usage()).await;
}

#[tokio::test]
async fn a_downgraded_anthropic_body_goes_without_its_stale_length() {
    // Without a control plane an Anthropic body keeps its client's content-length (nothing
    // rewrites it); with one, a downgrade rewrites the model in the body, so the length the
    // client sent must not reach the provider with the new body.
    let stack = downgrade_stack("claude-downgrade", "claude-sonnet-4-5", "claude-haiku-4-5").await;

    let sent = anthropic_messages("claude-sonnet-4-5", 256, false);
    let resp = stack
        .post(
            "/v1/messages",
            "claude-downgrade",
            "anthropic-messages.json",
            &sent,
        )
        .send()
        .await
        .unwrap();
    let usage = fixture_usage("anthropic-messages").unwrap();
    let models = ("claude-sonnet-4-5", "claude-haiku-4-5");
    assert_downgraded(&stack, resp, &sent, "claude-downgrade", models, &usage).await;
    let upstream = stack.mock.requests();
    assert_eq!(
        upstream[0].declared_length(),
        None,
        "the rewritten body goes chunked, not with the client's length: {:?}",
        upstream[0].headers
    );
}

#[tokio::test]
async fn a_downgrade_of_a_path_model_rewrites_the_gemini_path_and_charges_the_cheaper_price() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    // Path models are reserved at the headers: one token per body byte (well under 1000
    // here) plus the model's default output cap. Room for flash's worst case, not pro's.
    let prices = PriceTable::shipped().unwrap();
    let worst = |model: &str, input: u64| {
        let usage = Usage {
            uncached_input_tokens: input,
            output_tokens: u64::from(prices.default_max_output_tokens(model)),
            ..Usage::default()
        };
        cost_nanos(model, &usage).unwrap()
    };
    let flash_worst = worst("gemini-2.5-flash", 1000);
    assert!(flash_worst < worst("gemini-2.5-pro", 0));
    let mut spec = budget(
        "gemini-downgrade-budget",
        "gemini-downgrade",
        &usd(flash_worst),
    );
    spec["enforcement"] = json!({"downgrade": {"gemini-2.5-pro": "gemini-2.5-flash"}});
    stack.control_plane.create_budget(&spec).await.unwrap();

    let stem = "gemini-generate-content-thinking-cache";
    let sent = gemini_contents(256);
    let resp = stack
        .post(
            "/v1beta/models/gemini-2.5-pro:generateContent",
            "gemini-downgrade",
            &format!("{stem}.json"),
            &sent,
        )
        .send()
        .await
        .unwrap();
    let (status, headers, body) = answer(resp).await;
    assert_eq!(status, 200, "{body}\n{}", stack.envoy.log());
    assert_eq!(
        header(&headers, "x-tollgate-downgraded-from"),
        "gemini-2.5-pro",
        "{headers:?}"
    );
    let upstream = stack.mock.requests();
    assert_eq!(upstream.len(), 1);
    assert_eq!(
        upstream[0].path,
        "/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(
        stack.upstream_bodies(),
        vec![sent],
        "the body is left alone"
    );
    assert_eq!(
        upstream[0].declared_length(),
        Some(upstream[0].body.len()),
        "and goes with its client's length: {:?}",
        upstream[0].headers
    );

    let usage = fixture_usage(stem).unwrap();
    let charged = cost_nanos("gemini-2.5-flash", &usage).unwrap();
    assert_ne!(charged, cost_nanos("gemini-2.5-pro", &usage).unwrap());
    stack
        .control_plane
        .wait_spent("gemini-downgrade-budget", charged)
        .await
        .unwrap();
}

#[tokio::test]
async fn with_the_control_plane_down_fail_open_passes_the_call_and_settles_it_later() {
    let mut stack = Stack::start(StackOptions {
        fail_mode: "open",
        ..StackOptions::default()
    })
    .await
    .unwrap();
    stack
        .control_plane
        .create_budget(&budget("fail-open-budget", "fail-open", "10"))
        .await
        .unwrap();
    stack.control_plane.stop().await.unwrap();

    let resp = chat_call(&stack, "fail-open").send().await.unwrap();
    let (status, _, body) = answer(resp).await;
    assert_eq!(status, 200, "{body}\n{}", stack.envoy.log());
    assert_eq!(stack.mock.requests().len(), 1, "the call went through");

    stack.control_plane.start_again().await.unwrap();
    // The batch posted while the control plane was down is retried with backoff.
    let want = cost_nanos("gpt-4o-mini", &chat_json_usage()).unwrap();
    stack
        .control_plane
        .wait_usage("fail-open-budget", Duration::from_secs(30), |u| {
            u.spent_nanos >= want
        })
        .await
        .unwrap();
    let u = stack.control_plane.usage("fail-open-budget").await.unwrap();
    assert_eq!(u.spent_nanos, want, "{u:?}");
    assert_eq!(u.requests, 1, "counted once, at settlement");
    let settled: Vec<_> = stack
        .control_plane
        .settlements_by_request()
        .into_values()
        .collect();
    assert_eq!(settled.len(), 1);
    assert!(
        !settled[0].reserved,
        "no reservation was made: {:?}",
        settled[0]
    );
}

#[tokio::test]
async fn with_the_control_plane_down_fail_closed_refuses_with_503_in_provider_shape() {
    let mut stack = Stack::start(StackOptions {
        fail_mode: "closed",
        ..StackOptions::default()
    })
    .await
    .unwrap();
    stack.control_plane.stop().await.unwrap();
    let resp = chat_call(&stack, "fail-closed").send().await.unwrap();
    let (status, _, body) = answer(resp).await;
    assert_eq!(status, 503, "{body}\n{}", stack.envoy.log());
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["error"]["type"].is_string(), "{body}");
    assert!(stack.mock.requests().is_empty(), "the call was sent");
}

const CLIENTS: usize = 64;
const CALLS_PER_CLIENT: usize = 3;
const BUDGET_CALLS: usize = 100;

/// What 64 clients, 3 calls each, got from a budget of exactly 100 calls through `replicas`
/// Envoys of four workers each (the clients spread over them), with the budget's `lease`
/// setting: never more than 100 admitted, and every admitted call settled once at its exact
/// cost. Returns (admitted, refused, 503s, calls admitted from a lease).
async fn sixty_four_clients_race_for_a_hundred_calls(
    lease: &str,
    replicas: usize,
) -> (usize, usize, usize, usize) {
    // Fail closed and a generous callout timeout: a slow answer must never admit a call
    // unreserved, which would let more than 100 through.
    let options = StackOptions {
        fail_mode: "closed",
        timeout_ms: 5_000,
        concurrency: 4,
        ..StackOptions::default()
    };
    let stack = Stack::start(options.clone()).await.unwrap();
    let mut others = Vec::new();
    for _ in 1..replicas {
        others.push(stack.another_envoy(&options).await.unwrap());
    }
    let envoys: Vec<_> = std::iter::once(&stack.envoy).chain(&others).collect();
    let mut spec = budget("hundred-calls", "crowd", "100");
    spec["limit_requests"] = json!(BUDGET_CALLS);
    spec["lease"] = json!(lease);
    stack.control_plane.create_budget(&spec).await.unwrap();
    let call = |envoy| {
        stack.post_via(
            envoy,
            "/v1/chat/completions",
            "crowd",
            "chat.json",
            &openai_chat("gpt-4o-mini", 256, false),
        )
    };
    // Leased: each replica's first call is reserved on its own, and its lease granted before
    // the race (the race would otherwise be over before the first tick asked for one).
    let warm = if lease == "exact" { 0 } else { envoys.len() };
    if warm > 0 {
        for (i, envoy) in envoys.iter().enumerate() {
            let resp = call(envoy).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            let _ = resp.bytes().await;
            super::leases::wait_outstanding(&stack, i as u64 + 1, Duration::from_secs(10)).await;
        }
    }

    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let requests: Vec<_> = (0..CALLS_PER_CLIENT)
            .map(|_| call(envoys[client % envoys.len()]))
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for r in requests {
                statuses.push(r.send().await.map(|r| r.status().as_u16()).unwrap_or(0));
            }
            statuses
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.extend(t.await.unwrap());
    }
    let count = |s: u16| statuses.iter().filter(|&&x| x == s).count();
    let (ok, refused, unavailable) = (count(200) + warm, count(429), count(503));
    assert_eq!(
        ok + refused + unavailable,
        CLIENTS * CALLS_PER_CLIENT + warm,
        "unexpected statuses: {statuses:?}"
    );
    assert!(ok <= BUDGET_CALLS, "{ok} admitted");
    assert!(refused > 0, "nothing refused: {statuses:?}");
    assert_eq!(
        stack.mock.requests().len(),
        ok,
        "only admitted calls reach the provider"
    );

    let each = cost_nanos("gpt-4o-mini", &chat_json_usage()).unwrap();
    let n = i64::try_from(ok).unwrap();
    stack
        .control_plane
        .wait_spent("hundred-calls", n * each)
        .await
        .unwrap();
    let settled = stack.control_plane.settlements_by_request();
    let billed: Vec<_> = settled
        .values()
        .filter(|s| s.billed != Some(false))
        .collect();
    assert_eq!(
        billed.len(),
        ok,
        "one billed settlement per admitted call ({refused} refused, {unavailable} unavailable, {} settled)",
        settled.len()
    );
    let sum: i64 = settled.values().map(|s| s.cost.nanos()).sum();
    assert_eq!(sum, n * each, "the counter equals the sum of the charges");
    let leased = settled.values().filter(|s| s.lease_id.is_some()).count();
    eprintln!(
        "lease {lease}, {replicas} Envoy(s): {ok} admitted ({leased} from a lease), {refused} refused, {unavailable} unavailable, {} early refusals",
        BUDGET_CALLS.saturating_sub(ok + unavailable)
    );
    (ok, refused, unavailable, leased)
}

#[tokio::test]
async fn sixty_four_clients_on_four_workers_get_at_most_the_hundred_calls_an_exact_budget_allows() {
    let (ok, _, unavailable, leased) =
        sixty_four_clients_race_for_a_hundred_calls("exact", 1).await;
    assert_eq!(leased, 0, "an exact budget is never leased");
    // A 503 is a callout that failed; it may have reserved one of the 100 before failing.
    // Exact: no early refusal, every one of the 100 calls is admitted.
    assert!(
        ok + unavailable >= BUDGET_CALLS,
        "{ok} ok, {unavailable} 503"
    );
}

#[tokio::test]
async fn sixty_four_clients_on_four_workers_get_at_most_the_hundred_calls_a_leased_budget_allows() {
    // Slices of 10 calls: leased until fewer than 20 are left, then reserved call by call.
    let (ok, _, _, leased) = sixty_four_clients_race_for_a_hundred_calls("10%", 1).await;
    assert!(
        leased > 0 && ok <= BUDGET_CALLS,
        "{ok} admitted, {leased} from a lease"
    );
}

#[tokio::test]
async fn sixty_four_clients_on_two_envoys_get_at_most_the_hundred_calls_a_leased_budget_allows() {
    // Two replicas, each with its own lease: a call refused on one while the other still
    // holds unused lease is an early refusal; none is ever an overshoot. By lease size
    // (slices of 1, 10 and 25 calls; leased until fewer than two slices are left).
    let mut leased_calls = 0;
    for lease in ["1%", "10%", "25%"] {
        let (ok, _, _, leased) = sixty_four_clients_race_for_a_hundred_calls(lease, 2).await;
        assert!(ok <= BUDGET_CALLS, "{lease}: {ok} admitted");
        leased_calls += leased;
    }
    assert!(leased_calls > 0, "no call came from a lease");
}
