//! Upstream providers: how to reach one (address, TLS, auth headers, timeouts) and how its wire
//! format maps to ours. One file per wire format; `openai` and `azure` speak OpenAI's.

pub mod anthropic;
pub mod anthropic_inbound;
pub mod bedrock;
pub mod gemini;
pub mod openai;
pub mod translate;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use pingora::upstreams::peer::HttpPeer;

use crate::config::{ProviderConfig, ProviderKind, Timeouts};
use translate::WireFormat;

/// A provider's own wire format, when it is not OpenAI's.
pub struct Format(pub Box<dyn WireFormat>);

impl std::fmt::Debug for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Format({})", self.0.kind())
    }
}

/// The OpenAI endpoints Switchyard proxies, each a suffix of a provider's `base_url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
}

impl Endpoint {
    pub fn from_path(path: &str) -> Option<Endpoint> {
        match path.trim_end_matches('/') {
            "/v1/chat/completions" => Some(Endpoint::ChatCompletions),
            "/v1/completions" => Some(Endpoint::Completions),
            "/v1/embeddings" => Some(Endpoint::Embeddings),
            _ => None,
        }
    }

    /// The path after the provider's base URL.
    pub fn suffix(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/chat/completions",
            Endpoint::Completions => "/completions",
            Endpoint::Embeddings => "/embeddings",
        }
    }

    /// The request field that must be present besides `model`.
    pub fn required_field(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "messages",
            Endpoint::Completions => "prompt",
            Endpoint::Embeddings => "input",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
        }
    }
}

/// A provider ready for the request path: everything precomputed at (re)load.
#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    /// `name` as a ready header value for `x-switchyard-provider`.
    pub name_header: HeaderValue,
    pub kind: ProviderKind,
    pub tls: bool,
    pub sni: String,
    pub host_port: String,
    pub host_header: HeaderValue,
    /// Base URL path (`/v1`) the endpoint suffix is appended to.
    pub path_prefix: String,
    /// Azure: `api-version=...` (the deployment goes in the path).
    pub azure_query: Option<String>,
    /// Resolved at load; `None` when DNS failed then, so the request path resolves it asynchronously.
    pub addr: Option<SocketAddr>,
    /// Headers set on every upstream request: auth first, then the configured extras.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub timeouts: Timeouts,
    /// Ask streams for usage (see `RawProvider::stream_usage`).
    pub stream_usage: bool,
    /// `None`: the provider speaks OpenAI's format and bodies pass through.
    pub format: Option<Format>,
    /// Bedrock: each request is signed with these (after the body is final).
    pub aws: Option<bedrock::AwsCredentials>,
    pub disabled: Option<String>,
}

impl Upstream {
    pub fn build(p: &ProviderConfig) -> Result<Arc<Upstream>, String> {
        let mut headers = Vec::new();
        let key_value = |key: &str| HeaderValue::from_str(key).map_err(|_| "api_key is not a valid header value");
        if let Some(key) = &p.api_key {
            headers.push(match p.kind {
                ProviderKind::OpenAi => openai::auth_header(key)?,
                ProviderKind::Azure => (HeaderName::from_static("api-key"), key_value(key)?),
                ProviderKind::Anthropic => (HeaderName::from_static("x-api-key"), key_value(key)?),
                ProviderKind::Gemini => (HeaderName::from_static("x-goog-api-key"), key_value(key)?),
                ProviderKind::Bedrock => return Err("kind bedrock takes AWS credentials, not api_key".into()),
            });
        }
        let format: Option<Box<dyn WireFormat>> = match p.kind {
            ProviderKind::OpenAi | ProviderKind::Azure => None,
            ProviderKind::Anthropic => Some(Box::new(anthropic::Anthropic {
                version: p.anthropic_version.clone().unwrap_or_else(|| anthropic::DEFAULT_VERSION.to_string()),
            })),
            ProviderKind::Gemini => Some(Box::new(gemini::Gemini)),
            ProviderKind::Bedrock => Some(Box::new(bedrock::Bedrock)),
        };
        for (name, value) in &p.headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("provider `{}`: invalid header name `{name}`", p.name))?;
            let v = HeaderValue::from_str(value)
                .map_err(|_| format!("provider `{}`: invalid value for header `{name}`", p.name))?;
            headers.push((n, v));
        }
        let host_port = format!("{}:{}", p.base_url.host, p.base_url.port);
        // Resolving here keeps DNS off the request path; reloads happen off it too.
        let addr =
            if p.disabled.is_some() { None } else { host_port.to_socket_addrs().ok().and_then(|mut a| a.next()) };
        Ok(Arc::new(Upstream {
            name: p.name.clone(),
            name_header: HeaderValue::from_str(&p.name)
                .map_err(|_| format!("provider name `{}` is not a valid header value", p.name))?,
            kind: p.kind,
            tls: p.base_url.tls,
            sni: p.base_url.host.clone(),
            host_header: HeaderValue::from_str(&p.base_url.host_header())
                .map_err(|_| format!("provider `{}`: base_url host is not a valid Host header", p.name))?,
            host_port,
            path_prefix: p.base_url.path.clone(),
            azure_query: p.api_version.as_ref().map(|v| format!("api-version={v}")),
            addr,
            headers,
            timeouts: p.timeouts,
            stream_usage: p.stream_usage,
            format: format.map(Format),
            aws: p.aws.clone(),
            disabled: p.disabled.clone(),
        }))
    }

    /// The peer for one attempt. DNS is only consulted here when load-time resolution failed.
    pub async fn peer(&self) -> std::io::Result<HttpPeer> {
        let addr = match self.addr {
            Some(a) => a,
            None => tokio::net::lookup_host(&self.host_port)
                .await?
                .next()
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))?,
        };
        let mut peer = HttpPeer::new(addr, self.tls, self.sni.clone());
        let o = &mut peer.options;
        o.connection_timeout = Some(self.timeouts.connect);
        o.total_connection_timeout = Some(self.timeouts.connect * 2);
        o.read_timeout = Some(self.timeouts.first_byte);
        o.write_timeout = Some(self.timeouts.first_byte);
        o.idle_timeout = Some(self.timeouts.idle);
        Ok(peer)
    }

    /// Upstream path (query included) for a translated request's own path.
    pub fn path_with(&self, provider_path: &str) -> String {
        let mut path = String::with_capacity(self.path_prefix.len() + provider_path.len());
        path.push_str(&self.path_prefix);
        path.push_str(provider_path);
        path
    }

    /// Upstream path for an endpoint and target model, keeping the client's query string
    /// (Azure: `/openai/deployments/{model}/...?api-version=...` instead).
    pub fn path_for(&self, endpoint: Endpoint, model: &str, query: Option<&str>) -> String {
        let mut path = String::with_capacity(self.path_prefix.len() + model.len() + 64);
        path.push_str(&self.path_prefix);
        let query = match &self.azure_query {
            Some(azure) => {
                path.push_str("/openai/deployments/");
                path.push_str(model);
                Some(azure.as_str())
            }
            None => query,
        };
        path.push_str(endpoint.suffix());
        if let Some(q) = query {
            path.push('?');
            path.push_str(q);
        }
        path
    }
}
