//! How the rollup pass reads the record stream: each entry kept as the text Redis sent (taken
//! out of the reply, not copied), and each record read as a view of what its rows need (end
//! time, scopes, provider, charged model, amounts) borrowing that text, instead of a whole
//! [`RequestRecord`](crate::ledger::RequestRecord) with a dozen owned strings.
//!
//! Why: the pass reads every record written, and decoding whole records was half of the
//! ledger's cost to the control plane (`tollgate-bench-ledger`, profiled with `perf`). A view
//! accepts and refuses exactly what `stored::decode_record` does (the same positions and
//! types), so a record the pass counts is one an export reads, and an unreadable one is
//! left out of both the same way.

use std::borrow::Cow;
use std::fmt;

use redis::Value;
use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::ledger::{Id, parse_id};
use crate::ledger::CallOutcome;
use crate::ledger::import::SpendRow;
use crate::ledger::row::{VALUES, Values};

/// Version of the stored record form this release reads (`stored.rs`).
const STORED_V1: i64 = 1;

/// A stream entry as the pass keeps it until it is counted.
pub(super) struct RawEntry {
    /// Its id as text (`<ms>-<seq>`) and as numbers.
    pub(super) id_text: String,
    pub(super) id: Id,
    /// A batch entry's records (field `b`), a single record of a release before batches
    /// (field `r`), or imported spend rows (field `h`).
    body: Body,
    /// The batch's replays, or the spend rows imported before (field `x`): positions left
    /// out.
    skip: Vec<usize>,
}

enum Body {
    Batch(String),
    Single(String),
    Spend(String),
}

/// Text from a reply element, taken out of it.
fn take_text(v: Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

impl RawEntry {
    /// One `XRANGE` entry, taken by value; `None` when it is not an entry this release
    /// knows (neither field `b` nor `r`).
    pub(super) fn from_value(e: Value) -> Option<RawEntry> {
        let Value::Array(parts) = e else { return None };
        let mut parts = parts.into_iter();
        let id_text = take_text(parts.next()?)?;
        let id = parse_id(&id_text)?;
        let Value::Array(fields) = parts.next()? else {
            return None;
        };
        let (mut single, mut batch, mut spend, mut skip) = (None, None, None, Vec::new());
        let mut it = fields.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            let key = match &k {
                Value::BulkString(b) => b.as_slice(),
                Value::SimpleString(s) => s.as_bytes(),
                _ => continue,
            };
            match key {
                b"r" => single = Some(take_text(v)?),
                b"b" => batch = Some(take_text(v)?),
                b"h" => spend = Some(take_text(v)?),
                b"x" => {
                    skip = take_text(v)?
                        .split(',')
                        .filter_map(|p| p.parse().ok())
                        .collect()
                }
                _ => {}
            }
        }
        let body = match (spend, batch, single) {
            (Some(h), _, _) => Body::Spend(h),
            (None, Some(b), _) => Body::Batch(b),
            (None, None, Some(r)) => Body::Single(r),
            (None, None, None) => return None,
        };
        Some(RawEntry {
            id_text,
            id,
            body,
            skip,
        })
    }

    /// The entry's records, replays left out, in order: a view each, or `None` for a record
    /// this release cannot read (it still counts in the stream's record count).
    pub(super) fn views(&self) -> Vec<Option<View<'_>>> {
        match &self.body {
            Body::Spend(_) => Vec::new(),
            Body::Single(raw) => vec![view(raw)],
            Body::Batch(raw) => {
                let keep = |i: &usize| !self.skip.contains(i);
                // One pass over the whole batch; when an element is malformed, element by
                // element, so that one bad record does not hide the others.
                if let Ok(all) = serde_json::from_str::<Vec<Option<MaybeView<'_>>>>(raw) {
                    return all
                        .into_iter()
                        .enumerate()
                        .filter(|(i, _)| keep(i))
                        .filter_map(|(_, v)| v.map(|MaybeView(v)| v))
                        .collect();
                }
                let Ok(all) = serde_json::from_str::<Vec<Option<&RawValue>>>(raw) else {
                    return vec![None];
                };
                all.into_iter()
                    .enumerate()
                    .filter(|(i, _)| keep(i))
                    .filter_map(|(_, v)| v.map(|v| view(v.get())))
                    .collect()
            }
        }
    }
}

impl RawEntry {
    /// An entry's imported spend rows (`Store::import_spend`), the ones imported before left
    /// out; none for an entry of records; `Err` with the text when this release cannot read
    /// them.
    pub(super) fn spend_rows(&self) -> Result<Vec<SpendRow>, &str> {
        let Body::Spend(raw) = &self.body else {
            return Ok(Vec::new());
        };
        let all: Vec<SpendRow> = serde_json::from_str(raw).map_err(|_| raw.as_str())?;
        Ok(all
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !self.skip.contains(i))
            .map(|(_, r)| r)
            .collect())
    }
}

/// One stored record's view; `None` when this release cannot read it.
fn view(raw: &str) -> Option<View<'_>> {
    serde_json::from_str::<MaybeView<'_>>(raw).ok()?.0
}

/// What a record's rollup rows need.
pub(super) struct View<'a> {
    /// When the call ended (its hour and day), Unix ms.
    pub(super) ended_at_ms: i64,
    /// Its scopes as stored (`kind:value`).
    pub(super) scopes: Vec<Text<'a>>,
    pub(super) provider: Text<'a>,
    pub(super) charged_model: Text<'a>,
    /// What it adds to each of its rows (`row::values_of`).
    pub(super) values: Values,
}

/// A JSON string, borrowed from the entry's text unless it holds escapes.
pub(super) struct Text<'a>(pub(super) Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Up to `N` integers of a JSON array (fewer read as zeros; more must still be integers, as
/// `Vec<i64>` would have them, and are ignored).
struct Ints<const N: usize>([i64; N]);

impl<'de, const N: usize> Deserialize<'de> for Ints<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const N: usize>;
        impl<'de, const N: usize> Visitor<'de> for V<N> {
            type Value = Ints<N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of integers")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Ints<N>, A::Error> {
                let mut out = [0i64; N];
                let mut i = 0;
                while let Some(x) = a.next_element::<i64>()? {
                    if let Some(slot) = out.get_mut(i) {
                        *slot = x;
                    }
                    i += 1;
                }
                Ok(Ints(out))
            }
        }
        d.deserialize_seq(V::<N>)
    }
}

/// A stored record read as a view: `None` when it is of another version.
struct MaybeView<'a>(Option<View<'a>>);

fn next<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(a: &mut A) -> Result<T, A::Error> {
    a.next_element()?
        .ok_or_else(|| de::Error::custom("ledger record too short"))
}

impl<'de> Deserialize<'de> for MaybeView<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeView<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a stored ledger record (JSON array)")
            }
            // The positions and types of `stored::RecordVisitor`, the fields the rows do not
            // need checked but not kept.
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<MaybeView<'de>, A::Error> {
                let version: i64 = next(&mut a)?;
                if version != STORED_V1 {
                    while a.next_element::<IgnoredAny>()?.is_some() {}
                    return Ok(MaybeView(None));
                }
                let _request_id: Text<'de> = next(&mut a)?;
                let _started_at_ms: i64 = next(&mut a)?;
                let ended_at_ms: i64 = next(&mut a)?;
                let scopes: Vec<Text<'de>> = next(&mut a)?;
                let provider: Text<'de> = next(&mut a)?;
                let _api: Option<Text<'de>> = next(&mut a)?;
                let _requested_model: Text<'de> = next(&mut a)?;
                let charged_model: Text<'de> = next(&mut a)?;
                let Ints::<8>(tokens) = next(&mut a)?;
                let cost_nanos: i64 = next(&mut a)?;
                let _breakdown: Option<Ints<9>> = next(&mut a)?;
                let _estimated: bool = next(&mut a)?;
                let outcome: CallOutcome = next(&mut a)?;
                let _deny: Option<IgnoredAny> = a.next_element()?;
                let _budget_id: Option<Option<Text<'de>>> = a.next_element()?;
                while a.next_element::<IgnoredAny>()?.is_some() {}
                let mut values = [0i64; VALUES];
                values[0] = cost_nanos;
                values[1] = 1;
                values[2] = i64::from(outcome == CallOutcome::Denied);
                values[3..].copy_from_slice(&tokens);
                Ok(MaybeView(Some(View {
                    ended_at_ms,
                    scopes,
                    provider,
                    charged_model,
                    values,
                })))
            }
        }
        d.deserialize_seq(V)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::ledger::row;
    use crate::store::redis::stored::decode_record;

    /// A view agrees with the whole record's decoding: the same records read, the same
    /// values, and the same ones refused (a view's scopes are checked when the pass names
    /// its rows: `rollup::Names`).
    #[test]
    fn a_view_reads_and_refuses_what_the_whole_record_decoder_does() {
        use tollgate_model::scope::Scope;
        let cases = [
            r#"[1,"r1",1,2,["org:a","team:b"],"openai","chat","gpt-4o","gpt-4o-mini",[1,2,3,4,5,6,7,8],99,[90,0,0,0,9,0,0,0,0],true,"downgraded",null,"b1","import"]"#,
            r#"[1,"r\"1",1,2,["team:q\"x"],"open\tai",null,"m","m\u00e9",[1,2],5,null,false,"denied","usd","b",null,"later"]"#,
            r#"[1,"r1",1,2,[],"p",null,"m","m",[1,2,3,4,5,6,7,8,9,10],5,null,false,"allowed"]"#,
            r#"[2,"r1"]"#,
            r#"[1,"r1",1]"#,
            r#"[1,"r1",1,2,["org:a"],"p",null,"m","m",[1,"x"],5,null,false,"allowed"]"#,
            r#"[1,"r1",1,2,["org:a"],"p",null,"m","m",[1],5,null,false,"exploded"]"#,
            r#"[1,"r1",1,2,["org:a"],"p",null,"m","m",[1],5,null,false,"allowed",null,7]"#,
            r#"[1,7,1,2,["org:a"],"p",null,"m","m",[1],5,null,false,"allowed"]"#,
            r#"{"a":1}"#,
            r#"[1,"r1",1,2,["bogus:a"],"p",null,"m","m",[1],5,null,false,"allowed"]"#,
            r#"[1,"r1",1,2,["team:"],"p",null,"m","m",[1],5,null,false,"allowed"]"#,
            r#"[1,"r1",1,2,["team:a b"],"p",null,"m","m",[1],5,null,false,"allowed"]"#,
            r#"[1,"r1",1,2,["global:"],"p",null,"m","m",[1],5,null,false,"allowed"]"#,
        ];
        for raw in cases {
            let whole = decode_record(raw, 0);
            let v = view(raw).filter(|v| v.scopes.iter().all(|s| s.0.parse::<Scope>().is_ok()));
            assert_eq!(whole.is_some(), v.is_some(), "{raw}");
            if let (Some(r), Some(v)) = (whole, v) {
                assert_eq!(v.values, row::values_of(&r), "{raw}");
                assert_eq!(v.ended_at_ms, r.ended_at_ms);
                assert_eq!(v.provider.0, r.provider);
                assert_eq!(v.charged_model.0, r.charged_model);
                let scopes: Vec<Scope> = v.scopes.iter().map(|s| s.0.parse().unwrap()).collect();
                assert_eq!(scopes, r.scopes);
            }
        }
    }

    fn entry(fields: &[(&str, &str)]) -> RawEntry {
        let fields = fields
            .iter()
            .flat_map(|(k, v)| {
                [
                    Value::BulkString(k.as_bytes().to_vec()),
                    Value::BulkString(v.as_bytes().to_vec()),
                ]
            })
            .collect();
        RawEntry::from_value(Value::Array(vec![
            Value::BulkString(b"5-1".to_vec()),
            Value::Array(fields),
        ]))
        .unwrap()
    }

    #[test]
    fn a_batch_leaves_out_its_replays_and_gaps_and_keeps_a_bad_record_s_place() {
        let good = r#"[1,"r1",1,2,["org:a"],"p",null,"m","m",[1],5,null,false,"allowed"]"#;
        let raw = format!("[{good},null,{good},[1,\"bad\"],{good}]");
        let e = entry(&[("b", &raw), ("x", "2")]);
        assert_eq!(e.id, (5, 1));
        let views = e.views();
        // Positions 0, 3 (unreadable) and 4: the gap (1) and the replay (2) left out.
        assert_eq!(views.len(), 3);
        assert!(views[0].is_some() && views[1].is_none() && views[2].is_some());
        // A batch that is no JSON array holds one unreadable record.
        assert_eq!(entry(&[("b", "nonsense")]).views().len(), 1);
        assert!(entry(&[("r", good)]).views()[0].is_some());
        assert!(
            RawEntry::from_value(Value::Array(vec![
                Value::BulkString(b"5-1".to_vec()),
                Value::Array(vec![])
            ]))
            .is_none()
        );
    }
}
