//! `Path<T>`: axum's path extractor with the API's JSON errors. axum's own rejection is a
//! `text/plain` body (a percent-encoded byte that is not UTF-8, `GET /v1/budgets/%FF%FE`);
//! here it is `invalid_field` naming the path parameter, like every other bad value.

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, path::ErrorKind};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A path parameter (or tuple of them) of type `T`.
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(rejection)
    }
}

fn rejection(r: PathRejection) -> ApiError {
    match r {
        PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
            ErrorKind::InvalidUtf8InPathParam { key } => {
                ApiError::invalid(key.as_str(), "is not valid UTF-8 once percent-decoded")
            }
            ErrorKind::ParseErrorAtKey { key, .. } | ErrorKind::DeserializeError { key, .. } => {
                ApiError::invalid(key.as_str(), e.body_text())
            }
            _ => ApiError::invalid("path", e.body_text()),
        },
        // A route declared without the parameter its handler reads: a bug, not bad input.
        other => {
            tracing::error!(error = %other, "path parameters missing");
            ApiError::Internal
        }
    }
}
