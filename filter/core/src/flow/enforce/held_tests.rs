//! An answer the upstream sends before the call is admitted: held by the exchange, then let
//! go (read for the charge) or replaced by the refusal; and a request held at its headers
//! that has no body.

use super::super::{BodyAction, HeadersAction, NewBody, Release, ResponseAction, ResponseHeaders};
use super::tests::{CHAT, CHAT_BODY, CP, Call, OPENAI_JSON};
use super::*;

const ALLOW: &str = r#"{"decision":"allow","remaining":2500000000}"#;

fn chunk(c: &mut Call, bytes: &str) -> ChunkAction {
    c.x.on_response_chunk(&c.f, &mut c.m, &c.h, bytes.as_bytes().to_vec())
}

#[test]
fn an_answer_sent_before_admission_is_held_then_released_with_its_headers_and_charged() {
    let mut c = Call::new(CP);
    c.headers(CHAT, &[]);
    assert!(
        c.x.reads_response(),
        "the answer must reach the exchange to be held"
    );
    assert_eq!(c.x.on_response_headers(&c.f, 200), ResponseAction::Hold);
    // Envoy buffers the held body: each callback shows everything buffered so far, and one
    // with nothing new keeps what is held.
    assert_eq!(chunk(&mut c, &OPENAI_JSON[..40]), ChunkAction::Hold);
    assert_eq!(chunk(&mut c, ""), ChunkAction::Hold);
    let BodyAction::Reserve { .. } = c.body(CHAT_BODY) else {
        panic!("not reserved")
    };
    assert_eq!(chunk(&mut c, OPENAI_JSON), ChunkAction::Hold);
    assert_eq!(chunk(&mut c, ""), ChunkAction::Hold);

    let Resume::Go(Release {
        path: None,
        body: None,
        answer: Some(headers),
    }) = c.answer(Some((200, ALLOW)), CHAT_BODY)
    else {
        panic!("the held answer was not released")
    };
    assert!(
        headers
            .add
            .contains(&("x-tollgate-remaining-usd".to_owned(), "2.5".to_owned())),
        "{headers:?}"
    );
    assert!(!headers.drop_content_length);
    // Released: later chunks pass as usual.
    assert_eq!(chunk(&mut c, ""), ChunkAction::Pass);
    let charge = c.finish().unwrap();
    assert_eq!(charge.outcome, Outcome::Charged);
    assert_eq!(
        (
            charge.usage.total_input_tokens(),
            charge.usage.output_tokens
        ),
        (1000, 500),
        "the held body, read whole"
    );
    assert_eq!(charge.reserved, Some(true));
}

#[test]
fn an_answer_held_for_a_refused_call_is_dropped_and_nothing_is_charged() {
    let mut c = Call::new(CP);
    c.headers(CHAT, &[]);
    c.body(CHAT_BODY);
    assert_eq!(c.x.on_response_headers(&c.f, 200), ResponseAction::Hold);
    assert_eq!(chunk(&mut c, OPENAI_JSON), ChunkAction::Hold);
    let deny =
        r#"{"decision":"deny","budget_id":"b","reason":"usd","remaining":0,"fail_mode":"closed"}"#;
    assert!(matches!(c.answer(Some((200, deny)), ""), Resume::Reply(_)));
    assert!(!c.x.reads_response(), "the refusal replaced it");
    assert_eq!(c.finish(), None);
}

#[test]
fn an_answer_held_when_the_reserve_cannot_be_sent_goes_on_under_the_open_fail_mode() {
    let mut c = Call::new(CP);
    c.headers(CHAT, &[]);
    assert_eq!(c.x.on_response_headers(&c.f, 200), ResponseAction::Hold);
    c.body(CHAT_BODY);
    let Resume::Go(Release {
        answer: Some(headers),
        ..
    }) = c.answer(None, CHAT_BODY)
    else {
        panic!("the held answer was not released")
    };
    assert_eq!(headers, ResponseHeaders::default(), "nothing reserved");
    assert_eq!(c.finish().unwrap().reserved, Some(false));
}

#[test]
fn an_answer_held_for_a_call_admitted_at_its_headers_goes_on_before_the_body_is_read() {
    // A path-model call reserved at its headers, answered before its body came: admitted,
    // its answer goes on unread, as the body was not read yet.
    let mut c = Call::new(CP);
    let gemini = "/v1beta/models/gemini-2.5-pro:generateContent";
    let HeadersAction::Reserve(_) = c.headers(gemini, &[("content-length", "44")]) else {
        panic!("not reserved at the headers")
    };
    assert_eq!(c.x.on_response_headers(&c.f, 200), ResponseAction::Hold);
    assert_eq!(
        c.answer(Some((200, ALLOW)), ""),
        Resume::Go(Release {
            answer: Some(ResponseHeaders::default()),
            ..Release::default()
        })
    );
    assert!(!c.x.reads_response());
}

#[test]
fn a_request_held_at_its_headers_without_a_body_is_read_as_empty_when_admitted() {
    let mut c = Call::new(CP);
    let head = RequestHead {
        method: "POST",
        path: "/v1beta/models/gemini-2.5-pro:generateContent",
        authority: None,
        ends_stream: true,
    };
    let mut length =
        |what: Lookup<'_>| matches!(what, Lookup::Header("content-length")).then(|| "0".to_owned());
    let HeadersAction::Reserve(_) =
        c.x.on_request_headers(&c.f, &mut c.m, &c.h, head, &mut length)
    else {
        panic!("not reserved at the headers")
    };
    assert_eq!(
        c.answer(Some((200, ALLOW)), ""),
        Resume::Go(Release::default())
    );
    // No body callback comes: the exchange read the empty body and now reads the answer.
    assert!(c.x.reads_response());
    let usage = r#"{"candidates":[],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":5,"totalTokenCount":15}}"#;
    c.respond(200, &[usage]);
    let charge = c.finish().unwrap();
    assert_eq!(charge.outcome, Outcome::Charged);
    assert_eq!(charge.usage.output_tokens, 5);
    assert_eq!(charge.reserved, Some(true));
}

#[test]
fn a_downgraded_body_replaces_the_whole_body_held_for_the_reservation() {
    // A streamed chat call: the body held is the one with the usage option added.
    let mut c = Call::new(CP);
    c.headers(CHAT, &[]);
    let body = r#"{"model":"gpt-4o","stream":true,"messages":[]}"#;
    let BodyAction::Reserve {
        replace: Some(sent),
        ..
    } = c.body(body)
    else {
        panic!("no usage option added")
    };
    let downgrade = r#"{"decision":"downgrade","budget_id":"dg","model":"gpt-4o-mini"}"#;
    let sent = String::from_utf8(sent).unwrap();
    let Resume::Go(Release {
        body: Some(NewBody { replaces, bytes }),
        ..
    }) = c.answer(Some((200, downgrade)), &sent)
    else {
        panic!("not rewritten")
    };
    assert_eq!(replaces, sent.len());
    assert!(String::from_utf8(bytes).unwrap().contains("gpt-4o-mini"));
}
