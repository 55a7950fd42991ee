//! Which provider API a request is for, and what that decides: the request and usage
//! dialect, and the framing of the response.
//!
//! [`routes`] maps method + path (+ host) to a [`Route`]; the readers in [`crate::request`],
//! [`crate::usage`] and [`crate::stream`] take the route's [`Dialect`] and [`Framing`].

pub mod routes;

use serde::{Deserialize, Serialize};

pub use routes::{Route, RouteConfig, RouteError, RouteRule, RouteTable};

/// Who serves the call. A label for reports and metrics; the [`Dialect`] decides parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// api.openai.com.
    Openai,
    /// Azure OpenAI (`*.openai.azure.com`, `*.cognitiveservices.azure.com`).
    AzureOpenai,
    /// api.anthropic.com.
    Anthropic,
    /// Google AI Studio (generativelanguage.googleapis.com).
    Gemini,
    /// Google Vertex AI (Gemini or Anthropic models).
    VertexAi,
    /// AWS Bedrock runtime.
    Bedrock,
    /// Mistral AI's platform.
    Mistral,
    /// GroqCloud.
    Groq,
    /// DeepSeek's platform.
    Deepseek,
    /// xAI.
    Xai,
    /// Together AI.
    Together,
    /// Cohere.
    Cohere,
    /// Any other server speaking the OpenAI API (vLLM, Ollama, …).
    OpenaiCompatible,
}

impl Provider {
    /// The snake_case name used in config, reports and `tollgate-inspect`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::AzureOpenai => "azure_openai",
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
            Provider::VertexAi => "vertex_ai",
            Provider::Bedrock => "bedrock",
            Provider::Mistral => "mistral",
            Provider::Groq => "groq",
            Provider::Deepseek => "deepseek",
            Provider::Xai => "xai",
            Provider::Together => "together",
            Provider::Cohere => "cohere",
            Provider::OpenaiCompatible => "openai_compatible",
        }
    }
}

/// The API endpoint called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// OpenAI `chat/completions`.
    ChatCompletions,
    /// OpenAI legacy `completions`.
    Completions,
    /// OpenAI `responses`.
    Responses,
    /// OpenAI `GET responses/{id}` (with `stream=true`: resuming its event stream): where a
    /// background response's usage arrives.
    ResponseRetrieval,
    /// OpenAI `POST responses/{id}/cancel`: a background response stopped, with what it used.
    ResponseCancel,
    /// OpenAI `embeddings`.
    Embeddings,
    /// Anthropic `messages` (also through Bedrock InvokeModel and Vertex rawPredict).
    Messages,
    /// Gemini `generateContent`.
    GenerateContent,
    /// Gemini `streamGenerateContent`.
    StreamGenerateContent,
    /// Bedrock `converse`.
    Converse,
    /// Bedrock `converse-stream`.
    ConverseStream,
    /// Cohere v2 `chat`.
    CohereChat,
}

impl Api {
    /// The snake_case name used in config, reports and `tollgate-inspect`.
    pub fn as_str(self) -> &'static str {
        match self {
            Api::ChatCompletions => "chat_completions",
            Api::Completions => "completions",
            Api::Responses => "responses",
            Api::ResponseRetrieval => "response_retrieval",
            Api::ResponseCancel => "response_cancel",
            Api::Embeddings => "embeddings",
            Api::Messages => "messages",
            Api::GenerateContent => "generate_content",
            Api::StreamGenerateContent => "stream_generate_content",
            Api::Converse => "converse",
            Api::ConverseStream => "converse_stream",
            Api::CohereChat => "cohere_chat",
        }
    }

    /// The body and usage dialect this API speaks.
    pub fn dialect(self) -> Dialect {
        match self {
            Api::ChatCompletions | Api::Completions | Api::Embeddings => Dialect::OpenaiChat,
            Api::Responses | Api::ResponseRetrieval | Api::ResponseCancel => {
                Dialect::OpenaiResponses
            }
            Api::Messages => Dialect::Anthropic,
            Api::GenerateContent | Api::StreamGenerateContent => Dialect::Gemini,
            Api::Converse | Api::ConverseStream => Dialect::Converse,
            Api::CohereChat => Dialect::Cohere,
        }
    }
}

/// A family of request and usage shapes; each has its own usage extractor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// OpenAI chat/completions/embeddings and every OpenAI-compatible server.
    OpenaiChat,
    /// OpenAI Responses API.
    OpenaiResponses,
    /// Anthropic Messages.
    Anthropic,
    /// Gemini `usageMetadata`.
    Gemini,
    /// Bedrock Converse.
    Converse,
    /// Cohere v2 (`billed_units`).
    Cohere,
}

/// How a response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framing {
    /// One JSON document.
    Json,
    /// Server-sent events.
    Sse,
    /// Gemini's `streamGenerateContent` without `alt=sse`: one JSON array, element by element.
    JsonArray,
    /// AWS event-stream binary messages.
    EventStream,
}
