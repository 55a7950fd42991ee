//! Leases: calls admitted locally from an allowance the control plane carved out of every
//! budget they match, with no round trip (issue 21; `docs/enforcement.md`, "Leases").
//!
//! A lease is held per *key* (a call's scopes, model and provider: what decides its budgets)
//! by the whole Envoy: its workers share it through one shared-data slot per key
//! (`lease/slot.rs`), taking each call's worst-case estimate out of it with compare-and-swap,
//! so no two workers take the same allowance. A call that finds no lease for its key, or too
//! little left, is reserved on its own as before ([`crate::flow`]) and makes its key wanted.
//!
//! Each worker's root context keeps a [`Book`] of the keys its calls wanted and, on its tick,
//! asks for a lease (`POST /v1/admission/lease`), renews one before it ends or when a
//! quarter of it is left, and returns what is left of one that went unused for [`IDLE_MS`]
//! (`POST /v1/admission/lease/return`). One worker at a time does so per key (the slot's
//! `busy` mark). A leased call's settlement carries the lease id and what it took, so the
//! control plane moves that from the lease's hold to spent; what is never taken is returned
//! or, if the Envoy dies, released by the control plane when the lease expires.
//!
//! Only a lease a control plane granted is ever used: an older control plane answers the
//! lease path 404, and every call of the key is then reserved on its own.

use tollgate_model::wire::v1::{
    LEASE_PATH, LEASE_RETURN_PATH, LeaseRequest, LeaseResponse, LeaseReturn,
};
use tollgate_model::{NanoUsd, Scope};

use crate::host::{Host, LogLevel};

pub mod slot;

use slot::{Amounts, Slot};

/// No call is admitted from a lease within this of its end (the control plane's clock and
/// this one may differ; the control plane keeps covering calls admitted before the end).
pub const ADMIT_MARGIN_MS: i64 = 1_000;
/// A lease in use is renewed when it ends within this, or, if shorter, within a third of its
/// term plus [`ADMIT_MARGIN_MS`].
pub const RENEW_BEFORE_MS: i64 = 10_000;
/// A lease no call used for this long is returned; a key no call wanted for this long is
/// forgotten.
pub const IDLE_MS: i64 = 10_000;
/// How long one worker's ask, renewal or return keeps the others from doing the same.
pub const BUSY_MS: i64 = 5_000;
/// How long no lease is asked for a key after the control plane granted none.
pub const QUIET_MS: i64 = 5_000;
/// How long after a control plane that does not know leases (404) before asking again.
pub const QUIET_UNKNOWN_MS: i64 = 60_000;

/// What a lease is asked for: the fields of a reserve that decide which budgets match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseKey {
    /// The call's scopes.
    pub scopes: Vec<Scope>,
    /// The model as a reserve names it (the price table's id).
    pub model: String,
    /// The provider.
    pub provider: String,
}

impl LeaseKey {
    /// The key as one string (the slot keeps it to tell a hash collision).
    pub fn text(&self) -> String {
        let mut out = String::new();
        for scope in &self.scopes {
            out.push_str(&scope.to_string());
            out.push(',');
        }
        out.push('|');
        out.push_str(&self.provider);
        out.push('|');
        out.push_str(&self.model);
        out
    }

    /// The shared-data name of the key's slot.
    pub fn slot_name(text: &str) -> String {
        // FNV-1a: stable across workers and releases, no dependency.
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("tollgate.lease.{hash:016x}")
    }
}

/// What a call took from a lease: its settlement says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    /// The lease.
    pub lease_id: String,
    /// The call's worst-case cost.
    pub usd: NanoUsd,
    /// Its estimated input tokens plus its output cap.
    pub tokens: u64,
}

/// Takes a call needing `usd` and `tokens` out of the lease of `key` at `now_ms`: `None`
/// when there is none, it ends within [`ADMIT_MARGIN_MS`], or too little is left.
pub fn take(host: &dyn Host, key: &str, now_ms: i64, usd: NanoUsd, tokens: u64) -> Option<Taken> {
    let name = LeaseKey::slot_name(key);
    // One read: `update` reads the slot and writes nothing when `change` declines (no slot,
    // no live lease, too little left), so a key without a lease costs no more than a look.
    let (lease_id, _) = slot::update(host, &name, key, |s| {
        let id = s.live_lease(now_ms, ADMIT_MARGIN_MS)?.to_owned();
        if !s.left.fits(usd, tokens) {
            return None;
        }
        s.left.take(usd, tokens);
        s.last_used_ms = now_ms;
        Some(id)
    })?;
    Some(Taken {
        lease_id,
        usd,
        tokens,
    })
}

/// What a [`Book`] asks its root context to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    /// `:path`.
    pub path: &'static str,
    /// The JSON body.
    pub body: Vec<u8>,
    /// What its answer is for ([`Book::answered`]).
    pub purpose: Purpose,
}

/// What a posted lease call was for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// A new lease for the key (`text`).
    Ask {
        /// The key's text.
        key: String,
    },
    /// A renewal of `lease_id`.
    Renew {
        /// The key's text.
        key: String,
        /// The lease renewed.
        lease_id: String,
    },
    /// A return (its answer changes nothing).
    Return,
}

/// One worker's keys that want a lease, and its id as a holder.
#[derive(Debug, Default)]
pub struct Book {
    /// This worker's id (a holder's id, and the slot's `busy_by`).
    id: u64,
    /// Keys wanted: the key's text, the key, and when a call of it last wanted a lease,
    /// Unix ms. A few keys per worker: a list is smaller in the `.wasm` than a map.
    wanted: Vec<(String, LeaseKey, i64)>,
}

impl Book {
    /// A book for a worker told apart from the others by `id` (the clock's nanoseconds at
    /// its start serve).
    pub fn new(id: u64) -> Book {
        Book {
            id: id.max(1),
            wanted: Vec::new(),
        }
    }

    /// Gives a book made by `Default` (id 0) its worker id.
    pub fn start(&mut self, id: u64) {
        if self.id == 0 {
            self.id = id.max(1);
        }
    }

    /// A call of `key` was reserved on its own at `now_ms`: its key wants a lease.
    pub fn want(&mut self, key: LeaseKey, now_ms: i64) {
        let text = key.text();
        match self.wanted.iter_mut().find(|(t, ..)| *t == text) {
            Some(entry) => entry.2 = now_ms,
            None => self.wanted.push((text, key, now_ms)),
        }
    }

    /// How many keys this worker looks after.
    pub fn keys(&self) -> usize {
        self.wanted.len()
    }

    fn holder(&self) -> String {
        format!("envoy-worker-{:x}", self.id)
    }

    /// The tick at `now_ms`: for each key, asks for a lease, renews one, returns one that
    /// went unused, or forgets a key no call wanted for [`IDLE_MS`]; returns the posts.
    pub fn tick(&mut self, host: &dyn Host, now_ms: i64) -> Vec<Post> {
        let mut posts = Vec::new();
        let id = self.id;
        let holder = self.holder();
        self.wanted.retain(|(text, key, wanted_ms)| {
            let name = LeaseKey::slot_name(text);
            let current = slot::read(host, &name, text).unwrap_or_else(|| Slot::new(text));
            if current.busy_until_ms > now_ms || current.quiet_until_ms > now_ms {
                return true;
            }
            let used_ms = current.last_used_ms.max(*wanted_ms);
            let idle = now_ms.saturating_sub(used_ms) >= IDLE_MS;
            match current.live_lease(now_ms, ADMIT_MARGIN_MS) {
                Some(_) if idle => {
                    // Unused: give back what is left; the key is forgotten.
                    if let Some(post) = return_lease(host, &name, text, now_ms) {
                        posts.push(post);
                    }
                    false
                }
                Some(lease_id) => {
                    let renew_within = RENEW_BEFORE_MS.min(ADMIT_MARGIN_MS + current.term_ms / 3);
                    let ending = current.admit_until_ms.saturating_sub(now_ms) < renew_within;
                    if ending || current.left.low(&current.granted) {
                        let lease_id = lease_id.to_owned();
                        if claim(host, &name, text, id, now_ms) {
                            posts.push(ask(key, &holder, Some(lease_id), now_ms));
                        }
                    }
                    true
                }
                None if idle => false,
                None => {
                    if claim(host, &name, text, id, now_ms) {
                        posts.push(ask(key, &holder, None, now_ms));
                    }
                    true
                }
            }
        });
        posts
    }

    /// The control plane answered a lease post with `status` and `body` (`None`: no
    /// answer). Stores a lease granted, and returns any post that follows (a lease that
    /// cannot be used is returned at once).
    pub fn answered(
        &mut self,
        host: &dyn Host,
        purpose: &Purpose,
        status: Option<u16>,
        body: &[u8],
        now_ms: i64,
    ) -> Option<Post> {
        let (key, renewed) = match purpose {
            Purpose::Return => return None,
            Purpose::Ask { key } => (key, None),
            Purpose::Renew { key, lease_id } => (key, Some(lease_id.as_str())),
        };
        let name = LeaseKey::slot_name(key);
        let response = (status == Some(200))
            .then(|| serde_json::from_slice::<LeaseResponse>(body).ok())
            .flatten();
        let Some(lease) = response
            .and_then(|r| r.lease)
            .filter(|l| !l.lease_id.is_empty() && !l.lease_id.contains(char::is_whitespace))
        else {
            let quiet = if status == Some(404) {
                QUIET_UNKNOWN_MS
            } else {
                QUIET_MS
            };
            if status != Some(200) {
                host.log(
                    LogLevel::Info,
                    &format!("tollgate: no lease for {key} (status {status:?})"),
                );
            }
            slot::update(host, &name, key, |s| {
                s.busy_until_ms = 0;
                s.quiet_until_ms = now_ms.saturating_add(quiet);
                Some(())
            });
            return None;
        };
        let granted = Amounts {
            usd: lease.usd.map(NanoUsd::nanos),
            tokens: lease.tokens,
            requests: lease.requests,
        };
        // What to give back: a lease this slot cannot take (another worker's arrived first),
        // or the lease this one replaces.
        let mut give_back: Option<(String, Amounts)> = None;
        slot::update(host, &name, key, |s| {
            give_back = None;
            s.busy_until_ms = 0;
            let held = s.live_lease(now_ms, 0).map(str::to_owned);
            match held {
                Some(id) if id == lease.lease_id => {
                    // A top-up of the lease held.
                    s.left.add(granted);
                    s.granted = granted;
                    s.admit_until_ms = lease.admit_until_unix_ms;
                    s.term_ms = lease.admit_until_unix_ms.saturating_sub(now_ms);
                }
                Some(id) if renewed != Some(id.as_str()) => {
                    // Another worker's lease is in place: this one is not needed.
                    give_back = Some((lease.lease_id.clone(), granted));
                }
                held => {
                    // A new lease, replacing the one renewed (gone at the control plane).
                    if let Some(old) = held {
                        give_back = Some((old, s.left));
                    }
                    s.lease_id = Some(lease.lease_id.clone());
                    s.left = granted;
                    s.granted = granted;
                    s.admit_until_ms = lease.admit_until_unix_ms;
                    s.term_ms = lease.admit_until_unix_ms.saturating_sub(now_ms);
                }
            }
            Some(())
        })?;
        give_back.map(|(lease_id, left)| return_post(lease_id, left, now_ms))
    }
}

/// Marks the slot busy for worker `id` (an ask or a renewal in flight); `false` when another
/// worker already is.
fn claim(host: &dyn Host, name: &str, key: &str, id: u64, now_ms: i64) -> bool {
    slot::update(host, name, key, |s| {
        if s.busy_until_ms > now_ms || s.quiet_until_ms > now_ms {
            return None;
        }
        s.busy_until_ms = now_ms.saturating_add(BUSY_MS);
        s.busy_by = id;
        Some(())
    })
    .is_some_and(|(_, s)| s.busy_by == id)
}

/// Takes what is left of the key's lease out of its slot (no worker can take from it any
/// more) and returns the post that gives it back.
fn return_lease(host: &dyn Host, name: &str, key: &str, now_ms: i64) -> Option<Post> {
    let ((lease_id, left), _) = slot::update(host, name, key, |s| {
        let id = s.lease_id.take()?;
        let left = std::mem::take(&mut s.left);
        s.granted = Amounts::default();
        s.admit_until_ms = 0;
        Some((id, left))
    })?;
    Some(return_post(lease_id, left, now_ms))
}

fn return_post(lease_id: String, left: Amounts, now_ms: i64) -> Post {
    let body = LeaseReturn {
        lease_id,
        usd: NanoUsd(left.usd.unwrap_or(0).max(0)),
        tokens: left.tokens.unwrap_or(0),
        requests: left.requests.unwrap_or(0),
        at_unix_ms: now_ms,
    };
    Post {
        path: LEASE_RETURN_PATH,
        body: serde_json::to_vec(&body).unwrap_or_default(),
        purpose: Purpose::Return,
    }
}

fn ask(key: &LeaseKey, holder: &str, lease_id: Option<String>, now_ms: i64) -> Post {
    let text = key.text();
    let purpose = match &lease_id {
        Some(id) => Purpose::Renew {
            key: text,
            lease_id: id.clone(),
        },
        None => Purpose::Ask { key: text },
    };
    let body = LeaseRequest {
        holder: holder.to_owned(),
        scopes: key.scopes.clone(),
        model: key.model.clone(),
        provider: key.provider.clone(),
        lease_id,
        at_unix_ms: now_ms,
    };
    Post {
        path: LEASE_PATH,
        body: serde_json::to_vec(&body).unwrap_or_default(),
        purpose,
    }
}

#[cfg(test)]
mod tests;
