//! One key's lease as the workers of one Envoy share it: a shared-data value, read and
//! written with compare-and-swap so that two workers never take the same allowance.
//!
//! The value is one line of space-separated fields (`-` for an amount no budget limits, or
//! for no lease), the key's text last so that it may hold anything: a slot whose key differs
//! from the call's (a hash collision) is not that call's.

use tollgate_model::NanoUsd;

use crate::host::{Cas, Host, SharedDataError};

/// The format's first word.
const VERSION: &str = "L1";

/// What is left of an allowance, per dimension; `None`: no budget limits it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Amounts {
    /// Nano-USD.
    pub usd: Option<i64>,
    /// Tokens (estimated input + output cap per call).
    pub tokens: Option<u64>,
    /// Calls.
    pub requests: Option<u64>,
}

impl Amounts {
    /// Whether a call needing `usd`, `tokens` and one request fits.
    pub fn fits(&self, usd: NanoUsd, tokens: u64) -> bool {
        self.usd.is_none_or(|left| left >= usd.nanos())
            && self.tokens.is_none_or(|left| left >= tokens)
            && self.requests.is_none_or(|left| left >= 1)
    }

    /// Takes one call's `usd` and `tokens` (it [`fits`](Amounts::fits)).
    pub fn take(&mut self, usd: NanoUsd, tokens: u64) {
        self.usd = self.usd.map(|left| left.saturating_sub(usd.nanos()));
        self.tokens = self.tokens.map(|left| left.saturating_sub(tokens));
        self.requests = self.requests.map(|left| left.saturating_sub(1));
    }

    /// Adds a top-up: a dimension the top-up limits and this did not starts from it.
    pub fn add(&mut self, more: Amounts) {
        fn plus<T: Copy + std::ops::Add<Output = T>>(a: Option<T>, b: Option<T>) -> Option<T> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            }
        }
        self.usd = plus(self.usd, more.usd);
        self.tokens = plus(self.tokens, more.tokens);
        self.requests = plus(self.requests, more.requests);
    }

    /// Whether any limited dimension is under a quarter of what `granted` gave.
    pub fn low(&self, granted: &Amounts) -> bool {
        fn under<T: Copy + Into<i128>>(left: Option<T>, granted: Option<T>) -> bool {
            match (left, granted) {
                (Some(l), Some(g)) => l.into() * 4 < g.into(),
                _ => false,
            }
        }
        under(self.usd, granted.usd)
            || under(self.tokens, granted.tokens)
            || under(self.requests, granted.requests)
    }
}

/// A key's shared state.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Slot {
    /// The lease held, if any (an id the control plane gave: no whitespace).
    pub lease_id: Option<String>,
    /// What is left of it.
    pub left: Amounts,
    /// What the last grant or top-up gave (the low-water mark is a quarter of it).
    pub granted: Amounts,
    /// Admit nothing from it at or after this, Unix ms.
    pub admit_until_ms: i64,
    /// How long the last grant or renewal ran (its `admit_until` less the time it came), ms:
    /// a short `lease_ttl` is renewed when about a third of it is left, not on every tick.
    pub term_ms: i64,
    /// When a call was last taken from it, or asked for it, Unix ms.
    pub last_used_ms: i64,
    /// A worker is asking for, renewing or returning the lease until this, Unix ms.
    pub busy_until_ms: i64,
    /// Which worker (its [`super::Book`]'s id).
    pub busy_by: u64,
    /// Ask for no lease before this, Unix ms (after a refusal or a failure).
    pub quiet_until_ms: i64,
    /// The key's text.
    pub key: String,
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn read_opt<T: std::str::FromStr>(word: &str) -> Option<Option<T>> {
    if word == "-" {
        Some(None)
    } else {
        word.parse().ok().map(Some)
    }
}

impl Slot {
    /// A slot for `key` with no lease.
    pub fn new(key: &str) -> Slot {
        Slot {
            key: key.to_owned(),
            ..Slot::default()
        }
    }

    /// The lease id, while it may still admit at `now_ms` (with `margin_ms` kept before its
    /// end).
    pub fn live_lease(&self, now_ms: i64, margin_ms: i64) -> Option<&str> {
        self.lease_id
            .as_deref()
            .filter(|_| now_ms < self.admit_until_ms.saturating_sub(margin_ms))
    }

    /// The shared-data value.
    pub fn encode(&self) -> Vec<u8> {
        let (l, g) = (&self.left, &self.granted);
        format!(
            "{VERSION} {} {} {} {} {} {} {} {} {} {} {} {} {} {}",
            self.lease_id.as_deref().unwrap_or("-"),
            opt(l.usd),
            opt(l.tokens),
            opt(l.requests),
            opt(g.usd),
            opt(g.tokens),
            opt(g.requests),
            self.admit_until_ms,
            self.term_ms,
            self.last_used_ms,
            self.busy_until_ms,
            self.busy_by,
            self.quiet_until_ms,
            self.key,
        )
        .into_bytes()
    }

    /// Reads a value; `None` when it is not one this release wrote.
    pub fn decode(bytes: &[u8]) -> Option<Slot> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut words = text.splitn(15, ' ');
        let mut next = || words.next();
        if next()? != VERSION {
            return None;
        }
        let lease_id = Some(next()?).filter(|w| *w != "-").map(str::to_owned);
        let left = Amounts {
            usd: read_opt(next()?)?,
            tokens: read_opt(next()?)?,
            requests: read_opt(next()?)?,
        };
        let granted = Amounts {
            usd: read_opt(next()?)?,
            tokens: read_opt(next()?)?,
            requests: read_opt(next()?)?,
        };
        Some(Slot {
            lease_id,
            left,
            granted,
            admit_until_ms: next()?.parse().ok()?,
            term_ms: next()?.parse().ok()?,
            last_used_ms: next()?.parse().ok()?,
            busy_until_ms: next()?.parse().ok()?,
            busy_by: next()?.parse().ok()?,
            quiet_until_ms: next()?.parse().ok()?,
            key: next()?.to_owned(),
        })
    }
}

/// How often a compare-and-swap is tried before the change is given up (another worker
/// kept changing the slot meanwhile).
const TRIES: usize = 8;

/// Changes the slot `name` of `key` with `change`, which sees the current slot (a new one
/// when there is none, or when the value is another key's or unreadable) and returns what
/// to make of it: `None` leaves the slot as it is. Returns what `change` returned along with
/// the slot written, or `None` when nothing was written.
pub fn update<T>(
    host: &dyn Host,
    name: &str,
    key: &str,
    mut change: impl FnMut(&mut Slot) -> Option<T>,
) -> Option<(T, Slot)> {
    for _ in 0..TRIES {
        let (mut slot, cas): (Slot, Option<Cas>) = match host.get_shared_data(name) {
            Some((bytes, cas)) => (
                Slot::decode(&bytes)
                    .filter(|s| s.key == key)
                    .unwrap_or_else(|| Slot::new(key)),
                Some(cas),
            ),
            None => (Slot::new(key), None),
        };
        let out = change(&mut slot)?;
        match host.set_shared_data(name, &slot.encode(), cas) {
            Ok(()) => return Some((out, slot)),
            Err(SharedDataError::CasMismatch) => continue,
            Err(SharedDataError::Failed) => return None,
        }
    }
    None
}

/// Reads the slot `name` of `key`, if there is one.
pub fn read(host: &dyn Host, name: &str, key: &str) -> Option<Slot> {
    let (bytes, _) = host.get_shared_data(name)?;
    Slot::decode(&bytes).filter(|s| s.key == key)
}
