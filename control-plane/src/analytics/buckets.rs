//! Calendar buckets of a report: local hours, days, ISO weeks or months of an IANA time zone.
//!
//! A bucket is exactly a budget window of the same calendar unit (`Period::window`), so the
//! DST rules are the budgets' own: the day a clock goes forward has 23 hours, the day it goes
//! back 25, and buckets tile time without gap or overlap. An hour that happens twice (the
//! night the clock goes back) is one two-hour bucket, as it is one budget window.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use tollgate_model::period::Period;

use super::{AnalyticsError, TimeRange};

/// The calendar unit rows are summed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    /// A local clock hour.
    Hour,
    /// A local day, from midnight.
    Day,
    /// An ISO week, from Monday midnight.
    Week,
    /// A calendar month.
    Month,
}

impl Bucket {
    fn period(self) -> Period {
        match self {
            Bucket::Hour => Period::Hourly,
            Bucket::Day => Period::Daily,
            Bucket::Week => Period::Weekly,
            Bucket::Month => Period::Monthly,
        }
    }

    /// The query-string name.
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Hour => "hour",
            Bucket::Day => "day",
            Bucket::Week => "week",
            Bucket::Month => "month",
        }
    }
}

impl std::str::FromStr for Bucket {
    type Err = AnalyticsError;
    fn from_str(s: &str) -> Result<Bucket, AnalyticsError> {
        match s {
            "hour" => Ok(Bucket::Hour),
            "day" => Ok(Bucket::Day),
            "week" => Ok(Bucket::Week),
            "month" => Ok(Bucket::Month),
            _ => Err(AnalyticsError::invalid(
                "bucket",
                format!("{s:?} is not one of hour, day, week, month"),
            )),
        }
    }
}

/// Maps instants to the start of their bucket, remembering the last bucket (facts usually
/// come in time order, so most lookups skip the time-zone arithmetic).
pub struct Bucketer {
    period: Period,
    tz: Tz,
    last: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

impl Bucketer {
    /// Buckets of `bucket` in `tz`.
    pub fn new(bucket: Bucket, tz: Tz) -> Bucketer {
        Bucketer {
            period: bucket.period(),
            tz,
            last: None,
        }
    }

    /// The start of the bucket holding `at`.
    pub fn start_of(&mut self, at: DateTime<Utc>) -> DateTime<Utc> {
        if let Some((start, end)) = self.last
            && start <= at
            && at < end
        {
            return start;
        }
        let w = self.period.window(at, self.tz);
        // Calendar windows always have an end; `at` itself is a safe degenerate one.
        let end = w.end.unwrap_or(at);
        self.last = Some((w.start, end));
        w.start
    }
}

/// The number of buckets `range` touches, or an error naming `bucket` when it is more than
/// `max` (counted without building them all).
pub fn count_within(
    range: TimeRange,
    bucket: Bucket,
    tz: Tz,
    max: usize,
) -> Result<usize, AnalyticsError> {
    let period = bucket.period();
    let mut n = 0usize;
    let mut at = range.from;
    while at < range.to {
        n += 1;
        if n > max {
            return Err(AnalyticsError::invalid(
                "bucket",
                format!(
                    "the range holds more than {max} {} buckets: use a coarser bucket or a shorter range",
                    bucket.as_str()
                ),
            ));
        }
        match period.window(at, tz).end {
            Some(end) if end > at => at = end,
            _ => break,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::testing::utc;

    #[test]
    fn a_berlin_day_bucket_follows_local_midnight_across_the_spring_change() {
        let mut b = Bucketer::new(Bucket::Day, chrono_tz::Europe::Berlin);
        // 2026-03-29: clocks go from 02:00 CET to 03:00 CEST; the day is 23 hours long.
        assert_eq!(
            b.start_of(utc("2026-03-29T21:59:59Z")),
            utc("2026-03-28T23:00:00Z")
        );
        assert_eq!(
            b.start_of(utc("2026-03-29T22:00:00Z")),
            utc("2026-03-29T22:00:00Z")
        );
    }

    #[test]
    fn the_repeated_autumn_hour_is_one_two_hour_bucket_as_in_budgets() {
        // 2026-10-25 in Berlin lasts 25 hours; local 02:00-03:00 happens twice and, as a
        // budget window does, is one bucket.
        let range = TimeRange {
            from: utc("2026-10-24T22:00:00Z"),
            to: utc("2026-10-25T23:00:00Z"),
        };
        let n = count_within(range, Bucket::Hour, chrono_tz::Europe::Berlin, 100).unwrap();
        assert_eq!(n, 24);
        let mut b = Bucketer::new(Bucket::Hour, chrono_tz::Europe::Berlin);
        assert_eq!(
            b.start_of(utc("2026-10-25T01:30:00Z")),
            utc("2026-10-25T00:00:00Z")
        );
        assert_eq!(
            b.start_of(utc("2026-10-25T00:10:00Z")),
            utc("2026-10-25T00:00:00Z")
        );
    }

    #[test]
    fn too_many_buckets_is_an_error_naming_the_bucket() {
        let range = TimeRange {
            from: utc("2026-01-01T00:00:00Z"),
            to: utc("2026-03-01T00:00:00Z"),
        };
        let e = count_within(range, Bucket::Hour, chrono_tz::UTC, 1000).unwrap_err();
        assert!(matches!(
            e,
            AnalyticsError::Invalid {
                field: "bucket",
                ..
            }
        ));
        assert_eq!(
            count_within(range, Bucket::Week, chrono_tz::UTC, 1000).unwrap(),
            9
        );
    }
}
