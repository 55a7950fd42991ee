//! `JsonBody<T>`: the JSON extractor every route uses. It reads the body under the size
//! limit (413 past it) and deserializes with `serde_path_to_error`, so a 400 names the exact
//! field path (`settlements[3].usage.output_tokens`) of a wrong, missing or unknown field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::state::AppState;

/// A JSON request body of type `T`.
pub struct JsonBody<T>(pub T);

/// Parses `bytes` as `T`, naming the field path on error.
///
/// A body of the wrong shape (not JSON, a value of the wrong type, a missing or unknown field)
/// is `invalid_json`; a well-typed value its type refuses (a string that is no scope, an unknown
/// enum variant) is `invalid_field`, the same code a bad value in a path or a rule broken after
/// parsing gets. serde words the two through `de::Error::invalid_value` and `unknown_variant`,
/// whose messages start as matched here (stable since serde 1.0).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let message = e.inner().to_string();
        let bad_value = e.inner().is_data()
            && (message.starts_with("invalid value: ") || message.starts_with("unknown variant "));
        if bad_value {
            ApiError::Invalid { field, message }
        } else {
            ApiError::InvalidJson { field, message }
        }
    })
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.body_limit_bytes;
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit }
            } else {
                ApiError::BadRequest(r.body_text())
            }
        })?;
        parse(&bytes).map(JsonBody)
    }
}
