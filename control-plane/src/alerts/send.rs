//! One delivery attempt to one channel: a signed JSON POST, a Slack-style `{"text": ...}` POST,
//! or an email over SMTP. HTTPS and SMTP TLS use rustls with ring (the provider the Redis client
//! uses; no aws-lc) and the system's root certificates.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Serialize;

use super::Alert;
use super::channel::{SmtpTls, Target};
use super::sign::{SIGNATURE_HEADER, signature};

/// The header naming the alert, so a receiver can drop a redelivery it already handled.
pub const ALERT_ID_HEADER: &str = "tollgate-alert-id";
/// The header counting attempts at this alert on this channel (1 for the first).
pub const ATTEMPT_HEADER: &str = "tollgate-delivery-attempt";

/// Why an attempt failed. Every variant is retried (a receiver's 4xx too: a misconfigured
/// receiver fixed within the retry schedule still gets the alert).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The receiver answered with a status outside 2xx.
    #[error("receiver answered HTTP {0}")]
    Status(u16),
    /// No answer: connection refused, TLS failure, timeout.
    #[error("HTTP request failed: {0}")]
    Http(String),
    /// The SMTP exchange failed (connection, STARTTLS, AUTH, a refused recipient).
    #[error("SMTP: {0}")]
    Smtp(String),
    /// The message could not be built (an address that no longer parses).
    #[error("message: {0}")]
    Message(String),
}

impl SendError {
    /// The HTTP status, when the receiver answered one.
    pub fn status(&self) -> Option<u16> {
        match self {
            SendError::Status(s) => Some(*s),
            _ => None,
        }
    }
}

/// The generic webhook's JSON body.
#[derive(Debug, Serialize)]
struct WebhookBody<'a> {
    /// Always `tollgate.alert`: lets a receiver shared with other senders tell ours apart.
    r#type: &'static str,
    alert: &'a Alert,
    summary: String,
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<bytes::Bytes>,
>;

/// Sends alerts; one per service, shared by the delivery tasks (the HTTP client pools
/// connections).
pub struct Senders {
    http: HttpClient,
    timeout: Duration,
}

/// An HTTP(S) client on rustls with ring and the system roots. It follows no redirect: the
/// signed body goes only where configured.
fn http_client() -> Result<HttpClient, String> {
    // ring, as the Redis client: no post-quantum key exchange (rustls deprecates its provider
    // for that; the hybrid groups need aws-lc-rs, a far heavier C build). lettre's SMTP TLS
    // takes ring too (its `ring` feature).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are skipped: HTTPS to those receivers then fails at
    // its attempt, with the TLS error recorded, and plain HTTP still works.
    let _ = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https),
    )
}

impl Senders {
    /// Senders whose every attempt gives up after `timeout`.
    pub fn new(timeout: Duration) -> Result<Senders, String> {
        Ok(Senders {
            http: http_client()?,
            timeout,
        })
    }

    /// One attempt (`attempt` counts from 1) to deliver `alert` to `target`; `unix_secs` is the
    /// wall clock the webhook signature carries (receivers check it against theirs). Returns
    /// the receiver's status for HTTP channels.
    pub async fn send(
        &self,
        target: &Target,
        alert: &Alert,
        attempt: u32,
        unix_secs: i64,
    ) -> Result<Option<u16>, SendError> {
        match target {
            Target::Webhook { url, secret } => {
                let body = serde_json::to_vec(&WebhookBody {
                    r#type: "tollgate.alert",
                    alert,
                    summary: alert.summary(),
                })
                .map_err(|e| SendError::Message(e.to_string()))?;
                let sig = signature(secret.as_bytes(), unix_secs, &body);
                let headers = [
                    (SIGNATURE_HEADER, sig),
                    (ALERT_ID_HEADER, alert.id.clone()),
                    (ATTEMPT_HEADER, attempt.to_string()),
                ];
                self.post(url, &headers, body).await
            }
            Target::Slack { url } => {
                let body = serde_json::to_vec(&serde_json::json!({ "text": alert.summary() }))
                    .map_err(|e| SendError::Message(e.to_string()))?;
                self.post(url, &[], body).await
            }
            Target::Email {
                host,
                port,
                tls,
                ca_pem,
                username,
                password,
                from,
                to,
            } => {
                let message = email(alert, from, to)?;
                let port = port.unwrap_or(tls.default_port());
                let smtp = |e: lettre::transport::smtp::Error| SendError::Smtp(error_chain(&e));
                type Smtp = AsyncSmtpTransport<Tokio1Executor>;
                let mut builder = match (tls, ca_pem) {
                    (SmtpTls::None, _) => Smtp::builder_dangerous(host.as_str()),
                    (SmtpTls::Starttls, None) => Smtp::starttls_relay(host).map_err(smtp)?,
                    (SmtpTls::Tls, None) => Smtp::relay(host).map_err(smtp)?,
                    (mode, Some(pem)) => {
                        // Only the channel's CA: a private relay's certificate.
                        let ca = Certificate::from_pem(pem.as_bytes()).map_err(smtp)?;
                        let params = TlsParameters::builder(host.clone())
                            .certificate_store(CertificateStore::None)
                            .add_root_certificate(ca)
                            .build_rustls()
                            .map_err(smtp)?;
                        let tls = if *mode == SmtpTls::Tls {
                            Tls::Wrapper(params)
                        } else {
                            Tls::Required(params)
                        };
                        Smtp::builder_dangerous(host.as_str()).tls(tls)
                    }
                }
                .port(port)
                .timeout(Some(self.timeout));
                if let (Some(u), Some(p)) = (username, password) {
                    builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
                }
                // lettre's timeout covers each read and write; this one the whole exchange.
                tokio::time::timeout(self.timeout, builder.build().send(message))
                    .await
                    .map_err(|_| SendError::Smtp(format!("no answer within {:?}", self.timeout)))?
                    .map_err(smtp)?;
                Ok(None)
            }
        }
    }

    /// POSTs a JSON body; a 2xx answer is delivered, anything else an error.
    async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Option<u16>, SendError> {
        let http = |e: &dyn std::error::Error| SendError::Http(error_chain(e));
        let mut req = hyper::Request::post(url)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, "tollgate-alerts");
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let req = req
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .map_err(|e| http(&e))?;
        let exchange = async {
            let resp = self.http.request(req).await.map_err(|e| http(&e))?;
            let status = resp.status();
            // Read (and drop) the answer so the connection goes back to the pool.
            let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
            Ok::<_, SendError>(status)
        };
        let status = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| SendError::Http(format!("no answer within {:?}", self.timeout)))??;
        if status.is_success() {
            Ok(Some(status.as_u16()))
        } else {
            Err(SendError::Status(status.as_u16()))
        }
    }
}

/// Top-level HTTP and SMTP errors say little ("client error (Connect)"); the causes say why.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        // Some errors (lettre's) already print their source: say each cause once.
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

fn email(alert: &Alert, from: &str, to: &[String]) -> Result<Message, SendError> {
    let addr = |s: &str| {
        s.parse::<Mailbox>()
            .map_err(|e| SendError::Message(format!("{s:?}: {e}")))
    };
    let mut b = Message::builder()
        .from(addr(from)?)
        .subject(alert.summary())
        .header(ContentType::TEXT_PLAIN);
    for t in to {
        b = b.to(addr(t)?);
    }
    // The summary, then every field of the alert as `name: value` (details as JSON).
    let mut text = format!("{}\n\n", alert.summary());
    if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(alert) {
        for (k, v) in fields {
            let v = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            text.push_str(&format!("{k}: {v}\n"));
        }
    }
    b.body(text).map_err(|e| SendError::Message(e.to_string()))
}
