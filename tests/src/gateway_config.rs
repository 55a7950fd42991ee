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

/// Each provider's cluster: where Envoy sends the calls of its virtual host and path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderUpstreams {
    /// api.openai.com.
    pub openai: Upstream,
    /// The Azure OpenAI resource ([`GatewayConfig::azure_openai_host`]).
    pub azure_openai: Upstream,
    /// api.anthropic.com.
    pub anthropic: Upstream,
    /// generativelanguage.googleapis.com.
    pub gemini: Upstream,
    /// The Bedrock runtime endpoint ([`GatewayConfig::bedrock_host`]).
    pub bedrock: Upstream,
    /// api.mistral.ai.
    pub mistral: Upstream,
    /// api.cohere.com.
    pub cohere: Upstream,
    /// api.groq.com.
    pub groq: Upstream,
    /// The self-hosted OpenAI-compatible server ([`GatewayConfig::openai_compatible_host`]).
    pub openai_compatible: Upstream,
}

impl ProviderUpstreams {
    /// Every provider at one upstream (the tests' mock).
    pub fn all_at(upstream: &Upstream) -> ProviderUpstreams {
        ProviderUpstreams {
            openai: upstream.clone(),
            azure_openai: upstream.clone(),
            anthropic: upstream.clone(),
            gemini: upstream.clone(),
            bedrock: upstream.clone(),
            mistral: upstream.clone(),
            cohere: upstream.clone(),
            groq: upstream.clone(),
            openai_compatible: upstream.clone(),
        }
    }

    /// Cluster name and upstream, in the template's order.
    pub fn clusters(&self) -> [(&'static str, &Upstream); 9] {
        [
            ("openai", &self.openai),
            ("azure_openai", &self.azure_openai),
            ("anthropic", &self.anthropic),
            ("gemini", &self.gemini),
            ("bedrock", &self.bedrock),
            ("mistral", &self.mistral),
            ("cohere", &self.cohere),
            ("groq", &self.groq),
            ("openai_compatible", &self.openai_compatible),
        ]
    }
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
    /// Where each provider's cluster sends its calls.
    pub providers: ProviderUpstreams,
    /// The Azure OpenAI resource's host name, as clients call it (`NAME.openai.azure.com`).
    pub azure_openai_host: String,
    /// The Bedrock runtime host name, as clients call it (one region).
    pub bedrock_host: String,
    /// The self-hosted OpenAI-compatible server's host name, as clients call it, with its
    /// port when not the scheme's default.
    pub openai_compatible_host: String,
    /// Tollgate's control plane.
    pub control_plane: Upstream,
    /// Benchmarks only: requests carrying `x-tollgate-bench-bypass` go to the OpenAI cluster
    /// with the Wasm filter disabled, so one Envoy serves both sides of a comparison.
    pub bench_bypass_route: bool,
    /// Tests only: send every path the reference routes leave out (other paths of the
    /// gateway's own name, providers' hosts without a cluster) to the OpenAI cluster too (the
    /// mock), so that recordings of every provider reach it.
    pub catch_all_route: bool,
}

/// The production Azure resource host: a placeholder the operator replaces.
pub const PRODUCTION_AZURE_OPENAI_HOST: &str = "your-resource.openai.azure.com";
/// The production Bedrock region's runtime host.
pub const PRODUCTION_BEDROCK_HOST: &str = "bedrock-runtime.us-east-1.amazonaws.com";

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
            providers: ProviderUpstreams {
                openai: Upstream::https("api.openai.com"),
                azure_openai: Upstream::https(PRODUCTION_AZURE_OPENAI_HOST),
                anthropic: Upstream::https("api.anthropic.com"),
                gemini: Upstream::https("generativelanguage.googleapis.com"),
                bedrock: Upstream::https(PRODUCTION_BEDROCK_HOST),
                mistral: Upstream::https("api.mistral.ai"),
                cohere: Upstream::https("api.cohere.com"),
                groq: Upstream::https("api.groq.com"),
                openai_compatible: Upstream::http("vllm.internal", 8000),
            },
            azure_openai_host: PRODUCTION_AZURE_OPENAI_HOST.into(),
            bedrock_host: PRODUCTION_BEDROCK_HOST.into(),
            openai_compatible_host: "vllm.internal:8000".into(),
            control_plane: Upstream::http("127.0.0.1", 8080),
            bench_bypass_route: false,
            catch_all_route: false,
        }
    }

    /// Every provider at one loopback mock, free ports, the given filter (or none). The
    /// providers' host names are the production ones, except Azure's resource (`acme`, as in
    /// the recordings).
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
            providers: ProviderUpstreams::all_at(&mock),
            azure_openai_host: "acme.openai.azure.com".into(),
            bedrock_host: PRODUCTION_BEDROCK_HOST.into(),
            openai_compatible_host: "vllm.internal:8000".into(),
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
        let mut clusters: Vec<String> = self
            .providers
            .clusters()
            .iter()
            .map(|(name, up)| cluster(name, up, "5s"))
            .collect();
        // The admission call waits on this; it must fail fast so the fail mode decides.
        clusters.push(cluster(
            "tollgate_control_plane",
            &self.control_plane,
            "0.25s",
        ));
        let clusters = clusters.join("\n");
        let compat_domains = match self.openai_compatible_host.split_once(':') {
            Some((name, _)) => {
                format!("{}, {}", quoted(name), quoted(&self.openai_compatible_host))
            }
            None => quoted(&self.openai_compatible_host),
        };
        GATEWAY
            .replace("{{ADMIN_PORT}}", &self.admin_port.to_string())
            .replace("{{LISTEN_ADDRESS}}", &self.listen_address)
            .replace("{{LISTEN_PORT}}", &self.listen_port.to_string())
            .replace("{{AZURE_OPENAI_DOMAINS}}", &quoted(&self.azure_openai_host))
            .replace("{{BEDROCK_DOMAINS}}", &quoted(&self.bedrock_host))
            .replace("{{OPENAI_COMPATIBLE_DOMAINS}}", &compat_domains)
            .replace(
                "{{UNSERVED_ROUTES}}\n",
                if self.catch_all_route {
                    CATCH_ALL_ROUTE
                } else {
                    ""
                },
            )
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

/// A YAML double-quoted string (host names need no escapes).
fn quoted(s: &str) -> String {
    format!("\"{s}\"")
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
        // Every provider but the self-hosted server.
        assert_eq!(prod.matches("UpstreamTlsContext").count(), 8);
        assert!(prod.contains("sni: api.anthropic.com"));
        let plain = GatewayConfig::loopback(1, 2, None).render();
        assert!(!plain.contains("UpstreamTlsContext"));
    }
}
