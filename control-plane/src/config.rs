//! Service configuration: an optional file (TOML, or JSON when it ends in `.json`), then
//! environment overrides. Unknown keys are refused, and errors name the file and the key.
//!
//! | env | overrides |
//! |---|---|
//! | `TOLLGATE_LISTEN` | `listen` |
//! | `TOLLGATE_REDIS_URL`, else `REDIS_URL` | `redis_url` |
//! | `TOLLGATE_REDIS_MODE`, `TOLLGATE_REDIS_SENTINEL_MASTER` | `redis_mode`, `redis_sentinel_master` |
//! | `TOLLGATE_REDIS_USERNAME`, `TOLLGATE_REDIS_PASSWORD_FILE` | `redis_username`, `redis_password_file` |
//! | `TOLLGATE_REDIS_PASSWORD` | the password itself (overrides the file) |
//! | `TOLLGATE_REDIS_TLS_CA_FILE`, `…_TLS_CERT_FILE`, `…_TLS_KEY_FILE` | `redis_tls_ca_file`, `redis_tls_cert_file`, `redis_tls_key_file` |
//! | `TOLLGATE_REDIS_ALLOW_EVICTION` (`true`) | `redis_allow_eviction` |
//! | `TOLLGATE_ADMIN_TOKEN` (comma-separated) / `TOLLGATE_ADMIN_TOKEN_FILE` | `admin_tokens` / `admin_token_file` |
//! | `TOLLGATE_DATAPLANE_TOKEN` / `TOLLGATE_DATAPLANE_TOKEN_FILE` | `dataplane_token` / `dataplane_token_file` |
//! | `TOLLGATE_LOG_FORMAT` (`text`/`json`) | `log_format` |
//! | `TOLLGATE_AUTH_DISABLED` (`true`) | `auth_disabled` |

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tollgate_model::pricing::UnknownModelPolicy;

use crate::admission::AdmissionSettings;
use crate::alerts::anomaly_task::AnomalySettings;
use crate::alerts::worker::DeliverySettings;
use crate::auth::Auth;
use crate::ledger::LedgerLimits;

mod redis_deploy;

pub use redis_deploy::{RedisMode, Secret};

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The service's configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// Redis URL; none means the embedded in-memory store. Cluster seeds and Sentinels are
    /// several URLs separated by commas.
    pub redis_url: Option<String>,
    /// `standalone`, `cluster` or `sentinel`.
    pub redis_mode: RedisMode,
    /// The primary's name the Sentinels monitor (`sentinel` mode).
    pub redis_sentinel_master: Option<String>,
    /// ACL user for Redis (6+).
    pub redis_username: Option<String>,
    /// File holding the Redis password (trailing newline ignored).
    pub redis_password_file: Option<PathBuf>,
    /// PEM CA bundle to trust for `rediss://` instead of the system's roots.
    pub redis_tls_ca_file: Option<PathBuf>,
    /// PEM client certificate chain, for servers that require one.
    pub redis_tls_cert_file: Option<PathBuf>,
    /// PEM private key of `redis_tls_cert_file`.
    pub redis_tls_key_file: Option<PathBuf>,
    /// Run on a Redis whose `maxmemory-policy` may evict keys (logged as an error).
    pub redis_allow_eviction: bool,
    /// The Redis password from `TOLLGATE_REDIS_PASSWORD` (never from the file: a secret).
    #[serde(skip)]
    pub redis_password: Option<Secret>,
    /// Prefix of every Redis key.
    pub redis_key_prefix: String,
    /// Longest a Redis command may take before admission answers 503.
    pub redis_timeout_ms: u64,
    /// Admin bearer tokens.
    pub admin_tokens: Vec<String>,
    /// File holding admin tokens, one per line.
    pub admin_token_file: Option<PathBuf>,
    /// The data-plane bearer token.
    pub dataplane_token: Option<String>,
    /// File holding the data-plane token.
    pub dataplane_token_file: Option<PathBuf>,
    /// Turn authentication off (local development only).
    pub auth_disabled: bool,
    /// Log format.
    pub log_format: LogFormat,
    /// Largest request body, bytes.
    pub body_limit_bytes: usize,
    /// How long a reservation holds before it releases itself.
    pub reservation_ttl_secs: u64,
    /// How long a settled request id blocks replays.
    pub settle_dedupe_secs: u64,
    /// How long a lease lets a filter VM admit calls on its own (docs/leases.md).
    pub lease_ttl_secs: u64,
    /// How long a replica trusts its cached budgets before reloading them.
    pub budget_refresh_ms: u64,
    /// The spend history (`[ledger]`): docs/ledger.md.
    pub ledger: LedgerConfig,
    /// Alert delivery retries and timeouts (`[alerts]`): docs/alerts.md.
    pub alerts: DeliverySettings,
    /// Anomaly detection (`[anomaly]`): docs/anomalies.md.
    pub anomaly: AnomalySettings,
    /// What admission does with a model no price table knows (budgets may say otherwise).
    pub unknown_model: UnknownModelPolicy,
}

/// `[ledger]`: what the ledger keeps and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerConfig {
    /// Write a record and rollups for every settlement and refusal.
    pub enabled: bool,
    /// Most request records kept.
    pub records_max: u64,
    /// Records older than this many days are dropped (0 = only `records_max` bounds them).
    pub records_max_age_days: u32,
    /// Days hourly rollups are kept.
    pub hourly_retention_days: u32,
    /// Days daily rollups are kept.
    pub daily_retention_days: u32,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        let l = LedgerLimits::default();
        LedgerConfig {
            enabled: true,
            records_max: l.records_max,
            records_max_age_days: 0,
            hourly_retention_days: 90,
            daily_retention_days: 400,
        }
    }
}

impl LedgerConfig {
    /// The store's limits.
    pub fn limits(&self) -> LedgerLimits {
        let days = |d: u32| i64::from(d) * 86_400_000;
        LedgerLimits {
            records_max: self.records_max,
            records_max_age_ms: days(self.records_max_age_days),
            hourly_retention_ms: days(self.hourly_retention_days),
            daily_retention_ms: days(self.daily_retention_days),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "0.0.0.0:8080".into(),
            redis_url: None,
            redis_mode: RedisMode::Standalone,
            redis_sentinel_master: None,
            redis_username: None,
            redis_password_file: None,
            redis_tls_ca_file: None,
            redis_tls_cert_file: None,
            redis_tls_key_file: None,
            redis_allow_eviction: false,
            redis_password: None,
            redis_key_prefix: "tg".into(),
            redis_timeout_ms: 250,
            admin_tokens: Vec::new(),
            admin_token_file: None,
            dataplane_token: None,
            dataplane_token_file: None,
            auth_disabled: false,
            log_format: LogFormat::Text,
            body_limit_bytes: 1 << 20,
            reservation_ttl_secs: 600,
            settle_dedupe_secs: 3600,
            lease_ttl_secs: 30,
            budget_refresh_ms: 1000,
            ledger: LedgerConfig::default(),
            alerts: DeliverySettings::default(),
            anomaly: AnomalySettings::default(),
            unknown_model: UnknownModelPolicy::default(),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// A key is unknown, missing or of the wrong type, or a value breaks a rule.
    #[error("{source_name}: config error, key '{key}': {message}")]
    Invalid {
        /// The file, or `env`.
        source_name: String,
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

fn invalid(source_name: &str, key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        source_name: source_name.to_owned(),
        key: key.to_owned(),
        message: message.into(),
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

impl Config {
    /// Reads `file` (if any), then applies overrides from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut config = match file {
            None => Config::default(),
            Some(path) => Self::parse(&path.display().to_string(), &read(path)?, path)?,
        };
        if let Some(v) = env("TOLLGATE_LISTEN") {
            config.listen = v;
        }
        if let Some(v) = env("TOLLGATE_REDIS_URL").or_else(|| env("REDIS_URL")) {
            config.redis_url = Some(v).filter(|v| !v.trim().is_empty());
        }
        config.redis_env(&env)?;
        if let Some(v) = env("TOLLGATE_ADMIN_TOKEN") {
            config.admin_tokens = v.split(',').map(str::to_owned).collect();
        }
        if let Some(v) = env("TOLLGATE_ADMIN_TOKEN_FILE") {
            config.admin_token_file = Some(v.into());
        }
        if let Some(v) = env("TOLLGATE_DATAPLANE_TOKEN") {
            config.dataplane_token = Some(v);
        }
        if let Some(v) = env("TOLLGATE_DATAPLANE_TOKEN_FILE") {
            config.dataplane_token_file = Some(v.into());
        }
        if let Some(v) = env("TOLLGATE_LOG_FORMAT") {
            config.log_format = match v.as_str() {
                "json" => LogFormat::Json,
                "text" => LogFormat::Text,
                _ => {
                    return Err(invalid(
                        "env",
                        "TOLLGATE_LOG_FORMAT",
                        "must be text or json",
                    ));
                }
            };
        }
        if let Some(v) = env("TOLLGATE_AUTH_DISABLED") {
            config.auth_disabled = matches!(v.as_str(), "1" | "true" | "yes");
        }
        // The prefix starts every Redis key; the scripts split reservation records on `|`,
        // spaces and newlines, and a brace would move the Cluster hash tag.
        let prefix_ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
        };
        if !prefix_ok(&config.redis_key_prefix) {
            return Err(invalid(
                "config",
                "redis_key_prefix",
                "must be 1 or more of A-Z a-z 0-9 _ - . :",
            ));
        }
        let l = &config.ledger;
        if l.records_max == 0 {
            return Err(invalid(
                "config",
                "ledger.records_max",
                "must be at least 1",
            ));
        }
        if l.hourly_retention_days == 0 || l.daily_retention_days < l.hourly_retention_days {
            return Err(invalid(
                "config",
                "ledger.daily_retention_days",
                "hourly_retention_days must be at least 1 and daily_retention_days at least as long",
            ));
        }
        if let Err((key, message)) = config.alerts.check() {
            return Err(invalid("config", key, message));
        }
        if let Err((key, message)) = config.anomaly.check() {
            return Err(invalid("config", key, message));
        }
        Ok(config)
    }

    fn parse(source_name: &str, text: &str, path: &Path) -> Result<Config, ConfigError> {
        let value: serde_json::Value = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(text).map_err(|e| invalid(source_name, ".", e.to_string()))?
        } else {
            toml::from_str(text).map_err(|e| invalid(source_name, ".", e.message().to_owned()))?
        };
        serde_path_to_error::deserialize(value)
            .map_err(|e| invalid(source_name, &e.path().to_string(), e.inner().to_string()))
    }

    /// The tokens, read from the configuration and token files.
    pub fn auth(&self) -> Result<Auth, ConfigError> {
        if self.auth_disabled {
            return Ok(Auth::disabled());
        }
        let mut admin = self.admin_tokens.clone();
        if let Some(f) = &self.admin_token_file {
            admin.extend(read(f)?.lines().map(str::to_owned));
        }
        let mut dataplane: Vec<String> = self.dataplane_token.iter().cloned().collect();
        if let Some(f) = &self.dataplane_token_file {
            dataplane.extend(read(f)?.lines().map(str::to_owned));
        }
        let auth = Auth::new(admin, dataplane);
        if !auth.has_tokens(crate::auth::Role::Admin) {
            return Err(invalid(
                "config",
                "admin_tokens",
                "no admin token: set TOLLGATE_ADMIN_TOKEN or TOLLGATE_ADMIN_TOKEN_FILE (or auth_disabled for local use)",
            ));
        }
        if !auth.has_tokens(crate::auth::Role::DataPlane) {
            return Err(invalid(
                "config",
                "dataplane_token",
                "no data-plane token: set TOLLGATE_DATAPLANE_TOKEN or TOLLGATE_DATAPLANE_TOKEN_FILE",
            ));
        }
        Ok(auth)
    }

    /// Admission timings from the configuration.
    pub fn admission(&self) -> AdmissionSettings {
        let ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
        let reservation = ms(self.reservation_ttl_secs.max(1));
        AdmissionSettings {
            reservation_ttl_ms: reservation,
            // Keep the record well past the reservation so late settlements find their windows,
            // and so the lazy release of an expired hold still finds it (docs/redis-keys.md).
            record_ttl_ms: reservation.saturating_mul(6).max(86_400_000),
            dedupe_ttl_ms: ms(self.settle_dedupe_secs.max(1)),
            ledger: self.ledger.enabled,
            lease_ttl_ms: ms(self.lease_ttl_secs.max(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn a_toml_file_is_read_and_env_overrides_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tollgate.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:1\"\nredis_url = \"redis://a/\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&path), env(&[("REDIS_URL", "redis://b/")])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:1");
        assert_eq!(c.redis_url.as_deref(), Some("redis://b/"));
        let c = Config::load(
            Some(&path),
            env(&[
                ("REDIS_URL", "redis://b/"),
                ("TOLLGATE_REDIS_URL", "redis://c/"),
            ]),
        )
        .unwrap();
        assert_eq!(c.redis_url.as_deref(), Some("redis://c/"));
    }

    #[test]
    fn unknown_keys_are_refused_naming_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(&path, r#"{"listen":"x","redis_ulr":"y"}"#).unwrap();
        let e = Config::load(Some(&path), env(&[])).unwrap_err().to_string();
        assert!(e.contains("c.json") && e.contains("redis_ulr"), "{e}");
        std::fs::write(&path, r#"{"redis_timeout_ms":"fast"}"#).unwrap();
        let e = Config::load(Some(&path), env(&[])).unwrap_err().to_string();
        assert!(e.contains("key 'redis_timeout_ms'"), "{e}");
    }

    #[test]
    fn the_anomaly_section_sets_the_detector_and_a_bad_value_names_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(
            &path,
            "[anomaly]\nthreshold = 6.0\ncooldown_hours = 12\n\n[[anomaly.auto_emergency]]\nscope = \"team:a\"\nmode = \"downgrade_all\"\nmodel = \"gpt-4o-mini\"\nminutes = 60\n",
        )
        .unwrap();
        let c = Config::load(Some(&path), env(&[])).unwrap();
        assert_eq!(c.anomaly.sensitivity().threshold, 6.0);
        assert_eq!(c.anomaly.cooldown_hours, 12);
        assert_eq!(c.anomaly.auto_emergency[0].minutes, 60);
        assert_eq!(
            c.anomaly.auto_emergency[0].min_severity,
            crate::alerts::Severity::Critical
        );
        let rule =
            |extra: &str| format!("[[anomaly.auto_emergency]]\nscope = \"team:a\"\n{extra}\n");
        for (bad, key) in [
            ("[anomaly]\nthreshold = 0.0".to_owned(), "anomaly.threshold"),
            ("[anomaly]\newma_alpha = 1.5".to_owned(), "anomaly.ewma_alpha"),
            ("[anomaly]\nlookback_weeks = 0".to_owned(), "anomaly.lookback_weeks"),
            ("[anomaly]\nmin_history_hours = 10".to_owned(), "anomaly.min_history_hours"),
            ("[anomaly]\ncooldown_hours = 0".to_owned(), "anomaly.cooldown_hours"),
            ("[anomaly]\ninterval_ms = 5".to_owned(), "anomaly.interval_ms"),
            ("[anomaly]\nmax_series = 0".to_owned(), "anomaly.max_series"),
            ("[anomaly]\nsensitivity = 3".to_owned(), "sensitivity"),
            (rule("mode = \"downgrade_all\"\nminutes = 5"), "anomaly.auto_emergency.model"),
            (rule("mode = \"deny_all\"\nminutes = 0"), "anomaly.auto_emergency.minutes"),
            (rule("mode = \"deny_all\"\nminutes = 5\nmin_severity = \"info\""), "anomaly.auto_emergency.min_severity"),
            ("[[anomaly.auto_emergency]]\nscope = \"bad scope\"\nmode = \"deny_all\"\nminutes = 5".to_owned(), "anomaly.auto_emergency.scope"),
        ] {
            std::fs::write(&path, format!("{bad}\n")).unwrap();
            let e = Config::load(Some(&path), env(&[])).unwrap_err().to_string();
            assert!(e.contains(key), "{bad}: {e}");
        }
    }

    #[test]
    fn the_alerts_section_sets_delivery_and_a_bad_value_names_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "[alerts]\nmax_attempts = 2\nbackoff_base_ms = 5\n").unwrap();
        let c = Config::load(Some(&path), env(&[])).unwrap();
        assert_eq!(c.alerts.max_attempts, 2);
        assert_eq!(c.alerts.backoff_base_ms, 5);
        assert_eq!(c.alerts.timeout_ms, DeliverySettings::default().timeout_ms);
        for (bad, key) in [
            ("max_attempts = 0", "alerts.max_attempts"),
            (
                "backoff_base_ms = 9\nbackoff_max_ms = 8",
                "alerts.backoff_base_ms",
            ),
            ("timeout_ms = 0", "alerts.timeout_ms"),
            ("sweep_interval_ms = 0", "alerts.sweep_interval_ms"),
            ("retries = 3", "retries"),
        ] {
            std::fs::write(&path, format!("[alerts]\n{bad}\n")).unwrap();
            let e = Config::load(Some(&path), env(&[])).unwrap_err().to_string();
            assert!(e.contains(key), "{bad}: {e}");
        }
    }

    #[test]
    fn a_redis_key_prefix_that_records_or_hash_tags_cannot_carry_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        for bad in ["", "tg prod", "tg|x", "{tg}", "tg\n"] {
            let json = serde_json::json!({ "redis_key_prefix": bad }).to_string();
            std::fs::write(&path, json).unwrap();
            let e = Config::load(Some(&path), env(&[])).unwrap_err().to_string();
            assert!(e.contains("redis_key_prefix"), "{bad:?}: {e}");
        }
        std::fs::write(&path, r#"{"redis_key_prefix":"tollgate.prod:v1"}"#).unwrap();
        assert!(Config::load(Some(&path), env(&[])).is_ok());
    }

    #[test]
    fn tokens_come_from_env_or_files_and_both_roles_are_required() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("admin");
        std::fs::write(&f, "a1\na2\n").unwrap();
        let c = Config::load(
            None,
            env(&[
                ("TOLLGATE_ADMIN_TOKEN_FILE", f.to_str().unwrap()),
                ("TOLLGATE_DATAPLANE_TOKEN", "dp"),
            ]),
        )
        .unwrap();
        let auth = c.auth().unwrap();
        assert!(
            auth.check(crate::auth::Role::Admin, Some("Bearer a2"))
                .is_ok()
        );
        let c = Config::load(None, env(&[("TOLLGATE_ADMIN_TOKEN", "a")])).unwrap();
        assert!(
            c.auth()
                .unwrap_err()
                .to_string()
                .contains("dataplane_token")
        );
        let c = Config::load(None, env(&[("TOLLGATE_AUTH_DISABLED", "true")])).unwrap();
        assert!(c.auth().unwrap().is_disabled());
    }
}
