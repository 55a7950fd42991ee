//! A token count as providers send it, validated: a plain non-negative integer below
//! [`MAX_PLAUSIBLE_TOKENS`]. Anything else (negative, fractional, string, absurdly large) is
//! `Invalid`, so one bad field neither fails the whole usage object nor charges nonsense.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Larger counts than this (a trillion tokens) are treated as corrupt, not billed.
pub const MAX_PLAUSIBLE_TOKENS: u64 = 1_000_000_000_000;

/// One count field of a provider's usage object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Count {
    /// Absent or `null`.
    #[default]
    Missing,
    /// A valid count.
    Valid(u64),
    /// Present but not a plausible count.
    Invalid,
}

impl Count {
    pub(crate) fn get(self) -> Option<u64> {
        match self {
            Count::Valid(n) => Some(n),
            Count::Missing | Count::Invalid => None,
        }
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Count, D::Error> {
        deserializer.deserialize_any(CountVisitor)
    }
}

struct CountVisitor;

impl<'de> Visitor<'de> for CountVisitor {
    type Value = Count;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a token count")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
        Ok(if v <= MAX_PLAUSIBLE_TOKENS {
            Count::Valid(v)
        } else {
            Count::Invalid
        })
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Ok(Count::Invalid),
        }
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Count, E> {
        Ok(Count::Invalid)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Count, E> {
        Ok(Count::Invalid)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Count, E> {
        Ok(Count::Invalid)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Count, E> {
        Ok(Count::Missing)
    }

    fn visit_none<E: de::Error>(self) -> Result<Count, E> {
        Ok(Count::Missing)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Count, D::Error> {
        d.deserialize_any(CountVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Count::Invalid)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Count, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Count::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plausible_non_negative_integers_are_valid() {
        let parse = |s: &str| serde_json::from_str::<Count>(s).unwrap();
        assert_eq!(parse("12"), Count::Valid(12));
        assert_eq!(parse("null"), Count::Missing);
        assert_eq!(parse("-3"), Count::Invalid);
        assert_eq!(parse("1.5"), Count::Invalid);
        assert_eq!(parse("\"7\""), Count::Invalid);
        assert_eq!(parse("[1]"), Count::Invalid);
        assert_eq!(parse("{\"a\":1}"), Count::Invalid);
        assert_eq!(parse("18446744073709551615"), Count::Invalid);
        assert_eq!(parse("1e300"), Count::Invalid);
    }
}
