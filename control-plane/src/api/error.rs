//! `ApiError`: every way an API call can fail, each with a stable snake_case `code` and an
//! HTTP status. Bodies are `{"error":{"code":…,"message":…,"field":…}}`; internals (store
//! messages) are logged, never returned.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::admission::AdmissionError;
use crate::store::StoreError;

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No `Authorization: Bearer` header.
    #[error("missing bearer token")]
    MissingToken,
    /// A token that matches nothing.
    #[error("invalid token")]
    InvalidToken,
    /// A valid token for the other API.
    #[error("this token may not call this API")]
    Forbidden,
    /// No such resource.
    #[error("{0} not found")]
    NotFound(String),
    /// Create of something that exists.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// `If-Match` names an older version.
    #[error("version mismatch: current version is {current}")]
    PreconditionFailed {
        /// The stored version.
        current: u64,
    },
    /// The body is larger than the limit.
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body is not JSON, or has a field of the wrong type, missing or unknown.
    #[error("{message}")]
    InvalidJson {
        /// JSON path of the offending value (`.` for the document).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The JSON is well formed but a value breaks a rule.
    #[error("{message}")]
    Invalid {
        /// The field at fault.
        field: String,
        /// The rule.
        message: String,
    },
    /// The route exists, but not for this method (`Allow` lists those it has).
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// A header or query parameter is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The store cannot be reached: nothing was decided.
    #[error("store unavailable")]
    StoreUnavailable,
    /// The store refuses writes because it is full: nothing was decided or written.
    #[error("store full: it refuses writes until memory is freed or its limit raised")]
    StoreFull,
    /// A bug or corrupt data; details are in the log.
    #[error("internal error")]
    Internal,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail {
    /// Stable machine-readable code.
    code: &'static str,
    /// Human-readable message.
    message: String,
    /// The field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

impl ApiError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MissingToken => "missing_token",
            ApiError::InvalidToken => "invalid_token",
            ApiError::Forbidden => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::AlreadyExists(_) => "already_exists",
            ApiError::PreconditionFailed { .. } => "precondition_failed",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::InvalidJson { .. } => "invalid_json",
            ApiError::Invalid { .. } => "invalid_field",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::StoreUnavailable => "store_unavailable",
            ApiError::StoreFull => "store_full",
            ApiError::Internal => "internal",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MissingToken | ApiError::InvalidToken => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::AlreadyExists(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::InvalidJson { .. } | ApiError::Invalid { .. } | ApiError::BadRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::StoreUnavailable | ApiError::StoreFull => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A validation error on `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Unavailable(msg) => {
                tracing::warn!(error = %msg, "store unavailable");
                ApiError::StoreUnavailable
            }
            StoreError::Full(msg) => {
                tracing::error!(error = %msg, "store full: writes refused");
                ApiError::StoreFull
            }
            StoreError::Corrupt(msg) => {
                tracing::error!(error = %msg, "store data corrupt");
                ApiError::Internal
            }
            StoreError::BadCursor(c) => ApiError::invalid(
                "cursor",
                format!("{c:?} is not a cursor this API handed out"),
            ),
        }
    }
}

impl From<AdmissionError> for ApiError {
    fn from(e: AdmissionError) -> ApiError {
        match e {
            AdmissionError::Invalid { field, message } => ApiError::Invalid { field, message },
            AdmissionError::Store(s) => s.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let field = match &self {
            ApiError::InvalidJson { field, .. } | ApiError::Invalid { field, .. } => {
                Some(field.clone())
            }
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
                field,
            },
        };
        let mut resp = (self.status(), Json(body)).into_response();
        if matches!(self, ApiError::MissingToken | ApiError::InvalidToken) {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if matches!(self, ApiError::StoreUnavailable | ApiError::StoreFull) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}
