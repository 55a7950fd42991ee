//! Messages between the filter and the control plane's data-plane API.
//!
//! Versioned by module: `v1` is served under `/v1/admission/…`. A new incompatible shape
//! gets a new module and path; the old one keeps working until every filter has moved.

/// Version 1 of the admission API.
pub mod v1 {
    use serde::{Deserialize, Serialize};

    use crate::money::NanoUsd;
    use crate::scope::{FailMode, Scope};
    use crate::usage::Usage;

    /// `POST` path of [`ReserveRequest`].
    pub const RESERVE_PATH: &str = "/v1/admission/reserve";
    /// `POST` path of [`SettleBatch`].
    pub const SETTLE_PATH: &str = "/v1/admission/settle";
    /// Most settlements one batch may carry.
    pub const MAX_SETTLE_BATCH: usize = 1000;

    /// Ask to reserve a call's worst-case cost against every budget that applies.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
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
    }

    /// The control plane's answer.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(tag = "decision", rename_all = "snake_case", deny_unknown_fields)]
    pub enum ReserveResponse {
        /// Go ahead; the estimate is reserved.
        Allow {
            /// Least USD left among the USD budgets that matched, after this reservation.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            remaining: Option<NanoUsd>,
            /// When set, cut the stream off once its running cost passes this amount.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            stream_cutoff: Option<NanoUsd>,
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

    /// One call's final charge.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
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
    }

    /// Settlements posted together.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SettleBatch {
        /// At most [`MAX_SETTLE_BATCH`].
        pub settlements: Vec<Settlement>,
    }

    /// What the control plane did with a batch. Replays are counted, never charged twice.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
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
                    stream_cutoff: None
                }
            );
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
            };
            let batch = SettleBatch {
                settlements: vec![s],
            };
            let json = serde_json::to_string(&batch).unwrap();
            assert_eq!(serde_json::from_str::<SettleBatch>(&json).unwrap(), batch);
        }
    }
}
