//! The data-plane API over real HTTP, on both stores: decisions, settlements, races, and
//! Redis going away and coming back.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use serde_json::{Value, json};
use support::RedisServer;
use support::app::{FILTER_PRICED, TestApp, redis_store, reserve_req, settlement};
use tollgate_control_plane::store::Store;
use tollgate_control_plane::store::memory::MemoryStore;

fn budget(id: &str, scopes: &[&str], limit_usd: &str) -> Value {
    json!({ "id": id, "scopes": scopes, "limit_usd": limit_usd, "period": "daily" })
}

async fn allow_reports_the_least_usd_left_and_deny_names_the_binding_budget(app: TestApp) {
    app.create_budget(budget("org", &["org:acme"], "10")).await;
    app.create_budget(budget("team", &["team:a"], "0.000003"))
        .await;
    let mut rate = json!({ "id": "rate", "scopes": ["team:a"], "limit_requests": 100, "period": { "seconds": 60 } });
    rate["thresholds_pct"] = json!([]);
    app.create_budget(rate).await;
    let scopes = ["org:acme", "team:a"];
    let (s, d) = app
        .reserve(&reserve_req("r1", &scopes, FILTER_PRICED, 2_000))
        .await;
    assert_eq!(s, 200);
    assert_eq!(d, json!({ "decision": "allow", "remaining": 1_000 }));
    let (_, d) = app
        .reserve(&reserve_req("r2", &scopes, FILTER_PRICED, 2_000))
        .await;
    assert_eq!(d["decision"], "deny");
    assert_eq!(d["budget_id"], "team");
    assert_eq!(d["reason"], "usd");
    assert_eq!(d["remaining"], 1_000);
    assert_eq!(d["fail_mode"], "open");
    // 2027-01-15T08:00:00Z → 16 hours to midnight UTC.
    assert_eq!(d["retry_after_secs"], 16 * 3600);
    let (_, d) = app
        .reserve(&reserve_req("r3", &["org:acme"], FILTER_PRICED, 2_000))
        .await;
    assert_eq!(
        d["decision"], "allow",
        "other scopes are not bound by team's budget"
    );
    app.stop().await;
}

async fn a_downgrade_budget_reprices_and_rechecks_on_the_cheaper_model(app: TestApp) {
    let mut b = budget("dg", &["team:a"], "0.01");
    b["enforcement"] = json!({ "downgrade": { "gpt-5": "gpt-5-mini" } });
    app.create_budget(b).await;
    // gpt-5-mini: 1000 in × $0.25/M + 1000 out × $2/M = $0.00225.
    let (_, d) = app
        .reserve(&reserve_req(
            "r1",
            &["team:a"],
            "gpt-5-2025-08-07",
            20_000_000,
        ))
        .await;
    assert_eq!(
        d,
        json!({ "decision": "downgrade", "budget_id": "dg", "model": "gpt-5-mini", "remaining": 7_750_000 })
    );
    for i in 0..3 {
        let (_, d) = app
            .reserve(&reserve_req(
                &format!("m{i}"),
                &["team:a"],
                "gpt-5",
                20_000_000,
            ))
            .await;
        assert_eq!(d["decision"], "downgrade");
    }
    let (_, d) = app
        .reserve(&reserve_req("r9", &["team:a"], "gpt-5", 20_000_000))
        .await;
    assert_eq!(
        (d["decision"].as_str(), d["reason"].as_str()),
        (Some("deny"), Some("usd"))
    );
    app.stop().await;
}

async fn a_cutoff_budget_gives_streams_their_reservation_plus_what_is_left(app: TestApp) {
    let mut b = budget("cut", &["team:a"], "0.00001");
    b["cutoff_mid_stream"] = json!(true);
    app.create_budget(b).await;
    app.create_budget(budget("plain", &["org:acme"], "1")).await;
    let (_, d) = app
        .reserve(&reserve_req(
            "r1",
            &["org:acme", "team:a"],
            FILTER_PRICED,
            4_000,
        ))
        .await;
    // 10 000 limit − 4 000 reserved = 6 000 left; the stream may spend 4 000 + 6 000.
    assert_eq!(
        d,
        json!({ "decision": "allow", "remaining": 6_000, "stream_cutoff": 10_000 })
    );
    let (_, d) = app
        .reserve(&reserve_req("r2", &["org:acme"], FILTER_PRICED, 4_000))
        .await;
    assert_eq!(d.get("stream_cutoff"), None, "no cut-off budget matched");
    app.stop().await;
}

async fn a_model_only_an_override_prices_is_reserved_and_settled_at_that_price(app: TestApp) {
    // $0.1 and $0.2 per million input and output tokens; the filter's table lacks the model.
    let entry = json!({
        "id": "in-house-llm", "provider": "vllm", "source": "contract", "checked": "2026-11-01",
        "prices": [{ "effective_from": "2026-01-01", "input": "0.1", "output": "0.2" }]
    });
    let r = app
        .admin(reqwest::Method::PUT, "/v1/prices/in-house-llm")
        .json(&entry)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.create_budget(budget("house", &["team:a"], "1")).await;
    // 1000 in + 1000 out = 300 000 nano-USD, though the filter said 0.
    let (_, d) = app
        .reserve(&reserve_req("r1", &["team:a"], "in-house-llm", 0))
        .await;
    assert_eq!(d["remaining"], 1_000_000_000 - 300_000);
    // 100 in + 50 out = 20 000; an error answer's estimated usage stays uncharged.
    let mut errored = settlement("r2", &["team:a"], "in-house-llm", 0, false);
    errored["usage"]["estimated"] = json!(true);
    let batch = json!({ "settlements": [
        settlement("r1", &["team:a"], "in-house-llm", 0, true),
        errored,
    ]});
    assert_eq!(app.settle(&batch).await.0, 200);
    let u = app.budget("house").await;
    assert_eq!(u["usage"]["spent_nanos"], 20_000);
    assert_eq!(u["usage"]["reserved_nanos"], 0);
    app.stop().await;
}

async fn billed_is_read_from_the_settlement_not_inferred_from_a_zero_cost(app: TestApp) {
    put_price(
        &app,
        json!({
            "id": "in-house-llm", "provider": "vllm", "source": "contract", "checked": "2026-11-01",
            "prices": [{ "effective_from": "2026-01-01", "input": "0.1", "output": "0.2" }]
        }),
    )
    .await;
    app.create_budget(budget("house", &["team:a"], "1")).await;
    // Both with estimated usage (100 in, 50 out: 20 000 nano here) and a cost of 0 from the
    // filter, which could not price the model. A billed call is priced here; one the
    // provider does not bill stays at 0; one from an older filter that does not say is
    // taken as not billed, as before the field.
    let mut billed = settlement("r1", &["team:a"], "in-house-llm", 0, false);
    billed["usage"]["estimated"] = json!(true);
    billed["billed"] = json!(true);
    let mut not_billed = billed.clone();
    not_billed["request_id"] = json!("r2");
    not_billed["billed"] = json!(false);
    let mut older = billed.clone();
    older["request_id"] = json!("r3");
    older.as_object_mut().unwrap().remove("billed");
    let batch = json!({ "settlements": [billed, not_billed, older] });
    assert_eq!(app.settle(&batch).await.0, 200);
    let u = app.budget("house").await;
    assert_eq!(u["usage"]["spent_nanos"], 20_000);
    // billed: false wins over a cost the filter computed.
    let mut errored = settlement("r4", &["team:a"], "in-house-llm", 5_000, false);
    errored["billed"] = json!(false);
    assert_eq!(
        app.settle(&json!({ "settlements": [errored] })).await.0,
        200
    );
    assert_eq!(app.budget("house").await["usage"]["spent_nanos"], 20_000);
    // A call not billed whose reserve never reached this side (a failed callout, a leased
    // call) counts no request: only r1 has.
    assert_eq!(app.budget("house").await["usage"]["requests"], 1);
    // Reserved, then not billed (an error answer): its reservation counted it, and is
    // released from the windows it was taken on.
    let (status, _) = app
        .reserve(&reserve_req("r5", &["team:a"], FILTER_PRICED, 2_000))
        .await;
    assert_eq!(status, 200);
    let mut refused = settlement("r5", &["team:a"], FILTER_PRICED, 0, true);
    refused["billed"] = json!(false);
    assert_eq!(
        app.settle(&json!({ "settlements": [refused] })).await.0,
        200
    );
    let u = app.budget("house").await;
    assert_eq!(
        (&u["usage"]["requests"], &u["usage"]["reserved_nanos"]),
        (&json!(2), &json!(0)),
        "{u}"
    );
    assert_eq!(u["usage"]["spent_nanos"], 20_000);
    app.stop().await;
}

async fn put_price(app: &TestApp, entry: Value) {
    let id = entry["id"].as_str().unwrap().to_owned();
    let r = app
        .admin(reqwest::Method::PUT, &format!("/v1/prices/{id}"))
        .json(&entry)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

async fn an_override_of_a_model_the_filter_prices_sets_the_reservation_and_the_charge(
    app: TestApp,
) {
    // gpt-5 is in the filter's table at $1.25 / $10; an override raises it, and a dated
    // version two days after the calls (T0 = 2027-01-15) doubles it again.
    put_price(
        &app,
        json!({
            "id": "gpt-5", "provider": "openai", "source": "contract", "checked": "2026-11-01",
            "prices": [
                { "effective_from": "2026-01-01", "input": "2", "output": "20" },
                { "effective_from": "2027-01-17", "input": "4", "output": "40" }
            ]
        }),
    )
    .await;
    app.create_budget(budget("five", &["team:a"], "1")).await;
    // The filter priced the worst case (1000 in, 1000 out) with its table: $0.01125. The
    // override's price is 1000 × 2000 + 1000 × 20 000 nano.
    let (_, d) = app
        .reserve(&reserve_req("r1", &["team:a"], "gpt-5", 11_250_000))
        .await;
    assert_eq!(d["remaining"], 1_000_000_000 - 22_000_000);
    assert_eq!(
        app.budget("five").await["usage"]["reserved_nanos"],
        22_000_000
    );
    // Usage 100 in, 50 out, which the filter priced at 625 nano: the override's price at the
    // call's time, 100 × 2000 + 50 × 20 000; a call that ended after the next version took
    // effect is priced at it (100 × 4000 + 50 × 40 000), whatever the filter said.
    let mut later = settlement("r2", &["team:a"], "gpt-5", 625, false);
    later["at_unix_ms"] = json!(support::app::T0_MS + 2 * 86_400_000);
    let batch =
        json!({ "settlements": [settlement("r1", &["team:a"], "gpt-5", 625, true), later] });
    assert_eq!(app.settle(&batch).await.0, 200);
    let u = app.budget("five").await;
    assert_eq!(u["usage"]["spent_nanos"], 1_200_000 + 2_400_000);
    assert_eq!(u["usage"]["reserved_nanos"], 0);
    app.stop().await;
}

async fn snapshots_aliases_and_inference_profiles_count_toward_their_model_budget(app: TestApp) {
    let mut b = budget("four-o", &["team:a"], "1");
    b["model"] = json!("gpt-4o");
    app.create_budget(b).await;
    // Written as an alias: the budget is limited to the model it names.
    let mut b = budget("sonnet", &["team:a"], "1");
    b["model"] = json!("claude-sonnet-4-5-20250929");
    app.create_budget(b).await;
    for (id, model, budget_id) in [
        // A snapshot priced on its own (older, dearer) is still a gpt-4o call.
        ("r1", "gpt-4o-2024-05-13", "four-o"),
        ("r2", "gpt-4o-2024-11-20", "four-o"),
        (
            "r3",
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "sonnet",
        ),
        (
            "r4",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "sonnet",
        ),
    ] {
        let before = app.budget(budget_id).await["usage"]["requests"]
            .as_i64()
            .unwrap();
        let (_, d) = app.reserve(&reserve_req(id, &["team:a"], model, 1)).await;
        assert_eq!(d["decision"], "allow", "{model}: {d}");
        let after = app.budget(budget_id).await["usage"]["requests"]
            .as_i64()
            .unwrap();
        assert_eq!(after, before + 1, "{model} counts toward {budget_id}");
    }
    let u = app.budget("four-o").await;
    assert_eq!(u["usage"]["requests"], 2);
    app.stop().await;
}

async fn shadow_budgets_never_deny(app: TestApp) {
    let mut b = budget("sh", &["team:a"], "0.000000001");
    b["enforcement"] = json!("shadow");
    app.create_budget(b).await;
    let (_, d) = app
        .reserve(&reserve_req("r1", &["team:a"], FILTER_PRICED, 5_000))
        .await;
    assert_eq!(d, json!({ "decision": "allow" }));
    let u = app.budget("sh").await;
    assert_eq!(u["usage"]["reserved_nanos"], 5_000, "recorded all the same");
    app.stop().await;
}

async fn settle_is_idempotent_and_charges_fail_open_calls_directly(app: TestApp) {
    app.create_budget(budget("t", &["team:a"], "1")).await;
    let (_, d) = app
        .reserve(&reserve_req("r1", &["team:a"], FILTER_PRICED, 50_000))
        .await;
    assert_eq!(d["decision"], "allow");
    let batch = json!({ "settlements": [
        settlement("r1", &["team:a"], FILTER_PRICED, 20_000, true),
        settlement("open", &["team:a"], FILTER_PRICED, 5_000, false),
    ]});
    assert_eq!(
        app.settle(&batch).await,
        (200, json!({ "applied": 2, "duplicates": 0 }))
    );
    assert_eq!(
        app.settle(&batch).await,
        (200, json!({ "applied": 0, "duplicates": 2 }))
    );
    let u = app.budget("t").await;
    assert_eq!(u["usage"]["spent_nanos"], 25_000);
    assert_eq!(u["usage"]["reserved_nanos"], 0);
    assert_eq!(u["usage"]["requests"], 2);
    assert_eq!(u["usage"]["tokens"], 300);
    app.stop().await;
}

async fn malformed_admission_calls_get_400_naming_the_field(app: TestApp) {
    // The wire ignores fields it does not know (a newer filter's), but not a missing one.
    let mut r = reserve_req("r1", &["team:a"], FILTER_PRICED, 1);
    r.as_object_mut().unwrap().remove("estimated_cost");
    r["estimated_costs"] = json!(1);
    let (s, d) = app.reserve(&r).await;
    assert_eq!(
        (s, d["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );
    let mut r = reserve_req("r1", &["team:a"], FILTER_PRICED, 1);
    r["scopes"] = json!(["team:a", "squad:x"]);
    let (s, d) = app.reserve(&r).await;
    assert_eq!((s, d["error"]["field"].as_str()), (400, Some("scopes[1]")));
    let (s, d) = app
        .reserve(&reserve_req("has space", &["team:a"], FILTER_PRICED, 1))
        .await;
    assert_eq!((s, d["error"]["field"].as_str()), (400, Some("request_id")));
    let (s, d) = app
        .reserve(&reserve_req("neg", &["team:a"], FILTER_PRICED, -1))
        .await;
    assert_eq!(
        (s, d["error"]["field"].as_str()),
        (400, Some("estimated_cost"))
    );
    let mut bad = settlement("s1", &["team:a"], FILTER_PRICED, 1, true);
    bad["usage"]["output_tokens"] = json!("many");
    let (s, d) = app
        .settle(&json!({ "settlements": [settlement("s0", &[], "m", 1, true), bad] }))
        .await;
    assert_eq!(
        (s, d["error"]["field"].as_str()),
        (400, Some("settlements[1].usage.output_tokens"))
    );
    let many: Vec<Value> = (0..1001)
        .map(|i| settlement(&format!("s{i}"), &[], "m", 1, false))
        .collect();
    let (s, d) = app.settle(&json!({ "settlements": many })).await;
    assert_eq!(
        (s, d["error"]["field"].as_str()),
        (400, Some("settlements"))
    );
    app.stop().await;
}

/// 64 concurrent clients against a budget worth exactly 100 requests admit exactly 100.
async fn sixty_four_concurrent_clients_admit_exactly_one_hundred(app: TestApp) {
    app.create_budget(budget("race", &["team:a"], "0.0001"))
        .await; // 100 × 1_000 nanos
    let app = Arc::new(app);
    let mut tasks = Vec::new();
    for t in 0..64 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let mut allowed = 0;
            for i in 0..3 {
                let (s, d) = app
                    .reserve(&reserve_req(
                        &format!("t{t}-{i}"),
                        &["team:a"],
                        FILTER_PRICED,
                        1_000,
                    ))
                    .await;
                assert_eq!(s, 200);
                if d["decision"] == "allow" {
                    allowed += 1;
                }
            }
            allowed
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 100);
    let u = app.budget("race").await;
    assert_eq!(u["usage"]["reserved_nanos"], 100_000);
    assert_eq!(u["usage"]["remaining_nanos"], 0);
}

async fn a_new_window_starts_from_zero_and_unsettled_holds_release_themselves(app: TestApp) {
    app.create_budget(budget("day", &["team:a"], "0.00001"))
        .await; // 10_000 nanos a day
    let rate = json!({ "id": "rate", "scopes": ["team:b"], "limit_requests": 2, "period": { "seconds": 60 } });
    app.create_budget(rate).await;
    let (_, d) = app
        .reserve(&reserve_req("r1", &["team:a"], FILTER_PRICED, 10_000))
        .await;
    assert_eq!(d["decision"], "allow");
    let (_, d) = app
        .reserve(&reserve_req("r2", &["team:a"], FILTER_PRICED, 1))
        .await;
    assert_eq!(d["decision"], "deny");
    // r1 is never settled: after the reservation TTL (600 s by default) its hold is gone.
    app.advance_ms(601_000);
    let (_, d) = app
        .reserve(&reserve_req("r3", &["team:a"], FILTER_PRICED, 10_000))
        .await;
    assert_eq!(d["decision"], "allow", "the expired hold was released");
    // Tomorrow is a new window: nothing to reset.
    app.advance_ms(86_400_000);
    let (_, d) = app
        .reserve(&reserve_req("r4", &["team:a"], FILTER_PRICED, 10_000))
        .await;
    assert_eq!(d, json!({ "decision": "allow", "remaining": 0 }));

    for (i, want) in ["allow", "allow", "deny"].iter().enumerate() {
        let (_, d) = app
            .reserve(&reserve_req(
                &format!("b{i}"),
                &["team:b"],
                FILTER_PRICED,
                1,
            ))
            .await;
        assert_eq!(d["decision"], *want);
        if *want == "deny" {
            assert_eq!(d["reason"], "requests");
            assert!(d["retry_after_secs"].as_i64().unwrap() <= 60);
        }
    }
    app.advance_ms(60_000);
    let (_, d) = app
        .reserve(&reserve_req("b9", &["team:b"], FILTER_PRICED, 1))
        .await;
    assert_eq!(d["decision"], "allow", "the next minute's rate window");
    app.stop().await;
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(TestApp::start(Arc::new(MemoryStore::new()), |_| {}).await).await;
                }
            )*
        }
        mod redis {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let server = RedisServer::start();
                    super::$name(TestApp::start(redis_store(&server.url()), |_| {}).await).await;
                }
            )*
        }
    };
}

on_both_stores!(
    billed_is_read_from_the_settlement_not_inferred_from_a_zero_cost,
    an_override_of_a_model_the_filter_prices_sets_the_reservation_and_the_charge,
    snapshots_aliases_and_inference_profiles_count_toward_their_model_budget,
    a_model_only_an_override_prices_is_reserved_and_settled_at_that_price,
    a_cutoff_budget_gives_streams_their_reservation_plus_what_is_left,
    allow_reports_the_least_usd_left_and_deny_names_the_binding_budget,
    a_downgrade_budget_reprices_and_rechecks_on_the_cheaper_model,
    shadow_budgets_never_deny,
    settle_is_idempotent_and_charges_fail_open_calls_directly,
    malformed_admission_calls_get_400_naming_the_field,
    sixty_four_concurrent_clients_admit_exactly_one_hundred,
    a_new_window_starts_from_zero_and_unsettled_holds_release_themselves,
);

#[tokio::test]
async fn an_unreachable_redis_answers_503_store_unavailable_never_a_decision() {
    let port = support::free_port();
    let app = TestApp::start(redis_store(&format!("redis://127.0.0.1:{port}/")), |_| {}).await;
    let (s, d) = app
        .reserve(&reserve_req("r1", &["team:a"], FILTER_PRICED, 1))
        .await;
    assert_eq!(
        (s, d["error"]["code"].as_str()),
        (503, Some("store_unavailable"))
    );
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let (s, _) = app
        .settle(&json!({ "settlements": [settlement("s", &["team:a"], FILTER_PRICED, 1, false)] }))
        .await;
    assert_eq!(s, 503);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_with_aof_loses_no_charge_and_double_charges_none() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = RedisServer::start_with_aof(dir.path());
    let store: Arc<dyn Store> = redis_store(&server.url());
    let app = TestApp::start(store, |_| {}).await;
    app.create_budget(budget("t", &["team:a"], "1")).await;
    for i in 0..10 {
        let (_, d) = app
            .reserve(&reserve_req(
                &format!("r{i}"),
                &["team:a"],
                FILTER_PRICED,
                10_000,
            ))
            .await;
        assert_eq!(d["decision"], "allow");
    }
    let first: Vec<Value> = (0..5)
        .map(|i| settlement(&format!("r{i}"), &["team:a"], FILTER_PRICED, 3_000, true))
        .collect();
    assert_eq!(app.settle(&json!({ "settlements": first })).await.0, 200);

    server.stop();
    let (s, d) = app
        .reserve(&reserve_req("down", &["team:a"], FILTER_PRICED, 1))
        .await;
    assert_eq!(
        (s, d["error"]["code"].as_str()),
        (503, Some("store_unavailable"))
    );
    server.restart();

    // The connection comes back on its own; poll until the service is ready again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(
            std::time::Instant::now() < deadline,
            "never became ready after restart"
        );
        tokio::task::yield_now().await;
    }
    // Replay the whole batch (as a filter would after a 503) plus the rest.
    let all: Vec<Value> = (0..10)
        .map(|i| settlement(&format!("r{i}"), &["team:a"], FILTER_PRICED, 3_000, true))
        .collect();
    let (s, d) = app.settle(&json!({ "settlements": all })).await;
    assert_eq!((s, d), (200, json!({ "applied": 5, "duplicates": 5 })));
    let u = app.budget("t").await;
    assert_eq!(
        u["usage"]["spent_nanos"], 30_000,
        "each call charged exactly once"
    );
    assert_eq!(u["usage"]["reserved_nanos"], 0);
    assert_eq!(u["usage"]["requests"], 10);
    app.stop().await;
}
