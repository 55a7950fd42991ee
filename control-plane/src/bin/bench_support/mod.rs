//! What the control plane's bench binaries share: a throwaway `redis-server` on a free
//! loopback port, a Redis store on it, flag parsing, Redis's own counters (memory, CPU), this
//! process's CPU and memory from `/proc`, timing summaries and the `main` wrapper.
//!
//! Each bench compiles this module as its own (`mod bench_support;`) and uses a part of it.
#![allow(dead_code)]
// Timings, rates and CPU shares are statistics, not money.
#![allow(clippy::float_arithmetic)]

use std::future::Future;
use std::process::{Child, Command, ExitCode, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate_control_plane::state::AppState;
use tollgate_control_plane::store::Store;
use tollgate_control_plane::store::redis::{RedisConfig, RedisStore};

/// Where Debian puts `redis-server`; every bench takes `--redis-server PATH` to change it.
pub const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// The value after `name` on the command line, parsed, or `default` when it is absent or does
/// not parse.
pub fn arg<T: FromStr>(name: &str, default: T) -> T {
    let v: Vec<String> = std::env::args().collect();
    v.iter()
        .position(|x| x == name)
        .and_then(|i| v.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Whether the bare flag `name` is on the command line.
pub fn flag(name: &str) -> bool {
    std::env::args().any(|x| x == name)
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// A `redis-server` the bench started, with persistence off; killed when dropped.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    pub url: String,
}

impl RedisServer {
    /// `bin` on a free port, answering before this returns.
    pub fn start(bin: &str) -> Result<Self, String> {
        Self::start_with(Command::new(bin), free_port()?, &[])
    }

    /// `command` (a `redis-server`, possibly behind `taskset`) on `port` with `extra`
    /// arguments; waits up to 10 s for it to answer a connection.
    pub fn start_with(mut command: Command, port: u16, extra: &[String]) -> Result<Self, String> {
        let program = command.get_program().to_string_lossy().into_owned();
        let child = command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("{program}: {e} (install redis-server)"))?;
        let server = Self {
            child,
            port,
            url: format!("redis://127.0.0.1:{port}/"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.connection().is_err() {
            if Instant::now() > deadline {
                return Err(format!("redis-server on {port} did not answer within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// A plain connection for the bench's own `INFO` and `CONFIG` commands.
    pub fn connection(&self) -> Result<redis::Connection, String> {
        redis::Client::open(self.url.as_str())
            .and_then(|c| c.get_connection())
            .map_err(|e| e.to_string())
    }

    /// The control plane's Redis store on this server.
    pub fn store(&self, key_prefix: &str, timeout_ms: u64) -> Result<Arc<dyn Store>, String> {
        Ok(Arc::new(
            RedisStore::new(&RedisConfig {
                url: self.url.clone(),
                key_prefix: key_prefix.into(),
                timeout_ms,
            })
            .map_err(|e| e.to_string())?,
        ))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The numeric field `name` of `INFO section`, 0 when absent.
pub fn info_field(conn: &mut redis::Connection, section: &str, name: &str) -> f64 {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query(conn)
        .unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Redis's CPU time so far (user + system), microseconds. Unlike `usec_per_call` (wall time
/// inside a command, inflated whenever another process takes the core) this is CPU spent,
/// reading and parsing requests and writing replies included.
pub fn redis_cpu_us(conn: &mut redis::Connection) -> f64 {
    (info_field(conn, "cpu", "used_cpu_user") + info_field(conn, "cpu", "used_cpu_sys")) * 1e6
}

/// Redis's `used_memory`, bytes.
pub fn redis_used_memory(conn: &mut redis::Connection) -> f64 {
    info_field(conn, "memory", "used_memory")
}

/// User + system CPU seconds of `/proc/<what>/stat` (`self` or `thread-self`).
fn proc_cpu_secs(what: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{what}/stat")).unwrap_or_default();
    // Fields after the ")" that closes the command name: utime is the 12th, stime the 13th,
    // in ticks of USER_HZ (100 on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// This process's CPU time so far, microseconds.
pub fn process_cpu_us() -> f64 {
    proc_cpu_secs("self") * 1e6
}

/// The calling thread's CPU time so far, seconds.
pub fn thread_cpu_secs() -> f64 {
    proc_cpu_secs("thread-self")
}

/// This process's peak resident set (`VmHWM`), KiB.
pub fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn wall_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The `p`th percentile of sorted samples (0 when there are none).
pub fn percentile<T: Copy + Default>(sorted: &[T], p: usize) -> T {
    sorted
        .get((sorted.len() * p / 100).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// "min …, median …, max …" of timings in milliseconds (sorts them).
pub fn summary_ms(ms: &mut [f64]) -> String {
    ms.sort_by(f64::total_cmp);
    format!(
        "min {:.1} ms, median {:.1} ms, max {:.1} ms",
        percentile(ms, 0),
        percentile(ms, 50),
        ms.last().copied().unwrap_or_default()
    )
}

/// The control plane's HTTP API (`server::run`, its background tasks included) serving
/// `state` on a free loopback port, until [`Service::stop`] or the end of the process.
pub struct Service {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Service {
    pub async fn start(state: AppState) -> Result<Self, String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let base = format!(
            "http://{}",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(tollgate_control_plane::server::run(
            listener,
            state,
            async {
                let _ = stopped.await;
            },
        ));
        Ok(Self { base, stop, task })
    }

    /// Shuts the service down and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Runs `bench` on a two-worker runtime (one per core of the machine the figures come from)
/// and turns its error into a message naming `name` and a failing exit code.
pub fn main_two_workers<F>(name: &str, bench: F) -> ExitCode
where
    F: Future<Output = Result<(), String>>,
{
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(bench) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The machine's load averages over 1, 5 and 15 minutes, as `/proc/loadavg` gives them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Loads `ledger::synthetic`'s calls `0..n` through `Store::settle_many` with `tasks` loaders
/// (batches of 256 taken in turn, so the calls arrive nearly in time order), then runs the
/// ledger's upkeep once so every call is in its rollups, as the control plane's upkeep would
/// have it. Returns the load's and the upkeep's seconds.
pub async fn load_synthetic(
    store: &Arc<dyn Store>,
    n: usize,
    start_ms: i64,
    tasks: usize,
) -> Result<(f64, f64), String> {
    use tollgate_control_plane::ledger::synthetic;
    const BATCH: usize = 256;
    let t = Instant::now();
    let tasks = tasks.max(1);
    let mut handles = Vec::new();
    for k in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut i = k * BATCH;
            while i < n {
                let end = (i + BATCH).min(n);
                let ops: Vec<_> = (i..end).map(|j| synthetic::op(j, n, start_ms)).collect();
                store.settle_many(&ops).await.map_err(|e| e.to_string())?;
                i += tasks * BATCH;
            }
            Ok::<(), String>(())
        }));
    }
    for h in handles {
        h.await.map_err(|e| e.to_string())??;
    }
    let loaded = t.elapsed().as_secs_f64();
    let t = Instant::now();
    store.ledger_upkeep().await.map_err(|e| e.to_string())?;
    Ok((loaded, t.elapsed().as_secs_f64()))
}
