//! Enforcement inside one exchange: the reservation, the control plane's answer, the
//! response headers that report it, and the mid-stream cut-off.
//!
//! When admission happens is decided by where the request names its model:
//! - in the body (OpenAI, Anthropic, Cohere, OpenAI-compatible): at the end of the body, once
//!   the model, the output cap and the prompt size are known. Envoy has already sent the
//!   request headers upstream by then (proxy-wasm cannot hold headers while reading the
//!   body: the host turns a header pause into "stop everything"), but not one byte of the
//!   body, so a refused call never reaches the provider as a call. A downgrade rewrites the
//!   body's `model`.
//! - in the path (Gemini, Bedrock, Vertex) with a `content-length`: at the headers, with the
//!   path's model, one token per body byte (the body is not read yet: a safe upper bound)
//!   and the model's default output cap, so that a downgrade can still rewrite the path.
//!   Without a length, at the end of the body, where a downgrade of a path model cannot be
//!   carried out and is refused with a message saying which model to call.
//!
//! Every reservation is settled exactly once: by the charge at the end of the stream, or at
//! zero when the call was refused or never answered after its reservation was made.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use tollgate_model::wire::v1::ReserveRequest;
use tollgate_model::{NanoUsd, PriceTable, Usage};

use super::answer::{ChunkAction, Edit, NewBody, Release, Resume};
use super::stage::{Admit, Cut, EarlyAnswer, Held, Stage};
use super::{BodyAction, Exchange, RequestHead};
use crate::admission::{Admission, AnswerProblem, decide};
use crate::estimate::REQUEST_OVERHEAD_TOKENS;
use crate::host::{Host, LogLevel};
use crate::lease::{self, LeaseKey, Taken};
use crate::metrics::{Metrics, Outcome};
use crate::plugin::Filter;
use crate::providers::{Api, Provider, Route};
use crate::reply::{LocalReply, stream_error_event};
use crate::request::default_cap;
use crate::request::rewrite::{provider_model_id, rewrite_body_model, rewrite_path_model};
use crate::scopes::Lookup;

/// What admission knows of one call (where it stands is the exchange's [`Stage`]).
#[derive(Debug, Default)]
pub(super) struct Admitted {
    request_id: String,
    /// The request path, kept while a header-time reservation may rewrite it.
    path: String,
    /// The request carries an AWS SigV4 signature, which covers its path and body: a
    /// downgrade cannot change either without breaking it.
    signed: bool,
    /// The worst case reserved: its tokens, and its cost as the filter priced it.
    worst: Usage,
    estimate: NanoUsd,
    remaining: Option<NanoUsd>,
    cutoff: Option<NanoUsd>,
    downgraded_from: Option<String>,
    /// The budget or switch that asked for the downgrade (the ledger's `downgraded_by`).
    downgraded_by: Option<String>,
    /// When the reservation was asked for, Unix ms (the ledger's start time).
    started_at_ms: Option<i64>,
    /// What the call took from a lease, when it was admitted from one.
    pub(super) lease: Option<Taken>,
    /// The call was reserved on its own though its key may be leased: the key.
    pub(super) lease_wanted: Option<LeaseKey>,
}

impl Admitted {
    pub(super) fn request_id(&self) -> &str {
        &self.request_id
    }

    /// What the ledger records of admission: (start time, model asked for before a
    /// downgrade, who downgraded).
    pub(super) fn ledger_facts(&self) -> (Option<i64>, Option<String>, Option<String>) {
        (
            self.started_at_ms,
            self.downgraded_from.clone(),
            self.downgraded_by.clone(),
        )
    }
}

impl Exchange {
    /// Whether an answer arriving now must be held back from the client: its admission is
    /// not decided yet (the request is still being read, or its reservation is in flight).
    /// An upstream may answer before it has the whole request (an error page, a proxy, a
    /// misbehaving server); passing that answer on would let a call through that its
    /// budgets may refuse. The exchange holds it ([`super::ResponseAction::Hold`],
    /// [`ChunkAction::Hold`]) and, once admission is decided, releases it
    /// ([`Release::answer`]) or replaces it with the refusal.
    #[cfg(test)]
    pub(crate) fn answer_waits_for_admission(&self) -> bool {
        self.stage.answer_waits()
    }

    /// The stream ended while its reservation was in flight (the client left, or the
    /// upstream answered and closed, before the control plane did): counted as an
    /// `abandoned` admission, so that every reserve posted is counted once in
    /// `tollgate_admission_total`.
    pub(super) fn abandon_admission(&mut self, metrics: &mut Metrics, host: &dyn Host) {
        if let Some(route) = self.route.as_ref() {
            metrics.admission(host, route.provider.as_str(), "abandoned");
        }
    }
}

/// Per-VM sequence for request ids.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A request id no client can choose: the client's `x-request-id` (kept for log
/// correlation, up to 64 printable bytes) and this VM's clock and sequence. A client that
/// replays an id must not ride on an earlier reservation.
fn new_request_id(client: Option<&str>, now: DateTime<Utc>) -> String {
    let seq = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let nanos = now.timestamp_nanos_opt().unwrap_or_default();
    let client: String = client
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_graphic)
        .take(64)
        .collect();
    format!("{client}~{nanos:x}.{seq:x}")
}

/// Whether the API names its model in the path in a way a downgrade can rewrite (Azure
/// deployment names are private names, not models: they cannot be swapped for a model id).
fn model_in_path(route: &Route) -> bool {
    route.path_model.is_some()
        && route.provider != Provider::AzureOpenai
        && matches!(
            route.api,
            Api::GenerateContent
                | Api::StreamGenerateContent
                | Api::Converse
                | Api::ConverseStream
                | Api::Messages
        )
}

/// What `usage` costs at the dearest model of `prices` (the worst case of a call whose model
/// could not be read). One pricing per model: only for such calls, which are rare.
fn dearest_cost(prices: &PriceTable, usage: &Usage, now: DateTime<Utc>) -> NanoUsd {
    prices
        .models()
        .iter()
        .filter_map(|m| prices.cost(m.id(), usage, now).ok())
        .map(|c| c.total)
        .max()
        .unwrap_or(NanoUsd::ZERO)
}

fn usd(n: NanoUsd) -> String {
    n.to_usd().normalize().to_string()
}

impl Exchange {
    /// Prices a worst case and builds the `reserve` body; the exchange now waits. `None`
    /// without a control plane, or when the call was taken from its key's lease instead
    /// ([`Exchange::leased`]).
    fn reserve(
        &mut self,
        filter: &Filter,
        host: &dyn Host,
        model: Option<String>,
        input_tokens: u64,
        max_output_tokens: u64,
        may_lease: bool,
    ) -> Option<Vec<u8>> {
        let cp = filter.control_plane.as_ref()?;
        let route = self.route.as_ref()?;
        let now = host.now();
        let worst = Usage::worst_case(input_tokens, max_output_tokens);
        // An unknown model reserves nothing but still counts as a request; its usage is
        // counted (`unknown_model`) when it ends. A call whose model could not be read at all
        // (a body that is not JSON, names no model or is over the size cap) reserves its
        // worst case at the dearest prices of the table: it is checked against its budgets
        // like any other, and a spent budget refuses it.
        self.admission.worst = worst;
        let priced = model
            .as_deref()
            .and_then(|m| filter.prices.cost(m, &worst, now).ok());
        self.admission.estimate = match (&model, &priced) {
            (_, Some(cost)) => cost.total,
            (Some(_), None) => NanoUsd::ZERO,
            (None, None) => dearest_cost(&filter.prices, &worst, now),
        };
        let model = model.map(|m| filter.price_table_id(&m)).unwrap_or_default();
        let provider = route.provider.as_str();
        // A priced call is admitted from its key's lease when one holds enough; a background
        // one is not (its retrieval settles it, without the lease).
        if may_lease && priced.is_some() && !self.request.as_ref().is_some_and(|r| r.background) {
            let key = LeaseKey {
                scopes: self.scopes.clone(),
                model: model.clone(),
                provider: provider.to_owned(),
            };
            let (now_ms, tokens) = (
                now.timestamp_millis(),
                input_tokens.saturating_add(max_output_tokens),
            );
            let taken = lease::take(host, &key.text(), now_ms, self.admission.estimate, tokens);
            if let Some(taken) = taken {
                self.admission.started_at_ms = Some(now_ms);
                self.admission.lease = Some(taken);
                return None;
            }
            self.admission.lease_wanted = Some(key);
        }
        let request = ReserveRequest {
            request_id: self.admission.request_id.clone(),
            scopes: self.scopes.clone(),
            model,
            provider: provider.to_owned(),
            estimated_cost: self.admission.estimate,
            estimated_input_tokens: input_tokens,
            max_output_tokens,
            at_unix_ms: now.timestamp_millis(),
        };
        self.admission.started_at_ms = Some(request.at_unix_ms);
        Some(cp.reserve_body(&request))
    }

    /// At the request headers: names the call, and reserves now when the model is in the
    /// path and the body's length is known.
    pub(super) fn reserve_at_headers(
        &mut self,
        filter: &Filter,
        host: &dyn Host,
        head: RequestHead<'_>,
        lookup: &mut dyn FnMut(Lookup<'_>) -> Option<String>,
    ) -> Option<Vec<u8>> {
        filter.control_plane.as_ref()?;
        self.admission.signed = lookup(Lookup::Header("authorization"))
            .is_some_and(|a| a.trim_start().starts_with("AWS4-HMAC-SHA256"));
        let client_id = lookup(Lookup::Header("x-request-id"));
        self.admission.request_id = new_request_id(client_id.as_deref(), host.now());
        let route = self.route.as_ref()?;
        if !model_in_path(route) {
            return None;
        }
        let length: u64 = lookup(Lookup::Header("content-length"))?
            .trim()
            .parse()
            .ok()?;
        let model = route.path_model.clone()?;
        let max_output = default_cap(route, Some(&model), &filter.prices);
        self.admission.path = head.path.to_owned();
        self.reserve(
            filter,
            host,
            Some(model),
            length.saturating_add(REQUEST_OVERHEAD_TOKENS),
            max_output,
            true,
        )
    }

    /// The request body was read (or skipped, too large), `held_len` bytes of it buffered:
    /// a call a control plane decides is reserved now (the exchange then waits, the request
    /// held), unless that was done at the headers; any other goes on to its answer. An
    /// answer held meanwhile stays held while the reservation is in flight.
    pub(super) fn body_read(
        &mut self,
        filter: &Filter,
        metrics: &mut Metrics,
        host: &dyn Host,
        admit: Admit,
        held_len: usize,
    ) -> Option<Vec<u8>> {
        let answer = self.stage.early_answer().and_then(Option::take);
        let call = if admit == Admit::Undecided {
            // An answer held meanwhile is released by the control plane's answer: such a
            // call is reserved, not taken from a lease.
            self.reserve_at_body(filter, host, answer.is_none())
        } else {
            None
        };
        self.stage = match call {
            Some(_) => Stage::Waiting {
                held: Held::Body { len: held_len },
                answer,
            },
            None if admit == Admit::Undecided && self.leased() => {
                self.count_leased(metrics, host);
                Stage::answering(Admit::Leased)
            }
            None => Stage::answering(admit),
        };
        call
    }

    /// Whether the call was taken from a lease.
    pub(super) fn leased(&self) -> bool {
        self.admission.lease.is_some()
    }

    /// Counts a call admitted from a lease (`tollgate_admission_total{outcome="leased"}`).
    pub(super) fn count_leased(&self, metrics: &mut Metrics, host: &dyn Host) {
        if let Some(route) = self.route.as_ref() {
            metrics.admission(host, route.provider.as_str(), "leased");
        }
    }

    /// The key of a call reserved on its own that a lease could have admitted: the VM asks
    /// for one (`lease.rs`).
    pub fn lease_wanted(&self) -> Option<&LeaseKey> {
        self.admission.lease_wanted.as_ref()
    }

    /// At the end of the request body: the `reserve` body.
    fn reserve_at_body(
        &mut self,
        filter: &Filter,
        host: &dyn Host,
        may_lease: bool,
    ) -> Option<Vec<u8>> {
        filter.control_plane.as_ref()?;
        let (model, input, output) = match (&self.request, self.unread_body_bytes) {
            (Some(info), _) => (
                info.model.clone(),
                self.input_estimate().unwrap_or(0),
                info.max_output_tokens,
            ),
            // Too large to read: one token per byte, and the model's default cap.
            (None, Some(bytes)) => {
                let route = self.route.as_ref()?;
                let model = route.path_model.clone();
                let cap = default_cap(route, model.as_deref(), &filter.prices);
                (model, bytes, cap)
            }
            (None, None) => return None,
        };
        self.reserve(filter, host, model, input, output, may_lease)
    }

    /// The control plane answered the reservation: `answer` is its status and body, `None`
    /// when the callout could not even be sent. `read_body(len)` fetches the `len` bytes of
    /// request body held (for a downgrade's rewrite). Says what happens to the held request
    /// and to an answer the upstream sent meanwhile; [`Resume::Nothing`] when no reservation
    /// waited for this answer (the stream ended meanwhile, counted `abandoned`).
    pub fn on_reserve_answer(
        &mut self,
        filter: &Filter,
        metrics: &mut Metrics,
        host: &dyn Host,
        answer: Option<(u16, &[u8])>,
        read_body: &mut dyn FnMut(usize) -> Option<Vec<u8>>,
    ) -> Resume {
        let (Some(cp), Some(route)) = (filter.control_plane.as_ref(), self.route.as_ref()) else {
            return Resume::Nothing;
        };
        let Stage::Waiting {
            held,
            answer: early,
        } = std::mem::take(&mut self.stage)
        else {
            return Resume::Nothing;
        };
        let provider = route.provider.as_str();
        let model = self.priced_model();
        let (admission, problem) = decide(cp, route, answer, model.as_deref());
        if let Some(problem) = &problem {
            metrics.control_plane_problem(host, problem.as_str());
            host.log(
                LogLevel::Warn,
                &format!(
                    "tollgate: reserve for {} got no usable answer ({}); fail mode {:?}",
                    self.admission.request_id,
                    problem.as_str(),
                    cp.fail_mode
                ),
            );
        }
        let (admit, edit) = match admission {
            Admission::Allow {
                remaining,
                stream_cutoff,
            } => {
                metrics.admission(host, provider, "allow");
                self.admission.remaining = remaining;
                self.admission.cutoff = stream_cutoff;
                (Admit::Reserved, Edit::default())
            }
            Admission::FailedOpen => {
                metrics.admission(host, provider, "failed_open");
                (Admit::FailedOpen, Edit::default())
            }
            Admission::Deny(reply) => {
                metrics.request(host, provider, Outcome::Denied);
                self.stage = match problem {
                    None | Some(AnswerProblem::NotSent) => Stage::Done,
                    // No usable answer after the reserve was sent: the control plane may
                    // still have reserved (its store may carry the reserve out after the
                    // timeout), so the call is settled at zero, which releases that
                    // reservation or, arriving first, makes it a no-op replay.
                    Some(_) => Stage::Released,
                };
                let word = if problem.is_some() {
                    "failed_closed"
                } else {
                    "deny"
                };
                metrics.admission(host, provider, word);
                return Resume::Reply(reply);
            }
            Admission::Downgrade {
                model,
                budget_id,
                remaining,
            } => {
                metrics.admission(host, provider, "downgrade");
                self.admission.remaining = remaining;
                match self.downgrade(filter, metrics, host, &model, &budget_id, held, read_body) {
                    Ok(edit) => (Admit::Reserved, edit),
                    Err(reply) => {
                        self.stage = Stage::Released;
                        return Resume::Reply(reply);
                    }
                }
            }
        };
        self.admitted(filter, metrics, host, admit, held, early, edit)
    }

    /// The call was admitted: the held request goes on (changed by `edit`), the exchange
    /// moves on, and an answer the upstream sent meanwhile is released.
    #[allow(clippy::too_many_arguments)]
    fn admitted(
        &mut self,
        filter: &Filter,
        metrics: &mut Metrics,
        host: &dyn Host,
        admit: Admit,
        held: Held,
        early: Option<EarlyAnswer>,
        mut edit: Edit,
    ) -> Resume {
        match held {
            Held::Headers { body_follows } => {
                self.stage = Stage::Reading {
                    admit,
                    answer: None,
                };
                if !body_follows {
                    // No body callback will come: read the empty body now, as at the headers.
                    let mut empty = || Some(Vec::new());
                    let action = self.on_request_body(filter, metrics, host, 0, true, &mut empty);
                    if let BodyAction::Replace(bytes) = action {
                        edit.body = Some(NewBody { replaces: 0, bytes });
                    }
                }
            }
            Held::Body { .. } => self.stage = Stage::answering(admit),
        }
        let answer = early.map(|early| self.release_answer(filter, early));
        Resume::Go(Release {
            path: edit.path,
            body: edit.body,
            answer,
        })
    }

    /// A downgrade to `model`, asked for by `budget_id`: the change to the held request, or
    /// the refusal when it cannot be carried out.
    #[allow(clippy::too_many_arguments)]
    fn downgrade(
        &mut self,
        filter: &Filter,
        metrics: &mut Metrics,
        host: &dyn Host,
        model: &str,
        budget_id: &str,
        held: Held,
        read_body: &mut dyn FnMut(usize) -> Option<Vec<u8>>,
    ) -> Result<Edit, LocalReply> {
        let original = self.priced_model().unwrap_or_default();
        let provider = self.route.as_ref().map(|r| r.provider);
        // The provider's own id for the cheaper model (Bedrock's differ from the table's).
        let own_id = provider.and_then(|p| provider_model_id(p, &original, model, &filter.prices));
        let rewritten = if self.admission.signed {
            // Signed over what a downgrade would change: sent changed, the provider refuses it.
            None
        } else {
            match held {
                Held::Headers { .. } => {
                    let path = own_id
                        .as_deref()
                        .and_then(|id| rewrite_path_model(&self.admission.path, &original, id));
                    if path.is_some()
                        && let Some(route) = self.route.as_mut()
                    {
                        route.path_model = Some(model.to_owned());
                    }
                    path.map(|p| Edit {
                        path: Some(p),
                        body: None,
                    })
                }
                Held::Body { len } => {
                    let body = own_id.as_deref().and_then(|id| {
                        (len > 0)
                            .then(|| read_body(len))
                            .flatten()
                            .and_then(|b| rewrite_body_model(&b, id))
                    });
                    if body.is_some()
                        && let Some(info) = self.request.as_mut()
                    {
                        info.model = Some(model.to_owned());
                    }
                    body.map(|bytes| Edit {
                        path: None,
                        body: Some(NewBody {
                            replaces: len,
                            bytes,
                        }),
                    })
                }
            }
        };
        let Some(edit) = rewritten else {
            // Reserved on the cheaper model but cannot be sent as it: refuse, and release
            // the reservation (settled at zero when the stream ends).
            let route = self.route.as_ref();
            metrics.request(
                host,
                route.map_or("none", |r| r.provider.as_str()),
                Outcome::Denied,
            );
            let call = own_id.as_deref().unwrap_or(model);
            let why = if self.admission.signed {
                "this request is signed (AWS SigV4) over its model, so the gateway cannot change it"
            } else if own_id.is_none() {
                "the gateway does not know its Bedrock id"
            } else {
                "this request names its model where the gateway cannot change it"
            };
            let mut reply = LocalReply::error(
                route,
                filter.control_plane.as_ref().map_or(429, |c| c.deny_status),
                "budget_exceeded",
                &format!(
                    "budget {budget_id:?} allows this call only on {model:?}, and {why}: call \
                     {call:?} directly"
                ),
            );
            reply
                .headers
                .push(("x-tollgate-budget".into(), budget_id.to_owned()));
            return Err(reply);
        };
        // The control plane reserved the same worst case on the cheaper model.
        self.admission.estimate = filter
            .prices
            .cost(model, &self.admission.worst, host.now())
            .map_or(NanoUsd::ZERO, |c| c.total);
        self.admission.downgraded_from = Some(original);
        self.admission.downgraded_by = Some(budget_id.to_owned());
        Ok(edit)
    }

    /// Headers added to the response: the model a downgrade replaced (always), and with
    /// `response_headers`, what the call reserved and the least left in its budgets. The
    /// exact charge is known only after the body, when the headers have long gone.
    pub(super) fn response_headers(&self, filter: &Filter) -> Vec<(String, String)> {
        let mut headers = Vec::new();
        if let Some(from) = &self.admission.downgraded_from {
            headers.push(("x-tollgate-downgraded-from".to_owned(), from.clone()));
        }
        let reserved = matches!(
            self.stage,
            Stage::Answering {
                admit: Admit::Reserved | Admit::Leased,
                ..
            }
        );
        if filter.response_headers && reserved {
            headers.push((
                "x-tollgate-reserved-usd".to_owned(),
                usd(self.admission.estimate),
            ));
            if let Some(remaining) = self.admission.remaining {
                headers.push(("x-tollgate-remaining-usd".to_owned(), usd(remaining)));
            }
        }
        headers
    }

    /// A response chunk passed (the adapter's copy out of Envoy, which the usage reader may
    /// keep: callers holding only a slice copy it): feed the usage reader and, when the
    /// budget asked for it, cut the stream off once its running cost passes what was left.
    /// Called by [`Exchange::on_response_chunk`] (`flow/client_stream.rs`).
    pub(super) fn read_response_chunk(
        &mut self,
        filter: &Filter,
        metrics: &mut Metrics,
        host: &dyn Host,
        chunk: Vec<u8>,
    ) -> ChunkAction {
        let Stage::Answering { cut, .. } = &mut self.stage else {
            return ChunkAction::Pass;
        };
        match *cut {
            Cut::No => {}
            Cut::Announced => {
                *cut = Cut::Done;
                return ChunkAction::Reset;
            }
            Cut::Done => return ChunkAction::Pass,
        }
        let Some(cutoff) = self.admission.cutoff else {
            self.feed(chunk);
            return ChunkAction::Pass;
        };
        self.feed_slice(&chunk);
        if self.status.is_some_and(|s| s >= 400) {
            return ChunkAction::Pass;
        }
        let (Some(reader), Some(route), Some(model)) = (
            self.reader.as_ref(),
            self.route.as_ref(),
            self.priced_model(),
        ) else {
            return ChunkAction::Pass;
        };
        let input = self.input_estimate().unwrap_or(0);
        let running = reader.usage_so_far(input);
        let Ok(cost) = filter.prices.cost(&model, &running, host.now()) else {
            return ChunkAction::Pass;
        };
        if cost.total <= cutoff {
            return ChunkAction::Pass;
        }
        if let Stage::Answering { cut, .. } = &mut self.stage {
            *cut = Cut::Announced;
        }
        metrics.stream_cutoff(host, route.provider.as_str());
        host.log(
            LogLevel::Info,
            &format!(
                "tollgate: {} cut off at {} (its budgets allowed {})",
                self.admission.request_id, cost.total, cutoff
            ),
        );
        let framing = route.framing(self.request.as_ref().is_some_and(|r| r.streaming));
        let message = format!(
            "this response was cut off: it reached what is left of its budget ({})",
            cutoff
        );
        let mut out = chunk;
        out.extend_from_slice(&stream_error_event(route, framing, &message));
        ChunkAction::Replace(out)
    }
}

#[cfg(test)]
mod edge_tests;
#[cfg(test)]
mod held_tests;
#[cfg(test)]
mod lease_tests;
#[cfg(test)]
mod tests;
