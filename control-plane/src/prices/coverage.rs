//! How much of LiteLLM's map a price table prices: the share of the main providers' chat
//! models whose name the table resolves (docs/prices.md quotes the figure).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::value::RawValue;
use tollgate_model::PriceTable;

use super::litellm::{ImportError, is_chat_mode, provider_of};

/// Priced and total chat models, per provider group and overall.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// Group (`openai`, `anthropic`, `gemini/vertex`, `bedrock`, `azure`, `mistral`) →
    /// (priced, total).
    pub groups: BTreeMap<String, (u64, u64)>,
    /// Names not priced, by group (for the refresh script's log).
    pub unpriced: BTreeMap<String, Vec<String>>,
}

impl Coverage {
    /// (priced, total) over every group.
    pub fn total(&self) -> (u64, u64) {
        self.groups
            .values()
            .fold((0, 0), |(p, t), (gp, gt)| (p + gp, t + gt))
    }

    /// `priced / total` as a percentage with one decimal, rounded down (`87.3`).
    pub fn percent(priced: u64, total: u64) -> String {
        if total == 0 {
            return "0.0".to_owned();
        }
        let tenths = priced.saturating_mul(1000) / total;
        format!("{}.{}", tenths / 10, tenths % 10)
    }

    /// One line per group and a total line: `before`'s figures, then these.
    pub fn render(&self, before: &Coverage) -> String {
        let line = |name: &str, (bp, bt): (u64, u64), (p, t): (u64, u64)| {
            format!(
                "{name:<14} {bp:>5} / {bt:<5} {:>5} %   {p:>5} / {t:<5} {:>5} %\n",
                Coverage::percent(bp, bt),
                Coverage::percent(p, t)
            )
        };
        let mut out = format!("{:<14} {:<20}   {}\n", "", "before", "after");
        for (group, counts) in &self.groups {
            let was = before.groups.get(group).copied().unwrap_or_default();
            out.push_str(&line(group, was, *counts));
        }
        out.push_str(&line("all", before.total(), self.total()));
        out
    }
}

/// The group a LiteLLM provider counts in, for the main providers.
fn group(litellm_provider: &str) -> Option<&'static str> {
    let (label, _) = provider_of(litellm_provider)?;
    Some(match label {
        "google" | "vertex_ai" => "gemini/vertex",
        "azure_openai" | "azure" => "azure",
        other => other,
    })
}

/// The coverage of `table` over LiteLLM's map `text`: every main-provider chat model,
/// counted as priced when `table` resolves its key (the name a client would send).
pub fn coverage(text: &str, table: &PriceTable) -> Result<Coverage, ImportError> {
    #[derive(serde::Deserialize)]
    struct Head {
        litellm_provider: Option<String>,
        mode: Option<String>,
    }
    let map: BTreeMap<String, Box<RawValue>> =
        serde_json::from_str(text).map_err(|e| ImportError::NotAMap(e.to_string()))?;
    let mut out = Coverage::default();
    for (key, raw) in &map {
        let Ok(head) = serde_json::from_str::<Head>(raw.get()) else {
            continue;
        };
        let Some(g) = head.litellm_provider.as_deref().and_then(group) else {
            continue;
        };
        if !is_chat_mode(head.mode.as_deref()) {
            continue;
        }
        let counts = out.groups.entry(g.to_owned()).or_default();
        counts.1 += 1;
        if table.resolve(key).is_some() {
            counts.0 += 1;
        } else {
            out.unpriced
                .entry(g.to_owned())
                .or_default()
                .push(key.clone());
        }
    }
    Ok(out)
}
