//! Merging imported entries under Tollgate's own: curated entries always win, a price seen
//! before keeps its dated history, a changed price becomes a new version effective on the
//! import's day.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tollgate_model::PriceTable;
use tollgate_model::pricing::{ModelDto, ModelPrices, PriceVersion};

/// What a merge did (or, dry, would do), by model id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MergeReport {
    /// `true` when nothing was written (a dry run).
    pub dry_run: bool,
    /// New models.
    pub added: Vec<String>,
    /// Models imported before whose price changed: a new version was added.
    pub changed: Vec<String>,
    /// Models imported before at the same price.
    pub unchanged: Vec<String>,
    /// Names Tollgate's own entries already carry (an id or alias): theirs win.
    pub curated: Vec<String>,
    /// Names that resolve to one of Tollgate's own entries (a dated snapshot, a Bedrock
    /// profile) at the same price: nothing to add.
    pub same_as_curated: Vec<String>,
    /// Entries refused (`id: reason`), such as an invalid price.
    pub invalid: Vec<String>,
}

/// The merge's result: the entries to keep as the imported layer, and the report.
#[derive(Debug, Default)]
pub struct Merged {
    /// The imported layer after the merge (previous entries not seen again are kept), by id.
    pub models: Vec<ModelDto>,
    /// What changed.
    pub report: MergeReport,
}

/// Merges `incoming` into the imported layer `previous`, under `curated` (whose entries win).
/// Each incoming entry's last version is its price as of `today`, which dates a new or
/// changed price.
pub fn merge(
    curated: &PriceTable,
    previous: &[ModelDto],
    incoming: Vec<ModelDto>,
    today: NaiveDate,
) -> Merged {
    let mut layer: BTreeMap<String, ModelDto> =
        previous.iter().map(|m| (m.id.clone(), m.clone())).collect();
    let mut report = MergeReport::default();
    for mut dto in incoming {
        let id = dto.id.clone();
        // An incoming entry is the price now (a map such as LiteLLM's has no dates): its last
        // version, dated by the import's day.
        dto.prices = dto
            .prices
            .pop()
            .map(|mut v| {
                v.effective_from = today;
                vec![v]
            })
            .unwrap_or_default();
        if curated.models().iter().any(|m| names(m.entry(), &id)) {
            report.curated.push(id);
            continue;
        }
        dto.aliases
            .retain(|a| !curated.models().iter().any(|m| names(m.entry(), a)));
        let Some(new_version) = in_force(&dto, today) else {
            report.invalid.push(format!("{id}: invalid price entry"));
            continue;
        };
        if curated
            .resolve(&id)
            .is_some_and(|c| same_as_curated(c.entry(), &dto, today))
        {
            // Dropped from the layer too: an entry imported while the curated price differed
            // would otherwise keep naming the model apart from its curated entry.
            layer.remove(&id);
            report.same_as_curated.push(id);
            continue;
        }
        match layer.get(&id) {
            Some(old) => match in_force(old, today) {
                Some(old_version) if same_price(&old_version, &new_version) => {
                    report.unchanged.push(id);
                }
                _ => {
                    let entry = with_new_version(old, dto, today);
                    if ModelPrices::from_entry_json(&json(&entry)).is_err() {
                        report.invalid.push(format!("{id}: invalid price history"));
                        continue;
                    }
                    layer.insert(id.clone(), entry);
                    report.changed.push(id);
                }
            },
            None => {
                layer.insert(id.clone(), dto);
                report.added.push(id);
            }
        }
    }
    Merged {
        models: layer.into_values().collect(),
        report,
    }
}

/// Whether `incoming` prices as the `curated` entry its name resolves to (a dated snapshot, a
/// Bedrock profile) does on `day`. A dimension the import leaves unstated is taken as the
/// curated one's: a map's silence on a fee (LiteLLM lists no web-search fee for Bedrock's
/// Claude ids, for one) is not a price of its own, and must not split a model into two names.
pub(super) fn same_as_curated(curated: &ModelDto, incoming: &ModelDto, day: NaiveDate) -> bool {
    let Some(c) = curated
        .prices
        .iter()
        .rev()
        .find(|v| v.effective_from <= day)
        .or_else(|| curated.prices.first())
    else {
        return false;
    };
    let mut filled = incoming.clone();
    for v in &mut filled.prices {
        macro_rules! unstated_from_curated {
            ($($f:ident),*) => { $( if v.$f.is_none() { v.$f.clone_from(&c.$f); } )* };
        }
        unstated_from_curated!(
            cached_input,
            cache_write_5m,
            cache_write_1h,
            reasoning,
            audio_input,
            audio_output,
            long_context,
            per_request,
            per_web_search,
            per_image,
            per_audio_minute,
            batch_multiplier,
            priority_multiplier
        );
    }
    match (in_force(curated, day), in_force(&filled, day)) {
        (Some(a), Some(b)) => same_price(&a, &b),
        _ => false,
    }
}

/// Whether `entry` carries `name` as its id or an alias.
fn names(entry: &ModelDto, name: &str) -> bool {
    entry.id == name || entry.aliases.iter().any(|a| a == name)
}

fn json(entry: &ModelDto) -> String {
    serde_json::to_string(entry).unwrap_or_default()
}

/// The price version of `entry` in force on `day` (the first one before it), validated.
pub fn in_force(entry: &ModelDto, day: NaiveDate) -> Option<PriceVersion> {
    let prices = ModelPrices::from_entry_json(&json(entry)).ok()?;
    let versions = prices.versions();
    versions
        .iter()
        .rev()
        .find(|v| v.effective_from <= day)
        .or_else(|| versions.first())
        .cloned()
}

/// Equal prices, whatever their dates (defaults filled in, `1.50` equal to `1.5`).
pub fn same_price(a: &PriceVersion, b: &PriceVersion) -> bool {
    let mut b = b.clone();
    b.effective_from = a.effective_from;
    *a == b
}

/// `old`'s dated history with `new`'s price as a version effective `today` (replacing a
/// version of the same day or later: one import a day counts), and `new`'s description.
fn with_new_version(old: &ModelDto, new: ModelDto, today: NaiveDate) -> ModelDto {
    let mut prices: Vec<_> = old
        .prices
        .iter()
        .filter(|v| v.effective_from < today)
        .cloned()
        .collect();
    prices.extend(new.prices);
    ModelDto { prices, ..new }
}
