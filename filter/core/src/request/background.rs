//! OpenAI Responses background mode: the call that creates a background response
//! (`"background": true`) is answered at once (`"status": "queued"`, no usage); the usage
//! arrives later, in the answer of whoever retrieves the response (`GET /v1/responses/{id}`,
//! or its event stream resumed with `?stream=true`) or cancels it.
//!
//! How the call is charged exactly once, whichever Envoy, worker or path sees its usage: the
//! creating request is tagged with its own settlement id, in the response's `metadata`
//! ([`TAG_KEY`]), which OpenAI keeps and returns with the response object every time it is
//! retrieved. A retrieval that carries the final usage settles that id: the creating call's
//! reservation (or, after its expiry, its recorded windows) is charged, and any later
//! retrieval is a replay of the same id. A response without the tag (created elsewhere, or a
//! synchronous one, charged when it was created) is never charged by its retrieval.
//! `docs/providers/openai.md` says what holds the reservation meanwhile.

use std::ops::Range;

use super::{RequestInfo, scan, splice};

/// The `metadata` key a background response is tagged with.
pub const TAG_KEY: &str = "tollgate_request_id";

/// OpenAI takes at most 16 metadata keys; a request that has them all cannot be tagged.
const MAX_METADATA_KEYS: usize = 16;

/// The longest tag: OpenAI's metadata values may be 512 characters, settlement ids 128.
const MAX_TAG_LEN: usize = 128;

/// `body` with `metadata.tollgate_request_id` set to `tag`, or `None` when it cannot be
/// tagged: its metadata is full or not an object, or `tag` would need escaping in JSON.
/// Only the inserted bytes change; the rest is copied verbatim.
pub fn tag_body(body: &[u8], info: &RequestInfo, tag: &str) -> Option<Vec<u8>> {
    if tag.is_empty()
        || tag.len() > MAX_TAG_LEN
        || tag
            .bytes()
            .any(|b| b == b'"' || b == b'\\' || b.is_ascii_control())
    {
        return None;
    }
    let member = format!("\"{TAG_KEY}\":\"{tag}\"");
    let Some(Range { start, end }) = info.metadata.clone() else {
        let at = info.object_start + 1;
        return Some(splice(
            body,
            at,
            at,
            format!("\"metadata\":{{{member}}},").as_bytes(),
        ));
    };
    if body.get(start..end) == Some(b"null") {
        return Some(splice(body, start, end, format!("{{{member}}}").as_bytes()));
    }
    let mut keys = 0;
    scan::for_each_member(body, start, |_, _| keys += 1).ok()?;
    if keys >= MAX_METADATA_KEYS {
        return None;
    }
    let insert = if keys == 0 {
        member
    } else {
        format!("{member},")
    };
    // The value starts with its `{` (the scanner found an object there).
    let open = start + body.get(start..end)?.iter().position(|&b| b == b'{')?;
    Some(splice(body, open + 1, open + 1, insert.as_bytes()))
}

/// Finds a string member in a response as its bytes pass, in any chunking: the value of
/// the first member named `key` (the tag; the response's `model`, which comes before its
/// output, where a whole answer's kept tail may not reach). Holds at most the value between
/// chunks, and gives up on a value longer than a tag.
#[derive(Debug)]
pub struct TagScanner {
    /// The key with its quotes.
    key: &'static [u8],
    /// How many bytes of `key` matched so far.
    matched: usize,
    step: Step,
    value: Vec<u8>,
    found: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Looking for the key.
    #[default]
    Key,
    /// After the key, before `:`.
    Colon,
    /// After `:`, before the value's opening quote.
    Quote,
    /// Inside the value.
    Value,
}

impl TagScanner {
    /// A scanner for the tag ([`TAG_KEY`]).
    pub fn tag() -> TagScanner {
        TagScanner::new(b"\"tollgate_request_id\"")
    }

    /// A scanner for the first `model` member.
    pub fn model() -> TagScanner {
        TagScanner::new(b"\"model\"")
    }

    fn new(key: &'static [u8]) -> TagScanner {
        TagScanner {
            key,
            matched: 0,
            step: Step::Key,
            value: Vec::new(),
            found: None,
        }
    }

    /// Feeds the next bytes of the response.
    pub fn feed(&mut self, bytes: &[u8]) {
        let key = self.key;
        if self.found.is_some() {
            return;
        }
        for &b in bytes {
            match self.step {
                Step::Key => {
                    if key.get(self.matched) == Some(&b) {
                        self.matched += 1;
                    } else {
                        // The key starts with its only quote: a mismatch restarts at it.
                        self.matched = usize::from(b == b'"');
                    }
                    if self.matched == key.len() {
                        self.step = Step::Colon;
                    }
                }
                Step::Colon | Step::Quote if b.is_ascii_whitespace() => {}
                Step::Colon if b == b':' => self.step = Step::Quote,
                Step::Quote if b == b'"' => self.step = Step::Value,
                Step::Value if b == b'"' => {
                    self.found = String::from_utf8(std::mem::take(&mut self.value)).ok();
                    return;
                }
                Step::Value if b != b'\\' && self.value.len() < MAX_TAG_LEN => self.value.push(b),
                // Anything else (an escape, an overlong value, not a string): not our tag.
                _ => self.reset(),
            }
        }
    }

    fn reset(&mut self) {
        self.matched = 0;
        self.step = Step::Key;
        self.value.clear();
    }

    /// The value, once seen.
    pub fn found(&self) -> Option<&str> {
        self.found.as_deref()
    }

    /// The bytes held between chunks.
    pub fn held_bytes(&self) -> usize {
        self.value.capacity()
    }
}

#[cfg(test)]
mod tests;
