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
