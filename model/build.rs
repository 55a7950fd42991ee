//! Embeds the shipped price table minified and DEFLATE-compressed: the filter's `.wasm`
//! carries it, and the minified JSON alone was a tenth of the module (63 KB; 7.4 KB
//! compressed, plus ~15 KB of inflate code: the `.wasm` is 41 KB smaller). It is inflated
//! once per VM, at configuration. The file is validated at run time by
//! `PriceTable::shipped()`; here it only has to be JSON.

use std::path::PathBuf;

fn main() {
    println!("cargo::rerun-if-changed=prices/prices.json");
    let text = match std::fs::read_to_string("prices/prices.json") {
        Ok(t) => t,
        Err(e) => {
            println!("cargo::error=cannot read prices/prices.json: {e}");
            return;
        }
    };
    let minified = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => v.to_string(),
        Err(e) => {
            println!("cargo::error=prices/prices.json is not JSON: {e}");
            return;
        }
    };
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default())
        .join("prices.min.json.deflate");
    // Level 10 (miniz's best): the build pays once, every Envoy worker loads fewer bytes.
    let compressed = miniz_oxide::deflate::compress_to_vec(minified.as_bytes(), 10);
    if let Err(e) = std::fs::write(&out, compressed) {
        println!("cargo::error=cannot write {}: {e}", out.display());
    }
}
