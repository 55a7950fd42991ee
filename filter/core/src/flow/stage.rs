//! Where one request stands: the exchange's one state machine.
//!
//! ```text
//!  New ─headers─▶ Reading ─body read─────────────────────────────▶ Answering ─▶ (finish) Done
//!   │              │   ▲   └─body read, reserve posted─▶ Waiting ─allow──▶ ▲
//!   │              │   └──────allow (body still to come)◀─ Waiting ◀─reserve at the headers
//!   │              └─refused (413, no scope)─▶ Done   Waiting ─deny─▶ Done | Released
//!   └─not governed─▶ Done
//! ```
//!
//! [`Stage`] says what the next callback may do; [`Admit`] (inside it) what admission made of
//! the call, which decides how its charge is settled. An answer the upstream sends before the
//! call is admitted is held inside the stage that holds it ([`EarlyAnswer`]) and released, or
//! replaced by the refusal, when admission is decided. The adapter never keeps state of its
//! own: it carries out what each callback returns.

/// What admission made of the call so far; it decides how the charge is settled.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admit {
    /// No control plane: nothing to ask, nothing to settle.
    #[default]
    Free,
    /// A control plane decides the call; it was not asked yet.
    Undecided,
    /// Reserved: settled with the charge.
    Reserved,
    /// The control plane could not answer and the fail mode let the call through: settled
    /// unreserved.
    FailedOpen,
    /// Taken from a lease (`lease.rs`): settled as reserved, with the lease's id.
    Leased,
}

impl Admit {
    /// `Some(reserved)` when the charge is settled, as reserved or not.
    pub(super) fn settles(self) -> Option<bool> {
        match self {
            Admit::Reserved | Admit::Leased => Some(true),
            Admit::FailedOpen => Some(false),
            Admit::Free | Admit::Undecided => None,
        }
    }
}

/// Where a request waits while its reservation is in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Held {
    /// At the headers (the whole request waits; `:path` can still change). `body_follows`
    /// is false for a request that ended with its headers: its empty body is read when the
    /// call is admitted, as no body callback will come.
    Headers {
        /// A body callback will come.
        body_follows: bool,
    },
    /// At the end of the body: `len` bytes buffered (the body can still change).
    Body {
        /// The held body's length.
        len: usize,
    },
}

/// An upstream's answer that arrived before the call's admission was decided: its status
/// and a copy of the body Envoy buffers meanwhile (everything buffered so far).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct EarlyAnswer {
    pub(super) status: u16,
    pub(super) body: Vec<u8>,
}

/// How far a cut-off stream has gone.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cut {
    /// Not cut off.
    #[default]
    No,
    /// The error event went out with the last chunk; the next callback resets the stream.
    Announced,
    /// Reset.
    Done,
}

/// Where one request stands; see the module docs.
#[derive(Debug, Default)]
pub(super) enum Stage {
    /// Before the request headers.
    #[default]
    New,
    /// Governed; the request body is being read. `admit` is `Reserved` or `FailedOpen` when a
    /// path-model call was admitted at its headers.
    Reading {
        admit: Admit,
        answer: Option<EarlyAnswer>,
    },
    /// The reservation is in flight; the request is held where `held` says.
    Waiting {
        held: Held,
        answer: Option<EarlyAnswer>,
    },
    /// The request went on; the answer is read as it passes.
    Answering { admit: Admit, cut: Cut },
    /// Refused after a reservation was (or may have been) made: it is released (settled at
    /// zero) when the stream ends.
    Released,
    /// Charged, or ended with nothing to settle; every later callback is a no-op.
    Done,
}

impl Stage {
    /// The stage of a call whose request went on, with the answer not seen yet.
    pub(super) fn answering(admit: Admit) -> Stage {
        Stage::Answering {
            admit,
            cut: Cut::No,
        }
    }

    /// `Some(reserved)` when the charge of a stream ending in this stage is settled, as
    /// reserved or not.
    pub(super) fn settles(&self) -> Option<bool> {
        match self {
            // A reservation may have been made even if its answer never arrived.
            Stage::Waiting { .. } | Stage::Released => Some(true),
            Stage::Reading { admit, .. } | Stage::Answering { admit, .. } => admit.settles(),
            Stage::New | Stage::Done => None,
        }
    }

    /// Whether a budget's cut-off stopped the stream.
    pub(super) fn cut_off(&self) -> bool {
        matches!(self, Stage::Answering { cut, .. } if *cut != Cut::No)
    }

    /// Whether an answer arriving now must be held back: the call's admission is not decided
    /// (a control plane decides it and the request is still being read, or its reservation
    /// is in flight).
    pub(super) fn answer_waits(&self) -> bool {
        match self {
            Stage::Waiting { .. } => true,
            Stage::Reading { admit, .. } => *admit == Admit::Undecided,
            _ => false,
        }
    }

    /// The answer held in this stage, if any.
    pub(super) fn early_answer(&mut self) -> Option<&mut Option<EarlyAnswer>> {
        match self {
            Stage::Reading { answer, .. } | Stage::Waiting { answer, .. } => Some(answer),
            _ => None,
        }
    }
}
