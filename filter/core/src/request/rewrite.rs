//! Rewriting the model a request names, for a downgrade: in the body's top-level `model`
//! (OpenAI, Anthropic, Cohere and OpenAI-compatible APIs) or in the path (Gemini, Bedrock,
//! Vertex). Every other byte is left as the client sent it.

use super::scan::for_each_member;
use crate::providers::routes::percent_decode;

/// The body with its top-level `"model"` value replaced by `model`; `None` when the body is
/// not a JSON object or has no top-level `model`.
pub fn rewrite_body_model(body: &[u8], model: &str) -> Option<Vec<u8>> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace())?;
    let mut found = None;
    for_each_member(body, start, |key, value| {
        if key == b"model" && found.is_none() {
            found = Some(value);
        }
    })
    .ok()?;
    let range = found?;
    let quoted = serde_json::to_vec(model).ok()?;
    let mut out = Vec::with_capacity(body.len() + quoted.len());
    out.extend_from_slice(body.get(..range.start)?);
    out.extend_from_slice(&quoted);
    out.extend_from_slice(body.get(range.end..)?);
    Some(out)
}

/// The path with the segment naming `old` (as decoded by the route matcher) replaced by
/// `new`, percent-encoded; `None` when no segment names `old`. A Gemini segment keeps its
/// `:method` suffix (`models/gemini-2.5-pro:generateContent`); the query is kept.
pub fn rewrite_path_model(path: &str, old: &str, new: &str) -> Option<String> {
    let (route, query) = match path.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (path, None),
    };
    let mut done = false;
    let segments: Vec<String> = route
        .split('/')
        .map(|segment| {
            if done {
                return segment.to_owned();
            }
            // Bedrock ids contain ':' (`…-v1:0`), percent-encoded in the path; a Gemini
            // segment's literal ':' starts its method.
            let (name, method) = match segment.rfind(':') {
                Some(i) if percent_decode(&segment[..i]) == old => segment.split_at(i),
                _ => (segment, ""),
            };
            if percent_decode(name) == old {
                done = true;
                format!("{}{method}", percent_encode(new))
            } else {
                segment.to_owned()
            }
        })
        .collect();
    if !done {
        return None;
    }
    let mut out = segments.join("/");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Some(out)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_model_is_replaced_and_nothing_else_moves() {
        let body = br#"{ "messages":[{"role":"user","content":"model: \"gpt-4o\""}],
  "model" : "gpt-4o", "stream":true, "meta":{"model":"x"}}"#;
        let out = rewrite_body_model(body, "gpt-4o-mini").unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            r#"{ "messages":[{"role":"user","content":"model: \"gpt-4o\""}],
  "model" : "gpt-4o-mini", "stream":true, "meta":{"model":"x"}}"#
        );
        assert_eq!(rewrite_body_model(br#"{"input":"x"}"#, "m"), None);
        assert_eq!(rewrite_body_model(b"[1]", "m"), None);
        assert_eq!(rewrite_body_model(b"", "m"), None);
    }

    #[test]
    fn a_gemini_path_keeps_its_method_and_query() {
        assert_eq!(
            rewrite_path_model(
                "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
                "gemini-2.5-pro",
                "gemini-2.5-flash"
            )
            .as_deref(),
            Some("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
        );
    }

    #[test]
    fn a_bedrock_id_is_matched_and_written_percent_encoded() {
        assert_eq!(
            rewrite_path_model(
                "/model/anthropic.claude-sonnet-4-20250514-v1%3A0/converse",
                "anthropic.claude-sonnet-4-20250514-v1:0",
                "anthropic.claude-3-5-haiku-20241022-v1:0"
            )
            .as_deref(),
            Some("/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse")
        );
        assert_eq!(rewrite_path_model("/model/x/converse", "y", "z"), None);
    }
}
