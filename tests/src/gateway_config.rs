//! Renders the Envoy configuration from `envoy/*.template.yaml`.
//!
//! Production (`envoy/envoy.yaml`) and every test use this one renderer and these templates,
//! so what the tests run is what users deploy, apart from addresses, ports and TLS.

use std::net::IpAddr;
use std::path::PathBuf;

const GATEWAY: &str = include_str!("../../envoy/envoy.template.yaml");
const WASM_FILTER: &str = include_str!("../../envoy/wasm-filter.template.yaml");
const CLUSTER: &str = include_str!("../../envoy/cluster.template.yaml");
const TLS: &str = include_str!("../../envoy/tls.template.yaml");

/// The benchmark's filter-less route (see [`GatewayConfig::bench_bypass_route`]).
const BYPASS_ROUTE: &str = r#"              - match: { prefix: "/", headers: [{ name: x-tollgate-bench-bypass, present_match: true }] }
                route: { cluster: openai, timeout: 600s }
                typed_per_filter_config:
                  envoy.filters.http.wasm:
                    "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
                    disabled: true
"#;

/// The tests' catch-all route (see [`GatewayConfig::catch_all_route`]).
const CATCH_ALL_ROUTE: &str = r#"              - match: { prefix: "/" }
                route: { cluster: openai, timeout: 600s }
"#;

/// Indentation of the plugin JSON inside `value: |` in `wasm-filter.template.yaml`.
const PLUGIN_CONFIG_INDENT: usize = 20;

/// Where a cluster sends traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Host name (resolved by DNS) or IP address (used as is).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Whether to speak TLS (with SNI = `host`).
    pub tls: bool,
}

impl Upstream {
    /// A TLS upstream on port 443.
    pub fn https(host: &str) -> Upstream {
        Upstream {
            host: host.to_owned(),
            port: 443,
            tls: true,
        }
    }

    /// A plain-HTTP upstream.
    pub fn http(host: &str, port: u16) -> Upstream {
        Upstream {
            host: host.to_owned(),
            port,
            tls: false,
        }
    }
}

/// The Tollgate filter in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmFilter {
    /// Path of `tollgate_filter.wasm` as Envoy will see it.
    pub path: PathBuf,
    /// The plugin configuration (JSON), as the filter's config reader takes it.
    pub plugin_config: serde_json::Value,
}

/// Everything that differs between deployments of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// Admin port (0: any free port; the harness reads it back).
    pub admin_port: u16,
    /// Listener address.
    pub listen_address: String,
    /// Listener port (0: any free port).
    pub listen_port: u16,
    /// The filter, or `None` for a plain proxy (the latency baseline).
    pub wasm: Option<WasmFilter>,
    /// OpenAI (and OpenAI-compatible) upstream.
    pub openai: Upstream,
    /// Anthropic upstream.
    pub anthropic: Upstream,
    /// Gemini upstream.
    pub gemini: Upstream,
    /// Tollgate's control plane.
    pub control_plane: Upstream,
    /// Benchmarks only: requests carrying `x-tollgate-bench-bypass` go to the OpenAI cluster
    /// with the Wasm filter disabled, so one Envoy serves both sides of a comparison.
    pub bench_bypass_route: bool,
    /// Tests only: send every other path to the OpenAI cluster too (the mock), so Bedrock,
    /// Azure, Cohere and other paths the reference routes leave out reach the provider.
    pub catch_all_route: bool,
}

impl GatewayConfig {
    /// What `envoy/envoy.yaml` ships: the real providers over TLS, the control plane on
    /// localhost:8080, the filter from `/etc/envoy/tollgate/`.
    pub fn production(plugin_config: serde_json::Value) -> GatewayConfig {
        GatewayConfig {
            admin_port: 9901,
            listen_address: "0.0.0.0".into(),
            listen_port: 10000,
            wasm: Some(WasmFilter {
                path: PathBuf::from("/etc/envoy/tollgate/tollgate_filter.wasm"),
                plugin_config,
            }),
            openai: Upstream::https("api.openai.com"),
            anthropic: Upstream::https("api.anthropic.com"),
            gemini: Upstream::https("generativelanguage.googleapis.com"),
            control_plane: Upstream::http("127.0.0.1", 8080),
            bench_bypass_route: false,
            catch_all_route: false,
        }
    }

    /// Every provider at one loopback mock, free ports, the given filter (or none).
    pub fn loopback(
        mock_port: u16,
        control_plane_port: u16,
        wasm: Option<WasmFilter>,
    ) -> GatewayConfig {
        let mock = Upstream::http("127.0.0.1", mock_port);
        GatewayConfig {
            admin_port: 0,
            listen_address: "127.0.0.1".into(),
            listen_port: 0,
            wasm,
            openai: mock.clone(),
            anthropic: mock.clone(),
            gemini: mock,
            control_plane: Upstream::http("127.0.0.1", control_plane_port),
            bench_bypass_route: false,
            catch_all_route: false,
        }
    }

    /// The Envoy YAML.
    pub fn render(&self) -> String {
        let wasm = match &self.wasm {
            None => String::new(),
            Some(w) => {
                let json = serde_json::to_string_pretty(&w.plugin_config).unwrap_or_default();
                let indent = " ".repeat(PLUGIN_CONFIG_INDENT);
                let body: Vec<String> = json.lines().map(|l| format!("{indent}{l}")).collect();
                WASM_FILTER
                    .replace("{{WASM_PATH}}", &w.path.display().to_string())
                    .replace("{{PLUGIN_CONFIG}}", &body.join("\n"))
                    .trim_end()
                    .to_owned()
            }
        };
        let clusters = [
            ("openai", &self.openai, "5s"),
            ("anthropic", &self.anthropic, "5s"),
            ("gemini", &self.gemini, "5s"),
            // The admission call waits on this; it must fail fast so the fail mode decides.
            ("tollgate_control_plane", &self.control_plane, "0.25s"),
        ]
        .iter()
        .map(|(name, up, timeout)| cluster(name, up, timeout))
        .collect::<Vec<_>>()
        .join("\n");
        GATEWAY
            .replace("{{ADMIN_PORT}}", &self.admin_port.to_string())
            .replace("{{LISTEN_ADDRESS}}", &self.listen_address)
            .replace("{{LISTEN_PORT}}", &self.listen_port.to_string())
            .replace(
                "{{WASM_FILTER}}\n",
                &if wasm.is_empty() { wasm } else { wasm + "\n" },
            )
            .replace(
                "{{EXTRA_ROUTES}}\n",
                if self.bench_bypass_route {
                    BYPASS_ROUTE
                } else {
                    ""
                },
            )
            .replace(
                "{{FINAL_ROUTES}}\n",
                if self.catch_all_route {
                    CATCH_ALL_ROUTE
                } else {
                    ""
                },
            )
            .replace("{{CLUSTERS}}", clusters.trim_end())
    }
}

/// The plugin configuration shipped in `envoy/envoy.yaml` (`envoy/plugin-config.json`).
pub fn reference_plugin_config() -> serde_json::Value {
    serde_json::from_str(include_str!("../../envoy/plugin-config.json")).unwrap_or_default()
}

fn cluster(name: &str, up: &Upstream, connect_timeout: &str) -> String {
    let discovery = if up.host.parse::<IpAddr>().is_ok() {
        "STATIC"
    } else {
        "LOGICAL_DNS"
    };
    let tls = if up.tls {
        TLS.trim_end().replace("{{HOST}}", &up.host)
    } else {
        String::new()
    };
    let block = CLUSTER
        .replace("{{NAME}}", name)
        .replace("{{DISCOVERY}}", discovery)
        .replace("{{CONNECT_TIMEOUT}}", connect_timeout)
        .replace("{{HOST}}", &up.host)
        .replace("{{PORT}}", &up.port.to_string());
    let block = if tls.is_empty() {
        block.replace("{{TLS}}\n", "")
    } else {
        block.replace("{{TLS}}", &tls)
    };
    block.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_placeholder_survives_rendering() {
        let prod = GatewayConfig::production(serde_json::json!({"a": 1})).render();
        assert!(!prod.contains("{{"), "{prod}");
        let plain = GatewayConfig::loopback(1, 2, None).render();
        assert!(
            !plain.contains("{{") && !plain.contains("envoy.filters.http.wasm"),
            "{plain}"
        );
    }

    #[test]
    fn tls_only_where_asked() {
        let prod = GatewayConfig::production(serde_json::json!({})).render();
        assert_eq!(prod.matches("UpstreamTlsContext").count(), 3);
        assert!(prod.contains("sni: api.anthropic.com"));
        let plain = GatewayConfig::loopback(1, 2, None).render();
        assert!(!plain.contains("UpstreamTlsContext"));
    }
}
