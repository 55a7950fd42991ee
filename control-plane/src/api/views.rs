//! Response shapes of the admin API (OpenAPI schemas derive from these).

use serde::{Deserialize, Serialize};
use tollgate_model::NanoUsd;
use tollgate_model::budget::{Budget, BudgetSpec};
use tollgate_model::pricing::ModelDto;

use crate::store::Counters;

/// A budget as stored, with its version (also sent as `ETag`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BudgetView {
    /// The budget as written.
    pub budget: BudgetSpec,
    /// Increases with every write; send it back in `If-Match`.
    pub version: u64,
    /// The current window's usage (on single-budget reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageView>,
    /// For a budget that names a profile: the profile, where each effective setting came
    /// from, and the budget as written (`budget` above is the effective one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<crate::profiles::ProfileUse>,
}

/// A page of budgets.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BudgetPage {
    /// Budgets, by id.
    pub items: Vec<BudgetView>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One budget's current window.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsageView {
    /// The budget.
    pub budget_id: String,
    /// The window's index in its period.
    pub window_index: i64,
    /// Window start (RFC 3339).
    pub window_start: String,
    /// When the counters start again (RFC 3339); absent for total budgets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resets_at: Option<String>,
    /// Settled spend, nano-USD.
    pub spent_nanos: i64,
    /// Settled spend, USD (exact decimal string).
    pub spent_usd: String,
    /// Reserved, unsettled spend, nano-USD.
    pub reserved_nanos: i64,
    /// USD limit, nano-USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_nanos: Option<i64>,
    /// What is left under the USD limit, nano-USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_nanos: Option<i64>,
    /// What is left, USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_usd: Option<String>,
    /// Settled tokens.
    pub tokens: i64,
    /// Reserved tokens.
    pub reserved_tokens: i64,
    /// Requests admitted.
    pub requests: i64,
    /// Requests held by leases, not yet taken by a settled call (docs/leases.md).
    pub reserved_requests: i64,
    /// Alert thresholds crossed in this window, percent.
    pub thresholds_crossed: Vec<u16>,
    /// Closed by `suspend_on_exceed` until an admin reopens it.
    pub suspended: bool,
}

impl UsageView {
    /// The view of `b`'s window `w` with counters `c`.
    pub fn new(
        b: &Budget,
        w: &tollgate_model::period::Window,
        c: &Counters,
        suspended: bool,
    ) -> UsageView {
        let remaining = b.limit.map(|l| c.remaining_nanos(l.nanos()));
        UsageView {
            budget_id: b.id.clone(),
            window_index: w.index,
            window_start: w.start.to_rfc3339(),
            resets_at: w.end.map(|e| e.to_rfc3339()),
            spent_nanos: c.spent_nanos,
            spent_usd: NanoUsd(c.spent_nanos).to_usd().to_string(),
            reserved_nanos: c.reserved_nanos,
            limit_nanos: b.limit.map(NanoUsd::nanos),
            remaining_nanos: remaining,
            remaining_usd: remaining.map(|r| NanoUsd(r).to_usd().to_string()),
            tokens: c.tokens,
            reserved_tokens: c.reserved_tokens,
            requests: c.requests,
            reserved_requests: c.reserved_requests,
            thresholds_crossed: b
                .thresholds_pct
                .iter()
                .copied()
                .filter(|&t| t <= c.threshold_pct)
                .collect(),
            suspended,
        }
    }
}

/// A model's effective prices.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PriceView {
    /// The canonical id the name resolved to.
    pub model: String,
    /// `override` when an admin or an import set it (an imported override's `entry.note`
    /// starts with `imported`), `imported` from the imported table, else `shipped`.
    pub source: String,
    /// The entry, as in the price file.
    pub entry: ModelDto,
}

/// An emergency switch on a scope.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SwitchView {
    /// The scope.
    pub scope: String,
    /// The switch.
    pub switch: crate::catalog::Switch,
}

/// Whether a reopen changed anything.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReopenView {
    /// True when the budget was suspended.
    pub reopened: bool,
}

/// One admin change, as `/v1/audit` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// When (RFC 3339).
    pub at: String,
    /// What was done (`budget.create`, `price.set`, `emergency.clear`…).
    pub action: String,
    /// What it was done to (a budget id, a model, a scope).
    pub target: String,
    /// The change's body, as the admin sent it (`null` for deletes).
    #[schema(value_type = Object, nullable)]
    pub detail: serde_json::Value,
}
