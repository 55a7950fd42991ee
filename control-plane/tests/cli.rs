//! The real `tollgate` binary: `serve` on the in-memory store, driven by the CLI, then
//! stopped with SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

fn cli(url: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["--url", url])
        .args(args)
        .env("TOLLGATE_ADMIN_TOKEN", "adm")
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn serve_runs_on_the_memory_store_the_cli_manages_budgets_and_sigterm_stops_it() {
    let port = support::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let mut server = Command::new(BIN)
        .arg("serve")
        .env("TOLLGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("TOLLGATE_ADMIN_TOKEN", "adm")
        .env("TOLLGATE_DATAPLANE_TOKEN", "dp")
        .env("TOLLGATE_LOG_FORMAT", "json")
        .env_remove("REDIS_URL")
        .env_remove("TOLLGATE_REDIS_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server never listened");
        std::thread::sleep(Duration::from_millis(20));
    }

    let spec = dir.path().join("b.json");
    std::fs::write(
        &spec,
        r#"{"id":"team-a","scopes":["team:a"],"limit_usd":"5","period":"daily"}"#,
    )
    .unwrap();
    let out = ok(&cli(
        &url,
        &["budget", "create", "-f", spec.to_str().unwrap()],
    ));
    assert!(out.contains("budget.id: team-a"), "{out}");
    let out = ok(&cli(&url, &["budget", "list", "--scope", "team:a"]));
    assert!(out.lines().nth(1).unwrap().starts_with("team-a"), "{out}");
    let out = ok(&cli(
        &url,
        &["--output", "json", "budget", "show", "team-a"],
    ));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["usage"]["remaining_usd"], "5");
    let out = ok(&cli(&url, &["usage", "team:a"]));
    assert!(out.starts_with("BUDGET"), "{out}");
    let out = ok(&cli(&url, &["price", "show", "gpt-5"]));
    assert!(out.contains("source: shipped"), "{out}");
    std::fs::write(
        &spec,
        r#"{"id":"team-a","scopes":["team:a"],"limit_usd":"7","period":"daily"}"#,
    )
    .unwrap();
    let stale = cli(
        &url,
        &[
            "budget",
            "update",
            "team-a",
            "-f",
            spec.to_str().unwrap(),
            "--if-match",
            "9",
        ],
    );
    assert!(!stale.status.success());
    assert!(String::from_utf8_lossy(&stale.stderr).contains("412 precondition_failed"));
    ok(&cli(
        &url,
        &[
            "budget",
            "update",
            "team-a",
            "-f",
            spec.to_str().unwrap(),
            "--if-match",
            "1",
        ],
    ));
    ok(&cli(
        &url,
        &[
            "emergency",
            "set",
            "team:a",
            "--mode",
            "deny-all",
            "--reason",
            "drill",
        ],
    ));
    ok(&cli(&url, &["emergency", "clear", "team:a"]));
    let out = ok(&cli(&url, &["forecast"]));
    assert!(out.contains("RUNOUT") && out.contains("team-a"), "{out}");
    let out = ok(&cli(&url, &["--output", "json", "forecast", "team-a"]));
    assert!(out.contains("\"budget_id\": \"team-a\""), "{out}");
    let out = ok(&cli(
        &url,
        &["forecast", "--scope", "team:a", "--period", "daily"],
    ));
    assert!(out.contains("team:a (daily)"), "{out}");
    let out = ok(&cli(&url, &["recommend", "--days", "7"]));
    assert!(
        out.contains("budgets never used:") && out.contains("team-a"),
        "{out}"
    );
    ok(&cli(&url, &["budget", "reset", "team-a"]));
    ok(&cli(&url, &["budget", "delete", "team-a"]));
    let missing = cli(&url, &["budget", "show", "team-a"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404 not_found"));
    // Anomalies: no history yet, so a table with its header and no rows; a bad scope named.
    let table = ok(&cli(&url, &["anomalies", "--scope", "team:a"]));
    assert!(
        table.starts_with("SEVERITY") && table.contains("EXPECTED"),
        "{table}"
    );
    assert_eq!(table.lines().count(), 1, "{table}");
    let bad = cli(&url, &["anomalies", "--scope", "bad scope"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("400 invalid_field"),
        "{bad:?}"
    );

    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = server.wait().unwrap();
    assert!(code.success(), "graceful exit on SIGTERM, got {code:?}");
    let mut logs = String::new();
    server
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(logs.contains("in-memory store"), "{logs}");
    assert!(logs.contains("shutting down"), "{logs}");
    assert!(
        logs.lines().all(|l| l.starts_with('{')),
        "JSON logs: {logs}"
    );
}

#[test]
fn the_cli_manages_alert_channels_and_never_shows_their_secrets() {
    let port = support::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tollgate.toml");
    std::fs::write(
        &config,
        "[alerts]\nmax_attempts = 2\nbackoff_base_ms = 50\n",
    )
    .unwrap();
    let mut server = Command::new(BIN)
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("TOLLGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("TOLLGATE_ADMIN_TOKEN", "adm")
        .env("TOLLGATE_DATAPLANE_TOKEN", "dp")
        .env_remove("REDIS_URL")
        .env_remove("TOLLGATE_REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let spec = dir.path().join("c.json");
    let write = |json: &str| std::fs::write(&spec, json).unwrap();
    write(
        r#"{"id":"ops","target":{"kind":"webhook","url":"https://hooks.example.com/t?token=QUERYSECRET","secret":"SIGNINGSECRET-0123"}}"#,
    );
    let out = ok(&cli(
        &url,
        &["channel", "create", "-f", spec.to_str().unwrap()],
    ));
    assert!(
        out.contains("target.url: https://hooks.example.com/t"),
        "{out}"
    );
    write(
        r#"{"id":"mail","target":{"kind":"email","host":"smtp.example.com","username":"u","password":"MAILSECRET","from":"a@example.com","to":["b@example.com"]}}"#,
    );
    ok(&cli(
        &url,
        &["channel", "create", "-f", spec.to_str().unwrap()],
    ));
    let out = ok(&cli(&url, &["channel", "list"]));
    let rows: Vec<&str> = out.lines().collect();
    assert!(rows[0].starts_with("ID"), "{out}");
    assert!(
        rows[1].starts_with("mail") && rows[1].contains("email"),
        "{out}"
    );
    assert!(
        rows[2].starts_with("ops") && rows[2].contains("webhook"),
        "{out}"
    );
    for id in ["ops", "mail"] {
        let out = ok(&cli(&url, &["--output", "json", "channel", "show", id]));
        for secret in ["QUERYSECRET", "SIGNINGSECRET", "MAILSECRET"] {
            assert!(!out.contains(secret), "{secret} shown: {out}");
        }
    }
    let bad = cli(
        &url,
        &[
            "channel",
            "update",
            "mail",
            "-f",
            spec.to_str().unwrap(),
            "--if-match",
            "7",
        ],
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("412 precondition_failed"));
    write(
        r#"{"id":"mail","target":{"kind":"email","host":"smtp.example.com","from":"nope","to":["b@example.com"]}}"#,
    );
    let bad = cli(
        &url,
        &["channel", "update", "mail", "-f", spec.to_str().unwrap()],
    );
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("400 invalid_field: not an email address"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("(field target.from)"));
    ok(&cli(&url, &["channel", "delete", "mail"]));
    // A test alert to a webhook nothing listens at: the CLI fails and says why.
    write(&format!(
        r#"{{"id":"nowhere","target":{{"kind":"webhook","url":"http://127.0.0.1:{}/hook","secret":"SIGNINGSECRET-0123"}}}}"#,
        support::free_port()
    ));
    ok(&cli(
        &url,
        &["channel", "create", "-f", spec.to_str().unwrap()],
    ));
    let bad = cli(&url, &["channel", "test", "nowhere"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("the test alert was not delivered: HTTP request failed"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    ok(&cli(&url, &["channel", "delete", "nowhere"]));
    let out = ok(&cli(&url, &["alert", "list"]));
    assert!(out.starts_with("ID"), "{out}");
    let out = ok(&cli(&url, &["alert", "dead-letters"]));
    assert!(out.starts_with("ALERT"), "{out}");
    let out = ok(&cli(
        &url,
        &["--output", "json", "alert", "deliveries", "team-a.w1.t50.1"],
    ));
    assert_eq!(out.trim(), "[]");

    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(server.wait().unwrap().success());
}

/// `tollgate price import` on LiteLLM 1.110.2's map (the trimmed fixture), with a price that
/// changed since the embedded import and a model it lacked: the dry run shows both and writes
/// nothing; the import writes them; Tollgate's own entries are left alone.
#[test]
fn price_import_shows_what_it_would_change_then_imports_under_tollgates_own_entries() {
    let port = support::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let mut server = Command::new(BIN)
        .arg("serve")
        .env("TOLLGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("TOLLGATE_ADMIN_TOKEN", "adm")
        .env("TOLLGATE_DATAPLANE_TOKEN", "dp")
        .env_remove("REDIS_URL")
        .env_remove("TOLLGATE_REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let fixture = include_str!("fixtures/litellm-1.110.2-trimmed.json");
    let mut map: serde_json::Value = serde_json::from_str(fixture).unwrap();
    map["qwen.qwen3-32b-v1:0"]["output_cost_per_token"] = serde_json::json!(9e-07);
    map["mistral/mistral-medium-4"] = map["mistral/mistral-medium-latest"].clone();
    // Tollgate ships gpt-4o: an import never replaces it.
    map["gpt-4o"]["input_cost_per_token"] = serde_json::json!(1e-05);
    let file = dir.path().join("model_prices_and_context_window.json");
    std::fs::write(&file, map.to_string()).unwrap();
    let path = file.to_str().unwrap();

    let out = ok(&cli(&url, &["price", "import", path, "--dry-run"]));
    assert!(out.contains("would add     mistral-medium-4\n"), "{out}");
    assert!(out.contains("would change  qwen.qwen3-32b-v1:0\n"), "{out}");
    assert!(!out.contains("gpt-4o\n"), "{out}");
    assert!(out.contains("(dry run: nothing written)"), "{out}");
    let show = |model: &str| -> serde_json::Value {
        serde_json::from_str(&ok(&cli(
            &url,
            &["--output", "json", "price", "show", model],
        )))
        .unwrap()
    };
    let qwen = show("qwen.qwen3-32b-v1:0");
    assert_eq!(qwen["source"], "imported", "{qwen}");
    assert_eq!(qwen["entry"]["prices"][0]["output"], "0.6", "{qwen}");
    let missing = cli(&url, &["price", "show", "mistral-medium-4"]);
    assert!(!missing.status.success(), "the dry run wrote nothing");

    let out = ok(&cli(
        &url,
        &[
            "--output",
            "json",
            "price",
            "import",
            path,
            "--package",
            "litellm==1.110.2",
        ],
    ));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["added"], serde_json::json!(["mistral-medium-4"]));
    assert_eq!(
        report["changed"],
        serde_json::json!(["qwen.qwen3-32b-v1:0"])
    );
    assert!(
        report["curated"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("gpt-4o")),
        "{report}"
    );
    let qwen = show("qwen.qwen3-32b-v1:0");
    assert_eq!(qwen["source"], "override", "{qwen}");
    let latest = qwen["entry"]["prices"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(latest["output"], "0.9", "{qwen}");
    assert!(
        qwen["entry"]["source"]
            .as_str()
            .unwrap()
            .starts_with("litellm==1.110.2 model_prices_and_context_window.json: "),
        "{qwen}"
    );
    assert!(
        qwen["entry"]["note"]
            .as_str()
            .unwrap()
            .starts_with("imported")
    );
    assert_eq!(
        show("mistral-medium-4")["entry"]["prices"][0]["input"],
        "1.5"
    );
    assert_eq!(show("gpt-4o")["source"], "shipped");
    // A second import finds nothing new.
    let out = ok(&cli(&url, &["price", "import", path]));
    assert!(out.starts_with("0 added, 0 changed"), "{out}");

    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(server.wait().unwrap().success());
}

/// `tollgate import` of OpenAI's Usage and Costs API answers (the documented examples, their
/// bucket moved to yesterday): pretty-printed pages go whole, the usage's rows are said to
/// carry no cost, a second import adds nothing, and a bad page fails naming line and field.
#[test]
fn import_reads_openai_answer_pages_and_says_which_rows_carry_no_cost() {
    let port = support::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let mut server = Command::new(BIN)
        .arg("serve")
        .env("TOLLGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("TOLLGATE_ADMIN_TOKEN", "adm")
        .env("TOLLGATE_DATAPLANE_TOKEN", "dp")
        .env_remove("REDIS_URL")
        .env_remove("TOLLGATE_REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let day = now_s / 86_400 * 86_400 - 86_400;
    let moved = |text: &str| {
        text.replace("1730419200", &day.to_string())
            .replace("1730505600", &(day + 86_400).to_string())
    };
    let usage = moved(include_str!(
        "fixtures/openai-admin/usage-completions-grouped-page.json"
    ));
    let costs = moved(include_str!(
        "fixtures/openai-admin/costs-grouped-page.json"
    ));
    let usage_file = dir.path().join("usage.json");
    std::fs::write(
        &usage_file,
        format!(
            "{usage}\n{}",
            moved(include_str!(
                "fixtures/openai-admin/usage-completions-page.json"
            ))
        ),
    )
    .unwrap();
    let costs_file = dir.path().join("costs.json");
    std::fs::write(&costs_file, &costs).unwrap();
    let import = |file: &std::path::Path, format: &str| {
        cli(
            &url,
            &[
                "--output",
                "json",
                "import",
                file.to_str().unwrap(),
                "--format",
                format,
            ],
        )
    };
    let out: serde_json::Value =
        serde_json::from_str(&ok(&import(&usage_file, "openai_usage_completions"))).unwrap();
    assert_eq!(
        out,
        serde_json::json!({ "imported": 2, "duplicates": 0, "rows_without_cost": 2 })
    );
    let out: serde_json::Value =
        serde_json::from_str(&ok(&import(&costs_file, "openai_costs"))).unwrap();
    assert_eq!(out, serde_json::json!({ "imported": 1, "duplicates": 0 }));
    let again: serde_json::Value =
        serde_json::from_str(&ok(&import(&costs_file, "openai_costs"))).unwrap();
    assert_eq!(again, serde_json::json!({ "imported": 0, "duplicates": 1 }));

    std::fs::write(&costs_file, costs.replace("0.06", "-0.06")).unwrap();
    let bad = import(&costs_file, "openai_costs");
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("line 1: data[0].results[0].amount.value"),
        "{stderr}"
    );
    let unknown = import(&costs_file, "openai_invoices");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("openai_costs"));

    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(server.wait().unwrap().success());
}
