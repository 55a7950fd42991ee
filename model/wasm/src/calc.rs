//! The calculator's operations as plain Rust: the shipped table plus overrides, a cost as
//! JSON with money as strings, and a request's reservation as the filter estimates it.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tollgate_model::pricing::ModelPrices;
use tollgate_model::{Cost, NanoUsd, PriceTable, Usage};

/// Why a calculation was refused; the message is shown to the user as is.
#[derive(Debug, thiserror::Error)]
pub enum CalcError {
    /// The shipped table or an override entry does not parse or validate.
    #[error("price entry: {0}")]
    Prices(String),
    /// No entry prices the model.
    #[error("no price for model {0:?}")]
    UnknownModel(String),
    /// The usage JSON is not a usage.
    #[error("usage: {0}")]
    Usage(String),
    /// The request body is not a JSON object.
    #[error("request: {0}")]
    Request(String),
    /// The instant is not RFC 3339.
    #[error("time {0:?} is not RFC 3339")]
    Time(String),
    /// The cost overflows nano-USD.
    #[error("{0}")]
    Pricing(String),
}

/// A price table with the overrides applied.
#[derive(Debug, Clone)]
pub struct Calc {
    /// The table prices are read from.
    pub table: PriceTable,
}

fn instant(at: &str) -> Result<DateTime<Utc>, CalcError> {
    DateTime::parse_from_rfc3339(at)
        .map(|t| t.to_utc())
        .map_err(|_| CalcError::Time(at.to_owned()))
}

fn nanos(n: NanoUsd) -> String {
    n.nanos().to_string()
}

/// A cost as the calculator shows it (money as strings).
pub fn cost_json(model: &str, cost: &Cost) -> Value {
    let b = &cost.breakdown;
    json!({
        "model": model,
        "total_nanos": nanos(cost.total),
        "total_usd": cost.total.to_usd().to_string(),
        "breakdown": {
            "uncached_input_nanos": nanos(b.uncached_input),
            "cached_input_nanos": nanos(b.cached_input),
            "cache_write_5m_nanos": nanos(b.cache_write_5m),
            "cache_write_1h_nanos": nanos(b.cache_write_1h),
            "output_nanos": nanos(b.output),
            "reasoning_nanos": nanos(b.reasoning),
            "request_fee_nanos": nanos(b.request_fee),
            "images_nanos": nanos(b.images),
            "audio_nanos": nanos(b.audio),
        },
        "long_context": cost.long_context,
        "service_tier": cost.service_tier,
        "price_effective_from": cost.price_effective_from.to_string(),
    })
}

/// The output cap a request body sets, under any provider's name for it.
fn requested_max_output(body: &Value) -> Option<u64> {
    ["max_completion_tokens", "max_tokens", "max_output_tokens"]
        .iter()
        .find_map(|k| body.get(k).and_then(Value::as_u64))
        .or_else(|| {
            body.pointer("/generationConfig/maxOutputTokens")
                .and_then(Value::as_u64)
        })
}

impl Calc {
    /// The shipped table.
    pub fn shipped() -> Result<Calc, CalcError> {
        let table = PriceTable::shipped().map_err(|e| CalcError::Prices(e.to_string()))?;
        Ok(Calc { table })
    }

    /// Every model id, sorted.
    pub fn models(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .table
            .models()
            .iter()
            .map(|m| m.id().to_owned())
            .collect();
        ids.sort();
        ids
    }

    /// Applies one price-file entry (an admin's override).
    pub fn apply_override(&mut self, entry_json: &str) -> Result<(), CalcError> {
        let entry = ModelPrices::from_entry_json(entry_json)
            .map_err(|e| CalcError::Prices(e.to_string()))?;
        self.table
            .upsert(entry)
            .map_err(|e| CalcError::Prices(e.to_string()))
    }

    fn price(&self, model: &str, usage: &Usage, at: &str) -> Result<Value, CalcError> {
        let id = self
            .table
            .canonical_id(model)
            .ok_or_else(|| CalcError::UnknownModel(model.to_owned()))?
            .to_owned();
        let cost = self
            .table
            .cost(model, usage, instant(at)?)
            .map_err(|e| CalcError::Pricing(e.to_string()))?;
        Ok(cost_json(&id, &cost))
    }

    /// The cost of `usage_json` of `model` at `at`.
    pub fn cost(&self, model: &str, usage_json: &str, at: &str) -> Result<Value, CalcError> {
        let usage: Usage =
            serde_json::from_str(usage_json).map_err(|e| CalcError::Usage(e.to_string()))?;
        self.price(model, &usage, at)
    }

    /// What the filter reserves for `body`: its input estimate plus its output cap (or the
    /// model's default cap), priced at `at`.
    pub fn estimate_request(
        &self,
        body: &str,
        model: Option<&str>,
        at: &str,
    ) -> Result<Value, CalcError> {
        let parsed: Value =
            serde_json::from_str(body).map_err(|e| CalcError::Request(e.to_string()))?;
        if !parsed.is_object() {
            return Err(CalcError::Request("not a JSON object".into()));
        }
        let model = model
            .filter(|m| !m.is_empty())
            .or_else(|| parsed.get("model").and_then(Value::as_str))
            .ok_or_else(|| CalcError::Request("no \"model\" in the body; pick one".into()))?;
        let input = tollgate_filter_core::request::estimate_request_tokens(body.as_bytes());
        let output = requested_max_output(&parsed)
            .unwrap_or_else(|| u64::from(self.table.default_max_output_tokens(model)));
        let usage = Usage {
            uncached_input_tokens: input,
            output_tokens: output,
            ..Usage::default()
        };
        let mut out = self.price(model, &usage, at)?;
        out["input_tokens"] = json!(input);
        out["max_output_tokens"] = json!(output);
        Ok(out)
    }
}
