//! LiteLLM's `model_prices_and_context_window.json` (MIT) converted into price-file entries.
//!
//! Only the main providers' chat models are taken ([`provider_of`]): a name in Tollgate's
//! table is a model name, not a provider route, and the other providers' entries reuse the
//! same names at their own prices. A key qualified by a region or deployment class
//! (`azure/eu/gpt-4o`, `bedrock/us-gov-west-1/…`) is left out: the call names only the model.
//! LiteLLM writes USD per token as JSON numbers (`1.5e-07`); each is read from its JSON text
//! into an exact decimal, never through `f64`.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::value::RawValue;
use tollgate_model::pricing::{LongContextDto, ModelDto, PriceVersionDto};

/// Where an import's entries come from, written into each entry's `source` and `checked`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSource {
    /// The package and version (`litellm==1.110.2`), or a label the operator chose.
    pub package: String,
    /// The file inside it (`litellm/model_prices_and_context_window_backup.json`).
    pub file: String,
    /// The day the map was read: each entry's `checked`, and the `effective_from` of a price
    /// seen for the first time (LiteLLM's map carries no dates).
    pub date: NaiveDate,
}

/// The file could not be read as LiteLLM's map.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Not a JSON object of objects.
    #[error("not LiteLLM's price map: {0}")]
    NotAMap(String),
}

/// Why a main-provider chat model was not converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SkipReason {
    /// A key qualified by region or deployment class, which no model name carries.
    Qualified,
    /// No per-token input and output price.
    NoTokenPrice,
    /// A price that is not a non-negative decimal number.
    BadPrice,
    /// Another provider's entry of the same name was preferred ([`provider_of`]'s order).
    Duplicate,
}

/// The conversion's result.
#[derive(Debug, Default)]
pub struct Converted {
    /// One entry per model name, sorted by id.
    pub models: Vec<ModelDto>,
    /// Main-provider chat models left out, with why.
    pub skipped: Vec<(String, SkipReason)>,
}

/// The main providers: LiteLLM's provider → (Tollgate's provider label, preference when two
/// entries name the same model; lower wins). The model's own maker first, then the clouds.
pub fn provider_of(litellm_provider: &str) -> Option<(&'static str, u8)> {
    Some(match litellm_provider {
        "openai" => ("openai", 0),
        "anthropic" => ("anthropic", 0),
        "gemini" => ("google", 0),
        "mistral" => ("mistral", 0),
        "vertex_ai-language-models" => ("google", 1),
        "bedrock_converse" => ("bedrock", 2),
        "bedrock" => ("bedrock", 3),
        p if p.starts_with("vertex_ai") => ("vertex_ai", 4),
        "azure" => ("azure_openai", 5),
        "azure_ai" => ("azure", 6),
        _ => return None,
    })
}

/// The modes counted as chat models (`responses`: models served only by the Responses API).
pub fn is_chat_mode(mode: Option<&str>) -> bool {
    matches!(mode, Some("chat" | "responses"))
}

/// Key prefixes that name the provider, not the model.
const PROVIDER_PREFIXES: &[&str] = &[
    "openai",
    "anthropic",
    "gemini",
    "mistral",
    "vertex_ai",
    "bedrock",
    "bedrock_converse",
    "azure",
    "azure_ai",
];

/// The model name a key stands for, or `None` when a region or deployment class qualifies
/// it. Vertex AI's `vertex_ai/<publisher>/<model>` names the model last.
pub fn model_name(key: &str) -> Option<String> {
    let mut parts: Vec<&str> = key.split('/').collect();
    if parts.len() > 1 && parts.first().is_some_and(|p| PROVIDER_PREFIXES.contains(p)) {
        let vertex = parts.first() == Some(&"vertex_ai");
        parts.remove(0);
        if vertex && parts.len() == 2 {
            parts.remove(0);
        }
    }
    match parts.as_slice() {
        [name] if !name.trim().is_empty() => Some(name.to_lowercase()),
        _ => None,
    }
}

type Entry = BTreeMap<String, Box<RawValue>>;

/// Converts LiteLLM's map: the main providers' chat models that have per-token prices.
pub fn convert(text: &str, source: &ImportSource) -> Result<Converted, ImportError> {
    let map: BTreeMap<String, Box<RawValue>> =
        serde_json::from_str(text).map_err(|e| ImportError::NotAMap(e.to_string()))?;
    let mut out = Converted::default();
    // Model id → (preference, entry).
    let mut chosen: BTreeMap<String, (u8, String, ModelDto)> = BTreeMap::new();
    for (key, raw) in &map {
        // `sample_spec` and any non-object member are not models.
        let Ok(entry) = serde_json::from_str::<Entry>(raw.get()) else {
            continue;
        };
        let Some((provider, preference)) = string(&entry, "litellm_provider")
            .as_deref()
            .and_then(provider_of)
        else {
            continue;
        };
        if !is_chat_mode(string(&entry, "mode").as_deref()) {
            continue;
        }
        let Some(id) = model_name(key) else {
            out.skipped.push((key.clone(), SkipReason::Qualified));
            continue;
        };
        let version = match version(&entry, &id, source.date) {
            Ok(v) => v,
            Err(reason) => {
                out.skipped.push((key.clone(), reason));
                continue;
            }
        };
        let cited = string(&entry, "source");
        let dto = ModelDto {
            id: id.clone(),
            provider: provider.to_owned(),
            aliases: Vec::new(),
            default_max_output_tokens: integer(&entry, "max_output_tokens")
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n > 0),
            source: format!("{} {}: {key}", source.package, source.file),
            checked: source.date,
            note: Some(match cited {
                Some(url) => format!("imported; LiteLLM cites {url}"),
                None => "imported".to_owned(),
            }),
            prices: vec![version],
        };
        match chosen.get(&id) {
            Some((p, k, _)) if (*p, k.len()) <= (preference, key.len()) => {
                out.skipped.push((key.clone(), SkipReason::Duplicate));
            }
            Some((_, k, _)) => {
                out.skipped.push((k.clone(), SkipReason::Duplicate));
                chosen.insert(id, (preference, key.clone(), dto));
            }
            None => {
                chosen.insert(id, (preference, key.clone(), dto));
            }
        }
    }
    out.models = chosen.into_values().map(|(_, _, dto)| dto).collect();
    alias_undated_openai_names(&mut out.models);
    out.skipped.sort();
    Ok(out)
}

/// OpenAI's undated names are aliases of the newest dated snapshot (`gpt-4o-audio-preview`
/// is `gpt-4o-audio-preview-2025-06-03`); LiteLLM sometimes lists only the snapshots. The
/// undated name becomes an alias of the newest one, where no entry has that name.
fn alias_undated_openai_names(models: &mut [ModelDto]) {
    let ids: std::collections::BTreeSet<String> = models.iter().map(|m| m.id.clone()).collect();
    let mut newest: BTreeMap<String, usize> = BTreeMap::new();
    for (i, m) in models.iter().enumerate() {
        if m.provider != "openai" {
            continue;
        }
        let Some(base) = dated_base(&m.id) else {
            continue;
        };
        if ids.contains(base) {
            continue;
        }
        // Ids are sorted, so a later one of the same base is a newer date.
        newest.insert(base.to_owned(), i);
    }
    for (base, i) in newest {
        if let Some(m) = models.get_mut(i) {
            m.aliases.push(base);
        }
    }
}

/// `name-YYYY-MM-DD` → `name`.
fn dated_base(id: &str) -> Option<&str> {
    let (head, date) = id.split_at_checked(id.len().checked_sub(11)?)?;
    let date = date.strip_prefix('-')?;
    NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    (!head.is_empty()).then_some(head)
}

fn string(entry: &Entry, field: &str) -> Option<String> {
    entry
        .get(field)
        .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
}

fn integer(entry: &Entry, field: &str) -> Option<u64> {
    entry
        .get(field)
        .and_then(|v| serde_json::from_str::<u64>(v.get()).ok())
}

/// A USD-per-unit number from its JSON text (`1.5e-07`, `0.025`), exactly. `Ok(None)` when
/// absent or null; an error for anything that is not a non-negative number.
fn usd(entry: &Entry, field: &str) -> Result<Option<Decimal>, SkipReason> {
    let Some(raw) = entry.get(field) else {
        return Ok(None);
    };
    let text = raw.get().trim();
    if text == "null" {
        return Ok(None);
    }
    if !text.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(SkipReason::BadPrice);
    }
    let value = if text.contains(['e', 'E']) {
        Decimal::from_scientific(text)
    } else {
        Decimal::from_str(text)
    };
    value
        .map(|v| Some(v.normalize()))
        .map_err(|_| SkipReason::BadPrice)
}

/// USD per token → USD per million tokens.
fn per_million(entry: &Entry, field: &str) -> Result<Option<Decimal>, SkipReason> {
    Ok(match usd(entry, field)? {
        Some(v) => Some(
            v.checked_mul(Decimal::from(1_000_000))
                .ok_or(SkipReason::BadPrice)?
                .normalize(),
        ),
        None => None,
    })
}

/// `tier / standard`, when both are known and the standard is not zero.
fn ratio(tier: Option<Decimal>, standard: Decimal) -> Option<Decimal> {
    let tier = tier?;
    if standard.is_zero() {
        return None;
    }
    tier.checked_div(standard).map(|r| r.normalize())
}

/// A tier multiplier, when LiteLLM's tier prices scale input and output alike (Tollgate
/// scales every token price by one factor); otherwise the tier is priced as standard.
fn multiplier(
    entry: &Entry,
    suffix: &str,
    input: Decimal,
    output: Decimal,
) -> Result<Option<Decimal>, SkipReason> {
    let i = ratio(
        per_million(entry, &format!("input_cost_per_token_{suffix}"))?,
        input,
    );
    let o = ratio(
        per_million(entry, &format!("output_cost_per_token_{suffix}"))?,
        output,
    );
    Ok(match (i, o) {
        (Some(i), Some(o)) if i == o && i > Decimal::ZERO => Some(i),
        _ => None,
    })
}

/// The one price version an entry converts to, effective `date`.
fn version(entry: &Entry, id: &str, date: NaiveDate) -> Result<PriceVersionDto, SkipReason> {
    let (Some(input), Some(output)) = (
        per_million(entry, "input_cost_per_token")?,
        per_million(entry, "output_cost_per_token")?,
    ) else {
        return Err(SkipReason::NoTokenPrice);
    };
    let search_preview = usd_search_per_call(entry, id)?;
    let per_web_search = usd_per_web_search(entry, id)?;
    let per_request = match (usd(entry, "input_cost_per_request")?, search_preview) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or_default() + b.unwrap_or_default()),
    };
    Ok(PriceVersionDto {
        effective_from: date,
        input,
        cached_input: per_million(entry, "cache_read_input_token_cost")?,
        cache_write_5m: per_million(entry, "cache_creation_input_token_cost")?,
        cache_write_1h: per_million(entry, "cache_creation_input_token_cost_above_1hr")?,
        output,
        reasoning: per_million(entry, "output_cost_per_reasoning_token")?,
        audio_input: per_million(entry, "input_cost_per_audio_token")?,
        audio_output: per_million(entry, "output_cost_per_audio_token")?,
        long_context: long_context(entry, output)?,
        per_request,
        per_web_search,
        per_image: None,
        per_audio_minute: None,
        batch_multiplier: multiplier(entry, "batches", input, output)?,
        priority_multiplier: multiplier(entry, "priority", input, output)?,
    })
}

/// OpenAI's search chat models (`gpt-4o-mini-search-preview`, `gpt-5-search-api`) search on
/// every call and bill each search: LiteLLM's `search_context_cost_per_query` at the default
/// (medium) context size becomes a per-request fee. Other models search only when a web
/// search tool is called, which a per-request fee would overcharge.
fn usd_search_per_call(entry: &Entry, id: &str) -> Result<Option<Decimal>, SkipReason> {
    if !(id.contains("-search-preview") || id.contains("-search-api")) {
        return Ok(None);
    }
    let Some(raw) = entry.get("search_context_cost_per_query") else {
        return Ok(None);
    };
    let sizes: Entry = serde_json::from_str(raw.get()).map_err(|_| SkipReason::BadPrice)?;
    usd(&sizes, "search_context_size_medium")
}

/// Claude's web search tool bills each search ($10 per 1 000), which the answer counts in
/// `usage.server_tool_use.web_search_requests`: LiteLLM's `search_context_cost_per_query`
/// (one price at every context size) becomes the per-search fee. Only for Claude: the
/// other providers' answers do not count their searches, so a fee there would never apply.
fn usd_per_web_search(entry: &Entry, id: &str) -> Result<Option<Decimal>, SkipReason> {
    if !id.contains("claude") {
        return Ok(None);
    }
    let Some(raw) = entry.get("search_context_cost_per_query") else {
        return Ok(None);
    };
    let sizes: Entry = serde_json::from_str(raw.get()).map_err(|_| SkipReason::BadPrice)?;
    usd(&sizes, "search_context_size_medium")
}

/// The one long-context tier (`…_above_200k_tokens`), if the entry has one.
fn long_context(entry: &Entry, output: Decimal) -> Result<Option<LongContextDto>, SkipReason> {
    let thresholds: Vec<u64> = entry
        .keys()
        .filter_map(|k| {
            k.strip_prefix("input_cost_per_token_above_")?
                .strip_suffix("k_tokens")?
                .parse::<u64>()
                .ok()
        })
        .collect();
    let [k] = thresholds.as_slice() else {
        // None, or several tiers (none in LiteLLM's map today): priced at the standard rates.
        return Ok(None);
    };
    let field = |name: &str| format!("{name}_above_{k}k_tokens");
    let Some(input) = per_million(entry, &field("input_cost_per_token"))? else {
        return Ok(None);
    };
    Ok(Some(LongContextDto {
        threshold_input_tokens: k.saturating_mul(1000),
        input,
        cached_input: per_million(entry, &field("cache_read_input_token_cost"))?,
        cache_write_5m: per_million(entry, &field("cache_creation_input_token_cost"))?,
        cache_write_1h: per_million(
            entry,
            &format!("cache_creation_input_token_cost_above_1hr_above_{k}k_tokens"),
        )?,
        output: per_million(entry, &field("output_cost_per_token"))?.unwrap_or(output),
        reasoning: None,
    }))
}
