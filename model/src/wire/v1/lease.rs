//! Leases: an allowance the control plane carves out of every budget a kind of call matches
//! and hands to one filter VM, which then admits such calls with no round trip until the
//! allowance or its time runs out (docs/leases.md).
//!
//! A lease is asked for by *key*: the call's scopes, model and provider, which decide the
//! budgets it counts toward. Every amount is reserved in every matching budget's window, as
//! a long reservation is, so a call taken from the lease is covered in all of them.
//!
//! Wire rule as for the rest of `v1`: readers ignore fields they do not know, and a reason
//! this release does not know reads as [`NoLeaseReason::Other`]. A filter must admit locally
//! only from a lease a control plane answered with: an older control plane answers the lease
//! path 404, which means "no leases here, reserve per call".

use serde::{Deserialize, Serialize};

use crate::money::NanoUsd;
use crate::scope::Scope;

/// `POST` path of [`LeaseRequest`] (answer: [`LeaseResponse`]).
pub const LEASE_PATH: &str = "/v1/admission/lease";
/// `POST` path of [`LeaseReturn`] (answer: [`LeaseReturned`]).
pub const LEASE_RETURN_PATH: &str = "/v1/admission/lease/return";

/// Ask for a lease for one key, or renew one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseRequest {
    /// Who will hold it: the filter VM's id (1-128 bytes, no whitespace), shown in the
    /// admin listing.
    pub holder: String,
    /// The key's scopes (a call's scopes).
    pub scopes: Vec<Scope>,
    /// The key's model, as the client writes it.
    pub model: String,
    /// The key's provider.
    pub provider: String,
    /// Renew this lease (its [`Lease::lease_id`]): its expiry moves on and it is topped up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<String>,
    /// When the filter asked, Unix milliseconds (informative).
    pub at_unix_ms: i64,
}

/// The answer to a [`LeaseRequest`]: `lease` or `no_lease`, never both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseResponse {
    /// The allowance granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// Why there is none: reserve each call of this key on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_lease: Option<NoLeaseReason>,
}

/// An allowance: admit calls of the key locally while each fits what is left of every
/// amount, until `admit_until_unix_ms`.
///
/// The amounts are what *this answer* adds. A renewal answered with the same `lease_id`
/// tops the lease up: add them to what is left. A different `lease_id` is a new lease (the
/// one renewed is gone or no longer matches the budgets): stop admitting from the old one,
/// return its unused part, and start the new one at these amounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Lease {
    /// The lease's id: carried by the settlements of the calls taken from it, its renewal
    /// and its return.
    pub lease_id: String,
    /// USD added, nano-USD; absent: no budget of the key limits USD (no USD check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd: Option<NanoUsd>,
    /// Tokens added (estimated input + output cap per call); absent: no token limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// Calls added; absent: no request limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// Admit nothing from the lease at or after this time, Unix ms (the filter keeps its
    /// own margin before it for its clock). The control plane holds the lease's unused part
    /// until this time plus its reservation TTL, so a call admitted just before it is still
    /// covered when it settles, then releases it.
    pub admit_until_unix_ms: i64,
}

/// Why no lease was granted. Every one means the same to the filter: reserve each call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NoLeaseReason {
    /// A budget of the key is `lease: "exact"` (or cuts streams off mid-way, which is
    /// decided per call).
    Exact,
    /// A budget of the key has less than two slices left, or its window ends within a
    /// second: its last calls are reserved one by one so that it ends exactly.
    NearEnd,
    /// No enforced budget matches the key.
    NoBudget,
    /// The key cannot be leased now: an emergency switch covers one of its scopes, a budget
    /// is suspended, or no price table knows its model.
    NotLeasable,
    /// The control plane cannot reach its store.
    StoreUnavailable,
    /// A reason this release does not know (a newer control plane).
    #[serde(other)]
    Other,
}

/// Give back what is left of a lease: the holder will admit nothing more from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseReturn {
    /// The lease.
    pub lease_id: String,
    /// Its USD not taken by any call, nano-USD (0 when the lease has no USD amount).
    #[serde(default)]
    pub usd: NanoUsd,
    /// Its tokens not taken.
    #[serde(default)]
    pub tokens: u64,
    /// Its calls not taken.
    #[serde(default)]
    pub requests: u64,
    /// When the filter returned it, Unix milliseconds (informative).
    pub at_unix_ms: i64,
}

/// The answer to a [`LeaseReturn`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseReturned {
    /// Whether the control plane still held the lease (false: it had expired and been
    /// released, or never existed; nothing to do either way).
    pub known: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_answer_reads_back_what_it_writes_and_ignores_what_it_does_not_know() {
        let granted = LeaseResponse {
            lease: Some(Lease {
                lease_id: "l@acme".into(),
                usd: Some(NanoUsd(5_000)),
                tokens: None,
                requests: Some(3),
                admit_until_unix_ms: 9,
            }),
            no_lease: None,
        };
        let json = serde_json::to_string(&granted).unwrap();
        assert_eq!(
            json,
            r#"{"lease":{"lease_id":"l@acme","usd":5000,"requests":3,"admit_until_unix_ms":9}}"#
        );
        assert_eq!(
            serde_json::from_str::<LeaseResponse>(&json).unwrap(),
            granted
        );
        let later: LeaseResponse = serde_json::from_str(
            r#"{"no_lease":"budget_closing_soon","retry_after_ms":5,"lease":null}"#,
        )
        .unwrap();
        assert_eq!(later.no_lease, Some(NoLeaseReason::Other));
        assert_eq!(later.lease, None);
        let near: LeaseResponse = serde_json::from_str(r#"{"no_lease":"near_end"}"#).unwrap();
        assert_eq!(near.no_lease, Some(NoLeaseReason::NearEnd));
    }

    #[test]
    fn a_return_without_amounts_returns_nothing_and_a_request_renews_only_when_it_names_a_lease() {
        let r: LeaseReturn =
            serde_json::from_str(r#"{"lease_id":"l@acme","at_unix_ms":1,"extra":true}"#).unwrap();
        assert_eq!((r.usd, r.tokens, r.requests), (NanoUsd(0), 0, 0));
        let q: LeaseRequest = serde_json::from_str(
            r#"{"holder":"vm-1","scopes":["team:a"],"model":"gpt-4o","provider":"openai","at_unix_ms":1}"#,
        )
        .unwrap();
        assert_eq!(q.lease_id, None);
        assert!(!serde_json::to_string(&q).unwrap().contains("lease_id"));
    }
}
