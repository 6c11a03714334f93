//! A lake in Azure Storage, read over the Blob REST API through lagwatch's own HTTP layer.
//!
//! Why the Blob API for every flavour: it works on plain accounts, on ADLS Gen2 accounts with a
//! hierarchical namespace (where Synapse Link writes), on OneLake and on Azurite, so one client
//! covers `https://…blob…`, `https://…dfs…`, `abfss://…` and OneLake URLs, which
//! [`BlobLocation::parse`] maps to a blob endpoint. The calls a scan needs (fact sheet §5.7):
//!
//! - [`LakeStore::list`]: `GET {endpoint}/{container}?restype=container&comp=list&delimiter=/`
//!   `&prefix={dir}/[&marker=…]`, following `NextMarker` until the listing ends. In the
//!   `EnumerationResults` XML, `Blobs/BlobPrefix/Name` are the sub-folders and `Blobs/Blob`
//!   (`Name`, `Properties/Content-Length`, `Properties/Etag`, `Properties/Last-Modified`) the
//!   files; a blob whose `Properties/ResourceType` is `directory` (hierarchical namespace) is a
//!   folder too.
//! - [`LakeStore::get`]: `GET {endpoint}/{container}/{path}`; `404` is `None`, unless the error
//!   code says the container itself is missing.
//! - [`LakeStore::get_range`]: the same Get Blob with `Range: bytes={start}-`: `206 Partial
//!   Content` carries the bytes from `start` on (its `Content-Range` must start there), `416
//!   Range Not Satisfiable` means `start` is at or past the end (an empty read), and a `200`
//!   (a server that ignores ranges) is cut to `start` here. [`LakeStore::get_slice`] is the
//!   same with `Range: bytes={start}-{start + len - 1}`.
//! - [`LakeStore::stat`]: Get Blob Properties, `HEAD {endpoint}/{container}/{path}`: size,
//!   `ETag` and `Last-Modified` without a body.
//!
//! Every request carries `x-ms-version` ([`API_VERSION`]) and `x-ms-date`, and is sent with
//! [`HttpSystem::send`], so the system's gate, request budget, request metrics (operation
//! `lookup`), clock-offset tracking and the 401/403/429/5xx mapping apply as to every other
//! kind. Azure Storage throttles with `503 ServerBusy`: that becomes
//! [`ConnectorError::Throttled`], so the gate pauses the account like after a 429. Other
//! storage errors (`<Error><Code>…</Code><Message>…</Message></Error>`) become typed errors
//! carrying the code and the first line of the message, never the `AuthenticationErrorDetail`.
//!
//! Authentication ([`BlobAuth`]): an Entra bearer token (`https://storage.azure.com/.default`)
//! or nothing is added by the [`HttpSystem`]; a [`SharedKey`] signature is computed here for
//! every request (it covers the date, the path and the query); a SAS token is appended to
//! every URL's query. The SAS is a secret: request URLs are never put into error messages or
//! metrics (the HTTP layer names a request by method, host and path, never its query string,
//! and errors here name the path inside the lake).
//!
//! Files are read whole or from an offset to their end: up to [`MAX_OBJECT_BYTES`] per read
//! (the export's per-interval change files are small, and a table-layout partition is read
//! whole only when it was rewritten; a bigger read is an error, not an allocation). Listings
//! keep the default cap of the HTTP layer, which a page of at most 5,000 entries stays well
//! under.

use std::collections::BTreeSet;
use std::fmt;

use async_trait::async_trait;
use aws_lc_rs::hmac;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use quick_xml::events::Event;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Client, Method, RequestBuilder};

use super::{FileEntry, LakeError, LakeStore, Listing};
use crate::config::Secret;
use crate::connector::ConnectorError;
use crate::net::{HttpSystem, Reply, excerpt};

/// The `x-ms-version` sent: a GA Blob service version (2024-11-04) that Azurite accepts (3.35.0,
/// the version the tests pin, accepts 2009-09-19 to 2025-11-05).
pub const API_VERSION: &str = "2024-11-04";

/// Largest file [`BlobStore::get`] reads.
pub const MAX_OBJECT_BYTES: usize = 256 * 1024 * 1024;

/// Operation label of every request in `lagwatch_requests_total` (a lake request serves a lookup).
const OPERATION: &str = "lookup";

/// More pages than this in one listing means the service repeats itself.
const MAX_PAGES: usize = 10_000;

/// Which flavour of blob endpoint a URL named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// A storage account, `https://<account>.blob.core.windows.net` (also from `.dfs.` and
    /// `abfss://`).
    Account,
    /// OneLake (Microsoft Fabric): the container is the workspace; Entra ID only.
    OneLake,
    /// Path-style, the account as the first path segment: Azurite and other emulators,
    /// `http://127.0.0.1:10000/devstoreaccount1/<container>`.
    PathStyle,
}

/// Where a lake lives in Azure Storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobLocation {
    /// The URL up to the container, no trailing `/`: `https://acct.blob.core.windows.net`, or
    /// `http://127.0.0.1:10000/devstoreaccount1` for a path-style URL.
    pub endpoint: String,
    /// Storage account name (what a Shared Key signature names).
    pub account: String,
    /// Container (OneLake: workspace), as named, not encoded.
    pub container: String,
    /// Folder inside the container that holds the export, without leading or trailing `/`;
    /// empty for the container's root.
    pub prefix: String,
    pub service: Service,
}

/// The URL forms [`BlobLocation::parse`] takes, for messages.
pub const URL_FORMS: &str = "https://<account>.blob.core.windows.net/<container>[/<folder>], \
     https://<account>.dfs.core.windows.net/<container>[/<folder>], \
     abfss://<container>@<account>.dfs.core.windows.net/[<folder>], \
     https://onelake.dfs.fabric.microsoft.com/<workspace>/<item>/<folder> or, for an emulator, \
     http://127.0.0.1:10000/devstoreaccount1/<container>";

impl BlobLocation {
    /// Reads a lake URL (see [`URL_FORMS`]). `dfs` hosts are mapped to their `blob` host.
    ///
    /// # Errors
    /// A sentence saying what is wrong. A URL with a query is refused without being quoted:
    /// it may hold a SAS token, which belongs in `auth`.
    pub fn parse(url: &str) -> Result<BlobLocation, String> {
        let u = url::Url::parse(url).map_err(|e| format!("\"{url}\" is not a URL ({e})"))?;
        if u.query().is_some() || u.fragment().is_some() || u.password().is_some() {
            return Err(
                "a storage URL takes no query, fragment or password; a SAS token goes in \
                 auth: { method: sas, token: env:NAME }"
                    .to_string(),
            );
        }
        let host = u
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("\"{url}\" has no host"))?
            .to_ascii_lowercase();
        let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
        let segments: Vec<String> = u
            .path_segments()
            .map(|s| {
                s.filter(|s| !s.is_empty())
                    .map(crate::percent::decode_lossy)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let location = match u.scheme() {
            "abfss" | "abfs" => {
                let Some((service, account, blob_host)) = named_host(&host) else {
                    return Err(format!(
                        "\"{url}\": an abfss URL names a dfs host, such as \
                         abfss://<container>@<account>.dfs.core.windows.net/"
                    ));
                };
                let container = crate::percent::decode_lossy(u.username());
                if container.is_empty() {
                    return Err(format!(
                        "\"{url}\" names no container; write \
                         abfss://<container>@<account>.dfs.core.windows.net/"
                    ));
                }
                BlobLocation {
                    endpoint: format!("https://{blob_host}{port}"),
                    account,
                    container,
                    prefix: segments.join("/"),
                    service,
                }
            }
            scheme @ ("https" | "http") => {
                if !u.username().is_empty() {
                    return Err(format!("\"{url}\": a storage URL takes no user name"));
                }
                let mut rest = segments.into_iter();
                if let Some((service, account, blob_host)) = named_host(&host) {
                    let container = rest.next().ok_or_else(|| {
                        format!("\"{url}\" names no container; write {scheme}://{host}/<container>")
                    })?;
                    BlobLocation {
                        endpoint: format!("{scheme}://{blob_host}{port}"),
                        account,
                        container,
                        prefix: rest.collect::<Vec<_>>().join("/"),
                        service,
                    }
                } else {
                    let (Some(account), Some(container)) = (rest.next(), rest.next()) else {
                        return Err(format!(
                            "\"{url}\": for an emulator, name the account and the container \
                             in the path, as in http://127.0.0.1:10000/devstoreaccount1/<container>; \
                             the URLs lagwatch reads are {URL_FORMS}"
                        ));
                    };
                    BlobLocation {
                        endpoint: format!("{scheme}://{host}{port}/{}", encode_path(&account)),
                        account,
                        container,
                        prefix: rest.collect::<Vec<_>>().join("/"),
                        service: Service::PathStyle,
                    }
                }
            }
            other => {
                return Err(format!(
                    "\"{url}\": unknown scheme {other}; use file:///path/to/container or one of \
                     {URL_FORMS}"
                ));
            }
        };
        if location.service != Service::OneLake && !container_name_ok(&location.container) {
            return Err(format!(
                "\"{url}\": \"{}\" is not a container name (3 to 63 lower-case letters, digits \
                 and single hyphens)",
                location.container
            ));
        }
        if location.prefix.split('/').any(|s| matches!(s, "." | "..")) {
            return Err(format!(
                "\"{url}\": the folder cannot contain . or .. segments"
            ));
        }
        Ok(location)
    }

    /// The URL of the container, percent-encoded, no trailing `/`.
    fn container_url(&self) -> String {
        format!("{}/{}", self.endpoint, encode_path(&self.container))
    }
}

/// `(service, account, blob host)` for `<account>.blob|dfs.<suffix>` hosts (any cloud) and
/// OneLake's `[<region>-]onelake.dfs|blob.fabric.microsoft.com`.
fn named_host(host: &str) -> Option<(Service, String, String)> {
    if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        return None;
    }
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() < 4 || !matches!(labels[1], "blob" | "dfs") {
        return None;
    }
    let blob_host = format!("{}.blob.{}", labels[0], labels[2..].join("."));
    if labels[0].ends_with("onelake") && host.ends_with(".fabric.microsoft.com") {
        return Some((Service::OneLake, "onelake".to_string(), blob_host));
    }
    Some((Service::Account, labels[0].to_string(), blob_host))
}

/// Container naming rules of Azure Storage (and `$root`, `$web`, `$logs`).
pub fn container_name_ok(name: &str) -> bool {
    if matches!(name, "$root" | "$web" | "$logs") {
        return true;
    }
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// Percent-encodes a Blob path (everything but RFC 3986 unreserved characters and `/`).
pub fn encode_path(s: &str) -> String {
    crate::percent::path(s)
}

/// An account key that signs requests (Shared Key authorization of the Blob service).
pub struct SharedKey {
    account: String,
    /// Boxed: the HMAC key state is over a kilobyte.
    key: Box<hmac::Key>,
}

impl fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedKey({}, <redacted>)", self.account)
    }
}

impl SharedKey {
    /// The key of `account`, as the portal shows it (base64).
    ///
    /// # Errors
    /// A sentence, without the key, when it is not base64.
    pub fn new(account: &str, base64_key: &str) -> Result<SharedKey, String> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(base64_key.trim())
            .map_err(|_| {
                "the account key is not base64 (copy key1 or key2 from the storage account's \
                 Access keys)"
                    .to_string()
            })?;
        if raw.is_empty() {
            return Err("the account key is empty".to_string());
        }
        Ok(SharedKey {
            account: account.to_string(),
            key: Box::new(hmac::Key::new(hmac::HMAC_SHA256, &raw)),
        })
    }

    /// `base64(HMAC-SHA256(key, text))`: the signature of a string-to-sign (also what a SAS
    /// signature is made of).
    pub fn sign(&self, text: &str) -> String {
        let tag = hmac::sign(&self.key, text.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
    }

    /// The `Authorization` header value of a request: `SharedKey <account>:<signature>`.
    pub fn authorization(&self, method: &str, url: &url::Url, headers: &HeaderMap) -> String {
        let text = string_to_sign(&self.account, method, url, headers);
        format!("SharedKey {}:{}", self.account, self.sign(&text))
    }
}

/// The Shared Key string-to-sign of the Blob service (version 2009-09-19 and later): the verb,
/// eleven standard headers (`Content-Length` empty when 0), the `x-ms-` headers lower-cased
/// and sorted, and the canonicalized resource: `/<account><encoded path>` followed by one
/// `\n<name>:<decoded values, sorted, comma-joined>` per query parameter, names lower-cased
/// and sorted.
pub fn string_to_sign(account: &str, method: &str, url: &url::Url, headers: &HeaderMap) -> String {
    let header = |name: &str| -> String {
        let all: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        all.join(",")
    };
    let mut out = method.to_ascii_uppercase();
    for name in [
        "content-encoding",
        "content-language",
        "content-length",
        "content-md5",
        "content-type",
        "date",
        "if-modified-since",
        "if-match",
        "if-none-match",
        "if-unmodified-since",
        "range",
    ] {
        let mut v = header(name);
        if name == "content-length" && v == "0" {
            v.clear();
        }
        out.push('\n');
        out.push_str(&v);
    }
    out.push('\n');
    let mut ms: Vec<(String, String)> = Vec::new();
    for name in headers.keys() {
        let n = name.as_str().to_ascii_lowercase();
        if n.starts_with("x-ms-") {
            let v = header(name.as_str());
            ms.push((n, v.split_whitespace().collect::<Vec<_>>().join(" ")));
        }
    }
    ms.sort();
    ms.dedup();
    for (n, v) in ms {
        out.push_str(&format!("{n}:{v}\n"));
    }
    out.push_str(&format!("/{account}{}", url.path()));
    let mut params: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (k, v) in url.query_pairs() {
        params
            .entry(k.to_ascii_lowercase())
            .or_default()
            .push(v.into_owned());
    }
    for (k, mut vs) in params {
        vs.sort();
        out.push_str(&format!("\n{k}:{}", vs.join(",")));
    }
    out
}

/// How requests to the store are authenticated, beyond what its [`HttpSystem`] adds.
pub enum BlobAuth {
    /// Whatever the [`HttpSystem`] does: an Entra bearer token, or nothing (public container).
    Http,
    /// Every request signed with the account key.
    SharedKey(SharedKey),
    /// A SAS token (`sv=…&sig=…`, no leading `?`) appended to every URL.
    Sas(Secret),
}

impl fmt::Debug for BlobAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobAuth::Http => f.write_str("BlobAuth::Http"),
            BlobAuth::SharedKey(k) => write!(f, "BlobAuth::{k:?}"),
            BlobAuth::Sas(s) => write!(f, "BlobAuth::Sas({s:?})"),
        }
    }
}

/// A container (or a folder in it) of Azure Blob Storage, ADLS Gen2, OneLake or Azurite.
pub struct BlobStore {
    list_http: HttpSystem,
    get_http: HttpSystem,
    location: BlobLocation,
    auth: BlobAuth,
    page_size: Option<u32>,
}

impl fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobStore")
            .field("location", &self.location)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl BlobStore {
    /// A store reading `location` through `http` (whose auth is used as is) with `auth` on top.
    pub fn new(http: HttpSystem, location: BlobLocation, auth: BlobAuth) -> Self {
        BlobStore {
            get_http: http.clone().with_max_body(MAX_OBJECT_BYTES),
            list_http: http,
            location,
            auth,
            page_size: None,
        }
    }

    /// Asks for at most `n` entries per listing page (`maxresults`); the service's default is
    /// 5,000. Tests use small pages to exercise `NextMarker`.
    pub fn with_page_size(mut self, n: u32) -> Self {
        self.page_size = Some(n.max(1));
        self
    }

    /// The blob name of `rel` (a path relative to the lake's root), refusing `.`/`..`/empty
    /// segments as a local folder would.
    fn blob_name(&self, rel: &str) -> Result<String, LakeError> {
        if rel.is_empty() {
            return Ok(self.location.prefix.clone());
        }
        if rel
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(LakeError::Malformed {
                path: rel.to_string(),
                reason: "not a path inside the lake".to_string(),
            });
        }
        Ok(if self.location.prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.location.prefix)
        })
    }

    /// One GET of `url_path` (already encoded) with `query` (not encoded), authenticated.
    async fn call(
        &self,
        http: &HttpSystem,
        url_path: &str,
        query: &[(&str, String)],
    ) -> Result<Reply, ConnectorError> {
        self.call_with(http, Method::GET, url_path, query, None)
            .await
    }

    /// One request of `method` to `url_path` (already encoded) with `query` (not encoded) and,
    /// when `range` is set, `Range: bytes={first}-[{last}]`, authenticated.
    async fn call_with(
        &self,
        http: &HttpSystem,
        method: Method,
        url_path: &str,
        query: &[(&str, String)],
        range: Option<ByteRange>,
    ) -> Result<Reply, ConnectorError> {
        let mut url = url_path.to_string();
        let mut sep = '?';
        for (k, v) in query {
            url.push(sep);
            url.push_str(k);
            url.push('=');
            url.push_str(&crate::percent::component(v));
            sep = '&';
        }
        if let BlobAuth::Sas(token) = &self.auth {
            url.push(sep);
            url.push_str(token.expose());
        }
        let url = url::Url::parse(&url).map_err(|_| ConnectorError::BadResponse {
            status: 0,
            detail: "the request URL could not be formed".to_string(),
        })?;
        let auth = &self.auth;
        http.send(OPERATION, |client: &Client| {
            request(client, &method, &url, auth, range)
        })
        .await
    }

    /// The blob URL of `path`, refusing the lake's root (which is not a file).
    fn blob_url(&self, path: &str) -> Result<String, LakeError> {
        let name = self.blob_name(path)?;
        if name.is_empty() {
            return Err(LakeError::Malformed {
                path: path.to_string(),
                reason: "not a file inside the lake".to_string(),
            });
        }
        Ok(format!(
            "{}/{}",
            self.location.container_url(),
            encode_path(&name)
        ))
    }
}

/// The bytes a range read asks for: from `first` to `last` inclusive, or to the end.
#[derive(Debug, Clone, Copy)]
struct ByteRange {
    first: u64,
    last: Option<u64>,
}

impl ByteRange {
    fn header(self) -> String {
        match self.last {
            Some(last) => format!("bytes={}-{last}", self.first),
            None => format!("bytes={}-", self.first),
        }
    }
}

/// The request for `url`, with the version, date and (for a range read) `Range` headers and a
/// Shared Key signature over them.
fn request(
    client: &Client,
    method: &Method,
    url: &url::Url,
    auth: &BlobAuth,
    range: Option<ByteRange>,
) -> RequestBuilder {
    let mut headers = HeaderMap::new();
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    headers.insert("x-ms-version", HeaderValue::from_static(API_VERSION));
    if let Ok(v) = HeaderValue::from_str(&date) {
        headers.insert("x-ms-date", v);
    }
    if let Some(range) = range
        && let Ok(v) = HeaderValue::from_str(&range.header())
    {
        headers.insert(reqwest::header::RANGE, v);
    }
    if let BlobAuth::SharedKey(key) = auth
        && let Ok(mut v) = HeaderValue::from_str(&key.authorization(method.as_str(), url, &headers))
    {
        v.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    client.request(method.clone(), url.clone()).headers(headers)
}

#[async_trait]
impl LakeStore for BlobStore {
    async fn list(&self, dir: &str) -> Result<Listing, LakeError> {
        let label = if dir.is_empty() {
            "(lake root)/".to_string()
        } else {
            format!("{dir}/")
        };
        let name = self.blob_name(dir)?;
        let prefix = if name.is_empty() {
            String::new()
        } else {
            format!("{name}/")
        };
        let url = self.location.container_url();
        let mut dirs = BTreeSet::new();
        let mut files = Vec::new();
        let mut marker: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![
                ("restype", "container".to_string()),
                ("comp", "list".to_string()),
                ("delimiter", "/".to_string()),
            ];
            if !prefix.is_empty() {
                query.push(("prefix", prefix.clone()));
            }
            if let Some(m) = &marker {
                query.push(("marker", m.clone()));
            }
            if let Some(n) = self.page_size {
                query.push(("maxresults", n.to_string()));
            }
            let reply = self
                .call(&self.list_http, &url, &query)
                .await
                .map_err(|e| remote(&label, e))?;
            if reply.status.as_u16() != 200 {
                return Err(storage_error(&label, &reply));
            }
            let page = parse_list_page(&reply.body).map_err(|reason| LakeError::Malformed {
                path: label.clone(),
                reason,
            })?;
            for p in page.prefixes {
                let rel = relative(&p, &prefix, &label)?;
                let rel = rel.trim_end_matches('/');
                if !rel.is_empty() {
                    dirs.insert(rel.to_string());
                }
            }
            for b in page.blobs {
                let rel = relative(&b.name, &prefix, &label)?;
                if rel.is_empty() || rel.contains('/') {
                    continue; // the folder's own marker blob
                }
                if b.directory {
                    dirs.insert(rel.to_string());
                } else {
                    files.push(FileEntry {
                        name: rel.to_string(),
                        size: b.size,
                        version: b.etag,
                        modified: b.last_modified,
                    });
                }
            }
            match page.next_marker {
                Some(next) if Some(&next) == marker.as_ref() => {
                    return Err(LakeError::Malformed {
                        path: label,
                        reason: "the listing's NextMarker repeats the marker it was asked for"
                            .to_string(),
                    });
                }
                Some(next) => marker = Some(next),
                None => {
                    files.sort_by(|a, b| a.name.cmp(&b.name));
                    files.dedup_by(|a, b| a.name == b.name);
                    return Ok(Listing {
                        dirs: dirs.into_iter().collect(),
                        files,
                    });
                }
            }
        }
        Err(LakeError::Malformed {
            path: label,
            reason: format!("the listing did not end within {MAX_PAGES} pages"),
        })
    }

    async fn get(&self, path: &str) -> Result<Option<Vec<u8>>, LakeError> {
        let url = self.blob_url(path)?;
        let reply = self
            .call(&self.get_http, &url, &[])
            .await
            .map_err(|e| remote(path, e))?;
        match reply.status.as_u16() {
            200 => Ok(Some(reply.body)),
            404 if blob_missing(&reply) => Ok(None),
            _ => Err(storage_error(path, &reply)),
        }
    }

    async fn get_range(&self, path: &str, start: u64) -> Result<Option<Vec<u8>>, LakeError> {
        self.read_range(
            path,
            ByteRange {
                first: start,
                last: None,
            },
        )
        .await
    }

    /// `Range: bytes={start}-{start + len - 1}`: the service sends at most `len` bytes, so a
    /// page of a big file costs the page, not the file.
    async fn get_slice(
        &self,
        path: &str,
        start: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, LakeError> {
        if len == 0 {
            // No range names zero bytes; an existence check answers the same question.
            return Ok(self.stat(path).await?.map(|_| Vec::new()));
        }
        let mut bytes = self
            .read_range(
                path,
                ByteRange {
                    first: start,
                    last: Some(start.saturating_add(len - 1)),
                },
            )
            .await?;
        // A server that ignores `Range` sent the rest of the blob: keep the part asked for.
        if let Some(b) = &mut bytes {
            b.truncate(usize::try_from(len).unwrap_or(usize::MAX));
        }
        Ok(bytes)
    }

    async fn stat(&self, path: &str) -> Result<Option<FileEntry>, LakeError> {
        self.properties(path).await
    }
}

impl BlobStore {
    /// One Get Blob of `range`.
    async fn read_range(&self, path: &str, range: ByteRange) -> Result<Option<Vec<u8>>, LakeError> {
        let start = range.first;
        let url = self.blob_url(path)?;
        let reply = self
            .call_with(&self.get_http, Method::GET, &url, &[], Some(range))
            .await
            .map_err(|e| remote(path, e))?;
        match reply.status.as_u16() {
            206 => {
                // `Content-Range: bytes <first>-<last>/<length>`: the part must start where asked.
                let first = reply
                    .header("content-range")
                    .and_then(|r| r.trim().strip_prefix("bytes "))
                    .and_then(|r| r.split('-').next())
                    .and_then(|f| f.trim().parse::<u64>().ok());
                match first {
                    Some(f) if f != start => Err(LakeError::Malformed {
                        path: path.to_string(),
                        reason: format!(
                            "asked for the bytes from {start} on, got a part starting at {f}"
                        ),
                    }),
                    _ => Ok(Some(reply.body)),
                }
            }
            // A server that ignores `Range` sends the whole blob.
            200 => {
                let from = usize::try_from(start).unwrap_or(usize::MAX);
                Ok(Some(reply.body.get(from..).unwrap_or_default().to_vec()))
            }
            // `InvalidRange`: `start` is at or past the end of the blob.
            416 => Ok(Some(Vec::new())),
            404 if blob_missing(&reply) => Ok(None),
            _ => Err(storage_error(path, &reply)),
        }
    }

    /// Get Blob Properties (`HEAD`): size, ETag and modification time.
    async fn properties(&self, path: &str) -> Result<Option<FileEntry>, LakeError> {
        let url = self.blob_url(path)?;
        let reply = self
            .call_with(&self.list_http, Method::HEAD, &url, &[], None)
            .await
            .map_err(|e| remote(path, e))?;
        match reply.status.as_u16() {
            200 => {
                let size = reply
                    .header("content-length")
                    .and_then(|l| l.trim().parse::<u64>().ok())
                    .ok_or_else(|| LakeError::Malformed {
                        path: path.to_string(),
                        reason: "Get Blob Properties answered without a Content-Length".to_string(),
                    })?;
                Ok(Some(FileEntry {
                    name: path.rsplit('/').next().unwrap_or(path).to_string(),
                    size,
                    version: reply.header("etag").map(etag),
                    modified: reply.header("last-modified").and_then(http_date),
                }))
            }
            // A HEAD answer has no body: the error code is in `x-ms-error-code` only.
            404 if blob_missing(&reply) => Ok(None),
            _ => Err(storage_error(path, &reply)),
        }
    }
}

/// Whether a `404` means the blob is absent (and not the container, which is a wrong URL).
fn blob_missing(reply: &Reply) -> bool {
    !matches!(
        error_code(reply).as_deref(),
        Some("ContainerNotFound" | "ResourceNotFound")
    )
}

/// An ETag without the quotes the `ETag` header has and listings leave out, so a `stat` and a
/// listing give the same version.
fn etag(text: &str) -> String {
    text.trim().trim_matches('"').to_string()
}

/// An RFC 1123 date as Azure Storage writes `Last-Modified`.
fn http_date(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `name` relative to the listing's `prefix`.
fn relative<'a>(name: &'a str, prefix: &str, label: &str) -> Result<&'a str, LakeError> {
    name.strip_prefix(prefix)
        .ok_or_else(|| LakeError::Malformed {
            path: label.to_string(),
            reason: format!(
                "the listing holds \"{}\", outside the prefix asked for",
                excerpt(name.as_bytes())
            ),
        })
}

/// A failed request as a lake error, with the storage error code made readable and
/// `503 ServerBusy` (Azure Storage's throttling) turned into throttling. What the HTTP layer
/// wrote before the body's excerpt (the request, `HTTP 403: `) stays in front of the code.
fn remote(path: &str, e: ConnectorError) -> LakeError {
    // Up to the last ": " before the body's excerpt (which may open with a BOM).
    let before_xml = |text: &str| {
        let head = &text[..text.find('<').unwrap_or(0)];
        head.rfind(": ")
            .map_or(String::new(), |i| head[..i + 2].to_string())
    };
    let error = match e {
        ConnectorError::Unavailable { status, detail } => match xml_in_text(&detail) {
            Some((code, _)) if status == 503 && code == "ServerBusy" => {
                ConnectorError::Throttled { retry_after: None }
            }
            Some((code, message)) => ConnectorError::Unavailable {
                status,
                detail: format!("{}{}", before_xml(&detail), join_code(&code, &message)),
            },
            None => ConnectorError::Unavailable { status, detail },
        },
        ConnectorError::Auth(text) => match xml_in_text(&text) {
            // `{request}: HTTP 403: <Error>…` becomes `{request}: HTTP 403 Code: message`.
            Some((code, message)) => {
                let head = before_xml(&text);
                let head = head.strip_suffix(": ").unwrap_or(&head);
                let reworded = format!("{head} {}", join_code(&code, &message));
                ConnectorError::Auth(text.reworded(reworded))
            }
            None => ConnectorError::Auth(text),
        },
        other => other,
    };
    LakeError::Remote {
        path: path.to_string(),
        error,
    }
}

fn join_code(code: &str, message: &str) -> String {
    if message.is_empty() {
        code.to_string()
    } else {
        format!("{code}: {message}")
    }
}

/// `(code, message)` found in an excerpt of a storage error body (as the HTTP layer quotes it).
fn xml_in_text(text: &str) -> Option<(String, String)> {
    // `(content, whether the closing tag was there)`: an excerpt may cut the element short.
    let between = |open: &str, close: &str| -> Option<(String, bool)> {
        let start = text.find(open)? + open.len();
        let rest = &text[start..];
        match rest.find(close) {
            Some(end) => Some((rest[..end].to_string(), true)),
            None => Some((rest.trim_end_matches('…').to_string(), false)),
        }
    };
    let (code, closed) = between("<Code>", "</Code>")?;
    if !closed {
        return None;
    }
    let mut message = match between("<Message>", "</Message>") {
        Some((m, true)) => first_line(&m),
        Some((m, false)) if !m.contains(" RequestId:") => format!("{}…", first_line(&m)),
        Some((m, false)) => first_line(&m),
        None => String::new(),
    };
    if message == "…" {
        message.clear();
    }
    Some((code, message))
}

/// The message up to its `RequestId:` line (what follows is a request id and a time).
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default();
    let line = line.split(" RequestId:").next().unwrap_or_default();
    line.trim().to_string()
}

/// The storage error code of a reply: the `x-ms-error-code` header, else the body's `Code`.
fn error_code(reply: &Reply) -> Option<String> {
    reply
        .header("x-ms-error-code")
        .map(str::to_string)
        .or_else(|| parse_error(&reply.body).map(|(c, _)| c))
}

/// An unexpected status as a typed error naming the storage error code and message.
fn storage_error(path: &str, reply: &Reply) -> LakeError {
    let parsed = parse_error(&reply.body);
    let code = reply
        .header("x-ms-error-code")
        .map(str::to_string)
        .or_else(|| parsed.as_ref().map(|(c, _)| c.clone()));
    let detail = match (code, parsed) {
        (Some(code), Some((_, message))) => join_code(&code, &message),
        (Some(code), None) => code,
        (None, _) => match excerpt(&reply.body) {
            e if e.is_empty() => "no error body".to_string(),
            e => e,
        },
    };
    LakeError::Remote {
        path: path.to_string(),
        error: reply.bad_response(detail),
    }
}

/// `(Code, first line of Message)` of a storage error body
/// (`<Error><Code>…</Code><Message>…</Message></Error>`).
pub fn parse_error(body: &[u8]) -> Option<(String, String)> {
    let root = parse_xml(body).ok()?;
    if root.name != "Error" {
        return None;
    }
    let code = root.child("Code")?.text.trim().to_string();
    let message = root
        .child("Message")
        .map_or(String::new(), |m| first_line(&m.text));
    (!code.is_empty()).then_some((code, message))
}

/// One blob of a listing page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedBlob {
    pub name: String,
    pub size: u64,
    /// A directory of a hierarchical-namespace account (`Properties/ResourceType`).
    pub directory: bool,
    /// `Properties/Etag`: changes with every write of the blob.
    pub etag: Option<String>,
    /// `Properties/Last-Modified`.
    pub last_modified: Option<DateTime<Utc>>,
}

/// One page of a List Blobs answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// `Blobs/BlobPrefix/Name`, full names with the trailing delimiter.
    pub prefixes: Vec<String>,
    pub blobs: Vec<ListedBlob>,
    /// `NextMarker`, when not empty: the listing goes on.
    pub next_marker: Option<String>,
}

/// Parses a List Blobs `EnumerationResults` body.
///
/// # Errors
/// A sentence when the body is not that XML.
pub fn parse_list_page(body: &[u8]) -> Result<ListPage, String> {
    let root = parse_xml(body)?;
    if root.name != "EnumerationResults" {
        return Err(format!(
            "the listing is <{}>, not <EnumerationResults>",
            root.name
        ));
    }
    let mut page = ListPage::default();
    if let Some(blobs) = root.child("Blobs") {
        for item in &blobs.children {
            let name = || -> Result<String, String> {
                let n = item
                    .child("Name")
                    .ok_or_else(|| format!("a <{}> without a <Name>", item.name))?;
                Ok(if n.attr("Encoded") == Some("true") {
                    crate::percent::decode_lossy(&n.text)
                } else {
                    n.text.clone()
                })
            };
            match item.name.as_str() {
                "BlobPrefix" => page.prefixes.push(name()?),
                "Blob" => {
                    let name = name()?;
                    let props = item.child("Properties");
                    let directory = props
                        .and_then(|p| p.child("ResourceType"))
                        .is_some_and(|r| r.text.trim().eq_ignore_ascii_case("directory"));
                    let size = match props.and_then(|p| p.child("Content-Length")) {
                        Some(l) => l.text.trim().parse::<u64>().map_err(|_| {
                            format!(
                                "blob \"{}\" has Content-Length \"{}\", not a number",
                                excerpt(name.as_bytes()),
                                excerpt(l.text.as_bytes())
                            )
                        })?,
                        None if directory => 0,
                        None => {
                            return Err(format!(
                                "blob \"{}\" has no Properties/Content-Length",
                                excerpt(name.as_bytes())
                            ));
                        }
                    };
                    let text = |n: &str| {
                        props
                            .and_then(|p| p.child(n))
                            .map(|c| c.text.trim().to_string())
                            .filter(|t| !t.is_empty())
                    };
                    page.blobs.push(ListedBlob {
                        name,
                        size,
                        directory,
                        etag: text("Etag").as_deref().map(etag),
                        last_modified: text("Last-Modified").as_deref().and_then(http_date),
                    });
                }
                _ => {}
            }
        }
    }
    page.next_marker = root
        .child("NextMarker")
        .map(|m| m.text.trim().to_string())
        .filter(|m| !m.is_empty());
    Ok(page)
}

/// An XML element: what the storage answers need of it.
#[derive(Debug, Default)]
struct Node {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Deepest element nesting accepted (the documented answers use 4).
const MAX_DEPTH: usize = 32;

/// Parses a whole document into its root element (a UTF-8 byte-order mark is skipped, as
/// Azure Storage sends one).
fn parse_xml(body: &[u8]) -> Result<Node, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_string())?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<Node> = Vec::new();
    let bad = |e: &dyn fmt::Display| format!("not XML ({e})");
    let open = |e: &quick_xml::events::BytesStart<'_>| -> Result<Node, String> {
        let mut node = Node {
            name: local(e.name().as_ref()),
            ..Node::default()
        };
        for a in e.attributes() {
            let a = a.map_err(|e| bad(&e))?;
            node.attrs
                .push((local(a.key.as_ref()), a.value.into_owned()));
        }
        Ok(node)
    };
    loop {
        match reader.read_event().map_err(|e| bad(&e))? {
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(format!("XML nested deeper than {MAX_DEPTH} elements"));
                }
                stack.push(open(&e)?);
            }
            Event::Empty(e) => {
                let node = open(&e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return Ok(node),
                }
            }
            Event::End(_) => {
                let node = stack.pop().ok_or_else(|| "unbalanced XML".to_string())?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return Ok(node),
                }
            }
            Event::Text(t) => {
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&t);
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|e| bad(&e))? {
                    Some(c) => c.to_string(),
                    None => quick_xml::escape::resolve_predefined_entity(&r)
                        .ok_or_else(|| format!("unknown XML entity &{};", &*r))?
                        .to_string(),
                };
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&resolved);
                }
            }
            Event::Eof => return Err("the XML document ends early".to_string()),
            _ => {}
        }
    }
}

/// A tag or attribute name without its namespace prefix.
fn local(name: &str) -> String {
    name.rsplit(':').next().unwrap_or(name).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(url: &str) -> BlobLocation {
        BlobLocation::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn every_documented_url_form_maps_to_a_blob_endpoint() {
        let l = loc("https://contosolake.blob.core.windows.net/dataverse-contoso-unq1");
        assert_eq!(
            (
                l.endpoint.as_str(),
                l.account.as_str(),
                l.container.as_str(),
                l.prefix.as_str()
            ),
            (
                "https://contosolake.blob.core.windows.net",
                "contosolake",
                "dataverse-contoso-unq1",
                ""
            )
        );
        assert_eq!(l.service, Service::Account);
        let l = loc("https://contosolake.dfs.core.windows.net/dataverse-contoso/exports/a/");
        assert_eq!(l.endpoint, "https://contosolake.blob.core.windows.net");
        assert_eq!(
            (l.container.as_str(), l.prefix.as_str()),
            ("dataverse-contoso", "exports/a")
        );
        let l = loc("abfss://dataverse-contoso@contosolake.dfs.core.windows.net/");
        assert_eq!(l.endpoint, "https://contosolake.blob.core.windows.net");
        assert_eq!(
            (l.account.as_str(), l.container.as_str(), l.prefix.as_str()),
            ("contosolake", "dataverse-contoso", "")
        );
        let l = loc("abfss://c0ntainer@acct.dfs.core.chinacloudapi.cn/x/y");
        assert_eq!(l.endpoint, "https://acct.blob.core.chinacloudapi.cn");
        assert_eq!(l.prefix, "x/y");
        let l =
            loc("https://onelake.dfs.fabric.microsoft.com/My%20Workspace/Lake.Lakehouse/Files/dv");
        assert_eq!(l.service, Service::OneLake);
        assert_eq!(l.endpoint, "https://onelake.blob.fabric.microsoft.com");
        assert_eq!(
            (l.container.as_str(), l.prefix.as_str()),
            ("My Workspace", "Lake.Lakehouse/Files/dv")
        );
        assert_eq!(
            l.container_url(),
            "https://onelake.blob.fabric.microsoft.com/My%20Workspace"
        );
        let l = loc("https://westus-onelake.dfs.fabric.microsoft.com/ws/item");
        assert_eq!(
            l.endpoint,
            "https://westus-onelake.blob.fabric.microsoft.com"
        );
        let l = loc("http://127.0.0.1:10000/devstoreaccount1/lake/sub");
        assert_eq!(l.service, Service::PathStyle);
        assert_eq!(
            (
                l.endpoint.as_str(),
                l.account.as_str(),
                l.container.as_str(),
                l.prefix.as_str()
            ),
            (
                "http://127.0.0.1:10000/devstoreaccount1",
                "devstoreaccount1",
                "lake",
                "sub"
            )
        );
        let l = loc("http://azurite:10000/devstoreaccount1/lake");
        assert_eq!(l.endpoint, "http://azurite:10000/devstoreaccount1");
    }

    #[test]
    fn bad_urls_say_why_and_never_quote_a_query() {
        let err = |u: &str| BlobLocation::parse(u).unwrap_err();
        let e = err("https://a.blob.core.windows.net/c?sv=2024&sig=SECRET");
        assert!(!e.contains("SECRET") && e.contains("method: sas"), "{e}");
        assert!(err("https://a.blob.core.windows.net/").contains("names no container"));
        assert!(err("https://a.blob.core.windows.net/Bad_Name").contains("not a container name"));
        assert!(err("abfss://acct.dfs.core.windows.net/").contains("names no container"));
        assert!(err("http://127.0.0.1:10000/devstoreaccount1").contains("emulator"));
        assert!(err("s3://bucket/x").contains("unknown scheme s3"));
        assert!(err("https://a.blob.core.windows.net/c/x/../y").contains(".."));
    }

    #[test]
    fn the_documented_string_to_sign_is_reproduced() {
        // Authorize with Shared Key, "Blob, Queue, and File services" example.
        let url = url::Url::parse(
            "https://myaccount.blob.core.windows.net/mycontainer?restype=container&comp=metadata&timeout=20",
        )
        .unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-ms-version", HeaderValue::from_static("2015-02-21"));
        h.insert(
            "x-ms-date",
            HeaderValue::from_static("Fri, 26 Jun 2015 23:39:12 GMT"),
        );
        assert_eq!(
            string_to_sign("myaccount", "GET", &url, &h),
            "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Fri, 26 Jun 2015 23:39:12 GMT\n\
             x-ms-version:2015-02-21\n/myaccount/mycontainer\ncomp:metadata\n\
             restype:container\ntimeout:20"
        );
    }

    #[test]
    fn path_style_resources_name_the_account_twice_and_decode_query_values() {
        let url = url::Url::parse(
            "http://127.0.0.1:10000/devstoreaccount1/lake?restype=container&comp=list&prefix=a%2Fb%3A%20c%2F&delimiter=%2F",
        )
        .unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-ms-version", HeaderValue::from_static(API_VERSION));
        h.insert(
            "X-Ms-Date",
            HeaderValue::from_static("Wed, 07 Oct 2026 12:00:00 GMT"),
        );
        h.insert("content-length", HeaderValue::from_static("0"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        let s = string_to_sign("devstoreaccount1", "get", &url, &h);
        assert_eq!(
            s,
            format!(
                "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Wed, 07 Oct 2026 12:00:00 GMT\n\
                 x-ms-version:{API_VERSION}\n/devstoreaccount1/devstoreaccount1/lake\ncomp:list\n\
                 delimiter:/\nprefix:a/b: c/\nrestype:container"
            )
        );
    }

    #[test]
    fn signatures_are_hmac_sha256_of_the_decoded_key() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let key = SharedKey::new(
            "a",
            &base64::engine::general_purpose::STANDARD.encode("Jefe"),
        )
        .unwrap();
        let want = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let got = base64::engine::general_purpose::STANDARD
            .decode(key.sign("what do ya want for nothing?"))
            .unwrap();
        let hex: String = got.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, want);
        assert!(SharedKey::new("a", "not base64!").is_err());
        assert!(!format!("{key:?}").contains("Jefe"));
    }

    #[test]
    fn list_pages_parse_with_prefixes_sizes_markers_and_escapes() {
        let body = "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?>\
            <EnumerationResults ServiceEndpoint=\"https://a.blob.core.windows.net/\" ContainerName=\"c\">\
            <Prefix>x/</Prefix><Delimiter>/</Delimiter><Blobs>\
            <Blob><Name>x/a&amp;b.csv</Name><Properties><Last-Modified>Mon, 02 Nov 2026 10:15:07 GMT</Last-Modified>\
            <Etag>0x8DCF1A2B3C4D5E6</Etag><Content-Length>12</Content-Length></Properties></Blob>\
            <BlobPrefix><Name>x/2026-11-02T10.15.00.000Z/</Name></BlobPrefix>\
            <Blob><Name>x/dir</Name><Properties><ResourceType>directory</ResourceType></Properties></Blob>\
            <Blob><Name Encoded=\"true\">x/%EF%BF%BEodd</Name><Properties><Content-Length>0</Content-Length></Properties></Blob>\
            </Blobs><NextMarker>2!72!MDAw</NextMarker></EnumerationResults>";
        let page = parse_list_page(body.as_bytes()).unwrap();
        assert_eq!(page.prefixes, ["x/2026-11-02T10.15.00.000Z/"]);
        assert_eq!(
            page.blobs,
            [
                ListedBlob {
                    name: "x/a&b.csv".into(),
                    size: 12,
                    directory: false,
                    etag: Some("0x8DCF1A2B3C4D5E6".into()),
                    last_modified: Some("2026-11-02T10:15:07Z".parse().unwrap()),
                },
                ListedBlob {
                    name: "x/dir".into(),
                    size: 0,
                    directory: true,
                    etag: None,
                    last_modified: None,
                },
                ListedBlob {
                    name: "x/\u{fffe}odd".into(),
                    size: 0,
                    directory: false,
                    etag: None,
                    last_modified: None,
                },
            ]
        );
        assert_eq!(page.next_marker.as_deref(), Some("2!72!MDAw"));
        let last =
            parse_list_page(b"<EnumerationResults><Blobs /><NextMarker /></EnumerationResults>")
                .unwrap();
        assert_eq!(last, ListPage::default());
    }

    #[test]
    fn garbage_listings_are_errors() {
        for body in [
            &b"<html>nope</html>"[..],
            b"<EnumerationResults><Blobs><Blob><Name>a</Name></Blob></Blobs></EnumerationResults>",
            b"<EnumerationResults><Blobs><Blob><Name>a</Name><Properties><Content-Length>x</Content-Length></Properties></Blob></Blobs></EnumerationResults>",
            b"<EnumerationResults><Blobs>",
            b"\xff\xfe",
            b"",
        ] {
            assert!(parse_list_page(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn storage_errors_give_code_and_first_line() {
        let body = "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthenticationFailed</Code>\
            <Message>Server failed to authenticate the request.\nRequestId:1\nTime:2026</Message>\
            <AuthenticationErrorDetail>Signature did not match. String to sign used was r</AuthenticationErrorDetail></Error>";
        assert_eq!(
            parse_error(body.as_bytes()),
            Some((
                "AuthenticationFailed".to_string(),
                "Server failed to authenticate the request.".to_string()
            ))
        );
        // What the HTTP layer wrote before the excerpt (the request, when named) stays.
        let auth = |head: &str| match remote(
            "p",
            ConnectorError::Auth(format!("{head}{}", excerpt(body.as_bytes())).into()),
        ) {
            LakeError::Remote {
                error: ConnectorError::Auth(m),
                ..
            } => m.to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            auth("HTTP 403: "),
            "HTTP 403 AuthenticationFailed: Server failed to authenticate the request."
        );
        assert_eq!(
            auth("GET a.blob.core.windows.net/c/p: HTTP 403: "),
            "GET a.blob.core.windows.net/c/p: HTTP 403 AuthenticationFailed: Server failed to authenticate the request."
        );
        let busy = "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>ServerBusy</Code><Message>Ingress is over the account limit.</Message></Error>";
        let e = remote(
            "p",
            ConnectorError::Unavailable {
                status: 503,
                detail: excerpt(busy.as_bytes()),
            },
        );
        assert!(matches!(
            e,
            LakeError::Remote {
                error: ConnectorError::Throttled { retry_after: None },
                ..
            }
        ));
    }

    #[test]
    fn percent_coding_round_trips() {
        assert_eq!(encode_path("a b/c:d.csv"), "a%20b/c%3Ad.csv");
    }
}
