use chrono::{TimeZone, Utc};
use tollgate_model::NanoUsd;
use tollgate_model::wire::v1::ReserveRequest;

use super::super::{
    BodyAction, Charge, Exchange, HeadersAction, NewBody, Release, RequestHead, ResponseAction,
};
use super::*;
use crate::testing::FakeHost;

pub(super) const CP: &str = r#"{"control_plane":{"cluster":"tollgate","token":"t0k"}}"#;
pub(super) const CP_CLOSED: &str =
    r#"{"control_plane":{"cluster":"tollgate","token":"t0k","fail_mode":"closed"}}"#;
pub(super) const CHAT: &str = "/v1/chat/completions";
const GEMINI: &str = "/v1beta/models/gemini-2.5-pro:generateContent";
pub(super) const CHAT_BODY: &str =
    r#"{"model":"gpt-4o","max_tokens":100,"messages":[{"role":"user","content":"Hello"}]}"#;
const GEMINI_BODY: &str = r#"{"contents":[{"parts":[{"text":"Hello"}]}]}"#;
pub(super) const OPENAI_JSON: &str = r#"{"id":"c","object":"chat.completion","model":"gpt-4o","choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":500,"total_tokens":1500}}"#;

fn host() -> FakeHost {
    FakeHost::at(Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap())
}

fn filter(json: &str) -> Filter {
    Filter::from_json(json.as_bytes()).unwrap()
}

/// Headers the fake client sent.
fn lookup_with(
    headers: &'static [(&'static str, &'static str)],
) -> impl FnMut(Lookup<'_>) -> Option<String> {
    move |what| match what {
        Lookup::Header(name) => headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned()),
        Lookup::Property(_) => None,
    }
}

pub(super) struct Call {
    pub(super) f: Filter,
    pub(super) h: FakeHost,
    pub(super) m: Metrics,
    pub(super) x: Exchange,
}

impl Call {
    pub(super) fn new(config: &str) -> Call {
        Call {
            f: filter(config),
            h: host(),
            m: Metrics::default(),
            x: Exchange::new(),
        }
    }

    pub(super) fn headers(
        &mut self,
        path: &str,
        headers: &'static [(&'static str, &'static str)],
    ) -> HeadersAction {
        let head = RequestHead {
            method: "POST",
            path,
            authority: None,
            ends_stream: false,
        };
        self.x.on_request_headers(
            &self.f,
            &mut self.m,
            &self.h,
            head,
            &mut lookup_with(headers),
        )
    }

    pub(super) fn body(&mut self, body: &str) -> BodyAction {
        let mut read = || Some(body.as_bytes().to_vec());
        self.x
            .on_request_body(&self.f, &mut self.m, &self.h, body.len(), true, &mut read)
    }

    pub(super) fn answer(&mut self, answer: Option<(u16, &str)>, held_body: &str) -> Resume {
        let mut read = |len: usize| {
            assert_eq!(len, held_body.len(), "the held body's length");
            Some(held_body.as_bytes().to_vec())
        };
        self.x.on_reserve_answer(
            &self.f,
            &mut self.m,
            &self.h,
            answer.map(|(s, b)| (s, b.as_bytes())),
            &mut read,
        )
    }

    pub(super) fn respond(
        &mut self,
        status: u16,
        chunks: &[&str],
    ) -> (Vec<(String, String)>, Vec<ChunkAction>) {
        // Held until admission (the actions then say `Hold`), it gets no headers.
        let headers = match self.x.on_response_headers(&self.f, status) {
            ResponseAction::Continue(headers) => headers.add,
            ResponseAction::Hold => Vec::new(),
        };
        let actions = chunks
            .iter()
            .map(|c| {
                self.x
                    .on_response_chunk(&self.f, &mut self.m, &self.h, c.as_bytes().to_vec())
            })
            .collect();
        (headers, actions)
    }

    pub(super) fn finish(&mut self) -> Option<Charge> {
        let charge = self.x.finish(&self.f, &mut self.m, &self.h, self.h.now());
        assert_eq!(
            self.x.finish(&self.f, &mut self.m, &self.h, self.h.now()),
            None
        );
        charge
    }
}

pub(super) fn reserve_request(call: &[u8]) -> ReserveRequest {
    serde_json::from_slice(call).unwrap()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn without_a_control_plane_nothing_is_reserved_or_settled() {
    let mut c = Call::new("{}");
    assert_eq!(
        c.headers(CHAT, &[]),
        HeadersAction::ReadBody { may_rewrite: true }
    );
    assert_eq!(c.body(CHAT_BODY), BodyAction::Continue);
    c.respond(200, &[OPENAI_JSON]);
    let charge = c.finish().unwrap();
    assert_eq!(charge.reserved, None);
    assert_eq!(charge.settlement(0), None);
}

#[test]
fn a_body_model_call_reserves_its_priced_worst_case_at_the_end_of_the_body() {
    let mut c = Call::new(CP);
    assert_eq!(
        c.headers(CHAT, &[("x-request-id", "abc 123")]),
        HeadersAction::ReadBody { may_rewrite: true }
    );
    let BodyAction::Reserve {
        replace: None,
        call,
    } = c.body(CHAT_BODY)
    else {
        panic!()
    };
    let req = reserve_request(&call);
    assert!(req.request_id.starts_with("abc123~"), "{}", req.request_id);
    assert_eq!(
        (req.model.as_str(), req.provider.as_str()),
        ("gpt-4o", "openai")
    );
    assert_eq!(req.max_output_tokens, 100);
    let worst = Usage {
        uncached_input_tokens: req.estimated_input_tokens,
        output_tokens: 100,
        estimated: true,
        ..Usage::default()
    };
    let priced = c.f.prices.cost("gpt-4o", &worst, c.h.now()).unwrap().total;
    assert_eq!(req.estimated_cost, priced);
    assert_eq!(req.scopes, [tollgate_model::Scope::global()]);
    assert_eq!(req.at_unix_ms, c.h.now().timestamp_millis());
    // More body while waiting (it cannot, at the end, but a later callback must not resume).
    let mut read = || None;
    assert_eq!(
        c.x.on_request_body(&c.f, &mut c.m, &c.h, 10, true, &mut read),
        BodyAction::Buffer
    );
}

#[test]
fn an_aliased_model_is_reserved_under_its_price_table_id() {
    let mut c = Call::new(
        r#"{"model_aliases":{"prod-chat":"gpt-4o"},
            "control_plane":{"cluster":"tollgate","token":"t0k"}}"#,
    );
    c.headers(CHAT, &[]);
    let BodyAction::Reserve { call, .. } = c.body(&CHAT_BODY.replace("gpt-4o", "prod-chat")) else {
        panic!()
    };
    assert_eq!(reserve_request(&call).model, "gpt-4o");
}

#[test]
fn a_replayed_client_request_id_never_reuses_a_reservation() {
    let ids: Vec<String> = (0..2)
        .map(|_| {
            let mut c = Call::new(CP);
            c.headers(CHAT, &[("x-request-id", "same")]);
            let BodyAction::Reserve { call, .. } = c.body(CHAT_BODY) else {
                panic!()
            };
            reserve_request(&call).request_id
        })
        .collect();
    assert_ne!(ids[0], ids[1]);
}

#[test]
fn allow_lets_the_call_through_and_settles_the_exact_charge_as_reserved() {
    let mut c = Call::new(CP);
    c.headers(CHAT, &[]);
    let BodyAction::Reserve { call, .. } = c.body(CHAT_BODY) else {
        panic!()
    };
    let req = reserve_request(&call);
    assert_eq!(
        c.answer(
            Some((200, r#"{"decision":"allow","remaining":2500000000}"#)),
            ""
        ),
        Resume::Go(Release::default())
    );
    let (headers, actions) = c.respond(200, &[OPENAI_JSON]);
    assert_eq!(actions, [ChunkAction::Pass]);
    assert_eq!(header(&headers, "x-tollgate-remaining-usd"), Some("2.5"));
    assert_eq!(
        header(&headers, "x-tollgate-reserved-usd"),
        Some(usd(req.estimated_cost).as_str())
    );
    let charge = c.finish().unwrap();
    let s = charge.settlement(7).unwrap();
    assert!(s.reserved);
    assert_eq!(s.request_id, req.request_id);
    assert_eq!(s.cost, charge.cost.unwrap().total);
    assert_eq!((s.usage.output_tokens, s.at_unix_ms), (500, 7));
    assert_eq!(s.billed, Some(true));
    assert_eq!(
        c.h.metric("tollgate_admission_total.provider.openai.outcome.allow"),
        1
    );
}

#[test]
fn response_headers_can_be_switched_off() {
    let mut c = Call::new(
        r#"{"response_headers":false,"control_plane":{"cluster":"tollgate","token":"t0k"}}"#,
    );
    c.headers(CHAT, &[]);
    c.body(CHAT_BODY);
    c.answer(Some((200, r#"{"decision":"allow","remaining":1}"#)), "");
    assert_eq!(c.respond(200, &[OPENAI_JSON]).0, []);
}

#[test]
fn deny_replies_in_the_providers_shape_and_settles_nothing() {
    let mut c = Call::new(CP);
    c.headers(CHAT, &[]);
    c.body(CHAT_BODY);
    let deny = r#"{"decision":"deny","budget_id":"team-a","reason":"usd","remaining":0,"retry_after_secs":60,"fail_mode":"open"}"#;
    let Resume::Reply(reply) = c.answer(Some((200, deny)), "") else {
        panic!()
    };
    assert_eq!(reply.status, 429);
    assert!(String::from_utf8_lossy(&reply.body).contains("team-a"));
    assert_eq!(c.finish(), None);
    assert_eq!(
        c.h.metric("tollgate_requests_total.provider.openai.outcome.denied"),
        1
    );
}

#[test]
fn a_downgrade_rewrites_the_body_model_and_prices_the_cheaper_one() {
    let mut c = Call::new(CP);
    c.headers(CHAT, &[]);
    c.body(CHAT_BODY);
    let answer = r#"{"decision":"downgrade","budget_id":"dg","model":"gpt-4o-mini"}"#;
    let Resume::Go(Release {
        path: None,
        body: Some(NewBody {
            replaces,
            bytes: body,
        }),
        answer: None,
    }) = c.answer(Some((200, answer)), CHAT_BODY)
    else {
        panic!()
    };
    assert_eq!(replaces, CHAT_BODY.len(), "the whole held body");
    assert_eq!(
        String::from_utf8(body).unwrap(),
        CHAT_BODY.replace("\"gpt-4o\"", "\"gpt-4o-mini\"")
    );
    let (headers, _) = c.respond(200, &[OPENAI_JSON]);
    assert_eq!(
        header(&headers, "x-tollgate-downgraded-from"),
        Some("gpt-4o")
    );
    let charge = c.finish().unwrap();
    assert_eq!(charge.model.as_deref(), Some("gpt-4o-mini"));
    let mini =
        c.f.prices
            .cost("gpt-4o-mini", &charge.usage, c.h.now())
            .unwrap();
    assert_eq!(charge.cost.unwrap().total, mini.total);
}

#[test]
fn a_path_model_call_with_a_length_reserves_at_the_headers_and_a_downgrade_rewrites_the_path() {
    let mut c = Call::new(CP);
    let HeadersAction::Reserve(call) = c.headers(GEMINI, &[("content-length", "44")]) else {
        panic!()
    };
    let req = reserve_request(&call);
    assert_eq!(req.model, "gemini-2.5-pro");
    assert_eq!(
        req.estimated_input_tokens,
        44 + crate::estimate::REQUEST_OVERHEAD_TOKENS,
        "one token per byte"
    );
    let answer =
        r#"{"decision":"downgrade","budget_id":"dg","model":"gemini-2.5-flash","remaining":5}"#;
    assert_eq!(
        c.answer(Some((200, answer)), ""),
        Resume::Go(Release {
            path: Some("/v1beta/models/gemini-2.5-flash:generateContent".into()),
            ..Release::default()
        })
    );
    // The body then flows as usual, and is not reserved again.
    assert_eq!(c.body(GEMINI_BODY), BodyAction::Continue);
    let usage = r#"{"candidates":[],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":5,"totalTokenCount":15}}"#;
    let (headers, _) = c.respond(200, &[usage]);
    let worst = Usage {
        uncached_input_tokens: req.estimated_input_tokens,
        output_tokens: req.max_output_tokens,
        estimated: true,
        ..Usage::default()
    };
    let flash =
        c.f.prices
            .cost("gemini-2.5-flash", &worst, c.h.now())
            .unwrap()
            .total;
    assert_eq!(
        header(&headers, "x-tollgate-reserved-usd"),
        Some(usd(flash).as_str()),
        "the cheaper model's worst case"
    );
    assert_eq!(
        header(&headers, "x-tollgate-remaining-usd"),
        Some("0.000000005")
    );
    let charge = c.finish().unwrap();
    assert_eq!(charge.model.as_deref(), Some("gemini-2.5-flash"));
    assert_eq!(charge.settlement(0).unwrap().model, "gemini-2.5-flash");
}

#[test]
fn a_path_model_downgrade_that_cannot_be_carried_out_is_refused_and_released() {
    let mut c = Call::new(CP);
    // No content-length: reserved at the end of the body, where the path cannot change.
    // Not an OpenAI-style body, but a control plane may downgrade any call.
    assert_eq!(
        c.headers(GEMINI, &[]),
        HeadersAction::ReadBody { may_rewrite: true }
    );
    let BodyAction::Reserve { .. } = c.body(GEMINI_BODY) else {
        panic!()
    };
    let answer = r#"{"decision":"downgrade","budget_id":"dg","model":"gemini-2.5-flash"}"#;
    let Resume::Reply(reply) = c.answer(Some((200, answer)), GEMINI_BODY) else {
        panic!()
    };
    assert_eq!(reply.status, 429);
    assert!(String::from_utf8_lossy(&reply.body).contains("gemini-2.5-flash"));
    let charge = c.finish().unwrap();
    let s = charge.settlement(0).unwrap();
    assert_eq!((s.cost, s.reserved), (NanoUsd::ZERO, true));
}

#[test]
fn an_unreachable_control_plane_follows_the_fail_mode() {
    let mut open = Call::new(CP);
    open.headers(CHAT, &[]);
    open.body(CHAT_BODY);
    assert_eq!(
        open.answer(Some((503, "upstream connect error")), ""),
        Resume::Go(Release::default())
    );
    open.respond(200, &[OPENAI_JSON]);
    let s = open.finish().unwrap().settlement(0).unwrap();
    assert!(!s.reserved, "settled later, unreserved");
    assert!(s.cost > NanoUsd::ZERO);
    assert_eq!(
        open.h
            .metric("tollgate_control_plane_problems_total.problem.unavailable"),
        1
    );

    let mut closed = Call::new(CP_CLOSED);
    closed.headers(CHAT, &[]);
    closed.body(CHAT_BODY);
    let Resume::Reply(reply) = closed.answer(None, "") else {
        panic!()
    };
    assert_eq!(reply.status, 503);
    assert_eq!(closed.finish(), None);
    assert_eq!(
        closed
            .h
            .metric("tollgate_admission_total.provider.openai.outcome.failed_closed"),
        1
    );
}

#[test]
fn a_client_that_leaves_after_its_reservation_releases_it() {
    let mut c = Call::new(CP);
    c.headers(CHAT, &[]);
    c.body(CHAT_BODY);
    c.answer(Some((200, r#"{"decision":"allow"}"#)), "");
    let s = c.finish().unwrap().settlement(0).unwrap();
    assert_eq!(
        (s.cost, s.reserved, s.billed),
        (NanoUsd::ZERO, true, Some(false))
    );
    // Gone while the reservation was in flight (held at the headers).
    let mut c = Call::new(CP);
    c.headers(GEMINI, &[("content-length", "44")]);
    let s = c.finish().unwrap().settlement(0).unwrap();
    assert_eq!(
        (s.cost, s.reserved, s.billed),
        (NanoUsd::ZERO, true, Some(false))
    );
}

#[test]
fn a_stream_past_its_cutoff_ends_with_an_error_event_then_a_reset_and_is_charged_what_streamed() {
    let mut c = Call::new(CP);
    c.headers(CHAT, &[]);
    let body = r#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hello"}]}"#;
    c.body(body);
    // Enough for the input and a few output tokens only.
    c.answer(
        Some((
            200,
            r#"{"decision":"allow","remaining":0,"stream_cutoff":500000}"#,
        )),
        "",
    );
    let delta = r#"data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"content":"The quick brown fox jumps over the lazy dog again and again and again."},"finish_reason":null}]}

"#;
    let (_, actions) = c.respond(200, &[delta; 40]);
    let cut = actions
        .iter()
        .position(|a| matches!(a, ChunkAction::Replace(_)))
        .expect("cut off");
    assert!(cut > 0, "the first chunk fits");
    let ChunkAction::Replace(last) = &actions[cut] else {
        unreachable!()
    };
    let text = String::from_utf8_lossy(last);
    assert!(text.starts_with(delta), "the chunk itself still goes out");
    assert!(text.contains("budget_exceeded"), "{text}");
    assert_eq!(actions[cut + 1], ChunkAction::Reset);
    assert!(actions[cut + 2..].iter().all(|a| *a == ChunkAction::Pass));
    let charge = c.finish().unwrap();
    assert!(charge.usage.estimated);
    assert!(charge.cost.unwrap().total > NanoUsd(500_000));
    assert_eq!(
        c.h.metric("tollgate_stream_cutoffs_total.provider.openai"),
        1
    );
}
