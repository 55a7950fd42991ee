//! Pricing per dimension, against a small table written for the tests (the shipped table's
//! own figures change with the market; its loading is tested in `tests/shipped_prices.rs`).

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;

use super::*;
use crate::money::NanoUsd;
use crate::usage::{ServiceTier, Usage};

const TABLE: &str = r#"{
  "schema_version": 1, "table_version": "test", "currency": "USD", "default_max_output_tokens": 4096,
  "models": [
    {"id": "sonnet", "provider": "anthropic", "aliases": ["sonnet-20250929"], "default_max_output_tokens": 64000,
     "source": "test", "checked": "2026-01-01",
     "prices": [{"effective_from": "2025-01-01", "input": "3", "cached_input": "0.30",
                 "cache_write_5m": "3.75", "cache_write_1h": "6", "output": "15",
                 "long_context": {"threshold_input_tokens": 200000, "input": "6", "cached_input": "0.60",
                                  "cache_write_5m": "7.50", "cache_write_1h": "12", "output": "22.50"},
                 "batch_multiplier": "0.5"}]},
    {"id": "thinker", "provider": "openai", "source": "test", "checked": "2026-01-01",
     "prices": [{"effective_from": "2025-01-01", "input": "1.10", "cached_input": "0.275", "output": "4.40",
                 "reasoning": "8.80", "priority_multiplier": "2"}]},
    {"id": "repriced", "provider": "openai", "source": "test", "checked": "2026-01-01",
     "prices": [{"effective_from": "2024-01-01", "input": "10", "output": "30"},
                {"effective_from": "2025-06-01", "input": "5", "output": "15"}]},
    {"id": "imager", "provider": "openai", "source": "test", "checked": "2026-01-01",
     "prices": [{"effective_from": "2024-01-01", "input": "0", "output": "0", "per_image": "0.04",
                 "per_request": "0.001", "per_audio_minute": "0.006"}]},
    {"id": "cheap", "provider": "google", "source": "test", "checked": "2026-01-01",
     "prices": [{"effective_from": "2024-01-01", "input": "0.075", "output": "0.30"}]},
    {"id": "tiny", "provider": "test", "source": "test", "checked": "2026-01-01",
     "prices": [{"effective_from": "2024-01-01", "input": "0.0015", "output": "0"}]},
    {"id": "anthropic.special", "provider": "bedrock", "source": "test", "checked": "2026-01-01",
     "prices": [{"effective_from": "2024-01-01", "input": "1", "output": "1"}]},
    {"id": "listener", "provider": "openai", "source": "test", "checked": "2026-01-01",
     "prices": [{"effective_from": "2024-01-01", "input": "2.5", "output": "10",
                 "audio_input": "40", "audio_output": "80", "batch_multiplier": "0.5"}]},
    {"id": "searcher", "provider": "anthropic", "source": "test", "checked": "2026-01-01",
     "prices": [{"effective_from": "2024-01-01", "input": "3", "output": "15",
                 "per_web_search": "0.01", "batch_multiplier": "0.5"}]}
  ]
}"#;

fn table() -> PriceTable {
    PriceTable::from_json("test", TABLE).unwrap()
}

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
}

fn cost(model: &str, usage: Usage) -> Cost {
    table().cost(model, &usage, at(2026, 1, 1)).unwrap()
}

/// $1 = 10⁹ nano; $X per million tokens = X × 1000 nano per token.
#[test]
fn uncached_input_and_output_are_priced_per_million() {
    let c = cost(
        "sonnet",
        Usage {
            uncached_input_tokens: 1000,
            output_tokens: 100,
            ..Usage::default()
        },
    );
    assert_eq!(c.breakdown.uncached_input, NanoUsd(3_000_000));
    assert_eq!(c.breakdown.output, NanoUsd(1_500_000));
    assert_eq!(c.total, NanoUsd(4_500_000));
}

#[test]
fn cached_input_uses_the_cache_read_price() {
    let c = cost(
        "sonnet",
        Usage {
            cached_input_tokens: 10_000,
            ..Usage::default()
        },
    );
    assert_eq!(c.breakdown.cached_input, NanoUsd(3_000_000));
    assert_eq!(c.total, NanoUsd(3_000_000));
}

#[test]
fn five_minute_and_one_hour_cache_writes_have_their_own_prices() {
    let c = cost(
        "sonnet",
        Usage {
            cache_write_5m_tokens: 1000,
            cache_write_1h_tokens: 1000,
            ..Usage::default()
        },
    );
    assert_eq!(c.breakdown.cache_write_5m, NanoUsd(3_750_000));
    assert_eq!(c.breakdown.cache_write_1h, NanoUsd(6_000_000));
}

#[test]
fn reasoning_is_part_of_output_but_priced_on_its_own() {
    let c = cost(
        "thinker",
        Usage {
            output_tokens: 1000,
            reasoning_tokens: 600,
            ..Usage::default()
        },
    );
    assert_eq!(c.breakdown.output, NanoUsd(400 * 4400));
    assert_eq!(c.breakdown.reasoning, NanoUsd(600 * 8800));
}

#[test]
fn reasoning_defaults_to_the_output_price() {
    let c = cost(
        "sonnet",
        Usage {
            output_tokens: 1000,
            reasoning_tokens: 600,
            ..Usage::default()
        },
    );
    assert_eq!(c.breakdown.output, NanoUsd(400 * 15_000));
    assert_eq!(c.breakdown.reasoning, NanoUsd(600 * 15_000));
}

#[test]
fn long_context_tier_starts_strictly_above_the_threshold() {
    // Exactly at the threshold: standard prices. Cached and written tokens count as input.
    let at_threshold = Usage {
        uncached_input_tokens: 100_000,
        cached_input_tokens: 50_000,
        cache_write_5m_tokens: 50_000,
        output_tokens: 10,
        ..Usage::default()
    };
    let c = cost("sonnet", at_threshold);
    assert!(!c.long_context);
    assert_eq!(c.breakdown.uncached_input, NanoUsd(100_000 * 3000));
    assert_eq!(c.breakdown.output, NanoUsd(10 * 15_000));
    // One more input token: every token at the tier price.
    let c = cost(
        "sonnet",
        Usage {
            uncached_input_tokens: 100_001,
            ..at_threshold
        },
    );
    assert!(c.long_context);
    assert_eq!(c.breakdown.uncached_input, NanoUsd(100_001 * 6000));
    assert_eq!(c.breakdown.cached_input, NanoUsd(50_000 * 600));
    assert_eq!(c.breakdown.cache_write_5m, NanoUsd(50_000 * 7500));
    assert_eq!(c.breakdown.output, NanoUsd(10 * 22_500));
}

#[test]
fn the_price_in_force_on_the_day_is_used() {
    let t = table();
    let u = Usage {
        uncached_input_tokens: 1_000_000,
        ..Usage::default()
    };
    let before = t.cost("repriced", &u, at(2025, 5, 31)).unwrap();
    let on = t
        .cost(
            "repriced",
            &u,
            Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap(),
        )
        .unwrap();
    assert_eq!(before.total, NanoUsd(10_000_000_000));
    assert_eq!(on.total, NanoUsd(5_000_000_000));
    assert_eq!(on.price_effective_from.to_string(), "2025-06-01");
    // Usage from before the first version is priced at the first version.
    assert_eq!(
        t.cost("repriced", &u, at(2020, 1, 1)).unwrap().total,
        NanoUsd(10_000_000_000)
    );
}

#[test]
fn batch_and_priority_multiply_token_prices_only() {
    let c = cost(
        "sonnet",
        Usage {
            uncached_input_tokens: 1000,
            service_tier: ServiceTier::Batch,
            ..Usage::default()
        },
    );
    assert_eq!(c.total, NanoUsd(1_500_000));
    let c = cost(
        "thinker",
        Usage {
            output_tokens: 10,
            service_tier: ServiceTier::Priority,
            ..Usage::default()
        },
    );
    assert_eq!(c.total, NanoUsd(10 * 8800));
    // No multiplier configured means the tier costs the same as standard.
    let c = cost(
        "cheap",
        Usage {
            output_tokens: 10,
            service_tier: ServiceTier::Priority,
            ..Usage::default()
        },
    );
    assert_eq!(c.total, NanoUsd(10 * 300));
}

#[test]
fn fees_per_request_image_and_audio_minute() {
    let c = cost(
        "imager",
        Usage {
            images: 3,
            audio_seconds: 90,
            ..Usage::default()
        },
    );
    assert_eq!(c.breakdown.request_fee, NanoUsd(1_000_000));
    assert_eq!(c.breakdown.images, NanoUsd(120_000_000));
    assert_eq!(c.breakdown.audio, NanoUsd(9_000_000));
}

#[test]
fn sub_nano_charges_round_up_per_dimension() {
    // $0.0015 per million tokens = 1.5 nano-USD per token.
    let c = cost(
        "tiny",
        Usage {
            uncached_input_tokens: 1,
            ..Usage::default()
        },
    );
    assert_eq!(c.total, NanoUsd(2));
    let c = cost(
        "tiny",
        Usage {
            uncached_input_tokens: 2,
            ..Usage::default()
        },
    );
    assert_eq!(c.total, NanoUsd(3));
    // $0.075 per million = 75 nano per token: whole, nothing to round.
    let c = cost(
        "cheap",
        Usage {
            uncached_input_tokens: 14,
            ..Usage::default()
        },
    );
    assert_eq!(c.total, NanoUsd(14 * 75));
}

#[test]
fn aliases_snapshots_and_prefixes_resolve() {
    let t = table();
    assert_eq!(t.resolve("sonnet-20250929").unwrap().id(), "sonnet");
    assert_eq!(t.resolve("sonnet-20260101").unwrap().id(), "sonnet");
    assert_eq!(
        t.resolve("us.anthropic.sonnet-20250929-v1:0").unwrap().id(),
        "sonnet"
    );
    assert_eq!(
        t.resolve("anthropic.special-v1:0").unwrap().id(),
        "anthropic.special"
    );
    assert_eq!(t.resolve("models/cheap").unwrap().id(), "cheap");
    assert_eq!(t.resolve("Cheap-latest").unwrap().id(), "cheap");
}

#[test]
fn configured_aliases_name_azure_deployments() {
    let mut t = table();
    assert!(t.resolve("prod-chat").is_none());
    t.add_alias("prod-chat", "thinker").unwrap();
    assert_eq!(t.resolve("prod-chat").unwrap().id(), "thinker");
    assert!(t.add_alias("x", "no-such-model").is_err());
    assert!(t.add_alias("cheap", "thinker").is_err());
}

#[test]
fn unknown_model_is_a_typed_error() {
    let err = table()
        .cost("gpt-9", &Usage::default(), at(2026, 1, 1))
        .unwrap_err();
    assert_eq!(err, PricingError::UnknownModel("gpt-9".into()));
}

#[test]
fn absurd_counts_overflow_instead_of_wrapping() {
    let err = table()
        .cost(
            "sonnet",
            &Usage {
                output_tokens: u64::MAX,
                ..Usage::default()
            },
            at(2026, 1, 1),
        )
        .unwrap_err();
    assert!(matches!(err, PricingError::Overflow(_)));
}

#[test]
fn default_output_cap_comes_from_the_entry_or_the_table() {
    let t = table();
    assert_eq!(t.default_max_output_tokens("sonnet"), 64000);
    assert_eq!(t.default_max_output_tokens("cheap"), 4096);
    assert_eq!(t.default_max_output_tokens("unknown"), 4096);
}

#[test]
fn overrides_replace_an_entry() {
    let mut t = table();
    let entry = r#"{"id":"cheap","provider":"google","source":"override","checked":"2026-02-01",
                   "prices":[{"effective_from":"2024-01-01","input":"1","output":"2"}]}"#;
    t.upsert(ModelPrices::from_entry_json(entry).unwrap())
        .unwrap();
    assert_eq!(cost_with(&t, "cheap", 1000), NanoUsd(1_000_000));
    let json = serde_json::to_value(t.resolve("cheap").unwrap().entry()).unwrap();
    assert_eq!(json["prices"][0]["input"], "1");
}

fn cost_with(t: &PriceTable, model: &str, input: u64) -> NanoUsd {
    t.cost(
        model,
        &Usage {
            uncached_input_tokens: input,
            ..Usage::default()
        },
        at(2026, 1, 1),
    )
    .unwrap()
    .total
}

fn load_err(text: &str) -> String {
    PriceTable::from_json("bad.json", text)
        .unwrap_err()
        .to_string()
}

fn with_model(model: &str) -> String {
    format!(
        r#"{{"schema_version":1,"table_version":"t","currency":"USD","default_max_output_tokens":1,"models":[{model}]}}"#
    )
}

#[test]
fn a_negative_price_is_refused_naming_entry_and_field() {
    let e = load_err(&with_model(
        r#"{"id":"m","provider":"p","source":"s","checked":"2026-01-01","prices":[{"effective_from":"2025-01-01","input":"-1","output":"1"}]}"#,
    ));
    assert!(e.contains(r#"models[0] ("m").prices[0].input"#), "{e}");
    assert!(e.contains("negative"), "{e}");
}

#[test]
fn a_model_id_that_is_not_lowercase_ascii_is_refused_naming_the_field() {
    // Names are matched lower-cased by ASCII rules only (no Unicode case tables in the
    // filter's .wasm), so an id must already be what that lower-casing gives.
    for id in ["GPT-4o", "modèle"] {
        let e = load_err(&with_model(&format!(
            r#"{{"id":"{id}","provider":"p","source":"s","checked":"2026-01-01","prices":[{{"effective_from":"2025-01-01","input":"1","output":"1"}}]}}"#
        )));
        assert!(e.contains("id") && e.contains("lowercase ASCII"), "{e}");
    }
}

#[test]
fn a_name_is_matched_lower_cased() {
    let t = PriceTable::from_json("t.json", &with_model(
        r#"{"id":"m-1","provider":"p","source":"s","checked":"2026-01-01","prices":[{"effective_from":"2025-01-01","input":"1","output":"1"}]}"#,
    ))
    .unwrap();
    assert_eq!(t.resolve("models/M-1").map(|m| m.id()), Some("m-1"));
}

#[test]
fn a_duplicate_model_is_refused() {
    let m = r#"{"id":"m","provider":"p","source":"s","checked":"2026-01-01","prices":[{"effective_from":"2025-01-01","input":"1","output":"1"}]}"#;
    let e = load_err(&with_model(&format!("{m},{m}")));
    assert!(
        e.contains(r#"models[1] ("m")"#) && e.contains("duplicate"),
        "{e}"
    );
}

#[test]
fn an_unknown_field_is_refused_with_its_path() {
    let e = load_err(&with_model(
        r#"{"id":"m","provider":"p","source":"s","checked":"2026-01-01","prices":[{"effective_from":"2025-01-01","input":"1","output":"1","outptu":"2"}]}"#,
    ));
    assert!(
        e.contains("models[0].prices[0]") && e.contains("outptu"),
        "{e}"
    );
}

#[test]
fn a_missing_currency_is_refused() {
    let e = load_err(
        r#"{"schema_version":1,"table_version":"t","default_max_output_tokens":1,"models":[]}"#,
    );
    assert!(e.contains("currency"), "{e}");
    let e = load_err(
        r#"{"schema_version":1,"table_version":"t","currency":"EUR","default_max_output_tokens":1,"models":[]}"#,
    );
    assert!(e.contains("currency"), "{e}");
}

#[test]
fn a_price_written_as_a_json_number_is_refused() {
    let e = load_err(&with_model(
        r#"{"id":"m","provider":"p","source":"s","checked":"2026-01-01","prices":[{"effective_from":"2025-01-01","input":2.5,"output":"1"}]}"#,
    ));
    assert!(e.contains("models[0].prices[0].input"), "{e}");
}

#[test]
fn versions_out_of_order_are_refused() {
    let e = load_err(&with_model(
        r#"{"id":"m","provider":"p","source":"s","checked":"2026-01-01","prices":[{"effective_from":"2025-01-01","input":"1","output":"1"},{"effective_from":"2024-01-01","input":"1","output":"1"}]}"#,
    ));
    assert!(e.contains("prices[1].effective_from"), "{e}");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn usage() -> impl Strategy<Value = Usage> {
        let n = 0u64..5_000_000;
        (
            n.clone(),
            n.clone(),
            n.clone(),
            n.clone(),
            n.clone(),
            0u64..100,
            0u64..10_000,
            0usize..3,
        )
            .prop_map(|(a, b, c, d, out, img, audio, tier)| Usage {
                uncached_input_tokens: a,
                cached_input_tokens: b,
                cache_write_5m_tokens: c,
                cache_write_1h_tokens: d,
                output_tokens: out,
                reasoning_tokens: out / 3,
                images: img,
                audio_seconds: audio,
                audio_input_tokens: a / 2,
                audio_output_tokens: out / 4,
                web_searches: img / 10,
                service_tier: [
                    ServiceTier::Standard,
                    ServiceTier::Batch,
                    ServiceTier::Priority,
                ][tier],
                estimated: false,
            })
    }

    proptest! {
        #[test]
        fn cost_is_the_sum_of_its_breakdown(u in usage(), m in 0usize..7) {
            let model = ["sonnet", "thinker", "repriced", "imager", "cheap", "listener", "searcher"][m];
            let c = table().cost(model, &u, at(2026, 1, 1)).unwrap();
            let b = c.breakdown;
            let sum = [b.uncached_input, b.cached_input, b.cache_write_5m, b.cache_write_1h,
                       b.output, b.reasoning, b.request_fee, b.images, b.audio]
                .iter().map(|n| i128::from(n.nanos())).sum::<i128>();
            prop_assert_eq!(i128::from(c.total.nanos()), sum);
        }

        #[test]
        fn each_dimension_is_the_exact_price_rounded_up(tokens in 0u64..10_000_000_000) {
            let c = cost("tiny", Usage { uncached_input_tokens: tokens, ..Usage::default() });
            let exact = Decimal::from(tokens) * Decimal::from_str("0.0015").unwrap() / Decimal::from(1_000_000);
            prop_assert_eq!(c.total, NanoUsd::from_usd_ceil(exact).unwrap());
        }
    }
}

#[test]
fn the_shipped_table_reads_the_same_with_or_without_json_path_tracking() {
    let shipped = PriceTable::shipped().unwrap();
    let text = shipped_prices_json().unwrap();
    let tracked = PriceTable::from_json("shipped prices.json", &text).unwrap();
    assert_eq!(shipped.table_version(), tracked.table_version());
    assert_eq!(shipped.models(), tracked.models());
    assert_eq!(shipped.compiled, tracked.compiled);
    assert_eq!(shipped.index, tracked.index);
}

#[test]
fn a_broken_shipped_style_file_still_fails_with_its_position() {
    let e = file::parse_shipped("shipped prices.json", r#"{"schema_version": 1, "oops"#)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("shipped prices.json: line 1 column "), "{e}");
}

#[test]
fn the_embedded_table_inflates_to_the_minified_file() {
    let file: serde_json::Value =
        serde_json::from_str(include_str!("../../prices/prices.json")).unwrap();
    assert_eq!(shipped_prices_json().unwrap(), file.to_string());
}

/// gpt-4o-audio-preview's published rates: text $2.50 / $10, audio $40 / $80 per million.
#[test]
fn audio_tokens_are_priced_at_the_audio_rates_and_their_text_remainder_at_the_text_rates() {
    let c = cost(
        "listener",
        Usage {
            uncached_input_tokens: 1000,
            audio_input_tokens: 600,
            output_tokens: 500,
            audio_output_tokens: 300,
            ..Usage::default()
        },
    );
    // 400 text input × 2 500 nano + 200 text output × 10 000 nano.
    assert_eq!(c.breakdown.uncached_input, NanoUsd(1_000_000));
    assert_eq!(c.breakdown.output, NanoUsd(2_000_000));
    // 600 × 40 000 + 300 × 80 000 nano.
    assert_eq!(c.breakdown.audio, NanoUsd(48_000_000));
    assert_eq!(c.total, NanoUsd(51_000_000));
}

#[test]
fn audio_prices_default_to_the_text_prices_so_audio_costs_what_it_did_without_them() {
    let plain = Usage {
        uncached_input_tokens: 1000,
        output_tokens: 100,
        ..Usage::default()
    };
    let audio = Usage {
        audio_input_tokens: 1000,
        audio_output_tokens: 100,
        ..plain
    };
    assert_eq!(cost("sonnet", audio).total, cost("sonnet", plain).total);
}

#[test]
fn an_audio_count_above_its_whole_is_capped_and_never_charged_twice() {
    let c = cost(
        "listener",
        Usage {
            uncached_input_tokens: 10,
            audio_input_tokens: 50,
            output_tokens: 20,
            reasoning_tokens: 15,
            audio_output_tokens: 50,
            ..Usage::default()
        },
    );
    // 10 audio input, 5 audio output (the non-reasoning output), 15 reasoning at output.
    assert_eq!(c.breakdown.uncached_input, NanoUsd::ZERO);
    assert_eq!(c.breakdown.output, NanoUsd::ZERO);
    assert_eq!(c.breakdown.reasoning, NanoUsd(150_000));
    assert_eq!(c.breakdown.audio, NanoUsd(10 * 40_000 + 5 * 80_000));
}

#[test]
fn batch_multiplies_audio_token_prices_too() {
    let usage = Usage {
        uncached_input_tokens: 100,
        audio_input_tokens: 100,
        service_tier: ServiceTier::Batch,
        ..Usage::default()
    };
    assert_eq!(cost("listener", usage).breakdown.audio, NanoUsd(2_000_000));
}

/// Anthropic's web search: $10 per 1 000 searches, a fee the batch tier does not halve.
#[test]
fn web_searches_are_charged_per_search_in_the_fees() {
    let usage = Usage {
        uncached_input_tokens: 1000,
        output_tokens: 100,
        web_searches: 3,
        service_tier: ServiceTier::Batch,
        ..Usage::default()
    };
    let c = cost("searcher", usage);
    assert_eq!(c.breakdown.request_fee, NanoUsd(30_000_000));
    assert_eq!(c.total, NanoUsd(1_500_000 + 750_000 + 30_000_000));
    assert_eq!(
        cost("sonnet", usage).breakdown.request_fee,
        NanoUsd::ZERO,
        "a model without a search price charges no search fee"
    );
}

#[test]
fn a_negative_audio_or_search_price_is_refused_naming_the_field() {
    let bad = TABLE.replacen(r#""audio_output": "80""#, r#""audio_output": "-1""#, 1);
    assert!(
        load_err(&bad).contains("audio_output"),
        "{}",
        load_err(&bad)
    );
    let bad = TABLE.replacen(
        r#""per_web_search": "0.01""#,
        r#""per_web_search": "-1""#,
        1,
    );
    assert!(
        load_err(&bad).contains("per_web_search"),
        "{}",
        load_err(&bad)
    );
}

#[test]
fn the_worst_case_prices_the_output_cap_at_the_audio_rate_where_it_is_dearer() {
    let worst = Usage::worst_case(100, 10);
    // listener: 100 × 2 500 input, 10 × 80 000 audio output.
    assert_eq!(cost("listener", worst).total, NanoUsd(250_000 + 800_000));
    // sonnet has no audio price: the worst case is text output, as before.
    assert_eq!(cost("sonnet", worst).total, NanoUsd(300_000 + 150_000));
}
