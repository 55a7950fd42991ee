//! `tollgate price import` (LiteLLM's map into the service's price overrides, through
//! `POST /v1/prices/import`, with a dry run) and `tollgate price build-table` (the shipped
//! imported table, offline: what `scripts/refresh-prices.sh` runs).

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use tollgate_model::PriceTable;
use tollgate_model::pricing::{PriceFileDto, SCHEMA_VERSION, read_price_file};

use super::Output;
use super::client::Client;
use crate::prices::coverage::{Coverage, coverage};
use crate::prices::litellm::{ImportSource, convert};
use crate::prices::merge::{MergeReport, merge};

/// Entries per request: a whole import stays far under the service's body limit.
const CHUNK: usize = 200;

/// Options of `tollgate price import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// LiteLLM's `model_prices_and_context_window.json`.
    pub file: PathBuf,
    /// Show what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Where the file came from, recorded in each entry's `source` (`litellm==1.110.2`).
    #[arg(long, default_value = "litellm")]
    pub package: String,
}

/// Options of `tollgate price build-table`.
#[derive(Debug, clap::Args)]
pub struct BuildTableArgs {
    /// LiteLLM's `model_prices_and_context_window.json`.
    pub file: PathBuf,
    /// The package and version it came from (`litellm==1.110.2`).
    #[arg(long)]
    pub package: String,
    /// Its path inside the package.
    #[arg(long)]
    pub member: String,
    /// The imported table to merge into (its price history is kept) and to write.
    #[arg(long, default_value = "model/prices/imported.json")]
    pub table: PathBuf,
    /// The day the map was read (default: today, UTC).
    #[arg(long)]
    pub date: Option<NaiveDate>,
}

fn today() -> NaiveDate {
    DateTime::<Utc>::from(std::time::SystemTime::now()).date_naive()
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn file_label(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    )
}

/// Converts `args.file` and posts it in chunks; prints what changed (or would).
pub async fn import(client: &Client, args: ImportArgs, output: Output) -> Result<(), String> {
    let text = read(&args.file)?;
    let source = ImportSource {
        package: args.package,
        file: file_label(&args.file),
        date: today(),
    };
    let converted = convert(&text, &source).map_err(|e| e.to_string())?;
    let mut total = MergeReport {
        dry_run: args.dry_run,
        ..MergeReport::default()
    };
    for chunk in converted.models.chunks(CHUNK) {
        let body = serde_json::json!({ "dry_run": args.dry_run, "models": chunk });
        let answer = client
            .send(reqwest::Method::POST, "/v1/prices/import", Some(body), None)
            .await?;
        let part: MergeReport =
            serde_json::from_value(answer).map_err(|e| format!("unexpected answer: {e}"))?;
        total.added.extend(part.added);
        total.changed.extend(part.changed);
        total.unchanged.extend(part.unchanged);
        total.curated.extend(part.curated);
        total.same_as_curated.extend(part.same_as_curated);
        total.invalid.extend(part.invalid);
    }
    match output {
        Output::Json => {
            let json = serde_json::to_string_pretty(&total).map_err(|e| e.to_string())?;
            println!("{json}");
        }
        Output::Table => print!("{}", render(&total, converted.skipped.len())),
    }
    Ok(())
}

/// The report for people: the changes one per line, then the counts.
fn render(r: &MergeReport, skipped: usize) -> String {
    let (add, change) = if r.dry_run {
        ("would add", "would change")
    } else {
        ("added", "changed")
    };
    let mut out = String::new();
    for id in &r.added {
        out.push_str(&format!("{add:<13} {id}\n"));
    }
    for id in &r.changed {
        out.push_str(&format!("{change:<13} {id}\n"));
    }
    for line in &r.invalid {
        out.push_str(&format!("{:<13} {line}\n", "invalid"));
    }
    out.push_str(&format!(
        "{} {}, {} {}, {} unchanged, {} left to Tollgate's own entries, {} priced alike by them, {} invalid, {} not importable{}\n",
        r.added.len(),
        add,
        r.changed.len(),
        change,
        r.unchanged.len(),
        r.curated.len(),
        r.same_as_curated.len(),
        r.invalid.len(),
        skipped,
        if r.dry_run { " (dry run: nothing written)" } else { "" },
    ));
    out
}

/// Rebuilds the imported table from LiteLLM's map, merged under the shipped table into the
/// table's previous content; prints the merge and the coverage before and after.
pub fn build_table(args: BuildTableArgs) -> Result<(), String> {
    let text = read(&args.file)?;
    let date = args.date.unwrap_or_else(today);
    let source = ImportSource {
        package: args.package.clone(),
        file: args.member,
        date,
    };
    let converted = convert(&text, &source).map_err(|e| e.to_string())?;
    let shipped = PriceTable::shipped().map_err(|e| e.to_string())?;
    let previous = match std::fs::read_to_string(&args.table) {
        Ok(t) => read_price_file(&args.table.display().to_string(), &t)
            .map_err(|e| e.to_string())?
            .1
            .into_iter()
            .map(|m| m.entry().clone())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("{}: {e}", args.table.display())),
    };
    let merged = merge(&shipped, &previous, converted.models, date);
    let file = PriceFileDto {
        schema_version: SCHEMA_VERSION,
        table_version: format!("{date} {}", args.package),
        currency: "USD".to_owned(),
        default_max_output_tokens: shipped.default_max_output_tokens(""),
        models: merged.models,
    };
    let mut json = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?;
    json.push('\n');
    // The written table must load as the control plane will load it.
    let (_, layer) = read_price_file("new imported table", &json).map_err(|e| e.to_string())?;
    std::fs::write(&args.table, &json).map_err(|e| format!("{}: {e}", args.table.display()))?;
    print!("{}", render(&merged.report, converted.skipped.len()));
    let before = coverage(&text, &shipped).map_err(|e| e.to_string())?;
    let mut authority = shipped;
    authority.add_layer(layer);
    let after = coverage(&text, &authority).map_err(|e| e.to_string())?;
    let (bp, bt) = before.total();
    let (ap, at) = after.total();
    println!(
        "coverage of {}'s chat models (main providers): shipped alone {bp}/{bt} = {} %, with the imported table {ap}/{at} = {} %",
        args.package,
        Coverage::percent(bp, bt),
        Coverage::percent(ap, at)
    );
    print!("{}", after.render(&before));
    Ok(())
}
