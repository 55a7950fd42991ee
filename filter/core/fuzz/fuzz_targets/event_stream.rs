//! AWS event-stream: the reader never panics, never holds more than its bound, and yields
//! the same messages however the bytes are chunked. Inputs are often made valid by framing
//! the fuzz bytes as payloads, so the CRC checks do not reject everything.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_filter_core::providers::{Dialect, Framing};
use tollgate_filter_core::stream::event_stream::{EventStreamReader, encode_event};
use tollgate_filter_core::stream::{ResponseReader, StreamLimits};

mod common;

fn messages(stream: &[u8], size: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut reader = EventStreamReader::new(512);
    let mut out = Vec::new();
    for chunk in stream.chunks(size) {
        reader.feed(chunk, &mut |m| {
            out.push((m.event_type.to_vec(), m.payload.to_vec()))
        });
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let (size, raw) = common::chunks(data);
    // Half the time, wrap pieces of the input as valid messages (a metadata event among them).
    let stream = if size % 2 == 0 {
        raw.split(|&b| b == b'\n')
            .enumerate()
            .flat_map(|(i, piece)| {
                encode_event(if i % 2 == 0 { "metadata" } else { "chunk" }, piece)
            })
            .collect()
    } else {
        raw.to_vec()
    };
    assert_eq!(
        messages(&stream, stream.len().max(1)),
        messages(&stream, size)
    );
    for dialect in [Dialect::Converse, Dialect::Anthropic] {
        let mut reader =
            ResponseReader::new(dialect, Framing::EventStream, StreamLimits::default());
        for chunk in stream.chunks(size) {
            reader.feed(chunk);
        }
        let _ = reader.finish(1);
    }
});
