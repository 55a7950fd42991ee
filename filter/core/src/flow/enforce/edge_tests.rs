//! The edges of admission: calls whose model cannot be read, a control plane that answers
//! too late, and counting every decision once.

use tollgate_model::NanoUsd;

use super::super::BodyAction;
use super::tests::{CHAT, CHAT_BODY, CP, CP_CLOSED, Call, OPENAI_JSON, reserve_request};
use super::*;

/// `tollgate_admission_total`, summed over its outcomes, for OpenAI.
fn admissions(c: &Call) -> i64 {
    [
        "allow",
        "downgrade",
        "deny",
        "failed_open",
        "failed_closed",
        "abandoned",
    ]
    .iter()
    .map(|o| {
        c.h.metric(&format!(
            "tollgate_admission_total.provider.openai.outcome.{o}"
        ))
    })
    .sum()
}

#[test]
fn a_body_whose_model_cannot_be_read_reserves_its_worst_case_at_the_dearest_prices() {
    let padded = format!(
        r#"{{"model":7,"max_tokens":100,"messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(2000)
    );
    for body in [
        "not json at all, just padding".to_owned(),
        r#"{"model":"","messages":[]}"#.to_owned(),
        padded,
    ] {
        let mut c = Call::new(CP);
        c.headers(CHAT, &[]);
        let BodyAction::Reserve { call, .. } = c.body(&body) else {
            panic!("{body}: not reserved")
        };
        let req = reserve_request(&call);
        assert_eq!(req.model, "", "{body}");
        // Dearer than the same tokens on any one model: the table's dearest.
        let worst = Usage {
            uncached_input_tokens: req.estimated_input_tokens,
            output_tokens: req.max_output_tokens,
            estimated: true,
            ..Usage::default()
        };
        let dearest =
            c.f.prices
                .models()
                .iter()
                .filter_map(|m| c.f.prices.cost(m.id(), &worst, c.h.now()).ok())
                .map(|cost| cost.total)
                .max()
                .unwrap();
        assert!(req.estimated_cost > NanoUsd::ZERO, "{body}");
        assert_eq!(req.estimated_cost, dearest, "{body}");
    }
}

#[test]
fn a_body_over_the_size_cap_is_still_checked_against_its_budgets() {
    let config =
        r#"{"control_plane":{"cluster":"tollgate","token":"t0k"},"max_request_body_bytes":4096}"#;
    let mut c = Call::new(config);
    c.headers(CHAT, &[]);
    let mut read = || None;
    let action =
        c.x.on_request_body(&c.f, &mut c.m, &c.h, 5000, false, &mut read);
    let BodyAction::Reserve { call, .. } = action else {
        panic!("{action:?}")
    };
    let req = reserve_request(&call);
    assert!(req.estimated_input_tokens >= 5000);
    assert!(req.estimated_cost > NanoUsd::ZERO);
    // A spent budget refuses it.
    let deny = r#"{"decision":"deny","budget_id":"team","reason":"usd","remaining":0,"fail_mode":"closed"}"#;
    let Resume::Reply(reply) = c.answer(Some((200, deny)), "") else {
        panic!()
    };
    assert_eq!(reply.status, 429);
    assert_eq!(c.finish(), None);
}

#[test]
fn a_reserve_answered_too_late_under_fail_closed_is_refused_and_settled_at_zero() {
    // 504: Envoy's callout timeout; 500: the control plane's own store timed out; an
    // unreadable 200. Each may have reserved (the store carries the script out late).
    for answer in [
        Some((504, "upstream request timeout")),
        Some((500, "{}")),
        Some((200, "<html>")),
    ] {
        let mut c = Call::new(CP_CLOSED);
        c.headers(CHAT, &[]);
        c.body(CHAT_BODY);
        let Resume::Reply(reply) = c.answer(answer, "") else {
            panic!("{answer:?}")
        };
        assert_eq!(reply.status, 503);
        let s = c.finish().unwrap().settlement(0).unwrap();
        assert_eq!((s.cost, s.reserved), (NanoUsd::ZERO, true), "{answer:?}");
    }
    // A reserve that never left (unknown cluster) reserved nothing: nothing to settle.
    let mut c = Call::new(CP_CLOSED);
    c.headers(CHAT, &[]);
    c.body(CHAT_BODY);
    assert!(matches!(c.answer(None, ""), Resume::Reply(_)));
    assert_eq!(c.finish(), None);
}

#[test]
fn every_reserve_posted_is_counted_once_as_an_admission_decision() {
    let answers: [Option<(u16, &str)>; 5] = [
        Some((200, r#"{"decision":"allow"}"#)),
        Some((
            200,
            r#"{"decision":"deny","budget_id":"b","reason":"usd","remaining":0,"fail_mode":"closed"}"#,
        )),
        Some((504, "upstream request timeout")),
        Some((
            200,
            r#"{"decision":"downgrade","budget_id":"b","model":"gpt-4o-mini"}"#,
        )),
        None,
    ];
    for config in [CP, CP_CLOSED] {
        for answer in answers {
            let mut c = Call::new(config);
            c.headers(CHAT, &[]);
            c.body(CHAT_BODY);
            c.answer(answer, CHAT_BODY);
            c.respond(200, &[OPENAI_JSON]);
            c.finish();
            assert_eq!(admissions(&c), 1, "{config} {answer:?}");
        }
        // The stream ended (client gone, or an upstream that answered early and closed)
        // while the reserve was in flight; its late answer changes nothing.
        let mut c = Call::new(config);
        c.headers(CHAT, &[]);
        c.body(CHAT_BODY);
        c.respond(200, &[OPENAI_JSON]);
        c.finish();
        c.answer(Some((200, r#"{"decision":"allow"}"#)), "");
        assert_eq!(admissions(&c), 1, "{config} abandoned");
        assert_eq!(
            c.h.metric("tollgate_admission_total.provider.openai.outcome.abandoned"),
            1
        );
    }
}

#[test]
fn an_answer_waits_until_the_calls_admission_is_decided() {
    // Body model: from the headers until the control plane answered.
    let mut c = Call::new(CP);
    c.headers(CHAT, &[]);
    assert!(c.x.answer_waits_for_admission(), "request still being read");
    c.body(CHAT_BODY);
    assert!(c.x.answer_waits_for_admission(), "reservation in flight");
    c.answer(Some((200, r#"{"decision":"allow"}"#)), "");
    assert!(!c.x.answer_waits_for_admission());

    // Refused: nothing to release, the refusal replaces the answer.
    let mut c = Call::new(CP);
    c.headers(CHAT, &[]);
    c.body(CHAT_BODY);
    let deny =
        r#"{"decision":"deny","budget_id":"b","reason":"usd","remaining":0,"fail_mode":"closed"}"#;
    assert!(matches!(c.answer(Some((200, deny)), ""), Resume::Reply(_)));
    assert!(!c.x.answer_waits_for_admission());

    // Without a control plane nothing is decided, nothing waits.
    let mut c = Call::new("{}");
    c.headers(CHAT, &[]);
    assert!(!c.x.answer_waits_for_admission());
}

/// A control plane, and Bedrock's own id for `claude-3-5-haiku` among the names the table
/// knows.
const CP_BEDROCK_HAIKU: &str = r#"{"control_plane":{"cluster":"tollgate","token":"t0k"},
    "model_aliases":{"anthropic.claude-3-5-haiku-20241022-v1:0":"claude-3-5-haiku"}}"#;

/// A Bedrock Converse call on `model` with a length, its headers read (reserved there).
fn bedrock_call(
    config: &str,
    model_path: &'static str,
    headers: &'static [(&'static str, &'static str)],
) -> Call {
    let mut c = Call::new(config);
    let head = super::super::RequestHead {
        method: "POST",
        path: model_path,
        authority: Some("bedrock-runtime.us-east-1.amazonaws.com"),
        ends_stream: false,
    };
    let action =
        c.x.on_request_headers(&c.f, &mut c.m, &c.h, head, &mut |what| match what {
            crate::scopes::Lookup::Header(name) => headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned()),
            crate::scopes::Lookup::Property(_) => None,
        });
    assert!(
        matches!(action, super::super::HeadersAction::Reserve(_)),
        "{action:?}"
    );
    c
}

const BEDROCK_SONNET: &str = "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse";
const DOWNGRADE_HAIKU: &str =
    r#"{"decision":"downgrade","budget_id":"dg","model":"claude-3-5-haiku","remaining":5}"#;

#[test]
fn a_bedrock_downgrade_writes_bedrocks_own_model_id_into_the_path() {
    let mut c = bedrock_call(
        CP_BEDROCK_HAIKU,
        BEDROCK_SONNET,
        &[
            ("content-length", "60"),
            ("authorization", "Bearer bedrock-api-key"),
        ],
    );
    assert_eq!(
        c.answer(Some((200, DOWNGRADE_HAIKU)), ""),
        Resume::Go(Release {
            path: Some("/model/us.anthropic.claude-3-5-haiku-20241022-v1%3A0/converse".into()),
            ..Release::default()
        })
    );
}

#[test]
fn a_downgrade_of_a_sigv4_signed_request_is_refused_naming_the_cheaper_model() {
    let mut c = bedrock_call(
        CP_BEDROCK_HAIKU,
        BEDROCK_SONNET,
        &[
            ("content-length", "60"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261101/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc",
            ),
        ],
    );
    let Resume::Reply(reply) = c.answer(Some((200, DOWNGRADE_HAIKU)), "") else {
        panic!("a signed request was rewritten")
    };
    assert_eq!(reply.status, 429);
    let text = String::from_utf8_lossy(&reply.body);
    assert!(
        text.contains("us.anthropic.claude-3-5-haiku-20241022-v1:0") && text.contains("SigV4"),
        "{text}"
    );
    // Released: settled at zero.
    let s = c.finish().unwrap().settlement(0).unwrap();
    assert_eq!((s.cost, s.reserved), (NanoUsd::ZERO, true));
}

#[test]
fn a_bedrock_downgrade_to_a_model_whose_bedrock_id_is_unknown_is_refused_naming_it() {
    let mut c = bedrock_call(
        CP,
        BEDROCK_SONNET,
        &[
            ("content-length", "60"),
            ("authorization", "Bearer bedrock-api-key"),
        ],
    );
    let Resume::Reply(reply) = c.answer(Some((200, DOWNGRADE_HAIKU)), "") else {
        panic!("sent with a guessed Bedrock id")
    };
    assert_eq!(reply.status, 429);
    let text = String::from_utf8_lossy(&reply.body);
    assert!(
        text.contains("claude-3-5-haiku") && text.contains("Bedrock id"),
        "{text}"
    );
    let s = c.finish().unwrap().settlement(0).unwrap();
    assert_eq!((s.cost, s.reserved), (NanoUsd::ZERO, true));
}
