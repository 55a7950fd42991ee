//! The end of an exchange that touches an OpenAI background response
//! (`request/background.rs` says how such a call is charged once): its creation, answered
//! before any usage, and a retrieval or cancel of a stored response, which may bring it.

use chrono::{DateTime, Utc};
use tollgate_model::Usage;

use super::{Charge, End, Exchange};
use crate::host::{Host, LogLevel};
use crate::metrics::{Metrics, Outcome};
use crate::plugin::Filter;
use crate::providers::Api;
use crate::request::background::TagScanner;
use crate::stream::ResponseOutcome;

/// What a retrieval or cancel looks for as the answer passes: the creating call's tag and
/// the response's model.
#[derive(Debug)]
pub(super) struct StoredResponse {
    tag: TagScanner,
    model: TagScanner,
}

impl StoredResponse {
    pub(super) fn new() -> StoredResponse {
        StoredResponse {
            tag: TagScanner::tag(),
            model: TagScanner::model(),
        }
    }

    pub(super) fn feed(&mut self, chunk: &[u8]) {
        self.tag.feed(chunk);
        self.model.feed(chunk);
    }

    pub(super) fn held_bytes(&self) -> usize {
        self.tag.held_bytes() + self.model.held_bytes()
    }
}

impl Exchange {
    /// Whether this creation of a background response, answered with `usage`, is left for a
    /// retrieval to charge: it was tagged (or no control plane settles anything) and its
    /// successful answer reports no usage (queued or in progress). Its reservation stays held
    /// until the retrieval settles it or it expires. A background call streamed at once
    /// (`"stream": true`) reports its usage here and is charged as any call.
    pub(super) fn waits_for_retrieval(&self, filter: &Filter, usage: &Usage) -> bool {
        self.request.as_ref().is_some_and(|r| r.background)
            && (self.background_tagged || filter.control_plane.is_none())
            && usage.estimated
            && self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// A retrieval or cancel ended. With final usage and the creating call's tag, the call
    /// is charged under that tag's id (the creating call's reservation); a cancel without
    /// usage releases that reservation (settled at zero). Anything else charges nothing: a
    /// response still running, a failed retrieval, or one this gateway did not create in
    /// background (a synchronous one was charged when it was created).
    pub(super) fn finish_retrieval(
        &mut self,
        filter: &Filter,
        metrics: &mut Metrics,
        host: &dyn Host,
        ended_at: DateTime<Utc>,
        stored: &StoredResponse,
        outcome: ResponseOutcome,
    ) -> Option<Charge> {
        let provider = self.route.as_ref()?.provider.as_str();
        let cancel = self.route.as_ref()?.api == Api::ResponseCancel;
        let ok = self.status.is_some_and(|s| (200..300).contains(&s));
        let (Some(tag), true) = (stored.tag.found(), ok) else {
            metrics.request(host, provider, Outcome::Retrieved);
            return None;
        };
        let model = stored.model.found().map(str::to_owned).or(outcome.model);
        let usage = outcome.usage;
        let (cost, result) = if usage.estimated {
            if !cancel {
                metrics.request(host, provider, Outcome::Retrieved);
                return None;
            }
            // Cancelled before any usage: nothing to bill; the reservation is released.
            (None, Outcome::Retrieved)
        } else {
            metrics.tokens(host, provider, &usage);
            match model
                .as_deref()
                .map(|m| filter.prices.cost(m, &usage, ended_at))
            {
                Some(Ok(cost)) => {
                    metrics.cost(host, provider, cost.total.nanos());
                    (Some(cost), Outcome::Charged)
                }
                Some(Err(e)) => {
                    host.log(
                        LogLevel::Warn,
                        &format!("tollgate: {e}: usage counted, not priced"),
                    );
                    (None, Outcome::UnknownModel)
                }
                None => (None, Outcome::NoModel),
            }
        };
        metrics.request(host, provider, result);
        let tag = tag.to_owned();
        let settles = filter.control_plane.is_some();
        let usage = if usage.estimated {
            Usage::default()
        } else {
            usage
        };
        let mut charge = self.charge(provider, model, usage, cost, result, End::default());
        charge.request_id = tag;
        charge.reserved = settles.then_some(true);
        Some(charge)
    }
}

#[cfg(test)]
mod tests;
