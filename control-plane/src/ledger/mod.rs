//! The ledger: the gateway's spend history. Every settlement applied for the first time (and
//! every call refused at reserve) leaves one [`RequestRecord`], and adds itself to the
//! [`RollupRow`]s of its hour and day, once per scope of the call plus once under `global`
//! (so `global` rows are the whole gateway's spend, every call counted once).
//!
//! The store writes both in the same atomic step as the budget counters (see
//! `Store::settle`), and reads them back with `Store::rollups` and `Store::records`.
//! Retention and layout: `docs/ledger.md`, `docs/redis-keys.md`.

pub mod entry;
pub mod export;
pub mod import;
pub mod row;
pub mod synthetic;

use serde::{Deserialize, Serialize};
use tollgate_model::scope::{Scope, ScopeKind};
use tollgate_model::wire::v1::DenyReason;

/// How a call ended, as the ledger records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// Admitted on the model asked for, and charged.
    Allowed,
    /// Admitted on a cheaper model than the one asked for (a budget's or a switch's downgrade).
    Downgraded,
    /// Refused at reserve (by a budget, a suspension or an emergency switch): zero cost.
    Denied,
    /// Let through without a reservation: the control plane could not be asked and the
    /// fail mode was open.
    FailedOpen,
    /// A stream stopped mid-way because its running cost passed the budget's cut-off.
    CutOff,
}

/// Where a record came from.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RecordSource {
    /// Written by a settlement or a refusal.
    #[default]
    Live,
    /// Loaded by `POST /v1/ledger/import`.
    Import,
}

/// Token and unit counts by kind, with the meanings of `tollgate_model::Usage`:
/// no kind overlaps another except `reasoning`, which is part of `output`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(default)]
pub struct TokenCounts {
    /// Input tokens at the plain input price.
    pub uncached_input: i64,
    /// Input tokens read from the prompt cache.
    pub cached_input: i64,
    /// Input tokens written to a 5-minute cache.
    pub cache_write_5m: i64,
    /// Input tokens written to a 1-hour cache.
    pub cache_write_1h: i64,
    /// Every output token, reasoning included.
    pub output: i64,
    /// Of `output`, the reasoning tokens.
    pub reasoning: i64,
    /// Images generated.
    pub images: i64,
    /// Seconds of audio.
    pub audio_seconds: i64,
}

impl TokenCounts {
    /// The eight counts in a fixed order (the stored order: `row::FIELDS`).
    pub fn to_array(&self) -> [i64; 8] {
        [
            self.uncached_input,
            self.cached_input,
            self.cache_write_5m,
            self.cache_write_1h,
            self.output,
            self.reasoning,
            self.images,
            self.audio_seconds,
        ]
    }

    /// The inverse of [`TokenCounts::to_array`].
    pub fn from_array(a: [i64; 8]) -> TokenCounts {
        TokenCounts {
            uncached_input: a[0],
            cached_input: a[1],
            cache_write_5m: a[2],
            cache_write_1h: a[3],
            output: a[4],
            reasoning: a[5],
            images: a[6],
            audio_seconds: a[7],
        }
    }

    /// Every input token plus output (what token budgets count).
    pub fn total_tokens(&self) -> i64 {
        self.uncached_input
            .saturating_add(self.cached_input)
            .saturating_add(self.cache_write_5m)
            .saturating_add(self.cache_write_1h)
            .saturating_add(self.output)
    }
}

/// A call's cost by priced dimension, nano-USD; the parts sum to the record's `cost_nanos`
/// when the breakdown came from the same pricing as the total.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(default)]
pub struct CostParts {
    /// Plain input tokens.
    pub uncached_input_nanos: i64,
    /// Cache-read input tokens.
    pub cached_input_nanos: i64,
    /// 5-minute cache writes.
    pub cache_write_5m_nanos: i64,
    /// 1-hour cache writes.
    pub cache_write_1h_nanos: i64,
    /// Output tokens other than reasoning.
    pub output_nanos: i64,
    /// Reasoning tokens.
    pub reasoning_nanos: i64,
    /// The per-request fee.
    pub request_fee_nanos: i64,
    /// Per-image fees.
    pub images_nanos: i64,
    /// Per-minute audio fees.
    pub audio_nanos: i64,
}

impl CostParts {
    /// The sum of the parts (saturating).
    pub fn total_nanos(&self) -> i64 {
        [
            self.uncached_input_nanos,
            self.cached_input_nanos,
            self.cache_write_5m_nanos,
            self.cache_write_1h_nanos,
            self.output_nanos,
            self.reasoning_nanos,
            self.request_fee_nanos,
            self.images_nanos,
            self.audio_nanos,
        ]
        .into_iter()
        .fold(0i64, i64::saturating_add)
    }
}

/// One call, as the ledger keeps it. Written once per request id (a replayed settlement
/// writes nothing); read back in the order it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RequestRecord {
    /// The call's id (Envoy's `x-request-id`, or the import row's id).
    pub request_id: String,
    /// When the call began, Unix ms (the reserve's time; the end time when unknown).
    pub started_at_ms: i64,
    /// When the call ended, Unix ms (the settlement's time; the refusal's for a denial).
    pub ended_at_ms: i64,
    /// When the ledger wrote it, Unix ms (the control plane's clock). Records are kept and
    /// paged in this order; for imported calls it is the import's time.
    pub recorded_at_ms: i64,
    /// Every scope of the call (`team:payments`…), as the filter sent them.
    #[schema(value_type = Vec<String>)]
    pub scopes: Vec<Scope>,
    /// The provider (`openai`, `anthropic`…).
    pub provider: String,
    /// The provider API (`chat_completions`, `messages`…), when the filter said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// The model the client asked for.
    pub requested_model: String,
    /// The model charged (differs after a downgrade).
    pub charged_model: String,
    /// Tokens by kind.
    pub tokens: TokenCounts,
    /// The exact cost charged, nano-USD (zero for a denial).
    pub cost_nanos: i64,
    /// The cost by dimension, when the filter priced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<CostParts>,
    /// True when the token counts are Tollgate's estimate, not the provider's report.
    pub estimated: bool,
    /// How the call ended.
    pub outcome: CallOutcome,
    /// Why it was refused (denials only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "usd")]
    pub deny_reason: Option<DenyReason>,
    /// The budget that refused or downgraded it, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_id: Option<String>,
    /// Live traffic or an import.
    #[serde(default)]
    pub source: RecordSource,
}

/// The length of a rollup row's bucket.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// One UTC hour.
    Hour,
    /// One UTC day.
    Day,
}

impl Granularity {
    /// The bucket's length, ms.
    pub fn millis(self) -> i64 {
        match self {
            Granularity::Hour => 3_600_000,
            Granularity::Day => 86_400_000,
        }
    }

    /// The start of the bucket holding `at_ms`.
    pub fn bucket_start(self, at_ms: i64) -> i64 {
        at_ms.div_euclid(self.millis()) * self.millis()
    }
}

/// One (bucket, scope, model, provider) row of summed spend.
///
/// Every call adds to one row per scope it carries plus one `global` row: rows of one scope
/// kind may be summed (a call with two `tag` scopes counts once under each tag), `global`
/// rows are the gateway's total. A call carrying no `team` scope shows up in `global` but
/// not in any `team:` row: the difference is the unallocated spend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RollupRow {
    /// The bucket's start (UTC), Unix ms.
    pub bucket_start_ms: i64,
    /// Hour or day. [`Store::rollups`](crate::store::Store::rollups) answers in hours
    /// while they are kept and in days for older spans, never both for the same time.
    pub granularity: Granularity,
    /// The scope (`team:payments`), or `global`.
    #[schema(value_type = String)]
    pub scope: Scope,
    /// The model charged.
    pub model: String,
    /// The provider.
    pub provider: String,
    /// Summed cost, nano-USD.
    pub cost_nanos: i64,
    /// Summed tokens by kind.
    pub tokens: TokenCounts,
    /// Calls counted (refused ones included).
    pub requests: i64,
    /// Of `requests`, the calls refused at reserve.
    pub denied: i64,
}

/// A half-open time span `[from_ms, to_ms)`, Unix ms. Both ends are required: an unbounded
/// or inverted range is refused where it enters (the API answers 400 naming the field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimeRange {
    /// Inclusive start.
    pub from_ms: i64,
    /// Exclusive end.
    pub to_ms: i64,
}

impl TimeRange {
    /// A range, or `None` when `to_ms <= from_ms`.
    pub fn new(from_ms: i64, to_ms: i64) -> Option<TimeRange> {
        (to_ms > from_ms).then_some(TimeRange { from_ms, to_ms })
    }

    /// Whether `at_ms` is inside.
    pub fn contains(&self, at_ms: i64) -> bool {
        self.from_ms <= at_ms && at_ms < self.to_ms
    }
}

/// Which rollup rows to return. Each list empty = no restriction; several entries = any of
/// them. Filtering happens in the store's reader, not in Redis.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollupFilter {
    /// Only rows of these exact scopes.
    pub scopes: Vec<Scope>,
    /// Only rows whose scope is of these kinds (`Global` selects the total rows).
    pub scope_kinds: Vec<ScopeKind>,
    /// Only these charged models.
    pub models: Vec<String>,
    /// Only these providers.
    pub providers: Vec<String>,
}

impl RollupFilter {
    /// Whether `row` passes.
    pub fn keeps(&self, scope: &Scope, model: &str, provider: &str) -> bool {
        (self.scopes.is_empty() || self.scopes.contains(scope))
            && (self.scope_kinds.is_empty() || self.scope_kinds.contains(&scope.kind()))
            && (self.models.is_empty() || self.models.iter().any(|m| m == model))
            && (self.providers.is_empty() || self.providers.iter().any(|p| p == provider))
    }
}

/// What [`Store::rollups`](crate::store::Store::rollups) is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupQuery {
    /// Rows whose bucket overlaps this range.
    pub range: TimeRange,
    /// Which rows.
    pub filter: RollupFilter,
    /// The finest rows wanted: `Hour` answers in hours where they are still kept and in
    /// days before that; `Day` answers in days throughout (far fewer rows to read when
    /// the report's buckets are days or longer in UTC).
    pub granularity: Granularity,
    /// The current time, Unix ms (which hours are still kept).
    pub now_ms: i64,
}

/// A page of records and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordPage {
    /// Records in the order they were written.
    pub records: Vec<RequestRecord>,
    /// Pass back as the cursor for the next page; `None` when the range is exhausted.
    pub next_cursor: Option<String>,
}

/// How much history a store keeps. The same numbers bound both stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerLimits {
    /// Most request records kept (oldest dropped first; Redis trims approximately, a few
    /// hundred over at most).
    pub records_max: u64,
    /// Records older than this are dropped, ms; 0 = no age limit.
    pub records_max_age_ms: i64,
    /// How long hourly rollups are kept after their hour, ms.
    pub hourly_retention_ms: i64,
    /// How long daily rollups are kept after their day, ms.
    pub daily_retention_ms: i64,
}

impl Default for LedgerLimits {
    fn default() -> Self {
        LedgerLimits {
            records_max: 10_000_000,
            records_max_age_ms: 0,
            hourly_retention_ms: 90 * 86_400_000,
            daily_retention_ms: 400 * 86_400_000,
        }
    }
}
