//! Managed identity against wiremock: the IMDS and App Service request shapes and answers.

use std::sync::Arc;
use std::time::Duration;

use lagwatch::auth::{self, AuthConfig, AuthError, ManagedIdentity, TokenSource};
use lagwatch::config::decode;
use serde_json::json;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SCOPE: &str = "https://org.crm.dynamics.com/.default";
const RESOURCE: &str = "https://org.crm.dynamics.com";
const USER_ASSIGNED: &str = "77777777-8888-4999-aaaa-bbbbbbbbbbbb";

fn printed(e: &AuthError) -> String {
    format!("{e}\n{e:?}")
}

fn imds_from_config(server: &MockServer, client_id: Option<&str>) -> Arc<dyn TokenSource> {
    let mut yaml = json!({
        "method": "managed_identity",
        "endpoint": format!("{}/metadata/identity/oauth2/token", server.uri()),
    });
    if let Some(id) = client_id {
        yaml["client_id"] = json!(id);
    }
    let config: AuthConfig = decode("auth", yaml).unwrap();
    config.validate("auth").unwrap();
    auth::build(&config, reqwest::Client::new()).unwrap()
}

#[tokio::test]
async fn imds_request_has_the_documented_shape() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/metadata/identity/oauth2/token"))
        .and(query_param("api-version", "2018-02-01"))
        .and(query_param("resource", RESOURCE))
        .and(query_param("client_id", USER_ASSIGNED))
        .and(header("Metadata", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "eyJ.imds.token",
            "refresh_token": "",
            "expires_in": "3599",
            "expires_on": "1506484173",
            "not_before": "1506480273",
            "resource": RESOURCE,
            "token_type": "Bearer",
        })))
        .expect(1)
        .mount(&server)
        .await;
    let source = imds_from_config(&server, Some(USER_ASSIGNED));
    let before = tokio::time::Instant::now();
    let token = source.fetch(SCOPE).await.unwrap();
    assert_eq!(token.expose(), "eyJ.imds.token");
    let lifetime = token.expires_at() - before;
    assert!(
        (Duration::from_secs(3590)..=Duration::from_secs(3600)).contains(&lifetime),
        "expires_in wins over the (old) expires_on: {lifetime:?}"
    );
    let req = &server.received_requests().await.unwrap()[0];
    let pairs: Vec<(String, String)> = req.url.query_pairs().into_owned().collect();
    assert_eq!(pairs.len(), 3, "{pairs:?}");
    assert!(req.body.is_empty());
}

#[tokio::test]
async fn system_assigned_identity_sends_no_client_id() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "t", "expires_in": "3599", "token_type": "Bearer",
        })))
        .expect(1)
        .mount(&server)
        .await;
    let source = imds_from_config(&server, None);
    source.fetch(SCOPE).await.unwrap();
    let req = &server.received_requests().await.unwrap()[0];
    assert!(!req.url.query_pairs().any(|(k, _)| k == "client_id"));
}

#[tokio::test]
async fn imds_errors_are_classified() {
    let server = MockServer::start().await;
    let source = imds_from_config(&server, Some(USER_ASSIGNED));
    for (status, body, kind) in [
        (
            400,
            json!({"error": "invalid_request", "error_description": "Identity not found"}),
            "rejected",
        ),
        (404, json!({}), "transport"),
        (410, json!({}), "transport"),
        (429, json!({}), "transport"),
        (500, json!({"error": "unknown"}), "transport"),
    ] {
        server.reset().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&server)
            .await;
        let e = source.fetch(SCOPE).await.unwrap_err();
        assert_eq!(e.kind(), kind, "{status}: {e}");
        assert!(e.to_string().contains(&status.to_string()), "{e}");
    }
    server.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_request"})))
        .mount(&server)
        .await;
    assert_eq!(
        source.fetch(SCOPE).await.unwrap_err().error_code(),
        Some("invalid_request")
    );
}

#[tokio::test]
async fn app_service_request_has_the_documented_shape() {
    let server = MockServer::start().await;
    let expires_on = chrono::Utc::now().timestamp() + 86_000;
    Mock::given(method("GET"))
        .and(path("/msi/token"))
        .and(query_param("api-version", "2019-08-01"))
        .and(query_param("resource", RESOURCE))
        .and(query_param("client_id", USER_ASSIGNED))
        .and(header("X-IDENTITY-HEADER", "hdr-s3cr3t"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "eyJ.app.service",
            "expires_on": expires_on.to_string(),
            "resource": RESOURCE,
            "token_type": "Bearer",
            "client_id": USER_ASSIGNED,
        })))
        .expect(1)
        .mount(&server)
        .await;
    let source = ManagedIdentity::app_service(
        &format!("{}/msi/token", server.uri()),
        "hdr-s3cr3t",
        Some(USER_ASSIGNED.to_string()),
        reqwest::Client::new(),
    )
    .unwrap();
    assert!(!format!("{source:?}").contains("hdr-s3cr3t"));
    let token = source.fetch(SCOPE).await.unwrap();
    assert_eq!(token.expose(), "eyJ.app.service");
    let remaining = token.remaining().as_secs();
    assert!((85_990..=86_000).contains(&remaining), "{remaining}");

    // Errors do not carry the identity header.
    server.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_string("bad header hdr-s3cr3t"))
        .mount(&server)
        .await;
    let e = source.fetch(SCOPE).await.unwrap_err();
    assert_eq!(e.kind(), "rejected");
    assert!(!printed(&e).contains("hdr-s3cr3t"), "{e}");
}
