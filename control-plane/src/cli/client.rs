//! The CLI's HTTP client for the admin API.
//!
//! `reqwest` without TLS: the CLI talks plain HTTP to the service (an in-cluster address or a
//! `kubectl port-forward`); TLS, when wanted, is terminated in front of the service. Leaving
//! TLS out keeps a crypto provider (ring or aws-lc) out of the build entirely.

use reqwest::Method;
use serde_json::Value;

/// An authenticated client.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// Reads the admin token from `TOLLGATE_ADMIN_TOKEN`.
    pub fn from_env(base: &str) -> Result<Client, String> {
        let token = std::env::var("TOLLGATE_ADMIN_TOKEN")
            .ok()
            .and_then(|t| t.split(',').next().map(str::to_owned))
            .unwrap_or_default();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// GETs a non-JSON answer (an invoice's HTML or PDF) as bytes; an API error as in
    /// [`Client::send`].
    pub async fn get_bytes(&self, path: &str) -> Result<Vec<u8>, String> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| format!("{}: {e}", self.base))?;
        if resp.status().is_success() {
            return resp
                .bytes()
                .await
                .map(|b| b.to_vec())
                .map_err(|e| e.to_string());
        }
        let status = resp.status().as_u16();
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        let e = &value["error"];
        Err(format!(
            "{status} {}: {} (field {})",
            e["code"].as_str().unwrap_or("error"),
            e["message"].as_str().unwrap_or_default(),
            e["field"].as_str().unwrap_or("-")
        ))
    }

    /// Sends one request; an API error becomes `code: message (field)`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        if_match: Option<u64>,
    ) -> Result<Value, String> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(v) = if_match {
            req = req.header("if-match", format!("\"{v}\""));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{}: {e}", self.base))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            return Ok(value);
        }
        let e = &value["error"];
        let mut msg = format!(
            "{} {}: {}",
            status.as_u16(),
            e["code"].as_str().unwrap_or("error"),
            e["message"].as_str().unwrap_or_default()
        );
        if let Some(f) = e["field"].as_str() {
            msg.push_str(&format!(" (field {f})"));
        }
        Err(msg)
    }
}
