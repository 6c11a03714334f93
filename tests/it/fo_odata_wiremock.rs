//! The F&O OData connector against a fake that follows the documented shapes (fact sheet §4.1).

use crate::common;

use common::fakes::{self, ExactQuery, answer_next, error_kind, sentinel, truncated_json};
use common::shapes::{fo_page, fo_row};
use lagwatch::connector::{ConnectorError, Lookup, Source, Target};
use lagwatch::metrics::Metrics;
use lagwatch::sentinel::SentinelId;
use lagwatch::systems::fo_odata::{EntityMap, FoOdata, Writes};
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Fixture {
    server: MockServer,
    fo: FoOdata,
    metrics: Metrics,
}

async fn fixture(data_area_id: Option<&str>) -> Fixture {
    fixture_of(|base| EntityMap {
        base,
        entity_set: "CustomersV3".into(),
        key_field: "CustomerAccount".into(),
        payload_field: Some("OrganizationName".into()),
        data_area_id: data_area_id.map(str::to_string),
        writes: None,
    })
    .await
}

/// A fake F&O and the connector to it, with the entity map `map` makes of its URL.
async fn fixture_of(map: impl FnOnce(String) -> EntityMap) -> Fixture {
    let server = MockServer::start().await;
    let metrics = Metrics::new();
    let http = fakes::http_system_with("fno", fakes::bearer(), &metrics);
    let fo = FoOdata::new(http, map(server.uri()));
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

// ---------------------------------------------------------------- F&O as a source

/// F&O as a source: sentinels created in `usmf` with their key in `OrganizationName`, the
/// payload in `AddressDescription` and the customer group `CustomersV3` needs.
async fn source_fixture() -> Fixture {
    fixture_of(|base| EntityMap {
        base,
        entity_set: "CustomersV3".into(),
        key_field: "OrganizationName".into(),
        payload_field: Some("AddressDescription".into()),
        data_area_id: Some("usmf".into()),
        writes: Some(Writes {
            fields: serde_json::Map::from_iter([("CustomerGroupId".to_string(), json!("30"))]),
            entity_key: vec!["CustomerAccount".into()],
        }),
    })
    .await
}

/// A row of the source entity: its entity key, the sentinel's key and payload.
fn source_row(account: &str, key: &str, payload: Option<&str>) -> serde_json::Value {
    let mut row = json!({
        "@odata.etag": "W/\"JzEsNTYzNzE0NDU3Nic=\"",
        "dataAreaId": "usmf",
        "CustomerAccount": account,
        "OrganizationName": key,
    });
    if let Some(p) = payload {
        row["AddressDescription"] = json!(p);
    }
    row
}

/// The source's query for the row of `id` in `usmf`, asking for `select`, answered once with
/// `row`.
async fn expect_row_query(
    server: &MockServer,
    id: &SentinelId,
    select: &str,
    row: serde_json::Value,
) {
    let filter = format!(
        "OrganizationName eq '{}' and dataAreaId eq 'usmf'",
        id.key()
    );
    Mock::given(method("GET"))
        .and(path("/data/CustomersV3"))
        .and(ExactQuery::of(&[
            ("cross-company", "true"),
            ("$filter", &filter),
            ("$select", select),
            ("$top", "1"),
        ]))
        .respond_with(fo_page(vec![row]))
        .up_to_n_times(1)
        .expect(1)
        .mount(server)
        .await;
}

#[tokio::test]
async fn a_sentinel_is_created_with_its_key_payload_company_and_mandatory_fields() {
    let f = source_fixture().await;
    let s = sentinel();
    Mock::given(method("POST"))
        .and(path("/data/CustomersV3"))
        .and(header("OData-Version", "4.0"))
        .and(header("Authorization", "Bearer t1"))
        .and(wiremock::matchers::body_json(json!({
            "CustomerGroupId": "30",
            "OrganizationName": s.id.key(),
            "AddressDescription": s.payload,
            "dataAreaId": "usmf",
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(source_row(
            "DW-000001",
            s.id.key(),
            None,
        )))
        .expect(1)
        .mount(&f.server)
        .await;
    f.fo.write(&s).await.unwrap();
    assert!(
        f.metrics.render().contains(
            "lagwatch_requests_total{operation=\"write\",status=\"2xx\",system=\"fno\"} 1"
        )
    );
}

#[tokio::test]
async fn a_refused_or_garbled_create_is_an_error_that_says_why() {
    let f = source_fixture().await;
    // F&O's answer to a create that misses a mandatory field.
    answer_next(
        &f.server,
        ResponseTemplate::new(400).set_body_json(json!({"error": {"code": "", "message":
            "Write failed for table row of type 'CustomersV3'. Infolog: Error: Field 'CustomerGroupId' must be filled in."}})),
    )
    .await;
    let err = f.fo.write(&sentinel()).await.unwrap_err();
    assert_eq!(err.kind(), "bad_response");
    assert!(err.to_string().contains("CustomerGroupId"), "{err}");
    // A 200 with a proxy's page is not a created row.
    answer_next(
        &f.server,
        ResponseTemplate::new(200).set_body_string("<html>login</html>"),
    )
    .await;
    assert_eq!(error_kind(f.fo.write(&sentinel()).await), "bad_response");
}

#[tokio::test]
async fn the_source_reads_its_own_write_back_by_key_in_its_company() {
    let f = source_fixture().await;
    let s = sentinel();
    expect_row_query(
        &f.server,
        &s.id,
        "OrganizationName,AddressDescription",
        source_row("DW-000001", s.id.key(), Some(&s.payload)),
    )
    .await;
    assert_eq!(
        f.fo.read(&s.id).await.unwrap(),
        Lookup::Present {
            payload: Some(s.payload.clone())
        }
    );
    assert!(
        f.metrics.render().contains(
            "lagwatch_requests_total{operation=\"read\",status=\"2xx\",system=\"fno\"} 1"
        )
    );
    answer_next(&f.server, truncated_json()).await;
    assert_eq!(error_kind(f.fo.read(&s.id).await), "bad_response");
}

#[tokio::test]
async fn a_delete_finds_the_entity_key_then_deletes_by_it_and_a_missing_row_is_done() {
    let f = source_fixture().await;
    let s = sentinel();
    expect_row_query(
        &f.server,
        &s.id,
        "dataAreaId,OrganizationName,CustomerAccount",
        source_row("DW-0'01", s.id.key(), None),
    )
    .await;
    Mock::given(method("DELETE"))
        .and(path(
            "/data/CustomersV3(dataAreaId='usmf',CustomerAccount='DW-0''01')",
        ))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&f.server)
        .await;
    f.fo.delete(&s.id).await.unwrap();
    // Gone already: one read, no delete.
    answer_next(&f.server, fo_page(vec![])).await;
    f.fo.delete(&s.id).await.unwrap();
    // A row without its entity key cannot be deleted: an error, not a forgotten sentinel.
    answer_next(
        &f.server,
        fo_page(vec![
            json!({"dataAreaId": "usmf", "OrganizationName": s.id.key()}),
        ]),
    )
    .await;
    assert_eq!(error_kind(f.fo.delete(&s.id).await), "bad_response");
}

#[tokio::test]
async fn an_update_patches_the_payload_by_the_entity_key_and_creates_a_missing_row() {
    let f = source_fixture().await;
    let s = sentinel();
    expect_row_query(
        &f.server,
        &s.id,
        "dataAreaId,OrganizationName,CustomerAccount",
        source_row("DW-000007", s.id.key(), None),
    )
    .await;
    Mock::given(method("PATCH"))
        .and(path(
            "/data/CustomersV3(dataAreaId='usmf',CustomerAccount='DW-000007')",
        ))
        .and(header("OData-Version", "4.0"))
        .and(wiremock::matchers::body_json(
            json!({"AddressDescription": s.payload}),
        ))
        .respond_with(
            ResponseTemplate::new(204).insert_header("Date", "Sun, 06 Dec 2026 09:30:05 GMT"),
        )
        .expect(1)
        .mount(&f.server)
        .await;
    let updated = f.fo.update(&s).await.unwrap();
    // The system's own clock at the acknowledgement, which last-writer-wins would stamp.
    assert_eq!(
        updated.server_time.map(|t| t.to_rfc3339()),
        Some("2026-12-06T09:30:05+00:00".to_string())
    );
    assert!(
        f.metrics.render().contains(
            "lagwatch_requests_total{operation=\"update\",status=\"2xx\",system=\"fno\"} 2"
        )
    );
    // No row yet: the update creates it, as the first write of a canary must.
    f.server.reset().await;
    answer_next(&f.server, fo_page(vec![])).await;
    Mock::given(method("POST"))
        .and(path("/data/CustomersV3"))
        .and(wiremock::matchers::body_json(json!({
            "CustomerGroupId": "30",
            "OrganizationName": s.id.key(),
            "AddressDescription": s.payload,
            "dataAreaId": "usmf",
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(source_row(
            "DW-000008",
            s.id.key(),
            Some(&s.payload),
        )))
        .expect(1)
        .mount(&f.server)
        .await;
    f.fo.update(&s).await.unwrap();
    // A refused PATCH (dual-write rolled it back) is an error carrying F&O's message.
    f.server.reset().await;
    expect_row_query(
        &f.server,
        &s.id,
        "dataAreaId,OrganizationName,CustomerAccount",
        source_row("DW-000007", s.id.key(), None),
    )
    .await;
    answer_next(
        &f.server,
        ResponseTemplate::new(400).set_body_json(json!({"error": {"code": "", "message":
            "Write failed for table row of type 'CustomersV3'. Infolog: Error: the record was changed concurrently."}})),
    )
    .await;
    let err = f.fo.update(&s).await.unwrap_err();
    assert_eq!(err.kind(), "bad_response");
    assert!(err.to_string().contains("changed concurrently"), "{err}");
}

#[tokio::test]
async fn the_sweep_lists_own_sentinels_by_wildcard_and_keeps_those_written_before() {
    let f = source_fixture().await;
    let old = SentinelId::new("test");
    let canary = SentinelId::canary("test", "fno@30000ms");
    Mock::given(method("GET"))
        .and(path("/data/CustomersV3"))
        .and(ExactQuery::of(&[
            ("cross-company", "true"),
            (
                "$filter",
                "OrganizationName eq 'lagwatch-test-*' and dataAreaId eq 'usmf'",
            ),
            ("$select", "OrganizationName"),
        ]))
        .respond_with(fo_page(vec![
            source_row("DW-1", old.key(), None),
            source_row("DW-2", canary.key(), None),
            // F&O's wildcard is case-insensitive: another instance's row may come back.
            source_row("DW-3", SentinelId::new("TEST-2").key(), None),
        ]))
        .expect(1)
        .mount(&f.server)
        .await;
    let before = chrono::Utc::now() + chrono::Duration::seconds(1);
    let own = f.fo.list_own("lagwatch-test-", before).await.unwrap();
    assert_eq!(
        own,
        vec![old],
        "the canary stays, another instance's row is not ours"
    );
}
