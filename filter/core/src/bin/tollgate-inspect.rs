//! `tollgate-inspect`: what would Tollgate charge for this recorded call?
//!
//! ```text
//! tollgate-inspect --path /v1/messages --request req.json --response resp.sse
//! tollgate-inspect --provider gemini --api stream_generate_content --response - < body
//! tollgate-inspect --check-config plugin-config.json
//! ```
//! Prints one JSON object; exits 0 for a parsed call (also when the model has no price: then
//! `cost_usd` is null and `error` says why), 1 with a one-line message on unreadable input.
//! `--check-config` runs the validation the filter's `on_configure` runs on a plugin
//! configuration (`-` for stdin): `ok` and exit 0, or the error naming the field and exit 1.

#[cfg(not(target_family = "wasm"))]
mod cli {
    use std::io::Read;
    use std::process::ExitCode;

    use chrono::{DateTime, Utc};
    use clap::Parser;
    use tollgate_filter_core::inspect::{InspectInput, inspect, resolve_route};
    use tollgate_filter_core::providers::{Api, Provider};
    use tollgate_model::PriceTable;

    /// What would Tollgate charge for this call?
    #[derive(Parser)]
    #[command(name = "tollgate-inspect", version)]
    struct Args {
        /// The recorded request body (`-` for stdin).
        #[arg(long)]
        request: Option<String>,
        /// The recorded response body: JSON, SSE, Gemini JSON array or AWS event-stream
        /// (`-` for stdin).
        #[arg(long)]
        response: Option<String>,
        /// The provider (with --api), e.g. `anthropic`.
        #[arg(long, value_parser = parse_enum::<Provider>)]
        provider: Option<Provider>,
        /// The API (with --provider), e.g. `messages`.
        #[arg(long, value_parser = parse_enum::<Api>)]
        api: Option<Api>,
        /// The request's URL path, matched as the filter matches it.
        #[arg(long)]
        path: Option<String>,
        /// The request's host (with --path).
        #[arg(long)]
        host: Option<String>,
        /// Only validate this plugin configuration (`-` for stdin), as `on_configure` does.
        #[arg(long, conflicts_with_all = ["request", "response", "provider", "api", "path", "host"])]
        check_config: Option<String>,
    }

    fn parse_enum<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, String> {
        serde_json::from_value(serde_json::Value::from(s)).map_err(|e| e.to_string())
    }

    fn read(name: &str) -> Result<Vec<u8>, String> {
        let mut bytes = Vec::new();
        if name == "-" {
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| format!("stdin: {e}"))?;
            Ok(bytes)
        } else {
            std::fs::read(name).map_err(|e| format!("{name}: {e}"))
        }
    }

    fn run(args: &Args) -> Result<String, String> {
        if let Some(name) = &args.check_config {
            let config = read(name)?;
            return tollgate_filter_core::plugin::Filter::from_json(&config)
                .map(|_| "ok".to_owned())
                .map_err(|e| e.to_string());
        }
        if args.request.as_deref() == Some("-") && args.response.as_deref() == Some("-") {
            return Err("only one of --request and --response can be stdin".into());
        }
        let route = resolve_route(
            args.provider,
            args.api,
            args.path.as_deref(),
            args.host.as_deref(),
        )?;
        let request = args.request.as_deref().map(read).transpose()?;
        let response = args.response.as_deref().map(read).transpose()?;
        let prices = PriceTable::shipped().map_err(|e| format!("price table: {e}"))?;
        let input = InspectInput {
            route: &route,
            request: request.as_deref(),
            response: response.as_deref(),
            at: DateTime::<Utc>::from(std::time::SystemTime::now()),
        };
        let report = inspect(&input, &prices).map_err(|e| e.to_string())?;
        serde_json::to_string(&report).map_err(|e| e.to_string())
    }

    pub fn main() -> ExitCode {
        let args = Args::parse();
        match run(&args) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("tollgate-inspect: {}", message.replace('\n', " "));
                ExitCode::FAILURE
            }
        }
    }
}

#[cfg(not(target_family = "wasm"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

/// The inspector is a native tool; the wasm build of this crate only needs to compile it.
#[cfg(target_family = "wasm")]
fn main() {}
