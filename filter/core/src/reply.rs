//! Local replies in the provider's own error shape, so a client SDK raises its usual error
//! with Tollgate's message instead of failing to parse the body.

use serde_json::json;

use crate::providers::{Dialect, Route};

/// A response Tollgate sends itself instead of calling the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// HTTP status.
    pub status: u16,
    /// Extra headers (`content-type` is always JSON).
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: Vec<u8>,
}

/// The error `type`/`status` words each provider uses for a status.
fn words(status: u16) -> (&'static str, &'static str, &'static str) {
    // (OpenAI error.type, Anthropic error.type, Gemini error.status)
    match status {
        413 => (
            "invalid_request_error",
            "request_too_large",
            "INVALID_ARGUMENT",
        ),
        429 => (
            "insufficient_quota",
            "rate_limit_error",
            "RESOURCE_EXHAUSTED",
        ),
        403 => ("permission_error", "permission_error", "PERMISSION_DENIED"),
        503 => ("server_error", "api_error", "UNAVAILABLE"),
        _ => (
            "invalid_request_error",
            "invalid_request_error",
            "INVALID_ARGUMENT",
        ),
    }
}

impl LocalReply {
    /// An error reply shaped for the route's provider (OpenAI's shape when unknown).
    /// `code` is a stable snake_case word (`request_too_large`, `budget_exceeded`…).
    pub fn error(route: Option<&Route>, status: u16, code: &str, message: &str) -> LocalReply {
        let (openai_type, anthropic_type, gemini_status) = words(status);
        let body = match route.map(|r| r.api.dialect()) {
            Some(Dialect::Anthropic) => json!({
                "type": "error",
                "error": { "type": anthropic_type, "message": message },
            }),
            Some(Dialect::Gemini) => json!({
                "error": { "code": status, "message": message, "status": gemini_status },
            }),
            Some(Dialect::Converse) => json!({ "message": message }),
            _ => json!({
                "error": { "message": message, "type": openai_type, "param": null, "code": code },
            }),
        };
        LocalReply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(&body).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{Api, Provider};

    fn body(r: &LocalReply) -> serde_json::Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn each_provider_gets_its_own_error_shape() {
        let openai = LocalReply::error(
            Some(&Route::new(Provider::Openai, Api::ChatCompletions)),
            413,
            "request_too_large",
            "too big",
        );
        assert_eq!(body(&openai)["error"]["code"], "request_too_large");
        let anthropic = LocalReply::error(
            Some(&Route::new(Provider::Anthropic, Api::Messages)),
            429,
            "budget_exceeded",
            "over",
        );
        assert_eq!(body(&anthropic)["type"], "error");
        assert_eq!(body(&anthropic)["error"]["type"], "rate_limit_error");
        let gemini = LocalReply::error(
            Some(&Route::new(Provider::Gemini, Api::GenerateContent)),
            429,
            "budget_exceeded",
            "over",
        );
        assert_eq!(body(&gemini)["error"]["status"], "RESOURCE_EXHAUSTED");
        let unknown = LocalReply::error(None, 403, "unmatched_path", "no");
        assert_eq!(body(&unknown)["error"]["type"], "permission_error");
    }
}
