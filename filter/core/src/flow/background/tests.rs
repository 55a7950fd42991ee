//! OpenAI background responses through the exchange, with the recorded answers of
//! `tests/fixtures/background/`.

use chrono::{TimeZone, Utc};
use tollgate_model::wire::v1::ReserveRequest;

use super::*;
use crate::flow::{BodyAction, ChunkAction, HeadersAction, Release, RequestHead, Resume};
use crate::scopes::Lookup;
use crate::testing::FakeHost;

const CP: &str = r#"{"control_plane":{"cluster":"tollgate","token":"t0k"}}"#;
const QUEUED: &str =
    include_str!("../../../../../tests/fixtures/openai-responses-background-queued.json");
const COMPLETED: &str =
    include_str!("../../../../../tests/fixtures/openai-responses-background-completed.json");
const RESUMED: &str =
    include_str!("../../../../../tests/fixtures/openai-responses-background-resumed.sse");
const CREATE: &str = r#"{"model":"o3","input":"Summarise the filings","background":true}"#;

struct Call {
    f: Filter,
    h: FakeHost,
    m: Metrics,
    x: Exchange,
}

impl Call {
    fn new(config: &str) -> Call {
        Call {
            f: Filter::from_json(config.as_bytes()).unwrap(),
            h: FakeHost::at(Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()),
            m: Metrics::default(),
            x: Exchange::new(),
        }
    }

    fn headers(&mut self, method: &str, path: &str) -> HeadersAction {
        let head = RequestHead {
            method,
            path,
            authority: Some("api.openai.com"),
            ends_stream: false,
        };
        let mut lookup = |_: Lookup<'_>| None;
        self.x
            .on_request_headers(&self.f, &mut self.m, &self.h, head, &mut lookup)
    }

    fn body(&mut self, body: &str) -> BodyAction {
        let mut read = || Some(body.as_bytes().to_vec());
        self.x
            .on_request_body(&self.f, &mut self.m, &self.h, body.len(), true, &mut read)
    }

    fn respond(&mut self, status: u16, answer: &str, piece: usize) {
        self.x.on_response_headers(&self.f, status);
        for chunk in answer.as_bytes().chunks(piece) {
            let action = self
                .x
                .on_response_chunk(&self.f, &mut self.m, &self.h, chunk.to_vec());
            assert_eq!(action, ChunkAction::Pass);
        }
    }

    fn finish(&mut self) -> Option<Charge> {
        self.x.finish(&self.f, &mut self.m, &self.h, self.h.now())
    }

    fn requests(&self, outcome: &str) -> i64 {
        self.h.metric(&format!(
            "tollgate_requests_total.provider.openai.outcome.{outcome}"
        ))
    }
}

/// Creates a background response through the control plane: its reserve request and the body
/// that went upstream.
fn create(c: &mut Call) -> (ReserveRequest, Vec<u8>) {
    c.headers("POST", "/v1/responses");
    let BodyAction::Reserve {
        replace: Some(sent),
        call,
    } = c.body(CREATE)
    else {
        panic!("a background creation is reserved and tagged")
    };
    let req: ReserveRequest = serde_json::from_slice(&call).unwrap();
    let resume = c.x.on_reserve_answer(
        &c.f,
        &mut c.m,
        &c.h,
        Some((200, br#"{"decision":"allow","remaining":5000000000}"#)),
        &mut |_| Some(sent.clone()),
    );
    assert_eq!(resume, Resume::Go(Release::default()));
    (req, sent)
}

fn answer_of(template: &str, request_id: &str) -> String {
    template.replace("__TAG__", request_id)
}

#[test]
fn a_background_creation_is_tagged_with_its_settlement_id_and_left_to_its_retrieval() {
    let mut c = Call::new(CP);
    let (req, sent) = create(&mut c);
    let sent: serde_json::Value = serde_json::from_slice(&sent).unwrap();
    assert_eq!(
        sent["metadata"]["tollgate_request_id"],
        req.request_id.as_str()
    );
    assert_eq!(sent["background"], true);
    assert!(req.estimated_cost.nanos() > 0, "the worst case is reserved");
    c.respond(200, &answer_of(QUEUED, &req.request_id), 97);
    assert_eq!(
        c.finish(),
        None,
        "queued: nothing settled, the reservation stays"
    );
    assert_eq!(c.requests("background"), 1);
    assert_eq!(c.requests("estimated"), 0);
}

#[test]
fn a_retrieval_with_the_final_usage_charges_the_creating_calls_id() {
    for (path, answer) in [
        ("/v1/responses/resp_68b6f3c4", COMPLETED),
        (
            "/v1/responses/resp_68b6f3c4?stream=true&starting_after=2",
            RESUMED,
        ),
    ] {
        for piece in [1, 7, 4096] {
            let mut c = Call::new(CP);
            assert_eq!(
                c.headers("GET", path),
                HeadersAction::ReadBody { may_rewrite: false }
            );
            assert!(!c.x.answer_waits_for_admission(), "nothing to decide");
            c.respond(200, &answer_of(answer, "creator~18f.1"), piece);
            let charge = c.finish().unwrap();
            let s = charge.settlement(9).unwrap();
            assert_eq!(s.request_id, "creator~18f.1", "{path}");
            assert!(s.reserved);
            assert_eq!(s.billed, Some(true));
            assert_eq!(s.model, "o3-2025-04-16");
            assert_eq!(
                (
                    s.usage.uncached_input_tokens,
                    s.usage.cached_input_tokens,
                    s.usage.output_tokens,
                    s.usage.reasoning_tokens,
                    s.usage.estimated
                ),
                (818, 1024, 2290, 2176, false),
                "{path}"
            );
            let priced = c.f.prices.cost("o3", &s.usage, c.h.now()).unwrap().total;
            assert_eq!(s.cost, priced);
            assert_eq!(c.requests("charged"), 1);
        }
    }
}

#[test]
fn a_retrieval_before_the_end_or_of_an_untagged_response_charges_nothing() {
    let cases = [
        (200, answer_of(QUEUED, "creator~18f.1")),
        (200, COMPLETED.replace("tollgate_request_id", "other")),
        (404, answer_of(COMPLETED, "creator~18f.1")),
    ];
    for (status, answer) in cases {
        let path = "/v1/responses/resp_1";
        let mut c = Call::new(CP);
        c.headers("GET", path);
        c.respond(status, &answer, 64);
        assert_eq!(c.finish(), None, "{status} {}", &answer[..60]);
        assert_eq!(c.requests("retrieved"), 1);
    }
}

#[test]
fn a_cancel_settles_what_was_used_or_releases_the_reservation() {
    let mut c = Call::new(CP);
    c.headers("POST", "/v1/responses/resp_1/cancel");
    c.body("");
    let cancelled = answer_of(QUEUED, "creator~18f.1").replace("\"queued\"", "\"cancelled\"");
    c.respond(200, &cancelled, 64);
    let s = c.finish().unwrap().settlement(9).unwrap();
    assert_eq!(s.request_id, "creator~18f.1");
    assert_eq!(
        (s.cost.nanos(), s.billed, s.reserved),
        (0, Some(false), true)
    );

    let mut c = Call::new(CP);
    c.headers("POST", "/v1/responses/resp_1/cancel");
    let used = answer_of(COMPLETED, "creator~18f.1").replace("\"completed\"", "\"cancelled\"");
    c.respond(200, &used, 64);
    let s = c.finish().unwrap().settlement(9).unwrap();
    assert_eq!((s.usage.output_tokens, s.billed), (2290, Some(true)));
}

#[test]
fn without_a_control_plane_a_queued_creation_is_not_charged_an_estimate() {
    let mut c = Call::new("{}");
    c.headers("POST", "/v1/responses");
    assert_eq!(
        c.body(CREATE),
        BodyAction::Continue,
        "nothing to tag or reserve"
    );
    c.respond(200, QUEUED, 4096);
    assert_eq!(c.finish(), None);
    assert_eq!(c.requests("background"), 1);
}

#[test]
fn a_creation_whose_metadata_is_full_is_charged_its_estimate_as_before() {
    let keys: Vec<String> = (0..16).map(|i| format!("\"k{i}\":\"v\"")).collect();
    let body = format!(
        r#"{{"model":"o3","input":"hi","background":true,"metadata":{{{}}}}}"#,
        keys.join(",")
    );
    let mut c = Call::new(CP);
    c.headers("POST", "/v1/responses");
    let BodyAction::Reserve { replace: None, .. } = c.body(&body) else {
        panic!("untagged")
    };
    c.x.on_reserve_answer(
        &c.f,
        &mut c.m,
        &c.h,
        Some((200, br#"{"decision":"allow"}"#)),
        &mut |_| Some(body.as_bytes().to_vec()),
    );
    c.respond(200, QUEUED, 4096);
    let s = c.finish().unwrap().settlement(9).unwrap();
    assert!(s.usage.estimated && s.billed == Some(true));
}
