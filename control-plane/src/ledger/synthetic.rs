//! Synthetic history for benches: `n` calls spread evenly over 30 days from `start_ms`, from
//! 50 teams (5 orgs) on 20 models of 3 providers, each loaded through the store's settle path
//! (`Store::settle_many`, as a settlement without budget lines). Deterministic: call `i` is
//! always the same call. `tollgate-bench-ledger --load` and the reports bench use it.

use tollgate_model::scope::Scope;

use super::{CallOutcome, RecordSource, RequestRecord, TokenCounts};
use crate::store::{SettleOp, Store, StoreError};

/// Days the history covers.
pub const DAYS: i64 = 30;
/// Teams calling.
pub const TEAMS: usize = 50;
/// Models called.
pub const MODELS: usize = 20;
/// Providers (model `m` is served by provider `m % 3`).
pub const PROVIDERS: [&str; 3] = ["openai", "anthropic", "google"];

/// Call `i` of `n`.
pub fn record(i: usize, n: usize, start_ms: i64) -> RequestRecord {
    let span = DAYS * 86_400_000;
    let offset = i64::try_from(i).unwrap_or(0) * span / i64::try_from(n.max(1)).unwrap_or(1);
    let ended = start_ms + offset;
    let team = (i * 7) % TEAMS;
    let model = (i * 13) % MODELS;
    let scopes: Vec<Scope> = [
        format!("org:o{}", team % 5),
        format!("team:t{team:02}"),
        format!("project:p{}", (i * 3) % 100),
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect();
    let input = 200 + i64::try_from(i % 1_800).unwrap_or(0);
    let output = 50 + i64::try_from(i % 700).unwrap_or(0);
    let unit = 1 + i64::try_from(model).unwrap_or(0);
    RequestRecord {
        request_id: format!("syn-{i:09}"),
        started_at_ms: ended - 1_200,
        ended_at_ms: ended,
        recorded_at_ms: 0,
        scopes,
        provider: PROVIDERS[model % 3].to_owned(),
        api: Some("chat_completions".to_owned()),
        requested_model: format!("model-{model:02}"),
        charged_model: format!("model-{model:02}"),
        tokens: TokenCounts {
            uncached_input: input,
            output,
            ..TokenCounts::default()
        },
        cost_nanos: unit * (input * 100 + output * 400),
        breakdown: None,
        estimated: false,
        outcome: CallOutcome::Allowed,
        deny_reason: None,
        budget_id: None,
        source: RecordSource::Live,
    }
}

/// The settle op that writes call `i` (its own org's hash tag, recorded at its end time).
pub fn op(i: usize, n: usize, start_ms: i64) -> SettleOp {
    let r = record(i, n, start_ms);
    let tag = r
        .scopes
        .first()
        .map_or_else(|| "global".to_owned(), |s| s.value().to_owned());
    SettleOp {
        request_id: r.request_id.clone(),
        request_tag: tag,
        lines: Vec::new(),
        cost_nanos: r.cost_nanos,
        tokens: r.tokens.total_tokens(),
        now_ms: r.ended_at_ms,
        dedupe_ttl_ms: 60_000,
        ledger: Some(r),
    }
}

/// Loads calls `0..n` in batches of `batch`.
pub async fn load(
    store: &dyn Store,
    n: usize,
    start_ms: i64,
    batch: usize,
) -> Result<(), StoreError> {
    let mut i = 0;
    while i < n {
        let end = (i + batch.max(1)).min(n);
        let ops: Vec<SettleOp> = (i..end).map(|j| op(j, n, start_ms)).collect();
        store.settle_many(&ops).await?;
        i = end;
    }
    Ok(())
}
