//! Takes the usage-only chunk out of an OpenAI-style stream whose client did not ask for it.
//!
//! When the filter adds `stream_options.include_usage` to a request, the provider ends the
//! stream with a chunk that has no choices and the usage (`"choices":[]`, `"usage":{…}`).
//! A client that did not ask for it does not expect it: the OpenAI quickstart loop
//! (`chunk.choices[0].delta`) raises IndexError on it. The usage reader still reads it (it
//! is fed the chunk as received); the client gets the stream without it.
//!
//! Events pass as soon as they are complete. The unfinished event at the end of a chunk is
//! held until its end arrives, while it is short enough to be a usage chunk
//! ([`MAX_HELD_BYTES`]); a longer one is passed in pieces of that size. An
//! event the upstream never finishes is not passed: an SSE client discards an unfinished
//! event at the end of a stream anyway.

/// The longest unfinished event held back: a usage-only chunk is well under 1 KiB.
pub const MAX_HELD_BYTES: usize = 4096;

/// The stream filter for one response.
#[derive(Debug, Default)]
pub struct UsageChunkFilter {
    /// The unfinished event held back.
    held: Vec<u8>,
    /// The last two bytes seen, so that an event end split across chunks is found.
    last: [u8; 2],
}

impl UsageChunkFilter {
    /// A filter at the start of a stream.
    pub fn new() -> UsageChunkFilter {
        UsageChunkFilter::default()
    }

    /// What the client gets instead of `chunk`, or `None` when it gets `chunk` unchanged.
    /// An event ends with a blank line: `\n\n`, or `\n\r\n` (which covers `\r\n\r\n`).
    pub fn filter(&mut self, chunk: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        for &b in chunk {
            let [before, prev] = self.last;
            self.last = [prev, b];
            self.held.push(b);
            let end = b == b'\n' && (prev == b'\n' || (prev == b'\r' && before == b'\n'));
            // A long unfinished event cannot be a usage chunk: it passes as it comes.
            if end || self.held.len() > MAX_HELD_BYTES {
                if !(end && is_usage_only(&self.held)) {
                    out.extend_from_slice(&self.held);
                }
                self.held.clear();
            }
        }
        (out != chunk).then_some(out)
    }

    /// Bytes held back now (bounded by [`MAX_HELD_BYTES`]).
    pub fn held_bytes(&self) -> usize {
        self.held.len()
    }
}

/// Whether an SSE event is a usage-only chunk: an empty `choices` array and a `usage`
/// object. Matched on the bytes, not parsed (a JSON parser for it would grow the `.wasm` by
/// 5 KB): OpenAI, Azure and vLLM write compact JSON (no spaces), and inside a string value a quote is
/// escaped (`\"choices\"`), so `"choices":[]` can only be a key and its value.
fn is_usage_only(event: &[u8]) -> bool {
    // A plain window search: `memmem::find` with needles built at run time would bring its
    // searcher construction into the `.wasm` (3 KB); events are short.
    let has = |needle: &[u8]| event.windows(needle.len()).any(|w| w == needle);
    has(br#""choices":[]"#) && has(br#""usage":{"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n\n",
        "data: [DONE]\n\n",
    );

    fn without_usage() -> String {
        STREAM
            .split_inclusive("\n\n")
            .filter(|e| !e.contains("\"choices\":[]"))
            .collect()
    }

    /// Feeds `stream` cut at `cuts` and returns what the client got.
    fn through(stream: &str, cuts: &[usize]) -> Vec<u8> {
        let mut f = UsageChunkFilter::new();
        let mut got = Vec::new();
        let mut start = 0;
        for &end in cuts.iter().chain(std::iter::once(&stream.len())) {
            let chunk = &stream.as_bytes()[start..end];
            match f.filter(chunk) {
                Some(out) => got.extend_from_slice(&out),
                None => got.extend_from_slice(chunk),
            }
            start = end;
        }
        got
    }

    #[test]
    fn the_usage_only_chunk_is_taken_out_wherever_the_chunks_are_cut() {
        let want = without_usage();
        for a in 0..=STREAM.len() {
            assert_eq!(
                String::from_utf8(through(STREAM, &[a])).unwrap(),
                want,
                "cut at {a}"
            );
        }
        let every_byte: Vec<usize> = (1..STREAM.len()).collect();
        assert_eq!(
            String::from_utf8(through(STREAM, &every_byte)).unwrap(),
            want
        );
    }

    #[test]
    fn crlf_streams_and_azures_empty_prompt_filter_chunk_are_kept() {
        let azure = concat!(
            "data: {\"choices\":[],\"prompt_filter_results\":[]}\r\n\r\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}],\"usage\":null}\r\n\r\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5}}\r\n\r\n",
            "data: [DONE]\r\n\r\n",
        );
        let want: String = azure
            .split_inclusive("\r\n\r\n")
            .filter(|e| !e.contains("\"usage\":{"))
            .collect();
        for a in 0..=azure.len() {
            assert_eq!(
                String::from_utf8(through(azure, &[a])).unwrap(),
                want,
                "{a}"
            );
        }
    }

    #[test]
    fn a_stream_without_a_usage_chunk_passes_unchanged_and_whole_chunks_are_not_copied() {
        let plain = without_usage();
        let mut f = UsageChunkFilter::new();
        assert_eq!(f.filter(plain.as_bytes()), None);
        assert_eq!(f.held_bytes(), 0);
    }

    #[test]
    fn only_an_event_with_empty_choices_and_a_usage_object_is_usage_only() {
        assert!(is_usage_only(
            b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n"
        ));
        assert!(!is_usage_only(b"data: {\"choices\":[],\"usage\":null}\n\n"));
        assert!(!is_usage_only(
            b"data: {\"choices\":[{\"delta\":{}}],\"usage\":{\"a\":1}}\n\n"
        ));
        // Quoted in a content string, the keys are escaped.
        let quoted =
            br#"data: {"choices":[{"delta":{"content":"{\"choices\":[],\"usage\":{}}"}}]}"#;
        assert!(!is_usage_only(quoted));
    }

    #[test]
    fn a_long_unfinished_event_is_passed_in_pieces_not_held() {
        let long = format!(
            "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{}\"}}}}]}}\n\n",
            "x".repeat(3 * MAX_HELD_BYTES)
        );
        let usage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5}}\n\n";
        let stream = format!("{long}{usage}");
        let mut f = UsageChunkFilter::new();
        let mut got = Vec::new();
        for chunk in stream.as_bytes().chunks(2 * MAX_HELD_BYTES) {
            got.extend(f.filter(chunk).unwrap_or_else(|| chunk.to_vec()));
            assert!(f.held_bytes() <= MAX_HELD_BYTES);
        }
        assert_eq!(String::from_utf8(got).unwrap(), long);
    }
}
