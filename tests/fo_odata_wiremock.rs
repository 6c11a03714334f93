//! The F&O OData connector against a fake that follows the documented shapes (fact sheet §4.1).

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
use lagwatch::systems::fo_odata::{
    DEFAULT_SYNC_GRACE, DualWriteSignal, EntityMap, FoOdata, dual_write_signal,
};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

/// Hands out `t1`, `t2`, … (a new one after each rejection).
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

struct Fixture {
    server: MockServer,
    fo: FoOdata,
    metrics: Metrics,
}

async fn fixture(data_area_id: Option<&str>) -> Fixture {
    let server = MockServer::start().await;
    let metrics = Metrics::new();
    let http = HttpSystem::new(
        "fno",
        lagwatch::net::client().unwrap(),
        Arc::new(Gate::unlimited_for_tests()),
        metrics.clone(),
        Auth::Bearer(Arc::new(FakeTokens::default())),
    );
    let fo = FoOdata::new(
        http,
        EntityMap {
            base: server.uri(),
            entity_set: "CustomersV3".into(),
            key_field: "CustomerAccount".into(),
            payload_field: Some("OrganizationName".into()),
            data_area_id: data_area_id.map(str::to_string),
        },
    );
    Fixture {
        server,
        fo,
        metrics,
    }
}

fn sentinel() -> Sentinel {
    Sentinel::new("test", 7, Utc::now())
}

fn page(rows: Vec<Value>) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("OData-Version", "4.0")
        .set_body_json(json!({
            "@odata.context": "https://env.operations.dynamics.com/data/$metadata#CustomersV3(CustomerAccount,OrganizationName)",
            "value": rows
        }))
}

fn row(key: &str, payload: &str) -> Value {
    json!({
        "@odata.etag": "W/\"JzEsNTYzNzE0NDU3Nic=\"",
        "CustomerAccount": key,
        "OrganizationName": payload
    })
}

#[tokio::test]
async fn the_lookup_is_the_documented_cross_company_filtered_query() {
    let f = fixture(None).await;
    let s = sentinel();
    Mock::given(method("GET"))
        .and(path("/data/CustomersV3"))
        .and(ExactQuery::of(&[
            ("cross-company", "true"),
            ("$filter", &format!("CustomerAccount eq '{}'", s.id.key())),
            ("$select", "CustomerAccount,OrganizationName"),
            ("$top", "1"),
        ]))
        .and(header("Accept", "application/json"))
        .and(header("OData-MaxVersion", "4.0"))
        .and(header("OData-Version", "4.0"))
        .and(header("Authorization", "Bearer t1"))
        .respond_with(page(vec![]))
        .expect(1)
        .mount(&f.server)
        .await;
    assert_eq!(f.fo.lookup(&s.id).await.unwrap(), Lookup::Absent);
    assert!(
        f.metrics.render().contains(
            "lagwatch_requests_total{operation=\"lookup\",status=\"2xx\",system=\"fno\"} 1"
        )
    );
}

#[tokio::test]
async fn a_company_narrows_the_filter_and_quotes_are_doubled() {
    let f = fixture(Some("usmf")).await;
    let id = SentinelId::from_parts("o'b", sentinel().id.uuid());
    Mock::given(method("GET"))
        .and(path("/data/CustomersV3"))
        .and(ExactQuery::of(&[
            ("cross-company", "true"),
            (
                "$filter",
                &format!(
                    "CustomerAccount eq '{}' and dataAreaId eq 'usmf'",
                    id.key().replace('\'', "''")
                ),
            ),
            ("$select", "CustomerAccount,OrganizationName"),
            ("$top", "1"),
        ]))
        .respond_with(page(vec![]))
        .expect(1)
        .mount(&f.server)
        .await;
    assert_eq!(f.fo.lookup(&id).await.unwrap(), Lookup::Absent);
}

#[tokio::test]
async fn present_rows_carry_the_mapped_payload() {
    let f = fixture(None).await;
    let s = sentinel();
    Mock::given(method("GET"))
        .and(path("/data/CustomersV3"))
        .respond_with(page(vec![row(s.id.key(), &s.payload)]))
        .mount(&f.server)
        .await;
    match f.fo.lookup(&s.id).await.unwrap() {
        Lookup::Present { payload: Some(p) } => assert!(s.matches(&p), "{p}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn changed_content_is_present_with_the_other_payload() {
    let f = fixture(None).await;
    let s = sentinel();
    // F&O compares text case-insensitively: a key in other case is the same row.
    Mock::given(method("GET"))
        .and(path("/data/CustomersV3"))
        .respond_with(page(vec![row(
            &s.id.key().to_uppercase(),
            &s.payload.to_uppercase(),
        )]))
        .mount(&f.server)
        .await;
    match f.fo.lookup(&s.id).await.unwrap() {
        Lookup::Present { payload: Some(p) } => assert!(!s.matches(&p), "{p}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_row_with_another_key_is_an_error_not_a_hit() {
    let f = fixture(None).await;
    let s = sentinel();
    Mock::given(method("GET"))
        .respond_with(page(vec![row("US-001", "Contoso")]))
        .mount(&f.server)
        .await;
    let err = f.fo.lookup(&s.id).await.unwrap_err();
    assert_eq!(err.kind(), "bad_response", "{err}");
}

#[tokio::test]
async fn throttling_carries_retry_after() {
    let f = fixture(None).await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "17")
                .set_body_string("Too many requests"),
        )
        .expect(1)
        .mount(&f.server)
        .await;
    let err = f.fo.lookup(&sentinel().id).await.unwrap_err();
    assert!(
        matches!(err, ConnectorError::Throttled { retry_after: Some(d) } if d == Duration::from_secs(17)),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_second_401_is_an_auth_error() {
    let f = fixture(None).await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).insert_header("WWW-Authenticate", "Bearer"))
        .expect(2)
        .mount(&f.server)
        .await;
    let err = f.fo.lookup(&sentinel().id).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Auth(_)), "{err:?}");
}

#[tokio::test]
async fn garbage_and_missing_entity_sets_are_errors_not_panics() {
    let f = fixture(None).await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/json")
                .set_body_string("{\"value\": [ {\"truncated"),
        )
        .up_to_n_times(1)
        .mount(&f.server)
        .await;
    let err = f.fo.lookup(&sentinel().id).await.unwrap_err();
    assert!(
        matches!(err, ConnectorError::BadResponse { status: 200, .. }),
        "{err:?}"
    );
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"rows": []})))
        .up_to_n_times(1)
        .mount(&f.server)
        .await;
    let err = f.fo.lookup(&sentinel().id).await.unwrap_err();
    assert_eq!(err.kind(), "bad_response", "{err}");
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "error": {"code": "", "message": "No HTTP resource was found that matches the request URI."}
        })))
        .mount(&f.server)
        .await;
    match f.fo.lookup(&sentinel().id).await.unwrap_err() {
        ConnectorError::BadResponse {
            status: 404,
            detail,
        } => {
            assert!(detail.starts_with("No HTTP resource"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_row_still_missing_after_the_grace_means_the_map_is_not_running() {
    let absent = Lookup::Absent;
    assert_eq!(
        dual_write_signal(&absent, Duration::from_secs(2), DEFAULT_SYNC_GRACE),
        DualWriteSignal::Pending
    );
    assert_eq!(
        dual_write_signal(&absent, Duration::from_secs(600), DEFAULT_SYNC_GRACE),
        DualWriteSignal::MapNotRunning
    );
    assert_eq!(
        dual_write_signal(
            &Lookup::Present { payload: None },
            Duration::from_secs(600),
            DEFAULT_SYNC_GRACE
        ),
        DualWriteSignal::Synced
    );
}
