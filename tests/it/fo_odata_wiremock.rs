//! The F&O OData connector against a fake that follows the documented shapes (fact sheet §4.1).

use crate::common;

use common::fakes::{self, ExactQuery, answer_next, error_kind, sentinel, truncated_json};
use common::shapes::{fo_page, fo_row};
use lagwatch::connector::{ConnectorError, Lookup, Target};
use lagwatch::metrics::Metrics;
use lagwatch::sentinel::SentinelId;
use lagwatch::systems::fo_odata::{EntityMap, FoOdata};
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Fixture {
    server: MockServer,
    fo: FoOdata,
    metrics: Metrics,
}

async fn fixture(data_area_id: Option<&str>) -> Fixture {
    let server = MockServer::start().await;
    let metrics = Metrics::new();
    let http = fakes::http_system_with("fno", fakes::bearer(), &metrics);
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
        .respond_with(fo_page(vec![]))
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
        .respond_with(fo_page(vec![]))
        .expect(1)
        .mount(&f.server)
        .await;
    assert_eq!(f.fo.lookup(&id).await.unwrap(), Lookup::Absent);
}

// Present, changed content, throttling, a rejected token and a truncated body are in the
// shared contract (tests/it/conformance.rs); what follows is particular to F&O.

#[tokio::test]
async fn a_key_in_other_case_is_the_same_row() {
    let f = fixture(None).await;
    let s = sentinel();
    // F&O compares text case-insensitively: a key in other case is the same row.
    answer_next(
        &f.server,
        fo_page(vec![fo_row(
            &s.id.key().to_uppercase(),
            Some(&s.payload.to_uppercase()),
        )]),
    )
    .await;
    let p = fakes::present(f.fo.lookup(&s.id).await);
    assert!(!s.matches(&p), "{p}");
}

#[tokio::test]
async fn a_row_with_another_key_is_an_error_not_a_hit() {
    let f = fixture(None).await;
    let s = sentinel();
    answer_next(&f.server, fo_page(vec![fo_row("US-001", Some("Contoso"))])).await;
    assert_eq!(error_kind(f.fo.lookup(&s.id).await), "bad_response");
}

#[tokio::test]
async fn garbage_and_missing_entity_sets_are_errors_not_panics() {
    let f = fixture(None).await;
    answer_next(&f.server, truncated_json()).await;
    let err = f.fo.lookup(&sentinel().id).await.unwrap_err();
    assert!(
        matches!(err, ConnectorError::BadResponse { status: 200, .. }),
        "{err:?}"
    );
    answer_next(
        &f.server,
        ResponseTemplate::new(200).set_body_json(json!({"rows": []})),
    )
    .await;
    assert_eq!(
        error_kind(f.fo.lookup(&sentinel().id).await),
        "bad_response"
    );
    answer_next(
        &f.server,
        ResponseTemplate::new(404).set_body_json(json!({
            "error": {"code": "", "message": "No HTTP resource was found that matches the request URI."}
        })),
    )
    .await;
    match f.fo.lookup(&sentinel().id).await.unwrap_err() {
        ConnectorError::BadResponse {
            status: 404,
            detail,
        } => {
            let request = format!(
                "GET {}/data/CustomersV3: ",
                f.server.uri().trim_start_matches("http://")
            );
            assert!(
                detail.starts_with(&format!("{request}No HTTP resource")),
                "{detail}"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// A causal pair's two keys in one query: the keys `or`ed inside the company's filter, `$top`
/// two, and each answered by its own row (matched without regard to case, as F&O compares).
#[tokio::test]
async fn a_pair_is_read_in_one_query_within_the_company() {
    let f = fixture(Some("usmf")).await;
    let (parent, child) = (sentinel(), sentinel());
    Mock::given(method("GET"))
        .and(path("/data/CustomersV3"))
        .and(ExactQuery::of(&[
            ("cross-company", "true"),
            (
                "$filter",
                &format!(
                    "(CustomerAccount eq '{}' or CustomerAccount eq '{}') and dataAreaId eq 'usmf'",
                    parent.id.key(),
                    child.id.key()
                ),
            ),
            ("$select", "CustomerAccount,OrganizationName"),
            ("$top", "2"),
        ]))
        .respond_with(fo_page(vec![fo_row(
            &child.id.key().to_uppercase(),
            Some(&child.payload),
        )]))
        .expect(1)
        .mount(&f.server)
        .await;
    assert!(f.fo.reads_together());
    let found =
        f.fo.lookup_together(&[parent.id.clone(), child.id.clone()])
            .await
            .unwrap();
    assert_eq!(found, fakes::child_only(&child));
}
