//! A mock LLM provider that replays recorded bodies from `tests/fixtures/`.
//!
//! Each request names what to replay in headers, so one mock serves every scenario:
//! - `x-mock-fixture: NAME` — the file to send (without it, [`default_fixture`] picks one by
//!   path and stream flag, so SDKs and curl work unchanged);
//! - `x-mock-status: 503` — the status (default 200);
//! - `x-mock-pace-ms: 20` — send a stream event by event (SSE: split after each blank line;
//!   other files: `x-mock-chunk-bytes` pieces) with this pause between them (0: one write
//!   per event, no pause);
//! - `x-mock-answer-early: 1` — answer at the request headers, without waiting for the body
//!   (an error page, a proxy, a misbehaving server); the request is recorded without it;
//! - `x-mock-encoding: gzip` (or `deflate`, `br`) — compress the answer that way, as
//!   providers do, when the request's `accept-encoding` allows it (a paced answer is
//!   compressed whole and sent in pieces).
//!
//! OpenAI keeps a background response's `metadata` and returns it with every retrieval: the
//! mock remembers the `metadata.tollgate_request_id` of the last request that carried one and
//! writes it where a replayed answer says `__TAG__` (`openai-responses-background-*`).
//!
//! The content type follows the file's extension: `.sse` → `text/event-stream`, `.bin` →
//! `application/vnd.amazon.eventstream`, anything else → `application/json`. Every request
//! is recorded (method, path, headers, body) so tests can check what reached the provider.
//! [`MockProvider::start_strict`] also refuses what the real providers refuse ([`strict`]).

pub mod strict;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use tokio::sync::oneshot;

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// The body, byte for byte.
    pub body: Bytes,
}

impl RecordedRequest {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The length the request declared for its body: `Some` with a `content-length` and no
    /// `transfer-encoding`, `None` when it came chunked.
    pub fn declared_length(&self) -> Option<usize> {
        if self.header("transfer-encoding").is_some() {
            return None;
        }
        self.header("content-length")?.parse().ok()
    }
}

#[derive(Default)]
struct Shared {
    fixtures: PathBuf,
    requests: Mutex<Vec<RecordedRequest>>,
    /// Requests are not recorded (a bench's hundreds of MB of bodies nobody reads).
    unrecorded: AtomicBool,
    /// Refuse what the real providers refuse, answer as each provider ([`strict`]).
    strict: bool,
    streams_finished: AtomicUsize,
    /// The paced stream that started last: when each piece was handed to the server, and
    /// its length.
    last_stream: Mutex<Vec<(Instant, usize)>>,
    /// The last `metadata.tollgate_request_id` a request carried.
    last_tag: Mutex<Option<String>>,
}

/// A running mock provider; stops on drop.
pub struct MockProvider {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _stop: oneshot::Sender<()>,
}

impl MockProvider {
    /// Serves `fixtures` on a free loopback port.
    pub async fn start(fixtures: PathBuf) -> anyhow::Result<MockProvider> {
        MockProvider::start_on(fixtures, ([127, 0, 0, 1], 0).into()).await
    }

    /// Serves `fixtures` on a free loopback port, as strict as the real providers
    /// ([`strict`]): for clients that call it as they would call the provider.
    pub async fn start_strict(fixtures: PathBuf) -> anyhow::Result<MockProvider> {
        MockProvider::serve(fixtures, ([127, 0, 0, 1], 0).into(), true).await
    }

    /// Serves `fixtures` on `addr`.
    pub async fn start_on(fixtures: PathBuf, addr: SocketAddr) -> anyhow::Result<MockProvider> {
        MockProvider::serve(fixtures, addr, false).await
    }

    async fn serve(
        fixtures: PathBuf,
        addr: SocketAddr,
        strict: bool,
    ) -> anyhow::Result<MockProvider> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        // Streams are many small writes: without TCP_NODELAY, Nagle and delayed ACKs hold
        // them back by ~40 ms, which is the provider's doing, not the gateway's.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let shared = Arc::new(Shared {
            fixtures,
            strict,
            ..Shared::default()
        });
        let app = Router::new().fallback(replay).with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(MockProvider {
            addr,
            shared,
            _stop: stop,
        })
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Stops recording requests: [`MockProvider::requests`] keeps what it has. For a bench,
    /// whose thousands of bodies would otherwise stay in memory to the end.
    pub fn stop_recording(&self) {
        self.shared.unrecorded.store(true, Ordering::SeqCst);
    }

    /// How many paced streams have sent their last byte.
    pub fn streams_finished(&self) -> usize {
        self.shared.streams_finished.load(Ordering::SeqCst)
    }

    /// The paced stream that started last, piece by piece: when the mock handed it to its
    /// HTTP server, and how many bytes it was. For one stream at a time (a bench's delay
    /// per event); streams running at once overwrite each other's.
    pub fn last_stream_pieces(&self) -> Vec<(Instant, usize)> {
        self.shared
            .last_stream
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }
}

async fn replay(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body_bytes = if parts.headers.contains_key("x-mock-answer-early") {
        // The body is left unread: the answer goes before it arrives.
        drop(body);
        Bytes::new()
    } else {
        match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
            Ok(b) => b,
            Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        }
    };
    let headers = &parts.headers;
    if !shared.unrecorded.load(Ordering::SeqCst)
        && let Ok(mut log) = shared.requests.lock()
    {
        log.push(RecordedRequest {
            method: parts.method.to_string(),
            path: parts
                .uri
                .path_and_query()
                .map_or_else(String::new, ToString::to_string),
            headers: headers
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            body: body_bytes.clone(),
        });
    }
    if let Some(tag) = serde_json::from_slice::<serde_json::Value>(&body_bytes)
        .ok()
        .and_then(|j| {
            j.pointer("/metadata/tollgate_request_id")?
                .as_str()
                .map(str::to_owned)
        })
        && let Ok(mut last) = shared.last_tag.lock()
    {
        *last = Some(tag);
    }
    let named = text(headers, "x-mock-fixture");
    // A proxied request's target is absolute (`http://host/path`): the path is what counts.
    let uri = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.to_string(), ToString::to_string);
    if shared.strict
        && let Some(refused) = strict::refusal(parts.method.as_str(), &uri, headers, &body_bytes)
    {
        return refused;
    }
    let default = |uri: &str| match shared.strict {
        true => strict::default_fixture(uri, headers, &body_bytes),
        false => default_fixture(uri, &body_bytes),
    };
    let Some(name) = named.clone().or_else(|| default(&uri)) else {
        let msg = "mock provider: no x-mock-fixture header and no default answer for this path";
        return (StatusCode::NOT_FOUND, msg).into_response();
    };
    if name.contains('/') || name.contains("..") {
        return (StatusCode::BAD_REQUEST, "mock provider: bad fixture name").into_response();
    }
    let bytes = match tokio::fs::read(shared.fixtures.join(&name)).await {
        Ok(b) => Bytes::from(b),
        Err(e) => {
            return (StatusCode::NOT_FOUND, format!("mock provider: {name}: {e}")).into_response();
        }
    };
    let bytes = match shared.strict {
        true => strict::as_asked(&body_bytes, bytes, name.ends_with(".sse")),
        false => bytes,
    };
    // A default answer names the model asked for, as a provider's does: an answer that always
    // named the recording's model would hide a gateway pricing the wrong one.
    let bytes = match named {
        None => with_model_asked(&body_bytes, bytes),
        Some(_) => bytes,
    };
    let tag = shared.last_tag.lock().ok().and_then(|t| t.clone());
    let bytes = match (tag, std::str::from_utf8(&bytes)) {
        (Some(tag), Ok(text)) if text.contains("__TAG__") => {
            Bytes::from(text.replace("__TAG__", &tag))
        }
        _ => bytes,
    };
    let status = text(headers, "x-mock-status")
        .and_then(|s| s.parse().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let content_type = match name.rsplit('.').next() {
        Some("sse") => "text/event-stream",
        Some("bin") => "application/vnd.amazon.eventstream",
        _ => "application/json",
    };
    // Strict: gzip whenever the client allows it, as OpenAI, Anthropic and Google do (not
    // AWS's event streams).
    let encoding = text(headers, "x-mock-encoding")
        .or_else(|| {
            (shared.strict && content_type != "application/vnd.amazon.eventstream")
                .then(|| "gzip".to_owned())
        })
        .filter(|e| accepts(headers, e));
    let bytes = match encoding.as_deref() {
        Some(e) => match compress(e, &bytes) {
            Ok(b) => Bytes::from(b),
            Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        },
        None => bytes,
    };
    let pace = text(headers, "x-mock-pace-ms")
        .and_then(|s| s.parse().ok())
        .map(Duration::from_millis)
        // Default answers to streaming requests stream visibly, as a provider's would.
        .or_else(|| {
            (named.is_none() && content_type != "application/json")
                .then_some(Duration::from_millis(40))
        });
    let body = match pace {
        None => Body::from(bytes),
        Some(pace) => {
            let chunk = text(headers, "x-mock-chunk-bytes").and_then(|s| s.parse().ok());
            let pieces = split(&bytes, content_type == "text/event-stream", chunk);
            paced(pieces, pace, shared.clone())
        }
    };
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type);
    if let Some(e) = &encoding {
        response = response.header(header::CONTENT_ENCODING, e.as_str());
    }
    response
        .body(body)
        .unwrap_or_else(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response())
}

/// The recorded answer to replay when a request names none: by API path and the body's
/// stream flag. Lets real SDKs and curl talk to the mock (`scripts/up.sh --mock`).
pub fn default_fixture(uri: &str, body: &[u8]) -> Option<String> {
    let json = serde_json::from_slice::<serde_json::Value>(body).ok();
    let flag = |name: &str| {
        json.as_ref()
            .and_then(|v| v.get(name).and_then(serde_json::Value::as_bool))
            .unwrap_or(false)
    };
    let streaming = flag("stream");
    let path = uri.split('?').next().unwrap_or(uri);
    let stored_response = path
        .rsplit_once("/responses/")
        .is_some_and(|(_, id)| !id.is_empty() && !id.contains('/'));
    let name = if stored_response {
        // A background response retrieved: done, whole or as its resumed event stream.
        if uri.contains("stream=true") {
            "openai-responses-background-resumed.sse"
        } else {
            "openai-responses-background-completed.json"
        }
    } else if path.ends_with("/responses") && flag("background") && !streaming {
        "openai-responses-background-queued.json"
    } else if path.ends_with(":streamGenerateContent") {
        if uri.contains("alt=sse") {
            "gemini-stream-sse-tool-use.sse"
        } else {
            "gemini-stream-json-array.json"
        }
    } else if path.ends_with(":generateContent") {
        "gemini-generate-content-thinking-cache.json"
    } else if path.ends_with("/messages") {
        if streaming {
            "anthropic-messages-stream-cache.sse"
        } else {
            "anthropic-messages.json"
        }
    } else if path.ends_with("/responses") {
        if streaming {
            "openai-responses-stream.sse"
        } else {
            "openai-responses-cache-reasoning.json"
        }
    } else if path.ends_with("/embeddings") {
        "openai-embeddings.json"
    } else if path.ends_with("/chat/completions") {
        if streaming {
            "openai-chat-stream-include-usage.sse"
        } else {
            "openai-chat-cache-reasoning.json"
        }
    } else {
        return None;
    };
    Some(name.to_owned())
}

/// Whether the request's `accept-encoding` lists `encoding` (without `;q=0`).
fn accepts(headers: &HeaderMap, encoding: &str) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| p.replace(' ', "") == "q=0");
            (name.eq_ignore_ascii_case(encoding) || name == "*") && !refused
        })
}

/// `body` compressed as `encoding` (`gzip`, `deflate`: zlib, as HTTP means it, or `br`).
fn compress(encoding: &str, body: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    match encoding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(body)?;
            e.finish()
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(body)?;
            e.finish()
        }
        "br" => {
            let mut out = Vec::new();
            {
                let mut e = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                e.write_all(body)?;
            }
            Ok(out)
        }
        other => Err(std::io::Error::other(format!(
            "mock provider: unknown encoding {other}"
        ))),
    }
}

/// `answer` with the value of every `"model"` key that names a model replaced by the `model`
/// of the JSON request body. Unchanged when the request names no model in its body (Gemini
/// and Bedrock name it in the path); an empty `"model":""` (Azure's prompt-filter chunk) stays.
fn with_model_asked(request_body: &[u8], answer: Bytes) -> Bytes {
    let asked = serde_json::from_slice::<serde_json::Value>(request_body)
        .ok()
        .and_then(|j| j.get("model")?.as_str().map(str::to_owned));
    let (Some(asked), Ok(text)) = (asked, std::str::from_utf8(&answer)) else {
        return answer;
    };
    let asked = serde_json::Value::from(asked).to_string();
    let (mut out, mut rest) = (String::with_capacity(text.len()), text);
    while let Some(at) = rest.find("\"model\"") {
        let (head, tail) = rest.split_at(at + "\"model\"".len());
        out.push_str(head);
        rest = tail;
        let value_at = tail.len() - tail.trim_start().len();
        let Some(value) = tail[value_at..].strip_prefix(':') else {
            continue;
        };
        let value_at = value_at + 1 + (value.len() - value.trim_start().len());
        let mut strings =
            serde_json::Deserializer::from_str(&tail[value_at..]).into_iter::<String>();
        let Some(Ok(recorded)) = strings.next() else {
            continue;
        };
        if recorded.is_empty() {
            continue;
        }
        out.push_str(&tail[..value_at]);
        out.push_str(&asked);
        rest = &tail[value_at + strings.byte_offset()..];
    }
    out.push_str(rest);
    Bytes::from(out)
}

fn text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// SSE: one piece per event (ending after its blank line). Others: `chunk` bytes at a time.
fn split(bytes: &Bytes, sse: bool, chunk: Option<usize>) -> Vec<Bytes> {
    if sse {
        let mut pieces = Vec::new();
        let mut start = 0;
        let b = bytes.as_ref();
        let mut i = 0;
        while i + 1 < b.len() {
            let end = if b[i] == b'\n' && b[i + 1] == b'\n' {
                Some(i + 2)
            } else if b[i..].starts_with(b"\r\n\r\n") {
                Some(i + 4)
            } else {
                None
            };
            match end {
                Some(e) => {
                    pieces.push(bytes.slice(start..e));
                    start = e;
                    i = e;
                }
                None => i += 1,
            }
        }
        if start < b.len() {
            pieces.push(bytes.slice(start..));
        }
        pieces
    } else {
        let n = chunk.unwrap_or(512).max(1);
        (0..bytes.len())
            .step_by(n)
            .map(|s| bytes.slice(s..(s + n).min(bytes.len())))
            .collect()
    }
}

fn paced(pieces: Vec<Bytes>, pace: Duration, shared: Arc<Shared>) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    tokio::spawn(async move {
        if let Ok(mut sent) = shared.last_stream.lock() {
            sent.clear();
        }
        let last = pieces.len().saturating_sub(1);
        for (i, piece) in pieces.into_iter().enumerate() {
            // Noted first, so that a client holding the piece finds it noted.
            if let Ok(mut sent) = shared.last_stream.lock() {
                sent.push((Instant::now(), piece.len()));
            }
            if tx.send(Ok(piece)).await.is_err() {
                return; // client went away
            }
            if i < last {
                if pace.is_zero() {
                    // Still one write per event, without the timer's 1 ms granularity.
                    tokio::task::yield_now().await;
                } else {
                    tokio::time::sleep(pace).await;
                }
            }
        }
        shared.streams_finished.fetch_add(1, Ordering::SeqCst);
    });
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_answers_follow_path_and_stream_flag() {
        let pick = |uri: &str, body: &str| default_fixture(uri, body.as_bytes());
        assert_eq!(
            pick("/v1/chat/completions", r#"{"stream":true}"#).as_deref(),
            Some("openai-chat-stream-include-usage.sse")
        );
        assert_eq!(
            pick("/v1/chat/completions", "{}").as_deref(),
            Some("openai-chat-cache-reasoning.json")
        );
        assert_eq!(
            pick("/v1/messages", r#"{"stream":false}"#).as_deref(),
            Some("anthropic-messages.json")
        );
        assert_eq!(
            pick("/v1beta/models/g:streamGenerateContent?alt=sse", "").as_deref(),
            Some("gemini-stream-sse-tool-use.sse")
        );
        assert_eq!(pick("/v1/files", "{}"), None);
        for name in [
            "openai-chat-stream-include-usage.sse",
            "anthropic-messages.json",
            "gemini-stream-json-array.json",
            "openai-embeddings.json",
        ] {
            assert!(crate::paths::fixtures_dir().join(name).is_file(), "{name}");
        }
    }

    #[test]
    fn a_default_answer_names_the_model_asked_for() {
        let asked = br#"{"model":"gpt-4.1-nano","messages":[]}"#;
        let json = Bytes::from_static(br#"{"id":"x","model":"gpt-4o-2024-08-06","usage":{}}"#);
        assert_eq!(
            with_model_asked(asked, json),
            Bytes::from_static(br#"{"id":"x","model":"gpt-4.1-nano","usage":{}}"#)
        );
        let sse = Bytes::from_static(
            b"data: {\"model\": \"m-rec\",\"x\":1}\n\ndata: {\"model\":\"m-rec\"}\n\ndata: [DONE]\n\n",
        );
        assert_eq!(
            with_model_asked(br#"{"model":"m-new"}"#, sse),
            Bytes::from_static(
                b"data: {\"model\": \"m-new\",\"x\":1}\n\ndata: {\"model\":\"m-new\"}\n\ndata: [DONE]\n\n"
            )
        );
        // An empty model (Azure's prompt-filter chunk) and other empty strings stay empty.
        let azure =
            Bytes::from_static(br#"data: {"model":"","choices":[{"delta":{"content":""}}]}"#);
        assert_eq!(
            with_model_asked(br#"{"model":"gpt-4o"}"#, azure.clone()),
            azure
        );
        // No model in the request body (Gemini, Bedrock name it in the path): unchanged.
        let gemini = Bytes::from_static(br#"{"modelVersion":"gemini-2.5-flash"}"#);
        assert_eq!(with_model_asked(b"{}", gemini.clone()), gemini);
    }

    #[test]
    fn sse_splits_after_each_blank_line() {
        let b = Bytes::from_static(b"data: 1\n\ndata: 2\r\n\r\ndata: 3\n\n");
        let pieces = split(&b, true, None);
        assert_eq!(
            pieces,
            vec![
                Bytes::from_static(b"data: 1\n\n"),
                Bytes::from_static(b"data: 2\r\n\r\n"),
                Bytes::from_static(b"data: 3\n\n"),
            ]
        );
    }
}
