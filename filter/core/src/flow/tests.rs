use chrono::{TimeZone, Utc};
use tollgate_model::NanoUsd;

use super::*;
use crate::testing::FakeHost;

fn host() -> FakeHost {
    FakeHost::at(Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap())
}

fn filter(json: &str) -> Filter {
    Filter::from_json(json.as_bytes()).unwrap()
}

const CHAT: &str = "/v1/chat/completions";

fn no_lookup(_: crate::scopes::Lookup<'_>) -> Option<String> {
    None
}

fn head(path: &str) -> RequestHead<'_> {
    RequestHead {
        method: "POST",
        path,
        authority: Some("api.openai.com"),
        ends_stream: false,
    }
}

/// Runs a whole exchange: request body in two pieces, response in `chunks`.
fn run(
    f: &Filter,
    h: &FakeHost,
    m: &mut Metrics,
    path: &str,
    body: &str,
    status: u16,
    chunks: &[&str],
) -> (BodyAction, Option<Charge>) {
    let mut x = Exchange::new();
    assert_eq!(
        x.on_request_headers(f, m, h, head(path), &mut no_lookup),
        HeadersAction::ReadBody { may_rewrite: true }
    );
    let half = body.len() / 2;
    let mut read = || Some(body.as_bytes().to_vec());
    assert_eq!(
        x.on_request_body(f, m, h, half, false, &mut read),
        BodyAction::Buffer
    );
    let action = x.on_request_body(f, m, h, body.len(), true, &mut read);
    x.on_response_headers(f, status);
    for c in chunks {
        x.on_response_chunk(f, m, h, c.as_bytes().to_vec());
    }
    let charge = x.finish(f, m, h, h.now());
    assert_eq!(
        x.finish(f, m, h, h.now()),
        None,
        "a second finish charges nothing"
    );
    (action, charge)
}

const OPENAI_JSON: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1000,"completion_tokens":500,"total_tokens":1500,"prompt_tokens_details":{"cached_tokens":200},"completion_tokens_details":{"reasoning_tokens":0}}}"#;

#[test]
fn a_non_streamed_call_is_charged_from_its_usage() {
    let (f, h, mut m) = (filter("{}"), host(), Metrics::default());
    let body = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}"#;
    let (action, charge) = run(
        &f,
        &h,
        &mut m,
        CHAT,
        body,
        200,
        &[&OPENAI_JSON[..40], &OPENAI_JSON[40..]],
    );
    assert_eq!(action, BodyAction::Continue);
    let charge = charge.unwrap();
    assert_eq!(charge.outcome, Outcome::Charged);
    assert_eq!(charge.usage.uncached_input_tokens, 800);
    assert_eq!(charge.usage.cached_input_tokens, 200);
    // gpt-4o-mini: $0.15 input, $0.075 cached, $0.60 output per million.
    let cost = charge.cost.unwrap();
    assert_eq!(cost.total, NanoUsd(800 * 150 + 200 * 75 + 500 * 600));
    assert_eq!(
        h.metric("tollgate_requests_total.provider.openai.outcome.charged"),
        1
    );
    assert_eq!(
        h.metric("tollgate_cost_nanousd_total.provider.openai"),
        cost.total.nanos()
    );
    assert_eq!(
        h.metric("tollgate_tokens_total.provider.openai.kind.cached_input"),
        200
    );
}

#[test]
fn a_streamed_openai_request_gets_include_usage_injected() {
    let (f, h, mut m) = (filter("{}"), host(), Metrics::default());
    let body =
        r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hello"}]}"#;
    let (action, _) = run(&f, &h, &mut m, CHAT, body, 200, &[]);
    let BodyAction::Replace(new_body) = action else {
        panic!("{action:?}")
    };
    let json: serde_json::Value = serde_json::from_slice(&new_body).unwrap();
    assert_eq!(json["stream_options"]["include_usage"], true);
    assert_eq!(json["messages"][0]["content"], "Hello");
}

#[test]
fn a_stream_that_ends_without_usage_is_charged_an_estimate() {
    let (f, h, mut m) = (filter("{}"), host(), Metrics::default());
    let body = r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hello"}]}"#;
    let chunk = r#"data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hello there, how are you today?"},"finish_reason":null}]}

"#;
    let (_, charge) = run(&f, &h, &mut m, CHAT, body, 200, &[chunk]);
    let charge = charge.unwrap();
    assert_eq!(charge.outcome, Outcome::Estimated);
    assert!(charge.usage.estimated);
    assert!(
        charge.usage.output_tokens > 0 && charge.usage.uncached_input_tokens > 0,
        "{:?}",
        charge.usage
    );
    assert_eq!(
        h.metric("tollgate_requests_total.provider.openai.outcome.estimated"),
        1
    );
}

#[test]
fn a_provider_error_is_counted_and_not_charged() {
    let (f, h, mut m) = (filter("{}"), host(), Metrics::default());
    let body = r#"{"model":"gpt-4o-mini","messages":[]}"#;
    let err = r#"{"error":{"message":"overloaded","type":"server_error"}}"#;
    let (_, charge) = run(&f, &h, &mut m, CHAT, body, 503, &[err]);
    let outcome = charge.unwrap().outcome;
    assert_eq!(outcome, Outcome::ProviderError);
    assert!(!outcome.is_billed(), "settled with billed: false");
    assert_eq!(
        h.metric("tollgate_requests_total.provider.openai.outcome.provider_error"),
        1
    );
    assert_eq!(h.metric("tollgate_cost_nanousd_total.provider.openai"), 0);
}

#[test]
fn an_unknown_model_counts_tokens_but_no_cost() {
    let (f, h, mut m) = (filter("{}"), host(), Metrics::default());
    let body = r#"{"model":"my-private-model","messages":[]}"#;
    let answer = OPENAI_JSON.replace("gpt-4o-mini-2024-07-18", "my-private-model-v2");
    let (_, charge) = run(&f, &h, &mut m, CHAT, body, 200, &[&answer]);
    let charge = charge.unwrap();
    assert_eq!((charge.outcome, charge.cost), (Outcome::UnknownModel, None));
    assert_eq!(
        h.metric("tollgate_tokens_total.provider.openai.kind.output"),
        500
    );
    assert_eq!(
        h.metric("tollgate_requests_total.provider.openai.outcome.unknown_model"),
        1
    );
}

#[test]
fn an_unknown_request_model_is_priced_by_the_model_the_answer_reports() {
    let (f, h, mut m) = (filter("{}"), host(), Metrics::default());
    let body = r#"{"model":"prod-chat-deployment","messages":[]}"#;
    let (_, charge) = run(&f, &h, &mut m, CHAT, body, 200, &[OPENAI_JSON]);
    let charge = charge.unwrap();
    assert_eq!(charge.outcome, Outcome::Charged);
    assert_eq!(charge.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
}

#[test]
fn unmatched_paths_pass_or_are_denied_as_configured() {
    let (h, mut m) = (host(), Metrics::default());
    let mut x = Exchange::new();
    assert_eq!(
        x.on_request_headers(&filter("{}"), &mut m, &h, head("/healthz"), &mut no_lookup),
        HeadersAction::PassThrough
    );
    let mut x = Exchange::new();
    let HeadersAction::Reply(reply) = x.on_request_headers(
        &filter(r#"{"unmatched_path":"deny"}"#),
        &mut m,
        &h,
        head("/healthz"),
        &mut no_lookup,
    ) else {
        panic!()
    };
    assert_eq!(reply.status, 403);
    assert_eq!(
        h.metric("tollgate_requests_total.provider.none.outcome.unmatched"),
        2
    );
    assert_eq!(x.finish(&filter("{}"), &mut m, &h, h.now()), None);
}

#[test]
fn an_oversized_body_is_rejected_with_413_or_passed_and_still_charged() {
    let (h, mut m) = (host(), Metrics::default());
    let reject = filter(r#"{"max_request_body_bytes":4096,"oversized_request":"reject"}"#);
    let mut x = Exchange::new();
    x.on_request_headers(&reject, &mut m, &h, head(CHAT), &mut no_lookup);
    let BodyAction::Reply(reply) =
        x.on_request_body(&reject, &mut m, &h, 4097, false, &mut || None)
    else {
        panic!()
    };
    assert_eq!(reply.status, 413);
    let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["error"]["code"], "request_too_large");

    let pass = filter(r#"{"max_request_body_bytes":4096}"#);
    let mut x = Exchange::new();
    x.on_request_headers(&pass, &mut m, &h, head(CHAT), &mut no_lookup);
    assert_eq!(
        x.on_request_body(&pass, &mut m, &h, 4097, false, &mut || None),
        BodyAction::Continue
    );
    assert_eq!(
        x.on_request_body(&pass, &mut m, &h, 5000, true, &mut || None),
        BodyAction::Continue
    );
    x.on_response_headers(&pass, 200);
    x.on_response_chunk(&pass, &mut m, &h, OPENAI_JSON.as_bytes().to_vec());
    let charge = x.finish(&pass, &mut m, &h, h.now()).unwrap();
    // The body was never read: the model the answer reports prices it.
    assert_eq!(charge.outcome, Outcome::Charged);
    assert_eq!(charge.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
    assert_eq!(charge.usage.output_tokens, 500);
    assert_eq!(
        h.metric("tollgate_request_body_problems_total.problem.too_large"),
        2
    );
}

#[test]
fn a_call_that_never_got_an_answer_charges_nothing() {
    let (f, h, mut m) = (filter("{}"), host(), Metrics::default());
    let mut x = Exchange::new();
    x.on_request_headers(&f, &mut m, &h, head(CHAT), &mut no_lookup);
    let body = br#"{"model":"gpt-4o-mini","messages":[]}"#;
    x.on_request_body(&f, &mut m, &h, body.len(), true, &mut || {
        Some(body.to_vec())
    });
    assert_eq!(x.finish(&f, &mut m, &h, h.now()), None);
    assert_eq!(
        h.metric("tollgate_requests_total.provider.openai.outcome.no_response"),
        1
    );
}

#[test]
fn scopes_ride_on_the_charge_and_no_scope_can_be_refused() {
    let f = filter(
        r#"{"scopes":{"sources":[{"kind":"team","header":"x-tollgate-team"}],"when_none":"deny"}}"#,
    );
    let (h, mut m) = (host(), Metrics::default());
    let mut x = Exchange::new();
    let mut team = |l: crate::scopes::Lookup<'_>| match l {
        crate::scopes::Lookup::Header("x-tollgate-team") => Some("payments".to_owned()),
        _ => None,
    };
    assert_eq!(
        x.on_request_headers(&f, &mut m, &h, head(CHAT), &mut team),
        HeadersAction::ReadBody { may_rewrite: true }
    );
    let body = br#"{"model":"gpt-4o-mini","messages":[]}"#;
    x.on_request_body(&f, &mut m, &h, body.len(), true, &mut || {
        Some(body.to_vec())
    });
    x.on_response_headers(&f, 200);
    x.on_response_chunk(&f, &mut m, &h, OPENAI_JSON.as_bytes().to_vec());
    let charge = x.finish(&f, &mut m, &h, h.now()).unwrap();
    assert_eq!(charge.scopes, vec!["team:payments".parse().unwrap()]);

    let mut x = Exchange::new();
    let HeadersAction::Reply(reply) =
        x.on_request_headers(&f, &mut m, &h, head(CHAT), &mut no_lookup)
    else {
        panic!("a request with no scope must be refused")
    };
    assert_eq!(reply.status, 403);
    let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["error"]["code"], "no_scope");
    assert_eq!(
        h.metric("tollgate_requests_total.provider.openai.outcome.rejected"),
        1
    );
}

#[test]
fn only_a_governed_exchange_reads_its_response() {
    let (f, h, mut m) = (filter("{}"), host(), Metrics::default());
    let mut unmatched = Exchange::new();
    assert!(!unmatched.reads_response());
    assert_eq!(
        unmatched.on_request_headers(&f, &mut m, &h, head("/v1/files"), &mut no_lookup),
        HeadersAction::PassThrough
    );
    assert!(!unmatched.reads_response());

    let mut x = Exchange::new();
    x.on_request_headers(&f, &mut m, &h, head(CHAT), &mut no_lookup);
    assert!(!x.reads_response(), "not before the request is read");
    let body = r#"{"model":"gpt-4o-mini","messages":[]}"#;
    let mut read = || Some(body.as_bytes().to_vec());
    x.on_request_body(&f, &mut m, &h, body.len(), true, &mut read);
    assert!(x.reads_response());
    x.on_response_headers(&f, 200);
    assert!(x.reads_response());
    x.finish(&f, &mut m, &h, h.now());
    assert!(!x.reads_response(), "not after the charge");
}

#[test]
fn a_stream_is_priced_at_the_time_it_ended_not_when_it_is_finished() {
    let (mut f, h, mut m) = (filter("{}"), host(), Metrics::default());
    f.prices = crate::testing::price_cut_table("repriced", "2026-11-01").unwrap();
    let mut x = Exchange::new();
    assert!(!x.is_open(), "nothing to finish before the headers");
    x.on_request_headers(&f, &mut m, &h, head(CHAT), &mut no_lookup);
    assert!(x.is_open());
    let body = r#"{"model":"repriced","messages":[]}"#;
    x.on_request_body(&f, &mut m, &h, body.len(), true, &mut || {
        Some(body.as_bytes().to_vec())
    });
    x.on_response_headers(&f, 200);
    let answer = br#"{"usage":{"prompt_tokens":1000,"completion_tokens":100}}"#;
    x.on_response_chunk(&f, &mut m, &h, answer.to_vec());
    assert!(x.is_open());

    // It ended the evening before the price cut; the host's clock is already past it.
    let ended_at = Utc.with_ymd_and_hms(2026, 10, 31, 23, 59, 59).unwrap();
    assert!(h.now() > ended_at);
    let charge = x.finish(&f, &mut m, &h, ended_at).unwrap();
    assert_eq!(
        charge.cost.unwrap().total,
        NanoUsd(1000 * 10_000 + 100 * 30_000)
    );
    assert!(!x.is_open(), "finished");
    let mut unmatched = Exchange::new();
    unmatched.on_request_headers(&f, &mut m, &h, head("/v1/files"), &mut no_lookup);
    assert!(
        !unmatched.is_open(),
        "an unmatched path has nothing to finish"
    );
}

#[test]
fn only_a_body_that_may_be_rewritten_loses_its_length_at_the_headers() {
    let (h, mut m) = (host(), Metrics::default());
    let on = |path, authority| RequestHead {
        method: "POST",
        path,
        authority: Some(authority),
        ends_stream: false,
    };
    let default = filter("{}");
    let no_option = filter(r#"{"add_stream_usage_option":false}"#);
    let with_cp = filter(r#"{"control_plane":{"cluster":"tollgate","token":"t"}}"#);
    for (f, path, authority, may_rewrite) in [
        (&default, CHAT, "api.openai.com", true),
        (&default, "/v1/completions", "api.openai.com", true),
        (&default, "/v1/embeddings", "api.openai.com", false),
        (&default, "/v1/responses", "api.openai.com", false),
        (&default, "/v1/messages", "api.anthropic.com", false),
        (&no_option, CHAT, "api.openai.com", false),
        // A control plane may downgrade any body model.
        (&with_cp, "/v1/messages", "api.anthropic.com", true),
    ] {
        let mut x = Exchange::new();
        assert_eq!(
            x.on_request_headers(f, &mut m, &h, on(path, authority), &mut no_lookup),
            HeadersAction::ReadBody { may_rewrite },
            "{path}"
        );
        if may_rewrite {
            continue;
        }
        // Whatever the body says, it goes as it came.
        for body in [
            r#"{"model":"gpt-4o-mini","stream":true,"max_tokens":10,"messages":[]}"#,
            r#"{"model":"gpt-4o-mini","stream":true,"stream_options":null,"messages":[]}"#,
            r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":false}}"#,
            r#"{"model":"claude-sonnet-4-5","stream":true,"max_tokens":10,"messages":[]}"#,
            r#"{"model":"gpt-4o-mini","messages":[]}"#,
            "not json",
        ] {
            let mut x = Exchange::new();
            x.on_request_headers(f, &mut m, &h, on(path, authority), &mut no_lookup);
            let mut read = || Some(body.as_bytes().to_vec());
            assert_eq!(
                x.on_request_body(f, &mut m, &h, body.len(), true, &mut read),
                BodyAction::Continue,
                "{path}: {body}"
            );
        }
    }
    // And where it may, a stream that does not ask for usage is rewritten.
    let body = br#"{"model":"gpt-4o-mini","stream":true,"stream_options":null,"messages":[]}"#;
    let mut x = Exchange::new();
    x.on_request_headers(&default, &mut m, &h, head(CHAT), &mut no_lookup);
    let mut read = || Some(body.to_vec());
    assert!(matches!(
        x.on_request_body(&default, &mut m, &h, body.len(), true, &mut read),
        BodyAction::Replace(_)
    ));
}
