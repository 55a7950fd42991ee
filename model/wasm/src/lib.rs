//! `tollgate-model`'s pricing for browsers, through wasm-bindgen: the dashboard's cost
//! calculator prices a call with the same code (and the same shipped price table) as the
//! filter and the control plane, plus the price overrides an admin set, and estimates a pasted
//! request's reservation with the filter's own token estimate.
//!
//! The JavaScript API is [`Calculator`]; money crosses to JavaScript as strings (exact
//! decimal USD and integer nano-USD), never as JavaScript numbers, which lose digits past 2^53.
//! [`calc`] holds the same operations as plain Rust, which the native tests call.

pub mod calc;

use wasm_bindgen::prelude::*;

/// A price table in the browser: the shipped one, with overrides applied on top.
#[wasm_bindgen]
pub struct Calculator {
    inner: calc::Calc,
}

#[wasm_bindgen]
impl Calculator {
    /// The shipped price table (the one compiled into `tollgate-model`).
    #[wasm_bindgen(constructor)]
    pub fn new() -> Result<Calculator, JsError> {
        Ok(Calculator {
            inner: calc::Calc::shipped().map_err(js)?,
        })
    }

    /// The table's version (the shipped file's, until an override changes it).
    #[wasm_bindgen(js_name = tableVersion)]
    pub fn table_version(&self) -> String {
        self.inner.table.table_version().to_owned()
    }

    /// Every model id the table prices, sorted.
    pub fn models(&self) -> Vec<String> {
        self.inner.models()
    }

    /// Applies one price-file entry over the table: the `entry` of `GET /v1/prices/{model}`
    /// when its `source` is `override`, so the browser prices as the control plane does.
    #[wasm_bindgen(js_name = applyOverride)]
    pub fn apply_override(&mut self, entry_json: &str) -> Result<(), JsError> {
        self.inner.apply_override(entry_json).map_err(js)
    }

    /// What `usage_json` (a `tollgate_model::Usage` as JSON) of `model` costs at `at`
    /// (RFC 3339), as JSON: `model` (the price-table id), `total_nanos` and `total_usd`
    /// (strings), `breakdown` (nano-USD strings by dimension), `long_context`,
    /// `service_tier`, `price_effective_from`.
    pub fn cost(&self, model: &str, usage_json: &str, at: &str) -> Result<String, JsError> {
        self.inner
            .cost(model, usage_json, at)
            .map(|v| v.to_string())
            .map_err(js)
    }

    /// What the filter would reserve for this request body (OpenAI, Anthropic, Gemini… JSON):
    /// its `model`, the filter's input-token estimate, the output cap it sets (or the model's
    /// default), and their cost at `at`, as JSON (the fields of [`Calculator::cost`] plus
    /// `input_tokens` and `max_output_tokens`). `model` overrides the body's (Gemini names
    /// the model in the path).
    #[wasm_bindgen(js_name = estimateRequest)]
    pub fn estimate_request(
        &self,
        body: &str,
        model: Option<String>,
        at: &str,
    ) -> Result<String, JsError> {
        self.inner
            .estimate_request(body, model.as_deref(), at)
            .map(|v| v.to_string())
            .map_err(js)
    }
}

fn js(e: calc::CalcError) -> JsError {
    JsError::new(&e.to_string())
}
