//! Access tokens from the emulator's Entra ID endpoint (client credentials, tenant `contoso`),
//! for tests that read or write the emulated estate as any client would: over HTTP, or through
//! `Emulator::handle` for tests that run the emulator in process (paused clocks); and the
//! sentinels an emulated Dataverse environment holds, read with such a token.
//!
//! Included with `#[path = "common/entra.rs"] mod entra;` (or through `common`), so a test
//! binary that needs only this does not compile the other helpers.
#![allow(dead_code)]

use std::collections::BTreeSet;

use lagwatch_emulator::Emulator;
use serde_json::Value;

const TOKEN_PATH: &str = "/entra/contoso/oauth2/v2.0/token";

fn form(client_id: &str, secret: &str, resource: &str) -> [(&'static str, String); 4] {
    [
        ("grant_type", "client_credentials".to_string()),
        ("client_id", client_id.to_string()),
        ("client_secret", secret.to_string()),
        ("scope", format!("{resource}/.default")),
    ]
}

/// A token for `resource` (such as `https://crm.crm.dynamics.com`) from the emulator at
/// `origin`; panics unless it answers 200 with one.
pub async fn token(
    http: &reqwest::Client,
    origin: &str,
    client_id: &str,
    secret: &str,
    resource: &str,
) -> String {
    let r = http
        .post(format!("{origin}{TOKEN_PATH}"))
        .form(&form(client_id, secret, resource))
        .send()
        .await
        .expect("token request");
    let status = r.status();
    let body: Value = r.json().await.expect("token json");
    assert_eq!(status, 200, "{body}");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// As [`token`], asked of an emulator in this process.
pub async fn token_in_process(
    emu: &Emulator,
    client_id: &str,
    secret: &str,
    resource: &str,
) -> String {
    let body = form(client_id, secret, resource)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let req = axum::http::Request::builder()
        .method("POST")
        .uri(TOKEN_PATH)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(body))
        .expect("request");
    let resp = emu.handle(req).await;
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    let v: Value = serde_json::from_slice(&bytes).expect("token json");
    assert_eq!(status, 200, "{v}");
    v["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// Keys of `instance`'s sentinels in the `accounts` table of the emulated Dataverse
/// environment `env` right now, read through its Web API (one page must hold them); not its
/// update canary.
pub async fn sentinels_in(
    http: &reqwest::Client,
    origin: &str,
    env: &str,
    (client_id, secret): (&str, &str),
    instance: &str,
) -> BTreeSet<String> {
    let token = token(
        http,
        origin,
        client_id,
        secret,
        &format!("https://{env}.crm.dynamics.com"),
    )
    .await;
    let body: Value = http
        .get(format!("{origin}/{env}/api/data/v9.2/accounts"))
        .query(&[
            ("$select", "name"),
            (
                "$filter",
                &format!("startswith(name,'lagwatch-{instance}-')"),
            ),
        ])
        .bearer_auth(token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("list json");
    assert!(
        body.get("@odata.nextLink").is_none(),
        "one page holds them: {body}"
    );
    body["value"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|r| r["name"].as_str().expect("name").to_string())
        // The update canary is a long-lived record by design, not a sentinel left behind.
        .filter(|k| !lagwatch::sentinel::SentinelId::parse(k).is_some_and(|id| id.is_canary()))
        .collect()
}

/// The JSON answer to `req` of an emulator in this process (`null` for an empty body); panics
/// unless the status is a success.
pub async fn call(emu: &Emulator, req: axum::http::Request<axum::body::Body>) -> Value {
    let (status, body) = answer(emu, req).await;
    assert!((200..300).contains(&status), "{status} {body}");
    body
}

/// The status and JSON answer to `req` of an emulator in this process, whatever the status
/// (`null` for an empty or non-JSON body).
pub async fn answer(emu: &Emulator, req: axum::http::Request<axum::body::Body>) -> (u16, Value) {
    let resp = emu.handle(req).await;
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Creates an account named `name` with `description` in the emulated Dataverse environment
/// `crm` of an emulator in this process, with a `crm` token.
pub async fn create_account(emu: &Emulator, token: &str, name: &str, description: &str) {
    let req = axum::http::Request::builder()
        .method("POST")
        .uri("/crm/api/data/v9.2/accounts")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(
            serde_json::json!({"name": name, "description": description}).to_string(),
        ))
        .expect("request");
    call(emu, req).await;
}

/// A Dataverse token (`https://crm.crm.dynamics.com`) for the demo scenario's app `app-1`, from
/// an emulator in this process.
pub async fn crm_token(emu: &Emulator) -> String {
    token_in_process(emu, "app-1", "s3cret", "https://crm.crm.dynamics.com").await
}
