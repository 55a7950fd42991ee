//! Suspension events: each sweep asks the store whether each `suspend_on_exceed` budget's
//! current window is suspended (the store suspends in a settlement's or reservation's atomic
//! step, which reports no event of its own), and raises `budget_suspended` once per budget
//! and window: the event id `<budget_id>.w<window_index>.suspended` is written
//! create-if-absent, so every replica's sweep agrees on one event.

use super::events::raise;
use super::{Alert, AlertKind, Severity};
use crate::admission::line_for;
use crate::state::AppState;

/// Raises the event of every suspended budget not reported yet. Errors are logged (the next
/// sweep asks again).
pub async fn check(state: &AppState) {
    let store = state.store.as_ref();
    let snap = match state.catalog.snapshot(store).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "suspension check: budgets not read");
            return;
        }
    };
    let now = state.now();
    for b in snap.budgets.iter().filter(|b| b.suspend_on_exceed) {
        let (line, _) = line_for(b, now);
        match store.is_suspended(&line).await {
            Ok(true) => {
                let alert = Alert {
                    budget_id: Some(b.id.clone()),
                    window_index: Some(line.window_index),
                    ..Alert::new(
                        format!("{}.w{}.suspended", b.id, line.window_index),
                        AlertKind::BudgetSuspended,
                        Severity::Critical,
                        now.timestamp_millis(),
                    )
                };
                if let Err(e) = raise(state, alert).await {
                    tracing::warn!(budget = %b.id, error = %e, "suspension event not written");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(budget = %b.id, error = %e, "suspension check failed"),
        }
    }
}
