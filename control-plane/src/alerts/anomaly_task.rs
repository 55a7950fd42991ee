//! The anomaly detector's settings (`[anomaly]`) and its background task: every
//! `interval_ms`, one replica at a time, it reads the recent hourly series of every scope and
//! model, runs [`crate::analytics::anomaly`] over them and raises one alert event per
//! incident. docs/anomalies.md.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tollgate_model::scope::Scope;

use super::anomaly_pass::{self, Anomaly};
use super::events::{EmergencyDetail, raise};
use super::{Alert, AlertKind, Severity};
use crate::analytics::anomaly::Sensitivity;
use crate::catalog::{Switch, SwitchMode};
use crate::ledger::RollupFilter;
use crate::state::AppState;
use crate::store::{Collection, Expect, Store, StoreError};

/// The lease document: one replica runs passes at a time.
const LEASE_ID: &str = "lease.anomaly";
/// Prefix of the documents recording a switch the detector set (`auto.<scope>`).
const AUTO_PREFIX: &str = "auto.";

/// An automatic emergency switch for one scope (`[[anomaly.auto_emergency]]`): on an anomaly
/// of that scope at or above `min_severity`, set the scope's switch for `minutes`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoEmergency {
    /// The scope (`team:a`, `global`).
    pub scope: String,
    /// The least severity that switches (`warning` or `critical`; default `critical`).
    #[serde(default = "critical")]
    pub min_severity: Severity,
    /// `deny_all` or `downgrade_all`.
    pub mode: SwitchMode,
    /// The model of `downgrade_all`.
    #[serde(default)]
    pub model: Option<String>,
    /// How long the switch stays before the detector lifts it, minutes (1-10080).
    pub minutes: u64,
}

fn critical() -> Severity {
    Severity::Critical
}

/// Anomaly detection settings (the `[anomaly]` config section; docs/anomalies.md).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalySettings {
    /// Whether the background task runs (`GET /v1/anomalies` answers either way).
    pub enabled: bool,
    /// How often a pass runs, ms.
    pub interval_ms: u64,
    /// Hour-of-week robust score at or above which an hour is anomalous.
    pub threshold: f64,
    /// Fast (EWMA) score at or above which the hour so far is a spike.
    pub fast_threshold: f64,
    /// Weight of the newest hour in the fast detector's EWMA.
    pub ewma_alpha: f64,
    /// Hours of history a series needs before its hours are judged.
    pub min_history_hours: usize,
    /// Weeks of history behind each judgement.
    pub lookback_weeks: usize,
    /// Flags closer than this to the previous one belong to the same incident (one event).
    pub cooldown_hours: usize,
    /// Smallest spend difference from the expected hour that counts, nano-USD.
    pub min_spend_delta_nanos: i64,
    /// Smallest request-count difference from the expected hour that counts.
    pub min_requests_delta: i64,
    /// Most series one pass judges (the largest by spend first): the bound on a pass's cost.
    pub max_series: usize,
    /// Automatic emergency switches, per scope; none by default.
    pub auto_emergency: Vec<AutoEmergency>,
}

impl Default for AnomalySettings {
    fn default() -> AnomalySettings {
        AnomalySettings {
            enabled: true,
            interval_ms: 300_000,
            threshold: 4.5,
            fast_threshold: 6.0,
            ewma_alpha: 0.2,
            min_history_hours: 336,
            lookback_weeks: 4,
            cooldown_hours: 24,
            min_spend_delta_nanos: 100_000_000,
            min_requests_delta: 20,
            max_series: 5_000,
            auto_emergency: Vec::new(),
        }
    }
}

impl AnomalySettings {
    /// The detectors' settings for the spend series.
    pub fn sensitivity(&self) -> Sensitivity {
        Sensitivity {
            threshold: self.threshold,
            fast_threshold: self.fast_threshold,
            ewma_alpha: self.ewma_alpha,
            min_history_hours: self.min_history_hours,
            lookback_weeks: self.lookback_weeks,
            min_delta: self.min_spend_delta_nanos,
        }
    }

    /// A rule the settings break: the key and what is wrong.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        let finite_pos = |x: f64| x.is_finite() && x > 0.0;
        if self.interval_ms < 1_000 {
            return Err(("anomaly.interval_ms", "must be at least 1000"));
        }
        if !finite_pos(self.threshold) {
            return Err(("anomaly.threshold", "must be a number above 0"));
        }
        if !finite_pos(self.fast_threshold) {
            return Err(("anomaly.fast_threshold", "must be a number above 0"));
        }
        if !(finite_pos(self.ewma_alpha) && self.ewma_alpha <= 1.0) {
            return Err(("anomaly.ewma_alpha", "must be above 0 and at most 1"));
        }
        if !(1..=12).contains(&self.lookback_weeks) {
            return Err(("anomaly.lookback_weeks", "must be 1-12"));
        }
        if self.min_history_hours < 168 || self.min_history_hours > self.lookback_weeks * 168 + 168
        {
            return Err((
                "anomaly.min_history_hours",
                "must be 168 (a week) up to a week past anomaly.lookback_weeks",
            ));
        }
        if self.cooldown_hours == 0 || self.cooldown_hours > 168 {
            return Err(("anomaly.cooldown_hours", "must be 1-168"));
        }
        if self.min_spend_delta_nanos < 0 {
            return Err(("anomaly.min_spend_delta_nanos", "must not be negative"));
        }
        if self.min_requests_delta < 0 {
            return Err(("anomaly.min_requests_delta", "must not be negative"));
        }
        if self.max_series == 0 {
            return Err(("anomaly.max_series", "must be above 0"));
        }
        for a in &self.auto_emergency {
            if a.scope.parse::<Scope>().is_err() {
                return Err((
                    "anomaly.auto_emergency.scope",
                    "must be a scope such as team:a or global",
                ));
            }
            if a.min_severity == Severity::Info {
                return Err((
                    "anomaly.auto_emergency.min_severity",
                    "must be warning or critical",
                ));
            }
            match (a.mode, a.model.as_deref()) {
                (SwitchMode::DowngradeAll, Some(m)) if !m.trim().is_empty() => {}
                (SwitchMode::DowngradeAll, _) => {
                    return Err((
                        "anomaly.auto_emergency.model",
                        "downgrade_all needs a model",
                    ));
                }
                (SwitchMode::DenyAll, Some(_)) => {
                    return Err(("anomaly.auto_emergency.model", "deny_all takes no model"));
                }
                (SwitchMode::DenyAll, None) => {}
            }
            if !(1..=10_080).contains(&a.minutes) {
                return Err(("anomaly.auto_emergency.minutes", "must be 1-10080 (a week)"));
            }
        }
        let mut scopes: Vec<&str> = self
            .auto_emergency
            .iter()
            .map(|a| a.scope.as_str())
            .collect();
        scopes.sort_unstable();
        if scopes.windows(2).any(|w| w[0] == w[1]) {
            return Err(("anomaly.auto_emergency.scope", "one rule per scope"));
        }
        Ok(())
    }
}

/// The lease record.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Lease {
    owner: String,
    until_ms: i64,
}

/// A switch the detector set, to lift at `until_ms` (if it is still the one it set).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AutoSwitch {
    until_ms: i64,
    switch_version: u64,
    alert_id: String,
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("anomaly task: {e}"))
}

/// Takes or renews the lease for `owner` until `now_ms + lease_ms`; false when another live
/// replica holds it (or won the race for it).
async fn claim_lease(
    store: &dyn Store,
    owner: &str,
    now_ms: i64,
    lease_ms: i64,
) -> Result<bool, StoreError> {
    let expect = match store.get_doc(Collection::Tasks, LEASE_ID).await? {
        None => Expect::Absent,
        Some(doc) => {
            let l: Lease = serde_json::from_str(&doc.json).map_err(corrupt)?;
            if l.owner != owner && l.until_ms > now_ms {
                return Ok(false);
            }
            Expect::Version(doc.version)
        }
    };
    let json = serde_json::to_string(&Lease {
        owner: owner.to_owned(),
        until_ms: now_ms.saturating_add(lease_ms),
    })
    .map_err(corrupt)?;
    Ok(store
        .put_doc(Collection::Tasks, LEASE_ID, &json, expect)
        .await?
        .is_ok())
}

/// Starts the background detector (when `enabled`): every `interval_ms`, the replica holding
/// the lease runs a pass, raises one event per new incident (switching a scope first when a
/// rule says so) and lifts the automatic switches whose time is up.
pub fn start(state: &AppState) -> Option<tokio::task::JoinHandle<()>> {
    if !state.anomaly_settings.enabled {
        return None;
    }
    let state = state.clone();
    Some(tokio::spawn(async move {
        let every = Duration::from_millis(state.anomaly_settings.interval_ms);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            tick_once(&state).await;
            state.alerts.anomaly_pass_done();
        }
    }))
}

/// One tick: claim the lease, then pass and lift. Public for the bench and tests.
pub async fn tick_once(state: &AppState) {
    let s = &state.anomaly_settings;
    let store = state.store.as_ref();
    let now = state.now();
    let lease_ms = i64::try_from(s.interval_ms.saturating_mul(2)).unwrap_or(i64::MAX);
    match claim_lease(
        store,
        state.alerts.owner(),
        now.timestamp_millis(),
        lease_ms,
    )
    .await
    {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(error = %e, "anomaly pass: lease not claimed");
            return;
        }
    }
    lift_expired(state).await;
    let started = Instant::now();
    let report = match anomaly_pass::run(store, s, RollupFilter::default(), now).await {
        Ok(r) => r,
        Err(e) => {
            metrics::counter!("tollgate_anomaly_passes_total", "outcome" => "failed").increment(1);
            tracing::warn!(error = %e, "anomaly pass failed");
            return;
        }
    };
    metrics::counter!("tollgate_anomaly_passes_total", "outcome" => "ok").increment(1);
    metrics::gauge!("tollgate_anomaly_pass_seconds").set(started.elapsed().as_secs_f64());
    #[allow(clippy::cast_precision_loss)] // a count of series, far below 2^53
    metrics::gauge!("tollgate_anomaly_series").set(report.series_judged as f64);
    for a in &report.anomalies {
        match store.get_doc(Collection::Events, &a.id).await {
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(anomaly = %a.id, error = %e, "anomaly event not read");
                continue;
            }
        }
        let emergency = auto_switch(state, a).await;
        let alert = Alert {
            scope: Some(a.scope.clone()),
            anomaly: Some(a.detail.clone()),
            emergency,
            ..Alert::new(
                a.id.clone(),
                AlertKind::Anomaly,
                a.severity,
                now.timestamp_millis(),
            )
        };
        match raise(state, alert).await {
            Ok(true) => {
                metrics::counter!("tollgate_anomalies_total", "metric" => a.detail.metric.as_str())
                    .increment(1);
                tracing::warn!(anomaly = %a.id, score = a.detail.score, "anomaly");
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(anomaly = %a.id, error = %e, "anomaly event not written"),
        }
    }
}

/// Sets the scope's switch when a rule asks for it and no switch is set there already (an
/// admin's switch is never replaced); audited. The switch's details for the alert.
async fn auto_switch(state: &AppState, a: &Anomaly) -> Option<EmergencyDetail> {
    let rule = state
        .anomaly_settings
        .auto_emergency
        .iter()
        .find(|r| r.scope == a.scope && a.severity >= r.min_severity)?;
    let now_ms = state.now().timestamp_millis();
    let until_ms = now_ms.saturating_add(i64::try_from(rule.minutes).unwrap_or(0) * 60_000);
    let switch = Switch {
        mode: rule.mode,
        model: rule.model.clone(),
        reason: Some(format!("anomaly {} (automatic, until {until_ms} ms)", a.id)),
    };
    let json = serde_json::to_string(&switch).ok()?;
    let store = state.store.as_ref();
    let version = match store
        .put_doc(Collection::Switches, &a.scope, &json, Expect::Absent)
        .await
    {
        Ok(Ok(v)) => v,
        Ok(Err(_)) => {
            tracing::info!(scope = %a.scope, "anomaly: a switch is set on the scope already; left as it is");
            return None;
        }
        Err(e) => {
            tracing::warn!(scope = %a.scope, error = %e, "anomaly: automatic switch not set");
            return None;
        }
    };
    let auto = AutoSwitch {
        until_ms,
        switch_version: version,
        alert_id: a.id.clone(),
    };
    if let Ok(json) = serde_json::to_string(&auto) {
        let id = format!("{AUTO_PREFIX}{}", a.scope);
        let expect = match store.get_doc(Collection::Tasks, &id).await {
            Ok(Some(doc)) => Expect::Version(doc.version),
            _ => Expect::Absent,
        };
        if let Err(e) = store.put_doc(Collection::Tasks, &id, &json, expect).await {
            tracing::warn!(scope = %a.scope, error = %e, "anomaly: automatic switch's expiry not recorded");
        }
    }
    state.catalog.invalidate();
    metrics::counter!("tollgate_anomaly_auto_switches_total").increment(1);
    crate::api::audit(
        state,
        "emergency.auto_set",
        &a.scope,
        serde_json::json!({ "switch": switch, "until_ms": until_ms, "anomaly": a.id }),
    )
    .await;
    Some(EmergencyDetail {
        mode: Some(rule.mode),
        model: rule.model.clone(),
        until_ms: Some(until_ms),
        by: "anomaly_detector".to_owned(),
    })
}

/// Lifts the automatic switches whose time is up (only if the switch is still the one the
/// detector set: an admin's later change stays), audited, with an `emergency_switch` event.
async fn lift_expired(state: &AppState) {
    let store = state.store.as_ref();
    let now_ms = state.now().timestamp_millis();
    let Ok(docs) = store.list_docs(Collection::Tasks).await else {
        return;
    };
    for (id, doc) in docs {
        let Some(scope) = id.strip_prefix(AUTO_PREFIX) else {
            continue;
        };
        let Ok(auto) = serde_json::from_str::<AutoSwitch>(&doc.json) else {
            continue;
        };
        if auto.until_ms > now_ms {
            continue;
        }
        match store
            .delete_doc(
                Collection::Switches,
                scope,
                Expect::Version(auto.switch_version),
            )
            .await
        {
            Ok(Ok(())) => {
                state.catalog.invalidate();
                crate::api::audit(
                    state,
                    "emergency.auto_clear",
                    scope,
                    serde_json::json!({ "anomaly": auto.alert_id }),
                )
                .await;
                let alert =
                    super::events::switch_alert(scope, None, None, "anomaly_detector", now_ms);
                if let Err(e) = raise(state, alert).await {
                    tracing::warn!(scope, error = %e, "emergency lift event not written");
                }
            }
            Ok(Err(_)) => {
                tracing::info!(
                    scope,
                    "anomaly: the automatic switch was changed or lifted by an admin; left as it is"
                );
            }
            Err(e) => {
                tracing::warn!(scope, error = %e, "anomaly: automatic switch not lifted");
                continue;
            }
        }
        if let Err(e) = store
            .delete_doc(Collection::Tasks, &id, Expect::Version(doc.version))
            .await
        {
            tracing::warn!(scope, error = %e, "anomaly: expiry record not deleted");
        }
    }
}
