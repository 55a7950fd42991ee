//! Spend already summed per bucket ([`SpendRow`]), and Tollgate's own file of it: the hourly
//! spend CSV and JSON lines (docs/ledger.md, "Import").
//!
//! A row adds to the rollups exactly what the rollup pass adds for the calls it sums: one row
//! per distinct scope of the row plus `global`, in its hour and its day. Its id is its
//! identity (format, bucket, scopes, provider, model), not its amounts: a second file
//! covering the same hour for the same scopes adds nothing, so overlapping exports never
//! count an hour twice.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tollgate_model::scope::Scope;

use super::{ImportError, Row, err, hash_id, json_err, label, time_ms, usd_to_nanos};
use crate::ledger::row::{self, VALUES, Values};
use crate::ledger::{Granularity, TokenCounts};

/// Spend summed over one bucket for one set of scopes, provider and model, as an import
/// reads it. Added to the rollups (`Store::import_spend`), never written as records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendRow {
    /// Stable id: `<format>:<hash of the row's identity>` (the dedupe marker).
    pub id: String,
    /// The bucket's start (UTC), Unix ms: an hour's start, or a day's.
    pub bucket_start_ms: i64,
    /// The width of the source's bucket: `Hour` adds to its hour and its day; `Day` adds to
    /// its day and to that day's first hour (so hourly reads see it too).
    pub granularity: Granularity,
    /// The scopes the spend carried (each gets a row; `global` always does).
    pub scopes: Vec<Scope>,
    /// The provider.
    pub provider: String,
    /// The model charged.
    pub model: String,
    /// Summed cost, nano-USD (never negative).
    pub cost_nanos: i64,
    /// Summed tokens by kind.
    pub tokens: TokenCounts,
    /// Calls summed (0 when the source does not count them).
    pub requests: i64,
}

impl SpendRow {
    /// The values it adds to each of its rollup rows (`row::Values` order).
    pub fn values(&self) -> Values {
        let mut v = [0i64; VALUES];
        v[0] = self.cost_nanos;
        v[1] = self.requests;
        v[3..].copy_from_slice(&self.tokens.to_array());
        v
    }

    /// What it adds, bucket by bucket (the same to each of its rows): an hour row adds its
    /// values to its hour and to its day; a day row adds them to its day, and spread evenly
    /// over the day's 24 hours (the remainder on the earliest hours, as `analytics::series`
    /// spreads day rows), so hourly reads see it and the hours sum back to the day exactly.
    pub fn additions(&self) -> Vec<(Granularity, i64, Values)> {
        let v = self.values();
        let day = Granularity::Day.bucket_start(self.bucket_start_ms);
        match self.granularity {
            Granularity::Hour => vec![
                (
                    Granularity::Hour,
                    Granularity::Hour.bucket_start(self.bucket_start_ms),
                    v,
                ),
                (Granularity::Day, day, v),
            ],
            Granularity::Day => {
                let mut out = Vec::with_capacity(HOURS + 1);
                for h in 0..HOURS {
                    let mut part = [0i64; VALUES];
                    for (p, x) in part.iter_mut().zip(v) {
                        let (base, rem) = (x.div_euclid(HOURS_I64), x.rem_euclid(HOURS_I64));
                        *p = base + i64::from((h as i64) < rem);
                    }
                    if part.iter().any(|x| *x != 0) {
                        out.push((
                            Granularity::Hour,
                            day + h as i64 * Granularity::Hour.millis(),
                            part,
                        ));
                    }
                }
                out.push((Granularity::Day, day, v));
                out
            }
        }
    }

    /// The scopes its rollup rows are keyed by: each distinct scope, then `global`.
    pub fn row_scopes(&self) -> Vec<Scope> {
        let mut out: Vec<Scope> = Vec::with_capacity(self.scopes.len() + 1);
        for s in &self.scopes {
            if *s != Scope::global() && !out.contains(s) {
                out.push(s.clone());
            }
        }
        out.push(Scope::global());
        out
    }

    /// Its rollup rows' fields (`row::field`), in [`SpendRow::row_scopes`] order.
    pub fn fields(&self) -> Vec<(Scope, String)> {
        self.row_scopes()
            .into_iter()
            .map(|s| {
                let f = row::field(&s, &self.provider, &self.model);
                (s, f)
            })
            .collect()
    }
}

const HOURS: usize = 24;
const HOURS_I64: i64 = 24;

/// Builds a row's id from its format and identity, and fills the rest.
pub(super) struct Identity<'a> {
    pub format: &'a str,
    pub parts: Vec<String>,
}

impl Identity<'_> {
    pub fn id(&self) -> String {
        format!("{}:{}", self.format, hash_id(&self.parts.join("\u{1f}")))
    }
}

/// The identity parts every row shares: bucket, width, scopes (sorted), provider, model.
pub(super) fn common_identity(r: &SpendRow) -> Vec<String> {
    let mut scopes: Vec<String> = r.row_scopes().iter().map(ToString::to_string).collect();
    scopes.sort();
    vec![
        r.bucket_start_ms.to_string(),
        format!("{:?}", r.granularity),
        scopes.join(" "),
        r.provider.clone(),
        r.model.clone(),
    ]
}

/// A bucket start checked against its width: on the hour (or day) boundary, UTC.
fn aligned(line: usize, column: &str, at_ms: i64, g: Granularity) -> Result<i64, ImportError> {
    if g.bucket_start(at_ms) != at_ms {
        let what = match g {
            Granularity::Hour => "an hour",
            Granularity::Day => "a day (00:00 UTC)",
        };
        return Err(err(
            line,
            column,
            format!("{at_ms} ms is not the start of {what}"),
        ));
    }
    Ok(at_ms)
}

fn granularity(line: usize, column: &str, v: Option<&str>) -> Result<Granularity, ImportError> {
    match v.unwrap_or("hour") {
        "hour" | "1h" => Ok(Granularity::Hour),
        "day" | "1d" => Ok(Granularity::Day),
        other => Err(err(
            line,
            column,
            format!("{other:?} is not a bucket width: hour or day"),
        )),
    }
}

/// A row of the hourly spend CSV.
pub(super) fn csv_row(r: &Row<'_>) -> Result<(usize, SpendRow), ImportError> {
    let g = granularity(r.line, "granularity", r.get("granularity"))?;
    let start = aligned(r.line, "bucket_start", r.time("bucket_start")?, g)?;
    let mut row = SpendRow {
        id: String::new(),
        bucket_start_ms: start,
        granularity: g,
        scopes: r.scopes()?,
        provider: label(r.line, "provider", r.need("provider")?)?,
        model: r.need("model")?.to_owned(),
        cost_nanos: r.cost()?,
        tokens: TokenCounts {
            uncached_input: r.count("uncached_input_tokens")?,
            cached_input: r.count("cached_input_tokens")?,
            cache_write_5m: r.count("cache_write_5m_tokens")?,
            cache_write_1h: r.count("cache_write_1h_tokens")?,
            output: r.count("output_tokens")?,
            reasoning: r.count("reasoning_tokens")?,
            images: r.count("images")?,
            audio_seconds: r.count("audio_seconds")?,
        },
        requests: r.count("requests")?,
    };
    row.id = match r.get("id") {
        Some(id) => format!("hourly:{id}"),
        None => Identity {
            format: "hourly",
            parts: common_identity(&row),
        }
        .id(),
    };
    Ok((r.line, row))
}

/// A bucket start in JSON: RFC 3339 text or Unix ms.
#[derive(Deserialize)]
#[serde(untagged)]
enum JsonTime {
    Ms(i64),
    Text(String),
}

/// A line of the hourly spend JSON lines.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRow<'a> {
    #[serde(default)]
    id: Option<String>,
    bucket_start: JsonTime,
    #[serde(default)]
    granularity: Option<String>,
    #[serde(default)]
    scopes: Vec<Scope>,
    provider: String,
    model: String,
    #[serde(default)]
    requests: i64,
    #[serde(default)]
    cost_nanos: Option<i64>,
    /// Kept as written, so `"0.06"` and `0.06` both read exactly.
    #[serde(default, borrow)]
    cost_usd: Option<&'a RawValue>,
    #[serde(default)]
    tokens: TokenCounts,
}

/// The hourly spend JSON lines: one object a line (blank lines skipped).
pub(super) fn read_jsonl(body: &[u8]) -> Result<Vec<(usize, SpendRow)>, ImportError> {
    let text = std::str::from_utf8(body).map_err(|_| err(1, "file", "not UTF-8"))?;
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let line = i + 1;
        if l.trim().is_empty() {
            continue;
        }
        let mut d = serde_json::Deserializer::from_str(l);
        let j: JsonRow<'_> =
            serde_path_to_error::deserialize(&mut d).map_err(|e| json_err(line, &e))?;
        let g = granularity(line, "granularity", j.granularity.as_deref())?;
        let at = match &j.bucket_start {
            JsonTime::Ms(ms) => Some(*ms),
            JsonTime::Text(t) => time_ms(t),
        }
        .ok_or_else(|| err(line, "bucket_start", "not RFC 3339 or Unix ms"))?;
        let cost_nanos = match (j.cost_nanos, j.cost_usd) {
            (Some(n), _) if n >= 0 => n,
            (Some(n), _) => return Err(err(line, "cost_nanos", format!("{n} is negative"))),
            (None, Some(raw)) => usd_to_nanos(raw.get().trim_matches('"'))
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    err(
                        line,
                        "cost_usd",
                        format!("{} is not a USD amount", raw.get()),
                    )
                })?,
            (None, None) => {
                return Err(err(
                    line,
                    "cost_nanos",
                    "cost_nanos or cost_usd is required",
                ));
            }
        };
        let counts = j.tokens.to_array();
        if let Some(k) = counts.iter().position(|n| *n < 0) {
            return Err(err(
                line,
                &format!("tokens.{}", TOKEN_FIELDS[k]),
                "negative",
            ));
        }
        if j.requests < 0 {
            return Err(err(line, "requests", "negative"));
        }
        if j.model.is_empty() {
            return Err(err(line, "model", "required, and empty"));
        }
        let mut row = SpendRow {
            id: String::new(),
            bucket_start_ms: aligned(line, "bucket_start", at, g)?,
            granularity: g,
            scopes: j.scopes,
            provider: label(line, "provider", &j.provider)?,
            model: j.model,
            cost_nanos,
            tokens: j.tokens,
            requests: j.requests,
        };
        row.id = match j.id {
            Some(id) => format!("hourly:{id}"),
            None => Identity {
                format: "hourly",
                parts: common_identity(&row),
            }
            .id(),
        };
        out.push((line, row));
    }
    Ok(out)
}

/// `TokenCounts`' field names in `to_array` order.
const TOKEN_FIELDS: [&str; 8] = [
    "uncached_input",
    "cached_input",
    "cache_write_5m",
    "cache_write_1h",
    "output",
    "reasoning",
    "images",
    "audio_seconds",
];

/// Refuses a file holding two different rows under one id (the same hour, scopes, provider
/// and model with other amounts: which one is right?). Rows repeated as they are stay: the
/// second is a duplicate when imported.
/// `rows` come with the line each was read at.
pub(super) fn distinct(rows: Vec<(usize, SpendRow)>) -> Result<Vec<SpendRow>, ImportError> {
    let mut seen: HashMap<&str, (usize, &SpendRow)> = HashMap::with_capacity(rows.len());
    for (line, r) in &rows {
        if let Some((first_line, first)) = seen.insert(&r.id, (*line, r))
            && first != r
        {
            return Err(err(
                *line,
                "row",
                format!(
                    "the same bucket, scopes, provider and model as line {first_line}, with other amounts"
                ),
            ));
        }
    }
    Ok(rows.into_iter().map(|(_, r)| r).collect())
}

#[cfg(test)]
mod tests {
    use super::super::{ImportFormat, Parsed, read};
    use super::*;

    fn spend(format: ImportFormat, body: &str) -> Result<Vec<SpendRow>, ImportError> {
        match read(format, body.as_bytes())? {
            Parsed::Spend(rows) => Ok(rows),
            Parsed::Records(_) => panic!("{format:?} read as records"),
        }
    }

    const CSV: &str = "bucket_start,scopes,provider,model,requests,cost_usd,uncached_input_tokens,cached_input_tokens,output_tokens\n\
        2027-01-14T09:00:00Z,team:a project:x,openai,gpt-4o,12,0.06,1000,200,300\n\
        2027-01-14T10:00:00Z,,anthropic,claude-sonnet-4-5,3,1.000000001,10,0,5\n";

    #[test]
    fn hourly_csv_rows_read_exactly_and_keep_their_ids_across_reads() {
        let rows = spend(ImportFormat::HourlyCsv, CSV).unwrap();
        assert_eq!(rows.len(), 2);
        let r = &rows[0];
        assert_eq!(r.cost_nanos, 60_000_000);
        assert_eq!(rows[1].cost_nanos, 1_000_000_001);
        assert_eq!(
            (r.requests, r.tokens.cached_input, r.tokens.output),
            (12, 200, 300)
        );
        assert_eq!(
            r.row_scopes()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["team:a", "project:x", "global"]
        );
        let adds = r.additions();
        assert_eq!(adds.len(), 2);
        assert_eq!(adds[1].1, r.bucket_start_ms - 9 * 3_600_000);
        let again = spend(ImportFormat::HourlyCsv, CSV).unwrap();
        assert_eq!(rows[0].id, again[0].id);
        assert_ne!(rows[0].id, rows[1].id);
        // The same identity with the scopes in another order is the same row.
        let swapped = CSV.replace("team:a project:x", "project:x team:a");
        assert_eq!(
            spend(ImportFormat::HourlyCsv, &swapped).unwrap()[0].id,
            rows[0].id
        );
    }

    #[test]
    fn hourly_json_lines_read_string_and_number_costs_exactly() {
        let body = r#"{"bucket_start":"2027-01-14T09:00:00Z","scopes":["team:a"],"provider":"openai","model":"gpt-4o","requests":2,"cost_usd":"0.1","tokens":{"uncached_input":5}}
{"bucket_start":1799884800000,"granularity":"day","provider":"openai","model":"gpt-4o","cost_usd":0.3}"#;
        let rows = spend(ImportFormat::HourlyJsonl, body).unwrap();
        assert_eq!(rows[0].cost_nanos, 100_000_000);
        assert_eq!(rows[1].cost_nanos, 300_000_000);
        assert_eq!(rows[1].granularity, Granularity::Day);
        // The day's $0.30 over its 24 hours: 12 500 000 nanos each, summing back exactly.
        let adds = rows[1].additions();
        assert_eq!(adds.len(), 25);
        assert_eq!(
            (adds[0].0, adds[0].1),
            (Granularity::Hour, 1_799_884_800_000)
        );
        assert_eq!(adds[0].2[0], 12_500_000);
        let hours: i64 = adds[..24].iter().map(|a| a.2[0]).sum();
        assert_eq!((hours, adds[24].2[0]), (300_000_000, 300_000_000));
    }

    #[test]
    fn bad_rows_name_their_line_and_field() {
        let cases = [
            (ImportFormat::HourlyCsv, CSV.replace("09:00:00Z", "09:30:00Z"), 2, "bucket_start"),
            (ImportFormat::HourlyCsv, CSV.replace(",0.06,", ",-0.06,"), 2, "cost_usd"),
            (ImportFormat::HourlyCsv, CSV.replace("model,requests", "model,requests,granularity").replace(",300\n", ",300,week\n"), 2, "granularity"),
            (ImportFormat::HourlyCsv, CSV.replace(",12,", ",-1,"), 2, "requests"),
            (ImportFormat::HourlyJsonl, "{}\n{\"bucket_start\":0,\"provider\":\"p\",\"model\":\"m\",\"cost_nanos\":1,\"costs\":1}".into(), 1, "bucket_start"),
            (ImportFormat::HourlyJsonl, "{\"bucket_start\":0,\"provider\":\"p\",\"model\":\"m\",\"cost_nanos\":1,\"costs\":1}".into(), 1, "costs"),
            (ImportFormat::HourlyJsonl, "{\"bucket_start\":0,\"provider\":\"p\",\"model\":\"m\",\"cost_usd\":\"-1\"}".into(), 1, "cost_usd"),
            (ImportFormat::HourlyJsonl, "{\"bucket_start\":0,\"provider\":\"p\",\"model\":\"m\",\"cost_nanos\":1,\"tokens\":{\"output\":-4}}".into(), 1, "tokens.output"),
        ];
        for (format, body, line, column) in cases {
            let e = spend(format, &body).unwrap_err();
            assert_eq!((e.line, e.column.as_str()), (line, column), "{body}: {e}");
        }
    }

    #[test]
    fn a_file_with_two_amounts_for_one_row_is_refused_and_a_repeat_is_kept() {
        let first = CSV.lines().nth(1).unwrap();
        let repeated = format!("{CSV}{first}\n");
        assert_eq!(spend(ImportFormat::HourlyCsv, &repeated).unwrap().len(), 3);
        let conflicting = format!("{CSV}{}\n", first.replace(",0.06,", ",0.07,"));
        let e = spend(ImportFormat::HourlyCsv, &conflicting).unwrap_err();
        assert_eq!((e.line, e.column.as_str()), (4, "row"), "{e}");
    }
}
