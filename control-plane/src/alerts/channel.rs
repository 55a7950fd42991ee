//! Alert channels as the API manages them: [`ChannelSpec`] is what an admin writes (unknown
//! fields refused, validated by [`ChannelSpec::validate`] with errors naming the field), kept in
//! the store with its creation time ([`StoredChannel`]); [`ChannelView`] is what the API
//! answers, without secrets: a webhook's signing secret, a Slack webhook's URL path (Slack puts
//! the token there) and an SMTP password are never returned.

use serde::{Deserialize, Serialize};

use super::Severity;

/// Longest channel id (the budget id rule).
pub const MAX_CHANNEL_ID_LEN: usize = 64;
/// Shortest webhook signing secret, bytes: HMAC-SHA256 keys shorter than this are guessable.
pub const MIN_SECRET_LEN: usize = 16;
/// Most recipients of one email channel.
pub const MAX_RECIPIENTS: usize = 50;

/// A channel, as created or replaced through the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelSpec {
    /// Its id: 1-64 characters of `A-Z a-z 0-9 . _ -`.
    pub id: String,
    /// Alerts below this severity are not sent here (default `info`: all).
    #[serde(default)]
    pub min_severity: Severity,
    /// A disabled channel receives nothing (default true).
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Where and how to send.
    pub target: Target,
}

fn enabled_by_default() -> bool {
    true
}

/// A channel's destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    /// A JSON POST signed with HMAC-SHA256 (`Tollgate-Signature`, docs/alerts.md).
    Webhook {
        /// `http://` or `https://` URL.
        url: String,
        /// Signing key, at least 16 bytes. Never returned.
        secret: String,
    },
    /// A Slack-compatible incoming webhook (`{"text": ...}`).
    Slack {
        /// The incoming-webhook URL. Its path is a credential: only its origin is returned.
        url: String,
    },
    /// Email over SMTP.
    Email {
        /// SMTP server host.
        host: String,
        /// Port (default: 25 with `tls` none, 587 with `starttls`, 465 with `tls`).
        #[serde(default)]
        port: Option<u16>,
        /// Transport security (default `starttls`).
        #[serde(default)]
        tls: SmtpTls,
        /// PEM CA certificates to trust instead of the system's roots (a relay with a private
        /// CA); only with `tls` `starttls` or `tls`.
        #[serde(default)]
        ca_pem: Option<String>,
        /// SMTP AUTH user; with `password`, or neither.
        #[serde(default)]
        username: Option<String>,
        /// SMTP AUTH password. Never returned.
        #[serde(default)]
        password: Option<String>,
        /// Sender address (`Tollgate <alerts@example.com>` or a bare address).
        from: String,
        /// Recipients, 1-50.
        to: Vec<String>,
    },
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain SMTP, no TLS at all (a relay on localhost or a test server).
    None,
    /// Plain connection upgraded with STARTTLS; refused if the server does not offer it.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
}

impl SmtpTls {
    /// The port used when none is given.
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        }
    }
}

impl Target {
    /// `webhook`, `slack` or `email`: metric labels and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Webhook { .. } => "webhook",
            Target::Slack { .. } => "slack",
            Target::Email { .. } => "email",
        }
    }
}

/// A rule a channel breaks: the field (JSON path in the body) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ChannelError {
    /// The field at fault, as a path in the request body (`target.url`).
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> ChannelError {
    ChannelError {
        field,
        message: message.into(),
    }
}

fn http_url(field: &'static str, raw: &str) -> Result<reqwest::Url, ChannelError> {
    let url = reqwest::Url::parse(raw).map_err(|e| bad(field, format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad(field, "must be an http:// or https:// URL with a host"));
    }
    Ok(url)
}

fn mailbox(field: &'static str, raw: &str) -> Result<(), ChannelError> {
    raw.parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|e| bad(field, format!("not an email address: {e}")))
}

/// The certificates of a PEM bundle (at least one).
pub fn ca_certificates(
    pem: &str,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    Ok(certs)
}

/// Whether `id` follows the budget id rule (`[A-Za-z0-9._-]{1,64}`).
pub fn valid_id(id: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    !id.is_empty() && id.len() <= MAX_CHANNEL_ID_LEN && id.chars().all(ok)
}

impl ChannelSpec {
    /// Checks every rule; the error names the first field at fault.
    pub fn validate(&self) -> Result<(), ChannelError> {
        if !valid_id(&self.id) {
            return Err(bad("id", "must be 1-64 characters of A-Z a-z 0-9 . _ -"));
        }
        match &self.target {
            Target::Webhook { url, secret } => {
                http_url("target.url", url)?;
                if secret.len() < MIN_SECRET_LEN {
                    return Err(bad(
                        "target.secret",
                        format!("must be at least {MIN_SECRET_LEN} bytes"),
                    ));
                }
            }
            Target::Slack { url } => {
                http_url("target.url", url)?;
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
                if host.trim().is_empty() || host.contains(char::is_whitespace) {
                    return Err(bad("target.host", "must be a host name or address"));
                }
                if let Some(pem) = ca_pem {
                    if *tls == SmtpTls::None {
                        return Err(bad("target.ca_pem", "only with tls starttls or tls"));
                    }
                    ca_certificates(pem).map_err(|m| bad("target.ca_pem", m))?;
                }
                if *port == Some(0) {
                    return Err(bad("target.port", "must be 1-65535"));
                }
                if username.is_some() != password.is_some() {
                    return Err(bad(
                        "target.password",
                        "username and password go together (both or neither)",
                    ));
                }
                mailbox("target.from", from)?;
                if to.is_empty() || to.len() > MAX_RECIPIENTS {
                    return Err(bad(
                        "target.to",
                        format!("must list 1-{MAX_RECIPIENTS} addresses"),
                    ));
                }
                for t in to {
                    mailbox("target.to", t)?;
                }
            }
        }
        Ok(())
    }
}

/// A channel as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredChannel {
    /// What the admin wrote.
    pub spec: ChannelSpec,
    /// When it was created, Unix ms: the sweep never sends a channel alerts older than it.
    pub created_at_ms: i64,
}

/// A channel as the API answers it: no secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelView {
    /// Its id.
    pub id: String,
    /// Least severity sent.
    pub min_severity: Severity,
    /// Whether it receives alerts.
    pub enabled: bool,
    /// Destination, secrets left out.
    pub target: TargetView,
    /// When it was created, Unix ms.
    pub created_at_ms: i64,
    /// Document version (also the `ETag`).
    pub version: u64,
}

/// A channel's destination without its secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TargetView {
    /// A signed webhook.
    Webhook {
        /// The URL without user info, query or fragment (where tokens are often put).
        url: String,
    },
    /// A Slack-compatible incoming webhook.
    Slack {
        /// The URL's origin (`https://hooks.slack.com`); its path is the credential.
        origin: String,
    },
    /// Email over SMTP.
    Email {
        /// SMTP server host.
        host: String,
        /// Port in use.
        port: u16,
        /// Transport security.
        tls: SmtpTls,
        /// The CA certificates trusted instead of the system's roots, when set (public data).
        #[serde(skip_serializing_if = "Option::is_none")]
        ca_pem: Option<String>,
        /// SMTP AUTH user, when set.
        #[serde(skip_serializing_if = "Option::is_none")]
        username: Option<String>,
        /// Sender.
        from: String,
        /// Recipients.
        to: Vec<String>,
    },
}

fn without_credentials(raw: &str, keep_path: bool) -> String {
    match reqwest::Url::parse(raw) {
        Ok(u) => {
            let origin = u.origin().ascii_serialization();
            if keep_path {
                format!("{origin}{}", u.path())
            } else {
                origin
            }
        }
        Err(_) => String::new(),
    }
}

impl ChannelView {
    /// The view of a stored channel at `version`.
    pub fn new(c: &StoredChannel, version: u64) -> ChannelView {
        let target = match &c.spec.target {
            Target::Webhook { url, .. } => TargetView::Webhook {
                url: without_credentials(url, true),
            },
            Target::Slack { url } => TargetView::Slack {
                origin: without_credentials(url, false),
            },
            Target::Email {
                host,
                port,
                tls,
                ca_pem,
                username,
                from,
                to,
                ..
            } => TargetView::Email {
                host: host.clone(),
                port: port.unwrap_or(tls.default_port()),
                tls: *tls,
                ca_pem: ca_pem.clone(),
                username: username.clone(),
                from: from.clone(),
                to: to.clone(),
            },
        };
        ChannelView {
            id: c.spec.id.clone(),
            min_severity: c.spec.min_severity,
            enabled: c.spec.enabled,
            target,
            created_at_ms: c.created_at_ms,
            version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(target: serde_json::Value) -> Result<ChannelSpec, serde_json::Error> {
        serde_json::from_value(serde_json::json!({ "id": "ops", "target": target }))
    }

    #[test]
    fn the_view_never_holds_a_secret() {
        let secretive = [
            serde_json::json!({"kind": "webhook", "url": "https://u:pw@h.example/p?token=T1", "secret": "S1S1S1S1S1S1S1S1S1"}),
            serde_json::json!({"kind": "slack", "url": "https://hooks.slack.com/services/T2/B2/X2"}),
            serde_json::json!({"kind": "email", "host": "smtp.example.com", "username": "u", "password": "P3P3",
                "from": "a@example.com", "to": ["b@example.com"]}),
        ];
        for t in secretive {
            let s = spec(t).unwrap();
            s.validate().unwrap();
            let view = ChannelView::new(
                &StoredChannel {
                    spec: s,
                    created_at_ms: 0,
                },
                1,
            );
            let text = serde_json::to_string(&view).unwrap();
            for secret in ["pw", "T1", "S1S1", "T2", "X2", "P3P3"] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
        }
    }

    #[test]
    fn a_bad_channel_names_its_field() {
        let cases = [
            (
                serde_json::json!({"kind": "webhook", "url": "ftp://x", "secret": "0123456789abcdef"}),
                "target.url",
            ),
            (
                serde_json::json!({"kind": "webhook", "url": "https://x", "secret": "short"}),
                "target.secret",
            ),
            (
                serde_json::json!({"kind": "email", "host": "h", "from": "nope", "to": ["b@example.com"]}),
                "target.from",
            ),
            (
                serde_json::json!({"kind": "email", "host": "h", "from": "a@example.com", "to": []}),
                "target.to",
            ),
            (
                serde_json::json!({"kind": "email", "host": "h", "username": "u", "from": "a@example.com", "to": ["b@example.com"]}),
                "target.password",
            ),
            (
                serde_json::json!({"kind": "email", "host": "h", "tls": "starttls", "ca_pem": "nothing", "from": "a@example.com", "to": ["b@example.com"]}),
                "target.ca_pem",
            ),
            (
                serde_json::json!({"kind": "email", "host": "h", "tls": "none", "ca_pem": "x", "from": "a@example.com", "to": ["b@example.com"]}),
                "target.ca_pem",
            ),
        ];
        for (t, field) in cases {
            assert_eq!(spec(t).unwrap().validate().unwrap_err().field, field);
        }
    }

    #[test]
    fn an_unknown_field_in_a_target_is_refused() {
        let e = spec(serde_json::json!({"kind": "slack", "url": "https://x", "channel": "#ops"}));
        assert!(e.unwrap_err().to_string().contains("channel"));
    }
}
