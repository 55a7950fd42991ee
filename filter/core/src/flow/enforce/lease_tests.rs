//! Calls admitted from a lease: no reserve, settled with the lease's id; a call the lease
//! cannot cover is reserved on its own.

use tollgate_model::NanoUsd;

use super::super::BodyAction;
use super::tests::{CHAT, CHAT_BODY, CP, Call, OPENAI_JSON, reserve_request};
use super::*;
use crate::lease::Book;

/// A first call of the chat key, reserved on its own: its estimate and key; the key then
/// gets a lease of `usd` nano-USD and `requests` calls.
fn leased_key(c: &mut Call, usd: i64, requests: u64) -> NanoUsd {
    c.headers(CHAT, &[]);
    let BodyAction::Reserve { call, .. } = c.body(CHAT_BODY) else {
        panic!("no lease yet: reserved")
    };
    let key =
        c.x.lease_wanted()
            .cloned()
            .expect("a priced call wants a lease");
    let now_ms = c.h.now().timestamp_millis();
    let mut book = Book::new(1);
    book.want(key, now_ms);
    let posts = book.tick(&c.h, now_ms);
    let lease = format!(
        r#"{{"lease":{{"lease_id":"l1@acme","usd":{usd},"requests":{requests},"admit_until_unix_ms":{}}}}}"#,
        now_ms + 30_000
    );
    book.answered(&c.h, &posts[0].purpose, Some(200), lease.as_bytes(), now_ms);
    reserve_request(&call).estimated_cost
}

#[test]
fn a_call_is_admitted_from_its_keys_lease_without_a_reserve_and_settled_with_the_lease_id() {
    let mut first = Call::new(CP);
    let estimate = leased_key(&mut first, 1_000_000_000, 10);
    // The next call of the key, on the same Envoy (the lease is in shared data).
    let mut c = Call::new(CP);
    c.h = first.h;
    c.headers(CHAT, &[]);
    assert_eq!(c.body(CHAT_BODY), BodyAction::Continue, "no round trip");
    assert_eq!(c.x.lease_wanted(), None);
    let (headers, _) = c.respond(200, &[OPENAI_JSON]);
    assert!(
        headers.iter().any(|(n, _)| n == "x-tollgate-reserved-usd"),
        "{headers:?}"
    );
    let s = c.finish().unwrap().settlement(0).unwrap();
    assert!(s.reserved, "covered by the lease");
    assert_eq!(s.lease_id.as_deref(), Some("l1@acme"));
    assert_eq!(s.lease_usd, Some(estimate), "the worst case it took");
    assert!(s.lease_tokens.is_some_and(|t| t > 100));
    assert!(s.cost > NanoUsd::ZERO);
    assert_eq!(
        c.h.metric("tollgate_admission_total.provider.openai.outcome.leased"),
        1
    );
}

#[test]
fn a_call_the_lease_cannot_cover_is_reserved_on_its_own_and_wants_more() {
    let mut first = Call::new(CP);
    let estimate = leased_key(&mut first, 1, 10);
    assert!(estimate > NanoUsd(1));
    let mut c = Call::new(CP);
    c.h = first.h;
    c.headers(CHAT, &[]);
    assert!(matches!(c.body(CHAT_BODY), BodyAction::Reserve { .. }));
    assert!(c.x.lease_wanted().is_some());
}

#[test]
fn a_leased_call_that_gets_no_answer_is_settled_at_zero_with_its_lease() {
    let mut first = Call::new(CP);
    leased_key(&mut first, 1_000_000_000, 10);
    let mut c = Call::new(CP);
    c.h = first.h;
    c.headers(CHAT, &[]);
    c.body(CHAT_BODY);
    let s = c.finish().unwrap().settlement(0).unwrap();
    assert_eq!((s.cost, s.reserved), (NanoUsd::ZERO, true));
    assert_eq!(s.lease_id.as_deref(), Some("l1@acme"));
}

#[test]
fn a_call_whose_answer_came_before_admission_is_reserved_so_that_the_answer_is_released() {
    let mut first = Call::new(CP);
    leased_key(&mut first, 1_000_000_000, 10);
    let mut c = Call::new(CP);
    c.h = first.h;
    c.headers(CHAT, &[]);
    assert_eq!(
        c.x.on_response_headers(&c.f, 200),
        super::super::ResponseAction::Hold
    );
    assert!(matches!(c.body(CHAT_BODY), BodyAction::Reserve { .. }));
    let super::super::Resume::Go(release) =
        c.answer(Some((200, r#"{"decision":"allow"}"#)), CHAT_BODY)
    else {
        panic!("not admitted")
    };
    assert!(release.answer.is_some(), "the held answer goes on");
}
