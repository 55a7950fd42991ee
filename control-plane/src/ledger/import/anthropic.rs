//! Anthropic's Admin API usage and cost reports, as it answers them: pages of
//! `GET /v1/organizations/cost_report` (money per day, by workspace / description) and of
//! `GET /v1/organizations/usage_report/messages` (tokens per minute, hour or day, by API key
//! / workspace / model / service tier / context window / account…). A file holds one page or
//! several one after another (pretty-printed or one a line).
//!
//! Mapping (docs/ledger.md, "Import"): `workspace_id` → `project:`, `api_key_id` → `key:`,
//! `account_id` → `user:`; a bucket goes to the UTC hour or day holding its start (a minute
//! bucket to its hour); provider `anthropic`. The cost report's `amount` is a decimal string
//! in **cents** (`"123.45"` is $1.2345), read exactly and rounded to the nano-USD. The usage
//! report counts no requests.

use chrono::DateTime;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tollgate_model::scope::ScopeKind;

use super::openai::{At, id_scope, opt};
use super::spend::{Identity, SpendRow};
use super::{ImportError, err, json_pages};
use crate::ledger::{Granularity, TokenCounts};

/// The provider every Anthropic row is filed under.
const PROVIDER: &str = "anthropic";

/// The model of a row the answer did not break down by model.
const UNKNOWN_MODEL: &str = "unknown";

/// Nano-USD in one cent.
const NANOS_PER_CENT: i64 = 10_000_000;

#[derive(Deserialize)]
struct Page<T> {
    data: Vec<Bucket<T>>,
}

#[derive(Deserialize)]
struct Bucket<T> {
    starting_at: String,
    ending_at: String,
    results: Vec<T>,
}

#[derive(Deserialize)]
struct CostResult {
    amount: Option<String>,
    currency: Option<String>,
    #[serde(default)]
    workspace_id: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    cost_type: Option<String>,
    #[serde(default)]
    context_window: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    service_tier: Option<String>,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    inference_geo: Option<String>,
}

#[derive(Deserialize, Default)]
struct CacheCreation {
    #[serde(default)]
    ephemeral_1h_input_tokens: i64,
    #[serde(default)]
    ephemeral_5m_input_tokens: i64,
}

#[derive(Deserialize)]
struct UsageResult {
    #[serde(default)]
    uncached_input_tokens: i64,
    #[serde(default)]
    cache_read_input_tokens: i64,
    #[serde(default)]
    cache_creation: CacheCreation,
    #[serde(default)]
    output_tokens: i64,
    #[serde(default)]
    api_key_id: Option<String>,
    #[serde(default)]
    workspace_id: Option<String>,
    #[serde(default)]
    account_id: Option<String>,
    #[serde(default)]
    service_account_id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    service_tier: Option<String>,
    #[serde(default)]
    context_window: Option<String>,
    #[serde(default)]
    inference_geo: Option<String>,
    #[serde(default)]
    speed: Option<String>,
}

/// A bucket's hour or day start (ms) and granularity, from its RFC 3339 ends.
fn bucket<T>(line: usize, i: usize, b: &Bucket<T>) -> Result<(i64, Granularity), ImportError> {
    let at = |f: &str| format!("data[{i}].{f}");
    let time = |f: &str, v: &str| {
        DateTime::parse_from_rfc3339(v)
            .map(|t| t.timestamp_millis())
            .map_err(|_| err(line, &at(f), format!("{v:?} is not an RFC 3339 time")))
    };
    let start = time("starting_at", &b.starting_at)?;
    let end = time("ending_at", &b.ending_at)?;
    let g = match end.checked_sub(start) {
        Some(60_000 | 3_600_000) => Granularity::Hour,
        Some(86_400_000) => Granularity::Day,
        _ => {
            return Err(err(
                line,
                &at("ending_at"),
                format!(
                    "a bucket from {} to {} is not 1m, 1h or 1d wide",
                    b.starting_at, b.ending_at
                ),
            ));
        }
    };
    Ok((g.bucket_start(start), g))
}

/// A result read: where it is, its bucket's start and width, the bucket's span as written
/// (part of the row's identity), and the result.
type Read<T> = (At, i64, Granularity, String, T);

/// Every result of every page, with where it is and its bucket.
fn results<T: DeserializeOwned>(body: &[u8]) -> Result<Vec<Read<T>>, ImportError> {
    let mut out = Vec::new();
    for (line, page) in json_pages::<Page<T>>(body)? {
        for (i, b) in page.data.into_iter().enumerate() {
            let (start, g) = bucket(line, i, &b)?;
            let span = format!("{} {}", b.starting_at, b.ending_at);
            for (j, r) in b.results.into_iter().enumerate() {
                let at = At {
                    line,
                    path: format!("data[{i}].results[{j}]"),
                };
                out.push((at, start, g, span.clone(), r));
            }
        }
    }
    Ok(out)
}

/// Rows of the cost report's pages: cost only.
pub(super) fn cost_report(body: &[u8]) -> Result<Vec<(usize, SpendRow)>, ImportError> {
    let mut out = Vec::new();
    for (at, start, g, span, r) in results::<CostResult>(body)? {
        match r.currency.as_deref() {
            Some(c) if c.eq_ignore_ascii_case("usd") => {}
            other => {
                return Err(at.err("currency", format!("{other:?}: only USD is imported")));
            }
        }
        let raw = r
            .amount
            .as_deref()
            .ok_or_else(|| at.err("amount", "required"))?;
        let cents: rust_decimal::Decimal = raw
            .trim()
            .parse()
            .map_err(|_| at.err("amount", format!("{raw:?} is not a decimal")))?;
        // Rounded to the nano-USD half away from zero, as every imported amount.
        let cost_nanos = cents
            .checked_mul(rust_decimal::Decimal::from(NANOS_PER_CENT))
            .and_then(|n| i64::try_from(n.round()).ok())
            .ok_or_else(|| at.err("amount", format!("{raw:?} is out of range")))?;
        if cost_nanos < 0 {
            return Err(at.err("amount", format!("{raw:?} is negative")));
        }
        let mut scopes = Vec::new();
        scopes.extend(id_scope(
            &at,
            "workspace_id",
            ScopeKind::Project,
            r.workspace_id.as_deref(),
        )?);
        let model = r
            .model
            .as_deref()
            .or(r.cost_type.as_deref())
            .filter(|m| !m.is_empty())
            .unwrap_or(UNKNOWN_MODEL);
        let id = Identity {
            format: "anthropic_cost_report",
            parts: vec![
                span,
                opt(r.workspace_id.as_deref()),
                opt(r.description.as_deref()),
                opt(r.cost_type.as_deref()),
                opt(r.context_window.as_deref()),
                opt(r.model.as_deref()),
                opt(r.service_tier.as_deref()),
                opt(r.token_type.as_deref()),
                opt(r.inference_geo.as_deref()),
            ],
        }
        .id();
        out.push((
            at.line,
            SpendRow {
                id,
                bucket_start_ms: start,
                granularity: g,
                scopes,
                provider: PROVIDER.to_owned(),
                model: model.to_owned(),
                cost_nanos,
                tokens: TokenCounts::default(),
                requests: 0,
            },
        ));
    }
    Ok(out)
}

/// Rows of the messages usage report's pages: tokens by kind, no cost, no request count.
pub(super) fn usage_messages(body: &[u8]) -> Result<Vec<(usize, SpendRow)>, ImportError> {
    let mut out = Vec::new();
    for (at, start, g, span, r) in results::<UsageResult>(body)? {
        for (field, n) in [
            ("uncached_input_tokens", r.uncached_input_tokens),
            ("cache_read_input_tokens", r.cache_read_input_tokens),
            (
                "cache_creation.ephemeral_5m_input_tokens",
                r.cache_creation.ephemeral_5m_input_tokens,
            ),
            (
                "cache_creation.ephemeral_1h_input_tokens",
                r.cache_creation.ephemeral_1h_input_tokens,
            ),
            ("output_tokens", r.output_tokens),
        ] {
            if n < 0 {
                return Err(at.err(field, format!("{n} is negative")));
            }
        }
        let mut scopes = Vec::new();
        scopes.extend(id_scope(
            &at,
            "workspace_id",
            ScopeKind::Project,
            r.workspace_id.as_deref(),
        )?);
        scopes.extend(id_scope(
            &at,
            "api_key_id",
            ScopeKind::Key,
            r.api_key_id.as_deref(),
        )?);
        scopes.extend(id_scope(
            &at,
            "account_id",
            ScopeKind::User,
            r.account_id.as_deref(),
        )?);
        let id = Identity {
            format: "anthropic_usage_messages",
            parts: vec![
                span,
                opt(r.api_key_id.as_deref()),
                opt(r.workspace_id.as_deref()),
                opt(r.account_id.as_deref()),
                opt(r.service_account_id.as_deref()),
                opt(r.model.as_deref()),
                opt(r.service_tier.as_deref()),
                opt(r.context_window.as_deref()),
                opt(r.inference_geo.as_deref()),
                opt(r.speed.as_deref()),
            ],
        }
        .id();
        out.push((
            at.line,
            SpendRow {
                id,
                bucket_start_ms: start,
                granularity: g,
                scopes,
                provider: PROVIDER.to_owned(),
                model: r
                    .model
                    .clone()
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| UNKNOWN_MODEL.to_owned()),
                cost_nanos: 0,
                tokens: TokenCounts {
                    uncached_input: r.uncached_input_tokens,
                    cached_input: r.cache_read_input_tokens,
                    cache_write_5m: r.cache_creation.ephemeral_5m_input_tokens,
                    cache_write_1h: r.cache_creation.ephemeral_1h_input_tokens,
                    output: r.output_tokens,
                    ..TokenCounts::default()
                },
                requests: 0,
            },
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::{ImportFormat, Parsed, read};
    use super::*;

    const COST: &str =
        include_str!("../../../tests/fixtures/anthropic-admin/cost-report-page.json");
    const USAGE: &str =
        include_str!("../../../tests/fixtures/anthropic-admin/usage-report-messages-page.json");

    /// 2025-08-01T00:00:00Z, the documented answers' bucket.
    const AUG_1: i64 = 1_754_006_400_000;

    fn spend(format: ImportFormat, body: &str) -> Result<Vec<SpendRow>, ImportError> {
        match read(format, body.as_bytes())? {
            Parsed::Spend(rows) => Ok(rows),
            Parsed::Records(_) => panic!("{format:?} read as records"),
        }
    }

    #[test]
    fn the_documented_cost_report_is_cents_read_exactly() {
        let rows = spend(ImportFormat::AnthropicCostReport, COST).unwrap();
        let r = &rows[0];
        // "123.78912" cents = $1.2378912.
        assert_eq!(r.cost_nanos, 1_237_891_200);
        assert_eq!(
            (r.bucket_start_ms, r.granularity),
            (AUG_1, Granularity::Day)
        );
        assert_eq!(
            (r.provider.as_str(), r.model.as_str()),
            ("anthropic", "claude-sonnet-4-20250514")
        );
        assert_eq!(
            r.scopes[0].to_string(),
            "project:wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ"
        );
        // A web search cost has no model: it is filed under its cost type.
        let search = COST
            .replace(
                "\"model\": \"claude-sonnet-4-20250514\",",
                "\"model\": null,",
            )
            .replace("\"cost_type\": \"tokens\"", "\"cost_type\": \"web_search\"")
            .replace("123.78912", "0.0000001");
        let s = &spend(ImportFormat::AnthropicCostReport, &search).unwrap()[0];
        assert_eq!((s.model.as_str(), s.cost_nanos), ("web_search", 1));
        assert_ne!(s.id, r.id);
    }

    #[test]
    fn the_documented_usage_report_is_tokens_by_kind() {
        let r = &spend(ImportFormat::AnthropicUsageMessages, USAGE).unwrap()[0];
        assert_eq!(
            r.tokens,
            TokenCounts {
                uncached_input: 1_500,
                cached_input: 200,
                cache_write_5m: 500,
                cache_write_1h: 1_000,
                output: 500,
                ..TokenCounts::default()
            }
        );
        assert_eq!((r.cost_nanos, r.requests), (0, 0));
        let scopes: Vec<String> = r.scopes.iter().map(ToString::to_string).collect();
        assert_eq!(
            scopes,
            [
                "project:wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ",
                "key:apikey_01Rj2N8SVvo6BePZj99NhmiT"
            ]
        );
        let hour = USAGE.replace("2025-08-02T00:00:00Z", "2025-08-01T01:00:00Z");
        let h = &spend(ImportFormat::AnthropicUsageMessages, &hour).unwrap()[0];
        assert_eq!(
            (h.bucket_start_ms, h.granularity),
            (AUG_1, Granularity::Hour)
        );
    }

    #[test]
    fn bad_reports_name_the_line_and_the_field() {
        let cost = ImportFormat::AnthropicCostReport;
        let usage = ImportFormat::AnthropicUsageMessages;
        let cases = [
            (
                cost,
                COST.replace("\"123.78912\"", "\"-1\""),
                1,
                "data[0].results[0].amount",
            ),
            (
                cost,
                COST.replace("\"123.78912\"", "\"lots\""),
                1,
                "data[0].results[0].amount",
            ),
            (
                cost,
                COST.replace("\"USD\"", "\"EUR\""),
                1,
                "data[0].results[0].currency",
            ),
            (
                cost,
                COST.replace("2025-08-02T00:00:00Z", "2025-08-01T12:00:00Z"),
                1,
                "data[0].ending_at",
            ),
            (
                cost,
                COST.replace("2025-08-01T00:00:00Z", "yesterday"),
                1,
                "data[0].starting_at",
            ),
            // A type error is placed on its own line.
            (
                cost,
                COST.replace("\"123.78912\"", "123"),
                7,
                "data[0].results[0].amount",
            ),
            (
                usage,
                USAGE.replace("\"output_tokens\": 500", "\"output_tokens\": -5"),
                1,
                "data[0].results[0].output_tokens",
            ),
            (
                usage,
                USAGE.replace("\"results\"", "\"result\""),
                25,
                "data[0].results",
            ),
        ];
        for (format, body, line, field) in cases {
            let e = spend(format, &body).unwrap_err();
            assert_eq!((e.line, e.column.as_str()), (line, field), "{e}");
        }
    }
}
