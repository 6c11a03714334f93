//! The Elasticsearch/OpenSearch connector against a fake that follows the documented shapes
//! (fact sheet §6.3).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use lagwatch::config::Secret;
use lagwatch::connector::{ConnectorError, Lookup, Target};
use lagwatch::gate::Gate;
use lagwatch::metrics::Metrics;
use lagwatch::net::{Auth, BearerTokens, HttpSystem};
use lagwatch::sentinel::Sentinel;
use lagwatch::systems::elasticsearch::{Elasticsearch, EsIndex, EsMode};
use reqwest::header::HeaderName;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

#[derive(Default)]
struct FakeTokens {
    rejected: AtomicUsize,
}

#[async_trait]
impl BearerTokens for FakeTokens {
    async fn bearer(&self) -> Result<Secret, ConnectorError> {
        let n = self.rejected.load(Ordering::SeqCst) + 1;
        Ok(Secret::runtime(format!("t{n}"), "test"))
    }
    fn rejected(&self, _token: &Secret) {
        self.rejected.fetch_add(1, Ordering::SeqCst);
    }
}

/// The request has no query string.
struct NoQuery;

impl Match for NoQuery {
    fn matches(&self, request: &Request) -> bool {
        request.url.query().is_none()
    }
}

fn basic() -> Auth {
    Auth::Basic {
        user: "lagwatch".into(),
        password: Secret::runtime("s3cret", "test"),
    }
}

fn api_key() -> Auth {
    Auth::Header {
        name: HeaderName::from_static("authorization"),
        value: Secret::runtime("ApiKey aWQ6a2V5", "test"),
    }
}

async fn es(mode: EsMode, auth: Auth) -> (MockServer, Elasticsearch) {
    let server = MockServer::start().await;
    let http = HttpSystem::new(
        "es",
        lagwatch::net::client().unwrap(),
        Arc::new(Gate::unlimited_for_tests()),
        Metrics::new(),
        auth,
    );
    let target = Elasticsearch::new(
        http,
        EsIndex {
            base: server.uri(),
            index: "crm-accounts".into(),
            mode,
            key_field: "sentinel_key".into(),
            payload_field: "payload".into(),
        },
    );
    (server, target)
}

fn sentinel() -> Sentinel {
    Sentinel::new("test", 7, Utc::now())
}

fn present(result: Result<Lookup, ConnectorError>) -> String {
    match result {
        Ok(Lookup::Present { payload: Some(p) }) => p,
        other => panic!("expected a present payload, got {other:?}"),
    }
}

fn found(s: &Sentinel, payload: &str) -> Value {
    json!({
        "_index": "crm-accounts",
        "_id": s.id.key(),
        "_version": 1,
        "_seq_no": 0,
        "_primary_term": 1,
        "found": true,
        "_source": {"sentinel_key": s.id.key(), "payload": payload}
    })
}

fn index_not_found() -> ResponseTemplate {
    ResponseTemplate::new(404).set_body_json(json!({
        "error": {
            "root_cause": [{"type": "index_not_found_exception", "reason": "no such index [crm-accounts]"}],
            "type": "index_not_found_exception",
            "reason": "no such index [crm-accounts]",
            "index": "crm-accounts"
        },
        "status": 404
    }))
}

fn hits(sources: Vec<Value>) -> ResponseTemplate {
    let n = sources.len();
    let hits: Vec<Value> = sources
        .into_iter()
        .map(|src| json!({"_index": "crm-accounts", "_id": "x", "_score": 1.0, "_source": src}))
        .collect();
    ResponseTemplate::new(200).set_body_json(json!({
        "took": 1,
        "timed_out": false,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": n, "relation": "eq"}, "max_score": null, "hits": hits}
    }))
}

fn throttled() -> ResponseTemplate {
    ResponseTemplate::new(429)
        .insert_header("Retry-After", "12")
        .set_body_json(json!({"error": {"type": "es_rejected_execution_exception", "reason": "rejected"}, "status": 429}))
}

#[tokio::test]
async fn indexed_mode_gets_the_document_by_id_with_basic_auth() {
    let (server, t) = es(EsMode::Indexed, basic()).await;
    let s = sentinel();
    // base64("lagwatch:s3cret")
    Mock::given(method("GET"))
        .and(path(format!("/crm-accounts/_doc/{}", s.id.key())))
        .and(NoQuery)
        .and(header("Authorization", "Basic bGFnd2F0Y2g6czNjcmV0"))
        .and(header("Accept", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(found(&s, &s.payload)))
        .expect(1)
        .mount(&server)
        .await;
    assert!(s.matches(&present(t.lookup(&s.id).await)));
}

#[tokio::test]
async fn indexed_mode_absent_mismatch_and_missing_index() {
    let (server, t) = es(EsMode::Indexed, api_key()).await;
    let s = sentinel();
    Mock::given(method("GET"))
        .and(header("Authorization", "ApiKey aWQ6a2V5"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "_index": "crm-accounts", "_id": s.id.key(), "found": false
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert_eq!(t.lookup(&s.id).await.unwrap(), Lookup::Absent);
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(found(&s, "changed")))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert_eq!(present(t.lookup(&s.id).await), "changed");
    Mock::given(method("GET"))
        .respond_with(index_not_found())
        .up_to_n_times(1)
        .mount(&server)
        .await;
    match t.lookup(&s.id).await.unwrap_err() {
        ConnectorError::BadResponse {
            status: 404,
            detail,
        } => {
            assert!(
                detail.starts_with("index_not_found_exception: "),
                "{detail}"
            )
        }
        e => panic!("{e:?}"),
    }
    // A 404 that is neither a document answer nor an error (a proxy's page).
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404).set_body_string("<html>Not Found</html>"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert_eq!(t.lookup(&s.id).await.unwrap_err().kind(), "bad_response");
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"_id": "x"})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert_eq!(t.lookup(&s.id).await.unwrap_err().kind(), "bad_response");
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": {"type": "security_exception", "reason": "unable to authenticate"}, "status": 401
        })))
        .expect(1)
        .mount(&server)
        .await;
    assert!(matches!(
        t.lookup(&s.id).await,
        Err(ConnectorError::Auth(_))
    ));
}

#[tokio::test]
async fn indexed_mode_throttling_garbage_and_bearer_401() {
    let (server, t) = es(
        EsMode::Indexed,
        Auth::Bearer(Arc::new(FakeTokens::default())),
    )
    .await;
    let s = sentinel();
    Mock::given(method("GET"))
        .respond_with(throttled())
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let r = t.lookup(&s.id).await;
    assert!(
        matches!(r, Err(ConnectorError::Throttled { retry_after: Some(d) }) if d == Duration::from_secs(12)),
        "{r:?}"
    );
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"found\": tr"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert_eq!(t.lookup(&s.id).await.unwrap_err().kind(), "bad_response");
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401))
        .expect(2)
        .mount(&server)
        .await;
    assert!(matches!(
        t.lookup(&s.id).await,
        Err(ConnectorError::Auth(_))
    ));
}

#[tokio::test]
async fn searchable_mode_posts_a_term_query() {
    let (server, t) = es(EsMode::Searchable, basic()).await;
    let s = sentinel();
    Mock::given(method("POST"))
        .and(path("/crm-accounts/_search"))
        .and(NoQuery)
        .and(header("Content-Type", "application/json"))
        .and(header("Authorization", "Basic bGFnd2F0Y2g6czNjcmV0"))
        .and(body_json(json!({
            "query": {"term": {"sentinel_key": s.id.key()}},
            "size": 1
        })))
        .respond_with(hits(vec![]))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(t.lookup(&s.id).await.unwrap(), Lookup::Absent);
    Mock::given(method("POST"))
        .respond_with(hits(vec![
            json!({"sentinel_key": s.id.key(), "payload": s.payload}),
        ]))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert!(s.matches(&present(t.lookup(&s.id).await)));
    Mock::given(method("POST"))
        .respond_with(hits(vec![
            json!({"sentinel_key": s.id.key(), "payload": s.payload.to_uppercase()}),
        ]))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert!(!s.matches(&present(t.lookup(&s.id).await)));
}

#[tokio::test]
async fn searchable_mode_errors() {
    let (server, t) = es(EsMode::Searchable, basic()).await;
    let s = sentinel();
    Mock::given(method("POST"))
        .respond_with(hits(vec![
            json!({"sentinel_key": "someone-else", "payload": "x"}),
        ]))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert_eq!(t.lookup(&s.id).await.unwrap_err().kind(), "bad_response");
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"took": 1})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert_eq!(t.lookup(&s.id).await.unwrap_err().kind(), "bad_response");
    Mock::given(method("POST"))
        .respond_with(index_not_found())
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert_eq!(t.lookup(&s.id).await.unwrap_err().kind(), "bad_response");
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"hits\": {\"hits\": [tr"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert_eq!(t.lookup(&s.id).await.unwrap_err().kind(), "bad_response");
    Mock::given(method("POST"))
        .respond_with(throttled())
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert!(matches!(
        t.lookup(&s.id).await,
        Err(ConnectorError::Throttled { retry_after: Some(d) }) if d == Duration::from_secs(12)
    ));
}
