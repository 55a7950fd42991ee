//! The parts a bench runs as processes of their own, so that each one's CPU time can be read
//! from `/proc`: a `redis-server` without persistence and the `tollgate` control-plane binary.
//!
//! The end-to-end suites run the control plane in-process, which is simpler to stop and
//! restart; a bench that splits CPU time between Envoy, the control plane and Redis cannot.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep};

use crate::paths;

/// The admin token of a bench control plane.
pub const ADMIN_TOKEN: &str = "bench-admin-token";
/// The data-plane token of a bench control plane (the filter's `control_plane.token`).
pub const DATAPLANE_TOKEN: &str = "bench-dataplane-token";

/// How long Redis or the control plane may take to answer after being spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A port free a moment ago may be taken before the child binds it: try a few.
const PORT_ATTEMPTS: usize = 3;

/// The `tollgate` binary: `$TOLLGATE_BIN`, else `release/tollgate` in the cargo target dir.
pub fn control_plane_binary() -> anyhow::Result<PathBuf> {
    let path = match std::env::var_os("TOLLGATE_BIN") {
        Some(p) => PathBuf::from(p),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| paths::workspace_root().join("target"))
            .join("release")
            .join("tollgate"),
    };
    if !path.is_file() {
        bail!(
            "no control-plane binary at {}: run `cargo build --release -p tollgate-control-plane --bin tollgate` (or set TOLLGATE_BIN)",
            path.display()
        );
    }
    Ok(path)
}

/// A loopback port nothing listened on a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

/// A running `redis-server` with no RDB and no AOF. Killed on drop.
pub struct RedisProcess {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisProcess {
    /// Starts `redis-server` on a free loopback port and waits for `PONG`.
    pub async fn start() -> anyhow::Result<RedisProcess> {
        let mut last = anyhow!("no attempt");
        for _ in 0..PORT_ATTEMPTS {
            let dir = tempfile::tempdir()?;
            let port = free_port()?;
            let mut child = Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .context("spawning redis-server (apt-get install redis-server)")?;
            match wait_for(&mut child, || ping(port)).await {
                Ok(()) => {
                    return Ok(RedisProcess {
                        child,
                        port,
                        _dir: dir,
                    });
                }
                Err(e) => last = e.context(format!("redis-server on port {port}")),
            }
        }
        Err(last)
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The process id.
    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child
            .id()
            .ok_or_else(|| anyhow!("redis-server exited"))
    }

    /// Runs one command (its words, none containing spaces) and returns the reply's text: a
    /// status, an error or a bulk string (enough for `INFO` and `CONFIG RESETSTAT`).
    pub async fn command(&self, words: &[&str]) -> anyhow::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).await?;
        s.write_all(format!("{}\r\n", words.join(" ")).as_bytes())
            .await?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = s.read(&mut buf).await?;
            anyhow::ensure!(n > 0, "redis closed the connection mid-reply");
            reply.extend_from_slice(&buf[..n]);
            let Some(eol) = reply.windows(2).position(|w| w == b"\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&reply[..eol]).into_owned();
            let body = &reply[eol + 2..];
            match head.split_at_checked(1) {
                Some(("$", len)) => {
                    let len: usize = len.parse().context("bulk length")?;
                    if body.len() >= len {
                        return Ok(String::from_utf8_lossy(&body[..len]).into_owned());
                    }
                }
                Some(("+", status)) => return Ok(status.to_owned()),
                Some(("-", error)) => bail!("redis: {error}"),
                _ => bail!("unexpected reply {head:?}"),
            }
        }
    }
}

async fn ping(port: u16) -> anyhow::Result<()> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(b"PING\r\n").await?;
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).await?;
    anyhow::ensure!(&buf == b"+PONG\r\n", "unexpected answer to PING");
    Ok(())
}

/// Polls `ready` until it succeeds, the child exits, or [`READY_TIMEOUT`] passes.
async fn wait_for<F, Fut>(child: &mut Child, mut ready: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("exited during start-up with {status}");
        }
        let attempt = ready().await;
        if attempt.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return attempt.context(format!("not ready after {READY_TIMEOUT:?}"));
        }
        sleep(Duration::from_millis(50)).await;
    }
}

/// Where the control plane keeps its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// The embedded in-memory store (no `TOLLGATE_REDIS_URL`).
    Memory,
    /// Redis at this URL.
    Redis(String),
}

/// `tollgate serve` as a child process on a free loopback port. Killed on drop.
pub struct ControlPlaneProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl ControlPlaneProcess {
    /// Starts `binary serve` with the bench tokens and `store`; returns once `/readyz` is 200.
    pub async fn start(binary: &Path, store: &StoreChoice) -> anyhow::Result<ControlPlaneProcess> {
        let mut last = anyhow!("no attempt");
        for _ in 0..PORT_ATTEMPTS {
            let dir = tempfile::tempdir()?;
            let log_path = dir.path().join("control-plane.log");
            let log = std::fs::File::create(&log_path)?;
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
            let mut cmd = Command::new(binary);
            cmd.arg("serve")
                .env("TOLLGATE_LISTEN", addr.to_string())
                .env("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN)
                .env("TOLLGATE_DATAPLANE_TOKEN", DATAPLANE_TOKEN)
                .env_remove("REDIS_URL")
                .env_remove("TOLLGATE_REDIS_URL")
                .env_remove("TOLLGATE_AUTH_DISABLED")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .kill_on_drop(true);
            if let StoreChoice::Redis(url) = store {
                cmd.env("TOLLGATE_REDIS_URL", url);
            }
            let mut child = cmd
                .spawn()
                .with_context(|| format!("spawning {}", binary.display()))?;
            let http = reqwest::Client::new();
            let readyz = format!("http://{addr}/readyz");
            let ready = wait_for(&mut child, || async {
                let resp = http.get(&readyz).send().await?;
                anyhow::ensure!(resp.status().is_success(), "/readyz {}", resp.status());
                Ok(())
            })
            .await;
            match ready {
                Ok(()) => {
                    return Ok(ControlPlaneProcess {
                        child,
                        addr,
                        log_path,
                        _dir: dir,
                    });
                }
                Err(e) => {
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    last = e.context(format!("control plane on {addr}; its log:\n{log}"));
                }
            }
        }
        Err(last)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The process id.
    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child
            .id()
            .ok_or_else(|| anyhow!("the control plane exited"))
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`, usually 100).
pub fn clock_ticks_per_sec() -> anyhow::Result<u64> {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .context("running getconf CLK_TCK")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .with_context(|| format!("getconf CLK_TCK said {text:?}"))
}

/// One process as `/proc/<pid>/stat` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Parent process id.
    pub ppid: u32,
    /// User plus system CPU time of every thread of the process (not of reaped children),
    /// in clock ticks.
    pub cpu_ticks: u64,
}

/// Reads `/proc/<pid>/stat`; also returns the command name.
pub fn proc_stat(pid: u32) -> anyhow::Result<(String, ProcStat)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    parse_stat(&text).with_context(|| format!("parsing /proc/{pid}/stat: {text:?}"))
}

/// `pid (comm) state ppid … utime stime …`: the name may hold spaces and parentheses, so the
/// fields are counted from the last `)`. utime and stime are fields 14 and 15 (1-based).
fn parse_stat(text: &str) -> anyhow::Result<(String, ProcStat)> {
    let open = text.find('(').ok_or_else(|| anyhow!("no '('"))?;
    let close = text.rfind(')').ok_or_else(|| anyhow!("no ')'"))?;
    let comm = text.get(open + 1..close).unwrap_or_default().to_owned();
    let rest: Vec<&str> = text
        .get(close + 1..)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    // rest[0] is field 3 (state).
    let field = |n: usize| -> anyhow::Result<u64> {
        rest.get(n - 3)
            .ok_or_else(|| anyhow!("no field {n}"))?
            .parse::<u64>()
            .with_context(|| format!("field {n}"))
    };
    Ok((
        comm,
        ProcStat {
            ppid: u32::try_from(field(4)?)?,
            cpu_ticks: field(14)? + field(15)?,
        },
    ))
}

/// The one child of this process whose command name is `comm` (e.g. the Envoy that
/// [`crate::envoy::Envoy`] spawned, which does not expose its pid).
pub fn child_named(comm: &str) -> anyhow::Result<u32> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) = entry?.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Ok((name, stat)) = proc_stat(pid)
            && stat.ppid == me
            && name == comm
        {
            found.push(pid);
        }
    }
    match found.as_slice() {
        [pid] => Ok(*pid),
        other => bail!("expected one child process named {comm}, found {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let line = "4242 (envoy (x) y) S 17 4242 17 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 9 0";
        let (comm, stat) = parse_stat(line).unwrap();
        assert_eq!(comm, "envoy (x) y");
        assert_eq!(stat.ppid, 17);
        assert_eq!(stat.cpu_ticks, 281);
    }

    #[test]
    fn this_process_can_be_read() {
        let (_, stat) = proc_stat(std::process::id()).unwrap();
        assert!(stat.ppid > 0);
        assert!(clock_ticks_per_sec().unwrap() > 0);
    }
}
