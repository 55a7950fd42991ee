//! Request and response bodies for the benches, shaped like real OpenAI traffic.

use std::path::Path;

/// An OpenAI chat request of about `bytes` bytes (one user message padded with prose).
pub fn chat_request(bytes: usize) -> String {
    request(bytes, false)
}

/// The same, with `"stream": true` (and no `stream_options`, so Tollgate injects them).
pub fn chat_request_streamed(bytes: usize) -> String {
    request(bytes, true)
}

fn request(bytes: usize, stream: bool) -> String {
    const PROSE: &str =
        "The quarterly report shows steady growth across all regions, with costs held flat. ";
    let head = format!(
        r#"{{"model":"gpt-4o-mini","stream":{stream},"max_tokens":256,"messages":[{{"role":"system","content":"You are a concise assistant."}},{{"role":"user","content":""#
    );
    let tail = r#""}]}"#;
    let room = bytes.saturating_sub(head.len() + tail.len());
    let content: String = PROSE.chars().cycle().take(room).collect();
    format!("{head}{content}{tail}")
}

/// A 1.4 KB non-streamed chat completion.
pub const CHAT_JSON: &str = r#"{
  "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
  "object": "chat.completion",
  "created": 1741570283,
  "model": "gpt-4o-mini-2024-07-18",
  "choices": [
    {
      "index": 0,
      "message": {
        "role": "assistant",
        "content": "Revenue grew in every region this quarter while operating costs stayed flat, so margins widened. The strongest growth came from the northern region, driven by renewals and two large new accounts. Headcount was unchanged. The main risk for next quarter is currency: a stronger dollar would reduce reported revenue from Europe by roughly two percent. Recommended actions: keep hiring frozen until the renewal cycle closes, hedge euro exposure for the next two quarters, and review pricing for the smallest accounts, which have the lowest margins.",
        "refusal": null,
        "annotations": []
      },
      "logprobs": null,
      "finish_reason": "stop"
    }
  ],
  "usage": {
    "prompt_tokens": 231,
    "completion_tokens": 103,
    "total_tokens": 334,
    "prompt_tokens_details": { "cached_tokens": 0, "audio_tokens": 0 },
    "completion_tokens_details": { "reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0 }
  },
  "service_tier": "default",
  "system_fingerprint": "fp_06737a9306"
}
"#;

/// A streamed chat completion of 64 events: a role event, 61 content deltas, the
/// finish event, and the usage event `stream_options.include_usage` asks for; then `[DONE]`.
pub fn chat_stream_64_events() -> String {
    let event = |delta: &str, finish: &str, usage: &str| {
        format!(
            "data: {{\"id\":\"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_06737a9306\",\"choices\":[{delta}],\"usage\":{usage}{finish}}}\n\n"
        )
    };
    let mut out = event(
        r#"{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}"#,
        "",
        "null",
    );
    for i in 0..61 {
        let delta = format!(
            r#"{{"index":0,"delta":{{"content":" word{i}"}},"logprobs":null,"finish_reason":null}}"#
        );
        out.push_str(&event(&delta, "", "null"));
    }
    out.push_str(&event(
        r#"{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}"#,
        "",
        "null",
    ));
    out.push_str(&event(
        "",
        "",
        r#"{"prompt_tokens":231,"completion_tokens":61,"total_tokens":292,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}"#,
    ));
    out.push_str("data: [DONE]\n\n");
    out
}

/// Writes `chat.json` and `chat-64-events.sse` into `dir` for the mock provider.
pub fn write_fixtures(dir: &Path) -> std::io::Result<()> {
    std::fs::write(dir.join("chat.json"), CHAT_JSON)?;
    std::fs::write(dir.join("chat-64-events.sse"), chat_stream_64_events())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_advertised_sizes_and_are_json() {
        for n in [1024, 100 * 1024] {
            let r = chat_request(n);
            assert!(r.len().abs_diff(n) < 8, "{}", r.len());
            serde_json::from_str::<serde_json::Value>(&r).unwrap();
        }
        assert!(CHAT_JSON.len().abs_diff(1400) < 200, "{}", CHAT_JSON.len());
        let stream = chat_stream_64_events();
        let events: Vec<&str> = stream
            .split("\n\n")
            .filter(|e| e.starts_with("data: {"))
            .collect();
        assert_eq!(events.len(), 64);
        for e in events {
            serde_json::from_str::<serde_json::Value>(&e[6..]).unwrap();
        }
    }
}
