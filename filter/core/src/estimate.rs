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
//! | base64-like run ≥ 1 KiB (images) | max(2 000, len / 250) instead |
//!
//! Callers estimate whole request bodies, JSON syntax included: the syntax stands in for the
//! per-message overhead the providers add, and tool definitions are billed input too.

/// Tokens added to every request for the provider's framing (OpenAI counts 3 for the reply
/// priming plus per-message tokens; the JSON syntax already over-counts the latter).
pub const REQUEST_OVERHEAD_TOKENS: u64 = 8;

/// A base64-alphabet run at least this long is taken to be an inline image or document.
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
/// Flag bit: the byte is in the base64 alphabet.
const B64: u8 = 8;

const fn byte_info(b: u8) -> u8 {
    let class = match b {
        b'a'..=b'z' | b'A'..=b'Z' => LETTER,
        b'0'..=b'9' => DIGIT,
        b' ' | b'\t' => SPACE,
        b'\n' | b'\r' => NEWLINE,
        0x80..=0xBF => CONT,
        0xF0..=0xFF => LEAD4,
        0xC0..=0xEF => LEAD,
        _ => PUNCT,
    };
    let b64 = b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=';
    class | if b64 { B64 } else { 0 }
}

const fn build_info() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = byte_info(i as u8);
        i += 1;
    }
    table
}

static INFO: [u8; 256] = build_info();

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
    /// Bytes fed so far (positions below are absolute).
    pos: u64,
    prev_class: u8,
    run_start: u64,
    prev_b64: bool,
    b64_start: u64,
    tokens_before_b64: u64,
}

impl Default for TokenEstimator {
    fn default() -> Self {
        TokenEstimator {
            tokens: 0,
            pos: 0,
            // No run in progress: the first byte starts one whatever its class.
            prev_class: u8::MAX,
            run_start: 0,
            prev_b64: false,
            b64_start: 0,
            tokens_before_b64: 0,
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
        // Written for speed: runs change every few bytes in prose, so the loop keeps run
        // *starts* (a select per byte) instead of a counter that depends on the previous
        // byte's, and tests rare conditions with non-short-circuit `&` so that the only
        // jump is the rarely taken end of a long base64 run.
        let mut tokens = self.tokens;
        let mut prev = self.prev_class;
        let mut run_start = self.run_start;
        let mut prev_b64 = self.prev_b64;
        let mut b64_start = self.b64_start;
        let mut before_b64 = self.tokens_before_b64;
        let mut pos = self.pos;
        for &b in bytes {
            let info = INFO[usize::from(b)];
            let class = info & 7;
            let b64 = info & B64 != 0;
            run_start = if class == prev { run_start } else { pos };
            prev = class;
            let starting = b64 & !prev_b64;
            before_b64 = if starting { tokens } else { before_b64 };
            b64_start = if starting { pos } else { b64_start };
            let b64_len = pos - b64_start;
            if !b64 & prev_b64 & (b64_len >= BINARY_RUN_BYTES) {
                tokens = binary_total(before_b64, b64_len);
            }
            prev_b64 = b64;
            let offset = (pos - run_start) as usize & (PERIOD - 1);
            tokens += u64::from(CHARGE[usize::from(class) * PERIOD + offset]);
            pos += 1;
        }
        self.tokens = tokens;
        self.pos = pos;
        self.prev_class = prev;
        self.run_start = run_start;
        self.prev_b64 = prev_b64;
        self.b64_start = b64_start;
        self.tokens_before_b64 = before_b64;
    }

    /// The estimate for everything fed so far.
    pub fn tokens(&self) -> u64 {
        let b64_len = self.pos - self.b64_start;
        if self.prev_b64 && b64_len >= BINARY_RUN_BYTES {
            return binary_total(self.tokens_before_b64, b64_len);
        }
        self.tokens
    }
}

/// The count after a long base64 run: what came before it plus the run as one binary item.
fn binary_total(before: u64, run: u64) -> u64 {
    before.saturating_add(BINARY_MIN_TOKENS.max(run / BINARY_BYTES_PER_TOKEN))
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
    fn long_base64_runs_count_as_one_image() {
        let mut body = b"{\"data\":\"".to_vec();
        body.extend(std::iter::repeat_n(b'A', 100_000));
        body.extend(b"\"}");
        assert_eq!(estimate_tokens(&body), 2 + 2 + 2_000 + 1);
        let big = vec![b'Q'; 1_000_000];
        assert_eq!(estimate_tokens(&big), 4_000);
    }
}
