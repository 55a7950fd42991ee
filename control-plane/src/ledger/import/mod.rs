//! Reading spend from files into the ledger. Two kinds of file:
//!
//! - **past calls** (`records.rs`): one request record per row: Tollgate's records CSV /
//!   JSON lines, LiteLLM's spend logs;
//! - **spend already summed per bucket** (`spend.rs`, `openai.rs`): one [`SpendRow`] per
//!   (hour or day, scopes, provider, model): Tollgate's hourly spend CSV / JSON lines,
//!   OpenAI's organization Costs and Usage API answers (`openai.rs`) and Anthropic's Admin
//!   API cost and usage reports (`anthropic.rs`). These land in the rollups only
//!   (`Store::import_spend`), never as request records.
//!
//! Pure: the API layer writes what this returns. A file is read whole before anything is
//! written, and its first unreadable row refuses it ([`ImportError`] names the line and the
//! field). Every row has a stable id, so the same file imported twice adds nothing
//! (docs/ledger.md, "Import").

mod anthropic;
mod openai;
mod records;
mod spend;

use std::collections::HashMap;

use chrono::DateTime;
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use tollgate_model::scope::{Scope, ScopeKind};

pub use spend::SpendRow;

use super::RequestRecord;

/// A file format `POST /v1/ledger/import` reads.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ImportFormat {
    /// Tollgate's records CSV (what `GET /v1/ledger/records?format=csv` writes).
    TollgateCsv,
    /// Tollgate's records JSON lines (what `GET /v1/ledger/records?format=jsonl` writes).
    TollgateJsonl,
    /// LiteLLM's spend logs as CSV (`LiteLLM_SpendLogs` columns).
    LitellmCsv,
    /// Tollgate's hourly spend rows as CSV (docs/ledger.md): rollups only.
    HourlyCsv,
    /// Tollgate's hourly spend rows as JSON lines: rollups only.
    HourlyJsonl,
    /// Pages of OpenAI's `GET /v1/organization/costs`: rollups only.
    OpenaiCosts,
    /// Pages of OpenAI's `GET /v1/organization/usage/completions`: rollups only.
    OpenaiUsageCompletions,
    /// Pages of Anthropic's `GET /v1/organizations/cost_report`: rollups only.
    AnthropicCostReport,
    /// Pages of Anthropic's `GET /v1/organizations/usage_report/messages`: rollups only.
    AnthropicUsageMessages,
}

impl ImportFormat {
    /// Every format's name, as the `format` parameter takes it.
    pub const NAMES: &'static str = "tollgate_csv, tollgate_jsonl, litellm_csv, hourly_csv, \
         hourly_jsonl, openai_costs, openai_usage_completions, anthropic_cost_report, \
         anthropic_usage_messages";

    /// How the file splits into parts that import alone (`tollgate import` sends big files
    /// in parts).
    pub fn layout(self) -> Layout {
        match self {
            ImportFormat::TollgateCsv | ImportFormat::LitellmCsv | ImportFormat::HourlyCsv => {
                Layout::CsvLines
            }
            ImportFormat::TollgateJsonl | ImportFormat::HourlyJsonl => Layout::Lines,
            ImportFormat::OpenaiCosts
            | ImportFormat::OpenaiUsageCompletions
            | ImportFormat::AnthropicCostReport
            | ImportFormat::AnthropicUsageMessages => Layout::JsonValues,
        }
    }
}

/// How a file of a format splits into parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Lines after a header line (each part repeats the header).
    CsvLines,
    /// Lines.
    Lines,
    /// JSON values one after another (API answer pages, pretty-printed or not).
    JsonValues,
}

/// A row that cannot be imported: the file is refused whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {column}: {message}")]
pub struct ImportError {
    /// 1-based line in the file (for API answer pages: the line the page starts on).
    pub line: usize,
    /// The column (or JSON field, as a path: `data[0].results[1].amount.value`) at fault.
    pub column: String,
    /// What is wrong.
    pub message: String,
}

/// One past call read: its import id and its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    /// Stable id (the request id, or the row's hash).
    pub id: String,
    /// The record to write (`source: import`).
    pub record: RequestRecord,
}

/// What a file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Past calls: written as request records (and through them, the rollups).
    Records(Vec<ImportRow>),
    /// Spend summed per bucket: added to the rollups only.
    Spend(Vec<SpendRow>),
}

impl Parsed {
    /// Rows read.
    pub fn len(&self) -> usize {
        match self {
            Parsed::Records(r) => r.len(),
            Parsed::Spend(r) => r.len(),
        }
    }

    /// Whether the file held no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Every row of a file, or the first row that cannot be read.
pub fn read(format: ImportFormat, body: &[u8]) -> Result<Parsed, ImportError> {
    Ok(match format {
        ImportFormat::TollgateCsv => Parsed::Records(read_csv(body, records::tollgate_row)?),
        ImportFormat::LitellmCsv => Parsed::Records(read_csv(body, records::litellm_row)?),
        ImportFormat::TollgateJsonl => Parsed::Records(records::read_jsonl(body)?),
        ImportFormat::HourlyCsv => Parsed::Spend(spend::distinct(read_csv(body, spend::csv_row)?)?),
        ImportFormat::HourlyJsonl => Parsed::Spend(spend::distinct(spend::read_jsonl(body)?)?),
        ImportFormat::OpenaiCosts => Parsed::Spend(spend::distinct(openai::costs(body)?)?),
        ImportFormat::OpenaiUsageCompletions => {
            Parsed::Spend(spend::distinct(openai::usage_completions(body)?)?)
        }
        ImportFormat::AnthropicCostReport => {
            Parsed::Spend(spend::distinct(anthropic::cost_report(body)?)?)
        }
        ImportFormat::AnthropicUsageMessages => {
            Parsed::Spend(spend::distinct(anthropic::usage_messages(body)?)?)
        }
    })
}

/// A JSON value's error at `line`, naming the field: its path, or for a missing or unknown
/// field of an object, the field itself.
fn json_err(line: usize, e: &serde_path_to_error::Error<serde_json::Error>) -> ImportError {
    let message = e.inner().to_string();
    let mut path = e.path().to_string();
    for lead in ["missing field `", "unknown field `"] {
        if let Some(name) = message
            .strip_prefix(lead)
            .and_then(|rest| rest.split('`').next())
        {
            path = if path == "." {
                name.to_owned()
            } else if path.ends_with(name) {
                path
            } else {
                format!("{path}.{name}")
            };
        }
    }
    err(line, &path, message)
}

fn err(line: usize, column: &str, message: impl Into<String>) -> ImportError {
    ImportError {
        line,
        column: column.to_owned(),
        message: message.into(),
    }
}

/// Each JSON value of the file (API answer pages, one after another, pretty-printed or one a
/// line), parsed as `P`, with the line it starts on.
fn json_pages<P: serde::de::DeserializeOwned>(body: &[u8]) -> Result<Vec<(usize, P)>, ImportError> {
    let text = std::str::from_utf8(body).map_err(|_| err(1, "file", "not UTF-8"))?;
    let mut out = Vec::new();
    let values =
        serde_json::Deserializer::from_str(text).into_iter::<&serde_json::value::RawValue>();
    for raw in values {
        let raw = raw.map_err(|e| err(e.line(), "page", e.to_string()))?;
        // `raw` borrows from `text`: its offset there gives its first line.
        let offset = (raw.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
        let line = 1 + text.get(..offset).map_or(0, |t| t.matches('\n').count());
        let mut d = serde_json::Deserializer::from_str(raw.get());
        let page: P = serde_path_to_error::deserialize(&mut d)
            .map_err(|e| json_err(line + e.inner().line().saturating_sub(1), &e))?;
        out.push((line, page));
    }
    if out.is_empty() {
        return Err(err(1, "page", "the file holds no page"));
    }
    Ok(out)
}

/// The first 128 bits of a SHA-256 of `text`, as hex: a row's id when it has none.
fn hash_id(text: &str) -> String {
    let d = Sha256::digest(text.as_bytes());
    d.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// A time as RFC 3339, `YYYY-MM-DD HH:MM:SS[.f]` (UTC, LiteLLM's form) or Unix ms.
fn time_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    let naive = s.trim_end_matches(" UTC").trim_end_matches('Z');
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(naive, f) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    None
}

/// A USD decimal to nano-USD, rounded half away from zero; `None` when it does not fit.
fn decimal_to_nanos(d: Decimal) -> Option<i64> {
    let nanos = d.checked_mul(Decimal::from(1_000_000_000i64))?.round();
    i64::try_from(nanos).ok()
}

/// USD (a decimal, as written: `0.06`, or with an exponent: `6e-2`) to nano-USD, rounded
/// half away from zero; `None` when it is not a number or does not fit.
fn usd_to_nanos(s: &str) -> Option<i64> {
    let s = s.trim();
    let d = s
        .parse::<Decimal>()
        .ok()
        .or_else(|| Decimal::from_scientific(s).ok())?;
    decimal_to_nanos(d)
}

/// The columns of a CSV row by name.
struct Row<'a> {
    line: usize,
    cols: &'a HashMap<String, usize>,
    rec: &'a csv::StringRecord,
}

impl Row<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.cols
            .get(name)
            .and_then(|&i| self.rec.get(i))
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    fn need(&self, name: &str) -> Result<&str, ImportError> {
        self.get(name)
            .ok_or_else(|| err(self.line, name, "required, and empty or missing"))
    }

    fn count(&self, name: &str) -> Result<i64, ImportError> {
        match self.get(name) {
            None => Ok(0),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| err(self.line, name, format!("{v:?} is not a count"))),
        }
    }

    fn time(&self, name: &str) -> Result<i64, ImportError> {
        let v = self.need(name)?;
        time_ms(v).ok_or_else(|| {
            err(
                self.line,
                name,
                format!("{v:?} is not a time (RFC 3339, \"YYYY-MM-DD HH:MM:SS\" UTC or Unix ms)"),
            )
        })
    }

    /// The cost from `cost_nanos` or `cost_usd` (exact decimal), never negative.
    fn cost(&self) -> Result<i64, ImportError> {
        match (self.get("cost_nanos"), self.get("cost_usd")) {
            (Some(n), _) => n
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| err(self.line, "cost_nanos", format!("{n:?} is not nano-USD"))),
            (None, Some(u)) => usd_to_nanos(u)
                .filter(|n| *n >= 0)
                .ok_or_else(|| err(self.line, "cost_usd", format!("{u:?} is not a USD amount"))),
            (None, None) => Err(err(
                self.line,
                "cost_nanos",
                "cost_nanos or cost_usd is required",
            )),
        }
    }

    /// The space-separated scopes of column `scopes`.
    fn scopes(&self) -> Result<Vec<Scope>, ImportError> {
        self.get("scopes")
            .unwrap_or("")
            .split_whitespace()
            .map(|s| {
                s.parse().map_err(|e: tollgate_model::scope::ScopeError| {
                    err(self.line, "scopes", e.to_string())
                })
            })
            .collect()
    }

    fn text(&self) -> String {
        self.rec.iter().collect::<Vec<_>>().join("\u{1f}")
    }
}

fn scope(line: usize, column: &str, kind: ScopeKind, value: &str) -> Result<Scope, ImportError> {
    Scope::new(kind, value).map_err(|e| err(line, column, e.to_string()))
}

/// A provider or other label that rollup row fields hold between tabs: no whitespace.
fn label(line: usize, column: &str, v: &str) -> Result<String, ImportError> {
    if v.chars().any(char::is_whitespace) {
        return Err(err(line, column, format!("{v:?} holds whitespace")));
    }
    Ok(v.to_owned())
}

fn read_csv<T>(
    body: &[u8],
    row: fn(&Row<'_>) -> Result<T, ImportError>,
) -> Result<Vec<T>, ImportError> {
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(body);
    let headers = rdr
        .headers()
        .map_err(|e| err(1, "header", e.to_string()))?
        .clone();
    let cols: HashMap<String, usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| (h.trim().to_owned(), i))
        .collect();
    let mut out = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| err(line, "row", e.to_string()))?;
        out.push(row(&Row {
            line,
            cols: &cols,
            rec: &rec,
        })?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usd_amounts_become_exact_nanos_whatever_their_notation() {
        assert_eq!(usd_to_nanos("0.06"), Some(60_000_000));
        assert_eq!(usd_to_nanos("6e-2"), Some(60_000_000));
        assert_eq!(usd_to_nanos("1.2E-05"), Some(12_000));
        assert_eq!(usd_to_nanos("0.0000000015"), Some(2));
        assert_eq!(usd_to_nanos("99999999999"), None);
        assert_eq!(usd_to_nanos("x"), None);
    }
}
