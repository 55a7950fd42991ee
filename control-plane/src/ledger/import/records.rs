//! Past calls read into request records: Tollgate's own CSV (the records export's columns)
//! and JSON lines (the records export's objects), and LiteLLM's spend logs
//! (`LiteLLM_SpendLogs` exported as CSV).
//!
//! Each row gets a stable import id: its request id when the file has one, else a SHA-256 of
//! the row's own text.

use tollgate_model::scope::ScopeKind;

use super::{ImportError, ImportRow, Row, err, hash_id, json_err, label, scope, usd_to_nanos};
use crate::ledger::{CallOutcome, RecordSource, RequestRecord, TokenCounts};

fn base_record(id: &str, ended: i64) -> RequestRecord {
    RequestRecord {
        request_id: id.to_owned(),
        started_at_ms: ended,
        ended_at_ms: ended,
        recorded_at_ms: 0,
        scopes: Vec::new(),
        provider: String::new(),
        api: None,
        requested_model: String::new(),
        charged_model: String::new(),
        tokens: TokenCounts::default(),
        cost_nanos: 0,
        breakdown: None,
        estimated: false,
        outcome: CallOutcome::Allowed,
        deny_reason: None,
        budget_id: None,
        source: RecordSource::Import,
    }
}

pub(super) fn tollgate_row(r: &Row<'_>) -> Result<ImportRow, ImportError> {
    let ended = r.time("ended_at")?;
    let model = match r.get("charged_model") {
        Some(m) => m,
        None => r.need("model")?,
    };
    let cost_nanos = match (r.get("cost_nanos"), r.get("cost_usd")) {
        (Some(n), _) => n
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| err(r.line, "cost_nanos", format!("{n:?} is not nano-USD")))?,
        (None, Some(u)) => usd_to_nanos(u)
            .filter(|n| *n >= 0)
            .ok_or_else(|| err(r.line, "cost_usd", format!("{u:?} is not a USD amount")))?,
        (None, None) => {
            return Err(err(
                r.line,
                "cost_nanos",
                "cost_nanos or cost_usd is required",
            ));
        }
    };
    let id = r
        .get("request_id")
        .map_or_else(|| hash_id(&r.text()), str::to_owned);
    let mut rec = base_record(&id, ended);
    if r.get("started_at").is_some() {
        rec.started_at_ms = r.time("started_at")?.min(ended);
    }
    for s in r.get("scopes").unwrap_or("").split_whitespace() {
        rec.scopes
            .push(s.parse().map_err(|e: tollgate_model::scope::ScopeError| {
                err(r.line, "scopes", e.to_string())
            })?);
    }
    rec.provider = label(r.line, "provider", r.need("provider")?)?;
    rec.api = r.get("api").map(str::to_owned);
    rec.charged_model = model.to_owned();
    rec.requested_model = r.get("requested_model").unwrap_or(model).to_owned();
    rec.tokens = TokenCounts {
        uncached_input: r.count("uncached_input_tokens")?,
        cached_input: r.count("cached_input_tokens")?,
        cache_write_5m: r.count("cache_write_5m_tokens")?,
        cache_write_1h: r.count("cache_write_1h_tokens")?,
        output: r.count("output_tokens")?,
        reasoning: r.count("reasoning_tokens")?,
        images: r.count("images")?,
        audio_seconds: r.count("audio_seconds")?,
    };
    rec.cost_nanos = cost_nanos;
    rec.estimated = r.get("estimated") == Some("true");
    if let Some(o) = r.get("outcome") {
        rec.outcome = serde_json::from_value(serde_json::Value::String(o.to_owned()))
            .map_err(|_| err(r.line, "outcome", format!("{o:?} is not an outcome")))?;
    }
    rec.budget_id = r.get("budget_id").map(str::to_owned);
    Ok(ImportRow { id, record: rec })
}

/// LiteLLM's provider for a model written `provider/model`, else `custom_llm_provider`.
pub(super) fn litellm_row(r: &Row<'_>) -> Result<ImportRow, ImportError> {
    let ended = r.time("endTime")?;
    let raw_model = r.need("model")?;
    let (prefix, model) = raw_model.split_once('/').unwrap_or(("", raw_model));
    let provider = r
        .get("custom_llm_provider")
        .unwrap_or(if prefix.is_empty() { "unknown" } else { prefix });
    let spend = r.need("spend")?;
    let cost_nanos = usd_to_nanos(spend)
        .filter(|n| *n >= 0)
        .ok_or_else(|| err(r.line, "spend", format!("{spend:?} is not a USD amount")))?;
    let id = r
        .get("request_id")
        .map_or_else(|| hash_id(&r.text()), str::to_owned);
    let mut rec = base_record(&id, ended);
    if r.get("startTime").is_some() {
        rec.started_at_ms = r.time("startTime")?.min(ended);
    }
    if let Some(t) = r.get("team_id") {
        rec.scopes
            .push(scope(r.line, "team_id", ScopeKind::Team, t)?);
    }
    if let Some(u) = r.get("end_user").or_else(|| r.get("user")) {
        rec.scopes.push(scope(r.line, "user", ScopeKind::User, u)?);
    }
    if let Some(k) = r.get("api_key") {
        // LiteLLM stores the key's hash already.
        rec.scopes
            .push(scope(r.line, "api_key", ScopeKind::Key, k)?);
    }
    if let Some(tags) = r.get("request_tags") {
        let list: Vec<String> = serde_json::from_str(tags)
            .map_err(|_| err(r.line, "request_tags", "not a JSON array of strings"))?;
        for t in list {
            rec.scopes
                .push(scope(r.line, "request_tags", ScopeKind::Tag, &t)?);
        }
    }
    rec.provider = label(r.line, "custom_llm_provider", provider)?;
    rec.api = r.get("call_type").map(str::to_owned);
    rec.charged_model = model.to_owned();
    rec.requested_model = r.get("model_group").unwrap_or(model).to_owned();
    rec.tokens.uncached_input = r.count("prompt_tokens")?;
    rec.tokens.output = r.count("completion_tokens")?;
    rec.cost_nanos = cost_nanos;
    Ok(ImportRow { id, record: rec })
}

pub(super) fn read_jsonl(body: &[u8]) -> Result<Vec<ImportRow>, ImportError> {
    let text = std::str::from_utf8(body).map_err(|_| err(1, "file", "not UTF-8"))?;
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let mut d = serde_json::Deserializer::from_str(l);
        let mut rec: RequestRecord =
            serde_path_to_error::deserialize(&mut d).map_err(|e| json_err(i + 1, &e))?;
        rec.source = RecordSource::Import;
        if rec.provider.chars().any(char::is_whitespace) {
            return Err(err(i + 1, "provider", "holds whitespace"));
        }
        out.push(ImportRow {
            id: rec.request_id.clone(),
            record: rec,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::{ImportFormat, Parsed, read as read_any};
    use super::*;

    fn read(format: ImportFormat, body: &[u8]) -> Result<Vec<ImportRow>, ImportError> {
        match read_any(format, body)? {
            Parsed::Records(rows) => Ok(rows),
            Parsed::Spend(_) => panic!("{format:?} read as spend rows"),
        }
    }

    #[test]
    fn litellm_spend_logs_read_with_scopes_tokens_and_exact_cost() {
        let csv = "request_id,call_type,api_key,spend,total_tokens,prompt_tokens,completion_tokens,startTime,endTime,model,model_group,custom_llm_provider,user,team_id,end_user,request_tags\n\
                   chatcmpl-1,acompletion,88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b,0.000105,45,20,25,2025-03-01 10:00:00.123,2025-03-01 10:00:01.500,openai/gpt-4o-mini,gpt-4o-mini,openai,alice,team-a,,\"[\"\"prod\"\"]\"\n";
        let rows = read(ImportFormat::LitellmCsv, csv.as_bytes()).unwrap();
        let r = &rows[0].record;
        assert_eq!(rows[0].id, "chatcmpl-1");
        assert_eq!(r.cost_nanos, 105_000);
        assert_eq!((r.tokens.uncached_input, r.tokens.output), (20, 25));
        assert_eq!(r.charged_model, "gpt-4o-mini");
        assert_eq!(r.provider, "openai");
        let scopes: Vec<String> = r.scopes.iter().map(ToString::to_string).collect();
        assert_eq!(scopes[0], "team:team-a");
        assert!(
            scopes.contains(&"tag:prod".to_owned()) && scopes.contains(&"user:alice".to_owned())
        );
        assert_eq!(r.ended_at_ms - r.started_at_ms, 1_377);
    }

    #[test]
    fn a_bad_row_names_its_line_and_column() {
        let csv = "ended_at,provider,model,cost_usd\n2025-01-01T00:00:00Z,openai,gpt-4o,0.1\nyesterday,openai,gpt-4o,0.1\n";
        let e = read(ImportFormat::TollgateCsv, csv.as_bytes()).unwrap_err();
        assert_eq!((e.line, e.column.as_str()), (3, "ended_at"));
        let csv = "ended_at,provider,model\n2025-01-01T00:00:00Z,openai,gpt-4o\n";
        let e = read(ImportFormat::TollgateCsv, csv.as_bytes()).unwrap_err();
        assert_eq!((e.line, e.column.as_str()), (2, "cost_nanos"));
    }

    #[test]
    fn rows_without_an_id_get_the_same_id_every_time() {
        let csv = "ended_at,provider,model,cost_usd\n2025-01-01T00:00:00Z,openai,gpt-4o,0.1\n";
        let a = read(ImportFormat::TollgateCsv, csv.as_bytes()).unwrap();
        let b = read(ImportFormat::TollgateCsv, csv.as_bytes()).unwrap();
        assert_eq!(a[0].id, b[0].id);
        assert_eq!(a[0].record.cost_nanos, 100_000_000);
    }
}
