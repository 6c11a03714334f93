//! The Azure Blob Storage lake store against a fake of the documented Blob REST API (fact sheet
//! §5.7): the exact List Blobs, Get Blob (whole, with `Range: bytes=<start>-`, and bounded with
//! `Range: bytes=<start>-<last>`) and Get Blob Properties requests (path,
//! `restype`/`comp`/`prefix`/`delimiter`/`marker`, `x-ms-version`,
//! `x-ms-date`, a Shared Key signature over what was sent, a SAS in the query, a bearer token),
//! `EnumerationResults` pages made relative to the folder with sizes, ETags and last-modified
//! times, `206`/`416` answers to range reads, and storage error XML turned into typed errors
//! that never quote a SAS.

use crate::common;

use std::sync::Arc;

use common::blob::{assert_signed, shared_key, storage_error, xml};
use common::fakes::{FakeTokens, http_system, http_system_with};
use lagwatch::auth::Auth;
use lagwatch::config::Secret;
use lagwatch::connector::ConnectorError;
use lagwatch::lake::blob::{API_VERSION, BlobAuth, BlobLocation, BlobStore};
use lagwatch::lake::{FileEntry, LakeError, LakeStore};
use lagwatch::metrics::Metrics;
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn store(server: &MockServer, folder: &str, auth: BlobAuth) -> BlobStore {
    let url = format!("{}/devstoreaccount1/lake{folder}", server.uri());
    let location = BlobLocation::parse(&url).unwrap();
    BlobStore::new(http_system("lake", Auth::None), location, auth)
}

#[tokio::test]
async fn list_sends_the_documented_request_follows_next_marker_and_makes_names_relative() {
    let server = MockServer::start().await;
    let prefix = "exports/contoso/2026-11-02T10.15.00.000Z/";
    let first = format!(
        "<EnumerationResults ContainerName=\"lake\"><Prefix>{prefix}</Prefix><Delimiter>/</Delimiter>\
         <Blobs>\
         <Blob><Name>{prefix}model.json</Name><Properties>\
         <Last-Modified>Mon, 02 Nov 2026 10:15:07 GMT</Last-Modified><Etag>0x8DCFB1A2C3D4E5F</Etag>\
         <Content-Length>1234</Content-Length><BlobType>BlockBlob</BlobType></Properties></Blob>\
         <BlobPrefix><Name>{prefix}account/</Name></BlobPrefix>\
         </Blobs><NextMarker>2!96!MDAw+/=</NextMarker></EnumerationResults>"
    );
    let second = format!(
        "<EnumerationResults ContainerName=\"lake\"><Prefix>{prefix}</Prefix><Marker>2!96!MDAw+/=</Marker>\
         <Blobs>\
         <Blob><Name>{prefix}contact</Name><Properties><ResourceType>directory</ResourceType>\
         <Content-Length>0</Content-Length></Properties></Blob>\
         <Blob><Name>{prefix}a &amp; b.csv</Name><Properties><Content-Length>7</Content-Length></Properties></Blob>\
         </Blobs><NextMarker /></EnumerationResults>"
    );
    Mock::given(method("GET"))
        .and(path("/devstoreaccount1/lake"))
        .and(query_param("restype", "container"))
        .and(query_param("comp", "list"))
        .and(query_param("delimiter", "/"))
        .and(query_param("prefix", prefix))
        .and(query_param_is_missing("marker"))
        .and(header("x-ms-version", API_VERSION))
        .respond_with(xml(&first))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/devstoreaccount1/lake"))
        .and(query_param("prefix", prefix))
        .and(query_param("marker", "2!96!MDAw+/="))
        .respond_with(xml(&second))
        .expect(1)
        .mount(&server)
        .await;
    let store = store(
        &server,
        "/exports/contoso/",
        BlobAuth::SharedKey(shared_key()),
    );
    let listing = store
        .list("2026-11-02T10.15.00.000Z")
        .await
        .expect("listing");
    assert_eq!(listing.dirs, ["account", "contact"]);
    assert_eq!(
        listing.files,
        [
            FileEntry::new("a & b.csv", 7),
            FileEntry {
                name: "model.json".into(),
                size: 1234,
                version: Some("0x8DCFB1A2C3D4E5F".into()),
                modified: Some("2026-11-02T10:15:07Z".parse().unwrap()),
            },
        ]
    );
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    for r in &requests {
        assert_signed(r);
        // A marker with + / = survives the query encoding.
        assert!(
            !r.url.query().unwrap_or_default().contains('+'),
            "{}",
            r.url
        );
    }
}

#[tokio::test]
async fn the_root_listing_has_no_prefix_and_page_size_is_maxresults() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/devstoreaccount1/lake"))
        .and(query_param("restype", "container"))
        .and(query_param("comp", "list"))
        .and(query_param_is_missing("prefix"))
        .and(query_param("maxresults", "2"))
        .respond_with(xml(
            "<EnumerationResults><Blobs><BlobPrefix><Name>Changelog/</Name></BlobPrefix>\
             <Blob><Name>model.json</Name><Properties><Content-Length>3</Content-Length></Properties></Blob>\
             </Blobs><NextMarker/></EnumerationResults>",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let store = store(&server, "", BlobAuth::Http).with_page_size(2);
    let l = store.list("").await.unwrap();
    assert_eq!(l.dirs, ["Changelog"]);
    assert_eq!(l.files.len(), 1);
}

#[tokio::test]
async fn get_reads_the_blob_and_404_is_none_unless_the_container_is_missing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/devstoreaccount1/lake/x/Changelog/changelog.info"))
        .respond_with(ResponseTemplate::new(200).set_body_string("2026-11-02T10.20.00.000Z"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(
            "/devstoreaccount1/lake/x/2026-11-02T10%3A15%3A00Z/a%20b.csv",
        ))
        .respond_with(storage_error(
            404,
            "BlobNotFound",
            "The specified blob does not exist.",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let s = store(&server, "/x", BlobAuth::SharedKey(shared_key()));
    assert_eq!(
        s.get("Changelog/changelog.info").await.unwrap().unwrap(),
        b"2026-11-02T10.20.00.000Z"
    );
    assert_eq!(s.get("2026-11-02T10:15:00Z/a b.csv").await.unwrap(), None);
    for r in server.received_requests().await.unwrap() {
        assert_signed(&r);
    }
    assert!(s.get("../escape").await.is_err());

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(storage_error(
            404,
            "ContainerNotFound",
            "The specified container does not exist.",
        ))
        .mount(&server)
        .await;
    let s = store(&server, "", BlobAuth::Http);
    let e = ConnectorError::from(s.get("model.json").await.unwrap_err());
    // The lake path, then the request that failed (method, host, path), then the code.
    let host = server.uri().trim_start_matches("http://").to_string();
    let expected = format!(
        "model.json: GET {host}/devstoreaccount1/lake/model.json: ContainerNotFound: The specified container does not exist."
    );
    assert!(
        matches!(&e, ConnectorError::BadResponse { status: 404, detail } if *detail == expected),
        "{e:?}"
    );
    let e = ConnectorError::from(s.list("").await.unwrap_err());
    assert_eq!(e.kind(), "bad_response", "{e}");
    // A listing's query (restype, comp, prefix) stays out of the message.
    assert!(
        e.to_string()
            .contains(&format!("GET {host}/devstoreaccount1/lake: ")),
        "{e}"
    );
}

#[tokio::test]
async fn a_range_read_asks_for_the_bytes_from_its_start_and_416_is_an_empty_read() {
    let server = MockServer::start().await;
    let blob = "/devstoreaccount1/lake/x/account/2026.csv";
    Mock::given(method("GET"))
        .and(path(blob))
        .and(header("range", "bytes=100-"))
        .and(header("x-ms-version", API_VERSION))
        .respond_with(
            ResponseTemplate::new(206)
                .insert_header("content-range", "bytes 100-109/110")
                .set_body_string("0123456789"),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(blob))
        .and(header("range", "bytes=110-"))
        .respond_with(
            storage_error(
                416,
                "InvalidRange",
                "The range specified is invalid for the current size of the resource.",
            )
            .insert_header("content-range", "bytes */110"),
        )
        .expect(1)
        .mount(&server)
        .await;
    // A server that ignores Range answers 200 with the whole blob: cut here.
    Mock::given(method("GET"))
        .and(path("/devstoreaccount1/lake/x/whole.csv"))
        .and(header("range", "bytes=3-"))
        .respond_with(ResponseTemplate::new(200).set_body_string("abcdefg"))
        .expect(1)
        .mount(&server)
        .await;
    // A part that does not start where asked is not the file's end.
    Mock::given(method("GET"))
        .and(path("/devstoreaccount1/lake/x/shifted.csv"))
        .respond_with(
            ResponseTemplate::new(206)
                .insert_header("content-range", "bytes 0-3/4")
                .set_body_string("abcd"),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/devstoreaccount1/lake/x/gone.csv"))
        .respond_with(storage_error(
            404,
            "BlobNotFound",
            "The specified blob does not exist.",
        ))
        .mount(&server)
        .await;
    let s = store(&server, "/x", BlobAuth::SharedKey(shared_key()));
    assert_eq!(
        s.get_range("account/2026.csv", 100).await.unwrap().unwrap(),
        b"0123456789"
    );
    assert_eq!(
        s.get_range("account/2026.csv", 110).await.unwrap().unwrap(),
        b""
    );
    assert_eq!(s.get_range("whole.csv", 3).await.unwrap().unwrap(), b"defg");
    let e = s.get_range("shifted.csv", 2).await.unwrap_err();
    assert!(
        matches!(&e, LakeError::Malformed { reason, .. } if reason.contains("starting at 0")),
        "{e}"
    );
    assert_eq!(s.get_range("gone.csv", 0).await.unwrap(), None);
    // The Range header is part of what the Shared Key signature covers.
    let requests = server.received_requests().await.unwrap();
    assert!(requests.iter().all(|r| r.headers.contains_key("range")));
    for r in &requests {
        assert_signed(r);
    }
}

#[tokio::test]
async fn a_bounded_range_read_asks_for_its_last_byte_too() {
    let server = MockServer::start().await;
    let blob = "/devstoreaccount1/lake/x/account/2026.csv";
    Mock::given(method("GET"))
        .and(path(blob))
        .and(header("range", "bytes=100-103"))
        .respond_with(
            ResponseTemplate::new(206)
                .insert_header("content-range", "bytes 100-103/110")
                .set_body_string("0123"),
        )
        .expect(1)
        .mount(&server)
        .await;
    // Near the end the service sends what there is.
    Mock::given(method("GET"))
        .and(path(blob))
        .and(header("range", "bytes=108-1107"))
        .respond_with(
            ResponseTemplate::new(206)
                .insert_header("content-range", "bytes 108-109/110")
                .set_body_string("89"),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(blob))
        .and(header("range", "bytes=110-119"))
        .respond_with(storage_error(
            416,
            "InvalidRange",
            "The range specified is invalid for the current size of the resource.",
        ))
        .expect(1)
        .mount(&server)
        .await;
    // A server that ignores Range: the part asked for is cut out of the whole blob.
    Mock::given(method("GET"))
        .and(path("/devstoreaccount1/lake/x/whole.csv"))
        .and(header("range", "bytes=2-4"))
        .respond_with(ResponseTemplate::new(200).set_body_string("abcdefg"))
        .expect(1)
        .mount(&server)
        .await;
    let s = store(&server, "/x", BlobAuth::SharedKey(shared_key()));
    let f = "account/2026.csv";
    assert_eq!(s.get_slice(f, 100, 4).await.unwrap().unwrap(), b"0123");
    assert_eq!(s.get_slice(f, 108, 1000).await.unwrap().unwrap(), b"89");
    assert_eq!(s.get_slice(f, 110, 10).await.unwrap().unwrap(), b"");
    assert_eq!(
        s.get_slice("whole.csv", 2, 3).await.unwrap().unwrap(),
        b"cde"
    );
    for r in &server.received_requests().await.unwrap() {
        assert_signed(r);
    }
}

#[tokio::test]
async fn stat_is_a_head_request_giving_size_etag_and_last_modified() {
    let server = MockServer::start().await;
    Mock::given(method("HEAD"))
        .and(path("/devstoreaccount1/lake/model.json"))
        .and(header("x-ms-version", API_VERSION))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-length", "5120")
                .insert_header("etag", "\"0x8DCFB1A2C3D4E5F\"")
                .insert_header("last-modified", "Mon, 02 Nov 2026 10:15:07 GMT"),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("HEAD"))
        .and(path("/devstoreaccount1/lake/none.json"))
        .respond_with(ResponseTemplate::new(404).insert_header("x-ms-error-code", "BlobNotFound"))
        .mount(&server)
        .await;
    let s = store(&server, "", BlobAuth::SharedKey(shared_key()));
    let e = s.stat("model.json").await.unwrap().expect("exists");
    assert_eq!(
        e,
        FileEntry {
            name: "model.json".into(),
            size: 5120,
            version: Some("0x8DCFB1A2C3D4E5F".into()),
            modified: Some("2026-11-02T10:15:07Z".parse().unwrap()),
        }
    );
    assert_eq!(s.stat("none.json").await.unwrap(), None);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests[0].method.as_str(), "HEAD");
    let got = requests[0]
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert_eq!(
        got,
        shared_key().authorization("HEAD", &requests[0].url, &requests[0].headers),
        "signed as a HEAD"
    );
}

#[tokio::test]
async fn storage_errors_are_typed_and_server_busy_is_throttling() {
    let cases: Vec<(ResponseTemplate, &str, &str)> = vec![
        (
            storage_error(
                403,
                "AuthenticationFailed",
                "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.",
            ),
            "auth",
            "authentication failed: Changelog/changelog.info: HTTP 403 AuthenticationFailed: Server failed to authenticate the request.",
        ),
        (
            storage_error(
                403,
                "AuthorizationPermissionMismatch",
                "This request is not authorized to perform this operation using this permission.",
            ),
            "auth",
            "HTTP 403 AuthorizationPermissionMismatch: This request is not authorized",
        ),
        (
            storage_error(
                503,
                "ServerBusy",
                "Operations per second is over the account limit.",
            ),
            "throttled",
            "throttled by the system",
        ),
        (
            ResponseTemplate::new(429).insert_header("retry-after", "7"),
            "throttled",
            "retry after Some(7s)",
        ),
        (
            storage_error(
                500,
                "InternalError",
                "The server encountered an internal error.",
            ),
            "unavailable",
            "InternalError: The server encountered an internal error.",
        ),
        (
            storage_error(
                400,
                "InvalidHeaderValue",
                "The value for one of the HTTP headers is not in the correct format.",
            ),
            "bad_response",
            "unexpected response (HTTP 400): Changelog/changelog.info: InvalidHeaderValue: The value for one of the HTTP headers is not in the correct format.",
        ),
        (
            ResponseTemplate::new(200).set_body_string("<html>captive portal</html>"),
            "bad_response",
            "not <EnumerationResults>",
        ),
    ];
    for (answer, kind, text) in cases {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(answer)
            .mount(&server)
            .await;
        let s = store(&server, "", BlobAuth::SharedKey(shared_key()));
        let listing = text.contains("EnumerationResults");
        let e = if listing {
            ConnectorError::from(s.list("").await.unwrap_err())
        } else {
            ConnectorError::from(s.get("Changelog/changelog.info").await.unwrap_err())
        };
        assert_eq!(e.kind(), kind, "{e}");
        // An error status names the request that got it, after the path in the lake.
        let host = server.uri().trim_start_matches("http://").to_string();
        let request = format!("GET {host}/devstoreaccount1/lake/Changelog/changelog.info: ");
        if !listing && kind != "throttled" {
            assert!(e.to_string().contains(&request), "{e}");
        }
        assert!(e.to_string().replace(&request, "").contains(text), "{e}");
        assert!(!e.to_string().contains("RequestId"), "{e}");
        assert!(!e.to_string().contains("String to sign"), "{e}");
    }
}

#[tokio::test]
async fn a_sas_goes_into_every_query_and_into_no_error_or_metric() {
    let sas = "sv=2024-11-04&ss=b&srt=co&sp=rl&se=2026-11-03T00%3A00%3A00Z&sig=SeCrEtSiG%2B%3D";
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/devstoreaccount1/lake"))
        .and(query_param("comp", "list"))
        .and(query_param("sig", "SeCrEtSiG+="))
        .and(query_param("sp", "rl"))
        .respond_with(xml("<EnumerationResults><Blobs/></EnumerationResults>"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/devstoreaccount1/lake/model.json"))
        .and(query_param("sig", "SeCrEtSiG+="))
        .respond_with(storage_error(
            403,
            "AuthorizationPermissionMismatch",
            "This request is not authorized to perform this operation using this permission.",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let metrics = Metrics::new();
    let location = BlobLocation::parse(&format!("{}/devstoreaccount1/lake", server.uri())).unwrap();
    let s = BlobStore::new(
        http_system_with("lake", Auth::None, &metrics),
        location,
        BlobAuth::Sas(Secret::runtime(sas, "file:/run/secrets/sas")),
    );
    assert_eq!(s.list("").await.unwrap(), Default::default());
    let e = s.get("model.json").await.unwrap_err();
    let text = format!("{e} {e:?} {}", ConnectorError::from(e.clone()));
    assert!(!text.contains("SeCrEt"), "{text}");
    for r in server.received_requests().await.unwrap() {
        assert!(r.headers.get("authorization").is_none());
        assert_eq!(r.url.query_pairs().filter(|(k, _)| k == "sig").count(), 1);
    }
    assert!(!format!("{s:?}").contains("SeCrEt"));
    // A server that cannot be reached: the transport error has no URL in it.
    let dead = BlobLocation::parse("http://127.0.0.1:9/devstoreaccount1/lake").unwrap();
    let s = BlobStore::new(
        http_system_with("lake", Auth::None, &metrics),
        dead,
        BlobAuth::Sas(Secret::runtime(sas, "test")),
    );
    let e = ConnectorError::from(s.get("model.json").await.unwrap_err());
    assert_eq!(e.kind(), "transport");
    assert!(!e.to_string().contains("SeCrEt"), "{e}");
    assert!(!metrics.render().contains("SeCrEt"));
}

#[tokio::test]
async fn entra_sends_a_bearer_token_and_retries_once_after_a_401() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(header("authorization", "Bearer t1"))
        .respond_with(ResponseTemplate::new(401))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(header("authorization", "Bearer t2"))
        .and(header("x-ms-version", API_VERSION))
        .respond_with(ResponseTemplate::new(200).set_body_string("x"))
        .expect(1)
        .mount(&server)
        .await;
    let tokens = Arc::new(FakeTokens::default());
    let location = BlobLocation::parse(&format!("{}/devstoreaccount1/lake", server.uri())).unwrap();
    let s = BlobStore::new(
        http_system("lake", Auth::Bearer(tokens.clone())),
        location,
        BlobAuth::Http,
    );
    assert_eq!(s.get("model.json").await.unwrap().unwrap(), b"x");
    assert_eq!(tokens.rejected(), 1);
}

#[tokio::test]
async fn a_listing_outside_the_prefix_or_a_repeating_marker_is_malformed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(query_param("prefix", "a/"))
        .respond_with(xml(
            "<EnumerationResults><Blobs><Blob><Name>b/x</Name><Properties>\
             <Content-Length>1</Content-Length></Properties></Blob></Blobs></EnumerationResults>",
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(query_param("prefix", "loop/"))
        .respond_with(xml(
            "<EnumerationResults><Blobs/><NextMarker>m</NextMarker></EnumerationResults>",
        ))
        .mount(&server)
        .await;
    let s = store(&server, "", BlobAuth::Http);
    assert!(matches!(
        s.list("a").await,
        Err(LakeError::Malformed { reason, .. }) if reason.contains("outside the prefix")
    ));
    assert!(matches!(
        s.list("loop").await,
        Err(LakeError::Malformed { reason, .. }) if reason.contains("NextMarker repeats")
    ));
}
