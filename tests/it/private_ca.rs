//! Outgoing TLS against a private CA, through a real HTTPS server: a system whose server
//! certificate was issued by a CA made in the test is reached when the config's
//! `tls.ca_files` names that CA, and fails as a counted transport error when it does not.
//! There is no switch that turns verification off, so there is no third case to test.
//!
//! Keys and certificates are generated at test time (`src/auth/test_pki.rs`): no private key is
//! committed.

use crate::test_pki;

use std::path::{Path, PathBuf};

use lagwatch::config::Config;
use lagwatch::connector::{ConnectorError, Lookup};
use lagwatch::metrics::Metrics;
use lagwatch::sentinel::SentinelId;
use lagwatch::systems::BuildContext;
use lagwatch::web::WebSecurity;
use lagwatch::web::tls::TlsListener;
use test_pki::{TestKey, pem};

const CA_NAME: &str = "lagwatch test private CA";

/// The CA's certificate at `dir/ca.pem`, and an HTTPS server on 127.0.0.1 whose certificate
/// (for `localhost`) that CA issued. It answers every Elasticsearch `_doc` lookup with "not
/// found", which is all a successful request needs to be.
async fn https_server(dir: &Path) -> (PathBuf, std::net::SocketAddr) {
    let ca = TestKey::other();
    let server = TestKey::shared();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, pem("CERTIFICATE", &ca.ca_certificate(CA_NAME))).unwrap();
    std::fs::write(
        dir.join("server.crt"),
        pem("CERTIFICATE", &server.issue_localhost(ca, CA_NAME)),
    )
    .unwrap();
    std::fs::write(dir.join("server.key"), server.pkcs8_pem()).unwrap();
    let web_file = dir.join("web.yml");
    std::fs::write(
        &web_file,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    )
    .unwrap();
    let web = WebSecurity::load(&web_file).unwrap_or_else(|e| panic!("{e}"));
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = TlsListener::new(tcp, web).unwrap();
    let router = axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::NOT_FOUND,
            [("content-type", "application/json")],
            r#"{"_index":"sentinels","_id":"x","found":false}"#,
        )
    });
    tokio::spawn(async move { axum::serve(listener, router).await });
    (ca_file, addr)
}

fn config(addr: std::net::SocketAddr, ca_file: Option<&Path>) -> Config {
    let tls = ca_file
        .map(|f| format!("tls:\n  ca_files: [\"{}\"]\n", f.display()))
        .unwrap_or_default();
    let yaml = format!(
        r#"
instance: ca
{tls}systems:
  src: {{ kind: simulated }}
  es:
    kind: elasticsearch
    url: https://localhost:{port}
    index: sentinels
    payload_field: payload
    auth: {{ method: none }}
paths:
  - {{ source: src, target: es }}
"#,
        port = addr.port()
    );
    lagwatch_emulator::REGISTRY
        .from_yaml("private_ca.yaml", &yaml)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// One lookup through the `es` system built the way `App::build` builds it, and the
/// `lagwatch_requests_total` of that system's lookups by status.
async fn lookup(config: &Config) -> (Result<Lookup, ConnectorError>, Metrics) {
    let metrics = Metrics::new();
    let cx = BuildContext::with_tls(metrics.clone(), &config.tls).expect("client");
    let gate = cx.gate("es", config.limits["es"]);
    let system = config.systems["es"].build("es", &cx, gate).expect("build");
    let target = system.target.expect("es is a target");
    (target.lookup(&SentinelId::new("ca")).await, metrics)
}

fn requests(m: &Metrics, status: &str) -> u64 {
    m.requests("es", "lookup", status)
}

#[tokio::test]
async fn a_server_issued_by_a_configured_private_ca_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, addr) = https_server(dir.path()).await;
    let config = config(addr, Some(&ca_file));
    assert_eq!(config.tls.extra_roots.len(), 1);
    assert!(
        config.describe().contains("1 extra CA certificate(s)"),
        "{}",
        config.describe()
    );
    let (result, metrics) = lookup(&config).await;
    assert!(
        matches!(result, Ok(Lookup::Absent)),
        "the lookup went through: {result:?}"
    );
    assert_eq!(requests(&metrics, "transport_error"), 0);
}

#[tokio::test]
async fn without_the_ca_the_same_server_is_a_counted_transport_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_ca_file, addr) = https_server(dir.path()).await;
    let config = config(addr, None);
    let (result, metrics) = lookup(&config).await;
    match result {
        // The message names the cause, the address and the certificate problem.
        Err(ConnectorError::Transport(m)) => assert!(
            m.contains(&format!(
                "TLS handshake failed (localhost:{}): ",
                addr.port()
            )) && m.contains("certificate"),
            "{m}"
        ),
        other => panic!("an unknown issuer must fail the request, not be accepted: {other:?}"),
    }
    assert_eq!(requests(&metrics, "transport_error"), 1);
    assert!(
        metrics.render().contains(
            r#"lagwatch_requests_total{operation="lookup",status="transport_error",system="es"} 1"#
        ),
        "{}",
        metrics.render()
    );
}
