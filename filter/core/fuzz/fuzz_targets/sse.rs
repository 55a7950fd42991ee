//! SSE: the raw reader stays within its bound, and the response reader never panics and
//! yields the same usage however the bytes are chunked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_filter_core::providers::{Dialect, Framing};
use tollgate_filter_core::stream::sse::SseReader;
use tollgate_filter_core::stream::{ResponseReader, StreamLimits};

mod common;

const DIALECTS: [Dialect; 6] = [
    Dialect::OpenaiChat,
    Dialect::OpenaiResponses,
    Dialect::Anthropic,
    Dialect::Gemini,
    Dialect::Converse,
    Dialect::Cohere,
];

fuzz_target!(|data: &[u8]| {
    let (size, stream) = common::chunks(data);
    let max = 64;
    let mut reader = SseReader::new(max);
    for chunk in stream.chunks(size) {
        reader.feed(chunk, &mut |_, event| assert!(event.len() <= max));
        assert!(reader.pending_bytes() <= max);
    }
    reader.finish(&mut |_, _| {});

    let dialect = DIALECTS[usize::from(data.first().copied().unwrap_or(0)) % DIALECTS.len()];
    let limits = StreamLimits {
        max_event_bytes: 4096,
        max_json_tail_bytes: 4096,
    };
    let mut whole = ResponseReader::new(dialect, Framing::Sse, limits);
    whole.feed(stream);
    let mut split = ResponseReader::new(dialect, Framing::Sse, limits);
    for chunk in stream.chunks(size) {
        split.feed(chunk);
    }
    assert_eq!(whole.finish(7).usage, split.finish(7).usage);
});
