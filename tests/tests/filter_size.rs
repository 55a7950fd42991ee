//! The filter's `.wasm` stays small: every Envoy worker compiles and holds its own copy.

#![allow(clippy::unwrap_used, missing_docs)]

/// Issue 5's target for the shipped artefact (after wasm-opt), in bytes (decimal KB, the
/// stricter reading).
const MAX_WASM_BYTES: u64 = 600 * 1000;

#[test]
fn the_shipped_filter_wasm_is_at_most_600_kb() {
    let path = tollgate_e2e::paths::filter_wasm().unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    println!("{}: {size} bytes", path.display());
    assert!(
        size <= MAX_WASM_BYTES,
        "{} is {size} bytes, over {MAX_WASM_BYTES}",
        path.display()
    );
}
