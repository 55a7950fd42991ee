//! A ledger record as the Redis stream keeps it: a JSON array, positions fixed, so a record
//! costs its values and not its field names. Written directly into a buffer (every settlement
//! with the ledger on encodes its record) and read with serde without a `serde_json::Value`
//! tree (exports decode every record; the rollup pass reads a lighter view of each:
//! `rollup_read.rs`), so the codec is on the ledger's hot path.
//!
//! Positions: version `1`, request id, start ms, end ms, scopes, provider, api, requested
//! model, charged model, the 8 token counts, cost nanos, breakdown (9 parts) or null,
//! estimated, outcome, deny reason, budget id, source. `recorded_at_ms` is the entry id's
//! time, not stored. Readers ignore elements past those they know (a newer release may
//! append some); a deny reason or source this release does not know reads as none / the
//! default.

use std::fmt;

use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value as Json;
use serde_json::value::RawValue;
use tollgate_model::scope::{Scope, ScopeKind};
use tollgate_model::wire::v1::DenyReason;

use crate::ledger::{CallOutcome, CostParts, RecordSource, RequestRecord, TokenCounts};

/// Version of the stored record form (its first element).
const STORED_V1: i64 = 1;

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

/// Appends JSON to a buffer. Every settlement with the ledger on encodes its record here, so
/// the stored form is written directly rather than through serde's sequence machinery (and
/// a scope through `Display`, as serde writes it): about a third of the cost. Numbers,
/// strings and enum names still go through `serde_json`'s own writers.
struct Out(Vec<u8>);

impl Out {
    fn raw(&mut self, s: &str) {
        self.0.extend_from_slice(s.as_bytes());
    }

    /// A serde value: a number, an escaped string, an enum's name. Writing to a Vec cannot
    /// fail.
    fn value<T: Serialize + ?Sized>(&mut self, v: &T) {
        let _ = serde_json::to_writer(&mut self.0, v);
    }

    fn ints(&mut self, v: &[i64]) {
        self.0.push(b'[');
        for (i, x) in v.iter().enumerate() {
            if i > 0 {
                self.0.push(b',');
            }
            self.value(x);
        }
        self.0.push(b']');
    }

    /// A scope as its string `kind:value` (or `global`).
    fn scope(&mut self, s: &Scope) {
        let v = s.value();
        if s.kind() == ScopeKind::Global {
            self.raw("\"global\"");
        } else if v.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
            self.value(&s.to_string());
        } else {
            self.0.push(b'"');
            self.raw(s.kind().as_str());
            self.0.push(b':');
            self.raw(v);
            self.0.push(b'"');
        }
    }

    /// One record in its stored form (the positions above).
    fn record(&mut self, r: &RequestRecord) {
        self.raw("[1,");
        self.value(&r.request_id);
        self.0.push(b',');
        self.value(&r.started_at_ms);
        self.0.push(b',');
        self.value(&r.ended_at_ms);
        self.raw(",[");
        for (i, s) in r.scopes.iter().enumerate() {
            if i > 0 {
                self.0.push(b',');
            }
            self.scope(s);
        }
        self.raw("],");
        self.value(&r.provider);
        self.0.push(b',');
        self.value(&r.api);
        self.0.push(b',');
        self.value(&r.requested_model);
        self.0.push(b',');
        self.value(&r.charged_model);
        self.0.push(b',');
        self.ints(&r.tokens.to_array());
        self.0.push(b',');
        self.value(&r.cost_nanos);
        self.0.push(b',');
        match &r.breakdown {
            Some(b) => self.ints(&parts(b)),
            None => self.raw("null"),
        }
        self.raw(if r.estimated { ",true," } else { ",false," });
        self.value(&r.outcome);
        self.0.push(b',');
        self.value(&r.deny_reason);
        self.0.push(b',');
        self.value(&r.budget_id);
        self.0.push(b',');
        self.value(&r.source);
        self.0.push(b']');
    }
}

/// A settle batch's records as stored in its one entry (field `b`): a JSON array with one
/// element per settlement of the batch, in order, `null` for a settlement without a record.
/// `None` when no settlement has one (nothing is written).
pub(super) fn encode_batch(records: &[Option<&RequestRecord>]) -> Option<String> {
    if records.iter().all(Option::is_none) {
        return None;
    }
    let mut out = Out(Vec::with_capacity(256 * records.len()));
    out.0.push(b'[');
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.0.push(b',');
        }
        match r {
            Some(r) => out.record(r),
            None => out.raw("null"),
        }
    }
    out.0.push(b']');
    String::from_utf8(out.0).ok()
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
    fn the_written_form_is_the_json_array_of_the_documented_positions() {
        // Strings that need escaping, a scope value with a quote, a denial.
        let r = RequestRecord {
            request_id: "r\"1\u{e9}\n".into(),
            scopes: vec![
                "org:a".parse().unwrap(),
                "tag:q\"x\\".parse().unwrap(),
                Scope::global(),
            ],
            api: None,
            breakdown: None,
            outcome: CallOutcome::Denied,
            deny_reason: Some(DenyReason::UnknownModel),
            budget_id: None,
            source: RecordSource::Live,
            charged_model: "m\t2".into(),
            ..record()
        };
        let want = serde_json::json!([
            [
                1,
                "r1",
                1,
                2,
                ["org:a", "team:b"],
                "openai",
                "chat_completions",
                "gpt-4o",
                "gpt-4o-mini",
                [1, 2, 3, 4, 5, 6, 7, 8],
                99,
                [90, 0, 0, 0, 9, 0, 0, 0, 0],
                true,
                "downgraded",
                null,
                "b1",
                "import"
            ],
            null,
            [
                1,
                "r\"1\u{e9}\n",
                1,
                2,
                ["org:a", "tag:q\"x\\", "global"],
                "openai",
                null,
                "gpt-4o",
                "m\t2",
                [1, 2, 3, 4, 5, 6, 7, 8],
                99,
                null,
                true,
                "denied",
                "unknown_model",
                null,
                "live"
            ]
        ]);
        let raw = encode_batch(&[Some(&record()), None, Some(&r)]).unwrap();
        assert_eq!(raw, want.to_string());
        let els = batch_elements(&raw).unwrap();
        let back = decode_record(els[2].unwrap().get(), 0).unwrap();
        assert_eq!(back, r);
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
