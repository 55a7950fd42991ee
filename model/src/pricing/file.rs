//! The on-disk price file: serde DTOs that refuse unknown fields, and their validation into
//! runtime [`ModelPrices`](super::ModelPrices). Every error names the entry and the field.
//!
//! Prices are JSON **strings** holding exact decimals, USD per million tokens unless the field
//! says otherwise; a JSON number is refused because it would pass through `f64`.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{LongContext, ModelPrices, PriceVersion, Rates};

/// The price file's schema version this code reads.
pub const SCHEMA_VERSION: u32 = 1;

/// A price file could not be loaded. The message names the entry and field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceFileError {
    /// Not JSON, a field of the wrong type, a missing or an unknown field.
    #[error("{source_name}: {path}: {message}")]
    Parse {
        /// Where the file came from (a path, or `shipped`).
        source_name: String,
        /// The JSON path of the offending value (`models[3].prices[0].input`).
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// The JSON is well-formed but a value breaks a rule (negative price, duplicate model…).
    #[error("{source_name}: {path}: {message}")]
    Invalid {
        /// Where the file came from.
        source_name: String,
        /// The JSON path of the offending entry or field, with the model id.
        path: String,
        /// The rule that was broken.
        message: String,
    },
}

/// A whole price file as written (docs/prices.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceFileDto {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The table's version (a date for the shipped table).
    pub table_version: String,
    /// Always `USD`.
    pub currency: String,
    /// Output cap assumed for a model whose entry gives none.
    pub default_max_output_tokens: u32,
    /// The entries.
    pub models: Vec<ModelDto>,
}

/// One model entry exactly as the file (or a price override) writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ModelDto {
    /// Canonical lowercase model id.
    pub id: String,
    /// Provider that serves it (`openai`, `anthropic`, `bedrock`…).
    pub provider: String,
    /// Other exact names for the same prices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Output cap assumed when a request gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_max_output_tokens: Option<u32>,
    /// Where the prices were read.
    pub source: String,
    /// When they were read.
    #[serde(with = "super::ymd")]
    pub checked: NaiveDate,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Dated price versions, oldest first.
    pub prices: Vec<PriceVersionDto>,
}

/// One dated price version as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PriceVersionDto {
    /// First day (UTC) of these prices.
    #[serde(with = "super::ymd")]
    pub effective_from: NaiveDate,
    #[serde(with = "rust_decimal::serde::str")]
    /// Input, USD per million tokens.
    pub input: Decimal,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    /// Cache-read input (default: `input`).
    pub cached_input: Option<Decimal>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    /// 5-minute cache writes (default: `input`).
    pub cache_write_5m: Option<Decimal>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    /// 1-hour cache writes (default: `cache_write_5m`).
    pub cache_write_1h: Option<Decimal>,
    #[serde(with = "rust_decimal::serde::str")]
    /// Output, USD per million tokens.
    pub output: Decimal,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    /// Reasoning output (default: `output`).
    pub reasoning: Option<Decimal>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    /// Audio input tokens, USD per million (default: `input`). Applies in every tier.
    pub audio_input: Option<Decimal>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    /// Audio output tokens, USD per million (default: `output`). Applies in every tier.
    pub audio_output: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The long-context tier.
    pub long_context: Option<LongContextDto>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    /// USD per request (default 0).
    pub per_request: Option<Decimal>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    /// USD per provider-side web search (default 0): Anthropic's web search tool.
    pub per_web_search: Option<Decimal>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    /// USD per generated image (default 0).
    pub per_image: Option<Decimal>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    /// USD per minute of audio (default 0).
    pub per_audio_minute: Option<Decimal>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    /// Token-price multiplier of the batch tier (default 1).
    pub batch_multiplier: Option<Decimal>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    /// Token-price multiplier of the priority tier (default 1).
    pub priority_multiplier: Option<Decimal>,
}

/// A long-context tier as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LongContextDto {
    /// The tier applies above this many input tokens.
    pub threshold_input_tokens: u64,
    #[serde(with = "rust_decimal::serde::str")]
    /// Input, USD per million tokens.
    pub input: Decimal,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    /// Cache-read input (default: `input`).
    pub cached_input: Option<Decimal>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    /// 5-minute cache writes (default: `input`).
    pub cache_write_5m: Option<Decimal>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    /// 1-hour cache writes (default: `cache_write_5m`).
    pub cache_write_1h: Option<Decimal>,
    #[serde(with = "rust_decimal::serde::str")]
    /// Output, USD per million tokens.
    pub output: Decimal,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    /// Reasoning output (default: `output`).
    pub reasoning: Option<Decimal>,
}

/// Parses the file text into DTOs, naming the JSON path of the first error.
pub(super) fn parse(source_name: &str, text: &str) -> Result<PriceFileDto, PriceFileError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| PriceFileError::Parse {
        source_name: source_name.to_owned(),
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

/// Parses the shipped file, which this crate's tests and the build check: without
/// [`parse`]'s JSON-path tracking, whose code for the whole file schema was a tenth of the
/// filter's `.wasm` (the filter parses only this table). A broken file still fails, with
/// serde_json's line and column for a path.
pub(super) fn parse_shipped(source_name: &str, text: &str) -> Result<PriceFileDto, PriceFileError> {
    serde_json::from_str(text).map_err(|e| PriceFileError::Parse {
        source_name: source_name.to_owned(),
        path: format!("line {} column {}", e.line(), e.column()),
        message: e.to_string(),
    })
}

/// Checks the file-level rules.
pub(super) fn validate_header(source_name: &str, dto: &PriceFileDto) -> Result<(), PriceFileError> {
    let invalid = |path: &str, message: String| PriceFileError::Invalid {
        source_name: source_name.to_owned(),
        path: path.to_owned(),
        message,
    };
    if dto.schema_version != SCHEMA_VERSION {
        return Err(invalid(
            "schema_version",
            format!(
                "this build reads version {SCHEMA_VERSION}, not {}",
                dto.schema_version
            ),
        ));
    }
    if dto.currency != "USD" {
        return Err(invalid(
            "currency",
            format!("only \"USD\" is supported, not {:?}", dto.currency),
        ));
    }
    if dto.default_max_output_tokens == 0 {
        return Err(invalid(
            "default_max_output_tokens",
            "must be above 0".into(),
        ));
    }
    Ok(())
}

/// Converts one model entry, checking every price. `index` is its place in the file.
pub(super) fn model_from_dto(
    source_name: &str,
    index: usize,
    dto: ModelDto,
) -> Result<ModelPrices, PriceFileError> {
    let entry = format!("models[{index}] ({:?})", dto.id);
    let invalid = |field: &str, message: String| PriceFileError::Invalid {
        source_name: source_name.to_owned(),
        path: format!("{entry}.{field}"),
        message,
    };
    if let Some(bad) = dto.aliases.iter().find(|a| a.trim().is_empty()) {
        return Err(invalid(
            "aliases",
            format!("alias {bad:?} must be non-empty"),
        ));
    }
    if dto.id.trim().is_empty() || !dto.id.is_ascii() || dto.id != dto.id.to_ascii_lowercase() {
        return Err(invalid("id", "must be non-empty lowercase ASCII".into()));
    }
    if dto.provider.trim().is_empty() {
        return Err(invalid("provider", "must be non-empty".into()));
    }
    if dto.source.trim().is_empty() {
        return Err(invalid(
            "source",
            "must name where the price was read".into(),
        ));
    }
    if dto.prices.is_empty() {
        return Err(invalid("prices", "needs at least one price version".into()));
    }
    if dto.default_max_output_tokens == Some(0) {
        return Err(invalid(
            "default_max_output_tokens",
            "must be above 0".into(),
        ));
    }
    let mut versions = Vec::with_capacity(dto.prices.len());
    for (i, v) in dto.prices.iter().cloned().enumerate() {
        let field = |name: &str| format!("prices[{i}].{name}");
        let version =
            version_from_dto(v).map_err(|(name, message)| invalid(&field(name), message))?;
        if let Some(prev) = versions.last().map(|p: &PriceVersion| p.effective_from)
            && version.effective_from <= prev
        {
            return Err(invalid(
                &field("effective_from"),
                "price versions must be in strictly increasing effective_from order".into(),
            ));
        }
        versions.push(version);
    }
    Ok(ModelPrices {
        entry: dto,
        versions,
    })
}

type FieldError = (&'static str, String);

fn version_from_dto(v: PriceVersionDto) -> Result<PriceVersion, FieldError> {
    let rates = rates_from_fields(RateFields {
        input: v.input,
        cached_input: v.cached_input,
        cache_write_5m: v.cache_write_5m,
        cache_write_1h: v.cache_write_1h,
        output: v.output,
        reasoning: v.reasoning,
        audio_input: v.audio_input,
        audio_output: v.audio_output,
    })?;
    let long_context = match v.long_context {
        None => None,
        Some(lc) => {
            if lc.threshold_input_tokens == 0 {
                return Err((
                    "long_context.threshold_input_tokens",
                    "must be above 0".into(),
                ));
            }
            let tier = rates_from_fields(RateFields {
                input: lc.input,
                cached_input: lc.cached_input,
                cache_write_5m: lc.cache_write_5m,
                cache_write_1h: lc.cache_write_1h,
                output: lc.output,
                reasoning: lc.reasoning,
                // Audio keeps the version's audio prices in the long-context tier.
                audio_input: Some(rates.audio_input),
                audio_output: Some(rates.audio_output),
            })
            .map_err(|(_, m)| ("long_context", m))?;
            Some(LongContext {
                threshold_input_tokens: lc.threshold_input_tokens,
                rates: tier,
            })
        }
    };
    let fee = |name: &'static str, value: Option<Decimal>| -> Result<Decimal, FieldError> {
        let value = value.unwrap_or(Decimal::ZERO);
        non_negative(name, value)?;
        Ok(value)
    };
    let multiplier = |name: &'static str, value: Option<Decimal>| -> Result<Decimal, FieldError> {
        let value = value.unwrap_or(Decimal::ONE);
        if value <= Decimal::ZERO {
            return Err((name, format!("multiplier must be above 0, got {value}")));
        }
        Ok(value)
    };
    Ok(PriceVersion {
        effective_from: v.effective_from,
        rates,
        long_context,
        per_request_usd: fee("per_request", v.per_request)?,
        per_web_search_usd: fee("per_web_search", v.per_web_search)?,
        per_image_usd: fee("per_image", v.per_image)?,
        per_audio_minute_usd: fee("per_audio_minute", v.per_audio_minute)?,
        batch_multiplier: multiplier("batch_multiplier", v.batch_multiplier)?,
        priority_multiplier: multiplier("priority_multiplier", v.priority_multiplier)?,
    })
}

/// The eight per-token prices as written, before defaults are filled in.
struct RateFields {
    input: Decimal,
    cached_input: Option<Decimal>,
    cache_write_5m: Option<Decimal>,
    cache_write_1h: Option<Decimal>,
    output: Decimal,
    reasoning: Option<Decimal>,
    audio_input: Option<Decimal>,
    audio_output: Option<Decimal>,
}

/// Fills the defaults (cached, cache-write and audio input prices default to input, 1-hour
/// writes to 5-minute writes, reasoning and audio output to output) and refuses negatives.
fn rates_from_fields(r: RateFields) -> Result<Rates, FieldError> {
    non_negative("input", r.input)?;
    non_negative("output", r.output)?;
    let cached_input = r.cached_input.unwrap_or(r.input);
    non_negative("cached_input", cached_input)?;
    let cache_write_5m = r.cache_write_5m.unwrap_or(r.input);
    non_negative("cache_write_5m", cache_write_5m)?;
    let cache_write_1h = r.cache_write_1h.unwrap_or(cache_write_5m);
    non_negative("cache_write_1h", cache_write_1h)?;
    let reasoning = r.reasoning.unwrap_or(r.output);
    non_negative("reasoning", reasoning)?;
    let audio_input = r.audio_input.unwrap_or(r.input);
    non_negative("audio_input", audio_input)?;
    let audio_output = r.audio_output.unwrap_or(r.output);
    non_negative("audio_output", audio_output)?;
    Ok(Rates {
        input: r.input,
        cached_input,
        cache_write_5m,
        cache_write_1h,
        output: r.output,
        reasoning,
        audio_input,
        audio_output,
    })
}

fn non_negative(name: &'static str, value: Decimal) -> Result<(), FieldError> {
    if value.is_sign_negative() && !value.is_zero() {
        return Err((name, format!("price must not be negative, got {value}")));
    }
    Ok(())
}
