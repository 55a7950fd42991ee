//! The price table shipped in the crate loads, is large enough, and resolves the names
//! clients actually send.

#![allow(clippy::expect_used, clippy::unwrap_used)]
use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use tollgate_model::{NanoUsd, PriceTable, Usage};

fn table() -> PriceTable {
    PriceTable::shipped().expect("shipped prices.json must load")
}

#[test]
fn shipped_table_covers_at_least_80_models_across_the_major_providers() {
    let t = table();
    assert!(t.models().len() >= 80, "only {} models", t.models().len());
    let mut per_provider: BTreeMap<&str, usize> = BTreeMap::new();
    for m in t.models() {
        *per_provider.entry(m.provider()).or_default() += 1;
        assert!(!m.entry().source.is_empty(), "{} has no source", m.id());
    }
    for p in [
        "openai",
        "anthropic",
        "google",
        "mistral",
        "cohere",
        "groq",
        "deepseek",
        "xai",
        "bedrock",
    ] {
        assert!(
            per_provider.get(p).copied().unwrap_or(0) >= 2,
            "{p}: {per_provider:?}"
        );
    }
}

#[test]
fn names_clients_send_resolve_to_entries() {
    let t = table();
    let cases = [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        (
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "claude-sonnet-4-5",
        ),
        ("models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("amazon.nova-pro-v1:0", "amazon.nova-pro"),
        (
            "meta.llama3-3-70b-instruct-v1:0",
            "meta.llama3-3-70b-instruct",
        ),
        ("openai/gpt-oss-120b", "openai/gpt-oss-120b"),
    ];
    for (name, id) in cases {
        assert_eq!(t.resolve(name).map(|m| m.id()), Some(id), "{name}");
    }
}

#[test]
fn a_shipped_model_prices_a_call_exactly() {
    // gpt-4o-mini at $0.15 / $0.60 per million tokens.
    let t = table();
    let at = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let usage = Usage {
        uncached_input_tokens: 1_000_000,
        output_tokens: 1_000_000,
        ..Usage::default()
    };
    assert_eq!(
        t.cost("gpt-4o-mini", &usage, at).unwrap().total,
        NanoUsd(750_000_000)
    );
}

#[test]
fn a_dated_snapshot_an_alias_and_a_bedrock_profile_count_as_their_base_model() {
    let mut t = table();
    t.add_alias("prod-chat", "gpt-4o-2024-08-06").unwrap();
    for (name, family) in [
        // A snapshot with an entry (and a price) of its own still counts as gpt-4o.
        ("gpt-4o-2024-05-13", &["gpt-4o-2024-05-13", "gpt-4o"][..]),
        ("gpt-4o-2024-11-20", &["gpt-4o-2024-08-06", "gpt-4o"]),
        // An Azure deployment name configured as an alias.
        ("prod-chat", &["gpt-4o-2024-08-06", "gpt-4o"]),
        ("gpt-4o", &["gpt-4o"]),
        (
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            &["claude-sonnet-4-5"],
        ),
        ("eu.amazon.nova-pro-v1:0", &["amazon.nova-pro"]),
    ] {
        assert_eq!(t.model_family(name), family, "{name}");
    }
    assert!(t.model_family("no-such-model").is_empty());
}
