//! Chargeback: who pays for a period's spend, per team / project / org / user / tag (or
//! department, written as `tag:department=<name>`).
//!
//! Spend that carries no scope of the chosen kind is the **unallocated** row. Asked to share
//! it out, it is split over the other rows in proportion to their own spend, by the largest
//! remainder method: each row gets `⌊U·cᵢ/C⌋` nano-USD and the nano-USD left over go one each
//! to the rows with the largest remainders (ties by key), so the shares sum to `U` exactly.
//! The unallocated row then shows `-U` shared and a cost of zero; every total still equals
//! the sum of its rows. Requests and tokens are not shared (they were not theirs).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tollgate_model::NanoUsd;
use tollgate_model::scope::ScopeKind;

use super::{AnalyticsError, Fact, TimeRange, Totals};

/// What to do with spend that has no scope of the chosen kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Allocation {
    /// Show it as its own row.
    #[default]
    Unallocated,
    /// Share it out over the other rows in proportion to their spend.
    Proportional,
}

/// Who is charged: a scope kind, and for tags optionally only values with a prefix (the
/// prefix is cut from the row's key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeBy {
    /// The scope kind.
    pub kind: ScopeKind,
    /// Only tag values starting with this (`department=`).
    pub tag_prefix: Option<String>,
}

impl ChargeBy {
    /// Parses `by`: `team`, `project`, `org`, `user`, `key`, `tag`, or `department` (tags
    /// `department=<name>`). `tag_prefix` applies to `tag` only.
    pub fn parse(by: &str, tag_prefix: Option<&str>) -> Result<ChargeBy, AnalyticsError> {
        let (kind, prefix) = match by {
            "department" => (ScopeKind::Tag, Some("department=".to_owned())),
            other => match other.parse::<ScopeKind>() {
                Ok(
                    k @ (ScopeKind::Team
                    | ScopeKind::Project
                    | ScopeKind::Org
                    | ScopeKind::User
                    | ScopeKind::Key
                    | ScopeKind::Tag),
                ) => (k, None),
                _ => {
                    return Err(AnalyticsError::invalid(
                        "by",
                        format!(
                            "{other:?} is not one of team, project, department, tag, org, user, key"
                        ),
                    ));
                }
            },
        };
        match (tag_prefix, kind) {
            (Some(_), k) if k != ScopeKind::Tag || prefix.is_some() => Err(
                AnalyticsError::invalid("tag_prefix", "only applies to by=tag"),
            ),
            (Some(p), _) => Ok(ChargeBy {
                kind,
                tag_prefix: Some(p.to_owned()),
            }),
            (None, _) => Ok(ChargeBy {
                kind,
                tag_prefix: prefix,
            }),
        }
    }

    fn key_of(&self, f: &Fact) -> Option<String> {
        let mut values: Vec<&str> = f
            .values_of(self.kind)
            .filter_map(|v| match &self.tag_prefix {
                Some(p) => v.strip_prefix(p.as_str()),
                None => Some(v),
            })
            .collect();
        if values.is_empty() {
            return None;
        }
        values.sort_unstable();
        values.dedup();
        Some(values.join("+"))
    }
}

/// One payer's line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChargebackRow {
    /// The payer (`payments`; `a+b` for calls carrying both); `null` for the unallocated row.
    pub key: Option<String>,
    /// Spend carrying this key, nano-USD.
    pub direct_nanos: i64,
    /// Unallocated spend shared to this row (negative on the unallocated row), nano-USD.
    pub shared_nanos: i64,
    /// `direct_nanos + shared_nanos`: what this row is charged.
    pub cost_nanos: i64,
    /// `cost_nanos` as exact USD.
    pub cost_usd: String,
    /// Calls.
    pub requests: u64,
    /// Tokens by kind.
    pub tokens: super::Tokens,
}

/// A period's chargeback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Chargeback {
    /// Payers by cost (highest first), the unallocated row last (when there is spend without
    /// a key, or always in `proportional` mode so the shared amount shows).
    pub rows: Vec<ChargebackRow>,
    /// Whether unallocated spend was shared out (`proportional` with some allocated spend).
    pub shared: bool,
    /// The sum of every row's `cost_nanos`: the period's whole spend.
    pub total_nanos: i64,
    /// `total_nanos` as exact USD.
    pub total_usd: String,
}

/// Splits `amount` over `weights` in proportion, by largest remainder; the parts sum to
/// `amount` exactly. `None` when the weights sum to zero.
pub fn split_proportionally(amount: i64, weights: &[i64]) -> Option<Vec<i64>> {
    let total: i128 = weights.iter().map(|&w| i128::from(w.max(0))).sum();
    if total == 0 {
        return None;
    }
    let amount = i128::from(amount);
    let mut parts: Vec<i128> = Vec::with_capacity(weights.len());
    let mut remainders: Vec<(i128, usize)> = Vec::with_capacity(weights.len());
    for (i, &w) in weights.iter().enumerate() {
        let scaled = amount * i128::from(w.max(0));
        parts.push(scaled.div_euclid(total));
        remainders.push((scaled.rem_euclid(total), i));
    }
    let mut left = amount - parts.iter().sum::<i128>();
    // Largest remainder first; equal remainders in input order (callers sort by key).
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in remainders {
        if left == 0 {
            break;
        }
        parts[i] += 1;
        left -= 1;
    }
    // Each part is at most `amount` in size, which came from an i64.
    parts.into_iter().map(|p| i64::try_from(p).ok()).collect()
}

/// The chargeback of `facts` over `range`.
pub fn chargeback(
    facts: &[Fact],
    range: TimeRange,
    by: &ChargeBy,
    allocation: Allocation,
) -> Result<Chargeback, AnalyticsError> {
    let mut per_key: BTreeMap<Option<String>, Totals> = BTreeMap::new();
    for f in facts.iter().filter(|f| range.contains(f.at)) {
        per_key.entry(by.key_of(f)).or_default().add(&f.totals)?;
    }
    let unallocated = per_key.remove(&None);
    let keyed: Vec<(String, Totals)> = per_key
        .into_iter()
        .filter_map(|(k, t)| k.map(|k| (k, t)))
        .collect();
    let u_cost = unallocated.map_or(0, |t| t.cost_nanos);
    let weights: Vec<i64> = keyed.iter().map(|(_, t)| t.cost_nanos).collect();
    let shares = match allocation {
        Allocation::Proportional if u_cost != 0 => split_proportionally(u_cost, &weights),
        _ => None,
    };
    let row = |key: Option<String>, t: &Totals, shared: i64| -> Result<ChargebackRow, _> {
        let cost = t
            .cost_nanos
            .checked_add(shared)
            .ok_or(AnalyticsError::Overflow)?;
        Ok::<_, AnalyticsError>(ChargebackRow {
            key,
            direct_nanos: t.cost_nanos,
            shared_nanos: shared,
            cost_nanos: cost,
            cost_usd: NanoUsd(cost).to_usd().to_string(),
            requests: t.requests,
            tokens: t.tokens,
        })
    };
    let mut rows = Vec::with_capacity(keyed.len() + 1);
    for (i, (k, t)) in keyed.iter().enumerate() {
        let shared = shares.as_ref().and_then(|s| s.get(i).copied()).unwrap_or(0);
        rows.push(row(Some(k.clone()), t, shared)?);
    }
    rows.sort_by(|a, b| b.cost_nanos.cmp(&a.cost_nanos).then(a.key.cmp(&b.key)));
    let shared = shares.is_some();
    if unallocated.is_some() || allocation == Allocation::Proportional {
        let t = unallocated.unwrap_or_default();
        rows.push(row(None, &t, if shared { -t.cost_nanos } else { 0 })?);
    }
    let mut total = 0i64;
    for r in &rows {
        total = total
            .checked_add(r.cost_nanos)
            .ok_or(AnalyticsError::Overflow)?;
    }
    Ok(Chargeback {
        rows,
        shared,
        total_nanos: total,
        total_usd: NanoUsd(total).to_usd().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::testing::{fact, utc};

    fn march() -> TimeRange {
        TimeRange {
            from: utc("2026-03-01T00:00:00Z"),
            to: utc("2026-04-01T00:00:00Z"),
        }
    }

    fn facts() -> Vec<Fact> {
        vec![
            fact("2026-03-01T00:00:00Z", &["team:a"], "m", "p", 1),
            fact("2026-03-02T00:00:00Z", &["team:b"], "m", "p", 1),
            fact("2026-03-03T00:00:00Z", &["team:c"], "m", "p", 1),
            fact("2026-03-04T00:00:00Z", &["user:x"], "m", "p", 100),
            fact("2026-02-28T23:59:59Z", &["team:a"], "m", "p", 1000),
        ]
    }

    fn costs(c: &Chargeback) -> Vec<(Option<&str>, i64, i64, i64)> {
        c.rows
            .iter()
            .map(|r| {
                (
                    r.key.as_deref(),
                    r.direct_nanos,
                    r.shared_nanos,
                    r.cost_nanos,
                )
            })
            .collect()
    }

    #[test]
    fn spend_without_a_team_is_the_unallocated_row() {
        let by = ChargeBy::parse("team", None).unwrap();
        let c = chargeback(&facts(), march(), &by, Allocation::Unallocated).unwrap();
        assert_eq!(
            costs(&c),
            vec![
                (Some("a"), 1, 0, 1),
                (Some("b"), 1, 0, 1),
                (Some("c"), 1, 0, 1),
                (None, 100, 0, 100)
            ]
        );
        assert_eq!(c.total_nanos, 103);
        assert!(!c.shared);
    }

    #[test]
    fn proportional_sharing_of_100_over_three_equal_teams_sums_exactly() {
        let by = ChargeBy::parse("team", None).unwrap();
        let c = chargeback(&facts(), march(), &by, Allocation::Proportional).unwrap();
        // 100/3 = 33 r 1 each; the one nano left goes to the first by key.
        assert_eq!(
            costs(&c),
            vec![
                (Some("a"), 1, 34, 35),
                (Some("b"), 1, 33, 34),
                (Some("c"), 1, 33, 34),
                (None, 100, -100, 0)
            ]
        );
        assert_eq!(c.total_nanos, 103);
        assert!(c.shared);
    }

    #[test]
    fn largest_remainders_get_the_leftover_nanos() {
        // 10 over weights 1,2,4: exact 1.43, 2.86, 5.71 → 1, 2, 5 with 2 left: 2 (.86) and 4 (.71).
        assert_eq!(split_proportionally(10, &[1, 2, 4]), Some(vec![1, 3, 6]));
        assert_eq!(
            split_proportionally(i64::MAX, &[i64::MAX, 1])
                .map(|v| v.iter().map(|&x| i128::from(x)).sum::<i128>()),
            Some(i128::from(i64::MAX))
        );
        assert_eq!(split_proportionally(5, &[0, 0]), None);
    }

    #[test]
    fn departments_are_tags_with_the_department_prefix() {
        let facts = vec![
            fact(
                "2026-03-01T00:00:00Z",
                &["tag:department=finance", "tag:pii"],
                "m",
                "p",
                4,
            ),
            fact("2026-03-01T00:00:00Z", &["tag:pii"], "m", "p", 6),
        ];
        let by = ChargeBy::parse("department", None).unwrap();
        let c = chargeback(&facts, march(), &by, Allocation::Unallocated).unwrap();
        assert_eq!(costs(&c), vec![(Some("finance"), 4, 0, 4), (None, 6, 0, 6)]);
        assert!(ChargeBy::parse("model", None).is_err());
        assert!(ChargeBy::parse("team", Some("x")).is_err());
    }
}
