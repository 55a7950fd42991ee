//! Internal invoices: one payer (a team, or a customer written as any scope) and one period,
//! line items by model, an optional markup and fixed fee, billed pay-as-you-go or against a
//! prepaid credit.
//!
//! Rounding, the only place money is rounded here: each line's markup is
//! `cost × markup_pct / 100` rounded half away from zero to a whole nano-USD. Everything else
//! is an exact sum: a line's amount is its cost plus its markup, the subtotal is the sum of
//! the lines, the total is the subtotal plus the fee. Prepaid: the balance is the credit minus
//! the total, and what is due is the part of the total the credit does not cover.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use tollgate_model::NanoUsd;
use tollgate_model::scope::Scope;

use super::{AnalyticsError, Fact, TimeRange, Totals};

/// The rule printed on every invoice.
pub const ROUNDING_RULE: &str = "Amounts are exact in nano-USD (1e-9 USD). Each line's markup is rounded half away from zero to a whole nano-USD; all other figures are exact sums.";

/// Largest markup accepted, percent.
pub const MAX_MARKUP_PCT: u32 = 1000;

/// How the payer pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Billing {
    /// The whole total is due.
    PayAsYouGo,
    /// The total is drawn from a prepaid credit of this many nano-USD.
    Prepaid {
        /// Credit before this invoice.
        credit_nanos: i64,
    },
}

/// What an invoice is for and on what terms.
#[derive(Debug, Clone)]
pub struct InvoiceTerms {
    /// The payer: every call carrying this scope.
    pub payer: Scope,
    /// The period.
    pub range: TimeRange,
    /// The zone the period's dates are printed in.
    pub tz: Tz,
    /// Markup on each line, percent (0 for none), at most [`MAX_MARKUP_PCT`].
    pub markup_pct: Decimal,
    /// A fixed fee added once, nano-USD.
    pub fee_nanos: i64,
    /// The billing model.
    pub billing: Billing,
    /// When the invoice is issued (passed in: this module reads no clock).
    pub issued_at: DateTime<Utc>,
}

/// One model's line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InvoiceLine {
    /// The charged model.
    pub model: String,
    /// Its provider.
    pub provider: String,
    /// Calls.
    pub requests: u64,
    /// Input tokens of every kind (uncached, cached, cache writes).
    pub input_tokens: u64,
    /// Output tokens (reasoning included).
    pub output_tokens: u64,
    /// What the calls cost, nano-USD.
    pub cost_nanos: i64,
    /// The markup on it, nano-USD.
    pub markup_nanos: i64,
    /// `cost_nanos + markup_nanos`.
    pub amount_nanos: i64,
    /// `amount_nanos` as exact USD.
    pub amount_usd: String,
}

/// An invoice, as JSON and as the source of the HTML and PDF renderings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Invoice {
    /// `INV-<payer>-<period start, yyyymmdd>`: the same period and payer give the same number.
    pub number: String,
    /// The payer scope.
    pub payer: String,
    /// Period start, RFC 3339 in the invoice's zone.
    pub period_start: String,
    /// Period end (exclusive), RFC 3339 in the invoice's zone.
    pub period_end: String,
    /// The zone.
    pub timezone: String,
    /// Issue time, RFC 3339 in the invoice's zone.
    pub issued_at: String,
    /// Lines by model (highest amount first).
    pub lines: Vec<InvoiceLine>,
    /// Markup, percent (decimal string).
    pub markup_pct: String,
    /// Sum of the lines' amounts, nano-USD.
    pub subtotal_nanos: i64,
    /// Fixed fee, nano-USD.
    pub fee_nanos: i64,
    /// `subtotal_nanos + fee_nanos`.
    pub total_nanos: i64,
    /// `total_nanos` as exact USD.
    pub total_usd: String,
    /// `pay_as_you_go` or `prepaid`.
    pub billing: String,
    /// Prepaid: the credit before this invoice, nano-USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit_nanos: Option<i64>,
    /// Prepaid: credit minus total (negative when the credit ran out), nano-USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance_nanos: Option<i64>,
    /// What must be paid: the total (pay-as-you-go) or the part the credit does not cover.
    pub amount_due_nanos: i64,
    /// `amount_due_nanos` as exact USD.
    pub amount_due_usd: String,
    /// How amounts were rounded.
    pub rounding: String,
}

fn markup_of(cost: i64, pct: Decimal) -> Result<i64, AnalyticsError> {
    let m = Decimal::from(cost)
        .checked_mul(pct)
        .and_then(|x| x.checked_div(Decimal::ONE_HUNDRED))
        .ok_or(AnalyticsError::Overflow)?
        .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    i64::try_from(m).map_err(|_| AnalyticsError::Overflow)
}

fn add(a: i64, b: i64) -> Result<i64, AnalyticsError> {
    a.checked_add(b).ok_or(AnalyticsError::Overflow)
}

/// The invoice of `facts` on `terms`.
pub fn invoice(facts: &[Fact], terms: &InvoiceTerms) -> Result<Invoice, AnalyticsError> {
    if terms.markup_pct < Decimal::ZERO || terms.markup_pct > Decimal::from(MAX_MARKUP_PCT) {
        return Err(AnalyticsError::invalid(
            "markup_pct",
            format!("must be 0..={MAX_MARKUP_PCT}"),
        ));
    }
    if terms.fee_nanos < 0 {
        return Err(AnalyticsError::invalid("fee_usd", "must not be negative"));
    }
    let mut per_model: BTreeMap<(&str, &str), Totals> = BTreeMap::new();
    for f in facts {
        if terms.range.contains(f.at) && f.scopes.contains(&terms.payer) {
            per_model
                .entry((f.model.as_str(), f.provider.as_str()))
                .or_default()
                .add(&f.totals)?;
        }
    }
    let mut lines = Vec::with_capacity(per_model.len());
    let mut subtotal = 0i64;
    for ((model, provider), t) in per_model {
        let markup = markup_of(t.cost_nanos, terms.markup_pct)?;
        let amount = add(t.cost_nanos, markup)?;
        subtotal = add(subtotal, amount)?;
        let k = t.tokens;
        let input = [
            k.uncached_input,
            k.cached_input,
            k.cache_write_5m,
            k.cache_write_1h,
        ]
        .iter()
        .try_fold(0u64, |acc, &x| acc.checked_add(x))
        .ok_or(AnalyticsError::Overflow)?;
        lines.push(InvoiceLine {
            model: model.to_owned(),
            provider: provider.to_owned(),
            requests: t.requests,
            input_tokens: input,
            output_tokens: k.output,
            cost_nanos: t.cost_nanos,
            markup_nanos: markup,
            amount_nanos: amount,
            amount_usd: NanoUsd(amount).to_usd().to_string(),
        });
    }
    lines.sort_by(|a, b| {
        b.amount_nanos
            .cmp(&a.amount_nanos)
            .then_with(|| a.model.cmp(&b.model))
    });
    let total = add(subtotal, terms.fee_nanos)?;
    let (billing, credit, balance, due) = match terms.billing {
        Billing::PayAsYouGo => ("pay_as_you_go", None, None, total),
        Billing::Prepaid { credit_nanos } => {
            let balance = credit_nanos
                .checked_sub(total)
                .ok_or(AnalyticsError::Overflow)?;
            (
                "prepaid",
                Some(credit_nanos),
                Some(balance),
                (-balance).max(0),
            )
        }
    };
    let local = |t: DateTime<Utc>| t.with_timezone(&terms.tz);
    Ok(Invoice {
        number: format!(
            "INV-{}-{}",
            terms.payer.to_string().replace(':', "-"),
            local(terms.range.from).format("%Y%m%d")
        ),
        payer: terms.payer.to_string(),
        period_start: local(terms.range.from).to_rfc3339(),
        period_end: local(terms.range.to).to_rfc3339(),
        timezone: terms.tz.name().to_owned(),
        issued_at: local(terms.issued_at).to_rfc3339(),
        lines,
        markup_pct: terms.markup_pct.normalize().to_string(),
        subtotal_nanos: subtotal,
        fee_nanos: terms.fee_nanos,
        total_nanos: total,
        total_usd: NanoUsd(total).to_usd().to_string(),
        billing: billing.to_owned(),
        credit_nanos: credit,
        balance_nanos: balance,
        amount_due_nanos: due,
        amount_due_usd: NanoUsd(due).to_usd().to_string(),
        rounding: ROUNDING_RULE.to_owned(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::analytics::testing::{fact, utc};

    pub(crate) fn terms(markup: &str, fee: i64, billing: Billing) -> InvoiceTerms {
        InvoiceTerms {
            payer: "team:a".parse().unwrap(),
            range: TimeRange {
                from: utc("2026-02-28T23:00:00Z"),
                to: utc("2026-03-31T22:00:00Z"),
            },
            tz: chrono_tz::Europe::Berlin,
            markup_pct: markup.parse().unwrap(),
            fee_nanos: fee,
            billing,
            issued_at: utc("2026-04-01T08:00:00Z"),
        }
    }

    pub(crate) fn facts() -> Vec<Fact> {
        vec![
            fact("2026-03-01T10:00:00Z", &["team:a"], "gpt-4o", "openai", 3),
            fact(
                "2026-03-02T10:00:00Z",
                &["team:a", "user:x"],
                "gpt-4o",
                "openai",
                4,
            ),
            fact(
                "2026-03-03T10:00:00Z",
                &["team:a"],
                "claude-sonnet-4",
                "anthropic",
                12_500_000_000,
            ),
            fact(
                "2026-03-03T10:00:00Z",
                &["team:b"],
                "gpt-4o",
                "openai",
                1_000,
            ),
        ]
    }

    #[test]
    fn markup_is_rounded_per_line_and_the_total_is_the_exact_sum() {
        let inv = invoice(&facts(), &terms("12.5", 2_000_000_000, Billing::PayAsYouGo)).unwrap();
        let lines: Vec<_> = inv
            .lines
            .iter()
            .map(|l| {
                (
                    l.model.as_str(),
                    l.cost_nanos,
                    l.markup_nanos,
                    l.amount_nanos,
                )
            })
            .collect();
        // 7 × 12.5 % = 0.875 → 1 (half away from zero); 12.5 USD × 12.5 % = 1.5625 USD.
        assert_eq!(
            lines,
            vec![
                (
                    "claude-sonnet-4",
                    12_500_000_000,
                    1_562_500_000,
                    14_062_500_000
                ),
                ("gpt-4o", 7, 1, 8),
            ]
        );
        assert_eq!(inv.subtotal_nanos, 14_062_500_008);
        assert_eq!(inv.total_nanos, 16_062_500_008);
        assert_eq!(inv.total_usd, "16.062500008");
        assert_eq!(inv.amount_due_nanos, inv.total_nanos);
        assert_eq!(inv.period_start, "2026-03-01T00:00:00+01:00");
        assert_eq!(inv.number, "INV-team-a-20260301");
    }

    #[test]
    fn prepaid_credit_shows_the_balance_and_only_the_uncovered_part_is_due() {
        let inv = invoice(
            &facts(),
            &terms(
                "0",
                0,
                Billing::Prepaid {
                    credit_nanos: 10_000_000_000,
                },
            ),
        )
        .unwrap();
        assert_eq!(inv.total_nanos, 12_500_000_007);
        assert_eq!(inv.balance_nanos, Some(-2_500_000_007));
        assert_eq!(inv.amount_due_nanos, 2_500_000_007);
        let covered = invoice(
            &facts(),
            &terms(
                "0",
                0,
                Billing::Prepaid {
                    credit_nanos: 20_000_000_000,
                },
            ),
        )
        .unwrap();
        assert_eq!(covered.balance_nanos, Some(7_499_999_993));
        assert_eq!(covered.amount_due_nanos, 0);
    }

    #[test]
    fn a_markup_out_of_bounds_names_the_field() {
        let e = invoice(&facts(), &terms("1000.01", 0, Billing::PayAsYouGo)).unwrap_err();
        assert!(matches!(
            e,
            AnalyticsError::Invalid {
                field: "markup_pct",
                ..
            }
        ));
    }
}
