//! The OpenAI-style clients: openai (OpenAI and Azure OpenAI), mistralai and groq.

use super::{Client, Expected, check_client};

const PROMPT: &str = r#"[{"role": "user", "content": "Describe the picture."}]"#;

/// The OpenAI quickstart, non-streamed then streamed: `chunk.choices[0].delta` on every
/// chunk, which raises IndexError on a chunk without choices.
const OPENAI: &str = r#"
import json, openai
client = openai.OpenAI(base_url="http://api.openai.com/v1", api_key="sk-test-openai", max_retries=0)
messages = json.loads(PROMPT)
answer = client.chat.completions.create(model="gpt-4o-mini", max_tokens=256, messages=messages)
print(json.dumps(answer.choices[0].message.content))
text = ""
for chunk in client.chat.completions.create(model="gpt-4o-mini", max_tokens=256, messages=messages, stream=True):
    text += chunk.choices[0].delta.content or ""
print(json.dumps(text))
"#;

#[tokio::test]
async fn the_openai_quickstart_works_through_the_gateway_and_is_charged_exactly() {
    check_client(Client {
        label: "openai",
        script: &OPENAI.replace("PROMPT", &format!("'{PROMPT}'")),
        calls: vec![
            Expected {
                stem: "openai-chat-cache-reasoning",
                text: "The image shows a wooden boardwalk path running through a lush green field or meadow.",
                model: "gpt-4o-mini",
            exact: true,
            },
            Expected {
                stem: "openai-chat-stream-include-usage",
                text: "Hello! How can I help?",
                model: "gpt-4o-mini",
            exact: true,
            },
        ],
    })
    .await;
}

/// A client that asks for usage gets the usage-only chunk, as from OpenAI.
const OPENAI_ASKS_USAGE: &str = r#"
import json, openai
client = openai.OpenAI(base_url="http://api.openai.com/v1", api_key="sk-test-openai", max_retries=0)
text, usage = "", None
for chunk in client.chat.completions.create(model="gpt-4o-mini", max_tokens=256, stream=True,
        stream_options={"include_usage": True}, messages=[{"role": "user", "content": "Hi"}]):
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
    else:
        usage = chunk.usage
print(json.dumps(text + " | completion_tokens=%d" % usage.completion_tokens))
"#;

#[tokio::test]
async fn an_openai_client_that_asks_for_streamed_usage_still_gets_the_usage_chunk() {
    check_client(Client {
        label: "openai",
        script: OPENAI_ASKS_USAGE,
        calls: vec![Expected {
            stem: "openai-chat-stream-include-usage",
            text: "Hello! How can I help? | completion_tokens=9",
            model: "gpt-4o-mini",
            exact: true,
        }],
    })
    .await;
}

/// Azure OpenAI through `openai.AzureOpenAI`, a deployment named like its model. Azure's
/// first chunk carries only prompt-filter results (no choices), so its users skip empty ones.
const AZURE: &str = r#"
import json, openai
client = openai.AzureOpenAI(azure_endpoint="http://acme.openai.azure.com", api_version="API_VERSION",
                            api_key="azure-test-key", max_retries=0)
messages = [{"role": "user", "content": "Say hi."}]
answer = client.chat.completions.create(model="gpt-4o", max_tokens=256, messages=messages)
print(json.dumps(answer.choices[0].message.content))
text = ""
for chunk in client.chat.completions.create(model="gpt-4o", max_tokens=256, messages=messages, stream=True):
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
print(json.dumps(text))
"#;

/// `stream_usage`: the api-version takes `stream_options`, so the stream reports usage.
fn azure_calls(stream_usage: bool) -> Vec<Expected> {
    vec![
        Expected {
            stem: "openai-chat-cache-reasoning",
            text: "The image shows a wooden boardwalk path running through a lush green field or meadow.",
            model: "gpt-4o",
            exact: true,
        },
        Expected {
            stem: "azure-openai-chat-stream",
            text: "Azure says hi.",
            model: "gpt-4o",
            exact: stream_usage,
        },
    ]
}

#[tokio::test]
async fn azure_openai_through_its_sdk_is_routed_to_the_resource_and_charged_exactly() {
    check_client(Client {
        label: "azure_openai",
        script: &AZURE.replace("API_VERSION", "2024-10-21"),
        calls: azure_calls(true),
    })
    .await;
}

#[tokio::test]
async fn azure_openai_before_api_version_2024_09_01_gets_no_stream_options() {
    // The strict mock answers 400 to stream_options at this version, as Azure does; and
    // the stream has no usage then: its charge is an estimate.
    let stack = check_client(Client {
        label: "azure_openai",
        script: &AZURE.replace("API_VERSION", "2024-06-01"),
        calls: azure_calls(false),
    })
    .await;
    assert!(
        stack
            .upstream_bodies()
            .iter()
            .all(|b| b.get("stream_options").is_none())
    );
}

const MISTRAL: &str = r#"
import json
from mistralai.client import Mistral
client = Mistral(api_key="mistral-test-key", server_url="http://api.mistral.ai")
messages = [{"role": "user", "content": "Bonjour"}]
answer = client.chat.complete(model="mistral-small-latest", max_tokens=256, messages=messages)
print(json.dumps(answer.choices[0].message.content))
text = ""
for event in client.chat.stream(model="mistral-small-latest", max_tokens=256, messages=messages):
    text += event.data.choices[0].delta.content or ""
print(json.dumps(text))
"#;

#[tokio::test]
async fn mistral_streams_without_stream_options_and_is_charged_from_its_last_chunk() {
    let stack = check_client(Client {
        label: "mistral",
        script: MISTRAL,
        calls: vec![
            Expected {
                stem: "openai-chat-cache-reasoning",
                text: "The image shows a wooden boardwalk path running through a lush green field or meadow.",
                model: "mistral-small-latest",
            exact: true,
            },
            Expected {
                stem: "mistral-chat-stream-cache",
                text: "Bonjour !",
                model: "mistral-small-latest",
            exact: true,
            },
        ],
    })
    .await;
    assert!(
        stack
            .upstream_bodies()
            .iter()
            .all(|b| b.get("stream_options").is_none())
    );
}

const GROQ: &str = r#"
import json, groq
client = groq.Groq(api_key="gsk-test-key", base_url="http://api.groq.com", max_retries=0)
messages = [{"role": "user", "content": "Be quick."}]
answer = client.chat.completions.create(model="llama-3.3-70b-versatile", max_tokens=256, messages=messages)
print(json.dumps(answer.choices[0].message.content))
text = ""
for chunk in client.chat.completions.create(model="llama-3.3-70b-versatile", max_tokens=256, messages=messages, stream=True):
    text += chunk.choices[0].delta.content or ""
print(json.dumps(text))
"#;

#[tokio::test]
async fn groq_is_routed_by_its_host_and_charged_from_x_groq_usage() {
    check_client(Client {
        label: "groq",
        script: GROQ,
        calls: vec![
            Expected {
                stem: "openai-chat-cache-reasoning",
                text: "The image shows a wooden boardwalk path running through a lush green field or meadow.",
                model: "llama-3.3-70b-versatile",
            exact: true,
            },
            Expected {
                stem: "groq-chat-stream-x-groq",
                text: "Fast answer.",
                model: "llama-3.3-70b-versatile",
            exact: true,
            },
        ],
    })
    .await;
}

/// OpenAI's background mode as its users write it: create with `background=True`, then
/// resume the response's event stream with `retrieve(id, stream=True)`.
const OPENAI_BACKGROUND: &str = r#"
import json, openai
client = openai.OpenAI(base_url="http://api.openai.com/v1", api_key="sk-test-openai", max_retries=0)
created = client.responses.create(model="o3", input="Summarise the quarter's filings.", background=True)
print(json.dumps(created.status))
text, usage = "", None
for event in client.responses.retrieve(created.id, stream=True, starting_after=2):
    if event.type == "response.output_text.delta":
        text += event.delta
    elif event.type == "response.completed":
        usage = event.response.usage
print(json.dumps(text))
print(json.dumps("output_tokens=%d" % usage.output_tokens))
"#;

#[tokio::test]
async fn an_openai_background_response_resumed_by_the_sdk_is_charged_once_exactly() {
    let stack = tollgate_e2e::stack::Stack::start(tollgate_e2e::stack::StackOptions {
        store: tollgate_e2e::stack::StoreKind::Memory,
        strict_provider: true,
        ..tollgate_e2e::stack::StackOptions::default()
    })
    .await
    .unwrap();
    let proxy = stack.envoy.url();
    let env = [
        ("HTTP_PROXY", proxy.as_str()),
        ("http_proxy", proxy.as_str()),
    ];
    let run = tollgate_e2e::python::run(OPENAI_BACKGROUND, &env)
        .await
        .unwrap();
    assert!(run.ok(), "{run}\n--- envoy ---\n{}", stack.envoy.log());
    let printed: Vec<String> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        printed,
        [
            "queued",
            "The filings show revenue up 12 % on the quarter, driven by subscriptions.",
            "output_tokens=2290",
        ]
    );
    let received = stack.mock.requests();
    assert_eq!(received.len(), 2);
    assert_eq!(received[1].method, "GET");
    assert_eq!(
        received[1].path,
        format!(
            "/v1/responses/{}?starting_after=2&stream=true",
            "resp_68b6f3c4d0e88196a2b4f4c2e0a3b1c40f7d3c7d2b1a0e9f"
        )
    );
    let created: serde_json::Value = serde_json::from_slice(&received[0].body).unwrap();
    let tag = created["metadata"]["tollgate_request_id"].as_str().unwrap();
    let usage = tollgate_model::Usage {
        uncached_input_tokens: 1842 - 1024,
        cached_input_tokens: 1024,
        output_tokens: 2290,
        reasoning_tokens: 2176,
        ..tollgate_model::Usage::default()
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    let settled = loop {
        let settled = stack.control_plane.settlements();
        if !settled.is_empty() {
            break settled;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}",
            stack.envoy.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(settled.len(), 1, "{settled:?}");
    let s = &settled[0];
    assert_eq!((s.request_id.as_str(), s.reserved), (tag, true));
    assert_eq!(
        s.cost.nanos(),
        tollgate_e2e::charges::cost_nanos("o3", &usage).unwrap()
    );
}
