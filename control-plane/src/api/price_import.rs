//! `POST /v1/prices/import`: entries converted from a public price map (`tollgate price
//! import` converts LiteLLM's) merged into the price overrides under Tollgate's own entries.
//! A dry run answers what would change and writes nothing.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use tollgate_model::pricing::{ModelDto, ModelPrices, PriceFileError};

use super::error::{ApiError, ErrorBody};
use super::json::JsonBody;
use super::{audit, conflict};
use crate::prices::merge::{MergeReport, merge};
use crate::prices::{IMPORTED_NOTE, is_imported};
use crate::state::AppState;
use crate::store::{Collection, Expect};

/// Entries to import.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceImport {
    /// Answer what would change, write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Price-file entries (docs/prices.md); each is marked imported (its `note` starts with
    /// `imported`) and names where it came from in `source`.
    pub models: Vec<ModelDto>,
}

/// Import entries: a model Tollgate's own entries (shipped or set by an admin) name is left
/// alone; a new one is added; one imported before whose price differs gets a new price
/// version effective today, keeping its history. Each change is a price override.
#[utoipa::path(post, path = "/v1/prices/import", tag = "prices",
    request_body = PriceImport,
    responses((status = 200, description = "What changed (or would, on a dry run)", body = MergeReport),
        (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("admin" = [])))]
pub async fn import(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<PriceImport>,
) -> Result<Json<MergeReport>, ApiError> {
    let mut incoming = Vec::with_capacity(body.models.len());
    for (i, mut dto) in body.models.into_iter().enumerate() {
        if !is_imported(&dto) {
            dto.note = Some(match dto.note.take() {
                Some(n) => format!("{IMPORTED_NOTE}; {n}"),
                None => IMPORTED_NOTE.to_owned(),
            });
        }
        let text = serde_json::to_string(&dto).map_err(|_| ApiError::Internal)?;
        ModelPrices::from_entry_json(&text).map_err(|e| {
            let (path, message) = match e {
                PriceFileError::Parse { path, message, .. }
                | PriceFileError::Invalid { path, message, .. } => (path, message),
            };
            ApiError::invalid(format!("models[{i}].{path}"), message)
        })?;
        incoming.push(dto);
    }
    let overrides = state.store.list_docs(Collection::Prices).await?;
    // Tollgate's own entries: the shipped table and the overrides an admin set.
    let mut curated = state.catalog.curated().clone();
    let mut previous = state.catalog.imported().clone();
    for (_, doc) in &overrides {
        let Ok(m) = ModelPrices::from_entry_json(&doc.json) else {
            continue;
        };
        if is_imported(m.entry()) {
            previous.insert(m.id().to_owned(), m.entry().clone());
        } else {
            let _ = curated.upsert(m);
        }
    }
    let previous: Vec<ModelDto> = previous.into_values().collect();
    let today = state.now().date_naive();
    let mut merged = merge(&curated, &previous, incoming, today);
    merged.report.dry_run = body.dry_run;
    // Each change must also merge into the table in force (an id that is another model's
    // alias there is refused), as `PUT /v1/prices/{model}` checks.
    let mut table = state.catalog.shipped().clone();
    let mut writes = Vec::new();
    for id in merged.report.added.iter().chain(&merged.report.changed) {
        let Some(entry) = merged.models.iter().find(|m| &m.id == id) else {
            continue;
        };
        let text = serde_json::to_string(entry).map_err(|_| ApiError::Internal)?;
        let prices = ModelPrices::from_entry_json(&text)
            .map_err(|e| ApiError::invalid(id.clone(), e.to_string()))?;
        table
            .upsert(prices)
            .map_err(|e| ApiError::invalid(id.clone(), e.to_string()))?;
        writes.push((id.clone(), text));
    }
    if body.dry_run {
        return Ok(Json(merged.report));
    }
    for (id, text) in &writes {
        let current = overrides
            .iter()
            .find(|(k, _)| k == id)
            .map_or(Expect::Absent, |(_, d)| Expect::Version(d.version));
        state
            .store
            .put_doc(Collection::Prices, id, text, current)
            .await?
            .map_err(|c| conflict(c, &format!("price {id:?}")))?;
    }
    if !writes.is_empty() {
        state.catalog.invalidate();
    }
    let report = &merged.report;
    audit(
        &state,
        "price.import",
        "prices",
        serde_json::json!({
            "added": report.added.len(),
            "changed": report.changed,
            "curated": report.curated.len(),
        }),
    )
    .await;
    Ok(Json(merged.report))
}
