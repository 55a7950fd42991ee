//! Python from the project's `.venv` (scripts/setup.sh installs the official provider SDKs
//! there, pinned in `scripts/requirements.txt`), to drive the gateway the way real clients do.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::Command;

use crate::paths;

/// The longest one script may run: SDK imports take a second or two on a loaded machine.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// What a script did.
#[derive(Debug, Clone)]
pub struct PythonRun {
    /// Exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl PythonRun {
    /// Whether it exited 0.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

impl std::fmt::Display for PythonRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "python exited with {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The venv's interpreter: `$TOLLGATE_PYTHON`, else `.venv/bin/python`. Missing is an error
/// that says how to install it, never a skipped test.
pub fn interpreter() -> anyhow::Result<PathBuf> {
    let path = match std::env::var_os("TOLLGATE_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => paths::workspace_root().join(".venv/bin/python"),
    };
    if !path.is_file() {
        bail!(
            "no Python at {}: run scripts/setup.sh (it creates .venv with the SDKs from scripts/requirements.txt)",
            path.display()
        );
    }
    Ok(path)
}

/// Runs `code` (`python -c`) with `env` added to a cleared environment (only `PATH` and
/// `HOME` kept, so no proxy variable or real API key of the machine leaks into a test).
pub async fn run(code: &str, env: &[(&str, &str)]) -> anyhow::Result<PythonRun> {
    let mut cmd = Command::new(interpreter()?);
    cmd.arg("-c").arg(code).env_clear();
    for keep in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(keep) {
            cmd.env(keep, v);
        }
    }
    cmd.env("PYTHONUNBUFFERED", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().context("spawning python")?;
    let out = tokio::time::timeout(SCRIPT_TIMEOUT, child.wait_with_output())
        .await
        .with_context(|| format!("python did not finish within {SCRIPT_TIMEOUT:?}"))??;
    Ok(PythonRun {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}
