//! `--web.config.file`: TLS and HTTP basic auth for `/metrics`, the status page and the API, in
//! the web-config format of the Prometheus exporter-toolkit, so a file written for
//! node_exporter works here too (for the keys lagwatch supports; the others are refused by
//! name rather than ignored, since an ignored security setting is a silent hole).
//!
//! The file is validated completely at start-up: lagwatch refuses to start when it is invalid
//! or when the certificate and key cannot be read or do not match. Afterwards it is **read
//! again on every request** (for `basic_auth_users` and `http_server_config.headers`) and on
//! every TLS handshake (for the certificate, key, client CA and versions), as exporter-toolkit
//! does, so rotating a password hash or a certificate needs no restart. Whether TLS is on is
//! decided at start-up: adding or removing `tls_server_config` needs a restart. A file that
//! became invalid at run time fails closed: requests get 500 and handshakes fail, with the
//! reason logged.

pub mod basic_auth;
pub mod runbooks;
pub mod tls;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};
use serde::Deserialize;

use crate::config::{ConfigError, Issue, decode};

/// A validated web-config file.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// TLS settings; `None` serves plain HTTP.
    pub tls: Option<TlsSettings>,
    /// User name → bcrypt hash; empty means no basic auth.
    pub users: BTreeMap<String, String>,
    /// Headers added to every response (`http_server_config.headers`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// `tls_server_config`, with file names resolved against the web-config file's directory.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_auth: ClientAuth,
    pub client_ca_file: Option<PathBuf>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
}

/// The `client_auth_type` values lagwatch supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    http_server_config: Option<RawHttp>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: String,
    key_file: String,
    #[serde(default)]
    client_auth_type: Option<String>,
    #[serde(default)]
    client_ca_file: Option<String>,
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    max_version: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default)]
    headers: Option<RawHeaders>,
}

/// The headers exporter-toolkit allows; others are refused, as there.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeaders {
    #[serde(rename = "Content-Security-Policy", default)]
    content_security_policy: Option<String>,
    #[serde(rename = "X-Frame-Options", default)]
    x_frame_options: Option<String>,
    #[serde(rename = "X-Content-Type-Options", default)]
    x_content_type_options: Option<String>,
    #[serde(rename = "X-XSS-Protection", default)]
    x_xss_protection: Option<String>,
    #[serde(rename = "Strict-Transport-Security", default)]
    strict_transport_security: Option<String>,
}

/// Keys of the exporter-toolkit format that lagwatch does not implement, with why; refused
/// by name so nobody believes a setting is in force when it is not.
const UNSUPPORTED: &[(&str, &str, &str)] = &[
    (
        "tls_server_config",
        "cert",
        "inline certificates are not supported; put the PEM in a file and use cert_file",
    ),
    (
        "tls_server_config",
        "key",
        "inline keys are not supported; put the PEM in a file and use key_file",
    ),
    (
        "tls_server_config",
        "client_ca",
        "inline client CAs are not supported; put the PEM in a file and use client_ca_file",
    ),
    (
        "tls_server_config",
        "client_allowed_sans",
        "not supported by lagwatch; restrict clients with the CA of client_ca_file",
    ),
    (
        "tls_server_config",
        "cipher_suites",
        "not supported by lagwatch: rustls offers only its own modern cipher suites",
    ),
    (
        "tls_server_config",
        "prefer_server_cipher_suites",
        "not supported by lagwatch: rustls offers only its own modern cipher suites",
    ),
    (
        "tls_server_config",
        "curve_preferences",
        "not supported by lagwatch: rustls chooses among its own key exchange groups",
    ),
    (
        "http_server_config",
        "http2",
        "not supported by lagwatch: it serves HTTP/1.1 only",
    ),
    (
        "",
        "rate_limit",
        "not supported by lagwatch; rate-limit in a reverse proxy if you need it",
    ),
];

/// The hint for making a bcrypt hash, the Prometheus docs' way.
const HASH_HINT: &str = "make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'";

impl WebConfig {
    /// Reads and validates a web-config file, including that the TLS certificate and key can
    /// be read and belong together.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, the key path and the reason.
    pub fn load(path: &Path) -> Result<WebConfig, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let config = WebConfig::from_yaml(&file, dir, &text)?;
        if let Some(tls) = &config.tls {
            tls::server_config(tls).map_err(|issue| invalid(&file, issue))?;
        }
        Ok(config)
    }

    /// Validates web-config text without opening the files it names; `file` is only used in
    /// messages, relative file names are resolved against `dir`.
    ///
    /// # Errors
    /// As [`WebConfig::load`].
    pub fn from_yaml(file: &str, dir: &Path, text: &str) -> Result<WebConfig, ConfigError> {
        let tree: serde_json::Value =
            serde_saphyr::from_str(text).map_err(|e| ConfigError::Syntax {
                file: file.to_string(),
                message: e.render_with_options(serde_saphyr::render_options! {
                    formatter: &serde_saphyr::UserMessageFormatter,
                    snippets: serde_saphyr::SnippetMode::Off,
                }),
            })?;
        from_tree(tree, dir).map_err(|issue| invalid(file, issue))
    }

    /// Whether requests must carry basic-auth credentials.
    pub fn requires_auth(&self) -> bool {
        !self.users.is_empty()
    }
}

fn invalid(file: &str, issue: Issue) -> ConfigError {
    ConfigError::Invalid {
        file: file.to_string(),
        key: issue.key,
        reason: issue.reason,
    }
}

fn from_tree(tree: serde_json::Value, dir: &Path) -> Result<WebConfig, Issue> {
    // An empty file is a valid file that turns nothing on, as in exporter-toolkit.
    let tree = if tree.is_null() {
        serde_json::Value::Object(Default::default())
    } else {
        tree
    };
    for (section, key, reason) in UNSUPPORTED {
        let present = if section.is_empty() {
            tree.get(key).is_some()
        } else {
            tree.get(section).and_then(|s| s.get(key)).is_some()
        };
        if present {
            let path = if section.is_empty() {
                (*key).to_string()
            } else {
                format!("{section}.{key}")
            };
            return Err(Issue::new(path, *reason));
        }
    }
    let raw: RawFile = decode("", tree)?;
    let tls = raw
        .tls_server_config
        .map(|t| tls_settings(t, dir))
        .transpose()?;
    let users = raw.basic_auth_users.unwrap_or_default();
    for (user, hash) in &users {
        let key = format!("basic_auth_users.{user}");
        if user.is_empty() {
            return Err(Issue::new(key, "a user name cannot be empty"));
        }
        if user.contains(':') {
            return Err(Issue::new(
                key,
                "a user name cannot contain ':' (basic auth splits user and password there)",
            ));
        }
        if hash.parse::<bcrypt::HashParts>().is_err() {
            return Err(Issue::new(
                key,
                format!("not a bcrypt hash (never write the password itself here); {HASH_HINT}"),
            ));
        }
    }
    let headers = headers(raw.http_server_config.and_then(|h| h.headers))?;
    Ok(WebConfig {
        tls,
        users,
        headers,
    })
}

fn tls_settings(raw: RawTls, dir: &Path) -> Result<TlsSettings, Issue> {
    const KEY: &str = "tls_server_config";
    let file = |name: &str, value: &str| -> Result<PathBuf, Issue> {
        if value.trim().is_empty() {
            return Err(Issue::new(
                format!("{KEY}.{name}"),
                "must name a PEM file, not be empty",
            ));
        }
        Ok(dir.join(value))
    };
    let client_auth = match raw.client_auth_type.as_deref() {
        None | Some("NoClientCert") => ClientAuth::NoClientCert,
        Some("VerifyClientCertIfGiven") => ClientAuth::VerifyClientCertIfGiven,
        Some("RequireAndVerifyClientCert") => ClientAuth::RequireAndVerifyClientCert,
        Some(v @ ("RequestClientCert" | "RequireAnyClientCert")) => {
            return Err(Issue::new(
                format!("{KEY}.client_auth_type"),
                format!(
                    "\"{v}\" is not supported: it accepts certificates nobody verified; use RequireAndVerifyClientCert with client_ca_file"
                ),
            ));
        }
        Some(v) => {
            return Err(Issue::new(
                format!("{KEY}.client_auth_type"),
                format!(
                    "unknown value \"{v}\"; the values allowed here are: NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
                ),
            ));
        }
    };
    let client_ca_file = raw
        .client_ca_file
        .as_deref()
        .map(|v| file("client_ca_file", v))
        .transpose()?;
    match (client_auth, &client_ca_file) {
        (ClientAuth::NoClientCert, Some(_)) => {
            return Err(Issue::new(
                format!("{KEY}.client_ca_file"),
                "has no effect without client_auth_type RequireAndVerifyClientCert (or VerifyClientCertIfGiven)",
            ));
        }
        (ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert, None) => {
            return Err(Issue::new(
                format!("{KEY}.client_ca_file"),
                "required key is missing: verifying client certificates needs the CA that issued them",
            ));
        }
        _ => {}
    }
    let min_version = version(&format!("{KEY}.min_version"), raw.min_version.as_deref())?
        .unwrap_or(TlsVersion::Tls12);
    let max_version = version(&format!("{KEY}.max_version"), raw.max_version.as_deref())?
        .unwrap_or(TlsVersion::Tls13);
    if min_version > max_version {
        return Err(Issue::new(
            format!("{KEY}.min_version"),
            "is above max_version",
        ));
    }
    Ok(TlsSettings {
        cert_file: file("cert_file", &raw.cert_file)?,
        key_file: file("key_file", &raw.key_file)?,
        client_auth,
        client_ca_file,
        min_version,
        max_version,
    })
}

fn version(key: &str, value: Option<&str>) -> Result<Option<TlsVersion>, Issue> {
    match value {
        None => Ok(None),
        Some("TLS12") => Ok(Some(TlsVersion::Tls12)),
        Some("TLS13") => Ok(Some(TlsVersion::Tls13)),
        Some(v @ ("TLS10" | "TLS11")) => Err(Issue::new(
            key,
            format!(
                "\"{v}\" is not supported: TLS 1.0 and 1.1 are obsolete and rustls has neither; use TLS12 or TLS13"
            ),
        )),
        Some(v) => Err(Issue::new(
            key,
            format!("unknown value \"{v}\"; the values allowed here are: TLS12, TLS13"),
        )),
    }
}

fn headers(raw: Option<RawHeaders>) -> Result<Vec<(HeaderName, HeaderValue)>, Issue> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let key = |name: &str| format!("http_server_config.headers.{name}");
    let mut out = Vec::new();
    let mut push = |name: &'static str, value: Option<String>, allowed: &[&str]| {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return Ok(());
        };
        if !allowed.is_empty() && !allowed.iter().any(|a| a.eq_ignore_ascii_case(&value)) {
            return Err(Issue::new(
                key(name),
                format!(
                    "unknown value \"{value}\"; the values allowed here are: {}",
                    allowed.join(", ")
                ),
            ));
        }
        let value = HeaderValue::from_str(&value)
            .map_err(|_| Issue::new(key(name), "not a valid header value"))?;
        // The file's keys are capitalised as usual; header names are stored lower case.
        let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
            .expect("the five header names are valid");
        out.push((name, value));
        Ok(())
    };
    push("Content-Security-Policy", raw.content_security_policy, &[])?;
    push(
        "X-Frame-Options",
        raw.x_frame_options,
        &["deny", "sameorigin"],
    )?;
    push(
        "X-Content-Type-Options",
        raw.x_content_type_options,
        &["nosniff"],
    )?;
    push("X-XSS-Protection", raw.x_xss_protection, &[])?;
    push(
        "Strict-Transport-Security",
        raw.strict_transport_security,
        &[],
    )?;
    Ok(out)
}

/// The web-config file in force: what the server was started with, and the path to read it
/// again from on every request and handshake.
#[derive(Debug)]
pub struct WebSecurity {
    path: PathBuf,
    /// Whether the listener speaks TLS; fixed at start-up.
    tls: bool,
    cache: basic_auth::Cache,
}

impl WebSecurity {
    /// Validates `path` (see [`WebConfig::load`]) and remembers it.
    ///
    /// # Errors
    /// As [`WebConfig::load`].
    pub fn load(path: &Path) -> Result<Arc<WebSecurity>, ConfigError> {
        let config = WebConfig::load(path)?;
        if config.requires_auth() && config.tls.is_none() {
            tracing::warn!(
                file = %path.display(),
                "basic_auth_users without tls_server_config: passwords cross the network in clear text."
            );
        }
        Ok(Arc::new(WebSecurity {
            path: path.to_path_buf(),
            tls: config.tls.is_some(),
            cache: basic_auth::Cache::default(),
        }))
    }

    /// Whether the server speaks TLS (decided at start-up).
    pub fn tls(&self) -> bool {
        self.tls
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file as it is now. Blocking: call off the async workers.
    ///
    /// # Errors
    /// As [`WebConfig::load`], without opening the TLS files.
    pub fn current(&self) -> Result<WebConfig, ConfigError> {
        let file = self.path.display().to_string();
        let text = std::fs::read_to_string(&self.path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        WebConfig::from_yaml(&file, dir, &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<WebConfig, String> {
        WebConfig::from_yaml("web.yml", Path::new("/etc/lagwatch"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn empty_file_turns_nothing_on() {
        let c = parse("").unwrap();
        assert!(c.tls.is_none() && c.users.is_empty() && c.headers.is_empty());
    }

    #[test]
    fn relative_files_resolve_against_the_file_directory() {
        let c = parse("tls_server_config:\n  cert_file: a.crt\n  key_file: /k/a.key\n").unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.cert_file, Path::new("/etc/lagwatch/a.crt"));
        assert_eq!(tls.key_file, Path::new("/k/a.key"));
        assert_eq!(tls.min_version, TlsVersion::Tls12);
        assert_eq!(tls.client_auth, ClientAuth::NoClientCert);
    }

    #[test]
    fn errors_name_file_key_and_reason() {
        let cases = [
            (
                "tls_server_config:\n  cert_file: a\n",
                "web.yml: tls_server_config.key_file: required key is missing",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [x]\n",
                "web.yml: tls_server_config.cipher_suites: not supported by lagwatch: rustls offers only its own modern cipher suites",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS11\n",
                "web.yml: tls_server_config.min_version: \"TLS11\" is not supported: TLS 1.0 and 1.1 are obsolete and rustls has neither; use TLS12 or TLS13",
            ),
            (
                "basic_auth_users:\n  alice: hunter2\n",
                "web.yml: basic_auth_users.alice: not a bcrypt hash (never write the password itself here); make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'",
            ),
            (
                "rate_limit:\n  burst: 3\n",
                "web.yml: rate_limit: not supported by lagwatch; rate-limit in a reverse proxy if you need it",
            ),
            (
                "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
                "web.yml: http_server_config.headers.X-Frame-Options: unknown value \"allow\"; the values allowed here are: deny, sameorigin",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).unwrap_err(), want, "for {text}");
        }
        let unknown = parse("basic_auth:\n  a: b\n").unwrap_err();
        assert!(
            unknown.starts_with("web.yml: basic_auth: unknown key; the keys allowed here are: "),
            "{unknown}"
        );
    }
}
