use super::*;
use crate::providers::{Api, Provider};

fn cp(json: &str) -> ControlPlane {
    ControlPlane::try_from(serde_json::from_str::<ControlPlaneDto>(json).unwrap()).unwrap()
}

fn open() -> ControlPlane {
    cp(r#"{"cluster":"tollgate","token":"t0k"}"#)
}

fn route() -> Route {
    Route::new(Provider::Anthropic, Api::Messages)
}

fn header<'a>(r: &'a LocalReply, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn an_allow_answer_lets_the_call_through() {
    let (a, p) = decide(
        &open(),
        &route(),
        Some((200, br#"{"decision":"allow","remaining":5000000000}"#)),
        None,
    );
    assert_eq!(
        a,
        Admission::Allow {
            remaining: Some(NanoUsd(5_000_000_000)),
            stream_cutoff: None
        }
    );
    assert_eq!(p, None);
}

#[test]
fn an_unpriced_model_refusal_names_the_model_in_the_providers_shape() {
    let body = br#"{"decision":"deny","budget_id":"team-a","reason":"unknown_model","remaining":0,"fail_mode":"open"}"#;
    let answer = Some((200, &body[..]));
    let (Admission::Deny(reply), None) = decide(&open(), &route(), answer, Some("claude-9")) else {
        panic!()
    };
    assert_eq!(reply.status, 429);
    let json: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(json["type"], "error");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(r#"model "claude-9" has no price"#),
        "{message}"
    );
    assert!(message.contains("team-a"), "{message}");
    assert_eq!(header(&reply, "x-tollgate-budget"), Some("team-a"));
    assert_eq!(header(&reply, "retry-after"), None);
}

#[test]
fn a_deny_answer_becomes_a_429_in_the_providers_shape_with_budget_headers() {
    let body = br#"{"decision":"deny","budget_id":"team-a","reason":"usd","remaining":1500000,"retry_after_secs":3600,"fail_mode":"open"}"#;
    let (Admission::Deny(reply), None) = decide(&open(), &route(), Some((200, body)), None) else {
        panic!()
    };
    assert_eq!(reply.status, 429);
    let json: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(json["type"], "error");
    assert_eq!(json["error"]["type"], "rate_limit_error");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("team-a")
    );
    assert_eq!(header(&reply, "x-tollgate-budget"), Some("team-a"));
    assert_eq!(header(&reply, "x-tollgate-remaining-usd"), Some("0.0015"));
    assert_eq!(header(&reply, "retry-after"), Some("3600"));
}

#[test]
fn a_budget_failing_closed_on_a_store_outage_refuses_with_a_503_whatever_the_plugins_mode() {
    let body = br#"{"decision":"deny","budget_id":"team-a","reason":"store_unavailable","remaining":0,"retry_after_secs":1,"fail_mode":"closed"}"#;
    let (Admission::Deny(reply), None) = decide(&open(), &route(), Some((200, body)), None) else {
        panic!()
    };
    assert_eq!(reply.status, 503);
    let json: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(json["type"], "error");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(r#"budget "team-a" could not be checked"#),
        "{message}"
    );
    assert_eq!(header(&reply, "x-tollgate-budget"), Some("team-a"));
    assert_eq!(header(&reply, "retry-after"), Some("1"));
}

#[test]
fn an_unreserved_allow_is_a_fail_open_admission_whatever_the_plugins_mode() {
    let closed = cp(r#"{"cluster":"tollgate","token":"t0k","fail_mode":"closed"}"#);
    let body = br#"{"decision":"allow","unreserved":true}"#;
    assert_eq!(
        decide(&closed, &route(), Some((200, body)), None),
        (Admission::FailedOpen, None)
    );
}

#[test]
fn a_downgrade_answer_names_the_cheaper_model() {
    let body = br#"{"decision":"downgrade","budget_id":"b","model":"gpt-4o-mini","remaining":7}"#;
    let (a, _) = decide(&open(), &route(), Some((200, body)), None);
    assert_eq!(
        a,
        Admission::Downgrade {
            model: "gpt-4o-mini".into(),
            budget_id: "b".into(),
            remaining: Some(NanoUsd(7)),
        }
    );
}

#[test]
fn envoys_own_503_and_504_and_garbage_follow_the_fail_mode() {
    let closed = cp(r#"{"cluster":"tollgate","token":"t0k","fail_mode":"closed"}"#);
    type Answer<'a> = Option<(u16, &'a [u8])>;
    let cases: [(Answer<'_>, &str); 5] = [
        (None, "not_sent"),
        (
            Some((
                503,
                b"upstream connect error or disconnect/reset before headers",
            )),
            "unavailable",
        ),
        (Some((504, b"upstream request timeout")), "timeout"),
        (
            Some((401, br#"{"error":{"code":"invalid_token"}}"#)),
            "error_status",
        ),
        (Some((200, b"upstream request timeout")), "unreadable"),
    ];
    for (answer, label) in cases {
        let (a, p) = decide(&open(), &route(), answer, None);
        assert_eq!(a, Admission::FailedOpen, "{label}");
        assert_eq!(p.unwrap().as_str(), label);
        let (Admission::Deny(reply), Some(_)) = decide(&closed, &route(), answer, None) else {
            panic!("{label}")
        };
        assert_eq!(reply.status, 503);
    }
}

#[test]
fn control_plane_config_errors_name_the_field() {
    let bad = |json: &str| {
        ControlPlane::try_from(serde_json::from_str::<ControlPlaneDto>(json).unwrap())
            .unwrap_err()
            .0
    };
    assert_eq!(
        bad(r#"{"cluster":"","token":"t"}"#),
        "control_plane.cluster"
    );
    assert_eq!(
        bad(r#"{"cluster":"c","token":"a b"}"#),
        "control_plane.token"
    );
    assert_eq!(
        bad(r#"{"cluster":"c","token":"t","timeout_ms":0}"#),
        "control_plane.timeout_ms"
    );
    assert_eq!(
        bad(r#"{"cluster":"c","token":"t","deny_status":200}"#),
        "control_plane.deny_status"
    );
    assert_eq!(
        bad(r#"{"cluster":"c","token":"t","price_refresh_ms":999}"#),
        "control_plane.price_refresh_ms"
    );
    let c = open();
    assert_eq!(c.timeout, Duration::from_millis(50));
    assert_eq!(c.price_refresh, Duration::from_secs(10));
    assert!(
        c.reserve_headers()
            .contains(&("authorization", "Bearer t0k"))
    );
}
