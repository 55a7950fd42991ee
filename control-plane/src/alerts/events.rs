//! Alert events other than threshold crossings: a budget suspended, an emergency switch set or
//! lifted, an anomaly, a fail-open episode. Each is one store document (the `events`
//! collection, id = the alert's id) written create-if-absent, so an incident found twice (two
//! replicas, two passes) is one event and one set of deliveries. Threshold crossings stay in
//! the store's per-budget alert lists, raised in the settlement's atomic step.

use serde::{Deserialize, Serialize};

use super::{Alert, AlertKind, Severity};
use crate::analytics::anomaly::{Detector, Direction, Metric};
use crate::catalog::SwitchMode;
use crate::state::AppState;
use crate::store::{Collection, Expect, Store, StoreError};

/// How long an event document is kept, ms (30 days).
pub const EVENT_RETENTION_MS: i64 = 30 * 24 * 3_600_000;

/// What the anomaly detector saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AnomalyDetail {
    /// The charged model.
    pub model: String,
    /// Spend or request count.
    pub metric: Metric,
    /// Which detector.
    pub detector: Detector,
    /// Above or below the expected value.
    pub direction: Direction,
    /// The hour the incident started (its first anomalous hour), Unix ms.
    pub hour_start_ms: i64,
    /// That hour's value: nano-USD for spend, requests for the count (for the hour in
    /// progress, its value so far).
    pub observed: i64,
    /// What was expected for that hour, in the same unit.
    pub expected: i64,
    /// The robust score (signed; see docs/anomalies.md).
    pub score: f64,
}

/// An emergency switch set or lifted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EmergencyDetail {
    /// The mode set; absent when the switch was lifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<SwitchMode>,
    /// The model of `downgrade_all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// When the detector lifts it again, Unix ms (switches the anomaly detector sets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<i64>,
    /// Who: `admin` (the API) or `anomaly_detector`.
    pub by: String,
}

/// A run of fail-open calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FailOpenDetail {
    /// The first call's end, Unix ms.
    pub start_ms: i64,
    /// The last call's end, Unix ms.
    pub end_ms: i64,
    /// Calls settled with outcome `failed_open` in it.
    pub calls: u64,
}

/// The summary of a kind [`Alert::summary`] does not spell itself.
pub(super) fn summary(a: &Alert) -> String {
    if let (AlertKind::UnpricedModel, Some(u)) = (a.kind, &a.unpriced) {
        let outcome = match u.action.as_str() {
            "refused" => "refused",
            "priced_as" => "charged as a stand-in model",
            _ => "charged nothing",
        };
        return format!(
            "calls for model {:?} at {}, which no price table knows, are {outcome}: price it (tollgate price set) or call a priced model",
            u.model, u.provider
        );
    }
    let scope = a.scope.as_deref().unwrap_or("?");
    match (a.kind, &a.anomaly, &a.emergency, &a.fail_open) {
        (AlertKind::Anomaly, Some(d), em, _) => {
            let unit = |v: i64| match d.metric {
                Metric::Spend => format!("{} USD", tollgate_model::NanoUsd(v)),
                Metric::Requests => format!("{v} requests"),
            };
            let what = match d.direction {
                Direction::Up => "above",
                Direction::Down => "below",
            };
            let mut s = format!(
                "{} of {scope} on {} {what} its usual level: {} in the hour against {} expected (score {:.1})",
                d.metric.as_str(),
                d.model,
                unit(d.observed),
                unit(d.expected),
                d.score,
            );
            if let Some(e) = em {
                s.push_str(&format!("; emergency switch {} set", mode_name(e)));
            }
            s
        }
        (AlertKind::EmergencySwitch, _, Some(e), _) => match e.mode {
            Some(_) => format!(
                "emergency switch {} set on {scope} by {}",
                mode_name(e),
                e.by
            ),
            None => format!("emergency switch on {scope} lifted by {}", e.by),
        },
        (AlertKind::FailOpenEpisode, _, _, Some(f)) => format!(
            "{} calls admitted fail-open (control plane unreachable) from {} to {}",
            f.calls,
            rfc3339(f.start_ms),
            rfc3339(f.end_ms),
        ),
        _ => format!("{} {}", a.kind.as_str(), a.id),
    }
}

fn mode_name(e: &EmergencyDetail) -> String {
    match (e.mode, &e.model) {
        (Some(SwitchMode::DenyAll), _) => "deny_all".to_owned(),
        (Some(SwitchMode::DowngradeAll), Some(m)) => format!("downgrade_all to {m}"),
        (Some(SwitchMode::DowngradeAll), None) => "downgrade_all".to_owned(),
        (None, _) => "none".to_owned(),
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// The `emergency_switch` alert of a switch set (`mode`) or lifted (`None`) on `scope`.
/// Severity: `critical` for `deny_all`, `warning` for `downgrade_all`, `info` when lifted.
pub fn switch_alert(
    scope: &str,
    mode: Option<(SwitchMode, Option<String>)>,
    until_ms: Option<i64>,
    by: &str,
    at_ms: i64,
) -> Alert {
    let severity = match mode {
        Some((SwitchMode::DenyAll, _)) => Severity::Critical,
        Some((SwitchMode::DowngradeAll, _)) => Severity::Warning,
        None => Severity::Info,
    };
    let (mode, model) = mode.map_or((None, None), |(m, model)| (Some(m), model));
    Alert {
        scope: Some(scope.to_owned()),
        emergency: Some(EmergencyDetail {
            mode,
            model,
            until_ms,
            by: by.to_owned(),
        }),
        ..Alert::new(
            format!("emergency.{scope}.{at_ms}"),
            AlertKind::EmergencySwitch,
            severity,
            at_ms,
        )
    }
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("alert event: {e}"))
}

/// Records `alert` unless an event with its id exists, and queues it for delivery when it is
/// new. True when this call created it.
pub async fn raise(state: &AppState, alert: Alert) -> Result<bool, StoreError> {
    let json = serde_json::to_string(&alert).map_err(corrupt)?;
    let created = state
        .store
        .put_doc(Collection::Events, &alert.id, &json, Expect::Absent)
        .await?
        .is_ok();
    if created {
        metrics::counter!("tollgate_alert_events_total", "kind" => alert.kind.as_str())
            .increment(1);
        state.alerts.notify_alert(alert);
    }
    Ok(created)
}

/// Events at or after `since_ms`, newest first.
pub async fn since(store: &dyn Store, since_ms: i64) -> Result<Vec<Alert>, StoreError> {
    let mut out = Vec::new();
    for (id, doc) in store.list_docs(Collection::Events).await? {
        match serde_json::from_str::<Alert>(&doc.json) {
            Ok(a) if a.at_ms >= since_ms => out.push(a),
            Ok(_) => {}
            Err(e) => tracing::error!(event = %id, error = %e, "alert event unreadable"),
        }
    }
    out.sort_by(|a, b| b.at_ms.cmp(&a.at_ms).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}

/// Deletes events older than `before_ms`; how many went.
pub async fn prune(store: &dyn Store, before_ms: i64) -> Result<usize, StoreError> {
    let mut n = 0;
    for (id, doc) in store.list_docs(Collection::Events).await? {
        let old = serde_json::from_str::<Alert>(&doc.json).map_or(true, |a| a.at_ms < before_ms);
        if old
            && store
                .delete_doc(Collection::Events, &id, Expect::Version(doc.version))
                .await?
                .is_ok()
        {
            n += 1;
        }
    }
    Ok(n)
}
