//! `tollgate-inspect`, run as the built binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn inspect(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate-inspect"))
        .args(args)
        .current_dir(common::fixtures_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or_default()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "prints one line: {text}");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn a_streamed_anthropic_call_is_priced_with_all_input_counted() {
    let out = inspect(
        &[
            "--path",
            "/v1/messages",
            "--response",
            "anthropic-messages-stream-cache.sse",
        ],
        None,
    );
    let v = json(&out);
    assert_eq!(v["provider"], "anthropic");
    assert_eq!(v["api"], "messages");
    assert_eq!(v["model"], "claude-sonnet-4-5-20250929");
    assert_eq!(v["streaming"], true);
    assert_eq!(v["usage"]["input_tokens"], 25 + 12000 + 1800);
    assert_eq!(v["usage"]["cached_input_tokens"], 12000);
    assert_eq!(v["usage"]["output_tokens"], 15);
    assert_eq!(v["estimated"], false);
    assert!(v["cost_usd"].as_str().unwrap().parse::<f64>().unwrap() > 0.0);
    assert!(v["cost_breakdown"].is_object());
}

#[test]
fn a_request_and_a_gemini_array_stream_from_stdin_are_read_together() {
    let body = std::fs::read(common::fixtures_dir().join("gemini-stream-json-array.json")).unwrap();
    let dir = std::env::temp_dir().join(format!("tollgate-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let req = dir.join("req.json");
    std::fs::write(
        &req,
        br#"{"contents":[{"parts":[{"text":"Tell me a story"}]}]}"#,
    )
    .unwrap();
    let out = inspect(
        &[
            "--path",
            "/v1beta/models/gemini-2.0-flash:streamGenerateContent",
            "--request",
            req.to_str().unwrap(),
            "--response",
            "-",
        ],
        Some(&body),
    );
    let v = json(&out);
    assert_eq!(v["provider"], "gemini");
    assert_eq!(v["model"], "gemini-2.0-flash");
    assert_eq!(v["streaming"], true);
    assert_eq!(v["usage"]["input_tokens"], 9);
    assert_eq!(v["usage"]["output_tokens"], 21);
}

#[test]
fn a_bedrock_event_stream_is_read_by_provider_and_api() {
    let out = inspect(
        &[
            "--provider",
            "bedrock",
            "--api",
            "converse_stream",
            "--response",
            "bedrock-converse-stream-cache.bin",
        ],
        None,
    );
    let v = json(&out);
    assert_eq!(v["usage"]["input_tokens"], 40 + 4000 + 300);
    // No request and no model in a Converse stream: usage prints, cost does not.
    assert_eq!(v["cost_usd"], serde_json::Value::Null);
    assert!(v["error"].is_string());
}

#[test]
fn an_unknown_model_prints_usage_with_a_null_cost_and_exits_zero() {
    let out = inspect(
        &[
            "--provider",
            "openai",
            "--api",
            "chat_completions",
            "--request",
            "-",
        ],
        Some(br#"{"model":"mystery-9","messages":[],"max_tokens":10}"#),
    );
    let v = json(&out);
    assert_eq!(v["model"], "mystery-9");
    assert_eq!(v["usage"]["output_tokens"], 10);
    assert_eq!(v["estimated"], true);
    assert_eq!(v["cost_usd"], serde_json::Value::Null);
    assert!(v["error"].as_str().unwrap().contains("mystery-9"));
}

#[test]
fn unreadable_input_exits_non_zero_with_one_line() {
    for (args, stdin) in [
        (
            vec!["--path", "/v1/messages", "--response", "no-such-file.json"],
            None,
        ),
        (
            vec!["--path", "/v1/messages", "--response", "-"],
            Some(&b"\xff\xfe garbage"[..]),
        ),
        (
            vec!["--path", "/v1/messages", "--request", "-"],
            Some(&b"{\"model\":"[..]),
        ),
        (
            vec![
                "--path",
                "/not/an/llm/api",
                "--response",
                "anthropic-messages.json",
            ],
            None,
        ),
        (vec!["--response", "anthropic-messages.json"], None),
    ] {
        let out = inspect(&args, stdin);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("tollgate-inspect: "), "{err}");
    }
}

#[test]
fn an_azure_deployment_name_is_priced_by_the_model_the_response_reports() {
    let out = inspect(
        &[
            "--path",
            "/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21",
            "--host",
            "acme.openai.azure.com",
            "--request",
            "-",
            "--response",
            "azure-openai-chat-stream.sse",
        ],
        Some(br#"{"messages":[{"role":"user","content":"hi"}],"stream":true}"#),
    );
    let v = json(&out);
    assert_eq!(v["provider"], "azure_openai");
    assert_eq!(v["model"], "gpt-4o-2024-11-20");
    assert!(v["cost_usd"].is_string(), "{v}");
    assert_eq!(v["usage"]["input_tokens"], 19);
}
