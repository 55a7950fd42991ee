//! The token estimate against real tokenizer counts of the samples in
//! `tests/fixtures/estimation/` (see `docs/estimation.md`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use tollgate_filter_core::estimate::estimate_tokens;

fn samples() -> Vec<(String, u64, u64, u64)> {
    let dir = common::fixtures_dir().join("estimation");
    let counts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("counts.json")).unwrap()).unwrap();
    let mut out = Vec::new();
    for (name, real) in counts["counts"].as_object().unwrap() {
        let text = std::fs::read(dir.join(name)).unwrap();
        out.push((
            name.clone(),
            estimate_tokens(&text),
            real["cl100k_base"].as_u64().unwrap(),
            real["o200k_base"].as_u64().unwrap(),
        ));
    }
    assert!(out.len() >= 7);
    out
}

#[test]
fn prose_code_and_json_are_never_under_estimated() {
    for (name, estimate, cl100k, o200k) in samples() {
        if name.starts_with("cjk") {
            continue;
        }
        assert!(
            estimate >= cl100k.max(o200k),
            "{name}: {estimate} < {cl100k}/{o200k}"
        );
        // Conservative, but not absurdly so.
        assert!(estimate <= 2 * cl100k.max(o200k), "{name}: {estimate}");
    }
}

#[test]
fn cjk_text_is_within_ten_percent_of_cl100k_and_above_o200k() {
    for (name, estimate, cl100k, o200k) in samples() {
        if !name.starts_with("cjk") {
            continue;
        }
        assert!(
            estimate * 10 >= cl100k * 9,
            "{name}: {estimate} vs {cl100k}"
        );
        assert!(estimate >= o200k, "{name}: {estimate} < {o200k}");
    }
}

/// `s` as a JSON string with every non-ASCII character escaped as `\uXXXX`.
fn ascii_json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for unit in serde_json::to_string(s).unwrap().trim_matches('"').chars() {
        if unit.is_ascii() {
            out.push(unit);
        } else {
            let mut buf = [0u16; 2];
            for u in unit.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out.push('"');
    out
}

#[test]
fn whole_chat_requests_are_never_under_estimated_utf8_or_escaped() {
    use tollgate_filter_core::estimate::{REQUEST_OVERHEAD_TOKENS, estimate_body_tokens};
    let dir = common::fixtures_dir().join("estimation");
    let counts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("counts.json")).unwrap()).unwrap();
    for (name, real) in counts["counts"].as_object().unwrap() {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let real = real["chat_prompt_cl100k_base"]
            .as_u64()
            .unwrap()
            .max(real["chat_prompt_o200k_base"].as_u64().unwrap());
        let utf8 = serde_json::to_string(&text).unwrap();
        for content in [utf8, ascii_json_string(&text)] {
            let body = format!(
                r#"{{"model":"gpt-4o","messages":[{{"role":"system","content":"You are a helpful assistant."}},{{"role":"user","content":{content}}}],"max_tokens":512}}"#
            );
            let estimate = estimate_body_tokens(body.as_bytes()) + REQUEST_OVERHEAD_TOKENS;
            assert!(estimate >= real, "{name}: {estimate} < {real}");
            assert!(estimate <= 2 * real, "{name}: {estimate} > 2 × {real}");
        }
    }
}
