//! Gemini's JSON-array stream: bounded, chunking-independent, no panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_filter_core::providers::{Dialect, Framing};
use tollgate_filter_core::stream::{ResponseReader, StreamLimits};

mod common;

fuzz_target!(|data: &[u8]| {
    let (size, stream) = common::chunks(data);
    let limits = StreamLimits {
        max_event_bytes: 256,
        max_json_tail_bytes: 256,
    };
    let mut whole = ResponseReader::new(Dialect::Gemini, Framing::JsonArray, limits);
    whole.feed(stream);
    let mut split = ResponseReader::new(Dialect::Gemini, Framing::JsonArray, limits);
    for chunk in stream.chunks(size) {
        split.feed(chunk);
    }
    assert_eq!(whole.finish(3).usage, split.finish(3).usage);
});
