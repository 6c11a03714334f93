//! How a request to a system authenticates: the credential a connector's requests carry,
//! built from a kind's `auth:` block (`credential.rs`) and added by the HTTP layer (`net`) to
//! every request it sends.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::header::HeaderName;

use super::TokenCache;
use crate::config::Secret;
use crate::connector::{Cause, ConnectorError};

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
            Err(e) if matches!(e.kind(), "transport" | "bad_response") => Err(
                ConnectorError::Transport(Cause::with_error(format!("token endpoint: {e}"), e)),
            ),
            Err(e) => Err(ConnectorError::Auth(Cause::with_error(e.to_string(), e))),
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::auth::fake::StaticTokenSource;
    use crate::auth::{AuthError, TokenCache};

    /// A refused token request is an `auth` error whose source is the token service's error,
    /// so its Entra error code can be read without parsing the message.
    #[tokio::test]
    async fn a_refused_token_keeps_the_token_services_error() {
        let source = Arc::new(StaticTokenSource::new(Duration::from_secs(3600)));
        source.fail_next(AuthError::Rejected {
            endpoint: "https://login.example/t/oauth2/v2.0/token".to_string(),
            status: 401,
            diagnostics: crate::auth::response::Diagnostics {
                error: Some("invalid_client".to_string()),
                ..Default::default()
            },
        });
        let bearer = EntraBearer::new(TokenCache::new(source), "s/.default".to_string());
        let e = bearer.bearer().await.expect_err("refused");
        assert_eq!(e.kind(), "auth", "{e}");
        let beneath = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<AuthError>())
            .expect("the token service's error is kept");
        assert_eq!(beneath.error_code(), Some("invalid_client"));
    }
}
