use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;

use super::*;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn tz(name: &str) -> Tz {
    name.parse().unwrap()
}

#[test]
fn daily_windows_start_at_local_midnight() {
    let w = Period::Daily.window(utc("2026-03-10T03:00:00Z"), tz("America/New_York"));
    assert_eq!(w.start, utc("2026-03-09T04:00:00Z"));
    assert_eq!(w.end, Some(utc("2026-03-10T04:00:00Z")));
}

#[test]
fn the_spring_forward_day_is_23_hours_and_fall_back_25() {
    let ny = tz("America/New_York");
    let w = Period::Daily.window(utc("2026-03-08T12:00:00Z"), ny);
    assert_eq!(w.end.unwrap() - w.start, TimeDelta::hours(23));
    let w = Period::Daily.window(utc("2026-11-01T12:00:00Z"), ny);
    assert_eq!(w.end.unwrap() - w.start, TimeDelta::hours(25));
}

#[test]
fn a_repeated_local_hour_is_one_window() {
    // 2026-11-01 01:00-02:00 happens twice in New York (EDT then EST).
    let ny = tz("America/New_York");
    let first = Period::Hourly.window(utc("2026-11-01T05:30:00Z"), ny);
    let second = Period::Hourly.window(utc("2026-11-01T06:30:00Z"), ny);
    assert_eq!(first, second);
    assert_eq!(first.start, utc("2026-11-01T05:00:00Z"));
    assert_eq!(first.end, Some(utc("2026-11-01T07:00:00Z")));
}

#[test]
fn lord_howe_half_hour_shift_gives_90_and_30_minute_hours() {
    let lh = tz("Australia/Lord_Howe");
    // Fall back 2026-04-05 02:00 (+11) → 01:30 (+10:30): local hour 01 lasts 90 minutes.
    let w = Period::Hourly.window(utc("2026-04-04T14:45:00Z"), lh);
    assert_eq!(w.end.unwrap() - w.start, TimeDelta::minutes(90));
    // Spring forward 2026-10-04 02:00 (+10:30) → 02:30 (+11): local hour 02 lasts 30 minutes.
    let w = Period::Hourly.window(utc("2026-10-03T15:40:00Z"), lh);
    assert_eq!(w.end.unwrap() - w.start, TimeDelta::minutes(30));
}

#[test]
fn weeks_start_on_monday_and_quarters_in_january_april_july_october() {
    let berlin = tz("Europe/Berlin");
    let w = Period::Weekly.window(utc("2026-11-26T12:00:00Z"), berlin); // a Thursday
    assert_eq!(w.start, utc("2026-11-22T23:00:00Z")); // Monday 00:00 CET
    let w = Period::Quarterly.window(utc("2026-05-15T00:00:00Z"), berlin);
    assert_eq!(w.start, utc("2026-03-31T22:00:00Z")); // 1 April 00:00 CEST
    assert_eq!(w.end, Some(utc("2026-06-30T22:00:00Z")));
    let m = Period::Monthly.window(utc("2026-12-31T23:30:00Z"), berlin);
    assert_eq!(m.start, utc("2026-12-31T23:00:00Z")); // already January in Berlin
}

#[test]
fn seconds_windows_are_epoch_aligned_and_total_never_ends() {
    let w = Period::Seconds(60).window(utc("2026-01-01T00:00:59Z"), Tz::UTC);
    assert_eq!(w.start, utc("2026-01-01T00:00:00Z"));
    assert_eq!(w.index, utc("2026-01-01T00:00:00Z").timestamp() / 60);
    let t = Period::Total.window(utc("2026-01-01T00:00:00Z"), Tz::UTC);
    assert_eq!((t.index, t.end), (0, None));
}

#[test]
fn retry_after_rounds_up() {
    let w = Period::Seconds(60).window(utc("2026-01-01T00:00:10Z"), Tz::UTC);
    assert_eq!(w.secs_until_end(utc("2026-01-01T00:00:10.5Z")), Some(50));
}

#[test]
fn bad_seconds_periods_are_refused() {
    assert!(Period::Seconds(0).validate().is_err());
    assert!(Period::Seconds(MAX_PERIOD_SECS + 1).validate().is_err());
    assert!(Period::Seconds(1).validate().is_ok());
}

#[test]
fn periods_serialize_as_names_or_seconds() {
    assert_eq!(
        serde_json::to_string(&Period::Monthly).unwrap(),
        "\"monthly\""
    );
    assert_eq!(
        serde_json::from_str::<Period>(r#"{"seconds":60}"#).unwrap(),
        Period::Seconds(60)
    );
}

const ZONES: [&str; 4] = [
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "UTC",
];
const PERIODS: [Period; 8] = [
    Period::Hourly,
    Period::Daily,
    Period::Weekly,
    Period::Monthly,
    Period::Quarterly,
    Period::Yearly,
    Period::Seconds(60),
    Period::Seconds(3600),
];

/// Instants near the DST transitions of the three zones in 2024-2027, plus anywhere.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let transitions = [
        "2026-03-08T07:00:00Z",
        "2026-11-01T06:00:00Z", // New York
        "2026-03-29T01:00:00Z",
        "2026-10-25T01:00:00Z", // Berlin
        "2026-04-04T15:00:00Z",
        "2026-10-03T15:30:00Z", // Lord Howe
        "2025-04-05T15:00:00Z",
        "2027-10-02T15:30:00Z",
    ];
    prop_oneof![
        (0usize..transitions.len(), -4 * 3600i64..4 * 3600)
            .prop_map(move |(i, off)| { utc(transitions[i]) + TimeDelta::seconds(off) }),
        (0i64..4_102_444_800).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Windows contain their instant, the next window starts exactly where this one ends,
    /// every instant inside maps to the same window, and indices increase.
    #[test]
    fn windows_tile_time_across_dst(t in instant(), z in 0usize..ZONES.len(), p in 0usize..PERIODS.len()) {
        let (zone, period) = (tz(ZONES[z]), PERIODS[p]);
        let w = period.window(t, zone);
        let end = w.end.unwrap();
        prop_assert!(w.start <= t && t < end, "{t} not in {w:?}");
        let next = period.window(end, zone);
        prop_assert_eq!(next.start, end, "gap or overlap after {:?}", w);
        prop_assert!(next.index > w.index);
        prop_assert_eq!(period.window(w.start, zone), w);
        prop_assert_eq!(period.window(end - TimeDelta::nanoseconds(1), zone), w);
    }
}
