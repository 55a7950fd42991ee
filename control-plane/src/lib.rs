//! Tollgate's control plane: budgets, prices and admission over REST, on an in-memory or a
//! Redis store, and the `tollgate` CLI.

pub mod admission;
pub mod alerts;
pub mod analytics;
pub mod api;
pub mod auth;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod lease;
pub mod ledger;
pub mod metrics;
pub mod prices;
pub mod profiles;
pub mod server;
pub mod state;
pub mod store;
pub mod ui;
pub mod unpriced;
