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

/// A primary, one asynchronous replica and three Sentinels watching the primary as `tg`
/// (quorum 2, down after 1 s), each in its own dir.
pub struct SentinelSet {
    pub primary: Node,
    pub replica: Node,
    pub sentinels: Vec<Node>,
    _dir: tempfile::TempDir,
}

/// The monitored primary's name in [`SentinelSet`].
pub const SENTINEL_MASTER: &str = "tg";

/// `SENTINEL MASTER tg` as field → value pairs.
fn sentinel_master(c: &mut redis::Connection) -> Vec<(String, String)> {
    let flat: Vec<String> = redis::cmd("SENTINEL")
        .arg("MASTER")
        .arg(SENTINEL_MASTER)
        .query(c)
        .unwrap_or_default();
    flat.chunks(2)
        .filter_map(|p| Some((p.first()?.clone(), p.get(1)?.clone())))
        .collect()
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

impl SentinelSet {
    /// Starts the primary and its replica, waits until the replica is in sync, then starts
    /// three Sentinels and waits until each knows the replica and the two other Sentinels
    /// (a failover needs both).
    pub fn start() -> SentinelSet {
        let dir = tempfile::tempdir().unwrap();
        let sub = |name: &str| {
            let d = dir.path().join(name);
            std::fs::create_dir_all(&d).unwrap();
            d
        };
        let p = free_port();
        let primary = Node::spawn(p, &base_args(p, &sub("primary")));
        primary.wait_until("primary up", ping);
        let r = free_port();
        let mut args = base_args(r, &sub("replica"));
        args.extend(["--replicaof".into(), "127.0.0.1".into(), p.to_string()]);
        let replica = Node::spawn(r, &args);
        primary.wait_until("replica in sync", |c| {
            redis::cmd("INFO")
                .arg("replication")
                .query::<String>(c)
                .is_ok_and(|i| i.contains("connected_slaves:1") && i.contains("state=online"))
        });
        let mut sentinels = Vec::new();
        for i in 0..3 {
            let port = free_port();
            let d = sub(&format!("sentinel-{i}"));
            let conf = d.join("sentinel.conf");
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\n\
                     sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {p} 2\n\
                     sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n\
                     sentinel failover-timeout {SENTINEL_MASTER} 10000\n",
                    d.display()
                ),
            )
            .unwrap();
            sentinels.push(Node::spawn(
                port,
                &[conf.display().to_string(), "--sentinel".into()],
            ));
        }
        for s in &sentinels {
            s.wait_until("sentinel sees the replica and the other sentinels", |c| {
                let m = sentinel_master(c);
                field(&m, "num-slaves") == Some("1")
                    && field(&m, "num-other-sentinels") == Some("2")
            });
        }
        SentinelSet {
            primary,
            replica,
            sentinels,
            _dir: dir,
        }
    }

    /// The Sentinels' URLs.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    /// Waits until the first Sentinel names the replica as the primary.
    pub fn wait_promoted(&self) {
        let want = self.replica.port.to_string();
        self.sentinels[0].wait_until("the replica promoted", |c| {
            redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(SENTINEL_MASTER)
                .query::<Vec<String>>(c)
                .is_ok_and(|a| a.get(1) == Some(&want))
        });
    }
}

/// PEM files of a test CA, a server certificate for 127.0.0.1 and a client certificate.
pub struct TestPki {
    pub dir: tempfile::TempDir,
}

impl TestPki {
    /// Makes the CA and both certificates (ECDSA P-256) and writes `ca.pem`, `server.pem`,
    /// `server.key`, `client.pem`, `client.key`.
    pub fn new() -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, pem: String| std::fs::write(dir.path().join(name), pem).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "tollgate test CA");
        write("ca.pem", ca.self_signed(&ca_key).unwrap().pem());
        let issuer = Issuer::new(ca, ca_key);
        for (name, sans) in [("server", vec!["127.0.0.1".to_owned()]), ("client", vec![])] {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(sans).unwrap();
            p.distinguished_name.push(DnType::CommonName, name);
            write(
                &format!("{name}.pem"),
                p.signed_by(&key, &issuer).unwrap().pem(),
            );
            write(&format!("{name}.key"), key.serialize_pem());
        }
        TestPki { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A `redis-server` that speaks only TLS (client certificates required) and only to the
/// ACL user `tollgate` with `password` (the default user is off).
pub fn tls_server(pki: &TestPki, password: &str) -> Node {
    let port = free_port();
    let mut args = base_args(0, pki.dir.path());
    let file = |n: &str| pki.path(n).display().to_string();
    args.extend([
        "--tls-port".into(),
        port.to_string(),
        "--tls-cert-file".into(),
        file("server.pem"),
        "--tls-key-file".into(),
        file("server.key"),
        "--tls-ca-cert-file".into(),
        file("ca.pem"),
        "--tls-auth-clients".into(),
        "yes".into(),
        "--user".into(),
        "default".into(),
        "off".into(),
        "--user".into(),
        "tollgate".into(),
        "on".into(),
        format!(">{password}"),
        "~*".into(),
        "&*".into(),
        "+@all".into(),
    ]);
    let node = Node::spawn(port, &args);
    let deadline = Instant::now() + FORM_TIMEOUT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "TLS redis-server never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    node
}
