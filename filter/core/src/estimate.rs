//! A deliberately conservative token estimate, without a tokenizer.
//!
//! Shipping real BPE tables in the `.wasm` would cost megabytes and each provider tokenizes
//! differently anyway, so the filter counts *runs* of byte classes, each rounded up, which
//! tracks how BPE tokenizers split text (see `docs/estimation.md` for the measured error):
//!
//! | run of …                         | tokens            |
//! |----------------------------------|-------------------|
//! | ASCII letters                    | ⌈len / 4⌉         |
//! | ASCII digits                     | ⌈len / 3⌉ (BPEs group ≤ 3 digits) |
//! | ASCII punctuation and controls   | ⌈len / 2⌉         |
//! | whitespace                       | 0 for one space or tab, else 1 |
//! | non-ASCII characters             | 1 per character (2 for 4-byte ones: emoji) |
//! | base64-like run ≥ 1 KiB (images) | max(2 000, len / 250) instead |
//!
//! Callers estimate whole request bodies, JSON syntax included: the syntax stands in for the
//! per-message overhead the providers add, and tool definitions are billed input too.

/// Tokens added to every request for the provider's framing (OpenAI counts 3 for the reply
/// priming plus per-message tokens; the JSON syntax already over-counts the latter).
pub const REQUEST_OVERHEAD_TOKENS: u64 = 8;

/// A base64-alphabet run at least this long is taken to be an inline image or document.
pub const BINARY_RUN_BYTES: u32 = 1024;

/// What an inline binary run is counted as, at least.
pub const BINARY_MIN_TOKENS: u64 = 2_000;

/// Bytes of base64 per token beyond [`BINARY_MIN_TOKENS`].
pub const BINARY_BYTES_PER_TOKEN: u64 = 250;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Class {
    Letter = 0,
    Digit = 1,
    Punct = 2,
    /// Spaces, tabs and line breaks.
    Space = 3,
    /// A UTF-8 lead byte of a 2- or 3-byte character.
    Lead = 5,
    /// A UTF-8 lead byte of a 4-byte character (emoji and rarer scripts).
    Lead4 = 6,
    /// A UTF-8 continuation byte: part of a character already counted.
    Cont = 7,
}

const fn class_of(b: u8) -> Class {
    match b {
        b'a'..=b'z' | b'A'..=b'Z' => Class::Letter,
        b'0'..=b'9' => Class::Digit,
        b' ' | b'\t' | b'\n' | b'\r' => Class::Space,
        0x80..=0xBF => Class::Cont,
        0xF0..=0xFF => Class::Lead4,
        0xC0..=0xEF => Class::Lead,
        _ => Class::Punct,
    }
}

const fn build_table() -> [Class; 256] {
    let mut table = [Class::Punct; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = class_of(i as u8);
        i += 1;
    }
    table
}

static CLASS: [Class; 256] = build_table();

const fn build_b64() -> [bool; 256] {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=';
        i += 1;
    }
    table
}

static BASE64: [bool; 256] = build_b64();

/// An incremental estimator: feed text in any pieces (split anywhere), read the count.
#[derive(Debug, Clone)]
pub struct TokenEstimator {
    tokens: u64,
    prev: Class,
    run: u32,
    /// Whether the current whitespace run has been charged its one token.
    space_charged: bool,
    b64_run: u32,
    tokens_before_b64: u64,
}

impl Default for TokenEstimator {
    fn default() -> Self {
        TokenEstimator {
            tokens: 0,
            prev: Class::Space,
            run: 0,
            space_charged: false,
            b64_run: 0,
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
        for &b in bytes {
            let class = CLASS[usize::from(b)];
            if BASE64[usize::from(b)] {
                if self.b64_run == 0 {
                    self.tokens_before_b64 = self.tokens;
                }
                self.b64_run = self.b64_run.saturating_add(1);
            } else if self.b64_run != 0 {
                self.end_binary_run();
            }
            if class == self.prev {
                self.run = self.run.wrapping_add(1);
            } else {
                self.prev = class;
                self.run = 1;
                self.space_charged = false;
            }
            // Charge a token each time a run enters a new block of its class's width, so a
            // run of n costs ⌈n / width⌉ whatever the piece boundaries were.
            let charge = match class {
                Class::Letter => self.run % 4 == 1,
                Class::Digit => self.run % 3 == 1,
                Class::Punct => self.run % 2 == 1,
                Class::Space => {
                    // One space or tab joins the next word's token; longer runs and line
                    // breaks are tokens of their own (once per run).
                    let due = !self.space_charged && (b == b'\n' || b == b'\r' || self.run >= 2);
                    self.space_charged |= due;
                    due
                }
                Class::Lead => true,
                Class::Lead4 => {
                    self.tokens += 1;
                    true
                }
                Class::Cont => false,
            };
            self.tokens += u64::from(charge);
        }
    }

    fn end_binary_run(&mut self) {
        if self.b64_run >= BINARY_RUN_BYTES {
            let binary = BINARY_MIN_TOKENS.max(u64::from(self.b64_run) / BINARY_BYTES_PER_TOKEN);
            self.tokens = self.tokens_before_b64.saturating_add(binary);
        }
        self.b64_run = 0;
    }

    /// The estimate for everything fed so far.
    pub fn tokens(&self) -> u64 {
        if self.b64_run >= BINARY_RUN_BYTES {
            let mut done = self.clone();
            done.end_binary_run();
            return done.tokens;
        }
        self.tokens
    }
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
        assert_eq!(estimate_tokens(b"12345"), 2);
        assert_eq!(estimate_tokens(br#"{"a":1}"#), 5); // {" a ": 1 }
        assert_eq!(estimate_tokens("中文".as_bytes()), 2);
        assert_eq!(estimate_tokens("🙂".as_bytes()), 2);
        assert_eq!(estimate_tokens(b"a\n\n  b"), 3);
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
