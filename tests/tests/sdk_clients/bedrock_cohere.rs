//! boto3 bedrock-runtime (SigV4-signed) and cohere.

use tollgate_e2e::mock_provider::strict::{TEST_AWS_ACCESS_KEY_ID, TEST_AWS_SECRET_ACCESS_KEY};

use super::{Client, Expected, check_client};

/// boto3 signs for the host and path it calls; the strict mock verifies the signature, so a
/// gateway that changed either would fail the call.
const BEDROCK: &str = r#"
import json, boto3
client = boto3.client("bedrock-runtime", region_name="us-east-1",
                      endpoint_url="http://bedrock-runtime.us-east-1.amazonaws.com",
                      aws_access_key_id="KEY_ID", aws_secret_access_key="SECRET")
model = "anthropic.claude-sonnet-4-5-20250929-v1:0"
messages = [{"role": "user", "content": [{"text": "Summarise the document."}]}]
answer = client.converse(modelId=model, messages=messages, inferenceConfig={"maxTokens": 256})
print(json.dumps("".join(b.get("text", "") for b in answer["output"]["message"]["content"])))
stream = client.converse_stream(modelId=model, messages=messages, inferenceConfig={"maxTokens": 256})
print(json.dumps("".join(e["contentBlockDelta"]["delta"].get("text", "")
                         for e in stream["stream"] if "contentBlockDelta" in e)))
"#;

#[tokio::test]
async fn bedrock_through_boto3_keeps_its_sigv4_signature_valid_and_is_charged_exactly() {
    check_client(Client {
        label: "bedrock",
        script: &BEDROCK
            .replace("KEY_ID", TEST_AWS_ACCESS_KEY_ID)
            .replace("SECRET", TEST_AWS_SECRET_ACCESS_KEY),
        calls: vec![
            Expected {
                stem: "bedrock-converse-cache",
                text: "Here is the summary of the document.",
                model: "anthropic.claude-sonnet-4-5-20250929-v1:0",
                exact: true,
            },
            Expected {
                stem: "bedrock-converse-stream-cache",
                text: "Hello from Converse.",
                model: "anthropic.claude-sonnet-4-5-20250929-v1:0",
                exact: true,
            },
        ],
    })
    .await;
}

const COHERE: &str = r#"
import json, cohere
client = cohere.ClientV2(api_key="cohere-test-key", base_url="http://api.cohere.com")
messages = [{"role": "user", "content": "What is an LLM?"}]
answer = client.chat(model="command-a-03-2025", messages=messages)
print(json.dumps(answer.message.content[0].text))
text = "".join(e.delta.message.content.text for e in
               client.chat_stream(model="command-a-03-2025", messages=messages)
               if e.type == "content-delta")
print(json.dumps(text))
"#;

#[tokio::test]
async fn cohere_through_its_v2_client_is_charged_its_billed_units() {
    check_client(Client {
        label: "cohere",
        script: COHERE,
        calls: vec![
            Expected {
                stem: "cohere-chat",
                text: "LLMs stand for Large Language Models.",
                model: "command-a-03-2025",
                exact: true,
            },
            Expected {
                stem: "cohere-chat-stream",
                text: "Hello world.",
                model: "command-a-03-2025",
                exact: true,
            },
        ],
    })
    .await;
}
