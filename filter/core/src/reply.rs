//! Local replies in the provider's own error shape, so a client SDK raises its usual error
//! with Tollgate's message instead of failing to parse the body.

use serde_json::json;

use crate::providers::{Dialect, Framing, Route};
use crate::stream::event_stream::encode_message;

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

/// The last event of a stream Tollgate cuts off, in the stream's own framing and the
/// provider's own error shape, so the client's SDK raises its usual error mid-stream.
pub fn stream_error_event(route: &Route, framing: Framing, message: &str) -> Vec<u8> {
    let reply = LocalReply::error(Some(route), 429, "budget_exceeded", message);
    let json = String::from_utf8_lossy(&reply.body).into_owned();
    match framing {
        // Anthropic names its error events; the others only send the JSON.
        Framing::Sse if route.api.dialect() == Dialect::Anthropic => {
            format!("event: error\ndata: {json}\n\n").into_bytes()
        }
        Framing::Sse | Framing::Json => format!("data: {json}\n\n").into_bytes(),
        // Gemini's JSON-array stream: one more element, then the array's end.
        Framing::JsonArray => format!(",\r\n{json}]").into_bytes(),
        // Bedrock: an exception message, as the AWS SDKs expect mid-stream.
        Framing::EventStream => encode_message(
            &[
                (":exception-type", "throttlingException"),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            format!("{{\"message\":{}}}", serde_json::Value::from(message)).as_bytes(),
        ),
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

    #[test]
    fn a_cut_off_stream_ends_with_an_error_in_its_own_framing() {
        let anthropic = Route::new(Provider::Anthropic, Api::Messages);
        let e = String::from_utf8(stream_error_event(&anthropic, Framing::Sse, "over")).unwrap();
        assert!(
            e.starts_with("event: error\ndata: {") && e.ends_with("}\n\n"),
            "{e}"
        );
        let openai = Route::new(Provider::Openai, Api::ChatCompletions);
        let e = String::from_utf8(stream_error_event(&openai, Framing::Sse, "over")).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(e.trim().trim_start_matches("data: ")).unwrap();
        assert_eq!(json["error"]["code"], "budget_exceeded");
        let gemini = Route::new(Provider::Gemini, Api::StreamGenerateContent);
        let e = stream_error_event(&gemini, Framing::JsonArray, "over");
        let whole = [&b"[{\"a\":1}"[..], &e].concat();
        let arr: serde_json::Value = serde_json::from_slice(&whole).unwrap();
        assert_eq!(arr[1]["error"]["status"], "RESOURCE_EXHAUSTED");
        let bedrock = Route::new(Provider::Bedrock, Api::ConverseStream);
        let e = stream_error_event(&bedrock, Framing::EventStream, "over");
        let mut reader = crate::stream::event_stream::EventStreamReader::new(1 << 16);
        let mut seen = 0;
        reader.feed(&e, &mut |_| seen += 1);
        assert_eq!((seen, reader.stats().corrupt_messages), (1, 0));
    }
}
