//! A structural JSON walker for the request reader: it visits an object's members and skips
//! every value it is not asked about at memchr speed, without building or validating it.
//!
//! Why not serde for the whole body: a chat request is mostly message text, and serde's
//! `IgnoredAny` still steps through every byte of it. Here a skipped string is one
//! `memchr2` jump per escape, and a skipped object or array is a jump from one quote or
//! bracket to the next. Only the few values the reader wants are handed to serde. The price:
//! malformed JSON inside skipped values is not noticed (the provider will refuse it).

use std::ops::Range;

use memchr::{memchr2, memchr3};

/// The body is not a JSON object this walker can follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanError {
    /// Byte offset where the walker gave up.
    pub at: usize,
}

fn skip_ws(json: &[u8], mut at: usize) -> usize {
    while json.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

/// The end (exclusive) of the string whose opening quote is at `at`.
fn skip_string(json: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 1;
    loop {
        let j = memchr2(b'"', b'\\', json.get(i..)?)?;
        if json.get(i + j) == Some(&b'\\') {
            i += j + 2;
        } else {
            return Some(i + j + 1);
        }
    }
}

/// The end (exclusive) of the object or array opening at `at`. Only its own bracket kind
/// needs counting: the other kind nests properly inside it, and strings are jumped over.
fn skip_nested(json: &[u8], at: usize, open: u8, close: u8) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = at;
    loop {
        let j = i + memchr3(b'"', open, close, json.get(i..)?)?;
        match *json.get(j)? {
            b'"' => i = skip_string(json, j)?,
            b if b == open => {
                depth += 1;
                i = j + 1;
            }
            _ => {
                depth = depth.checked_sub(1)?;
                i = j + 1;
                if depth == 0 {
                    return Some(i);
                }
            }
        }
    }
}

/// The byte range of the value starting at `at` (after whitespace).
pub fn value_range(json: &[u8], at: usize) -> Option<Range<usize>> {
    let start = skip_ws(json, at);
    let end = match *json.get(start)? {
        b'"' => skip_string(json, start)?,
        b'{' => skip_nested(json, start, b'{', b'}')?,
        b'[' => skip_nested(json, start, b'[', b']')?,
        _ => {
            // A number or literal: up to the next delimiter.
            let len = json
                .get(start..)?
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace())
                .unwrap_or(json.len() - start);
            if len == 0 {
                return None;
            }
            start + len
        }
    };
    Some(start..end)
}

/// Calls `visit(raw_key, value_range)` for each member of the object starting at `at`
/// (after whitespace); returns the object's range. Keys are given raw, escapes included.
pub fn for_each_member(
    json: &[u8],
    at: usize,
    mut visit: impl FnMut(&[u8], Range<usize>),
) -> Result<Range<usize>, ScanError> {
    let start = skip_ws(json, at);
    if json.get(start) != Some(&b'{') {
        return Err(ScanError { at: start });
    }
    let mut i = skip_ws(json, start + 1);
    if json.get(i) == Some(&b'}') {
        return Ok(start..i + 1);
    }
    loop {
        if json.get(i) != Some(&b'"') {
            return Err(ScanError { at: i });
        }
        let key_end = skip_string(json, i).ok_or(ScanError { at: i })?;
        let key = json.get(i + 1..key_end - 1).ok_or(ScanError { at: i })?;
        let colon = skip_ws(json, key_end);
        if json.get(colon) != Some(&b':') {
            return Err(ScanError { at: colon });
        }
        let value = value_range(json, colon + 1).ok_or(ScanError { at: colon + 1 })?;
        let after = skip_ws(json, value.end);
        visit(key, value);
        match json.get(after) {
            Some(b',') => i = skip_ws(json, after + 1),
            Some(b'}') => return Ok(start..after + 1),
            _ => return Err(ScanError { at: after }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(json: &str) -> Result<Vec<(String, String)>, ScanError> {
        let mut out = Vec::new();
        for_each_member(json.as_bytes(), 0, |k, v| {
            out.push((String::from_utf8(k.to_vec()).unwrap(), json[v].to_owned()))
        })?;
        Ok(out)
    }

    #[test]
    fn members_and_their_raw_values_are_found() {
        let got = members(
            r#" { "a" : 1 , "b":"x\"}]","c":{"d":[1,{"e":"}"}]},"f":[[],{}],"g":null,"h":-1.5e3}"#,
        )
        .unwrap();
        let want = [
            ("a", "1"),
            ("b", r#""x\"}]""#),
            ("c", r#"{"d":[1,{"e":"}"}]}"#),
            ("f", "[[],{}]"),
            ("g", "null"),
            ("h", "-1.5e3"),
        ];
        assert_eq!(got.len(), want.len());
        for ((k, v), (wk, wv)) in got.iter().zip(want) {
            assert_eq!((k.as_str(), v.as_str()), (wk, wv));
        }
    }

    #[test]
    fn truncated_or_non_object_bodies_are_errors() {
        for bad in [
            "",
            "[]",
            "{",
            r#"{"a""#,
            r#"{"a":"#,
            r#"{"a":"x"#,
            r#"{"a":{"b":1}"#,
            r#"{"a":1 "b":2}"#,
            r#"{a:1}"#,
        ] {
            assert!(members(bad).is_err(), "{bad:?}");
        }
        assert_eq!(members("{}").unwrap(), []);
    }
}
