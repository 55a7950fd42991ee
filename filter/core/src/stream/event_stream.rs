//! AWS event-stream framing (`application/vnd.amazon.eventstream`), as Bedrock's
//! ConverseStream and InvokeModelWithResponseStream send it.
//!
//! Each message: total length (u32 BE), headers length (u32 BE), CRC32 of those 8 bytes,
//! headers, payload, CRC32 of everything before it. Headers are `name_len: u8, name,
//! type: u8, value`; the reader needs only the string headers `:message-type` and
//! `:event-type`. Both CRCs are checked (`crc32fast`): a message with a bad message CRC is
//! dropped and counted; a bad prelude CRC means the lengths cannot be trusted, so the rest of
//! the stream is ignored (and counted).

/// The smallest valid message: prelude (12) + message CRC (4).
const MIN_MESSAGE_BYTES: usize = 16;

/// Counters an [`EventStreamReader`] keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventStreamStats {
    /// Messages handed out.
    pub messages: u64,
    /// Messages dropped for a bad message CRC or malformed headers.
    pub corrupt_messages: u64,
    /// Messages skipped for being larger than the bound.
    pub oversized_messages: u64,
    /// The stream's framing broke (bad prelude CRC); later bytes were ignored.
    pub broken: bool,
}

/// One decoded message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventMessage<'a> {
    /// `:message-type` (`event` or `exception`).
    pub message_type: &'a [u8],
    /// `:event-type` (`messageStart`, `contentBlockDelta`, `metadata`, `chunk`, …).
    pub event_type: &'a [u8],
    /// The payload (JSON for Bedrock).
    pub payload: &'a [u8],
}

/// The incremental reader.
#[derive(Debug, Clone)]
pub struct EventStreamReader {
    buf: Vec<u8>,
    /// Bytes still to skip of an oversized message.
    skip: usize,
    max_message_bytes: usize,
    stats: EventStreamStats,
}

impl EventStreamReader {
    /// A reader holding at most `max_message_bytes` of one pending message.
    pub fn new(max_message_bytes: usize) -> EventStreamReader {
        EventStreamReader {
            buf: Vec::new(),
            skip: 0,
            max_message_bytes: max_message_bytes.max(MIN_MESSAGE_BYTES),
            stats: EventStreamStats::default(),
        }
    }

    /// The bytes held in buffers (a partial message).
    pub fn held_bytes(&self) -> usize {
        self.buf.capacity()
    }

    /// The counters so far.
    pub fn stats(&self) -> EventStreamStats {
        self.stats
    }

    /// Reads one chunk, calling `on_message` for every valid message it completes.
    pub fn feed(&mut self, chunk: &[u8], on_message: &mut impl FnMut(EventMessage<'_>)) {
        if self.stats.broken {
            return;
        }
        let mut rest = chunk;
        if self.skip > 0 {
            let n = self.skip.min(rest.len());
            self.skip -= n;
            rest = rest.get(n..).unwrap_or_default();
        }
        // Whole messages straight from the chunk when nothing is pending (no copy).
        if self.buf.is_empty() {
            rest = self.drain(rest, on_message);
        }
        if rest.is_empty() || self.stats.broken {
            return;
        }
        self.buf.extend_from_slice(rest);
        let buf = std::mem::take(&mut self.buf);
        let left = self.drain(&buf, on_message);
        self.buf = left.to_vec();
    }

    /// Reads whole messages from the front of `bytes`; returns the incomplete tail.
    fn drain<'a>(
        &mut self,
        mut bytes: &'a [u8],
        on_message: &mut impl FnMut(EventMessage<'_>),
    ) -> &'a [u8] {
        while bytes.len() >= 12 && self.skip == 0 && !self.stats.broken {
            let total = be32(bytes, 0) as usize;
            let prelude_crc = be32(bytes, 8);
            if crc32fast::hash(bytes.get(..8).unwrap_or_default()) != prelude_crc
                || total < MIN_MESSAGE_BYTES
            {
                self.stats.broken = true;
                return &[];
            }
            if total > self.max_message_bytes {
                self.stats.oversized_messages += 1;
                let n = total.min(bytes.len());
                self.skip = total - n;
                bytes = bytes.get(n..).unwrap_or_default();
                continue;
            }
            let Some(message) = bytes.get(..total) else {
                break;
            };
            match decode(message) {
                Some(m) => {
                    self.stats.messages += 1;
                    on_message(m);
                }
                None => self.stats.corrupt_messages += 1,
            }
            bytes = bytes.get(total..).unwrap_or_default();
        }
        if self.skip > 0 {
            return &[];
        }
        bytes
    }
}

fn be32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    if let Some(src) = bytes.get(at..at + 4) {
        word.copy_from_slice(src);
    }
    u32::from_be_bytes(word)
}

/// Decodes one complete message whose prelude CRC was already checked.
fn decode(message: &[u8]) -> Option<EventMessage<'_>> {
    let total = message.len();
    let crc_at = total.checked_sub(4)?;
    if crc32fast::hash(message.get(..crc_at)?) != be32(message, crc_at) {
        return None;
    }
    let headers_len = be32(message, 4) as usize;
    let headers_end = 12usize.checked_add(headers_len)?;
    let mut headers = message.get(12..headers_end)?;
    let payload = message.get(headers_end..crc_at)?;
    let mut out = EventMessage {
        message_type: b"",
        event_type: b"",
        payload,
    };
    while let Some((&name_len, rest)) = headers.split_first() {
        let (name, rest) = rest.split_at_checked(usize::from(name_len))?;
        let (&kind, rest) = rest.split_first()?;
        let value_len = match kind {
            0 | 1 => 0, // bool true / false
            2 => 1,     // byte
            3 => 2,     // short
            4 => 4,     // int
            5 | 8 => 8, // long, timestamp
            9 => 16,    // uuid
            6 | 7 => {
                // bytes / string: u16 BE length prefix
                let (len, _) = rest.split_at_checked(2)?;
                2 + usize::from(u16::from_be_bytes([*len.first()?, *len.get(1)?]))
            }
            _ => return None,
        };
        let (value, rest) = rest.split_at_checked(value_len)?;
        if kind == 7 {
            let text = value.get(2..)?;
            match name {
                b":message-type" => out.message_type = text,
                b":event-type" => out.event_type = text,
                _ => {}
            }
        }
        headers = rest;
    }
    Some(out)
}

/// Encodes one message with string headers (for fixtures and tests; the filter only reads).
pub fn encode_message(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut head = Vec::new();
    for (name, value) in headers {
        head.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        head.extend_from_slice(name.as_bytes());
        head.push(7);
        head.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_be_bytes());
        head.extend_from_slice(value.as_bytes());
    }
    let total = 12 + head.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&u32::try_from(total).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&u32::try_from(head.len()).unwrap_or(u32::MAX).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Encodes a Bedrock event (`:message-type: event`, `:content-type: application/json`).
pub fn encode_event(event_type: &str, payload: &[u8]) -> Vec<u8> {
    encode_message(
        &[
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(chunks: &[&[u8]], max: usize) -> (Vec<(String, String)>, EventStreamStats) {
        let mut reader = EventStreamReader::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            reader.feed(chunk, &mut |m: EventMessage<'_>| {
                out.push((
                    String::from_utf8_lossy(m.event_type).into_owned(),
                    String::from_utf8_lossy(m.payload).into_owned(),
                ));
            });
        }
        (out, reader.stats())
    }

    #[test]
    fn messages_round_trip_whatever_the_chunking() {
        let mut stream = encode_event("messageStart", br#"{"role":"assistant"}"#);
        stream.extend(encode_event("metadata", br#"{"usage":{"inputTokens":3}}"#));
        let (whole, stats) = read(&[&stream], 1024);
        assert_eq!(whole.len(), 2);
        assert_eq!(whole[1].0, "metadata");
        assert_eq!(stats.messages, 2);
        for cut in 0..=stream.len() {
            assert_eq!(read(&[&stream[..cut], &stream[cut..]], 1024).0, whole);
        }
    }

    #[test]
    fn a_bad_message_crc_drops_only_that_message() {
        let mut first = encode_event("a", b"{}");
        let last = first.len() - 1;
        first[last] ^= 1;
        first.extend(encode_event("b", b"{}"));
        let (out, stats) = read(&[&first], 1024);
        assert_eq!(out, [("b".into(), "{}".into())]);
        assert_eq!(stats.corrupt_messages, 1);
    }

    #[test]
    fn a_bad_prelude_stops_the_stream_without_panicking() {
        let mut bytes = encode_event("a", b"{}");
        bytes[0] ^= 0x80;
        bytes.extend(encode_event("b", b"{}"));
        let (out, stats) = read(&[&bytes], 1024);
        assert!(out.is_empty());
        assert!(stats.broken);
    }

    #[test]
    fn an_oversized_message_is_skipped_and_the_next_one_read() {
        let mut bytes = encode_event("big", &[b'x'; 500]);
        bytes.extend(encode_event("small", b"{}"));
        let (out, stats) = read(&[&bytes[..100], &bytes[100..300], &bytes[300..]], 200);
        assert_eq!(out, [("small".into(), "{}".into())]);
        assert_eq!(stats.oversized_messages, 1);
    }
}
