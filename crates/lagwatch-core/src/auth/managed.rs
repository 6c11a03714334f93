//! Managed identity: tokens from the Azure host the process runs on, no secret in the config.
//!
//! Two documented endpoints, chosen from the environment the way the Azure SDKs do:
//!
//! - **IMDS** (VMs, VM scale sets, AKS nodes), the default:
//!   `GET http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=<resource>[&client_id=<id>]`
//!   with `Metadata: true`. The answer has `access_token`, `expires_in` (a numeric string) and
//!   `expires_on`. IMDS answers 404 while it is being updated and 410 while it starts; both are
//!   reported as `transport` errors, and the next probe tries again.
//! - **App Service, Container Apps, Functions**, when `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`
//!   are set: `GET $IDENTITY_ENDPOINT?api-version=2019-08-01&resource=<resource>[&client_id=<id>]`
//!   with `X-IDENTITY-HEADER: $IDENTITY_HEADER`; the answer's `expires_on` is Unix seconds.
//!
//! `resource` is the scope without `/.default`. Azure Arc, Service Fabric, Cloud Shell and
//! Azure ML identity endpoints are recognised and refused with a clear message rather than
//! falling back to an IMDS that is not there.
//!
//! The `endpoint` setting replaces the IMDS URL (a node-local proxy, or a fake in tests). Both
//! endpoints are local to the host, so requests go through a client that never uses a proxy:
//! an `HTTPS_PROXY` set for the cloud APIs must not capture them.
//!
//! Why not `azure_identity`'s `ManagedIdentityCredential`: see [`crate::auth`].

use std::fmt;

use async_trait::async_trait;
use url::Url;

use super::response::{Transient, read_token_response, transport_error};
use super::{AccessToken, AuthError, Redacted, TokenSource};

/// The Instance Metadata Service token endpoint.
pub const IMDS_ENDPOINT: &str = "http://169.254.169.254/metadata/identity/oauth2/token";
const IMDS_API_VERSION: &str = "2018-02-01";
const APP_SERVICE_API_VERSION: &str = "2019-08-01";

enum Flavor {
    Imds,
    AppService { header: Redacted },
}

/// A managed identity, system-assigned or (with a client id) user-assigned.
pub struct ManagedIdentity {
    http: reqwest::Client,
    endpoint: Url,
    client_id: Option<String>,
    flavor: Flavor,
}

impl fmt::Debug for ManagedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flavor = match &self.flavor {
            Flavor::Imds => "imds",
            Flavor::AppService { .. } => "app_service",
        };
        f.debug_struct("ManagedIdentity")
            .field("flavor", &flavor)
            .field("endpoint", &self.endpoint.as_str())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A client for host-local identity endpoints: never through a proxy.
pub(crate) fn unproxied_client() -> Result<reqwest::Client, AuthError> {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| AuthError::Config(format!("cannot create an HTTP client: {e}")))
}

pub(crate) fn endpoint_url(endpoint: &str, what: &str) -> Result<Url, AuthError> {
    let url = Url::parse(endpoint.trim())
        .map_err(|e| AuthError::Config(format!("{what} \"{endpoint}\" is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(AuthError::Config(format!(
            "{what} \"{endpoint}\" must be an http:// or https:// URL with a host"
        )));
    }
    Ok(url)
}

impl ManagedIdentity {
    /// IMDS at `endpoint` (normally [`IMDS_ENDPOINT`]).
    ///
    /// # Errors
    /// [`AuthError::Config`] if `endpoint` is not an `http(s)` URL.
    pub fn imds(
        endpoint: &str,
        client_id: Option<String>,
        http: reqwest::Client,
    ) -> Result<Self, AuthError> {
        Ok(ManagedIdentity {
            http,
            endpoint: endpoint_url(endpoint, "the managed identity endpoint")?,
            client_id,
            flavor: Flavor::Imds,
        })
    }

    /// The App Service identity endpoint (`IDENTITY_ENDPOINT`) with its per-process secret
    /// (`IDENTITY_HEADER`).
    ///
    /// # Errors
    /// [`AuthError::Config`] if `endpoint` is not an `http(s)` URL.
    pub fn app_service(
        endpoint: &str,
        identity_header: &str,
        client_id: Option<String>,
        http: reqwest::Client,
    ) -> Result<Self, AuthError> {
        Ok(ManagedIdentity {
            http,
            endpoint: endpoint_url(endpoint, "IDENTITY_ENDPOINT")?,
            client_id,
            flavor: Flavor::AppService {
                header: Redacted::new(identity_header),
            },
        })
    }
}

#[async_trait]
impl TokenSource for ManagedIdentity {
    async fn fetch(&self, scope: &str) -> Result<AccessToken, AuthError> {
        let resource = scope.strip_suffix("/.default").unwrap_or(scope);
        if resource.is_empty() {
            return Err(AuthError::Config(format!(
                "scope \"{scope}\" names no resource"
            )));
        }
        let endpoint = self.endpoint.as_str();
        let api_version = match self.flavor {
            Flavor::Imds => IMDS_API_VERSION,
            Flavor::AppService { .. } => APP_SERVICE_API_VERSION,
        };
        let mut query = vec![("api-version", api_version), ("resource", resource)];
        if let Some(id) = &self.client_id {
            query.push(("client_id", id));
        }
        let request = self.http.get(self.endpoint.clone()).query(&query);
        let request = match &self.flavor {
            Flavor::Imds => request.header("Metadata", "true"),
            Flavor::AppService { header } => request.header("X-IDENTITY-HEADER", header.expose()),
        };
        tracing::debug!(%endpoint, resource, "requesting a managed identity token");
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(endpoint, e))?;
        let transient = match self.flavor {
            Flavor::Imds => Transient::Imds,
            Flavor::AppService { .. } => Transient::Entra,
        };
        read_token_response(endpoint, response, transient).await
    }
}
