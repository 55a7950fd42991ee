//! The edges of admission in real Envoy: a body the filter cannot read is still checked
//! against its budgets, and a reserve the control plane answers too late (Redis stalled)
//! leaves nothing reserved.

use std::process::Command;
use std::time::Duration;

use tollgate_e2e::stack::{Stack, StackOptions, TEAM_HEADER, provider_host};

use super::{answer, budget, chat_call};

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
    let stack = Stack::start(StackOptions::default()).await.unwrap();
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
