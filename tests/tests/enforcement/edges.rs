//! The edges of admission in real Envoy: a body the filter cannot read is still checked
//! against its budgets, a reserve the control plane answers too late (Redis stalled) leaves
//! nothing reserved, and an upstream that answers before the call is admitted does not get
//! its answer to the client first.

use std::process::Command;
use std::time::Duration;

use tollgate_e2e::stack::{Stack, StackOptions, TEAM_HEADER, provider_host};

use super::{answer, budget, chat_call, openai_chat};
use tollgate_e2e::charges::{chat_json_usage, cost_nanos};

/// Less than any call's worst case: every call on the team is refused.
const TINY_LIMIT_USD: &str = "0.000001";

/// A POST of raw `body` bytes through Envoy for `team`.
fn raw_post(stack: &Stack, team: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", stack.envoy.url()))
        .header("host", provider_host("/v1/chat/completions"))
        .header(TEAM_HEADER, team)
        .header("x-mock-fixture", "chat.json")
        .header("content-type", "application/json")
        .body(body)
}

#[tokio::test]
async fn a_body_padded_past_the_size_cap_or_not_json_is_refused_by_a_spent_budget() {
    // A generous callout timeout: on a loaded machine a 9 MiB body's reserve could otherwise
    // time out and fail open, which is not what this test is about.
    let stack = Stack::start(StackOptions {
        timeout_ms: 5_000,
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let team = "unreadable";
    stack
        .control_plane
        .create_budget(&budget("unreadable-budget", team, TINY_LIMIT_USD))
        .await
        .unwrap();
    // Over the default 8 MiB `max_request_body_bytes` (`oversized_request: pass`): sent
    // unread, and before this fix reserved at $0 whatever its budgets had left.
    let mut padded = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":""#.to_vec();
    padded.extend(std::iter::repeat_n(b'a', 9 * 1024 * 1024));
    padded.extend(br#""}]}"#);
    for body in [padded, b"{not json".to_vec(), br#"{"model":42}"#.to_vec()] {
        let len = body.len();
        let resp = raw_post(&stack, team, body).send().await.unwrap();
        let (status, _, error) = answer(resp).await;
        assert_eq!(status, 429, "{len} bytes: {error}\n{}", stack.envoy.log());
        assert_eq!(error["error"]["code"], "budget_exceeded", "{error}");
    }
    assert!(
        stack.mock.requests().is_empty(),
        "a refused call reached the provider"
    );
}

/// Resumes a stopped process when dropped, so a failing test never leaves Redis frozen.
struct Stopped(u32);

impl Stopped {
    fn new(pid: u32) -> Stopped {
        let ok = Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

#[tokio::test]
async fn a_reserve_answered_after_the_timeout_under_fail_closed_leaves_nothing_reserved() {
    let stack = Stack::start(StackOptions {
        fail_mode: "closed",
        timeout_ms: 100,
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let team = "stalled";
    stack
        .control_plane
        .create_budget(&budget("stalled-budget", team, "100"))
        .await
        .unwrap();
    let pid = stack.redis.as_ref().and_then(|r| r.pid()).unwrap();

    // Redis stalls longer than the filter waits: the control plane's reserve script is
    // queued on its connection and runs once Redis is back.
    let stalled = Stopped::new(pid);
    let resp = chat_call(&stack, team).send().await.unwrap();
    let (status, _, body) = answer(resp).await;
    assert_eq!(status, 503, "{body}\n{}", stack.envoy.log());
    assert_eq!(body["error"]["code"], "budget_check_unavailable", "{body}");
    drop(stalled);

    // The refused call is settled at zero, which releases whatever the late reserve held.
    let usage = stack
        .control_plane
        .wait_usage("stalled-budget", Duration::from_secs(20), |u| {
            u.reserved_nanos == 0 && !stack.control_plane.settlements().is_empty()
        })
        .await
        .unwrap();
    assert_eq!(usage.spent_nanos, 0);
    let settled = stack.control_plane.settlements_by_request();
    assert_eq!(settled.len(), 1, "{settled:?}");
    let s = settled.values().next().unwrap();
    assert_eq!((s.cost.nanos(), s.reserved), (0, true), "{s:?}");
    assert!(stack.mock.requests().is_empty());
}

/// Sends an OpenAI chat call by `team` to an upstream that answers at the request headers
/// (the body goes whole, at once), in the background.
fn call_answered_early(
    stack: &Stack,
    team: &str,
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    let request = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", stack.envoy.url()))
        .header("host", provider_host("/v1/chat/completions"))
        .header(TEAM_HEADER, team)
        .header("x-mock-fixture", "chat.json")
        .header("x-mock-answer-early", "1")
        .header("content-type", "application/json")
        .body(openai_chat("gpt-4o-mini", 256, false).to_string());
    tokio::spawn(request.send())
}

/// With the control plane's Redis stopped (so admission cannot be decided), makes a call
/// whose upstream answers at once, waits until that answer reached Envoy and checks that it
/// did not reach the client; then lets Redis go on and returns the call's answer.
async fn answered_before_admission(stack: &Stack, team: &str) -> reqwest::Response {
    let pid = stack.redis.as_ref().and_then(|r| r.pid()).unwrap();
    let stalled = Stopped::new(pid);
    let call = call_answered_early(stack, team);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answered = stack.envoy.stat("cluster.openai.upstream_rq_200").await;
        if answered.unwrap().unwrap_or(0) >= 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            stack.envoy.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if call.is_finished() {
        let early = call.await.unwrap().map(|r| r.status());
        panic!("the answer went out before admission: {early:?}");
    }
    drop(stalled);
    call.await.unwrap().unwrap()
}

#[tokio::test]
async fn an_answer_that_comes_before_admission_is_replaced_by_the_refusal() {
    let stack = Stack::start(StackOptions {
        fail_mode: "closed",
        timeout_ms: 5000,
        ..StackOptions::default()
    })
    .await
    .unwrap();
    stack
        .control_plane
        .create_budget(&budget("early-spent", "early-spent", TINY_LIMIT_USD))
        .await
        .unwrap();
    let resp = answered_before_admission(&stack, "early-spent").await;
    // Refused by the spent budget (429), or, when Redis came back after the control plane's
    // own timeout, by the fail mode (503): never the upstream's 200.
    let (status, _, body) = answer(resp).await;
    assert!(
        [429, 503].contains(&status),
        "{status} {body}\n{}",
        stack.envoy.log()
    );
    let code = body["error"]["code"].as_str().unwrap_or_default();
    assert!(
        ["budget_exceeded", "budget_check_unavailable"].contains(&code),
        "{body}"
    );
}

#[tokio::test]
async fn an_answer_that_comes_before_admission_goes_on_once_admitted_and_is_charged() {
    let stack = Stack::start(StackOptions {
        fail_mode: "open",
        timeout_ms: 5000,
        ..StackOptions::default()
    })
    .await
    .unwrap();
    stack
        .control_plane
        .create_budget(&budget("early-ok", "early-ok", "100"))
        .await
        .unwrap();
    let resp = answered_before_admission(&stack, "early-ok").await;
    let (status, _, body) = answer(resp).await;
    assert_eq!(status, 200, "{body}\n{}", stack.envoy.log());
    assert_eq!(body["usage"]["completion_tokens"], 103, "{body}");
    let charged = cost_nanos("gpt-4o-mini", &chat_json_usage()).unwrap();
    stack
        .control_plane
        .wait_spent("early-ok", charged)
        .await
        .unwrap();
}

#[tokio::test]
async fn on_a_redis_outage_each_budgets_own_fail_mode_decides_over_the_plugins() {
    // The plugin fails open; the filter waits long enough for the control plane, whose own
    // Redis timeout (250 ms) ends the stalled reserve.
    let stack = Stack::start(StackOptions {
        fail_mode: "open",
        timeout_ms: 5000,
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let cp = &stack.control_plane;
    for (id, team, mode) in [
        ("shut-budget", "shut", "closed"),
        ("pass-budget", "pass", "open"),
    ] {
        let mut b = budget(id, team, "100");
        b["fail_mode"] = mode.into();
        // Reserved call by call: a lease for the "pass" call's key, granted once Redis is
        // back, would hold part of the budget and this test looks for no hold at all.
        b["lease"] = "exact".into();
        cp.create_budget(&b).await.unwrap();
    }
    // A running control plane has loaded its budgets before the outage.
    let (status, _, body) = answer(chat_call(&stack, "warm").send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");

    let pid = stack.redis.as_ref().and_then(|r| r.pid()).unwrap();
    let stalled = Stopped::new(pid);
    let resp = chat_call(&stack, "shut").send().await.unwrap();
    let budget_header = resp.headers().get("x-tollgate-budget").cloned();
    let (status, _, body) = answer(resp).await;
    assert_eq!(status, 503, "{body}\n{}", stack.envoy.log());
    assert_eq!(body["error"]["code"], "budget_check_unavailable", "{body}");
    assert_eq!(budget_header.unwrap(), "shut-budget");
    let (status, _, body) = answer(chat_call(&stack, "pass").send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}\n{}", stack.envoy.log());
    drop(stalled);

    // The call admitted unreserved is settled as a fail-open call once Redis is back.
    let usage = cp
        .wait_usage("pass-budget", Duration::from_secs(20), |u| {
            u.spent_nanos > 0
        })
        .await
        .unwrap();
    let settled: Vec<_> = cp
        .settlements()
        .into_iter()
        .filter(|s| s.scopes.iter().any(|sc| sc.to_string() == "team:pass"))
        .collect();
    assert_eq!(settled.len(), 1, "{settled:?}");
    assert!(!settled[0].reserved, "{:?}", settled[0]);
    assert_eq!(settled[0].cost.nanos(), usage.spent_nanos);
    assert_eq!(usage.reserved_nanos, 0);
    assert_eq!(
        stack.mock.requests().len(),
        2,
        "warm and pass reached the provider"
    );
}
