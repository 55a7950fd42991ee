use chrono::{TimeZone, Utc};
use tollgate_model::NanoUsd;
use tollgate_model::wire::v1::SettleBatch;

use super::*;
use crate::flow::RequestHead;
use crate::settle::SettleLimits;
use crate::testing::FakeHost;

const CHAT: &str = "/v1/chat/completions";
const BODY: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}"#;
const ANSWER: &str = r#"{"id":"c","object":"chat.completion","model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":500,"total_tokens":1500}}"#;
// gpt-4o-mini: $0.15 input, $0.60 output per million tokens (shipped table).
const COST_NANOS: i64 = 1000 * 150 + 500 * 600;
const REQUESTS: &str = "tollgate_requests_total.provider.openai.outcome.charged";
const COST: &str = "tollgate_cost_nanousd_total.provider.openai";

fn ended_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()
}

fn filter(json: &str) -> Rc<Filter> {
    Rc::new(Filter::from_json(json.as_bytes()).unwrap())
}

/// An exchange that got its whole answer; with a control plane, one the fail mode let
/// through (the host refuses the reservation's callout, so the adapter answers `None`).
fn answered(f: &Filter, h: &FakeHost, m: &RefCell<Metrics>) -> Exchange {
    answered_with(f, h, m, ANSWER)
}

/// [`answered`] with this answer body.
fn answered_with(f: &Filter, h: &FakeHost, m: &RefCell<Metrics>, answer: &str) -> Exchange {
    answered_to(f, h, m, BODY, answer)
}

/// [`answered`] with this request body and answer body.
fn answered_to(
    f: &Filter,
    h: &FakeHost,
    m: &RefCell<Metrics>,
    body: &str,
    answer: &str,
) -> Exchange {
    let m = &mut m.borrow_mut();
    let mut x = Exchange::new();
    let head = RequestHead {
        method: "POST",
        path: CHAT,
        authority: Some("api.openai.com"),
        ends_stream: false,
    };
    x.on_request_headers(f, m, h, head, &mut |_| None);
    let mut read = || Some(body.as_bytes().to_vec());
    x.on_request_body(f, m, h, body.len(), true, &mut read);
    if f.control_plane.is_some() {
        x.on_reserve_answer(f, m, h, None, &mut |_| read());
    }
    x.on_response_headers(f, 200);
    x.on_response_chunk(f, m, h, answer.as_bytes().to_vec());
    x
}

#[test]
fn a_stream_is_charged_on_the_tick_at_the_time_it_ended() {
    let (f, h, charging) = (filter("{}"), FakeHost::at(ended_at()), Charging::default());
    let x = answered(&f, &h, &charging.metrics);
    charging.ended(&h, &f, x);
    assert_eq!(charging.streams_waiting(), 1);
    assert_eq!(h.metric(REQUESTS), 0, "nothing counted before the tick");

    h.set_now(ended_at() + chrono::Duration::milliseconds(49));
    charging.charge_waiting(&h);
    assert_eq!(charging.streams_waiting(), 0);
    assert_eq!(h.metric(REQUESTS), 1);
    assert_eq!(h.metric(COST), COST_NANOS);

    charging.charge_waiting(&h);
    assert_eq!(h.metric(REQUESTS), 1, "charged once");
}

#[test]
fn a_settlement_carries_the_time_its_stream_ended() {
    let f = filter(r#"{"control_plane":{"cluster":"tollgate","token":"t0k"}}"#);
    let (h, charging) = (FakeHost::at(ended_at()), Charging::default());
    *charging.settlements.borrow_mut() = Some(SettleQueue::new(SettleLimits::default()));
    h.refuse_callouts(true);
    let x = answered(&f, &h, &charging.metrics);
    charging.ended(&h, &f, x);
    h.set_now(ended_at() + chrono::Duration::milliseconds(40));
    charging.charge_waiting(&h);

    let mut queue = charging.settlements.borrow_mut();
    let queue = queue.as_mut().unwrap();
    assert_eq!(queue.len(), 1);
    // The batch is due `max_delay` after the stream ended, not after the tick.
    let max_delay = SettleLimits::default().max_delay;
    let just_before = ended_at() + max_delay - Duration::from_millis(1);
    assert_eq!(queue.due(just_before), None);
    let body = queue.due(ended_at() + max_delay).unwrap();
    let batch: SettleBatch = serde_json::from_slice(&body).unwrap();
    let settlement = &batch.settlements[0];
    assert_eq!(settlement.at_unix_ms, ended_at().timestamp_millis());
    assert_eq!(settlement.cost, NanoUsd(COST_NANOS));
    assert!(!settlement.reserved, "let through by the fail mode");
}

#[test]
fn a_settlement_names_an_aliased_model_by_its_price_table_id() {
    // An Azure deployment name only this filter's config knows: the control plane must be
    // told the model it stands for, or a budget limited to that model never counts it.
    let f = filter(
        r#"{"model_aliases":{"prod-mini":"gpt-4o-mini"},
            "control_plane":{"cluster":"tollgate","token":"t0k"}}"#,
    );
    let (h, charging) = (FakeHost::at(ended_at()), Charging::default());
    *charging.settlements.borrow_mut() = Some(SettleQueue::new(SettleLimits::default()));
    h.refuse_callouts(true);
    let body = BODY.replace("gpt-4o-mini", "prod-mini");
    let x = answered_to(&f, &h, &charging.metrics, &body, ANSWER);
    charging.ended(&h, &f, x);
    charging.charge_waiting(&h);
    let mut queue = charging.settlements.borrow_mut();
    let due = ended_at() + SettleLimits::default().max_delay;
    let body = queue.as_mut().unwrap().due(due).unwrap();
    let batch: SettleBatch = serde_json::from_slice(&body).unwrap();
    assert_eq!(batch.settlements[0].model, "gpt-4o-mini");
    assert_eq!(batch.settlements[0].cost, NanoUsd(COST_NANOS));
}

#[test]
fn past_the_waiting_cap_a_stream_is_charged_as_it_ends() {
    let (f, h, charging) = (filter("{}"), FakeHost::at(ended_at()), Charging::default());
    for _ in 0..MAX_WAITING {
        let x = answered(&f, &h, &charging.metrics);
        charging.ended(&h, &f, x);
    }
    assert_eq!(h.metric(REQUESTS), 0);
    let x = answered(&f, &h, &charging.metrics);
    charging.ended(&h, &f, x);
    assert_eq!(h.metric(REQUESTS), 1, "the one over the cap");
    assert_eq!(charging.streams_waiting(), MAX_WAITING);

    charging.charge_waiting(&h);
    let all = i64::try_from(MAX_WAITING).unwrap() + 1;
    assert_eq!(h.metric(REQUESTS), all, "none lost, none twice");
    assert_eq!(h.metric(COST), all * COST_NANOS);
}

#[test]
fn a_stream_with_nothing_to_charge_is_not_kept() {
    let (f, h, charging) = (filter("{}"), FakeHost::at(ended_at()), Charging::default());
    charging.ended(&h, &f, Exchange::new());
    let mut unmatched = Exchange::new();
    let head = RequestHead {
        method: "GET",
        path: "/healthz",
        authority: None,
        ends_stream: false,
    };
    unmatched.on_request_headers(
        &f,
        &mut charging.metrics.borrow_mut(),
        &h,
        head,
        &mut |_| None,
    );
    charging.ended(&h, &f, unmatched);
    assert_eq!(charging.streams_waiting(), 0);
}

#[test]
fn the_tick_prices_at_the_time_the_stream_ended() {
    let mut f = Filter::from_json(b"{}").unwrap();
    f.prices = crate::testing::price_cut_table("gpt-4o-mini", "2026-11-02").unwrap();
    let f = Rc::new(f);
    // The stream ends 10 ms before the price change; the tick runs 40 ms after it.
    let ended = Utc.with_ymd_and_hms(2026, 11, 1, 23, 59, 59).unwrap()
        + chrono::Duration::milliseconds(990);
    let (h, charging) = (FakeHost::at(ended), Charging::default());
    let x = answered(&f, &h, &charging.metrics);
    charging.ended(&h, &f, x);
    h.set_now(ended + chrono::Duration::milliseconds(50));
    charging.charge_waiting(&h);
    assert_eq!(h.metric(COST), 1000 * 10_000 + 500 * 30_000);
}

#[test]
fn past_the_waiting_bytes_a_stream_is_charged_as_it_ends() {
    let (f, h, charging) = (filter("{}"), FakeHost::at(ended_at()), Charging::default());
    // A 64 KiB answer: the reader keeps all of it until the charge.
    let long = format!(
        r#"{{"choices":[{{"message":{{"content":"{}"}}}}],{}"#,
        "x".repeat(64 << 10),
        &ANSWER[ANSWER.find("\"usage\"").unwrap()..]
    );
    let x = answered_with(&f, &h, &charging.metrics, &long);
    let each = x.held_bytes();
    assert!(each >= long.len(), "the answer is kept: {each}");
    let fit = MAX_WAITING_BYTES / each;
    assert!(fit < MAX_WAITING, "the byte cap comes first: {fit}");
    charging.ended(&h, &f, x);
    for _ in 1..fit {
        let x = answered_with(&f, &h, &charging.metrics, &long);
        charging.ended(&h, &f, x);
    }
    assert_eq!(h.metric(REQUESTS), 0);
    assert_eq!(charging.streams_waiting(), fit);
    let x = answered_with(&f, &h, &charging.metrics, &long);
    charging.ended(&h, &f, x);
    assert_eq!(h.metric(REQUESTS), 1, "the one past the byte cap");
    assert_eq!(charging.streams_waiting(), fit);

    charging.charge_waiting(&h);
    let x = answered_with(&f, &h, &charging.metrics, &long);
    charging.ended(&h, &f, x);
    assert_eq!(charging.streams_waiting(), 1, "the tick made room again");
}

#[test]
fn counters_of_a_tick_are_one_increment_per_metric() {
    let (f, h, charging) = (filter("{}"), FakeHost::at(ended_at()), Charging::default());
    for _ in 0..10 {
        let x = answered(&f, &h, &charging.metrics);
        charging.ended(&h, &f, x);
    }
    charging.charge_waiting(&h);
    assert_eq!(h.metric(REQUESTS), 10);
    assert_eq!(h.metric(COST), 10 * COST_NANOS);
    assert_eq!(
        h.increments(REQUESTS),
        1,
        "ten requests, one hostcall for them"
    );
}

#[test]
fn settlements_a_shutting_down_vm_cannot_post_are_counted_and_logged() {
    let f = filter(r#"{"control_plane":{"cluster":"tollgate","token":"t0k"}}"#);
    let (h, charging) = (FakeHost::at(ended_at()), Charging::default());
    *charging.settlements.borrow_mut() = Some(SettleQueue::new(SettleLimits::default()));
    h.refuse_callouts(true);
    for _ in 0..3 {
        let x = answered(&f, &h, &charging.metrics);
        charging.ended(&h, &f, x);
    }
    charging.charge_waiting(&h);
    charging.drop_queued(&h);
    assert_eq!(
        h.metric("tollgate_settlements_lost_total.problem.shutdown"),
        3
    );
    assert!(
        h.logs()
            .iter()
            .any(|(_, line)| line.contains("3 settlements not posted")),
        "{:?}",
        h.logs()
    );
    charging.drop_queued(&h);
    assert_eq!(
        h.metric("tollgate_settlements_lost_total.problem.shutdown"),
        3,
        "counted once"
    );
}

/// An answer without usage: its input count is the request's estimate.
const ANSWER_WITHOUT_USAGE: &str = r#"{"id":"c","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"}}]}"#;
const UNCACHED_INPUT: &str = "tollgate_tokens_total.provider.openai.kind.uncached_input";

/// An exchange read without a control plane, its body kept by `charging` as the adapter does.
fn kept(f: &Filter, h: &FakeHost, charging: &Charging, answer: &str) -> Exchange {
    let x = answered_with(f, h, &charging.metrics, answer);
    charging.keep_for_estimate(x.deferred_estimate().unwrap());
    x
}

#[test]
fn without_a_control_plane_an_answer_with_usage_never_estimates_its_request() {
    let (f, h, charging) = (filter("{}"), FakeHost::at(ended_at()), Charging::default());
    let mut x = kept(&f, &h, &charging, ANSWER);
    assert_eq!(x.request().unwrap().estimated_input_tokens, 0);
    assert_eq!(charging.kept_body_bytes(), BODY.len());
    charging.keep_for_estimate(x.deferred_estimate().unwrap());
    assert_eq!(charging.kept_body_bytes(), BODY.len(), "counted once");

    // Charged as the tick charges it, the exchange kept to look at afterwards.
    x.finish(&f, &mut charging.metrics.borrow_mut(), &h, ended_at());
    assert_eq!(h.metric(UNCACHED_INPUT), 1000, "the provider's count");
    assert_eq!(
        x.deferred_estimate().unwrap().pending_bytes(),
        BODY.len(),
        "never estimated"
    );
    drop(x);
    assert_eq!(
        charging.kept_body_bytes(),
        0,
        "the body went with its exchange"
    );
}

#[test]
fn without_a_control_plane_an_answer_without_usage_is_charged_the_request_estimate() {
    let (f, h, charging) = (filter("{}"), FakeHost::at(ended_at()), Charging::default());
    let x = kept(&f, &h, &charging, ANSWER_WITHOUT_USAGE);
    charging.ended(&h, &f, x);
    charging.charge_waiting(&h);
    let want = crate::request::estimate_request_tokens(BODY.as_bytes());
    assert_eq!(h.metric(UNCACHED_INPUT), i64::try_from(want).unwrap());
    assert_eq!(charging.kept_body_bytes(), 0);
}

#[test]
fn past_the_kept_bytes_a_body_is_estimated_as_it_is_read() {
    let (f, h, charging) = (filter("{}"), FakeHost::at(ended_at()), Charging::default());
    let fit = MAX_KEPT_BODY_BYTES / BODY.len();
    let exchanges: Vec<_> = (0..fit).map(|_| kept(&f, &h, &charging, ANSWER)).collect();
    assert!(
        exchanges
            .iter()
            .all(|x| x.deferred_estimate().unwrap().pending_bytes() == BODY.len())
    );
    let one_more = kept(&f, &h, &charging, ANSWER);
    assert_eq!(
        one_more.deferred_estimate().unwrap().pending_bytes(),
        0,
        "estimated at once"
    );
    assert_eq!(charging.kept_body_bytes(), fit * BODY.len());

    drop(exchanges);
    assert_eq!(charging.kept_body_bytes(), 0);
    let after = kept(&f, &h, &charging, ANSWER);
    assert_eq!(
        after.deferred_estimate().unwrap().pending_bytes(),
        BODY.len(),
        "room again"
    );
}

#[test]
fn with_a_control_plane_the_input_estimate_is_made_on_the_path() {
    let f = filter(r#"{"control_plane":{"cluster":"tollgate","token":"t0k"}}"#);
    let (h, charging) = (FakeHost::at(ended_at()), Charging::default());
    h.refuse_callouts(true);
    let x = answered(&f, &h, &charging.metrics);
    assert!(x.deferred_estimate().is_none(), "the reservation needs it");
    let want = crate::request::estimate_request_tokens(BODY.as_bytes());
    assert_eq!(x.request().unwrap().estimated_input_tokens, want);
}

/// A VM whose queue holds one charged call and has posted it; returns it with the host.
fn one_post_in_flight() -> (FakeHost, Charging) {
    let f = filter(r#"{"control_plane":{"cluster":"tollgate","token":"t0k"}}"#);
    let (h, charging) = (FakeHost::at(ended_at()), Charging::default());
    *charging.settlements.borrow_mut() = Some(SettleQueue::new(SettleLimits::default()));
    h.refuse_callouts(true);
    let x = answered(&f, &h, &charging.metrics);
    charging.ended(&h, &f, x);
    charging.charge_waiting(&h);
    post_due(&h, &charging);
    (h, charging)
}

/// Takes the due batch off the queue, as the root's tick posts it.
fn post_due(h: &FakeHost, charging: &Charging) {
    let later = h.now() + SettleLimits::default().max_delay + Duration::from_secs(60);
    h.set_now(later);
    let mut queue = charging.settlements.borrow_mut();
    assert!(
        queue.as_mut().unwrap().due(later).is_some(),
        "a batch is due"
    );
}

fn queued(charging: &Charging) -> usize {
    charging
        .settlements
        .borrow()
        .as_ref()
        .map_or(0, SettleQueue::len)
}

const POSTS: &str = "tollgate_settle_posts_total.outcome";

#[test]
fn an_accepted_settle_post_is_counted_ok_and_its_batch_is_gone() {
    let (h, charging) = one_post_in_flight();
    let logs_before = h.logs().len();
    assert_eq!(
        charging.settle_post_answered(&h, Some(200)),
        Some(PostOutcome::Done)
    );
    assert_eq!(h.metric(&format!("{POSTS}.ok")), 1);
    assert_eq!(queued(&charging), 0);
    assert_eq!(h.logs().len(), logs_before, "{:?}", h.logs());
}

#[test]
fn a_failed_or_reset_settle_post_is_retried_counted_by_its_problem_and_logged() {
    for (status, problem) in [
        (Some(503), "unavailable"),
        (Some(504), "timeout"),
        (Some(500), "error_status"),
        (None, "not_sent"),
    ] {
        let (h, charging) = one_post_in_flight();
        let (posts_before, logs_before) = (h.metric(&format!("{POSTS}.retry")), h.logs().len());
        let problems = |h: &FakeHost| {
            h.metric(&format!(
                "tollgate_control_plane_problems_total.problem.{problem}"
            ))
        };
        let problems_before = problems(&h);
        assert_eq!(
            charging.settle_post_answered(&h, status),
            Some(PostOutcome::Retry)
        );
        assert_eq!(
            h.metric(&format!("{POSTS}.retry")),
            posts_before + 1,
            "{status:?}"
        );
        assert_eq!(problems(&h), problems_before + 1, "{status:?}");
        assert_eq!(queued(&charging), 1, "the batch waits for its retry");
        let logs = h.logs().split_off(logs_before);
        assert!(
            logs.iter().any(|(level, text)| *level == LogLevel::Warn
                && text.contains("1 settlements wait for a retry")),
            "{logs:?}"
        );
    }
}

#[test]
fn a_settlement_refused_as_invalid_is_dropped_counted_lost_and_logged() {
    let (h, charging) = one_post_in_flight();
    // A first 400 may be an older control plane refusing newer fields: the batch goes
    // again in the older form; refused again, alone, it is invalid.
    assert_eq!(
        charging.settle_post_answered(&h, Some(400)),
        Some(PostOutcome::Retry)
    );
    post_due(&h, &charging);
    assert_eq!(
        charging.settle_post_answered(&h, Some(400)),
        Some(PostOutcome::Rejected)
    );
    assert_eq!(h.metric(&format!("{POSTS}.rejected")), 1);
    assert_eq!(
        h.metric("tollgate_settlements_lost_total.problem.rejected"),
        1
    );
    assert_eq!(queued(&charging), 0);
    assert!(
        h.logs()
            .iter()
            .any(|(level, text)| *level == LogLevel::Error && text.contains("dropped")),
        "{:?}",
        h.logs()
    );
}

#[test]
fn a_settle_answer_without_a_queue_counts_nothing() {
    let (h, charging) = (FakeHost::at(ended_at()), Charging::default());
    assert_eq!(charging.settle_post_answered(&h, Some(200)), None);
    assert_eq!(h.metric(&format!("{POSTS}.ok")), 0);
}
