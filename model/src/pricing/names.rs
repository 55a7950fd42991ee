//! Model-name normalisation: from what a client or provider calls a model to a price entry.
//!
//! Exact names (ids, aliases from the file, configured aliases such as Azure deployment
//! names) always win. Only when nothing matches exactly are these forms tried, in order:
//! a path prefix is dropped (`models/gemini-2.5-pro`, `openai/gpt-4o`,
//! `publishers/google/models/…`), the name is lower-cased, a Bedrock region prefix
//! (`us.`, `eu.`, `apac.`, `global.`…) and version suffix (`:0`, `-v2:0`) are dropped, then a
//! Bedrock vendor prefix (`anthropic.`), then a snapshot suffix (`-2024-08-06`,
//! `-20250929`, `@20241022`, `-0613`, `-001`, `-latest`). A dated snapshot therefore maps to
//! its base model **only** when the table has no entry of its own for that snapshot.

/// Bedrock's cross-region inference profile prefixes.
const REGION_PREFIXES: &[&str] = &[
    "us.", "us-gov.", "eu.", "apac.", "jp.", "au.", "ca.", "global.",
];

/// Bedrock model-id vendor prefixes.
const VENDOR_PREFIXES: &[&str] = &[
    "anthropic.",
    "meta.",
    "amazon.",
    "mistral.",
    "cohere.",
    "ai21.",
    "deepseek.",
    "openai.",
    "qwen.",
    "writer.",
];

/// The names to try, most specific first, after the exact name has missed. May contain
/// repeats; the caller stops at the first hit.
pub(super) fn candidates(raw: &str) -> Vec<String> {
    let mut out = Vec::with_capacity(8);
    let trimmed = raw.trim();
    let base = trimmed
        .rsplit('/')
        .next()
        .unwrap_or(trimmed)
        .to_ascii_lowercase();
    let mut forms = vec![base.clone()];
    let regionless = strip_any_prefix(&base, REGION_PREFIXES)
        .filter(|rest| strip_any_prefix(rest, VENDOR_PREFIXES).is_some())
        .unwrap_or(&base)
        .to_owned();
    for unversioned in bedrock_unversioned(&regionless) {
        forms.push(unversioned);
    }
    forms.push(regionless);
    for form in forms {
        out.push(form.clone());
        if let Some(snapshot) = strip_snapshot(&form) {
            out.push(snapshot.to_owned());
        }
        if let Some(vendorless) = strip_any_prefix(&form, VENDOR_PREFIXES) {
            out.push(vendorless.to_owned());
            if let Some(snapshot) = strip_snapshot(vendorless) {
                out.push(snapshot.to_owned());
            }
        }
    }
    out
}

fn strip_any_prefix<'a>(s: &'a str, prefixes: &[&str]) -> Option<&'a str> {
    prefixes.iter().find_map(|p| s.strip_prefix(p))
}

/// `x-v2:0` → [`x-v2`, `x`]; `x:0` → [`x`]; no `:N` suffix → nothing.
fn bedrock_unversioned(s: &str) -> Vec<String> {
    let Some((head, tail)) = s.rsplit_once(':') else {
        return Vec::new();
    };
    if tail.is_empty() || !tail.bytes().all(|b| b.is_ascii_digit()) {
        return Vec::new();
    }
    let mut out = vec![head.to_owned()];
    if let Some((name, version)) = head.rsplit_once("-v")
        && is_digits(version)
    {
        out.push(name.to_owned());
    }
    out
}

/// Drops one snapshot / version suffix, if the name ends with one.
fn strip_snapshot(s: &str) -> Option<&str> {
    if let Some(head) = s.strip_suffix("-latest") {
        return Some(head);
    }
    // Vertex: claude-3-5-sonnet-v2@20241022
    if let Some((head, tail)) = s.rsplit_once('@')
        && is_digits(tail)
    {
        return Some(head);
    }
    // -2024-08-06 (checked on bytes: the name may hold non-ASCII text)
    let b = s.as_bytes();
    if let Some(tail) = b.len().checked_sub(11).and_then(|at| b.get(at..)) {
        let digits = |r: std::ops::Range<usize>| {
            tail.get(r)
                .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        };
        if tail.first() == Some(&b'-')
            && tail.get(5) == Some(&b'-')
            && tail.get(8) == Some(&b'-')
            && digits(1..5)
            && digits(6..8)
            && digits(9..11)
        {
            return s.get(..s.len() - 11);
        }
    }
    // -20250929, -0613, -001
    let (head, tail) = s.rsplit_once('-')?;
    if !head.is_empty() && matches!(tail.len(), 3 | 4 | 8) && is_digits(tail) {
        return Some(head);
    }
    None
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(raw: &str, want: &str) -> bool {
        candidates(raw).iter().any(|c| c == want)
    }

    #[test]
    fn snapshot_suffixes_are_dropped() {
        assert!(has("gpt-4o-2024-08-06", "gpt-4o"));
        assert!(has("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"));
        assert!(has("gpt-4-0613", "gpt-4"));
        assert!(has("gemini-2.0-flash-001", "gemini-2.0-flash"));
        assert!(has("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet-v2"));
        assert!(has("mistral-large-latest", "mistral-large"));
    }

    #[test]
    fn path_and_provider_prefixes_are_dropped() {
        assert!(has("models/gemini-2.5-pro", "gemini-2.5-pro"));
        assert!(has("openai/gpt-4o", "gpt-4o"));
        assert!(has(
            "publishers/google/models/gemini-2.5-flash",
            "gemini-2.5-flash"
        ));
        assert!(has("GPT-4o", "gpt-4o"));
    }

    #[test]
    fn bedrock_ids_keep_their_vendor_form_first() {
        let c = candidates("us.anthropic.claude-sonnet-4-5-20250929-v1:0");
        let vendor = c
            .iter()
            .position(|x| x == "anthropic.claude-sonnet-4-5-20250929");
        let plain = c.iter().position(|x| x == "claude-sonnet-4-5");
        assert!(
            vendor.is_some() && plain.is_some() && vendor < plain,
            "{c:?}"
        );
        assert!(has(
            "meta.llama3-3-70b-instruct-v1:0",
            "meta.llama3-3-70b-instruct"
        ));
        assert!(has(
            "amazon.titan-embed-text-v2:0",
            "amazon.titan-embed-text-v2"
        ));
        assert!(has("amazon.nova-pro-v1:0", "amazon.nova-pro"));
    }

    #[test]
    fn a_plain_name_is_its_own_first_candidate() {
        assert_eq!(candidates("o3")[0], "o3");
        assert!(!has("o3", ""));
    }
}
