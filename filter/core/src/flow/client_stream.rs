//! What the client gets of a response: each chunk as it came, except that a stream whose
//! usage the filter asked for (`stream_options.include_usage`, which the client did not)
//! loses its usage-only chunk ([`crate::stream::usage_chunk`]). The usage reader and the
//! mid-stream cut-off see the chunk as it came.

use super::Exchange;
use super::answer::ChunkAction;
use crate::host::Host;
use crate::metrics::Metrics;
use crate::plugin::Filter;

impl Exchange {
    /// Whether the client may get fewer bytes than the provider sends (a usage-only chunk
    /// taken out), known at the response headers: the answer's `content-length` goes
    /// ([`super::ResponseHeaders::drop_content_length`]).
    pub(super) fn shortens_response(&self) -> bool {
        self.usage_chunk.is_some()
    }

    /// A response chunk arrived (the adapter's copy out of Envoy; empty when Envoy passed
    /// none): read it for the charge and say what the client gets instead, if anything. The
    /// one entry for every response chunk: while the answer is held until admission
    /// ([`ChunkAction::Hold`]), `chunk` is everything Envoy buffered so far, kept until the
    /// answer is released.
    pub fn on_response_chunk(
        &mut self,
        filter: &Filter,
        metrics: &mut Metrics,
        host: &dyn Host,
        chunk: Vec<u8>,
    ) -> ChunkAction {
        let Some(chunk) = self.unless_held(chunk) else {
            return ChunkAction::Hold;
        };
        if chunk.is_empty() {
            return ChunkAction::Pass;
        }
        let shown = self.usage_chunk.as_mut().and_then(|f| f.filter(&chunk));
        let received = chunk.len();
        let action = self.read_response_chunk(filter, metrics, host, chunk);
        match (action, shown) {
            (action, None) | (action @ (ChunkAction::Reset | ChunkAction::Hold), _) => action,
            (ChunkAction::Pass, Some(shown)) => ChunkAction::Replace(shown),
            // A cut-off appended its error event to the chunk: append it to what is shown.
            (ChunkAction::Replace(with_error), Some(mut shown)) => {
                shown.extend_from_slice(with_error.get(received..).unwrap_or_default());
                ChunkAction::Replace(shown)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::flow::{BodyAction, HeadersAction, RequestHead};
    use crate::metrics::Outcome;
    use crate::testing::FakeHost;

    const STREAM: &str = concat!(
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,\"total_tokens\":15}}\n\n",
        "data: [DONE]\n\n",
    );

    /// What the client of a streamed chat call with `body` sees of [`STREAM`] cut in
    /// pieces of `piece` bytes, and the call's charged output tokens.
    fn client_sees(body: &str, piece: usize) -> (String, u64) {
        let f = Filter::from_json(b"{}").unwrap();
        let h = FakeHost::at(Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap());
        let mut m = Metrics::default();
        let mut x = Exchange::new();
        let head = RequestHead {
            method: "POST",
            path: "/v1/chat/completions",
            authority: Some("api.openai.com"),
            ends_stream: false,
        };
        let mut none = |_: crate::scopes::Lookup<'_>| None;
        assert!(matches!(
            x.on_request_headers(&f, &mut m, &h, head, &mut none),
            HeadersAction::ReadBody { .. }
        ));
        let mut read = || Some(body.as_bytes().to_vec());
        let action = x.on_request_body(&f, &mut m, &h, body.len(), true, &mut read);
        assert!(matches!(
            action,
            BodyAction::Replace(_) | BodyAction::Continue
        ));
        x.on_response_headers(&f, 200);
        let mut shown = Vec::new();
        for chunk in STREAM.as_bytes().chunks(piece) {
            match x.on_response_chunk(&f, &mut m, &h, chunk.to_vec()) {
                ChunkAction::Pass => shown.extend_from_slice(chunk),
                ChunkAction::Replace(instead) => shown.extend_from_slice(&instead),
                ChunkAction::Reset | ChunkAction::Hold => panic!("{:?}", chunk),
            }
        }
        let charge = x.finish(&f, &mut m, &h, h.now()).unwrap();
        assert_eq!(charge.outcome, Outcome::Charged);
        (
            String::from_utf8(shown).unwrap(),
            charge.usage.output_tokens,
        )
    }

    #[test]
    fn the_usage_chunk_the_filter_asked_for_is_charged_but_not_shown() {
        let body = r#"{"model":"gpt-4o-mini","stream":true,"messages":[]}"#;
        let without: String = STREAM
            .split_inclusive("\n\n")
            .filter(|e| !e.contains("\"choices\":[]"))
            .collect();
        for piece in [1, 7, 64, STREAM.len()] {
            assert_eq!(client_sees(body, piece), (without.clone(), 3), "{piece}");
        }
    }

    #[test]
    fn a_client_that_asked_for_usage_gets_the_stream_as_it_came() {
        let body = r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#;
        for piece in [1, 64, STREAM.len()] {
            assert_eq!(client_sees(body, piece), (STREAM.to_owned(), 3), "{piece}");
        }
    }
}
