//! Prices beyond the shipped table: the imported layer (LiteLLM's price map converted,
//! `model/prices/imported.json`, embedded in the control plane only), the importer behind
//! `tollgate price import` and `scripts/refresh-prices.sh`, and the coverage figure.
//!
//! The control plane's price authority is shipped ∪ imported ∪ overrides, in rising order of
//! precedence: an imported entry never replaces a name the shipped table carries.

pub mod coverage;
pub mod litellm;
pub mod merge;

use tollgate_model::pricing::{IMPORTED_PRICES_JSON, ModelDto, ModelPrices, read_price_file};

/// How an imported entry's `note` starts (a price override written by an import keeps it).
pub const IMPORTED_NOTE: &str = "imported";

/// Whether `entry` came from an import rather than from Tollgate or an operator.
pub fn is_imported(entry: &ModelDto) -> bool {
    entry
        .note
        .as_deref()
        .is_some_and(|n| n.starts_with(IMPORTED_NOTE))
}

/// The embedded imported layer's entries (`model/prices/imported.json`), validated.
pub fn imported_layer() -> Result<Vec<ModelPrices>, String> {
    read_price_file("imported.json", IMPORTED_PRICES_JSON)
        .map(|(_, models)| models)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
