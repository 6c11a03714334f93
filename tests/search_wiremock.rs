//! Azure AI Search and Dataverse search connectors against fakes that follow the documented
//! shapes (fact sheet §6.1, §6.2).

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
use lagwatch::sentinel::{Sentinel, SentinelId};
use lagwatch::systems::azure_search::{AzureSearch, DEFAULT_API_VERSION, SearchIndex, SearchMode};
use lagwatch::systems::dataverse_search::{DataverseSearch, SearchTable};
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

/// The query string is exactly these pairs, in this order (decoded).
struct ExactQuery(Vec<(String, String)>);

impl ExactQuery {
    fn of(pairs: &[(&str, &str)]) -> Self {
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

fn http(name: &str, auth: Auth) -> HttpSystem {
    HttpSystem::new(
        name,
        lagwatch::net::client().unwrap(),
        Arc::new(Gate::unlimited_for_tests()),
        Metrics::new(),
        auth,
    )
}

fn bearer() -> Auth {
    Auth::Bearer(Arc::new(FakeTokens::default()))
}

fn api_key() -> Auth {
    Auth::Header {
        name: HeaderName::from_static("api-key"),
        value: Secret::runtime("query-key-1", "test"),
    }
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

fn malformed() -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "application/json")
        .set_body_string("{\"value\": [ {\"truncated")
}

fn throttled() -> ResponseTemplate {
    ResponseTemplate::new(429)
        .insert_header("Retry-After", "12")
        .set_body_json(json!({"error": {"code": "", "message": "Too many requests"}}))
}

fn assert_throttled(result: Result<Lookup, ConnectorError>) {
    assert!(
        matches!(result, Err(ConnectorError::Throttled { retry_after: Some(d) }) if d == Duration::from_secs(12)),
        "{result:?}"
    );
}

// ---------------------------------------------------------------- Azure AI Search

async fn azure(mode: SearchMode, auth: Auth) -> (MockServer, AzureSearch) {
    let server = MockServer::start().await;
    let target = AzureSearch::new(
        http("search", auth),
        SearchIndex {
            endpoint: server.uri(),
            index: "sentinels".into(),
            api_version: DEFAULT_API_VERSION.into(),
            mode,
            key_field: "sentinel_key".into(),
            payload_field: "payload".into(),
        },
    );
    (server, target)
}

fn doc(key: &str, payload: &str) -> Value {
    json!({"sentinel_key": key, "payload": payload})
}

#[tokio::test]
async fn azure_lookup_mode_gets_the_document_by_key_with_the_api_key() {
    let (server, t) = azure(SearchMode::Lookup, api_key()).await;
    let s = sentinel();
    Mock::given(method("GET"))
        .and(path(format!("/indexes/sentinels/docs/{}", s.id.key())))
        .and(ExactQuery::of(&[
            ("api-version", "2025-09-01"),
            ("$select", "sentinel_key,payload"),
        ]))
        .and(header("api-key", "query-key-1"))
        .and(header("Accept", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(doc(s.id.key(), &s.payload)))
        .expect(1)
        .mount(&server)
        .await;
    let p = present(t.lookup(&s.id).await);
    assert!(s.matches(&p));
}

#[tokio::test]
async fn azure_lookup_mode_reads_a_404_as_absent_unless_the_index_is_missing() {
    let (server, t) = azure(SearchMode::Lookup, api_key()).await;
    let s = sentinel();
    Mock::given(method("GET"))
        .and(path(format!("/indexes/sentinels/docs/{}", s.id.key())))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    assert_eq!(t.lookup(&s.id).await.unwrap(), Lookup::Absent);

    let other = sentinel();
    Mock::given(method("GET"))
        .and(path(format!("/indexes/sentinels/docs/{}", other.id.key())))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "error": {"code": "", "message": "The index 'sentinels' for service 'contoso' was not found."}
        })))
        .mount(&server)
        .await;
    match t.lookup(&other.id).await.unwrap_err() {
        ConnectorError::BadResponse {
            status: 404,
            detail,
        } => {
            assert!(detail.contains("was not found"), "{detail}")
        }
        e => panic!("{e:?}"),
    }
}

#[tokio::test]
async fn azure_lookup_mode_percent_encodes_the_key() {
    let (server, t) = azure(SearchMode::Lookup, api_key()).await;
    let id = SentinelId::from_parts("a b/c", sentinel().id.uuid());
    let encoded = id.key().replace(' ', "%20").replace('/', "%2F");
    Mock::given(method("GET"))
        .and(path(format!("/indexes/sentinels/docs/{encoded}")))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(t.lookup(&id).await.unwrap(), Lookup::Absent);
}

#[tokio::test]
async fn azure_lookup_mode_conformance() {
    let (server, t) = azure(SearchMode::Lookup, bearer()).await;
    let s = sentinel();
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(doc(s.id.key(), &s.payload.to_uppercase())),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert!(!s.matches(&present(t.lookup(&s.id).await)));
    Mock::given(method("GET"))
        .respond_with(malformed())
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert_eq!(t.lookup(&s.id).await.unwrap_err().kind(), "bad_response");
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([1, 2])))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert_eq!(t.lookup(&s.id).await.unwrap_err().kind(), "bad_response");
    Mock::given(method("GET"))
        .respond_with(throttled())
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert_throttled(t.lookup(&s.id).await);
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
async fn azure_filter_mode_posts_the_documented_search() {
    let (server, t) = azure(SearchMode::Filter, bearer()).await;
    let s = sentinel();
    Mock::given(method("POST"))
        .and(path("/indexes/sentinels/docs/search"))
        .and(ExactQuery::of(&[("api-version", "2025-09-01")]))
        .and(header("Authorization", "Bearer t1"))
        .and(header("Content-Type", "application/json"))
        .and(body_json(json!({
            "filter": format!("sentinel_key eq '{}'", s.id.key()),
            "select": "sentinel_key,payload",
            "top": 1
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "@odata.context": "https://contoso.search.windows.net/indexes('sentinels')/$metadata#docs(*)",
            "value": []
        })))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(t.lookup(&s.id).await.unwrap(), Lookup::Absent);
    let mut hit = doc(s.id.key(), &s.payload);
    hit["@search.score"] = json!(1.0);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [hit]})))
        .mount(&server)
        .await;
    assert!(s.matches(&present(t.lookup(&s.id).await)));
}

#[tokio::test]
async fn azure_filter_mode_conformance() {
    let (server, t) = azure(SearchMode::Filter, bearer()).await;
    let s = sentinel();
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"value": [doc(s.id.key(), "changed")]})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert_eq!(present(t.lookup(&s.id).await), "changed");
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"value": [doc("other-key", "x")]})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert_eq!(t.lookup(&s.id).await.unwrap_err().kind(), "bad_response");
    Mock::given(method("POST"))
        .respond_with(malformed())
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert_eq!(t.lookup(&s.id).await.unwrap_err().kind(), "bad_response");
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "error": {"code": "", "message": "The index 'sentinels' for service 'contoso' was not found."}
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert_eq!(t.lookup(&s.id).await.unwrap_err().kind(), "bad_response");
    Mock::given(method("POST"))
        .respond_with(throttled())
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert_throttled(t.lookup(&s.id).await);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401))
        .expect(2)
        .mount(&server)
        .await;
    assert!(matches!(
        t.lookup(&s.id).await,
        Err(ConnectorError::Auth(_))
    ));
}

// ---------------------------------------------------------------- Dataverse search

async fn dataverse_search() -> (MockServer, DataverseSearch) {
    let server = MockServer::start().await;
    let target = DataverseSearch::new(
        http("crm-search", bearer()),
        SearchTable {
            base: format!("{}/api/data/v9.2", server.uri()),
            entity: "account".into(),
            key_column: "accountnumber".into(),
            payload_column: "description".into(),
        },
    );
    (server, target)
}

/// A `searchquery` answer: the results are escaped JSON inside the `response` string (§6.2).
fn search_response(error: Value, hits: Vec<Value>) -> ResponseTemplate {
    let count = hits.len();
    let inner = json!({
        "Error": error,
        "Value": hits,
        "Facets": {},
        "QueryContext": null,
        "Count": count
    });
    ResponseTemplate::new(200).set_body_json(json!({
        "@odata.context": "https://org.crm.dynamics.com/api/data/v9.2/$metadata#Microsoft.Dynamics.CRM.searchqueryResponse",
        "response": inner.to_string()
    }))
}

fn hit(key: &str, payload: &str) -> Value {
    json!({
        "Id": "8b35eda1-ef69-ee11-9ae7-000d3a88a4a2",
        "EntityName": "account",
        "ObjectTypeCode": 0,
        "Attributes": {
            "@search.objecttypecode": 1,
            "accountnumber": key,
            "description": payload
        },
        "Highlights": {"accountnumber": [format!("{{crmhit}}{key}{{/crmhit}}")]},
        "Score": 4.95
    })
}

#[tokio::test]
async fn dataverse_search_posts_the_documented_searchquery() {
    let (server, t) = dataverse_search().await;
    let s = sentinel();
    Mock::given(method("POST"))
        .and(path("/api/data/v9.2/searchquery"))
        .and(ExactQuery::of(&[]))
        .and(header("Accept", "application/json"))
        .and(header("OData-MaxVersion", "4.0"))
        .and(header("OData-Version", "4.0"))
        .and(header("If-None-Match", "null"))
        .and(header("Content-Type", "application/json"))
        .and(header("Authorization", "Bearer t1"))
        .and(body_json(json!({
            "search": format!("\"{}\"", s.id.key()),
            "entities": "[{\"Name\":\"account\",\"SelectColumns\":[\"accountnumber\",\"description\"],\"SearchColumns\":[\"accountnumber\"]}]",
            "top": 1,
            "count": true
        })))
        .respond_with(search_response(Value::Null, vec![]))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(t.lookup(&s.id).await.unwrap(), Lookup::Absent);
}

#[tokio::test]
async fn dataverse_search_finds_only_the_exact_key() {
    let (server, t) = dataverse_search().await;
    let s = sentinel();
    Mock::given(method("POST"))
        .respond_with(search_response(
            Value::Null,
            vec![hit(&s.id.key().to_uppercase(), &s.payload)],
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert!(s.matches(&present(t.lookup(&s.id).await)));
    Mock::given(method("POST"))
        .respond_with(search_response(
            Value::Null,
            vec![hit(s.id.key(), &s.payload.replace("test", "TEST"))],
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert!(!s.matches(&present(t.lookup(&s.id).await)));
    // Relevance search ranked another record first: not our sentinel, so not there yet.
    let other = sentinel();
    Mock::given(method("POST"))
        .respond_with(search_response(
            Value::Null,
            vec![hit(other.id.key(), &other.payload)],
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert_eq!(t.lookup(&s.id).await.unwrap(), Lookup::Absent);
}

#[tokio::test]
async fn dataverse_search_errors() {
    let (server, t) = dataverse_search().await;
    let s = sentinel();
    Mock::given(method("POST"))
        .respond_with(search_response(
            json!({"code": "SearchIndexNotReady", "message": "The search index is being built."}),
            vec![],
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    match t.lookup(&s.id).await.unwrap_err() {
        ConnectorError::BadResponse { detail, .. } => {
            assert!(detail.contains("being built"), "{detail}")
        }
        e => panic!("{e:?}"),
    }
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"response": "{\"Value\": [tru"})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert_eq!(t.lookup(&s.id).await.unwrap_err().kind(), "bad_response");
    Mock::given(method("POST"))
        .respond_with(malformed())
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert_eq!(t.lookup(&s.id).await.unwrap_err().kind(), "bad_response");
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": {"code": "0x80048d0b", "message": "Dataverse search is not enabled."}
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    match t.lookup(&s.id).await.unwrap_err() {
        ConnectorError::BadResponse {
            status: 400,
            detail,
        } => {
            assert!(detail.starts_with("0x80048d0b: "), "{detail}")
        }
        e => panic!("{e:?}"),
    }
    Mock::given(method("POST"))
        .respond_with(throttled())
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert_throttled(t.lookup(&s.id).await);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401))
        .expect(2)
        .mount(&server)
        .await;
    assert!(matches!(
        t.lookup(&s.id).await,
        Err(ConnectorError::Auth(_))
    ));
}
