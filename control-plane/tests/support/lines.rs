//! Budget-window lines for the store tests.

use tollgate_control_plane::store::Line;

/// The tests' clock (Unix ms).
pub const NOW: i64 = 1_800_000_000_000;

/// A USD line of budget `id` in org `acme`, window 7 (ends an hour after [`NOW`]), limit
/// 1 000 nano-USD, enforcing, with alerts at 50, 80 and 100 %.
pub fn line(id: &str) -> Line {
    Line {
        budget_id: id.into(),
        tag: "acme".into(),
        window_index: 7,
        expire_at_ms: Some(NOW + 3_600_000),
        limit_nanos: Some(1_000),
        limit_tokens: None,
        limit_requests: None,
        enforce: true,
        suspend_on_exceed: false,
        thresholds_pct: vec![50, 80, 100],
    }
}
