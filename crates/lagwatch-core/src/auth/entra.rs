//! The Entra ID v2 client-credentials grant (fact sheet §3.1), with a client secret, a
//! certificate-signed JWT or a federated token (workload identity) as client assertion.
//!
//! ```http
//! POST {authority}/{tenant}/oauth2/v2.0/token
//! Content-Type: application/x-www-form-urlencoded
//!
//! client_id=…&scope=https%3A%2F%2Forg.crm.dynamics.com%2F.default&client_secret=…&grant_type=client_credentials
//! ```
//!
//! With workload identity, `client_secret` is replaced by
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and
//! `client_assertion=<content of the projected token file>`. Kubernetes rotates that file (the
//! Azure Workload Identity webhook projects a service-account token valid for an hour and
//! renews it well before), so it is read again on every fetch, never cached. With a certificate
//! (`client_certificate`) the assertion is a JWT signed with the certificate's key, made anew
//! for every request with the token URL as audience (see [`super::certificate`]).
//!
//! Secrets travel only in the form body, never in the URL. Every request carries a fresh
//! `client-request-id`, which Entra returns as `correlation_id` in errors.
//!
//! `authority` is normally `https://login.microsoftonline.com` (sovereign clouds have their
//! own); plain `http` is accepted because it can only come from an explicit setting, and that
//! is how the tests and the emulator (`http://127.0.0.1:PORT/entra`) are reached. `azure_identity`
//! refuses such authorities, which is one reason this call is implemented here (see
//! [`crate::auth`]).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::header::ACCEPT;
use url::Url;

use super::certificate::ClientCertificate;
use super::response::{Transient, read_token_response, transport_error};
use super::{AccessToken, AuthError, Redacted, TokenSource};
use crate::config::Secret;

/// The public Entra ID authority.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

enum Credential {
    Secret(Secret),
    TokenFile(PathBuf),
    Certificate(Arc<ClientCertificate>),
}

/// A confidential client: app id plus a secret, a certificate or a federated token file.
pub struct ClientCredentials {
    http: reqwest::Client,
    token_url: Url,
    client_id: String,
    credential: Credential,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let credential = match &self.credential {
            Credential::Secret(s) => format!("{s:?}"),
            Credential::TokenFile(p) => format!("token file {}", p.display()),
            Credential::Certificate(c) => format!("certificate {}", c.thumbprint()),
        };
        f.debug_struct("ClientCredentials")
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .field("credential", &credential)
            .finish()
    }
}

/// `{authority}/{tenant}/oauth2/v2.0/token`, keeping any path the authority has.
///
/// # Errors
/// [`AuthError::Config`] for an authority that is not an `http(s)` URL or a tenant that is not
/// a GUID or domain name.
pub fn token_url(authority: &str, tenant_id: &str) -> Result<Url, AuthError> {
    let mut url = Url::parse(authority.trim())
        .map_err(|e| AuthError::Config(format!(
            "authority \"{authority}\" is not a URL ({e}): write an http:// or https:// URL, such as {DEFAULT_AUTHORITY}"
        )))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none_or(str::is_empty) {
        return Err(AuthError::Config(format!(
            "authority \"{authority}\" must be an http:// or https:// URL with a host, such as {DEFAULT_AUTHORITY}"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(AuthError::Config(format!(
            "authority \"{authority}\" must not have a query or fragment"
        )));
    }
    if !valid_tenant(tenant_id) {
        return Err(AuthError::Config(format!(
            "tenant_id \"{tenant_id}\" is not a tenant id (a GUID) or a domain name"
        )));
    }
    url.path_segments_mut()
        .map_err(|()| AuthError::Config(format!("authority \"{authority}\" cannot have a path")))?
        .pop_if_empty()
        .extend([tenant_id, "oauth2", "v2.0", "token"]);
    Ok(url)
}

/// A GUID, a verified domain (`contoso.onmicrosoft.com`) or `organizations`-style name.
pub(crate) fn valid_tenant(tenant: &str) -> bool {
    !tenant.is_empty()
        && tenant.len() <= 256
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        && !tenant.starts_with('.')
}

impl ClientCredentials {
    /// Client credentials with an app secret.
    ///
    /// # Errors
    /// [`AuthError::Config`] as [`token_url`], or for an empty client id.
    pub fn with_secret(
        authority: &str,
        tenant_id: &str,
        client_id: &str,
        secret: Secret,
        http: reqwest::Client,
    ) -> Result<Self, AuthError> {
        Self::new(
            authority,
            tenant_id,
            client_id,
            Credential::Secret(secret),
            http,
        )
    }

    /// Client credentials with a certificate: every fetch sends a new assertion signed with
    /// the certificate's key (see [`super::certificate`]).
    ///
    /// # Errors
    /// As [`ClientCredentials::with_secret`].
    pub fn with_certificate(
        authority: &str,
        tenant_id: &str,
        client_id: &str,
        certificate: Arc<ClientCertificate>,
        http: reqwest::Client,
    ) -> Result<Self, AuthError> {
        Self::new(
            authority,
            tenant_id,
            client_id,
            Credential::Certificate(certificate),
            http,
        )
    }

    /// Client credentials with a federated token read from `token_file` on every fetch.
    ///
    /// # Errors
    /// As [`ClientCredentials::with_secret`].
    pub fn with_token_file(
        authority: &str,
        tenant_id: &str,
        client_id: &str,
        token_file: PathBuf,
        http: reqwest::Client,
    ) -> Result<Self, AuthError> {
        Self::new(
            authority,
            tenant_id,
            client_id,
            Credential::TokenFile(token_file),
            http,
        )
    }

    fn new(
        authority: &str,
        tenant_id: &str,
        client_id: &str,
        credential: Credential,
        http: reqwest::Client,
    ) -> Result<Self, AuthError> {
        if client_id.trim().is_empty() {
            return Err(AuthError::Config("client_id is empty".to_string()));
        }
        Ok(ClientCredentials {
            http,
            token_url: token_url(authority, tenant_id)?,
            client_id: client_id.trim().to_string(),
            credential,
        })
    }

    /// Where tokens are requested.
    pub fn token_url(&self) -> &Url {
        &self.token_url
    }

    async fn read_assertion(path: &std::path::Path) -> Result<Redacted, AuthError> {
        // A small file on a tmpfs; read off the async threads all the same (no tokio `fs`).
        let owned = path.to_path_buf();
        let read = tokio::task::spawn_blocking(move || std::fs::read_to_string(owned))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        let raw = read.map_err(|e| {
            AuthError::Config(format!(
                "cannot read the federated token file {}: {e}",
                path.display()
            ))
        })?;
        let assertion = raw.trim();
        if assertion.is_empty() {
            return Err(AuthError::Config(format!(
                "the federated token file {} is empty",
                path.display()
            )));
        }
        Ok(Redacted::new(assertion))
    }
}

#[async_trait]
impl TokenSource for ClientCredentials {
    async fn fetch(&self, scope: &str) -> Result<AccessToken, AuthError> {
        let endpoint = self.token_url.as_str();
        let assertion = match &self.credential {
            Credential::Secret(_) => None,
            Credential::TokenFile(path) => Some(Self::read_assertion(path).await?),
            // The audience is the token URL exactly as requested.
            Credential::Certificate(certificate) => {
                Some(certificate.assertion(endpoint, &self.client_id)?)
            }
        };
        let mut form: Vec<(&str, &str)> = vec![("client_id", &self.client_id), ("scope", scope)];
        match (&self.credential, &assertion) {
            (Credential::Secret(secret), _) => form.push(("client_secret", secret.expose())),
            (_, Some(assertion)) => {
                form.push(("client_assertion_type", JWT_BEARER));
                form.push(("client_assertion", assertion.expose()));
            }
            (_, None) => unreachable!("made above"),
        }
        form.push(("grant_type", "client_credentials"));
        let request_id = uuid::Uuid::now_v7().to_string();
        tracing::debug!(%endpoint, scope, client_request_id = %request_id, "requesting an Entra token");
        let response = self
            .http
            .post(self.token_url.clone())
            .header(ACCEPT, "application/json")
            .header("client-request-id", &request_id)
            .header("return-client-request-id", "true")
            .form(&form)
            .send()
            .await
            .map_err(|e| transport_error(endpoint, e))?;
        let token = read_token_response(endpoint, response, Transient::Entra).await;
        match &token {
            Ok(t) => {
                tracing::debug!(%endpoint, scope, valid_for_s = t.remaining().as_secs(), "got an Entra token")
            }
            Err(e) => {
                tracing::debug!(%endpoint, scope, client_request_id = %request_id, error = %e, "Entra token request failed")
            }
        }
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_url_keeps_the_authority_path() {
        assert_eq!(
            token_url(DEFAULT_AUTHORITY, "contoso.onmicrosoft.com")
                .unwrap()
                .as_str(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(
            token_url("http://127.0.0.1:8089/entra/", "t1")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8089/entra/t1/oauth2/v2.0/token"
        );
        for (authority, tenant) in [
            ("login.microsoftonline.com", "t"),
            ("ftp://x", "t"),
            (DEFAULT_AUTHORITY, "a/b"),
            (DEFAULT_AUTHORITY, ""),
            ("https://x/?q=1", "t"),
        ] {
            assert_eq!(
                token_url(authority, tenant).unwrap_err().kind(),
                "config",
                "{authority} {tenant}"
            );
        }
    }
}
