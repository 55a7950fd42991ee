use chrono::{TimeZone, Utc};
use tollgate_model::wire::v1::{LeaseRequest, LeaseReturn};

use super::*;
use crate::testing::FakeHost;

const T0: i64 = 1_793_534_400_000; // 2026-11-01T12:00:00Z

fn host() -> FakeHost {
    FakeHost::at(Utc.timestamp_millis_opt(T0).unwrap())
}

fn key() -> LeaseKey {
    LeaseKey {
        scopes: vec!["team:a".parse().unwrap(), "org:acme".parse().unwrap()],
        model: "gpt-4o".into(),
        provider: "openai".into(),
    }
}

fn granted(id: &str, usd: i64, requests: u64, until: i64) -> Vec<u8> {
    format!(
        r#"{{"lease":{{"lease_id":"{id}","usd":{usd},"requests":{requests},"admit_until_unix_ms":{until},"later_field":1}}}}"#
    )
    .into_bytes()
}

/// A book that wants `key()`, asked and granted `body` at `T0`.
fn leased(h: &FakeHost, body: &[u8]) -> Book {
    let mut book = Book::new(1);
    book.want(key(), T0);
    let posts = book.tick(h, T0);
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(
        book.answered(h, &posts[0].purpose, Some(200), body, T0),
        None
    );
    book
}

fn slot_of(h: &FakeHost) -> Slot {
    let text = key().text();
    slot::read(h, &LeaseKey::slot_name(&text), &text).unwrap()
}

#[test]
fn a_wanted_key_is_asked_for_once_across_workers_with_the_reserve_fields() {
    let h = host();
    let (mut one, mut two) = (Book::new(1), Book::new(2));
    one.want(key(), T0);
    two.want(key(), T0);
    let posts = one.tick(&h, T0);
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].path, "/v1/admission/lease");
    let asked: LeaseRequest = serde_json::from_slice(&posts[0].body).unwrap();
    assert_eq!(asked.scopes, key().scopes);
    assert_eq!(
        (asked.model.as_str(), asked.provider.as_str()),
        ("gpt-4o", "openai")
    );
    assert_eq!(asked.lease_id, None);
    assert!(!asked.holder.is_empty() && !asked.holder.contains(' '));
    assert!(
        two.tick(&h, T0).is_empty(),
        "the other worker waits for this ask"
    );
}

#[test]
fn calls_are_taken_from_a_lease_until_it_runs_out_and_never_twice_across_workers() {
    let h = host();
    let _book = leased(&h, &granted("l1@acme", 1_000, 3, T0 + 30_000));
    let text = key().text();
    let usd = NanoUsd(300);
    // Three calls fit (requests 3, 900 of 1000 nano-USD); a fourth does not.
    for _ in 0..3 {
        let taken = take(&h, &text, T0, usd, 50).unwrap();
        assert_eq!(taken.lease_id, "l1@acme");
        assert_eq!((taken.usd, taken.tokens), (usd, 50));
    }
    assert_eq!(take(&h, &text, T0, usd, 50), None);
    let s = slot_of(&h);
    assert_eq!(s.left.usd, Some(100));
    assert_eq!(s.left.requests, Some(0));
    assert_eq!(s.left.tokens, None, "no token limit: not checked");
}

#[test]
fn a_write_that_lost_a_race_is_retried_on_the_new_value() {
    let h = host();
    let _book = leased(&h, &granted("l1@acme", 1_000, 10, T0 + 30_000));
    let text = key().text();
    let name = LeaseKey::slot_name(&text);
    // Another worker takes between this one's read and its write: the CAS fails once and
    // the change is made again on what that worker left.
    let mut first = true;
    let out = slot::update(&h, &name, &text, |s| {
        if first {
            first = false;
            assert!(take(&h, &text, T0, NanoUsd(400), 1).is_some());
        }
        s.left.take(NanoUsd(400), 1);
        Some(())
    });
    assert!(out.is_some());
    assert_eq!(slot_of(&h).left.usd, Some(200));
}

#[test]
fn nothing_is_taken_from_a_lease_within_the_margin_before_its_end() {
    let h = host();
    let _book = leased(&h, &granted("l1@acme", 1_000, 3, T0 + 30_000));
    let text = key().text();
    assert!(take(&h, &text, T0 + 30_000 - ADMIT_MARGIN_MS - 1, NanoUsd(1), 1).is_some());
    assert_eq!(
        take(&h, &text, T0 + 30_000 - ADMIT_MARGIN_MS, NanoUsd(1), 1),
        None
    );
}

#[test]
fn a_lease_ending_soon_or_running_low_is_renewed_and_its_top_up_added() {
    let h = host();
    let mut book = leased(&h, &granted("l1@acme", 1_000, 100, T0 + 30_000));
    let text = key().text();
    assert!(
        book.tick(&h, T0 + 1_000).is_empty(),
        "plenty left, far from its end"
    );
    // Low water: under a quarter of the USD left.
    take(&h, &text, T0 + 1_000, NanoUsd(800), 1).unwrap();
    let posts = book.tick(&h, T0 + 2_000);
    let Purpose::Renew { lease_id, .. } = &posts[0].purpose else {
        panic!("{posts:?}")
    };
    assert_eq!(lease_id, "l1@acme");
    let asked: LeaseRequest = serde_json::from_slice(&posts[0].body).unwrap();
    assert_eq!(asked.lease_id.as_deref(), Some("l1@acme"));
    let top_up = granted("l1@acme", 500, 10, T0 + 60_000);
    assert_eq!(
        book.answered(&h, &posts[0].purpose, Some(200), &top_up, T0 + 2_000),
        None
    );
    let s = slot_of(&h);
    assert_eq!((s.left.usd, s.left.requests), (Some(700), Some(109)));
    assert_eq!(s.admit_until_ms, T0 + 60_000);
    // Ending soon: renewed again (the calls keep it in use).
    take(&h, &text, T0 + 55_000, NanoUsd(1), 1).unwrap();
    let posts = book.tick(&h, T0 + 55_000);
    assert!(
        matches!(posts[0].purpose, Purpose::Renew { .. }),
        "{posts:?}"
    );
}

#[test]
fn a_short_lease_is_renewed_when_a_third_of_its_term_is_left_not_on_every_tick() {
    // A control plane with `lease_ttl_secs = 3`: renewing 10 s before the end would renew
    // on every tick.
    let h = host();
    let mut book = leased(&h, &granted("l1@acme", 1_000, 100, T0 + 3_000));
    let text = key().text();
    take(&h, &text, T0 + 100, NanoUsd(1), 1).unwrap();
    assert!(book.tick(&h, T0 + 100).is_empty(), "{:?}", slot_of(&h));
    assert!(book.tick(&h, T0 + 999).is_empty());
    // A third of its term and the admission margin left.
    let posts = book.tick(&h, T0 + 1_001);
    assert!(
        matches!(
            posts[..],
            [Post {
                purpose: Purpose::Renew { .. },
                ..
            }]
        ),
        "{posts:?}"
    );
}

#[test]
fn a_renewal_answered_with_another_lease_replaces_it_and_returns_the_old_ones_rest() {
    let h = host();
    let mut book = leased(&h, &granted("l1@acme", 1_000, 100, T0 + 5_000));
    take(&h, &key().text(), T0, NanoUsd(100), 1).unwrap();
    // 2 s left of a 5 s term: renewed.
    let posts = book.tick(&h, T0 + 3_000);
    let back = book
        .answered(
            &h,
            &posts[0].purpose,
            Some(200),
            &granted("l2@acme", 2_000, 50, T0 + 33_000),
            T0 + 3_000,
        )
        .unwrap();
    assert_eq!(back.path, "/v1/admission/lease/return");
    let returned: LeaseReturn = serde_json::from_slice(&back.body).unwrap();
    assert_eq!(returned.lease_id, "l1@acme");
    assert_eq!(
        (returned.usd, returned.requests),
        (NanoUsd(900), 99),
        "what is left of the old one"
    );
    let s = slot_of(&h);
    assert_eq!(s.lease_id.as_deref(), Some("l2@acme"));
    assert_eq!(s.left.usd, Some(2_000));
}

#[test]
fn a_lease_granted_while_another_workers_is_in_place_is_returned_whole() {
    let h = host();
    let _book = leased(&h, &granted("l1@acme", 1_000, 100, T0 + 30_000));
    let mut late = Book::new(7);
    let purpose = Purpose::Ask { key: key().text() };
    let back = late
        .answered(
            &h,
            &purpose,
            Some(200),
            &granted("l9@acme", 500, 5, T0 + 30_000),
            T0,
        )
        .unwrap();
    let returned: LeaseReturn = serde_json::from_slice(&back.body).unwrap();
    assert_eq!(
        (returned.lease_id.as_str(), returned.usd),
        ("l9@acme", NanoUsd(500))
    );
    assert_eq!(slot_of(&h).lease_id.as_deref(), Some("l1@acme"));
}

#[test]
fn an_idle_lease_is_returned_with_what_is_left_and_admits_nothing_more() {
    let h = host();
    let mut book = leased(&h, &granted("l1@acme", 1_000, 100, T0 + 30_000));
    let text = key().text();
    take(&h, &text, T0 + 1, NanoUsd(250), 1).unwrap();
    assert!(
        book.tick(&h, T0 + IDLE_MS).is_empty(),
        "used {IDLE_MS} ms ago at most"
    );
    let posts = book.tick(&h, T0 + 1 + IDLE_MS);
    assert_eq!(posts.len(), 1);
    let returned: LeaseReturn = serde_json::from_slice(&posts[0].body).unwrap();
    assert_eq!(
        (returned.usd, returned.tokens, returned.requests),
        (NanoUsd(750), 0, 99)
    );
    assert_eq!(take(&h, &text, T0 + 2 + IDLE_MS, NanoUsd(1), 1), None);
    assert_eq!(book.keys(), 0, "the key is forgotten");
}

#[test]
fn no_lease_or_a_control_plane_without_leases_quiets_the_key_and_calls_are_reserved() {
    let h = host();
    let mut book = Book::new(1);
    book.want(key(), T0);
    let posts = book.tick(&h, T0);
    let refused = br#"{"no_lease":"exact"}"#;
    assert_eq!(
        book.answered(&h, &posts[0].purpose, Some(200), refused, T0),
        None
    );
    assert_eq!(take(&h, &key().text(), T0, NanoUsd(1), 1), None);
    book.want(key(), T0 + 1_000);
    assert!(book.tick(&h, T0 + QUIET_MS - 1).is_empty(), "quiet");
    let posts = book.tick(&h, T0 + QUIET_MS);
    assert_eq!(posts.len(), 1, "asked again after the quiet time");

    // An older control plane: 404, asked again only after a minute.
    let at = T0 + QUIET_MS;
    assert_eq!(
        book.answered(&h, &posts[0].purpose, Some(404), b"", at),
        None
    );
    book.want(key(), at + QUIET_UNKNOWN_MS - 2);
    assert!(book.tick(&h, at + QUIET_UNKNOWN_MS - 1).is_empty());
    // Nothing answered at all (a reset callout): the worker is free to ask again.
    let posts = book.tick(&h, at + QUIET_UNKNOWN_MS);
    assert_eq!(posts.len(), 1);
    let at = at + QUIET_UNKNOWN_MS;
    assert_eq!(book.answered(&h, &posts[0].purpose, None, b"", at), None);
    assert_eq!(slot_of(&h).busy_until_ms, 0);
}

#[test]
fn a_slot_reads_back_what_it_wrote_and_a_key_with_spaces_survives() {
    let s = Slot {
        lease_id: Some("l1@acme".into()),
        left: Amounts {
            usd: Some(-3),
            tokens: None,
            requests: Some(4),
        },
        granted: Amounts {
            usd: Some(10),
            tokens: Some(5),
            requests: None,
        },
        admit_until_ms: 9,
        term_ms: 3_000,
        last_used_ms: 8,
        busy_until_ms: 7,
        busy_by: 6,
        quiet_until_ms: 5,
        key: "team:a,|openai|a model name with spaces".into(),
    };
    assert_eq!(Slot::decode(&s.encode()), Some(s));
    assert_eq!(Slot::decode(b"L0 whatever"), None);
}
