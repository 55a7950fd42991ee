//! A deliberately conservative token estimate, without a tokenizer.
//!
//! Shipping real BPE tables in the `.wasm` would cost megabytes and each provider tokenizes
//! differently anyway, so the filter charges each byte by its class and by whether it starts
//! a run of its class (a word, a number, a run of punctuation), which tracks how BPE
//! tokenizers split text (see `docs/estimation.md` for the measured error). In quarter
//! tokens, rounded up once at the end:
//!
//! | byte                                   | first of its run | each next |
//! |----------------------------------------|-----------------:|----------:|
//! | ASCII letter                           | 3                | 1         |
//! | other printable ASCII (digits, punctuation) | 4           | 2         |
//! | space                                  | 0 (it joins the next word) | 1 |
//! | control (`\n`, `\r`, `\t`, …)          | 4                | 1         |
//! | UTF-8 lead byte of a 2- or 3-byte character | 4           | 4         |
//! | UTF-8 lead byte of a 4-byte character (emoji) | 8         | 8         |
//! | UTF-8 continuation byte                | 0                | 0         |
//! | `\uXXXX` escape in a body              | 4, as the character it stands for ([`estimate_body_tokens`]) | |
//! | base64-like run ≥ 1 KiB (images)       | max(2 000, len / 250) tokens instead | |
//!
//! So a word of n letters costs (n + 2) / 4 tokens, a run of n digits or punctuation
//! (n + 1) / 2. The charge of a byte depends only on it and the byte before it: no run
//! length is carried, and the count is a sum the compiler vectorises (`feed`).
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

/// A byte's class, coded as its two charges in quarter tokens: first of a run in the high
/// nibble, each next in the low one. Every class's pair differs, so equal codes mean the same
/// class (the run goes on).
const LETTER: u8 = 0x31;
const OTHER: u8 = 0x42;
const SPACE: u8 = 0x01;
const CONTROL: u8 = 0x41;
const CONTINUATION: u8 = 0x00;
const LEAD: u8 = 0x44;
const LEAD4: u8 = 0x88;
/// Before the first byte: no class, so the first byte starts a run.
const NO_CLASS: u8 = 0xFF;

/// The class code of `x`. Branch-free, so a loop of it vectorises: the classes' byte ranges
/// are nested or disjoint, and each test that holds flips the code from the enclosing
/// class's to its own (XOR of the two).
#[inline(always)]
fn code(x: u8) -> u8 {
    let mask = |holds: bool| 0u8.wrapping_sub(u8::from(holds));
    let letter = (x | 0x20).wrapping_sub(b'a') < 26;
    OTHER
        ^ (mask(letter) & (LETTER ^ OTHER))
        ^ (mask(x == b' ') & (SPACE ^ OTHER))
        ^ (mask(x < 0x20) & (CONTROL ^ OTHER))
        ^ (mask(x >= 0x80) & (CONTINUATION ^ OTHER))
        ^ (mask(x >= 0xC0) & (LEAD ^ CONTINUATION))
        ^ (mask(x >= 0xF0) & (LEAD4 ^ LEAD))
}

/// The charge of a byte of class `code` after one of class `prev`, in quarter tokens.
#[inline(always)]
fn charge(code: u8, prev: u8) -> u8 {
    if code == prev { code & 0x0F } else { code >> 4 }
}

/// Bytes coded per pass: [`LANES`] × [`ROWS`].
const BLOCK: usize = LANES * ROWS;
/// Bytes charged side by side in the vectorised loop (two 16-byte vectors).
const LANES: usize = 32;
/// Rows of [`LANES`] bytes summed in `u8` lanes before the lanes are added up: 31 × 8 (the
/// largest charge) ≤ 255, so no lane overflows.
const ROWS: usize = 31;

/// An incremental estimator: feed text in any pieces (split anywhere), read the count.
#[derive(Debug, Clone)]
pub struct TokenEstimator {
    /// Quarter tokens so far.
    quarters: u64,
    /// The class code of the last byte fed: the next byte's charge depends on it.
    prev: u8,
}

impl Default for TokenEstimator {
    fn default() -> Self {
        TokenEstimator {
            quarters: 0,
            prev: NO_CLASS,
        }
    }
}

impl TokenEstimator {
    /// A fresh estimator.
    pub fn new() -> TokenEstimator {
        TokenEstimator::default()
    }

    /// Counts `bytes` (UTF-8 or not: invalid bytes count like punctuation or characters).
    ///
    /// Two vectorised passes per block: code every byte, then charge each code against the
    /// one before it (an unaligned load one byte back). Coding each byte once, rather than
    /// classifying it again as the next byte's predecessor, halves the work.
    pub fn feed(&mut self, bytes: &[u8]) {
        if bytes.len() < LANES {
            // Short pieces (stream deltas, separators) before the block buffer is even
            // zeroed: that memset would cost more than the piece.
            self.feed_short(bytes);
            return;
        }
        let mut codes = [0u8; BLOCK + 1];
        for chunk in bytes.chunks(BLOCK) {
            if chunk.len() < LANES {
                // The tail: not worth a pass.
                self.feed_short(chunk);
                continue;
            }
            codes[0] = self.prev;
            for (c, &b) in codes[1..].iter_mut().zip(chunk) {
                *c = code(b);
            }
            let n = chunk.len();
            // Code i of `current` follows code i of `before`.
            let (current, before) = (&codes[1..=n], &codes[..n]);
            let mut lanes = [0u8; LANES];
            let rows = current.chunks_exact(LANES).zip(before.chunks_exact(LANES));
            for (c, p) in rows {
                for ((sum, &c), &p) in lanes.iter_mut().zip(c).zip(p) {
                    *sum += charge(c, p);
                }
            }
            let mut total = lanes.iter().map(|&s| u64::from(s)).sum::<u64>();
            let tail = n - n % LANES;
            for (&c, &p) in current[tail..].iter().zip(&before[tail..]) {
                total += u64::from(charge(c, p));
            }
            self.quarters += total;
            self.prev = codes[n];
        }
    }

    /// Counts a piece shorter than a vector pass, byte by byte.
    fn feed_short(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let c = code(b);
            self.quarters += u64::from(charge(c, self.prev));
            self.prev = c;
        }
    }

    /// The estimate for everything fed so far.
    pub fn tokens(&self) -> u64 {
        self.quarters.div_ceil(4)
    }
}

/// Where inline binary (base64) starts in request bodies: data URLs (OpenAI images, files
/// and audio, `;base64,`), Anthropic and Gemini `"data"` sources (`"data":"` or
/// `"data": "`), Bedrock `"bytes":"`.
///
/// The value after a marker starting at `at` (the marker's `;` or `:` is at `p`), if there
/// is one.
fn marker_value(body: &[u8], at: usize, p: usize) -> Option<usize> {
    let after = body.get(p..)?;
    let before = body.get(at..p)?;
    match (before, after) {
        (b"", _) if after.starts_with(b";base64,") => Some(p + 8),
        (b"\"data\"", [b':', b'"', ..]) | (b"\"bytes\"", [b':', b'"', ..]) => Some(p + 2),
        (b"\"data\"", [b':', b' ', b'"', ..]) => Some(p + 3),
        _ => None,
    }
}

/// The estimate for a whole request body: text as [`estimate_tokens`], each inline base64
/// value of at least [`BINARY_RUN_BYTES`] as one binary item
/// (max([`BINARY_MIN_TOKENS`], len / [`BINARY_BYTES_PER_TOKEN`])), each `\uXXXX` escape as
/// the one character it stands for (one token, like the UTF-8 character would be) rather
/// than six bytes of ASCII: clients that escape non-ASCII (Python's `json.dumps` default)
/// would otherwise be over-counted 4–6×.
///
/// One pass finds all three: every marker has a `;` or a `:` where it can be told, every
/// escape a `\`.
pub fn estimate_body_tokens(body: &[u8]) -> u64 {
    let mut estimator = TokenEstimator::new();
    let mut binary = 0u64;
    // Fed up to `at`; hits before `pos` are passed over; a marker must start at or after
    // `resume` (the end of the last one);
    // backslashes are counted back to `segment` (the end of the last binary value).
    let (mut at, mut resume, mut segment) = (0, 0, 0);
    let mut pos = 0;
    for p in memchr::memchr3_iter(b';', b':', b'\\', body) {
        if p < pos {
            // Inside an escape, a marker or a binary value already counted.
            continue;
        }
        pos = p + 1;
        let value = match body[p] {
            b'\\' => {
                let hex = body.get(p + 2..p + 6).unwrap_or_default();
                // A backslash after an odd run of backslashes is itself escaped.
                let backslashes = body[segment..p]
                    .iter()
                    .rev()
                    .take_while(|&&b| b == b'\\')
                    .count();
                if body.get(p + 1) == Some(&b'u')
                    && hex.len() == 4
                    && hex.iter().all(u8::is_ascii_hexdigit)
                    && backslashes % 2 == 0
                {
                    estimator.feed(&body[at..p]);
                    // A lead byte of a 3-byte character: one token, and it ends the run.
                    estimator.feed(&[0xE4]);
                    at = p + 6;
                    pos = at;
                }
                continue;
            }
            b';' => marker_value(body, p, p),
            _ => [p.wrapping_sub(6), p.wrapping_sub(7)]
                .into_iter()
                .filter(|&start| start >= resume && start < p)
                .find_map(|start| marker_value(body, start, p)),
        };
        let Some(start) = value else { continue };
        match binary_end(body, start) {
            Some(end) => {
                estimator.feed(&body[at..start]);
                binary = binary.saturating_add(
                    BINARY_MIN_TOKENS.max((end - start) as u64 / BINARY_BYTES_PER_TOKEN),
                );
                (at, segment, pos) = (end, end, end);
            }
            None => pos = start,
        }
        resume = pos;
    }
    estimator.feed(body.get(at..).unwrap_or_default());
    estimator.tokens().saturating_add(binary)
}

#[cfg(test)]
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

    /// The table in the module doc, one byte at a time: (first of a run, each next) in
    /// quarter tokens by class. The vectorised path must agree with it.
    fn reference(bytes: &[u8]) -> u64 {
        fn class(b: u8) -> (u8, u8, u8) {
            match b {
                b'a'..=b'z' | b'A'..=b'Z' => (0, 3, 1),
                b' ' => (1, 0, 1),
                0..=0x1F => (2, 4, 1),
                0x21..=0x7F => (3, 4, 2),
                0x80..=0xBF => (4, 0, 0),
                0xC0..=0xEF => (5, 4, 4),
                0xF0..=0xFF => (6, 8, 8),
            }
        }
        let mut quarters = 0u64;
        let mut prev = u8::MAX;
        for &b in bytes {
            let (c, first, next) = class(b);
            quarters += u64::from(if c == prev { next } else { first });
            prev = c;
        }
        quarters.div_ceil(4)
    }

    /// Bytes drawn mostly from the classes' edges and from long and short runs.
    fn text() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            prop::sample::select(vec![
                b'a', b'z', b'A', b'Z', b'@', b'[', b'`', b'{', b'0', b'9', b'/', b':', b' ',
                b'\t', b'\n', b'\r', 0, 0x1F, 0x21, 0x7F, 0x80, 0xBF, 0xC0, 0xEF, 0xF0, 0xFF,
            ])
            .prop_map(|b| vec![b]),
            (
                prop::sample::select(b"a1 .\n\xE4\x80".to_vec()),
                1..140usize
            )
                .prop_map(|(b, n)| vec![b; n]),
            "[a-z ]{0,80}".prop_map(String::into_bytes),
            any::<Vec<u8>>(),
            "\\PC{0,40}".prop_map(String::into_bytes),
        ];
        prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
    }

    proptest::proptest! {
        #[test]
        fn the_vectorised_count_agrees_with_the_table_however_the_input_is_split(
            bytes in text(),
            cuts in proptest::collection::vec(0..2000usize, 0..6),
        ) {
            let want = reference(&bytes);
            proptest::prop_assert_eq!(estimate_tokens(&bytes), want);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut e = TokenEstimator::new();
            let mut at = 0;
            for cut in cuts.into_iter().chain([bytes.len()]) {
                e.feed(&bytes[at..cut]);
                at = cut;
            }
            proptest::prop_assert_eq!(e.tokens(), want);
        }
    }

    use memchr::memmem::Finder;
    use proptest::strategy::Strategy as _;

    /// The body estimate as first written (four marker searches, each built per call).
    fn reference_body(body: &[u8]) -> u64 {
        const MARKERS: [&[u8]; 4] = [
            b";base64,",
            b"\"data\":\"",
            b"\"data\": \"",
            b"\"bytes\":\"",
        ];
        let finders = MARKERS.map(Finder::new);
        let mut next: [Option<usize>; 4] = finders.each_ref().map(|f| f.find(body));
        let mut estimator = TokenEstimator::new();
        let mut binary = 0u64;
        let mut at = 0;
        while let Some((i, marker_at)) = next
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.map(|p| (i, p)))
            .min_by_key(|&(_, p)| p)
        {
            let start = marker_at + MARKERS[i].len();
            let end = binary_end(body, start);
            let resume = match end {
                Some(end) => {
                    feed_json_text(&mut estimator, &body[at..start]);
                    binary += BINARY_MIN_TOKENS.max((end - start) as u64 / BINARY_BYTES_PER_TOKEN);
                    at = end;
                    end
                }
                None => start,
            };
            for (slot, finder) in next.iter_mut().zip(&finders) {
                if slot.is_some_and(|p| p < resume) {
                    *slot = finder.find(&body[resume..]).map(|p| p + resume);
                }
            }
        }
        feed_json_text(&mut estimator, &body[at..]);
        estimator.tokens() + binary
    }

    proptest::proptest! {
        #[test]
        fn the_body_estimate_finds_the_markers_it_always_found(
            pieces in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(vec![
                        ";base64,", "\"data\":\"", "\"data\": \"", "\"data\":", "\"data\": x",
                        "\"bytes\":\"", "\"", "\\u4e2d", "\\\\u1234", " words, ", "data", "\"data\":\"data\":\"",
                        "\\", "\\u12", ":", ";", "\"bytes\": \"", "x\"data\"",
                    ])
                    .prop_map(str::to_owned),
                    (1000..1100usize).prop_map(|n| "QUJD".repeat(n / 4)),
                    "[a-z\":; ]{0,20}",
                ],
                0..12,
            ),
        ) {
            let body = pieces.concat();
            proptest::prop_assert_eq!(estimate_body_tokens(body.as_bytes()), reference_body(body.as_bytes()));
        }
    }

    #[test]
    fn bytes_are_charged_by_class_and_run_start_then_rounded_up_once() {
        // In quarter tokens.
        assert_eq!(estimate_tokens(b""), 0);
        assert_eq!(estimate_tokens(b"hello world"), 4); // 3+1+1+1+1, 0, 3+1+1+1+1 = 14
        assert_eq!(estimate_tokens(b"12345"), 3); // 4+2+2+2+2
        assert_eq!(estimate_tokens(br#"{"a":1}"#), 5); // 4+2, 3, 4+2+2+2
        assert_eq!(estimate_tokens("中文".as_bytes()), 2); // 4+0+0 twice
        assert_eq!(estimate_tokens("🙂".as_bytes()), 2); // 8+0+0+0
        assert_eq!(estimate_tokens(b"a\n\n  b"), 3); // 3, 4+1, 0+1, 3
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
        // Quarters: `{"` 4+2, `data` 3+1+1+1, `":"` 4+2+2, then `"}` 2+2 (the value between
        // them is not text, so the run of punctuation goes on): 6 tokens, and the image.
        assert_eq!(estimate_body_tokens(body.as_bytes()), 6 + 2_000);
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
