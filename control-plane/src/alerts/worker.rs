//! The delivery loop. Admission hands new events to [`AlertHub::notify`], which never waits
//! (a bounded queue; when full the event is counted as dropped and the next sweep finds it in
//! the store). One background task ([`start`]) takes events off the queue and, every
//! `sweep_interval_ms`, reads the store's recent events again (picking up what a dead replica,
//! a restart or a full queue left undelivered); for each event and each channel that wants it,
//! a delivery task claims the delivery record ([`super::record::claim`]) and attempts it with
//! exponential back-off until it is delivered or, after `max_attempts`, a dead letter.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::channel::StoredChannel;
use super::record::{self, Attempt, DeliveryState, claim, save};
use super::send::Senders;
use super::{Alert, alert_id};
use crate::admission::budget_tag;
use crate::state::AppState;
use crate::store::{AlertEvent, Collection, Store};

/// Events the queue holds before [`AlertHub::notify`] drops (the sweep recovers them).
pub const QUEUE_LEN: usize = 1024;
/// How far back a sweep looks for undelivered events, ms (a day).
pub const RECOVER_WINDOW_MS: i64 = 24 * 3_600_000;
/// Newest events a sweep reads.
pub const SWEEP_EVENTS: usize = 200;
/// How long finished delivery records are kept, ms (7 days).
pub const RECORD_RETENTION_MS: i64 = 7 * 24 * 3_600_000;
/// Most deliveries attempted at once by one replica.
pub const MAX_CONCURRENT: usize = 32;

/// Delivery settings (the `[alerts]` config section; docs/alerts.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySettings {
    /// Attempts per alert and channel before it becomes a dead letter.
    pub max_attempts: u32,
    /// Wait after the first failed attempt, ms; doubled after each further failure.
    pub backoff_base_ms: u64,
    /// Longest wait between attempts, ms.
    pub backoff_max_ms: u64,
    /// Longest one attempt may take (connect, TLS, answer or SMTP exchange), ms.
    pub timeout_ms: u64,
    /// How often the store's recent events are re-read for undelivered ones, ms.
    pub sweep_interval_ms: u64,
    /// Fail-open calls closer than this are one episode; an episode is reported once no
    /// fail-open call has been added to it for this long, ms.
    pub fail_open_quiet_ms: u64,
}

impl Default for DeliverySettings {
    fn default() -> DeliverySettings {
        DeliverySettings {
            max_attempts: 6,
            backoff_base_ms: 2_000,
            backoff_max_ms: 300_000,
            timeout_ms: 10_000,
            sweep_interval_ms: 30_000,
            fail_open_quiet_ms: 300_000,
        }
    }
}

impl DeliverySettings {
    /// The wait after failed attempt `n` (1-based): base × 2^(n-1), at most the max.
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = 1u64.checked_shl(n.saturating_sub(1)).unwrap_or(u64::MAX);
        Duration::from_millis(
            self.backoff_base_ms
                .saturating_mul(factor)
                .min(self.backoff_max_ms),
        )
    }

    /// How long a claim holds: one attempt, the longest wait and a margin, so a live owner
    /// always renews it before it lapses.
    pub fn lease_ms(&self) -> i64 {
        let ms = self
            .timeout_ms
            .saturating_add(self.backoff_max_ms)
            .saturating_add(30_000);
        i64::try_from(ms).unwrap_or(i64::MAX)
    }

    /// A rule the settings break: the key and what is wrong.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if self.max_attempts == 0 || self.max_attempts > 100 {
            return Err(("alerts.max_attempts", "must be 1-100"));
        }
        if self.backoff_base_ms > self.backoff_max_ms {
            return Err((
                "alerts.backoff_base_ms",
                "must not exceed alerts.backoff_max_ms",
            ));
        }
        if self.timeout_ms == 0 {
            return Err(("alerts.timeout_ms", "must be above 0"));
        }
        if self.sweep_interval_ms == 0 {
            return Err(("alerts.sweep_interval_ms", "must be above 0"));
        }
        if self.fail_open_quiet_ms < 1_000 || self.fail_open_quiet_ms > 86_400_000 {
            return Err((
                "alerts.fail_open_quiet_ms",
                "must be 1000 to 86400000 (a day)",
            ));
        }
        Ok(())
    }
}

/// The queue between admission and the delivery task, and what tests observe of it.
pub struct AlertHub {
    tx: mpsc::Sender<Alert>,
    rx: Mutex<Option<mpsc::Receiver<Alert>>>,
    sweeps: watch::Sender<u64>,
    passes: watch::Sender<u64>,
    owner: String,
}

impl Default for AlertHub {
    fn default() -> AlertHub {
        let (tx, rx) = mpsc::channel(QUEUE_LEN);
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        AlertHub {
            tx,
            rx: Mutex::new(Some(rx)),
            sweeps: watch::Sender::new(0),
            passes: watch::Sender::new(0),
            // Unique enough per process: pid and start time.
            owner: format!("{}-{started:x}", std::process::id()),
        }
    }
}

impl AlertHub {
    /// Queues new events for delivery without waiting: admission calls this.
    pub fn notify(&self, events: &[AlertEvent]) {
        for e in events {
            if self.tx.try_send(Alert::from(e)).is_err() {
                metrics::counter!("tollgate_alerts_queue_dropped_total").increment(1);
                tracing::warn!(alert = %alert_id(e), "alert queue full: the next sweep delivers it");
            }
        }
    }

    /// Queues one event for delivery without waiting (events other than threshold crossings,
    /// once their document is written: a dropped one is found by the next sweep).
    pub fn notify_alert(&self, alert: Alert) {
        let id = alert.id.clone();
        if self.tx.try_send(alert).is_err() {
            metrics::counter!("tollgate_alerts_queue_dropped_total").increment(1);
            tracing::warn!(alert = %id, "alert queue full: the next sweep delivers it");
        }
    }

    /// Completed sweeps so far (tests wait on it).
    pub fn sweeps(&self) -> watch::Receiver<u64> {
        self.sweeps.subscribe()
    }

    /// Completed anomaly-detector ticks so far (tests wait on it).
    pub fn anomaly_passes(&self) -> watch::Receiver<u64> {
        self.passes.subscribe()
    }

    /// Counts one anomaly-detector tick done.
    pub(crate) fn anomaly_pass_done(&self) {
        self.passes.send_modify(|n| *n += 1);
    }

    /// This replica's owner id in delivery records.
    pub fn owner(&self) -> &str {
        &self.owner
    }
}

/// Starts the delivery task for `state`; `None` when it runs already (its queue is taken).
/// Aborting the returned handle stops it and every delivery in flight.
pub fn start(state: &AppState) -> Option<tokio::task::JoinHandle<()>> {
    let rx = state.alerts.rx.lock().ok()?.take()?;
    let senders = match Senders::new(Duration::from_millis(state.alert_settings.timeout_ms)) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!(error = %e, "alert senders not built: no alert is delivered");
            return None;
        }
    };
    let ctx = Ctx {
        state: state.clone(),
        senders,
        inflight: Arc::new(Mutex::new(HashSet::new())),
        permits: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT)),
    };
    Some(tokio::spawn(run(ctx, rx)))
}

#[derive(Clone)]
struct Ctx {
    state: AppState,
    senders: Arc<Senders>,
    inflight: Arc<Mutex<HashSet<String>>>,
    permits: Arc<tokio::sync::Semaphore>,
}

async fn run(ctx: Ctx, mut rx: mpsc::Receiver<Alert>) {
    let mut tasks = JoinSet::new();
    let every = Duration::from_millis(ctx.state.alert_settings.sweep_interval_ms);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            Some(alert) = rx.recv() => dispatch(&ctx, &alert, &mut tasks).await,
            _ = tick.tick() => {
                sweep(&ctx, &mut tasks).await;
                ctx.state.alerts.sweeps.send_modify(|n| *n += 1);
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}

/// Re-reads recent events (the first pass runs at start: what a restart left undelivered),
/// drops finished records and events past their retention, and raises suspension events for
/// budgets found suspended.
async fn sweep(ctx: &Ctx, tasks: &mut JoinSet<()>) {
    let store = ctx.state.store.as_ref();
    let now_ms = ctx.state.now().timestamp_millis();
    let events = async {
        let snap = ctx.state.catalog.snapshot(store).await?;
        let mut tags: Vec<String> = snap.budgets.iter().map(|b| budget_tag(b)).collect();
        tags.sort();
        tags.dedup();
        store.alerts(&tags, SWEEP_EVENTS).await
    };
    match events.await {
        Ok(events) => {
            for e in events
                .iter()
                .filter(|e| e.at_ms >= now_ms - RECOVER_WINDOW_MS)
            {
                dispatch(ctx, &Alert::from(e), tasks).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "alert sweep: events not read"),
    }
    match super::events::since(store, now_ms - RECOVER_WINDOW_MS).await {
        Ok(events) => {
            for a in events.iter().take(SWEEP_EVENTS) {
                dispatch(ctx, a, tasks).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "alert sweep: events not read"),
    }
    if let Err(e) = super::events::prune(store, now_ms - super::events::EVENT_RETENTION_MS).await {
        tracing::warn!(error = %e, "alert sweep: old events not pruned");
    }
    super::suspension::check(&ctx.state).await;
    let quiet_ms = i64::try_from(ctx.state.alert_settings.fail_open_quiet_ms).unwrap_or(i64::MAX);
    super::failopen::sweep(&ctx.state, quiet_ms).await;
    if let Err(e) = record::prune(store, now_ms - RECORD_RETENTION_MS).await {
        tracing::warn!(error = %e, "alert sweep: old delivery records not pruned");
    }
}

/// The channels, parsed; a document that no longer parses is logged and skipped.
pub async fn channels(store: &dyn Store) -> Result<Vec<StoredChannel>, crate::store::StoreError> {
    let mut out = Vec::new();
    for (id, doc) in store.list_docs(Collection::Channels).await? {
        match serde_json::from_str::<StoredChannel>(&doc.json) {
            Ok(c) => out.push(c),
            Err(e) => tracing::error!(channel = %id, error = %e, "channel document unreadable"),
        }
    }
    Ok(out)
}

/// Starts a delivery task for every channel that wants `alert` and is not delivering it here
/// already.
async fn dispatch(ctx: &Ctx, alert: &Alert, tasks: &mut JoinSet<()>) {
    let chans = match channels(ctx.state.store.as_ref()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(alert = %alert.id, error = %e, "channels not read: the next sweep retries");
            return;
        }
    };
    for ch in chans {
        let s = &ch.spec;
        // A channel created after the event never receives it (a sweep would otherwise send
        // a new channel a day of old alerts).
        if !s.enabled || alert.severity < s.min_severity || ch.created_at_ms > alert.at_ms {
            continue;
        }
        let key = record::record_id(&alert.id, &s.id);
        let fresh = ctx
            .inflight
            .lock()
            .is_ok_and(|mut set| set.insert(key.clone()));
        if !fresh {
            continue;
        }
        let ctx = ctx.clone();
        let alert = alert.clone();
        tasks.spawn(async move {
            deliver(&ctx, &alert, &ch).await;
            if let Ok(mut set) = ctx.inflight.lock() {
                set.remove(&key);
            }
        });
    }
}

/// The wall clock in Unix seconds, as webhook signatures carry it (receivers check it
/// against theirs, so it is never an injected test clock).
pub(crate) fn wall_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Claims and attempts one delivery until it is delivered, dead, or taken over.
async fn deliver(ctx: &Ctx, alert: &Alert, ch: &StoredChannel) {
    let Ok(_permit) = ctx.permits.acquire().await else {
        return;
    };
    let store = ctx.state.store.as_ref();
    let settings = ctx.state.alert_settings;
    let lease = settings.lease_ms();
    let kind = ch.spec.target.kind();
    let now = || ctx.state.now().timestamp_millis();
    let owner = ctx.state.alerts.owner();
    let (mut rec, mut version) = match claim(store, alert, (&ch.spec.id, kind), owner, now(), lease)
        .await
    {
        Ok(Some(held)) => held,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(alert = %alert.id, channel = %ch.spec.id, error = %e, "delivery not claimed");
            return;
        }
    };
    loop {
        let n = u32::try_from(rec.attempts.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        let at_ms = now();
        let started = Instant::now();
        let result = ctx
            .senders
            .send(&ch.spec.target, alert, n, wall_secs())
            .await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let ok = result.is_ok();
        metrics::counter!("tollgate_alert_delivery_attempts_total",
            "channel_kind" => kind, "outcome" => if ok { "ok" } else { "failed" })
        .increment(1);
        rec.attempts.push(match result {
            Ok(status) => Attempt { at_ms, ok, status, error: None, duration_ms },
            Err(e) => {
                tracing::warn!(alert = %alert.id, channel = %ch.spec.id, attempt = n, error = %e, "alert delivery attempt failed");
                Attempt { at_ms, ok, status: e.status(), error: Some(e.to_string()), duration_ms }
            }
        });
        if ok {
            rec.state = DeliveryState::Delivered;
        } else if n >= settings.max_attempts {
            rec.state = DeliveryState::Dead;
        }
        match save(store, &mut rec, version, now(), lease).await {
            Ok(Some(v)) => version = v,
            Ok(None) => {
                tracing::warn!(alert = %alert.id, channel = %ch.spec.id, "delivery taken over by another replica");
                return;
            }
            Err(e) => {
                // The lease lapses and a sweep (here or elsewhere) takes over from the last
                // attempt recorded; this one may then be repeated: at-least-once.
                tracing::warn!(alert = %alert.id, channel = %ch.spec.id, error = %e, "delivery record not written");
                return;
            }
        }
        let outcome = match rec.state {
            DeliveryState::Pending => None,
            DeliveryState::Delivered => Some("delivered"),
            DeliveryState::Dead => Some("dead"),
        };
        if let Some(outcome) = outcome {
            metrics::counter!("tollgate_alert_deliveries_total",
                "channel_kind" => kind, "outcome" => outcome)
            .increment(1);
            if outcome == "dead" {
                tracing::error!(alert = %alert.id, channel = %ch.spec.id, attempts = n, "alert delivery gave up: dead letter");
            }
            return;
        }
        tokio::time::sleep(settings.backoff(n)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let s = DeliverySettings {
            backoff_base_ms: 100,
            backoff_max_ms: 1_000,
            ..DeliverySettings::default()
        };
        let ms: Vec<u128> = (1..=6).map(|n| s.backoff(n).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(s.backoff(200).as_millis(), 1_000);
    }
}
