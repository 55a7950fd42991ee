//! The JSON path of the member at a byte offset, so that a configuration error found by
//! serde_json (which knows the line and column) names the field at fault
//! (`control_plane.timeout_ms`, `routes.rules[0].path`).
//!
//! Why not `serde_path_to_error`, which tracks the path while deserializing: it wraps every
//! type's visitor, and its copies for the configuration's types were ~32 KB of the filter's
//! `.wasm` (a twentieth of it). Locating the path after the fact costs a small scanner, run
//! only when the configuration is refused. The paths are the ones `serde_path_to_error`
//! writes (`.` for the document, `a.b`, `a[0].b`); its tests compare the two over every
//! wrong type, unknown and missing field of a full configuration. One difference: an enum
//! written as an object (`{"fail_mode":{"q":1}}`) is located at its key (`fail_mode.q`).

/// The path at the byte `offset` of `json` (the last byte serde_json read before its error).
///
/// A member's key (an unknown field is refused there) and value hold the member's path; an
/// object's or array's closing byte holds the container's path (a missing field).
pub fn path_at(json: &[u8], offset: usize) -> String {
    let mut stack: Vec<Frame> = Vec::new();
    let mut at = 0;
    let end = offset.min(json.len().saturating_sub(1));
    while at <= end {
        let Some(&byte) = json.get(at) else { break };
        match byte {
            b'{' => {
                start_member(&mut stack);
                stack.push(Frame::Object { key: None });
            }
            b'[' => {
                start_member(&mut stack);
                stack.push(Frame::Array { index: None });
            }
            b'}' | b']' => {
                if at < end {
                    stack.pop();
                } else {
                    // Its closing byte: the container's own path.
                    match stack.last_mut() {
                        Some(Frame::Object { key }) => *key = None,
                        Some(Frame::Array { index }) => *index = None,
                        None => {}
                    }
                }
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object { key }) => *key = None,
                Some(Frame::Array { index }) => *index = Some(index.map_or(1, |i| i + 1)),
                None => {}
            },
            b'"' => {
                let close = string_end(json, at);
                let reading_key = matches!(stack.last(), Some(Frame::Object { key: None }));
                if reading_key {
                    let key = json.get(at..=close).and_then(unescape);
                    if let Some(Frame::Object { key: slot }) = stack.last_mut() {
                        *slot = Some(key.unwrap_or_default());
                    }
                } else {
                    start_member(&mut stack);
                }
                at = close;
            }
            b' ' | b'\t' | b'\n' | b'\r' | b':' => {}
            _ => start_member(&mut stack),
        }
        at += 1;
    }
    render(&stack)
}

/// One open container, with the member being read.
enum Frame {
    /// `key` once a member's key has been read.
    Object { key: Option<String> },
    /// `index` once an element has begun.
    Array { index: Option<usize> },
}

/// A value begins: in an array, it is the element at the current index.
fn start_member(stack: &mut [Frame]) {
    if let Some(Frame::Array { index }) = stack.last_mut()
        && index.is_none()
    {
        *index = Some(0);
    }
}

/// The offset of the quote closing the string that opens at `open` (or the last byte).
fn string_end(json: &[u8], open: usize) -> usize {
    let mut at = open + 1;
    while let Some(&b) = json.get(at) {
        match b {
            b'\\' => at += 2,
            b'"' => return at,
            _ => at += 1,
        }
    }
    json.len().saturating_sub(1)
}

fn unescape(raw: &[u8]) -> Option<String> {
    serde_json::from_slice(raw).ok()
}

fn render(stack: &[Frame]) -> String {
    let mut out = String::new();
    for frame in stack {
        match frame {
            Frame::Object { key: Some(key) } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Frame::Array { index: Some(i) } => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
            _ => break,
        }
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

/// The byte offset of serde_json's error position (one-based line, column of the last byte
/// read; column 0 when nothing of the line was read).
pub fn offset_of(json: &[u8], line: usize, column: usize) -> usize {
    let mut line_start = 0;
    for _ in 1..line {
        match memchr::memchr(b'\n', json.get(line_start..).unwrap_or_default()) {
            Some(nl) => line_start += nl + 1,
            None => break,
        }
    }
    (line_start + column).saturating_sub(1)
}

#[cfg(test)]
mod tests;
