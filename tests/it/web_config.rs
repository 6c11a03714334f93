//! `--web.config.file` through real sockets: basic auth (401 with `WWW-Authenticate`, the
//! right password on `/metrics`, the page and the API, open probes, hash rotation without a
//! restart, configured headers), TLS (an HTTPS client trusting the test certificate, plain
//! HTTP refused, `min_version`), client certificates, and the messages for bad files.
//!
//! Keys and certificates are generated at test time (`src/auth/test_pki.rs`): no private key is
//! committed.

use crate::test_pki;

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use lagwatch::web::WebSecurity;
use test_pki::{TestKey, pem};
use tokio_util::sync::CancellationToken;

const YAML: &str = r#"
instance: web
systems:
  src: { kind: simulated }
  a: { kind: simulated, replica_of: src, lag: { distribution: fixed, value: 100ms } }
paths:
  - { source: src, target: a, interval: 1s, timeout: 10s, objective: 1s }
"#;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lagwatch-web-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A bcrypt hash at the lowest cost, to keep the tests quick.
fn hash(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap()
}

/// The server's certificate and key, written to `dir` as `server.crt` and `server.key`.
fn write_server_pki(dir: &Path) -> Vec<u8> {
    let key = TestKey::shared();
    let cert = pem("CERTIFICATE", &key.localhost_certificate());
    std::fs::write(dir.join("server.crt"), &cert).unwrap();
    std::fs::write(dir.join("server.key"), key.pkcs8_pem()).unwrap();
    cert.into_bytes()
}

/// Runs a monitor with the web-config file at `web` until the returned token is cancelled.
async fn serve(web: &Path) -> (std::net::SocketAddr, CancellationToken) {
    let web = WebSecurity::load(web).unwrap_or_else(|e| panic!("{e}"));
    let app = Arc::new(common::app(YAML));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move { app.run_secured(listener, Some(web), token).await });
    (addr, stop)
}

fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap()
}

fn tls_client(ca_pem: &[u8]) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem).unwrap()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_guards_everything_but_the_probes() {
    let dir = temp_dir("basic");
    let file = dir.join("web.yml");
    let write = |password: &str| {
        std::fs::write(
            &file,
            format!(
                "basic_auth_users:\n  alice: {}\nhttp_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n",
                hash(password)
            ),
        )
        .unwrap()
    };
    write("s3cret");
    let (addr, stop) = serve(&file).await;
    let client = plain_client();
    let url = |path: &str| format!("http://{addr}{path}");

    for path in ["/metrics", "/", "/api/v1/paths", "/api/v1/reconciliations"] {
        let r = client.get(url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without credentials");
        let challenge = r.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Basic "), "{challenge}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");

        for (user, password) in [("alice", "wrong"), ("bob", "s3cret"), ("", "")] {
            let r = client
                .get(url(path))
                .basic_auth(user, Some(password))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401, "{path} as {user:?}/{password:?}");
        }
        // Twice: the second answer comes from the cache of verified credentials.
        for _ in 0..2 {
            let r = client
                .get(url(path))
                .basic_auth("alice", Some("s3cret"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path} with the right password");
            assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        }
    }
    let metrics = client
        .get(url("/metrics"))
        .basic_auth("alice", Some("s3cret"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("lagwatch_probes_total"), "{metrics}");

    // Kubernetes probes need no credentials.
    let r = client.get(url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = client.get(url("/readyz")).send().await.unwrap();
    assert_ne!(r.status(), 401);

    // A new hash in the file takes effect on the next request, without a restart.
    write("n3w");
    let old = client
        .get(url("/metrics"))
        .basic_auth("alice", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401);
    let new = client
        .get(url("/metrics"))
        .basic_auth("alice", Some("n3w"))
        .send()
        .await
        .unwrap();
    assert_eq!(new.status(), 200);

    // A file broken at run time fails closed.
    std::fs::write(&file, "basic_auth_users: [\n").unwrap();
    let r = client
        .get(url("/metrics"))
        .basic_auth("alice", Some("n3w"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    // ... but not for the probes, which are about the process, not this file.
    let r = client.get(url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_https_only() {
    let dir = temp_dir("tls");
    let ca = write_server_pki(&dir);
    let file = dir.join("web.yml");
    std::fs::write(
        &file,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  alice: {}\n",
            hash("s3cret")
        ),
    )
    .unwrap();
    let (addr, stop) = serve(&file).await;
    let port = addr.port();

    let client = tls_client(&ca).build().unwrap();
    for host in ["127.0.0.1", "localhost"] {
        for path in ["/metrics", "/api/v1/paths"] {
            let r = client
                .get(format!("https://{host}:{port}{path}"))
                .basic_auth("alice", Some("s3cret"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("https://{host}:{port}{path}: {e:?}"));
            assert_eq!(r.status(), 200, "{path} over TLS");
        }
    }
    let r = client
        .get(format!("https://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "TLS does not replace basic auth");

    // Plain HTTP gets no HTTP answer.
    let plain = plain_client()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");
    // A client that does not trust the certificate cannot connect.
    let untrusting = plain_client()
        .get(format!("https://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(untrusting.is_err(), "untrusted certificate accepted");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_version_tls13_refuses_tls12_clients() {
    let dir = temp_dir("tls13");
    let ca = write_server_pki(&dir);
    let file = dir.join("web.yml");
    std::fs::write(
        &file,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS13\n",
    )
    .unwrap();
    let (addr, stop) = serve(&file).await;
    let url = format!("https://127.0.0.1:{}/healthz", addr.port());
    let tls12 = tls_client(&ca)
        .tls_version_max(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    assert!(tls12.get(&url).send().await.is_err(), "TLS 1.2 accepted");
    let r = tls_client(&ca)
        .build()
        .unwrap()
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_required_and_verified() {
    let dir = temp_dir("mtls");
    let ca = write_server_pki(&dir);
    let client_key = TestKey::other();
    let client_cert = pem("CERTIFICATE", &client_key.localhost_certificate());
    std::fs::write(dir.join("clients.crt"), &client_cert).unwrap();
    let file = dir.join("web.yml");
    std::fs::write(
        &file,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: clients.crt\n",
    )
    .unwrap();
    let (addr, stop) = serve(&file).await;
    let url = format!("https://127.0.0.1:{}/metrics", addr.port());

    let anonymous = tls_client(&ca).build().unwrap().get(&url).send().await;
    assert!(anonymous.is_err(), "no client certificate accepted");

    let identity =
        reqwest::Identity::from_pem(format!("{}{client_cert}", client_key.pkcs8_pem()).as_bytes())
            .unwrap();
    let r = tls_client(&ca)
        .identity(identity)
        .build()
        .unwrap()
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A certificate the CA file does not vouch for is refused.
    let stranger = reqwest::Identity::from_pem(
        format!(
            "{}{}",
            TestKey::shared().pkcs8_pem(),
            std::str::from_utf8(&ca).unwrap()
        )
        .as_bytes(),
    )
    .unwrap();
    let refused = tls_client(&ca)
        .identity(stranger)
        .build()
        .unwrap()
        .get(&url)
        .send()
        .await;
    assert!(refused.is_err(), "unknown client certificate accepted");
    stop.cancel();
}

/// The binary as a user runs it: `run --web.config.file` says https, serves with TLS and basic
/// auth, and stops cleanly on SIGTERM.
#[test]
fn run_with_web_config_serves_https() {
    let dir = temp_dir("cli");
    let ca = write_server_pki(&dir);
    let file = dir.join("web.yml");
    std::fs::write(
        &file,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  alice: {}\n",
            hash("s3cret")
        ),
    )
    .unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo-simulated.yaml");
    let demo = common::demo::start(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--config",
        config.to_str().unwrap(),
        "--web.config.file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(demo.scheme, "https");
    let url = format!("https://127.0.0.1:{}/metrics", demo.addr.port());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (denied, allowed) = runtime.block_on(async {
        let client = tls_client(&ca).build().unwrap();
        let denied = client.get(&url).send().await.unwrap().status();
        let allowed = client
            .get(&url)
            .basic_auth("alice", Some("s3cret"))
            .send()
            .await
            .unwrap()
            .status();
        (denied, allowed)
    });
    assert_eq!((denied.as_u16(), allowed.as_u16()), (401, 200));
    common::demo::terminate(demo);
}

#[test]
fn bad_files_are_refused_with_file_key_and_reason() {
    let dir = temp_dir("bad");
    write_server_pki(&dir);
    std::fs::write(dir.join("other.key"), TestKey::other().pkcs8_pem()).unwrap();
    let cases: &[(&str, &str, String)] = &[
        (
            "missing-cert.yml",
            "tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n",
            format!(
                "tls_server_config.cert_file: cannot read {}: No such file or directory (os error 2)",
                dir.join("nope.crt").display()
            ),
        ),
        (
            "mismatch.yml",
            "tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n",
            format!(
                "tls_server_config.key_file: {}: this key does not belong to the certificate of cert_file",
                dir.join("other.key").display()
            ),
        ),
        (
            "not-pem.yml",
            "tls_server_config:\n  cert_file: web-not-pem.yml\n  key_file: server.key\n",
            format!(
                "tls_server_config.cert_file: {}: no CERTIFICATE in PEM",
                dir.join("web-not-pem.yml").display()
            ),
        ),
        (
            "plaintext.yml",
            "basic_auth_users:\n  alice: hunter2\n",
            "basic_auth_users.alice: not a bcrypt hash (never write the password itself here); make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'".to_string(),
        ),
        (
            "inline.yml",
            "tls_server_config:\n  cert: abc\n  key_file: server.key\n",
            "tls_server_config.cert: inline certificates are not supported; put the PEM in a file and use cert_file".to_string(),
        ),
        (
            "ca-without-auth.yml",
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: server.crt\n",
            "tls_server_config.client_ca_file: has no effect without client_auth_type RequireAndVerifyClientCert (or VerifyClientCertIfGiven)".to_string(),
        ),
        (
            "auth-without-ca.yml",
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n",
            "tls_server_config.client_ca_file: required key is missing: verifying client certificates needs the CA that issued them".to_string(),
        ),
        (
            "insecure-client-auth.yml",
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAnyClientCert\n",
            "tls_server_config.client_auth_type: \"RequireAnyClientCert\" is not supported: it accepts certificates nobody verified; use RequireAndVerifyClientCert with client_ca_file".to_string(),
        ),
        (
            "typo.yml",
            "tls_server_config:\n  cert_file: server.crt\n  keyfile: server.key\n",
            "tls_server_config.keyfile: unknown key; the keys allowed here are: cert_file, key_file, client_auth_type, client_ca_file, min_version, max_version".to_string(),
        ),
    ];
    std::fs::write(dir.join("web-not-pem.yml"), "just text\n").unwrap();
    for (name, text, reason) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let err = WebSecurity::load(&path).unwrap_err().to_string();
        assert_eq!(err, format!("{}: {reason}", path.display()), "{name}");
    }

    // The command line refuses to start, with exit code 2 and the same message.
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo-simulated.yaml");
    let path = dir.join("mismatch.yml");
    let out = Command::new(env!("CARGO_BIN_EXE_lagwatch"))
        .args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--web.config.file")
        .arg(&path)
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains(&format!(
            "error: {}: tls_server_config.key_file: {}: this key does not belong",
            path.display(),
            dir.join("other.key").display()
        )),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "started anyway: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The example of docs/security.md's "Securing the endpoints" is a valid file, and its hash
/// is the password its comment names.
#[test]
fn documented_example_is_valid() {
    let page =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/security.md"))
            .unwrap();
    let section = page
        .split_once("## Securing the endpoints")
        .expect("the section")
        .1;
    let yaml = section
        .split_once("```yaml\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("a yaml block")
        .0;
    let config = lagwatch::web::WebConfig::from_yaml("docs/security.md", Path::new("."), yaml)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(config.tls.is_some());
    assert!(bcrypt::verify("change-me", &config.users["prometheus"]).unwrap());
    assert_eq!(config.headers.len(), 1);
}
