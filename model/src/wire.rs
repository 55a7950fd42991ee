//! Messages between the filter and the control plane's data-plane API.
//!
//! Versioned by module: `v1` is served under `/v1/admission/…`. A new incompatible shape
//! gets a new module and path; the old one keeps working until every filter has moved.
//!
//! Within a version, messages evolve by adding optional fields, and every reader ignores
//! fields it does not know (protobuf's rule), so a rolling upgrade mixes releases without
//! losing a settlement: an older control plane reads a newer filter's settlement as far as it
//! knows it, a newer control plane reads an older filter's with the new fields at their
//! defaults. Releases before the ledger refused unknown fields; a newer filter whose settle
//! batch one of those answers 400 sends it again without the new fields (see
//! [`v1::Settlement::previous_release_form`]). Tests: `control-plane/tests/wire_versions.rs`.

/// Version 1 of the admission API.
pub mod v1 {
    use serde::{Deserialize, Serialize};

    mod lease;
    pub use lease::{
        LEASE_PATH, LEASE_RETURN_PATH, Lease, LeaseRequest, LeaseResponse, LeaseReturn,
        LeaseReturned, NoLeaseReason,
    };

    use crate::money::NanoUsd;
    use crate::pricing::CostBreakdown;
    use crate::scope::{FailMode, Scope};
    use crate::usage::Usage;

    /// `POST` path of [`ReserveRequest`].
    pub const RESERVE_PATH: &str = "/v1/admission/reserve";
    /// `POST` path of [`SettleBatch`].
    pub const SETTLE_PATH: &str = "/v1/admission/settle";
    /// Most settlements one batch may carry.
    pub const MAX_SETTLE_BATCH: usize = 1000;
    /// `GET` path of [`PriceOverrides`] (with `If-None-Match: "<version>"`: `304` while the
    /// set is unchanged).
    pub const PRICES_PATH: &str = "/v1/admission/prices";

    /// The control plane's price overrides, which the filter applies over its built-in table
    /// so that its estimates, response headers and metrics use the prices the control plane
    /// charges. Written as a price file (docs/prices.md) whose `table_version` is the set's
    /// version, so that the filter reads it with the parser its own table already needs
    /// (`pricing::read_price_set`); each entry is read as strictly as the file.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub struct PriceOverrides {
        /// The price file's schema version.
        pub schema_version: u32,
        /// The set's version: changes whenever the set changes; also the answer's `ETag`.
        pub table_version: String,
        /// Always `USD`.
        pub currency: String,
        /// The price file's default output cap (the filter keeps its own).
        pub default_max_output_tokens: u32,
        /// The entries, by model id.
        pub models: Vec<crate::pricing::ModelDto>,
    }

    /// Ask to reserve a call's worst-case cost against every budget that applies.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub struct ReserveRequest {
        /// Unique per call (Envoy's `x-request-id`); the reservation's and settlement's key.
        pub request_id: String,
        /// The caller's scopes.
        pub scopes: Vec<Scope>,
        /// The model asked for, as the client wrote it.
        pub model: String,
        /// The provider (`openai`, `anthropic`…).
        pub provider: String,
        /// Worst-case cost: estimated input plus the output cap, priced.
        pub estimated_cost: NanoUsd,
        /// Estimated input tokens (lets the control plane re-price a downgrade).
        pub estimated_input_tokens: u64,
        /// The output cap used in the estimate.
        pub max_output_tokens: u64,
        /// When the filter saw the call, Unix milliseconds.
        pub at_unix_ms: i64,
    }

    /// Why a call was refused.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "snake_case")]
    pub enum DenyReason {
        /// The USD limit would be passed.
        Usd,
        /// The token limit would be passed.
        Tokens,
        /// The request limit would be passed.
        Requests,
        /// The budget is suspended after an earlier excess.
        Suspended,
        /// An admin switched the scope to deny-all.
        Emergency,
        /// No price table knows the model, and the budget's unknown-model policy refuses
        /// such calls (a USD limit cannot be kept on a call that cannot be priced).
        UnknownModel,
        /// The control plane cannot reach its store, and this budget's fail mode is
        /// `closed`: nothing could be checked, so the call is refused (`retry_after_secs` 1).
        /// A filter older than this reason reads the answer as unusable and applies its own
        /// fail mode.
        StoreUnavailable,
    }

    /// The control plane's answer: an object whose `decision` names the variant, beside the
    /// variant's own fields (`{"decision":"deny","budget_id":…}`). Fields no decision has are
    /// ignored (a newer control plane may add some); a field of another decision is refused.
    ///
    /// Written as serde's internally tagged enum; read through `ReserveResponseFields`
    /// (the same JSON), because serde reads an internally tagged enum by buffering the whole
    /// object into its generic `Content` tree first, which made this one type a twentieth of
    /// the filter's `.wasm`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(
        tag = "decision",
        rename_all = "snake_case",
        try_from = "ReserveResponseFields"
    )]
    pub enum ReserveResponse {
        /// Go ahead; the estimate is reserved.
        Allow {
            /// Least USD left among the USD budgets that matched, after this reservation.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            remaining: Option<NanoUsd>,
            /// When set, cut the stream off once its running cost passes this amount.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            stream_cutoff: Option<NanoUsd>,
            /// Nothing was reserved: the control plane cannot reach its store and every
            /// budget the call matches fails open. The filter admits it as a fail-open call
            /// (settled later, unreserved). A filter older than this field ignores it and
            /// settles the call as reserved, which charges the same windows.
            #[serde(default, skip_serializing_if = "std::ops::Not::not")]
            unreserved: bool,
        },
        /// Send the call with `model` instead; the re-priced estimate is reserved.
        Downgrade {
            /// The budget that asked for it.
            budget_id: String,
            /// The cheaper model to use.
            model: String,
            /// Least USD left after this reservation.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            remaining: Option<NanoUsd>,
        },
        /// Refuse the call.
        Deny {
            /// The binding budget.
            budget_id: String,
            /// Which limit.
            reason: DenyReason,
            /// USD left in that budget's window (zero for non-USD reasons).
            remaining: NanoUsd,
            /// Seconds until that window ends (`retry-after`); `None` for total budgets.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            retry_after_secs: Option<i64>,
            /// The budget's fail mode (informative).
            fail_mode: FailMode,
        },
    }

    /// Which [`ReserveResponse`] an answer is.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Decision {
        Allow,
        Downgrade,
        Deny,
    }

    /// A [`ReserveResponse`] as read: every variant's fields side by side, each optional,
    /// then [`TryFrom`] checks that the fields present are exactly the named variant's (a
    /// field of another variant is refused, as an unknown field, and a missing required one
    /// too). Only `null` for a field another variant owns reads as absent. Fields no variant
    /// has are ignored.
    #[derive(Deserialize)]
    struct ReserveResponseFields {
        decision: Decision,
        #[serde(default)]
        remaining: Option<NanoUsd>,
        #[serde(default)]
        stream_cutoff: Option<NanoUsd>,
        #[serde(default)]
        unreserved: Option<bool>,
        #[serde(default)]
        budget_id: Option<String>,
        #[serde(default)]
        model: Option<String>,
        #[serde(default)]
        reason: Option<DenyReason>,
        #[serde(default)]
        retry_after_secs: Option<i64>,
        #[serde(default)]
        fail_mode: Option<FailMode>,
    }

    impl TryFrom<ReserveResponseFields> for ReserveResponse {
        type Error = String;

        fn try_from(f: ReserveResponseFields) -> Result<ReserveResponse, String> {
            let decision = match f.decision {
                Decision::Allow => "allow",
                Decision::Downgrade => "downgrade",
                Decision::Deny => "deny",
            };
            let required = |name: &str| format!("missing field `{name}` for decision `{decision}`");
            let foreign = [
                ("stream_cutoff", f.stream_cutoff.is_some()),
                ("unreserved", f.unreserved.is_some()),
                ("budget_id", f.budget_id.is_some()),
                ("model", f.model.is_some()),
                ("reason", f.reason.is_some()),
                ("retry_after_secs", f.retry_after_secs.is_some()),
                ("fail_mode", f.fail_mode.is_some()),
            ];
            // The fields each decision may carry besides `remaining` (which all may).
            let own: &[&str] = match f.decision {
                Decision::Allow => &["stream_cutoff", "unreserved"],
                Decision::Downgrade => &["budget_id", "model"],
                Decision::Deny => &["budget_id", "reason", "retry_after_secs", "fail_mode"],
            };
            if let Some((name, _)) = foreign
                .iter()
                .find(|(name, present)| *present && !own.contains(name))
            {
                return Err(format!("unknown field `{name}` for decision `{decision}`"));
            }
            Ok(match f.decision {
                Decision::Allow => ReserveResponse::Allow {
                    remaining: f.remaining,
                    stream_cutoff: f.stream_cutoff,
                    unreserved: f.unreserved.unwrap_or(false),
                },
                Decision::Downgrade => ReserveResponse::Downgrade {
                    budget_id: f.budget_id.ok_or_else(|| required("budget_id"))?,
                    model: f.model.ok_or_else(|| required("model"))?,
                    remaining: f.remaining,
                },
                Decision::Deny => ReserveResponse::Deny {
                    budget_id: f.budget_id.ok_or_else(|| required("budget_id"))?,
                    reason: f.reason.ok_or_else(|| required("reason"))?,
                    remaining: f.remaining.ok_or_else(|| required("remaining"))?,
                    retry_after_secs: f.retry_after_secs,
                    fail_mode: f.fail_mode.ok_or_else(|| required("fail_mode"))?,
                },
            })
        }
    }

    /// One call's final charge. The fields after `at_unix_ms` came with the ledger: optional,
    /// left out when unset, so that a settlement without them is byte for byte what the
    /// previous release sent.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub struct Settlement {
        /// The same id as the reservation.
        pub request_id: String,
        /// The caller's scopes (charged directly when there was no reservation).
        pub scopes: Vec<Scope>,
        /// The model that was actually called (after any downgrade).
        pub model: String,
        /// The provider.
        pub provider: String,
        /// The exact cost.
        pub cost: NanoUsd,
        /// The usage it was priced from (with its `estimated` flag).
        pub usage: Usage,
        /// Whether a reservation was made for it (false after a fail-open admission).
        pub reserved: bool,
        /// When the call ended, Unix milliseconds.
        pub at_unix_ms: i64,
        /// When the call began (its reservation), Unix milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub started_at_unix_ms: Option<i64>,
        /// The model the client asked for, when a downgrade changed it (`model` is the one
        /// called).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub requested_model: Option<String>,
        /// The budget (or `emergency:<scope>` switch) that asked for the downgrade.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub downgraded_by: Option<String>,
        /// The provider API (`chat_completions`, `messages`…).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub api: Option<String>,
        /// The cost by priced dimension (sums to `cost`), when the filter priced the call.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub breakdown: Option<CostBreakdown>,
        /// The stream was cut off mid-way by a budget's cut-off.
        #[serde(default, skip_serializing_if = "is_false")]
        pub cut_off: bool,
        /// Whether the call is billed: `false` for one the provider does not bill (an error
        /// answer, a call refused or never answered, releasing its reservation), settled at 0
        /// whatever its usage; `true` for any other, priced from its usage even when the
        /// filter's `cost` is 0 (a model only the control plane prices). Absent from filters
        /// older than this field: the control plane then takes a cost of 0 with estimated or
        /// no usage as not billed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub billed: Option<bool>,
        /// The lease the call was admitted from ([`Lease::lease_id`]), when the filter
        /// admitted it locally instead of reserving it (send `reserved: true` with it: the
        /// lease covered it). The control plane charges the call as usual (idempotently by
        /// `request_id`) and takes what the call took from the lease off the lease's hold.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub lease_id: Option<String>,
        /// What the call took from the lease's USD (its estimate at admission). Absent: its
        /// `cost`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub lease_usd: Option<NanoUsd>,
        /// What the call took from the lease's tokens. Absent: its usage's total tokens.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub lease_tokens: Option<u64>,
    }

    fn is_false(b: &bool) -> bool {
        !*b
    }

    impl Settlement {
        /// This settlement as the previous release's control plane reads it: the fields it
        /// does not know left out (it refused unknown fields). The charge is the same.
        pub fn previous_release_form(&self) -> Settlement {
            Settlement {
                started_at_unix_ms: None,
                requested_model: None,
                downgraded_by: None,
                api: None,
                breakdown: None,
                cut_off: false,
                billed: None,
                // That release granted no lease, so none of its calls came from one.
                lease_id: None,
                lease_usd: None,
                lease_tokens: None,
                // The parts and fees this release reads are left out (that release refused
                // them); the cost already charges them, and the parts stay in their totals.
                usage: Usage {
                    audio_input_tokens: 0,
                    audio_output_tokens: 0,
                    web_searches: 0,
                    ..self.usage
                },
                ..self.clone()
            }
        }
    }

    /// Settlements posted together.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub struct SettleBatch {
        /// At most [`MAX_SETTLE_BATCH`].
        pub settlements: Vec<Settlement>,
    }

    /// What the control plane did with a batch. Replays are counted, never charged twice.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub struct SettleResponse {
        /// Settlements charged now.
        pub applied: u32,
        /// Settlements already charged earlier (same request id).
        pub duplicates: u32,
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn decisions_are_tagged() {
            let deny = ReserveResponse::Deny {
                budget_id: "team-a".into(),
                reason: DenyReason::Usd,
                remaining: NanoUsd(5),
                retry_after_secs: Some(60),
                fail_mode: FailMode::Closed,
            };
            let json = serde_json::to_string(&deny).unwrap();
            assert_eq!(
                json,
                r#"{"decision":"deny","budget_id":"team-a","reason":"usd","remaining":5,"retry_after_secs":60,"fail_mode":"closed"}"#
            );
            assert_eq!(
                serde_json::from_str::<ReserveResponse>(&json).unwrap(),
                deny
            );
            let allow: ReserveResponse = serde_json::from_str(r#"{"decision":"allow"}"#).unwrap();
            assert_eq!(
                allow,
                ReserveResponse::Allow {
                    remaining: None,
                    stream_cutoff: None,
                    unreserved: false,
                }
            );
        }

        #[test]
        fn every_decision_reads_back_what_it_writes() {
            let answers = [
                ReserveResponse::Allow {
                    remaining: None,
                    stream_cutoff: None,
                    unreserved: false,
                },
                ReserveResponse::Allow {
                    remaining: Some(NanoUsd(7)),
                    stream_cutoff: Some(NanoUsd(3)),
                    unreserved: false,
                },
                ReserveResponse::Allow {
                    remaining: None,
                    stream_cutoff: None,
                    unreserved: true,
                },
                ReserveResponse::Deny {
                    budget_id: "team-a".into(),
                    reason: DenyReason::StoreUnavailable,
                    remaining: NanoUsd(0),
                    retry_after_secs: Some(1),
                    fail_mode: FailMode::Closed,
                },
                ReserveResponse::Downgrade {
                    budget_id: "b".into(),
                    model: "gpt-4o-mini".into(),
                    remaining: Some(NanoUsd(9)),
                },
                ReserveResponse::Downgrade {
                    budget_id: "b".into(),
                    model: "gpt-4o-mini".into(),
                    remaining: None,
                },
                ReserveResponse::Deny {
                    budget_id: "team-a".into(),
                    reason: DenyReason::Requests,
                    remaining: NanoUsd(0),
                    retry_after_secs: None,
                    fail_mode: FailMode::Open,
                },
            ];
            for answer in answers {
                let json = serde_json::to_string(&answer).unwrap();
                assert_eq!(
                    serde_json::from_str::<ReserveResponse>(&json).unwrap(),
                    answer,
                    "{json}"
                );
            }
        }

        #[test]
        fn the_decision_may_come_after_its_fields() {
            let json = r#"{"model":"m","remaining":1,"budget_id":"b","decision":"downgrade"}"#;
            assert_eq!(
                serde_json::from_str::<ReserveResponse>(json).unwrap(),
                ReserveResponse::Downgrade {
                    budget_id: "b".into(),
                    model: "m".into(),
                    remaining: Some(NanoUsd(1)),
                }
            );
        }

        #[test]
        fn answers_with_foreign_missing_or_unknown_fields_are_refused() {
            for json in [
                // A field of another decision.
                r#"{"decision":"allow","budget_id":"b"}"#,
                r#"{"decision":"allow","model":"m"}"#,
                r#"{"decision":"downgrade","budget_id":"b","model":"m","stream_cutoff":1}"#,
                r#"{"decision":"downgrade","budget_id":"b","model":"m","reason":"usd"}"#,
                r#"{"decision":"deny","budget_id":"b","reason":"usd","remaining":0,"fail_mode":"open","model":"m"}"#,
                // A required field missing.
                r#"{"decision":"downgrade","budget_id":"b"}"#,
                r#"{"decision":"deny","budget_id":"b","reason":"usd","fail_mode":"open"}"#,
                r#"{"decision":"deny","budget_id":"b","remaining":0,"fail_mode":"open"}"#,
                r#"{"decision":"deny","reason":"usd","remaining":0,"fail_mode":"open"}"#,
                r#"{"decision":"deny","budget_id":"b","reason":"usd","remaining":0}"#,
                // No decision, or an unknown one.
                r#"{"remaining":1}"#,
                r#"{"decision":"maybe"}"#,
                r#"{"decision":null}"#,
                // Wrong types.
                r#"{"decision":"allow","remaining":"1"}"#,
                r#"{"decision":"deny","budget_id":"b","reason":"usd","remaining":-1.5,"fail_mode":"open"}"#,
                r#"[]"#,
            ] {
                assert!(
                    serde_json::from_str::<ReserveResponse>(json).is_err(),
                    "{json}"
                );
            }
        }

        #[test]
        fn fields_no_release_knows_are_ignored_and_foreign_ones_still_refused() {
            let allow: ReserveResponse =
                serde_json::from_str(r#"{"decision":"allow","next_release":{"x":1}}"#).unwrap();
            assert_eq!(
                allow,
                ReserveResponse::Allow {
                    remaining: None,
                    stream_cutoff: None,
                    unreserved: false,
                }
            );
            let r: SettleResponse =
                serde_json::from_str(r#"{"applied":1,"duplicates":0,"later":true}"#).unwrap();
            assert_eq!(r.applied, 1);
        }

        #[test]
        fn settlements_round_trip() {
            let s = Settlement {
                request_id: "r1".into(),
                scopes: vec!["team:a".parse().unwrap()],
                model: "gpt-4o".into(),
                provider: "openai".into(),
                cost: NanoUsd(1234),
                usage: Usage {
                    output_tokens: 3,
                    ..Usage::default()
                },
                reserved: true,
                at_unix_ms: 1,
                started_at_unix_ms: None,
                requested_model: None,
                downgraded_by: None,
                api: None,
                breakdown: None,
                cut_off: false,
                billed: Some(true),
                lease_id: Some("0123456789abcdef0123456789abcdef@acme".into()),
                lease_usd: Some(NanoUsd(2000)),
                lease_tokens: Some(40),
            };
            let batch = SettleBatch {
                settlements: vec![s],
            };
            let json = serde_json::to_string(&batch).unwrap();
            assert_eq!(serde_json::from_str::<SettleBatch>(&json).unwrap(), batch);
        }
    }
}
