//! A price file's dates: `YYYY-MM-DD`, read and written without chrono's format machinery
//! (its parser alone was 7 KB of the filter's `.wasm`).

use std::fmt;

use chrono::{Datelike, NaiveDate};
use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// Reads `YYYY-MM-DD` (a four-digit year): `None` for anything else or a day that does
/// not exist.
pub fn parse(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = text.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    NaiveDate::from_ymd_opt(i32::try_from(num(0..4)?).ok()?, num(5..7)?, num(8..10)?)
}

/// Serde `with`: writes `YYYY-MM-DD`.
pub fn serialize<S: Serializer>(date: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!(
        "{:04}-{:02}-{:02}",
        date.year(),
        date.month(),
        date.day()
    ))
}

/// Serde `with`: reads `YYYY-MM-DD`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
    struct Ymd;
    impl Visitor<'_> for Ymd {
        type Value = NaiveDate;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a date written YYYY-MM-DD")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<NaiveDate, E> {
            parse(v).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
        }
    }
    d.deserialize_str(Ymd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_reads_back_as_written_and_anything_else_is_refused() {
        let d = parse("2025-02-28").unwrap();
        assert_eq!(d, NaiveDate::from_ymd_opt(2025, 2, 28).unwrap());
        assert_eq!(serde_json::to_string(&Wrap(d)).unwrap(), r#""2025-02-28""#);
        for bad in [
            "2025-02-30",
            "2025-2-28",
            "25-02-28",
            "+2025-02-2",
            "2025-02-28 ",
            "２０２５-02-28",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    struct Wrap(NaiveDate);
    impl serde::Serialize for Wrap {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            serialize(&self.0, s)
        }
    }
}
