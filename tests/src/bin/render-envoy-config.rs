//! Prints the production `envoy/envoy.yaml` rendered from the templates:
//! `cargo run -p tollgate-e2e --bin render-envoy-config > envoy/envoy.yaml`.

use tollgate_e2e::gateway_config::GatewayConfig;

fn main() {
    print!(
        "{}",
        GatewayConfig::production(tollgate_e2e::gateway_config::reference_plugin_config()).render()
    );
}
