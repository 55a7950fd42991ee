//! Every named fixture under `tests/fixtures/` yields the usage in its `.expected.json`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

#[test]
fn every_fixture_yields_its_expected_usage() {
    let fixtures = common::all();
    assert!(
        fixtures.len() >= 25,
        "only {} fixtures found",
        fixtures.len()
    );
    let mut failures = Vec::new();
    for f in &fixtures {
        let got = f.read(&[&f.body]).usage;
        if got != f.expected.usage {
            failures.push(format!(
                "{}:\n  expected {:?}\n  got      {:?}",
                f.name, f.expected.usage, got
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_provider_api_has_a_streamed_and_a_whole_fixture() {
    use std::collections::BTreeSet;
    let fixtures = common::all();
    let kinds: BTreeSet<(String, bool)> = fixtures
        .iter()
        .map(|f| (format!("{:?}", f.route.api.dialect()), f.is_streamed()))
        .collect();
    for dialect in [
        "OpenaiChat",
        "OpenaiResponses",
        "Anthropic",
        "Gemini",
        "Converse",
        "Cohere",
    ] {
        for streamed in [false, true] {
            assert!(
                kinds.contains(&(dialect.to_owned(), streamed)),
                "{dialect} streamed={streamed}"
            );
        }
    }
}
