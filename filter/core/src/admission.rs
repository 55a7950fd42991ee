//! Admission: asking the control plane to reserve a call's worst-case cost, and turning its
//! answer (or its silence) into what happens to the call.
//!
//! The exchange builds one [`ReserveRequest`]; the adapter posts it through the host's HTTP
//! callout to the `control_plane.cluster`; [`decide`] reads whatever came back. Envoy turns a
//! refused connection into 503 and a timeout into 504, each with its own short text body, so
//! an answer counts only when it is 200 **and** parses as a `ReserveResponse`; everything else
//! is the configured fail mode.

use std::time::Duration;

use serde::Deserialize;
use tollgate_model::wire::v1::{
    DenyReason, MAX_SETTLE_BATCH, RESERVE_PATH, ReserveRequest, ReserveResponse,
};
use tollgate_model::{FailMode, NanoUsd};

use crate::providers::Route;
use crate::reply::LocalReply;
use crate::settle::SettleLimits;

/// The `control_plane` section of the plugin config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlPlaneDto {
    /// The Envoy cluster of the control plane (`outbound|8080||tollgate.tollgate.svc.cluster.local`
    /// in Istio).
    pub cluster: String,
    /// `:authority` of the calls (default `tollgate`).
    #[serde(default)]
    pub authority: Option<String>,
    /// The data-plane bearer token.
    pub token: String,
    /// How long admission waits before the fail mode applies (default 50 ms).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// What happens when the control plane cannot answer (default `open`).
    #[serde(default)]
    pub fail_mode: FailMode,
    /// Status of a budget refusal (default 429).
    #[serde(default)]
    pub deny_status: Option<u16>,
    /// Most settlements per post (default 200, at most 1000).
    #[serde(default)]
    pub settle_max_batch: Option<usize>,
    /// Longest a settlement waits before a partial batch is posted (default 1000 ms).
    #[serde(default)]
    pub settle_max_delay_ms: Option<u64>,
    /// Most settlements a worker holds while the control plane is away (default 10 000);
    /// past it, new ones are dropped, counted and logged.
    #[serde(default)]
    pub settle_capacity: Option<usize>,
    /// How often each worker fetches the control plane's price file (default 10 000 ms;
    /// see `price_sync`).
    #[serde(default)]
    pub price_refresh_ms: Option<u64>,
}

/// Validated control-plane settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlane {
    /// Cluster name.
    pub cluster: String,
    /// `:authority`.
    pub authority: String,
    /// `authorization` header value (`Bearer …`).
    pub authorization: String,
    /// Callout timeout.
    pub timeout: Duration,
    /// Fail mode.
    pub fail_mode: FailMode,
    /// Refusal status.
    pub deny_status: u16,
    /// Settlement batching.
    pub settle: SettleLimits,
    /// How often the control plane's price file is fetched.
    pub price_refresh: Duration,
}

impl TryFrom<ControlPlaneDto> for ControlPlane {
    type Error = (String, String);

    fn try_from(dto: ControlPlaneDto) -> Result<ControlPlane, (String, String)> {
        let field = |f: &str, why: &str| (format!("control_plane.{f}"), why.to_owned());
        if dto.cluster.trim().is_empty() {
            return Err(field("cluster", "must name an Envoy cluster"));
        }
        if dto.token.trim().is_empty() || dto.token.chars().any(char::is_whitespace) {
            return Err(field(
                "token",
                "must be a non-empty token without whitespace",
            ));
        }
        let timeout_ms = dto.timeout_ms.unwrap_or(50);
        if !(1..=60_000).contains(&timeout_ms) {
            return Err(field("timeout_ms", "must be 1..=60000"));
        }
        let deny_status = dto.deny_status.unwrap_or(429);
        if !(400..=599).contains(&deny_status) {
            return Err(field("deny_status", "must be a 4xx or 5xx status"));
        }
        let defaults = SettleLimits::default();
        let max_batch = dto.settle_max_batch.unwrap_or(defaults.max_batch);
        if !(1..=MAX_SETTLE_BATCH).contains(&max_batch) {
            return Err(field("settle_max_batch", "must be 1..=1000"));
        }
        let max_delay_ms = dto.settle_max_delay_ms.unwrap_or(1000);
        if !(10..=60_000).contains(&max_delay_ms) {
            return Err(field("settle_max_delay_ms", "must be 10..=60000"));
        }
        let capacity = dto.settle_capacity.unwrap_or(defaults.capacity);
        if capacity < max_batch || capacity > 1_000_000 {
            return Err(field(
                "settle_capacity",
                "must be at least settle_max_batch and at most 1000000",
            ));
        }
        let price_refresh_ms = dto.price_refresh_ms.unwrap_or(10_000);
        if !(1000..=3_600_000).contains(&price_refresh_ms) {
            return Err(field("price_refresh_ms", "must be 1000..=3600000"));
        }
        Ok(ControlPlane {
            price_refresh: Duration::from_millis(price_refresh_ms),
            settle: SettleLimits {
                capacity,
                max_batch,
                max_delay: Duration::from_millis(max_delay_ms),
                max_backoff: defaults.max_backoff,
            },
            cluster: dto.cluster,
            authority: dto.authority.unwrap_or_else(|| "tollgate".to_owned()),
            authorization: format!("Bearer {}", dto.token),
            timeout: Duration::from_millis(timeout_ms),
            fail_mode: dto.fail_mode,
            deny_status,
        })
    }
}

impl ControlPlane {
    /// Headers of a `reserve` callout.
    pub fn reserve_headers(&self) -> [(&str, &str); 5] {
        self.post_headers(RESERVE_PATH)
    }

    /// Headers of a JSON `POST` to `path` (a reserve, or a lease's ask or return).
    pub fn post_headers<'a>(&'a self, path: &'a str) -> [(&'a str, &'a str); 5] {
        [
            (":method", "POST"),
            (":path", path),
            (":authority", &self.authority),
            ("content-type", "application/json"),
            ("authorization", &self.authorization),
        ]
    }

    /// The body of a `reserve` callout.
    pub fn reserve_body(&self, request: &ReserveRequest) -> Vec<u8> {
        serde_json::to_vec(request).unwrap_or_default()
    }
}

/// What happens to the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Send it; the estimate is reserved.
    Allow {
        /// Least USD left, for response headers.
        remaining: Option<NanoUsd>,
        /// Cut the stream off past this running cost.
        stream_cutoff: Option<NanoUsd>,
    },
    /// Send it with this model instead.
    Downgrade {
        /// The cheaper model.
        model: String,
        /// The budget that asked for it.
        budget_id: String,
        /// Least USD left, for response headers.
        remaining: Option<NanoUsd>,
    },
    /// Refuse it with this reply.
    Deny(LocalReply),
    /// The control plane did not decide; the fail mode let the call through, unreserved
    /// (it is settled directly later).
    FailedOpen,
}

/// Why the control plane's answer could not be used (for the log and the metric).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerProblem {
    /// The callout could not even start (unknown cluster).
    NotSent,
    /// A status other than 200 (503 from Envoy when the connection is refused, 504 on timeout,
    /// the control plane's own 4xx/5xx).
    Status(u16),
    /// 200 but not a `ReserveResponse`.
    Unreadable,
}

impl AnswerProblem {
    /// The problem of a callout answered with `status` other than 200, or not at all.
    pub fn of_status(status: Option<u16>) -> AnswerProblem {
        status.map_or(AnswerProblem::NotSent, AnswerProblem::Status)
    }

    /// A metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            AnswerProblem::NotSent => "not_sent",
            AnswerProblem::Status(504) => "timeout",
            AnswerProblem::Status(503) => "unavailable",
            AnswerProblem::Status(_) => "error_status",
            AnswerProblem::Unreadable => "unreadable",
        }
    }
}

/// Turns the callout's outcome into an [`Admission`]. `answer` is `None` when the callout
/// could not be sent, else the status and body; `model` is the model the call names (a
/// refusal for an unpriced model names it).
pub fn decide(
    cp: &ControlPlane,
    route: &Route,
    answer: Option<(u16, &[u8])>,
    model: Option<&str>,
) -> (Admission, Option<AnswerProblem>) {
    let problem = match answer {
        None => AnswerProblem::NotSent,
        Some((200, body)) => match serde_json::from_slice::<ReserveResponse>(body) {
            Ok(ReserveResponse::Deny {
                budget_id,
                reason: DenyReason::UnknownModel,
                ..
            }) => return (unpriced_model_refusal(cp, route, &budget_id, model), None),
            Ok(resp) => return (from_response(cp, route, resp), None),
            Err(_) => AnswerProblem::Unreadable,
        },
        Some((status, _)) => AnswerProblem::Status(status),
    };
    let admission = match cp.fail_mode {
        FailMode::Open => Admission::FailedOpen,
        FailMode::Closed => Admission::Deny(LocalReply::error(
            Some(route),
            503,
            "budget_check_unavailable",
            "the budget service could not be reached; the call was not sent",
        )),
    };
    (admission, Some(problem))
}

/// The refusal of a call whose model has no price while a USD budget limits it: in the
/// provider's error shape, naming the model, with no `retry-after` (waiting does not help).
fn unpriced_model_refusal(
    cp: &ControlPlane,
    route: &Route,
    budget_id: &str,
    model: Option<&str>,
) -> Admission {
    let model = model.unwrap_or("");
    let mut reply = LocalReply::error(
        Some(route),
        cp.deny_status,
        "model_not_priced",
        &format!(
            "model {model:?} has no price at this gateway, and budget {budget_id:?} limits              spending in USD: call a priced model, or ask your platform team to price {model:?}"
        ),
    );
    reply
        .headers
        .push(("x-tollgate-budget".into(), budget_id.to_owned()));
    Admission::Deny(reply)
}

fn from_response(cp: &ControlPlane, route: &Route, resp: ReserveResponse) -> Admission {
    match resp {
        // The control plane's store is down and every budget the call matches fails open.
        ReserveResponse::Allow {
            unreserved: true, ..
        } => Admission::FailedOpen,
        ReserveResponse::Allow {
            remaining,
            stream_cutoff,
            ..
        } => Admission::Allow {
            remaining,
            stream_cutoff,
        },
        ReserveResponse::Deny {
            budget_id,
            reason: DenyReason::StoreUnavailable,
            ..
        } => {
            let mut reply = LocalReply::error(
                Some(route),
                503,
                "budget_check_unavailable",
                &format!(
                    "budget {budget_id:?} could not be checked (the budget service's store is \
                     unavailable) and refuses calls it cannot check; the call was not sent"
                ),
            );
            reply.headers.push(("x-tollgate-budget".into(), budget_id));
            reply.headers.push(("retry-after".into(), "1".into()));
            Admission::Deny(reply)
        }
        ReserveResponse::Downgrade {
            budget_id,
            model,
            remaining,
        } => Admission::Downgrade {
            model,
            budget_id,
            remaining,
        },
        ReserveResponse::Deny {
            budget_id,
            reason,
            remaining,
            retry_after_secs,
            ..
        } => {
            let why = match reason {
                DenyReason::Usd => "its spending limit",
                DenyReason::Tokens => "its token limit",
                DenyReason::Requests => "its request limit",
                DenyReason::Suspended => "a suspension after an earlier excess",
                DenyReason::Emergency => "an emergency stop",
                DenyReason::UnknownModel => "a model with no price",
                DenyReason::StoreUnavailable => "its store is unavailable",
            };
            let mut reply = LocalReply::error(
                Some(route),
                cp.deny_status,
                "budget_exceeded",
                &format!(
                    "budget {budget_id:?} refused this call: {why} ({} left)",
                    remaining
                ),
            );
            reply.headers.push(("x-tollgate-budget".into(), budget_id));
            reply.headers.push((
                "x-tollgate-remaining-usd".into(),
                remaining.to_usd().to_string(),
            ));
            if let Some(secs) = retry_after_secs {
                reply
                    .headers
                    .push(("retry-after".into(), secs.max(0).to_string()));
            }
            Admission::Deny(reply)
        }
    }
}

#[cfg(test)]
mod tests;
