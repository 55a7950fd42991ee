//! The configuration keys that say which Redis deployment to use and how to reach it
//! (`redis_mode`, the Sentinel master, credentials, TLS files), their environment overrides,
//! and the [`RedisConnect`] they make. Files are read when the store is built, and an error
//! names the key whose file or value is wrong. `docs/redis-production.md` explains each.

use std::fmt;

use serde::Deserialize;

use super::{Config, ConfigError, invalid, read};
use crate::store::redis::{RedisConnect, Topology};

/// Which Redis deployment `redis_url` names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisMode {
    /// One node (or a managed endpoint in front of one primary): one URL.
    #[default]
    Standalone,
    /// A Redis Cluster: one or more seed node URLs.
    Cluster,
    /// Sentinel-managed primary: the Sentinels' URLs and `redis_sentinel_master`.
    Sentinel,
}

/// A secret that `Debug` never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

fn file_bytes(path: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

impl Config {
    /// Applies the `TOLLGATE_REDIS_*` overrides of the deployment keys.
    pub(super) fn redis_env(
        &mut self,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        if let Some(v) = env("TOLLGATE_REDIS_MODE") {
            self.redis_mode = match v.as_str() {
                "standalone" => RedisMode::Standalone,
                "cluster" => RedisMode::Cluster,
                "sentinel" => RedisMode::Sentinel,
                _ => {
                    return Err(invalid(
                        "env",
                        "TOLLGATE_REDIS_MODE",
                        "must be standalone, cluster or sentinel",
                    ));
                }
            };
        }
        let path = |k: &str| env(k).filter(|v| !v.is_empty()).map(Into::into);
        if let Some(v) = env("TOLLGATE_REDIS_SENTINEL_MASTER") {
            self.redis_sentinel_master = Some(v);
        }
        if let Some(v) = env("TOLLGATE_REDIS_USERNAME") {
            self.redis_username = Some(v);
        }
        if let Some(v) = path("TOLLGATE_REDIS_PASSWORD_FILE") {
            self.redis_password_file = Some(v);
        }
        if let Some(v) = env("TOLLGATE_REDIS_PASSWORD") {
            self.redis_password = Some(Secret(v));
        }
        if let Some(v) = path("TOLLGATE_REDIS_TLS_CA_FILE") {
            self.redis_tls_ca_file = Some(v);
        }
        if let Some(v) = path("TOLLGATE_REDIS_TLS_CERT_FILE") {
            self.redis_tls_cert_file = Some(v);
        }
        if let Some(v) = path("TOLLGATE_REDIS_TLS_KEY_FILE") {
            self.redis_tls_key_file = Some(v);
        }
        if let Some(v) = env("TOLLGATE_REDIS_ALLOW_EVICTION") {
            self.redis_allow_eviction = matches!(v.as_str(), "1" | "true" | "yes");
        }
        Ok(())
    }

    /// The Redis deployment to connect to, with its password and certificates read from
    /// their files; `None` when no `redis_url` is set (the memory store).
    pub fn redis_connect(&self) -> Result<Option<RedisConnect>, ConfigError> {
        let Some(url) = &self.redis_url else {
            return Ok(None);
        };
        let urls: Vec<String> = url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        if urls.is_empty() {
            return Ok(None);
        }
        if let Some(bad) = urls
            .iter()
            .find(|u| !(u.starts_with("redis://") || u.starts_with("rediss://")))
        {
            return Err(invalid(
                "config",
                "redis_url",
                format!("{bad:?}: each URL must start with redis:// or rediss:// (TLS)"),
            ));
        }
        let topology = match self.redis_mode {
            RedisMode::Standalone => {
                let [one] = urls.as_slice() else {
                    return Err(invalid(
                        "config",
                        "redis_url",
                        "standalone mode takes one URL (several: set redis_mode to cluster or sentinel)",
                    ));
                };
                Topology::Standalone { url: one.clone() }
            }
            RedisMode::Cluster => Topology::Cluster {
                seeds: urls.clone(),
            },
            RedisMode::Sentinel => Topology::Sentinel {
                sentinels: urls.clone(),
                master: self
                    .redis_sentinel_master
                    .clone()
                    .filter(|m| !m.is_empty())
                    .ok_or_else(|| {
                        invalid(
                            "config",
                            "redis_sentinel_master",
                            "sentinel mode needs the monitored primary's name",
                        )
                    })?,
            },
        };
        let tls = urls.iter().any(|u| u.starts_with("rediss://"));
        let tls_files = [
            ("redis_tls_ca_file", &self.redis_tls_ca_file),
            ("redis_tls_cert_file", &self.redis_tls_cert_file),
            ("redis_tls_key_file", &self.redis_tls_key_file),
        ];
        if let Some((key, _)) = tls_files.iter().find(|(_, f)| f.is_some())
            && !tls
        {
            return Err(invalid(
                "config",
                key,
                "is set but redis_url is not rediss://: the connection would not use TLS",
            ));
        }
        let tls_client_pem = match (&self.redis_tls_cert_file, &self.redis_tls_key_file) {
            (Some(c), Some(k)) => Some((file_bytes(c)?, file_bytes(k)?)),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "config",
                    "redis_tls_key_file",
                    "redis_tls_cert_file and redis_tls_key_file go together",
                ));
            }
        };
        let password = match (&self.redis_password, &self.redis_password_file) {
            (Some(Secret(p)), _) => Some(p.clone()),
            (None, Some(f)) => Some(read(f)?.trim_end_matches(['\r', '\n']).to_owned()),
            (None, None) => None,
        };
        Ok(Some(RedisConnect {
            topology: Some(topology),
            username: self.redis_username.clone().filter(|u| !u.is_empty()),
            password,
            tls_ca_pem: self
                .redis_tls_ca_file
                .as_deref()
                .map(file_bytes)
                .transpose()?,
            tls_client_pem,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(json: &str, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(&path, json).unwrap();
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        Config::load(Some(&path), move |k| m.get(k).cloned())
    }

    #[test]
    fn sentinel_mode_reads_every_url_and_the_password_file() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let c = load(
            r#"{"redis_url":"redis://a:26379, redis://b:26379","redis_mode":"sentinel",
                "redis_sentinel_master":"main","redis_username":"tollgate"}"#,
            &[("TOLLGATE_REDIS_PASSWORD_FILE", pw.to_str().unwrap())],
        )
        .unwrap();
        let r = c.redis_connect().unwrap().unwrap();
        assert_eq!(
            r.topology,
            Some(Topology::Sentinel {
                sentinels: vec!["redis://a:26379".into(), "redis://b:26379".into()],
                master: "main".into(),
            })
        );
        assert_eq!(r.username.as_deref(), Some("tollgate"));
        assert_eq!(r.password.as_deref(), Some("s3cret"));
        assert!(!format!("{c:?}{r:?}").contains("s3cret"));
        let c = load(
            r#"{"redis_url":"redis://a/","redis_password_file":"/nonexistent/pw"}"#,
            &[("TOLLGATE_REDIS_PASSWORD", "from-env")],
        )
        .unwrap();
        let r = c.redis_connect().unwrap().unwrap();
        assert_eq!(r.password.as_deref(), Some("from-env"));
    }

    #[test]
    fn deployment_settings_that_cannot_work_are_refused_naming_the_key() {
        let cases = [
            (r#"{"redis_url":"redis://a/,redis://b/"}"#, "redis_url"),
            (r#"{"redis_url":"http://a/"}"#, "redis_url"),
            (
                r#"{"redis_url":"redis://a/","redis_mode":"sentinel"}"#,
                "redis_sentinel_master",
            ),
            (
                r#"{"redis_url":"redis://a/","redis_tls_ca_file":"/ca.pem"}"#,
                "redis_tls_ca_file",
            ),
            (
                r#"{"redis_url":"rediss://a/","redis_tls_cert_file":"/c.pem"}"#,
                "redis_tls_key_file",
            ),
            (
                r#"{"redis_url":"rediss://a/","redis_password_file":"/nonexistent/pw"}"#,
                "/nonexistent/pw",
            ),
        ];
        for (json, key) in cases {
            let e = load(json, &[])
                .and_then(|c| c.redis_connect())
                .err()
                .unwrap_or_else(|| panic!("{json} was accepted"))
                .to_string();
            assert!(e.contains(key), "{json}: {e}");
        }
        let e = load("{}", &[("TOLLGATE_REDIS_MODE", "cluster-ish")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("TOLLGATE_REDIS_MODE"), "{e}");
    }
}
