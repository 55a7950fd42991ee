//! Test support: a real `redis-server` on a free port, stopped when dropped.
//!
//! There is no skip: without `/usr/bin/redis-server` (or one on PATH) the Redis tests fail
//! loudly, because a store contract that silently runs on one implementation proves nothing.

#![allow(dead_code)]

pub mod history;
pub mod lines;
pub mod topologies;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running redis-server child process.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: Option<PathBuf>,
}

fn binary() -> PathBuf {
    let fixed = Path::new("/usr/bin/redis-server");
    if fixed.exists() {
        return fixed.to_owned();
    }
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("redis-server"))
        .find(|p| p.exists());
    found.unwrap_or_else(|| {
        panic!(
            "redis-server not found (looked at /usr/bin/redis-server and PATH): \
             install the Debian package `redis-server`; the Redis store tests never skip"
        )
    })
}

/// A free TCP port on loopback (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// A throwaway server: no RDB snapshots, no AOF.
    pub fn start() -> RedisServer {
        Self::spawn(free_port(), None)
    }

    /// A server that logs every write to an append-only file in `dir` (fsync always), so a
    /// restart on the same dir and port comes back with every acknowledged write.
    pub fn start_with_aof(dir: &Path) -> RedisServer {
        Self::spawn(free_port(), Some(dir.to_owned()))
    }

    fn spawn(port: u16, dir: Option<PathBuf>) -> RedisServer {
        let mut cmd = Command::new(binary());
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ]);
        match &dir {
            Some(d) => {
                cmd.args(["--appendonly", "yes", "--appendfsync", "always", "--dir"]);
                cmd.arg(d);
            }
            None => {
                cmd.args(["--appendonly", "no"]);
            }
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let server = RedisServer {
            child: Some(child),
            port,
            dir,
        };
        server.wait_ready();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Polls PING until the server answers (it may be replaying its AOF).
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let client = redis::Client::open(self.url()).unwrap();
        loop {
            let ok = client
                .get_connection()
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if ok.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not start: {ok:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (and AOF dir).
    pub fn restart(&mut self) {
        self.stop();
        let mut again = Self::spawn(self.port, self.dir.clone());
        self.child = again.child.take();
    }

    /// A synchronous client, for inspecting keys and INFO.
    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
pub mod app;

/// The Redis store on `server`, with the default key prefix.
pub fn redis_store(server: &RedisServer) -> tollgate_control_plane::store::redis::RedisStore {
    use tollgate_control_plane::store::redis::{RedisConfig, RedisStore};
    RedisStore::new(&RedisConfig {
        url: server.url(),
        key_prefix: "tg".into(),
        timeout_ms: 2_000,
    })
    .expect("a Redis store on the test server")
}

/// The Redis store on a 3-node `cluster`, with the default key prefix.
pub fn cluster_store(
    cluster: &topologies::Cluster,
) -> tollgate_control_plane::store::redis::RedisStore {
    use tollgate_control_plane::store::redis::{RedisConfig, RedisConnect, RedisStore, Topology};
    let config = RedisConfig {
        url: String::new(),
        key_prefix: "tg".into(),
        timeout_ms: 2_000,
    };
    let connect = RedisConnect {
        topology: Some(Topology::Cluster {
            seeds: cluster.seeds(),
        }),
        ..RedisConnect::default()
    };
    RedisStore::connect(&config, &connect).expect("a Redis store on the test cluster")
}
