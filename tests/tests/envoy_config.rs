//! `envoy/envoy.yaml` is the rendered template, Envoy accepts it with the built filter, and
//! Envoy refuses broken copies (a route to an unknown cluster, a bad plugin config).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::process::Command;

use tollgate_e2e::gateway_config::{GatewayConfig, reference_plugin_config};
use tollgate_e2e::paths;

const SHIPPED_WASM_PATH: &str = "/etc/envoy/tollgate/tollgate_filter.wasm";

fn shipped() -> String {
    std::fs::read_to_string(paths::workspace_root().join("envoy/envoy.yaml")).unwrap()
}

/// Runs `envoy --mode validate` on `yaml` with the shipped filter path pointed at the build.
fn validate(yaml: &str) -> (bool, String) {
    let wasm = paths::filter_wasm().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("envoy.yaml");
    std::fs::write(
        &file,
        yaml.replace(SHIPPED_WASM_PATH, &wasm.display().to_string()),
    )
    .unwrap();
    let out = Command::new(paths::envoy_binary().unwrap())
        .args(["--mode", "validate", "--disable-hot-restart", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), log)
}

#[test]
fn the_checked_in_envoy_yaml_is_the_rendered_template() {
    let rendered = GatewayConfig::production(reference_plugin_config()).render();
    assert!(
        shipped() == rendered,
        "envoy/envoy.yaml is stale: cargo run -p tollgate-e2e --bin render-envoy-config > envoy/envoy.yaml"
    );
}

#[test]
fn envoy_validates_the_shipped_config_with_the_built_filter() {
    let (ok, log) = validate(&shipped());
    assert!(ok, "{log}");
    assert!(log.contains("OK"), "{log}");
}

#[test]
fn envoy_refuses_a_route_to_an_unknown_cluster() {
    let broken = shipped().replacen("cluster: anthropic,", "cluster: anthropicc,", 1);
    let (ok, log) = validate(&broken);
    assert!(!ok);
    assert!(log.contains("unknown cluster 'anthropicc'"), "{log}");
}

#[test]
fn envoy_refuses_a_plugin_config_the_filter_rejects_and_the_log_names_the_field() {
    let broken = shipped().replacen(
        r#""max_request_body_bytes": 8388608"#,
        r#""max_request_body_bytes": 0"#,
        1,
    );
    assert!(broken != shipped(), "the test's edit did not apply");
    let (ok, log) = validate(&broken);
    assert!(!ok);
    assert!(
        log.contains(
            "tollgate config: max_request_body_bytes: 0 is below the minimum of 4096 bytes"
        ),
        "{log}"
    );
    let unknown = shipped().replacen(
        r#""unmatched_path": "pass""#,
        r#""unmatched_paht": "pass""#,
        1,
    );
    let (ok, log) = validate(&unknown);
    assert!(!ok);
    assert!(log.contains("unknown field `unmatched_paht`"), "{log}");
}

#[test]
fn the_reference_plugin_config_passes_the_filters_own_validation() {
    let text = std::fs::read(paths::workspace_root().join("envoy/plugin-config.json")).unwrap();
    tollgate_filter_core::plugin::Filter::from_json(&text).unwrap();
}

/// The JSON after `marker` on the same line of an Istio example.
fn embedded_json(file: &str, marker: &str) -> String {
    let text =
        std::fs::read_to_string(paths::workspace_root().join("envoy/istio").join(file)).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(marker))
        .unwrap_or_else(|| panic!("{file}: no {marker}"));
    line.trim_start()
        .trim_start_matches(marker)
        .trim()
        .to_owned()
}

#[test]
fn the_istio_examples_carry_plugin_configs_the_filter_accepts() {
    let wasmplugin = embedded_json("wasmplugin.yaml", "pluginConfig:");
    tollgate_filter_core::plugin::Filter::from_json(wasmplugin.as_bytes()).unwrap();
    let text =
        std::fs::read_to_string(paths::workspace_root().join("envoy/istio/envoyfilter.yaml"))
            .unwrap();
    let after = text.split("value: |").nth(1).unwrap();
    let json = after.lines().nth(1).unwrap().trim();
    tollgate_filter_core::plugin::Filter::from_json(json.as_bytes()).unwrap();
    assert!(text.contains("failure_policy: FAIL_RELOAD"));
}
