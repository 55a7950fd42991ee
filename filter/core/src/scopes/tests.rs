use std::collections::HashMap;

use super::*;

fn resolver(json: &str) -> Result<ScopeResolver, ScopeConfigError> {
    ScopeResolver::try_from(serde_json::from_str::<ScopeConfigDto>(json).unwrap())
}

fn resolve(r: &ScopeResolver, headers: &[(&str, &str)], props: &[(&str, &str)]) -> (Resolved, u32) {
    let headers: HashMap<&str, &str> = headers.iter().copied().collect();
    let props: HashMap<&str, &str> = props.iter().copied().collect();
    r.resolve(&mut |l| match l {
        Lookup::Header(h) => headers.get(h).map(|v| (*v).to_owned()),
        Lookup::Property(p) => props.get(p.join(".").as_str()).map(|v| (*v).to_owned()),
    })
}

fn scopes(r: (Resolved, u32)) -> Vec<String> {
    match r.0 {
        Resolved::Scopes(s) => s.iter().map(ToString::to_string).collect(),
        Resolved::Deny => vec!["DENY".into()],
    }
}

const SOURCES: &str = r#"{"sources":[
    {"kind":"team","header":"X-Tollgate-Team"},
    {"kind":"key","api_key":true},
    {"kind":"org","property":["metadata","filter_metadata","envoy.filters.http.jwt_authn","jwt_payload","org"]},
    {"kind":"project","property":["xds","route_name"]},
    {"kind":"tag","value":"env:prod"}]}"#;

#[test]
fn every_source_adds_its_scope() {
    let r = resolver(SOURCES).unwrap();
    let got = scopes(resolve(
        &r,
        &[
            ("x-tollgate-team", "payments"),
            ("authorization", "Bearer sk-test-123"),
        ],
        &[
            (
                "metadata.filter_metadata.envoy.filters.http.jwt_authn.jwt_payload.org",
                "acme",
            ),
            ("xds.route_name", "chat"),
        ],
    ));
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(got[0], "team:payments");
    assert!(
        got[1].starts_with("key:") && got[1].len() == 4 + 16,
        "{got:?}"
    );
    assert_eq!(&got[2..], ["org:acme", "project:chat", "tag:env:prod"]);
}

#[test]
fn the_api_key_is_only_ever_a_hash_and_the_same_key_gives_the_same_scope() {
    let r = resolver(r#"{"sources":[{"kind":"key","api_key":true}]}"#).unwrap();
    let a = scopes(resolve(
        &r,
        &[("authorization", "Bearer sk-secret-value")],
        &[],
    ));
    let b = scopes(resolve(&r, &[("x-api-key", "sk-secret-value")], &[]));
    assert_eq!(a, b, "Bearer prefix and header name do not change the hash");
    assert!(!a[0].contains("secret"));
    // sha256("sk-secret-value"), first 16 hex digits.
    assert_eq!(
        a[0],
        format!("key:{}", &hex_sha256("sk-secret-value")[..16])
    );
}

fn hex_sha256(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn a_request_without_scopes_follows_when_none() {
    assert_eq!(
        scopes(resolve(
            &resolver(
                SOURCES
                    .replace(
                        r#",
    {"kind":"tag","value":"env:prod"}"#,
                        ""
                    )
                    .as_str()
            )
            .unwrap(),
            &[],
            &[]
        )),
        ["global"]
    );
    let r = resolver(r#"{"sources":[{"kind":"team","header":"x-team"}],"when_none":{"default":"team:unassigned"}}"#).unwrap();
    assert_eq!(scopes(resolve(&r, &[], &[])), ["team:unassigned"]);
    let r =
        resolver(r#"{"sources":[{"kind":"team","header":"x-team"}],"when_none":"deny"}"#).unwrap();
    assert_eq!(scopes(resolve(&r, &[], &[])), ["DENY"]);
    assert_eq!(scopes(resolve(&r, &[("x-team", "a")], &[])), ["team:a"]);
}

#[test]
fn values_that_are_not_valid_scopes_are_skipped_and_counted() {
    let r = resolver(
        r#"{"sources":[{"kind":"team","header":"x-team"},{"kind":"user","header":"x-user"}]}"#,
    )
    .unwrap();
    let (resolved, rejected) = resolve(&r, &[("x-team", "has space"), ("x-user", "ana")], &[]);
    assert_eq!(scopes((resolved, rejected)), ["user:ana"]);
    assert_eq!(rejected, 1);
}

#[test]
fn bad_sources_are_refused_naming_the_field() {
    let e = resolver(r#"{"sources":[{"kind":"team"}]}"#).unwrap_err();
    assert_eq!(e.field, "scopes.sources[0]");
    let e = resolver(r#"{"sources":[{"kind":"team","header":"a","api_key":true}]}"#).unwrap_err();
    assert_eq!(e.field, "scopes.sources[0]");
    let e = resolver(r#"{"sources":[{"kind":"global","value":"x"}]}"#).unwrap_err();
    assert!(e.reason.contains("global"));
    let e = resolver(r#"{"when_none":{"default":"squad:x"}}"#).unwrap_err();
    assert_eq!(e.field, "scopes.when_none.default");
}
