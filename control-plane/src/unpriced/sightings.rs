//! The `unpriced_model` alert: raised the first time each (provider, model) is seen unpriced
//! on a UTC day. This replica remembers what it has raised; the alert's id (provider, model,
//! day) makes it one event across replicas too (events are created only if absent).

use std::collections::HashSet;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::alerts::{Alert, AlertKind, Severity};

/// Most (provider, model, day) triples remembered; past it the memory starts again (a flood
/// of invented model names costs one store lookup each, deduplicated by the alert's id).
const MAX_REMEMBERED: usize = 10_000;

const DAY_MS: i64 = 86_400_000;

/// An `unpriced_model` alert's details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UnpricedDetail {
    /// The provider the call went to.
    pub provider: String,
    /// The model as the call named it.
    pub model: String,
    /// What the unknown-model policy did with the first such call of the day: `refused`,
    /// `priced_as` or `unlimited` (docs/prices.md, "Unknown models").
    pub action: String,
}

/// One model seen unpriced, not yet alerted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    detail: UnpricedDetail,
    at_ms: i64,
}

/// What this replica has seen and not yet raised.
#[derive(Debug, Default)]
pub struct Sightings {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    remembered: HashSet<(String, String, i64)>,
    pending: Vec<Sighting>,
}

impl Sightings {
    /// Notes an unpriced call; the first of its (provider, model, day) becomes pending.
    pub fn note(&self, provider: &str, model: &str, action: &str, at_ms: i64) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let key = (
            provider.to_owned(),
            model.to_owned(),
            at_ms.div_euclid(DAY_MS),
        );
        if inner.remembered.contains(&key) {
            return;
        }
        if inner.remembered.len() >= MAX_REMEMBERED {
            inner.remembered.clear();
        }
        inner.remembered.insert(key);
        inner.pending.push(Sighting {
            detail: UnpricedDetail {
                provider: provider.to_owned(),
                model: model.to_owned(),
                action: action.to_owned(),
            },
            at_ms,
        });
    }

    /// The pending sightings, as alerts to raise.
    pub fn take(&self) -> Vec<Alert> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut inner.pending)
            .into_iter()
            .map(alert)
            .collect()
    }
}

/// An id part made of `[A-Za-z0-9._-]` only (alert ids go into URL paths and headers):
/// other bytes are written `~XX`.
fn id_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("~{b:02X}"));
        }
    }
    out
}

fn alert(s: Sighting) -> Alert {
    let day = chrono::DateTime::from_timestamp_millis(s.at_ms).map_or_else(
        || s.at_ms.div_euclid(DAY_MS).to_string(),
        |t| t.format("%Y-%m-%d").to_string(),
    );
    // Refused calls fail for their callers; priced or unlimited ones are charged a guess.
    let severity = match s.detail.action.as_str() {
        "refused" => Severity::Warning,
        _ => Severity::Critical,
    };
    Alert {
        unpriced: Some(s.detail.clone()),
        ..Alert::new(
            format!(
                "unpriced.{}.{}.{day}",
                id_part(&s.detail.provider),
                id_part(&s.detail.model)
            ),
            AlertKind::UnpricedModel,
            severity,
            s.at_ms,
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn each_model_is_pending_once_a_day_and_its_id_is_safe_in_a_path() {
        let seen = Sightings::default();
        let day = 20_000 * DAY_MS;
        seen.note("bedrock", "us.vendor/model:1", "priced_as", day + 5);
        seen.note("bedrock", "us.vendor/model:1", "priced_as", day + 6);
        seen.note("openai", "gpt-x", "refused", day + 7);
        let alerts = seen.take();
        let ids: Vec<&str> = alerts.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "unpriced.bedrock.us.vendor~2Fmodel~3A1.2024-10-04",
                "unpriced.openai.gpt-x.2024-10-04"
            ]
        );
        assert_eq!(alerts[0].severity, Severity::Critical);
        assert_eq!(alerts[1].severity, Severity::Warning);
        assert!(seen.take().is_empty());
        seen.note("bedrock", "us.vendor/model:1", "priced_as", day + DAY_MS);
        assert_eq!(seen.take().len(), 1, "the next day raises it again");
    }
}
