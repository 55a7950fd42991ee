use chrono::{TimeZone, Utc};
use tollgate_model::{NanoUsd, Usage};

use super::*;
use crate::testing::FakeHost;

const CONFIG: &str = r#"{"model_aliases":{"prod-chat":"gpt-4o"},
    "control_plane":{"cluster":"tollgate","token":"t0k","price_refresh_ms":2000}}"#;

/// gpt-4o at $2 / $20, an Azure deployment name mapped to it by the configuration.
const SET: &str = r#"{"schema_version":1,"table_version":"v1","currency":"USD",
    "default_max_output_tokens":4096,
    "models":[{"id":"gpt-4o","provider":"openai","source":"contract",
    "checked":"2026-10-01","prices":[{"effective_from":"2026-01-01","input":"2","output":"20"}]}]}"#;

fn setup() -> (Filter, FakeHost, Metrics, PriceSync) {
    let filter = Filter::from_json(CONFIG.as_bytes()).unwrap();
    let host = FakeHost::at(Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap());
    (filter, host, Metrics::default(), PriceSync::default())
}

fn cost(filter: &Filter, model: &str, host: &FakeHost) -> NanoUsd {
    let usage = Usage {
        uncached_input_tokens: 1000,
        output_tokens: 1000,
        ..Usage::default()
    };
    filter.prices.cost(model, &usage, host.now()).unwrap().total
}

fn header(callout: &crate::testing::RecordedCallout, name: &str) -> Option<String> {
    callout
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

#[test]
fn an_override_set_replaces_the_built_in_price_and_keeps_the_configured_aliases() {
    let (configured, h, mut m, mut sync) = setup();
    let cp = configured.control_plane.clone().unwrap();
    sync.poll(&h, &cp, &mut m);
    let calls = h.callouts();
    assert_eq!(calls.len(), 1);
    assert_eq!(header(&calls[0], ":method").as_deref(), Some("GET"));
    assert_eq!(header(&calls[0], ":path").as_deref(), Some(PRICES_PATH));
    assert_eq!(header(&calls[0], "if-none-match"), None);
    assert!(sync.is_answer(calls[0].token));

    let built_in = cost(&configured, "gpt-4o", &h);
    let updated = sync
        .answered(&h, &mut m, CONFIG.as_bytes(), Some(200), SET.as_bytes())
        .unwrap();
    // 1000 × 2000 + 1000 × 20 000 nano.
    assert_eq!(cost(&updated, "gpt-4o", &h), NanoUsd(22_000_000));
    assert_eq!(cost(&updated, "prod-chat", &h), NanoUsd(22_000_000));
    assert_ne!(built_in, NanoUsd(22_000_000));
    assert_eq!(
        cost(&configured, "gpt-4o", &h),
        built_in,
        "the base is kept"
    );

    // Nothing is due before the refresh; then the version goes back as If-None-Match and a
    // 304 changes nothing.
    sync.poll(&h, &cp, &mut m);
    assert_eq!(h.callouts().len(), 1);
    h.set_now(h.now() + chrono::Duration::milliseconds(2000));
    sync.poll(&h, &cp, &mut m);
    let calls = h.callouts();
    assert_eq!(
        header(&calls[1], "if-none-match").as_deref(),
        Some("\"v1\"")
    );
    assert!(
        sync.answered(&h, &mut m, CONFIG.as_bytes(), Some(304), b"")
            .is_none()
    );
    // A new configuration keeps the set last fetched.
    let again = sync.reconfigured(&h, CONFIG.as_bytes()).unwrap();
    assert_eq!(cost(&again, "gpt-4o", &h), NanoUsd(22_000_000));
}

#[test]
fn an_empty_set_goes_back_to_the_built_in_prices() {
    let (configured, h, mut m, mut sync) = setup();
    let cp = configured.control_plane.clone().unwrap();
    sync.poll(&h, &cp, &mut m);
    sync.answered(&h, &mut m, CONFIG.as_bytes(), Some(200), SET.as_bytes());
    h.set_now(h.now() + chrono::Duration::milliseconds(2000));
    sync.poll(&h, &cp, &mut m);
    let cleared = sync
        .answered(
            &h,
            &mut m,
            CONFIG.as_bytes(),
            Some(200),
            br#"{"schema_version":1,"table_version":"v2","currency":"USD","default_max_output_tokens":4096,"models":[]}"#,
        )
        .unwrap();
    assert_eq!(
        cost(&cleared, "gpt-4o", &h),
        cost(&configured, "gpt-4o", &h)
    );
}

#[test]
fn a_failed_or_unreadable_fetch_keeps_the_prices_in_use_and_is_counted() {
    let (configured, h, mut m, mut sync) = setup();
    let cp = configured.control_plane.clone().unwrap();
    for (status, body) in [
        (Some(503), &b"no"[..]),
        (None, b""),
        (Some(200), b"{\"models\":1}"),
    ] {
        sync.poll(&h, &cp, &mut m);
        assert!(
            sync.answered(&h, &mut m, CONFIG.as_bytes(), status, body)
                .is_none()
        );
        h.set_now(h.now() + chrono::Duration::milliseconds(2000));
    }
    let problems = [
        "tollgate_control_plane_problems_total.problem.unavailable",
        "tollgate_control_plane_problems_total.problem.not_sent",
        "tollgate_control_plane_problems_total.problem.unreadable",
    ];
    for name in problems {
        assert_eq!(h.metric(name), 1, "{name}");
    }
}

#[test]
fn a_model_the_built_in_table_lacks_is_priced_from_the_set() {
    let (configured, h, mut m, mut sync) = setup();
    let cp = configured.control_plane.clone().unwrap();
    let model = "qwen.qwen3-32b-v1:0";
    assert!(configured.prices.resolve(model).is_none());
    sync.poll(&h, &cp, &mut m);
    let set = r#"{"schema_version":1,"table_version":"v3","currency":"USD",
        "default_max_output_tokens":4096,
        "models":[{"id":"qwen.qwen3-32b","provider":"bedrock","source":"imported",
        "checked":"2026-12-01","prices":[{"effective_from":"2026-01-01","input":"0.15",
        "output":"0.6"}]}]}"#;
    let updated = sync
        .answered(&h, &mut m, CONFIG.as_bytes(), Some(200), set.as_bytes())
        .unwrap();
    // 1000 × 150 + 1000 × 600 nano.
    assert_eq!(cost(&updated, model, &h), NanoUsd(750_000));
    assert_eq!(h.metric("tollgate_price_overrides_applied_total"), 1);
}
