//! A deliberately conservative token estimate, without a tokenizer.
//!
//! Shipping real BPE tables in the `.wasm` would cost megabytes and each provider tokenizes
//! differently anyway, so the filter counts *runs* of byte classes, each rounded up, which
//! tracks how BPE tokenizers split text (see `docs/estimation.md` for the measured error):
//!
//! | run of …                         | tokens            |
//! |----------------------------------|-------------------|
//! | ASCII letters                    | ⌈len / 4⌉         |
//! | ASCII digits                     | ⌈len / 2⌉ (BPEs group ≤ 3 digits) |
//! | ASCII punctuation and controls   | ⌈len / 2⌉         |
//! | spaces and tabs                  | 0 for one (it joins the next word), else ⌈(len − 1) / 4⌉ |
//! | line breaks (`\n`, `\r`)         | ⌈len / 4⌉         |
//! | non-ASCII characters             | 1 per character (2 for 4-byte ones: emoji) |
//! | `\uXXXX` escape in a body        | 1 ([`estimate_body_tokens`])  |
//! | base64-like run ≥ 1 KiB (images) | max(2 000, len / 250) instead |
//!
//! Callers estimate whole request bodies, JSON syntax included: the syntax stands in for the
//! per-message overhead the providers add, and tool definitions are billed input too.

/// Tokens added to every request for the provider's framing (OpenAI counts 3 for the reply
/// priming plus per-message tokens; the JSON syntax already over-counts the latter).
pub const REQUEST_OVERHEAD_TOKENS: u64 = 8;

/// An inline base64 value at least this long is taken to be an image or document.
pub const BINARY_RUN_BYTES: u64 = 1024;

/// What an inline binary run is counted as, at least.
pub const BINARY_MIN_TOKENS: u64 = 2_000;

/// Bytes of base64 per token beyond [`BINARY_MIN_TOKENS`].
pub const BINARY_BYTES_PER_TOKEN: u64 = 250;

/// Byte classes. Runs of one class are charged per [`CHARGE`].
const LETTER: u8 = 0;
const DIGIT: u8 = 1;
const PUNCT: u8 = 2;
const SPACE: u8 = 3;
const NEWLINE: u8 = 4;
/// A UTF-8 lead byte of a 2- or 3-byte character.
const LEAD: u8 = 5;
/// A UTF-8 lead byte of a 4-byte character (emoji and rarer scripts).
const LEAD4: u8 = 6;
/// A UTF-8 continuation byte: part of a character already counted.
const CONT: u8 = 7;
const fn class_of(b: u8) -> u8 {
    match b {
        b'a'..=b'z' | b'A'..=b'Z' => LETTER,
        b'0'..=b'9' => DIGIT,
        b' ' | b'\t' => SPACE,
        b'\n' | b'\r' => NEWLINE,
        0x80..=0xBF => CONT,
        0xF0..=0xFF => LEAD4,
        0xC0..=0xEF => LEAD,
        _ => PUNCT,
    }
}

const fn build_class() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = class_of(i as u8);
        i += 1;
    }
    table
}

static CLASS: [u8; 256] = build_class();

/// Offsets within a run are taken modulo 4, a power of two, so the charge is a table lookup
/// on `offset & 3` (a modulo of 3, as digit groups would need, costs a division per byte).
const PERIOD: usize = 4;

/// Tokens charged for a byte of class `c` at offset `o` (mod 4) within its run: letters on
/// every 4th byte from the first, digits and punctuation on every 2nd, spaces on the 2nd
/// (then every 4th), line breaks on the 1st (then every 4th), each character's lead byte.
const fn build_charge() -> [u8; 8 * PERIOD] {
    let mut table = [0u8; 8 * PERIOD];
    let mut o = 0;
    while o < PERIOD {
        table[LETTER as usize * PERIOD + o] = (o == 0) as u8;
        table[DIGIT as usize * PERIOD + o] = (o % 2 == 0) as u8;
        table[PUNCT as usize * PERIOD + o] = (o % 2 == 0) as u8;
        table[SPACE as usize * PERIOD + o] = (o == 1) as u8;
        table[NEWLINE as usize * PERIOD + o] = (o == 0) as u8;
        table[LEAD as usize * PERIOD + o] = 1;
        table[LEAD4 as usize * PERIOD + o] = 2;
        o += 1;
    }
    table
}

static CHARGE: [u8; 8 * PERIOD] = build_charge();

/// An incremental estimator: feed text in any pieces (split anywhere), read the count.
#[derive(Debug, Clone)]
pub struct TokenEstimator {
    tokens: u64,
    /// Bytes fed so far (run starts are absolute positions).
    pos: u64,
    prev_class: u8,
    run_start: u64,
}

impl Default for TokenEstimator {
    fn default() -> Self {
        TokenEstimator {
            tokens: 0,
            pos: 0,
            // No run in progress: the first byte starts one whatever its class.
            prev_class: u8::MAX,
            run_start: 0,
        }
    }
}

impl TokenEstimator {
    /// A fresh estimator.
    pub fn new() -> TokenEstimator {
        TokenEstimator::default()
    }

    /// Counts `bytes` (UTF-8 or not: invalid bytes count like punctuation or characters).
    pub fn feed(&mut self, bytes: &[u8]) {
        // Written for speed: runs change every few bytes in prose, so the run start is kept
        // with a mask, not a jump (a mispredicted jump per word would cost more than the
        // rest of the loop), and the charge is one table lookup.
        let mut tokens = self.tokens;
        let mut prev = self.prev_class;
        let mut run_start = self.run_start;
        let mut pos = self.pos;
        for &b in bytes {
            let class = CLASS[usize::from(b)];
            let same = 0u64.wrapping_sub(u64::from(class == prev));
            run_start = (run_start & same) | (pos & !same);
            prev = class;
            let offset = (pos - run_start) as usize & (PERIOD - 1);
            tokens += u64::from(CHARGE[usize::from(class) * PERIOD + offset]);
            pos += 1;
        }
        self.tokens = tokens;
        self.pos = pos;
        self.prev_class = prev;
        self.run_start = run_start;
    }

    /// The estimate for everything fed so far.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }
}

/// Where inline binary (base64) starts in request bodies: data URLs (OpenAI images, files
/// and audio), Anthropic and Gemini `"data"` sources, Bedrock `"bytes"`.
const BINARY_MARKERS: [&[u8]; 4] = [
    b";base64,",
    b"\"data\":\"",
    b"\"data\": \"",
    b"\"bytes\":\"",
];

/// The estimate for a whole request body: text as [`estimate_tokens`], each inline base64
/// value of at least [`BINARY_RUN_BYTES`] as one binary item
/// (max([`BINARY_MIN_TOKENS`], len / [`BINARY_BYTES_PER_TOKEN`])).
pub fn estimate_body_tokens(body: &[u8]) -> u64 {
    let finders = BINARY_MARKERS.map(memchr::memmem::Finder::new);
    // The next match of each marker at or after `at` (recomputed only once passed).
    let mut next: [Option<usize>; 4] = [None; 4];
    for (slot, finder) in next.iter_mut().zip(&finders) {
        *slot = finder.find(body);
    }
    let mut estimator = TokenEstimator::new();
    let mut binary = 0u64;
    let mut at = 0;
    while let Some((i, marker_at)) = next
        .iter()
        .enumerate()
        .filter_map(|(i, n)| n.map(|p| (i, p)))
        .min_by_key(|&(_, p)| p)
    {
        let start = marker_at + BINARY_MARKERS[i].len();
        let end = binary_end(body, start);
        let resume = match end {
            Some(end) => {
                feed_json_text(&mut estimator, body.get(at..start).unwrap_or_default());
                binary = binary.saturating_add(
                    BINARY_MIN_TOKENS.max((end - start) as u64 / BINARY_BYTES_PER_TOKEN),
                );
                at = end;
                end
            }
            None => start,
        };
        for (slot, finder) in next.iter_mut().zip(&finders) {
            if slot.is_some_and(|p| p < resume) {
                *slot = body
                    .get(resume..)
                    .and_then(|rest| finder.find(rest))
                    .map(|p| p + resume);
            }
        }
    }
    feed_json_text(&mut estimator, body.get(at..).unwrap_or_default());
    estimator.tokens().saturating_add(binary)
}

/// Feeds JSON text, counting each `\uXXXX` escape as the one character it stands for (one
/// token, like the UTF-8 character would be) rather than as six bytes of ASCII: clients that
/// escape non-ASCII (Python's `json.dumps` default) would otherwise be over-counted 4–6×.
fn feed_json_text(estimator: &mut TokenEstimator, text: &[u8]) {
    let mut at = 0;
    for escape in memchr::memmem::find_iter(text, b"\\u") {
        if escape < at {
            continue;
        }
        let hex = text.get(escape + 2..escape + 6).unwrap_or_default();
        // A backslash after an odd run of backslashes is itself escaped (`\\u` is `\` + `u`).
        let backslashes = text
            .get(..escape)
            .unwrap_or_default()
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count();
        if hex.len() != 4 || !hex.iter().all(u8::is_ascii_hexdigit) || backslashes % 2 == 1 {
            continue;
        }
        estimator.feed(text.get(at..escape).unwrap_or_default());
        // A lead byte of a 3-byte character: one token, and it ends the current run.
        estimator.feed(&[0xE4]);
        at = escape + 6;
    }
    estimator.feed(text.get(at..).unwrap_or_default());
}

/// The end of the base64 value starting at `start`, if it is one: at least
/// [`BINARY_RUN_BYTES`] long up to its closing quote, and base64 in its first bytes.
fn binary_end(body: &[u8], start: usize) -> Option<usize> {
    let rest = body.get(start..)?;
    let len = memchr::memchr(b'"', rest).unwrap_or(rest.len());
    let looks_base64 = rest
        .iter()
        .take(64.min(len))
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'\\'));
    (len as u64 >= BINARY_RUN_BYTES && looks_base64).then_some(start + len)
}

/// The estimate for one piece of text.
pub fn estimate_tokens(bytes: &[u8]) -> u64 {
    let mut estimator = TokenEstimator::new();
    estimator.feed(bytes);
    estimator.tokens()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_rounded_up_per_class() {
        assert_eq!(estimate_tokens(b""), 0);
        assert_eq!(estimate_tokens(b"hello world"), 4); // hell|o + worl|d
        assert_eq!(estimate_tokens(b"12345"), 3);
        assert_eq!(estimate_tokens(br#"{"a":1}"#), 5); // {" a ": 1 }
        assert_eq!(estimate_tokens("中文".as_bytes()), 2);
        assert_eq!(estimate_tokens("🙂".as_bytes()), 2);
        assert_eq!(estimate_tokens(b"a\n\n  b"), 4);
    }

    #[test]
    fn splitting_the_input_anywhere_gives_the_same_estimate() {
        let text = "Hello, 世界! 12345 {\"k\": [1,2,3]}\n\n    fn main() {}".as_bytes();
        let whole = estimate_tokens(text);
        for cut in 0..=text.len() {
            let mut e = TokenEstimator::new();
            e.feed(&text[..cut]);
            e.feed(&text[cut..]);
            assert_eq!(e.tokens(), whole, "cut at {cut}");
        }
    }

    #[test]
    fn inline_base64_values_count_as_one_binary_item_each() {
        let blob = "A".repeat(100_000);
        let body = format!(r#"{{"data":"{blob}"}}"#);
        // `{"` + `data` + `":"` (2) + the image + `"}`.
        assert_eq!(estimate_body_tokens(body.as_bytes()), 1 + 1 + 2 + 2_000 + 1);
        let url = format!(
            r#"[{{"url":"data:image/png;base64,{}"}},{{"bytes":"{}"}}]"#,
            "Q".repeat(1_000_000),
            "Zm9v".repeat(300)
        );
        let text_only = r#"[{"url":"data:image/png;base64,"},{"bytes":""}]"#;
        assert_eq!(
            estimate_body_tokens(url.as_bytes()),
            estimate_tokens(text_only.as_bytes()) + 4_000 + 2_000
        );
    }

    #[test]
    fn unicode_escapes_count_as_the_characters_they_stand_for() {
        let escaped = br#"{"content":"\u4e2d\u6587\u6587\u5b57"}"#;
        let utf8 = r#"{"content":"中文文字"}"#;
        assert_eq!(
            estimate_body_tokens(escaped),
            estimate_tokens(utf8.as_bytes())
        );
        // An escaped backslash before `u` is not an escape.
        let not_escape = br#"{"p":"C:\\u1234"}"#;
        assert_eq!(
            estimate_body_tokens(not_escape),
            estimate_tokens(not_escape)
        );
    }

    #[test]
    fn short_or_non_base64_data_values_are_counted_as_text() {
        for body in [
            r#"{"data":"short"}"#.to_owned(),
            format!(r#"{{"data":"{}"}}"#, "plain words ".repeat(200)),
            r#"{"data":"unterminated"#.to_owned(),
        ] {
            assert_eq!(
                estimate_body_tokens(body.as_bytes()),
                estimate_tokens(body.as_bytes())
            );
        }
    }
}
