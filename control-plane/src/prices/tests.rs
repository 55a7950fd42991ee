//! The importer on a trimmed copy of LiteLLM 1.110.2's real map
//! (`tests/fixtures/litellm-1.110.2-trimmed.json`: 27 entries copied unchanged from the
//! wheel's `litellm/model_prices_and_context_window_backup.json`), the merge under the shipped
//! table, and the price authority's charges for the six models issue 16 names.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::str::FromStr;

use chrono::{NaiveDate, TimeZone, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;
use tollgate_model::pricing::ModelDto;
use tollgate_model::{PriceTable, Usage};

use super::coverage::coverage;
use super::litellm::{ImportSource, SkipReason, convert};
use super::merge::merge;
use super::*;

const FIXTURE: &str = include_str!("../../tests/fixtures/litellm-1.110.2-trimmed.json");

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn source() -> ImportSource {
    ImportSource {
        package: "litellm==1.110.2".into(),
        file: "litellm/model_prices_and_context_window_backup.json".into(),
        date: day(2026, 12, 7),
    }
}

fn converted() -> Vec<ModelDto> {
    convert(FIXTURE, &source()).unwrap().models
}

fn entry<'a>(models: &'a [ModelDto], id: &str) -> &'a ModelDto {
    models
        .iter()
        .find(|m| m.id == id)
        .unwrap_or_else(|| panic!("{id} not converted"))
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

#[test]
fn per_token_prices_are_read_from_their_json_text_into_exact_per_million_prices() {
    let models = converted();
    let nova = entry(&models, "us.amazon.nova-2-lite-v1:0");
    let v = &nova.prices[0];
    // LiteLLM writes 3.3e-07, 8.25e-08, 2.75e-06 and a priority tier of 5.775e-07 / 4.8125e-06.
    assert_eq!(v.input, dec("0.33"));
    assert_eq!(v.cached_input, Some(dec("0.0825")));
    assert_eq!(v.output, dec("2.75"));
    assert_eq!(v.priority_multiplier, Some(dec("1.75")));
    assert_eq!(v.batch_multiplier, Some(dec("0.5")));
    assert_eq!(v.effective_from, day(2026, 12, 7));
    assert_eq!(nova.provider, "bedrock");
    assert_eq!(nova.default_max_output_tokens, Some(64000));
    assert_eq!(
        nova.source,
        "litellm==1.110.2 litellm/model_prices_and_context_window_backup.json: us.amazon.nova-2-lite-v1:0"
    );
    assert!(is_imported(nova), "{:?}", nova.note);
}

#[test]
fn only_the_main_providers_chat_models_are_taken_and_qualified_keys_are_left_out() {
    let out = convert(FIXTURE, &source()).unwrap();
    let ids: Vec<&str> = out.models.iter().map(|m| m.id.as_str()).collect();
    // Fireworks is not a main provider; an embedding model is not a chat model.
    assert!(!ids.contains(&"gpt-oss-120b"), "{ids:?}");
    assert!(!ids.contains(&"text-embedding-3-small"), "{ids:?}");
    assert!(!ids.contains(&"sample_spec"), "{ids:?}");
    for key in [
        "azure/eu/gpt-4o",
        "bedrock/us-gov-west-1/openai.gpt-oss-120b-1:0",
    ] {
        assert!(
            out.skipped
                .contains(&(key.to_owned(), SkipReason::Qualified)),
            "{key}: {:?}",
            out.skipped
        );
    }
    // Azure's gpt-4o and OpenAI's name the same model: the maker's entry is kept.
    assert_eq!(entry(&out.models, "gpt-4o").provider, "openai");
    assert!(
        out.skipped
            .contains(&("azure/gpt-4o".to_owned(), SkipReason::Duplicate))
    );
    // Vertex's `vertex_ai/<model>` and Mistral's `mistral/<model>` name the model last.
    assert_eq!(
        entry(&out.models, "mistral-medium-latest").provider,
        "mistral"
    );
    assert_eq!(
        entry(&out.models, "claude-sonnet-4-5@20250929").provider,
        "vertex_ai"
    );
    // A Responses-only model counts as a chat model.
    assert!(ids.contains(&"o1-pro"), "{ids:?}");
}

#[test]
fn an_undated_openai_name_becomes_an_alias_of_its_newest_snapshot() {
    let models = converted();
    let newest = entry(&models, "gpt-4o-audio-preview-2025-06-03");
    assert_eq!(newest.aliases, vec!["gpt-4o-audio-preview".to_owned()]);
    assert!(
        entry(&models, "gpt-4o-audio-preview-2024-12-17")
            .aliases
            .is_empty()
    );
}

#[test]
fn search_models_carry_the_per_call_search_fee_and_other_models_no_fee() {
    let models = converted();
    let search = &entry(&models, "gpt-4o-mini-search-preview").prices[0];
    assert_eq!(search.per_request, Some(dec("0.025")));
    assert_eq!(entry(&models, "gpt-4o").prices[0].per_request, None);
}

#[test]
fn audio_token_prices_are_carried_through_and_default_to_the_text_prices_elsewhere() {
    let models = converted();
    // LiteLLM writes 4e-05 and 8e-05 USD per audio token.
    let audio = &entry(&models, "gpt-4o-audio-preview-2025-06-03").prices[0];
    assert_eq!(audio.audio_input, Some(dec("40")));
    assert_eq!(audio.audio_output, Some(dec("80")));
    let text = &entry(&models, "gpt-4o").prices[0];
    assert_eq!((text.audio_input, text.audio_output), (None, None));
}

#[test]
fn claude_models_carry_the_per_search_fee_and_search_previews_keep_theirs_per_call() {
    let models = converted();
    for id in [
        "claude-sonnet-4-5@20250929",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    ] {
        let v = &entry(&models, id).prices[0];
        assert_eq!(v.per_web_search, Some(dec("0.01")), "{id}");
        assert_eq!(v.per_request, None, "{id}");
    }
    let search = &entry(&models, "gpt-4o-mini-search-preview").prices[0];
    assert_eq!(search.per_web_search, None);
}

#[test]
fn a_long_context_tier_is_converted_with_its_threshold() {
    let models = converted();
    let eu = &entry(&models, "eu.anthropic.claude-sonnet-4-5-20250929-v1:0").prices[0];
    let lc = eu.long_context.as_ref().unwrap();
    assert_eq!(lc.threshold_input_tokens, 200_000);
    assert_eq!(lc.input, dec("6.6"));
    assert_eq!(lc.output, dec("24.75"));
    assert_eq!(eu.cache_write_1h, Some(dec("6.6")));
}

#[test]
fn tollgates_own_entries_win_and_a_region_priced_alike_adds_nothing() {
    let shipped = PriceTable::shipped().unwrap();
    let merged = merge(&shipped, &[], converted(), day(2026, 12, 7));
    let r = &merged.report;
    // Names the shipped table carries (an id, an alias).
    assert!(r.curated.contains(&"gpt-4o".to_owned()), "{r:?}");
    assert!(
        r.curated.contains(&"claude-sonnet-4-5-20250929".to_owned()),
        "{r:?}"
    );
    // Bedrock's global profile costs what the shipped model costs; the EU one 10 % more.
    assert!(
        r.same_as_curated
            .contains(&"global.anthropic.claude-sonnet-4-5-20250929-v1:0".to_owned()),
        "{r:?}"
    );
    assert!(
        r.added
            .contains(&"eu.anthropic.claude-sonnet-4-5-20250929-v1:0".to_owned()),
        "{r:?}"
    );
    for m in &merged.models {
        assert!(shipped.models().iter().all(|s| s.id() != m.id), "{}", m.id);
    }
}

#[test]
fn a_changed_price_gets_a_version_effective_on_the_import_day_and_keeps_its_history() {
    let shipped = PriceTable::shipped().unwrap();
    let first = merge(&shipped, &[], converted(), day(2026, 6, 1)).models;
    // Same prices a month later: nothing changes, the first date stays.
    let again = merge(&shipped, &first, converted(), day(2026, 7, 1));
    assert!(again.report.added.is_empty() && again.report.changed.is_empty());
    assert_eq!(again.models, first);
    // Qwen's price rises.
    let text = FIXTURE.replace(
        r#""output_cost_per_token": 6e-07,
        "output_cost_per_token_batches": 3e-07,
        "output_cost_per_token_flex": 3e-07,
        "output_cost_per_token_priority": 1.05e-06,
        "source": "https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonBedrock/current/us-east-1/index.json",
        "supports_function_calling": true,
        "supports_reasoning": true,
        "supports_tool_choice": true,
        "supports_native_structured_output": true"#,
        r#""output_cost_per_token": 9e-07,
        "source": "https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonBedrock/current/us-east-1/index.json""#,
    );
    assert_ne!(text, FIXTURE, "the fixture's qwen entry moved");
    let mut later = source();
    later.date = day(2026, 8, 1);
    let changed = merge(
        &shipped,
        &first,
        convert(&text, &later).unwrap().models,
        day(2026, 8, 1),
    );
    assert_eq!(
        changed.report.changed,
        vec!["qwen.qwen3-32b-v1:0".to_owned()]
    );
    let qwen = entry(&changed.models, "qwen.qwen3-32b-v1:0");
    let dates: Vec<_> = qwen.prices.iter().map(|v| v.effective_from).collect();
    assert_eq!(dates, vec![day(2026, 6, 1), day(2026, 8, 1)]);
    assert_eq!(qwen.prices[0].output, dec("0.6"));
    assert_eq!(qwen.prices[1].output, dec("0.9"));
    // A call of July is still priced at the old version.
    let mut table = shipped.clone();
    table.add_layer(
        changed
            .models
            .iter()
            .map(|m| {
                tollgate_model::pricing::ModelPrices::from_entry_json(
                    &serde_json::to_string(m).unwrap(),
                )
                .unwrap()
            })
            .collect(),
    );
    let usage = Usage {
        output_tokens: 1_000_000,
        ..Usage::default()
    };
    let july = Utc.with_ymd_and_hms(2026, 7, 15, 0, 0, 0).unwrap();
    let august = Utc.with_ymd_and_hms(2026, 8, 2, 0, 0, 0).unwrap();
    let cost = |at| {
        table
            .cost("qwen.qwen3-32b-v1:0", &usage, at)
            .unwrap()
            .total
            .0
    };
    assert_eq!(cost(july), 600_000_000);
    assert_eq!(cost(august), 900_000_000);
}

#[test]
fn the_coverage_counts_main_provider_chat_models_the_table_resolves() {
    let shipped = PriceTable::shipped().unwrap();
    let before = coverage(FIXTURE, &shipped).unwrap();
    let mut table = shipped.clone();
    let layer = merge(&shipped, &[], converted(), day(2026, 12, 7)).models;
    table.add_layer(
        layer
            .iter()
            .map(|m| {
                tollgate_model::pricing::ModelPrices::from_entry_json(
                    &serde_json::to_string(m).unwrap(),
                )
                .unwrap()
            })
            .collect(),
    );
    let after = coverage(FIXTURE, &table).unwrap();
    // 24 of the fixture's 27 entries are main-provider chat models (not sample_spec,
    // Fireworks, the embedding model).
    assert_eq!(before.total().1, 24);
    assert_eq!(after.total().1, 24);
    assert!(before.total().0 < after.total().0, "{before:?} {after:?}");
    assert_eq!(after.total().0, 24, "{:?}", after.unpriced);
}

/// The table the control plane prices with: shipped, with the embedded imported layer under it.
fn authority() -> PriceTable {
    let mut table = PriceTable::shipped().unwrap();
    table.add_layer(imported_layer().unwrap());
    table
}

#[test]
fn the_six_models_issue_16_names_are_priced_exactly_by_the_authority() {
    let table = authority();
    let at = Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap();
    let usage = Usage {
        uncached_input_tokens: 1234,
        output_tokens: 567,
        ..Usage::default()
    };
    // nano-USD per token = USD per million × 1000; each dimension rounded up on its own.
    let cases = [
        // $0.15 / $0.60: 1234 × 150 + 567 × 600.
        ("openai.gpt-oss-120b-1:0", 185_100 + 340_200),
        ("qwen.qwen3-32b-v1:0", 185_100 + 340_200),
        // $0.33 / $2.75 (the US geography profile: 10 % over amazon.nova-2-lite's $0.30 / $2.50).
        ("us.amazon.nova-2-lite-v1:0", 407_220 + 1_559_250),
        // $1.50 / $7.50.
        ("mistral-medium-latest", 1_851_000 + 4_252_500),
        // $2.50 / $10 (text tokens).
        ("gpt-4o-audio-preview", 3_085_000 + 5_670_000),
        // $0.15 / $0.60 and $0.025 for the search every call makes.
        ("gpt-4o-mini-search-preview", 185_100 + 340_200 + 25_000_000),
    ];
    for (model, nanos) in cases {
        let cost = table
            .cost(model, &usage, at)
            .unwrap_or_else(|e| panic!("{model}: {e}"));
        assert_eq!(cost.total.0, nanos, "{model}: {:?}", cost.breakdown);
    }
    // gpt-4o-audio-preview's audio: $40 / $80 per million audio tokens, the rest at text
    // rates: 1000 audio of 1234 input, 500 audio of 567 output.
    let audio = Usage {
        audio_input_tokens: 1000,
        audio_output_tokens: 500,
        ..usage
    };
    let cost = table.cost("gpt-4o-audio-preview", &audio, at).unwrap();
    assert_eq!(
        cost.total.0,
        234 * 2_500 + 67 * 10_000 + 1000 * 40_000 + 500 * 80_000,
        "{:?}",
        cost.breakdown
    );
    // Cache reads of the Nova profile: 1000 × 82.5 nano.
    let cached = Usage {
        cached_input_tokens: 1000,
        ..Usage::default()
    };
    let cost = table
        .cost("us.amazon.nova-2-lite-v1:0", &cached, at)
        .unwrap();
    assert_eq!(cost.total.0, 82_500);
}

#[test]
fn bedrock_cross_region_profiles_are_priced_where_their_price_differs() {
    let table = authority();
    let at = Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap();
    let usage = Usage {
        uncached_input_tokens: 1234,
        output_tokens: 567,
        ..Usage::default()
    };
    let total = |m: &str| table.cost(m, &usage, at).unwrap().total.0;
    // $3 / $15 for the global profile and the model itself; $3.30 / $16.50 in a geography.
    let base = 1234 * 3000 + 567 * 15_000;
    let geo = 1234 * 3300 + 567 * 16_500;
    assert_eq!(
        total("global.anthropic.claude-sonnet-4-5-20250929-v1:0"),
        base
    );
    assert_eq!(total("anthropic.claude-sonnet-4-5-20250929-v1:0"), base);
    for region in ["us", "eu", "jp", "au"] {
        assert_eq!(
            total(&format!(
                "{region}.anthropic.claude-sonnet-4-5-20250929-v1:0"
            )),
            geo,
            "{region}"
        );
    }
    // A budget limited to the model still counts the regional profile.
    assert!(
        table
            .model_family("eu.anthropic.claude-sonnet-4-5-20250929-v1:0")
            .contains(&"claude-sonnet-4-5")
    );
}

#[test]
fn the_embedded_imported_table_never_shadows_a_shipped_name() {
    let shipped = PriceTable::shipped().unwrap();
    let mut table = shipped.clone();
    let layer = imported_layer().unwrap();
    let n = layer.len();
    let added = table.add_layer(layer);
    assert_eq!(
        added.len(),
        n,
        "every imported entry names a model shipped lacks"
    );
    for m in shipped.models() {
        assert_eq!(table.resolve(m.id()).unwrap().id(), m.id());
    }
}

#[test]
fn an_entry_imported_while_its_curated_price_differed_leaves_the_layer_once_they_agree() {
    let shipped = PriceTable::shipped().unwrap();
    let id = "global.anthropic.claude-sonnet-4-5-20250929-v1:0";
    let previous = vec![entry(&converted(), id).clone()];
    let merged = merge(&shipped, &previous, converted(), day(2026, 12, 7));
    assert!(merged.models.iter().all(|m| m.id != id), "{id} kept");
    assert!(merged.report.same_as_curated.contains(&id.to_owned()));
}

#[test]
fn the_embedded_imported_table_names_no_model_apart_from_its_shipped_entry_at_the_same_price() {
    // LiteLLM states no web-search fee for Bedrock's Claude ids; the shipped Claude entries
    // carry one. That silence must not make `claude-sonnet-4-5-20250929-v1:0` a model of its
    // own, charged and reported under that name instead of `claude-sonnet-4-5`.
    let shipped = PriceTable::shipped().unwrap();
    let today = day(2026, 12, 7);
    for m in imported_layer().unwrap() {
        if let Some(c) = shipped.resolve(m.id()) {
            assert!(
                !super::merge::same_as_curated(c.entry(), m.entry(), today),
                "{} prices as the shipped {} does",
                m.id(),
                c.id()
            );
        }
    }
}

proptest! {
    /// Any per-token price LiteLLM may write, as a JSON number in either notation, becomes
    /// exactly `mantissa × 10^(6 − scale)` USD per million tokens.
    #[test]
    fn any_per_token_price_converts_exactly(mantissa in 1u64..10_000_000, scale in 3u32..15, scientific: bool) {
        let exact = Decimal::from_i128_with_scale(i128::from(mantissa), scale);
        let written = if scientific {
            format!("{mantissa}e-{scale}")
        } else {
            exact.to_string()
        };
        let text = format!(
            r#"{{"m": {{"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": {written}, "output_cost_per_token": {written}}}}}"#
        );
        let out = convert(&text, &source()).unwrap();
        let want = (exact * Decimal::from(1_000_000)).normalize();
        prop_assert_eq!(out.models[0].prices[0].input, want);
        prop_assert_eq!(out.models[0].prices[0].output, want);
    }
}
