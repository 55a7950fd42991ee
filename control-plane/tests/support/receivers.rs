//! Real local alert receivers: an HTTP server that checks the webhook signature the way
//! docs/alerts.md tells receivers to (HMAC-SHA256 written here with ring directly, not with
//! the code under test), and can fail, or hold requests, on demand; and a real SMTP server
//! (Python's aiosmtpd from the project's .venv) writing what it accepts to a maildir.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;
use tokio::sync::{Notify, oneshot};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub body: Value,
    pub alert_id: Option<String>,
    pub attempt: Option<String>,
    /// Whether `Tollgate-Signature` verified (always true for Slack, which is unsigned).
    pub signature_ok: bool,
    /// The status answered.
    pub status: u16,
}

struct Inner {
    secret: Option<Vec<u8>>,
    fail_first: AtomicUsize,
    fail_status: u16,
    hold: bool,
    got: Mutex<Vec<Received>>,
    arrived: Notify,
    release: Notify,
}

/// An HTTP receiver on a free port.
pub struct Receiver {
    pub url: String,
    inner: Arc<Inner>,
    stop: Option<oneshot::Sender<()>>,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The receiver's check, as docs/alerts.md describes it.
fn verify(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(h) = headers
        .get("tollgate-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut t = None;
    let mut v1 = None;
    for part in h.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = x.parse::<i64>().ok(),
            Some(("v1", x)) => v1 = hex::decode(x).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    if (now_secs() - t).abs() > 300 {
        return false;
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    ring::hmac::verify(&key, &signed, &v1).is_ok()
}

async fn handle(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let signature_ok = match &inner.secret {
        Some(s) => verify(s, &headers, &body),
        None => true,
    };
    let failing = inner
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if !signature_ok {
        401
    } else if failing {
        inner.fail_status
    } else {
        200
    };
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    inner.got.lock().unwrap().push(Received {
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        alert_id: header("tollgate-alert-id"),
        attempt: header("tollgate-delivery-attempt"),
        signature_ok,
        status,
    });
    inner.arrived.notify_waiters();
    if inner.hold {
        // A receiver that takes the request and does not answer until the test says so.
        inner.release.notified().await;
    }
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    /// A receiver checking signatures with `secret` (None: Slack, unsigned) that answers
    /// `fail_status` to its first `fail_first` requests, 200 after.
    pub async fn start(secret: Option<&str>, fail_first: usize, fail_status: u16) -> Receiver {
        Self::spawn(secret, fail_first, fail_status, false).await
    }

    /// A receiver that holds every request unanswered until [`Receiver::release`].
    pub async fn holding(secret: Option<&str>) -> Receiver {
        Self::spawn(secret, 0, 200, true).await
    }

    async fn spawn(
        secret: Option<&str>,
        fail_first: usize,
        fail_status: u16,
        hold: bool,
    ) -> Receiver {
        let inner = Arc::new(Inner {
            secret: secret.map(|s| s.as_bytes().to_vec()),
            fail_first: AtomicUsize::new(fail_first),
            fail_status,
            hold,
            got: Mutex::new(Vec::new()),
            arrived: Notify::new(),
            release: Notify::new(),
        });
        let app = axum::Router::new()
            .route("/hook", post(handle))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Receiver {
            url,
            inner,
            stop: Some(tx),
        }
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.inner.got.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize) {
        loop {
            let arrived = self.inner.arrived.notified();
            if self.inner.got.lock().unwrap().len() >= n {
                return;
            }
            tokio::time::timeout(std::time::Duration::from_secs(30), arrived)
                .await
                .unwrap_or_else(|_| panic!("the receiver did not get {n} requests within 30 s"));
        }
    }

    /// Lets held requests answer.
    pub fn release(&self) {
        self.inner.release.notify_waiters();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.release();
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A real SMTP server (aiosmtpd) on a free port, writing each accepted message to a maildir.
pub struct SmtpSink {
    child: Child,
    pub port: u16,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
}

fn venv_python() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let py = root.join(".venv").join("bin").join("python");
    assert!(
        py.exists(),
        "no {}: run scripts/setup.sh (it installs aiosmtpd into .venv)",
        py.display()
    );
    py
}

impl SmtpSink {
    /// A server that accepts any sender (`auth` None) or requires SMTP AUTH with `auth`.
    pub fn start(auth: Option<(&str, &str)>) -> SmtpSink {
        Self::start_with(auth, None)
    }

    /// [`SmtpSink::start`], offering and requiring STARTTLS with `tls` (certificate and key
    /// PEM files) when given.
    pub fn start_with(auth: Option<(&str, &str)>, tls: Option<(&Path, &Path)>) -> SmtpSink {
        Self::spawn(auth, tls, false)
    }

    /// An SMTPS server: TLS from the first byte with the certificate and key, AUTH required.
    #[allow(dead_code)] // used by alert_delivery.rs only
    pub fn start_implicit_tls(auth: (&str, &str), cert: &Path, key: &Path) -> SmtpSink {
        Self::spawn(Some(auth), Some((cert, key)), true)
    }

    fn spawn(auth: Option<(&str, &str)>, tls: Option<(&Path, &Path)>, implicit: bool) -> SmtpSink {
        use std::io::{BufRead, BufReader};
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("mail");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_sink.py");
        let mut cmd = Command::new(venv_python());
        cmd.arg(&script).arg(&maildir);
        if let Some((u, p)) = auth {
            cmd.args(["--user", u, "--password", p]);
        }
        if let Some((cert, key)) = tls {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        if implicit {
            cmd.arg("--implicit-tls");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("smtp_sink.py did not start (is aiosmtpd in .venv? run scripts/setup.sh): {line:?}"));
        SmtpSink {
            child,
            port,
            maildir,
            _dir: dir,
        }
    }

    /// The messages received, as text.
    pub fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        entries
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        // Closing stdin stops it; kill in case it hangs.
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
