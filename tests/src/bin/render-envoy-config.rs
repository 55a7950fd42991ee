//! Prints the Envoy configuration rendered from `envoy/*.template.yaml`.
//!
//! - no flags: the production `envoy/envoy.yaml`
//!   (`cargo run -p tollgate-e2e --bin render-envoy-config > envoy/envoy.yaml`);
//! - `--local`: the local stack of `scripts/up.sh`, with `--wasm PATH`, `--listen-port N`,
//!   `--admin-port N`, `--control-plane-port N`, `--dataplane-token T` (the filter's token
//!   for the control plane) and, for the mock provider, `--mock-port N` (without it the real
//!   providers are used, over TLS).

use std::path::PathBuf;

use tollgate_e2e::gateway_config::{
    GatewayConfig, ProviderUpstreams, Upstream, WasmFilter, reference_plugin_config,
};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let port = |name: &str, default: u16| -> anyhow::Result<u16> {
        Ok(flag(name)
            .map(|v| v.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let mut config = GatewayConfig::production(reference_plugin_config());
    if args.iter().any(|a| a == "--local") {
        config.listen_address = "127.0.0.1".into();
        config.listen_port = port("--listen-port", 10000)?;
        config.admin_port = port("--admin-port", 9901)?;
        config.control_plane = Upstream::http("127.0.0.1", port("--control-plane-port", 8080)?);
        if let Some(wasm) = flag("--wasm") {
            let mut plugin_config = reference_plugin_config();
            if let Some(token) = flag("--dataplane-token") {
                plugin_config["control_plane"]["token"] = token.into();
            }
            config.wasm = Some(WasmFilter {
                path: PathBuf::from(wasm),
                plugin_config,
            });
        }
        if let Some(mock) = flag("--mock-port") {
            let mock = Upstream::http("127.0.0.1", mock.parse()?);
            config.providers = ProviderUpstreams::all_at(&mock);
        }
    }
    print!("{}", config.render());
    Ok(())
}
