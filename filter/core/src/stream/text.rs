//! Counting the text a stream delivered, for the estimate when no usage arrives.
//!
//! Rather than parse every event, each dialect names the JSON keys whose string values are
//! generated text (`"content"`, `"text"`, `"delta"`, …); a byte search finds them and the
//! string contents (still JSON-escaped, which only over-counts) go to the estimator.

use memchr::memmem;

use crate::estimate::TokenEstimator;
use crate::json_keys;
use crate::providers::Dialect;

/// The keys whose string values are generated text (content, reasoning, tool arguments).
fn text_keys(dialect: Dialect) -> &'static [&'static [u8]] {
    match dialect {
        // `"reasoning` covers both `"reasoning"` and `"reasoning_content"` (one pass fewer).
        Dialect::OpenaiChat => &[
            b"\"content\"",
            b"\"text\"",
            b"\"arguments\"",
            b"\"reasoning",
        ],
        Dialect::OpenaiResponses => &[b"\"delta\""],
        Dialect::Anthropic => &[b"\"text\"", b"\"thinking\"", b"\"partial_json\""],
        Dialect::Gemini | Dialect::Cohere => &[b"\"text\""],
        Dialect::Converse => &[b"\"text\"", b"\"input\""],
    }
}

/// Prebuilt searchers for one dialect's text keys (reused across a stream's events).
#[derive(Debug, Clone)]
pub struct TextCounter {
    finders: Vec<(memmem::Finder<'static>, usize)>,
}

impl TextCounter {
    /// The searchers for `dialect`.
    pub fn new(dialect: Dialect) -> TextCounter {
        TextCounter {
            finders: text_keys(dialect)
                .iter()
                .map(|key| (json_keys::finder(key), key.len()))
                .collect(),
        }
    }

    /// Feeds the text values of `json` (one event) to `estimator`.
    pub fn count(&self, json: &[u8], estimator: &mut TokenEstimator) {
        for (finder, key_len) in &self.finders {
            for at in finder.find_iter(json) {
                if let Some(value) = string_after(json, at + key_len) {
                    estimator.feed(value);
                    // Separate values so runs do not join across them.
                    estimator.feed(b" ");
                }
            }
        }
    }
}

/// Feeds the text values of `json` (one event) to `estimator` (one-off; see [`TextCounter`]).
pub fn count_text(dialect: Dialect, json: &[u8], estimator: &mut TokenEstimator) {
    TextCounter::new(dialect).count(json, estimator);
}

/// The raw contents of the string value after a key ending at `after_key` (the key's closing
/// quote included), if the value is a string; possibly cut off by the end of `json`.
pub fn string_value_after(json: &[u8], after_key: usize) -> Option<&[u8]> {
    string_after(json, after_key)
}

/// [`string_value_after`], also accepting a key given as a prefix.
fn string_after(json: &[u8], after_key: usize) -> Option<&[u8]> {
    let mut rest = json.get(after_key..)?;
    // A key given as a prefix (no closing quote): skip the rest of the key name.
    if json.get(after_key.wrapping_sub(1)) != Some(&b'"') {
        let close = rest.iter().position(|&b| b == b'"')?;
        let name = rest.get(..close)?;
        if !name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_') {
            return None;
        }
        rest = rest.get(close + 1..)?;
    }
    let mut i = 0;
    while rest.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    if rest.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    while rest.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    if rest.get(i) != Some(&b'"') {
        return None;
    }
    let body = rest.get(i + 1..)?;
    let mut end = 0;
    loop {
        match memchr::memchr2(b'"', b'\\', body.get(end..)?) {
            Some(j) if body.get(end + j) == Some(&b'\\') => end += j + 2,
            Some(j) => return body.get(..end + j),
            None => return Some(body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::estimate_tokens;

    #[test]
    fn only_text_values_are_counted() {
        let mut e = TokenEstimator::new();
        count_text(
            Dialect::OpenaiChat,
            br#"{"id":"chatcmpl-123","choices":[{"delta":{"content": "Hello \"world\""}}]}"#,
            &mut e,
        );
        assert_eq!(e.tokens(), estimate_tokens(br#"Hello \"world\" "#));
    }

    #[test]
    fn both_reasoning_spellings_are_counted() {
        let mut a = TokenEstimator::new();
        count_text(
            Dialect::OpenaiChat,
            br#"{"reasoning_content":"abcd efgh"}"#,
            &mut a,
        );
        let mut b = TokenEstimator::new();
        count_text(
            Dialect::OpenaiChat,
            br#"{"reasoning": "abcd efgh"}"#,
            &mut b,
        );
        assert_eq!(a.tokens(), estimate_tokens(b"abcd efgh "));
        assert_eq!(b.tokens(), a.tokens());
    }

    #[test]
    fn keys_with_non_string_values_are_skipped() {
        let mut e = TokenEstimator::new();
        count_text(
            Dialect::OpenaiChat,
            br#"{"content":null,"text":["x"]}"#,
            &mut e,
        );
        assert_eq!(e.tokens(), 0);
    }
}
