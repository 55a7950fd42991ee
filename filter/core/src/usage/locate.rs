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
            forward: memmem::Finder::new(key).into_owned(),
            reverse: memmem::FinderRev::new(key).into_owned(),
        }
    }

    /// Whether `json` may carry a usage object at all (a quick pre-filter for events).
    pub fn may_carry_usage(&self, json: &[u8]) -> bool {
        self.forward.find(json).is_some()
    }

    /// The last well-formed usage object in `json`, if any (`null` is skipped like any
    /// non-object).
    pub fn find(&self, json: &[u8]) -> Option<UsageReport> {
        let key_len = usage_key(self.dialect).len();
        for at in self.reverse.rfind_iter(json) {
            if !quote_is_structural(json, at) {
                continue;
            }
            let Some(value) = value_after_key(json, at + key_len) else {
                continue;
            };
            if let Ok(Some(mut report)) = parse_usage_value(self.dialect, value) {
                if report.service_tier.is_none() {
                    report.service_tier = openai_service_tier(self.dialect, json);
                }
                return Some(report);
            }
        }
        None
    }
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

/// Whether `json` may carry a usage object at all (a quick pre-filter for stream events).
pub fn may_carry_usage(dialect: Dialect, json: &[u8]) -> bool {
    memmem::find(json, usage_key(dialect)).is_some()
}

/// The last well-formed usage object in `json`, if any (one-off; see [`UsageFinder`]).
pub fn find_usage(dialect: Dialect, json: &[u8]) -> Option<UsageReport> {
    UsageFinder::new(dialect).find(json)
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
