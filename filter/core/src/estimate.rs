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
    /// The class of the last byte fed (`u8::MAX` before the first).
    prev_class: u8,
    /// The length of the run in progress, modulo [`PERIOD`].
    run: u8,
}

impl Default for TokenEstimator {
    fn default() -> Self {
        TokenEstimator {
            tokens: 0,
            // No run in progress: the first byte starts one whatever its class.
            prev_class: u8::MAX,
            run: 0,
        }
    }
}

/// Bytes per block of the word-at-a-time path: one bit per byte in a `u64` mask per class.
const BLOCK: usize = 64;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `v`, gathered into the low 8 bits (byte `i` → bit `i`).
#[inline(always)]
fn movemask(v: u64) -> u64 {
    ((v & HIGH).wrapping_mul(0x0002_0408_1020_4081)) >> 56
}

/// Bit `i` set for every `i ≡ 0 (mod 4)`, and for every even `i`.
const EVERY_4TH: u64 = 0x1111_1111_1111_1111;
const EVERY_2ND: u64 = 0x5555_5555_5555_5555;

/// The bits of `m`'s runs that start (their lowest bit) in `starts`: adding a run's start
/// bit carries through exactly that run.
#[inline(always)]
fn runs_from(m: u64, starts: u64) -> u64 {
    m & !m.wrapping_add(starts)
}

/// The charged bytes of the runs of one class in a block's mask `m`: at offsets `skip`,
/// `skip + period`, … of each run (`period` 2 or 4, `skip` 0 or 1). `carried`: the run at
/// bit 0, if any, continues one of `len` (mod 4) bytes from before the block.
///
/// Branch-free: a run's charged bytes are those at its start's phase (mod `period`).
#[inline(always)]
fn charged(m: u64, carried: bool, len: u8, skip: u8, period: u8) -> u64 {
    // The run continued from before the block (the trailing ones of `m`, if carried).
    let lead = m & !m.wrapping_add(1) & 0u64.wrapping_sub(u64::from(carried));
    let lead_phase = (skip + PERIOD as u8 - len) % period;
    let mut rest = m & !lead;
    if skip == 1 {
        // The first byte of each run starting here is free.
        rest &= rest << 1;
    }
    let starts = rest & !(rest << 1);
    let even = runs_from(rest, starts & EVERY_2ND);
    let odd = rest & !even;
    if period == 2 {
        (lead & (EVERY_2ND << lead_phase)) | (even & EVERY_2ND) | (odd & (EVERY_2ND << 1))
    } else {
        let phase0 = runs_from(rest, starts & EVERY_4TH);
        let phase1 = runs_from(rest, starts & (EVERY_4TH << 1));
        (lead & (EVERY_4TH << lead_phase))
            | (phase0 & EVERY_4TH)
            | (phase1 & (EVERY_4TH << 1))
            | (even & !phase0 & (EVERY_4TH << 2))
            | (odd & !phase1 & (EVERY_4TH << 3))
    }
}

/// Class masks of an all-ASCII block (letters, digits, bytes ≤ ' ', spaces, non-ASCII),
/// one class at a time (few constants live at once); controls are told from spaces only
/// if the block has any.
///
/// No byte has its high bit set, so a constant below 0x80 added to a byte never carries
/// into the next one, and the sum's high bit tells a comparison. For a range, the sum
/// with the lower bound's complement has its high bit set wherever the sum with the upper
/// bound's has, so their XOR keeps the bytes in between.
#[inline(always)]
fn ascii_masks(words: &[u64; BLOCK / 8]) -> (u64, u64, u64, u64, u64) {
    let mut letters = 0u64;
    for (i, &x) in words.iter().enumerate() {
        let folded = x | (0x20 * ONES); // A-Z → a-z
        letters |= movemask((folded + 0x1F * ONES) ^ (folded + 0x05 * ONES)) << (8 * i);
    }
    let mut digits = 0u64;
    for (i, &x) in words.iter().enumerate() {
        digits |= movemask((x + 0x50 * ONES) ^ (x + 0x46 * ONES)) << (8 * i);
    }
    let mut above_space = 0u64;
    let mut not_control = HIGH;
    for (i, &x) in words.iter().enumerate() {
        above_space |= movemask(x + 0x5F * ONES) << (8 * i); // > ' '
        not_control &= x + 0x60 * ONES; // ≥ ' '
    }
    let low = !above_space;
    let mut controls = 0u64;
    if not_control != HIGH {
        for (i, &x) in words.iter().enumerate() {
            controls |= movemask(!(x + 0x60 * ONES)) << (8 * i);
        }
    }
    (letters, digits, low, low & !controls, 0)
}

/// Class masks of any block (letters, digits, bytes ≤ ' ', spaces, non-ASCII).
#[inline(always)]
fn masks(words: &[u64; BLOCK / 8]) -> (u64, u64, u64, u64, u64) {
    let (mut letters, mut digits, mut low, mut spaces, mut high) = (0u64, 0u64, 0, 0, 0);
    for (i, &x) in words.iter().enumerate() {
        // Each byte's low 7 bits plus a constant below 0x80 never carries into the next
        // byte; its high bit then tells the comparison.
        let x7 = x & !HIGH;
        let folded = x7 | (0x20 * ONES);
        let letter = (folded + 0x1F * ONES) & !(folded + 0x05 * ONES);
        let digit = (x7 + 0x50 * ONES) & !(x7 + 0x46 * ONES);
        let le_space = !(x7 + 0x5F * ONES);
        let space = !((x7 ^ (0x20 * ONES)) + 0x7F * ONES); // == ' '
        let shift = 8 * i;
        letters |= movemask(letter) << shift;
        digits |= movemask(digit) << shift;
        low |= movemask(le_space) << shift;
        spaces |= movemask(space) << shift;
        high |= movemask(x) << shift;
    }
    let ascii = !high;
    (
        letters & ascii,
        digits & ascii,
        low & ascii,
        spaces & ascii,
        high,
    )
}

impl TokenEstimator {
    /// A fresh estimator.
    pub fn new() -> TokenEstimator {
        TokenEstimator::default()
    }

    /// Counts `bytes` (UTF-8 or not: invalid bytes count like punctuation or characters).
    pub fn feed(&mut self, bytes: &[u8]) {
        let mut blocks = bytes.chunks_exact(BLOCK);
        for block in &mut blocks {
            if let Ok(block) = <&[u8; BLOCK]>::try_from(block) {
                self.feed_block(block);
            }
        }
        self.feed_bytes(blocks.remainder());
    }

    /// The byte-at-a-time path, for block remainders.
    fn feed_bytes(&mut self, bytes: &[u8]) {
        let mut tokens = self.tokens;
        let mut prev = self.prev_class;
        let mut run = self.run;
        for &b in bytes {
            let class = CLASS[usize::from(b)];
            let offset = if class == prev { run } else { 0 };
            tokens += u64::from(CHARGE[usize::from(class) * PERIOD + usize::from(offset)]);
            run = (offset + 1) & (PERIOD as u8 - 1);
            prev = class;
        }
        self.tokens = tokens;
        self.prev_class = prev;
        self.run = run;
    }

    /// The word-at-a-time path (the same count as [`Self::feed_bytes`]): one bit per byte
    /// for each class, by SWAR on 8 bytes at a time, then every class's charged bytes by
    /// mask arithmetic, without a branch per run or per byte.
    fn feed_block(&mut self, block: &[u8; BLOCK]) {
        let mut words = [0u64; BLOCK / 8];
        for (word, bytes) in words.iter_mut().zip(block.chunks_exact(8)) {
            *word = u64::from_le_bytes(<[u8; 8]>::try_from(bytes).unwrap_or_default());
        }
        let (letters, digits, low, spaces, high) = if words.iter().fold(0, |a, w| a | w) & HIGH == 0
        {
            ascii_masks(&words)
        } else {
            masks(&words)
        };
        // Tabs, line breaks and other controls are rare: sorted one by one.
        let mut spaces = spaces;
        let mut newlines = 0u64;
        let mut controls = low & !spaces;
        while controls != 0 {
            let i = controls.trailing_zeros() as usize;
            let bit = 1u64 << i;
            match block[i] {
                b'\t' => spaces |= bit,
                b'\n' | b'\r' => newlines |= bit,
                _ => {}
            }
            controls &= controls - 1;
        }
        let punct = !(letters | digits | spaces | newlines | high);

        let (prev, len) = (self.prev_class, self.run);
        // The classes' charged bytes are disjoint: one count for all (x86-64 has no
        // `popcnt` instruction by default; wasm has one).
        let mut charged_bytes = charged(letters, prev == LETTER, len, 0, 4)
            | charged(punct, prev == PUNCT, len, 0, 2)
            | charged(spaces, prev == SPACE, len, 1, 4)
            | charged(digits, prev == DIGIT, len, 0, 2);
        if newlines != 0 {
            charged_bytes |= charged(newlines, prev == NEWLINE, len, 0, 4);
        }
        let mut tokens = 0;
        if high != 0 {
            let (mut cont, mut lead4) = (0u64, 0u64);
            for (i, &x) in words.iter().enumerate() {
                // `x << k` puts bit 7 − k of each byte on its high bit.
                cont |= movemask(x & !(x << 1)) << (8 * i); // 10xx_xxxx
                lead4 |= movemask(x & (x << 1) & (x << 2) & (x << 3)) << (8 * i); // 1111_xxxx
            }
            // Every lead byte once, a 4-byte one twice.
            charged_bytes |= high & !cont;
            tokens += u64::from(lead4.count_ones());
        }
        self.tokens += tokens + u64::from(charged_bytes.count_ones());

        // The run in progress at the block's end (characters are charged whatever their run).
        let last = CLASS[usize::from(block[BLOCK - 1])];
        let by_class = [
            letters,
            digits,
            punct,
            spaces,
            newlines,
            u64::MAX,
            u64::MAX,
            u64::MAX,
        ];
        let tail = by_class[usize::from(last & 7)].leading_ones();
        let tail = if tail == 64 && last == prev {
            u32::from(len) + 64
        } else {
            tail
        };
        self.prev_class = last;
        self.run = (tail % PERIOD as u32) as u8;
    }

    /// The estimate for everything fed so far.
    pub fn tokens(&self) -> u64 {
        self.tokens
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

    /// The byte-at-a-time definition the block path must agree with.
    fn reference(bytes: &[u8]) -> u64 {
        let mut tokens = 0;
        let mut prev = u8::MAX;
        let mut run_start = 0;
        for (pos, &b) in bytes.iter().enumerate() {
            let class = CLASS[usize::from(b)];
            if class != prev {
                run_start = pos;
            }
            prev = class;
            tokens += u64::from(CHARGE[usize::from(class) * PERIOD + (pos - run_start) % PERIOD]);
        }
        tokens
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
        fn the_block_path_agrees_with_the_byte_path_however_the_input_is_split(
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
    fn movemask_gathers_each_bytes_high_bit() {
        for v in [
            0u64,
            u64::MAX,
            0x8000_0000_0000_0080,
            0x0080_8000_FF00_7F80,
            HIGH,
        ] {
            let want = (0..8).fold(0, |m, i| m | (((v >> (8 * i + 7)) & 1) << i));
            assert_eq!(movemask(v), want, "{v:#x}");
        }
    }

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
