//! The memory store's leases: each holds the same amounts on its windows (the window
//! generation it was taken on, as a reservation's hold), queued by release time so that
//! every call to the store releases those whose time has passed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tollgate_model::wire::v1::DenyReason;

use super::{Inner, KeyView};
use crate::store::{
    LeaseAmounts, LeaseMeta, LeaseOp, LeaseOutcome, LeaseTakeOp, LeaseView, Line, lease_refusal,
};

/// A lease still holding something (or whose release time has not come).
pub(super) struct MemLease {
    lines: Arc<[Line]>,
    /// The generation of each line's window when the lease was granted.
    generations: Vec<u64>,
    held: LeaseAmounts,
    admit_until_ms: i64,
    release_at_ms: i64,
    /// Its entry in `Leases::expiries`, with `release_at_ms`.
    seq: u64,
    returned: bool,
    meta: LeaseMeta,
}

#[derive(Default)]
pub(super) struct Leases {
    by_id: HashMap<String, MemLease>,
    /// (release at, seq) -> lease id.
    expiries: BTreeMap<(i64, u64), String>,
}

impl Inner {
    /// Adds `add` (negative: takes off) to a lease's hold on the windows it was granted on
    /// (those still in the same incarnation), clamping the held counters at zero.
    fn lease_hold(&mut self, lines: &[Line], generations: &[u64], add: &LeaseAmounts) {
        for (line, &generation) in lines.iter().zip(generations) {
            if let Some(w) = self.windows.get_mut(line as &dyn KeyView)
                && w.generation == generation
            {
                let c = &mut w.counters;
                c.reserved_nanos = c.reserved_nanos.saturating_add(add.usd_nanos).max(0);
                c.reserved_tokens = c.reserved_tokens.saturating_add(add.tokens).max(0);
                c.reserved_requests = c.reserved_requests.saturating_add(add.requests).max(0);
            }
        }
    }

    /// Releases the leases whose release time has passed.
    pub(super) fn release_expired_leases(&mut self, now_ms: i64) {
        while let Some(entry) = self.leases.expiries.first_entry() {
            if entry.key().0 > now_ms {
                break;
            }
            let id = entry.remove();
            if let Some(l) = self.leases.by_id.remove(&id) {
                self.lease_hold(&l.lines, &l.generations, &negated(&l.held));
            }
        }
    }

    fn check_lease_room(&self, op: &LeaseOp, add: &LeaseAmounts) -> Option<LeaseOutcome> {
        for (i, line) in op.lines.iter().enumerate() {
            if !line.enforce {
                continue;
            }
            let c = self
                .windows
                .get(line as &dyn KeyView)
                .map(|w| w.counters)
                .unwrap_or_default();
            let suspended = line.suspend_on_exceed
                && self
                    .suspended
                    .contains(&(line.tag.clone(), line.budget_id.clone()));
            let reason = if suspended {
                Some(DenyReason::Suspended)
            } else {
                lease_refusal(line, &c, add)
            };
            if let Some(reason) = reason {
                return Some(LeaseOutcome::Refused {
                    line: i,
                    reason,
                    counters: c,
                });
            }
        }
        None
    }

    pub(super) fn lease(&mut self, op: &LeaseOp) -> LeaseOutcome {
        let add = if op.renew {
            let Some(l) = self.leases.by_id.get(&op.lease_id).filter(|l| !l.returned) else {
                return LeaseOutcome::Gone;
            };
            let same = l.lines.len() == op.lines.len()
                && l.lines.iter().zip(&op.lines).all(|(a, b)| a.same_window(b));
            if !same {
                return LeaseOutcome::Moved;
            }
            LeaseAmounts::top_up(&op.amounts, &l.held)
        } else {
            if self.leases.by_id.contains_key(&op.lease_id) {
                return LeaseOutcome::Gone;
            }
            op.amounts
        };
        if let Some(refused) = self.check_lease_room(op, &add) {
            return refused;
        }
        self.seq += 1;
        let seq = self.seq;
        if op.renew {
            let Some(mut l) = self.leases.by_id.remove(&op.lease_id) else {
                return LeaseOutcome::Gone;
            };
            self.leases.expiries.remove(&(l.release_at_ms, l.seq));
            self.lease_hold(&l.lines, &l.generations, &add);
            l.held = added(&l.held, &add);
            l.admit_until_ms = op.admit_until_ms;
            l.release_at_ms = op.release_at_ms;
            l.seq = seq;
            self.leases
                .expiries
                .insert((op.release_at_ms, seq), op.lease_id.clone());
            self.leases.by_id.insert(op.lease_id.clone(), l);
            return LeaseOutcome::Granted(add);
        }
        let generations: Vec<u64> = op
            .lines
            .iter()
            .map(|line| self.window(line).generation)
            .collect();
        let lines: Arc<[Line]> = op.lines.as_slice().into();
        self.lease_hold(&lines, &generations, &add);
        self.leases
            .expiries
            .insert((op.release_at_ms, seq), op.lease_id.clone());
        self.leases.by_id.insert(
            op.lease_id.clone(),
            MemLease {
                lines,
                generations,
                held: add,
                admit_until_ms: op.admit_until_ms,
                release_at_ms: op.release_at_ms,
                seq,
                returned: false,
                meta: op.meta.clone(),
            },
        );
        LeaseOutcome::Granted(add)
    }

    pub(super) fn lease_take(&mut self, op: &LeaseTakeOp) -> Option<LeaseAmounts> {
        let l = self.leases.by_id.get_mut(&op.lease_id)?;
        let take = op.amounts.at_most(&l.held);
        l.held = added(&l.held, &negated(&take));
        l.returned |= op.returned;
        let (lines, generations) = (Arc::clone(&l.lines), l.generations.clone());
        // A returned lease holding nothing more is done; one still holding its calls in
        // flight waits for them (or for its release time).
        if l.returned && l.held.is_zero() {
            let (release_at_ms, seq) = (l.release_at_ms, l.seq);
            self.leases.by_id.remove(&op.lease_id);
            self.leases.expiries.remove(&(release_at_ms, seq));
        }
        self.lease_hold(&lines, &generations, &negated(&take));
        Some(take)
    }

    pub(super) fn lease_views(&self) -> Vec<LeaseView> {
        let mut out: Vec<LeaseView> = self
            .leases
            .by_id
            .iter()
            .map(|(id, l)| LeaseView {
                lease_id: id.clone(),
                meta: l.meta.clone(),
                held: l.held,
                admit_until_ms: l.admit_until_ms,
                release_at_ms: l.release_at_ms,
                returned: l.returned,
            })
            .collect();
        out.sort_by(|a, b| {
            crate::store::lease::tag_of(&a.lease_id)
                .cmp(crate::store::lease::tag_of(&b.lease_id))
                .then_with(|| a.lease_id.cmp(&b.lease_id))
        });
        out
    }
}

fn negated(a: &LeaseAmounts) -> LeaseAmounts {
    LeaseAmounts {
        usd_nanos: a.usd_nanos.saturating_neg(),
        tokens: a.tokens.saturating_neg(),
        requests: a.requests.saturating_neg(),
    }
}

fn added(a: &LeaseAmounts, b: &LeaseAmounts) -> LeaseAmounts {
    LeaseAmounts {
        usd_nanos: a.usd_nanos.saturating_add(b.usd_nanos),
        tokens: a.tokens.saturating_add(b.tokens),
        requests: a.requests.saturating_add(b.requests),
    }
}
