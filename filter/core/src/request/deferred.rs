//! A request's input estimate, made at the charge and only if the charge needs it.
//!
//! Without a control plane nothing on the request's path uses the input estimate: it only
//! stands in for the input count of an answer that reports no usage (a stream cut short, a
//! provider that omits it), at the charge. Answers almost always report usage, and the
//! estimate is a pass over the whole body (~80–95 µs for a 100 KB body in Envoy's V8,
//! `docs/filter.md`), so the exchange keeps its copy of the body in a [`DeferredEstimate`]
//! and estimates it only when asked.
//!
//! The price is memory: the body is kept until the stream is charged, which for a stream
//! can be minutes. So the VM accounts for the bodies kept
//! ([`crate::charging::Charging::keep_for_estimate`]) and past a cap a body is estimated as
//! it is read, as with a control plane.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::estimate_request_tokens;

/// A request body whose input estimate is made later, if at all; see the module docs.
#[derive(Debug)]
pub struct DeferredEstimate {
    /// The body, until it is estimated.
    body: RefCell<Option<Vec<u8>>>,
    tokens: Cell<u64>,
    /// The VM's count of bytes kept, when this body is in it: given back when the body goes.
    kept: RefCell<Option<Rc<Cell<usize>>>>,
}

impl DeferredEstimate {
    /// The estimate of `body`, to be made when asked.
    pub fn new(body: Vec<u8>) -> DeferredEstimate {
        DeferredEstimate {
            body: RefCell::new(Some(body)),
            tokens: Cell::new(0),
            kept: RefCell::new(None),
        }
    }

    /// The input estimate ([`estimate_request_tokens`]), made now if it was not made yet.
    pub fn tokens(&self) -> u64 {
        let body = self.body.borrow_mut().take();
        if let Some(body) = body {
            self.tokens.set(estimate_request_tokens(&body));
            self.give_back(body.len());
        }
        self.tokens.get()
    }

    /// The bytes kept until the estimate is made: the body's length, then 0.
    pub fn pending_bytes(&self) -> usize {
        self.body.borrow().as_ref().map_or(0, Vec::len)
    }

    /// Counts the body in `kept` until it goes, unless that would take `kept` past `cap`;
    /// `false` when it does not fit. A body counted already stays as it is.
    pub(crate) fn count_in(&self, kept: &Rc<Cell<usize>>, cap: usize) -> bool {
        let mut counted = self.kept.borrow_mut();
        if counted.is_some() {
            return true;
        }
        let total = kept.get().saturating_add(self.pending_bytes());
        if total > cap {
            return false;
        }
        kept.set(total);
        *counted = Some(kept.clone());
        true
    }

    fn give_back(&self, bytes: usize) {
        if let Some(kept) = self.kept.borrow_mut().take() {
            kept.set(kept.get().saturating_sub(bytes));
        }
    }
}

impl Drop for DeferredEstimate {
    fn drop(&mut self) {
        self.give_back(self.pending_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"model":"m","messages":[{"role":"user","content":"one two three"}]}"#;

    #[test]
    fn the_estimate_is_made_once_and_the_body_dropped() {
        let estimate = DeferredEstimate::new(BODY.to_vec());
        assert_eq!(estimate.pending_bytes(), BODY.len());
        let tokens = estimate.tokens();
        assert_eq!(tokens, estimate_request_tokens(BODY));
        assert_eq!(estimate.pending_bytes(), 0);
        assert_eq!(estimate.tokens(), tokens);
    }

    #[test]
    fn a_counted_body_is_given_back_when_estimated_or_dropped() {
        let kept = Rc::new(Cell::new(0));
        let estimated = DeferredEstimate::new(BODY.to_vec());
        let dropped = DeferredEstimate::new(BODY.to_vec());
        let cap = 2 * BODY.len();
        assert!(estimated.count_in(&kept, cap));
        assert!(estimated.count_in(&kept, cap));
        assert_eq!(kept.get(), BODY.len(), "counted once");
        assert!(dropped.count_in(&kept, cap));
        assert_eq!(kept.get(), 2 * BODY.len());
        assert!(!DeferredEstimate::new(b"{}".to_vec()).count_in(&kept, cap));
        estimated.tokens();
        assert_eq!(kept.get(), BODY.len());
        drop(estimated);
        assert_eq!(kept.get(), BODY.len(), "given back once");
        drop(dropped);
        assert_eq!(kept.get(), 0);
    }
}
