//! Azure AI Search and Dataverse search connectors against fakes that follow the documented
//! shapes (fact sheet §6.1, §6.2).

use crate::common;

use common::fakes::{
    self, ExactQuery, answer_next, bearer, error_kind, present, sentinel, truncated_json,
};
use common::shapes::{
    search_doc, search_index_not_found, search_results, searchquery, searchquery_hit,
};
use lagwatch::auth::Auth;
use lagwatch::connector::{ConnectorError, Lookup, Target};
use lagwatch::sentinel::SentinelId;
use lagwatch::systems::azure_search::{AzureSearch, DEFAULT_API_VERSION, SearchIndex, SearchMode};
use lagwatch::systems::dataverse_search::{DataverseSearch, SearchTable};
use serde_json::{Value, json};
use wiremock::matchers::{any, body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn api_key() -> Auth {
    fakes::key_header("api-key", "query-key-1")
}

/// A rejected token is refreshed once: two requests, then an `Auth` error.
async fn assert_bearer_401_is_final_after_one_refresh(server: &MockServer, t: &dyn Target) {
    Mock::given(any())
        .respond_with(ResponseTemplate::new(401).insert_header("WWW-Authenticate", "Bearer"))
        .expect(2)
        .mount(server)
        .await;
    let r = t.lookup(&sentinel().id).await;
    assert!(matches!(r, Err(ConnectorError::Auth(_))), "{r:?}");
}

// Present, changed content, throttling, a rejected key and truncated bodies are in the shared
// contract (tests/it/conformance.rs); what follows is particular to each search API.

// ---------------------------------------------------------------- Azure AI Search

async fn azure(mode: SearchMode, auth: Auth) -> (MockServer, AzureSearch) {
    let server = MockServer::start().await;
    let target = AzureSearch::new(
        fakes::http_system("search", auth),
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
        .respond_with(ResponseTemplate::new(200).set_body_json(search_doc(s.id.key(), &s.payload)))
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
        .respond_with(search_index_not_found())
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
async fn azure_lookup_mode_wants_a_document_object_and_refreshes_a_rejected_token() {
    let (server, t) = azure(SearchMode::Lookup, bearer()).await;
    let s = sentinel();
    answer_next(
        &server,
        ResponseTemplate::new(200).set_body_json(json!([1, 2])),
    )
    .await;
    assert_eq!(error_kind(t.lookup(&s.id).await), "bad_response");
    assert_bearer_401_is_final_after_one_refresh(&server, &t).await;
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
        .respond_with(search_results(vec![]))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(t.lookup(&s.id).await.unwrap(), Lookup::Absent);
    answer_next(
        &server,
        search_results(vec![search_doc(s.id.key(), &s.payload)]),
    )
    .await;
    assert!(s.matches(&present(t.lookup(&s.id).await)));
}

/// A causal pair in `filter` mode: both keys in one search request (the filter `or`ed, `top`
/// two), each answered by its own document; `lookup` mode reads a key at a time.
#[tokio::test]
async fn azure_filter_mode_reads_a_pair_in_one_search() {
    let (server, t) = azure(SearchMode::Filter, bearer()).await;
    let (parent, child) = (sentinel(), sentinel());
    Mock::given(method("POST"))
        .and(path("/indexes/sentinels/docs/search"))
        .and(body_json(json!({
            "filter": format!(
                "sentinel_key eq '{}' or sentinel_key eq '{}'",
                parent.id.key(),
                child.id.key()
            ),
            "select": "sentinel_key,payload",
            "top": 2
        })))
        .respond_with(search_results(vec![search_doc(
            child.id.key(),
            &child.payload,
        )]))
        .expect(1)
        .mount(&server)
        .await;
    assert!(t.reads_together());
    let found = t
        .lookup_together(&[parent.id.clone(), child.id.clone()])
        .await
        .unwrap();
    assert_eq!(found, fakes::child_only(&child));
    let (_, by_key) = azure(SearchMode::Lookup, api_key()).await;
    assert!(!by_key.reads_together());
}

#[tokio::test]
async fn azure_filter_mode_errors() {
    let (server, t) = azure(SearchMode::Filter, bearer()).await;
    let s = sentinel();
    // Filter equality is exact: a document with another key is an error, never a hit.
    answer_next(&server, search_results(vec![search_doc("other-key", "x")])).await;
    assert_eq!(error_kind(t.lookup(&s.id).await), "bad_response");
    answer_next(&server, search_index_not_found()).await;
    assert_eq!(error_kind(t.lookup(&s.id).await), "bad_response");
    assert_bearer_401_is_final_after_one_refresh(&server, &t).await;
}

// ---------------------------------------------------------------- Dataverse search

async fn dataverse_search() -> (MockServer, DataverseSearch) {
    let server = MockServer::start().await;
    let target = DataverseSearch::new(
        fakes::http_system("crm-search", bearer()),
        SearchTable {
            base: format!("{}/api/data/v9.2", server.uri()),
            entity: "account".into(),
            key_column: "accountnumber".into(),
            payload_column: "description".into(),
        },
    );
    (server, target)
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
        .respond_with(searchquery(Value::Null, vec![]))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(t.lookup(&s.id).await.unwrap(), Lookup::Absent);
}

#[tokio::test]
async fn dataverse_search_finds_only_the_exact_key() {
    let (server, t) = dataverse_search().await;
    let s = sentinel();
    // Dataverse compares text ignoring case.
    answer_next(
        &server,
        searchquery(
            Value::Null,
            vec![searchquery_hit(&s.id.key().to_uppercase(), &s.payload)],
        ),
    )
    .await;
    assert!(s.matches(&present(t.lookup(&s.id).await)));
    // Relevance search ranked another record first: not our sentinel, so not there yet.
    let other = sentinel();
    answer_next(
        &server,
        searchquery(
            Value::Null,
            vec![searchquery_hit(other.id.key(), &other.payload)],
        ),
    )
    .await;
    assert_eq!(t.lookup(&s.id).await.unwrap(), Lookup::Absent);
}

#[tokio::test]
async fn dataverse_search_errors() {
    let (server, t) = dataverse_search().await;
    let s = sentinel();
    answer_next(
        &server,
        searchquery(
            json!({"code": "SearchIndexNotReady", "message": "The search index is being built."}),
            vec![],
        ),
    )
    .await;
    match t.lookup(&s.id).await.unwrap_err() {
        ConnectorError::BadResponse { detail, .. } => {
            assert!(detail.contains("being built"), "{detail}")
        }
        e => panic!("{e:?}"),
    }
    // The envelope itself cut off (the contract cuts off the JSON inside `response`).
    answer_next(&server, truncated_json()).await;
    assert_eq!(error_kind(t.lookup(&s.id).await), "bad_response");
    answer_next(
        &server,
        ResponseTemplate::new(400).set_body_json(json!({
            "error": {"code": "0x80048d0b", "message": "Dataverse search is not enabled."}
        })),
    )
    .await;
    match t.lookup(&s.id).await.unwrap_err() {
        ConnectorError::BadResponse {
            status: 400,
            detail,
        } => {
            let host = server.uri().replace("http://", "");
            assert!(
                detail.starts_with(&format!(
                    "POST {host}/api/data/v9.2/searchquery: 0x80048d0b: "
                )),
                "{detail}"
            )
        }
        e => panic!("{e:?}"),
    }
}
