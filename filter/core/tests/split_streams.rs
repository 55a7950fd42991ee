//! Property: however a streamed fixture's bytes are chunked, the usage is the same.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use proptest::prelude::*;

#[test]
fn splitting_any_streamed_fixture_at_any_single_boundary_gives_the_same_usage() {
    for f in common::all().iter().filter(|f| f.is_streamed()) {
        let whole = f.read(&[&f.body]);
        for cut in 0..=f.body.len() {
            let (a, b) = f.body.split_at(cut);
            assert_eq!(f.read(&[a, b]), whole, "{} cut at {cut}", f.name);
        }
    }
}

#[test]
fn feeding_any_streamed_fixture_byte_by_byte_gives_the_same_usage() {
    for f in common::all().iter().filter(|f| f.is_streamed()) {
        let whole = f.read(&[&f.body]);
        let bytes: Vec<&[u8]> = f.body.chunks(1).collect();
        assert_eq!(f.read(&bytes), whole, "{}", f.name);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_chunk_sizes_give_the_same_usage(sizes in proptest::collection::vec(1usize..300, 1..64)) {
        for f in common::all().iter().filter(|f| f.is_streamed()) {
            let whole = f.read(&[&f.body]);
            let mut chunks = Vec::new();
            let mut rest: &[u8] = &f.body;
            let mut i = 0;
            while !rest.is_empty() {
                let n = sizes[i % sizes.len()].min(rest.len());
                let (head, tail) = rest.split_at(n);
                chunks.push(head);
                rest = tail;
                i += 1;
            }
            prop_assert_eq!(f.read(&chunks), whole, "{}", &f.name);
        }
    }
}

/// Events of an [`SseReader`] with a small bound, for any chunking.
fn sse_events(chunks: &[&[u8]], max: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut reader = tollgate_filter_core::stream::sse::SseReader::new(max);
    let mut out = Vec::new();
    let mut sink = |name: &[u8], data: &[u8]| out.push((name.to_vec(), data.to_vec()));
    for chunk in chunks {
        reader.feed(chunk, &mut sink);
        assert!(reader.pending_bytes() <= max);
    }
    reader.finish(&mut sink);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn sse_events_do_not_depend_on_chunking_even_near_the_bound(
        pieces in proptest::collection::vec(
            prop_oneof![
                Just(&b"data: "[..]), Just(&b"data:x"[..]), Just(&b"event: e\n"[..]),
                Just(&b": c"[..]), Just(&b"\n"[..]), Just(&b"\r"[..]), Just(&b"\r\n"[..]),
                Just(&b"abcdefgh"[..]), Just(&b"{\"usage\":1}"[..]),
            ],
            0..40,
        ),
        cut in 0usize..400,
        max in 8usize..48,
    ) {
        let stream: Vec<u8> = pieces.concat();
        let cut = cut.min(stream.len());
        let (a, b) = stream.split_at(cut);
        let whole = sse_events(&[&stream], max);
        prop_assert_eq!(sse_events(&[a, b], max), whole.clone());
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        prop_assert_eq!(sse_events(&bytes, max), whole);
    }
}
