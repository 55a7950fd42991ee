//! The served OpenAPI document against the real answers: every operation it lists is called
//! over real HTTP, and each JSON body sent and received (successes and errors alike) must
//! validate against the schema the document gives for that operation and status.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};
use support::app::{ADMIN, DATAPLANE, FILTER_PRICED, TestApp, reserve_req, settlement};

/// The document and the operations exercised so far.
struct Contract {
    doc: Value,
    called: BTreeSet<(String, String)>,
}

impl Contract {
    async fn fetch(app: &TestApp) -> Contract {
        let doc: Value = app
            .http
            .get(app.url("/v1/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Contract {
            doc,
            called: BTreeSet::new(),
        }
    }

    /// A schema of the document, with its components beside it so `#/components/…` resolves.
    fn validator(&self, schema: &Value) -> jsonschema::Validator {
        let mut root = schema.clone();
        if let Some(obj) = root.as_object_mut() {
            obj.insert("components".into(), self.doc["components"].clone());
        }
        jsonschema::draft202012::new(&root)
            .unwrap_or_else(|e| panic!("the document's schema does not compile: {e}\n{schema}"))
    }

    fn check(&self, what: &str, schema: &Value, body: &Value) {
        assert!(
            schema.is_object(),
            "{what}: the document gives no JSON schema"
        );
        let v = self.validator(schema);
        let errors: Vec<String> = v.iter_errors(body).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "{what}: the body does not match the document:\n{}\nbody: {body}\nschema: {schema}",
            errors.join("\n")
        );
    }

    /// Sends `method template` (with `path` filled in), checks the JSON answer against the
    /// operation's response for its status and, when the call succeeded, the request body
    /// against its `requestBody` (what the server accepts must be what the document says).
    async fn call(
        &mut self,
        app: &TestApp,
        token: &str,
        method: Method,
        template: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let m = method.as_str().to_ascii_lowercase();
        let op = &self.doc["paths"][template][&m];
        assert!(op.is_object(), "{m} {template} is not in the document");
        let what = format!("{m} {template}");
        let mut req = app.http.request(method, app.url(path)).bearer_auth(token);
        if let Some(b) = &body {
            req = req.json(b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let is_json = r
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        let text = r.text().await.unwrap();
        let documented = &op["responses"][status.to_string()];
        assert!(
            documented.is_object(),
            "{what} answered {status}, a status the document does not list: {text}"
        );
        if let Some(b) = body.as_ref().filter(|_| status < 300) {
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            self.check(&format!("{what} request"), schema, b);
        }
        let answer = if is_json {
            let v: Value = serde_json::from_str(&text).unwrap();
            let schema = &documented["content"]["application/json"]["schema"];
            self.check(&format!("{what} → {status}"), schema, &v);
            v
        } else {
            Value::String(text)
        };
        self.called.insert((m, template.to_owned()));
        (status, answer)
    }

    /// Every operation of the document was called at least once.
    fn assert_all_called(&self) {
        let mut missing = Vec::new();
        for (path, item) in self.doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if !self.called.contains(&(method.clone(), path.clone())) {
                    missing.push(format!("{method} {path}"));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "operations in the document that tests/openapi.rs never calls (add a call): {missing:?}"
        );
    }
}

fn budget(id: &str, scopes: &[&str], limit_usd: &str) -> Value {
    json!({ "id": id, "scopes": scopes, "limit_usd": limit_usd, "period": "monthly" })
}

#[tokio::test]
async fn every_operation_answers_as_the_document_says() {
    let app = TestApp::memory().await;
    let mut c = Contract::fetch(&app).await;
    use Method as M;

    // Open routes.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let (s, _) = c.call(&app, "", M::GET, path, path, None).await;
        assert_eq!(s, 200, "{path}");
    }

    // An alert channel first, so the threshold crossed below leaves a delivery record to list
    // (nothing listens at its URL: the attempt fails and is recorded).
    let hook = format!("http://127.0.0.1:{}/hook", support::free_port());
    let channel = json!({ "id": "ops", "min_severity": "info",
        "target": { "kind": "webhook", "url": hook, "secret": "whsec-0123456789abcdef" } });
    let (s, e) = c
        .call(
            &app,
            ADMIN,
            M::POST,
            "/v1/channels",
            "/v1/channels",
            Some(channel.clone()),
        )
        .await;
    assert_eq!(s, 201, "{e}");

    // Budgets: create, list, read, update, usage, reset, reopen, delete, and their errors.
    let mut spec = budget("team-a", &["team:a"], "1");
    spec["thresholds_pct"] = json!([50, 100]);
    spec["suspend_on_exceed"] = json!(true);
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::POST,
            "/v1/budgets",
            "/v1/budgets",
            Some(spec.clone()),
        )
        .await;
    assert_eq!(s, 201);
    let mut dg = budget("dg", &["team:d"], "0.000001");
    dg["enforcement"] = json!({ "downgrade": { "gpt-5": "gpt-5-mini" } });
    dg["description"] = json!("downgrades gpt-5");
    let (s, _) = c
        .call(&app, ADMIN, M::POST, "/v1/budgets", "/v1/budgets", Some(dg))
        .await;
    assert_eq!(s, 201);
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::POST,
            "/v1/budgets",
            "/v1/budgets",
            Some(spec.clone()),
        )
        .await;
    assert_eq!(s, 409);
    let mut bad = spec.clone();
    bad["period"] = json!("fortnightly");
    let (s, e) = c
        .call(
            &app,
            ADMIN,
            M::POST,
            "/v1/budgets",
            "/v1/budgets",
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::GET,
            "/v1/budgets",
            "/v1/budgets?limit=1",
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::GET,
            "/v1/budgets/{id}",
            "/v1/budgets/team-a",
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::GET,
            "/v1/budgets/{id}",
            "/v1/budgets/nope",
            None,
        )
        .await;
    assert_eq!(s, 404);
    spec["limit_usd"] = json!("2");
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::PUT,
            "/v1/budgets/{id}",
            "/v1/budgets/team-a",
            Some(spec.clone()),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::GET,
            "/v1/usage/{scope}",
            "/v1/usage/team:a",
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::POST,
            "/v1/budgets/{id}/reset",
            "/v1/budgets/team-a/reset",
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::POST,
            "/v1/budgets/{id}/reopen",
            "/v1/budgets/team-a/reopen",
            None,
        )
        .await;
    assert_eq!(s, 200);

    // Admission: allow, downgrade and deny answers; settle; a malformed body.
    let (s, d) = c
        .call(
            &app,
            DATAPLANE,
            M::POST,
            "/v1/admission/reserve",
            "/v1/admission/reserve",
            Some(reserve_req("r1", &["team:a"], "gpt-4o-mini", 1_000)),
        )
        .await;
    assert_eq!((s, d["decision"].as_str()), (200, Some("allow")));
    let (s, d) = c
        .call(
            &app,
            DATAPLANE,
            M::POST,
            "/v1/admission/reserve",
            "/v1/admission/reserve",
            Some(reserve_req("r2", &["team:d"], "gpt-5", 5_000_000)),
        )
        .await;
    assert_eq!(s, 200);
    assert!(
        matches!(d["decision"].as_str(), Some("downgrade" | "deny")),
        "{d}"
    );
    let (s, d) = c
        .call(
            &app,
            DATAPLANE,
            M::POST,
            "/v1/admission/reserve",
            "/v1/admission/reserve",
            Some(reserve_req("r3", &["team:a"], FILTER_PRICED, 9_000_000_000)),
        )
        .await;
    assert_eq!((s, d["decision"].as_str()), (200, Some("deny")));
    let (s, _) = c
        .call(
            &app,
            DATAPLANE,
            M::POST,
            "/v1/admission/settle",
            "/v1/admission/settle",
            Some(
                json!({ "settlements": [settlement("r1", &["team:a"], "gpt-4o-mini", 900, true)] }),
            ),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = c
        .call(
            &app,
            DATAPLANE,
            M::POST,
            "/v1/admission/reserve",
            "/v1/admission/reserve",
            None,
        )
        .await;
    assert_eq!(s, 400);

    // Leases: grant, renew, a leased call's settle, the admin listing, return, and a 400.
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::POST,
            "/v1/budgets",
            "/v1/budgets",
            Some(
                json!({ "id": "leased", "scopes": ["team:l"], "limit_usd": "100",
                "limit_requests": 1000, "period": "monthly", "lease": "5%" }),
            ),
        )
        .await;
    assert_eq!(s, 201);
    let ask = json!({ "holder": "vm-1", "scopes": ["team:l"], "model": "gpt-4o-mini",
        "provider": "openai", "at_unix_ms": 0 });
    let (s, granted) = c
        .call(
            &app,
            DATAPLANE,
            M::POST,
            "/v1/admission/lease",
            "/v1/admission/lease",
            Some(ask.clone()),
        )
        .await;
    assert_eq!(s, 200, "{granted}");
    let lease_id = granted["lease"]["lease_id"].clone();
    let mut renew = ask.clone();
    renew["lease_id"] = lease_id.clone();
    let (s, renewed) = c
        .call(
            &app,
            DATAPLANE,
            M::POST,
            "/v1/admission/lease",
            "/v1/admission/lease",
            Some(renew),
        )
        .await;
    assert_eq!((s, &renewed["lease"]["lease_id"]), (200, &lease_id));
    let mut leased = settlement("leased-1", &["team:l"], "gpt-4o-mini", 900, true);
    leased["lease_id"] = lease_id.clone();
    leased["lease_usd"] = json!(1_000);
    leased["lease_tokens"] = json!(100);
    let (s, _) = c
        .call(
            &app,
            DATAPLANE,
            M::POST,
            "/v1/admission/settle",
            "/v1/admission/settle",
            Some(json!({ "settlements": [leased] })),
        )
        .await;
    assert_eq!(s, 200);
    let (s, listed) = c
        .call(&app, ADMIN, M::GET, "/v1/leases", "/v1/leases", None)
        .await;
    assert_eq!(
        (s, listed["outstanding"].as_u64()),
        (200, Some(1)),
        "{listed}"
    );
    let (s, back) = c
        .call(
            &app,
            DATAPLANE,
            M::POST,
            "/v1/admission/lease/return",
            "/v1/admission/lease/return",
            Some(json!({ "lease_id": lease_id, "usd": 1_000, "requests": 1, "at_unix_ms": 0 })),
        )
        .await;
    assert_eq!((s, back), (200, json!({ "known": true })));
    let (s, _) = c
        .call(
            &app,
            DATAPLANE,
            M::POST,
            "/v1/admission/lease",
            "/v1/admission/lease",
            Some(json!({ "holder": " ", "scopes": [], "model": "m", "provider": "p", "at_unix_ms": 0 })),
        )
        .await;
    assert_eq!(s, 400);
    let (s, none) = c
        .call(
            &app,
            DATAPLANE,
            M::POST,
            "/v1/admission/lease",
            "/v1/admission/lease",
            Some(
                json!({ "holder": "vm-1", "scopes": ["team:nobody"], "model": "gpt-4o-mini",
                "provider": "openai", "at_unix_ms": 0 }),
            ),
        )
        .await;
    assert_eq!((s, none), (200, json!({ "no_lease": "no_budget" })));

    // Prices.
    let (s, entry) = c
        .call(
            &app,
            ADMIN,
            M::GET,
            "/v1/prices/{model}",
            "/v1/prices/gpt-4o-mini",
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, e) = c
        .call(
            &app,
            ADMIN,
            M::PUT,
            "/v1/prices/{model}",
            "/v1/prices/gpt-4o-mini",
            Some(entry["entry"].clone()),
        )
        .await;
    assert_eq!(s, 200, "{e}");
    let (s, overrides) = c
        .call(
            &app,
            DATAPLANE,
            M::GET,
            "/v1/admission/prices",
            "/v1/admission/prices",
            None,
        )
        .await;
    assert_eq!(s, 200);
    // The overrides and the imported table's entries (which the filter's table lacks).
    let served: Vec<&str> = overrides["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(served.contains(&"gpt-4o-mini"), "{overrides}");
    assert!(served.contains(&"qwen.qwen3-32b-v1:0"), "{overrides}");
    let import = |dry_run: bool| {
        json!({"dry_run": dry_run, "models": [{
            "id": "contract-model", "provider": "openai", "source": "litellm==0 test: contract-model",
            "checked": "2026-01-01", "note": "imported",
            "prices": [{"effective_from": "2026-01-01", "input": "1", "output": "2"}]
        }]})
    };
    for dry_run in [true, false] {
        let (s, report) = c
            .call(
                &app,
                ADMIN,
                M::POST,
                "/v1/prices/import",
                "/v1/prices/import",
                Some(import(dry_run)),
            )
            .await;
        assert_eq!(s, 200, "{report}");
        assert_eq!(report["added"], json!(["contract-model"]), "{report}");
    }
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::POST,
            "/v1/prices/import",
            "/v1/prices/import",
            Some(json!({"models": [{"id": "x"}]})),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::GET,
            "/v1/prices/{model}",
            "/v1/prices/no-such-model",
            None,
        )
        .await;
    assert_eq!(s, 404);

    // Emergency switches.
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::PUT,
            "/v1/emergency/{scope}",
            "/v1/emergency/team:a",
            Some(json!({ "mode": "deny_all" })),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = c
        .call(&app, ADMIN, M::GET, "/v1/emergency", "/v1/emergency", None)
        .await;
    assert_eq!(s, 200);
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::DELETE,
            "/v1/emergency/{scope}",
            "/v1/emergency/team:a",
            None,
        )
        .await;
    assert_eq!(s, 204);

    // Alerts (a 60 % crossing on team-a's $2), their deliveries, the channels, and the audit
    // trail of everything above.
    let (s, _) = app
        .settle(&json!({ "settlements": [settlement("r-alert", &["team:a"], FILTER_PRICED, 1_200_000_000, false)] }))
        .await;
    assert_eq!(s, 200);
    let (s, alerts) = c
        .call(&app, ADMIN, M::GET, "/v1/alerts", "/v1/alerts", None)
        .await;
    assert_eq!(s, 200);
    let alert = alerts[0]["id"].as_str().expect("an alert").to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (s, d) = c
            .call(
                &app,
                ADMIN,
                M::GET,
                "/v1/alerts/{id}/deliveries",
                &format!("/v1/alerts/{alert}/deliveries"),
                None,
            )
            .await;
        assert_eq!(s, 200);
        if d[0]["attempts"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no attempt recorded: {d}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::GET,
            "/v1/alerts/dead-letters",
            "/v1/alerts/dead-letters",
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::POST,
            "/v1/channels",
            "/v1/channels",
            Some(channel.clone()),
        )
        .await;
    assert_eq!(s, 409);
    let mut short = channel.clone();
    short["target"]["secret"] = json!("short");
    let (s, e) = c
        .call(
            &app,
            ADMIN,
            M::POST,
            "/v1/channels",
            "/v1/channels",
            Some(short),
        )
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (400, Some("target.secret"))
    );
    let (s, _) = c
        .call(&app, ADMIN, M::GET, "/v1/channels", "/v1/channels", None)
        .await;
    assert_eq!(s, 200);
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::GET,
            "/v1/channels/{id}",
            "/v1/channels/ops",
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::GET,
            "/v1/channels/{id}",
            "/v1/channels/nope",
            None,
        )
        .await;
    assert_eq!(s, 404);
    // A test alert to a webhook nothing listens at: answered, not ok, the error named.
    let (s, tried) = c
        .call(
            &app,
            ADMIN,
            M::POST,
            "/v1/channels/{id}/test",
            "/v1/channels/ops/test",
            None,
        )
        .await;
    assert_eq!(s, 200, "{tried}");
    assert_eq!(tried["ok"], false, "{tried}");
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::POST,
            "/v1/channels/{id}/test",
            "/v1/channels/nope/test",
            None,
        )
        .await;
    assert_eq!(s, 404);
    let slack = json!({ "id": "ops", "target": { "kind": "slack", "url": "https://hooks.slack.com/services/T/B/X" } });
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::PUT,
            "/v1/channels/{id}",
            "/v1/channels/ops",
            Some(slack),
        )
        .await;
    assert_eq!(s, 200);
    let mail = json!({ "id": "mail", "target": { "kind": "email", "host": "smtp.example.com",
        "username": "u", "password": "p", "from": "a@example.com", "to": ["b@example.com"] } });
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::POST,
            "/v1/channels",
            "/v1/channels",
            Some(mail),
        )
        .await;
    assert_eq!(s, 201);
    let (s, _) = c
        .call(&app, ADMIN, M::GET, "/v1/channels", "/v1/channels", None)
        .await;
    assert_eq!(s, 200);
    for id in ["ops", "mail"] {
        let (s, _) = c
            .call(
                &app,
                ADMIN,
                M::DELETE,
                "/v1/channels/{id}",
                &format!("/v1/channels/{id}"),
                None,
            )
            .await;
        assert_eq!(s, 204);
    }
    let (s, audit) = c
        .call(&app, ADMIN, M::GET, "/v1/audit", "/v1/audit", None)
        .await;
    assert_eq!(s, 200);
    assert!(audit.as_array().is_some_and(|a| !a.is_empty()), "{audit}");

    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::DELETE,
            "/v1/budgets/{id}",
            "/v1/budgets/team-a",
            None,
        )
        .await;
    assert_eq!(s, 204);

    // Budget profiles, and a budget naming one.
    let (s, _) = c
        .call(&app, ADMIN, M::GET, "/v1/profiles", "/v1/profiles", None)
        .await;
    assert_eq!(s, 200);
    let tier = json!({"id": "tier", "description": "custom",
        "settings": {"limit_usd": "5", "period": {"seconds": 60}, "enforcement": {"downgrade": {"gpt-5": "gpt-5-mini"}}}});
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::PUT,
            "/v1/profiles/{id}",
            "/v1/profiles/tier",
            Some(tier),
        )
        .await;
    assert_eq!(s, 200);
    let profiled = json!({"id": "p", "scopes": ["team:p"], "profile": "tier", "limit_usd": "2"});
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::POST,
            "/v1/budgets",
            "/v1/budgets",
            Some(profiled),
        )
        .await;
    assert_eq!(s, 201);
    let (s, b) = c
        .call(
            &app,
            ADMIN,
            M::GET,
            "/v1/budgets/{id}",
            "/v1/budgets/p",
            None,
        )
        .await;
    assert_eq!((s, b["profile"]["id"].as_str()), (200, Some("tier")), "{b}");
    let (s, p) = c
        .call(
            &app,
            ADMIN,
            M::GET,
            "/v1/profiles/{id}",
            "/v1/profiles/tier",
            None,
        )
        .await;
    assert_eq!((s, p["budgets"].clone()), (200, json!(["p"])));
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::DELETE,
            "/v1/profiles/{id}",
            "/v1/profiles/tier",
            None,
        )
        .await;
    assert_eq!(s, 400, "a profile a budget names is not deleted");
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::DELETE,
            "/v1/budgets/{id}",
            "/v1/budgets/p",
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::DELETE,
            "/v1/profiles/{id}",
            "/v1/profiles/tier",
            None,
        )
        .await;
    assert_eq!(s, 204);

    // Reports over the ledger (the settlements above wrote to it).
    for (template, path) in [
        (
            "/v1/reports/spend",
            "/v1/reports/spend?from=2020-01-01&to=2020-02-01&group_by=team,model&bucket=day&top=3",
        ),
        (
            "/v1/reports/chargeback",
            "/v1/reports/chargeback?from=2020-01-01&to=2020-02-01&by=team&allocation=proportional",
        ),
        (
            "/v1/reports/invoice",
            "/v1/reports/invoice?scope=team:a&from=2020-01-01&to=2020-02-01&billing=prepaid&credit_usd=5",
        ),
    ] {
        let (s, body) = c.call(&app, ADMIN, M::GET, template, path, None).await;
        assert_eq!(s, 200, "{path}: {body}");
    }
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::GET,
            "/v1/reports/spend",
            "/v1/reports/spend?from=2020-01-01",
            None,
        )
        .await;
    assert_eq!(s, 400);

    // Forecasts: every budget, one scope (its own forecast and its budgets'), one budget,
    // and the errors.
    let (s, all) = c
        .call(&app, ADMIN, M::GET, "/v1/forecasts", "/v1/forecasts", None)
        .await;
    assert_eq!(s, 200, "{all}");
    let first = all["budgets"][0]["budget_id"]
        .as_str()
        .expect("a budget")
        .to_owned();
    let (s, one) = c
        .call(
            &app,
            ADMIN,
            M::GET,
            "/v1/forecasts",
            "/v1/forecasts?scope=team:a&period=weekly&timezone=Europe/Berlin",
            None,
        )
        .await;
    assert_eq!(s, 200, "{one}");
    assert_eq!(one["scope"]["scope"], "team:a");
    let (s, b) = c
        .call(
            &app,
            ADMIN,
            M::GET,
            "/v1/forecasts/{budget}",
            &format!("/v1/forecasts/{first}"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::GET,
            "/v1/forecasts/{budget}",
            "/v1/forecasts/nope",
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::GET,
            "/v1/forecasts",
            "/v1/forecasts?scope=team:a&period=fortnightly",
            None,
        )
        .await;
    assert_eq!(s, 400);

    let (s, r) = c
        .call(
            &app,
            ADMIN,
            M::GET,
            "/v1/recommendations",
            "/v1/recommendations?days=30",
            None,
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::GET,
            "/v1/recommendations",
            "/v1/recommendations?scope=bad",
            None,
        )
        .await;
    assert_eq!(s, 400);

    // The ledger: streamed exports (CSV, not JSON), an empty import, a refused range.
    for (template, path) in [
        (
            "/v1/ledger/records",
            "/v1/ledger/records?from=2020-01-01T00:00:00Z&to=2020-02-01T00:00:00Z",
        ),
        (
            "/v1/ledger/rollups",
            "/v1/ledger/rollups?from=2020-01-01T00:00:00Z&to=2020-02-01T00:00:00Z&format=jsonl",
        ),
        ("/v1/ledger/import", "/v1/ledger/import?format=tollgate_csv"),
    ] {
        let method = if template.ends_with("import") {
            M::POST
        } else {
            M::GET
        };
        let (s, body) = c.call(&app, ADMIN, method, template, path, None).await;
        assert_eq!(s, 200, "{path}: {body}");
    }
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::GET,
            "/v1/ledger/records",
            "/v1/ledger/records?from=2020-02-01T00:00:00Z&to=2020-01-01T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(s, 400);

    // Anomalies over four weeks of imported history with a spike: a real, non-empty answer.
    let r = app
        .admin(M::POST, "/v1/ledger/import?format=tollgate_csv")
        .header("content-type", "text/csv")
        .body(support::history::spike_csv("team:anomaly", "gpt-4o", 20))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s, body) = c
        .call(&app, ADMIN, M::GET, "/v1/anomalies", "/v1/anomalies", None)
        .await;
    assert_eq!(s, 200, "{body}");
    assert!(!body["anomalies"].as_array().unwrap().is_empty(), "{body}");
    let (s, _) = c
        .call(
            &app,
            ADMIN,
            M::GET,
            "/v1/anomalies",
            "/v1/anomalies?scope=nope",
            None,
        )
        .await;
    assert_eq!(s, 400);

    c.assert_all_called();
    app.stop().await;
}

#[tokio::test]
async fn every_error_is_a_json_error_body() {
    let app = TestApp::memory().await;
    let get = |path: &str| app.http.get(app.url(path)).bearer_auth(ADMIN);
    let error = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
        let allow = r
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert!(ct.starts_with("application/json"), "{status}: {ct}");
        (
            status,
            body["error"]["code"].as_str().unwrap_or("").to_owned(),
            body,
            allow,
        )
    };

    // A path parameter that is not UTF-8 once decoded names the parameter.
    let (s, code, body, _) = error(get("/v1/budgets/%FF%FE").send().await.unwrap()).await;
    assert_eq!((s, code.as_str()), (400, "invalid_field"));
    assert_eq!(body["error"]["field"], "id");
    let (s, code, _, _) = error(get("/v1/usage/%FF").send().await.unwrap()).await;
    assert_eq!((s, code.as_str()), (400, "invalid_field"));

    // A method the route does not have: 405 with a body and the methods it has.
    let r = app
        .http
        .patch(app.url("/v1/budgets"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let (s, code, _, allow) = error(r).await;
    assert_eq!((s, code.as_str()), (405, "method_not_allowed"));
    let allow = allow.expect("Allow header");
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");

    // An unknown route.
    let (s, code, _, _) = error(get("/v1/nothing-here").send().await.unwrap()).await;
    assert_eq!((s, code.as_str()), (404, "not_found"));

    // The same bad scope is the same error in a path, a query and a body.
    let (s, code, body, _) = error(get("/v1/usage/squad:x").send().await.unwrap()).await;
    assert_eq!(
        (s, code.as_str(), body["error"]["field"].as_str()),
        (400, "invalid_field", Some("scope"))
    );
    let (s, code, body, _) = error(get("/v1/budgets?scope=squad:x").send().await.unwrap()).await;
    assert_eq!(
        (s, code.as_str(), body["error"]["field"].as_str()),
        (400, "invalid_field", Some("scope"))
    );
    let r = app
        .http
        .post(app.url("/v1/admission/reserve"))
        .bearer_auth(DATAPLANE)
        .json(&reserve_req("r1", &["team:a", "squad:x"], "gpt-4o", 1))
        .send()
        .await
        .unwrap();
    let (s, code, body, _) = error(r).await;
    assert_eq!(
        (s, code.as_str(), body["error"]["field"].as_str()),
        (400, "invalid_field", Some("scopes[1]"))
    );
    app.stop().await;
}

/// Schemas that say only "an object" (what the document used to give the budget, the wire
/// bodies, price entries and audit items) check nothing. Listed here are the only places where
/// an open object is the truth.
#[tokio::test]
async fn no_schema_in_the_document_is_an_opaque_object() {
    const OPEN_BY_DESIGN: &[&str] = &[
        // The admin's own request body, echoed as sent.
        "/components/schemas/AuditRecord/properties/detail",
    ];
    fn walk(v: &Value, at: &str, found: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                let is_object = o.get("type") == Some(&json!("object"))
                    || o.get("type")
                        .and_then(Value::as_array)
                        .is_some_and(|t| t.contains(&json!("object")));
                let described = [
                    "properties",
                    "additionalProperties",
                    "$ref",
                    "oneOf",
                    "allOf",
                    "anyOf",
                ]
                .iter()
                .any(|k| o.contains_key(*k));
                if is_object && !described && !OPEN_BY_DESIGN.contains(&at) {
                    found.push(at.to_owned());
                }
                for (k, child) in o {
                    walk(child, &format!("{at}/{}", k.replace('/', "~1")), found);
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    walk(child, &format!("{at}/{i}"), found);
                }
            }
            _ => {}
        }
    }
    let app = TestApp::memory().await;
    let c = Contract::fetch(&app).await;
    let mut found = Vec::new();
    walk(&c.doc, "", &mut found);
    assert!(found.is_empty(), "opaque object schemas: {found:#?}");
    app.stop().await;
}
