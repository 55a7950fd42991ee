//! Route matching: method + path (+ host) → provider, API and (for some APIs) the model.
//!
//! Built-in rules cover the providers' documented paths; configured [`RouteRule`]s are tried
//! first, so an operator can map a custom path (a private deployment) to any API. Paths are
//! matched by their endings where providers nest them under varying prefixes
//! (`/v1/chat/completions`, `/openai/v1/chat/completions`, `/chat/completions`).
//!
//! A gateway reached under its own host name takes a path prefix per provider
//! ([`GatewayPrefix`], `/mistral/v1/chat/completions`), the same prefixes its Envoy routes
//! strip (`envoy/envoy.template.yaml`): on a host that is not a provider's own, the prefix
//! names the provider and the rest of the path the API.

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
    /// The provider accepts `stream_options` on this path (and API version):
    /// [`accepts_stream_options`].
    pub accepts_stream_options: bool,
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
            accepts_stream_options: accepts_stream_options(provider, "", ""),
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

/// A path prefix by which a client of the gateway's own host name picks a provider
/// (filter config DTO): `{"prefix": "/mistral/", "provider": "mistral"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayPrefix {
    /// Starts and ends with `/`; the path after it is the provider's own.
    pub prefix: String,
    /// The provider to report.
    pub provider: Provider,
}

/// The prefixes of the reference Envoy config's `gateway` virtual host.
pub const DEFAULT_GATEWAY_PREFIXES: [(&str, Provider); 8] = [
    ("/openai/", Provider::Openai),
    ("/azure/", Provider::AzureOpenai),
    ("/anthropic/", Provider::Anthropic),
    ("/gemini/", Provider::Gemini),
    ("/mistral/", Provider::Mistral),
    ("/cohere/", Provider::Cohere),
    ("/groq/", Provider::Groq),
    ("/compat/", Provider::OpenaiCompatible),
];

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
    /// The gateway's path prefixes per provider; absent: [`DEFAULT_GATEWAY_PREFIXES`]
    /// (`[]` turns them off). Part of the built-in rules.
    #[serde(default)]
    pub gateway_prefixes: Option<Vec<GatewayPrefix>>,
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
    /// A gateway prefix does not start and end with `/`, or is `/` alone.
    #[error(
        "routes.gateway_prefixes[{index}].prefix: must start and end with '/' and name something, got {prefix:?}"
    )]
    BadPrefix {
        /// The prefix's position.
        index: usize,
        /// The prefix given.
        prefix: String,
    },
}

/// Validated route rules plus the built-ins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    rules: Vec<RouteRule>,
    builtin: bool,
    prefixes: Vec<GatewayPrefix>,
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
        let prefixes = config.gateway_prefixes.unwrap_or_else(default_prefixes);
        for (index, p) in prefixes.iter().enumerate() {
            if p.prefix.len() < 3 || !p.prefix.starts_with('/') || !p.prefix.ends_with('/') {
                return Err(RouteError::BadPrefix {
                    index,
                    prefix: p.prefix.clone(),
                });
            }
        }
        Ok(RouteTable {
            rules,
            builtin: !config.disable_builtin,
            prefixes,
        })
    }
}

impl RouteTable {
    /// Only the built-in rules.
    pub fn builtin() -> RouteTable {
        RouteTable {
            rules: Vec::new(),
            builtin: true,
            prefixes: default_prefixes(),
        }
    }

    /// The route for a request, or `None` when it is not a metered LLM call.
    ///
    /// `path` is the `:path` pseudo-header, query included; `host` the `:authority`.
    pub fn match_request(&self, method: &str, path: &str, host: Option<&str>) -> Option<Route> {
        let route = self.match_path(path, host)?;
        // Every API is a POST but the retrieval of a stored response, a GET.
        let get = route.api == Api::ResponseRetrieval;
        (method.eq_ignore_ascii_case(if get { "GET" } else { "POST" })).then_some(route)
    }

    fn match_path(&self, path: &str, host: Option<&str>) -> Option<Route> {
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
                route.accepts_stream_options = accepts_stream_options(rule.provider, path, query);
                return Some(route);
            }
        }
        if !self.builtin {
            return None;
        }
        let mut route = self
            .gateway_route(path, host.as_deref())
            .unwrap_or_else(|| builtin_route(path, host.as_deref()))?;
        route.alt_sse = alt_sse;
        if route.api == Api::ResponseRetrieval {
            // `?stream=true` resumes the response's event stream instead of its object.
            route.stream_endpoint = query.split('&').any(|kv| kv == "stream=true");
        }
        route.accepts_stream_options = accepts_stream_options(route.provider, path, query);
        Some(route)
    }

    /// `Some` when `path` starts with a gateway prefix on a host that is not a provider's
    /// own: the prefix's provider and the rest's API (`Some(None)` when the rest is no API).
    fn gateway_route(&self, path: &str, host: Option<&str>) -> Option<Option<Route>> {
        if host.is_some_and(|h| provider_of_host(h).is_some()) {
            return None;
        }
        let p = self.prefixes.iter().find(|p| path.starts_with(&p.prefix))?;
        // Keep the prefix's last `/`: the provider's own path starts with it.
        let rest = path.get(p.prefix.len() - 1..).unwrap_or("/");
        Some(builtin_route(rest, None).map(|mut route| {
            route.provider = match (p.provider, route.provider) {
                // Bedrock, Vertex: the path says who, whatever the prefix.
                (_, Provider::Bedrock | Provider::VertexAi) => route.provider,
                (provider, _) => provider,
            };
            route
        }))
    }
}

/// Whether `provider` accepts `stream_options` in a request body on `path` (without its
/// query) with `query`. Mistral refuses any field it does not know (422 `extra_forbidden`)
/// and Groq reports usage in `x_groq` on its own, so neither gets it; Azure OpenAI takes it
/// from api-version 2024-09-01 (dated and `-preview` versions alike) and on its `/openai/v1/`
/// API, which has no api-version; it refuses it before (400). The others take it.
pub fn accepts_stream_options(provider: Provider, path: &str, query: &str) -> bool {
    match provider {
        Provider::Mistral | Provider::Groq => false,
        Provider::AzureOpenai => match query
            .split('&')
            .find_map(|kv| kv.strip_prefix("api-version="))
        {
            // `YYYY-MM-DD[-preview]` compares as text; a named version (`preview`,
            // `latest`) is a current one.
            Some(version) => match version.get(..10) {
                Some(date) if date.bytes().next().is_some_and(|b| b.is_ascii_digit()) => {
                    date >= "2024-09-01"
                }
                _ => true,
            },
            None => path.contains("/openai/v1/"),
        },
        _ => true,
    }
}

fn default_prefixes() -> Vec<GatewayPrefix> {
    DEFAULT_GATEWAY_PREFIXES
        .iter()
        .map(|(prefix, provider)| GatewayPrefix {
            prefix: (*prefix).to_owned(),
            provider: *provider,
        })
        .collect()
}

/// The provider whose own API host `host` (normalised) is, if any.
pub fn provider_of_host(host: &str) -> Option<Provider> {
    let provider = match host {
        "api.openai.com" => Provider::Openai,
        "api.anthropic.com" => Provider::Anthropic,
        "generativelanguage.googleapis.com" => Provider::Gemini,
        "api.mistral.ai" => Provider::Mistral,
        "api.groq.com" => Provider::Groq,
        "api.deepseek.com" => Provider::Deepseek,
        "api.x.ai" => Provider::Xai,
        "api.together.xyz" | "api.together.ai" => Provider::Together,
        "api.cohere.com" | "api.cohere.ai" => Provider::Cohere,
        h if h.ends_with(".openai.azure.com")
            || h.ends_with(".cognitiveservices.azure.com")
            || h.ends_with(".services.ai.azure.com") =>
        {
            Provider::AzureOpenai
        }
        h if h.ends_with("-aiplatform.googleapis.com") || h == "aiplatform.googleapis.com" => {
            Provider::VertexAi
        }
        h if h.starts_with("bedrock-runtime") && h.ends_with(".amazonaws.com") => Provider::Bedrock,
        _ => return None,
    };
    Some(provider)
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
    if let Some(api) = stored_response_api(path) {
        return Some(Route::new(openai_family_provider(path, host), api));
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

/// `…/responses/{id}` (retrieval) or `…/responses/{id}/cancel`: a stored response, named by
/// its id (`resp_…`); `…/responses/{id}/input_items` is no call.
fn stored_response_api(path: &str) -> Option<Api> {
    let (head, cancel) = match path.strip_suffix("/cancel") {
        Some(head) => (head, true),
        None => (path, false),
    };
    let (parent, id) = head.rsplit_once('/')?;
    if !parent.ends_with("/responses") || id.is_empty() || id == "input_items" {
        return None;
    }
    Some(if cancel {
        Api::ResponseCancel
    } else {
        Api::ResponseRetrieval
    })
}

fn openai_family_provider(path: &str, host: Option<&str>) -> Provider {
    let Some(host) = host else {
        return if path.starts_with("/openai/") {
            Provider::AzureOpenai
        } else {
            Provider::Openai
        };
    };
    match provider_of_host(host) {
        Some(
            p @ (Provider::Openai
            | Provider::Mistral
            | Provider::Groq
            | Provider::Deepseek
            | Provider::Xai
            | Provider::Together
            | Provider::AzureOpenai),
        ) => p,
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
