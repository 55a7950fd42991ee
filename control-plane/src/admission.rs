//! Admission: turn a filter's reserve request into one atomic store call over every budget
//! that matches it, and its settlements into idempotent charges.
//!
//! Decisions: allow (with the least USD left among matching USD budgets), downgrade (the
//! binding budget maps the model to a cheaper one; the call is re-priced and re-checked), or
//! deny (binding budget, reason, what is left, seconds to the window's end). Shadow budgets
//! are reserved and recorded but never refuse. A store failure is an error, never a guess.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tollgate_model::NanoUsd;
use tollgate_model::budget::{Budget, Enforcement};
use tollgate_model::period::{Period, Window};
use tollgate_model::pricing::{Cost, PricingError, UnknownModelPolicy};
use tollgate_model::scope::{FailMode, Scope, ScopeKind};
use tollgate_model::usage::Usage;
use tollgate_model::wire::v1::{
    DenyReason, MAX_SETTLE_BATCH, ReserveRequest, ReserveResponse, SettleBatch, SettleResponse,
    Settlement,
};

use crate::catalog::{Snapshot, SwitchMode};
use crate::ledger::{RequestRecord, entry};
use crate::store::{
    AlertEvent, Line, ReserveOp, ReserveOutcome, SettleOp, SettleOutcome, Store, StoreError,
    left_under,
};
use crate::unpriced::{self, Unpriced};

/// Longest request id accepted (Envoy's are 36-character UUIDs).
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Timings admission applies to every call.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionSettings {
    /// How long a reservation holds before it releases itself.
    pub reservation_ttl_ms: i64,
    /// How long a reservation's record is kept (a later settle still charges its windows).
    pub record_ttl_ms: i64,
    /// How long a settled request id blocks replays.
    pub dedupe_ttl_ms: i64,
    /// Whether settlements and refusals are written to the ledger.
    pub ledger: bool,
    /// How long a lease lets its holder admit calls (docs/leases.md); it is released
    /// `reservation_ttl_ms` after that, so that its last calls are covered as they settle.
    pub lease_ttl_ms: i64,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        AdmissionSettings {
            reservation_ttl_ms: 600_000,
            record_ttl_ms: 86_400_000,
            dedupe_ttl_ms: 3_600_000,
            ledger: true,
            lease_ttl_ms: 30_000,
        }
    }
}

/// Why admission could not answer.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    /// The request breaks a rule; names the field.
    #[error("{field}: {message}")]
    Invalid {
        /// JSON path of the field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> AdmissionError {
    AdmissionError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Most nano-USD a limit may hold: the Redis scripts compare in doubles, exact below 2^53.
pub const MAX_LIMIT_NANOS: i64 = (1 << 53) - 1;

/// The hash tag of a budget's keys: its org selector's value, or `global`.
pub fn budget_tag(b: &Budget) -> String {
    b.scopes
        .iter()
        .find(|s| s.kind() == ScopeKind::Org)
        .map_or_else(|| "global".to_owned(), |s| s.value().to_owned())
}

/// The hash tag of a request's own keys: its org scope's value, or `global`.
pub fn request_tag(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .find(|s| s.kind() == ScopeKind::Org)
        .map_or_else(|| "global".to_owned(), |s| s.value().to_owned())
}

/// Calendar windows computed lately, per thread: (period, zone, window).
const WINDOW_CACHE: usize = 32;

thread_local! {
    static WINDOWS: std::cell::RefCell<Vec<(Period, Tz, Window)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// `period.window(now, tz)`, from a per-thread cache while `now` stays inside the window
/// computed last: the time-zone arithmetic of a calendar window costs more than the rest of
/// building a line. Hourly windows are not cached: a two-hour DST shift can repeat a whole
/// hour, and only `Period::window` knows which occurrence it is in.
fn window_of(period: Period, tz: Tz, now: DateTime<Utc>) -> Window {
    let cacheable = matches!(
        period,
        Period::Daily | Period::Weekly | Period::Monthly | Period::Quarterly | Period::Yearly
    );
    if !cacheable {
        return period.window(now, tz);
    }
    WINDOWS.with(|cell| {
        let mut cache = cell.borrow_mut();
        let hit = cache.iter().position(|(p, z, _)| *p == period && *z == tz);
        if let Some(i) = hit {
            let w = cache[i].2;
            if w.start <= now && w.end.is_some_and(|end| now < end) {
                return w;
            }
        }
        let w = period.window(now, tz);
        match hit {
            Some(i) => cache[i].2 = w,
            None if cache.len() < WINDOW_CACHE => cache.push((period, tz, w)),
            None => cache[0] = (period, tz, w),
        }
        w
    })
}

/// The window of `b` holding `now`, and the store line for it. Counters live on for a grace
/// period after the window (its own length, between one minute and one day) so that late
/// settlements and reports still find them.
pub fn line_for(b: &Budget, now: DateTime<Utc>) -> (Line, Window) {
    let window = window_of(b.period, b.timezone, now);
    let expire_at_ms = window.end.map(|end| {
        let len_ms = (end - window.start).num_milliseconds();
        end.timestamp_millis() + len_ms.clamp(60_000, 86_400_000)
    });
    let line = Line {
        budget_id: b.id.clone(),
        tag: budget_tag(b),
        window_index: window.index,
        expire_at_ms,
        limit_nanos: b.limit.map(NanoUsd::nanos),
        limit_tokens: b.limit_tokens.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
        limit_requests: b
            .limit_requests
            .map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
        enforce: b.enforcement != Enforcement::Shadow,
        suspend_on_exceed: b.suspend_on_exceed,
        thresholds_pct: b.thresholds_pct.clone(),
    };
    (line, window)
}

/// Checks a request id: 1-128 bytes, no whitespace or control characters.
pub fn check_request_id(field: &str, id: &str) -> Result<(), AdmissionError> {
    if id.is_empty()
        || id.len() > MAX_REQUEST_ID_LEN
        || id.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid(
            field,
            "must be 1-128 bytes without whitespace or control characters",
        ));
    }
    Ok(())
}

/// A price in nano-USD: `None` for a model the table does not know; a cost too large for
/// nano-USD saturates (the store refuses or caps it), never wraps or becomes zero.
fn priced(cost: Result<Cost, PricingError>) -> Option<i64> {
    match cost {
        Ok(c) => Some(c.total.nanos()),
        Err(PricingError::Overflow(_)) => Some(i64::MAX),
        Err(_) => None,
    }
}

/// The price-table id of `model`, or the name as given when the table does not know it.
pub(crate) fn model_id(snap: &Snapshot, model: &str) -> String {
    snap.prices
        .resolve(model)
        .map_or_else(|| model.to_owned(), |m| m.id().to_owned())
}

/// The budgets a call by `scopes` for `model` counts toward: a budget limited to a model
/// counts every name of its family (`PriceTable::model_family`: dated snapshots, aliases,
/// inference profiles); a model the table does not know counts only as itself. The family
/// is looked up only when a budget of the call's scopes is limited to a model (resolving
/// it took 5 % of the control plane's CPU in `bench-enforcement`, for budgets naming none).
pub(crate) fn matching<'a>(
    snap: &'a Snapshot,
    scopes: &[Scope],
    model: &str,
) -> Vec<&'a Arc<Budget>> {
    let mut family: Option<Vec<&str>> = None;
    snap.budgets
        .iter()
        .filter(|b| {
            if b.model.is_none() {
                return b.matches_any_model(scopes, &[]);
            }
            let family = family.get_or_insert_with(|| {
                let mut f = snap.prices.model_family(model);
                if f.is_empty() {
                    f.push(model);
                }
                f
            });
            b.matches_any_model(scopes, family)
        })
        .collect()
}

struct Attempt {
    budgets: Vec<Arc<Budget>>,
    windows: Vec<Window>,
    outcome: ReserveOutcome,
    /// The estimate reserved (nano-USD).
    cost: i64,
}

/// Everything a reserve needs besides the store.
pub struct Admission<'a> {
    /// The store.
    pub store: &'a dyn Store,
    /// Budgets, switches and prices.
    pub snap: &'a Snapshot,
    /// Timings.
    pub settings: AdmissionSettings,
    /// The service's unknown-model policy (budgets may set their own).
    pub unknown_model: &'a UnknownModelPolicy,
    /// The current time.
    pub now: DateTime<Utc>,
    /// Where unpriced models seen are noted for their alert.
    pub sightings: &'a crate::unpriced::Sightings,
}

impl Admission<'_> {
    async fn attempt(
        &self,
        req: &ReserveRequest,
        model: &str,
        cost: i64,
    ) -> Result<Attempt, AdmissionError> {
        let budgets: Vec<Arc<Budget>> = matching(self.snap, &req.scopes, model)
            .into_iter()
            .cloned()
            .collect();
        let (lines, windows): (Vec<Line>, Vec<Window>) =
            budgets.iter().map(|b| line_for(b, self.now)).unzip();
        let tokens = req
            .estimated_input_tokens
            .saturating_add(req.max_output_tokens);
        let op = ReserveOp {
            request_id: req.request_id.clone(),
            request_tag: request_tag(&req.scopes),
            lines,
            cost_nanos: cost,
            tokens: i64::try_from(tokens).unwrap_or(i64::MAX),
            now_ms: self.now.timestamp_millis(),
            reservation_ttl_ms: self.settings.reservation_ttl_ms,
            record_ttl_ms: self.settings.record_ttl_ms,
        };
        let outcome = self.store.reserve(&op).await?;
        Ok(Attempt {
            budgets,
            windows,
            outcome,
            cost,
        })
    }

    /// The call's worst case priced here for `target` (its model, or a cheaper one): the
    /// filter's input estimate and output cap, at the prices in force now. `None` when this
    /// side cannot price `target`.
    fn reprice(&self, req: &ReserveRequest, target: &str) -> Option<i64> {
        let usage = Usage::worst_case(req.estimated_input_tokens, req.max_output_tokens);
        priced(self.snap.prices.cost(target, &usage, self.now))
    }

    /// Decides one reserve request; a refusal is written to the ledger. When the store is
    /// down or full, the budgets the call matches decide by their fail mode
    /// (`Admission::store_down`).
    pub async fn reserve(&self, req: &ReserveRequest) -> Result<ReserveResponse, AdmissionError> {
        let resp = match self.decide(req).await {
            Err(AdmissionError::Store(e @ (StoreError::Unavailable(_) | StoreError::Full(_)))) => {
                return self.store_down(req).ok_or(AdmissionError::Store(e));
            }
            other => other?,
        };
        if let ReserveResponse::Deny {
            budget_id, reason, ..
        } = &resp
            && self.settings.ledger
        {
            self.record_refusal(req, *reason, budget_id).await;
        }
        Ok(resp)
    }

    /// The answer when the store cannot take the reservation: the fail mode of the enforced
    /// budgets the call matches that set one (from the catalog, which needs no store). Any
    /// `closed` one refuses it (`store_unavailable`, retry after 1 s); all `open` admit it
    /// unreserved (the filter settles it later as a fail-open call). `None` when no such
    /// budget matches: the store error stands (503) and the filter's own fail mode applies.
    fn store_down(&self, req: &ReserveRequest) -> Option<ReserveResponse> {
        let model = model_id(self.snap, &req.model);
        let budgets: Vec<&Arc<Budget>> = matching(self.snap, &req.scopes, &model)
            .into_iter()
            .filter(|b| b.enforcement != Enforcement::Shadow && b.fail_mode.is_some())
            .collect();
        let first = budgets.first()?;
        let closed = budgets
            .iter()
            .find(|b| b.fail_mode == Some(FailMode::Closed));
        let mode = if closed.is_some() { "closed" } else { "open" };
        metrics::counter!("tollgate_store_down_admissions_total", "fail_mode" => mode).increment(1);
        tracing::warn!(
            request_id = %req.request_id,
            budget = %closed.unwrap_or(first).id,
            fail_mode = mode,
            "store down: the budgets' fail mode decided the reservation"
        );
        Some(match closed {
            Some(b) => ReserveResponse::Deny {
                budget_id: b.id.clone(),
                reason: DenyReason::StoreUnavailable,
                remaining: NanoUsd::ZERO,
                retry_after_secs: Some(1),
                fail_mode: FailMode::Closed,
            },
            None => ReserveResponse::Allow {
                remaining: None,
                stream_cutoff: None,
                unreserved: true,
            },
        })
    }

    /// Writes a refused call to the ledger (a settle with no lines, under its own marker
    /// `deny:<request id>`, so the call's own id stays free and a replayed reserve is not
    /// recorded twice). A failure is logged, never turned into a different answer.
    async fn record_refusal(&self, req: &ReserveRequest, reason: DenyReason, budget_id: &str) {
        let now_ms = self.now.timestamp_millis();
        let model = model_id(self.snap, &req.model);
        let op = SettleOp {
            request_id: format!("deny:{}", req.request_id),
            request_tag: request_tag(&req.scopes),
            lines: Vec::new(),
            cost_nanos: 0,
            tokens: 0,
            now_ms,
            dedupe_ttl_ms: self.settings.dedupe_ttl_ms,
            ledger: Some(entry::refused(req, &model, reason, budget_id, now_ms)),
        };
        if let Err(e) = self.store.settle(&op).await {
            metrics::counter!("tollgate_ledger_write_errors_total").increment(1);
            tracing::warn!(error = %e, request_id = %req.request_id, "refusal not written to the ledger");
        }
    }

    async fn decide(&self, req: &ReserveRequest) -> Result<ReserveResponse, AdmissionError> {
        check_request_id("request_id", &req.request_id)?;
        if req.estimated_cost.nanos() < 0 {
            return Err(invalid("estimated_cost", "must not be negative"));
        }
        let mut model = model_id(self.snap, &req.model);
        // This service's table (overrides included) is the price authority: the filter's
        // estimate counts only for a model this side cannot price (a newer filter's table).
        let mut cost = self.reprice(req, &model).or_else(|| {
            let filters = req.estimated_cost.nanos();
            (filters > 0).then_some(filters)
        });
        let mut forced: Option<(String, String)> = None;
        for scope in req.scopes.iter().chain(std::iter::once(&Scope::global())) {
            let Some(switch) = self.snap.switches.get(scope) else {
                continue;
            };
            match (switch.mode, &switch.model) {
                (SwitchMode::DenyAll, _) => {
                    return Ok(ReserveResponse::Deny {
                        budget_id: format!("emergency:{scope}"),
                        reason: DenyReason::Emergency,
                        remaining: NanoUsd::ZERO,
                        retry_after_secs: None,
                        fail_mode: FailMode::Closed,
                    });
                }
                (SwitchMode::DowngradeAll, Some(target)) if forced.is_none() => {
                    let target = model_id(self.snap, target);
                    if target != model {
                        cost = self.reprice(req, &target).or(cost);
                        model = target.clone();
                        forced = Some((format!("emergency:{scope}"), target));
                    }
                }
                (SwitchMode::DowngradeAll, _) => {}
            }
        }
        let cost = match cost {
            Some(cost) => cost,
            None => match self.unpriced_reserve(req, &model) {
                Ok(cost) => cost,
                Err(refusal) => return Ok(refusal),
            },
        };
        let first = self.attempt(req, &model, cost).await?;
        let refused = match &first.outcome {
            ReserveOutcome::Refused { line, reason, .. } => Some((*line, *reason)),
            _ => None,
        };
        let Some((line, reason)) = refused else {
            return Ok(self.admitted(first, forced));
        };
        // A downgrade budget refusing for a limit (not a suspension) offers a cheaper model.
        // Its map may name the model by any name of its family: a Bedrock inference profile
        // with a regional price of its own is downgraded as its base model is.
        let binding = first.budgets.get(line).cloned();
        let target = binding
            .as_ref()
            .filter(|_| matches!(reason, DenyReason::Usd | DenyReason::Tokens))
            .and_then(|b| {
                std::iter::once(model.as_str())
                    .chain(self.snap.prices.model_family(&model))
                    .find_map(|m| b.downgrade_target(m))
            })
            .map(|t| model_id(self.snap, t));
        if let (Some(b), Some(target)) = (binding, target)
            && let Some(cheaper) = self.reprice(req, &target)
        {
            let second = self.attempt(req, &target, cheaper).await?;
            if !matches!(second.outcome, ReserveOutcome::Refused { .. }) {
                return Ok(self.admitted(second, Some((b.id.clone(), target))));
            }
            return Ok(self.denied(second));
        }
        Ok(self.denied(first))
    }

    /// Counts and logs an unpriced call, and notes its model for the day's alert.
    fn record_unpriced(&self, stage: &'static str, provider: &str, model: &str, o: &Unpriced<'_>) {
        unpriced::record(stage, provider, model, o);
        let now_ms = self.now.timestamp_millis();
        self.sightings.note(provider, model, o.as_str(), now_ms);
    }

    /// The reservation of a call no price table knows, or its refusal (`unknown_model`),
    /// as the unknown-model policies of the budgets it counts toward decide.
    fn unpriced_reserve(&self, req: &ReserveRequest, model: &str) -> Result<i64, ReserveResponse> {
        let budgets = matching(self.snap, &req.scopes, model);
        let outcome = unpriced::decide(&budgets, self.unknown_model, &req.provider, true, |m| {
            self.reprice(req, m)
        });
        self.record_unpriced("reserve", &req.provider, &req.model, &outcome);
        match outcome {
            Unpriced::Priced(cost) => Ok(cost),
            Unpriced::Unlimited => Ok(0),
            Unpriced::Refused(b) => Err(ReserveResponse::Deny {
                budget_id: b.id.clone(),
                reason: DenyReason::UnknownModel,
                remaining: NanoUsd::ZERO,
                retry_after_secs: None,
                fail_mode: b.fail_mode.unwrap_or_default(),
            }),
        }
    }

    fn admitted(&self, a: Attempt, downgrade: Option<(String, String)>) -> ReserveResponse {
        let (remaining, stream_cutoff) = match &a.outcome {
            ReserveOutcome::Reserved {
                used_nanos,
                shadow_over,
            } => {
                for &i in shadow_over {
                    if let Some(b) = a.budgets.get(i) {
                        metrics::counter!("tollgate_shadow_over_total").increment(1);
                        tracing::info!(budget = %b.id, "shadow budget would have refused");
                    }
                }
                // The least USD left among the enforced USD budgets `keep` selects.
                let least_left = |keep: fn(&Budget) -> bool| {
                    a.budgets
                        .iter()
                        .zip(used_nanos)
                        .filter(|(b, _)| b.enforcement != Enforcement::Shadow && keep(b))
                        .filter_map(|(b, &used)| b.limit.map(|l| left_under(l.nanos(), used)))
                        .min()
                };
                (
                    least_left(|_| true).map(NanoUsd),
                    // A stream may spend what it reserved plus what its cut-off budgets have left.
                    least_left(|b| b.cutoff_mid_stream)
                        .map(|left| NanoUsd(left.saturating_add(a.cost))),
                )
            }
            _ => (None, None),
        };
        match downgrade {
            Some((budget_id, model)) => ReserveResponse::Downgrade {
                budget_id,
                model,
                remaining,
            },
            None => ReserveResponse::Allow {
                remaining,
                stream_cutoff,
                unreserved: false,
            },
        }
    }

    fn denied(&self, a: Attempt) -> ReserveResponse {
        let ReserveOutcome::Refused {
            line,
            reason,
            counters,
        } = a.outcome
        else {
            return self.admitted(a, None);
        };
        let (Some(b), Some(w)) = (a.budgets.get(line), a.windows.get(line)) else {
            return ReserveResponse::Allow {
                remaining: None,
                stream_cutoff: None,
                unreserved: false,
            };
        };
        let remaining = match (reason, b.limit) {
            (DenyReason::Usd, Some(l)) => NanoUsd(counters.remaining_nanos(l.nanos())),
            _ => NanoUsd::ZERO,
        };
        ReserveResponse::Deny {
            budget_id: b.id.clone(),
            reason,
            remaining,
            // A suspended budget opens only when an admin reopens it.
            retry_after_secs: match reason {
                DenyReason::Suspended => None,
                _ => w.secs_until_end(self.now),
            },
            fail_mode: b.fail_mode.unwrap_or_default(),
        }
    }

    /// Charges a batch of settlements; replays count as duplicates.
    pub async fn settle(&self, batch: &SettleBatch) -> Result<SettleResponse, AdmissionError> {
        self.settle_with_alerts(batch)
            .await
            .map(|(resp, _, _)| resp)
    }

    /// [`Admission::settle`], the threshold events its charges raised (for delivery), and the
    /// end times (Unix ms) of the fail-open calls it applied (for `alerts::failopen`).
    pub async fn settle_with_alerts(
        &self,
        batch: &SettleBatch,
    ) -> Result<(SettleResponse, Vec<AlertEvent>, Vec<i64>), AdmissionError> {
        if batch.settlements.len() > MAX_SETTLE_BATCH {
            return Err(invalid(
                "settlements",
                format!("at most {MAX_SETTLE_BATCH} per batch"),
            ));
        }
        for (i, s) in batch.settlements.iter().enumerate() {
            check_request_id(&format!("settlements[{i}].request_id"), &s.request_id)?;
            if s.cost.nanos() < 0 {
                return Err(invalid(
                    format!("settlements[{i}].cost"),
                    "must not be negative",
                ));
            }
            if let Some(id) = &s.lease_id {
                crate::lease::check_lease_id(&format!("settlements[{i}].lease_id"), id)?;
            }
            if s.lease_usd.is_some_and(|u| u.nanos() < 0) {
                return Err(invalid(
                    format!("settlements[{i}].lease_usd"),
                    "must not be negative",
                ));
            }
        }
        let mut out = SettleResponse::default();
        let mut raised = Vec::new();
        let mut failed_open = Vec::new();
        let ops: Vec<SettleOp> = batch
            .settlements
            .iter()
            .map(|s| self.settle_op(s))
            .collect();
        let outcomes = self.store.settle_many(&ops).await?;
        let mut leased = Vec::new();
        for (outcome, s) in outcomes.into_iter().zip(&batch.settlements) {
            match outcome {
                SettleOutcome::Applied { alerts } => {
                    out.applied += 1;
                    if s.lease_id.is_some() {
                        leased.push(s);
                    }
                    if !s.reserved {
                        failed_open
                            .push(entry::sane_time(s.at_unix_ms, self.now.timestamp_millis()));
                    }
                    for a in alerts {
                        metrics::counter!("tollgate_threshold_alerts_total").increment(1);
                        tracing::warn!(
                            budget = %a.budget_id,
                            threshold_pct = a.threshold_pct,
                            spent_nanos = a.spent_nanos,
                            "budget threshold crossed"
                        );
                        raised.push(a);
                    }
                }
                SettleOutcome::Duplicate => out.duplicates += 1,
            }
        }
        if !leased.is_empty() {
            self.take_settled(&leased).await;
        }
        Ok((out, raised, failed_open))
    }

    /// What a billed settlement is charged: its usage priced here (this service's table,
    /// overrides included, is the price authority) at the prices in force when the call
    /// ended; the filter's cost only for a model this side cannot price.
    /// A model neither side can price is priced as its policies' dearest stand-in (a
    /// refusing policy is passed over: the call has happened), else charged $0, counted.
    fn settled_cost(&self, s: &Settlement, model: &str, budgets: &[&Arc<Budget>]) -> i64 {
        let at = DateTime::<Utc>::from_timestamp_millis(s.at_unix_ms).unwrap_or(self.now);
        let price = |m: &str| priced(self.snap.prices.cost(m, &s.usage, at));
        if let Some(cost) = price(model) {
            return cost;
        }
        if s.cost.nanos() > 0 {
            return s.cost.nanos();
        }
        let outcome = unpriced::decide(budgets, self.unknown_model, &s.provider, false, price);
        self.record_unpriced("settle", &s.provider, &s.model, &outcome);
        match outcome {
            Unpriced::Priced(cost) => cost,
            Unpriced::Refused(_) | Unpriced::Unlimited => 0,
        }
    }

    fn settle_op(&self, s: &Settlement) -> SettleOp {
        let model = model_id(self.snap, &s.model);
        let budgets = matching(self.snap, &s.scopes, &model);
        // A call not billed costs nothing and names no window: its reservation, if one
        // reached this side, is released from the windows it was taken on (both stores charge
        // a reservation's own windows when the lines differ); without one (its reserve
        // callout failed, or it came from a lease) it touches no counter, and so counts no
        // request.
        let (cost_nanos, lines) = if billed(s) {
            let cost = self.settled_cost(s, &model, &budgets);
            let lines = budgets
                .into_iter()
                .map(|b| line_for(b, self.now).0)
                .collect();
            (cost, lines)
        } else {
            (0, Vec::new())
        };
        SettleOp {
            request_id: s.request_id.clone(),
            request_tag: request_tag(&s.scopes),
            lines,
            cost_nanos,
            tokens: i64::try_from(s.usage.total_tokens()).unwrap_or(i64::MAX),
            now_ms: self.now.timestamp_millis(),
            dedupe_ttl_ms: self.settings.dedupe_ttl_ms,
            ledger: self
                .settings
                .ledger
                .then(|| self.ledger_record(s, &model, cost_nanos)),
        }
    }

    /// The settlement's ledger record. This side prices the call for the breakdown only
    /// when the filter sent none that sums to the cost (an older filter, or a model only
    /// an override here knows).
    fn ledger_record(&self, s: &Settlement, model: &str, cost_nanos: i64) -> RequestRecord {
        let requested = s
            .requested_model
            .as_deref()
            .map_or_else(|| model.to_owned(), |m| model_id(self.snap, m));
        let filter_sums = s
            .breakdown
            .is_some_and(|b| entry::parts_of(&b).total_nanos() == cost_nanos);
        let own_breakdown = if filter_sums || cost_nanos == 0 {
            None
        } else {
            let at = DateTime::<Utc>::from_timestamp_millis(s.at_unix_ms).unwrap_or(self.now);
            self.snap
                .prices
                .cost(model, &s.usage, at)
                .ok()
                .map(|c| c.breakdown)
        };
        entry::settled(
            s,
            entry::Settled {
                model,
                requested_model: &requested,
                cost_nanos,
                own_breakdown,
                now_ms: self.now.timestamp_millis(),
            },
        )
    }
}

/// Whether a settlement is charged: `billed` when the filter says (`false`: an error answer,
/// a refused or unanswered call releasing its reservation); from a filter that does not
/// (older than the field), a zero cost with estimated or no usage is taken as not billed.
fn billed(s: &Settlement) -> bool {
    let no_usage = s.usage.total_tokens() == 0 && s.usage.images == 0 && s.usage.audio_seconds == 0;
    s.billed
        .unwrap_or(s.cost.nanos() != 0 || !(s.usage.estimated || no_usage))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_cache_answers_what_the_period_computes() {
        let zones: [Tz; 3] = [
            chrono_tz::UTC,
            chrono_tz::Europe::Berlin,
            chrono_tz::Australia::Lord_Howe,
        ];
        let periods = [
            Period::Hourly,
            Period::Daily,
            Period::Weekly,
            Period::Monthly,
            Period::Quarterly,
            Period::Yearly,
            Period::Seconds(60),
        ];
        // Every 7 minutes across two DST changes (Berlin 2026-03-29, 2026-10-25).
        let first = DateTime::from_timestamp(1_774_000_000, 0).unwrap_or_default();
        for step in 0..6_000i64 {
            let now = first + chrono::Duration::minutes(7 * step * 11);
            for tz in zones {
                for p in periods {
                    assert_eq!(window_of(p, tz, now), p.window(now, tz), "{p:?} {tz} {now}");
                }
            }
        }
    }
}
