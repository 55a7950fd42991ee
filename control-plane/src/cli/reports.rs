//! `tollgate report`, `chargeback`, `invoice` and `profile`: clients of `/v1/reports/*` and
//! `/v1/profiles`, printed as tables or as the API's JSON.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;

use super::Output;
use super::client::Client;
use super::output::{cell, table};

/// `tollgate report`: `GET /v1/reports/spend`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Range start: RFC 3339 or YYYY-MM-DD (midnight in --tz).
    #[arg(long)]
    from: String,
    /// Range end (exclusive).
    #[arg(long)]
    to: String,
    /// IANA time zone of dates and buckets.
    #[arg(long)]
    tz: Option<String>,
    /// hour, day, week or month.
    #[arg(long)]
    bucket: Option<String>,
    /// Comma-separated: org, team, project, user, key, tag, model, provider.
    #[arg(long)]
    group_by: Option<String>,
    /// Comma-separated scopes every call must carry.
    #[arg(long)]
    scope: Option<String>,
    /// Comma-separated models.
    #[arg(long)]
    model: Option<String>,
    /// Comma-separated providers.
    #[arg(long)]
    provider: Option<String>,
    /// Keep the N costliest groups, the rest as "other".
    #[arg(long)]
    top: Option<usize>,
}

/// `tollgate chargeback`: `GET /v1/reports/chargeback`.
#[derive(Debug, Args)]
pub struct ChargebackArgs {
    /// Period start.
    #[arg(long)]
    from: String,
    /// Period end (exclusive).
    #[arg(long)]
    to: String,
    /// team, project, department, tag, org, user or key.
    #[arg(long)]
    by: String,
    /// With --by tag: only tags with this prefix.
    #[arg(long)]
    tag_prefix: Option<String>,
    /// unallocated (a row of its own) or proportional (shared out).
    #[arg(long)]
    allocation: Option<String>,
    /// IANA time zone of dates.
    #[arg(long)]
    tz: Option<String>,
}

/// `tollgate invoice`: `GET /v1/reports/invoice`.
#[derive(Debug, Args)]
pub struct InvoiceArgs {
    /// The payer scope (team:payments).
    #[arg(long)]
    scope: String,
    /// Period start.
    #[arg(long)]
    from: String,
    /// Period end (exclusive).
    #[arg(long)]
    to: String,
    /// IANA time zone the dates are printed in.
    #[arg(long)]
    tz: Option<String>,
    /// Markup percent on each line.
    #[arg(long)]
    markup_pct: Option<String>,
    /// Fixed fee, USD.
    #[arg(long)]
    fee_usd: Option<String>,
    /// pay_as_you_go or prepaid.
    #[arg(long)]
    billing: Option<String>,
    /// Prepaid credit before this invoice, USD.
    #[arg(long)]
    credit_usd: Option<String>,
    /// Write the invoice as html or pdf to --out instead of printing it.
    #[arg(long, requires = "out")]
    format: Option<String>,
    /// The file --format writes.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `tollgate profile …`.
#[derive(Debug, Subcommand)]
pub enum ProfileCmd {
    /// List profiles (shipped tiers and custom).
    List,
    /// Show a profile and the budgets that use it.
    Show {
        /// Profile id.
        id: String,
    },
    /// Create or replace a profile from a JSON file (`-` for stdin).
    Set {
        /// Profile id.
        id: String,
        /// {"id":…, "description":…, "settings":{…}}.
        #[arg(long, short)]
        file: PathBuf,
    },
    /// Delete a custom profile, or restore a changed tier as shipped.
    Delete {
        /// Profile id.
        id: String,
    },
}

pub(super) fn path_with(path: &str, pairs: &[(&str, Option<&str>)]) -> Result<String, String> {
    let present = pairs.iter().filter_map(|(k, v)| v.map(|v| (*k, v)));
    let url = reqwest::Url::parse_with_params("http://x/", present).map_err(|e| e.to_string())?;
    Ok(match url.query() {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_owned(),
    })
}

pub(super) fn usd(nanos: &Value) -> String {
    nanos.as_i64().map_or_else(
        || "-".into(),
        |n| tollgate_model::NanoUsd(n).to_usd().to_string(),
    )
}

pub(super) fn print(out: Output, value: &Value, as_table: impl Fn(&Value) -> String) {
    match out {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        Output::Table => print!("{}", as_table(value)),
    }
}

fn report_table(v: &Value) -> String {
    let keys: Vec<String> = v["group_by"]
        .as_array()
        .map(|a| a.iter().map(cell).collect())
        .unwrap_or_default();
    let mut headers = vec!["BUCKET".to_owned()];
    headers.extend(keys.iter().map(|k| k.to_uppercase()));
    headers.extend(["COST_USD", "REQUESTS", "INPUT_TOKENS", "OUTPUT_TOKENS"].map(String::from));
    let mut rows = Vec::new();
    for r in v["rows"].as_array().into_iter().flatten() {
        let mut row = vec![cell(&r["bucket_start"])];
        for k in &keys {
            row.push(if r["other"] == true {
                "(other)".into()
            } else {
                cell(&r["group"][k.as_str()])
            });
        }
        row.push(cell(&r["cost_usd"]));
        row.push(cell(&r["requests"]));
        row.push(cell(&r["tokens"]["uncached_input"]));
        row.push(cell(&r["tokens"]["output"]));
        rows.push(row);
    }
    let mut total = vec!["TOTAL".to_owned()];
    total.extend(keys.iter().map(|_| String::new()));
    total.push(cell(&v["total_usd"]));
    total.push(cell(&v["total"]["requests"]));
    total.push(cell(&v["total"]["tokens"]["uncached_input"]));
    total.push(cell(&v["total"]["tokens"]["output"]));
    rows.push(total);
    table(&headers, &rows)
}

fn chargeback_table(v: &Value) -> String {
    let headers = ["KEY", "DIRECT_USD", "SHARED_USD", "COST_USD", "REQUESTS"].map(String::from);
    let mut rows: Vec<Vec<String>> = v["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            vec![
                if r["key"].is_null() {
                    "(unallocated)".into()
                } else {
                    cell(&r["key"])
                },
                usd(&r["direct_nanos"]),
                usd(&r["shared_nanos"]),
                cell(&r["cost_usd"]),
                cell(&r["requests"]),
            ]
        })
        .collect();
    rows.push(vec![
        "TOTAL".into(),
        String::new(),
        String::new(),
        cell(&v["total_usd"]),
        String::new(),
    ]);
    table(&headers, &rows)
}

fn invoice_table(v: &Value) -> String {
    let headers = [
        "MODEL",
        "PROVIDER",
        "REQUESTS",
        "COST_USD",
        "MARKUP_USD",
        "AMOUNT_USD",
    ]
    .map(String::from);
    let rows: Vec<Vec<String>> = v["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            vec![
                cell(&l["model"]),
                cell(&l["provider"]),
                cell(&l["requests"]),
                usd(&l["cost_nanos"]),
                usd(&l["markup_nanos"]),
                cell(&l["amount_usd"]),
            ]
        })
        .collect();
    let mut out = format!(
        "Invoice {} for {}, {} to {}\n",
        cell(&v["number"]),
        cell(&v["payer"]),
        cell(&v["period_start"]),
        cell(&v["period_end"])
    );
    out.push_str(&table(&headers, &rows));
    out.push_str(&format!("subtotal    {}\n", usd(&v["subtotal_nanos"])));
    out.push_str(&format!("fee         {}\n", usd(&v["fee_nanos"])));
    out.push_str(&format!("total       {}\n", cell(&v["total_usd"])));
    if !v["balance_nanos"].is_null() {
        out.push_str(&format!("credit      {}\n", usd(&v["credit_nanos"])));
        out.push_str(&format!("balance     {}\n", usd(&v["balance_nanos"])));
    }
    out.push_str(&format!("amount due  {}\n", cell(&v["amount_due_usd"])));
    out
}

fn profiles_table(v: &Value) -> String {
    let headers = [
        "ID",
        "ORIGIN",
        "LIMIT_USD",
        "PERIOD",
        "ENFORCEMENT",
        "BUDGETS",
    ]
    .map(String::from);
    let list: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        one => vec![one],
    };
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|p| {
            vec![
                cell(&p["id"]),
                cell(&p["origin"]),
                cell(&p["settings"]["limit_usd"]),
                cell(&p["settings"]["period"]),
                cell(&p["settings"]["enforcement"]),
                p["budgets"].as_array().map_or_else(
                    || "-".into(),
                    |b| b.iter().map(cell).collect::<Vec<_>>().join(","),
                ),
            ]
        })
        .collect();
    table(&headers, &rows)
}

/// Runs `tollgate report`.
pub async fn report(c: &Client, out: Output, a: ReportArgs) -> Result<(), String> {
    let top = a.top.map(|t| t.to_string());
    let path = path_with(
        "/v1/reports/spend",
        &[
            ("from", Some(&a.from)),
            ("to", Some(&a.to)),
            ("tz", a.tz.as_deref()),
            ("bucket", a.bucket.as_deref()),
            ("group_by", a.group_by.as_deref()),
            ("scope", a.scope.as_deref()),
            ("model", a.model.as_deref()),
            ("provider", a.provider.as_deref()),
            ("top", top.as_deref()),
        ],
    )?;
    let v = c.send(Method::GET, &path, None, None).await?;
    print(out, &v, report_table);
    Ok(())
}

/// Runs `tollgate chargeback`.
pub async fn chargeback(c: &Client, out: Output, a: ChargebackArgs) -> Result<(), String> {
    let path = path_with(
        "/v1/reports/chargeback",
        &[
            ("from", Some(&a.from)),
            ("to", Some(&a.to)),
            ("tz", a.tz.as_deref()),
            ("by", Some(&a.by)),
            ("tag_prefix", a.tag_prefix.as_deref()),
            ("allocation", a.allocation.as_deref()),
        ],
    )?;
    let v = c.send(Method::GET, &path, None, None).await?;
    print(out, &v, chargeback_table);
    Ok(())
}

/// Runs `tollgate invoice`.
pub async fn invoice(c: &Client, out: Output, a: InvoiceArgs) -> Result<(), String> {
    let path = path_with(
        "/v1/reports/invoice",
        &[
            ("scope", Some(&a.scope)),
            ("from", Some(&a.from)),
            ("to", Some(&a.to)),
            ("tz", a.tz.as_deref()),
            ("markup_pct", a.markup_pct.as_deref()),
            ("fee_usd", a.fee_usd.as_deref()),
            ("billing", a.billing.as_deref()),
            ("credit_usd", a.credit_usd.as_deref()),
            ("format", a.format.as_deref()),
        ],
    )?;
    if let (Some(format), Some(file)) = (&a.format, &a.out) {
        let bytes = c.get_bytes(&path).await?;
        std::fs::write(file, &bytes).map_err(|e| format!("{}: {e}", file.display()))?;
        eprintln!(
            "{format} invoice written to {} ({} bytes)",
            file.display(),
            bytes.len()
        );
        return Ok(());
    }
    let v = c.send(Method::GET, &path, None, None).await?;
    print(out, &v, invoice_table);
    Ok(())
}

/// Runs `tollgate profile …`.
pub async fn profile(c: &Client, out: Output, cmd: ProfileCmd) -> Result<(), String> {
    let enc = |s: &str| s.replace('/', "%2F");
    let v = match cmd {
        ProfileCmd::List => c.send(Method::GET, "/v1/profiles", None, None).await?,
        ProfileCmd::Show { id } => {
            c.send(
                Method::GET,
                &format!("/v1/profiles/{}", enc(&id)),
                None,
                None,
            )
            .await?
        }
        ProfileCmd::Set { id, file } => {
            let body = super::read_json(&file)?;
            c.send(
                Method::PUT,
                &format!("/v1/profiles/{}", enc(&id)),
                Some(body),
                None,
            )
            .await?
        }
        ProfileCmd::Delete { id } => {
            c.send(
                Method::DELETE,
                &format!("/v1/profiles/{}", enc(&id)),
                None,
                None,
            )
            .await?;
            if out == Output::Table {
                println!("deleted");
            }
            return Ok(());
        }
    };
    print(out, &v, profiles_table);
    Ok(())
}
