//! Building ledger records from what admission sees: a settlement (with whatever the filter's
//! release sent) or a refusal at reserve. Pure functions: the caller passes the price table's
//! answer and the clock.

use tollgate_model::pricing::CostBreakdown;
use tollgate_model::usage::Usage;
use tollgate_model::wire::v1::{DenyReason, ReserveRequest, Settlement};

use super::{CallOutcome, CostParts, RecordSource, RequestRecord, TokenCounts};

/// How far a filter's clock may be from the control plane's before the ledger uses the
/// control plane's time instead (a call is bucketed by its end time: a filter with a broken
/// clock must not file spend years away, where retention would drop it at once).
pub const MAX_CLOCK_SKEW_MS: i64 = 86_400_000;

/// Token counts of a usage, saturating at `i64::MAX`.
pub fn tokens_of(u: &Usage) -> TokenCounts {
    let n = |x: u64| i64::try_from(x).unwrap_or(i64::MAX);
    TokenCounts {
        uncached_input: n(u.uncached_input_tokens),
        cached_input: n(u.cached_input_tokens),
        cache_write_5m: n(u.cache_write_5m_tokens),
        cache_write_1h: n(u.cache_write_1h_tokens),
        output: n(u.output_tokens),
        reasoning: n(u.reasoning_tokens),
        images: n(u.images),
        audio_seconds: n(u.audio_seconds),
    }
}

/// A breakdown in the ledger's form.
pub fn parts_of(b: &CostBreakdown) -> CostParts {
    CostParts {
        uncached_input_nanos: b.uncached_input.nanos(),
        cached_input_nanos: b.cached_input.nanos(),
        cache_write_5m_nanos: b.cache_write_5m.nanos(),
        cache_write_1h_nanos: b.cache_write_1h.nanos(),
        output_nanos: b.output.nanos(),
        reasoning_nanos: b.reasoning.nanos(),
        request_fee_nanos: b.request_fee.nanos(),
        images_nanos: b.images.nanos(),
        audio_nanos: b.audio.nanos(),
    }
}

/// A label safe in a rollup row's field (no whitespace: it separates the parts).
fn label(s: &str) -> String {
    // Every settlement's labels pass here, and they almost never hold whitespace: copied
    // whole then, not char by char.
    if !s.chars().any(char::is_whitespace) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect()
}

/// `at` when it is within [`MAX_CLOCK_SKEW_MS`] of `now`, else `now`.
pub fn sane_time(at: i64, now_ms: i64) -> i64 {
    if at.abs_diff(now_ms) <= MAX_CLOCK_SKEW_MS.unsigned_abs() {
        at
    } else {
        now_ms
    }
}

/// What the control plane decided about a settlement, besides the settlement itself.
#[derive(Debug, Clone, Copy)]
pub struct Settled<'a> {
    /// The charged model's price-table id (or its name when the table lacks it).
    pub model: &'a str,
    /// The model asked for, resolved the same way.
    pub requested_model: &'a str,
    /// The cost charged, nano-USD.
    pub cost_nanos: i64,
    /// This side's breakdown of the same call, when it prices it.
    pub own_breakdown: Option<CostBreakdown>,
    /// The control plane's clock, Unix ms.
    pub now_ms: i64,
}

/// The record of a settlement. The breakdown is the filter's when it sums to the charged
/// cost, else this side's when that does, else none (never parts that do not add up).
pub fn settled(s: &Settlement, d: Settled<'_>) -> RequestRecord {
    let ended = sane_time(s.at_unix_ms, d.now_ms);
    let started = s
        .started_at_unix_ms
        .map(|t| sane_time(t, d.now_ms).min(ended))
        .unwrap_or(ended);
    let breakdown = [s.breakdown, d.own_breakdown]
        .into_iter()
        .flatten()
        .map(|b| parts_of(&b))
        .find(|p| p.total_nanos() == d.cost_nanos);
    let outcome = if s.cut_off {
        CallOutcome::CutOff
    } else if !s.reserved {
        CallOutcome::FailedOpen
    } else if s.requested_model.is_some() && d.requested_model != d.model {
        CallOutcome::Downgraded
    } else {
        CallOutcome::Allowed
    };
    RequestRecord {
        request_id: s.request_id.clone(),
        started_at_ms: started,
        ended_at_ms: ended,
        recorded_at_ms: d.now_ms,
        scopes: s.scopes.clone(),
        provider: label(&s.provider),
        api: s.api.as_deref().map(label),
        requested_model: d.requested_model.to_owned(),
        charged_model: d.model.to_owned(),
        tokens: tokens_of(&s.usage),
        cost_nanos: d.cost_nanos,
        breakdown,
        estimated: s.usage.estimated,
        outcome,
        deny_reason: None,
        budget_id: s.downgraded_by.clone(),
        source: RecordSource::Live,
    }
}

/// The record of a call refused at reserve: zero cost, no tokens, the reason and the
/// binding budget (or `emergency:<scope>`).
pub fn refused(
    req: &ReserveRequest,
    model: &str,
    reason: DenyReason,
    budget_id: &str,
    now_ms: i64,
) -> RequestRecord {
    let at = sane_time(req.at_unix_ms, now_ms);
    RequestRecord {
        request_id: req.request_id.clone(),
        started_at_ms: at,
        ended_at_ms: at,
        recorded_at_ms: now_ms,
        scopes: req.scopes.clone(),
        provider: label(&req.provider),
        api: None,
        requested_model: model.to_owned(),
        charged_model: model.to_owned(),
        tokens: TokenCounts::default(),
        cost_nanos: 0,
        breakdown: None,
        estimated: false,
        outcome: CallOutcome::Denied,
        deny_reason: Some(reason),
        budget_id: Some(budget_id.to_owned()),
        source: RecordSource::Live,
    }
}

#[cfg(test)]
mod tests {
    use super::label;

    #[test]
    fn a_label_has_no_whitespace() {
        assert_eq!(label("openai"), "openai");
        assert_eq!(label("my provider\tv2"), "my_provider_v2");
        assert_eq!(label(""), "");
    }
}
