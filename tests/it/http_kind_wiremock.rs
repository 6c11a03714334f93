//! The generic `http` kind: templates, escaping, status handling and JSON pointers, against a
//! fake REST API.

use crate::common;

use std::time::Duration;

use chrono::Utc;
use common::fakes::{self, answer_next, error_kind, present};
use lagwatch::connector::{ConnectorError, Lookup, Source, Target};
use lagwatch::sentinel::{Sentinel, SentinelId};
use lagwatch::systems::http::{HttpKind, HttpList, HttpMap, HttpRead, HttpRequest, PresentWhen};
use reqwest::Method;
use serde_json::{Value, json};
use wiremock::matchers::{any, body_json, header, method, path, query_param};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

/// The raw (still percent-encoded) path is exactly this.
struct RawPath(String);

impl Match for RawPath {
    fn matches(&self, request: &Request) -> bool {
        request.url.path() == self.0
    }
}

/// A typical REST resource: `PUT/GET/DELETE /items/{id}`, the payload at `/record/data`.
fn rest_map(base: &str) -> HttpMap {
    let mut write = HttpRequest::new(Method::PUT, format!("{base}/items/{{id}}?tag={{id}}"));
    write.headers = vec![("X-Sentinel".into(), "{uuid}".into())];
    write.body = Some(r#"{"key":"{id}","data":"{payload}","meta":{"source":"lagwatch"}}"#.into());
    HttpMap {
        write: Some(write),
        read: Some(HttpRead {
            request: HttpRequest::new(Method::GET, format!("{base}/items/{{id}}")),
            payload_pointer: Some("/record/data".into()),
            present_when: None,
        }),
        delete: Some(HttpRequest::new(
            Method::DELETE,
            format!("{base}/items/{{id}}"),
        )),
        lookup: None,
        list: None,
    }
}

async fn fixture(map: impl FnOnce(&str) -> HttpMap) -> (MockServer, HttpKind) {
    let server = MockServer::start().await;
    let kind = HttpKind::new(
        fakes::http_system("api", fakes::bearer()),
        map(&server.uri()),
    );
    (server, kind)
}

/// An instance name with characters that need escaping in URLs and in JSON.
fn awkward_sentinel() -> Sentinel {
    Sentinel::new("o\"b/ c&d?é", 3, Utc::now())
}

fn encoded(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[tokio::test]
async fn write_escapes_the_key_in_the_url_and_the_payload_in_json() {
    let (server, kind) = fixture(rest_map).await;
    let s = awkward_sentinel();
    assert!(s.id.key().contains("o\"b/ c&d?é"));
    let raw = format!("/items/{}", encoded(s.id.key()));
    assert!(raw.contains("o%22b%2F%20c%26d%3F%C3%A9"), "{raw}");
    Mock::given(method("PUT"))
        .and(RawPath(raw))
        .and(query_param("tag", s.id.key()))
        .and(header("X-Sentinel", s.id.uuid().to_string().as_str()))
        .and(header("Authorization", "Bearer t1"))
        .and(header("Content-Type", "application/json"))
        .and(body_json(json!({
            "key": s.id.key(),
            "data": s.payload,
            "meta": {"source": "lagwatch"}
        })))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&server)
        .await;
    kind.write(&s).await.unwrap();
}

#[tokio::test]
async fn read_follows_the_payload_pointer_and_404_is_absent() {
    let (server, kind) = fixture(rest_map).await;
    let s = awkward_sentinel();
    Mock::given(method("GET"))
        .and(RawPath(format!("/items/{}", encoded(s.id.key()))))
        .respond_with(ResponseTemplate::new(404).set_body_string("no such item"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(kind.read(&s.id).await.unwrap(), Lookup::Absent);
    answer_next(
        &server,
        ResponseTemplate::new(200)
            .set_body_json(json!({"record": {"key": s.id.key(), "data": s.payload}})),
    )
    .await;
    assert!(s.matches(&present(kind.read(&s.id).await)));
    // Stored as a JSON object rather than text: its compact JSON is the written payload.
    let stored: Value = serde_json::from_str(&s.payload).unwrap();
    answer_next(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({"record": {"data": stored}})),
    )
    .await;
    assert!(s.matches(&present(kind.read(&s.id).await)));
    // Without a lookup request, a lookup uses the read.
    answer_next(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({"record": {"data": "changed"}})),
    )
    .await;
    assert_eq!(present(kind.lookup(&s.id).await), "changed");
}

/// A search-style API for lookups: `GET /search?q={id}` answering a list and a count.
fn search_map(base: &str) -> HttpMap {
    HttpMap {
        lookup: Some(HttpRead {
            request: HttpRequest::new(Method::GET, format!("{base}/search?q={{id}}&size=1")),
            payload_pointer: Some("/items/0/data".into()),
            present_when: Some(PresentWhen {
                pointer: "/count".into(),
                equals: json!(1),
            }),
        }),
        ..HttpMap::default()
    }
}

#[tokio::test]
async fn lookups_count_as_present_only_when_the_expected_value_is_there() {
    let (server, kind) = fixture(search_map).await;
    let s = awkward_sentinel();
    Mock::given(method("GET"))
        .and(path("/search"))
        .and(query_param("q", s.id.key()))
        .and(query_param("size", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"count": 0, "items": []})))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(kind.lookup(&s.id).await.unwrap(), Lookup::Absent);
    answer_next(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({
            "count": 1, "items": [{"data": s.payload}]
        })),
    )
    .await;
    assert!(s.matches(&present(kind.lookup(&s.id).await)));
    // Without a read request, the source's read-back uses the lookup.
    answer_next(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({
            "count": 1, "items": [{"data": s.payload.to_uppercase()}]
        })),
    )
    .await;
    assert!(!s.matches(&present(kind.read(&s.id).await)));
}

#[tokio::test]
async fn without_present_when_a_missing_payload_is_absent() {
    let (server, kind) = fixture(|base| {
        let mut m = search_map(base);
        m.lookup.as_mut().unwrap().present_when = None;
        m
    })
    .await;
    let s = awkward_sentinel();
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"count": 0, "items": []})))
        .mount(&server)
        .await;
    assert_eq!(kind.lookup(&s.id).await.unwrap(), Lookup::Absent);
}

// Throttling, a rejected key and a truncated body are in the shared contract
// (tests/it/conformance.rs).

#[tokio::test]
async fn unexpected_statuses_and_a_twice_rejected_token_are_errors() {
    let (server, kind) = fixture(search_map).await;
    let s = awkward_sentinel();
    answer_next(
        &server,
        ResponseTemplate::new(400).set_body_string("bad query"),
    )
    .await;
    match kind.lookup(&s.id).await.unwrap_err() {
        ConnectorError::BadResponse {
            status: 400,
            detail,
        } => {
            assert!(detail.contains("bad query"), "{detail}")
        }
        e => panic!("{e:?}"),
    }
    // A bearer token is refreshed once after a 401; a second 401 is final.
    Mock::given(any())
        .respond_with(ResponseTemplate::new(401))
        .expect(2)
        .mount(&server)
        .await;
    assert_eq!(error_kind(kind.lookup(&s.id).await), "auth");
}

#[tokio::test]
async fn success_statuses_are_configurable() {
    let (server, kind) = fixture(|base| {
        let mut m = rest_map(base);
        m.write.as_mut().unwrap().success = vec![201, 409];
        m
    })
    .await;
    let s = awkward_sentinel();
    answer_next(
        &server,
        ResponseTemplate::new(409).set_body_string("exists"),
    )
    .await;
    kind.write(&s).await.unwrap();
    answer_next(&server, ResponseTemplate::new(200)).await;
    assert!(matches!(
        kind.write(&s).await,
        Err(ConnectorError::BadResponse { status: 200, .. })
    ));
}

#[tokio::test]
async fn delete_accepts_gone_records_and_rejects_other_answers() {
    let (server, kind) = fixture(rest_map).await;
    let s = awkward_sentinel();
    Mock::given(method("DELETE"))
        .and(RawPath(format!("/items/{}", encoded(s.id.key()))))
        .respond_with(ResponseTemplate::new(404))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    kind.delete(&s.id).await.unwrap();
    answer_next(&server, ResponseTemplate::new(204)).await;
    kind.delete(&s.id).await.unwrap();
    answer_next(
        &server,
        ResponseTemplate::new(409).set_body_string("locked"),
    )
    .await;
    assert_eq!(error_kind(kind.delete(&s.id).await), "bad_response");
}

#[tokio::test]
async fn operations_that_are_not_configured_send_nothing() {
    let (server, kind) = fixture(search_map).await;
    let s = awkward_sentinel();
    Mock::given(any())
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    kind.delete(&s.id).await.unwrap();
    assert!(
        kind.list_own("lagwatch-x-", Utc::now())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(error_kind(kind.write(&s).await), "transport");
}

#[tokio::test]
async fn the_sweep_keeps_only_own_sentinels_older_than_the_cutoff() {
    let (server, kind) = fixture(|base| HttpMap {
        list: Some(HttpList {
            request: HttpRequest::new(
                Method::GET,
                format!("{base}/items?prefix={{prefix}}&before={{before}}"),
            ),
            items_pointer: "/items".into(),
            key_pointer: "/key".into(),
        }),
        ..rest_map(base)
    })
    .await;
    let old = SentinelId::new("me");
    let other = SentinelId::new("someone");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let cutoff = Utc::now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let fresh = SentinelId::new("me");
    Mock::given(method("GET"))
        .and(path("/items"))
        .and(query_param("prefix", "lagwatch-me-"))
        .and(query_param(
            "before",
            cutoff
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                .as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": [
            {"key": old.key()},
            {"key": other.key()},
            {"key": fresh.key()},
            {"key": "not-a-sentinel"},
            {"id": 4}
        ]})))
        .expect(1)
        .mount(&server)
        .await;
    let ids = kind.list_own("lagwatch-me-", cutoff).await.unwrap();
    assert_eq!(ids, vec![old]);
}
