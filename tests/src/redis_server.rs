//! A real `redis-server` for one test: a free loopback port, its own temp dir, and (when asked)
//! an append-only file written with `fsync` on every write, so a restart on the same dir and
//! port comes back with every write Redis acknowledged.
//!
//! There is no skip: without the binary the test fails and says how to install it, because an
//! end-to-end suite that silently runs without Redis proves nothing about Redis.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep};

/// How long Redis may take to start (it replays its AOF first).
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How many free ports a first start tries: a port found free can be taken by another test
/// before Redis binds it.
const PORT_ATTEMPTS: usize = 3;

/// Persistence of a [`RedisServer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing on disk (no RDB, no AOF): a restart comes back empty.
    None,
    /// `--appendonly yes --appendfsync always`: every acknowledged write survives a kill.
    AppendOnly,
}

/// A running `redis-server`. Killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    persistence: Persistence,
    dir: tempfile::TempDir,
}

/// `$TOLLGATE_REDIS_SERVER`, else `redis-server` on `PATH`, else `/usr/bin/redis-server`.
pub fn binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("TOLLGATE_REDIS_SERVER") {
        return Ok(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join("redis-server"))
        .chain([PathBuf::from("/usr/bin/redis-server")])
        .find(|p| p.is_file());
    on_path.ok_or_else(|| {
        anyhow!(
            "redis-server not found (looked at $TOLLGATE_REDIS_SERVER, PATH and /usr/bin): \
             install the Debian package `redis-server` (scripts/setup.sh does); \
             the end-to-end suite never skips"
        )
    })
}

impl RedisServer {
    /// Starts a server on a free loopback port with its own temp dir.
    pub async fn start(persistence: Persistence) -> anyhow::Result<RedisServer> {
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let mut server = RedisServer {
                child: None,
                port: crate::ports::free_port()?,
                persistence,
                dir: tempfile::tempdir()?,
            };
            match server.spawn().await {
                Ok(()) => return Ok(server),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("redis-server did not start")))
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The port (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data dir (the same across restarts; the AOF lives under it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's process id, while it runs (for a test that stalls it with SIGSTOP).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Whether the server is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (SIGKILL, like a crash: with `appendfsync always` nothing it
    /// acknowledged is lost) and waits for it to exit. Stopping a stopped server is a no-op.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await.context("killing redis-server")?;
        }
        Ok(())
    }

    /// Stops the server and starts it again on the same port and dir.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        self.spawn().await
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Sends one inline command and returns the raw RESP reply (`+PONG\r\n`, `:1\r\n`…).
    /// Enough for readiness and for tests that peek; the stores use a real client.
    pub async fn command(&self, line: &str) -> anyhow::Result<String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut conn = TcpStream::connect(addr).await?;
        conn.write_all(format!("{line}\r\n").as_bytes()).await?;
        let mut buf = vec![0u8; 64 * 1024];
        let n = conn.read(&mut buf).await?;
        Ok(String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into_owned())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new(binary()?);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", ""])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path());
        match self.persistence {
            Persistence::None => cmd.args(["--appendonly", "no"]),
            Persistence::AppendOnly => cmd.args(["--appendonly", "yes", "--appendfsync", "always"]),
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("spawning redis-server")?;
        self.child = Some(child);
        self.wait_ready()
            .await
            .map_err(|e| anyhow!("{e:#}\n--- redis log ---\n{}", self.log()))
    }

    /// Polls PING until the server answers PONG (it answers LOADING while replaying the AOF).
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                bail!("redis-server exited during start-up with {status}");
            }
            if self
                .command("PING")
                .await
                .is_ok_and(|r| r.starts_with("+PONG"))
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("redis-server not ready after {READY_TIMEOUT:?}");
            }
            sleep(Duration::from_millis(20)).await;
        }
    }
}
