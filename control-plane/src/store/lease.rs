//! What the stores keep of a lease: an allowance held on every window of the budgets its
//! key matches, exactly like a long reservation, until the calls taken from it settle, its
//! holder returns it, or its release time passes (docs/leases.md).
//!
//! A lease holds the same amounts on each of its windows. A settled leased call takes what
//! it took from the lease off that hold (its charge lands through the ordinary settle); a
//! return takes off what the holder never used; at the release time the rest comes off.

use serde::{Deserialize, Serialize};
use tollgate_model::wire::v1::DenyReason;

use super::{Counters, Line};

/// Amounts a lease holds, takes or adds, in each of its windows. Zero in a dimension no
/// budget of the key limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeaseAmounts {
    /// nano-USD.
    pub usd_nanos: i64,
    /// Tokens.
    pub tokens: i64,
    /// Requests.
    pub requests: i64,
}

impl LeaseAmounts {
    /// Whether every amount is zero.
    pub fn is_zero(&self) -> bool {
        *self == LeaseAmounts::default()
    }

    /// Each amount at most `cap`'s (and never below zero).
    pub fn at_most(&self, cap: &LeaseAmounts) -> LeaseAmounts {
        let f = |a: i64, c: i64| a.min(c).max(0);
        LeaseAmounts {
            usd_nanos: f(self.usd_nanos, cap.usd_nanos),
            tokens: f(self.tokens, cap.tokens),
            requests: f(self.requests, cap.requests),
        }
    }

    /// A renewal's top-up: up to one `slice` of each amount, so that the lease holds at
    /// most two slices (what is left unused plus the calls in flight) after it.
    pub fn top_up(slice: &LeaseAmounts, held: &LeaseAmounts) -> LeaseAmounts {
        let f = |s: i64, h: i64| s.saturating_mul(2).saturating_sub(h).clamp(0, s.max(0));
        LeaseAmounts {
            usd_nanos: f(slice.usd_nanos, held.usd_nanos),
            tokens: f(slice.tokens, held.tokens),
            requests: f(slice.requests, held.requests),
        }
    }
}

/// Who holds a lease and for what key: stored with it for the admin listing only (the
/// Redis record keeps it as JSON; unknown fields are ignored, so a later release may add).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeaseMeta {
    /// The filter VM holding it.
    pub holder: String,
    /// The key's scopes.
    pub scopes: Vec<String>,
    /// The key's model (price-table id).
    pub model: String,
    /// The key's provider.
    pub provider: String,
    /// The budgets it was carved out of.
    pub budgets: Vec<String>,
    /// When it was granted, Unix ms.
    pub granted_at_ms: i64,
}

/// Grant or renew a lease.
#[derive(Debug, Clone)]
pub struct LeaseOp {
    /// The lease's id (its record's key).
    pub lease_id: String,
    /// Hash tag of the lease's own keys (the key's org, or `global`).
    pub tag: String,
    /// The windows to hold on (the budgets the key matches now).
    pub lines: Vec<Line>,
    /// A grant: the amounts to hold. A renewal: one slice, of which the top-up is
    /// [`LeaseAmounts::top_up`] of what the lease holds.
    pub amounts: LeaseAmounts,
    /// Top up the existing lease `lease_id` rather than create it.
    pub renew: bool,
    /// The current time, Unix ms.
    pub now_ms: i64,
    /// The holder admits nothing from the lease from then on, Unix ms.
    pub admit_until_ms: i64,
    /// When the store releases what the lease still holds, Unix ms.
    pub release_at_ms: i64,
    /// Who holds it (written on a grant; a renewal keeps the stored one).
    pub meta: LeaseMeta,
}

/// What a grant or renewal did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// Held on every line; the amounts added (a renewal's may be all zero: only its times
    /// moved).
    Granted(LeaseAmounts),
    /// Line `line` has no room for the amounts; nothing was held anywhere.
    Refused {
        /// Index into the op's lines.
        line: usize,
        /// Which limit (or `Suspended`).
        reason: DenyReason,
        /// That line's counters.
        counters: Counters,
    },
    /// A renewal of a lease the store does not hold (released, returned, or never granted);
    /// a grant whose id is taken.
    Gone,
    /// A renewal whose lines are not the lease's windows (a window rolled over, or the
    /// budgets changed): grant a new lease instead.
    Moved,
}

/// Take amounts off a lease.
#[derive(Debug, Clone)]
pub struct LeaseTakeOp {
    /// The lease.
    pub lease_id: String,
    /// Its hash tag.
    pub tag: String,
    /// What to take off (each clamped to what the lease holds).
    pub amounts: LeaseAmounts,
    /// The holder gives the lease back: no renewal after this.
    pub returned: bool,
    /// The current time, Unix ms.
    pub now_ms: i64,
}

/// A lease outstanding, as the admin listing shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeaseView {
    /// The lease's id.
    pub lease_id: String,
    /// Who holds it and for what.
    pub meta: LeaseMeta,
    /// What it still holds on each of its windows (its holder's unused part plus its calls
    /// in flight).
    pub held: LeaseAmounts,
    /// The holder admits nothing from it from then on, Unix ms.
    pub admit_until_ms: i64,
    /// When what it holds is released, Unix ms.
    pub release_at_ms: i64,
    /// Its holder gave it back (it only waits for its calls in flight).
    pub returned: bool,
}

/// The hash tag a lease id carries after its first `@` (lease ids are `<hex>@<tag>`, so a
/// return, which names only the lease, finds its keys); the whole id when it has none.
pub fn tag_of(lease_id: &str) -> &str {
    lease_id.split_once('@').map_or(lease_id, |(_, tag)| tag)
}

/// Which limit, if any, has no room on `line` for `add` more held (the lease rule: settled
/// plus held plus `add` must stay within each limit). Both stores use it.
pub fn lease_refusal(line: &Line, c: &Counters, add: &LeaseAmounts) -> Option<DenyReason> {
    let over = |used: i64, held: i64, add: i64, limit: Option<i64>| {
        limit.is_some_and(|l| i128::from(used) + i128::from(held) + i128::from(add) > i128::from(l))
    };
    if over(
        c.requests,
        c.reserved_requests,
        add.requests,
        line.limit_requests,
    ) {
        Some(DenyReason::Requests)
    } else if over(
        c.spent_nanos,
        c.reserved_nanos,
        add.usd_nanos,
        line.limit_nanos,
    ) {
        Some(DenyReason::Usd)
    } else if over(c.tokens, c.reserved_tokens, add.tokens, line.limit_tokens) {
        Some(DenyReason::Tokens)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_top_up_keeps_a_lease_within_two_slices() {
        let slice = LeaseAmounts {
            usd_nanos: 100,
            tokens: 0,
            requests: 10,
        };
        let held = |u, q| LeaseAmounts {
            usd_nanos: u,
            tokens: 0,
            requests: q,
        };
        assert_eq!(LeaseAmounts::top_up(&slice, &held(0, 0)), slice);
        assert_eq!(LeaseAmounts::top_up(&slice, &held(150, 10)), held(50, 10));
        assert_eq!(LeaseAmounts::top_up(&slice, &held(250, 20)), held(0, 0));
    }
}
