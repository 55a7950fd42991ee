//! Rendering API answers as a table or as JSON.

use serde_json::Value;

use super::Output;

/// What the answer is, for table rendering.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A BudgetView.
    Budget,
    /// A BudgetPage.
    BudgetPage,
    /// A UsageView.
    Usage,
    /// A list of UsageView.
    UsageList,
    /// A list of ChannelView.
    Channels,
    /// A list of Alert.
    Alerts,
    /// A list of DeliveryRecord.
    Deliveries,
    /// A PassReport (`GET /v1/anomalies`).
    Anomalies,
    /// Anything else: key/value lines.
    Object,
    /// No body.
    Done,
}

/// A JSON value as a table cell: strings unquoted, null as "-".
pub(super) fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Rows under their headers, each column as wide as its widest cell, two spaces apart.
pub(super) fn table<H: AsRef<str>>(headers: &[H], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.as_ref().len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(&mut headers.iter().map(AsRef::as_ref));
    for r in rows {
        out.push_str(&line(&mut r.iter().map(String::as_str)));
    }
    out
}

const USAGE_HEADERS: [&str; 7] = [
    "BUDGET",
    "SPENT_USD",
    "REMAINING_USD",
    "REQUESTS",
    "TOKENS",
    "RESETS_AT",
    "SUSPENDED",
];

fn usage_row(u: &Value) -> Vec<String> {
    [
        "budget_id",
        "spent_usd",
        "remaining_usd",
        "requests",
        "tokens",
        "resets_at",
        "suspended",
    ]
    .iter()
    .map(|k| cell(&u[*k]))
    .collect()
}

fn key_values(v: &Value, prefix: &str, out: &mut String) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                key_values(x, &key, out);
            }
        }
        other => out.push_str(&format!("{prefix}: {}\n", cell(other))),
    }
}

fn rows_of(v: &Value, headers: &[&str], row: impl Fn(&Value) -> Vec<String>) -> String {
    let rows: Vec<Vec<String>> = v
        .as_array()
        .map(|a| a.iter().map(row).collect())
        .unwrap_or_default();
    table(headers, &rows)
}

/// The text to print.
pub fn render(out: Output, kind: Kind, v: &Value) -> String {
    if out == Output::Json {
        return format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default());
    }
    match kind {
        Kind::Done => "done\n".into(),
        Kind::BudgetPage => {
            let rows: Vec<Vec<String>> = v["items"]
                .as_array()
                .map(|a| a.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|b| {
                    let s = &b["budget"];
                    vec![
                        cell(&s["id"]),
                        s["scopes"]
                            .as_array()
                            .map(|a| a.iter().map(cell).collect::<Vec<_>>().join(","))
                            .unwrap_or_default(),
                        cell(&s["limit_usd"]),
                        cell(&s["period"]),
                        cell(&b["version"]),
                    ]
                })
                .collect();
            let mut t = table(&["ID", "SCOPES", "LIMIT_USD", "PERIOD", "VERSION"], &rows);
            if let Some(c) = v["next_cursor"].as_str() {
                t.push_str(&format!("next page: --cursor {c}\n"));
            }
            t
        }
        Kind::Usage => table(&USAGE_HEADERS, &[usage_row(v)]),
        Kind::UsageList => {
            let rows: Vec<Vec<String>> = v
                .as_array()
                .map(|a| a.iter().map(usage_row).collect())
                .unwrap_or_default();
            table(&USAGE_HEADERS, &rows)
        }
        Kind::Channels => rows_of(
            v,
            &["ID", "KIND", "MIN_SEVERITY", "ENABLED", "VERSION"],
            |c| {
                vec![
                    cell(&c["id"]),
                    cell(&c["target"]["kind"]),
                    cell(&c["min_severity"]),
                    cell(&c["enabled"]),
                    cell(&c["version"]),
                ]
            },
        ),
        Kind::Alerts => rows_of(
            v,
            &["ID", "SEVERITY", "BUDGET", "THRESHOLD_PCT", "AT_MS"],
            |a| {
                vec![
                    cell(&a["id"]),
                    cell(&a["severity"]),
                    cell(&a["budget_id"]),
                    cell(&a["threshold_pct"]),
                    cell(&a["at_ms"]),
                ]
            },
        ),
        Kind::Anomalies => rows_of(
            &v["anomalies"],
            &[
                "SEVERITY",
                "SCOPE",
                "MODEL",
                "METRIC",
                "DIRECTION",
                "HOUR_START_MS",
                "OBSERVED",
                "EXPECTED",
                "SCORE",
            ],
            |a| {
                vec![
                    cell(&a["severity"]),
                    cell(&a["scope"]),
                    cell(&a["model"]),
                    cell(&a["metric"]),
                    cell(&a["direction"]),
                    cell(&a["hour_start_ms"]),
                    cell(&a["observed"]),
                    cell(&a["expected"]),
                    a["score"]
                        .as_f64()
                        .map_or_else(|| "-".into(), |s| format!("{s:.1}")),
                ]
            },
        ),
        Kind::Deliveries => rows_of(
            v,
            &[
                "ALERT",
                "CHANNEL",
                "KIND",
                "STATE",
                "ATTEMPTS",
                "LAST_ERROR",
            ],
            |d| {
                let attempts = d["attempts"]
                    .as_array()
                    .map(|a| a.as_slice())
                    .unwrap_or_default();
                vec![
                    cell(&d["alert"]["id"]),
                    cell(&d["channel_id"]),
                    cell(&d["channel_kind"]),
                    cell(&d["state"]),
                    attempts.len().to_string(),
                    attempts
                        .last()
                        .map_or_else(|| "-".into(), |a| cell(&a["error"])),
                ]
            },
        ),
        Kind::Budget | Kind::Object => {
            let mut s = String::new();
            key_values(v, "", &mut s);
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_lists_render_as_aligned_columns() {
        let v = serde_json::json!([{ "budget_id": "team-a", "spent_usd": "1.5", "requests": 3 }]);
        let t = render(Output::Table, Kind::UsageList, &v);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("BUDGET  SPENT_USD"));
        assert!(lines[1].starts_with("team-a  1.5"));
    }

    #[test]
    fn a_table_pads_each_column_to_its_widest_cell_by_characters_and_trims_line_ends() {
        let rows = vec![
            vec!["équipe".to_owned(), "1".to_owned(), String::new()],
            vec!["b".to_owned(), "12345".to_owned(), "x".to_owned()],
        ];
        let owned = ["TEAM".to_owned(), "N".to_owned(), "NOTE".to_owned()];
        let want = "TEAM    N      NOTE\néquipe  1\nb       12345  x\n";
        assert_eq!(table(&["TEAM", "N", "NOTE"], &rows), want);
        assert_eq!(table(&owned, &rows), want);
    }
}
