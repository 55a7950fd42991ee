//! The filter's `.wasm` stays small: every Envoy worker compiles and holds its own copy.

#![allow(clippy::unwrap_used, missing_docs)]

/// Hard ceiling. The target is 600 KB; the figure is in the closing notes of each change.
const MAX_WASM_BYTES: u64 = 1024 * 1024;

#[test]
fn the_filter_wasm_is_under_one_megabyte() {
    let path = tollgate_e2e::paths::filter_wasm().unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    println!("{}: {size} bytes", path.display());
    assert!(
        size <= MAX_WASM_BYTES,
        "{} is {size} bytes, over {MAX_WASM_BYTES}",
        path.display()
    );
}
