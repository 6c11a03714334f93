//! The Dataverse connector against a fake that follows the documented Web API shapes.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::fakes::{self, FakeTokens, sentinel};
use lagwatch::auth::Auth;
use lagwatch::connector::{ConnectorError, Lookup, Source, Target};
use lagwatch::metrics::Metrics;
use lagwatch::sentinel::SentinelId;
use lagwatch::systems::dataverse::{CreateMode, Dataverse, TableMap};
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Fixture {
    server: MockServer,
    dv: Dataverse,
    tokens: Arc<FakeTokens>,
    metrics: Metrics,
}

async fn fixture(create: CreateMode) -> Fixture {
    let server = MockServer::start().await;
    let tokens = Arc::new(FakeTokens::default());
    let metrics = Metrics::new();
    let http = fakes::http_system_with("crm", Auth::Bearer(tokens.clone()), &metrics);
    let mut fields = serde_json::Map::new();
    fields.insert("customertypecode".into(), json!(3));
    let dv = Dataverse::new(
        http,
        TableMap {
            base: format!("{}/api/data/v9.2", server.uri()),
            table: "accounts".into(),
            id_column: "accountid".into(),
            key_column: "accountnumber".into(),
            payload_column: "description".into(),
            fields,
            create,
            parent_column: Some("parentaccountid".into()),
        },
    );
    Fixture {
        server,
        dv,
        tokens,
        metrics,
    }
}

fn record_path(s: &SentinelId) -> String {
    format!("/api/data/v9.2/accounts({})", s.uuid())
}

#[tokio::test]
async fn write_is_an_upsert_create_only_with_odata_headers() {
    let f = fixture(CreateMode::Upsert).await;
    let s = sentinel();
    Mock::given(method("PATCH"))
        .and(path(record_path(&s.id)))
        .and(header("If-None-Match", "*"))
        .and(header("OData-Version", "4.0"))
        .and(header("OData-MaxVersion", "4.0"))
        .and(header("Accept", "application/json"))
        .and(header("Authorization", "Bearer t1"))
        .and(body_json(json!({
            "accountnumber": s.id.key(),
            "description": s.payload,
            "customertypecode": 3
        })))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&f.server)
        .await;
    f.dv.write(&s).await.unwrap();
    let text = f.metrics.render();
    assert!(
        text.contains(
            "lagwatch_requests_total{operation=\"write\",status=\"2xx\",system=\"crm\"} 1"
        )
    );
}

#[tokio::test]
async fn a_retried_write_that_already_landed_is_not_an_error() {
    let f = fixture(CreateMode::Upsert).await;
    let s = sentinel();
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(412).set_body_json(json!({
            "error": {"code": "0x80040237", "message": "A record with matching key values already exists."}
        })))
        .mount(&f.server)
        .await;
    f.dv.write(&s).await.unwrap();
}

#[tokio::test]
async fn post_mode_asks_for_the_representation() {
    let f = fixture(CreateMode::Post).await;
    let s = sentinel();
    Mock::given(method("POST"))
        .and(path("/api/data/v9.2/accounts"))
        .and(header("Prefer", "return=representation"))
        .and(query_param("$select", "accountid"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "@odata.etag": "W/\"9123456\"", "accountid": s.id.uuid().to_string()
        })))
        .expect(1)
        .mount(&f.server)
        .await;
    f.dv.write(&s).await.unwrap();
}

#[tokio::test]
async fn error_bodies_become_typed_errors() {
    let f = fixture(CreateMode::Upsert).await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": {"code": "0x80048d19", "message": "Error identified in Payload provided by the user for Entity :'accounts'"}
        })))
        .mount(&f.server)
        .await;
    let s = sentinel();
    let err = f.dv.write(&s).await.unwrap_err();
    match &err {
        ConnectorError::BadResponse { status, detail } => {
            assert_eq!(*status, 400);
            // The request first (method, host, path), then the error Dataverse gave.
            let request = format!(
                "PATCH {}/api/data/v9.2/accounts({}): ",
                f.server.uri().trim_start_matches("http://"),
                s.id.uuid()
            );
            assert!(
                detail.starts_with(&format!("{request}0x80048d19: Error identified")),
                "{detail}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.kind(), "bad_response");
}

#[tokio::test]
async fn read_back_selects_only_the_needed_columns() {
    let f = fixture(CreateMode::Upsert).await;
    let s = sentinel();
    Mock::given(method("GET"))
        .and(path(record_path(&s.id)))
        .and(query_param("$select", "accountnumber,description"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "@odata.etag": "W/\"1\"", "accountnumber": s.id.key(), "description": s.payload
        })))
        .mount(&f.server)
        .await;
    let got = f.dv.read(&s.id).await.unwrap();
    assert_eq!(
        got,
        Lookup::Present {
            payload: Some(s.payload.clone())
        }
    );
    let other = sentinel();
    Mock::given(method("GET"))
        .and(path(record_path(&other.id)))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "error": {"code": "0x80040217", "message": "account With Id = … Does Not Exist"}
        })))
        .mount(&f.server)
        .await;
    assert_eq!(f.dv.read(&other.id).await.unwrap(), Lookup::Absent);
}

#[tokio::test]
async fn lookup_in_another_environment_filters_on_the_key_column() {
    let f = fixture(CreateMode::Upsert).await;
    let s = sentinel();
    Mock::given(method("GET"))
        .and(path("/api/data/v9.2/accounts"))
        .and(query_param("$select", "accountnumber,description"))
        .and(query_param(
            "$filter",
            format!("accountnumber eq '{}'", s.id.key()).as_str(),
        ))
        .and(query_param("$top", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "@odata.context": "…", "value": []
        })))
        .up_to_n_times(1)
        .mount(&f.server)
        .await;
    assert_eq!(f.dv.lookup(&s.id).await.unwrap(), Lookup::Absent);
    Mock::given(method("GET"))
        .and(path("/api/data/v9.2/accounts"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "value": [{"accountnumber": s.id.key(), "description": "changed"}]
        })))
        .mount(&f.server)
        .await;
    assert_eq!(
        f.dv.lookup(&s.id).await.unwrap(),
        Lookup::Present {
            payload: Some("changed".into())
        }
    );
}

#[tokio::test]
async fn throttling_carries_retry_after() {
    let f = fixture(CreateMode::Upsert).await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "37")
                .set_body_json(json!({"error": {"code": "0x80072322", "message": "Number of requests exceeded the limit of 6000 over time window of 300 seconds."}})),
        )
        .mount(&f.server)
        .await;
    let err = f.dv.lookup(&sentinel().id).await.unwrap_err();
    assert!(
        matches!(err, ConnectorError::Throttled { retry_after: Some(d) } if d == Duration::from_secs(37)),
        "{err:?}"
    );
    assert!(
        f.metrics.render().contains(
            "lagwatch_requests_total{operation=\"lookup\",status=\"4xx\",system=\"crm\"} 1"
        )
    );
}

#[tokio::test]
async fn a_401_refreshes_the_token_once_and_retries() {
    let f = fixture(CreateMode::Upsert).await;
    Mock::given(method("GET"))
        .and(header("Authorization", "Bearer t1"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"error": {"code": "", "message": "ExpiredAuthTicket"}})),
        )
        .expect(1)
        .mount(&f.server)
        .await;
    Mock::given(method("GET"))
        .and(header("Authorization", "Bearer t2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": []})))
        .expect(1)
        .mount(&f.server)
        .await;
    assert_eq!(f.dv.lookup(&sentinel().id).await.unwrap(), Lookup::Absent);
    assert_eq!(f.tokens.rejected(), 1);
    assert_eq!(f.tokens.issued(), 2);
}

#[tokio::test]
async fn a_second_401_is_an_auth_error_without_the_token() {
    let f = fixture(CreateMode::Upsert).await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"error": {"code": "", "message": "InvalidAuthTicket"}})),
        )
        .expect(2)
        .mount(&f.server)
        .await;
    let err = f.dv.lookup(&sentinel().id).await.unwrap_err();
    assert_eq!(err.kind(), "auth");
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains("Bearer") && !shown.contains("t1") && !shown.contains("t2"),
        "{shown}"
    );
}

#[tokio::test]
async fn garbage_and_oversized_bodies_are_errors_not_panics() {
    let f = fixture(CreateMode::Upsert).await;
    Mock::given(method("GET"))
        .and(path("/api/data/v9.2/accounts"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>proxy error</html>"))
        .mount(&f.server)
        .await;
    let err = f.dv.lookup(&sentinel().id).await.unwrap_err();
    assert_eq!(err.kind(), "bad_response");
    let s = sentinel();
    Mock::given(method("GET"))
        .and(path(record_path(&s.id)))
        .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(5 * 1024 * 1024)))
        .mount(&f.server)
        .await;
    let err = f.dv.read(&s.id).await.unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(503).set_body_string("Service Unavailable"))
        .mount(&f.server)
        .await;
    let err = f.dv.delete(&s.id).await.unwrap_err();
    assert_eq!(err.kind(), "unavailable");
}

/// Only 204 (and 404) confirm a delete: a proxy's 200 page must not make lagwatch forget a
/// sentinel that is still there (the soak's garbage fault on DELETE did).
#[tokio::test]
async fn a_delete_answered_with_a_200_page_is_not_a_delete() {
    let f = fixture(CreateMode::Upsert).await;
    let s = sentinel();
    Mock::given(method("DELETE"))
        .and(path(record_path(&s.id)))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>proxy</html>"))
        .mount(&f.server)
        .await;
    assert!(f.dv.delete(&s.id).await.is_err());
}

#[tokio::test]
async fn delete_tolerates_an_already_deleted_record() {
    let f = fixture(CreateMode::Upsert).await;
    let s = sentinel();
    Mock::given(method("DELETE"))
        .and(path(record_path(&s.id)))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&f.server)
        .await;
    f.dv.delete(&s.id).await.unwrap();
}

#[tokio::test]
async fn the_sweep_filters_on_own_prefix_and_age_and_follows_next_links() {
    let f = fixture(CreateMode::Upsert).await;
    let a = SentinelId::new("test");
    let b = SentinelId::new("test");
    let before = Utc::now();
    let next = format!("{}/api/data/v9.2/accounts?$skiptoken=page2", f.server.uri());
    Mock::given(method("GET"))
        .and(path("/api/data/v9.2/accounts"))
        .and(query_param("$select", "accountid,accountnumber"))
        .and(query_param(
            "$filter",
            format!(
                "startswith(accountnumber,'lagwatch-test-') and createdon lt {}",
                before.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
            .as_str(),
        ))
        .and(header("Prefer", "odata.maxpagesize=500"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "value": [{"accountid": a.uuid().to_string(), "accountnumber": a.key()}],
            "@odata.nextLink": next
        })))
        .expect(1)
        .mount(&f.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/data/v9.2/accounts"))
        .and(query_param("$skiptoken", "page2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "value": [
                {"accountid": b.uuid().to_string(), "accountnumber": b.key()},
                {"accountid": "00000000-0000-0000-0000-000000000000", "accountnumber": "not-a-sentinel"}
            ]
        })))
        .expect(1)
        .mount(&f.server)
        .await;
    let ids = f.dv.list_own("lagwatch-test-", before).await.unwrap();
    assert_eq!(ids, vec![a, b]);
}

#[tokio::test]
async fn server_date_headers_give_the_clock_offset() {
    let f = fixture(CreateMode::Upsert).await;
    let ahead = (Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Date", ahead.as_str())
                .set_body_json(json!({"value": []})),
        )
        .mount(&f.server)
        .await;
    f.dv.lookup(&sentinel().id).await.unwrap();
    let text = f.metrics.render();
    let offset: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("lagwatch_clock_offset_seconds{system=\"crm\"} "))
        .and_then(|v| v.parse().ok())
        .expect("offset exported");
    assert!((offset - 120.0).abs() <= 1.0, "{offset}");
    assert!(text.contains("lagwatch_clock_offset_uncertainty_seconds{system=\"crm\"}"));
}

/// A 200 to a create-only upsert that is not the record (a proxy's page, another shape) says
/// nothing about the write: an error, so no probe waits for a sentinel that may not exist.
#[tokio::test]
async fn a_write_answered_by_a_page_that_is_not_the_record_is_an_error() {
    for body in [
        ResponseTemplate::new(200).set_body_string("<html>Bad Gateway</html>"),
        ResponseTemplate::new(200).set_body_json(json!({"value": "not a list"})),
    ] {
        let f = fixture(CreateMode::Upsert).await;
        Mock::given(method("PATCH"))
            .respond_with(body)
            .mount(&f.server)
            .await;
        let err = f.dv.write(&sentinel()).await.unwrap_err();
        assert!(
            matches!(err, ConnectorError::BadResponse { status: 200, .. }),
            "{err:?}"
        );
    }
}

/// The update canary's write: an upsert by id (no `If-None-Match`, so an existing record is
/// written again), counted as `update`; anything but 204 (or the record) is an error.
#[tokio::test]
async fn an_update_is_an_upsert_by_id_that_may_replace_the_record() {
    let f = fixture(CreateMode::Upsert).await;
    let s = lagwatch::sentinel::Sentinel::restore(
        "t",
        SentinelId::canary("t", "crm@30000ms"),
        1_780_000_000_000,
        Utc::now(),
    );
    Mock::given(method("PATCH"))
        .and(path(record_path(&s.id)))
        .and(header("OData-Version", "4.0"))
        .and(body_json(json!({
            "accountnumber": s.id.key(),
            "description": s.payload,
            "customertypecode": 3
        })))
        .respond_with(ResponseTemplate::new(204))
        .expect(2)
        .mount(&f.server)
        .await;
    f.dv.update(&s).await.unwrap();
    f.dv.update(&s).await.unwrap();
    let requests = f.server.received_requests().await.unwrap();
    assert!(
        requests.iter().all(
            |r| !r.headers.contains_key("If-None-Match") && !r.headers.contains_key("If-Match")
        ),
        "an upsert, neither create-only nor update-only"
    );
    assert!(
        f.metrics.render().contains(
            "lagwatch_requests_total{operation=\"update\",status=\"2xx\",system=\"crm\"} 2"
        )
    );
    f.server.reset().await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>proxy</html>"))
        .mount(&f.server)
        .await;
    assert!(matches!(
        f.dv.update(&s).await,
        Err(ConnectorError::BadResponse { .. })
    ));
}

/// A causal pair's child binds its parent through the configured lookup, in the create
/// itself (`<nav>@odata.bind` with the parent's entity path), as Dataverse documents for
/// associating records on create.
#[tokio::test]
async fn a_child_binds_its_parent_through_the_lookup_in_the_create() {
    let f = fixture(CreateMode::Upsert).await;
    let parent = sentinel();
    let child = sentinel();
    Mock::given(method("PATCH"))
        .and(path(record_path(&child.id)))
        .and(header("If-None-Match", "*"))
        .and(body_json(json!({
            "accountnumber": child.id.key(),
            "description": child.payload,
            "customertypecode": 3,
            "parentaccountid@odata.bind": format!("/accounts({})", parent.id.uuid()),
        })))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&f.server)
        .await;
    f.dv.write_child(&child, &parent.id).await.unwrap();
    // A lookup that does not resolve is Dataverse's 400 (0x80040217): an error, not a pair.
    f.server.reset().await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": {"code": "0x80040217", "message": "account With Id = 1 Does Not Exist"}
        })))
        .mount(&f.server)
        .await;
    let e = f.dv.write_child(&child, &parent.id).await.unwrap_err();
    assert!(e.to_string().contains("0x80040217"), "{e}");
}

/// Both keys of a pair in one query (`or` in one `$filter`), answered by key whatever the
/// order of the rows; one request.
#[tokio::test]
async fn a_pair_is_read_in_one_query_and_answered_by_key() {
    let f = fixture(CreateMode::Upsert).await;
    let (parent, child) = (sentinel(), sentinel());
    Mock::given(method("GET"))
        .and(path("/api/data/v9.2/accounts"))
        .and(query_param("$select", "accountnumber,description"))
        .and(query_param(
            "$filter",
            format!(
                "accountnumber eq '{}' or accountnumber eq '{}'",
                parent.id.key(),
                child.id.key()
            ),
        ))
        .and(query_param("$top", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "value": [{"accountnumber": child.id.key(), "description": child.payload}]
        })))
        .expect(1)
        .mount(&f.server)
        .await;
    assert!(f.dv.reads_together());
    let found =
        f.dv.lookup_together(&[parent.id.clone(), child.id.clone()])
            .await
            .unwrap();
    assert_eq!(found, fakes::child_only(&child));
}

#[tokio::test]
async fn a_sentinels_row_version_is_read_by_its_id_as_a_number_or_text() {
    let f = fixture(CreateMode::Upsert).await;
    let s = sentinel();
    for (body, want) in [
        (json!({"versionnumber": 73630169}), Some(73630169)),
        (json!({"versionnumber": "73630170"}), Some(73630170)),
        (json!({}), None),
    ] {
        f.server.reset().await;
        Mock::given(method("GET"))
            .and(path(record_path(&s.id)))
            .and(query_param("$select", "versionnumber"))
            .and(header("OData-Version", "4.0"))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .expect(1)
            .mount(&f.server)
            .await;
        assert_eq!(f.dv.version_of(&s.id).await.unwrap(), want);
    }
    // Gone: no version; garbage: an error, never a guess.
    f.server.reset().await;
    fakes::answer_next(&f.server, ResponseTemplate::new(404)).await;
    assert_eq!(f.dv.version_of(&s.id).await.unwrap(), None);
    fakes::answer_next(&f.server, fakes::truncated_json()).await;
    assert_eq!(
        fakes::error_kind(f.dv.version_of(&s.id).await),
        "bad_response"
    );
}
