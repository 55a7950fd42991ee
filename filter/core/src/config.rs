//! The plugin configuration: the JSON in Envoy's `configuration` field, parsed and validated
//! into a [`Filter`] before any traffic is seen.
//!
//! Unknown fields are refused, and every error names the field's JSON path, so a bad config
//! fails `on_configure` with a log line an operator can act on
//! (`tollgate config: routes.rules[0].path: must start with '/'`). Every field has a default;
//! `{}` is a complete configuration.

use std::collections::BTreeMap;

use serde::Deserialize;
use tollgate_model::PriceTable;

use crate::providers::{RouteConfig, RouteTable};
use crate::request::RequestLimits;
use crate::stream::StreamLimits;

/// The largest request body the filter reads, by default (8 MiB). Envoy's own buffer limit
/// (`per_connection_buffer_limit_bytes`) must be at least this.
pub const DEFAULT_MAX_REQUEST_BODY_BYTES: usize = 8 * 1024 * 1024;

/// What to do with a request whose path is not a known provider API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnmatchedPolicy {
    /// Let it through untouched and uncounted (the `unmatched` outcome is still counted).
    #[default]
    Pass,
    /// Refuse it with 403.
    Deny,
}

/// What to do with a request body larger than `max_request_body_bytes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OversizedPolicy {
    /// Let it through unread; its input is estimated as one token per byte, and the answer's
    /// usage is still read and charged.
    #[default]
    Pass,
    /// Refuse it with 413 in the provider's error shape.
    Reject,
}

/// The configuration as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfigDto {
    /// Extra route rules and whether the built-in ones apply.
    #[serde(default)]
    pub routes: RouteConfig,
    /// Requests to paths that are not provider APIs.
    #[serde(default)]
    pub unmatched_path: UnmatchedPolicy,
    /// The largest request body read (default 8 MiB).
    #[serde(default)]
    pub max_request_body_bytes: Option<usize>,
    /// Requests over that size.
    #[serde(default)]
    pub oversized_request: OversizedPolicy,
    /// The largest single stream event held while it arrives (default 1 MiB); larger events
    /// are dropped and counted.
    #[serde(default)]
    pub max_stream_event_bytes: Option<usize>,
    /// Extra model names: an Azure deployment name (or any private name) → a price-table id.
    #[serde(default)]
    pub model_aliases: BTreeMap<String, String>,
}

/// A configuration that cannot be used; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tollgate config: {path}: {message}")]
pub struct ConfigError {
    /// JSON path of the field at fault (`.` for the document).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

fn config_error(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.into(),
        message: message.into(),
    }
}

/// Everything a filter instance decides with, validated.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Route matching.
    pub routes: RouteTable,
    /// Prices (the shipped table plus configured aliases).
    pub prices: PriceTable,
    /// Request-body limits.
    pub request_limits: RequestLimits,
    /// Stream limits.
    pub stream_limits: StreamLimits,
    /// Unknown paths.
    pub unmatched_path: UnmatchedPolicy,
    /// Oversized bodies.
    pub oversized_request: OversizedPolicy,
}

impl Filter {
    /// Parses and validates the plugin configuration. Empty input means `{}`.
    pub fn from_json(bytes: &[u8]) -> Result<Filter, ConfigError> {
        let text = if bytes.iter().all(u8::is_ascii_whitespace) {
            &b"{}"[..]
        } else {
            bytes
        };
        let de = &mut serde_json::Deserializer::from_slice(text);
        let dto: FilterConfigDto = serde_path_to_error::deserialize(de)
            .map_err(|e| config_error(e.path().to_string(), e.inner().to_string()))?;
        Filter::try_from(dto)
    }
}

impl TryFrom<FilterConfigDto> for Filter {
    type Error = ConfigError;

    fn try_from(dto: FilterConfigDto) -> Result<Filter, ConfigError> {
        let routes = RouteTable::try_from(dto.routes).map_err(|e| {
            // RouteError's message already starts with its path.
            let text = e.to_string();
            match text.split_once(": ") {
                Some((path, message)) => config_error(path, message),
                None => config_error("routes", text),
            }
        })?;
        let max_body = dto
            .max_request_body_bytes
            .unwrap_or(DEFAULT_MAX_REQUEST_BODY_BYTES);
        if max_body == 0 {
            return Err(config_error("max_request_body_bytes", "must be above 0"));
        }
        let max_event = dto
            .max_stream_event_bytes
            .unwrap_or(StreamLimits::default().max_event_bytes);
        if max_event < 1024 {
            return Err(config_error(
                "max_stream_event_bytes",
                "must be at least 1024",
            ));
        }
        let mut prices = PriceTable::shipped()
            .map_err(|e| config_error("(shipped price table)", e.to_string()))?;
        for (alias, model) in &dto.model_aliases {
            prices
                .add_alias(alias, model)
                .map_err(|e| config_error(format!("model_aliases.{alias}"), e.to_string()))?;
        }
        Ok(Filter {
            routes,
            prices,
            request_limits: RequestLimits {
                max_body_bytes: max_body,
            },
            stream_limits: StreamLimits {
                max_event_bytes: max_event,
                ..StreamLimits::default()
            },
            unmatched_path: dto.unmatched_path,
            oversized_request: dto.oversized_request,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(json: &str) -> String {
        Filter::from_json(json.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn an_empty_configuration_is_complete() {
        let f = Filter::from_json(b"").unwrap();
        assert_eq!(
            f.request_limits.max_body_bytes,
            DEFAULT_MAX_REQUEST_BODY_BYTES
        );
        assert_eq!(f.unmatched_path, UnmatchedPolicy::Pass);
        Filter::from_json(b"{}").unwrap();
    }

    #[test]
    fn errors_name_the_field() {
        assert!(error(r#"{"max_request_body_bytes":0}"#).contains("max_request_body_bytes"));
        assert!(error(r#"{"max_request_bytes":1}"#).contains("max_request_bytes"));
        assert!(
            error(r#"{"unmatched_path":"drop"}"#).starts_with("tollgate config: unmatched_path:")
        );
        let e = error(
            r#"{"routes":{"rules":[{"path":"x","provider":"openai","api":"chat_completions"}]}}"#,
        );
        assert!(e.contains("routes.rules[0].path"), "{e}");
        let e = error(r#"{"model_aliases":{"prod-chat":"no-such-model"}}"#);
        assert!(e.contains("model_aliases.prod-chat"), "{e}");
        assert!(error("{").starts_with("tollgate config: "));
    }

    #[test]
    fn model_aliases_name_azure_deployments() {
        let f = Filter::from_json(br#"{"model_aliases":{"prod-chat":"gpt-4o"}}"#).unwrap();
        assert_eq!(
            f.prices.resolve("prod-chat").map(|m| m.id()),
            Some("gpt-4o")
        );
    }
}
