//! `http`: a generic source and target for systems lagwatch has no dedicated kind for.
//!
//! Why it exists: an integration often ends in an in-house API, a middleware queue with an HTTP
//! face, or a product whose API is a plain resource (`PUT /items/{id}`, `GET /items/{id}`).
//! Rather than a kind per product, each operation is described by a request template and, for
//! reads, by where the answer keeps the payload (an RFC 6901 JSON pointer). The fact sheet has
//! no section for such systems (it covers the Microsoft ones, §1–§6); the kind follows the
//! contract of every connector instead (ARCHITECTURE.md, `connector`): one request per call, no
//! sleeping or retrying, "not there yet" is [`Lookup::Absent`], a body that cannot be
//! understood is [`ConnectorError::BadResponse`].
//!
//! Templates take placeholders, replaced in a single pass (a substituted value is never
//! scanned again):
//!
//! | placeholder | value | where |
//! |---|---|---|
//! | `{id}` | the sentinel key, `lagwatch-<instance>-<uuid>` | every operation |
//! | `{uuid}` | the sentinel's UUID (v7) | every operation |
//! | `{payload}` | the sentinel payload (a JSON text) | `write` only |
//! | `{prefix}` | `lagwatch-<instance>-` | `list` only |
//! | `{before}` | RFC 3339 UTC time, whole seconds (`2026-01-01T00:00:00Z`) | `list` only |
//!
//! Values are escaped for where they land: percent-encoded (everything but `A-Z a-z 0-9 - . _ ~`)
//! in URLs, JSON-escaped (without the surrounding quotes, which the template writes) in bodies,
//! and inserted as they are in header values. Any other `{…}` text is left alone, so JSON bodies
//! need no escaping of their own braces. [`HttpMap::check`] rejects unknown or misplaced
//! placeholders when the configuration is loaded.
//!
//! Statuses: [`net`](crate::net) turns 429, 401/403, 5xx and transport failures into errors for
//! every kind. Of the rest, a `404` is `Absent` for `read`/`lookup` and "already gone" for
//! `delete`; the statuses listed in `success` (any 2xx when empty) are success; anything else is
//! `BadResponse`. Credentials belong in the system's `auth` (bearer, API-key header or basic,
//! handled by [`HttpSystem`]), not in templates: headers and URLs here are not redacted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Method};
use serde_json::Value;

use super::wire::payload_text;
use super::{BuildContext, System, SystemKind, SystemSpec, decode_as};
use crate::auth::{Accepts, AuthBlock};
use crate::config::Issue;
use crate::connector::{ConnectorError, Lookup, Source, Target, Updated};
use crate::gate::Gate;
use crate::net::{HttpSystem, Reply};
use crate::sentinel::{Sentinel, SentinelId};

/// One request, as a template.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    /// HTTP method, e.g. `GET`, `PUT`, `POST`, `DELETE`.
    pub method: Method,
    /// Absolute `http(s)` URL with placeholders, e.g. `https://api.example.com/items/{id}`.
    /// Substituted values are percent-encoded, so a key can never change the URL's structure.
    pub url: String,
    /// Extra request headers (name, value template), e.g. `("Accept", "application/json")`.
    /// Not for credentials: use the system's `auth`. Values are substituted without escaping.
    pub headers: Vec<(String, String)>,
    /// Request body template, normally JSON such as `{"key":"{id}","data":"{payload}"}`;
    /// substituted values are JSON-escaped. Sent with `Content-Type: application/json` unless
    /// `headers` set another content type. `None`: no body.
    pub body: Option<String>,
    /// Statuses that mean the operation succeeded, e.g. `[200, 201, 409]` for a create that may
    /// be retried. Empty: any 2xx.
    pub success: Vec<u16>,
}

impl HttpRequest {
    /// A request with no headers or body and the default success statuses.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        HttpRequest {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
            success: Vec::new(),
        }
    }

    fn succeeded(&self, status: u16) -> bool {
        if self.success.is_empty() {
            (200..300).contains(&status)
        } else {
            self.success.contains(&status)
        }
    }
}

/// A value the response must hold for the record to count as there.
#[derive(Debug, Clone, PartialEq)]
pub struct PresentWhen {
    /// RFC 6901 pointer into the JSON body, e.g. `/count` or `/items/0/state`.
    pub pointer: String,
    /// The JSON value meaning "present", e.g. `1`, `true` or `"indexed"`.
    pub equals: Value,
}

/// A request that reads one record (`read` on a source, `lookup` on a target).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRead {
    pub request: HttpRequest,
    /// RFC 6901 pointer to the stored payload in the JSON body, e.g. `/payload` or
    /// `/value/0/description` (`""` is the whole body). A string is taken as it is, any other
    /// JSON value as its compact JSON text. Without `present_when`, a successful answer whose
    /// pointer leads nowhere (or to `null`) means "not there yet", which suits search-style
    /// APIs answering `200 {"items":[]}`. `None`: the content is not compared, only presence.
    pub payload_pointer: Option<String>,
    /// When set, the record is present only if this value is in the body; otherwise presence
    /// is the success status (and the payload pointer, when set).
    pub present_when: Option<PresentWhen>,
}

/// A request listing this instance's old sentinels, for the start-up sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpList {
    /// Takes `{prefix}` and `{before}`, e.g. `https://api.example.com/items?startsWith={prefix}`.
    /// Only one page is read.
    pub request: HttpRequest,
    /// RFC 6901 pointer to the array of records in the JSON body, e.g. `/items` (`""` when the
    /// body is the array).
    pub items_pointer: String,
    /// RFC 6901 pointer to the sentinel key within one record, e.g. `/key`.
    pub key_pointer: String,
}

/// What each operation is, for one generic HTTP system.
///
/// A target needs `lookup` (or `read`); a source needs `write`, `read` (or `lookup`) and
/// `delete` is strongly advised. `list` is optional.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpMap {
    /// Creates the sentinel; `{id}`, `{uuid}`, `{payload}`.
    pub write: Option<HttpRequest>,
    /// Reads the sentinel back from the source; `lookup` when not set.
    pub read: Option<HttpRead>,
    /// Deletes the sentinel (404 counts as done). Without it sentinels are left in place.
    pub delete: Option<HttpRequest>,
    /// Looks the sentinel up in a target; `read` when not set.
    pub lookup: Option<HttpRead>,
    /// Lists old sentinels at start-up; without it nothing is swept.
    pub list: Option<HttpList>,
}

/// What a template may refer to; any of them absent renders as the empty string.
#[derive(Default)]
struct Vars<'a> {
    id: Option<&'a str>,
    uuid: Option<String>,
    payload: Option<&'a str>,
    prefix: Option<&'a str>,
    before: Option<String>,
}

impl<'a> Vars<'a> {
    fn of(id: &'a SentinelId) -> Self {
        Vars {
            id: Some(id.key()),
            uuid: Some(id.uuid().to_string()),
            ..Vars::default()
        }
    }

    fn get(&self, name: &str) -> Option<Option<&str>> {
        Some(match name {
            "id" => self.id,
            "uuid" => self.uuid.as_deref(),
            "payload" => self.payload,
            "prefix" => self.prefix,
            "before" => self.before.as_deref(),
            _ => return None,
        })
    }
}

#[derive(Clone, Copy)]
enum Escape {
    Url,
    Json,
    Raw,
}

/// Escapes `s` for use inside a JSON string literal (the quotes are not added).
pub fn json_escape(s: &str) -> String {
    let quoted = Value::String(s.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

/// The placeholders (`{name}` with `name` made of `a-z` and `_`) a template uses.
fn placeholders(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close)
                if close > 0
                    && after[..close]
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'_') =>
            {
                out.push(&after[..close]);
                rest = &after[close + 1..];
            }
            _ => rest = after,
        }
    }
    out
}

/// Replaces known placeholders in one pass.
fn render(template: &str, vars: &Vars<'_>, escape: Escape) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let known = after
            .find('}')
            .and_then(|close| vars.get(&after[..close]).map(|v| (close, v)));
        match known {
            Some((close, value)) => {
                let value = value.unwrap_or("");
                match escape {
                    Escape::Url => out.push_str(&crate::percent::component(value)),
                    Escape::Json => out.push_str(&json_escape(value)),
                    Escape::Raw => out.push_str(value),
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A fully rendered request, ready to be sent (and re-sent after a 401).
struct Prepared {
    method: Method,
    url: url::Url,
    headers: HeaderMap,
    body: Option<String>,
}

fn not_sent(detail: String) -> ConnectorError {
    ConnectorError::Transport(format!("request not sent: {detail}").into())
}

fn prepare(
    op: &'static str,
    req: &HttpRequest,
    vars: &Vars<'_>,
) -> Result<Prepared, ConnectorError> {
    // Never echo the URL: users may keep a function key in it.
    let url = url::Url::parse(&render(&req.url, vars, Escape::Url)).map_err(|e| {
        not_sent(format!(
            "the {op} URL template does not give a valid URL ({e})"
        ))
    })?;
    let mut headers = HeaderMap::new();
    for (name, value) in &req.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| not_sent(format!("\"{name}\" in {op} is not a header name")))?;
        let value = HeaderValue::from_str(&render(value, vars, Escape::Raw))
            .map_err(|_| not_sent(format!("the {op} header {name} is not a valid value")))?;
        headers.append(name, value);
    }
    let body = req.body.as_ref().map(|b| render(b, vars, Escape::Json));
    if body.is_some() && !headers.contains_key(CONTENT_TYPE) {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    Ok(Prepared {
        method: req.method.clone(),
        url,
        headers,
        body,
    })
}

fn unexpected(op: &str, reply: &Reply) -> ConnectorError {
    reply
        .unexpected()
        .context(&format!("{op} answered an unexpected status"))
}

/// One operation as written in YAML: the request, and for reads and lists where the answer
/// keeps what matters. One shape for every operation so that a key in the wrong operation gets
/// a sentence saying where it belongs.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestBlock {
    #[serde(default = "default_method")]
    method: String,
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    success: Vec<u16>,
    #[serde(default)]
    payload_pointer: Option<String>,
    #[serde(default)]
    present_when: Option<PresentBlock>,
    #[serde(default)]
    items_pointer: Option<String>,
    #[serde(default)]
    key_pointer: Option<String>,
}

fn default_method() -> String {
    "GET".to_string()
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PresentBlock {
    pointer: String,
    equals: Value,
}

/// Config of a `kind: http` system: one request template per operation.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default)]
    write: Option<RequestBlock>,
    #[serde(default)]
    read: Option<RequestBlock>,
    #[serde(default)]
    delete: Option<RequestBlock>,
    #[serde(default)]
    lookup: Option<RequestBlock>,
    #[serde(default)]
    list: Option<RequestBlock>,
    /// Any method; `api_key` needs a `header`.
    auth: AuthBlock,
    /// Entra token scope; derived from the first template URL's host when absent.
    #[serde(default)]
    scope: Option<String>,
    #[serde(skip)]
    map: HttpMap,
}

/// The request of operation `key`; `extras` are the answer keys this operation takes.
fn request(key: &str, b: &RequestBlock, extras: &[&str]) -> Result<HttpRequest, Issue> {
    for (field, present) in [
        ("payload_pointer", b.payload_pointer.is_some()),
        ("present_when", b.present_when.is_some()),
        ("items_pointer", b.items_pointer.is_some()),
        ("key_pointer", b.key_pointer.is_some()),
    ] {
        if present && !extras.contains(&field) {
            let belongs = if field.ends_with("_pointer") && field != "payload_pointer" {
                "list"
            } else {
                "read and lookup"
            };
            return Err(Issue::new(
                format!("{key}.{field}"),
                format!("{field} belongs in {belongs}, not here"),
            ));
        }
    }
    let method = Method::from_bytes(b.method.to_ascii_uppercase().as_bytes()).map_err(|_| {
        Issue::new(
            format!("{key}.method"),
            format!("\"{}\" is not an HTTP method", b.method),
        )
    })?;
    Ok(HttpRequest {
        method,
        url: b.url.clone(),
        headers: b.headers.clone().into_iter().collect(),
        body: b.body.clone(),
        success: b.success.clone(),
    })
}

fn read(key: &str, b: &RequestBlock) -> Result<HttpRead, Issue> {
    Ok(HttpRead {
        request: request(key, b, &["payload_pointer", "present_when"])?,
        payload_pointer: b.payload_pointer.clone(),
        present_when: b.present_when.as_ref().map(|w| PresentWhen {
            pointer: w.pointer.clone(),
            equals: w.equals.clone(),
        }),
    })
}

fn list(key: &str, b: &RequestBlock) -> Result<HttpList, Issue> {
    let need = |field: &str, v: &Option<String>| {
        v.clone().ok_or_else(|| {
            Issue::new(
                format!("{key}.{field}"),
                format!("a list request needs {field}: where the answer keeps it"),
            )
        })
    };
    Ok(HttpList {
        request: request(key, b, &["items_pointer", "key_pointer"])?,
        items_pointer: need("items_pointer", &b.items_pointer)?,
        key_pointer: need("key_pointer", &b.key_pointer)?,
    })
}

/// Registry entry: types and checks a `kind: http` block.
///
/// # Errors
/// An [`Issue`] naming the offending key.
pub fn decode(key: &str, value: Value) -> Result<Box<dyn SystemKind>, Issue> {
    let mut c: HttpConfig = decode_as(key, value)?;
    let at = |op: &str| format!("{key}.{op}");
    c.map = HttpMap {
        write: c
            .write
            .as_ref()
            .map(|b| request(&at("write"), b, &[]))
            .transpose()?,
        read: c.read.as_ref().map(|b| read(&at("read"), b)).transpose()?,
        delete: c
            .delete
            .as_ref()
            .map(|b| request(&at("delete"), b, &[]))
            .transpose()?,
        lookup: c
            .lookup
            .as_ref()
            .map(|b| read(&at("lookup"), b))
            .transpose()?,
        list: c.list.as_ref().map(|b| list(&at("list"), b)).transpose()?,
    };
    if c.map.read.is_none() && c.map.lookup.is_none() {
        return Err(Issue::new(
            at("lookup"),
            "an http system needs a lookup (or read) request: how to find a sentinel in it",
        ));
    }
    c.map.check(key)?;
    c.auth.resolve(&format!("{key}.auth"), Accepts::ANY)?;
    Ok(Box::new(c))
}

impl HttpConfig {
    fn first_url(&self) -> &str {
        let m = &self.map;
        m.lookup
            .as_ref()
            .or(m.read.as_ref())
            .map(|r| r.request.url.as_str())
            .unwrap_or_default()
    }
}

impl SystemSpec for HttpConfig {
    fn kind(&self) -> &'static str {
        "http"
    }

    fn can_write(&self) -> Result<(), String> {
        if self.map.write.is_some() {
            Ok(())
        } else {
            Err("it has no write request".to_string())
        }
    }

    /// A PUT or PATCH write replaces the record by its key; a POST would add another.
    fn can_update(&self) -> Result<(), String> {
        match &self.map.write {
            Some(w) if w.method == reqwest::Method::PUT || w.method == reqwest::Method::PATCH => {
                Ok(())
            }
            Some(w) => Err(format!(
                "its write is a {}, which may add a record each time; a PUT or PATCH write can update",
                w.method
            )),
            None => Err("it has no write request".to_string()),
        }
    }

    /// A canary's version is read from the lookup's content (`payload_pointer`).
    fn shows_versions(&self) -> Result<(), String> {
        match &self.map.lookup {
            Some(l) if l.payload_pointer.is_some() => Ok(()),
            Some(_) => Err(
                "its lookup has no payload_pointer, so a canary's version cannot be read"
                    .to_string(),
            ),
            None => Err("it has no lookup request".to_string()),
        }
    }

    fn describe(&self) -> String {
        let ops: Vec<&str> = [
            ("write", self.map.write.is_some()),
            ("read", self.map.read.is_some()),
            ("lookup", self.map.lookup.is_some()),
            ("delete", self.map.delete.is_some()),
            ("list", self.map.list.is_some()),
        ]
        .into_iter()
        .filter_map(|(n, on)| on.then_some(n))
        .collect();
        format!(
            "{} ({}), auth {}",
            self.first_url(),
            ops.join(", "),
            self.auth.method()
        )
    }
}

impl SystemKind for HttpConfig {
    fn build(&self, name: &str, cx: &BuildContext, gate: Arc<Gate>) -> Result<System, Issue> {
        let http = super::http_system(
            name,
            cx,
            &gate,
            self.auth.credential(),
            || super::scope_or_derived(name, self.scope.as_deref(), self.first_url()),
            None,
        )?;
        let connector = Arc::new(HttpKind::new(http, self.map.clone()));
        Ok(System {
            name: name.to_string(),
            kind: self.kind(),
            gate,
            source: self
                .map
                .write
                .is_some()
                .then(|| connector.clone() as Arc<dyn Source>),
            target: Some(connector),
            inventory: None,
            status: None,
        })
    }
}

/// The connector.
pub struct HttpKind {
    http: HttpSystem,
    map: HttpMap,
}

impl HttpKind {
    pub fn new(http: HttpSystem, map: HttpMap) -> Self {
        HttpKind { http, map }
    }

    async fn send(
        &self,
        op: &'static str,
        req: &HttpRequest,
        vars: &Vars<'_>,
    ) -> Result<Reply, ConnectorError> {
        let p = prepare(op, req, vars)?;
        self.http
            .send(op, |c: &Client| {
                let r = c
                    .request(p.method.clone(), p.url.clone())
                    .headers(p.headers.clone());
                match &p.body {
                    Some(b) => r.body(b.clone()),
                    None => r,
                }
            })
            .await
    }

    async fn read_with(
        &self,
        op: &'static str,
        read: &HttpRead,
        id: &SentinelId,
    ) -> Result<Lookup, ConnectorError> {
        let reply = self.send(op, &read.request, &Vars::of(id)).await?;
        let status = reply.status.as_u16();
        if status == 404 {
            return Ok(Lookup::Absent);
        }
        if !read.request.succeeded(status) {
            return Err(unexpected(op, &reply));
        }
        interpret(read, &reply)
    }
}

/// What a successful read answer says.
fn interpret(read: &HttpRead, reply: &Reply) -> Result<Lookup, ConnectorError> {
    if read.payload_pointer.is_none() && read.present_when.is_none() {
        return Ok(Lookup::Present { payload: None });
    }
    let body: Value = reply.json()?;
    let payload = read
        .payload_pointer
        .as_deref()
        .and_then(|p| body.pointer(p))
        .and_then(payload_text);
    match &read.present_when {
        Some(w) if body.pointer(&w.pointer) != Some(&w.equals) => Ok(Lookup::Absent),
        Some(_) => Ok(Lookup::Present { payload }),
        None if payload.is_none() => Ok(Lookup::Absent),
        None => Ok(Lookup::Present { payload }),
    }
}

impl HttpKind {
    /// The write request with the sentinel, counted as `operation` (`write`, or the canary's
    /// `update`).
    async fn send_write(
        &self,
        operation: &'static str,
        s: &Sentinel,
    ) -> Result<Updated, ConnectorError> {
        let Some(req) = &self.map.write else {
            return Err(not_sent("no write request is configured".into()));
        };
        let mut vars = Vars::of(&s.id);
        vars.payload = Some(&s.payload);
        let reply = self.send(operation, req, &vars).await?;
        if req.succeeded(reply.status.as_u16()) {
            Ok(reply.updated())
        } else {
            Err(unexpected(operation, &reply))
        }
    }
}

#[async_trait]
impl Source for HttpKind {
    async fn write(&self, s: &Sentinel) -> Result<(), ConnectorError> {
        self.send_write("write", s).await.map(|_| ())
    }

    /// The write request again: a PUT or PATCH (`can_update`) replaces the record.
    async fn update(&self, s: &Sentinel) -> Result<Updated, ConnectorError> {
        self.send_write("update", s).await
    }

    async fn read(&self, id: &SentinelId) -> Result<Lookup, ConnectorError> {
        match self.map.read.as_ref().or(self.map.lookup.as_ref()) {
            Some(read) => self.read_with("read", read, id).await,
            None => Err(not_sent("no read or lookup request is configured".into())),
        }
    }

    async fn delete(&self, id: &SentinelId) -> Result<(), ConnectorError> {
        // Without a delete request the sentinel stays; that is the configured choice.
        let Some(req) = &self.map.delete else {
            return Ok(());
        };
        let reply = self.send("delete", req, &Vars::of(id)).await?;
        let status = reply.status.as_u16();
        if status == 404 || req.succeeded(status) {
            Ok(())
        } else {
            Err(unexpected("delete", &reply))
        }
    }

    /// Sentinels of `prefix` older than `before`, from one `list` request. Without a `list`
    /// request this is an empty list: nothing is swept, and sentinels a crash left behind stay
    /// until removed by hand. Keys are checked here too (own prefix, UUID v7 time before
    /// `before`), so a server that ignores the filter can never make lagwatch delete another
    /// instance's or a live sentinel.
    async fn list_own(
        &self,
        prefix: &str,
        before: DateTime<Utc>,
    ) -> Result<Vec<SentinelId>, ConnectorError> {
        let Some(list) = &self.map.list else {
            return Ok(Vec::new());
        };
        let vars = Vars {
            prefix: Some(prefix),
            before: Some(before.to_rfc3339_opts(SecondsFormat::Secs, true)),
            ..Vars::default()
        };
        let reply = self.send("list", &list.request, &vars).await?;
        if !list.request.succeeded(reply.status.as_u16()) {
            return Err(unexpected("list", &reply));
        }
        let body: Value = reply.json()?;
        let Some(items) = body.pointer(&list.items_pointer).and_then(Value::as_array) else {
            return Err(reply.bad_response(format!(
                "no array at \"{}\" in the list answer",
                list.items_pointer
            )));
        };
        let cutoff_ms = before.timestamp_millis();
        Ok(items
            .iter()
            .filter_map(|item| item.pointer(&list.key_pointer)?.as_str())
            .filter(|key| key.starts_with(prefix))
            .filter_map(SentinelId::parse)
            .filter(|id| {
                id.uuid().get_timestamp().is_some_and(|t| {
                    let (secs, nanos) = t.to_unix();
                    let ms = i64::try_from(secs)
                        .unwrap_or(i64::MAX)
                        .saturating_mul(1000)
                        .saturating_add(i64::from(nanos / 1_000_000));
                    ms < cutoff_ms
                })
            })
            .collect())
    }
}

#[async_trait]
impl Target for HttpKind {
    async fn lookup(&self, id: &SentinelId) -> Result<Lookup, ConnectorError> {
        match self.map.lookup.as_ref().or(self.map.read.as_ref()) {
            Some(read) => self.read_with("lookup", read, id).await,
            None => Err(not_sent("no lookup or read request is configured".into())),
        }
    }
}

impl HttpMap {
    /// Checks the templates and pointers once, when the configuration is loaded: URLs are
    /// absolute `http(s)` URLs, header names are valid, placeholders are known and available
    /// for their operation (`{payload}` only in `write`, `{prefix}`/`{before}` only in `list`),
    /// pointers are RFC 6901 (empty or starting with `/`), and `write` comes with a way to read.
    ///
    /// # Errors
    /// An [`Issue`] whose key is `key` plus the offending field, e.g. `systems.api.lookup.url`.
    pub fn check(&self, key: &str) -> Result<(), Issue> {
        let id = &["id", "uuid"][..];
        let with_payload = &["id", "uuid", "payload"][..];
        let listing = &["prefix", "before"][..];
        if let Some(w) = &self.write {
            check_request(&format!("{key}.write"), w, with_payload)?;
            if self.read.is_none() && self.lookup.is_none() {
                return Err(Issue::new(
                    format!("{key}.read"),
                    "a system that is written needs a read (or lookup) request for the \
                     read-your-writes check",
                ));
            }
        }
        for (name, read) in [("read", &self.read), ("lookup", &self.lookup)] {
            let Some(read) = read else { continue };
            let k = format!("{key}.{name}");
            check_request(&k, &read.request, id)?;
            if let Some(p) = &read.payload_pointer {
                check_pointer(&format!("{k}.payload_pointer"), p)?;
            }
            if let Some(w) = &read.present_when {
                check_pointer(&format!("{k}.present_when.pointer"), &w.pointer)?;
            }
        }
        if let Some(d) = &self.delete {
            check_request(&format!("{key}.delete"), d, id)?;
        }
        if let Some(l) = &self.list {
            let k = format!("{key}.list");
            check_request(&k, &l.request, listing)?;
            check_pointer(&format!("{k}.items_pointer"), &l.items_pointer)?;
            check_pointer(&format!("{k}.key_pointer"), &l.key_pointer)?;
        }
        Ok(())
    }
}

fn check_pointer(key: &str, p: &str) -> Result<(), Issue> {
    if p.is_empty() || p.starts_with('/') {
        Ok(())
    } else {
        Err(Issue::new(
            key,
            format!("\"{p}\" is not a JSON pointer: write \"\" or start with /, as in /items/0/id"),
        ))
    }
}

fn check_request(key: &str, req: &HttpRequest, allowed: &[&str]) -> Result<(), Issue> {
    let mut templates = vec![(format!("{key}.url"), req.url.as_str())];
    if let Some(b) = &req.body {
        templates.push((format!("{key}.body"), b.as_str()));
    }
    for (name, value) in &req.headers {
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(Issue::new(
                format!("{key}.headers"),
                format!("\"{name}\" is not a valid header name"),
            ));
        }
        templates.push((format!("{key}.headers.{name}"), value.as_str()));
    }
    let known: BTreeSet<&str> = ["id", "uuid", "payload", "prefix", "before"].into();
    for (k, t) in &templates {
        for p in placeholders(t) {
            if !known.contains(p) {
                return Err(Issue::new(
                    k.clone(),
                    format!(
                        "unknown placeholder {{{p}}}; the placeholders here are: {}",
                        allowed
                            .iter()
                            .map(|a| format!("{{{a}}}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            if !allowed.contains(&p) {
                return Err(Issue::new(
                    k.clone(),
                    format!(
                        "{{{p}}} has no value in this request; the placeholders here are: {}",
                        allowed
                            .iter()
                            .map(|a| format!("{{{a}}}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
    }
    let sample = Vars {
        id: Some("lagwatch-x-00000000-0000-7000-8000-000000000000"),
        uuid: Some("00000000-0000-7000-8000-000000000000".into()),
        payload: Some("{}"),
        prefix: Some("lagwatch-x-"),
        before: Some("2026-01-01T00:00:00Z".into()),
    };
    match url::Url::parse(&render(&req.url, &sample, Escape::Url)) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(Issue::new(
            format!("{key}.url"),
            format!(
                "\"{}\" is not an absolute http(s) URL such as https://api.example.com/items/{{id}}",
                req.url
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_replaced_once_and_escaped_for_their_place() {
        let vars = Vars {
            id: Some("a b/{id}\"é"),
            ..Vars::default()
        };
        assert_eq!(
            render("https://x/{id}?q={id}", &vars, Escape::Url),
            "https://x/a%20b%2F%7Bid%7D%22%C3%A9?q=a%20b%2F%7Bid%7D%22%C3%A9"
        );
        assert_eq!(
            render(r#"{"k":"{id}","n":{"x":1}}"#, &vars, Escape::Json),
            r#"{"k":"a b/{id}\"é","n":{"x":1}}"#
        );
        assert_eq!(render("{unknown} {", &vars, Escape::Raw), "{unknown} {");
    }

    #[test]
    fn placeholders_are_found() {
        assert_eq!(
            placeholders(r#"{"a":"{id}","b":{"c":"{pay_load}"}} {x"#),
            vec!["id", "pay_load"]
        );
    }

    #[test]
    fn check_rejects_unknown_and_misplaced_placeholders() {
        let mut map = HttpMap {
            lookup: Some(HttpRead {
                request: HttpRequest::new(Method::GET, "https://x/items/{payload}"),
                payload_pointer: Some("/payload".into()),
                present_when: None,
            }),
            ..HttpMap::default()
        };
        let e = map.check("systems.api").unwrap_err();
        assert_eq!(e.key, "systems.api.lookup.url");
        assert!(e.reason.contains("{payload} has no value"), "{}", e.reason);
        map.lookup.as_mut().unwrap().request.url = "https://x/items/{key}".into();
        let e = map.check("systems.api").unwrap_err();
        assert!(
            e.reason.starts_with("unknown placeholder {key}"),
            "{}",
            e.reason
        );
        map.lookup.as_mut().unwrap().request.url = "/items/{id}".into();
        assert!(map.check("systems.api").is_err());
        map.lookup.as_mut().unwrap().request.url = "https://x/items/{id}".into();
        map.lookup.as_mut().unwrap().payload_pointer = Some("payload".into());
        let e = map.check("systems.api").unwrap_err();
        assert_eq!(e.key, "systems.api.lookup.payload_pointer");
        map.lookup.as_mut().unwrap().payload_pointer = Some("/payload".into());
        map.check("systems.api").unwrap();
    }
}
