use super::*;

fn read(dialect: Dialect, framing: Framing, chunks: &[&[u8]]) -> ResponseOutcome {
    let mut reader = ResponseReader::new(dialect, framing, StreamLimits::default());
    for chunk in chunks {
        reader.feed(chunk);
    }
    reader.finish(|| 1000)
}

#[test]
fn an_openai_stream_without_usage_is_estimated_from_its_text() {
    let out = read(
        Dialect::OpenaiChat,
        Framing::Sse,
        &[
            b"data: {\"choices\":[{\"delta\":{\"content\":\"Hello there, friend\"}}]}\n\n",
            b"data: [DONE]\n\n",
        ],
    );
    assert!(out.usage.estimated);
    assert_eq!(out.usage.uncached_input_tokens, 1000);
    assert!(out.usage.output_tokens >= 4);
}

#[test]
fn an_anthropic_stream_cut_after_message_start_keeps_input_and_estimates_output() {
    let out = read(
        Dialect::Anthropic,
        Framing::Sse,
        &[
            b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"one two three four five six\"}}\n\n",
        ],
    );
    assert!(out.usage.estimated);
    assert_eq!(out.usage.uncached_input_tokens, 25);
    assert!(out.usage.output_tokens > 1);
}

#[test]
fn an_anthropic_message_delta_without_readable_usage_leaves_the_output_estimated() {
    let start: &[u8] = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n";
    let text: &[u8] = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"one two three four five six seven eight\"}}\n\n";
    let deltas: [&[u8]; 3] = [
        // Cut inside the event.
        b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"outp",
        // No usage member.
        b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}\n\n",
        // A text that names the event is no final usage either.
        b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"message_delta\"}}\n\n",
    ];
    for delta in deltas {
        let out = read(Dialect::Anthropic, Framing::Sse, &[start, text, delta]);
        assert!(out.usage.estimated, "{}", String::from_utf8_lossy(delta));
        assert_eq!(out.usage.uncached_input_tokens, 25);
        assert!(out.usage.output_tokens >= 8, "{:?}", out.usage);
    }
    let complete: &[u8] = b"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":12}}\n\n";
    let out = read(Dialect::Anthropic, Framing::Sse, &[start, text, complete]);
    assert!(!out.usage.estimated);
    assert_eq!(out.usage.output_tokens, 12);
}

#[test]
fn an_answer_is_read_by_what_its_bytes_are_not_by_what_the_request_asked_for() {
    let sse: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":30,\"completion_tokens\":9}}\n\ndata: [DONE]\n\n";
    let json: &[u8] =
        b"\n{\"choices\":[{\"message\":{\"content\":\"Hi\"}}],\"usage\":{\"prompt_tokens\":30,\"completion_tokens\":9}}";
    // A plain request answered with events, and a streamed one answered with one body, each
    // also split before its first byte that is not whitespace.
    for (framing, body) in [(Framing::Json, sse), (Framing::Sse, json)] {
        for cut in [0, 1, 5] {
            let (a, b) = body.split_at(cut);
            let out = read(Dialect::OpenaiChat, framing, &[a, b]);
            assert!(!out.usage.estimated, "{framing:?} cut at {cut}");
            assert_eq!(
                (out.usage.uncached_input_tokens, out.usage.output_tokens),
                (30, 9)
            );
        }
    }
    // Gemini's streamed array and its SSE are told apart the same way.
    let array: &[u8] = b"[{\"candidates\":[{\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":4,\"candidatesTokenCount\":2}}]";
    let out = read(Dialect::Gemini, Framing::Sse, &[array]);
    assert_eq!(
        (
            out.usage.uncached_input_tokens,
            out.usage.output_tokens,
            out.usage.estimated
        ),
        (4, 2, false)
    );
}

#[test]
fn a_json_body_longer_than_the_tail_bound_still_yields_its_usage() {
    let mut body = b"{\"choices\":[{\"message\":{\"content\":\"".to_vec();
    body.extend(std::iter::repeat_n(b'x', 1_000_000));
    body.extend(b"\"}}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}");
    let mut reader =
        ResponseReader::new(Dialect::OpenaiChat, Framing::Json, StreamLimits::default());
    for chunk in body.chunks(4096) {
        reader.feed(chunk);
    }
    let out = reader.finish(|| 0);
    assert!(!out.usage.estimated);
    assert_eq!(
        (out.usage.uncached_input_tokens, out.usage.output_tokens),
        (3, 4)
    );
}

#[test]
fn invalid_utf8_and_garbage_streams_end_in_an_estimate() {
    for framing in [
        Framing::Json,
        Framing::Sse,
        Framing::JsonArray,
        Framing::EventStream,
    ] {
        let out = read(
            Dialect::OpenaiChat,
            framing,
            &[b"\xff\xfe data: {\"usage\n\n[{\x00"],
        );
        assert!(out.usage.estimated, "{framing:?}");
    }
}

#[test]
fn bedrock_invoke_chunks_are_decoded_as_anthropic_events() {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let start =
        b64(r#"{"type":"message_start","message":{"usage":{"input_tokens":7,"output_tokens":1}}}"#);
    let delta = b64(r#"{"type":"message_delta","usage":{"output_tokens":9}}"#);
    let mut stream =
        event_stream::encode_event("chunk", format!(r#"{{"bytes":"{start}"}}"#).as_bytes());
    stream.extend(event_stream::encode_event(
        "chunk",
        format!(r#"{{"bytes":"{delta}"}}"#).as_bytes(),
    ));
    let out = read(Dialect::Anthropic, Framing::EventStream, &[&stream]);
    assert!(!out.usage.estimated);
    assert_eq!(
        (out.usage.uncached_input_tokens, out.usage.output_tokens),
        (7, 9)
    );
}

#[test]
fn the_model_the_response_reports_is_kept() {
    let out = read(
        Dialect::OpenaiChat,
        Framing::Sse,
        &[b"data: {\"id\":\"c\",\"model\":\"gpt-4o-2024-11-20\",\"choices\":[]}\n\n"],
    );
    assert_eq!(out.model.as_deref(), Some("gpt-4o-2024-11-20"));
    let gemini = read(
        Dialect::Gemini,
        Framing::Json,
        &[br#"{"candidates":[],"modelVersion": "gemini-2.5-flash"}"#],
    );
    assert_eq!(gemini.model.as_deref(), Some("gemini-2.5-flash"));
}

#[test]
fn a_chunk_handed_over_reads_as_the_same_chunk_copied() {
    let fixture = |name: &str| {
        std::fs::read(format!(
            "{}/../../tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let answer = fixture("openai-chat-cache-reasoning.json");
    let events = fixture("openai-chat-stream-include-usage.sse");
    // A bound under the answer's size (its first chunk is copied, not kept) and one over it.
    for bound in [512, 4096] {
        let limits = StreamLimits {
            max_event_bytes: 1024,
            max_json_tail_bytes: bound,
        };
        for (framing, body) in [(Framing::Json, &answer), (Framing::Sse, &events)] {
            // Whole, in two pieces, and in pieces smaller and larger than the bound.
            for size in [body.len(), body.len() / 2 + 1, 7, 511, 513] {
                let mut copied = ResponseReader::new(Dialect::OpenaiChat, framing, limits);
                let mut owned = ResponseReader::new(Dialect::OpenaiChat, framing, limits);
                for chunk in body.chunks(size) {
                    copied.feed(chunk);
                    owned.feed_owned(chunk.to_vec());
                    // What a copy would hold, within one step of the buffer's doubling (a
                    // kept chunk's allocation starts exact, a copy's rounded up).
                    assert!(
                        owned.held_bytes() <= 2 * copied.held_bytes(),
                        "{framing:?} {size}: {} > {}",
                        owned.held_bytes(),
                        copied.held_bytes()
                    );
                }
                let (copied, owned) = (copied.finish(|| 9), owned.finish(|| 9));
                assert_eq!(owned, copied, "{framing:?} in pieces of {size}");
                assert!(!owned.usage.estimated, "{framing:?} in pieces of {size}");
            }
        }
    }
}

#[test]
fn a_json_chunk_longer_than_the_tail_bound_is_held_only_to_the_bound() {
    let mut body = b"{\"choices\":[{\"message\":{\"content\":\"".to_vec();
    body.extend(std::iter::repeat_n(b'x', 100_000));
    body.extend(b"\"}}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}");
    let limits = StreamLimits {
        max_event_bytes: 1024,
        max_json_tail_bytes: 1024,
    };
    let mut copied = ResponseReader::new(Dialect::OpenaiChat, Framing::Json, limits);
    let mut owned = ResponseReader::new(Dialect::OpenaiChat, Framing::Json, limits);
    // A small first piece, then the rest whole: what is held stays at the bound.
    let (head, rest) = body.split_at(10);
    for reader in [&mut copied, &mut owned] {
        reader.feed(head);
    }
    copied.feed(rest);
    owned.feed_owned(rest.to_vec());
    for reader in [copied, owned] {
        assert!(reader.held_bytes() <= 2 * 1024, "{}", reader.held_bytes());
        let out = reader.finish(|| 0);
        assert!(!out.usage.estimated);
        assert_eq!(out.stats.bytes, body.len() as u64);
        assert_eq!(
            (out.usage.uncached_input_tokens, out.usage.output_tokens),
            (3, 4)
        );
    }
}
