//! The admin API over real HTTP: every route and every error path.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::app::{ADMIN, DATAPLANE, FILTER_PRICED, TestApp, reserve_req, settlement};

fn spec(id: &str, scopes: &[&str], limit_usd: &str) -> Value {
    json!({ "id": id, "scopes": scopes, "limit_usd": limit_usd, "period": "monthly" })
}

async fn error_of(r: reqwest::Response) -> (u16, String, Option<String>) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    let e = &body["error"];
    (
        status,
        e["code"].as_str().unwrap_or_default().to_owned(),
        e["field"].as_str().map(str::to_owned),
    )
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi_need_no_token() {
    let app = TestApp::memory().await;
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Make one counted request, then find it in the exposition.
    app.admin(Method::GET, "/v1/budgets").send().await.unwrap();
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("tollgate_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/v1/budgets\""));
    let doc: Value = app
        .http
        .get(app.url("/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/v1/admission/reserve",
        "/v1/admission/settle",
        "/v1/budgets/{id}",
        "/v1/prices/{model}",
        "/v1/emergency/{scope}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert!(doc["components"]["schemas"]["BudgetView"].is_object());
    app.stop().await;
}

#[tokio::test]
async fn tokens_are_checked_and_each_opens_only_its_own_api() {
    let app = TestApp::memory().await;
    let r = app.http.get(app.url("/v1/budgets")).send().await.unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(error_of(r).await, (401, "missing_token".into(), None));
    let r = app
        .http
        .get(app.url("/v1/budgets"))
        .bearer_auth("guess")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.1, "invalid_token");
    let r = app
        .http
        .get(app.url("/v1/budgets"))
        .bearer_auth(DATAPLANE)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await, (403, "forbidden".into(), None));
    let r = app
        .http
        .post(app.url("/v1/admission/reserve"))
        .bearer_auth(ADMIN)
        .json(&reserve_req("r", &["team:a"], FILTER_PRICED, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await, (403, "forbidden".into(), None));
    let r = app
        .http
        .get(app.url("/v1/budgets"))
        .bearer_auth("second-admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "every configured admin token works");
    app.stop().await;
}

#[tokio::test]
async fn a_budget_is_created_read_updated_with_if_match_and_deleted() {
    let app = TestApp::memory().await;
    let created = app.create_budget(spec("team-a", &["team:a"], "100")).await;
    assert_eq!(created["version"], 1);
    assert_eq!(created["usage"]["spent_nanos"], 0);
    let r = app
        .admin(Method::GET, "/v1/budgets/team-a")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["etag"], "\"1\"");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["budget"]["limit_usd"], "100");
    assert_eq!(body["usage"]["remaining_nanos"], 100_000_000_000_i64);
    assert!(
        body["usage"]["resets_at"]
            .as_str()
            .unwrap()
            .starts_with("2027-02-01")
    );

    let r = app
        .admin(Method::PUT, "/v1/budgets/team-a")
        .header("if-match", "\"1\"")
        .json(&spec("team-a", &["team:a"], "200"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], "\"2\"");
    let r = app
        .admin(Method::PUT, "/v1/budgets/team-a")
        .header("if-match", "\"1\"")
        .json(&spec("team-a", &["team:a"], "300"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await, (412, "precondition_failed".into(), None));
    let r = app
        .admin(Method::PUT, "/v1/budgets/team-a")
        .json(&spec("other", &["team:a"], "300"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(r).await,
        (400, "invalid_field".into(), Some("id".into()))
    );
    let r = app
        .admin(Method::PUT, "/v1/budgets/nope")
        .json(&spec("nope", &["team:a"], "300"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.0, 404);
    let r = app
        .admin(Method::PUT, "/v1/budgets/team-a")
        .header("if-match", "banana")
        .json(&spec("team-a", &["team:a"], "300"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.1, "bad_request");

    let r = app
        .admin(Method::DELETE, "/v1/budgets/team-a")
        .header("if-match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.0, 412);
    let r = app
        .admin(Method::DELETE, "/v1/budgets/team-a")
        .header("if-match", "\"2\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = app
        .admin(Method::GET, "/v1/budgets/team-a")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await, (404, "not_found".into(), None));
    let r = app
        .admin(Method::DELETE, "/v1/budgets/team-a")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.0, 404);
    app.stop().await;
}

#[tokio::test]
async fn bad_budget_bodies_get_400_naming_the_field_409_or_413() {
    let app = TestApp::memory().await;
    app.create_budget(spec("a", &["team:a"], "1")).await;
    let post = |body: String| {
        app.admin(Method::POST, "/v1/budgets")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = post(spec("a", &["team:a"], "1").to_string()).await.unwrap();
    assert_eq!(error_of(r).await, (409, "already_exists".into(), None));
    let r = post(spec("b", &["squad:x"], "1").to_string())
        .await
        .unwrap();
    assert_eq!(
        error_of(r).await,
        (400, "invalid_field".into(), Some("scopes".into()))
    );
    let r = post(spec("b", &["team:a"], "99999999").to_string())
        .await
        .unwrap();
    assert_eq!(error_of(r).await.2.as_deref(), Some("limit_usd"));
    let mut unknown = spec("b", &["team:a"], "1");
    unknown["limt"] = json!(1);
    let r = post(unknown.to_string()).await.unwrap();
    let (status, code, _) = error_of(r).await;
    assert_eq!((status, code.as_str()), (400, "invalid_json"));
    let r = post(
        r#"{"id":"b","scopes":["team:a"],"limit_usd":"1","period":"daily","limit_tokens":"x"}"#
            .into(),
    )
    .await
    .unwrap();
    assert_eq!(
        error_of(r).await,
        (400, "invalid_json".into(), Some("limit_tokens".into()))
    );
    let r = post("{not json".into()).await.unwrap();
    assert_eq!(error_of(r).await.1, "invalid_json");
    let huge = json!({ "id": "b", "description": "x".repeat(1100 * 1024) });
    let r = post(huge.to_string()).await.unwrap();
    assert_eq!(error_of(r).await, (413, "payload_too_large".into(), None));
    app.stop().await;
}

#[tokio::test]
async fn budgets_are_listed_by_scope_in_pages() {
    let app = TestApp::memory().await;
    for i in 0..5 {
        app.create_budget(spec(&format!("a{i}"), &["team:a"], "1"))
            .await;
    }
    app.create_budget(spec("b0", &["team:b"], "1")).await;
    let page: Value = app
        .admin(Method::GET, "/v1/budgets?scope=team:a&limit=2")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["budget"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a0", "a1"]);
    assert_eq!(page["next_cursor"], "a1");
    let page: Value = app
        .admin(Method::GET, "/v1/budgets?scope=team:a&limit=2&cursor=a3")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert!(page.get("next_cursor").is_none());
    let r = app
        .admin(Method::GET, "/v1/budgets?limit=0")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.2.as_deref(), Some("limit"));
    let r = app
        .admin(Method::GET, "/v1/budgets?scope=bad")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.2.as_deref(), Some("scope"));
    let r = app
        .admin(Method::GET, "/v1/budgets?colour=red")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.1, "bad_request");
    app.stop().await;
}

#[tokio::test]
async fn usage_reset_reopen_alerts_and_audit_reflect_spend() {
    let app = TestApp::memory().await;
    let mut s = spec("t", &["team:a"], "1");
    s["suspend_on_exceed"] = json!(true);
    app.create_budget(s).await;
    let (status, body) = app
        .settle(&json!({ "settlements": [settlement("s1", &["team:a"], FILTER_PRICED, 1_000_000_000, false)] }))
        .await;
    assert_eq!(
        (status, &body),
        (200, &json!({ "applied": 1, "duplicates": 0 }))
    );
    let usage: Value = app
        .admin(Method::GET, "/v1/usage/team:a")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(usage[0]["spent_usd"], "1");
    assert_eq!(usage[0]["thresholds_crossed"], json!([50, 80, 90, 100]));
    assert_eq!(usage[0]["suspended"], true);
    let alerts: Value = app
        .admin(Method::GET, "/v1/alerts?limit=10")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(alerts.as_array().unwrap().len(), 4);

    let (_, d) = app
        .reserve(&reserve_req("r1", &["team:a"], FILTER_PRICED, 1))
        .await;
    assert_eq!(d["reason"], "suspended");
    let r: Value = app
        .admin(Method::POST, "/v1/budgets/t/reset")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["spent_nanos"], 0);
    let r: Value = app
        .admin(Method::POST, "/v1/budgets/t/reopen")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["reopened"], true);
    let (_, d) = app
        .reserve(&reserve_req("r2", &["team:a"], FILTER_PRICED, 1))
        .await;
    assert_eq!(d["decision"], "allow");

    let audit: Value = app
        .admin(Method::GET, "/v1/audit")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["budget.reopen", "budget.reset", "budget.create"]);
    assert_eq!(audit[1]["detail"]["spent_nanos_before"], 1_000_000_000);
    let r = app
        .admin(Method::POST, "/v1/budgets/none/reset")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.0, 404);
    let r = app
        .admin(Method::GET, "/v1/usage/nokind")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.2.as_deref(), Some("scope"));
    let r = app
        .admin(Method::GET, "/v1/audit?limit=5000")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.0, 400);
    app.stop().await;
}

#[tokio::test]
async fn price_overrides_merge_over_the_shipped_table() {
    let app = TestApp::memory().await;
    let shipped: Value = app
        .admin(Method::GET, "/v1/prices/gpt-5-2025-08-07")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (shipped["model"].as_str(), shipped["source"].as_str()),
        (Some("gpt-5"), Some("shipped"))
    );
    let entry = json!({
        "id": "in-house-llm", "provider": "vllm", "source": "contract", "checked": "2026-11-01",
        "prices": [{ "effective_from": "2026-01-01", "input": "0.1", "output": "0.2" }]
    });
    let r = app
        .admin(Method::PUT, "/v1/prices/in-house-llm")
        .json(&entry)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got: Value = app
        .admin(Method::GET, "/v1/prices/in-house-llm")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["source"], "override");
    assert_eq!(got["entry"]["provider"], "vllm");
    let r = app
        .admin(Method::PUT, "/v1/prices/other")
        .json(&entry)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.2.as_deref(), Some("id"));
    let mut bad = entry.clone();
    bad["prices"][0]["input"] = json!(5);
    let r = app
        .admin(Method::PUT, "/v1/prices/in-house-llm")
        .json(&bad)
        .send()
        .await
        .unwrap();
    let (status, code, field) = error_of(r).await;
    assert_eq!((status, code.as_str()), (400, "invalid_json"));
    assert!(field.unwrap().contains("prices[0]"));
    let r = app
        .admin(Method::GET, "/v1/prices/no-such-model-xyz")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.0, 404);
    app.stop().await;
}

#[tokio::test]
async fn emergency_switches_deny_or_downgrade_a_scope_at_once() {
    let app = TestApp::memory().await;
    let r = app
        .admin(Method::PUT, "/v1/emergency/team:a")
        .json(&json!({ "mode": "deny_all", "reason": "incident" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s, d) = app
        .reserve(&reserve_req("r1", &["team:a"], FILTER_PRICED, 1))
        .await;
    assert_eq!(
        (s, d["decision"].as_str(), d["reason"].as_str()),
        (200, Some("deny"), Some("emergency"))
    );
    assert_eq!(d["budget_id"], "emergency:team:a");
    let (_, d) = app
        .reserve(&reserve_req("r2", &["team:b"], FILTER_PRICED, 1))
        .await;
    assert_eq!(d["decision"], "allow");

    app.admin(Method::PUT, "/v1/emergency/global")
        .json(&json!({ "mode": "downgrade_all", "model": "gpt-5-mini" }))
        .send()
        .await
        .unwrap();
    let (_, d) = app
        .reserve(&reserve_req("r3", &["team:b"], FILTER_PRICED, 1))
        .await;
    assert_eq!(
        (d["decision"].as_str(), d["model"].as_str()),
        (Some("downgrade"), Some("gpt-5-mini"))
    );
    let list: Value = app
        .admin(Method::GET, "/v1/emergency")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);

    let r = app
        .admin(Method::DELETE, "/v1/emergency/team:a")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = app
        .admin(Method::DELETE, "/v1/emergency/team:a")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.0, 404);
    let r = app
        .admin(Method::PUT, "/v1/emergency/squad:x")
        .json(&json!({ "mode": "deny_all" }))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.2.as_deref(), Some("scope"));
    let r = app
        .admin(Method::PUT, "/v1/emergency/team:a")
        .json(&json!({ "mode": "explode" }))
        .send()
        .await
        .unwrap();
    // A well-typed value its type refuses (an unknown variant) is a bad field, not bad JSON.
    assert_eq!(
        error_of(r).await,
        (400, "invalid_field".into(), Some("mode".into()))
    );
    let audit: Value = app
        .admin(Method::GET, "/v1/audit")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(audit[0]["action"], "emergency.clear");
    app.stop().await;
}

#[tokio::test]
async fn unknown_routes_are_404_with_a_code() {
    let app = TestApp::memory().await;
    let r = app.admin(Method::GET, "/v1/nothing").send().await.unwrap();
    assert_eq!(error_of(r).await, (404, "not_found".into(), None));
    app.stop().await;
}

#[tokio::test]
async fn the_price_override_set_is_versioned_and_unchanged_sets_answer_304() {
    let app = TestApp::memory().await;
    let fetch = |etag: Option<String>| {
        let mut req = app
            .http
            .get(app.url("/v1/admission/prices"))
            .bearer_auth(DATAPLANE);
        if let Some(etag) = etag {
            req = req.header("if-none-match", etag);
        }
        req.send()
    };
    let empty = fetch(None).await.unwrap();
    assert_eq!(empty.status(), 200);
    let first = empty.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = empty.json().await.unwrap();
    // No override yet: the imported table's entries, which the filter's table lacks.
    let ids = |body: &Value| -> Vec<String> {
        body["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let imported = ids(&body);
    assert!(
        imported.contains(&"qwen.qwen3-32b-v1:0".to_owned()),
        "{body}"
    );
    assert!(!imported.contains(&"gpt-5".to_owned()), "{body}");
    assert_eq!(
        format!("\"{}\"", body["table_version"].as_str().unwrap()),
        first
    );
    assert_eq!(fetch(Some(first.clone())).await.unwrap().status(), 304);

    let entry = json!({
        "id": "gpt-5", "provider": "openai", "source": "contract", "checked": "2026-11-01",
        "prices": [{ "effective_from": "2026-01-01", "input": "2", "output": "20" }]
    });
    let r = app
        .admin(Method::PUT, "/v1/prices/gpt-5")
        .json(&entry)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let changed = fetch(Some(first.clone())).await.unwrap();
    assert_eq!(changed.status(), 200);
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), first);
    let body: Value = changed.json().await.unwrap();
    let mut want = imported.clone();
    want.push("gpt-5".to_owned());
    want.sort();
    assert_eq!(ids(&body), want);
    // A price file the filter's own reader takes.
    let (_, models) = tollgate_model::pricing::read_price_set(&body.to_string()).unwrap();
    assert!(models.iter().any(|m| m.id() == "gpt-5"));
    assert_eq!(models.len(), want.len());
    let admin = app
        .http
        .get(app.url("/v1/admission/prices"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 403, "data-plane token only");
    app.stop().await;
}
