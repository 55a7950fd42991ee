//! The filter-core part of the plugin configuration: a serde DTO with
//! `deny_unknown_fields`, validated into [`CoreConfig`] by `TryFrom` (STYLE.md rule 2). The
//! proxy-wasm adapter embeds [`CoreConfigDto`] in its own config and refuses to start on an
//! error, logging the message, which names the field.

use serde::Deserialize;

use crate::providers::{RouteConfig, RouteError, RouteTable};
use crate::request::RequestLimits;
use crate::stream::StreamLimits;

/// The smallest bound accepted for events and bodies: below it no provider's usage event fits.
pub const MIN_BOUND_BYTES: usize = 4 * 1024;

/// What the operator writes (JSON), every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoreConfigDto {
    /// Extra route rules and the built-in switch.
    #[serde(default)]
    pub routes: RouteConfig,
    /// Request bodies over this are not parsed (default 8 MiB).
    #[serde(default)]
    pub max_request_body_bytes: Option<usize>,
    /// The most one pending stream event may hold (default 1 MiB).
    #[serde(default)]
    pub max_stream_event_bytes: Option<usize>,
    /// How much of a non-streamed JSON response is kept (default 256 KiB; usage is at the end).
    #[serde(default)]
    pub max_json_tail_bytes: Option<usize>,
    /// Ask OpenAI-style streams for usage by rewriting the request (default true).
    #[serde(default)]
    pub add_stream_usage_option: Option<bool>,
}

/// A config value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A route rule is invalid.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// A byte bound is too small to hold a usage event.
    #[error("{field}: {value} is below the minimum of {MIN_BOUND_BYTES} bytes")]
    TooSmall {
        /// The field's name.
        field: &'static str,
        /// The value given.
        value: usize,
    },
}

/// The validated configuration the readers run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreConfig {
    /// Route matching.
    pub routes: RouteTable,
    /// For [`crate::request::read_request`].
    pub request: RequestLimits,
    /// For [`crate::stream::ResponseReader::new`].
    pub stream: StreamLimits,
}

fn bound(field: &'static str, value: Option<usize>, default: usize) -> Result<usize, ConfigError> {
    match value {
        Some(value) if value < MIN_BOUND_BYTES => Err(ConfigError::TooSmall { field, value }),
        Some(value) => Ok(value),
        None => Ok(default),
    }
}

impl TryFrom<CoreConfigDto> for CoreConfig {
    type Error = ConfigError;

    fn try_from(dto: CoreConfigDto) -> Result<CoreConfig, ConfigError> {
        let request_defaults = RequestLimits::default();
        let stream_defaults = StreamLimits::default();
        Ok(CoreConfig {
            routes: RouteTable::try_from(dto.routes)?,
            request: RequestLimits {
                max_body_bytes: bound(
                    "max_request_body_bytes",
                    dto.max_request_body_bytes,
                    request_defaults.max_body_bytes,
                )?,
                add_stream_usage_option: dto
                    .add_stream_usage_option
                    .unwrap_or(request_defaults.add_stream_usage_option),
            },
            stream: StreamLimits {
                max_event_bytes: bound(
                    "max_stream_event_bytes",
                    dto.max_stream_event_bytes,
                    stream_defaults.max_event_bytes,
                )?,
                max_json_tail_bytes: bound(
                    "max_json_tail_bytes",
                    dto.max_json_tail_bytes,
                    stream_defaults.max_json_tail_bytes,
                )?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<CoreConfig, String> {
        let dto: CoreConfigDto = serde_json::from_str(json).map_err(|e| e.to_string())?;
        CoreConfig::try_from(dto).map_err(|e| e.to_string())
    }

    #[test]
    fn an_empty_config_gives_the_defaults() {
        let config = parse("{}").unwrap();
        assert_eq!(config.request, RequestLimits::default());
        assert_eq!(config.stream, StreamLimits::default());
        assert_eq!(config.routes, RouteTable::builtin());
    }

    #[test]
    fn errors_name_the_field() {
        assert!(
            parse(r#"{"max_stream_event_byte":1}"#)
                .unwrap_err()
                .contains("max_stream_event_byte")
        );
        assert!(
            parse(r#"{"max_json_tail_bytes":10}"#)
                .unwrap_err()
                .starts_with("max_json_tail_bytes")
        );
        assert!(
            parse(r#"{"routes":{"rules":[{"path":"x","provider":"openai","api":"responses"}]}}"#)
                .unwrap_err()
                .starts_with("routes.rules[0].path")
        );
    }

    #[test]
    fn set_values_are_kept() {
        let config = parse(
            r#"{"max_request_body_bytes":65536,"add_stream_usage_option":false,"max_stream_event_bytes":8192}"#,
        )
        .unwrap();
        assert_eq!(config.request.max_body_bytes, 65536);
        assert!(!config.request.add_stream_usage_option);
        assert_eq!(config.stream.max_event_bytes, 8192);
    }
}
