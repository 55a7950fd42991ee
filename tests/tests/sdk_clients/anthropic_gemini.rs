//! anthropic and google-genai.

use super::{Client, Expected, check_client};

const ANTHROPIC: &str = r#"
import json, warnings, anthropic
warnings.simplefilter("ignore")
client = anthropic.Anthropic(base_url="http://api.anthropic.com", api_key="sk-ant-test", max_retries=0)
messages = [{"role": "user", "content": "Who are you?"}]
answer = client.messages.create(model="claude-sonnet-4-5", max_tokens=256, messages=messages)
print(json.dumps("".join(b.text for b in answer.content if b.type == "text")))
with client.messages.stream(model="claude-sonnet-4-5", max_tokens=256, messages=messages) as stream:
    print(json.dumps("".join(stream.text_stream)))
"#;

#[tokio::test]
async fn anthropic_through_its_sdk_is_charged_exactly_with_cache_tokens() {
    check_client(Client {
        label: "anthropic",
        script: ANTHROPIC,
        calls: vec![
            Expected {
                stem: "anthropic-messages",
                text: "Hi! My name is Claude.",
                model: "claude-sonnet-4-5",
                exact: true,
            },
            Expected {
                stem: "anthropic-messages-stream-cache",
                text: "Hello!",
                model: "claude-sonnet-4-5",
                exact: true,
            },
        ],
    })
    .await;
}

/// google-genai on its default API version (`v1beta`); streamed calls use `alt=sse`.
const GEMINI: &str = r#"
import json, warnings
from google import genai
from google.genai import types
warnings.simplefilter("ignore")
client = genai.Client(api_key="gemini-test-key",
                      http_options=types.HttpOptions(base_url="http://generativelanguage.googleapis.com"))
answer = client.models.generate_content(model="gemini-2.5-flash", contents="Why is the sky blue?")
print(json.dumps(answer.text))
text = "".join(chunk.text or "" for chunk in
               client.models.generate_content_stream(model="gemini-2.5-flash", contents="Will it rain?"))
print(json.dumps(text))
"#;

#[tokio::test]
async fn gemini_through_google_genai_is_charged_exactly_with_thinking_tokens() {
    check_client(Client {
        label: "gemini",
        script: GEMINI,
        calls: vec![
            Expected {
                stem: "gemini-generate-content-thinking-cache",
                text: "The sky appears blue because of Rayleigh scattering.",
                model: "gemini-2.5-flash",
                exact: true,
            },
            Expected {
                stem: "gemini-stream-sse-tool-use",
                text: "Let me check the search results. It will rain.",
                model: "gemini-2.5-flash",
                exact: true,
            },
        ],
    })
    .await;
}
