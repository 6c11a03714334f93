//! The token sources against the project's emulator (`/entra/{tenant}/oauth2/v2.0/token` over
//! plain http), and the tokens accepted by its Dataverse service.

use std::path::PathBuf;

use lagwatch::auth::{self, AuthConfig, TokenCache, TokenSource};
use lagwatch::config::decode;
use lagwatch_emulator::{Emulator, Scenario};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const SCENARIO: &str = r#"
credentials:
  - { tenant: contoso, client_id: lagwatch-app, client_secret: emu-s3cr3t }
  - { tenant: contoso, client_id: lagwatch-wi, accept_assertions: true }
dataverse:
  crm:
    tables:
      accounts:
        id: accountid
        columns: { name: string }
"#;

/// The emulator's canonical resource for environment `crm`.
const CRM_SCOPE: &str = "https://crm.crm.dynamics.com/.default";

struct Server {
    base: String,
    stop: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start() -> Server {
    let scenario = Scenario::from_yaml(SCENARIO).unwrap_or_else(|e| panic!("{e}"));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let emu = Emulator::new(scenario);
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move { emu.serve(listener, s).await });
    Server { base, stop }
}

fn temp_file(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lagwatch-auth-emu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join(name);
    std::fs::write(&f, content).unwrap();
    f
}

fn b64url(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A federated token as the kubelet projects it (the emulator checks iss, sub and exp).
fn federated_token(client_id: &str) -> String {
    let exp = chrono::Utc::now().timestamp() + 3600;
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64url(br#"{"alg":"RS256","typ":"JWT","kid":"k1"}"#),
        b64url(
            json!({"iss": client_id, "sub": client_id, "aud": "api://AzureADTokenExchange", "exp": exp})
                .to_string()
                .as_bytes()
        )
    )
}

async fn dataverse_status(base: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}/crm/api/data/v9.2/accounts?$top=1"))
        .bearer_auth(token)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn client_secret_tokens_from_the_emulator_open_dataverse() {
    let server = start().await;
    let secret = temp_file("secret", "emu-s3cr3t\n");
    let config: AuthConfig = decode(
        "auth",
        json!({
            "method": "client_secret",
            "tenant_id": "contoso",
            "client_id": "lagwatch-app",
            "client_secret": format!("file:{}", secret.display()),
            "authority": format!("{}/entra", server.base),
        }),
    )
    .unwrap();
    config.validate("auth").unwrap();
    let cache = TokenCache::new(auth::build(&config, reqwest::Client::new()).unwrap());
    let token = cache.token(CRM_SCOPE).await.unwrap();
    assert!(token.remaining().as_secs() > 3500);
    assert_eq!(dataverse_status(&server.base, token.expose()).await, 200);
    assert_eq!(dataverse_status(&server.base, "forged").await, 401);
}

#[tokio::test]
async fn workload_identity_assertions_are_accepted_by_the_emulator() {
    let server = start().await;
    let file = temp_file("federated", &federated_token("lagwatch-wi"));
    let config: AuthConfig = decode(
        "auth",
        json!({
            "method": "workload_identity",
            "tenant_id": "contoso",
            "client_id": "lagwatch-wi",
            "token_file": file,
            "authority": format!("{}/entra/", server.base),
        }),
    )
    .unwrap();
    let source = auth::build(&config, reqwest::Client::new()).unwrap();
    let token = source.fetch(CRM_SCOPE).await.unwrap();
    assert_eq!(dataverse_status(&server.base, token.expose()).await, 200);

    // A token projected for another identity is refused with Entra's code, not echoed.
    let other = federated_token("someone-else");
    std::fs::write(&file, &other).unwrap();
    let e = source.fetch(CRM_SCOPE).await.unwrap_err();
    assert_eq!(e.kind(), "rejected");
    assert!(e.to_string().contains("AADSTS700021"), "{e}");
    assert!(!format!("{e}{e:?}").contains(&other[..20]), "{e}");
}

#[tokio::test]
async fn emulator_refusals_carry_codes_and_ids_but_no_secret() {
    let server = start().await;
    let wrong = temp_file("wrong", "not-the-s3cr3t");
    let source = auth::ClientCredentials::with_secret(
        &format!("{}/entra", server.base),
        "contoso",
        "lagwatch-app",
        lagwatch::config::Secret::resolve(&format!("file:{}", wrong.display())).unwrap(),
        reqwest::Client::new(),
    )
    .unwrap();
    let e = source.fetch(CRM_SCOPE).await.unwrap_err();
    let text = format!("{e}\n{e:?}");
    assert_eq!(e.kind(), "rejected", "{text}");
    assert_eq!(e.error_code(), Some("invalid_client"));
    assert!(
        text.contains("AADSTS7000215") && text.contains("trace_id"),
        "{text}"
    );
    assert!(!text.contains("s3cr3t"), "{text}");

    // An unknown resource: the scope of a URL the tenant does not know.
    let secret = temp_file("right", "emu-s3cr3t");
    let source = auth::ClientCredentials::with_secret(
        &format!("{}/entra", server.base),
        "contoso",
        "lagwatch-app",
        lagwatch::config::Secret::resolve(&format!("file:{}", secret.display())).unwrap(),
        reqwest::Client::new(),
    )
    .unwrap();
    let scope = auth::scope_for("https://unknown.crm.dynamics.com/api/data/v9.2/").unwrap();
    let e = source.fetch(&scope).await.unwrap_err();
    assert!(e.to_string().contains("AADSTS500011"), "{e}");
}
