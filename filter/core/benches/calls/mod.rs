//! The calls the benches time: the three cases the Envoy bench measures
//! (`tests/src/bin/bench-gateway.rs`), shared by `benches/exchange.rs` (criterion, native),
//! `examples/exchange_phases.rs` (the same in V8), `examples/footprint.rs` (the cache lines
//! each phase touches) and the filter's `vm_bench` (in Envoy's V8).

#![allow(dead_code)]

use std::hint::black_box;

use tollgate_filter_core::flow::{Exchange, RequestHead};
use tollgate_filter_core::host::Host;
use tollgate_filter_core::metrics::Metrics;
use tollgate_filter_core::plugin::Filter;

/// The request line `bench-gateway` sends.
pub const CHAT: RequestHead<'static> = RequestHead {
    method: "POST",
    path: "/v1/chat/completions",
    authority: Some("api.openai.com"),
    ends_stream: false,
};

/// The phases [`run_phase`] runs, in order.
pub const PHASES: [&str; 5] = [
    "request headers",
    "request body",
    "response headers",
    "response body",
    "finish",
];

/// Runs `PHASES[phase]` of `x`, the bench's call with `body`, answered with `chunks`, as the
/// adapter runs it: the body read as a copy out of Envoy's buffer, each chunk handed over as
/// the adapter's copy.
pub fn run_phase(
    x: &mut Exchange,
    filter: &Filter,
    metrics: &mut Metrics,
    host: &dyn Host,
    phase: usize,
    body: &[u8],
    chunks: &[&[u8]],
) {
    match phase {
        0 => drop(black_box(x.on_request_headers(
            filter,
            metrics,
            host,
            CHAT,
            &mut |_| None,
        ))),
        1 => drop(black_box(x.on_request_body(
            filter,
            metrics,
            host,
            body.len(),
            true,
            &mut || Some(body.to_vec()),
        ))),
        2 => drop(black_box(x.on_response_headers(filter, 200))),
        3 => {
            for c in chunks {
                black_box(x.on_response_chunk(filter, metrics, host, c.to_vec()));
            }
        }
        _ => drop(black_box(x.finish(filter, metrics, host, host.now()))),
    }
}

/// A new exchange of the bench's call run through its first `phases` phases.
pub fn exchange_upto(
    filter: &Filter,
    metrics: &mut Metrics,
    host: &dyn Host,
    body: &[u8],
    chunks: &[&[u8]],
    phases: usize,
) -> Exchange {
    let mut x = Exchange::new();
    for phase in 0..phases {
        run_phase(&mut x, filter, metrics, host, phase, body, chunks);
    }
    x
}

const PROSE: &str =
    "The quarterly report shows steady growth across all regions, with costs held flat. ";

pub fn request(bytes: usize, stream: bool) -> Vec<u8> {
    let head = format!(
        r#"{{"model":"gpt-4o-mini","stream":{stream},"max_tokens":256,"messages":[{{"role":"user","content":""#
    );
    let tail = r#""}]}"#;
    let content: String = PROSE
        .chars()
        .cycle()
        .take(bytes.saturating_sub(head.len() + tail.len()))
        .collect();
    format!("{head}{content}{tail}").into_bytes()
}

pub const ANSWER: &str = r#"{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion","created":1741570283,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Revenue grew in every region this quarter while operating costs stayed flat, so margins widened. The strongest growth came from the northern region, driven by renewals and two large new accounts. Headcount was unchanged. The main risk for next quarter is currency: a stronger dollar would reduce reported revenue from Europe by roughly two percent. Recommended actions: keep hiring frozen until the renewal cycle closes, hedge euro exposure for the next two quarters, and review pricing for the smallest accounts, which have the lowest margins.","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":231,"completion_tokens":103,"total_tokens":334,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_06737a9306"}"#;

pub fn stream_events() -> Vec<String> {
    let mut events: Vec<String> = (0..62)
        .map(|i| format!("data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" word{i}\"}},\"finish_reason\":null}}],\"usage\":null}}\n\n"))
        .collect();
    events.push("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{\"prompt_tokens\":231,\"completion_tokens\":61,\"total_tokens\":292}}\n\n".into());
    events.push("data: [DONE]\n\n".into());
    events
}
