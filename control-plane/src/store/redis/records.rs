//! `Store::records` on Redis: a page of request records merged from every tag's stream in
//! (entry id, tag, position in the entry) order: an entry holds a settle batch's records.
//!
//! Each stream is read in small runs (`RUN` entries, one `XRANGE` each) and a stream is read
//! again only when the merge has used up what was read of it, so a page of 1 000 records
//! reads about 1 000 records in all, and no single command holds Redis for long: settles and
//! reserves queue behind one short `XRANGE` at most, never behind a page (the export's
//! effect on admission latency: docs/ledger.md).

use std::collections::VecDeque;

use redis::Value;

use super::ledger::{Id, Stored, entry, parse_id};
use super::{RedisStore, unavailable};
use crate::ledger::{RecordPage, TimeRange};
use crate::store::StoreError;

/// Entries one `XRANGE` reads at most (an entry holds a settle batch: up to `SETTLE_CHUNK`,
/// 64, records).
const RUN: usize = 16;

/// One tag's stream as the merge reads it.
struct Feed {
    tag: String,
    key: String,
    /// Read, not yet merged: (entry id, the record and its position in the entry).
    read: VecDeque<(Id, Stored)>,
    /// Where the next read starts (`XRANGE` syntax).
    from: String,
    /// The stream has nothing more in the range.
    done: bool,
    /// The cursor's entry, and its last position already paged (left out when read again).
    skip: Option<(Id, usize)>,
}

impl RedisStore {
    pub(super) async fn read_records(
        &self,
        range: TimeRange,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<RecordPage, StoreError> {
        // The cursor: `<entry id>.<position>/<tag>` (the last record paged); `<entry id>/<tag>`
        // (a whole entry paged) from releases before batch entries.
        let after: Option<(Id, Option<usize>, String)> = match cursor {
            None => None,
            Some(c) => {
                let bad = || StoreError::BadCursor(c.to_owned());
                let (at, tag) = c.split_once('/').ok_or_else(bad)?;
                let (id, pos) = match at.split_once('.') {
                    Some((id, pos)) => (id, Some(pos.parse().map_err(|_| bad())?)),
                    None => (at, None),
                };
                Some((parse_id(id).ok_or_else(bad)?, pos, tag.to_owned()))
            }
        };
        if after.is_none() {
            // The rollup pass trims the streams (to the record limits): a read starts after it.
            self.roll_up_all().await?;
        }
        let end = range.to_ms.saturating_sub(1).to_string();
        let mut feeds: Vec<Feed> = self
            .ledger_tags()
            .await?
            .into_iter()
            .map(|tag| {
                // After the cursor's (id, tag, position): a tag ordered before the cursor's
                // starts past its id, a later tag at it, the cursor's own tag at it, leaving
                // out the positions already paged.
                let (from, skip) = match &after {
                    Some(((ms, seq), pos, atag)) if *ms >= range.from_ms => {
                        let at = format!("{ms}-{seq}");
                        match (tag.as_str().cmp(atag.as_str()), pos) {
                            (std::cmp::Ordering::Less, _) | (std::cmp::Ordering::Equal, None) => {
                                (format!("({at}"), None)
                            }
                            (std::cmp::Ordering::Equal, Some(p)) => (at, Some(((*ms, *seq), *p))),
                            (std::cmp::Ordering::Greater, _) => (at, None),
                        }
                    }
                    _ => (format!("{}-0", range.from_ms), None),
                };
                Feed {
                    key: self.stream_key(&tag),
                    tag,
                    read: VecDeque::new(),
                    from,
                    done: false,
                    skip,
                }
            })
            .collect();
        let run = RUN.min(limit.saturating_add(1)).max(1);
        let mut page = RecordPage::default();
        let mut last: Option<(Id, usize, String)> = None;
        while page.records.len() < limit {
            for f in feeds.iter_mut() {
                // An entry can hold nothing left to page (replays, or the cursor's records).
                while f.read.is_empty() && !f.done {
                    self.read_run(f, &end, run).await?;
                }
            }
            // The smallest (id, tag) at the head of a stream.
            let Some(f) = feeds
                .iter_mut()
                .filter(|f| !f.read.is_empty())
                .min_by(|a, b| {
                    let (x, y) = (a.read.front(), b.read.front());
                    (x.map(|e| e.0), &a.tag).cmp(&(y.map(|e| e.0), &b.tag))
                })
            else {
                break;
            };
            let Some((id, (pos, record))) = f.read.pop_front() else {
                break;
            };
            let record =
                record.map_err(|raw| StoreError::Corrupt(format!("ledger record {raw:?}")))?;
            page.records.push(record);
            last = Some((id, pos, f.tag.clone()));
        }
        let more = feeds.iter().any(|f| !f.read.is_empty() || !f.done);
        if more && let Some(((ms, seq), pos, tag)) = last {
            page.next_cursor = Some(format!("{ms}-{seq}.{pos}/{tag}"));
        }
        Ok(page)
    }

    /// Reads the next run of `f`'s stream, up to `end`.
    async fn read_run(&self, f: &mut Feed, end: &str, run: usize) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let reply: Value = redis::cmd("XRANGE")
            .arg(&f.key)
            .arg(&f.from)
            .arg(end)
            .arg("COUNT")
            .arg(run)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let Value::Array(entries) = reply else {
            return Err(StoreError::Corrupt(format!("XRANGE reply {reply:?}")));
        };
        f.done = entries.len() < run;
        for e in &entries {
            let (id, records) =
                entry(e).ok_or_else(|| StoreError::Corrupt(format!("stream entry {e:?}")))?;
            f.from = format!("({}-{}", id.0, id.1);
            let paged = f.skip.filter(|(at, _)| *at == id).map(|(_, p)| p);
            for (pos, record) in records {
                if paged.is_none_or(|p| pos > p) {
                    f.read.push_back((id, (pos, record)));
                }
            }
        }
        Ok(())
    }
}
