//! `Store::import_spend` on Redis: imported spend rows go into the org's record stream as
//! one entry per script call (field `h`), behind one marker per row (`import.lua`), and the
//! rollup pass adds them to their rows as it adds records: every rollup row has one writer
//! (the pass, exactly once by its cursor), so an import racing a pass loses nothing.

use super::{RedisStore, int};
use crate::ledger::import::SpendRow;
use crate::store::{SpendOutcome, StoreError};

/// Most rollup row additions one script call's entry carries: the rollup pass counts an
/// entry in one step, and its steps write about 512 rows (an hour row of three scopes adds
/// to 8; a day row of three scopes to 100: its day and its 24 hours).
const CHUNK_ADDS: usize = 512;

/// `rows` cut into runs of at most [`CHUNK_ADDS`] additions (a heavier row goes alone).
fn chunks(rows: &[SpendRow]) -> Vec<&[SpendRow]> {
    let mut out = Vec::new();
    let (mut start, mut weight) = (0, 0);
    for (i, r) in rows.iter().enumerate() {
        let w = r.additions().len() * r.row_scopes().len();
        if i > start && weight + w > CHUNK_ADDS {
            out.extend(rows.get(start..i));
            (start, weight) = (i, 0);
        }
        weight += w;
    }
    out.extend(rows.get(start..));
    out.retain(|c| !c.is_empty());
    out
}

impl RedisStore {
    pub(super) async fn write_spend(
        &self,
        tag: &str,
        rows: &[SpendRow],
        now_ms: i64,
        dedupe_ttl_ms: i64,
    ) -> Result<Vec<SpendOutcome>, StoreError> {
        // Rows already past the daily retention are not written (their buckets would be
        // dropped by their PEXPIREAT at once).
        let mut out: Vec<SpendOutcome> = rows
            .iter()
            .map(|r| SpendOutcome::of_new(r, &self.ledger.limits, now_ms))
            .collect();
        let (fresh, at): (Vec<SpendRow>, Vec<usize>) = rows
            .iter()
            .zip(&out)
            .enumerate()
            .filter(|(_, (_, o))| **o == SpendOutcome::Added)
            .map(|(i, (r, _))| (r.clone(), i))
            .unzip();
        if fresh.is_empty() {
            return Ok(out);
        }
        // Listed before the entry exists, as a settle batch's tag is.
        self.list_ledger_tag(tag).await?;
        let mut added_all = Vec::with_capacity(fresh.len());
        for chunk in chunks(&fresh) {
            let json = serde_json::to_string(chunk)
                .map_err(|e| StoreError::Corrupt(format!("spend rows: {e}")))?;
            let mut inv = self.import.prepare_invoke();
            inv.key(self.stream_key(tag));
            for r in chunk {
                inv.key(self.record_key(tag, &format!("import:{}", r.id)));
            }
            inv.arg(json)
                .arg(format!("{}-*", now_ms.max(0)))
                .arg(dedupe_ttl_ms.max(1));
            let dups = self.run("import", &inv).await?;
            let mut added = vec![true; chunk.len()];
            for d in &dups {
                let slot = int(d)
                    .and_then(|i| usize::try_from(i).ok())
                    .and_then(|i| added.get_mut(i))
                    .ok_or_else(|| StoreError::Corrupt(format!("import: reply {dups:?}")))?;
                *slot = false;
            }
            added_all.extend(added);
        }
        for (i, added) in at.into_iter().zip(added_all) {
            if !added && let Some(o) = out.get_mut(i) {
                *o = SpendOutcome::Duplicate;
            }
        }
        Ok(out)
    }
}
