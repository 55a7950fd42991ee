use super::*;
use crate::providers::{Api, Provider, Route};
use crate::request::{RequestLimits, read_request_unestimated};
use tollgate_model::PriceTable;

fn tagged(body: &str) -> Option<String> {
    let route = Route::new(Provider::Openai, Api::Responses);
    let prices = PriceTable::shipped().unwrap();
    let info = read_request_unestimated(&route, body.as_bytes(), &prices, RequestLimits::default());
    assert!(info.background, "{body}");
    tag_body(body.as_bytes(), &info, "req-1~18f.2").map(|b| String::from_utf8(b).unwrap())
}

fn metadata_of(body: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["metadata"].clone()
}

#[test]
fn a_background_request_is_tagged_in_its_metadata_keeping_the_clients_own_keys() {
    let plain = tagged(r#"{"model":"o3","input":"hi","background":true}"#).unwrap();
    assert_eq!(
        metadata_of(&plain),
        serde_json::json!({TAG_KEY: "req-1~18f.2"})
    );
    let with = tagged(r#"{"model":"o3","metadata": {"team" : "a"},"background":true}"#).unwrap();
    assert_eq!(
        metadata_of(&with),
        serde_json::json!({TAG_KEY: "req-1~18f.2", "team": "a"})
    );
    let empty = tagged(r#"{"model":"o3","metadata":{ },"background":true}"#).unwrap();
    assert_eq!(
        metadata_of(&empty),
        serde_json::json!({TAG_KEY: "req-1~18f.2"})
    );
    let null = tagged(r#"{"model":"o3","metadata":null,"background":true}"#).unwrap();
    assert_eq!(
        metadata_of(&null),
        serde_json::json!({TAG_KEY: "req-1~18f.2"})
    );
}

#[test]
fn full_metadata_or_a_tag_needing_escapes_is_not_tagged() {
    let keys: Vec<String> = (0..16).map(|i| format!("\"k{i}\":\"v\"")).collect();
    let full = format!(
        r#"{{"model":"o3","metadata":{{{}}},"background":true}}"#,
        keys.join(",")
    );
    assert_eq!(tagged(&full), None);
    let route = Route::new(Provider::Openai, Api::Responses);
    let prices = PriceTable::shipped().unwrap();
    let body = br#"{"model":"o3","background":true}"#;
    let info = read_request_unestimated(&route, body, &prices, RequestLimits::default());
    assert_eq!(tag_body(body, &info, "a\"b"), None);
}

#[test]
fn the_tag_is_found_in_any_chunking_and_whitespace() {
    let body = br#"{"id":"resp_1","metadata": {"team":"a", "tollgate_request_id" :  "req-1~18f.2"},"usage":null}"#;
    for size in 1..body.len() {
        let mut s = TagScanner::tag();
        for chunk in body.chunks(size) {
            s.feed(chunk);
        }
        assert_eq!(s.found(), Some("req-1~18f.2"), "chunks of {size}");
    }
    let mut none = TagScanner::tag();
    none.feed(br#"{"metadata":{"tollgate_request_id":7},"x":"tollgate_request_id"}"#);
    assert_eq!(none.found(), None);
}

#[test]
fn the_first_model_member_is_the_responses_own() {
    let mut s = TagScanner::model();
    s.feed(
        br#"{"id":"resp_1","object":"response","model": "o3-2025-04-16","output":[{"model":"x"}]}"#,
    );
    assert_eq!(s.found(), Some("o3-2025-04-16"));
}
