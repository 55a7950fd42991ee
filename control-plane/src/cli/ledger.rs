//! `tollgate export` (records or rollups, streamed to a file or stdout, with a progress bar
//! on stderr) and `tollgate import FILE` (sent in parts of at most [`PART_BYTES`], each a
//! whole number of lines with the CSV header repeated, or of whole JSON values for API
//! answer pages).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use super::Output;
use crate::ledger::import::{ImportFormat, Layout};

/// Largest part of a file one import request carries (the API takes 64 MiB).
pub const PART_BYTES: usize = 32 << 20;

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum What {
    /// Request records, oldest first.
    Records,
    /// Rollup rows (hourly, or daily with --granularity day).
    Rollups,
}

/// `tollgate export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Records or rollups.
    #[arg(value_enum)]
    what: What,
    /// Start, RFC 3339 (inclusive).
    #[arg(long)]
    from: String,
    /// End, RFC 3339 (exclusive).
    #[arg(long)]
    to: String,
    /// csv or jsonl.
    #[arg(long, default_value = "csv")]
    format: String,
    /// Rollups only: hour or day.
    #[arg(long)]
    granularity: Option<String>,
    /// Write here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// `tollgate import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file (CSV, JSON lines, or API answer pages).
    file: PathBuf,
    /// Past calls: tollgate_csv, tollgate_jsonl, litellm_csv. Spend per hour or day (rollups
    /// only): hourly_csv, hourly_jsonl, openai_costs, openai_usage_completions,
    /// anthropic_cost_report, anthropic_usage_messages (docs/ledger.md, Import).
    #[arg(long, default_value = "tollgate_csv")]
    format: String,
}

fn token() -> String {
    std::env::var("TOLLGATE_ADMIN_TOKEN")
        .ok()
        .and_then(|t| t.split(',').next().map(str::to_owned))
        .unwrap_or_default()
}

/// A client with no overall timeout (an export may stream for minutes), only a read timeout.
fn http() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| e.to_string())
}

async fn api_error(resp: reqwest::Response) -> String {
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    let e = &v["error"];
    format!(
        "{status} {}: {} (field {})",
        e["code"].as_str().unwrap_or("error"),
        e["message"].as_str().unwrap_or_default(),
        e["field"].as_str().unwrap_or("-")
    )
}

fn enc(s: &str) -> String {
    s.replace('%', "%25")
        .replace('+', "%2B")
        .replace(':', "%3A")
        .replace('&', "%26")
}

/// Streams an export to `--out` or stdout.
pub async fn export(url: &str, a: ExportArgs) -> Result<(), String> {
    let path = match a.what {
        What::Records => "records",
        What::Rollups => "rollups",
    };
    let mut q = format!(
        "{}/v1/ledger/{path}?from={}&to={}&format={}",
        url.trim_end_matches('/'),
        enc(&a.from),
        enc(&a.to),
        enc(&a.format)
    );
    if let Some(g) = &a.granularity {
        q.push_str(&format!("&granularity={}", enc(g)));
    }
    let mut resp = http()?
        .get(q)
        .bearer_auth(token())
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(api_error(resp).await);
    }
    let mut sink: Box<dyn Write> = match &a.out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} {pos} lines, {bytes} ({per_sec} lines) {elapsed}",
        ) {
            b.set_style(style);
        }
        b.enable_steady_tick(Duration::from_millis(200));
        b
    };
    let mut bytes = 0u64;
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("export cut short: {e}"))?
    {
        sink.write_all(&chunk).map_err(|e| e.to_string())?;
        bytes += chunk.len() as u64;
        bar.inc(chunk.iter().filter(|&&b| b == b'\n').count() as u64);
        bar.set_message(bytes.to_string());
    }
    sink.flush().map_err(|e| e.to_string())?;
    bar.finish();
    Ok(())
}

/// The file's parts for `layout`.
fn parts_of(text: &str, layout: Layout) -> Vec<String> {
    match layout {
        Layout::CsvLines => parts(text, true),
        Layout::Lines => parts(text, false),
        Layout::JsonValues => json_parts(text),
    }
}

/// Whole JSON values (API answer pages), at most [`PART_BYTES`] each (a longer one goes
/// alone). A file that is not a run of JSON values goes whole: the API names what is wrong.
fn json_parts(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut part = String::new();
    for v in serde_json::Deserializer::from_str(text).into_iter::<&serde_json::value::RawValue>() {
        let Ok(v) = v else {
            return vec![text.to_owned()];
        };
        if !part.is_empty() && part.len() + v.get().len() + 1 > PART_BYTES {
            out.push(std::mem::take(&mut part));
        }
        part.push_str(v.get());
        part.push('\n');
    }
    if !part.is_empty() {
        out.push(part);
    }
    out
}

/// The file's parts: whole lines, at most [`PART_BYTES`] each (a longer line goes alone),
/// each CSV part starting with the header.
fn parts(text: &str, csv: bool) -> Vec<String> {
    let mut lines = text.lines();
    let header = if csv {
        lines.next().map(str::to_owned)
    } else {
        None
    };
    let start = || header.clone().map(|h| h + "\n").unwrap_or_default();
    let mut out = Vec::new();
    let mut part = start();
    let mut rows = 0usize;
    for l in lines {
        if rows > 0 && part.len() + l.len() + 1 > PART_BYTES {
            out.push(std::mem::replace(&mut part, start()));
            rows = 0;
        }
        part.push_str(l);
        part.push('\n');
        rows += 1;
    }
    if rows > 0 {
        out.push(part);
    }
    out
}

/// Imports a file, part by part; prints the totals.
pub async fn import(url: &str, out: Output, a: ImportArgs) -> Result<(), String> {
    let text =
        std::fs::read_to_string(&a.file).map_err(|e| format!("{}: {e}", a.file.display()))?;
    let format: ImportFormat =
        serde_json::from_value(Value::String(a.format.clone())).map_err(|_| {
            format!(
                "--format {:?} is not one of {}",
                a.format,
                ImportFormat::NAMES
            )
        })?;
    let client = http()?;
    let (mut imported, mut duplicates, mut without_cost, mut too_old) = (0u64, 0u64, 0u64, 0u64);
    for part in parts_of(&text, format.layout()) {
        let resp = client
            .post(format!(
                "{}/v1/ledger/import?format={}",
                url.trim_end_matches('/'),
                enc(&a.format)
            ))
            .bearer_auth(token())
            .header("content-type", "text/csv")
            .body(part)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(api_error(resp).await);
        }
        let v: Value = resp.json().await.map_err(|e| e.to_string())?;
        imported += v["imported"].as_u64().unwrap_or(0);
        duplicates += v["duplicates"].as_u64().unwrap_or(0);
        without_cost += v["rows_without_cost"].as_u64().unwrap_or(0);
        too_old += v["too_old"].as_u64().unwrap_or(0);
    }
    match out {
        Output::Json => {
            // The API's summary, added up over the parts (zero counts left out as it does).
            let mut summary = serde_json::json!({ "imported": imported, "duplicates": duplicates });
            for (k, n) in [("rows_without_cost", without_cost), ("too_old", too_old)] {
                if n > 0 {
                    summary[k] = n.into();
                }
            }
            println!("{summary}");
        }
        Output::Table => {
            println!("imported {imported}, already imported {duplicates}");
            if without_cost > 0 {
                println!(
                    "{without_cost} rows carry tokens but no cost: import the cost answer for the same days for the spend"
                );
            }
            if too_old > 0 {
                println!(
                    "{too_old} rows not written: older than the ledger keeps (daily_retention_days)"
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_answer_pages_split_between_whole_pages() {
        let pretty =
            "{\n  \"object\": \"page\",\n  \"data\": []\n}\n{\"object\":\"page\",\"data\":[]}\n";
        let p = json_parts(pretty);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].matches("\"page\"").count(), 2);
        // Not JSON: sent as it is, for the API to say where.
        assert_eq!(json_parts("{oops"), vec!["{oops".to_owned()]);
    }

    #[test]
    fn csv_parts_repeat_the_header_and_keep_whole_lines() {
        let p = parts("h\na\nb\n", true);
        assert_eq!(p, vec!["h\na\nb\n".to_owned()]);
        assert!(parts("h\n", true).is_empty());
        assert_eq!(parts("{}\n{}\n", false), vec!["{}\n{}\n".to_owned()]);
    }
}
