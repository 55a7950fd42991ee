//! Alert delivery: the events the store raises (budget threshold crossings) turned into
//! [`Alert`]s with an identity and a severity, and delivered to the configured channels
//! (signed webhook, Slack-compatible webhook, email over SMTP) by a background task, off
//! admission's path. See docs/alerts.md.
//!
//! - [`channel`]: the channel documents the API manages, validated, and their secret-free view.
//! - [`sign`]: the webhook signature (HMAC-SHA256 over timestamp and body).
//! - [`send`]: one attempt to one channel.
//! - [`record`]: the per-alert-per-channel delivery record kept in the store (claim, attempts,
//!   dead letter).
//! - [`worker`]: the queue admission feeds, the delivery loop with retries and back-off, and
//!   the sweep that picks up events another replica (or a restart) left undelivered.

pub mod channel;
pub mod record;
pub mod send;
pub mod sign;
pub mod worker;

use serde::{Deserialize, Serialize};

use crate::store::AlertEvent;

/// How urgent an alert is; a channel receives alerts at or above its `min_severity`.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// A threshold below 80 % of a limit.
    #[default]
    Info,
    /// A threshold from 80 % up to (not including) 100 %.
    Warning,
    /// A limit reached (a threshold of 100 % or more).
    Critical,
}

impl Severity {
    /// The severity of a threshold crossing at `pct` percent of a limit.
    pub fn of_threshold(pct: u16) -> Severity {
        match pct {
            0..80 => Severity::Info,
            80..100 => Severity::Warning,
            _ => Severity::Critical,
        }
    }

    /// The lowercase name used in metrics labels and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Settled usage crossed one of a budget's thresholds in a window.
    BudgetThreshold,
}

/// An alert event as it is listed and delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alert {
    /// Its identity: `<budget_id>.w<window_index>.t<threshold_pct>.<at_ms>`. The store raises a
    /// crossing once per window (in the settlement's atomic step), so this names one crossing;
    /// it is the key deliveries are deduplicated on and the `Tollgate-Alert-Id` a receiver sees.
    pub id: String,
    /// What happened.
    pub kind: AlertKind,
    /// How urgent.
    pub severity: Severity,
    /// The budget.
    pub budget_id: String,
    /// The window it happened in (index within the budget's period).
    pub window_index: i64,
    /// The threshold crossed, percent of the limit.
    pub threshold_pct: u16,
    /// Settled spend when it happened, nano-USD.
    pub spent_nanos: i64,
    /// When, Unix ms.
    pub at_ms: i64,
}

impl From<&AlertEvent> for Alert {
    fn from(e: &AlertEvent) -> Alert {
        Alert {
            id: alert_id(e),
            kind: AlertKind::BudgetThreshold,
            severity: Severity::of_threshold(e.threshold_pct),
            budget_id: e.budget_id.clone(),
            window_index: e.window_index,
            threshold_pct: e.threshold_pct,
            spent_nanos: e.spent_nanos,
            at_ms: e.at_ms,
        }
    }
}

/// The identity of a threshold event. Budget ids are `[A-Za-z0-9._-]`, so the id is safe in a
/// URL path and a header, and holds no `@` (the delivery records' separator).
pub fn alert_id(e: &AlertEvent) -> String {
    format!(
        "{}.w{}.t{}.{}",
        e.budget_id, e.window_index, e.threshold_pct, e.at_ms
    )
}

impl Alert {
    /// One line for people (the Slack text, the email subject).
    pub fn summary(&self) -> String {
        format!(
            "[{}] budget {} crossed {}% of its limit (spent {} USD)",
            self.severity.as_str(),
            self.budget_id,
            self.threshold_pct,
            tollgate_model::NanoUsd(self.spent_nanos),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_rises_with_the_threshold() {
        assert_eq!(Severity::of_threshold(50), Severity::Info);
        assert_eq!(Severity::of_threshold(80), Severity::Warning);
        assert_eq!(Severity::of_threshold(99), Severity::Warning);
        assert_eq!(Severity::of_threshold(100), Severity::Critical);
        assert_eq!(Severity::of_threshold(150), Severity::Critical);
    }

    #[test]
    fn an_alert_id_names_budget_window_threshold_and_time() {
        let e = AlertEvent {
            budget_id: "team-a.monthly".into(),
            window_index: 3,
            threshold_pct: 80,
            spent_nanos: 8,
            at_ms: 1_000,
        };
        let a = Alert::from(&e);
        assert_eq!(a.id, "team-a.monthly.w3.t80.1000");
        assert_eq!(a.severity, Severity::Warning);
    }
}
