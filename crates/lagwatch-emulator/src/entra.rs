//! Entra ID (v2) client-credentials token endpoint, fact sheet §3.1.
//!
//! `POST /entra/{tenant}/oauth2/v2.0/token` with a form body: `grant_type=client_credentials`,
//! `client_id`, `scope` (one resource + `/.default`), and either `client_secret` or
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` +
//! `client_assertion`. Success is `{"token_type":"Bearer","expires_in":…,"access_token":…}`;
//! failures are 400 with `error`, `error_description`, `error_codes`, `timestamp`, `trace_id`,
//! `correlation_id` (the documented shape; the AADSTS numbers are Entra's usual ones for each
//! case). Tokens are opaque random strings bound to client, resource and expiry, so
//! a token for one environment is refused by another.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::odata::QueryString;
use super::{Emulator, Req, b64_decode, json_response};

/// An issued access token.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub client_id: String,
    /// Normalised resource (scope without `/.default`).
    pub resource: String,
    pub expires_at: Instant,
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    Missing,
    Unknown,
    Expired,
    WrongResource,
}

/// Lower-case without a trailing slash, for comparing resources.
pub(crate) fn normalize_resource(r: &str) -> String {
    r.trim().trim_end_matches('/').to_ascii_lowercase()
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

impl Emulator {
    /// Checks `Authorization: Bearer …` against the issued tokens and the accepted resources.
    pub(crate) fn bearer(&self, req: &Req, accepted: &[String]) -> Result<Token, AuthFailure> {
        let Some(value) = req.header("authorization") else {
            return Err(AuthFailure::Missing);
        };
        let Some(token) = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
        else {
            return Err(AuthFailure::Missing);
        };
        let st = self.state();
        let t = st.tokens.get(token).ok_or(AuthFailure::Unknown)?;
        if Instant::now() >= t.expires_at {
            return Err(AuthFailure::Expired);
        }
        if !accepted.iter().any(|a| normalize_resource(a) == t.resource) {
            return Err(AuthFailure::WrongResource);
        }
        Ok(t.clone())
    }

    pub(crate) fn token_endpoint(&self, req: &Req, tenant: &str) -> Response {
        match self.issue_token(req, tenant) {
            Ok(body) => {
                let mut r = json_response(StatusCode::OK, &body);
                let h = r.headers_mut();
                h.insert("cache-control", super::hv("no-store, no-cache"));
                h.insert("pragma", super::hv("no-cache"));
                r
            }
            Err((error, code, message)) => {
                let now = self.wall_now();
                let trace = uuid::Uuid::now_v7();
                let correlation = req
                    .header("client-request-id")
                    .and_then(|c| uuid::Uuid::parse_str(c).ok())
                    .unwrap_or_else(uuid::Uuid::now_v7);
                let timestamp = now.format("%Y-%m-%d %H:%M:%SZ").to_string();
                let body = json!({
                    "error": error,
                    "error_description": format!(
                        "AADSTS{code}: {message} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {timestamp}"
                    ),
                    "error_codes": [code],
                    "timestamp": timestamp,
                    "trace_id": trace.to_string(),
                    "correlation_id": correlation.to_string(),
                });
                json_response(StatusCode::BAD_REQUEST, &body)
            }
        }
    }

    fn issue_token(&self, req: &Req, tenant: &str) -> Result<Value, (&'static str, u32, String)> {
        let creds: Vec<_> = self
            .scenario
            .credentials
            .iter()
            .filter(|c| c.tenant.eq_ignore_ascii_case(tenant))
            .collect();
        if creds.is_empty() {
            return Err((
                "invalid_request",
                90002,
                format!(
                    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
                ),
            ));
        }
        let content_type = req.header("content-type").unwrap_or("");
        if !content_type
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
        {
            return Err((
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'. (send it form-encoded, Content-Type: application/x-www-form-urlencoded)".to_string(),
            ));
        }
        let form = std::str::from_utf8(&req.body)
            .ok()
            .and_then(|b| QueryString::parse(Some(b)).ok())
            .ok_or((
                "invalid_request",
                900144,
                "The request body must be form-encoded UTF-8.".to_string(),
            ))?;
        let need = |name: &'static str| {
            form.get(name).filter(|v| !v.is_empty()).ok_or((
                "invalid_request",
                900144,
                format!("The request body must contain the following parameter: '{name}'."),
            ))
        };
        let grant = need("grant_type")?;
        if grant != "client_credentials" {
            return Err((
                "unsupported_grant_type",
                70003,
                format!("The app requested an unsupported grant type '{grant}'."),
            ));
        }
        let client_id = need("client_id")?;
        let scope = need("scope")?;
        let scopes: Vec<&str> = scope.split_whitespace().collect();
        let resource = match scopes.as_slice() {
            [one] => one.strip_suffix("/.default"),
            _ => None,
        }
        .filter(|r| !r.is_empty())
        .ok_or((
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ))?;
        let Some(cred) = creds.into_iter().find(|c| c.client_id == client_id) else {
            return Err((
                "unauthorized_client",
                700016,
                format!(
                    "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
                ),
            ));
        };
        if let Some(secret) = form.get("client_secret") {
            if cred.client_secret.as_deref() != Some(secret) {
                return Err((
                    "invalid_client",
                    7000215,
                    format!(
                        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                    ),
                ));
            }
        } else if let Some(kind) = form.get("client_assertion_type") {
            if kind != JWT_BEARER {
                return Err((
                    "invalid_request",
                    50027,
                    format!("client_assertion_type must be {JWT_BEARER}."),
                ));
            }
            let assertion = need("client_assertion")?;
            if !cred.accept_assertions {
                return Err((
                    "invalid_client",
                    700027,
                    "Client assertion failed signature validation (no certificate or federated credential is registered for this app).".to_string(),
                ));
            }
            self.check_assertion(assertion, client_id)?;
        } else {
            return Err((
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.".to_string(),
            ));
        }
        let resource = normalize_resource(resource);
        let known = self.known_resources(&req.host);
        if !known.iter().any(|k| normalize_resource(k) == resource) {
            return Err((
                "invalid_resource",
                500011,
                format!(
                    "The resource principal named {resource} was not found in the tenant named {tenant}."
                ),
            ));
        }
        let token = random_token();
        let expires_at = Instant::now() + Duration::from_secs(cred.expires_in);
        let mut st = self.state();
        let now = Instant::now();
        st.tokens.retain(|_, t| t.expires_at > now);
        st.tokens.insert(
            token.clone(),
            Token {
                client_id: client_id.to_string(),
                resource,
                expires_at,
            },
        );
        Ok(json!({
            "token_type": "Bearer",
            "expires_in": cred.expires_in,
            "access_token": token,
        }))
    }

    /// A JWT whose payload names the client as `iss` and `sub` and has not expired.
    fn check_assertion(
        &self,
        jwt: &str,
        client_id: &str,
    ) -> Result<(), (&'static str, u32, String)> {
        let malformed = || {
            (
                "invalid_client",
                50027,
                "JWT token is invalid or malformed.".to_string(),
            )
        };
        let parts: Vec<&str> = jwt.split('.').collect();
        let [_, payload, _] = parts.as_slice() else {
            return Err(malformed());
        };
        let claims: Value = b64_decode(payload)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(malformed)?;
        let claim = |n: &str| claims.get(n).and_then(Value::as_str);
        if claim("iss") != Some(client_id) || claim("sub") != Some(client_id) {
            return Err((
                "invalid_client",
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter."
                    .to_string(),
            ));
        }
        if let Some(exp) = claims.get("exp").and_then(Value::as_i64)
            && exp <= self.wall_now().timestamp()
        {
            return Err((
                "invalid_client",
                700024,
                "Client assertion is not within its valid time range.".to_string(),
            ));
        }
        Ok(())
    }
}

/// 32 random bytes as URL-safe text.
fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
