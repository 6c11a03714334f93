//! The emulated lake written to Azure Blob Storage (or Azurite) over the Blob REST API, signed
//! with the account key.
//!
//! Why: lagwatch reads production lakes from Azure Storage ([`lagwatch::lake::blob`]); writing the
//! emulator's lake there too lets the whole path (writer, storage, reader) run as in
//! production, with Azurite on the test machine. Signing, URL encoding and the API version are
//! the reader's ([`SharedKey`], [`encode_path`], [`API_VERSION`]), so both sides agree on them.
//!
//! Sink paths are `<container>/<blob name>`. The mapping of [`LakeSink`]:
//!
//! | call | requests |
//! |---|---|
//! | `create_dir` | none: the namespace is flat, a folder exists while a blob name has its prefix |
//! | `write`, `write_atomic` | Put Blob, `x-ms-blob-type: BlockBlob` (one put is atomic: readers see the old or the new content) |
//! | `append` | Append Block (`?comp=appendblock`); when the blob does not exist yet, Put Blob `x-ms-blob-type: AppendBlob` (`If-None-Match: *`) first |
//! | `rename` | Get Blob, Put Blob (block) at the new name, Delete Blob: **not atomic** |
//! | `delete` | Delete Blob; a missing blob or container is fine |
//!
//! The first call into a container creates it (Create Container; `409 ContainerAlreadyExists`
//! is fine). Which blobs are which type follows from the lake writer ([`super::lake`]): the
//! CSV files (`<folder>/<table>/<partition>.csv`) are **append blobs**, as Synapse Link's own
//! are; `model.json` and `Changelog/changelog.info` are **block blobs**, replaced whole.
//! Azure forbids mixing the two on one blob: Append Block on a block blob fails with
//! `409 InvalidBlobType`, and a Put Blob replaces an append blob by a block blob. Readers may
//! read either type whole or with ranges. The writer renames only through the default
//! `write_atomic`, which this sink overrides, so `rename`'s window (both names exist, then
//! only the new one) is never seen by a lake reader.
//!
//! Nothing is retried (the emulator writes to a local emulator or a test account; the lake
//! writer itself tries a failed flush again later), and every request has a timeout so a hung
//! service cannot hold the writer forever. Errors are `std::io::Error`s wrapping a
//! [`BlobSinkError`]: the operation, the sink path, the HTTP status and the storage error code
//! with the first line of its message, never the key, a signature or
//! `AuthenticationErrorDetail`.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Method};

use super::lake_sink::LakeSink;
use lagwatch::lake::blob::{API_VERSION, SharedKey, container_name_ok, encode_path, parse_error};

/// Largest body of one Append Block: 4 MiB, the limit of every service version (newer ones
/// allow 100 MiB; Azurite and older accounts do not). Bigger appends are split.
pub const MAX_APPEND_BLOCK: usize = 4 * 1024 * 1024;

/// Time allowed for one request, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a blob sink cannot be built or a storage call failed. Storage calls return it inside
/// an [`io::Error`] (the [`LakeSink`] contract); [`io::Error::get_ref`] gives it back.
#[derive(Debug, thiserror::Error)]
pub enum BlobSinkError {
    /// The account URL is not one a sink can write to.
    #[error("lake blob URL: {0}")]
    Url(String),
    /// The account key cannot be used (its value is never quoted).
    #[error("lake blob account key: {0}")]
    Key(String),
    /// A sink path that names no blob in a valid container.
    #[error("not a blob path (<container>/<name>): {0:?}")]
    Path(String),
    /// The service answered with an error status.
    #[error("{operation} {path}: HTTP {status} {detail}")]
    Status {
        operation: &'static str,
        path: String,
        status: u16,
        /// The storage error code (`x-ms-error-code`, else the body's `<Code>`).
        code: Option<String>,
        /// The code and the first line of the message, or what is known without them.
        detail: String,
    },
    /// No answer: connection refused, timeout, broken response.
    #[error("{operation} {path}: {reason}")]
    Transport {
        operation: &'static str,
        path: String,
        reason: String,
    },
}

impl BlobSinkError {
    /// The storage error code of a failed request, if the service gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            BlobSinkError::Status { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// The error as [`LakeSink`] returns it, with a kind that says what went wrong.
    fn into_io(self) -> io::Error {
        let kind = match &self {
            BlobSinkError::Url(_) | BlobSinkError::Key(_) | BlobSinkError::Path(_) => {
                io::ErrorKind::InvalidInput
            }
            BlobSinkError::Status { status: 404, .. } => io::ErrorKind::NotFound,
            BlobSinkError::Status {
                status: 401 | 403, ..
            } => io::ErrorKind::PermissionDenied,
            BlobSinkError::Status { .. } => io::ErrorKind::Other,
            BlobSinkError::Transport { reason, .. } if reason.starts_with("timed out") => {
                io::ErrorKind::TimedOut
            }
            BlobSinkError::Transport { .. } => io::ErrorKind::Other,
        };
        io::Error::new(kind, self)
    }
}

/// A storage account written with Shared Key authorization (see the module docs).
pub struct BlobSink {
    http: Client,
    /// Up to the account, no trailing `/`: `https://acct.blob.core.windows.net` or
    /// `http://127.0.0.1:10000/devstoreaccount1`.
    endpoint: String,
    key: SharedKey,
    /// Containers created (or found) by this sink: one Create Container each, not one per
    /// write. A container found missing later is forgotten, so the next write creates it.
    containers: Mutex<HashSet<String>>,
}

impl fmt::Debug for BlobSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobSink")
            .field("endpoint", &self.endpoint)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// One answer of the service.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The storage error code: the `x-ms-error-code` header (also on bodiless HEAD/DELETE
    /// answers), else the body's `<Code>`.
    fn code(&self) -> Option<String> {
        self.headers
            .get("x-ms-error-code")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| parse_error(&self.body).map(|(c, _)| c))
    }

    fn error(&self, operation: &'static str, path: &str) -> BlobSinkError {
        let code = self.code();
        let message = parse_error(&self.body)
            .map(|(_, m)| m)
            .filter(|m| !m.is_empty());
        let detail = match (&code, message) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.clone(),
            (None, _) => "(no storage error code)".to_string(),
        };
        BlobSinkError::Status {
            operation,
            path: path.to_string(),
            status: self.status,
            code,
            detail,
        }
    }
}

impl BlobSink {
    /// A sink writing to the account `account` at `endpoint` (the URL up to the account:
    /// `https://<account>.blob.core.windows.net`, or path-style
    /// `http://127.0.0.1:10000/devstoreaccount1` for Azurite) with its base64 `account_key`.
    ///
    /// # Errors
    /// [`BlobSinkError::Url`] for an endpoint that is not an `http(s)` URL without query,
    /// [`BlobSinkError::Key`] for a key that is not base64.
    pub fn new(
        endpoint: &str,
        account: &str,
        account_key: &str,
    ) -> Result<BlobSink, BlobSinkError> {
        let u = url::Url::parse(endpoint)
            .map_err(|e| BlobSinkError::Url(format!("\"{endpoint}\" is not a URL ({e})")))?;
        if u.query().is_some()
            || u.fragment().is_some()
            || !u.username().is_empty()
            || u.password().is_some()
        {
            // Not quoted: a query may hold a SAS token.
            return Err(BlobSinkError::Url(
                "the account URL takes no query, fragment or credentials; the key comes from \
                 the environment"
                    .to_string(),
            ));
        }
        if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none_or(str::is_empty) {
            return Err(BlobSinkError::Url(format!(
                "\"{endpoint}\" is not an http(s) URL with a host"
            )));
        }
        if account.is_empty() {
            return Err(BlobSinkError::Url("the account name is empty".to_string()));
        }
        let key = SharedKey::new(account, account_key).map_err(BlobSinkError::Key)?;
        let http = lagwatch::net::client().map_err(|e| {
            BlobSinkError::Url(format!("cannot build the HTTP client: {}", e.without_url()))
        })?;
        Ok(BlobSink {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            key,
            containers: Mutex::new(HashSet::new()),
        })
    }

    /// A sink for an account URL whose form names the account: path-style
    /// `http://127.0.0.1:10000/<account>` (Azurite) or `https://<account>.blob.<suffix>`.
    ///
    /// # Errors
    /// As [`BlobSink::new`], and [`BlobSinkError::Url`] when the account cannot be told from
    /// the URL or the URL names a container (containers come from the scenario's lakes).
    pub fn for_account_url(url: &str, account_key: &str) -> Result<BlobSink, BlobSinkError> {
        let account = account_of(url).map_err(BlobSinkError::Url)?;
        BlobSink::new(url, &account, account_key)
    }

    /// The URL up to the account, without a trailing `/`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The request URL of `path` (encoded) with `query` (already encoded, with its `?`).
    fn request_url(&self, path: &str, query: &str) -> Result<url::Url, BlobSinkError> {
        url::Url::parse(&format!("{}/{}{query}", self.endpoint, encode_path(path)))
            .map_err(|e| BlobSinkError::Url(format!("cannot form the URL of {path:?} ({e})")))
    }

    /// Sends one signed request and reads the whole answer.
    async fn send(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        query: &str,
        extra: &[(&'static str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Answer, BlobSinkError> {
        let url = self.request_url(path, query)?;
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let headers = signed_headers(
            &self.key,
            &method,
            &url,
            &date,
            body.as_ref().map(Vec::len),
            extra,
        )
        .map_err(|reason| BlobSinkError::Transport {
            operation,
            path: path.to_string(),
            reason,
        })?;
        let mut request = self
            .http
            .request(method, url)
            .headers(headers)
            .timeout(REQUEST_TIMEOUT);
        if let Some(body) = body {
            request = request.body(body);
        }
        let transport = |e: reqwest::Error| BlobSinkError::Transport {
            operation,
            path: path.to_string(),
            reason: transport_reason(e),
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(transport)?.to_vec();
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// Creates `container` unless this sink already did.
    async fn ensure_container(&self, container: &str) -> Result<(), BlobSinkError> {
        if self.containers().contains(container) {
            return Ok(());
        }
        let answer = self
            .send(
                "create container",
                Method::PUT,
                container,
                "?restype=container",
                &[],
                Some(Vec::new()),
            )
            .await?;
        if !answer.ok() && answer.code().as_deref() != Some("ContainerAlreadyExists") {
            return Err(answer.error("create container", container));
        }
        self.containers().insert(container.to_string());
        Ok(())
    }

    fn containers(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.containers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The error of a failed write; a missing container is forgotten so the next write
    /// creates it again (Azurite restarted, container deleted by hand).
    fn failed(&self, answer: &Answer, operation: &'static str, path: &str) -> BlobSinkError {
        if answer.code().as_deref() == Some("ContainerNotFound")
            && let Ok((container, _)) = split(path)
        {
            self.containers().remove(container);
        }
        answer.error(operation, path)
    }

    /// Put Blob of a block blob: the whole content, replacing any blob of that name.
    async fn put_block_blob(&self, path: &str, bytes: &[u8]) -> Result<(), BlobSinkError> {
        let (container, _) = split(path)?;
        self.ensure_container(container).await?;
        let answer = self
            .send(
                "put blob",
                Method::PUT,
                path,
                "",
                &[("x-ms-blob-type", "BlockBlob")],
                Some(bytes.to_vec()),
            )
            .await?;
        if answer.ok() {
            Ok(())
        } else {
            Err(self.failed(&answer, "put blob", path))
        }
    }

    /// Creates an empty append blob unless one exists (`If-None-Match: *`, so a blob created
    /// meanwhile keeps its content).
    async fn create_append_blob(&self, path: &str) -> Result<(), BlobSinkError> {
        let answer = self
            .send(
                "create append blob",
                Method::PUT,
                path,
                "",
                &[("x-ms-blob-type", "AppendBlob"), ("if-none-match", "*")],
                Some(Vec::new()),
            )
            .await?;
        if answer.ok() || answer.code().as_deref() == Some("BlobAlreadyExists") {
            Ok(())
        } else {
            Err(self.failed(&answer, "create append blob", path))
        }
    }

    async fn append_block(&self, path: &str, chunk: &[u8]) -> Result<Answer, BlobSinkError> {
        self.send(
            "append block",
            Method::PUT,
            path,
            "?comp=appendblock",
            &[],
            Some(chunk.to_vec()),
        )
        .await
    }

    async fn append_blob(&self, path: &str, bytes: &[u8]) -> Result<(), BlobSinkError> {
        let (container, _) = split(path)?;
        self.ensure_container(container).await?;
        if bytes.is_empty() {
            // Append Block refuses an empty block; the file must exist all the same.
            return self.create_append_blob(path).await;
        }
        for (i, chunk) in bytes.chunks(MAX_APPEND_BLOCK).enumerate() {
            let mut answer = self.append_block(path, chunk).await?;
            if i == 0 && answer.status == 404 && answer.code().as_deref() == Some("BlobNotFound") {
                self.create_append_blob(path).await?;
                answer = self.append_block(path, chunk).await?;
            }
            if !answer.ok() {
                return Err(self.failed(&answer, "append block", path));
            }
        }
        Ok(())
    }

    async fn delete_blob(&self, path: &str) -> Result<(), BlobSinkError> {
        split(path)?;
        let answer = self
            .send("delete blob", Method::DELETE, path, "", &[], None)
            .await?;
        if answer.ok() || answer.status == 404 {
            Ok(())
        } else {
            Err(answer.error("delete blob", path))
        }
    }

    async fn rename_blob(&self, from: &str, to: &str) -> Result<(), BlobSinkError> {
        split(from)?;
        split(to)?;
        let answer = self
            .send("get blob", Method::GET, from, "", &[], None)
            .await?;
        if !answer.ok() {
            return Err(answer.error("get blob", from));
        }
        self.put_block_blob(to, &answer.body).await?;
        self.delete_blob(from).await
    }
}

#[async_trait]
impl LakeSink for BlobSink {
    /// Nothing to create: blob names carry their folders. The path is still checked, so a
    /// bad one fails here as it would on a local directory.
    async fn create_dir(&self, path: &str) -> io::Result<()> {
        if path.split_once('/').is_some() {
            split(path).map_err(BlobSinkError::into_io)?;
        } else {
            check_container(path).map_err(BlobSinkError::into_io)?;
        }
        Ok(())
    }

    async fn write(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        self.put_block_blob(path, bytes)
            .await
            .map_err(BlobSinkError::into_io)
    }

    async fn append(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        self.append_blob(path, bytes)
            .await
            .map_err(BlobSinkError::into_io)
    }

    /// Not atomic: read, write the new name, delete the old (a reader may see both names in
    /// between, and a failure may leave both). The lake writer does not rename on this sink.
    async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.rename_blob(from, to)
            .await
            .map_err(BlobSinkError::into_io)
    }

    async fn delete(&self, path: &str) -> io::Result<()> {
        self.delete_blob(path).await.map_err(BlobSinkError::into_io)
    }

    /// One Put Blob: the service swaps the content atomically, so no temporary blob.
    async fn write_atomic(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        self.write(path, bytes).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.endpoint, encode_path(path))
    }
}

/// The `x-ms-version`, `x-ms-date`, `Content-Length` (when there is a body, `0` included: a
/// PUT needs it) and `extra` headers of a request, and its Shared Key `Authorization` over
/// them (marked sensitive, so it is never logged).
///
/// # Errors
/// A sentence when a header value cannot be sent.
fn signed_headers(
    key: &SharedKey,
    method: &Method,
    url: &url::Url,
    date: &str,
    content_length: Option<usize>,
    extra: &[(&'static str, &str)],
) -> Result<HeaderMap, String> {
    let value = |v: &str| {
        HeaderValue::from_str(v).map_err(|_| format!("{v:?} cannot be sent as a header value"))
    };
    let mut headers = HeaderMap::new();
    headers.insert("x-ms-version", HeaderValue::from_static(API_VERSION));
    headers.insert("x-ms-date", value(date)?);
    if let Some(n) = content_length {
        headers.insert(reqwest::header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    for (name, v) in extra {
        headers.insert(HeaderName::from_static(name), value(v)?);
    }
    let mut auth = value(&key.authorization(method.as_str(), url, &headers))?;
    auth.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, auth);
    Ok(headers)
}

/// A failed send as a sentence without the URL, with its causes (connection refused, …).
fn transport_reason(e: reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let mut out = format!("{what}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// `(container, blob name)` of a sink path; empty, `.` and `..` segments are refused, as
/// [`super::LocalDirSink`] refuses them, so the two sinks accept the same paths.
fn split(path: &str) -> Result<(&str, &str), BlobSinkError> {
    let bad = || BlobSinkError::Path(path.to_string());
    let (container, name) = path.split_once('/').ok_or_else(bad)?;
    if name
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(bad());
    }
    check_container(container)?;
    Ok((container, name))
}

fn check_container(container: &str) -> Result<(), BlobSinkError> {
    if container_name_ok(container) {
        Ok(())
    } else {
        Err(BlobSinkError::Path(container.to_string()))
    }
}

/// The account an account URL names: the first path segment of a path-style URL
/// (`http://127.0.0.1:10000/devstoreaccount1`), else the first label of a
/// `<account>.blob.<suffix>` host.
fn account_of(url: &str) -> Result<String, String> {
    let u = url::Url::parse(url).map_err(|e| format!("\"{url}\" is not a URL ({e})"))?;
    if u.query().is_some() || u.password().is_some() {
        return Err(
            "the account URL takes no query or password; the key comes from the environment"
                .to_string(),
        );
    }
    let segments: Vec<&str> = u
        .path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    let host = u.host_str().unwrap_or_default().to_ascii_lowercase();
    let labels: Vec<&str> = host.split('.').collect();
    match segments.as_slice() {
        [account] => Ok((*account).to_string()),
        [] if labels.len() >= 4 && labels[1] == "blob" && !labels[0].is_empty() => {
            Ok(labels[0].to_string())
        }
        [] => Err(format!(
            "\"{url}\" names no account; write https://<account>.blob.core.windows.net or, for \
             an emulator, http://127.0.0.1:10000/<account>"
        )),
        _ => Err(format!(
            "\"{url}\" names more than the account; the containers are the scenario lakes' \
             `container:`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lagwatch::lake::blob::string_to_sign;

    const ACCOUNT: &str = "devstoreaccount1";
    const KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    fn sink() -> BlobSink {
        BlobSink::new("http://127.0.0.1:10000/devstoreaccount1/", ACCOUNT, KEY).unwrap()
    }

    #[test]
    fn a_put_is_signed_over_its_blob_type_length_date_and_path() {
        let s = sink();
        let url = s
            .request_url("lake/2026-11-02T10.15.00.000Z/account/2026.csv", "")
            .unwrap();
        let date = "Mon, 02 Nov 2026 10:15:07 GMT";
        let h = signed_headers(
            &s.key,
            &Method::PUT,
            &url,
            date,
            Some(12),
            &[("x-ms-blob-type", "AppendBlob"), ("if-none-match", "*")],
        )
        .unwrap();
        assert_eq!(h["x-ms-version"], API_VERSION);
        assert_eq!(h["x-ms-date"], date);
        assert_eq!(h["content-length"], "12");
        let want = format!(
            "PUT\n\n\n12\n\n\n\n\n\n*\n\n\nx-ms-blob-type:AppendBlob\nx-ms-date:{date}\n\
             x-ms-version:{API_VERSION}\n\
             /devstoreaccount1/devstoreaccount1/lake/2026-11-02T10.15.00.000Z/account/2026.csv"
        );
        let mut unsigned = h.clone();
        unsigned.remove("authorization");
        assert_eq!(string_to_sign(ACCOUNT, "PUT", &url, &unsigned), want);
        let auth = &h["authorization"];
        assert!(auth.is_sensitive());
        assert_eq!(
            auth.to_str().unwrap(),
            format!("SharedKey {ACCOUNT}:{}", s.key.sign(&want))
        );
    }

    #[test]
    fn an_empty_put_signs_no_length_and_queries_are_canonicalized() {
        let s = sink();
        let url = s.request_url("lake", "?restype=container").unwrap();
        let h = signed_headers(&s.key, &Method::PUT, &url, "d", Some(0), &[]).unwrap();
        assert_eq!(h["content-length"], "0", "a PUT always sends its length");
        let mut unsigned = h.clone();
        unsigned.remove("authorization");
        let text = string_to_sign(ACCOUNT, "PUT", &url, &unsigned);
        assert!(
            text.starts_with("PUT\n\n\n\n"),
            "length 0 is signed empty: {text:?}"
        );
        assert!(
            text.ends_with("/devstoreaccount1/devstoreaccount1/lake\nrestype:container"),
            "{text:?}"
        );
        let get = signed_headers(&s.key, &Method::GET, &url, "d", None, &[]).unwrap();
        assert!(get.get("content-length").is_none());
    }

    #[test]
    fn urls_encode_odd_names_under_the_endpoint() {
        let s = sink();
        assert_eq!(s.endpoint(), "http://127.0.0.1:10000/devstoreaccount1");
        assert_eq!(
            s.url("lake/2026-11-02T10:15:00.000Z/a b+c.csv"),
            "http://127.0.0.1:10000/devstoreaccount1/lake/2026-11-02T10%3A15%3A00.000Z/a%20b%2Bc.csv"
        );
    }

    #[test]
    fn paths_name_a_valid_container_and_a_blob() {
        assert_eq!(split("lake/a/b.csv").unwrap(), ("lake", "a/b.csv"));
        for bad in [
            "",
            "lake",
            "lake/",
            "lake//x",
            "lake/../x",
            "lake/./x",
            "Bad_Container/x",
            "/lake/x",
        ] {
            assert!(matches!(split(bad), Err(BlobSinkError::Path(_))), "{bad:?}");
        }
    }

    #[test]
    fn the_account_is_read_from_the_url() {
        assert_eq!(
            account_of("http://127.0.0.1:10000/devstoreaccount1").unwrap(),
            "devstoreaccount1"
        );
        assert_eq!(
            account_of("https://contosolake.blob.core.windows.net/").unwrap(),
            "contosolake"
        );
        assert!(
            account_of("http://127.0.0.1:10000")
                .unwrap_err()
                .contains("names no account")
        );
        assert!(
            account_of("http://127.0.0.1:10000/devstoreaccount1/lake")
                .unwrap_err()
                .contains("more than the account")
        );
        let e = account_of("https://a.blob.core.windows.net/?sv=1&sig=SECRET").unwrap_err();
        assert!(!e.contains("SECRET"), "{e}");
        let e = BlobSink::new("https://a.blob.core.windows.net?sig=SECRET", "a", KEY).unwrap_err();
        assert!(!e.to_string().contains("SECRET"), "{e}");
        let e = BlobSink::new("http://127.0.0.1:1/a", "a", "not base64!").unwrap_err();
        assert!(matches!(e, BlobSinkError::Key(_)), "{e}");
        assert!(!format!("{:?}", sink()).contains(KEY));
    }

    #[test]
    fn storage_errors_keep_code_and_first_line_but_no_auth_detail() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-ms-error-code",
            HeaderValue::from_static("AuthenticationFailed"),
        );
        let answer = Answer {
            status: 403,
            headers,
            body: b"<?xml version=\"1.0\"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to authenticate the request.\nRequestId:1</Message><AuthenticationErrorDetail>The MAC signature found in the HTTP request 'c2lnbmF0dXJl' is not the same</AuthenticationErrorDetail></Error>".to_vec(),
        };
        let e = answer.error("put blob", "lake/model.json");
        assert_eq!(e.code(), Some("AuthenticationFailed"));
        let io = e.into_io();
        assert_eq!(io.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(
            io.to_string(),
            "put blob lake/model.json: HTTP 403 AuthenticationFailed: Server failed to \
             authenticate the request."
        );
        let bare = Answer {
            status: 404,
            headers: HeaderMap::new(),
            body: Vec::new(),
        };
        let io = bare.error("get blob", "lake/x").into_io();
        assert_eq!(io.kind(), io::ErrorKind::NotFound);
        assert!(io.to_string().contains("HTTP 404"), "{io}");
    }
}
