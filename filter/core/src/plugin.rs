//! The plugin configuration (Tollgate's whole `configuration` JSON in Envoy): the JSON in Envoy's `configuration` field, parsed and validated
//! into a [`Filter`] before any traffic is seen.
//!
//! Unknown fields are refused, and every error names the field's JSON path, so a bad config
//! fails `on_configure` with a log line an operator can act on
//! (`tollgate config: routes.rules[0].path: must start with '/'`). Every field has a default;
//! `{}` is a complete configuration.

use std::collections::BTreeMap;

use serde::Deserialize;
use tollgate_model::PriceTable;

use crate::admission::{ControlPlane, ControlPlaneDto};
use crate::config::{CoreConfig, CoreConfigDto};
use crate::json_path;
use crate::providers::{RouteConfig, RouteTable};
use crate::request::RequestLimits;
use crate::scopes::{ScopeConfigDto, ScopeResolver};
use crate::stream::StreamLimits;

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

/// The configuration as written. The reader fields are [`CoreConfigDto`]'s, spelled out
/// here because serde cannot refuse unknown fields through `flatten`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfigDto {
    /// Extra route rules and whether the built-in ones apply.
    #[serde(default)]
    pub routes: RouteConfig,
    /// Requests to paths that are not provider APIs.
    #[serde(default)]
    pub unmatched_path: UnmatchedPolicy,
    /// The largest request body read (default 8 MiB). Envoy's buffer limit
    /// (`per_connection_buffer_limit_bytes`) must be at least this.
    #[serde(default)]
    pub max_request_body_bytes: Option<usize>,
    /// Requests over that size.
    #[serde(default)]
    pub oversized_request: OversizedPolicy,
    /// The largest single stream event held while it arrives (default 1 MiB); larger events
    /// are dropped and counted.
    #[serde(default)]
    pub max_stream_event_bytes: Option<usize>,
    /// How much of the end of a non-streamed JSON answer is kept for its usage (default 256 KiB).
    #[serde(default)]
    pub max_json_tail_bytes: Option<usize>,
    /// Ask OpenAI-style streams for usage by rewriting the request (default true).
    #[serde(default)]
    pub add_stream_usage_option: Option<bool>,
    /// Extra model names: an Azure deployment name (or any private name) → a price-table id.
    #[serde(default)]
    pub model_aliases: BTreeMap<String, String>,
    /// Where each request's scopes come from.
    #[serde(default)]
    pub scopes: ScopeConfigDto,
    /// The control plane that admits and settles calls. Without it the filter only measures:
    /// usage is read, priced and counted in metrics, nothing is reserved or refused.
    #[serde(default)]
    pub control_plane: Option<ControlPlaneDto>,
    /// Tell the client what the call reserved and what is left (`x-tollgate-*` response
    /// headers; default true).
    #[serde(default)]
    pub response_headers: Option<bool>,
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
    /// Scope resolution.
    pub scopes: ScopeResolver,
    /// Admission and settlement, when configured.
    pub control_plane: Option<ControlPlane>,
    /// Whether `x-tollgate-*` response headers are added.
    pub response_headers: bool,
}

impl Filter {
    /// Parses and validates the plugin configuration. Empty input means `{}`.
    pub fn from_json(bytes: &[u8]) -> Result<Filter, ConfigError> {
        let text = if bytes.iter().all(u8::is_ascii_whitespace) {
            &b"{}"[..]
        } else {
            bytes
        };
        let dto: FilterConfigDto = serde_json::from_slice(text).map_err(|e| {
            let offset = json_path::offset_of(text, e.line(), e.column());
            config_error(json_path::path_at(text, offset), e.to_string())
        })?;
        Filter::try_from(dto)
    }
}

impl TryFrom<FilterConfigDto> for Filter {
    type Error = ConfigError;

    fn try_from(dto: FilterConfigDto) -> Result<Filter, ConfigError> {
        let core = CoreConfig::try_from(CoreConfigDto {
            routes: dto.routes,
            max_request_body_bytes: dto.max_request_body_bytes,
            max_stream_event_bytes: dto.max_stream_event_bytes,
            max_json_tail_bytes: dto.max_json_tail_bytes,
            add_stream_usage_option: dto.add_stream_usage_option,
        })
        .map_err(|e| {
            // Every CoreConfig error message starts with the field's path.
            let text = e.to_string();
            match text.split_once(": ") {
                Some((path, message)) => config_error(path, message),
                None => config_error(".", text),
            }
        })?;
        let mut prices = PriceTable::shipped()
            .map_err(|e| config_error("(shipped price table)", e.to_string()))?;
        for (alias, model) in &dto.model_aliases {
            prices
                .add_alias(alias, model)
                .map_err(|e| config_error(format!("model_aliases.{alias}"), e.to_string()))?;
        }
        let scopes =
            ScopeResolver::try_from(dto.scopes).map_err(|e| config_error(e.field, e.reason))?;
        let control_plane = dto
            .control_plane
            .map(ControlPlane::try_from)
            .transpose()
            .map_err(|(path, message)| config_error(path, message))?;
        Ok(Filter {
            scopes,
            control_plane,
            response_headers: dto.response_headers.unwrap_or(true),
            routes: core.routes,
            prices,
            request_limits: core.request,
            stream_limits: core.stream,
            unmatched_path: dto.unmatched_path,
            oversized_request: dto.oversized_request,
        })
    }
}

impl Filter {
    /// The name the control plane is told for a model: its price-table id when this
    /// filter's table knows the name (an Azure deployment name configured in
    /// `model_aliases`, a dated snapshot, a Bedrock inference profile), so that the call
    /// counts toward a budget limited to that model; the name as sent otherwise.
    pub fn price_table_id(&self, model: &str) -> String {
        self.prices
            .canonical_id(model)
            .map_or_else(|| model.to_owned(), str::to_owned)
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
        assert_eq!(f.request_limits, RequestLimits::default());
        assert_eq!(f.unmatched_path, UnmatchedPolicy::Pass);
        Filter::from_json(b"{}").unwrap();
    }

    #[test]
    fn errors_name_the_field() {
        let e = error(r#"{"max_request_body_bytes":0}"#);
        assert!(
            e.starts_with("tollgate config: max_request_body_bytes: "),
            "{e}"
        );
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
        assert_eq!(f.price_table_id("prod-chat"), "gpt-4o");
        assert_eq!(
            f.price_table_id("claude-sonnet-4-5-20250929"),
            "claude-sonnet-4-5"
        );
        assert_eq!(f.price_table_id("no-such-model"), "no-such-model");
    }
}
