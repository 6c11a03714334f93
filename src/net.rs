//! The HTTP layer every HTTP connector shares.
//!
//! One call of [`HttpSystem::send`] is one request as the system sees it: it adds the
//! credentials, counts the request against the system's [`Gate`] budget and in
//! `lagwatch_requests_total` / `lagwatch_request_duration_seconds`, caps the body it reads,
//! retries exactly once after a 401 with a freshly fetched token, and turns throttling
//! (429 + Retry-After), 5xx and transport failures into [`ConnectorError`]s. Every other status
//! is handed back to the connector, which knows what a 404 or a 412 means for its API. It
//! never sleeps or loops: waiting for throttling is the engine's job (at the gate).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, RequestBuilder, StatusCode};

use crate::auth::TokenCache;
use crate::clock::{self, ClockTracker};
use crate::config::Secret;
use crate::connector::{ConnectorError, status_class};
use crate::gate::Gate;
use crate::metrics::Metrics;

/// Largest response body read, in bytes; a larger one is an error, not an allocation.
pub const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;

/// Bearer tokens for one system (an Entra ID token cache in production, a fake in tests).
#[async_trait]
pub trait BearerTokens: Send + Sync {
    /// A token valid now.
    async fn bearer(&self) -> Result<Secret, ConnectorError>;
    /// The system answered 401 to `token`: forget it so the next call fetches a new one.
    fn rejected(&self, token: &Secret);
}

/// Bearer tokens for one scope from an Entra ID token cache.
pub struct EntraBearer {
    cache: TokenCache,
    scope: String,
}

impl EntraBearer {
    pub fn new(cache: TokenCache, scope: String) -> Self {
        EntraBearer { cache, scope }
    }
}

#[async_trait]
impl BearerTokens for EntraBearer {
    async fn bearer(&self) -> Result<Secret, ConnectorError> {
        match self.cache.token(&self.scope).await {
            Ok(t) => Ok(Secret::runtime(t.expose(), "Entra ID access token")),
            // Unreachable, 5xx or garbage: the token endpoint is failing, not the
            // credentials; worth retrying, and not an `auth` problem to whoever reads it.
            Err(e) if matches!(e.kind(), "transport" | "bad_response") => {
                Err(ConnectorError::Transport(format!("token endpoint: {e}")))
            }
            Err(e) => Err(ConnectorError::Auth(e.to_string())),
        }
    }

    fn rejected(&self, token: &Secret) {
        self.cache.invalidate(&self.scope, token.expose());
    }
}

/// How requests to a system authenticate.
#[derive(Clone)]
pub enum Auth {
    None,
    Bearer(Arc<dyn BearerTokens>),
    /// A static key sent in a header (Azure AI Search `api-key`, Elasticsearch `ApiKey`).
    Header {
        name: HeaderName,
        value: Secret,
    },
    Basic {
        user: String,
        password: Secret,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("Auth::None"),
            Auth::Bearer(_) => f.write_str("Auth::Bearer(<token source>)"),
            Auth::Header { name, .. } => write!(f, "Auth::Header({name}: <redacted>)"),
            Auth::Basic { user, .. } => write!(f, "Auth::Basic({user}, <redacted>)"),
        }
    }
}

/// A response whose status the connector interprets.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// Parses the body as JSON; garbage is [`ConnectorError::BadResponse`], never a panic.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConnectorError> {
        serde_json::from_slice(&self.body).map_err(|e| ConnectorError::BadResponse {
            status: self.status.as_u16(),
            detail: format!("body is not the expected JSON: {e}"),
        })
    }

    /// A header as text, if present and valid.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The error of an unexpected status, with a short, secret-free excerpt of the body.
    pub fn unexpected(&self) -> ConnectorError {
        ConnectorError::BadResponse {
            status: self.status.as_u16(),
            detail: excerpt(&self.body),
        }
    }
}

/// The start of a body for an error message: at most 200 characters of one line.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = line.chars().take(200).collect();
    if line.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// Parses `Retry-After` given in seconds (what Dataverse, F&O and Azure send); an HTTP date is
/// read relative to the response's own `Date`-less now.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// Counts a request whose future was dropped before it finished (a deadline passed).
struct Abandoned<'a> {
    system: &'a HttpSystem,
    operation: &'static str,
    started: Instant,
    armed: bool,
}

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        if self.armed {
            let s = self.system;
            s.metrics.observe_request(
                &s.name,
                self.operation,
                "transport_error",
                self.started.elapsed().as_secs_f64(),
            );
            s.metrics.system_up.with_label_values(&[&s.name]).set(0);
        }
    }
}

/// Kinds of `lagwatch_token_errors_total`.
pub const TOKEN_ERROR_KINDS: [&str; 2] = ["transport", "auth"];

/// One monitored system as seen over HTTP.
#[derive(Clone)]
pub struct HttpSystem {
    name: Arc<str>,
    client: Client,
    gate: Arc<Gate>,
    metrics: Metrics,
    auth: Auth,
    max_body: usize,
    clock: Arc<ClockTracker>,
}

impl HttpSystem {
    pub fn new(name: &str, client: Client, gate: Arc<Gate>, metrics: Metrics, auth: Auth) -> Self {
        if matches!(auth, Auth::Bearer(_)) {
            for kind in TOKEN_ERROR_KINDS {
                metrics.token_errors.with_label_values(&[name, kind]);
            }
        }
        HttpSystem {
            name: Arc::from(name),
            clock: Arc::new(ClockTracker::new(name, &metrics)),
            client,
            gate,
            metrics,
            auth,
            max_body: DEFAULT_MAX_BODY,
        }
    }

    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sends one request built by `build`, authenticated, counted and classified.
    ///
    /// # Errors
    /// `Throttled` (429, with Retry-After), `Unavailable` (5xx), `Auth` (401 after one refresh,
    /// 403), `Transport`, `BadResponse` (body over the cap). Other statuses come back as a
    /// [`Reply`].
    pub async fn send(
        &self,
        operation: &'static str,
        build: impl Fn(&Client) -> RequestBuilder,
    ) -> Result<Reply, ConnectorError> {
        let first = self.send_once(operation, &build).await?;
        if first.0.status != StatusCode::UNAUTHORIZED {
            return self.classify(first.0);
        }
        // One refresh and one retry: a token can expire or be revoked between fetch and use.
        if let (Auth::Bearer(tokens), Some(token)) = (&self.auth, &first.1) {
            tokens.rejected(token);
            let second = self.send_once(operation, &build).await?;
            return self.classify(second.0);
        }
        self.classify(first.0)
    }

    async fn send_once(
        &self,
        operation: &'static str,
        build: &impl Fn(&Client) -> RequestBuilder,
    ) -> Result<(Reply, Option<Secret>), ConnectorError> {
        let mut req = build(&self.client);
        let mut used_token = None;
        match &self.auth {
            Auth::None => {}
            Auth::Bearer(tokens) => {
                // No token, no request: the failure is the token endpoint's (or the
                // credentials'), so it is counted as such rather than against the system.
                let token = tokens.bearer().await.inspect_err(|e| {
                    let kind = if matches!(e, ConnectorError::Auth(_)) {
                        "auth"
                    } else {
                        "transport"
                    };
                    self.metrics
                        .token_errors
                        .with_label_values(&[&self.name, kind])
                        .inc();
                })?;
                req = req.bearer_auth(token.expose());
                used_token = Some(token);
            }
            Auth::Header { name, value } => {
                let mut v = HeaderValue::from_str(value.expose()).map_err(|_| {
                    ConnectorError::Auth("the configured key is not a valid header value".into())
                })?;
                v.set_sensitive(true);
                req = req.header(name.clone(), v);
            }
            Auth::Basic { user, password } => {
                req = req.basic_auth(user, Some(password.expose()));
            }
        }
        self.gate.record_request();
        let started = Instant::now();
        let sent_wall = SystemTime::now();
        // A caller's deadline drops this future mid-request: the guard still counts the
        // request (as a transport error) and marks the system down, so a target slower than
        // the deadline is visible in /metrics, not silent.
        let mut abandoned = Abandoned {
            system: self,
            operation,
            started,
            armed: true,
        };
        let result = self.exchange(req).await;
        abandoned.armed = false;
        if let Ok(reply) = &result
            && let Some(date) = reply.header("date").and_then(clock::parse_http_date)
        {
            self.clock
                .observe(clock::bounds(sent_wall, SystemTime::now(), date));
        }
        let status = match &result {
            Ok(reply) => status_class(reply.status.as_u16()),
            Err(_) => "transport_error",
        };
        let up = match &result {
            Ok(reply) => reply.status.as_u16() < 500,
            // The system answered, with a body over the cap.
            Err(ConnectorError::BadResponse { .. }) => true,
            Err(_) => false,
        };
        self.metrics
            .system_up
            .with_label_values(&[&self.name])
            .set(i64::from(up));
        self.metrics.observe_request(
            &self.name,
            operation,
            status,
            started.elapsed().as_secs_f64(),
        );
        Ok((result?, used_token))
    }

    async fn exchange(&self, req: RequestBuilder) -> Result<Reply, ConnectorError> {
        let mut resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        if resp
            .content_length()
            .is_some_and(|n| n > self.max_body as u64)
        {
            return Err(too_big(status, self.max_body));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > self.max_body {
                return Err(too_big(status, self.max_body));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    fn classify(&self, reply: Reply) -> Result<Reply, ConnectorError> {
        match reply.status.as_u16() {
            429 => Err(ConnectorError::Throttled {
                retry_after: retry_after(&reply.headers),
            }),
            401 | 403 => Err(ConnectorError::Auth(format!(
                "HTTP {}: {}",
                reply.status.as_u16(),
                excerpt(&reply.body)
            ))),
            s @ 500..=599 => Err(ConnectorError::Unavailable {
                status: s,
                detail: excerpt(&reply.body),
            }),
            _ => Ok(reply),
        }
    }
}

fn too_big(status: StatusCode, cap: usize) -> ConnectorError {
    ConnectorError::BadResponse {
        status: status.as_u16(),
        detail: format!("response body larger than {cap} bytes"),
    }
}

fn transport(e: reqwest::Error) -> ConnectorError {
    // reqwest's Display can include the URL; ours never carry credentials in URLs.
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "broken response body"
    } else {
        "request failed"
    };
    ConnectorError::Transport(format!("{kind}: {}", e.without_url()))
}

/// The HTTP client every connector shares: TLS verification on, modest timeouts, a user agent.
///
/// # Errors
/// Only if the TLS backend cannot initialise.
pub fn client() -> Result<Client, reqwest::Error> {
    client_trusting(&[])
}

/// As [`client`], also trusting `extra_roots` (the config's `tls.ca_files`) on top of the
/// platform's roots. Verification stays on: there is no way to build a client that skips it.
///
/// # Errors
/// The TLS backend cannot be set up with these roots.
pub fn client_trusting(
    extra_roots: &[rustls_pki_types::CertificateDer<'static>],
) -> Result<Client, reqwest::Error> {
    let extra = extra_roots
        .iter()
        .map(|der| reqwest::Certificate::from_der(der))
        .collect::<Result<Vec<_>, _>>()?;
    Client::builder()
        .user_agent(concat!("lagwatch/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .tls_certs_merge(extra)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("37"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(37)));
        h.insert("retry-after", HeaderValue::from_static("garbage"));
        assert_eq!(retry_after(&h), None);
        let later = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        h.insert("retry-after", HeaderValue::from_str(&later).unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
    }

    #[test]
    fn excerpts_are_short_single_lines() {
        let long = "x".repeat(500);
        assert_eq!(excerpt(long.as_bytes()).chars().count(), 201);
        assert_eq!(excerpt(b"a\n  b\tc"), "a b c");
    }
}
