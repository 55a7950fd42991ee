//! Anomaly detection on generated seasonal series with known answers: daily and weekly
//! patterns, multiplicative noise, and injected spikes, drops and level shifts. Prints the
//! recall (injected anomalies found) and the false-positive rate (hours flagged outside any
//! injected anomaly, of all hours judged) and holds them to ≥ 0.9 and ≤ 2 %.
#![allow(clippy::float_arithmetic)] // generating and scoring test data, not money

use tollgate_control_plane::analytics::anomaly::{
    Direction, Flag, Sensitivity, WEEK_HOURS, incidents, scan,
};

/// A small deterministic generator (SplitMix64): the same series on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit().max(1e-12), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// An injected anomaly: hours `start..end`, and whether the detector must find it.
#[derive(Debug, Clone, Copy)]
struct Injected {
    kind: &'static str,
    start: usize,
    end: usize,
}

const WEEKS: usize = 8;
/// Weeks of clean history before anything is injected or judged.
const CLEAN_WEEKS: usize = 4;

/// The expected value of hour `t`: a working-day curve, quieter weekends.
fn seasonal(level: f64, t: usize) -> f64 {
    let hour = (t % 24) as f64;
    let day = (t / 24) % 7;
    let daily = 0.35
        + 0.65
            * (std::f64::consts::PI * ((hour - 7.0) / 12.0))
                .sin()
                .max(0.0);
    let weekly = if day >= 5 { 0.45 } else { 1.0 };
    level * daily * weekly
}

/// One series with a spike, a drop and (in every other series) a level shift at the end.
fn series(rng: &mut Rng, noise: f64) -> (Vec<i64>, Vec<Injected>) {
    let n = WEEKS * WEEK_HOURS;
    let level = 2_000_000_000.0 * (0.2 + rng.unit()); // $0.4-2.4 at the day's peak
    let mut factor = vec![1.0f64; n];
    let mut injected = Vec::new();
    let region = CLEAN_WEEKS * WEEK_HOURS;
    // Spike: 1-3 hours at 3-6 × the normal value.
    let s = region + 24 + rng.below(WEEK_HOURS);
    let len = 1 + rng.below(3);
    let k = 3.0 + 3.0 * rng.unit();
    for f in &mut factor[s..s + len] {
        *f = k;
    }
    injected.push(Injected {
        kind: "spike",
        start: s,
        end: s + len,
    });
    // Drop: 2-6 hours at 0-30 % of the normal value (traffic stops or is cut).
    let d = s + len + 48 + rng.below(WEEK_HOURS);
    let len = 2 + rng.below(5);
    let k = 0.3 * rng.unit();
    for f in &mut factor[d..d + len] {
        *f = k;
    }
    injected.push(Injected {
        kind: "drop",
        start: d,
        end: d + len,
    });
    // Level shift: from a point on, 2-3 × (or a half to a third of) the old level, to the end.
    if rng.below(2) == 0 {
        let l = d + len + 48 + rng.below(WEEK_HOURS / 2);
        let k = if rng.below(2) == 0 {
            2.0 + rng.unit()
        } else {
            0.33 + 0.17 * rng.unit()
        };
        for f in &mut factor[l..] {
            *f *= k;
        }
        injected.push(Injected {
            kind: "level_shift",
            start: l,
            end: n,
        });
    }
    let values = (0..n)
        .map(|t| {
            let v = seasonal(level, t) * factor[t] * (noise * rng.normal()).exp();
            v.round().max(0.0) as i64
        })
        .collect();
    (values, injected)
}

fn sensitivity() -> Sensitivity {
    tollgate_control_plane::alerts::anomaly_task::AnomalySettings::default().sensitivity()
}

struct Score {
    injected: usize,
    found: usize,
    judged_hours: usize,
    false_hours: usize,
    missed: Vec<String>,
    /// (kind, injected, found)
    by_kind: Vec<(&'static str, usize, usize)>,
}

fn run(noise: f64, seed: u64, n_series: usize) -> Score {
    let mut rng = Rng(seed);
    let s = sensitivity();
    let from = CLEAN_WEEKS * WEEK_HOURS;
    let mut score = Score {
        injected: 0,
        found: 0,
        judged_hours: 0,
        false_hours: 0,
        missed: Vec::new(),
        by_kind: Vec::new(),
    };
    for i in 0..n_series {
        let (values, injected) = series(&mut rng, noise);
        let flags: Vec<Flag> = scan(&values, from, false, &s);
        score.injected += injected.len();
        score.judged_hours += values.len() - from;
        for inj in &injected {
            // Found: a flag within the anomaly, in its first 6 hours.
            let hit = flags
                .iter()
                .any(|f| f.index >= inj.start && f.index < inj.end.min(inj.start + 6));
            let slot = match score.by_kind.iter().position(|(k, _, _)| *k == inj.kind) {
                Some(p) => p,
                None => {
                    score.by_kind.push((inj.kind, 0, 0));
                    score.by_kind.len() - 1
                }
            };
            score.by_kind[slot].1 += 1;
            if hit {
                score.by_kind[slot].2 += 1;
                score.found += 1;
            } else {
                score.missed.push(format!("series {i} {inj:?}"));
            }
        }
        score.false_hours += flags
            .iter()
            .filter(|f| {
                !injected
                    .iter()
                    .any(|inj| f.index >= inj.start && f.index < inj.end)
            })
            .count();
    }
    score
}

#[test]
fn seasonal_series_with_injected_anomalies_are_found_with_few_false_alarms() {
    for (noise, seed) in [(0.05, 1), (0.10, 2), (0.15, 3)] {
        let sc = run(noise, seed, 40);
        let recall = sc.found as f64 / sc.injected as f64;
        let fp = sc.false_hours as f64 / sc.judged_hours as f64;
        println!(
            "noise {:.0} %: recall {recall:.3} ({}/{} injected), false positives {:.3} % of hours ({}/{})",
            noise * 100.0,
            sc.found,
            sc.injected,
            fp * 100.0,
            sc.false_hours,
            sc.judged_hours
        );
        for (kind, n, found) in &sc.by_kind {
            println!("  {kind}: {found}/{n}");
        }
        for m in &sc.missed {
            println!("  missed {m}");
        }
        assert!(recall >= 0.9, "recall {recall}");
        assert!(fp <= 0.02, "false positives {fp}");
    }
}

#[test]
fn a_level_shift_is_one_incident_not_one_per_hour() {
    let mut rng = Rng(7);
    let s = sensitivity();
    let cooldown =
        tollgate_control_plane::alerts::anomaly_task::AnomalySettings::default().cooldown_hours;
    let n = WEEKS * WEEK_HOURS;
    let shift = 6 * WEEK_HOURS + 30;
    let values: Vec<i64> = (0..n)
        .map(|t| {
            let k = if t >= shift { 3.0 } else { 1.0 };
            (seasonal(1e9, t) * k * (0.08 * rng.normal()).exp()).round() as i64
        })
        .collect();
    let flags = scan(&values, CLEAN_WEEKS * WEEK_HOURS, false, &s);
    assert!(
        flags.len() > 10,
        "a lasting shift keeps flagging hours: {}",
        flags.len()
    );
    let starts = incidents(&flags, CLEAN_WEEKS * WEEK_HOURS, cooldown);
    assert_eq!(starts.len(), 1, "{starts:?}");
    assert!(starts[0].index >= shift && starts[0].index < shift + 3);
    assert_eq!(starts[0].direction, Direction::Up);
}
