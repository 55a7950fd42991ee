//! OpenAI's organization usage exports, as the Admin API answers them: pages of
//! `GET /v1/organization/costs` (money per day, by project / API key / line item) and of
//! `GET /v1/organization/usage/completions` (tokens and requests per minute, hour or day, by
//! project / user / API key / model / batch / service tier). A file holds one page or several
//! one after another (concatenated answers, pretty-printed or one a line).
//!
//! Mapping (docs/ledger.md, "Import"): `project_id` → `project:`, `api_key_id` → `key:`,
//! `user_id` → `user:`; a bucket goes to the UTC hour or day holding its start (a minute
//! bucket to its hour); provider `openai`; model: the usage's `model`, or the cost line
//! item's model (`"gpt-4o-2024-08-06, input"` → `gpt-4o-2024-08-06`), `unknown` when the
//! answer was not grouped by it. Amounts are read from the JSON text as decimals (never
//! through a float) and rounded to the nano-USD.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use tollgate_model::scope::{Scope, ScopeKind};

use super::spend::{Identity, SpendRow};
use super::{ImportError, err, json_pages, usd_to_nanos};
use crate::ledger::{Granularity, TokenCounts};

/// The provider every OpenAI row is filed under.
const PROVIDER: &str = "openai";

/// The model of a row the answer did not break down by model.
const UNKNOWN_MODEL: &str = "unknown";

#[derive(Deserialize)]
struct Page<T> {
    object: String,
    data: Vec<Bucket<T>>,
}

#[derive(Deserialize)]
struct Bucket<T> {
    object: String,
    start_time: i64,
    end_time: i64,
    // The reference's generated examples spell it `result`; the API answers `results`.
    #[serde(alias = "result")]
    results: Vec<T>,
}

#[derive(Deserialize)]
struct Amount {
    /// As written in the answer (`0.06`), read as a decimal.
    value: Option<Box<RawValue>>,
    currency: Option<String>,
}

#[derive(Deserialize)]
struct CostResult {
    object: String,
    amount: Option<Amount>,
    #[serde(default)]
    line_item: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    api_key_id: Option<String>,
}

#[derive(Deserialize)]
struct UsageResult {
    object: String,
    #[serde(default)]
    input_tokens: i64,
    #[serde(default)]
    output_tokens: i64,
    #[serde(default)]
    input_cached_tokens: i64,
    #[serde(default)]
    input_audio_tokens: i64,
    #[serde(default)]
    output_audio_tokens: i64,
    #[serde(default)]
    num_model_requests: i64,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    api_key_id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    batch: Option<bool>,
    #[serde(default)]
    service_tier: Option<String>,
}

/// Where a result is: the line its page starts on and its path in the page.
pub(super) struct At {
    pub line: usize,
    pub path: String,
}

impl At {
    pub fn err(&self, field: &str, message: impl Into<String>) -> ImportError {
        err(self.line, &format!("{}.{field}", self.path), message)
    }
}

/// Each page of the file, parsed, with the line it starts on.
fn pages<T: DeserializeOwned>(body: &[u8]) -> Result<Vec<(usize, Page<T>)>, ImportError> {
    let pages = json_pages::<Page<T>>(body)?;
    for (line, page) in &pages {
        if page.object != "page" {
            return Err(err(
                *line,
                "object",
                format!("{:?} is not \"page\"", page.object),
            ));
        }
    }
    Ok(pages)
}

/// A bucket's hour or day start and granularity, from its width.
fn bucket<T>(line: usize, i: usize, b: &Bucket<T>) -> Result<(i64, Granularity), ImportError> {
    let at = |f: &str| format!("data[{i}].{f}");
    if b.object != "bucket" {
        return Err(err(
            line,
            &at("object"),
            format!("{:?} is not \"bucket\"", b.object),
        ));
    }
    let start_ms = b
        .start_time
        .checked_mul(1_000)
        .ok_or_else(|| err(line, &at("start_time"), "out of range"))?;
    let g = match b.end_time.checked_sub(b.start_time) {
        Some(60 | 3_600) => Granularity::Hour,
        Some(86_400) => Granularity::Day,
        _ => {
            return Err(err(
                line,
                &at("end_time"),
                format!(
                    "a bucket from {} to {} is not 1m, 1h or 1d wide",
                    b.start_time, b.end_time
                ),
            ));
        }
    };
    Ok((g.bucket_start(start_ms), g))
}

/// The scope of a provider's id (`proj_abc` → `project:proj_abc`), if the answer has one.
pub(super) fn id_scope(
    at: &At,
    field: &str,
    kind: ScopeKind,
    v: Option<&str>,
) -> Result<Option<Scope>, ImportError> {
    v.filter(|v| !v.is_empty())
        .map(|v| Scope::new(kind, v).map_err(|e| at.err(field, e.to_string())))
        .transpose()
}

/// An optional identity part (`None` apart from every text).
pub(super) fn opt(v: Option<&str>) -> String {
    v.map_or_else(|| "\u{0}".to_owned(), str::to_owned)
}

/// Rows of the Costs API's pages: cost only (no tokens, no request counts).
pub(super) fn costs(body: &[u8]) -> Result<Vec<(usize, SpendRow)>, ImportError> {
    let mut out = Vec::new();
    for (line, page) in pages::<CostResult>(body)? {
        for (i, b) in page.data.iter().enumerate() {
            let (start, g) = bucket(line, i, b)?;
            for (j, r) in b.results.iter().enumerate() {
                let at = At {
                    line,
                    path: format!("data[{i}].results[{j}]"),
                };
                if r.object != "organization.costs.result" {
                    return Err(at.err(
                        "object",
                        format!("{:?} is not \"organization.costs.result\"", r.object),
                    ));
                }
                let amount = r
                    .amount
                    .as_ref()
                    .ok_or_else(|| at.err("amount", "required"))?;
                match amount.currency.as_deref() {
                    Some(c) if c.eq_ignore_ascii_case("usd") => {}
                    other => {
                        return Err(at.err(
                            "amount.currency",
                            format!("{other:?}: only usd is imported"),
                        ));
                    }
                }
                let raw = amount
                    .value
                    .as_ref()
                    .map(|v| v.get().trim_matches('"'))
                    .ok_or_else(|| at.err("amount.value", "required"))?;
                let cost_nanos = usd_to_nanos(raw)
                    .ok_or_else(|| at.err("amount.value", format!("{raw} is not a USD amount")))?;
                if cost_nanos < 0 {
                    return Err(at.err("amount.value", format!("{raw} is negative")));
                }
                let mut scopes = Vec::new();
                scopes.extend(id_scope(
                    &at,
                    "project_id",
                    ScopeKind::Project,
                    r.project_id.as_deref(),
                )?);
                scopes.extend(id_scope(
                    &at,
                    "api_key_id",
                    ScopeKind::Key,
                    r.api_key_id.as_deref(),
                )?);
                let model = r
                    .line_item
                    .as_deref()
                    .filter(|l| !l.is_empty())
                    .map_or(UNKNOWN_MODEL, |l| l.split_once(", ").map_or(l, |(m, _)| m));
                let id = Identity {
                    format: "openai_costs",
                    parts: vec![
                        b.start_time.to_string(),
                        b.end_time.to_string(),
                        opt(r.project_id.as_deref()),
                        opt(r.api_key_id.as_deref()),
                        opt(r.line_item.as_deref()),
                    ],
                }
                .id();
                out.push((
                    line,
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
        }
    }
    Ok(out)
}

/// Rows of the completions Usage API's pages: tokens and requests, no cost (the Costs API
/// answers carry the money).
pub(super) fn usage_completions(body: &[u8]) -> Result<Vec<(usize, SpendRow)>, ImportError> {
    let mut out = Vec::new();
    for (line, page) in pages::<UsageResult>(body)? {
        for (i, b) in page.data.iter().enumerate() {
            let (start, g) = bucket(line, i, b)?;
            for (j, r) in b.results.iter().enumerate() {
                let at = At {
                    line,
                    path: format!("data[{i}].results[{j}]"),
                };
                if r.object != "organization.usage.completions.result" {
                    return Err(at.err(
                        "object",
                        format!(
                            "{:?} is not \"organization.usage.completions.result\"",
                            r.object
                        ),
                    ));
                }
                for (field, n) in [
                    ("input_tokens", r.input_tokens),
                    ("output_tokens", r.output_tokens),
                    ("input_cached_tokens", r.input_cached_tokens),
                    ("input_audio_tokens", r.input_audio_tokens),
                    ("output_audio_tokens", r.output_audio_tokens),
                    ("num_model_requests", r.num_model_requests),
                ] {
                    if n < 0 {
                        return Err(at.err(field, format!("{n} is negative")));
                    }
                }
                // Cached input is part of input_tokens (text). Audio tokens are counted apart
                // by OpenAI; the ledger has no audio-token kind, so they join the plain input
                // and the output.
                let uncached = r.input_tokens - r.input_cached_tokens;
                if uncached < 0 {
                    return Err(at.err("input_cached_tokens", "more than input_tokens"));
                }
                let uncached = uncached.saturating_add(r.input_audio_tokens);
                let output = r.output_tokens.saturating_add(r.output_audio_tokens);
                let mut scopes = Vec::new();
                scopes.extend(id_scope(
                    &at,
                    "project_id",
                    ScopeKind::Project,
                    r.project_id.as_deref(),
                )?);
                scopes.extend(id_scope(
                    &at,
                    "user_id",
                    ScopeKind::User,
                    r.user_id.as_deref(),
                )?);
                scopes.extend(id_scope(
                    &at,
                    "api_key_id",
                    ScopeKind::Key,
                    r.api_key_id.as_deref(),
                )?);
                let id = Identity {
                    format: "openai_usage_completions",
                    parts: vec![
                        b.start_time.to_string(),
                        b.end_time.to_string(),
                        opt(r.project_id.as_deref()),
                        opt(r.user_id.as_deref()),
                        opt(r.api_key_id.as_deref()),
                        opt(r.model.as_deref()),
                        r.batch
                            .map_or_else(|| "\u{0}".to_owned(), |b| b.to_string()),
                        opt(r.service_tier.as_deref()),
                    ],
                }
                .id();
                out.push((
                    line,
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
                            uncached_input: uncached,
                            cached_input: r.input_cached_tokens,
                            output,
                            ..TokenCounts::default()
                        },
                        requests: r.num_model_requests,
                    },
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::{ImportFormat, Parsed, read};
    use super::*;

    const COSTS: &str = include_str!("../../../tests/fixtures/openai-admin/costs-page.json");
    const COSTS_GROUPED: &str =
        include_str!("../../../tests/fixtures/openai-admin/costs-grouped-page.json");
    const USAGE: &str =
        include_str!("../../../tests/fixtures/openai-admin/usage-completions-page.json");
    const USAGE_GROUPED: &str =
        include_str!("../../../tests/fixtures/openai-admin/usage-completions-grouped-page.json");

    /// 2024-11-01T00:00:00Z, the documented answers' bucket.
    const NOV_1: i64 = 1_730_419_200_000;

    fn spend(format: ImportFormat, body: &str) -> Result<Vec<SpendRow>, ImportError> {
        match read(format, body.as_bytes())? {
            Parsed::Spend(rows) => Ok(rows),
            Parsed::Records(_) => panic!("{format:?} read as records"),
        }
    }

    fn scopes(r: &SpendRow) -> Vec<String> {
        r.scopes.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_documented_costs_answers_become_daily_rows_of_exact_nanos() {
        let rows = spend(ImportFormat::OpenaiCosts, COSTS).unwrap();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(
            (r.bucket_start_ms, r.granularity),
            (NOV_1, Granularity::Day)
        );
        assert_eq!(r.cost_nanos, 60_000_000);
        assert_eq!(
            (r.provider.as_str(), r.model.as_str()),
            ("openai", "unknown")
        );
        assert!(r.scopes.is_empty());
        assert_eq!((r.requests, r.tokens), (0, TokenCounts::default()));

        let g = &spend(ImportFormat::OpenaiCosts, COSTS_GROUPED).unwrap()[0];
        assert_eq!(scopes(g), ["project:proj_abc"]);
        assert_eq!(
            (g.model.as_str(), g.cost_nanos),
            ("Image models", 60_000_000)
        );
        assert_ne!(g.id, r.id);
    }

    #[test]
    fn a_line_item_names_its_model_and_several_pages_read_in_turn() {
        let two = COSTS_GROUPED
            .replace("\"Image models\"", "\"gpt-4o-2024-08-06, input\"")
            .replace("0.06", "1.2E-05");
        let rows = spend(ImportFormat::OpenaiCosts, &format!("{COSTS}\n{two}")).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].model, "gpt-4o-2024-08-06");
        assert_eq!(rows[1].cost_nanos, 12_000);
    }

    #[test]
    fn the_documented_usage_answers_become_tokens_and_requests_by_kind() {
        let r = &spend(ImportFormat::OpenaiUsageCompletions, USAGE).unwrap()[0];
        assert_eq!(r.cost_nanos, 0);
        assert_eq!(r.requests, 5);
        assert_eq!(
            (
                r.tokens.uncached_input,
                r.tokens.cached_input,
                r.tokens.output
            ),
            (200, 800, 500)
        );
        let g = &spend(ImportFormat::OpenaiUsageCompletions, USAGE_GROUPED).unwrap()[0];
        assert_eq!(
            scopes(g),
            ["project:proj_abc", "user:user-abc", "key:key_abc"]
        );
        assert_eq!(g.model, "gpt-4o-mini-2024-07-18");
        // 5000 input of which 4000 cached, + 300 audio in; 1000 out + 200 audio out.
        assert_eq!(
            (
                g.tokens.uncached_input,
                g.tokens.cached_input,
                g.tokens.output
            ),
            (1_300, 4_000, 1_200)
        );
    }

    #[test]
    fn hour_and_minute_buckets_land_in_their_hour_with_distinct_ids() {
        let hour = USAGE.replace("1730505600", "1730422800");
        let r = &spend(ImportFormat::OpenaiUsageCompletions, &hour).unwrap()[0];
        assert_eq!(
            (r.bucket_start_ms, r.granularity),
            (NOV_1, Granularity::Hour)
        );
        let minute = USAGE
            .replace("1730419200", "1730419260")
            .replace("1730505600", "1730419320");
        let m = &spend(ImportFormat::OpenaiUsageCompletions, &minute).unwrap()[0];
        assert_eq!(
            (m.bucket_start_ms, m.granularity),
            (NOV_1, Granularity::Hour)
        );
        assert_ne!(m.id, r.id);
    }

    #[test]
    fn bad_pages_name_the_line_and_the_field() {
        let cases = [
            (
                ImportFormat::OpenaiCosts,
                COSTS.replace("1730505600", "1730462400"),
                1,
                "data[0].end_time",
            ),
            (
                ImportFormat::OpenaiCosts,
                COSTS.replace("0.06", "-0.06"),
                1,
                "data[0].results[0].amount.value",
            ),
            (
                ImportFormat::OpenaiCosts,
                COSTS.replace("\"usd\"", "\"eur\""),
                1,
                "data[0].results[0].amount.currency",
            ),
            (
                ImportFormat::OpenaiCosts,
                COSTS.replace("0.06", "\"lots\""),
                1,
                "data[0].results[0].amount.value",
            ),
            (
                ImportFormat::OpenaiCosts,
                USAGE.to_owned(),
                1,
                "data[0].results[0].object",
            ),
            (
                ImportFormat::OpenaiCosts,
                format!(
                    "{COSTS}\n{}",
                    COSTS.replace("\"start_time\": 1730419200", "\"start_time\": \"x\"")
                ),
                30,
                "data[0].start_time",
            ),
            (
                ImportFormat::OpenaiCosts,
                format!("{COSTS}\n{{\"object\": \"page\", \"data\": ["),
                25,
                "page",
            ),
            (
                ImportFormat::OpenaiCosts,
                "{\"object\": \"list\", \"data\": []}".to_owned(),
                1,
                "object",
            ),
            (ImportFormat::OpenaiCosts, String::new(), 1, "page"),
            (
                ImportFormat::OpenaiUsageCompletions,
                USAGE.replace("\"output_tokens\": 500", "\"output_tokens\": -500"),
                1,
                "data[0].results[0].output_tokens",
            ),
            (
                ImportFormat::OpenaiUsageCompletions,
                USAGE.replace(
                    "\"input_cached_tokens\": 800",
                    "\"input_cached_tokens\": 1800",
                ),
                1,
                "data[0].results[0].input_cached_tokens",
            ),
            (
                ImportFormat::OpenaiUsageCompletions,
                USAGE.replace("\"project_id\": null", "\"project_id\": \"a b\""),
                1,
                "data[0].results[0].project_id",
            ),
        ];
        for (format, body, line, field) in cases {
            let e = spend(format, &body).unwrap_err();
            assert_eq!((e.line, e.column.as_str()), (line, field), "{e}");
        }
    }
}
