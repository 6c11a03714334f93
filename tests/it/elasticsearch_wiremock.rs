//! The Elasticsearch/OpenSearch connector against a fake that follows the documented shapes
//! (fact sheet §6.3).

use crate::common;

use common::fakes::{self, answer_next, error_kind, present, sentinel};
use common::shapes::{es_document, es_hits, es_index_not_found, es_missing, es_source};
use lagwatch::auth::Auth;
use lagwatch::connector::{ConnectorError, Lookup, Target};
use lagwatch::systems::elasticsearch::{Elasticsearch, EsIndex, EsMode};
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

/// The request has no query string.
struct NoQuery;

impl Match for NoQuery {
    fn matches(&self, request: &Request) -> bool {
        request.url.query().is_none()
    }
}

fn basic() -> Auth {
    fakes::basic("lagwatch", "s3cret")
}

fn api_key() -> Auth {
    fakes::key_header("authorization", "ApiKey aWQ6a2V5")
}

async fn es(mode: EsMode, auth: Auth) -> (MockServer, Elasticsearch) {
    let server = MockServer::start().await;
    let target = Elasticsearch::new(
        fakes::http_system("es", auth),
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

// Present, changed content, throttling, rejected credentials and truncated bodies are in the
// shared contract (tests/it/conformance.rs); what follows is particular to Elasticsearch.

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
        .respond_with(es_document(s.id.key(), &s.payload))
        .expect(1)
        .mount(&server)
        .await;
    assert!(s.matches(&present(t.lookup(&s.id).await)));
}

#[tokio::test]
async fn indexed_mode_tells_a_missing_document_from_a_missing_index() {
    let (server, t) = es(EsMode::Indexed, api_key()).await;
    let s = sentinel();
    Mock::given(method("GET"))
        .and(header("Authorization", "ApiKey aWQ6a2V5"))
        .respond_with(es_missing(s.id.key()))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert_eq!(t.lookup(&s.id).await.unwrap(), Lookup::Absent);
    answer_next(&server, es_index_not_found()).await;
    match t.lookup(&s.id).await.unwrap_err() {
        ConnectorError::BadResponse {
            status: 404,
            detail,
        } => {
            let request = format!(
                "GET {}/crm-accounts/_doc/{}: ",
                server.uri().trim_start_matches("http://"),
                s.id.key()
            );
            assert!(
                detail.starts_with(&format!("{request}index_not_found_exception: ")),
                "{detail}"
            )
        }
        e => panic!("{e:?}"),
    }
    // A 404 that is neither a document answer nor an error (a proxy's page).
    answer_next(
        &server,
        ResponseTemplate::new(404).set_body_string("<html>Not Found</html>"),
    )
    .await;
    assert_eq!(error_kind(t.lookup(&s.id).await), "bad_response");
    answer_next(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({"_id": "x"})),
    )
    .await;
    assert_eq!(error_kind(t.lookup(&s.id).await), "bad_response");
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
        .respond_with(es_hits(vec![]))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(t.lookup(&s.id).await.unwrap(), Lookup::Absent);
    answer_next(&server, es_hits(vec![es_source(s.id.key(), &s.payload)])).await;
    assert!(s.matches(&present(t.lookup(&s.id).await)));
}

/// A causal pair in `searchable` mode: both keys in one `_search` (`bool` of `should` terms,
/// `size` two), each answered by its own hit; garbage is an error, not two absences.
#[tokio::test]
async fn searchable_mode_reads_a_pair_in_one_search() {
    let (server, t) = es(EsMode::Searchable, basic()).await;
    let (parent, child) = (sentinel(), sentinel());
    Mock::given(method("POST"))
        .and(path("/crm-accounts/_search"))
        .and(body_json(json!({
            "query": {"bool": {"should": [
                {"term": {"sentinel_key": parent.id.key()}},
                {"term": {"sentinel_key": child.id.key()}}
            ]}},
            "size": 2
        })))
        .respond_with(es_hits(vec![es_source(child.id.key(), &child.payload)]))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    assert!(t.reads_together());
    let ids = [parent.id.clone(), child.id.clone()];
    assert_eq!(
        t.lookup_together(&ids).await.unwrap(),
        fakes::child_only(&child)
    );
    answer_next(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({"took": 1})),
    )
    .await;
    assert!(matches!(
        t.lookup_together(&ids).await,
        Err(ConnectorError::BadResponse { .. })
    ));
    let (_, by_id) = es(EsMode::Indexed, basic()).await;
    assert!(!by_id.reads_together());
}

#[tokio::test]
async fn searchable_mode_errors() {
    let (server, t) = es(EsMode::Searchable, basic()).await;
    let s = sentinel();
    // A term query is exact: a hit with another key is an error, never a hit.
    answer_next(&server, es_hits(vec![es_source("someone-else", "x")])).await;
    assert_eq!(error_kind(t.lookup(&s.id).await), "bad_response");
    answer_next(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({"took": 1})),
    )
    .await;
    assert_eq!(error_kind(t.lookup(&s.id).await), "bad_response");
    answer_next(&server, es_index_not_found()).await;
    assert_eq!(error_kind(t.lookup(&s.id).await), "bad_response");
}
