//! `--cluster`: reserve+settle on one `redis-server` and on a local 3-node Redis Cluster
//! (`--cluster-enabled yes` + `redis-cli --cluster create`), same budgets, same levels, same
//! run. Calls are spread over 12 orgs: all keys of one call share its org's hash tag, so one
//! org lives on one node and a cluster spreads orgs, never one org, across nodes. Every
//! budget names its org (the Cluster rule of docs/redis-keys.md). All four servers share
//! this machine's cores with the bench, as the single node does.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate_control_plane::store::Store;
use tollgate_control_plane::store::redis::{RedisConfig, RedisConnect, RedisStore, Topology};

use super::bench_support::{RedisServer, free_port};
use super::{Args, Work, print_level, redis_command, run_level, setup_with};

const ORGS: usize = 12;

/// Three budgets per org, as the main bench's three (org USD, team USD with a downgrade,
/// user request rate), each scoped to its org.
fn budgets() -> Vec<String> {
    (0..ORGS)
        .flat_map(|k| {
            [
                format!(r#"{{"id":"org-{k}","scopes":["org:o{k}"],"limit_usd":"9000000","period":"monthly"}}"#),
                format!(r#"{{"id":"team-{k}","scopes":["org:o{k}","team:a"],"limit_usd":"9000000","period":"daily","enforcement":{{"downgrade":{{"gpt-5":"gpt-5-mini"}}}}}}"#),
                format!(r#"{{"id":"rate-{k}","scopes":["org:o{k}","user:u"],"limit_requests":1000000000,"period":{{"seconds":60}}}}"#),
            ]
        })
        .collect()
}

/// `redis-server` on `port`, its files in `dir`, with `extra` arguments.
fn start(
    a: &Args,
    port: u16,
    dir: &std::path::Path,
    extra: &[String],
) -> Result<RedisServer, String> {
    let mut args = vec!["--dir".to_owned(), dir.to_string_lossy().into_owned()];
    args.extend_from_slice(extra);
    RedisServer::start_with(redis_command(a), port, &args)
}

/// A 3-node cluster, joined and with every slot served.
fn start_cluster(a: &Args, dir: &std::path::Path) -> Result<(Vec<RedisServer>, Vec<u16>), String> {
    let mut servers = Vec::new();
    let mut ports = Vec::new();
    for i in 0..3 {
        let (port, bus) = (free_port()?, free_port()?);
        let extra = [
            "--cluster-enabled".to_owned(),
            "yes".into(),
            "--cluster-port".into(),
            bus.to_string(),
            "--cluster-config-file".into(),
            format!("nodes-{i}.conf"),
        ];
        servers.push(start(a, port, dir, &extra)?);
        ports.push(port);
    }
    let out = Command::new("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(ports.iter().map(|p| format!("127.0.0.1:{p}")))
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("redis-cli: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for p in &ports {
        loop {
            let ok = redis::Client::open(format!("redis://127.0.0.1:{p}/"))
                .and_then(|c| c.get_connection())
                .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c))
                .is_ok_and(|i| i.contains("cluster_state:ok"));
            if ok {
                break;
            }
            if Instant::now() > deadline {
                return Err("the cluster never reported cluster_state:ok".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok((servers, ports))
}

/// Runs the comparison and prints one line per topology and concurrency.
pub async fn compare(a: &Args) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("tollgate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let result = run(a, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(a: &Args, dir: &std::path::Path) -> Result<(), String> {
    let config = RedisConfig {
        url: String::new(),
        key_prefix: "bench".into(),
        timeout_ms: 2_000,
    };
    let single_port = free_port()?;
    let single_dir = dir.join("single");
    std::fs::create_dir_all(&single_dir).map_err(|e| e.to_string())?;
    let _single = start(a, single_port, &single_dir, &[])?;
    let (_nodes, ports) = start_cluster(a, dir)?;
    let topologies = [
        (
            "one node",
            Topology::Standalone {
                url: format!("redis://127.0.0.1:{single_port}/"),
            },
        ),
        (
            "3-node cluster",
            Topology::Cluster {
                seeds: ports
                    .iter()
                    .map(|p| format!("redis://127.0.0.1:{p}"))
                    .collect(),
            },
        ),
    ];
    println!(
        "reserve+settle, 3 matching budgets per call, {ORGS} orgs (hash tags); one service core; {} s per level",
        a.secs
    );
    let budgets = budgets();
    for (name, topology) in topologies {
        let connect = RedisConnect {
            topology: Some(topology),
            ..RedisConnect::default()
        };
        let store: Arc<dyn Store> =
            Arc::new(RedisStore::connect(&config, &connect).map_err(|e| e.to_string())?);
        let snap = setup_with(&store, &budgets).await?;
        // Warm up: loads the scripts (on every node the calls reach).
        run_level(
            store.clone(),
            snap.clone(),
            16,
            1,
            Work::Pair,
            "warm",
            Some(ORGS),
        )
        .await;
        for c in [1, 16, 64] {
            let l = run_level(
                store.clone(),
                snap.clone(),
                c,
                a.secs,
                Work::Pair,
                &format!("c{c}"),
                Some(ORGS),
            )
            .await;
            print_level(&format!("{name} reserve+settle"), c, &l, None);
        }
    }
    Ok(())
}
