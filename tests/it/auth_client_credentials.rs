//! Entra client credentials (secret and workload identity) against wiremock, the token cache,
//! `scope_for`, and the `auth:` configuration block.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lagwatch::auth::{
    self, AccessToken, AuthConfig, AuthError, ClientCredentials, TokenCache, TokenSource,
};
use lagwatch::config::{Secret, decode};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TENANT: &str = "8f2c1b7e-0000-4000-8000-0000000000aa";
const CLIENT: &str = "3d9a0c55-1111-4222-8333-444455556666";
const SECRET: &str = "s3cr3t~Value.With+Chars/&=";
const SCOPE: &str = "https://org.crm.dynamics.com/.default";
const TOKEN_PATH: &str = "/8f2c1b7e-0000-4000-8000-0000000000aa/oauth2/v2.0/token";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lagwatch-auth-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(path: &PathBuf, content: &str) {
    // Write then rename, as the kubelet does, so a reader never sees half a file.
    let tmp = path.with_extension("tmp");
    std::fs::File::create(&tmp)
        .unwrap()
        .write_all(content.as_bytes())
        .unwrap();
    std::fs::rename(tmp, path).unwrap();
}

fn secret_file(name: &str) -> Secret {
    let f = temp_dir(name).join("secret");
    write(&f, &format!("{SECRET}\n"));
    Secret::resolve(&format!("file:{}", f.display())).unwrap()
}

fn http() -> reqwest::Client {
    // No idle-pool timer, so paused-time tests are not advanced by the pool.
    reqwest::Client::builder()
        .pool_idle_timeout(None)
        .build()
        .unwrap()
}

fn ok_token(token: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "token_type": "Bearer",
        "expires_in": 3599,
        "ext_expires_in": 3599,
        "access_token": token,
    }))
}

fn form(req: &Request) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(&req.body)
        .into_owned()
        .collect::<BTreeMap<_, _>>()
}

fn secret_source(server: &MockServer, name: &str) -> ClientCredentials {
    ClientCredentials::with_secret(&server.uri(), TENANT, CLIENT, secret_file(name), http())
        .unwrap()
}

/// Everything that could be printed about a failure, to search for secrets.
fn printed(e: &AuthError) -> String {
    format!("{e}\n{e:?}\n{e:#?}")
}

#[tokio::test]
async fn client_secret_request_has_the_documented_shape() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ok_token("eyJ0eXAi.tok-1"))
        .expect(1)
        .mount(&server)
        .await;
    let source = secret_source(&server, "shape");
    let before = tokio::time::Instant::now();
    let token = source.fetch(SCOPE).await.unwrap();
    assert_eq!(token.expose(), "eyJ0eXAi.tok-1");
    let lifetime = token.expires_at() - before;
    assert!(
        (Duration::from_secs(3590)..=Duration::from_secs(3600)).contains(&lifetime),
        "{lifetime:?}"
    );

    let requests = server.received_requests().await.unwrap();
    let req = &requests[0];
    assert_eq!(req.method.as_str(), "POST");
    assert_eq!(req.url.path(), TOKEN_PATH);
    assert_eq!(req.url.query(), None, "nothing in the URL");
    assert!(!req.url.as_str().contains("s3cr3t"));
    assert_eq!(
        req.headers.get("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );
    assert!(req.headers.get("client-request-id").is_some());
    let expected: BTreeMap<String, String> = [
        ("client_id", CLIENT),
        ("scope", SCOPE),
        ("client_secret", SECRET),
        ("grant_type", "client_credentials"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(form(req), expected, "exactly the documented fields");
}

#[tokio::test]
async fn an_authority_path_is_kept_as_for_the_emulator() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/entra{TOKEN_PATH}")))
        .respond_with(ok_token("t"))
        .expect(1)
        .mount(&server)
        .await;
    let source = ClientCredentials::with_secret(
        &format!("{}/entra", server.uri()),
        TENANT,
        CLIENT,
        secret_file("emulator-path"),
        http(),
    )
    .unwrap();
    source.fetch(SCOPE).await.unwrap();
}

#[tokio::test]
async fn a_400_is_rejected_with_code_and_trace_id_but_no_secret() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_client",
            "error_description": format!("AADSTS7000215: Invalid client secret provided: '{SECRET}'. Trace ID: 0aa1"),
            "error_codes": [7000215],
            "timestamp": "2026-05-01 10:00:00Z",
            "trace_id": "0aa1c0de-0000-4000-8000-000000000001",
            "correlation_id": "c0e1a7e0-0000-4000-8000-000000000002",
        })))
        .mount(&server)
        .await;
    let source = secret_source(&server, "rejected");
    let e = source.fetch(SCOPE).await.unwrap_err();
    assert_eq!(e.kind(), "rejected");
    assert_eq!(e.error_code(), Some("invalid_client"));
    let text = e.to_string();
    for part in [
        "HTTP 400",
        "invalid_client",
        "AADSTS7000215",
        "0aa1c0de-0000-4000-8000-000000000001",
        "c0e1a7e0-0000-4000-8000-000000000002",
        TOKEN_PATH,
    ] {
        assert!(text.contains(part), "{part} missing from {text}");
    }
    let all = printed(&e);
    assert!(!all.contains("s3cr3t"), "{all}");
    assert!(!all.contains("Invalid client secret provided"), "{all}");
    assert!(!format!("{source:?}").contains("s3cr3t"));
}

#[tokio::test]
async fn transient_and_malformed_answers_are_classified_without_echo() {
    let server = MockServer::start().await;
    let cases: Vec<(ResponseTemplate, &str)> = vec![
        (
            ResponseTemplate::new(503).set_body_string("busy"),
            "transport",
        ),
        (ResponseTemplate::new(429), "transport"),
        (
            ResponseTemplate::new(200).set_body_string(format!("<html>{SECRET}</html>")),
            "bad_response",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({"access_token": "tok-leak"})),
            "bad_response",
        ),
        (
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "tok-leak", "expires_in": "tok-leak"})),
            "bad_response",
        ),
        (
            ResponseTemplate::new(200).set_body_json(
                json!({"access_token": "tok-leak", "expires_in": 3599, "token_type": "pop"}),
            ),
            "bad_response",
        ),
        (
            ResponseTemplate::new(401).set_body_string("nope"),
            "rejected",
        ),
    ];
    let source = secret_source(&server, "classified");
    for (template, kind) in cases {
        server.reset().await;
        Mock::given(method("POST"))
            .respond_with(template)
            .mount(&server)
            .await;
        let e = source.fetch(SCOPE).await.unwrap_err();
        assert_eq!(e.kind(), kind, "{e}");
        let all = printed(&e);
        assert!(
            !all.contains("s3cr3t") && !all.contains("tok-leak"),
            "{all}"
        );
    }
}

#[tokio::test]
async fn connection_failures_are_transport_errors() {
    // A port nobody listens on (a dropped MockServer goes back to wiremock's pool, still up).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let source =
        ClientCredentials::with_secret(&uri, TENANT, CLIENT, secret_file("refused"), http())
            .unwrap();
    let e = source.fetch(SCOPE).await.unwrap_err();
    assert_eq!(e.kind(), "transport", "{e}");
    assert!(!printed(&e).contains("s3cr3t"));
}

#[tokio::test]
async fn workload_identity_rereads_the_token_file_on_every_fetch() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ok_token("tok"))
        .expect(2)
        .mount(&server)
        .await;
    let file = temp_dir("workload").join("token");
    write(&file, "eyJhbGciOiJSUzI1NiJ9.first.sig\n");
    let config: AuthConfig = decode(
        "auth",
        json!({
            "method": "workload_identity",
            "tenant_id": TENANT,
            "client_id": CLIENT,
            "token_file": file,
            "authority": server.uri(),
        }),
    )
    .unwrap();
    config.validate("auth").unwrap();
    let source = auth::build(&config, http()).unwrap();
    source.fetch(SCOPE).await.unwrap();
    write(&file, "eyJhbGciOiJSUzI1NiJ9.second.sig");
    source.fetch(SCOPE).await.unwrap();

    let requests = server.received_requests().await.unwrap();
    let assertions: Vec<String> = requests
        .iter()
        .map(|r| {
            let f = form(r);
            assert_eq!(
                f.get("client_assertion_type").map(String::as_str),
                Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            );
            assert_eq!(
                f.get("grant_type").map(String::as_str),
                Some("client_credentials")
            );
            assert_eq!(f.get("client_id").map(String::as_str), Some(CLIENT));
            assert_eq!(f.get("scope").map(String::as_str), Some(SCOPE));
            assert!(!f.contains_key("client_secret"));
            assert_eq!(r.url.query(), None);
            f["client_assertion"].clone()
        })
        .collect();
    assert_eq!(
        assertions,
        [
            "eyJhbGciOiJSUzI1NiJ9.first.sig",
            "eyJhbGciOiJSUzI1NiJ9.second.sig"
        ]
    );

    // A missing file is a config error naming the file, never an assertion.
    std::fs::remove_file(&file).unwrap();
    let e = source.fetch(SCOPE).await.unwrap_err();
    assert_eq!(e.kind(), "config");
    assert!(e.to_string().contains(&file.display().to_string()), "{e}");
    assert!(!printed(&e).contains("second.sig"));
}

#[tokio::test]
async fn rejected_assertions_never_show_the_assertion() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_client",
            "error_description": "AADSTS700024: Client assertion eyJhbGciOiJSUzI1NiJ9.payload.sig is not within its valid time range.",
            "error_codes": [700024],
            "trace_id": "1b2c",
            "correlation_id": "3d4e",
        })))
        .mount(&server)
        .await;
    let file = temp_dir("assertion-rejected").join("token");
    write(&file, "eyJhbGciOiJSUzI1NiJ9.payload.sig");
    let source =
        ClientCredentials::with_token_file(&server.uri(), TENANT, CLIENT, file, http()).unwrap();
    let e = source.fetch(SCOPE).await.unwrap_err();
    assert!(e.to_string().contains("AADSTS700024"), "{e}");
    assert!(!printed(&e).contains("payload"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn the_cache_reuses_a_token_and_renews_it_five_minutes_before_expiry() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ok_token("tok"))
        .mount(&server)
        .await;
    let cache = TokenCache::new(Arc::new(secret_source(&server, "cache")));
    let first = cache.token(SCOPE).await.unwrap();
    for _ in 0..5 {
        assert_eq!(cache.token(SCOPE).await.unwrap(), first);
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 1);

    // Just before the renewal point: still cached.
    let renew_at = first.expires_at() - Duration::from_secs(300);
    tokio::time::advance(renew_at - tokio::time::Instant::now() - Duration::from_secs(1)).await;
    assert_eq!(cache.token(SCOPE).await.unwrap(), first);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);

    // Inside the last five minutes: renewed once, then cached again.
    tokio::time::advance(Duration::from_secs(2)).await;
    let second = cache.token(SCOPE).await.unwrap();
    assert!(second.expires_at() > first.expires_at());
    cache.token(SCOPE).await.unwrap();
    assert_eq!(server.received_requests().await.unwrap().len(), 2);

    // Another scope is another token.
    cache
        .token("https://env.operations.dynamics.com/.default")
        .await
        .unwrap();
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_callers_cause_one_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ok_token("tok-shared").set_delay(Duration::from_millis(300)))
        .expect(1)
        .mount(&server)
        .await;
    let cache = TokenCache::new(Arc::new(secret_source(&server, "concurrent")));
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.token(SCOPE).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().expose(), "tok-shared");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_after_a_401_wave_refetches_exactly_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ok_token("tok-old"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ok_token("tok-new").set_delay(Duration::from_millis(200)))
        .expect(1)
        .mount(&server)
        .await;
    let cache = TokenCache::new(Arc::new(secret_source(&server, "invalidate")));
    let old = cache.token(SCOPE).await.unwrap();
    assert_eq!(old.expose(), "tok-old");
    // Twenty requests were sent with the old token and all came back 401.
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let cache = cache.clone();
            let refused = old.clone();
            tokio::spawn(async move {
                cache.invalidate(SCOPE, refused.expose());
                cache.token(SCOPE).await
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().expose(), "tok-new");
    }
    // A late 401 for the old token does not drop the new one.
    cache.invalidate(SCOPE, "tok-old");
    assert_eq!(cache.token(SCOPE).await.unwrap().expose(), "tok-new");
}

#[test]
fn scope_for_examples() {
    for (url, scope) in [
        (
            "https://org.crm.dynamics.com/api/data/v9.2/",
            "https://org.crm.dynamics.com/.default",
        ),
        (
            "https://contoso-prod.operations.dynamics.com/data/CustomersV3",
            "https://contoso-prod.operations.dynamics.com/.default",
        ),
        (
            "https://Org.CRM4.dynamics.com",
            "https://org.crm4.dynamics.com/.default",
        ),
        (
            "http://127.0.0.1:41234/dataverse/api/data/v9.2/",
            "http://127.0.0.1:41234/.default",
        ),
    ] {
        assert_eq!(auth::scope_for(url).unwrap(), scope);
    }
    assert_eq!(auth::SEARCH_SCOPE, "https://search.azure.com/.default");
    assert_eq!(auth::STORAGE_SCOPE, "https://storage.azure.com/.default");
    assert_eq!(
        auth::scope_for("org.crm.dynamics.com").unwrap_err().kind(),
        "config"
    );
}

fn issue(yaml: serde_json::Value) -> lagwatch::config::Issue {
    let config: AuthConfig = match decode("systems.crm.auth", yaml) {
        Ok(c) => c,
        Err(issue) => return issue,
    };
    config.validate("systems.crm.auth").unwrap_err()
}

#[test]
fn config_errors_name_the_key() {
    let secret_ref = {
        let f = temp_dir("config").join("secret");
        write(&f, SECRET);
        format!("file:{}", f.display())
    };
    let cases = [
        (
            json!({"method": "client_secret", "client_id": CLIENT, "client_secret": secret_ref}),
            "systems.crm.auth.tenant_id",
            "needs tenant_id",
        ),
        (
            json!({"method": "client_secret", "tenant_id": TENANT, "client_secret": secret_ref}),
            "systems.crm.auth.client_id",
            "needs client_id",
        ),
        (
            json!({"method": "client_secret", "tenant_id": TENANT, "client_id": CLIENT}),
            "systems.crm.auth.client_secret",
            "env:NAME",
        ),
        (
            json!({"method": "client_secret", "tenant_id": TENANT, "client_id": CLIENT,
                   "client_secret": secret_ref, "authority": "login.microsoftonline.com"}),
            "systems.crm.auth.authority",
            "http",
        ),
        (
            json!({"method": "client_secret", "tenant_id": "a/b", "client_id": CLIENT,
                   "client_secret": secret_ref}),
            "systems.crm.auth.tenant_id",
            "tenant id",
        ),
        (
            json!({"method": "client_secret", "tenant_id": TENANT, "client_id": CLIENT,
                   "client_secret": secret_ref, "token_file": "/x"}),
            "systems.crm.auth.token_file",
            "not used by method client_secret",
        ),
        (
            json!({"method": "managed_identity", "client_secret": secret_ref}),
            "systems.crm.auth.client_secret",
            "not used by method managed_identity",
        ),
        (
            json!({"method": "managed_identity", "endpoint": "169.254.169.254"}),
            "systems.crm.auth.endpoint",
            "URL",
        ),
        (
            json!({"method": "client_certificate", "tenant_id": TENANT, "client_id": CLIENT}),
            "systems.crm.auth.certificate",
            "method client_certificate needs certificate",
        ),
        (json!({"method": "password"}), "systems.crm.auth.method", ""),
        (
            json!({"method": "client_secret", "tenant": TENANT}),
            "systems.crm.auth.tenant",
            "",
        ),
        (
            json!({"method": "client_secret", "tenant_id": TENANT, "client_id": CLIENT,
                   "client_secret": SECRET}),
            "systems.crm.auth.client_secret",
            "never literal",
        ),
    ];
    for (yaml, key, reason) in cases {
        let issue = issue(yaml.clone());
        assert_eq!(issue.key, key, "{yaml}: {issue:?}");
        assert!(issue.reason.contains(reason), "{yaml}: {}", issue.reason);
        assert!(!issue.reason.contains("s3cr3t"), "{}", issue.reason);
    }
}

#[test]
fn valid_configs_validate_and_debug_shows_no_secret() {
    let f = temp_dir("valid").join("secret");
    write(&f, SECRET);
    let config: AuthConfig = decode(
        "auth",
        json!({"method": "client_secret", "tenant_id": TENANT, "client_id": CLIENT,
               "client_secret": format!("file:{}", f.display())}),
    )
    .unwrap();
    config.validate("auth").unwrap();
    assert!(!format!("{config:?}").contains("s3cr3t"));
    let source = auth::build(&config, http()).unwrap();
    drop(source);
    let config: AuthConfig = decode(
        "auth",
        json!({"method": "client_certificate", "tenant_id": TENANT, "client_id": CLIENT}),
    )
    .unwrap();
    let e = auth::build(&config, http()).err().unwrap();
    assert_eq!(e.kind(), "config");
    assert!(e.to_string().contains("needs certificate"), "{e}");
}

#[test]
fn access_tokens_never_print() {
    let t = AccessToken::new(
        "eyJ0b2tlbg.leak",
        tokio::time::Instant::now() + Duration::from_secs(5),
    );
    for s in [format!("{t}"), format!("{t:?}"), format!("{t:#?}")] {
        assert!(!s.contains("leak"), "{s}");
    }
}

/// A `tracing` writer that keeps everything written, to search it for secrets.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn nothing_secret_is_logged_even_at_trace_level() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ok_token("tok-logged?"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_client", "error_codes": [7000215],
            "error_description": format!("echo {SECRET}"), "trace_id": "ab-cd",
        })))
        .mount(&server)
        .await;
    let cache = TokenCache::new(Arc::new(secret_source(&server, "logs")));
    let token = cache.token(SCOPE).await.unwrap();
    cache.invalidate(SCOPE, token.expose());
    assert!(cache.token(SCOPE).await.is_err());

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("Entra"), "tracing was captured: {logs}");
    assert!(!logs.contains("s3cr3t"), "{logs}");
    assert!(!logs.contains("tok-logged"), "{logs}");
}
