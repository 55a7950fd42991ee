//! Tollgate's shared domain model: money, usage, prices, scopes, budgets, periods and the
//! messages between the filter and the control plane.
//!
//! No IO and no clock: callers pass `now`. Builds for native targets and for
//! `wasm32-wasip1`; the `calendar` feature (budgets and periods, which need the IANA time-zone
//! database) is left out of the filter's `.wasm`.

pub mod money;
pub mod pricing;
pub mod scope;
pub mod usage;
pub mod wire;

#[cfg(feature = "calendar")]
pub mod budget;
#[cfg(feature = "calendar")]
pub mod period;
#[cfg(feature = "calendar")]
pub mod profile;

pub use money::{MoneyError, NanoUsd};
pub use pricing::{Cost, CostBreakdown, PriceTable, PricingError};
pub use scope::{FailMode, Scope, ScopeKind};
pub use usage::{ServiceTier, Usage};
