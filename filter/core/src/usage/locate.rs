//! Finding the usage object without parsing the whole body.
//!
//! A JSON key `"usage"` appears in the bytes as `"usage"` followed by optional whitespace and
//! a colon, with the opening quote not escaped. Inside a string value every quote is escaped,
//! so a match whose opening quote is preceded by an odd number of backslashes is text, not a
//! key. Candidates are tried from the end of the body (usage follows the content in every
//! provider's responses, so a `"usage"` key inside model-written tool arguments comes
//! earlier); the first one whose value parses as a usage object wins.

use memchr::memmem;
use tollgate_model::ServiceTier;

use super::UsageReport;
use super::dialects::parse_usage_value;
use crate::json_keys;
use crate::providers::Dialect;

/// The quoted key a dialect's usage object sits under.
pub fn usage_key(dialect: Dialect) -> &'static [u8] {
    match dialect {
        Dialect::Gemini => b"\"usageMetadata\"",
        _ => b"\"usage\"",
    }
}

/// Prebuilt searchers for one dialect's usage key: building a searcher costs more than
/// searching a typical stream event, so a stream reader builds one and reuses it.
#[derive(Debug, Clone)]
pub struct UsageFinder {
    dialect: Dialect,
    forward: memmem::Finder<'static>,
    reverse: memmem::FinderRev<'static>,
}

impl UsageFinder {
    /// The searchers for `dialect`.
    pub fn new(dialect: Dialect) -> UsageFinder {
        let key = usage_key(dialect);
        UsageFinder {
            dialect,
            forward: json_keys::finder(key),
            reverse: memmem::FinderRev::new(key).into_owned(),
        }
    }

    /// The last well-formed usage object in the whole body `json`, if any (`null` is
    /// skipped like any non-object). Searched from the end, where a body's usage object is.
    pub fn find(&self, json: &[u8]) -> Option<UsageReport> {
        self.reverse
            .rfind_iter(json)
            .find_map(|at| report_at(self.dialect, json, at))
    }

    /// [`UsageFinder::find`] for one stream event: the same answer, found faster when, as in
    /// most events, the usage key is absent or `null`.
    ///
    /// The candidates are found with the forward searcher and tried last first: memchr's
    /// reverse searcher has no SIMD prefilter, and scanning back past an event's
    /// `"usage":null` with it was 30 % of the SSE scan. An event rarely has more than one
    /// candidate; past `MAX_CANDIDATES` the earlier ones are searched backwards.
    pub fn find_in_event(&self, json: &[u8]) -> Option<UsageReport> {
        const MAX_CANDIDATES: usize = 8;
        let mut candidates = [0usize; MAX_CANDIDATES];
        let mut found = 0;
        let mut overflowed = false;
        for at in self.forward.find_iter(json) {
            if found == MAX_CANDIDATES {
                overflowed = true;
                candidates.copy_within(1.., 0);
                found -= 1;
            }
            if let Some(slot) = candidates.get_mut(found) {
                *slot = at;
                found += 1;
            }
        }
        let kept = candidates.get(..found).unwrap_or_default();
        // The occurrences before the oldest kept one (one that overlaps it, `"usage"usage"`,
        // is not followed by a colon, so it is no key).
        let dropped = kept.first().filter(|_| overflowed).map(|&oldest| {
            self.reverse
                .rfind_iter(json.get(..oldest).unwrap_or_default())
        });
        kept.iter()
            .rev()
            .copied()
            .chain(dropped.into_iter().flatten())
            .find_map(|at| report_at(self.dialect, json, at))
    }
}

/// The usage report of the key candidate at `at`, if it is a key with a usage object.
fn report_at(dialect: Dialect, json: &[u8], at: usize) -> Option<UsageReport> {
    if !quote_is_structural(json, at) {
        return None;
    }
    let value = value_after_key(json, at + usage_key(dialect).len())?;
    let mut report = parse_usage_value(dialect, value).ok().flatten()?;
    if report.service_tier.is_none() {
        report.service_tier = openai_service_tier(dialect, json);
    }
    Some(report)
}

/// OpenAI reports the tier that served the call beside the usage, not inside it
/// (`"service_tier": "priority"`). Flex processing is billed at Batch prices.
fn openai_service_tier(dialect: Dialect, json: &[u8]) -> Option<ServiceTier> {
    if !matches!(dialect, Dialect::OpenaiChat | Dialect::OpenaiResponses) {
        return None;
    }
    let key = b"\"service_tier\"";
    for at in memmem::rfind_iter(json, key) {
        if !quote_is_structural(json, at) {
            continue;
        }
        let rest = json.get(at + key.len()..)?;
        let colon = rest.iter().position(|b| !b.is_ascii_whitespace())?;
        if rest.get(colon) != Some(&b':') {
            continue;
        }
        let value = rest.get(colon + 1..)?;
        let value = value.get(value.iter().position(|b| !b.is_ascii_whitespace())?..)?;
        return match value {
            v if v.starts_with(b"\"priority\"") => Some(ServiceTier::Priority),
            v if v.starts_with(b"\"flex\"") => Some(ServiceTier::Batch),
            v if v.starts_with(b"\"") => Some(ServiceTier::Standard),
            _ => None,
        };
    }
    None
}

/// The last well-formed usage object in the whole body `json`, if any (one-off: no
/// searcher is kept, see [`UsageFinder`]).
pub fn find_usage(dialect: Dialect, json: &[u8]) -> Option<UsageReport> {
    memmem::rfind_iter(json, usage_key(dialect)).find_map(|at| report_at(dialect, json, at))
}

/// Whether the quote at `at` is not escaped (preceded by an even number of backslashes).
fn quote_is_structural(json: &[u8], at: usize) -> bool {
    let backslashes = json
        .get(..at)
        .unwrap_or_default()
        .iter()
        .rev()
        .take_while(|&&b| b == b'\\')
        .count();
    backslashes % 2 == 0
}

/// The bytes from the value that follows `"key"` + whitespace + `:` + whitespace.
fn value_after_key(json: &[u8], after_key: usize) -> Option<&[u8]> {
    let rest = json.get(after_key..)?;
    let colon = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    if rest.get(colon) != Some(&b':') {
        return None;
    }
    let value = rest.get(colon + 1..)?;
    // Only an object is a usage object (serde would also read a struct from an array).
    match value.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Some(value),
        _ => None,
    }
}
