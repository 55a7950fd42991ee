//! The answer's side of an exchange: its headers, an answer held until the call is admitted,
//! and what the adapter is told to do once the control plane decided.
//!
//! Every response chunk enters through [`Exchange::on_response_chunk`]
//! (`flow/client_stream.rs`), held or not; an answer held until admission is read when it
//! is released, as it goes on: whole, unchanged.

use super::stage::{EarlyAnswer, Stage};
use super::{Exchange, ResponseReader};
use crate::plugin::Filter;
use crate::reply::LocalReply;

/// What to do with the response headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseAction {
    /// Hold the answer (its headers, and its body as Envoy buffers it): it came before the
    /// call was admitted. [`Release::answer`] lets it go, or the refusal replaces it.
    Hold,
    /// Let the headers go, changed as this says.
    Continue(ResponseHeaders),
}

/// The changes to the response headers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ResponseHeaders {
    /// Headers to add (`x-tollgate-*`; see `flow/enforce.rs`).
    pub add: Vec<(String, String)>,
    /// Remove `content-length`: the client gets fewer bytes than the provider sent (a
    /// usage-only chunk taken out; Envoy then sends the answer chunked), or the client would
    /// wait for the missing bytes.
    pub drop_content_length: bool,
}

/// What to do with a response chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkAction {
    /// Pass it on unchanged.
    Pass,
    /// Pass this instead: the chunk without what the client did not ask for, or followed by
    /// the provider-shaped error that ends a cut-off stream.
    Replace(Vec<u8>),
    /// Reset the stream: it was cut off and has already told the client why.
    Reset,
    /// Keep holding the answer (Envoy buffers it): the call is not admitted yet.
    Hold,
}

/// What to do once the control plane answered (or could not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// No reservation waited for this answer: do nothing.
    Nothing,
    /// Let the held request go, as [`Release`] says.
    Go(Release),
    /// Answer locally instead (this also replaces an answer held meanwhile).
    Reply(LocalReply),
}

/// How an admitted request goes on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Release {
    /// A new `:path` (a downgrade of a call held at its headers).
    pub path: Option<String>,
    /// A new request body (a downgrade of a call held at the end of its body).
    pub body: Option<NewBody>,
    /// The upstream answered while the call was held: let its answer go (resume the
    /// response) with these changes to its headers. Its body goes on as Envoy buffered it.
    pub answer: Option<ResponseHeaders>,
}

/// A request body to put in place of the one held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBody {
    /// How many bytes of the held body it replaces (all of them).
    pub replaces: usize,
    /// The new body.
    pub bytes: Vec<u8>,
}

/// A change to the held request, made by a downgrade.
#[derive(Debug, Default)]
pub(super) struct Edit {
    pub(super) path: Option<String>,
    pub(super) body: Option<NewBody>,
}

impl Exchange {
    /// Response headers arrived with `status`: hold them until the call is admitted, or let
    /// them go with the headers the exchange adds.
    pub fn on_response_headers(&mut self, filter: &Filter, status: u16) -> ResponseAction {
        if self.stage.answer_waits() {
            if let Some(held) = self.stage.early_answer() {
                *held = Some(EarlyAnswer {
                    status,
                    body: Vec::new(),
                });
            }
            return ResponseAction::Hold;
        }
        if !matches!(self.stage, Stage::Answering { .. }) {
            return ResponseAction::Continue(ResponseHeaders::default());
        }
        let Some(route) = self.route.as_ref() else {
            return ResponseAction::Continue(ResponseHeaders::default());
        };
        let streaming = self.request.as_ref().is_some_and(|r| r.streaming) || route.stream_endpoint;
        self.status = Some(status);
        if !(200..300).contains(&status) {
            self.usage_chunk = None; // an error body is no stream
        }
        self.reader = Some(ResponseReader::new(
            route.api.dialect(),
            route.framing(streaming),
            filter.stream_limits,
        ));
        ResponseAction::Continue(ResponseHeaders {
            add: self.response_headers(filter),
            drop_content_length: self.shortens_response(),
        })
    }

    /// Keeps a chunk of an answer held until admission (`buffered`: everything Envoy
    /// buffered so far) and returns `None`; returns the chunk when no answer is held.
    pub(super) fn unless_held(&mut self, buffered: Vec<u8>) -> Option<Vec<u8>> {
        match self.stage.early_answer() {
            Some(Some(held)) => {
                if !buffered.is_empty() {
                    held.body = buffered;
                }
                None
            }
            _ => Some(buffered),
        }
    }

    /// Admission let the call through: its held answer goes on, read like any other (its
    /// headers, then the body buffered so far as one chunk, which goes on whole: no
    /// cut-off applies to it). Before the request's body was read (admitted at its
    /// headers), the answer goes on unread.
    pub(super) fn release_answer(&mut self, filter: &Filter, held: EarlyAnswer) -> ResponseHeaders {
        match self.on_response_headers(filter, held.status) {
            ResponseAction::Continue(headers) => {
                if self.reader.is_some() {
                    self.feed(held.body);
                }
                headers
            }
            ResponseAction::Hold => ResponseHeaders::default(),
        }
    }

    /// Feeds a chunk to what reads the answer (the adapter's copy, which the usage reader
    /// may keep).
    pub(super) fn feed(&mut self, chunk: Vec<u8>) {
        if let Some(stored) = self.stored.as_mut() {
            stored.feed(&chunk);
        }
        if let Some(reader) = self.reader.as_mut() {
            reader.feed_owned(chunk);
        }
    }

    /// Feeds a chunk the caller still needs.
    pub(super) fn feed_slice(&mut self, chunk: &[u8]) {
        if let Some(stored) = self.stored.as_mut() {
            stored.feed(chunk);
        }
        if let Some(reader) = self.reader.as_mut() {
            reader.feed(chunk);
        }
    }
}
