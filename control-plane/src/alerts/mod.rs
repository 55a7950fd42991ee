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
//! - [`events`]: the alert events other than threshold crossings (suspensions, emergency
//!   switches, anomalies, fail-open episodes), kept as store documents, one per incident.
//! - [`suspension`]: `budget_suspended` events, found by the sweep.
//! - [`anomaly_pass`]: one anomaly pass over every scope and model's recent series.
//! - [`anomaly_task`]: the anomaly detector's settings, background task (one replica at a
//!   time, by lease) and automatic emergency switches.
//! - [`failopen`]: fail-open calls counted per minute as they settle, and their episodes.
//! - [`worker`]: the queue admission feeds, the delivery loop with retries and back-off, and
//!   the sweep that picks up events another replica (or a restart) left undelivered.

pub mod anomaly_pass;
pub mod anomaly_task;
pub mod channel;
pub mod events;
pub mod failopen;
pub mod record;
pub mod send;
pub mod sign;
pub mod suspension;
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
    /// A `suspend_on_exceed` budget was suspended (it refuses everything until reopened).
    BudgetSuspended,
    /// A scope's emergency switch was set or lifted (by an admin or by the anomaly detector).
    EmergencySwitch,
    /// A scope and model's spend or request rate left its usual pattern.
    Anomaly,
    /// Calls were admitted without the control plane (fail-open) and settled later.
    FailOpenEpisode,
    /// A budget's spend forecast reaches its limit before the period ends (once per window).
    BudgetForecastRunout,
    /// A call named a model no price table knows (first such call of the day per model).
    UnpricedModel,
    /// A test an admin sent to one channel (`POST /v1/channels/{id}/test`): never stored,
    /// never sent to another channel.
    ChannelTest,
}

impl AlertKind {
    /// The snake_case name used in ids and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::BudgetThreshold => "budget_threshold",
            AlertKind::BudgetSuspended => "budget_suspended",
            AlertKind::EmergencySwitch => "emergency_switch",
            AlertKind::Anomaly => "anomaly",
            AlertKind::FailOpenEpisode => "fail_open_episode",
            AlertKind::BudgetForecastRunout => "budget_forecast_runout",
            AlertKind::UnpricedModel => "unpriced_model",
            AlertKind::ChannelTest => "channel_test",
        }
    }
}

/// An alert event as it is listed and delivered. Which of the optional fields are present
/// depends on `kind` (docs/alerts.md lists them); receivers ignore fields they do not know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alert {
    /// Its identity (a threshold crossing: `<budget_id>.w<window_index>.t<threshold_pct>.<at_ms>`;
    /// the other kinds: see docs/alerts.md). One incident has one id: it is the key events
    /// and deliveries are deduplicated on and the `Tollgate-Alert-Id` a receiver sees.
    pub id: String,
    /// What happened.
    pub kind: AlertKind,
    /// How urgent.
    pub severity: Severity,
    /// The budget (`budget_threshold`, `budget_suspended`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_id: Option<String>,
    /// The window it happened in (index within the budget's period).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_index: Option<i64>,
    /// The threshold crossed, percent of the limit (`budget_threshold`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_pct: Option<u16>,
    /// Settled spend when it happened, nano-USD (`budget_threshold`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spent_nanos: Option<i64>,
    /// The scope (`emergency_switch`, `anomaly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// An anomaly's details (`anomaly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<crate::alerts::events::AnomalyDetail>,
    /// The switch set or lifted (`emergency_switch`; with `anomaly` when the detector set one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency: Option<crate::alerts::events::EmergencyDetail>,
    /// The episode (`fail_open_episode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_open: Option<crate::alerts::events::FailOpenDetail>,
    /// When the limit is forecast to be reached, Unix ms (`budget_forecast_runout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runout_at_ms: Option<i64>,
    /// The model and what its policy did (`unpriced_model`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpriced: Option<crate::unpriced::UnpricedDetail>,
    /// When, Unix ms.
    pub at_ms: i64,
}

impl Alert {
    /// An alert of `kind` with no details yet.
    pub fn new(id: String, kind: AlertKind, severity: Severity, at_ms: i64) -> Alert {
        Alert {
            id,
            kind,
            severity,
            budget_id: None,
            window_index: None,
            threshold_pct: None,
            spent_nanos: None,
            scope: None,
            anomaly: None,
            emergency: None,
            fail_open: None,
            runout_at_ms: None,
            unpriced: None,
            at_ms,
        }
    }
}

impl From<&AlertEvent> for Alert {
    fn from(e: &AlertEvent) -> Alert {
        Alert {
            budget_id: Some(e.budget_id.clone()),
            window_index: Some(e.window_index),
            threshold_pct: Some(e.threshold_pct),
            spent_nanos: Some(e.spent_nanos),
            ..Alert::new(
                alert_id(e),
                AlertKind::BudgetThreshold,
                Severity::of_threshold(e.threshold_pct),
                e.at_ms,
            )
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
        let sev = self.severity.as_str();
        let budget = self.budget_id.as_deref().unwrap_or("?");
        match self.kind {
            AlertKind::BudgetThreshold => format!(
                "[{sev}] budget {budget} crossed {}% of its limit (spent {} USD)",
                self.threshold_pct.unwrap_or(0),
                tollgate_model::NanoUsd(self.spent_nanos.unwrap_or(0)),
            ),
            AlertKind::BudgetSuspended => {
                format!(
                    "[{sev}] budget {budget} is suspended: it refuses every call until reopened"
                )
            }
            AlertKind::BudgetForecastRunout => format!(
                "[{sev}] budget {budget} is forecast to run out before its period ends, at {} (spent {} USD so far)",
                self.runout_at_ms
                    .and_then(chrono::DateTime::from_timestamp_millis)
                    .map_or_else(
                        || "?".to_owned(),
                        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ),
                tollgate_model::NanoUsd(self.spent_nanos.unwrap_or(0)),
            ),
            AlertKind::ChannelTest => format!(
                "[{sev}] test alert from Tollgate ({}): this channel receives Tollgate's alerts",
                self.id
            ),
            _ => format!("[{sev}] {}", events::summary(self)),
        }
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
