//! Price overrides: `PUT /v1/prices/{model}` takes one price-file entry (validated by
//! `tollgate-model`) and merges it over the shipped table; `GET /v1/prices/{model}` shows the
//! entry in force.

use axum::Json;
use axum::extract::State;
use tollgate_model::pricing::{ModelDto, ModelPrices, PriceFileError};

use super::error::{ApiError, ErrorBody};
use super::json::JsonBody;
use super::path::Path;
use super::views::PriceView;
use super::{audit, conflict};
use crate::state::AppState;
use crate::store::{Collection, Expect};

fn view(model: &ModelPrices, source: &str) -> PriceView {
    PriceView {
        model: model.id().to_owned(),
        source: source.to_owned(),
        entry: model.entry().clone(),
    }
}

/// Set (or replace) a model's prices.
#[utoipa::path(put, path = "/v1/prices/{model}", tag = "prices",
    params(("model" = String, Path, description = "Canonical model id; must equal the entry's id")),
    request_body(content = ModelDto, description = "One entry of the price file (docs/prices.md)"),
    responses((status = 200, body = PriceView), (status = 400, body = ErrorBody)),
    security(("admin" = [])))]
pub async fn put(
    State(state): State<AppState>,
    Path(model): Path<String>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Json<PriceView>, ApiError> {
    let text = body.to_string();
    let prices = ModelPrices::from_entry_json(&text).map_err(|e| match e {
        PriceFileError::Parse { path, message, .. } => ApiError::InvalidJson {
            field: path,
            message,
        },
        PriceFileError::Invalid { path, message, .. } => ApiError::invalid(path, message),
    })?;
    if prices.id() != model {
        return Err(ApiError::invalid("id", "must equal the model in the path"));
    }
    // Check the merge now, so a bad override is refused rather than skipped at load.
    let mut table = state.catalog.shipped().clone();
    table
        .upsert(prices.clone())
        .map_err(|e| ApiError::invalid("id", e.to_string()))?;
    let current = state.store.get_doc(Collection::Prices, &model).await?;
    let expect = current.map_or(Expect::Absent, |d| Expect::Version(d.version));
    state
        .store
        .put_doc(Collection::Prices, &model, &text, expect)
        .await?
        .map_err(|c| conflict(c, &format!("price {model:?}")))?;
    state.catalog.invalidate();
    audit(&state, "price.set", &model, body).await;
    Ok(Json(view(&prices, "override")))
}

/// The prices in force for a model name (resolved like admission does).
#[utoipa::path(get, path = "/v1/prices/{model}", tag = "prices",
    params(("model" = String, Path, description = "Model name or alias")),
    responses((status = 200, body = PriceView), (status = 404, body = ErrorBody)),
    security(("admin" = [])))]
pub async fn get(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<PriceView>, ApiError> {
    let snap = state.catalog.snapshot(state.store.as_ref()).await?;
    let found = snap
        .prices
        .resolve(&model)
        .ok_or_else(|| ApiError::NotFound(format!("model {model:?}")))?;
    let overridden = state
        .store
        .get_doc(Collection::Prices, found.id())
        .await?
        .is_some();
    let source = if overridden {
        "override"
    } else if state.catalog.imported().contains_key(found.id()) {
        "imported"
    } else {
        "shipped"
    };
    Ok(Json(view(found, source)))
}
