//! Budget periods and their windows.
//!
//! A window is the stretch of time one budget counter covers. Its **index** is part of the
//! counter's key, so a new window starts counting from zero without anything resetting
//! anything, and old windows simply expire.
//!
//! Calendar periods follow the budget's IANA time zone: a daily budget in Europe/Berlin
//! resets at Berlin midnight. A window is `[resolve(L), resolve(L'))` where `L` is the local
//! start of the calendar unit (`2026-03-29 00:00`) and `L'` the next one; `resolve` maps a
//! local time to an instant, taking the **earlier** instant when the local time occurs twice
//! (DST fall-back) and the instant the clock jumps to when it does not occur at all (DST
//! spring-forward gap). So on a fall-back night the repeated local hour belongs to one
//! longer window, a skipped hour gives no window, and windows always tile time without gap
//! or overlap. (Zones whose DST shift is two hours, such as Antarctica/Troll, can repeat a
//! whole unit; there the end falls on the later occurrence.)
//!
//! `Seconds(n)` windows are fixed, epoch-aligned stretches of `n` seconds (a "rolling" rate
//! limit in the sense of `n`-second buckets), independent of the time zone.

use chrono::{
    DateTime, Datelike, Days, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// The longest `Seconds` period accepted: one 366-day year.
pub const MAX_PERIOD_SECS: u32 = 366 * 24 * 3600;

/// How often a budget's counters start again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// Each local clock hour.
    Hourly,
    /// Each local day, from midnight.
    Daily,
    /// Each ISO week, from Monday midnight.
    Weekly,
    /// Each calendar month.
    Monthly,
    /// Each calendar quarter (January, April, July, October).
    Quarterly,
    /// Each calendar year.
    Yearly,
    /// Never: one window for all time.
    Total,
    /// Fixed windows of this many seconds, aligned to the Unix epoch (rate limits).
    Seconds(u32),
}

/// One window of a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Window {
    /// Identifies the window within its period; increases with time.
    pub index: i64,
    /// First instant in the window.
    pub start: DateTime<Utc>,
    /// First instant after the window; `None` for `Total`.
    pub end: Option<DateTime<Utc>>,
}

impl Window {
    /// Whole seconds from `now` to the window's end, rounded up (a `retry-after` value).
    pub fn secs_until_end(&self, now: DateTime<Utc>) -> Option<i64> {
        self.end.map(|end| {
            let d = end - now;
            let secs = d.num_seconds();
            if d > TimeDelta::seconds(secs) {
                secs + 1
            } else {
                secs.max(0)
            }
        })
    }
}

/// A period that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    /// `Seconds(0)` or longer than a year.
    #[error("seconds period must be 1..={MAX_PERIOD_SECS}, got {0}")]
    BadSeconds(u32),
}

impl Period {
    /// Checks the period's own rule.
    pub fn validate(&self) -> Result<(), PeriodError> {
        match *self {
            Period::Seconds(n) if n == 0 || n > MAX_PERIOD_SECS => Err(PeriodError::BadSeconds(n)),
            _ => Ok(()),
        }
    }

    /// The window that contains `now`, for a budget kept in time zone `tz`.
    pub fn window(&self, now: DateTime<Utc>, tz: Tz) -> Window {
        let (index, start_local, next_local) = match *self {
            Period::Total => {
                return Window {
                    index: 0,
                    start: DateTime::UNIX_EPOCH,
                    end: None,
                };
            }
            Period::Seconds(n) => {
                let n = i64::from(n.max(1));
                let index = now.timestamp().div_euclid(n);
                let start = DateTime::from_timestamp(index * n, 0).unwrap_or(now);
                let end = DateTime::from_timestamp((index + 1) * n, 0);
                return Window { index, start, end };
            }
            calendar => calendar_unit(calendar, now.with_timezone(&tz).naive_local()),
        };
        let start = resolve(tz, start_local);
        let mut end = resolve(tz, next_local);
        if end <= now {
            // Only when a DST shift repeats a whole unit (two-hour shifts): end on the later
            // occurrence so the window still contains `now`.
            end = tz
                .from_local_datetime(&next_local)
                .latest()
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(end);
        }
        Window {
            index,
            start,
            end: Some(end),
        }
    }
}

/// (index, local start, local start of the next unit) of the calendar unit holding `local`.
fn calendar_unit(period: Period, local: NaiveDateTime) -> (i64, NaiveDateTime, NaiveDateTime) {
    let date = local.date();
    let midnight = |d: NaiveDate| d.and_time(NaiveTime::MIN);
    let days = |d: NaiveDate| i64::from(d.num_days_from_ce()) - i64::from(epoch_days());
    let first_of = |y: i32, m: u32| NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(date);
    match period {
        Period::Hourly => {
            let start = midnight(date) + TimeDelta::hours(i64::from(local.hour()));
            (
                days(date) * 24 + i64::from(local.hour()),
                start,
                start + TimeDelta::hours(1),
            )
        }
        Period::Daily => (days(date), midnight(date), midnight(date + Days::new(1))),
        Period::Weekly => {
            let monday = date - Days::new(u64::from(date.weekday().num_days_from_monday()));
            // 1970-01-05 was a Monday: day 4 of the epoch.
            (
                (days(monday) - 4).div_euclid(7),
                midnight(monday),
                midnight(monday + Days::new(7)),
            )
        }
        Period::Monthly => {
            let first = first_of(date.year(), date.month());
            let index = i64::from(date.year()) * 12 + i64::from(date.month0());
            (index, midnight(first), midnight(first + Months::new(1)))
        }
        Period::Quarterly => {
            let q = date.month0() / 3;
            let first = first_of(date.year(), q * 3 + 1);
            (
                i64::from(date.year()) * 4 + i64::from(q),
                midnight(first),
                midnight(first + Months::new(3)),
            )
        }
        Period::Yearly | Period::Total | Period::Seconds(_) => {
            let first = first_of(date.year(), 1);
            (
                i64::from(date.year()),
                midnight(first),
                midnight(first + Months::new(12)),
            )
        }
    }
}

fn epoch_days() -> i32 {
    DateTime::UNIX_EPOCH.date_naive().num_days_from_ce()
}

/// The instant a local time starts: the earlier one when it occurs twice, the end of the
/// gap when it does not occur.
fn resolve(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    if let Some(t) = tz.from_local_datetime(&local).earliest() {
        return t.with_timezone(&Utc);
    }
    // In a DST gap. Gaps end on a whole minute and last at most a day (Samoa, 2011), so the
    // first local minute that exists is where the clock jumped to.
    let mut probe = local;
    for _ in 0..(25 * 60) {
        probe += TimeDelta::minutes(1);
        let probe_minute = probe.with_second(0).unwrap_or(probe);
        if let Some(t) = tz.from_local_datetime(&probe_minute).earliest() {
            return t.with_timezone(&Utc);
        }
    }
    // Unreachable with the tz database; fall back to reading the local time as UTC.
    local.and_utc()
}

#[cfg(test)]
mod tests;
