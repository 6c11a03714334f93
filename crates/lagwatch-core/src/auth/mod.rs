//! Entra ID access tokens for Dataverse, Finance & Operations, Azure AI Search and storage.
//!
//! Connectors never talk to an identity provider themselves. They hold a [`TokenCache`] and call
//! [`TokenCache::token`] with the scope of the system they call ([`scope_for`] derives it from
//! the system URL), send the token as `Authorization: Bearer …` (reqwest's `bearer_auth` marks
//! the header sensitive), and after a `401` call [`TokenCache::invalidate`] with the token that
//! was refused, so the next call fetches a new one. The cache keeps one token per scope, renews
//! it five minutes before it expires, lets at most one renewal per scope run at a time, and
//! shares its outcome with every caller that waited for it.
//!
//! Behind the cache is a [`TokenSource`]: one call, one fresh token, no caching, no retries
//! (like a connector, a token source never sleeps or retries: the engine owns time, and the next
//! probe is the retry). [`build`] makes the source an [`AuthConfig`] asks for:
//!
//! | `method` | what it does | module |
//! |---|---|---|
//! | `client_secret` | Entra v2 client-credentials grant with an app secret | [`entra`] |
//! | `workload_identity` | the same grant with the Kubernetes-projected federated token as `client_assertion`, re-read on every fetch | [`entra`] |
//! | `managed_identity` | IMDS (VMs, AKS nodes, VM scale sets) or the App Service / Container Apps / Functions identity endpoint | [`managed`] |
//! | `client_certificate` | the same grant with a JWT signed by the app certificate's RSA key as `client_assertion`, made anew for every fetch | [`entra`], [`certificate`] |
//!
//! # Why the token requests are implemented here and not with `azure_identity`
//!
//! The client-credentials grant is one documented form POST (fact sheet §3.1). `azure_identity`
//! 1.0 refuses authority hosts that are not `https`, so with it neither wiremock nor the
//! project's own emulator (`http://127.0.0.1:PORT/entra`) could ever see the real request; our
//! own call is tested byte for byte against both, and plain `http` is allowed when an
//! `authority` is configured explicitly.
//!
//! For managed identity `azure_identity` 1.0.0's `ManagedIdentityCredential` was measured and
//! read (published source) before deciding against it:
//! - it adds 35 crates (169 → 204 distinct normal dependencies; `cargo tree` 414 → 520 lines:
//!   `azure_core`, `typespec*`, `time`, `async-lock`, `flate2`/compression codecs, a second
//!   `rand`, …) and 41 s to a debug build of the library on 2 cores (93 s baseline);
//! - the IMDS URL is a constant, so the request shape cannot be tested against a fake;
//! - it retries IMDS up to 6 times over up to 72 s inside one `get_token` call, which breaks the
//!   rule that a call is one request and the engine owns time;
//! - it caches tokens itself on the wall clock with no way to bypass the cache, so after a `401`
//!   it would hand back the refused token until five minutes before its expiry, and paused-time
//!   tests cannot drive it.
//!
//! The documented IMDS and App Service calls are a GET each (see [`managed`]), so they are
//! implemented here too, and the whole module needs nothing beyond reqwest, serde_json and url.
//!
//! # Certificates
//!
//! `client_certificate` needs an RS256 signature over a JWT and two certificate digests.
//! `azure_identity`'s `ClientCertificateCredential` needs OpenSSL (`libssl-dev` at build time);
//! `aws-lc-rs`, which reqwest's rustls already builds, does both, so it is a direct dependency
//! at the version already in the tree (no new crate), with `base64` likewise. The PEM (the
//! certificate and its unencrypted PKCS#8 or PKCS#1 RSA key) is read and checked at load time:
//! see [`certificate`].
//!
//! # Secrets
//!
//! The client secret, the certificate PEM, every client assertion, the App Service identity
//! header and every access token live in redacting types ([`crate::config::Secret`],
//! [`AccessToken`]); `Debug` and `Display` never print them (a parsed certificate shows its
//! thumbprint and expiry, its key stays inside `aws-lc-rs`), [`AuthError`] carries only
//! Entra's error code, AADSTS numbers, trace and correlation ids (never `error_description`,
//! which can echo the request), and nothing here logs a secret or a token.

pub mod cache;
pub mod certificate;
pub mod config;
pub mod credential;
pub mod entra;
#[cfg(test)]
mod fake;
pub mod managed;
mod request;
mod response;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

pub use cache::TokenCache;
pub use config::{AuthConfig, AuthMethod};
pub use credential::{Accepts, ApiKeyStyle, AuthBlock, Credential};
pub use entra::ClientCredentials;
#[doc(hidden)]
#[cfg(test)]
pub(crate) use fake::StaticTokenSource;
pub use managed::ManagedIdentity;
pub use request::{Auth, BearerTokens, EntraBearer};
pub use response::Diagnostics;

/// Scope of Azure Storage (Blob, ADLS Gen2, OneLake through the storage API).
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
/// Scope of Azure AI Search data-plane calls (not derivable from the service URL).
pub const SEARCH_SCOPE: &str = "https://search.azure.com/.default";

/// Something that fetches a fresh access token for one scope. Implementations do one request
/// per call: no caching (that is [`TokenCache`]'s job), no retries, no sleeping.
#[async_trait]
pub trait TokenSource: Send + Sync {
    /// Fetches a new token for `scope` (`https://org.crm.dynamics.com/.default`).
    async fn fetch(&self, scope: &str) -> Result<AccessToken, AuthError>;
}

/// A string that never shows up in `Debug` or `Display` output.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Redacted(String);

impl Redacted {
    pub(crate) fn new(value: impl Into<String>) -> Self {
        Redacted(value.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A bearer token and the instant it expires. `Debug` and `Display` show the remaining
/// lifetime, never the token; [`AccessToken::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    token: Redacted,
    expires_at: Instant,
}

impl AccessToken {
    pub fn new(token: impl Into<String>, expires_at: Instant) -> Self {
        AccessToken {
            token: Redacted::new(token),
            expires_at,
        }
    }

    /// The token itself, for the `Authorization` header and nothing else.
    pub fn expose(&self) -> &str {
        self.token.expose()
    }

    /// When the token stops being accepted (monotonic clock, so paused-time tests work).
    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }

    /// Lifetime left now; zero once expired.
    pub fn remaining(&self) -> Duration {
        self.expires_at.saturating_duration_since(Instant::now())
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &self.token)
            .field("remaining", &self.remaining())
            .finish()
    }
}

impl fmt::Display for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<redacted access token, valid for {}s>",
            self.remaining().as_secs()
        )
    }
}

/// Why no token could be had. The text names the endpoint and what the identity provider said
/// (error code, AADSTS numbers, trace and correlation ids); it never carries a secret, an
/// assertion, a token or the provider's free-text description.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The identity provider answered and refused: wrong secret, unknown app or tenant,
    /// identity not assigned, expired federated token. Retrying will not help until the
    /// configuration or the app registration changes.
    #[error("{endpoint} refused the token request (HTTP {status}){diagnostics}")]
    Rejected {
        endpoint: String,
        status: u16,
        diagnostics: Diagnostics,
    },
    /// No answer, or a transient one (429, 5xx, IMDS 404/410): worth trying again later.
    #[error("{endpoint}: {message}")]
    Transport { endpoint: String, message: String },
    /// An answer that is not the documented token response.
    #[error("{endpoint} answered HTTP {status} with {message}")]
    BadResponse {
        endpoint: String,
        status: u16,
        message: String,
    },
    /// Missing or wrong settings, an unreadable token file, an unsupported environment.
    #[error("authentication is misconfigured: {0}")]
    Config(String),
}

impl AuthError {
    /// Bounded label value: `rejected`, `transport`, `bad_response`, `config`.
    pub fn kind(&self) -> &'static str {
        match self {
            AuthError::Rejected { .. } => "rejected",
            AuthError::Transport { .. } => "transport",
            AuthError::BadResponse { .. } => "bad_response",
            AuthError::Config(_) => "config",
        }
    }

    /// The Entra error code (`invalid_client`) if the provider sent one.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            AuthError::Rejected { diagnostics, .. } => diagnostics.error.as_deref(),
            _ => None,
        }
    }
}

/// The scope for a resource URL: scheme, host and a non-default port, then `/.default`.
///
/// `https://org.crm.dynamics.com/api/data/v9.2/` → `https://org.crm.dynamics.com/.default`.
/// Azure Storage and Azure AI Search use fixed audiences instead: [`STORAGE_SCOPE`],
/// [`SEARCH_SCOPE`].
///
/// # Errors
/// [`AuthError::Config`] if the text is not an absolute `http(s)` URL with a host.
pub fn scope_for(resource_url: &str) -> Result<String, AuthError> {
    let bad = |why: &str| {
        AuthError::Config(format!(
            "cannot derive a token scope from \"{resource_url}\": {why}"
        ))
    };
    let url = url::Url::parse(resource_url.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(bad("write an http:// or https:// URL"));
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("the URL has no host"))?;
    let mut scope = format!("{}://{host}", url.scheme());
    if let Some(port) = url.port() {
        scope.push_str(&format!(":{port}"));
    }
    scope.push_str("/.default");
    Ok(scope)
}

/// The token source `config` asks for, sending its requests through `http`.
///
/// Give `http` a timeout (`reqwest::ClientBuilder::timeout`): a token source does not set its
/// own. Managed identity uses a client of its own that never goes through a proxy (IMDS and the
/// App Service endpoint are local and must not be proxied).
///
/// # Errors
/// [`AuthError::Config`] for what [`AuthConfig::validate`] rejects, read from the environment
/// now (workload identity defaults, the managed-identity endpoint).
pub fn build(
    config: &AuthConfig,
    http: reqwest::Client,
) -> Result<Arc<dyn TokenSource>, AuthError> {
    build_with_env(config, http, &|name| std::env::var(name).ok())
}

pub(crate) fn build_with_env(
    config: &AuthConfig,
    http: reqwest::Client,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn TokenSource>, AuthError> {
    let plan = config
        .plan("auth", env)
        .map_err(|issue| AuthError::Config(format!("{}: {}", issue.key, issue.reason)))?;
    Ok(match plan {
        config::Plan::ClientSecret {
            authority,
            tenant_id,
            client_id,
            secret,
        } => Arc::new(ClientCredentials::with_secret(
            &authority, &tenant_id, &client_id, secret, http,
        )?),
        config::Plan::ClientCertificate {
            authority,
            tenant_id,
            client_id,
            certificate,
        } => Arc::new(ClientCredentials::with_certificate(
            &authority,
            &tenant_id,
            &client_id,
            certificate,
            http,
        )?),
        config::Plan::WorkloadIdentity {
            authority,
            tenant_id,
            client_id,
            token_file,
        } => Arc::new(ClientCredentials::with_token_file(
            &authority, &tenant_id, &client_id, token_file, http,
        )?),
        config::Plan::Imds {
            endpoint,
            client_id,
        } => Arc::new(ManagedIdentity::imds(
            &endpoint,
            client_id,
            managed::unproxied_client()?,
        )?),
        config::Plan::AppService {
            endpoint,
            header,
            client_id,
        } => Arc::new(ManagedIdentity::app_service(
            &endpoint,
            header.expose(),
            client_id,
            managed::unproxied_client()?,
        )?),
        config::Plan::Unresolved { reference } => Arc::new(Unresolved(reference)),
    })
}

/// The token source of a credential whose secret was not read (`check-config --no-resolve`).
struct Unresolved(String);

#[async_trait::async_trait]
impl TokenSource for Unresolved {
    async fn fetch(&self, _scope: &str) -> Result<AccessToken, AuthError> {
        Err(AuthError::Config(format!(
            "the secret {} was not read (loaded without resolving secrets)",
            self.0
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_for_keeps_scheme_host_and_odd_ports() {
        let cases = [
            (
                "https://org.crm.dynamics.com/api/data/v9.2/",
                "https://org.crm.dynamics.com/.default",
            ),
            (
                "https://ENV.operations.dynamics.com/data/CustomersV3",
                "https://env.operations.dynamics.com/.default",
            ),
            (
                "https://org.crm4.dynamics.com:443/api",
                "https://org.crm4.dynamics.com/.default",
            ),
            (
                "http://127.0.0.1:8089/dataverse/api/data/v9.2",
                "http://127.0.0.1:8089/.default",
            ),
            ("http://[::1]:9000/x", "http://[::1]:9000/.default"),
        ];
        for (url, scope) in cases {
            assert_eq!(scope_for(url).unwrap(), scope, "{url}");
        }
        for bad in ["org.crm.dynamics.com", "ftp://x/", "", "https://"] {
            let e = scope_for(bad).unwrap_err();
            assert_eq!(e.kind(), "config", "{bad}: {e}");
        }
    }

    #[test]
    fn tokens_never_print() {
        let t = AccessToken::new("eyJsecret.token", Instant::now() + Duration::from_secs(60));
        assert_eq!(t.expose(), "eyJsecret.token");
        for s in [format!("{t:?}"), format!("{t}"), format!("{t:#?}")] {
            assert!(!s.contains("eyJsecret"), "{s}");
        }
    }
}
