//! What the connector tests share: a fake bearer token source, a query matcher, the
//! `HttpSystem` a connector under test talks through, and the usual answers and checks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::Utc;
use lagwatch::auth::{Auth, BearerTokens};
use lagwatch::config::Secret;
use lagwatch::connector::{ConnectorError, Lookup};
use lagwatch::gate::Gate;
use lagwatch::metrics::Metrics;
use lagwatch::net::HttpSystem;
use lagwatch::sentinel::Sentinel;
use reqwest::header::HeaderName;
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

/// Hands out `t1` until it is told that token was rejected, then `t2`, and so on.
#[derive(Default)]
pub struct FakeTokens {
    issued: AtomicUsize,
    rejected: AtomicUsize,
}

impl FakeTokens {
    /// How many tokens were asked for.
    pub fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }

    /// How many tokens the system answered 401 to.
    pub fn rejected(&self) -> usize {
        self.rejected.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl BearerTokens for FakeTokens {
    async fn bearer(&self) -> Result<Secret, ConnectorError> {
        self.issued.fetch_add(1, Ordering::SeqCst);
        Ok(Secret::runtime(format!("t{}", self.rejected() + 1), "test"))
    }

    fn rejected(&self, _token: &Secret) {
        self.rejected.fetch_add(1, Ordering::SeqCst);
    }
}

/// The query string is exactly these pairs, in this order (decoded).
pub struct ExactQuery(Vec<(String, String)>);

impl ExactQuery {
    pub fn of(pairs: &[(&str, &str)]) -> Self {
        ExactQuery(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

impl Match for ExactQuery {
    fn matches(&self, request: &Request) -> bool {
        let got: Vec<(String, String)> = request
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        got == self.0
    }
}

/// The system `name` as a connector sees it: no limits at the gate, fresh metrics.
pub fn http_system(name: &str, auth: Auth) -> HttpSystem {
    http_system_with(name, auth, &Metrics::new())
}

/// The system `name`, counting its requests in `metrics`.
pub fn http_system_with(name: &str, auth: Auth, metrics: &Metrics) -> HttpSystem {
    HttpSystem::new(
        name,
        lagwatch::net::client().unwrap(),
        Arc::new(Gate::unlimited_for_tests()),
        metrics.clone(),
        auth,
    )
}

/// Bearer tokens from a fresh [`FakeTokens`].
pub fn bearer() -> Auth {
    Auth::Bearer(Arc::new(FakeTokens::default()))
}

/// A static key sent in the header `name` (`api-key`, or `authorization` for `ApiKey …`).
pub fn key_header(name: &'static str, value: &str) -> Auth {
    Auth::Header {
        name: HeaderName::from_static(name),
        value: Secret::runtime(value, "test"),
    }
}

/// HTTP basic credentials.
pub fn basic(user: &str, password: &str) -> Auth {
    Auth::Basic {
        user: user.into(),
        password: Secret::runtime(password, "test"),
    }
}

/// A fresh sentinel of the instance `test`.
pub fn sentinel() -> Sentinel {
    Sentinel::new("test", 7, Utc::now())
}

/// What a read of a causal pair answers when only the child is there: `[parent, child]`.
pub fn child_only(child: &Sentinel) -> Vec<Lookup> {
    vec![
        Lookup::Absent,
        Lookup::Present {
            payload: Some(child.payload.clone()),
        },
    ]
}

/// The payload of a `Present` answer with content; panics on anything else.
pub fn present(result: Result<Lookup, ConnectorError>) -> String {
    match result {
        Ok(Lookup::Present { payload: Some(p) }) => p,
        other => panic!("expected a present payload, got {other:?}"),
    }
}

/// A secret in a file of its own, as a config names it (`file:<path>`): tests run in
/// parallel, and a file rewritten by one while another reads it would be read empty.
pub fn secret_file(name: &str, content: &str) -> String {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let seq = SEQ.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("lagwatch-secrets-{}-{seq}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join(name);
    std::fs::write(&f, content).unwrap();
    format!("file:{}", f.display())
}

/// Answers every Entra v2 token request of `tenant` on `server` with `token`.
pub async fn mount_entra_token(server: &MockServer, tenant: &str, token: &str) {
    Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path(format!("/{tenant}/oauth2/v2.0/token")))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token
        })))
        .mount(server)
        .await;
}

/// A `200` JSON answer cut off in the middle.
pub fn truncated_json() -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "application/json")
        .set_body_string("{\"value\": [ {\"truncated")
}

/// The kind of the error `result` holds; panics on success.
pub fn error_kind<T: std::fmt::Debug>(result: Result<T, ConnectorError>) -> &'static str {
    match result {
        Err(e) => e.kind(),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

/// Answers the next request (any method and path) with `template`, once.
pub async fn answer_next(server: &MockServer, template: ResponseTemplate) {
    Mock::given(wiremock::matchers::any())
        .respond_with(template)
        .up_to_n_times(1)
        .mount(server)
        .await;
}
