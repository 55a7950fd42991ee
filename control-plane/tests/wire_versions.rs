//! A rolling upgrade mixes releases: the previous release's wire (its messages kept as
//! fixtures, its types copied below as they were, refusing unknown fields) against this one,
//! both ways. No settlement may be lost or charged differently.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};
use support::app::TestApp;
use tollgate_filter_core::settle::{PostOutcome, SettleLimits, SettleQueue};
use tollgate_model::wire::v1::{
    ReserveRequest, ReserveResponse, SettleBatch, SettleResponse, Settlement,
};
use tollgate_model::{CostBreakdown, NanoUsd, Usage};

/// The wire types of the last release before the ledger (model/src/wire.rs at f6cb6ce), as
/// its filter and control plane read them.
mod previous {
    use serde::{Deserialize, Serialize};
    use tollgate_model::scope::Scope;
    use tollgate_model::{NanoUsd, ServiceTier};

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    #[derive(Default)]
    pub struct Usage {
        pub uncached_input_tokens: u64,
        pub cached_input_tokens: u64,
        pub cache_write_5m_tokens: u64,
        pub cache_write_1h_tokens: u64,
        pub output_tokens: u64,
        pub reasoning_tokens: u64,
        pub images: u64,
        pub audio_seconds: u64,
        pub service_tier: ServiceTier,
        pub estimated: bool,
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Settlement {
        pub request_id: String,
        pub scopes: Vec<Scope>,
        pub model: String,
        pub provider: String,
        pub cost: NanoUsd,
        pub usage: Usage,
        pub reserved: bool,
        pub at_unix_ms: i64,
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SettleBatch {
        pub settlements: Vec<Settlement>,
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SettleResponse {
        pub applied: u32,
        pub duplicates: u32,
    }

    /// The fields each decision could carry (the previous release refused any other).
    pub fn reserve_response_fields(decision: &str) -> &'static [&'static str] {
        match decision {
            "allow" => &["decision", "remaining", "stream_cutoff"],
            "downgrade" => &["decision", "remaining", "budget_id", "model"],
            "deny" => &[
                "decision",
                "remaining",
                "budget_id",
                "reason",
                "retry_after_secs",
                "fail_mode",
            ],
            _ => &[],
        }
    }
}

fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/wire-v1-before-ledger")
        .join(name);
    std::fs::read_to_string(p).unwrap().trim_end().to_owned()
}

#[test]
fn the_previous_releases_messages_read_here_and_write_back_byte_for_byte() {
    let batch: SettleBatch = serde_json::from_str(&fixture("settle-batch.json")).unwrap();
    assert!(batch.settlements.iter().all(|s| s.breakdown.is_none()
        && s.requested_model.is_none()
        && s.started_at_unix_ms.is_none()
        && !s.cut_off));
    // A settlement without the new facts is exactly what the previous release sent.
    assert_eq!(
        serde_json::to_string(&batch).unwrap(),
        fixture("settle-batch.json")
    );
    let req: ReserveRequest = serde_json::from_str(&fixture("reserve-request.json")).unwrap();
    assert_eq!(
        serde_json::to_string(&req).unwrap(),
        fixture("reserve-request.json")
    );
    for name in ["reserve-response-allow.json", "reserve-response-deny.json"] {
        let r: ReserveResponse = serde_json::from_str(&fixture(name)).unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), fixture(name));
    }
    let r: SettleResponse = serde_json::from_str(&fixture("settle-response.json")).unwrap();
    assert_eq!(r.applied, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_previous_release_filter_reserves_and_settles_on_this_control_plane() {
    let app = TestApp::memory().await;
    let reserve: Value = serde_json::from_str(&fixture("reserve-request.json")).unwrap();
    let (status, answer) = app.reserve(&reserve).await;
    assert_eq!(status, 200, "{answer}");
    // The answer holds only fields the previous filter knows for its decision.
    let decision = answer["decision"].as_str().unwrap();
    let known = previous::reserve_response_fields(decision);
    for key in answer.as_object().unwrap().keys() {
        assert!(known.contains(&key.as_str()), "{key} in {answer}");
    }
    let batch: Value = serde_json::from_str(&fixture("settle-batch.json")).unwrap();
    let (status, answer) = app.settle(&batch).await;
    assert_eq!(status, 200, "{answer}");
    let read: previous::SettleResponse = serde_json::from_value(answer).unwrap();
    assert_eq!((read.applied, read.duplicates), (2, 0));
    app.stop().await;
}

fn this_release_settlement(i: u32) -> Settlement {
    Settlement {
        request_id: format!("new-{i}"),
        scopes: vec!["team:payments".parse().unwrap()],
        model: "gpt-5-mini".into(),
        provider: "openai".into(),
        cost: NanoUsd(1_000 + i64::from(i)),
        // With every part and fee this release reads, which the previous one refuses.
        usage: Usage {
            uncached_input_tokens: 10,
            output_tokens: 5,
            audio_input_tokens: 4,
            audio_output_tokens: 2,
            web_searches: 1,
            ..Usage::default()
        },
        reserved: true,
        at_unix_ms: 1_800_000_000_000,
        started_at_unix_ms: Some(1_799_999_999_000),
        requested_model: Some("gpt-5".into()),
        downgraded_by: Some("team-payments".into()),
        api: Some("chat_completions".into()),
        breakdown: Some(CostBreakdown {
            output: NanoUsd(1_000 + i64::from(i)),
            ..CostBreakdown::default()
        }),
        cut_off: false,
        billed: None,
        lease_id: None,
        lease_usd: None,
        lease_tokens: None,
    }
}

#[test]
fn this_release_filter_settles_every_charge_on_a_previous_release_control_plane() {
    let now = Utc.with_ymd_and_hms(2027, 1, 15, 10, 0, 0).unwrap();
    let mut queue = SettleQueue::new(SettleLimits {
        max_batch: 4,
        ..SettleLimits::default()
    });
    for i in 0..10 {
        assert!(queue.push(this_release_settlement(i), now));
    }
    // The previous control plane: its types, refusing unknown fields, answering 400.
    let mut charged: Vec<(String, i64)> = Vec::new();
    let mut refused = 0;
    let mut now = now;
    // A second apart: a partial batch goes after its delay (1 s).
    while let Some(body) = queue.due(now).or_else(|| {
        now += chrono::TimeDelta::seconds(1);
        queue.due(now)
    }) {
        let status = match serde_json::from_slice::<previous::SettleBatch>(&body) {
            Ok(batch) => {
                charged.extend(
                    batch
                        .settlements
                        .into_iter()
                        .map(|s| (s.request_id, s.cost.nanos())),
                );
                200
            }
            Err(_) => {
                refused += 1;
                400
            }
        };
        let outcome = queue.answered(Some(status), now);
        assert_ne!(outcome, PostOutcome::Rejected);
        assert!(refused <= 1, "only the first batch may be refused");
    }
    assert_eq!(refused, 1, "the previous release must refuse the new form");
    let want: Vec<(String, i64)> = (0..10)
        .map(|i| (format!("new-{i}"), 1_000 + i64::from(i)))
        .collect();
    assert_eq!(charged, want);
    assert_eq!((queue.rejected(), queue.len()), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn this_release_filter_settles_on_this_control_plane_with_every_new_field() {
    let app = TestApp::memory().await;
    let batch = SettleBatch {
        settlements: (0..3).map(this_release_settlement).collect(),
    };
    let mut body = serde_json::to_value(&batch).unwrap();
    // And a field some later release may add: ignored, not refused.
    body["settlements"][0]["later_field"] = json!({ "x": 1 });
    body["settlements"][0]["usage"]["video_seconds"] = json!(3);
    let (status, answer) = app.settle(&body).await;
    assert_eq!(
        (status, answer),
        (200, json!({ "applied": 3, "duplicates": 0 }))
    );
    app.stop().await;
}
