//! Prices: the shipped, versioned price table and what a call costs.
//!
//! The table is JSON (`model/prices/prices.json`, schema in `docs/prices.md`), loaded and
//! validated into a [`PriceTable`]. At load every price is turned into an exact integer
//! fraction of nano-USD per token, with the batch and priority multipliers folded in, so that
//! [`PriceTable::cost`] is integer arithmetic only.

mod cost;
mod file;
mod names;
mod unknown;
mod ymd;

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

pub use cost::{Cost, CostBreakdown};
pub use file::{
    LongContextDto, ModelDto, PriceFileDto, PriceFileError, PriceVersionDto, SCHEMA_VERSION,
};
pub use unknown::{ANY_PROVIDER, UnknownModelPolicy};

use crate::usage::{ServiceTier, Usage};

/// The price table shipped with this build (`model/prices/prices.json`), minified and
/// compressed (raw DEFLATE) by `build.rs`; [`shipped_prices_json`] gives the text.
const SHIPPED_PRICES_DEFLATE: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/prices.min.json.deflate"));

/// The most the shipped table may inflate to: ten times its size today.
const SHIPPED_PRICES_MAX_BYTES: usize = 1 << 20;

/// The shipped price table's JSON text (minified), as [`PriceTable::shipped`] reads it.
pub fn shipped_prices_json() -> Result<String, PriceFileError> {
    let source_name = "shipped prices.json";
    let invalid = |message: String| PriceFileError::Parse {
        source_name: source_name.to_owned(),
        path: ".".to_owned(),
        message,
    };
    let bytes = miniz_oxide::inflate::decompress_to_vec_with_limit(
        SHIPPED_PRICES_DEFLATE,
        SHIPPED_PRICES_MAX_BYTES,
    )
    .map_err(|e| invalid(format!("cannot inflate the embedded table: {e}")))?;
    String::from_utf8(bytes).map_err(|e| invalid(e.to_string()))
}

/// The imported price table (`model/prices/imported.json`, written by
/// `scripts/refresh-prices.sh` from LiteLLM's price map): models the shipped table lacks or
/// prices differently under a more specific name. Only the control plane embeds it (feature
/// `imported`): it is many times the shipped table, which the filter's `.wasm` carries.
#[cfg(feature = "imported")]
pub const IMPORTED_PRICES_JSON: &str = include_str!("../../prices/imported.json");

/// Reads a whole price file strictly (every error names its JSON path): its header and its
/// entries, validated one by one (duplicates are the caller's to judge).
pub fn read_price_file(
    source_name: &str,
    text: &str,
) -> Result<(PriceFileDto, Vec<ModelPrices>), PriceFileError> {
    let mut dto = file::parse(source_name, text)?;
    file::validate_header(source_name, &dto)?;
    let entries = std::mem::take(&mut dto.models);
    let mut models = Vec::with_capacity(entries.len());
    for (i, m) in entries.into_iter().enumerate() {
        models.push(file::model_from_dto(source_name, i, m)?);
    }
    Ok((dto, models))
}

/// Reads a set of price entries written as a price file (the control plane's overrides,
/// `wire::v1::PriceOverrides`): its `table_version` and its entries, validated. Uses the
/// shipped table's parser, so that the filter carries one JSON reader for prices.
pub fn read_price_set(text: &str) -> Result<(String, Vec<ModelPrices>), PriceFileError> {
    let source_name = "price overrides";
    let dto = file::parse_shipped(source_name, text)?;
    file::validate_header(source_name, &dto)?;
    let mut models = Vec::with_capacity(dto.models.len());
    for (i, m) in dto.models.into_iter().enumerate() {
        models.push(file::model_from_dto(source_name, i, m)?);
    }
    Ok((dto.table_version, models))
}

/// Why a call could not be priced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    /// No entry, alias or normalised form of the name is in the table.
    #[error("unknown model {0:?}")]
    UnknownModel(String),
    /// An alias was configured for a model the table does not have, or clashes with an id.
    #[error("alias {alias:?}: {reason}")]
    BadAlias {
        /// The alias.
        alias: String,
        /// What is wrong.
        reason: String,
    },
    /// The counts are so large that the cost does not fit in nano-USD.
    #[error("cost of {0} overflows")]
    Overflow(String),
}

/// An exact price per unit as `numerator / denominator` nano-USD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExactRate {
    numerator: i128,
    denominator: i128,
}

impl ExactRate {
    /// `usd_per_unit × scale_to_nanos / divisor`, exactly.
    fn from_decimal(value: Decimal, nanos_per_unit_of_value: i64, divisor: i128) -> ExactRate {
        // A Decimal is mantissa / 10^scale with scale ≤ 28; the mantissa is below 2^96, so
        // mantissa × 10^9 stays far inside i128.
        let numerator = value.mantissa() * i128::from(nanos_per_unit_of_value);
        let denominator = 10i128.pow(value.scale()) * divisor;
        ExactRate {
            numerator,
            denominator,
        }
    }

    /// `ceil(count × self)` in nano-USD: every dimension rounds up on its own.
    pub(crate) fn charge(self, count: u64) -> Option<i64> {
        if count == 0 || self.numerator == 0 {
            return Some(0);
        }
        let product = i128::from(count).checked_mul(self.numerator)?;
        // Both are non-negative (validated at load), so this is the ceiling.
        let nanos = product.checked_add(self.denominator - 1)? / self.denominator;
        i64::try_from(nanos).ok()
    }
}

/// The eight token rates of one price tier, in nano-USD per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenRates {
    pub(crate) uncached_input: ExactRate,
    pub(crate) cached_input: ExactRate,
    pub(crate) cache_write_5m: ExactRate,
    pub(crate) cache_write_1h: ExactRate,
    pub(crate) output: ExactRate,
    pub(crate) reasoning: ExactRate,
    pub(crate) audio_input: ExactRate,
    pub(crate) audio_output: ExactRate,
}

/// Token prices in USD per million tokens, as published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    /// Plain input.
    pub input: Decimal,
    /// Input read from cache.
    pub cached_input: Decimal,
    /// Input written to a 5-minute cache.
    pub cache_write_5m: Decimal,
    /// Input written to a 1-hour cache.
    pub cache_write_1h: Decimal,
    /// Output (non-reasoning).
    pub output: Decimal,
    /// Reasoning output.
    pub reasoning: Decimal,
    /// Audio input (uncached).
    pub audio_input: Decimal,
    /// Audio output.
    pub audio_output: Decimal,
}

impl Rates {
    /// USD per million tokens × multiplier → nano-USD per token (× 10⁹ / 10⁶ = × 1000).
    fn per_token(&self, multiplier: Decimal) -> TokenRates {
        let rate = |usd_per_million: Decimal| {
            // An absurd price × multiplier past Decimal's range saturates, so any non-zero
            // charge at it overflows loudly instead of undercharging.
            let scaled = usd_per_million
                .checked_mul(multiplier)
                .unwrap_or(Decimal::MAX);
            ExactRate::from_decimal(scaled, 1000, 1)
        };
        TokenRates {
            uncached_input: rate(self.input),
            cached_input: rate(self.cached_input),
            cache_write_5m: rate(self.cache_write_5m),
            cache_write_1h: rate(self.cache_write_1h),
            output: rate(self.output),
            reasoning: rate(self.reasoning),
            audio_input: rate(self.audio_input),
            audio_output: rate(self.audio_output),
        }
    }
}

/// A long-context tier: above `threshold_input_tokens` input tokens, every token of the call
/// is billed at `rates`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongContext {
    /// The tier applies when total input tokens are **above** this count.
    pub threshold_input_tokens: u64,
    /// The tier's prices.
    pub rates: Rates,
}

/// One dated set of prices for a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceVersion {
    /// First day (UTC) these prices apply.
    pub effective_from: NaiveDate,
    /// Standard token prices.
    pub rates: Rates,
    /// Optional long-context tier.
    pub long_context: Option<LongContext>,
    /// Fee per request, USD.
    pub per_request_usd: Decimal,
    /// Fee per provider-side web search, USD.
    pub per_web_search_usd: Decimal,
    /// Fee per generated image, USD.
    pub per_image_usd: Decimal,
    /// Fee per minute of audio, USD.
    pub per_audio_minute_usd: Decimal,
    /// Token-price multiplier for the batch tier (fees are not multiplied).
    pub batch_multiplier: Decimal,
    /// Token-price multiplier for the priority tier (fees are not multiplied).
    pub priority_multiplier: Decimal,
}

/// A price version compiled for fast, exact costing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CompiledVersion {
    pub(crate) effective_from_unix: i64,
    pub(crate) effective_from: NaiveDate,
    pub(crate) long_context_threshold: Option<u64>,
    /// Indexed by [`tier_index`]: standard, batch, priority.
    pub(crate) standard: [TokenRates; 3],
    pub(crate) long: Option<[TokenRates; 3]>,
    pub(crate) per_request: ExactRate,
    pub(crate) per_web_search: ExactRate,
    pub(crate) per_image: ExactRate,
    pub(crate) per_audio_second: ExactRate,
}

pub(crate) fn tier_index(tier: ServiceTier) -> usize {
    match tier {
        ServiceTier::Standard => 0,
        ServiceTier::Batch => 1,
        ServiceTier::Priority => 2,
    }
}

impl PriceVersion {
    fn compile(&self) -> CompiledVersion {
        let tiers = |r: &Rates| {
            [
                r.per_token(Decimal::ONE),
                r.per_token(self.batch_multiplier),
                r.per_token(self.priority_multiplier),
            ]
        };
        CompiledVersion {
            effective_from_unix: self
                .effective_from
                .and_hms_opt(0, 0, 0)
                .map(|d| d.and_utc().timestamp())
                .unwrap_or(i64::MIN),
            effective_from: self.effective_from,
            long_context_threshold: self.long_context.map(|l| l.threshold_input_tokens),
            standard: tiers(&self.rates),
            long: self.long_context.as_ref().map(|l| tiers(&l.rates)),
            per_request: ExactRate::from_decimal(self.per_request_usd, 1_000_000_000, 1),
            per_web_search: ExactRate::from_decimal(self.per_web_search_usd, 1_000_000_000, 1),
            per_image: ExactRate::from_decimal(self.per_image_usd, 1_000_000_000, 1),
            per_audio_second: ExactRate::from_decimal(self.per_audio_minute_usd, 1_000_000_000, 60),
        }
    }
}

/// One model's entry: what the file says, and its compiled prices.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPrices {
    pub(crate) entry: ModelDto,
    pub(crate) versions: Vec<PriceVersion>,
}

impl ModelPrices {
    /// Parses and validates one entry written as in the price file (a price override).
    pub fn from_entry_json(text: &str) -> Result<ModelPrices, PriceFileError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let dto: ModelDto =
            serde_path_to_error::deserialize(de).map_err(|e| PriceFileError::Parse {
                source_name: "price entry".into(),
                path: e.path().to_string(),
                message: e.inner().to_string(),
            })?;
        file::model_from_dto("price entry", 0, dto)
    }

    /// The canonical id.
    pub fn id(&self) -> &str {
        &self.entry.id
    }
    /// The provider.
    pub fn provider(&self) -> &str {
        &self.entry.provider
    }
    /// The entry as the file writes it (for APIs that show prices).
    pub fn entry(&self) -> &ModelDto {
        &self.entry
    }
    /// Dated price versions, oldest first.
    pub fn versions(&self) -> &[PriceVersion] {
        &self.versions
    }
    /// The output cap this model assumes when a request sets none, if the entry says.
    pub fn default_max_output_tokens(&self) -> Option<u32> {
        self.entry.default_max_output_tokens
    }
}

/// All known models and their prices, with name resolution.
#[derive(Debug, Clone)]
pub struct PriceTable {
    table_version: String,
    default_max_output_tokens: u32,
    models: Vec<ModelPrices>,
    compiled: Vec<Vec<CompiledVersion>>,
    /// Exact names (ids, file aliases, configured aliases) → index into `models`.
    index: HashMap<String, usize>,
}

impl PriceTable {
    /// The table shipped in this build.
    pub fn shipped() -> Result<PriceTable, PriceFileError> {
        let source_name = "shipped prices.json";
        let dto = file::parse_shipped(source_name, &shipped_prices_json()?)?;
        PriceTable::from_dto(source_name, dto)
    }

    /// Loads and validates a price file. `source_name` appears in error messages.
    pub fn from_json(source_name: &str, text: &str) -> Result<PriceTable, PriceFileError> {
        let dto = file::parse(source_name, text)?;
        PriceTable::from_dto(source_name, dto)
    }

    fn from_dto(source_name: &str, dto: file::PriceFileDto) -> Result<PriceTable, PriceFileError> {
        file::validate_header(source_name, &dto)?;
        let mut table = PriceTable {
            table_version: dto.table_version,
            default_max_output_tokens: dto.default_max_output_tokens,
            models: Vec::with_capacity(dto.models.len()),
            compiled: Vec::with_capacity(dto.models.len()),
            index: HashMap::with_capacity(dto.models.len() * 2),
        };
        for (i, m) in dto.models.into_iter().enumerate() {
            let model = file::model_from_dto(source_name, i, m)?;
            let names =
                std::iter::once(model.id()).chain(model.entry.aliases.iter().map(String::as_str));
            for name in names {
                if table.index.contains_key(name) {
                    return Err(PriceFileError::Invalid {
                        source_name: source_name.to_owned(),
                        path: format!("models[{i}] ({:?})", model.id()),
                        message: format!("duplicate model name {name:?}"),
                    });
                }
                table.index.insert(name.to_owned(), i);
            }
            table
                .compiled
                .push(model.versions.iter().map(PriceVersion::compile).collect());
            table.models.push(model);
        }
        Ok(table)
    }

    /// The file's `table_version`.
    pub fn table_version(&self) -> &str {
        &self.table_version
    }

    /// Every model entry.
    pub fn models(&self) -> &[ModelPrices] {
        &self.models
    }

    /// Every exact name the table knows (ids, the file's aliases, configured aliases), in no
    /// particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    /// Adds or replaces a model entry (a price override). Its aliases replace any that
    /// pointed elsewhere; its id must not be another model's alias.
    pub fn upsert(&mut self, model: ModelPrices) -> Result<(), PricingError> {
        let slot = match self.index.get(model.id()) {
            Some(&i) if self.models.get(i).is_some_and(|m| m.id() == model.id()) => i,
            Some(_) => {
                return Err(PricingError::BadAlias {
                    alias: model.id().to_owned(),
                    reason: "is already an alias of another model".into(),
                });
            }
            None => self.models.len(),
        };
        let compiled = model.versions.iter().map(PriceVersion::compile).collect();
        self.index.insert(model.id().to_owned(), slot);
        for alias in &model.entry.aliases {
            self.index.insert(alias.clone(), slot);
        }
        if slot == self.models.len() {
            self.models.push(model);
            self.compiled.push(compiled);
        } else if let (Some(m), Some(c)) = (self.models.get_mut(slot), self.compiled.get_mut(slot))
        {
            *m = model;
            *c = compiled;
        }
        Ok(())
    }

    /// Adds the entries of a lower layer (the imported table) under this table: an entry
    /// whose id this table already names exactly (an id or an alias) is left out, and so is
    /// any alias of it that does, so that this table's own entries always win. Returns the
    /// entries added, as written.
    pub fn add_layer(&mut self, layer: Vec<ModelPrices>) -> Vec<ModelDto> {
        let mut added = Vec::new();
        for mut model in layer {
            if self.index.contains_key(model.id()) {
                continue;
            }
            let index = &self.index;
            model.entry.aliases.retain(|a| !index.contains_key(a));
            let entry = model.entry.clone();
            if self.upsert(model).is_ok() {
                added.push(entry);
            }
        }
        added
    }

    /// Makes `alias` an exact name for `target` (an Azure deployment name, say).
    pub fn add_alias(&mut self, alias: &str, target: &str) -> Result<(), PricingError> {
        let bad = |reason: &str| PricingError::BadAlias {
            alias: alias.to_owned(),
            reason: reason.to_owned(),
        };
        if alias.trim().is_empty() {
            return Err(bad("must be non-empty"));
        }
        let Some(&slot) = self.index.get(target) else {
            return Err(bad(&format!(
                "target model {target:?} is not in the price table"
            )));
        };
        if self.models.iter().any(|m| m.id() == alias) {
            return Err(bad("is already a model id"));
        }
        self.index.insert(alias.to_owned(), slot);
        Ok(())
    }

    fn resolve_index(&self, name: &str) -> Option<usize> {
        if let Some(&i) = self.index.get(name) {
            return Some(i);
        }
        names::candidates(name)
            .iter()
            .find_map(|c| self.index.get(c.as_str()).copied())
    }

    /// The entry a model name resolves to (see [`names`](self) for the normalisation rules).
    pub fn resolve(&self, name: &str) -> Option<&ModelPrices> {
        self.resolve_index(name).and_then(|i| self.models.get(i))
    }

    /// The price-table id a model name resolves to, if the table knows it.
    pub fn canonical_id(&self, name: &str) -> Option<&str> {
        self.resolve(name).map(ModelPrices::id)
    }

    /// The price-table ids a model name counts as, most specific first: the entry it
    /// resolves to, then every entry reached by its less specific forms and by those of that
    /// entry's id (a dated snapshot with a price of its own, `gpt-4o-2024-05-13`, also counts
    /// as `gpt-4o`; a Bedrock inference profile with a regional price as its base model).
    /// A budget limited to any of them counts the call. Empty when the table knows none.
    pub fn model_family(&self, name: &str) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let Some(first) = self.resolve_index(name).and_then(|i| self.models.get(i)) else {
            return out;
        };
        out.push(first.id());
        let forms = names::candidates(name)
            .into_iter()
            .chain(names::candidates(first.id()));
        for form in forms {
            if let Some(m) = self.index.get(&form).and_then(|&i| self.models.get(i))
                && !out.contains(&m.id())
            {
                out.push(m.id());
            }
        }
        out
    }

    /// The output cap to assume for `model` when a request sets none.
    pub fn default_max_output_tokens(&self, model: &str) -> u32 {
        self.resolve(model)
            .and_then(ModelPrices::default_max_output_tokens)
            .unwrap_or(self.default_max_output_tokens)
    }

    /// What `usage` of `model` costs at instant `at`: the price version in force on `at`'s
    /// UTC date (the earliest version for usage before it), the long-context tier when total
    /// input is above its threshold, the usage's service tier.
    pub fn cost(
        &self,
        model: &str,
        usage: &Usage,
        at: DateTime<Utc>,
    ) -> Result<Cost, PricingError> {
        let i = self
            .resolve_index(model)
            .ok_or_else(|| PricingError::UnknownModel(model.to_owned()))?;
        let versions = self
            .compiled
            .get(i)
            .ok_or_else(|| PricingError::UnknownModel(model.to_owned()))?;
        let at_unix = at.timestamp();
        let version = versions
            .iter()
            .rev()
            .find(|v| v.effective_from_unix <= at_unix)
            .or_else(|| versions.first())
            .ok_or_else(|| PricingError::UnknownModel(model.to_owned()))?;
        cost::compute(version, usage).ok_or_else(|| PricingError::Overflow(model.to_owned()))
    }
}

#[cfg(test)]
mod tests;
