//! Real Redis deployments for the store tests, all local and all started and stopped by the
//! test: a 3-node Redis Cluster (`--cluster-enabled yes` + `redis-cli --cluster create`), a
//! primary with one replica and three Sentinels, and a TLS-only server. Every process is
//! killed when its value is dropped, so nothing outlives the test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// How long a deployment may take to form (cluster slots agreed, Sentinels aware of each
/// other and of the replica).
const FORM_TIMEOUT: Duration = Duration::from_secs(30);

fn tool(name: &str) -> PathBuf {
    let fixed = Path::new("/usr/bin").join(name);
    if fixed.exists() {
        return fixed;
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("{name} not found: install the Debian package `redis-server` (scripts/setup.sh does); these tests never skip")
        })
}

/// One `redis-server` process started with `args`, killed on drop.
pub struct Node {
    child: Option<Child>,
    /// Its (plain or TLS) port.
    pub port: u16,
}

impl Node {
    /// Starts `redis-server` with `args` (a config file first, for a Sentinel) and no stdio.
    pub fn spawn(port: u16, args: &[String]) -> Node {
        let child = Command::new(tool("redis-server"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        Node {
            child: Some(child),
            port,
        }
    }

    /// Kills it (SIGKILL: a crash, nothing flushed) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A plain-TCP synchronous client.
    pub fn client(&self) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(2))
            .unwrap()
    }

    /// Polls `check` on a plain connection until it holds (the server may still be starting).
    pub fn wait_until(&self, what: &str, check: impl Fn(&mut redis::Connection) -> bool) {
        let deadline = Instant::now() + FORM_TIMEOUT;
        let url = format!("redis://127.0.0.1:{}/", self.port);
        loop {
            let ok = redis::Client::open(url.as_str())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
                .is_ok_and(|mut c| check(&mut c));
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "{what} (port {})", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn base_args(port: u16, dir: &Path) -> Vec<String> {
    let mut a: Vec<String> = ["--port", &port.to_string(), "--bind", "127.0.0.1"]
        .map(str::to_owned)
        .to_vec();
    a.extend(["--save", "", "--appendonly", "no", "--dir"].map(str::to_owned));
    a.push(dir.display().to_string());
    a
}

fn ping(c: &mut redis::Connection) -> bool {
    redis::cmd("PING").query::<String>(c).is_ok()
}

/// Three primaries forming one Redis Cluster (no replicas), each slot range on one node.
pub struct Cluster {
    pub nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts three `--cluster-enabled yes` servers, joins them with `redis-cli --cluster
    /// create` and waits until every node reports `cluster_state:ok`.
    pub fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        for i in 0..3 {
            let (port, bus) = (free_port(), free_port());
            let mut args = base_args(port, dir.path());
            args.extend([
                "--cluster-enabled".into(),
                "yes".into(),
                // Redis 7: the bus port is set, not port + 10000 (which may be taken).
                "--cluster-port".into(),
                bus.to_string(),
                "--cluster-config-file".into(),
                format!("nodes-{i}.conf"),
                "--cluster-node-timeout".into(),
                "5000".into(),
            ]);
            let node = Node::spawn(port, &args);
            node.wait_until("cluster node up", ping);
            nodes.push(node);
        }
        let out = Command::new(tool("redis-cli"))
            .arg("--cluster")
            .arg("create")
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        for n in &nodes {
            n.wait_until("cluster_state:ok", |c| {
                redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query::<String>(c)
                    .is_ok_and(|i| i.contains("cluster_state:ok"))
            });
        }
        Cluster { nodes, _dir: dir }
    }

    /// The seed URLs (every node; the client needs one).
    pub fn seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }
}
