//! A real Envoy process for one test: free ports, readiness, stats, and its log on failure.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep};

use crate::paths;

/// How long Envoy may take to load the filter and become ready (V8 compiles the module).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running Envoy. Killed on drop; [`Envoy::stop`] stops it cleanly.
pub struct Envoy {
    child: Child,
    /// The `llm_gateway` listener.
    pub listener: SocketAddr,
    /// The admin interface.
    pub admin: SocketAddr,
    log_path: PathBuf,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Envoy {
    /// Starts Envoy with `config_yaml` and `concurrency` workers; returns once `/ready` says
    /// LIVE. Listener and admin ports of 0 are read back from the admin interface.
    pub async fn start(config_yaml: &str, concurrency: u32) -> anyhow::Result<Envoy> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("envoy.yaml");
        let admin_path = dir.path().join("admin-address");
        let log_path = dir.path().join("envoy.log");
        std::fs::write(&config, config_yaml)?;
        let child = Command::new(paths::envoy_binary()?)
            .arg("-c")
            .arg(&config)
            .arg("--concurrency")
            .arg(concurrency.to_string())
            // Several Envoys on one machine (parallel tests) must not share hot-restart memory.
            .arg("--disable-hot-restart")
            .arg("--admin-address-path")
            .arg(&admin_path)
            .arg("--log-path")
            .arg(&log_path)
            // TOLLGATE_ENVOY_WASM_LOG=info quiets the per-stream wasm debug lines (benches).
            .args([
                "-l",
                "info",
                "--component-log-level",
                &format!(
                    "wasm:{}",
                    std::env::var("TOLLGATE_ENVOY_WASM_LOG").unwrap_or_else(|_| "debug".into())
                ),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("spawning envoy")?;
        let mut envoy = Envoy {
            child,
            listener: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            log_path,
            http: reqwest::Client::new(),
            _dir: dir,
        };
        envoy
            .wait_ready(&admin_path)
            .await
            .map_err(|e| anyhow!("{e:#}\n--- envoy log ---\n{}", envoy.log()))?;
        Ok(envoy)
    }

    async fn wait_ready(&mut self, admin_path: &std::path::Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("envoy exited during start-up with {status}");
            }
            if Instant::now() > deadline {
                bail!("envoy not ready after {READY_TIMEOUT:?}");
            }
            if self.admin.port() == 0 {
                if let Some(addr) = std::fs::read_to_string(admin_path)
                    .ok()
                    .and_then(|text| text.trim().parse().ok())
                {
                    self.admin = addr;
                }
            } else if self
                .admin_get("/ready")
                .await
                .is_ok_and(|body| body.trim() == "LIVE")
            {
                self.listener = self.listener_address("llm_gateway").await?;
                return Ok(());
            }
            sleep(Duration::from_millis(50)).await;
        }
    }

    async fn listener_address(&self, name: &str) -> anyhow::Result<SocketAddr> {
        let body = self.admin_get("/listeners?format=json").await?;
        let json: serde_json::Value = serde_json::from_str(&body)?;
        let listener = json["listener_statuses"]
            .as_array()
            .and_then(|all| all.iter().find(|l| l["name"] == name))
            .ok_or_else(|| anyhow!("no listener {name} in {body}"))?;
        let sock = &listener["local_address"]["socket_address"];
        let port = sock["port_value"]
            .as_u64()
            .ok_or_else(|| anyhow!("no port in {listener}"))?;
        let ip = sock["address"].as_str().unwrap_or("127.0.0.1");
        Ok(SocketAddr::new(ip.parse()?, u16::try_from(port)?))
    }

    /// GET on the admin interface.
    pub async fn admin_get(&self, path: &str) -> anyhow::Result<String> {
        let resp = self
            .http
            .get(format!("http://{}{path}", self.admin))
            .send()
            .await?;
        Ok(resp.error_for_status()?.text().await?)
    }

    /// One counter or gauge from `/stats` (`wasmcustom.` names included), if present.
    pub async fn stat(&self, name: &str) -> anyhow::Result<Option<u64>> {
        let body = self.admin_get(&format!("/stats?filter=^{name}$")).await?;
        Ok(body
            .lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix(": "))
            })
            .and_then(|v| v.trim().parse().ok()))
    }

    /// The listener's base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.listener)
    }

    /// Envoy's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The resident memory of Envoy's process (`VmRSS`, bytes), when it can be read.
    pub fn resident_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()?)).ok()?;
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse::<u64>()
            .ok()?;
        Some(kb * 1024)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills Envoy (SIGKILL): its VMs die with what they hold, as on a crash.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    /// Stops Envoy through `/quitquitquit`, killing it if it does not exit in time.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self
            .http
            .post(format!("http://{}/quitquitquit", self.admin))
            .send()
            .await;
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => self.child.kill().await?,
        }
        Ok(())
    }
}
