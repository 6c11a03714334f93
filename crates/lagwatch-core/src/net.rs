//! The HTTP layer every HTTP connector shares.
//!
//! One call of [`HttpSystem::send`] is one request as the system sees it: it adds the
//! credentials, counts the request against the system's [`Gate`] budget and in
//! `lagwatch_requests_total` / `lagwatch_request_seconds_total`, caps the body it reads,
//! retries exactly once after a 401 with a freshly fetched token, and turns throttling
//! (429 + Retry-After), 5xx and transport failures into [`ConnectorError`]s. Every other status
//! is handed back to the connector, which knows what a 404 or a 412 means for its API. It
//! never sleeps or loops: waiting for throttling is the engine's job (at the gate).
//!
//! Every error it makes names the request ([`describe`]: method, host and path, never the
//! query string or a header), and a transport error names its cause and the address
//! (connection refused, DNS, TLS, timed out, reset), so a log line or a failed read in
//! `/api/v1/probes` says which call failed and why.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Client, Request, RequestBuilder, StatusCode};

use crate::auth::Auth;
use crate::clock::{self, ClockTracker};
use crate::config::Secret;
use crate::connector::{Cause, ConnectorError, status_class};
use crate::gate::Gate;
use crate::metrics::Metrics;

/// Largest response body read, in bytes; a larger one is an error, not an allocation.
pub const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;

/// A response whose status the connector interprets.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The request this answers, as error messages name it ([`describe`]).
    pub request: String,
}

impl Reply {
    /// Parses the body as JSON; garbage is [`ConnectorError::BadResponse`], never a panic.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConnectorError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| self.bad_response(format!("body is not the expected JSON: {e}")))
    }

    /// [`ConnectorError::BadResponse`] with this reply's status: `detail` says what is wrong
    /// with the answer, after the request it answers.
    pub fn bad_response(&self, detail: impl Into<String>) -> ConnectorError {
        ConnectorError::BadResponse {
            status: self.status.as_u16(),
            detail: detail.into(),
        }
        .context(&self.request)
    }

    /// A header as text, if present and valid.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The system's clock when it answered (`Date`), if the header is there and valid.
    pub fn date(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        clock::parse_http_date(self.header("date")?).map(chrono::DateTime::<chrono::Utc>::from)
    }

    /// What an update's acknowledgement says ([`crate::connector::Updated`]).
    pub fn updated(&self) -> crate::connector::Updated {
        crate::connector::Updated {
            server_time: self.date(),
        }
    }

    /// The error of an unexpected status, with a short, secret-free excerpt of the body.
    pub fn unexpected(&self) -> ConnectorError {
        self.bad_response(excerpt(&self.body))
    }
}

/// A request as error messages name it: method, host (with the port when the URL has one) and
/// path, such as `GET crm.example.com/api/data/v9.2/accounts(…)`. Never the query string (it
/// carries filters, and a SAS-signed blob URL its signature), credentials or headers.
pub fn describe(request: &Request) -> String {
    let url = request.url();
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{} {host}:{port}{}", request.method(), url.path()),
        None => format!("{} {host}{}", request.method(), url.path()),
    }
}

/// The address a request goes to, as a transport error names it: host and port.
fn address(request: &Request) -> String {
    let url = request.url();
    let host = url.host_str().unwrap_or_default();
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
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
            for kind in crate::metrics::TOKEN_ERROR_KINDS {
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
        // Built before the credentials are added, so what the request was can be named.
        let request = build(&self.client).build().map_err(|e| {
            let e = e.without_url();
            let message = format!("the request could not be built: {}", cause(&e, ""));
            ConnectorError::Transport(Cause::with_error(message, e))
        })?;
        let what = describe(&request);
        let mut req = RequestBuilder::from_parts(self.client.clone(), request);
        let mut used_token = None;
        match &self.auth {
            Auth::None => {}
            Auth::Bearer(tokens) => {
                // No token, no request: the failure is the token endpoint's (or the
                // credentials'), so it is counted as such rather than against the system.
                let token = tokens.bearer().await.map_err(|e| {
                    let kind = if matches!(e, ConnectorError::Auth(_)) {
                        "auth"
                    } else {
                        "transport"
                    };
                    self.metrics
                        .token_errors
                        .with_label_values(&[&self.name, kind])
                        .inc();
                    e.context(&what)
                })?;
                req = req.bearer_auth(token.expose());
                used_token = Some(token);
            }
            Auth::Header { name, value } => {
                let mut v = HeaderValue::from_str(value.expose()).map_err(|_| {
                    ConnectorError::Auth(Cause::new(format!(
                        "{what}: the configured key is not a valid header value"
                    )))
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
        let result = self.exchange(req, what).await;
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

    /// Sends `req` (`what` names it in errors) and reads the answer, its body capped.
    async fn exchange(&self, req: RequestBuilder, what: String) -> Result<Reply, ConnectorError> {
        let request = req.build().map_err(|e| transport(&what, "", e))?;
        let addr = address(&request);
        let mut resp = self
            .client
            .execute(request)
            .await
            .map_err(|e| transport(&what, &addr, e))?;
        let mut reply = Reply {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: Vec::new(),
            request: what,
        };
        let too_big = |reply: &Reply| {
            reply.bad_response(format!("response body larger than {} bytes", self.max_body))
        };
        if resp
            .content_length()
            .is_some_and(|n| n > self.max_body as u64)
        {
            return Err(too_big(&reply));
        }
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| transport(&reply.request, &addr, e))?
        {
            if reply.body.len() + chunk.len() > self.max_body {
                return Err(too_big(&reply));
            }
            reply.body.extend_from_slice(&chunk);
        }
        Ok(reply)
    }

    fn classify(&self, reply: Reply) -> Result<Reply, ConnectorError> {
        match reply.status.as_u16() {
            429 => Err(ConnectorError::Throttled {
                retry_after: retry_after(&reply.headers),
            }),
            // Azure Storage throttles with `503 ServerBusy`, its code in `x-ms-error-code` on
            // every error answer, also to `HEAD`, which has no body to read it from.
            503 if server_busy(&reply.headers) => Err(ConnectorError::Throttled {
                retry_after: retry_after(&reply.headers),
            }),
            401 | 403 => Err(ConnectorError::Auth(Cause::new(format!(
                "HTTP {}: {}",
                reply.status.as_u16(),
                excerpt(&reply.body)
            )))
            .context(&reply.request)),
            s @ 500..=599 => Err(ConnectorError::Unavailable {
                status: s,
                detail: excerpt(&reply.body),
            }
            .context(&reply.request)),
            _ => Ok(reply),
        }
    }
}

/// Whether an answer names Azure Storage's throttling, `ServerBusy`, in `x-ms-error-code`.
fn server_busy(headers: &HeaderMap) -> bool {
    headers
        .get("x-ms-error-code")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|code| code.trim() == "ServerBusy")
}

/// A failed exchange of the request `what` with `addr`: the cause in words, after the request.
///
/// The client's error stays beneath it (without its URL), for code that must tell a refused
/// connection from a timeout without reading words.
fn transport(what: &str, addr: &str, e: reqwest::Error) -> ConnectorError {
    let while_reading = e.is_body() || e.is_decode();
    let e = e.without_url();
    let cause = cause(&e, addr);
    let message = if while_reading {
        format!("{what}: broken response body: {cause}")
    } else {
        format!("{what}: {cause}")
    };
    ConnectorError::Transport(Cause::with_error(message, e))
}

/// Why a request failed, found by walking `e`'s sources, with the address it concerns:
/// `connection refused (127.0.0.1:9)`, `connection reset (…)`, `timed out (…)`,
/// `DNS resolution failed (crm.example.com:443): …`, `TLS handshake failed (…): invalid peer
/// certificate: UnknownIssuer`. Anything else is reqwest's own words with their causes. Never
/// the URL: reqwest's message can carry it, query string included. Public for the binary's
/// own requests (`lagwatch report`), whose errors should read as the connectors' do.
pub fn cause(e: &reqwest::Error, addr: &str) -> String {
    let at = if addr.is_empty() {
        String::new()
    } else {
        format!(" ({addr})")
    };
    let chain = sources(e);
    for s in &chain {
        if let Some(tls) = s.downcast_ref::<rustls::Error>() {
            return format!("TLS handshake failed{at}: {tls}");
        }
    }
    for s in &chain {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            match io.kind() {
                ConnectionRefused => return format!("connection refused{at}"),
                ConnectionReset | ConnectionAborted | BrokenPipe => {
                    return format!("connection reset{at}");
                }
                TimedOut => return format!("timed out{at}"),
                _ => {}
            }
        }
    }
    // hyper-util's connector calls a failed name lookup "dns error"; the last source says why.
    if let Some(i) = chain.iter().position(|s| s.to_string() == "dns error") {
        let why = chain[i + 1..]
            .last()
            .map_or(String::new(), |s| format!(": {s}"));
        return format!("DNS resolution failed{at}{why}");
    }
    if e.is_timeout() {
        return format!("timed out{at}");
    }
    let mut out = chain
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ");
    if e.is_connect() {
        out = format!("cannot connect{at}: {out}");
    } else {
        out.push_str(&at);
    }
    out
}

/// `e` and its sources, outermost first. An `io::Error` wrapping another error is followed
/// into that error (its own `source()` skips it: a TLS failure hides there).
fn sources<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(e);
    while let Some(s) = next {
        out.push(s);
        next = match s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => s.source(),
        };
    }
    out
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

    /// The transport error of a GET of `url` with the shared client, as `send` makes it.
    async fn failed(url: &str) -> String {
        failed_with(&client().unwrap(), url).await
    }

    /// [`failed`] with `client`.
    async fn failed_with(client: &Client, url: &str) -> String {
        let req = client.get(url).build().expect("request");
        let (what, addr) = (describe(&req), address(&req));
        let e = client.execute(req).await.expect_err("the request fails");
        let e = transport(&what, &addr, e);
        assert_eq!(e.kind(), "transport", "{e}");
        e.to_string()
    }

    /// A refused connection says so in words and keeps the client's error beneath, without
    /// the URL (which may carry a SAS token), for code that must act on the cause.
    #[tokio::test]
    async fn a_transport_error_keeps_the_clients_error_without_its_url() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let c = client().unwrap();
        let req = c
            .get(format!("http://127.0.0.1:{port}/x?sig=s3cr3t"))
            .build()
            .unwrap();
        let (what, addr) = (describe(&req), address(&req));
        let e = transport(&what, &addr, c.execute(req).await.expect_err("refused"));
        assert!(e.to_string().contains("connection refused"), "{e}");
        let beneath = std::error::Error::source(&e).expect("the client's error is kept");
        let client_error = beneath
            .downcast_ref::<reqwest::Error>()
            .expect("a reqwest error");
        assert!(client_error.is_connect(), "{client_error:?}");
        assert!(client_error.url().is_none(), "{client_error:?}");
        assert!(!format!("{client_error:?}").contains("s3cr3t"));
    }

    /// A loopback server running `serve` on each connection; its port.
    async fn server<F, Fut>(serve: F) -> u16
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream));
            }
        });
        port
    }

    #[test]
    fn a_request_is_named_by_method_host_and_path_never_its_query() {
        let c = Client::new();
        let req = c
            .get("https://user:pw@crm.example.com/api/data/v9.2/accounts(name='x')?$filter=a%20eq%201&sig=s3cr3t")
            .build()
            .unwrap();
        assert_eq!(
            describe(&req),
            "GET crm.example.com/api/data/v9.2/accounts(name='x')"
        );
        assert_eq!(address(&req), "crm.example.com:443");
        let req = c.delete("http://[::1]:9200/logs/_doc/k").build().unwrap();
        assert_eq!(describe(&req), "DELETE [::1]:9200/logs/_doc/k");
    }

    #[test]
    fn context_goes_before_the_message_and_keeps_kind_and_status() {
        let e = ConnectorError::Unavailable {
            status: 503,
            detail: "busy".into(),
        }
        .context("GET h/p");
        assert_eq!(
            e.to_string(),
            "system unavailable (HTTP 503): GET h/p: busy"
        );
        assert_eq!(e.kind(), "unavailable");
        let t = ConnectorError::Timeout.context("GET h/p");
        assert_eq!(t.kind(), "timeout");
        let reply = Reply {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: b"<html>".to_vec(),
            request: "GET h/p".into(),
        };
        let e = reply.json::<serde_json::Value>().unwrap_err();
        assert!(
            e.to_string().starts_with(
                "unexpected response (HTTP 200): GET h/p: body is not the expected JSON"
            ),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_connection_refused_at_its_address() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}/api/data/v9.2/accounts?$filter=name%20eq%20'x'");
        let expected = format!(
            "transport error: GET 127.0.0.1:{port}/api/data/v9.2/accounts: connection refused (127.0.0.1:{port})"
        );
        assert_eq!(failed(&url).await, expected);
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_a_dns_failure() {
        // The reserved `.invalid` domain never resolves (RFC 6761), with or without a network.
        let message = failed("http://lagwatch-net.invalid/x?q=1").await;
        let expected = "transport error: GET lagwatch-net.invalid/x: DNS resolution failed (lagwatch-net.invalid:80)";
        assert!(message.starts_with(expected), "{message}");
    }

    #[tokio::test]
    async fn a_server_that_does_not_speak_tls_is_a_tls_failure() {
        use tokio::io::AsyncWriteExt as _;
        let port = server(|mut s| async move {
            let _ = s
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        })
        .await;
        let message = failed(&format!("https://127.0.0.1:{port}/x")).await;
        let expected = format!(
            "transport error: GET 127.0.0.1:{port}/x: TLS handshake failed (127.0.0.1:{port}): "
        );
        assert!(message.starts_with(&expected), "{message}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out_and_a_reset_is_named() {
        let silent = server(|s| async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(s);
        })
        .await;
        let impatient = Client::builder()
            .timeout(Duration::from_millis(200))
            .build()
            .unwrap();
        let message = failed_with(&impatient, &format!("http://127.0.0.1:{silent}/slow")).await;
        let expected =
            format!("transport error: GET 127.0.0.1:{silent}/slow: timed out (127.0.0.1:{silent})");
        assert_eq!(message, expected);
        // Reads the request, then resets the connection (RST, not a clean close).
        let resetting = server(|mut s| async move {
            use tokio::io::AsyncReadExt as _;
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s.set_zero_linger();
            drop(s);
        })
        .await;
        let message = failed(&format!("http://127.0.0.1:{resetting}/r")).await;
        let expected = format!(
            "transport error: GET 127.0.0.1:{resetting}/r: connection reset (127.0.0.1:{resetting})"
        );
        assert_eq!(message, expected);
    }

    #[test]
    fn excerpts_are_short_single_lines() {
        let long = "x".repeat(500);
        assert_eq!(excerpt(long.as_bytes()).chars().count(), 201);
        assert_eq!(excerpt(b"a\n  b\tc"), "a b c");
    }
}
