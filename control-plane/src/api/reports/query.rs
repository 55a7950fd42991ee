//! The query parameters every report shares: the range (both ends required, `from` before
//! `to`, at most [`MAX_RANGE_DAYS`]), the time zone, and comma-separated lists.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use tollgate_model::NanoUsd;
use tollgate_model::scope::Scope;

use crate::analytics::TimeRange;
use crate::api::error::ApiError;

/// The longest range a report covers: the ledger's daily retention.
pub const MAX_RANGE_DAYS: i64 = 400;

/// A report's range and zone.
#[derive(Debug, Clone, Copy)]
pub struct Common {
    /// The range.
    pub range: TimeRange,
    /// The zone.
    pub tz: Tz,
}

fn instant(field: &'static str, s: Option<&str>, tz: Tz) -> Result<DateTime<Utc>, ApiError> {
    let s = s.ok_or_else(|| {
        ApiError::invalid(
            field,
            "required: a report's range has both ends (RFC 3339 or YYYY-MM-DD)",
        )
    })?;
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.to_utc());
    }
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        ApiError::invalid(field, format!("{s:?} is neither RFC 3339 nor YYYY-MM-DD"))
    })?;
    // Midnight in the zone; where midnight is skipped (a DST gap), the first instant after.
    let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    tz.from_local_datetime(&midnight)
        .earliest()
        .or_else(|| {
            (1..=3).find_map(|h| {
                tz.from_local_datetime(&(midnight + chrono::TimeDelta::hours(h)))
                    .earliest()
            })
        })
        .map(|t| t.to_utc())
        .ok_or_else(|| ApiError::invalid(field, format!("{s:?} has no midnight in {tz}")))
}

impl Common {
    /// Parses `from`, `to` and `tz`; errors name the parameter.
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        tz: Option<&str>,
    ) -> Result<Common, ApiError> {
        let tz_name = tz.unwrap_or("UTC");
        let tz: Tz = tz_name.parse().map_err(|_| {
            ApiError::invalid("tz", format!("{tz_name:?} is not an IANA time zone"))
        })?;
        let from = instant("from", from, tz)?;
        let to = instant("to", to, tz)?;
        let range = TimeRange::new(from, to, MAX_RANGE_DAYS)?;
        Ok(Common { range, tz })
    }

    /// `t` as RFC 3339 in the zone.
    pub fn local(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.tz).to_rfc3339()
    }
}

/// A comma-separated list; empty parts dropped.
pub fn list(s: Option<&str>) -> Vec<String> {
    s.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A comma-separated list of scopes (`scope`).
pub fn scopes(s: Option<&str>) -> Result<Vec<Scope>, ApiError> {
    list(s)
        .iter()
        .map(|p| {
            p.parse::<Scope>()
                .map_err(|e| ApiError::invalid("scope", e.to_string()))
        })
        .collect()
}

/// A USD amount (at most 9 decimal places, not negative) as nano-USD.
pub fn parse_usd(field: &'static str, s: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(s) = s else { return Ok(None) };
    let usd: Decimal = s
        .parse()
        .map_err(|_| ApiError::invalid(field, format!("{s:?} is not a decimal USD amount")))?;
    if usd.is_sign_negative() {
        return Err(ApiError::invalid(field, "must not be negative"));
    }
    NanoUsd::from_usd_exact(usd)
        .map(|n| Some(n.nanos()))
        .map_err(|e| ApiError::invalid(field, e.to_string()))
}
