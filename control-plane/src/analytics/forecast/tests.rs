use super::*;
use crate::analytics::testing::utc;

/// A small deterministic generator (xorshift64*) with normal draws (Box-Muller).
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    Flat,
    Linear,
    Weekly,
    Step,
    Daily,
}

/// USD per hour of `shape` at hour `t` (from the series' start; `t0` hours are history).
fn rate(shape: Shape, t: usize, t0: usize) -> f64 {
    let day = t / 24;
    let hour = t % 24;
    match shape {
        Shape::Flat => 1.0,
        Shape::Linear => 0.5 + 1.5 * t as f64 / t0 as f64,
        Shape::Weekly => match day % 7 {
            5 | 6 => 0.3,
            _ => 1.4,
        },
        Shape::Step => {
            if t + 10 * 24 < t0 {
                1.0
            } else {
                2.5
            }
        }
        Shape::Daily => {
            if (8..18).contains(&hour) {
                2.0
            } else {
                0.2
            }
        }
    }
}

/// Hourly nano-USD of `shape` over `hours`, with day-level and hour-level noise of sd
/// `noise` (a fraction of the rate), never negative.
fn generate(shape: Shape, hours: usize, t0: usize, noise: f64, rng: &mut Rng) -> Vec<i64> {
    let mut day_factor = 1.0;
    (0..hours)
        .map(|t| {
            if t % 24 == 0 {
                day_factor = (1.0 + noise * rng.normal()).max(0.0);
            }
            let v = rate(shape, t, t0) * day_factor * (1.0 + noise * rng.normal()).max(0.0);
            (v * 1e9).round() as i64
        })
        .collect()
}

struct Case {
    history: Hourly,
    spent: i64,
    truth: i64,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
}

/// A monthly period (April 2026) seen from mid-month, or (`Shape::Daily`) a daily one seen
/// at 14:00, with eight weeks of history before.
fn case(shape: Shape, noise: f64, seed: u64) -> Case {
    let (start, end, now) = match shape {
        Shape::Daily => (
            utc("2026-04-15T00:00:00Z"),
            utc("2026-04-16T00:00:00Z"),
            utc("2026-04-15T14:00:00Z"),
        ),
        _ => (
            utc("2026-04-01T00:00:00Z"),
            utc("2026-05-01T00:00:00Z"),
            utc("2026-04-15T12:00:00Z"),
        ),
    };
    let series_start = now - TimeDelta::days(56);
    let t0 = usize::try_from((now - series_start).num_hours()).unwrap();
    let total = usize::try_from((end - series_start).num_hours()).unwrap();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let all = generate(shape, total, t0, noise, &mut rng);
    let in_period = usize::try_from((start - series_start).num_hours()).unwrap();
    Case {
        history: Hourly {
            start: series_start,
            cost_nanos: all[..t0].to_vec(),
            requests: vec![1; t0],
            spread_days: false,
        },
        spent: all[in_period..t0].iter().sum(),
        truth: all[in_period..].iter().sum(),
        start,
        end,
        now,
    }
}

fn run(c: &Case, limit: Option<i64>) -> Forecast {
    forecast(&Request {
        now: c.now,
        period_start: c.start,
        period_end: Some(c.end),
        history: &c.history,
        spent_nanos: c.spent,
        limit_nanos: limit,
    })
}

#[test]
fn the_intervals_cover_the_truth_on_generated_series_at_their_stated_rates() {
    let shapes = [
        Shape::Flat,
        Shape::Linear,
        Shape::Weekly,
        Shape::Step,
        Shape::Daily,
    ];
    let noises = [0.05, 0.2, 0.4];
    let seeds = 20u64;
    let (mut n, mut in80, mut in95) = (0usize, 0usize, 0usize);
    for shape in shapes {
        for noise in noises {
            let (mut a80, mut a95) = (0, 0);
            let mut methods = std::collections::BTreeMap::<String, usize>::new();
            for seed in 0..seeds {
                let c = case(shape, noise, seed + 1);
                let f = run(&c, None);
                let e = f.end_of_period.unwrap();
                let truth = c.truth as f64 / 1e9;
                a80 += usize::from(e.p80.low_usd <= truth && truth <= e.p80.high_usd);
                a95 += usize::from(e.p95.low_usd <= truth && truth <= e.p95.high_usd);
                *methods.entry(format!("{:?}", f.method)).or_default() += 1;
            }
            println!(
                "coverage {shape:?} noise {noise}: 80% {a80}/{seeds}, 95% {a95}/{seeds}, methods {methods:?}"
            );
            n += seeds as usize;
            in80 += a80;
            in95 += a95;
        }
    }
    let c80 = in80 as f64 / n as f64;
    let c95 = in95 as f64 / n as f64;
    println!("coverage over {n} cases: 80% interval {c80:.3}, 95% interval {c95:.3}");
    assert!(c95 >= 0.90, "95% interval covered {c95:.3}");
    assert!(c80 >= 0.70, "80% interval covered {c80:.3}");
}

#[test]
fn a_flat_dollar_an_hour_forecasts_the_month_and_the_day_the_limit_is_reached() {
    let c = case(Shape::Flat, 0.0, 1);
    // 348 h elapsed of 720: 348 USD spent; the 500 USD limit is 152 h ahead.
    assert_eq!(c.spent, 348_000_000_000);
    let f = run(&c, Some(500_000_000_000));
    let e = f.end_of_period.unwrap();
    assert!((e.point_usd - 720.0).abs() < 1.0, "{e:?}");
    assert_eq!(f.runout.status, RunoutStatus::BeforePeriodEnd);
    let at = f.runout.at.unwrap();
    let want = utc("2026-04-21T20:00:00Z");
    assert!((at - want).num_minutes().abs() <= 60, "{at}");
    assert!(f.runout.earliest.unwrap() <= at);
    assert!((f.burn_rate.last_24h_usd_per_hour - 1.0).abs() < 1e-9);
    assert!((f.burn_rate.forecast_usd_per_hour - 1.0).abs() < 0.01);
    assert_eq!(f.spent_nanos, 348_000_000_000, "spent stays exact");
    assert!(f.backtest.is_some());
    assert!(!f.short_history);
}

#[test]
fn linear_growth_is_forecast_within_two_percent_and_a_high_limit_is_not_reached() {
    let c = case(Shape::Linear, 0.0, 1);
    let f = run(&c, Some(10_000_000_000_000));
    let e = f.end_of_period.unwrap();
    let truth = c.truth as f64 / 1e9;
    assert!(
        (e.point_usd - truth).abs() / truth < 0.02,
        "{e:?} vs {truth}"
    );
    assert_eq!(f.runout.status, RunoutStatus::NotThisPeriod);
    assert_eq!(f.runout.at, None);
}

#[test]
fn weekly_seasonality_is_chosen_by_the_backtest_and_beats_the_others() {
    let c = case(Shape::Weekly, 0.02, 3);
    let f = run(&c, None);
    let b = f.backtest.clone().unwrap();
    assert_eq!(f.method, Method::Seasonal, "{b:?}");
    assert!(b.candidates.iter().all(|x| x.smape_pct >= b.smape_pct));
    let truth = c.truth as f64 / 1e9;
    let e = f.end_of_period.unwrap();
    assert!(
        (e.point_usd - truth).abs() / truth < 0.03,
        "{e:?} vs {truth}"
    );
}

#[test]
fn a_short_history_is_flagged_and_widens_the_interval() {
    let mut c = case(Shape::Flat, 0.2, 5);
    let long = run(&c, None);
    let cut = c.history.cost_nanos.len() - 5 * 24;
    for v in &mut c.history.cost_nanos[..cut] {
        *v = 0;
    }
    let short = run(&c, None);
    assert!(!long.short_history);
    assert!(short.short_history);
    assert_eq!(
        short.history_steps, 4,
        "five days, the first left out as partial"
    );
    let width = |f: &Forecast| {
        let e = f.end_of_period.unwrap();
        e.p95.high_usd - e.p95.low_usd
    };
    assert!(width(&short) > width(&long), "{short:?}");
}

#[test]
fn no_history_carries_the_period_run_rate_on_with_a_wide_interval() {
    let mut c = case(Shape::Flat, 0.0, 1);
    c.history.cost_nanos.iter_mut().for_each(|v| *v = 0);
    let f = run(&c, Some(1_000_000_000_000));
    assert_eq!(f.method, Method::RunRate);
    assert_eq!(f.backtest, None);
    let e = f.end_of_period.unwrap();
    // 348 USD in 348 h: 1 USD/h for the 372 h left.
    assert!((e.point_usd - 720.0).abs() < 1e-6, "{e:?}");
    assert!(
        (e.p95.low_usd - 348.0).abs() < 1e-6,
        "never below what is spent"
    );
    assert!(e.p95.high_usd > 1_000.0);
}

#[test]
fn a_budget_reset_mid_period_forecasts_from_its_counter() {
    let c = case(Shape::Flat, 0.0, 1);
    let before = run(&c, None);
    let mut reset = Case { ..c };
    reset.spent = 0;
    let after = run(&reset, None);
    let gap = before.end_of_period.unwrap().point_usd - after.end_of_period.unwrap().point_usd;
    assert!((gap - 348.0).abs() < 1e-6, "{gap}");
    assert_eq!(after.spent_nanos, 0);
}

#[test]
fn a_spent_limit_is_exhausted_now_and_a_limitless_budget_has_no_runout() {
    let c = case(Shape::Flat, 0.0, 1);
    let f = run(&c, Some(c.spent));
    assert_eq!(f.runout.status, RunoutStatus::Exhausted);
    assert_eq!(f.runout.at, Some(c.now));
    assert_eq!(run(&c, None).runout.status, RunoutStatus::NoLimit);
}

#[test]
fn the_sum_of_shocks_has_the_variance_of_its_loadings() {
    // e1 = ε1, e2 = ε2 + 0.5 ε1: the sum is 1.5 ε1 + ε2, variance 3.25 σ².
    let e = methods::Errors::Shocks {
        sigma: 2.0,
        psi: vec![1.0, 0.5],
    };
    let sd = e.cumulative_sd(&[1.0, 1.0]);
    assert!((sd[0] - 2.0).abs() < 1e-12);
    assert!((sd[1] - 2.0 * 3.25f64.sqrt()).abs() < 1e-12);
}

#[test]
fn a_batch_on_several_threads_answers_as_each_forecast_alone_in_the_order_asked() {
    let shapes = [Shape::Flat, Shape::Linear, Shape::Weekly, Shape::Daily];
    // Twelve series, each asked for twice (the second as a budget with another limit and
    // spent: the fit is shared, the rest is its own).
    let cases: Vec<Case> = (0..24u64)
        .map(|i| case(shapes[i as usize % shapes.len()], 0.2, i % 12 + 1))
        .collect();
    let reqs: Vec<Request<'_>> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| Request {
            now: c.now,
            period_start: c.start,
            period_end: Some(c.end),
            history: &c.history,
            spent_nanos: c.spent / if i < 12 { 1 } else { 3 },
            limit_nanos: Some(c.spent * if i < 12 { 2 } else { 5 } / 4),
        })
        .collect();
    let alone: Vec<Forecast> = reqs.iter().map(forecast).collect();
    for threads in [1, 3, 64] {
        assert_eq!(
            batch::forecast_all(&reqs, threads).unwrap(),
            alone,
            "{threads} threads"
        );
    }
    assert_eq!(batch::forecast_all(&[], 4).unwrap(), Vec::new());
}
