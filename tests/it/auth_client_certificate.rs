//! `client_certificate`: the token request against wiremock (exact form fields; the assertion
//! verifies with the certificate's public key and carries aud, iss, sub, exp as documented),
//! configuration errors with their key paths, and files made by the `openssl` tool.
//!
//! Keys and certificates are generated at test time (`src/auth/test_pki.rs`): no private key is
//! committed.

use crate::test_pki;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use aws_lc_rs::digest::{SHA1_FOR_LEGACY_USE_ONLY, SHA256};
use lagwatch::auth::{self, AuthConfig, AuthError};
use lagwatch::config::decode;
use serde_json::{Value, json};
use test_pki::{TestKey, certificate_public_key, pem, thumbprint, verify_rs256};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TENANT: &str = "8f2c1b7e-0000-4000-8000-0000000000aa";
const CLIENT: &str = "3d9a0c55-1111-4222-8333-444455556666";
const SCOPE: &str = "https://org.crm.dynamics.com/.default";
const TOKEN_PATH: &str = "/8f2c1b7e-0000-4000-8000-0000000000aa/oauth2/v2.0/token";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lagwatch-cert-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
    let f = dir.join(name);
    std::fs::write(&f, content).unwrap();
    f
}

/// The certificate (DER) and a PEM file with it and its PKCS#8 key.
fn bundle(name: &str) -> (Vec<u8>, PathBuf) {
    let key = TestKey::shared();
    let cert = key.current_certificate();
    let file = write(
        &temp_dir(name),
        "app.pem",
        format!("{}{}", pem("CERTIFICATE", &cert), key.pkcs8_pem()),
    );
    (cert, file)
}

fn config(authority: &str, pem_file: &Path) -> AuthConfig {
    let config: AuthConfig = decode(
        "systems.crm.auth",
        json!({
            "method": "client_certificate", "tenant_id": TENANT, "client_id": CLIENT,
            "certificate": format!("file:{}", pem_file.display()), "authority": authority,
        }),
    )
    .unwrap_or_else(|i| panic!("{}: {}", i.key, i.reason));
    config
        .validate("systems.crm.auth")
        .unwrap_or_else(|i| panic!("{}: {}", i.key, i.reason));
    config
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

fn ok_token(token: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token,
    }))
}

fn form(req: &Request) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(&req.body)
        .into_owned()
        .collect()
}

/// Checks one captured assertion against the certificate; returns its claims.
fn check_assertion(assertion: &str, cert: &[u8], audience: &str) -> Value {
    let (header, claims) = verify_rs256(assertion, &certificate_public_key(cert));
    assert_eq!(
        header,
        json!({
            "alg": "RS256", "typ": "JWT",
            "x5t": thumbprint(&SHA1_FOR_LEGACY_USE_ONLY, cert),
            "x5t#S256": thumbprint(&SHA256, cert),
        })
    );
    let now = chrono::Utc::now().timestamp();
    let num = |name: &str| claims[name].as_i64().unwrap_or_else(|| panic!("{name}"));
    assert_eq!(claims["aud"], audience);
    assert_eq!(claims["iss"], CLIENT);
    assert_eq!(claims["sub"], CLIENT);
    assert!((num("nbf") - now).abs() <= 5, "nbf is now: {claims}");
    assert_eq!(num("iat"), num("nbf"));
    assert_eq!(num("exp") - num("nbf"), 600, "valid for 10 minutes");
    uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).expect("jti is a UUID");
    assert_eq!(
        claims.as_object().unwrap().len(),
        7,
        "aud exp iat iss jti nbf sub"
    );
    claims
}

#[tokio::test]
async fn the_token_request_has_the_documented_form_and_a_verifiable_assertion() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .respond_with(ok_token("tok-1"))
        .expect(2)
        .mount(&server)
        .await;
    let (cert, file) = bundle("shape");
    let source = auth::build(&config(&server.uri(), &file), http()).unwrap();
    assert_eq!(source.fetch(SCOPE).await.unwrap().expose(), "tok-1");
    source.fetch(SCOPE).await.unwrap();

    let requests = server.received_requests().await.unwrap();
    let audience = format!("{}{TOKEN_PATH}", server.uri());
    let mut jtis = Vec::new();
    for req in &requests {
        assert!(req.url.query().is_none(), "nothing in the URL");
        let form = form(req);
        assert_eq!(
            form.keys().map(String::as_str).collect::<Vec<_>>(),
            [
                "client_assertion",
                "client_assertion_type",
                "client_id",
                "grant_type",
                "scope"
            ]
        );
        assert_eq!(form["grant_type"], "client_credentials");
        assert_eq!(form["client_id"], CLIENT);
        assert_eq!(form["scope"], SCOPE);
        assert_eq!(
            form["client_assertion_type"],
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        );
        let claims = check_assertion(&form["client_assertion"], &cert, &audience);
        jtis.push(claims["jti"].clone());
    }
    assert_eq!(requests.len(), 2);
    assert_ne!(jtis[0], jtis[1], "a fresh assertion for every request");
}

#[tokio::test]
async fn a_refused_assertion_is_reported_without_the_assertion_or_the_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": "invalid_client",
            "error_description": "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application.",
            "error_codes": [700027],
            "trace_id": "0b1e5f0a-1111-2222-3333-444455556666",
        })))
        .mount(&server)
        .await;
    let (_, file) = bundle("refused");
    let config = config(&server.uri(), &file);
    let e = auth::build(&config, http())
        .unwrap()
        .fetch(SCOPE)
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::Rejected { status: 401, .. }), "{e}");
    assert_eq!(e.error_code(), Some("invalid_client"));
    let printed = format!("{e}\n{e:?}\n{config:?}");
    assert!(printed.contains("AADSTS700027"), "{printed}");
    let requests = server.received_requests().await.unwrap();
    let assertion = &form(&requests[0])["client_assertion"];
    let signature = assertion.rsplit('.').next().unwrap();
    assert!(!printed.contains(signature), "{printed}");
    let pem_text = std::fs::read_to_string(&file).unwrap();
    for line in pem_text.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!printed.contains(line), "PEM content in: {printed}");
    }
}

#[tokio::test]
async fn an_authority_path_is_part_of_the_audience() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/entra{TOKEN_PATH}")))
        .respond_with(ok_token("tok-e"))
        .mount(&server)
        .await;
    let (cert, file) = bundle("authority");
    let authority = format!("{}/entra/", server.uri());
    let source = auth::build(&config(&authority, &file), http()).unwrap();
    source.fetch(SCOPE).await.unwrap();
    let requests = server.received_requests().await.unwrap();
    check_assertion(
        &form(&requests[0])["client_assertion"],
        &cert,
        &format!("{}/entra{TOKEN_PATH}", server.uri()),
    );
}

fn issue(value: Value) -> (String, String) {
    let result = decode::<AuthConfig>("systems.crm.auth", value)
        .and_then(|c| c.validate("systems.crm.auth"));
    match result {
        Err(i) => (i.key, i.reason),
        Ok(()) => panic!("accepted"),
    }
}

#[test]
fn configuration_errors_name_the_key_and_what_is_needed() {
    let dir = temp_dir("errors");
    let key = TestKey::shared();
    let cert = pem("CERTIFICATE", &key.current_certificate());
    let other = pem("CERTIFICATE", &TestKey::other().current_certificate());
    let file = |name: &str, content: &str| format!("file:{}", write(&dir, name, content).display());
    let good = file("good.pem", &format!("{cert}{}", key.pkcs1_pem()));
    let base = |certificate: Option<&str>| {
        let mut v =
            json!({"method": "client_certificate", "tenant_id": TENANT, "client_id": CLIENT});
        if let Some(c) = certificate {
            v["certificate"] = json!(c);
        }
        v
    };
    let missing = format!("file:{}", dir.join("missing.pem").display());
    let cert_only = file("cert-only.pem", &cert);
    let key_only = file("key-only.pem", &key.pkcs8_pem());
    let encrypted = file(
        "encrypted.pem",
        &format!("{cert}{}", pem("ENCRYPTED PRIVATE KEY", &[0x30, 0x00])),
    );
    let mismatched = file("mismatch.pem", &format!("{other}{}", key.pkcs8_pem()));
    let pfx = format!(
        "file:{}",
        write(
            &dir,
            "app.pfx",
            [0x30, 0x82, 0x0A, 0x1F, 0x02, 0x01, 0x03, 0xA0, 0xFF]
        )
        .display()
    );
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            base(None),
            "systems.crm.auth.certificate",
            "method client_certificate needs certificate",
        ),
        (
            base(Some(&missing)),
            "systems.crm.auth.certificate",
            "cannot read certificate file",
        ),
        (
            base(Some(&cert_only)),
            "systems.crm.auth.certificate",
            "holds no private key",
        ),
        (
            base(Some(&key_only)),
            "systems.crm.auth.certificate",
            "holds no certificate",
        ),
        (
            base(Some(&encrypted)),
            "systems.crm.auth.certificate",
            "encrypted private key",
        ),
        (
            base(Some(&mismatched)),
            "systems.crm.auth.certificate",
            "does not belong to the certificate",
        ),
        (
            base(Some(&pfx)),
            "systems.crm.auth.certificate",
            "openssl pkcs12 -in app.pfx -out app.pem -nodes",
        ),
        (
            base(Some("app.pem")),
            "systems.crm.auth.certificate",
            "never literal",
        ),
        (
            json!({"method": "client_certificate", "client_id": CLIENT, "certificate": good}),
            "systems.crm.auth.tenant_id",
            "needs tenant_id",
        ),
        (
            json!({"method": "client_certificate", "tenant_id": TENANT, "client_id": CLIENT,
                   "certificate": good, "client_secret": good}),
            "systems.crm.auth.client_secret",
            "not used by method client_certificate",
        ),
        (
            json!({"method": "client_secret", "tenant_id": TENANT, "client_id": CLIENT,
                   "client_secret": "env:PATH", "certificate": good}),
            "systems.crm.auth.certificate",
            "not used by method client_secret",
        ),
        (
            json!({"method": "managed_identity", "certificate": good}),
            "systems.crm.auth.certificate",
            "not used by method managed_identity",
        ),
    ];
    let key_lines: Vec<String> = key
        .pkcs8_pem()
        .lines()
        .chain(key.pkcs1_pem().lines())
        .filter(|l| !l.starts_with("-----"))
        .map(str::to_string)
        .collect();
    for (value, want_key, want_reason) in cases {
        let (key, reason) = issue(value.clone());
        assert_eq!(key, want_key, "{value}: {reason}");
        assert!(reason.contains(want_reason), "{value}: {reason}");
        for line in &key_lines {
            assert!(!reason.contains(line.as_str()), "key material in: {reason}");
        }
    }
    // The good one passes, and Debug shows where the PEM came from but not what it holds.
    let config: AuthConfig = decode("auth", base(Some(&good))).unwrap();
    config.validate("auth").unwrap();
    let debug = format!("{config:?}");
    assert!(
        debug.contains("good.pem") && !debug.contains("BEGIN"),
        "{debug}"
    );
}

#[test]
fn check_config_reports_a_bad_certificate_at_its_key() {
    let dir = temp_dir("check-config");
    let cert_only = write(
        &dir,
        "cert-only.pem",
        pem("CERTIFICATE", &TestKey::shared().current_certificate()),
    );
    let yaml = |certificate: &Path| {
        format!(
            r#"
instance: test
systems:
  crm:
    kind: dataverse
    url: https://contoso.crm4.dynamics.com
    table: lw_sentinels
    id_column: lw_sentinelid
    key_column: lw_key
    payload_column: lw_payload
    auth:
      method: client_certificate
      tenant_id: {TENANT}
      client_id: {CLIENT}
      certificate: file:{}
  copy:
    kind: dataverse
    url: https://contoso-copy.crm4.dynamics.com
    table: lw_sentinels
    id_column: lw_sentinelid
    key_column: lw_key
    payload_column: lw_payload
    auth:
      method: managed_identity
      endpoint: http://127.0.0.1:1/token
paths:
  - source: crm
    target: copy
"#,
            certificate.display()
        )
    };
    let e = lagwatch_emulator::REGISTRY
        .from_yaml("lagwatch.yaml", &yaml(&cert_only))
        .unwrap_err();
    assert_eq!(e.key(), Some("systems.crm.auth.certificate"), "{e}");
    assert!(e.to_string().contains("holds no private key"), "{e}");
    let (_, good) = bundle("check-config-good");
    lagwatch_emulator::REGISTRY
        .from_yaml("lagwatch.yaml", &yaml(&good))
        .unwrap_or_else(|e| panic!("{e}"));
}

// --- Files made by the openssl tool, as operators will make them -------------------------

/// `openssl` with `args` in `dir`; None if the tool is not installed (a failure instead when
/// `LAGWATCH_REQUIRE_TOOLS=1`).
fn openssl(dir: &Path, args: &[&str]) -> Option<()> {
    match Command::new("openssl").args(args).current_dir(dir).output() {
        Ok(out) => {
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(())
        }
        Err(e) => {
            crate::common::tools::missing("openssl", &format!("cannot run ({e})"));
            None
        }
    }
}

fn pem_der(text: &str, label: &str) -> Vec<u8> {
    use base64::Engine as _;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin).unwrap() + begin.len();
    let stop = text[start..].find(&end).unwrap() + start;
    let body: String = text[start..stop].split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

#[tokio::test]
async fn files_made_with_openssl_work_or_are_refused_with_the_conversion() {
    let dir = temp_dir("openssl");
    let Some(()) = openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-subj",
            "/CN=lagwatch-test",
            "-days",
            "2",
        ],
    ) else {
        return;
    };
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let cert_pem = read("cert.pem");
    let cert = pem_der(&cert_pem, "CERTIFICATE");
    write(&dir, "app.pem", format!("{cert_pem}{}", read("key.pem")));
    openssl(
        &dir,
        &["rsa", "-in", "key.pem", "-traditional", "-out", "key1.pem"],
    )
    .unwrap();
    write(
        &dir,
        "app-pkcs1.pem",
        format!("{}{cert_pem}", read("key1.pem")),
    );
    // A .pfx as the portal or Key Vault hands it out, and its documented conversion.
    openssl(
        &dir,
        &[
            "pkcs12", "-export", "-in", "cert.pem", "-inkey", "key.pem", "-passout", "pass:",
            "-out", "app.pfx",
        ],
    )
    .unwrap();
    openssl(
        &dir,
        &[
            "pkcs12",
            "-in",
            "app.pfx",
            "-out",
            "from-pfx.pem",
            "-nodes",
            "-passin",
            "pass:",
        ],
    )
    .unwrap();
    openssl(
        &dir,
        &[
            "pkcs8", "-topk8", "-in", "key.pem", "-passout", "pass:x", "-out", "enc8.pem",
        ],
    )
    .unwrap();
    write(
        &dir,
        "app-enc.pem",
        format!("{cert_pem}{}", read("enc8.pem")),
    );
    // The public key as openssl reads it from the certificate (SubjectPublicKeyInfo).
    openssl(
        &dir,
        &[
            "x509", "-in", "cert.pem", "-pubkey", "-noout", "-out", "pub.pem",
        ],
    )
    .unwrap();
    let spki = pem_der(&read("pub.pem"), "PUBLIC KEY");

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ok_token("tok-o"))
        .mount(&server)
        .await;
    let audience = format!("{}{TOKEN_PATH}", server.uri());
    for name in ["app.pem", "app-pkcs1.pem", "from-pfx.pem"] {
        let source = auth::build(&config(&server.uri(), &dir.join(name)), http()).unwrap();
        source
            .fetch(SCOPE)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let requests = server.received_requests().await.unwrap();
        let assertion = &form(requests.last().unwrap())["client_assertion"];
        check_assertion(assertion, &cert, &audience);
        // And with the key openssl extracted, not ours.
        verify_rs256(assertion, &spki);
    }
    for (name, want) in [
        ("app.pfx", "openssl pkcs12"),
        ("app-enc.pem", "encrypted private key"),
    ] {
        let (key, reason) = issue(json!({
            "method": "client_certificate", "tenant_id": TENANT, "client_id": CLIENT,
            "certificate": format!("file:{}", dir.join(name).display()),
        }));
        assert_eq!(key, "systems.crm.auth.certificate");
        assert!(reason.contains(want), "{name}: {reason}");
    }
}

#[test]
fn openssl_accepts_the_generated_test_certificates() {
    let dir = temp_dir("openssl-accepts");
    let key = TestKey::shared();
    write(
        &dir,
        "c.pem",
        pem("CERTIFICATE", &key.current_certificate()),
    );
    write(&dir, "k.pem", key.pkcs1_pem());
    // A well-formed certificate whose self-signature verifies, and a consistent PKCS#1 key.
    let Some(()) = openssl(&dir, &["verify", "-CAfile", "c.pem", "c.pem"]) else {
        return;
    };
    openssl(&dir, &["rsa", "-in", "k.pem", "-check", "-noout"]).unwrap();
}

#[tokio::test]
async fn the_emulator_accepts_certificate_assertions() {
    // The emulator checks iss, sub and exp of assertions (not signatures) for credentials
    // with accept_assertions; this is the configuration path end to end over real HTTP.
    let scenario = lagwatch_emulator::Scenario::from_yaml(
        r#"
credentials:
  - { tenant: contoso, client_id: lagwatch-cert, accept_assertions: true }
dataverse:
  crm:
    tables:
      accounts:
        id: accountid
        columns: { name: string }
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    let emulator = lagwatch_emulator::Emulator::new(scenario);
    let s = stop.clone();
    tokio::spawn(async move { emulator.serve(listener, s).await });
    let _stop = stop.drop_guard();

    let (_, file) = bundle("emulator");
    let config: AuthConfig = decode(
        "auth",
        json!({
            "method": "client_certificate", "tenant_id": "contoso", "client_id": "lagwatch-cert",
            "certificate": format!("file:{}", file.display()), "authority": format!("{base}/entra"),
        }),
    )
    .unwrap();
    let source = auth::build(&config, http()).unwrap();
    let token = source
        .fetch("https://crm.crm.dynamics.com/.default")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = http()
        .get(format!("{base}/crm/api/data/v9.2/accounts?$top=1"))
        .bearer_auth(token.expose())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 200);
}
