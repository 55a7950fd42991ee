//! Many forecasts at once: the same answers as [`super::forecast`] on each request, in the
//! order asked, for less work.
//!
//! - **One fit per distinct series.** The costly part of a forecast, choosing the method by
//!   backtest and fitting it, depends only on the steps of history, the step and the steps
//!   ahead (`Plan::fit_key`); budgets that count the same calls over the same
//!   period length (a team's enforced and shadow budgets, a model-limited budget on a scope
//!   using only that model) share it. Only spent, limit and run-out are per budget.
//! - **Every core.** Distinct series are fitted on up to `threads` threads, each taking the
//!   next unclaimed one (series differ in cost: an hour-step series fits six times the
//!   points of a day-step one, so equal slices would leave a thread idle).
//!
//! Blocking: the caller runs it off the async runtime (the API uses `spawn_blocking`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Fitted, Forecast, Plan, Request, finish};

/// Forecasts every request, fitting on up to `threads` threads (the calling one among
/// them); `None` if a thread panicked (no forecast panics: a library that does is caught
/// per method in [`super::methods::fit`]).
pub fn forecast_all(reqs: &[Request<'_>], threads: usize) -> Option<Vec<Forecast>> {
    let plans: Vec<Plan> = reqs.iter().map(Plan::of).collect();
    // Each request's distinct series, and the first plan holding each.
    let mut seen: HashMap<(super::Step, usize, Vec<u64>), usize> = HashMap::new();
    let mut distinct: Vec<usize> = Vec::new();
    let which: Vec<usize> = plans
        .iter()
        .enumerate()
        .map(|(i, p)| {
            *seen.entry(p.fit_key()).or_insert_with(|| {
                distinct.push(i);
                distinct.len() - 1
            })
        })
        .collect();
    let fits = fit_all(&plans, &distinct, threads)?;
    Some(
        reqs.iter()
            .zip(plans)
            .zip(which)
            .map(|((r, p), d)| finish(r, p, fits[d].clone()))
            .collect(),
    )
}

/// Fits `plans[i]` for each `i` of `distinct`, in that order, on up to `threads` threads.
fn fit_all(plans: &[Plan], distinct: &[usize], threads: usize) -> Option<Vec<Fitted>> {
    let threads = threads.clamp(1, distinct.len().max(1));
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(&i) = distinct.get(k) else {
                return done;
            };
            done.push((k, plans[i].fit()));
        }
    };
    let parts: Vec<Vec<(usize, Fitted)>> = std::thread::scope(|s| {
        let others: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut parts = vec![work()];
        for h in others {
            parts.push(h.join().ok()?);
        }
        Some(parts)
    })?;
    let mut out: Vec<Option<Fitted>> = vec![None; distinct.len()];
    for (k, f) in parts.into_iter().flatten() {
        out[k] = Some(f);
    }
    out.into_iter().collect()
}

/// The threads a batch of forecasts may use: the machine's cores.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}
