//! Leases (docs/leases.md): a filter VM asks for an allowance for one key (scopes, model,
//! provider); the control plane carves one slice of every limit out of every enforced
//! budget the key matches and holds it in each of their windows in one atomic store step,
//! so that any call the holder admits from it is covered in all of them (overshoot stays 0).
//!
//! The slice of a budget is its `lease` share of each of its limits; a lease gets the
//! smallest slice among the key's budgets in each dimension. No lease (the filter reserves
//! per call) when a budget is `exact` or cuts streams off, when a budget has less than
//! [`NEAR_END_SLICES`] slices left or its window ends within [`MIN_LEASE_MS`], or when the
//! key cannot be leased now (an emergency switch, a suspended budget, an unpriced model).
//!
//! A leased call settles as any other (idempotently, by request id); what it took from the
//! lease then comes off the lease's hold (`take_settled`). A return gives back what its
//! holder did not use. What is left of a lease is released `reservation_ttl` after it stops
//! admitting, so that a call admitted at its last moment is still covered when it settles.

use std::collections::BTreeMap;

use tollgate_model::budget::Enforcement;
use tollgate_model::scope::Scope;
use tollgate_model::wire::v1::{
    DenyReason, Lease, LeaseRequest, LeaseResponse, LeaseReturn, LeaseReturned, NoLeaseReason,
    Settlement,
};

use crate::admission::{
    Admission, AdmissionError, check_request_id, line_for, matching, model_id, request_tag,
};
use crate::store::lease::tag_of;
use crate::store::{LeaseAmounts, LeaseMeta, LeaseOp, LeaseOutcome, LeaseTakeOp, StoreError};

/// Leasing of a budget stops while less than this many slices of any of its limits are
/// left (settled and held, leases included): its last calls are reserved one by one, so it
/// ends exactly and the early refusals leases cause stay bounded.
pub const NEAR_END_SLICES: i64 = 2;

/// No lease is granted when the key's earliest window ends within this many milliseconds
/// (a lease never outlives its windows).
pub const MIN_LEASE_MS: i64 = 1_000;

/// Longest lease id accepted (32 hex digits, `@` and an org tag).
pub const MAX_LEASE_ID_LEN: usize = 200;

fn invalid(field: &str, message: &str) -> AdmissionError {
    AdmissionError::Invalid {
        field: field.to_owned(),
        message: message.to_owned(),
    }
}

fn no_lease(reason: NoLeaseReason) -> LeaseResponse {
    metrics::counter!("tollgate_lease_answers_total", "outcome" => "none", "reason" => reason_label(reason))
        .increment(1);
    LeaseResponse {
        lease: None,
        no_lease: Some(reason),
    }
}

fn reason_label(r: NoLeaseReason) -> &'static str {
    match r {
        NoLeaseReason::Exact => "exact",
        NoLeaseReason::NearEnd => "near_end",
        NoLeaseReason::NoBudget => "no_budget",
        NoLeaseReason::NotLeasable => "not_leasable",
        NoLeaseReason::StoreUnavailable => "store_unavailable",
        NoLeaseReason::Other => "other",
    }
}

/// A new lease id: 128 random bits in hex, then `@` and the key's tag (which a return,
/// naming only the lease, needs to find its keys).
fn new_lease_id(tag: &str) -> Result<String, AdmissionError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| AdmissionError::Store(StoreError::Unavailable("no randomness".into())))?;
    Ok(format!("{}@{tag}", hex::encode(bytes)))
}

/// Checks a lease id as the filter sends it back.
pub fn check_lease_id(field: &str, id: &str) -> Result<(), AdmissionError> {
    if id.is_empty()
        || id.len() > MAX_LEASE_ID_LEN
        || !id.contains('@')
        || id.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid(
            field,
            "must be a lease id this control plane handed out (`<hex>@<tag>`, at most 200 bytes)",
        ));
    }
    Ok(())
}

/// The slice of each dimension (the smallest among the key's enforced budgets; `None`: no
/// budget limits it), or why there is no lease.
struct Plan {
    usd: Option<i64>,
    tokens: Option<i64>,
    requests: Option<i64>,
    admit_until_ms: i64,
}

impl Plan {
    fn amounts(&self) -> LeaseAmounts {
        LeaseAmounts {
            usd_nanos: self.usd.unwrap_or(0),
            tokens: self.tokens.unwrap_or(0),
            requests: self.requests.unwrap_or(0),
        }
    }
}

fn smallest(a: Option<i64>, b: i64) -> Option<i64> {
    Some(a.map_or(b, |a| a.min(b)))
}

impl Admission<'_> {
    /// Grants, renews or refuses a lease. A store that cannot be reached answers
    /// `store_unavailable` (the filter reserves per call, where the fail modes apply).
    pub async fn lease(&self, req: &LeaseRequest) -> Result<LeaseResponse, AdmissionError> {
        check_request_id("holder", &req.holder)?;
        let tag = request_tag(&req.scopes);
        if let Some(id) = &req.lease_id {
            check_lease_id("lease_id", id)?;
            if tag_of(id) != tag {
                return Err(invalid(
                    "lease_id",
                    "was granted for another org than these scopes'",
                ));
            }
        }
        match self.decide_lease(req, &tag).await {
            Err(AdmissionError::Store(StoreError::Unavailable(_) | StoreError::Full(_))) => {
                Ok(no_lease(NoLeaseReason::StoreUnavailable))
            }
            other => other,
        }
    }

    async fn decide_lease(
        &self,
        req: &LeaseRequest,
        tag: &str,
    ) -> Result<LeaseResponse, AdmissionError> {
        if self.snap.prices.resolve(&req.model).is_none() {
            return Ok(no_lease(NoLeaseReason::NotLeasable));
        }
        let switched = req
            .scopes
            .iter()
            .chain(std::iter::once(&Scope::global()))
            .any(|s| self.snap.switches.contains_key(s));
        if switched {
            return Ok(no_lease(NoLeaseReason::NotLeasable));
        }
        let model = model_id(self.snap, &req.model);
        let budgets: Vec<_> = matching(self.snap, &req.scopes, &model)
            .into_iter()
            .cloned()
            .collect();
        if budgets.iter().all(|b| b.enforcement == Enforcement::Shadow) {
            return Ok(no_lease(NoLeaseReason::NoBudget));
        }
        if budgets
            .iter()
            .any(|b| b.lease_share().slice_of(1).is_none() || b.cutoff_mid_stream)
        {
            return Ok(no_lease(NoLeaseReason::Exact));
        }
        let (lines, windows): (Vec<_>, Vec<_>) =
            budgets.iter().map(|b| line_for(b, self.now)).unzip();
        let counters = self.store.counters_many(&lines).await?;
        let now_ms = self.now.timestamp_millis();
        let mut plan = Plan {
            usd: None,
            tokens: None,
            requests: None,
            admit_until_ms: now_ms.saturating_add(self.settings.lease_ttl_ms),
        };
        for ((b, c), w) in budgets.iter().zip(&counters).zip(&windows) {
            if let Some(end) = w.end {
                plan.admit_until_ms = plan.admit_until_ms.min(end.timestamp_millis());
            }
            if b.enforcement == Enforcement::Shadow {
                continue;
            }
            let share = b.lease_share();
            let dims = [
                (
                    b.limit.map(|l| l.nanos()),
                    c.spent_nanos.saturating_add(c.reserved_nanos),
                    &mut plan.usd,
                ),
                (
                    b.limit_tokens.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
                    c.tokens.saturating_add(c.reserved_tokens),
                    &mut plan.tokens,
                ),
                (
                    b.limit_requests
                        .map(|r| i64::try_from(r).unwrap_or(i64::MAX)),
                    c.requests.saturating_add(c.reserved_requests),
                    &mut plan.requests,
                ),
            ];
            for (limit, used, slot) in dims {
                let Some(limit) = limit else { continue };
                let Some(slice) = share.slice_of(limit) else {
                    return Ok(no_lease(NoLeaseReason::Exact));
                };
                let left = limit.saturating_sub(used);
                if i128::from(left) < i128::from(slice) * i128::from(NEAR_END_SLICES) {
                    return Ok(no_lease(NoLeaseReason::NearEnd));
                }
                *slot = smallest(*slot, slice);
            }
        }
        if plan.admit_until_ms.saturating_sub(now_ms) < MIN_LEASE_MS {
            return Ok(no_lease(NoLeaseReason::NearEnd));
        }
        let meta = LeaseMeta {
            holder: req.holder.clone(),
            scopes: req.scopes.iter().map(ToString::to_string).collect(),
            model,
            provider: req.provider.clone(),
            budgets: budgets.iter().map(|b| b.id.clone()).collect(),
            granted_at_ms: now_ms,
        };
        let mut op = LeaseOp {
            lease_id: match &req.lease_id {
                Some(id) => id.clone(),
                None => new_lease_id(tag)?,
            },
            tag: tag.to_owned(),
            lines,
            amounts: plan.amounts(),
            renew: req.lease_id.is_some(),
            now_ms,
            admit_until_ms: plan.admit_until_ms,
            release_at_ms: plan
                .admit_until_ms
                .saturating_add(self.settings.reservation_ttl_ms),
            meta,
        };
        let mut outcome = self.store.lease(&op).await?;
        if op.renew && matches!(outcome, LeaseOutcome::Gone | LeaseOutcome::Moved) {
            // The lease renewed is released, returned, or over other windows now: a new one.
            op.renew = false;
            op.lease_id = new_lease_id(tag)?;
            outcome = self.store.lease(&op).await?;
        }
        Ok(match outcome {
            LeaseOutcome::Granted(added) => {
                let outcome = if op.renew { "renewed" } else { "granted" };
                metrics::counter!("tollgate_lease_answers_total", "outcome" => outcome, "reason" => "")
                    .increment(1);
                let pos = |v: i64| u64::try_from(v).unwrap_or(0);
                LeaseResponse {
                    lease: Some(Lease {
                        lease_id: op.lease_id,
                        usd: plan.usd.map(|_| tollgate_model::NanoUsd(added.usd_nanos)),
                        tokens: plan.tokens.map(|_| pos(added.tokens)),
                        requests: plan.requests.map(|_| pos(added.requests)),
                        admit_until_unix_ms: op.admit_until_ms,
                    }),
                    no_lease: None,
                }
            }
            LeaseOutcome::Refused {
                reason: DenyReason::Suspended,
                ..
            } => no_lease(NoLeaseReason::NotLeasable),
            // Another grant took the room between the read and the hold.
            LeaseOutcome::Refused { .. } => no_lease(NoLeaseReason::NearEnd),
            LeaseOutcome::Gone | LeaseOutcome::Moved => {
                return Err(AdmissionError::Store(StoreError::Corrupt(format!(
                    "lease id {} taken",
                    op.lease_id
                ))));
            }
        })
    }

    /// Takes back what a holder did not use of its lease.
    pub async fn return_lease(&self, r: &LeaseReturn) -> Result<LeaseReturned, AdmissionError> {
        check_lease_id("lease_id", &r.lease_id)?;
        if r.usd.nanos() < 0 {
            return Err(invalid("usd", "must not be negative"));
        }
        let op = LeaseTakeOp {
            lease_id: r.lease_id.clone(),
            tag: tag_of(&r.lease_id).to_owned(),
            amounts: LeaseAmounts {
                usd_nanos: r.usd.nanos(),
                tokens: i64::try_from(r.tokens).unwrap_or(i64::MAX),
                requests: i64::try_from(r.requests).unwrap_or(i64::MAX),
            },
            returned: true,
            now_ms: self.now.timestamp_millis(),
        };
        let known = self.store.lease_take(&op).await?.is_some();
        metrics::counter!("tollgate_lease_returns_total", "known" => if known { "true" } else { "false" })
            .increment(1);
        Ok(LeaseReturned { known })
    }

    /// Takes what the newly applied leased calls of a settle batch took from their leases
    /// off the leases' holds: one store call per lease. The calls are charged already (by
    /// the settle, which makes a replay harmless: only applied settlements come here), so a
    /// failure here only leaves the amount held until the lease is released; it is logged.
    pub async fn take_settled(&self, applied: &[&Settlement]) {
        let mut by_lease: BTreeMap<&str, LeaseAmounts> = BTreeMap::new();
        for s in applied {
            let Some(id) = s.lease_id.as_deref() else {
                continue;
            };
            let a = by_lease.entry(id).or_default();
            let usd = s.lease_usd.unwrap_or(s.cost).nanos().max(0);
            let tokens = s.lease_tokens.unwrap_or_else(|| s.usage.total_tokens());
            a.usd_nanos = a.usd_nanos.saturating_add(usd);
            a.tokens = a
                .tokens
                .saturating_add(i64::try_from(tokens).unwrap_or(i64::MAX));
            a.requests = a.requests.saturating_add(1);
        }
        for (id, amounts) in by_lease {
            let op = LeaseTakeOp {
                lease_id: id.to_owned(),
                tag: tag_of(id).to_owned(),
                amounts,
                returned: false,
                now_ms: self.now.timestamp_millis(),
            };
            if let Err(e) = self.store.lease_take(&op).await {
                metrics::counter!("tollgate_lease_take_errors_total").increment(1);
                tracing::warn!(error = %e, lease = id, "leased calls settled, but not taken off their lease: held until it is released");
            }
        }
    }
}
