//! How the Redis store reaches Redis: one node, a Redis Cluster, or the primary a set of
//! Sentinels names (followed across failovers); over plain TCP or TLS (rustls with ring), with
//! a username and password or a password alone. Every deployment is one [`Conn`], which the
//! store clones per command, so the store's code does not know which it talks to.
//!
//! All three connect lazily: the service starts while Redis is down, and `/readyz` says so.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ErrorKind, IntoConnectionInfo, Pipeline,
    RedisError, RedisFuture, RedisResult, ServerErrorKind, TlsCertificates, TlsMode, Value,
};

/// Which Redis deployment the store talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// One node (or a managed endpoint that proxies to one primary).
    Standalone {
        /// `redis://host:port/db`, or `rediss://` for TLS.
        url: String,
    },
    /// A Redis Cluster, found from any of its nodes.
    Cluster {
        /// Seed nodes (`redis://` or `rediss://`); the client learns the rest.
        seeds: Vec<String>,
    },
    /// The primary that the Sentinels name for `master`, looked up again after a failover.
    Sentinel {
        /// The Sentinels (`redis://host:26379`, or `rediss://`: then the primary is reached
        /// over TLS too). Credentials in these URLs are the Sentinels' own.
        sentinels: Vec<String>,
        /// The monitored primary's name (`sentinel monitor <name> …`).
        master: String,
    },
}

/// Where Redis is and how to authenticate to it.
#[derive(Clone, Default)]
pub struct RedisConnect {
    /// The deployment.
    pub topology: Option<Topology>,
    /// ACL user (Redis 6+); `None` is the `default` user.
    pub username: Option<String>,
    /// Password (`AUTH`); overrides one in a URL.
    pub password: Option<String>,
    /// CA certificates (PEM) to trust for TLS instead of the system's.
    pub tls_ca_pem: Option<Vec<u8>>,
    /// Client certificate chain and key (PEM), for servers that require client certificates.
    pub tls_client_pem: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for RedisConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConnect")
            .field("topology", &self.topology)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls_ca_pem", &self.tls_ca_pem.is_some())
            .field("tls_client_pem", &self.tls_client_pem.is_some())
            .finish()
    }
}

impl RedisConnect {
    /// One node at `url`, with whatever credentials the URL holds.
    pub fn standalone(url: &str) -> RedisConnect {
        RedisConnect {
            topology: Some(Topology::Standalone {
                url: url.to_owned(),
            }),
            ..RedisConnect::default()
        }
    }

    fn certificates(&self) -> Option<TlsCertificates> {
        if self.tls_ca_pem.is_none() && self.tls_client_pem.is_none() {
            return None;
        }
        Some(TlsCertificates {
            client_tls: self
                .tls_client_pem
                .clone()
                .map(|(client_cert, client_key)| redis::ClientTlsConfig {
                    client_cert,
                    client_key,
                }),
            root_cert: self.tls_ca_pem.clone(),
        })
    }

    /// A client for one node at `url`, with this config's credentials and certificates.
    fn client(&self, url: &str) -> RedisResult<Client> {
        let mut info = url.into_connection_info()?;
        let mut settings = info.redis_settings().clone();
        if let Some(u) = &self.username {
            settings = settings.set_username(u);
        }
        if let Some(p) = &self.password {
            settings = settings.set_password(p);
        }
        info = info.set_redis_settings(settings);
        match (self.certificates(), info.addr()) {
            (Some(certs), ConnectionAddr::TcpTls { .. }) => Client::build_with_tls(info, certs),
            (Some(_), _) => Err(invalid(
                "TLS certificates are set but the URL is not rediss://",
            )),
            (None, _) => Client::open(info),
        }
    }
}

fn invalid(msg: &'static str) -> RedisError {
    RedisError::from((ErrorKind::InvalidClientConfig, msg))
}

/// A connection to whichever deployment was configured; cheap to clone (one multiplexed
/// connection or one cluster handle shared by all clones).
#[derive(Clone)]
pub enum Conn {
    /// One node, reconnected by the crate's `ConnectionManager`.
    Single(ConnectionManager),
    /// A cluster: commands routed by key slot, topology refreshed on `MOVED`.
    Cluster(ClusterConnection),
    /// The Sentinels' current primary.
    Sentinel(Arc<SentinelConn>),
}

impl Conn {
    /// Connects (lazily) as `connect` says, every command bounded by `timeout`.
    pub fn open(connect: &RedisConnect, timeout: Duration) -> RedisResult<Conn> {
        install_crypto_provider();
        let topology = connect
            .topology
            .as_ref()
            .ok_or_else(|| invalid("no Redis topology configured"))?;
        match topology {
            Topology::Standalone { url } => {
                let cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(200));
                let client = connect.client(url)?;
                Ok(Conn::Single(ConnectionManager::new_lazy_with_config(
                    client, cfg,
                )?))
            }
            Topology::Cluster { seeds } => {
                let mut b = ClusterClientBuilder::new(seeds.iter().map(String::as_str))
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    // A moved slot or a failed-over node is retried a few times, within the
                    // overall timeout (the response timeout), never for longer.
                    .retries(3);
                if let Some(u) = &connect.username {
                    b = b.username(u);
                }
                if let Some(p) = &connect.password {
                    b = b.password(p);
                }
                if let Some(certs) = connect.certificates() {
                    b = b.certs(certs);
                }
                let cfg = ClusterConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(timeout);
                Ok(Conn::Cluster(
                    b.build()?.get_pending_async_connection_with_config(cfg),
                ))
            }
            Topology::Sentinel { sentinels, master } => Ok(Conn::Sentinel(Arc::new(
                SentinelConn::new(connect, sentinels, master, timeout)?,
            ))),
        }
    }
}

/// Installs ring as rustls's process-wide crypto provider, once (the redis crate builds its
/// TLS configs with the process default; rustls is built without aws-lc).
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may have won the race: either way a provider is installed.
        // ring has no post-quantum key exchange (rustls deprecates its provider for that; the
        // hybrid groups need aws-lc-rs, a far heavier C build): classical ECDHE protects a
        // link to Redis, which stays inside the deployment's network.
        #[allow(deprecated)]
        let provider = rustls::crypto::ring::default_provider();
        let _ = provider.install_default();
    }
}

/// The current primary behind a set of Sentinels. The connection to it is kept until a
/// command fails in a way that says the primary is gone or demoted (connection lost or
/// refused, a timeout, `READONLY`); the next command then asks the Sentinels again. The
/// failed command itself is not retried: its caller answers 503 and the fail mode applies.
pub struct SentinelConn {
    client: tokio::sync::Mutex<SentinelClient>,
    current: Mutex<Option<MultiplexedConnection>>,
    config: AsyncConnectionConfig,
    timeout: Duration,
}

impl SentinelConn {
    fn new(
        connect: &RedisConnect,
        sentinels: &[String],
        master: &str,
        timeout: Duration,
    ) -> RedisResult<SentinelConn> {
        let mut addrs = Vec::with_capacity(sentinels.len());
        let mut sentinel_auth = None;
        for url in sentinels {
            let info = url.as_str().into_connection_info()?;
            let s = info.redis_settings();
            if s.password().is_some() {
                sentinel_auth = Some((
                    s.username().map(str::to_owned),
                    s.password().map(str::to_owned),
                ));
            }
            addrs.push(info.addr().clone());
        }
        let tls = addrs
            .iter()
            .any(|a| matches!(a, ConnectionAddr::TcpTls { .. }))
            .then_some(TlsMode::Secure);
        let mut b = SentinelClientBuilder::new(addrs, master, SentinelServerType::Master)?;
        if let Some(mode) = tls {
            b = b
                .set_client_to_sentinel_tls_mode(mode)
                .set_client_to_redis_tls_mode(mode);
            if let Some(certs) = connect.certificates() {
                b = b
                    .set_client_to_sentinel_certificates(certs.clone())
                    .set_client_to_redis_certificates(certs);
            }
        }
        if let Some((user, password)) = sentinel_auth {
            if let Some(u) = user {
                b = b.set_client_to_sentinel_username(u);
            }
            if let Some(p) = password {
                b = b.set_client_to_sentinel_password(p);
            }
        }
        if let Some(u) = &connect.username {
            b = b.set_client_to_redis_username(u);
        }
        if let Some(p) = &connect.password {
            b = b.set_client_to_redis_password(p);
        }
        Ok(SentinelConn {
            client: tokio::sync::Mutex::new(b.build()?),
            current: Mutex::new(None),
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout)),
            timeout,
        })
    }

    fn cached(&self) -> Option<MultiplexedConnection> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The cached connection, or a new one to the primary the Sentinels name now.
    async fn primary(&self) -> RedisResult<MultiplexedConnection> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        // One lookup at a time; whoever waited finds the connection the first one made.
        let mut client = self.client.lock().await;
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let lookup = async { client.get_async_connection_with_config(&self.config).await };
        let conn = tokio::time::timeout(self.timeout, lookup)
            .await
            .map_err(|_| {
                RedisError::from((ErrorKind::Io, "no primary from the Sentinels in time"))
            })??;
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
        Ok(conn)
    }

    /// Forgets the primary after an error that says it is gone or no longer the primary.
    fn judge<T>(&self, result: RedisResult<T>) -> RedisResult<T> {
        if let Err(e) = &result
            && (e.is_io_error()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_timeout()
                || e.is_unrecoverable_error()
                || e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly))
        {
            *self.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        result
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Sentinel(s) => Box::pin(async move {
                let mut c = s.primary().await?;
                s.judge(c.req_packed_command(cmd).await)
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Sentinel(s) => Box::pin(async move {
                let mut c = s.primary().await?;
                s.judge(c.req_packed_commands(cmd, offset, count).await)
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Sentinel(_) => 0,
        }
    }
}
