//! `/v1/ledger/…`: streamed exports of request records and rollups (CSV or JSON lines) and
//! the import of past calls. Exports read the store a page at a time and hand each page to
//! the client before reading the next, so memory stays flat whatever the export's size, and
//! admission never waits behind more than one page's read.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use serde::{Deserialize, Serialize};
use tollgate_model::scope::Scope;

use super::error::ApiError;
use crate::admission::request_tag;
use crate::ledger::export::{self, Format};
use crate::ledger::import::{self, ImportFormat, ImportRow, Parsed, SpendRow};
use crate::ledger::{Granularity, RollupFilter, RollupQuery, TimeRange};
use crate::state::AppState;
use crate::store::{SettleOp, SettleOutcome, SpendOutcome, Store};

/// Records read per store call while exporting.
pub const EXPORT_PAGE: usize = 1_000;
/// Longest span one export covers (the daily rollups' default retention).
pub const MAX_EXPORT_DAYS: i64 = 400;
/// Longest span of an hourly rollup export.
pub const MAX_HOURLY_DAYS: i64 = 93;
/// Largest import body, bytes (`tollgate import` sends bigger files in parts).
pub const MAX_IMPORT_BYTES: usize = 64 << 20;
/// How long an imported row's id blocks a second import of it: the daily rollups' default
/// retention (after that the spend it added is gone anyway).
pub const IMPORT_DEDUPE_MS: i64 = 400 * 86_400_000;

/// `GET /v1/ledger/records` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RecordsParams {
    /// Start (inclusive), RFC 3339. Records are selected by `recorded_at`.
    pub from: Option<String>,
    /// End (exclusive), RFC 3339.
    pub to: Option<String>,
    /// `csv` (default) or `jsonl`.
    pub format: Option<String>,
}

/// `GET /v1/ledger/rollups` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RollupsParams {
    /// Start (inclusive), RFC 3339: rows whose bucket overlaps the range.
    pub from: Option<String>,
    /// End (exclusive), RFC 3339.
    pub to: Option<String>,
    /// `hour` (default; days before the hourly retention) or `day`.
    pub granularity: Option<String>,
    /// Only this scope (`team:payments`, `global`).
    pub scope: Option<String>,
    /// Only this charged model.
    pub model: Option<String>,
    /// Only this provider.
    pub provider: Option<String>,
    /// `csv` (default) or `jsonl`.
    pub format: Option<String>,
}

/// `POST /v1/ledger/import` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ImportParams {
    /// `tollgate_csv` (default), `tollgate_jsonl`, `litellm_csv` (past calls, written as
    /// request records), `hourly_csv`, `hourly_jsonl`, `openai_costs`,
    /// `openai_usage_completions`, `anthropic_cost_report`, `anthropic_usage_messages`
    /// (spend per hour or day, added to the rollups only).
    pub format: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What an import did.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportSummary {
    /// Rows written now.
    pub imported: u64,
    /// Rows already imported earlier (same id): nothing added.
    pub duplicates: u64,
    /// Of `imported`, rows that carry tokens but no cost (OpenAI's and Anthropic's usage
    /// answers have no money: import the cost answer for the same days for the spend).
    /// Left out when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rows_without_cost: u64,
    /// Spend rows not written because their day is older than the ledger keeps (the daily
    /// rollups' retention, `[ledger] daily_retention_days`). Left out when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub too_old: u64,
}

fn enum_param<T: for<'de> Deserialize<'de>>(
    field: &str,
    raw: Option<&str>,
    default: &str,
    allowed: &str,
) -> Result<T, ApiError> {
    let v = raw.unwrap_or(default);
    serde_json::from_value(serde_json::Value::String(v.to_owned()))
        .map_err(|_| ApiError::invalid(field, format!("{v:?} is not one of {allowed}")))
}

fn time_param(field: &str, raw: Option<&str>) -> Result<i64, ApiError> {
    let v = raw.ok_or_else(|| {
        ApiError::invalid(
            field,
            "required: an RFC 3339 time (unbounded ranges are refused)",
        )
    })?;
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.timestamp_millis())
        .map_err(|_| ApiError::invalid(field, format!("{v:?} is not an RFC 3339 time")))
}

/// The range of `from`/`to`: both required, `to` after `from`, at most `max_days` apart.
fn range(from: Option<&str>, to: Option<&str>, max_days: i64) -> Result<TimeRange, ApiError> {
    let from_ms = time_param("from", from)?;
    let to_ms = time_param("to", to)?;
    let r = TimeRange::new(from_ms, to_ms)
        .ok_or_else(|| ApiError::invalid("to", "must be after from"))?;
    if to_ms - from_ms > max_days * 86_400_000 {
        return Err(ApiError::invalid(
            "to",
            format!("the range spans more than {max_days} days: narrow it, or export in parts"),
        ));
    }
    Ok(r)
}

fn streamed(format: Format, name: &str, body: Body) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    let ext = match format {
        Format::Csv => "csv",
        Format::Jsonl => "jsonl",
    };
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.{ext}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// A page-by-page stream of a range's records as lines.
fn record_stream(
    store: Arc<dyn Store>,
    range: TimeRange,
    format: Format,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    // State: the cursor to read after, whether the header is still to go, and how long the
    // last page took.
    let start = Some((None::<String>, true, std::time::Duration::ZERO));
    futures_util::stream::unfold(start, move |state| {
        let store = store.clone();
        async move {
            let (cursor, first, busy) = state?;
            if !first {
                // Leave admission the cores between pages (export::PAUSE_PCT).
                tokio::time::sleep(export::pause_after(busy)).await;
            }
            let started = std::time::Instant::now();
            let page = match store.records(range, cursor.as_deref(), EXPORT_PAGE).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "records export cut short");
                    return Some((Err(std::io::Error::other(e.to_string())), None));
                }
            };
            let mut buf = if first {
                export::header(&export::RECORD_COLUMNS, format)
            } else {
                String::new()
            };
            for r in &page.records {
                buf.push_str(&export::record_line(r, format));
            }
            let next = page
                .next_cursor
                .map(|c| (Some(c), false, started.elapsed()));
            Some((Ok(Bytes::from(buf)), next))
        }
    })
}

/// Export request records, oldest first, streamed.
#[utoipa::path(
    get, path = "/v1/ledger/records", tag = "ledger", params(RecordsParams),
    responses(
        (status = 200, description = "CSV (header line, columns in docs/ledger.md) or JSON lines of RequestRecord, streamed", content_type = "text/csv", body = String),
        (status = 400, description = "invalid_field: from / to missing, not RFC 3339, inverted or more than 400 days apart; format unknown", body = super::error::ErrorBody),
        (status = 401, description = "missing_token / invalid_token", body = super::error::ErrorBody),
        (status = 503, description = "store_unavailable", body = super::error::ErrorBody),
    ),
    security(("admin" = []))
)]
pub async fn records(
    State(state): State<AppState>,
    Query(p): Query<RecordsParams>,
) -> Result<Response, ApiError> {
    let format: Format = enum_param("format", p.format.as_deref(), "csv", "csv, jsonl")?;
    let range = range(p.from.as_deref(), p.to.as_deref(), MAX_EXPORT_DAYS)?;
    // Fail before the 200 when the store is down: the first page is read here.
    state.store.records(range, None, 1).await?;
    let body = Body::from_stream(record_stream(state.store.clone(), range, format));
    Ok(streamed(format, "ledger-records", body))
}

/// Export rollup rows, by bucket, streamed.
#[utoipa::path(
    get, path = "/v1/ledger/rollups", tag = "ledger", params(RollupsParams),
    responses(
        (status = 200, description = "CSV (header line) or JSON lines of RollupRow", content_type = "text/csv", body = String),
        (status = 400, description = "invalid_field: from / to (missing, inverted, too long: hourly 93 days, daily 400), granularity, scope, format", body = super::error::ErrorBody),
        (status = 401, description = "missing_token / invalid_token", body = super::error::ErrorBody),
        (status = 503, description = "store_unavailable", body = super::error::ErrorBody),
    ),
    security(("admin" = []))
)]
pub async fn rollups(
    State(state): State<AppState>,
    Query(p): Query<RollupsParams>,
) -> Result<Response, ApiError> {
    let format: Format = enum_param("format", p.format.as_deref(), "csv", "csv, jsonl")?;
    let granularity: Granularity =
        enum_param("granularity", p.granularity.as_deref(), "hour", "hour, day")?;
    let max_days = match granularity {
        Granularity::Hour => MAX_HOURLY_DAYS,
        Granularity::Day => MAX_EXPORT_DAYS,
    };
    let range = range(p.from.as_deref(), p.to.as_deref(), max_days)?;
    let mut filter = RollupFilter::default();
    if let Some(s) = &p.scope {
        let scope: Scope = s.parse().map_err(|e: tollgate_model::scope::ScopeError| {
            ApiError::invalid("scope", e.to_string())
        })?;
        filter.scopes.push(scope);
    }
    filter.models.extend(p.model.clone());
    filter.providers.extend(p.provider.clone());
    let rows = state
        .store
        .rollups(&RollupQuery {
            range,
            filter,
            granularity,
            now_ms: state.now().timestamp_millis(),
        })
        .await?;
    let header = export::header(&export::ROLLUP_COLUMNS, format);
    let chunks = std::iter::once(Ok::<_, std::io::Error>(Bytes::from(header))).chain(
        rows.chunks(EXPORT_PAGE)
            .map(|c| {
                let s: String = c.iter().map(|r| export::rollup_line(r, format)).collect();
                Ok(Bytes::from(s))
            })
            .collect::<Vec<_>>(),
    );
    let body = Body::from_stream(futures_util::stream::iter(chunks));
    Ok(streamed(format, "ledger-rollups", body))
}

/// Import past calls (request records) or spend summed per hour or day (rollups only).
/// Never touches budget counters; idempotent by row id.
#[utoipa::path(
    post, path = "/v1/ledger/import", tag = "ledger", params(ImportParams),
    request_body(content = String, description = "The file: Tollgate records CSV / JSON lines, LiteLLM spend logs CSV, Tollgate hourly spend CSV / JSON lines, or pages of OpenAI's organization Costs / completions Usage API answers or of Anthropic's Admin API cost / messages usage reports (formats and mapping: docs/ledger.md, Import)", content_type = "text/plain"),
    responses(
        (status = 200, description = "Rows imported and rows already imported", body = ImportSummary),
        (status = 400, description = "invalid_field: format, or `line N: field` of the first row that cannot be read (API answer pages: the page's first line and the field's path, `data[0].results[1].amount.value`); nothing is imported", body = super::error::ErrorBody),
        (status = 401, description = "missing_token / invalid_token", body = super::error::ErrorBody),
        (status = 413, description = "payload_too_large: more than 64 MiB (send it in parts)", body = super::error::ErrorBody),
        (status = 503, description = "store_unavailable: retry (rows already written count as duplicates)", body = super::error::ErrorBody),
    ),
    security(("admin" = []))
)]
pub async fn import(
    State(state): State<AppState>,
    Query(p): Query<ImportParams>,
    body: Bytes,
) -> Result<Json<ImportSummary>, ApiError> {
    let format: ImportFormat = enum_param(
        "format",
        p.format.as_deref(),
        "tollgate_csv",
        ImportFormat::NAMES,
    )?;
    let parsed = import::read(format, &body)
        .map_err(|e| ApiError::invalid(format!("line {}: {}", e.line, e.column), e.message))?;
    let now_ms = state.now().timestamp_millis();
    let summary = match parsed {
        Parsed::Records(rows) => import_records(&state, rows, now_ms).await?,
        Parsed::Spend(rows) => import_spend(&state, rows, now_ms).await?,
    };
    super::audit(
        &state,
        "ledger.import",
        "ledger",
        serde_json::json!({
            "format": format,
            "imported": summary.imported,
            "duplicates": summary.duplicates,
        }),
    )
    .await;
    Ok(Json(summary))
}

fn in_the_future(row: usize, field: &str) -> ApiError {
    ApiError::invalid(format!("row {row}: {field}"), "in the future")
}

async fn import_records(
    state: &AppState,
    rows: Vec<ImportRow>,
    now_ms: i64,
) -> Result<ImportSummary, ApiError> {
    if let Some((i, _)) = rows
        .iter()
        .enumerate()
        .find(|(_, r)| r.record.ended_at_ms > now_ms + crate::ledger::entry::MAX_CLOCK_SKEW_MS)
    {
        return Err(in_the_future(i + 1, "ended_at"));
    }
    let ops: Vec<SettleOp> = rows
        .into_iter()
        .map(|r| SettleOp {
            request_id: format!("import:{}", r.id),
            request_tag: request_tag(&r.record.scopes),
            lines: Vec::new(),
            cost_nanos: 0,
            tokens: 0,
            now_ms,
            dedupe_ttl_ms: IMPORT_DEDUPE_MS,
            ledger: Some(r.record),
        })
        .collect();
    let mut summary = ImportSummary::default();
    for chunk in ops.chunks(EXPORT_PAGE) {
        for o in state.store.settle_many(chunk).await? {
            match o {
                SettleOutcome::Applied { .. } => summary.imported += 1,
                SettleOutcome::Duplicate => summary.duplicates += 1,
            }
        }
        tokio::task::yield_now().await;
    }
    Ok(summary)
}

/// Spend rows, grouped by the org hash tag of their scopes (one store call per tag and
/// page, so a Redis Cluster script touches one slot), in file order within a tag.
async fn import_spend(
    state: &AppState,
    rows: Vec<SpendRow>,
    now_ms: i64,
) -> Result<ImportSummary, ApiError> {
    if let Some((i, _)) = rows
        .iter()
        .enumerate()
        .find(|(_, r)| r.bucket_start_ms > now_ms + crate::ledger::entry::MAX_CLOCK_SKEW_MS)
    {
        return Err(in_the_future(i + 1, "bucket_start"));
    }
    let mut by_tag: BTreeMap<String, Vec<SpendRow>> = BTreeMap::new();
    for r in rows {
        by_tag.entry(request_tag(&r.scopes)).or_default().push(r);
    }
    let mut summary = ImportSummary::default();
    for (tag, rows) in &by_tag {
        for chunk in rows.chunks(EXPORT_PAGE) {
            let added = state
                .store
                .import_spend(tag, chunk, now_ms, IMPORT_DEDUPE_MS)
                .await?;
            for (r, outcome) in chunk.iter().zip(added) {
                match outcome {
                    SpendOutcome::Duplicate => summary.duplicates += 1,
                    SpendOutcome::TooOld => summary.too_old += 1,
                    SpendOutcome::Added => {
                        summary.imported += 1;
                        if r.cost_nanos == 0 && r.tokens.total_tokens() > 0 {
                            summary.rows_without_cost += 1;
                        }
                    }
                }
            }
            tokio::task::yield_now().await;
        }
    }
    Ok(summary)
}
