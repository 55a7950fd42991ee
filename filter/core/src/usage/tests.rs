use super::*;

fn usage(dialect: Dialect, body: &str) -> Usage {
    extract_usage(dialect, body.as_bytes()).unwrap()
}

#[test]
fn openai_cached_and_reasoning_tokens_are_subsets() {
    let u = usage(
        Dialect::OpenaiChat,
        r#"{"id":"x","usage":{"prompt_tokens":2006,"completion_tokens":300,
        "prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0},
        "completion_tokens_details":{"reasoning_tokens":256}}}"#,
    );
    assert_eq!(u.uncached_input_tokens, 86);
    assert_eq!(u.cached_input_tokens, 1920);
    assert_eq!(u.output_tokens, 300);
    assert_eq!(u.reasoning_tokens, 256);
}

#[test]
fn openai_cache_writes_are_part_of_the_prompt() {
    let u = usage(
        Dialect::OpenaiChat,
        r#"{"usage":{"prompt_tokens":1000,"completion_tokens":5,
        "prompt_tokens_details":{"cached_tokens":100,"cache_write_tokens":800}}}"#,
    );
    assert_eq!(
        (
            u.uncached_input_tokens,
            u.cached_input_tokens,
            u.cache_write_5m_tokens
        ),
        (100, 100, 800)
    );
}

#[test]
fn anthropic_input_excludes_cache_and_the_ttl_split_is_kept() {
    let u = usage(
        Dialect::Anthropic,
        r#"{"usage":{"input_tokens":50,"cache_read_input_tokens":1000,
        "cache_creation_input_tokens":300,
        "cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":200},
        "output_tokens":20,"service_tier":"priority"}}"#,
    );
    assert_eq!(u.uncached_input_tokens, 50);
    assert_eq!(u.cached_input_tokens, 1000);
    assert_eq!(
        (u.cache_write_5m_tokens, u.cache_write_1h_tokens),
        (100, 200)
    );
    assert_eq!(u.total_input_tokens(), 1350);
    assert_eq!(u.service_tier, ServiceTier::Priority);
}

#[test]
fn anthropic_stream_reports_merge_field_by_field_with_the_last_winning() {
    let start = extract_report(
        Dialect::Anthropic,
        br#"{"type":"message_start","message":{"usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":1}}}"#,
    )
    .unwrap();
    let delta = extract_report(
        Dialect::Anthropic,
        br#"{"type":"message_delta","usage":{"input_tokens":900,"output_tokens":40}}"#,
    )
    .unwrap();
    let mut merged = start;
    merged.merge(&delta);
    let u = merged.normalize(Dialect::Anthropic);
    assert_eq!((u.uncached_input_tokens, u.cached_input_tokens), (900, 5));
    assert_eq!(u.output_tokens, 40);
}

#[test]
fn gemini_thoughts_are_extra_output_and_tool_prompts_extra_input() {
    let u = usage(
        Dialect::Gemini,
        r#"{"candidates":[],"usageMetadata":{"promptTokenCount":100,"cachedContentTokenCount":60,
        "candidatesTokenCount":30,"thoughtsTokenCount":70,"toolUsePromptTokenCount":15,
        "totalTokenCount":215}}"#,
    );
    assert_eq!(u.uncached_input_tokens, 55);
    assert_eq!(u.cached_input_tokens, 60);
    assert_eq!(u.output_tokens, 100);
    assert_eq!(u.reasoning_tokens, 70);
}

#[test]
fn bedrock_converse_accepts_both_spellings_and_splits_writes_by_ttl() {
    let u = usage(
        Dialect::Converse,
        r#"{"usage":{"inputTokenCount":12,"outputTokenCount":7,"cacheReadInputTokenCount":3,
        "cacheWriteInputTokens":30,"cacheDetails":[{"ttl":"1h","inputTokens":20},{"ttl":"5m","inputTokens":10}]}}"#,
    );
    assert_eq!(
        (
            u.uncached_input_tokens,
            u.output_tokens,
            u.cached_input_tokens
        ),
        (12, 7, 3)
    );
    assert_eq!((u.cache_write_5m_tokens, u.cache_write_1h_tokens), (10, 20));
}

#[test]
fn a_bedrock_usage_carrying_both_spellings_of_each_count_is_read_with_its_ttl_split() {
    // As real Converse answers send it: every count twice, and the writes split by TTL.
    let u = usage(
        Dialect::Converse,
        r#"{"output":{},"usage":{"inputTokens":18,"inputTokenCount":18,"outputTokens":240,
        "outputTokenCount":240,"totalTokens":5658,"cacheReadInputTokens":3200,
        "cacheReadInputTokenCount":3200,"cacheWriteInputTokens":2200,"cacheWriteInputTokenCount":2200,
        "cacheDetails":[{"inputTokens":1800,"ttl":"1h"},{"inputTokens":400,"ttl":"5m"}]}}"#,
    );
    assert_eq!(
        (
            u.uncached_input_tokens,
            u.cached_input_tokens,
            u.output_tokens
        ),
        (18, 3200, 240)
    );
    assert_eq!(
        (u.cache_write_5m_tokens, u.cache_write_1h_tokens),
        (400, 1800)
    );
    assert!(!u.estimated);
}

#[test]
fn a_usage_object_that_repeats_a_key_is_read_with_the_last_value() {
    let anthropic = usage(
        Dialect::Anthropic,
        r#"{"type":"message_delta","usage":{"output_tokens":3,"input_tokens":9,"output_tokens":41}}"#,
    );
    assert_eq!(
        (anthropic.uncached_input_tokens, anthropic.output_tokens),
        (9, 41)
    );
    let openai = usage(
        Dialect::OpenaiChat,
        r#"{"usage":{"prompt_tokens":20,"prompt_tokens":25,"completion_tokens":4,
        "prompt_tokens_details":{"cached_tokens":5},"prompt_tokens_details":{"cached_tokens":10}}}"#,
    );
    assert_eq!(
        (openai.uncached_input_tokens, openai.cached_input_tokens),
        (15, 10)
    );
}

#[test]
fn newer_usage_fields_nobody_knows_yet_are_skipped_not_fatal() {
    let u = usage(
        Dialect::Anthropic,
        r#"{"usage":{"input_tokens":7,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,
        "cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0,"ephemeral_24h_input_tokens":0},
        "server_tool_use":{"web_search_requests":1,"web_fetch_requests":0},"output_tokens":12,
        "service_tier":"standard","inference_geo":"us","future":[1,{"x":null}]}}"#,
    );
    assert_eq!((u.uncached_input_tokens, u.output_tokens), (7, 12));
}

#[test]
fn mistral_deepseek_and_groq_variants_are_understood() {
    let mistral = usage(
        Dialect::OpenaiChat,
        r#"{"usage":{"prompt_tokens":20,"completion_tokens":3,"total_tokens":23,"num_cached_tokens":16}}"#,
    );
    assert_eq!(
        (mistral.uncached_input_tokens, mistral.cached_input_tokens),
        (4, 16)
    );
    let deepseek = usage(
        Dialect::OpenaiChat,
        r#"{"usage":{"prompt_tokens":30,"completion_tokens":3,"prompt_cache_hit_tokens":10,"prompt_cache_miss_tokens":20}}"#,
    );
    assert_eq!(deepseek.cached_input_tokens, 10);
    let groq = usage(
        Dialect::OpenaiChat,
        r#"{"choices":[],"x_groq":{"id":"req_1","usage":{"prompt_tokens":9,"completion_tokens":2}}}"#,
    );
    assert_eq!((groq.uncached_input_tokens, groq.output_tokens), (9, 2));
}

#[test]
fn cohere_bills_billed_units_not_tokens() {
    let u = usage(
        Dialect::Cohere,
        r#"{"usage":{"billed_units":{"input_tokens":5,"output_tokens":418},"tokens":{"input_tokens":71,"output_tokens":418}}}"#,
    );
    assert_eq!((u.uncached_input_tokens, u.output_tokens), (5, 418));
}

#[test]
fn a_usage_key_inside_a_string_or_earlier_object_is_not_taken() {
    let body = r#"{"choices":[{"message":{"content":"say \"usage\": {\"prompt_tokens\": 1}",
        "tool_calls":[{"function":{"arguments":"{\"usage\":{\"prompt_tokens\":99}}"}}]}}],
        "usage":{"prompt_tokens":7,"completion_tokens":1},"metadata":{"usage":"x"}}"#;
    assert_eq!(usage(Dialect::OpenaiChat, body).uncached_input_tokens, 7);
}

/// Both searches of `json` with the same answer, which is returned.
fn usage_both_ways(json: &str) -> Option<u64> {
    let finder = locate::UsageFinder::new(Dialect::OpenaiChat);
    let body = finder.find(json.as_bytes());
    let event = finder.find_in_event(json.as_bytes());
    assert_eq!(body, event, "{json}");
    body.map(|r| r.normalize(Dialect::OpenaiChat).uncached_input_tokens)
}

#[test]
fn an_event_and_a_body_find_the_same_last_usage_object_however_many_candidates() {
    // Candidates after the real one are not usage objects: nulls, strings, escaped text.
    let noise = r#","usage":null,"x":"\"usage\":{}","meta":{"usage":"n/a"}"#;
    for junk_after in [0, 1, 3, 4, 5, 8, 30] {
        let json = format!(
            r#"{{"usage":{{"prompt_tokens":3}},"choices":[{{"usage":{{"prompt_tokens":5}}}}]{}}}"#,
            noise.repeat(junk_after),
        );
        assert_eq!(
            usage_both_ways(&json),
            Some(5),
            "{junk_after} junk candidates"
        );
    }
    assert_eq!(usage_both_ways(&noise.repeat(9)), None);
}

proptest::proptest! {
    #[test]
    fn an_event_and_a_body_agree_on_any_arrangement_of_candidates(
        pieces in proptest::collection::vec(0usize..6, 0..24)
    ) {
        const PIECES: [&str; 6] = [
            r#""usage":{"prompt_tokens":1},"#,
            r#""usage":{"prompt_tokens":2}"#,
            r#""usage":null,"#,
            r#""s":""usage":{"prompt_tokens":9}","#,
            r#""usage""#,
            r#"{"x":1},"#,
        ];
        let json: String = pieces.iter().filter_map(|&i| PIECES.get(i).copied()).collect();
        usage_both_ways(&json);
    }
}

#[test]
fn missing_null_or_malformed_usage_is_none_not_a_panic() {
    for body in [
        r#"{"id":"x"}"#,
        r#"{"usage":null}"#,
        r#"{"usage":{"prompt_tokens":"#,
        r#"{"usage":[1,2]}"#,
        "not json at all",
        "",
    ] {
        assert_eq!(
            extract_usage(Dialect::OpenaiChat, body.as_bytes()),
            None,
            "{body}"
        );
    }
    assert_eq!(
        extract_usage(Dialect::Anthropic, b"{\"usage\":{\xff\xfe}}"),
        None
    );
}

#[test]
fn invalid_counts_are_dropped_and_counted() {
    let report = extract_report(
        Dialect::Anthropic,
        br#"{"usage":{"input_tokens":-5,"output_tokens":1e40,"cache_read_input_tokens":3}}"#,
    )
    .unwrap();
    assert_eq!(report.invalid_fields, 2);
    let u = report.normalize(Dialect::Anthropic);
    assert_eq!(
        (
            u.uncached_input_tokens,
            u.output_tokens,
            u.cached_input_tokens
        ),
        (0, 0, 3)
    );
}

#[test]
fn reported_subsets_larger_than_their_totals_do_not_underflow() {
    let u = usage(
        Dialect::OpenaiChat,
        r#"{"usage":{"prompt_tokens":5,"completion_tokens":1,
        "prompt_tokens_details":{"cached_tokens":50},"completion_tokens_details":{"reasoning_tokens":9}}}"#,
    );
    assert_eq!((u.uncached_input_tokens, u.reasoning_tokens), (0, 1));
}

#[test]
fn openai_priority_and_flex_tiers_are_read_beside_the_usage() {
    let body = |tier: &str| {
        format!(
            r#"{{"model":"gpt-5","service_tier":"{tier}","usage":{{"prompt_tokens":1,"completion_tokens":1}}}}"#
        )
    };
    let tier = |t: &str| usage(Dialect::OpenaiChat, &body(t)).service_tier;
    assert_eq!(tier("priority"), ServiceTier::Priority);
    assert_eq!(tier("flex"), ServiceTier::Batch);
    assert_eq!(tier("default"), ServiceTier::Standard);
    let anthropic = usage(
        Dialect::Anthropic,
        r#"{"service_tier":"priority","usage":{"input_tokens":1,"output_tokens":1}}"#,
    );
    assert_eq!(anthropic.service_tier, ServiceTier::Standard);
}

#[test]
fn reasoning_reported_apart_from_completion_is_added_to_output() {
    // xAI: total = prompt + completion + reasoning.
    let xai = usage(
        Dialect::OpenaiChat,
        r#"{"usage":{"prompt_tokens":32,"completion_tokens":9,"total_tokens":135,
        "completion_tokens_details":{"reasoning_tokens":94}}}"#,
    );
    assert_eq!((xai.output_tokens, xai.reasoning_tokens), (103, 94));
    // OpenAI: total = prompt + completion, reasoning inside completion.
    let openai = usage(
        Dialect::OpenaiChat,
        r#"{"usage":{"prompt_tokens":32,"completion_tokens":103,"total_tokens":135,
        "completion_tokens_details":{"reasoning_tokens":94}}}"#,
    );
    assert_eq!((openai.output_tokens, openai.reasoning_tokens), (103, 94));
}
