//! The request reader: never panics on any body, and when it rewrites a valid JSON body the
//! result is the same JSON with `stream_options.include_usage` set to `true`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate_filter_core::providers::{Api, Provider, Route};
use tollgate_filter_core::request::{RequestLimits, read_request};
use tollgate_model::PriceTable;

fn prices() -> &'static PriceTable {
    static PRICES: OnceLock<PriceTable> = OnceLock::new();
    PRICES.get_or_init(|| PriceTable::shipped().unwrap())
}

fuzz_target!(|data: &[u8]| {
    let routes = [
        Route::new(Provider::Openai, Api::ChatCompletions),
        Route::new(Provider::Anthropic, Api::Messages),
        Route::new(Provider::Gemini, Api::StreamGenerateContent),
        Route::new(Provider::Bedrock, Api::Converse),
    ];
    for route in &routes {
        let info = read_request(
            route,
            data,
            prices(),
            RequestLimits {
                max_body_bytes: 1 << 16,
                ..RequestLimits::default()
            },
        );
        let Some(rewritten) = info.rewritten_body else {
            continue;
        };
        let Ok(mut original) = serde_json::from_slice::<serde_json::Value>(data) else {
            continue;
        };
        let rewritten: serde_json::Value = serde_json::from_slice(&rewritten)
            .unwrap_or_else(|e| panic!("rewrite of valid JSON is invalid: {e}"));
        let options = &mut original["stream_options"];
        if !options.is_object() {
            *options = serde_json::json!({});
        }
        options["include_usage"] = serde_json::Value::Bool(true);
        assert_eq!(rewritten, original);
    }
});
