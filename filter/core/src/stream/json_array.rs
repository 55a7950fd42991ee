//! Gemini's `streamGenerateContent` without `alt=sse`: one JSON array whose elements arrive
//! over time (`[{…}\n,\r\n{…}\n]`). The reader tracks nesting and strings byte by byte and
//! hands out each top-level element as soon as it is complete, holding at most one element
//! (bounded; an oversized element is skipped and counted).

/// Counters a [`JsonArrayReader`] keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonArrayStats {
    /// Elements handed out.
    pub elements: u64,
    /// Elements skipped for being larger than the bound.
    pub oversized_elements: u64,
}

/// The incremental reader. `on_element(json)` receives each complete element.
#[derive(Debug, Clone)]
pub struct JsonArrayReader {
    element: Vec<u8>,
    depth: u32,
    in_string: bool,
    escaped: bool,
    oversized: bool,
    max_element_bytes: usize,
    stats: JsonArrayStats,
}

impl JsonArrayReader {
    /// A reader holding at most `max_element_bytes` of one pending element.
    pub fn new(max_element_bytes: usize) -> JsonArrayReader {
        JsonArrayReader {
            element: Vec::new(),
            depth: 0,
            in_string: false,
            escaped: false,
            oversized: false,
            max_element_bytes,
            stats: JsonArrayStats::default(),
        }
    }

    /// The bytes held in buffers (a partial element).
    pub fn held_bytes(&self) -> usize {
        self.element.capacity()
    }

    /// The counters so far.
    pub fn stats(&self) -> JsonArrayStats {
        self.stats
    }

    /// Reads one chunk, calling `on_element` for every element it completes.
    pub fn feed(&mut self, chunk: &[u8], on_element: &mut impl FnMut(&[u8])) {
        // Bytes of the current element start here within `chunk` (copied in one go).
        let mut start = 0;
        for (i, &b) in chunk.iter().enumerate() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = self.depth >= 1,
                b'{' | b'[' => {
                    self.depth = self.depth.saturating_add(1);
                    if self.depth == 2 {
                        start = i;
                        self.element.clear();
                        self.oversized = false;
                    }
                }
                b'}' | b']' => {
                    if self.depth == 2 {
                        self.take(chunk.get(start..=i).unwrap_or_default());
                        if !self.oversized {
                            self.stats.elements += 1;
                            on_element(&self.element);
                        }
                        self.element.clear();
                    }
                    self.depth = self.depth.saturating_sub(1);
                }
                _ => {}
            }
        }
        if self.depth >= 2 {
            self.take(chunk.get(start..).unwrap_or_default());
        }
    }

    fn take(&mut self, bytes: &[u8]) {
        if self.oversized {
            return;
        }
        if self.element.len() + bytes.len() > self.max_element_bytes {
            self.oversized = true;
            self.stats.oversized_elements += 1;
            self.element = Vec::new();
        } else {
            self.element.extend_from_slice(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elements(chunks: &[&[u8]], max: usize) -> (Vec<String>, JsonArrayStats) {
        let mut reader = JsonArrayReader::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            reader.feed(chunk, &mut |e: &[u8]| {
                out.push(String::from_utf8_lossy(e).into_owned());
            });
        }
        (out, reader.stats())
    }

    #[test]
    fn elements_are_split_whatever_the_chunking() {
        let stream = b"[{\"a\": \"x]}\\\"\"}\n,\r\n{\"b\": [1, {\"c\": 2}]}\n]";
        let (whole, _) = elements(&[stream], 1024);
        assert_eq!(whole, ["{\"a\": \"x]}\\\"\"}", "{\"b\": [1, {\"c\": 2}]}"]);
        for cut in 0..=stream.len() {
            let (split, _) = elements(&[&stream[..cut], &stream[cut..]], 1024);
            assert_eq!(split, whole, "cut at {cut}");
        }
    }

    #[test]
    fn an_oversized_element_is_skipped_and_counted() {
        let (out, stats) = elements(&[b"[{\"a\":\"", &[b'x'; 100], b"\"},{\"b\":1}]"], 50);
        assert_eq!(out, ["{\"b\":1}"]);
        assert_eq!(stats.oversized_elements, 1);
    }
}
