//! Fail-open episodes. A call the filter admitted while the control plane was unreachable is
//! settled later with `reserved: false` (its ledger outcome is `failed_open`). Each applied
//! settlement batch adds its fail-open calls to one store document per minute of their end
//! time (`m<minute start ms>` in the `tasks` collection: calls, first and last end), off the
//! settle answer's path. The alert sweep groups the minutes into **episodes**: runs of minutes
//! no more than `fail_open_quiet_ms` apart, closed once no fail-open call has been added for
//! `fail_open_quiet_ms`. A closed episode becomes one `fail_open_episode` event (id
//! `failopen.<start ms>`, written create-if-absent) and its minute documents are deleted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::events::{FailOpenDetail, raise};
use super::{Alert, AlertKind, Severity};
use crate::state::AppState;
use crate::store::{Collection, Expect, Store, StoreError};

const MINUTE_MS: i64 = 60_000;
/// Compare-and-set attempts on one minute document before the batch's count is given up
/// (logged): replicas settling fail-open calls of the same minute at once.
const CAS_TRIES: usize = 8;
/// Fail-open calls in one episode from which it is `critical` rather than `warning`.
pub const CRITICAL_CALLS: u64 = 1_000;

/// One minute's fail-open calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Minute {
    /// Calls ended in the minute.
    pub calls: u64,
    /// The first one's end, Unix ms.
    pub first_ms: i64,
    /// The last one's end, Unix ms.
    pub last_ms: i64,
    /// When a call was last added, Unix ms (the control plane's clock).
    pub updated_ms: i64,
}

fn minute_id(at_ms: i64) -> String {
    format!("m{}", at_ms.div_euclid(MINUTE_MS) * MINUTE_MS)
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("fail-open minute: {e}"))
}

/// Adds fail-open calls (their end times, Unix ms) to their minutes' documents.
pub async fn note(store: &dyn Store, ends_ms: &[i64], now_ms: i64) -> Result<(), StoreError> {
    let mut by_minute: BTreeMap<String, Minute> = BTreeMap::new();
    for &t in ends_ms {
        let m = by_minute.entry(minute_id(t)).or_insert(Minute {
            calls: 0,
            first_ms: t,
            last_ms: t,
            updated_ms: now_ms,
        });
        m.calls += 1;
        m.first_ms = m.first_ms.min(t);
        m.last_ms = m.last_ms.max(t);
    }
    for (id, add) in by_minute {
        let mut written = false;
        for _ in 0..CAS_TRIES {
            let current = store.get_doc(Collection::Tasks, &id).await?;
            let (next, expect) = match &current {
                None => (add, Expect::Absent),
                Some(doc) => {
                    let m: Minute = serde_json::from_str(&doc.json).map_err(corrupt)?;
                    (
                        Minute {
                            calls: m.calls.saturating_add(add.calls),
                            first_ms: m.first_ms.min(add.first_ms),
                            last_ms: m.last_ms.max(add.last_ms),
                            updated_ms: now_ms,
                        },
                        Expect::Version(doc.version),
                    )
                }
            };
            let json = serde_json::to_string(&next).map_err(corrupt)?;
            if store
                .put_doc(Collection::Tasks, &id, &json, expect)
                .await?
                .is_ok()
            {
                written = true;
                break;
            }
        }
        if !written {
            tracing::error!(minute = %id, calls = add.calls, "fail-open calls not counted: too much contention");
        }
    }
    Ok(())
}

/// The closed episodes among `minutes` (sorted by id's time): runs whose minutes are at most
/// `quiet_ms` apart and to which nothing was added for `quiet_ms` before `now_ms`. Each
/// episode comes with the ids of its minutes.
pub fn episodes(
    minutes: &[(String, Minute)],
    quiet_ms: i64,
    now_ms: i64,
) -> Vec<(FailOpenDetail, Vec<String>)> {
    let mut sorted: Vec<&(String, Minute)> = minutes.iter().collect();
    sorted.sort_by_key(|(_, m)| m.first_ms);
    let mut out = Vec::new();
    let mut run: Vec<&(String, Minute)> = Vec::new();
    let mut flush = |run: &mut Vec<&(String, Minute)>| {
        let closed = run
            .iter()
            .all(|(_, m)| now_ms.saturating_sub(m.updated_ms) >= quiet_ms);
        let last_end = run.iter().map(|(_, m)| m.last_ms).max().unwrap_or(0);
        if !run.is_empty() && closed && now_ms.saturating_sub(last_end) >= quiet_ms {
            let detail = FailOpenDetail {
                start_ms: run.iter().map(|(_, m)| m.first_ms).min().unwrap_or(0),
                end_ms: last_end,
                calls: run.iter().map(|(_, m)| m.calls).sum(),
            };
            out.push((detail, run.iter().map(|(id, _)| id.clone()).collect()));
        }
        run.clear();
    };
    for item in sorted {
        let joins = run.last().is_none_or(|(_, prev)| {
            let prev_end = run
                .iter()
                .map(|(_, m)| m.last_ms)
                .max()
                .unwrap_or(prev.last_ms);
            item.1.first_ms - prev_end <= quiet_ms
        });
        if !joins {
            flush(&mut run);
        }
        run.push(item);
    }
    flush(&mut run);
    out
}

/// Raises an event for each closed episode and deletes its minutes. Errors are logged (the
/// next sweep tries again; the event id makes a repeat harmless).
pub async fn sweep(state: &AppState, quiet_ms: i64) {
    let store = state.store.as_ref();
    let now_ms = state.now().timestamp_millis();
    let minutes: Vec<(String, Minute)> = match store.list_docs(Collection::Tasks).await {
        Ok(docs) => docs
            .into_iter()
            .filter(|(id, _)| id.starts_with('m'))
            .filter_map(|(id, doc)| serde_json::from_str(&doc.json).ok().map(|m| (id, m)))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "fail-open sweep: minutes not read");
            return;
        }
    };
    for (detail, ids) in episodes(&minutes, quiet_ms, now_ms) {
        let severity = if detail.calls >= CRITICAL_CALLS {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let alert = Alert {
            fail_open: Some(detail.clone()),
            ..Alert::new(
                format!("failopen.{}", detail.start_ms),
                AlertKind::FailOpenEpisode,
                severity,
                now_ms,
            )
        };
        if let Err(e) = raise(state, alert).await {
            tracing::warn!(error = %e, "fail-open episode event not written");
            continue;
        }
        for id in ids {
            if let Err(e) = store
                .delete_doc(Collection::Tasks, &id, Expect::Exists)
                .await
            {
                tracing::warn!(minute = %id, error = %e, "fail-open minute not deleted");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(first_ms: i64, last_ms: i64, calls: u64, updated_ms: i64) -> (String, Minute) {
        (
            minute_id(first_ms),
            Minute {
                calls,
                first_ms,
                last_ms,
                updated_ms,
            },
        )
    }

    #[test]
    fn minutes_close_together_are_one_episode_and_a_gap_starts_another() {
        let q = 300_000;
        let minutes = [
            m(1_000_000, 1_050_000, 3, 2_000_000),
            m(1_060_000, 1_110_000, 4, 2_000_000),
            m(1_170_000, 1_171_000, 1, 2_000_000),
            // Ten minutes later: a second episode.
            m(1_800_000, 1_810_000, 2, 2_000_000),
        ];
        let eps = episodes(&minutes, q, 2_400_000);
        let got: Vec<(i64, i64, u64)> = eps
            .iter()
            .map(|(d, _)| (d.start_ms, d.end_ms, d.calls))
            .collect();
        assert_eq!(got, [(1_000_000, 1_171_000, 8), (1_800_000, 1_810_000, 2)]);
        assert_eq!(eps[0].1.len(), 3);
    }

    #[test]
    fn an_episode_still_growing_is_not_closed() {
        let q = 300_000;
        let minutes = [m(1_000_000, 1_050_000, 3, 1_200_000)];
        assert!(
            episodes(&minutes, q, 1_400_000).is_empty(),
            "added 200 s ago"
        );
        assert_eq!(episodes(&minutes, q, 1_500_000).len(), 1);
    }
}
