//! Spend reports: facts filtered, grouped by any scope kinds, model and provider, summed per
//! calendar bucket, optionally cut to the top N groups with the rest in one "other" row.
//!
//! Rules that keep the numbers honest:
//! - the report's total is the checked sum of its rows, so it equals them exactly;
//! - a fact without a scope of a grouped kind goes to that kind's `null` group;
//! - a fact with several values of a grouped kind (two tags) goes to one group named by
//!   the values joined with `+` (`a+b`), so nothing is counted twice;
//! - top-N ranks groups by their cost over the whole range (ties by name), the same groups
//!   in every bucket.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use tollgate_model::NanoUsd;
use tollgate_model::scope::{Scope, ScopeKind};

use super::buckets::{Bucket, Bucketer};
use super::{AnalyticsError, Fact, TimeRange, Totals};

/// What rows can be grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupKey {
    /// The value of a scope kind (`team`, `project`, `tag`…).
    Scope(ScopeKind),
    /// The charged model.
    Model,
    /// The provider.
    Provider,
}

impl GroupKey {
    /// The name used in queries and in each row's `group` object.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupKey::Scope(k) => k.as_str(),
            GroupKey::Model => "model",
            GroupKey::Provider => "provider",
        }
    }

    /// Parses a comma-separated `group_by` list; duplicates and unknown keys are errors.
    pub fn parse_list(s: &str) -> Result<Vec<GroupKey>, AnalyticsError> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let key = match part {
                "model" => GroupKey::Model,
                "provider" => GroupKey::Provider,
                other => match other.parse::<ScopeKind>() {
                    // `global` has no value to group by, and `model`/`provider` scopes are
                    // the same as grouping by the call's own model and provider.
                    Ok(k) if !matches!(k, ScopeKind::Global) => GroupKey::Scope(k),
                    _ => {
                        return Err(AnalyticsError::invalid(
                            "group_by",
                            format!(
                                "unknown key {other:?}: use org, team, project, user, key, tag, model or provider"
                            ),
                        ));
                    }
                },
            };
            if out.contains(&key) {
                return Err(AnalyticsError::invalid(
                    "group_by",
                    format!("{part:?} is named twice"),
                ));
            }
            out.push(key);
        }
        Ok(out)
    }
}

/// Which facts a report counts. Empty lists admit everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// The fact must carry every one of these scopes.
    pub scopes: Vec<Scope>,
    /// The fact's model must be one of these.
    pub models: Vec<String>,
    /// The fact's provider must be one of these.
    pub providers: Vec<String>,
}

impl Filter {
    /// Whether `f` passes.
    pub fn admits(&self, f: &Fact) -> bool {
        self.scopes.iter().all(|s| f.scopes.contains(s))
            && (self.models.is_empty() || self.models.contains(&f.model))
            && (self.providers.is_empty() || self.providers.contains(&f.provider))
    }
}

/// A report's parameters, validated by the caller's parsing.
#[derive(Debug, Clone)]
pub struct ReportQuery {
    /// The time range.
    pub range: TimeRange,
    /// The zone buckets follow.
    pub tz: Tz,
    /// The bucket, or `None` for one row per group over the whole range.
    pub bucket: Option<Bucket>,
    /// Grouping keys, in order (may be empty: one row per bucket).
    pub group_by: Vec<GroupKey>,
    /// Filters.
    pub filter: Filter,
    /// Keep the N costliest groups; the rest become one "other" row per bucket.
    pub top: Option<usize>,
    /// Most rows the report may have; past it the report is refused with what to narrow.
    pub max_rows: usize,
}

/// One row of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportRow {
    /// Start of the row's bucket, RFC 3339 in the report's zone; absent without buckets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_start: Option<String>,
    /// The group: each `group_by` key and its value (`null`: the calls had none).
    pub group: BTreeMap<String, Option<String>>,
    /// True for the row that sums every group outside the top N.
    pub other: bool,
    /// `cost_nanos` as exact USD.
    pub cost_usd: String,
    /// Cost, requests, tokens.
    #[serde(flatten)]
    pub totals: Totals,
}

/// A report: its rows and their exact sum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Report {
    /// Rows by bucket, then by cost (highest first), the "other" row last in its bucket.
    pub rows: Vec<ReportRow>,
    /// The sum of every row.
    pub total: Totals,
    /// `total.cost_nanos` as exact USD.
    pub total_usd: String,
}

type GroupValues<'a> = Vec<Option<Cow<'a, str>>>;

fn group_of<'a>(f: &'a Fact, keys: &[GroupKey]) -> GroupValues<'a> {
    keys.iter()
        .map(|k| match k {
            GroupKey::Model => Some(Cow::Borrowed(f.model.as_str())),
            GroupKey::Provider => Some(Cow::Borrowed(f.provider.as_str())),
            GroupKey::Scope(kind) => {
                let mut values = f.values_of(*kind);
                let first = values.next()?;
                match values.next() {
                    None => Some(Cow::Borrowed(first)),
                    Some(second) => {
                        let mut all: Vec<&str> = vec![first, second];
                        all.extend(values);
                        all.sort_unstable();
                        Some(Cow::Owned(all.join("+")))
                    }
                }
            }
        })
        .collect()
}

/// Builds the report of `facts` (any order) for `q`.
pub fn spend_report(facts: &[Fact], q: &ReportQuery) -> Result<Report, AnalyticsError> {
    let mut bucketer = q.bucket.map(|b| Bucketer::new(b, q.tz));
    let mut cells: HashMap<(Option<DateTime<Utc>>, GroupValues<'_>), Totals> = HashMap::new();
    let mut per_group: HashMap<GroupValues<'_>, i64> = HashMap::new();
    for f in facts {
        if !q.range.contains(f.at) || !q.filter.admits(f) {
            continue;
        }
        let bucket = bucketer.as_mut().map(|b| b.start_of(f.at));
        let group = group_of(f, &q.group_by);
        if q.top.is_some() {
            let g = per_group.entry(group.clone()).or_default();
            *g = g
                .checked_add(f.totals.cost_nanos)
                .ok_or(AnalyticsError::Overflow)?;
        }
        cells.entry((bucket, group)).or_default().add(&f.totals)?;
    }

    // Top N: the groups kept, by cost over the whole range (ties by name).
    let kept: Option<Vec<GroupValues<'_>>> = q.top.map(|n| {
        let mut ranked: Vec<(GroupValues<'_>, i64)> = per_group.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ranked.into_iter().take(n).map(|(g, _)| g).collect()
    });
    let mut folded: BTreeMap<(Option<DateTime<Utc>>, bool, GroupValues<'_>), Totals> =
        BTreeMap::new();
    for ((bucket, group), t) in cells {
        let is_other = kept.as_ref().is_some_and(|k| !k.contains(&group));
        let group = if is_other { Vec::new() } else { group };
        folded
            .entry((bucket, is_other, group))
            .or_default()
            .add(&t)?;
    }
    if folded.len() > q.max_rows {
        return Err(AnalyticsError::invalid(
            "group_by",
            format!(
                "the report would have {} rows (at most {}): narrow it with top, filters, a coarser bucket or a shorter range",
                folded.len(),
                q.max_rows
            ),
        ));
    }

    let mut total = Totals::default();
    let mut rows = Vec::with_capacity(folded.len());
    for ((bucket, other, values), t) in folded {
        total.add(&t)?;
        let group = q
            .group_by
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let v = if other {
                    None
                } else {
                    values.get(i).cloned().flatten().map(Cow::into_owned)
                };
                (k.as_str().to_owned(), v)
            })
            .collect();
        rows.push(ReportRow {
            bucket_start: bucket.map(|b| b.with_timezone(&q.tz).to_rfc3339()),
            group,
            other,
            cost_usd: NanoUsd(t.cost_nanos).to_usd().to_string(),
            totals: t,
        });
    }
    // Rows came bucket-ordered from the map; within a bucket, costliest first.
    sort_within_buckets(&mut rows);
    Ok(Report {
        total_usd: NanoUsd(total.cost_nanos).to_usd().to_string(),
        rows,
        total,
    })
}

/// Sorts each run of rows with the same bucket by cost (highest first), then group, with the
/// "other" row last.
fn sort_within_buckets(rows: &mut [ReportRow]) {
    let mut start = 0;
    while start < rows.len() {
        let mut end = start + 1;
        while end < rows.len() && rows[end].bucket_start == rows[start].bucket_start {
            end += 1;
        }
        rows[start..end].sort_by(|a, b| {
            a.other
                .cmp(&b.other)
                .then_with(|| b.totals.cost_nanos.cmp(&a.totals.cost_nanos))
                .then_with(|| a.group.cmp(&b.group))
        });
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::testing::{fact, utc};

    fn query(group_by: &str, bucket: Option<Bucket>, top: Option<usize>) -> ReportQuery {
        ReportQuery {
            range: TimeRange {
                from: utc("2026-03-01T00:00:00Z"),
                to: utc("2026-04-01T00:00:00Z"),
            },
            tz: chrono_tz::UTC,
            bucket,
            group_by: GroupKey::parse_list(group_by).unwrap(),
            filter: Filter::default(),
            top,
            max_rows: 1000,
        }
    }

    fn sample() -> Vec<Fact> {
        vec![
            fact(
                "2026-03-01T10:00:00Z",
                &["team:a"],
                "gpt-4o",
                "openai",
                1_000_000_001,
            ),
            fact(
                "2026-03-01T11:00:00Z",
                &["team:a"],
                "gpt-4o",
                "openai",
                999_999_999,
            ),
            fact(
                "2026-03-01T12:00:00Z",
                &["team:b"],
                "claude",
                "anthropic",
                7,
            ),
            fact("2026-03-02T09:00:00Z", &["team:b"], "gpt-4o", "openai", 5),
            fact(
                "2026-03-02T09:30:00Z",
                &["project:x"],
                "gpt-4o",
                "openai",
                3,
            ),
            fact("2026-03-03T00:00:00Z", &["team:c"], "gpt-4o", "openai", 2),
            // Outside the range: ignored.
            fact("2026-04-01T00:00:00Z", &["team:a"], "gpt-4o", "openai", 100),
        ]
    }

    type Cell = (Option<String>, Vec<Option<String>>, bool, i64);

    fn cost(r: &Report) -> Vec<Cell> {
        r.rows
            .iter()
            .map(|row| {
                (
                    row.bucket_start.clone(),
                    row.group.values().cloned().collect(),
                    row.other,
                    row.totals.cost_nanos,
                )
            })
            .collect()
    }

    #[test]
    fn rows_by_team_and_model_sum_exactly_to_the_total() {
        let r = spend_report(&sample(), &query("team,model", None, None)).unwrap();
        let s = |x: &str| Some(x.to_owned());
        assert_eq!(
            cost(&r),
            vec![
                (None, vec![s("gpt-4o"), s("a")], false, 2_000_000_000),
                (None, vec![s("claude"), s("b")], false, 7),
                (None, vec![s("gpt-4o"), s("b")], false, 5),
                (None, vec![s("gpt-4o"), None], false, 3),
                (None, vec![s("gpt-4o"), s("c")], false, 2),
            ]
        );
        assert_eq!(r.total.cost_nanos, 2_000_000_017);
        assert_eq!(r.total.requests, 6);
        assert_eq!(r.total.tokens.output, 2_000_000_017);
        assert_eq!(r.total_usd, "2.000000017");
    }

    #[test]
    fn top_n_keeps_the_costliest_groups_and_sums_the_rest_as_other() {
        let r = spend_report(&sample(), &query("team", Some(Bucket::Day), Some(1))).unwrap();
        let s = |x: &str| Some(x.to_owned());
        assert_eq!(
            cost(&r),
            vec![
                (
                    s("2026-03-01T00:00:00+00:00"),
                    vec![s("a")],
                    false,
                    2_000_000_000
                ),
                (s("2026-03-01T00:00:00+00:00"), vec![None], true, 7),
                (s("2026-03-02T00:00:00+00:00"), vec![None], true, 8),
                (s("2026-03-03T00:00:00+00:00"), vec![None], true, 2),
            ]
        );
        assert_eq!(r.total.cost_nanos, 2_000_000_017);
    }

    #[test]
    fn filters_take_every_scope_and_any_listed_model() {
        let mut q = query("model", None, None);
        q.filter.scopes = vec!["team:b".parse().unwrap()];
        q.filter.models = vec!["claude".into(), "gemini".into()];
        let r = spend_report(&sample(), &q).unwrap();
        assert_eq!(r.total.cost_nanos, 7);
        q.filter.models.clear();
        q.filter.providers = vec!["openai".into()];
        assert_eq!(spend_report(&sample(), &q).unwrap().total.cost_nanos, 5);
    }

    #[test]
    fn several_values_of_a_grouped_kind_make_one_joined_group() {
        let facts = vec![fact(
            "2026-03-05T00:00:00Z",
            &["tag:z", "tag:a"],
            "m",
            "p",
            10,
        )];
        let r = spend_report(&facts, &query("tag", None, None)).unwrap();
        assert_eq!(r.rows[0].group["tag"].as_deref(), Some("a+z"));
        assert_eq!(r.total.cost_nanos, 10);
    }

    #[test]
    fn hour_buckets_in_a_zone_with_a_dst_change_split_at_local_hours() {
        let facts = vec![
            fact("2026-03-08T06:30:00Z", &["team:a"], "m", "p", 1), // 01:30 EST
            fact("2026-03-08T07:10:00Z", &["team:a"], "m", "p", 2), // 03:10 EDT
        ];
        let mut q = query("", Some(Bucket::Hour), None);
        q.tz = chrono_tz::America::New_York;
        let r = spend_report(&facts, &q).unwrap();
        let starts: Vec<_> = r
            .rows
            .iter()
            .map(|r| r.bucket_start.clone().unwrap())
            .collect();
        assert_eq!(
            starts,
            ["2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00"]
        );
    }

    #[test]
    fn a_report_over_its_row_limit_says_what_to_narrow() {
        let mut q = query("team,model", Some(Bucket::Day), None);
        q.max_rows = 3;
        let e = spend_report(&sample(), &q).unwrap_err();
        let AnalyticsError::Invalid { field, message } = e else {
            panic!("{e:?}")
        };
        assert_eq!(field, "group_by");
        assert!(message.contains("top"), "{message}");
    }

    #[test]
    fn an_overflowing_total_is_an_error_not_a_wrap() {
        let facts = vec![
            fact("2026-03-05T00:00:00Z", &["team:a"], "m", "p", i64::MAX),
            fact("2026-03-05T01:00:00Z", &["team:b"], "m", "p", 1),
        ];
        let e = spend_report(&facts, &query("team", None, None)).unwrap_err();
        assert_eq!(e, AnalyticsError::Overflow);
    }

    #[test]
    fn unknown_and_repeated_group_keys_are_refused() {
        assert!(GroupKey::parse_list("team,squad").is_err());
        assert!(GroupKey::parse_list("team,team").is_err());
        assert!(GroupKey::parse_list("global").is_err());
        assert_eq!(
            GroupKey::parse_list("team, model").unwrap(),
            vec![GroupKey::Scope(ScopeKind::Team), GroupKey::Model]
        );
    }
}
