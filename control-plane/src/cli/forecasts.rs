//! `tollgate forecast` and `tollgate recommend`: clients of `/v1/forecasts` and
//! `/v1/recommendations`, printed as tables or as the API's JSON.

use clap::Args;
use reqwest::Method;
use serde_json::Value;

use super::Output;
use super::client::Client;
use super::output::{cell, table};
use super::reports::{path_with, print, usd};

/// `tollgate forecast`: `GET /v1/forecasts[/{budget}]`.
#[derive(Debug, Args)]
pub struct ForecastArgs {
    /// One budget's forecast (default: every budget).
    budget: Option<String>,
    /// A scope (team:a, global): its own forecast and its budgets'.
    #[arg(long, conflicts_with = "budget")]
    scope: Option<String>,
    /// With --scope: daily, weekly, monthly (default), quarterly or yearly.
    #[arg(long, requires = "scope")]
    period: Option<String>,
    /// With --scope: the IANA zone of the period (default UTC).
    #[arg(long, requires = "scope")]
    timezone: Option<String>,
}

fn round2(v: &Value) -> String {
    v.as_f64().map_or_else(|| "-".into(), |x| format!("{x:.2}"))
}

fn row(name: String, f: &Value) -> Vec<String> {
    let e = &f["end_of_period"];
    vec![
        name,
        usd(&f["spent_nanos"]),
        usd(&f["limit_nanos"]),
        round2(&e["point_usd"]),
        format!(
            "{}-{}",
            round2(&e["p80"]["low_usd"]),
            round2(&e["p80"]["high_usd"])
        ),
        format!(
            "{}-{}",
            round2(&e["p95"]["low_usd"]),
            round2(&e["p95"]["high_usd"])
        ),
        cell(&f["runout"]["status"]),
        cell(&f["runout"]["at"]),
        round2(&f["burn_rate"]["last_24h_usd_per_hour"]),
        format!(
            "{}{}",
            cell(&f["method"]),
            if f["short_history"] == true {
                " (short history)"
            } else {
                ""
            }
        ),
        round2(&f["backtest"]["smape_pct"]),
    ]
}

fn forecast_table(v: &Value) -> String {
    let headers = [
        "BUDGET",
        "SPENT_USD",
        "LIMIT_USD",
        "END_USD",
        "80%",
        "95%",
        "RUNOUT",
        "RUNOUT_AT",
        "USD_PER_HOUR",
        "METHOD",
        "SMAPE_%",
    ]
    .map(String::from);
    let mut rows = Vec::new();
    if v["scope"].is_object() {
        let s = &v["scope"];
        rows.push(row(
            format!("{} ({})", cell(&s["scope"]), cell(&s["period"])),
            &s["forecast"],
        ));
    }
    let one = [v.clone()];
    let budgets = match v["budgets"].as_array() {
        Some(b) => b.as_slice(),
        None => &one,
    };
    for b in budgets {
        rows.push(row(cell(&b["budget_id"]), &b["forecast"]));
    }
    table(&headers, &rows)
}

/// Runs `tollgate forecast`.
pub async fn forecast(c: &Client, out: Output, a: ForecastArgs) -> Result<(), String> {
    let path = match &a.budget {
        Some(id) => format!("/v1/forecasts/{id}"),
        None => path_with(
            "/v1/forecasts",
            &[
                ("scope", a.scope.as_deref()),
                ("period", a.period.as_deref()),
                ("timezone", a.timezone.as_deref()),
            ],
        )?,
    };
    let v = c.send(Method::GET, &path, None, None).await?;
    print(out, &v, forecast_table);
    Ok(())
}

/// `tollgate recommend`: `GET /v1/recommendations`.
#[derive(Debug, Args)]
pub struct RecommendArgs {
    /// The scope whose spend is examined (default: every call).
    #[arg(long)]
    scope: Option<String>,
    /// Whole UTC days before today to examine (1-90, default 30).
    #[arg(long)]
    days: Option<i64>,
}

fn recommend_table(v: &Value) -> String {
    let mut out = format!(
        "{} from {} to {}\n",
        cell(&v["scope"]),
        cell(&v["from"]),
        cell(&v["to"])
    );
    section(
        &mut out,
        "cheaper model of the same class",
        &[
            "MODEL",
            "INSTEAD",
            "CLASS",
            "REQUESTS",
            "COST_USD",
            "THEN_USD",
            "SAVING_USD",
        ],
        &v["cheaper_models"],
        |c| {
            vec![
                format!("{} ({})", cell(&c["model"]), cell(&c["provider"])),
                cell(&c["alternative"]),
                cell(&c["class"]),
                cell(&c["requests"]),
                usd(&c["repriced_cost_nanos"]),
                usd(&c["alternative_cost_nanos"]),
                usd(&c["saving_nanos"]),
            ]
        },
    );
    section(
        &mut out,
        "prompt caching (large inputs, no cache reads)",
        &["MODEL", "REQUESTS", "AVG_INPUT_TOKENS", "SAVING_UP_TO_USD"],
        &v["prompt_cache"],
        |c| {
            vec![
                format!("{} ({})", cell(&c["model"]), cell(&c["provider"])),
                cell(&c["requests"]),
                cell(&c["avg_input_tokens_per_request"]),
                usd(&c["max_saving_nanos"]),
            ]
        },
    );
    section(
        &mut out,
        "budgets running out before their period ends",
        &[
            "BUDGET",
            "SPENT_USD",
            "LIMIT_USD",
            "END_USD",
            "RUNOUT_AT",
            "PERIOD_END",
        ],
        &v["budgets_running_out"],
        |b| {
            vec![
                cell(&b["budget_id"]),
                usd(&b["spent_nanos"]),
                usd(&b["limit_nanos"]),
                round2(&b["forecast_end_usd"]),
                cell(&b["runout_at"]),
                cell(&b["period_end"]),
            ]
        },
    );
    section(
        &mut out,
        "budgets never used",
        &["BUDGET", "NO_SPEND_FOR_DAYS"],
        &v["unused_budgets"],
        |b| vec![cell(&b["budget_id"]), cell(&b["checked_days"])],
    );
    out
}

/// Appends "\n<title>:\n" and a table with a row per element of the array `items` (headers
/// alone when it is empty or absent).
fn section(
    out: &mut String,
    title: &str,
    headers: &[&str],
    items: &Value,
    row: impl Fn(&Value) -> Vec<String>,
) {
    let rows: Vec<Vec<String>> = items.as_array().into_iter().flatten().map(row).collect();
    out.push_str(&format!("\n{title}:\n"));
    out.push_str(&table(headers, &rows));
}

/// Runs `tollgate recommend`.
pub async fn recommend(c: &Client, out: Output, a: RecommendArgs) -> Result<(), String> {
    let days = a.days.map(|d| d.to_string());
    let path = path_with(
        "/v1/recommendations",
        &[("scope", a.scope.as_deref()), ("days", days.as_deref())],
    )?;
    let v = c.send(Method::GET, &path, None, None).await?;
    print(out, &v, recommend_table);
    Ok(())
}
