//! A ledger record as the Redis stream keeps it: a JSON array, positions fixed, so a record
//! costs its values and not its field names. Written and read with serde directly (no
//! `serde_json::Value` tree): the settle path encodes every record and the rollup pass and
//! exports decode every one, so the codec is on the ledger's hot path.
//!
//! Positions: version `1`, request id, start ms, end ms, scopes, provider, api, requested
//! model, charged model, the 8 token counts, cost nanos, breakdown (9 parts) or null,
//! estimated, outcome, deny reason, budget id, source. `recorded_at_ms` is the entry id's
//! time, not stored. Readers ignore elements past those they know (a newer release may
//! append some); a deny reason or source this release does not know reads as none / the
//! default.

use std::fmt;

use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value as Json;
use serde_json::value::RawValue;
use tollgate_model::scope::Scope;
use tollgate_model::wire::v1::DenyReason;

use crate::ledger::{CallOutcome, CostParts, RecordSource, RequestRecord, TokenCounts};

/// Version of the stored record form (its first element).
const STORED_V1: i64 = 1;

/// A record to store, borrowed.
struct Stored<'a>(&'a RequestRecord);

fn parts(b: &CostParts) -> [i64; 9] {
    [
        b.uncached_input_nanos,
        b.cached_input_nanos,
        b.cache_write_5m_nanos,
        b.cache_write_1h_nanos,
        b.output_nanos,
        b.reasoning_nanos,
        b.request_fee_nanos,
        b.images_nanos,
        b.audio_nanos,
    ]
}

impl Serialize for Stored<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut t = s.serialize_seq(Some(17))?;
        t.serialize_element(&STORED_V1)?;
        t.serialize_element(&r.request_id)?;
        t.serialize_element(&r.started_at_ms)?;
        t.serialize_element(&r.ended_at_ms)?;
        t.serialize_element(&r.scopes)?;
        t.serialize_element(&r.provider)?;
        t.serialize_element(&r.api)?;
        t.serialize_element(&r.requested_model)?;
        t.serialize_element(&r.charged_model)?;
        t.serialize_element(&r.tokens.to_array())?;
        t.serialize_element(&r.cost_nanos)?;
        t.serialize_element(&r.breakdown.as_ref().map(parts))?;
        t.serialize_element(&r.estimated)?;
        t.serialize_element(&r.outcome)?;
        t.serialize_element(&r.deny_reason)?;
        t.serialize_element(&r.budget_id)?;
        t.serialize_element(&r.source)?;
        t.end()
    }
}

/// A settle batch's records as stored in its one entry (field `b`): a JSON array with one
/// element per settlement of the batch, in order, `null` for a settlement without a record.
/// `None` when no settlement has one (nothing is written).
pub(super) fn encode_batch(records: &[Option<&RequestRecord>]) -> Option<String> {
    if records.iter().all(Option::is_none) {
        return None;
    }
    let stored: Vec<Option<Stored<'_>>> = records.iter().map(|r| r.map(Stored)).collect();
    serde_json::to_string(&stored).ok()
}

/// One stored record read back: `None` when it is of another version.
struct Decoded(Option<RequestRecord>);

fn next<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(a: &mut A) -> Result<T, A::Error> {
    a.next_element()?
        .ok_or_else(|| de::Error::custom("ledger record too short"))
}

/// Up to `N` integers (fewer read as zeros, more are ignored).
fn fixed<const N: usize>(v: &[i64]) -> [i64; N] {
    let mut out = [0; N];
    for (slot, x) in out.iter_mut().zip(v) {
        *slot = *x;
    }
    out
}

struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = Decoded;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a stored ledger record (JSON array)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Decoded, A::Error> {
        let version: i64 = next(&mut a)?;
        if version != STORED_V1 {
            while a.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(Decoded(None));
        }
        let request_id: String = next(&mut a)?;
        let started_at_ms: i64 = next(&mut a)?;
        let ended_at_ms: i64 = next(&mut a)?;
        let scopes: Vec<Scope> = next(&mut a)?;
        let provider: String = next(&mut a)?;
        let api: Option<String> = next(&mut a)?;
        let requested_model: String = next(&mut a)?;
        let charged_model: String = next(&mut a)?;
        let tokens: Vec<i64> = next(&mut a)?;
        let cost_nanos: i64 = next(&mut a)?;
        let breakdown: Option<Vec<i64>> = next(&mut a)?;
        let estimated: bool = next(&mut a)?;
        let outcome: CallOutcome = next(&mut a)?;
        let deny: Option<Json> = a.next_element()?.flatten();
        let budget_id: Option<String> = a.next_element()?.flatten();
        let source: Option<Json> = a.next_element()?.flatten();
        while a.next_element::<IgnoredAny>()?.is_some() {}
        let breakdown = breakdown.map(|b| {
            let p: [i64; 9] = fixed(&b);
            CostParts {
                uncached_input_nanos: p[0],
                cached_input_nanos: p[1],
                cache_write_5m_nanos: p[2],
                cache_write_1h_nanos: p[3],
                output_nanos: p[4],
                reasoning_nanos: p[5],
                request_fee_nanos: p[6],
                images_nanos: p[7],
                audio_nanos: p[8],
            }
        });
        Ok(Decoded(Some(RequestRecord {
            request_id,
            started_at_ms,
            ended_at_ms,
            recorded_at_ms: 0,
            scopes,
            provider,
            api,
            requested_model,
            charged_model,
            tokens: TokenCounts::from_array(fixed(&tokens)),
            cost_nanos,
            breakdown,
            estimated,
            outcome,
            deny_reason: deny.and_then(|d| serde_json::from_value::<DenyReason>(d).ok()),
            budget_id,
            source: source
                .and_then(|s| serde_json::from_value::<RecordSource>(s).ok())
                .unwrap_or_default(),
        })))
    }
}

impl<'de> Deserialize<'de> for Decoded {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Decoded, D::Error> {
        d.deserialize_seq(RecordVisitor)
    }
}

/// One stored record (`recorded_at_ms` from the entry id); `None` when this release cannot
/// read it.
pub(super) fn decode_record(raw: &str, recorded_at_ms: i64) -> Option<RequestRecord> {
    let Decoded(r) = serde_json::from_str(raw).ok()?;
    r.map(|r| RequestRecord {
        recorded_at_ms,
        ..r
    })
}

/// A batch's elements as their stored text, `None` for a settlement without a record;
/// `None` when the batch is not a JSON array.
pub(super) fn batch_elements(raw: &str) -> Option<Vec<Option<&RawValue>>> {
    serde_json::from_str(raw).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn record() -> RequestRecord {
        RequestRecord {
            request_id: "r1".into(),
            started_at_ms: 1,
            ended_at_ms: 2,
            recorded_at_ms: 0,
            scopes: vec!["org:a".parse().unwrap(), "team:b".parse().unwrap()],
            provider: "openai".into(),
            api: Some("chat_completions".into()),
            requested_model: "gpt-4o".into(),
            charged_model: "gpt-4o-mini".into(),
            tokens: TokenCounts::from_array([1, 2, 3, 4, 5, 6, 7, 8]),
            cost_nanos: 99,
            breakdown: Some(CostParts {
                uncached_input_nanos: 90,
                output_nanos: 9,
                ..CostParts::default()
            }),
            estimated: true,
            outcome: CallOutcome::Downgraded,
            deny_reason: None,
            budget_id: Some("b1".into()),
            source: RecordSource::Import,
        }
    }

    #[test]
    fn a_batch_round_trips_with_its_gaps() {
        let r = record();
        let raw = encode_batch(&[None, Some(&r)]).unwrap();
        let els = batch_elements(&raw).unwrap();
        assert!(els[0].is_none());
        let back = decode_record(els[1].unwrap().get(), 7).unwrap();
        assert_eq!(
            back,
            RequestRecord {
                recorded_at_ms: 7,
                ..r
            }
        );
        assert_eq!(encode_batch(&[None, None]), None);
    }

    #[test]
    fn the_previous_release_s_form_and_a_newer_one_s_extra_elements_are_read() {
        // As the previous release wrote it (serde_json::json! of the same positions), with
        // an element appended by some newer release and an unknown source.
        let raw = r#"[1,"r1",1,2,["org:a"],"openai",null,"m","m",[1,2],5,null,false,"denied","usd","b",null,"later"]"#;
        let r = decode_record(raw, 3).unwrap();
        assert_eq!(r.tokens.to_array(), [1, 2, 0, 0, 0, 0, 0, 0]);
        assert_eq!(r.deny_reason, Some(DenyReason::Usd));
        assert_eq!(r.source, RecordSource::Live);
        assert_eq!(r.outcome, CallOutcome::Denied);
        assert!(decode_record(r#"[2,"r1"]"#, 3).is_none());
        assert!(decode_record(r#"[1,"r1",1]"#, 3).is_none());
    }
}
