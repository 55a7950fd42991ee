use serde_json::{Value, json};

use super::*;
use crate::plugin::FilterConfigDto;

/// A configuration using every section, as the reference Envoy configuration writes it.
fn full_config() -> Value {
    json!({
        "control_plane": {
            "cluster": "tollgate_control_plane", "deny_status": 429, "fail_mode": "open",
            "settle_max_batch": 200, "settle_max_delay_ms": 1000, "timeout_ms": 50,
            "token": "t0k"
        },
        "max_request_body_bytes": 8_388_608,
        "model_aliases": {"prod-chat": "gpt-4o"},
        "oversized_request": "pass",
        "response_headers": true,
        "routes": {
            "disable_builtin": false,
            "gateway_prefixes": [{"prefix": "/openai/", "provider": "openai"},
                                 {"prefix": "/azure/", "provider": "azure_openai"}],
            "rules": [{"path": "/x/*", "provider": "openai", "api": "chat_completions"},
                      {"host": "h", "path": "/y", "provider": "anthropic", "api": "messages",
                       "model": "m"}]
        },
        "scopes": {
            "sources": [{"header": "x-tollgate-team", "kind": "team"},
                        {"api_key": true, "kind": "key"}],
            "when_none": "global"
        },
        "unmatched_path": "pass"
    })
}

/// Every value of `v` replaced by each wrong kind, every object given an unknown key and
/// missing each of its keys.
fn mutations(v: &Value) -> Vec<Value> {
    let replacements = [
        json!("x"),
        json!(5),
        json!(-1),
        json!(1.5),
        json!(true),
        json!(null),
        json!({}),
        json!([]),
        json!({"q": 1}),
        json!([1]),
    ];
    let mut out: Vec<Value> = replacements.to_vec();
    match v {
        Value::Object(map) => {
            let mut extra = map.clone();
            extra.insert("zz_unknown".into(), json!(1));
            out.push(Value::Object(extra));
            for (k, child) in map {
                let mut fewer = map.clone();
                fewer.remove(k);
                out.push(Value::Object(fewer));
                for m in mutations(child) {
                    let mut changed = map.clone();
                    changed.insert(k.clone(), m);
                    out.push(Value::Object(changed));
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                for m in mutations(child) {
                    let mut changed = items.clone();
                    changed[i] = m;
                    out.push(Value::Array(changed));
                }
            }
        }
        _ => {}
    }
    out
}

/// The path serde_path_to_error tracks, the one located, and the message.
fn both_paths(text: &str) -> Option<(String, String, String)> {
    let de = &mut serde_json::Deserializer::from_str(text);
    let err = serde_path_to_error::deserialize::<_, FilterConfigDto>(de).err()?;
    let inner = err.inner();
    let offset = offset_of(text.as_bytes(), inner.line(), inner.column());
    let located = path_at(text.as_bytes(), offset);
    Some((err.path().to_string(), located, inner.to_string()))
}

#[test]
fn the_path_located_after_the_error_is_the_one_tracked_while_deserializing() {
    let mut refused = 0;
    for config in mutations(&full_config()) {
        for text in [
            serde_json::to_string(&config).unwrap(),
            serde_json::to_string_pretty(&config).unwrap(),
        ] {
            if let Some((tracked, located, message)) = both_paths(&text) {
                refused += 1;
                if message.starts_with("unknown variant") && located.starts_with(&tracked) {
                    // An enum written as an object: the located path goes on to its key.
                    continue;
                }
                assert_eq!(located, tracked, "{text}");
            }
        }
    }
    assert!(refused > 500, "{refused}");
}

#[test]
fn broken_json_is_located_where_it_breaks() {
    for (text, want) in [
        ("{", "."),
        ("", "."),
        (r#"{"routes":{"rules":[{"path":"/x","#, "routes.rules[0]"),
        (
            r#"{"routes":{"rules":[{"path":"/x"},{"path":"/y"#,
            "routes.rules[0]",
        ),
        (
            r#"{"routes":{"rules":[{"path":"/x","provider":"openai","api":"messages"},{"path":tru"#,
            "routes.rules[1].path",
        ),
        (
            "{\"control_plane\":\n  {\"cluster\": 5}}",
            "control_plane.cluster",
        ),
        (r#"{"model_aliases":{"a\"b":1}}"#, "model_aliases.a\"b"),
        (r#"{"unmatched_path":"pass"} x"#, "."),
    ] {
        let err = serde_json::from_str::<FilterConfigDto>(text).unwrap_err();
        let offset = offset_of(text.as_bytes(), err.line(), err.column());
        assert_eq!(path_at(text.as_bytes(), offset), want, "{text}");
    }
}
