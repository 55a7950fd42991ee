//! Route matching: method + path (+ host) → provider, API and (for some APIs) the model.
//!
//! Built-in rules cover the providers' documented paths; configured [`RouteRule`]s are tried
//! first, so an operator can map a custom path (a gateway prefix, a private deployment) to
//! any API. Paths are matched by their endings where providers nest them under varying
//! prefixes (`/v1/chat/completions`, `/openai/v1/chat/completions`, `/chat/completions`).

use std::borrow::Cow;

use serde::Deserialize;

use super::{Api, Framing, Provider};

/// A matched request: who serves it, which API, and what the path says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The provider (a label; see [`Provider`]).
    pub provider: Provider,
    /// The API called.
    pub api: Api,
    /// The model named by the path (Azure deployment, Gemini, Bedrock and Vertex paths), if any.
    pub path_model: Option<String>,
    /// The endpoint streams whatever the body says (`converse-stream`, `streamRawPredict`, …).
    pub stream_endpoint: bool,
    /// The query string carries `alt=sse` (Gemini's SSE form).
    pub alt_sse: bool,
}

impl Route {
    /// A route with no path-derived facts (what `--provider/--api` gives `tollgate-inspect`).
    pub fn new(provider: Provider, api: Api) -> Route {
        Route {
            provider,
            api,
            path_model: None,
            stream_endpoint: matches!(api, Api::StreamGenerateContent | Api::ConverseStream),
            alt_sse: false,
        }
    }

    /// Whether the response streams, given the request body's own stream flag.
    pub fn streams(&self, body_stream: bool) -> bool {
        self.stream_endpoint || body_stream
    }

    /// How the response body is framed, given the request body's stream flag.
    pub fn framing(&self, body_stream: bool) -> Framing {
        match self.api {
            Api::StreamGenerateContent if self.alt_sse => Framing::Sse,
            Api::StreamGenerateContent => Framing::JsonArray,
            Api::ConverseStream => Framing::EventStream,
            // InvokeModelWithResponseStream wraps each Anthropic event in an event-stream frame.
            Api::Messages if self.provider == Provider::Bedrock && self.stream_endpoint => {
                Framing::EventStream
            }
            _ if self.streams(body_stream) => Framing::Sse,
            _ => Framing::Json,
        }
    }
}

/// One configured rule (filter config DTO).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// Match only this host (port ignored, case-insensitive). Absent: any host.
    #[serde(default)]
    pub host: Option<String>,
    /// The path without query: exact, or a prefix when it ends with `*`.
    pub path: String,
    /// The provider to report.
    pub provider: Provider,
    /// The API the body speaks.
    pub api: Api,
    /// A fixed model for requests whose body names none.
    #[serde(default)]
    pub model: Option<String>,
}

/// The `routes` section of the filter config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Rules tried before the built-in ones, in order.
    #[serde(default)]
    pub rules: Vec<RouteRule>,
    /// Turn the built-in rules off (only `rules` match).
    #[serde(default)]
    pub disable_builtin: bool,
}

/// A config rule that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The rule's path is empty or does not start with `/`.
    #[error("routes.rules[{index}].path: must start with '/', got {path:?}")]
    BadPath {
        /// The rule's position.
        index: usize,
        /// The path given.
        path: String,
    },
}

/// Validated route rules plus the built-ins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    rules: Vec<RouteRule>,
    builtin: bool,
}

impl TryFrom<RouteConfig> for RouteTable {
    type Error = RouteError;

    fn try_from(config: RouteConfig) -> Result<RouteTable, RouteError> {
        let mut rules = config.rules;
        for (index, rule) in rules.iter_mut().enumerate() {
            if !rule.path.starts_with('/') {
                return Err(RouteError::BadPath {
                    index,
                    path: rule.path.clone(),
                });
            }
            rule.host = rule.host.as_deref().map(|h| normalise_host(h).into_owned());
        }
        Ok(RouteTable {
            rules,
            builtin: !config.disable_builtin,
        })
    }
}

impl RouteTable {
    /// Only the built-in rules.
    pub fn builtin() -> RouteTable {
        RouteTable {
            rules: Vec::new(),
            builtin: true,
        }
    }

    /// The route for a request, or `None` when it is not a metered LLM call.
    ///
    /// `path` is the `:path` pseudo-header, query included; `host` the `:authority`.
    pub fn match_request(&self, method: &str, path: &str, host: Option<&str>) -> Option<Route> {
        if !method.eq_ignore_ascii_case("POST") {
            return None;
        }
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let host = host.map(normalise_host);
        let alt_sse = query.split('&').any(|kv| kv == "alt=sse");
        for rule in &self.rules {
            if rule
                .host
                .as_deref()
                .is_some_and(|h| Some(h) != host.as_deref())
            {
                continue;
            }
            let hit = match rule.path.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => path == rule.path,
            };
            if hit {
                let mut route = Route::new(rule.provider, rule.api);
                route.path_model = rule.model.clone();
                route.alt_sse = alt_sse;
                return Some(route);
            }
        }
        if !self.builtin {
            return None;
        }
        let mut route = builtin_route(path, host.as_deref())?;
        route.alt_sse = alt_sse;
        Some(route)
    }
}

/// Lower-case, port stripped. Borrowed when already so (as clients send it): no allocation
/// on the request's path.
fn normalise_host(host: &str) -> Cow<'_, str> {
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

fn builtin_route(path: &str, host: Option<&str>) -> Option<Route> {
    let path = path.trim_end_matches('/');
    if let Some(route) = google_route(path) {
        return Some(route);
    }
    if let Some(route) = bedrock_route(path) {
        return Some(route);
    }
    if path.ends_with("/v1/messages") || path == "/messages" {
        return Some(Route::new(Provider::Anthropic, Api::Messages));
    }
    if path.ends_with("/v2/chat") {
        return Some(Route::new(Provider::Cohere, Api::CohereChat));
    }
    let api = if path.ends_with("/chat/completions") {
        Api::ChatCompletions
    } else if path.ends_with("/completions") {
        Api::Completions
    } else if path.ends_with("/responses") {
        Api::Responses
    } else if path.ends_with("/embeddings") {
        Api::Embeddings
    } else {
        return None;
    };
    let mut route = Route::new(openai_family_provider(path, host), api);
    // Azure: /openai/deployments/{deployment}/chat/completions — the deployment names the model.
    if let Some(rest) = path.strip_prefix("/openai/deployments/") {
        route.path_model = rest.split('/').next().map(percent_decode);
    }
    Some(route)
}

fn openai_family_provider(path: &str, host: Option<&str>) -> Provider {
    let Some(host) = host else {
        return if path.starts_with("/openai/") {
            Provider::AzureOpenai
        } else {
            Provider::Openai
        };
    };
    match host {
        "api.openai.com" => Provider::Openai,
        "api.mistral.ai" => Provider::Mistral,
        "api.groq.com" => Provider::Groq,
        "api.deepseek.com" => Provider::Deepseek,
        "api.x.ai" => Provider::Xai,
        "api.together.xyz" | "api.together.ai" => Provider::Together,
        h if h.ends_with(".openai.azure.com") || h.ends_with(".cognitiveservices.azure.com") => {
            Provider::AzureOpenai
        }
        _ if path.starts_with("/openai/deployments/") => Provider::AzureOpenai,
        _ => Provider::OpenaiCompatible,
    }
}

/// Gemini (`/v1beta/models/{m}:generateContent`) and Vertex
/// (`/v1/projects/{p}/locations/{l}/publishers/{google|anthropic}/models/{m}:{action}`).
fn google_route(path: &str) -> Option<Route> {
    let (head, action) = path.rsplit_once(':')?;
    let (prefix, model) = head.rsplit_once("/models/")?;
    if model.is_empty() || model.contains('/') {
        return None;
    }
    let vertex = prefix.contains("/publishers/");
    let (provider, api, stream) = match action {
        "generateContent" => (google_provider(vertex), Api::GenerateContent, false),
        "streamGenerateContent" => (google_provider(vertex), Api::StreamGenerateContent, true),
        "rawPredict" if prefix.ends_with("/publishers/anthropic") => {
            (Provider::VertexAi, Api::Messages, false)
        }
        "streamRawPredict" if prefix.ends_with("/publishers/anthropic") => {
            (Provider::VertexAi, Api::Messages, true)
        }
        _ => return None,
    };
    let mut route = Route::new(provider, api);
    route.path_model = Some(percent_decode(model));
    route.stream_endpoint = stream;
    Some(route)
}

fn google_provider(vertex: bool) -> Provider {
    if vertex {
        Provider::VertexAi
    } else {
        Provider::Gemini
    }
}

/// `/model/{modelId}/{converse|converse-stream|invoke|invoke-with-response-stream}`.
fn bedrock_route(path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/model/")?;
    let (model, action) = rest.rsplit_once('/')?;
    let model = percent_decode(model);
    let (api, stream) = match action {
        "converse" => (Api::Converse, false),
        "converse-stream" => (Api::ConverseStream, true),
        // InvokeModel bodies are model-specific; only Anthropic's is metered for now.
        "invoke" if model.contains("anthropic.") => (Api::Messages, false),
        "invoke-with-response-stream" if model.contains("anthropic.") => (Api::Messages, true),
        _ => return None,
    };
    let mut route = Route::new(Provider::Bedrock, api);
    route.path_model = Some(model);
    route.stream_endpoint = stream;
    Some(route)
}

/// Decodes `%XX` escapes (Bedrock model ids arrive as `...-v1%3A0` or escaped ARNs). Invalid
/// escapes and non-UTF-8 results are kept as they were.
pub(crate) fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match decoded {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

#[cfg(test)]
mod tests;
