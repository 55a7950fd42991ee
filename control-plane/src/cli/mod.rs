//! The `tollgate` command line: `serve` runs the service; the other subcommands are an
//! admin client of its REST API.

mod client;
mod forecasts;
mod ledger;
mod output;
mod prices;
mod reports;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// The API's JSON, pretty-printed, for scripts.
    Json,
}

/// Tollgate: LLM cost governance at the gateway.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version)]
pub struct Cli {
    /// Control-plane base URL.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value = "table")]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control-plane service.
    Serve {
        /// Config file (TOML, or JSON when it ends in .json).
        #[arg(long, env = "TOLLGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Manage budgets.
    #[command(subcommand)]
    Budget(BudgetCmd),
    /// Manage price overrides; import a public price map.
    #[command(subcommand)]
    Price(PriceCmd),
    /// Current usage of every budget on a scope.
    Usage {
        /// A scope such as team:a.
        scope: String,
    },
    /// Emergency switches.
    #[command(subcommand)]
    Emergency(EmergencyCmd),
    /// Spend report from the ledger (group, bucket, filter, top N).
    Report(reports::ReportArgs),
    /// Chargeback: spend per team / project / department / tag for a period.
    Chargeback(reports::ChargebackArgs),
    /// Internal invoice for one payer and period (table, JSON, or --format html|pdf --out FILE).
    Invoice(reports::InvoiceArgs),
    /// Budget profiles.
    #[command(subcommand)]
    Profile(reports::ProfileCmd),
    /// Alert channels (webhook, Slack, email).
    #[command(subcommand)]
    Channel(ChannelCmd),
    /// Alert events and their deliveries.
    #[command(subcommand)]
    Alert(AlertCmd),
    /// Spend forecasts to the period end: every budget, one budget, or a scope.
    Forecast(forecasts::ForecastArgs),
    /// Anomalies of the last 24 hours per scope and model, judged now.
    Anomalies {
        /// Only this scope (team:a, global).
        #[arg(long)]
        scope: Option<String>,
        /// Only this charged model.
        #[arg(long)]
        model: Option<String>,
    },
    /// Recommendations: cheaper models, prompt caching, budgets running out or never used.
    Recommend(forecasts::RecommendArgs),
    /// Export ledger records or rollups (CSV or JSON lines), streamed, with a progress bar.
    Export(ledger::ExportArgs),
    /// Import past calls into the ledger (Tollgate CSV / JSON lines, LiteLLM spend logs).
    Import(ledger::ImportArgs),
}

#[derive(Debug, Subcommand)]
enum ChannelCmd {
    /// Create a channel from a JSON file (`-` for stdin): a ChannelSpec, secrets included.
    Create {
        /// The ChannelSpec JSON.
        #[arg(long, short)]
        file: PathBuf,
    },
    /// List channels (secrets are never shown).
    List,
    /// Show a channel.
    Show {
        /// Channel id.
        id: String,
    },
    /// Replace a channel from a JSON file (the whole spec, secrets included).
    Update {
        /// Channel id.
        id: String,
        /// The ChannelSpec JSON.
        #[arg(long, short)]
        file: PathBuf,
        /// Only if still at this version.
        #[arg(long)]
        if_match: Option<u64>,
    },
    /// Delete a channel.
    Delete {
        /// Channel id.
        id: String,
        /// Only if still at this version.
        #[arg(long)]
        if_match: Option<u64>,
    },
    /// Send one test alert to a channel now; fails (exit 1) when it was not delivered.
    Test {
        /// Channel id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum AlertCmd {
    /// Recent alert events, newest first.
    List {
        /// How many (1-1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Every channel's delivery attempts at one alert.
    Deliveries {
        /// Alert id (from `tollgate alert list`).
        id: String,
    },
    /// Deliveries that failed every attempt.
    DeadLetters,
}

#[derive(Debug, Subcommand)]
enum BudgetCmd {
    /// Create a budget from a JSON file (`-` for stdin).
    Create {
        /// The BudgetSpec JSON.
        #[arg(long, short)]
        file: PathBuf,
    },
    /// List budgets.
    List {
        /// Only budgets on this scope.
        #[arg(long)]
        scope: Option<String>,
        /// Page size.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Cursor from the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show a budget and its current window.
    Show {
        /// Budget id.
        id: String,
    },
    /// Replace a budget from a JSON file.
    Update {
        /// Budget id.
        id: String,
        /// The BudgetSpec JSON.
        #[arg(long, short)]
        file: PathBuf,
        /// Only if still at this version.
        #[arg(long)]
        if_match: Option<u64>,
    },
    /// Delete a budget.
    Delete {
        /// Budget id.
        id: String,
        /// Only if still at this version.
        #[arg(long)]
        if_match: Option<u64>,
    },
    /// Zero a budget's current window (audited).
    Reset {
        /// Budget id.
        id: String,
    },
    /// Reopen a suspended budget (audited).
    Reopen {
        /// Budget id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum PriceCmd {
    /// Set a model's prices from a price-file entry (JSON file).
    Set {
        /// Model id.
        model: String,
        /// The entry JSON.
        #[arg(long, short)]
        file: PathBuf,
    },
    /// Show the prices in force for a model.
    Show {
        /// Model name.
        model: String,
    },
    /// Import LiteLLM's price map into the price overrides (Tollgate's own entries win).
    Import(prices::ImportArgs),
    /// Rebuild the shipped imported table from LiteLLM's map, offline
    /// (scripts/refresh-prices.sh); prints the coverage.
    BuildTable(prices::BuildTableArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    DenyAll,
    DowngradeAll,
}

#[derive(Debug, Subcommand)]
enum EmergencyCmd {
    /// Switch a scope to deny-all or downgrade-all.
    Set {
        /// Scope.
        scope: String,
        /// Mode.
        #[arg(long, value_enum)]
        mode: Mode,
        /// Target model (downgrade-all).
        #[arg(long)]
        model: Option<String>,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a scope's switch.
    Clear {
        /// Scope.
        scope: String,
    },
    /// List active switches.
    List,
}

/// Entry point of the `tollgate` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tollgate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve { config } => serve::serve(config).await,
            Command::Price(PriceCmd::BuildTable(a)) => prices::build_table(a),
            other => admin(&cli.url, cli.output, other).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tollgate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read_json(path: &PathBuf) -> Result<serde_json::Value, String> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| format!("stdin: {e}"))?
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?
    };
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

async fn admin(url: &str, out: Output, cmd: Command) -> Result<(), String> {
    use reqwest::Method;
    let c = client::Client::from_env(url)?;
    let enc = |s: &str| s.replace('/', "%2F");
    let (value, kind) = match cmd {
        Command::Serve { .. } => return Ok(()),
        Command::Report(a) => return reports::report(&c, out, a).await,
        Command::Chargeback(a) => return reports::chargeback(&c, out, a).await,
        Command::Invoice(a) => return reports::invoice(&c, out, a).await,
        Command::Profile(p) => return reports::profile(&c, out, p).await,
        Command::Forecast(a) => return forecasts::forecast(&c, out, a).await,
        Command::Recommend(a) => return forecasts::recommend(&c, out, a).await,
        Command::Export(a) => return ledger::export(url, a).await,
        Command::Import(a) => return ledger::import(url, out, a).await,
        Command::Budget(b) => match b {
            BudgetCmd::Create { file } => (
                c.send(Method::POST, "/v1/budgets", Some(read_json(&file)?), None)
                    .await?,
                output::Kind::Budget,
            ),
            BudgetCmd::List {
                scope,
                limit,
                cursor,
            } => {
                let mut q = format!("/v1/budgets?limit={limit}");
                if let Some(s) = scope {
                    q.push_str(&format!("&scope={s}"));
                }
                if let Some(cur) = cursor {
                    q.push_str(&format!("&cursor={cur}"));
                }
                (
                    c.send(Method::GET, &q, None, None).await?,
                    output::Kind::BudgetPage,
                )
            }
            BudgetCmd::Show { id } => (
                c.send(
                    Method::GET,
                    &format!("/v1/budgets/{}", enc(&id)),
                    None,
                    None,
                )
                .await?,
                output::Kind::Budget,
            ),
            BudgetCmd::Update { id, file, if_match } => (
                c.send(
                    Method::PUT,
                    &format!("/v1/budgets/{}", enc(&id)),
                    Some(read_json(&file)?),
                    if_match,
                )
                .await?,
                output::Kind::Budget,
            ),
            BudgetCmd::Delete { id, if_match } => (
                c.send(
                    Method::DELETE,
                    &format!("/v1/budgets/{}", enc(&id)),
                    None,
                    if_match,
                )
                .await?,
                output::Kind::Done,
            ),
            BudgetCmd::Reset { id } => (
                c.send(
                    Method::POST,
                    &format!("/v1/budgets/{}/reset", enc(&id)),
                    None,
                    None,
                )
                .await?,
                output::Kind::Usage,
            ),
            BudgetCmd::Reopen { id } => (
                c.send(
                    Method::POST,
                    &format!("/v1/budgets/{}/reopen", enc(&id)),
                    None,
                    None,
                )
                .await?,
                output::Kind::Object,
            ),
        },
        Command::Price(p) => match p {
            PriceCmd::Set { model, file } => (
                c.send(
                    Method::PUT,
                    &format!("/v1/prices/{}", enc(&model)),
                    Some(read_json(&file)?),
                    None,
                )
                .await?,
                output::Kind::Object,
            ),
            PriceCmd::Import(a) => return prices::import(&c, a, out).await,
            PriceCmd::BuildTable(a) => return prices::build_table(a),
            PriceCmd::Show { model } => (
                c.send(
                    Method::GET,
                    &format!("/v1/prices/{}", enc(&model)),
                    None,
                    None,
                )
                .await?,
                output::Kind::Object,
            ),
        },
        Command::Usage { scope } => (
            c.send(
                Method::GET,
                &format!("/v1/usage/{}", enc(&scope)),
                None,
                None,
            )
            .await?,
            output::Kind::UsageList,
        ),
        Command::Emergency(e) => match e {
            EmergencyCmd::Set {
                scope,
                mode,
                model,
                reason,
            } => {
                let mode = match mode {
                    Mode::DenyAll => "deny_all",
                    Mode::DowngradeAll => "downgrade_all",
                };
                let mut body = serde_json::json!({ "mode": mode });
                if let Some(m) = model {
                    body["model"] = m.into();
                }
                if let Some(r) = reason {
                    body["reason"] = r.into();
                }
                (
                    c.send(
                        Method::PUT,
                        &format!("/v1/emergency/{}", enc(&scope)),
                        Some(body),
                        None,
                    )
                    .await?,
                    output::Kind::Object,
                )
            }
            EmergencyCmd::Clear { scope } => (
                c.send(
                    Method::DELETE,
                    &format!("/v1/emergency/{}", enc(&scope)),
                    None,
                    None,
                )
                .await?,
                output::Kind::Done,
            ),
            EmergencyCmd::List => (
                c.send(Method::GET, "/v1/emergency", None, None).await?,
                output::Kind::Object,
            ),
        },
        Command::Channel(ch) => channel(&c, ch).await?,
        Command::Anomalies { scope, model } => {
            let qenc = |s: &str| {
                s.replace('%', "%25")
                    .replace('+', "%2B")
                    .replace('&', "%26")
                    .replace('#', "%23")
                    .replace(' ', "%20")
            };
            let mut q: Vec<String> = Vec::new();
            if let Some(s) = scope {
                q.push(format!("scope={}", qenc(&s)));
            }
            if let Some(m) = model {
                q.push(format!("model={}", qenc(&m)));
            }
            let path = if q.is_empty() {
                "/v1/anomalies".to_owned()
            } else {
                format!("/v1/anomalies?{}", q.join("&"))
            };
            (
                c.send(Method::GET, &path, None, None).await?,
                output::Kind::Anomalies,
            )
        }
        Command::Alert(a) => match a {
            AlertCmd::List { limit } => (
                c.send(
                    Method::GET,
                    &format!("/v1/alerts?limit={limit}"),
                    None,
                    None,
                )
                .await?,
                output::Kind::Alerts,
            ),
            AlertCmd::Deliveries { id } => (
                c.send(
                    Method::GET,
                    &format!("/v1/alerts/{}/deliveries", enc(&id)),
                    None,
                    None,
                )
                .await?,
                output::Kind::Deliveries,
            ),
            AlertCmd::DeadLetters => (
                c.send(Method::GET, "/v1/alerts/dead-letters", None, None)
                    .await?,
                output::Kind::Deliveries,
            ),
        },
    };
    print!("{}", output::render(out, kind, &value));
    Ok(())
}

async fn channel(
    c: &client::Client,
    cmd: ChannelCmd,
) -> Result<(serde_json::Value, output::Kind), String> {
    use reqwest::Method;
    let path = |id: &str| format!("/v1/channels/{}", id.replace('/', "%2F"));
    Ok(match cmd {
        ChannelCmd::Create { file } => (
            c.send(Method::POST, "/v1/channels", Some(read_json(&file)?), None)
                .await?,
            output::Kind::Object,
        ),
        ChannelCmd::List => (
            c.send(Method::GET, "/v1/channels", None, None).await?,
            output::Kind::Channels,
        ),
        ChannelCmd::Show { id } => (
            c.send(Method::GET, &path(&id), None, None).await?,
            output::Kind::Object,
        ),
        ChannelCmd::Update { id, file, if_match } => (
            c.send(Method::PUT, &path(&id), Some(read_json(&file)?), if_match)
                .await?,
            output::Kind::Object,
        ),
        ChannelCmd::Delete { id, if_match } => (
            c.send(Method::DELETE, &path(&id), None, if_match).await?,
            output::Kind::Done,
        ),
        ChannelCmd::Test { id } => {
            let attempt = c
                .send(Method::POST, &format!("{}/test", path(&id)), None, None)
                .await?;
            if attempt["ok"] != serde_json::Value::Bool(true) {
                let why = attempt["error"]
                    .as_str()
                    .map_or_else(|| attempt.to_string(), str::to_owned);
                return Err(format!("the test alert was not delivered: {why}"));
            }
            (attempt, output::Kind::Object)
        }
    })
}
