//! Rewriting the model a request names, for a downgrade: in the body's top-level `model`
//! (OpenAI, Anthropic, Cohere and OpenAI-compatible APIs) or in the path (Gemini, Bedrock,
//! Vertex). Every other byte is left as the client sent it.

use tollgate_model::PriceTable;
#[cfg(test)]
use tollgate_model::pricing::ModelPrices;

use super::scan::for_each_member;
use crate::providers::Provider;
use crate::providers::routes::percent_decode;

/// Bedrock's cross-region inference-profile prefixes, kept from the model a downgrade
/// replaces (a profile's region is the caller's choice).
const BEDROCK_PROFILES: [&str; 8] = [
    "us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.", "ca.",
];

/// The id `provider` itself knows the price-table model `target` by, for a downgrade that
/// replaces `original`; `None` when it cannot be told (the call is then refused with the
/// cheaper model named rather than sent with an id the provider refuses).
///
/// Only Bedrock differs: its ids carry a vendor and a version (`anthropic.claude-3-5-haiku-
/// 20241022-v1:0`, `amazon.titan-text-express-v1`) that cannot be derived from the table's
/// id. It is one of the names the price table knows (the shipped file's aliases, the control
/// plane's price file, `model_aliases`) in Bedrock's form that stands for `target`, behind
/// the original's inference-profile prefix; the latest version when several do. Every other
/// provider's id is the table's.
#[inline(never)]
pub fn provider_model_id(
    provider: Provider,
    original: &str,
    target: &str,
    prices: &PriceTable,
) -> Option<String> {
    if provider != Provider::Bedrock {
        return Some(target.to_owned());
    }
    let target_id = prices.canonical_id(target)?;
    let stands_for_target = |name: &str| {
        prices.canonical_id(name) == Some(target_id)
            || bedrock_base(name).and_then(|base| prices.canonical_id(base)) == Some(target_id)
    };
    let id = prices
        .names()
        .filter(|name| bedrock_base(name).is_some() && stands_for_target(name))
        .max()?;
    let prefix = BEDROCK_PROFILES
        .iter()
        .find(|p| original.starts_with(*p))
        .copied()
        .unwrap_or("");
    Some([prefix, id].concat())
}

/// The model of a Bedrock model id without its vendor and version
/// (`anthropic.claude-3-5-haiku-20241022-v1:0` → `claude-3-5-haiku-20241022`); `None` for a
/// name not in that form (no vendor, no version, or an inference-profile prefix).
fn bedrock_base(name: &str) -> Option<&str> {
    if BEDROCK_PROFILES.iter().any(|p| name.starts_with(p)) {
        return None;
    }
    let (vendor, rest) = name.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if vendor.is_empty()
        || !vendor
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return None;
    }
    let unrevised = match rest.rsplit_once(':') {
        Some((head, revision)) if digits(revision) => head,
        Some(_) => return None,
        None => rest,
    };
    match unrevised.rsplit_once("-v") {
        Some((base, version)) if digits(version) && !base.is_empty() => Some(base),
        _ if unrevised.len() < rest.len() => Some(unrevised),
        _ => None,
    }
}

/// The body with its top-level `"model"` value replaced by `model`; `None` when the body is
/// not a JSON object or has no top-level `model`.
pub fn rewrite_body_model(body: &[u8], model: &str) -> Option<Vec<u8>> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace())?;
    let mut found = None;
    for_each_member(body, start, |key, value| {
        if key == b"model" && found.is_none() {
            found = Some(value);
        }
    })
    .ok()?;
    let range = found?;
    let quoted = serde_json::to_vec(model).ok()?;
    let mut out = Vec::with_capacity(body.len() + quoted.len());
    out.extend_from_slice(body.get(..range.start)?);
    out.extend_from_slice(&quoted);
    out.extend_from_slice(body.get(range.end..)?);
    Some(out)
}

/// The path with the segment naming `old` (as decoded by the route matcher) replaced by
/// `new`, percent-encoded; `None` when no segment names `old`. A Gemini segment keeps its
/// `:method` suffix (`models/gemini-2.5-pro:generateContent`); the query is kept.
pub fn rewrite_path_model(path: &str, old: &str, new: &str) -> Option<String> {
    let (route, query) = match path.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (path, None),
    };
    let mut done = false;
    let segments: Vec<String> = route
        .split('/')
        .map(|segment| {
            if done {
                return segment.to_owned();
            }
            // Bedrock ids contain ':' (`…-v1:0`), percent-encoded in the path; a Gemini
            // segment's literal ':' starts its method.
            let (name, method) = match segment.rfind(':') {
                Some(i) if percent_decode(&segment[..i]) == old => segment.split_at(i),
                _ => (segment, ""),
            };
            if percent_decode(name) == old {
                done = true;
                format!("{}{method}", percent_encode(new))
            } else {
                segment.to_owned()
            }
        })
        .collect();
    if !done {
        return None;
    }
    let mut out = segments.join("/");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Some(out)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SONNET: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

    #[test]
    fn bedrocks_id_is_one_the_price_table_knows_behind_the_originals_profile() {
        let mut prices = PriceTable::shipped().unwrap();
        let bedrock = |prices: &PriceTable, original, target| {
            provider_model_id(Provider::Bedrock, original, target, prices)
        };
        // Nothing in Bedrock's form names it: no guess.
        assert_eq!(bedrock(&prices, SONNET, "claude-3-5-haiku"), None);
        assert_eq!(
            bedrock(&prices, "amazon.nova-pro-v1:0", "amazon.nova-lite"),
            None
        );
        prices
            .add_alias(
                "anthropic.claude-3-5-haiku-20241022-v1:0",
                "claude-3-5-haiku",
            )
            .unwrap();
        prices
            .add_alias("amazon.nova-lite-v1:0", "amazon.nova-lite")
            .unwrap();
        assert_eq!(
            bedrock(&prices, SONNET, "claude-3-5-haiku").as_deref(),
            Some("us.anthropic.claude-3-5-haiku-20241022-v1:0")
        );
        assert_eq!(
            bedrock(
                &prices,
                "anthropic.claude-sonnet-4-5-20250929-v1:0",
                "claude-3-5-haiku"
            )
            .as_deref(),
            Some("anthropic.claude-3-5-haiku-20241022-v1:0")
        );
        assert_eq!(
            bedrock(&prices, "eu.amazon.nova-pro-v1:0", "amazon.nova-lite").as_deref(),
            Some("eu.amazon.nova-lite-v1:0")
        );
        // Every other provider's id is the table's.
        assert_eq!(
            provider_model_id(Provider::Openai, "gpt-4o", "gpt-4o-mini", &prices).as_deref(),
            Some("gpt-4o-mini")
        );
    }

    #[test]
    fn a_bedrock_id_that_is_its_own_entry_stands_for_the_model_it_versions() {
        let mut prices = PriceTable::shipped().unwrap();
        // As the control plane's price file may carry it: an entry of its own.
        let entry = ModelPrices::from_entry_json(
            r#"{"id":"anthropic.claude-3-5-haiku-20241022-v1:0","provider":"bedrock",
            "source":"imported","checked":"2026-12-01",
            "prices":[{"effective_from":"2024-11-04","input":"0.8","output":"4"}]}"#,
        )
        .unwrap();
        prices.upsert(entry).unwrap();
        assert_eq!(
            provider_model_id(Provider::Bedrock, SONNET, "claude-3-5-haiku", &prices).as_deref(),
            Some("us.anthropic.claude-3-5-haiku-20241022-v1:0")
        );
    }

    #[test]
    fn bedrock_ids_are_read_with_their_vendor_and_version() {
        for (name, base) in [
            (
                "anthropic.claude-3-5-haiku-20241022-v1:0",
                Some("claude-3-5-haiku-20241022"),
            ),
            (
                "anthropic.claude-3-5-sonnet-20241022-v2:0",
                Some("claude-3-5-sonnet-20241022"),
            ),
            ("amazon.titan-text-express-v1", Some("titan-text-express")),
            (
                "meta.llama3-3-70b-instruct-v1:0",
                Some("llama3-3-70b-instruct"),
            ),
            ("amazon.nova-lite", None),
            ("claude-3-5-haiku-20241022", None),
            ("us.anthropic.claude-3-5-haiku-20241022-v1:0", None),
            ("Anthropic.claude-v1:0", None),
        ] {
            assert_eq!(bedrock_base(name), base, "{name}");
        }
    }

    #[test]
    fn the_body_model_is_replaced_and_nothing_else_moves() {
        let body = br#"{ "messages":[{"role":"user","content":"model: \"gpt-4o\""}],
  "model" : "gpt-4o", "stream":true, "meta":{"model":"x"}}"#;
        let out = rewrite_body_model(body, "gpt-4o-mini").unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            r#"{ "messages":[{"role":"user","content":"model: \"gpt-4o\""}],
  "model" : "gpt-4o-mini", "stream":true, "meta":{"model":"x"}}"#
        );
        assert_eq!(rewrite_body_model(br#"{"input":"x"}"#, "m"), None);
        assert_eq!(rewrite_body_model(b"[1]", "m"), None);
        assert_eq!(rewrite_body_model(b"", "m"), None);
    }

    #[test]
    fn a_gemini_path_keeps_its_method_and_query() {
        assert_eq!(
            rewrite_path_model(
                "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
                "gemini-2.5-pro",
                "gemini-2.5-flash"
            )
            .as_deref(),
            Some("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
        );
    }

    #[test]
    fn a_bedrock_id_is_matched_and_written_percent_encoded() {
        assert_eq!(
            rewrite_path_model(
                "/model/anthropic.claude-sonnet-4-20250514-v1%3A0/converse",
                "anthropic.claude-sonnet-4-20250514-v1:0",
                "anthropic.claude-3-5-haiku-20241022-v1:0"
            )
            .as_deref(),
            Some("/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse")
        );
        assert_eq!(rewrite_path_model("/model/x/converse", "y", "z"), None);
    }
}
