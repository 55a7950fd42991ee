//! Tollgate's control plane: budgets, prices and admission over REST, on an in-memory or a
//! Redis store, and the `tollgate` CLI.

pub mod store;
