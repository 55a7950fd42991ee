//! Embeds the shipped price table minified: the filter's `.wasm` carries it, and the
//! pretty-printed file's whitespace is a sixth of the module. The file is validated at run
//! time by `PriceTable::shipped()`; here it only has to be JSON.

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
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("prices.min.json");
    if let Err(e) = std::fs::write(&out, minified) {
        println!("cargo::error=cannot write {}: {e}", out.display());
    }
}
