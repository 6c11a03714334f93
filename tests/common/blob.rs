//! Azure Blob Storage as the lake tests fake it with wiremock (fact sheet §5.7): the documented
//! answers (`EnumerationResults` XML, storage error XML), Shared Key checks, and
//! [`FolderContainer`], a local folder served as a container over the Blob REST API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use lagwatch::lake::blob::SharedKey;
use wiremock::{Request, Respond, ResponseTemplate};

/// Azurite's well-known development account (public, documented for the emulator).
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development account key (public, documented for the emulator).
pub const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The development account's key, to sign or check requests with.
pub fn shared_key() -> SharedKey {
    SharedKey::new(DEV_ACCOUNT, DEV_KEY).unwrap()
}

/// A `200` XML answer, starting with the byte-order mark Azure Storage sends.
pub fn xml(body: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "application/xml")
        .set_body_string(format!(
            "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?>{body}"
        ))
}

/// A storage error answer: `x-ms-error-code` and the `<Error>` XML, with the request id, time
/// and `AuthenticationErrorDetail` a client must not repeat.
pub fn storage_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("x-ms-error-code", code)
        .insert_header("content-type", "application/xml")
        .set_body_string(format!(
            "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code>\
             <Message>{message}\nRequestId:0f1e\nTime:2026-11-02T10:15:00.0000000Z</Message>\
             <AuthenticationErrorDetail>String to sign used was x</AuthenticationErrorDetail></Error>"
        ))
}

/// Whether `req` carries the Shared Key signature of `key` over what was sent (method, URL as
/// sent, `x-ms-` and standard headers).
pub fn signed_by(key: &SharedKey, req: &Request) -> bool {
    let got = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    got == key.authorization(req.method.as_str(), &req.url, &req.headers)
}

/// Asserts that `req` is signed with the development key and carries an RFC 1123 `x-ms-date`.
pub fn assert_signed(req: &Request) {
    assert!(signed_by(&shared_key(), req), "signature over {}", req.url);
    let date = req.headers.get("x-ms-date").unwrap().to_str().unwrap();
    assert!(
        DateTime::parse_from_rfc2822(date).is_ok() && date.ends_with(" GMT"),
        "{date}"
    );
}

/// A local folder served as container `container` of [`DEV_ACCOUNT`] (path-style, as Azurite
/// serves it: `/{account}/{container}`), answering only the calls a lake scan makes:
///
/// - List Blobs (`GET /{account}/{container}?restype=container&comp=list[&prefix=…]
///   [&delimiter=/]`): one page (`<NextMarker />`) with the files under the prefix, each with
///   `Content-Length`, `Etag` and `Last-Modified`, and with the delimiter their sub-folders
///   as `BlobPrefix`;
/// - Get Blob (`GET /{account}/{container}/{blob}`), whole or with `Range: bytes=<first>-[<last>]`
///   (`206` with `Content-Range`, `416 InvalidRange` from the end on);
/// - Get Blob Properties (`HEAD`): size, `ETag` and `Last-Modified`, no body;
///
/// a missing blob is `404 BlobNotFound`. Every request must carry `x-ms-version` and, when the
/// container has a key, that key's Shared Key signature (else `403 AuthenticationFailed`, as
/// the service answers a wrong key); anything else gets a `418`.
pub struct FolderContainer {
    root: PathBuf,
    container: String,
    key: Option<SharedKey>,
}

impl FolderContainer {
    /// `root` served as `container`, requests signed with the development key.
    pub fn new(root: &Path, container: &str) -> Self {
        FolderContainer {
            root: root.to_path_buf(),
            container: container.to_string(),
            key: Some(shared_key()),
        }
    }

    /// The container's URL path, `/{account}/{container}`.
    pub fn path(&self) -> String {
        format!("/{DEV_ACCOUNT}/{}", self.container)
    }

    fn list(&self, req: &Request) -> ResponseTemplate {
        let query: BTreeMap<String, String> = req.url.query_pairs().into_owned().collect();
        let arg = |k: &str| query.get(k).map(String::as_str);
        if arg("restype") != Some("container") || arg("comp") != Some("list") {
            return undocumented(req);
        }
        let prefix = arg("prefix").unwrap_or_default();
        let delimiter = arg("delimiter");
        let mut entries: BTreeMap<String, Option<std::fs::Metadata>> = BTreeMap::new();
        for (name, meta) in files(&self.root) {
            let Some(rest) = name.strip_prefix(prefix) else {
                continue;
            };
            match delimiter.and_then(|d| rest.find(d).map(|i| i + d.len())) {
                Some(end) => entries.insert(format!("{prefix}{}", &rest[..end]), None),
                None => entries.insert(name, Some(meta)),
            };
        }
        let mut blobs = String::new();
        for (name, meta) in &entries {
            let name = escape(name);
            match meta {
                None => blobs.push_str(&format!("<BlobPrefix><Name>{name}</Name></BlobPrefix>")),
                Some(m) => blobs.push_str(&format!(
                    "<Blob><Name>{name}</Name><Properties><Last-Modified>{}</Last-Modified>\
                     <Etag>{}</Etag><Content-Length>{}</Content-Length>\
                     <BlobType>BlockBlob</BlobType></Properties></Blob>",
                    last_modified(m),
                    etag(m),
                    m.len()
                )),
            }
        }
        xml(&format!(
            "<EnumerationResults ServiceEndpoint=\"http://127.0.0.1/{DEV_ACCOUNT}\" \
             ContainerName=\"{}\"><Prefix>{}</Prefix><Delimiter>{}</Delimiter><Blobs>{blobs}\
             </Blobs><NextMarker /></EnumerationResults>",
            self.container,
            escape(prefix),
            escape(delimiter.unwrap_or_default())
        ))
    }

    fn blob(&self, req: &Request, encoded: &str) -> ResponseTemplate {
        if req.url.query().is_some() {
            return undocumented(req);
        }
        let name = percent_encoding::percent_decode_str(encoded).decode_utf8_lossy();
        if name
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return undocumented(req);
        }
        let path = self.root.join(name.as_ref());
        let (Ok(meta), Ok(bytes)) = (std::fs::metadata(&path), std::fs::read(&path)) else {
            return storage_error(404, "BlobNotFound", "The specified blob does not exist.");
        };
        let found = |status: u16| {
            ResponseTemplate::new(status)
                .insert_header("etag", format!("\"{}\"", etag(&meta)).as_str())
                .insert_header("last-modified", last_modified(&meta).as_str())
                .insert_header("x-ms-blob-type", "BlockBlob")
        };
        if req.method.as_str() == "HEAD" {
            return found(200).insert_header("content-length", bytes.len().to_string().as_str());
        }
        let range = req.headers.get("range").and_then(|v| v.to_str().ok());
        let Some(range) = range else {
            return found(200).set_body_bytes(bytes);
        };
        let Some((first, last)) = range.strip_prefix("bytes=").and_then(|r| r.split_once('-'))
        else {
            return undocumented(req);
        };
        let len = bytes.len() as u64;
        let first: u64 = first.parse().unwrap_or(u64::MAX);
        let last: u64 = last.parse().unwrap_or(u64::MAX).min(len.saturating_sub(1));
        if first >= len {
            return storage_error(
                416,
                "InvalidRange",
                "The range specified is invalid for the current size of the resource.",
            )
            .insert_header("content-range", format!("bytes */{len}").as_str());
        }
        found(206)
            .insert_header(
                "content-range",
                format!("bytes {first}-{last}/{len}").as_str(),
            )
            .set_body_bytes(bytes[first as usize..=last as usize].to_vec())
    }
}

impl Respond for FolderContainer {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        if !matches!(req.method.as_str(), "GET" | "HEAD")
            || !req.headers.contains_key("x-ms-version")
        {
            return undocumented(req);
        }
        if let Some(key) = &self.key
            && !signed_by(key, req)
        {
            return storage_error(
                403,
                "AuthenticationFailed",
                "Server failed to authenticate the request. Make sure the value of Authorization \
                 header is formed correctly including the signature.",
            );
        }
        let base = self.path();
        let path = req.url.path();
        if path == base && req.method.as_str() == "GET" {
            return self.list(req);
        }
        match path.strip_prefix(&base).and_then(|p| p.strip_prefix('/')) {
            Some(blob) if !blob.is_empty() => self.blob(req, blob),
            _ => undocumented(req),
        }
    }
}

/// The answer to a request the Blob REST API does not document for a reader.
fn undocumented(req: &Request) -> ResponseTemplate {
    ResponseTemplate::new(418).set_body_string(format!(
        "not a documented Blob REST read: {} {}",
        req.method,
        req.url.path()
    ))
}

/// Every file under `root`, by `/`-separated name, with its metadata.
fn files(root: &Path) -> Vec<(String, std::fs::Metadata)> {
    let mut out = Vec::new();
    let mut dirs = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let (Ok(name), Ok(meta)) = (e.file_name().into_string(), e.metadata()) else {
                continue;
            };
            let name = format!("{prefix}{name}");
            if meta.is_dir() {
                dirs.push((e.path(), format!("{name}/")));
            } else {
                out.push((name, meta));
            }
        }
    }
    out
}

fn modified(meta: &std::fs::Metadata) -> DateTime<Utc> {
    meta.modified()
        .map(DateTime::<Utc>::from)
        .unwrap_or_default()
}

/// `Last-Modified` as Azure Storage writes it (RFC 1123).
fn last_modified(meta: &std::fs::Metadata) -> String {
    modified(meta)
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// An ETag that changes whenever the file is written: its modification time and size.
fn etag(meta: &std::fs::Metadata) -> String {
    let t = modified(meta);
    format!(
        "0x8D{:X}{:X}",
        t.timestamp_nanos_opt().unwrap_or_default(),
        meta.len()
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
