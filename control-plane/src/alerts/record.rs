//! Delivery records: one store document per alert and channel (`<alert id>@<channel id>` in
//! the `deliveries` collection), holding the attempts, the outcome and a lease. The lease is
//! the deduplication across replicas: a replica delivers only after writing itself as owner
//! with a compare-and-set on the document's version, so two replicas (or a sweep and a fresh
//! event) never send the same alert to the same channel at once; a replica that dies mid-way
//! leaves a lease that expires, and the next sweep anywhere takes over with the attempt count
//! it left. Records tolerate unknown fields (a newer replica may write more).

use serde::{Deserialize, Serialize};

use super::Alert;
use crate::store::{Collection, Expect, Store, StoreError};

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Being attempted (or waiting for its next attempt, or for a sweep to take it over).
    Pending,
    /// The receiver accepted it.
    Delivered,
    /// Every attempt failed: a dead letter, listed by `GET /v1/alerts/dead-letters`.
    Dead,
}

/// One attempt's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attempt {
    /// When it started, Unix ms.
    pub at_ms: i64,
    /// Whether the receiver accepted it.
    pub ok: bool,
    /// The receiver's HTTP status (HTTP channels, when one was received).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long it took, ms.
    pub duration_ms: u64,
}

/// One alert's delivery to one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryRecord {
    /// The alert delivered.
    pub alert: Alert,
    /// The channel.
    pub channel_id: String,
    /// `webhook`, `slack` or `email`.
    pub channel_kind: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// Every attempt so far, oldest first.
    pub attempts: Vec<Attempt>,
    /// The replica delivering it (a random id per process).
    pub owner: String,
    /// Until when the owner holds it, Unix ms; after that any replica may take it over.
    pub lease_until_ms: i64,
}

/// The record's document id.
pub fn record_id(alert_id: &str, channel_id: &str) -> String {
    format!("{alert_id}@{channel_id}")
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("delivery record: {e}"))
}

/// A record and the document version it was read or written at.
pub type Held = (DeliveryRecord, u64);

/// Takes the delivery of `alert` to a channel for `owner` until `now_ms + lease_ms`: creates
/// the record, or takes over a pending one whose lease has expired. `None` when it is done
/// already, held by someone else, or another replica won the race.
pub async fn claim(
    store: &dyn Store,
    alert: &Alert,
    channel: (&str, &str),
    owner: &str,
    now_ms: i64,
    lease_ms: i64,
) -> Result<Option<Held>, StoreError> {
    let (channel_id, channel_kind) = channel;
    let id = record_id(&alert.id, channel_id);
    let lease_until_ms = now_ms.saturating_add(lease_ms);
    let (rec, expect) = match store.get_doc(Collection::Deliveries, &id).await? {
        None => (
            DeliveryRecord {
                alert: alert.clone(),
                channel_id: channel_id.to_owned(),
                channel_kind: channel_kind.to_owned(),
                state: DeliveryState::Pending,
                attempts: Vec::new(),
                owner: owner.to_owned(),
                lease_until_ms,
            },
            Expect::Absent,
        ),
        Some(doc) => {
            let mut rec: DeliveryRecord = serde_json::from_str(&doc.json).map_err(corrupt)?;
            if rec.state != DeliveryState::Pending || rec.lease_until_ms > now_ms {
                return Ok(None);
            }
            rec.owner = owner.to_owned();
            rec.lease_until_ms = lease_until_ms;
            (rec, Expect::Version(doc.version))
        }
    };
    let json = serde_json::to_string(&rec).map_err(corrupt)?;
    Ok(store
        .put_doc(Collection::Deliveries, &id, &json, expect)
        .await?
        .ok()
        .map(|v| (rec, v)))
}

/// Writes the owner's changes (renewing its lease to `now_ms + lease_ms`) if the record is
/// still at `version`: `None` when another replica took it over meanwhile (then this one
/// stops).
pub async fn save(
    store: &dyn Store,
    rec: &mut DeliveryRecord,
    version: u64,
    now_ms: i64,
    lease_ms: i64,
) -> Result<Option<u64>, StoreError> {
    rec.lease_until_ms = now_ms.saturating_add(lease_ms);
    let id = record_id(&rec.alert.id, &rec.channel_id);
    let json = serde_json::to_string(rec).map_err(corrupt)?;
    Ok(store
        .put_doc(Collection::Deliveries, &id, &json, Expect::Version(version))
        .await?
        .ok())
}

/// Every delivery record, by id (alert id then channel id).
pub async fn all(store: &dyn Store) -> Result<Vec<DeliveryRecord>, StoreError> {
    store
        .list_docs(Collection::Deliveries)
        .await?
        .into_iter()
        .map(|(_, doc)| serde_json::from_str(&doc.json).map_err(corrupt))
        .collect()
}

/// The deliveries of one alert, by channel id.
pub async fn of_alert(
    store: &dyn Store,
    alert_id: &str,
) -> Result<Vec<DeliveryRecord>, StoreError> {
    let prefix = format!("{alert_id}@");
    store
        .list_docs(Collection::Deliveries)
        .await?
        .into_iter()
        .filter(|(id, _)| id.starts_with(&prefix))
        .map(|(_, doc)| serde_json::from_str(&doc.json).map_err(corrupt))
        .collect()
}

/// Deletes finished records of alerts older than `before_ms` (pending ones are kept: a sweep
/// still owes them an attempt). Returns how many went.
pub async fn prune(store: &dyn Store, before_ms: i64) -> Result<usize, StoreError> {
    let mut n = 0;
    for (id, doc) in store.list_docs(Collection::Deliveries).await? {
        let Ok(rec) = serde_json::from_str::<DeliveryRecord>(&doc.json) else {
            continue;
        };
        if rec.state != DeliveryState::Pending && rec.alert.at_ms < before_ms {
            // A record rewritten since the read keeps its place until the next pass.
            if store
                .delete_doc(Collection::Deliveries, &id, Expect::Version(doc.version))
                .await?
                .is_ok()
            {
                n += 1;
            }
        }
    }
    Ok(n)
}
