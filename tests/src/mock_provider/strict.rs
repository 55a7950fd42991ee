//! The mock provider as strict as the real providers where a gateway could break a call
//! ([`MockProvider::start_strict`](super::MockProvider::start_strict)):
//! - Mistral refuses `stream_options` (422 `extra_forbidden`, as `api.mistral.ai` does with
//!   any field it does not know);
//! - Azure OpenAI refuses `stream_options` before api-version 2024-09-01 (400);
//! - Bedrock refuses a request whose SigV4 signature does not verify with the test
//!   credentials ([`TEST_AWS_ACCESS_KEY_ID`]), or that carries none (403); a Bedrock API key
//!   (`Authorization: Bearer …`, [`TEST_BEDROCK_API_KEY`]) stands instead of a signature,
//!   as it does on AWS;
//! - answers are gzipped whenever the request's `accept-encoding` allows it (the SDKs ask
//!   for gzip; the gateway asks for `identity`, `docs/filter.md`);
//! - an OpenAI-style stream carries a usage chunk only when the request asked for it
//!   (`stream_options.include_usage`: [`as_asked`]), and each provider's default answer is
//!   its own recording ([`default_fixture`]).

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The access key id the SDK suites sign Bedrock calls with.
pub const TEST_AWS_ACCESS_KEY_ID: &str = "AKIDTOLLGATETEST";
/// Its secret: the strict mock verifies signatures with it, as AWS would.
pub const TEST_AWS_SECRET_ACCESS_KEY: &str = "tollgate/test/secret/key/not/a/real/one";

/// The Bedrock API key the strict mock takes (`Authorization: Bearer <key>`), as AWS takes
/// its long-term Bedrock API keys instead of a SigV4 signature.
pub const TEST_BEDROCK_API_KEY: &str = "ABSKtollgatetestkeynotarealone";

/// A real provider's refusal of this request, or `None` when it would take it.
pub fn refusal(method: &str, uri: &str, headers: &HeaderMap, body: &[u8]) -> Option<Response> {
    let host = header(headers, "host").unwrap_or_default();
    let host = host.split(':').next().unwrap_or_default();
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let stream_options = json.as_ref().and_then(|j| j.get("stream_options"));
    if host == "api.mistral.ai" && stream_options.is_some() {
        let detail = serde_json::json!({
            "object": "error",
            "message": {"detail": [{
                "type": "extra_forbidden",
                "loc": ["body", "stream_options"],
                "msg": "Extra inputs are not permitted",
                "input": stream_options,
            }]},
            "type": "invalid_request_error",
            "param": null,
            "code": null,
        });
        return Some(json_error(StatusCode::UNPROCESSABLE_ENTITY, &detail));
    }
    if host.ends_with(".openai.azure.com") && stream_options.is_some() {
        let version = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("api-version="))
            .unwrap_or_default();
        if version.get(..10).is_some_and(|date| date < "2024-09-01") {
            let error = serde_json::json!({"error": {
                "code": null,
                "message": "Unrecognized request argument supplied: stream_options",
                "param": null,
                "type": "invalid_request_error",
            }});
            return Some(json_error(StatusCode::BAD_REQUEST, &error));
        }
    }
    let bedrock_key = header(headers, "authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .is_some_and(|key| key == TEST_BEDROCK_API_KEY);
    if host.starts_with("bedrock-runtime")
        && host.ends_with(".amazonaws.com")
        && !bedrock_key
        && let Err(why) = verify_sigv4(method, path, query, headers, body)
    {
        let error = serde_json::json!({ "message": why });
        let mut resp = json_error(StatusCode::FORBIDDEN, &error);
        if let Ok(v) = "InvalidSignatureException".parse() {
            resp.headers_mut().insert("x-amzn-errortype", v);
        }
        return Some(resp);
    }
    None
}

/// The recorded answer each provider gives a request that names none: by host, path and
/// the body's stream flag, with OpenAI's usage chunk only when the request asked for it.
pub fn default_fixture(uri: &str, headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let host = header(headers, "host").unwrap_or_default();
    let host = host.split(':').next().unwrap_or_default();
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let streaming = json
        .as_ref()
        .and_then(|j| j.get("stream")?.as_bool())
        .unwrap_or(false);
    let path = uri.split('?').next().unwrap_or(uri);
    let name = if path.ends_with("/converse") {
        "bedrock-converse-cache.json"
    } else if path.ends_with("/converse-stream") {
        "bedrock-converse-stream-cache.bin"
    } else if path.ends_with("/v2/chat") {
        if streaming {
            "cohere-chat-stream.sse"
        } else {
            "cohere-chat.json"
        }
    } else if path.ends_with("/chat/completions") && streaming {
        // OpenAI's and Azure's recordings end with a usage chunk: [`as_asked`] drops it
        // when the request did not ask for it.
        match host {
            "api.mistral.ai" => "mistral-chat-stream-cache.sse",
            "api.groq.com" => "groq-chat-stream-x-groq.sse",
            h if h.ends_with(".openai.azure.com") => "azure-openai-chat-stream.sse",
            _ => "openai-chat-stream-include-usage.sse",
        }
    } else {
        return super::default_fixture(uri, body);
    };
    Some(name.to_owned())
}

/// An SSE answer as the provider sends it to this request: without the usage-only chunk
/// (`"choices": []` and a `usage` object) unless the request asked for it
/// (`stream_options.include_usage`), as OpenAI and Azure OpenAI do.
pub fn as_asked(request_body: &[u8], answer: Bytes, sse: bool) -> Bytes {
    let asked = serde_json::from_slice::<Value>(request_body)
        .ok()
        .and_then(|j| j.pointer("/stream_options/include_usage")?.as_bool())
        .unwrap_or(false);
    if !sse || asked {
        return answer;
    }
    Bytes::from(without_usage_chunk(&answer))
}

/// An SSE stream without its usage-only events (`"choices": []` and a `usage` object): what
/// a client that did not ask for usage gets from OpenAI, and from the gateway.
pub fn without_usage_chunk(stream: &[u8]) -> Vec<u8> {
    super::split(&Bytes::copy_from_slice(stream), true, None)
        .iter()
        .filter(|event| !usage_only(event))
        .flat_map(|event| event.iter().copied())
        .collect()
}

fn usage_only(event: &[u8]) -> bool {
    let text = String::from_utf8_lossy(event);
    let data: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .collect();
    serde_json::from_str::<Value>(&data)
        .is_ok_and(|j| j["choices"].as_array().is_some_and(Vec::is_empty) && j["usage"].is_object())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn json_error(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // An HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 3986 percent-encoding of everything but the unreserved characters (and `/` when
/// `keep_slash`), as SigV4's canonical request wants it.
fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
        if unreserved || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks an AWS Signature Version 4 (`Authorization: AWS4-HMAC-SHA256 …`) the way AWS
/// does, with the test credentials: the canonical request over the method, the path as
/// received (encoded once more: every service but S3), the sorted query, the signed
/// headers as received and the body's SHA-256.
pub fn verify_sigv4(
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    let auth = header(headers, "authorization").ok_or("Missing Authentication Token")?;
    let fields = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("Authorization header is not AWS4-HMAC-SHA256")?;
    let field = |name: &str| {
        fields
            .split(',')
            .map(str::trim)
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
    };
    let credential = field("Credential").ok_or("no Credential")?;
    let signed_headers = field("SignedHeaders").ok_or("no SignedHeaders")?;
    let signature = field("Signature").ok_or("no Signature")?;
    let mut scope = credential.splitn(2, '/');
    let key_id = scope.next().unwrap_or_default();
    let scope = scope.next().ok_or("Credential has no scope")?;
    if key_id != TEST_AWS_ACCESS_KEY_ID {
        return Err(format!(
            "The security token included in the request is invalid ({key_id})"
        ));
    }
    let parts: Vec<&str> = scope.split('/').collect();
    let [date, region, service, "aws4_request"] = parts.as_slice() else {
        return Err(format!("Credential scope {scope} is malformed"));
    };
    let amz_date = header(headers, "x-amz-date").ok_or("no x-amz-date")?;
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (
                uri_encode(&percent_decode(k), false),
                uri_encode(&percent_decode(v), false),
            )
        })
        .collect();
    pairs.sort();
    let canonical_query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut canonical_headers = String::new();
    for name in signed_headers.split(';') {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if values.is_empty() {
            return Err(format!("signed header {name} is missing"));
        }
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let canonical = format!(
        "{method}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        uri_encode(path, true),
        canonical_query.join("&"),
        hex(&Sha256::digest(body)),
    );
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let key = [*date, *region, *service, "aws4_request"].iter().fold(
        format!("AWS4{TEST_AWS_SECRET_ACCESS_KEY}").into_bytes(),
        |key, part| hmac(&key, part.as_bytes()),
    );
    let expected = hex(&hmac(&key, to_sign.as_bytes()));
    if expected == signature {
        Ok(())
    } else {
        Err(
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method."
                .to_owned(),
        )
    }
}

/// The `host`, `x-amz-date` and `authorization` headers of a `POST` of `body` to `path` (no
/// query) on `host`, signed with SigV4 by the test credentials, as an AWS SDK signs a
/// Bedrock call (over the host and date headers, the path and the body).
pub fn sigv4_signed(
    path: &str,
    host: &str,
    body: &[u8],
) -> Result<HeaderMap, axum::http::header::InvalidHeaderValue> {
    let amz_date = "20261207T120000Z";
    let scope = "20261207/us-east-1/bedrock/aws4_request";
    let canonical = format!(
        "POST\n{}\n\nhost:{host}\nx-amz-date:{amz_date}\n\nhost;x-amz-date\n{}",
        uri_encode(path, true),
        hex(&Sha256::digest(body))
    );
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let key = ["20261207", "us-east-1", "bedrock", "aws4_request"]
        .iter()
        .fold(
            format!("AWS4{TEST_AWS_SECRET_ACCESS_KEY}").into_bytes(),
            |key, part| hmac(&key, part.as_bytes()),
        );
    let mut headers = HeaderMap::new();
    headers.insert("host", host.parse()?);
    headers.insert("x-amz-date", amz_date.parse()?);
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={TEST_AWS_ACCESS_KEY_ID}/{scope}, SignedHeaders=host;x-amz-date, Signature={}",
        hex(&hmac(&key, to_sign.as_bytes()))
    );
    headers.insert("authorization", auth.parse()?);
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signature made here must verify, and any change to what it covers must not.
    fn signed(path: &str, host: &str, body: &[u8]) -> HeaderMap {
        sigv4_signed(path, host, body).unwrap()
    }

    #[test]
    fn a_sigv4_signature_verifies_only_for_what_it_signed() {
        let path = "/model/anthropic.claude-v1%3A0/converse";
        let host = "bedrock-runtime.us-east-1.amazonaws.com";
        let headers = signed(path, host, b"{}");
        assert_eq!(verify_sigv4("POST", path, "", &headers, b"{}"), Ok(()));
        assert!(verify_sigv4("POST", path, "", &headers, b"{ }").is_err());
        assert!(verify_sigv4("POST", "/model/x/converse", "", &headers, b"{}").is_err());
        let mut moved = headers.clone();
        moved.insert("host", "127.0.0.1:9".parse().unwrap());
        assert!(verify_sigv4("POST", path, "", &moved, b"{}").is_err());
        assert!(verify_sigv4("POST", path, "", &HeaderMap::new(), b"{}").is_err());
    }

    #[test]
    fn mistral_and_old_azure_refuse_stream_options() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "api.mistral.ai".parse().unwrap());
        let with = br#"{"stream":true,"stream_options":{"include_usage":true}}"#;
        let refused = refusal("POST", "/v1/chat/completions", &headers, with).unwrap();
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            refusal(
                "POST",
                "/v1/chat/completions",
                &headers,
                br#"{"stream":true}"#
            )
            .is_none()
        );
        headers.insert("host", "acme.openai.azure.com".parse().unwrap());
        let old = "/openai/deployments/d/chat/completions?api-version=2024-06-01";
        assert_eq!(
            refusal("POST", old, &headers, with).unwrap().status(),
            StatusCode::BAD_REQUEST
        );
        let new = "/openai/deployments/d/chat/completions?api-version=2024-10-21";
        assert!(refusal("POST", new, &headers, with).is_none());
    }
}
