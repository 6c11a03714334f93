//! Secrets stay secret everywhere lagwatch prints or serves: the real binary runs against the
//! emulator with distinctive secret values (Entra client secrets, API keys, a basic-auth
//! password, a storage shared key; through `env:` and `file:` references) at `RUST_LOG=trace`,
//! including failure paths (a token endpoint rejecting a secret, 401s from a wrong key, a lake
//! whose signed requests fail, configurations the checker rejects), and no secret value, nor
//! its base64 or URL-encoded form, may appear in stdout/stderr, `/metrics`, the status page,
//! the JSON API or `check-config` output.
//!
//! Certificate passwords do not exist here: encrypted private keys are refused
//! (`auth::certificate`), so a certificate is one `file:` PEM whose contents never leave it.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// Accepted by the emulator's token endpoint; characters that URL encoding changes.
const ENTRA: &str = "LwEntra+Secret/7q=x&y";
/// Rejected by the token endpoint (a rotated-away secret).
const ENTRA_WRONG: &str = "LwBadEntra+Secret/9z";
const SEARCH_KEY: &str = "LwSearchKey9b1f3c";
const ES_PASSWORD: &str = "LwEsPass%word!42";
/// Not one of the cluster's API keys: every request gets 401.
const ES_WRONG_KEY: &str = "LwEsBadApiKey5e6f";
/// A storage account key (base64, as Azure shows it) of `LwSharedKeySecret1234567890`.
const SHARED_KEY: &str = "THdTaGFyZWRLZXlTZWNyZXQxMjM0NTY3ODkw";

/// A SAS token: it travels in the query string, where URLs in error messages would show it.
const SAS: &str = "sv=2025-01-05&ss=b&srt=co&sp=rl&sig=LwSasSignature0a1b2c3d%3D";
const SAS_SIGNATURE: &str = "LwSasSignature0a1b2c3d";

const SECRETS: &[&str] = &[
    SAS,
    SAS_SIGNATURE,
    ENTRA,
    ENTRA_WRONG,
    SEARCH_KEY,
    ES_PASSWORD,
    ES_WRONG_KEY,
    SHARED_KEY,
];

/// Every form of every secret that must not appear: as is, URL-encoded (form bodies, query
/// strings), base64 (alone, and as basic auth's `user:password`), and the shared key's bytes.
fn forbidden() -> Vec<String> {
    let mut out = Vec::new();
    for s in SECRETS {
        out.push((*s).to_string());
        out.push(url::form_urlencoded::byte_serialize(s.as_bytes()).collect());
        out.push(
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
                .to_string(),
        );
        out.push(STANDARD.encode(s));
        out.push(URL_SAFE_NO_PAD.encode(s));
    }
    out.push(STANDARD.encode(format!("elastic:{ES_PASSWORD}")));
    out.push("LwSharedKeySecret1234567890".to_string());
    out.sort();
    out.dedup();
    out
}

fn assert_clean(what: &str, text: &str) {
    for f in forbidden() {
        assert!(
            !text.contains(&f),
            "{what} contains the secret form {f:?}:\n{}",
            excerpt(text, &f)
        );
    }
}

fn excerpt(text: &str, needle: &str) -> String {
    let at = text.find(needle).unwrap_or(0);
    let start = text[..at]
        .char_indices()
        .rev()
        .nth(300)
        .map_or(0, |(i, _)| i);
    let end = (at + needle.len() + 300).min(text.len());
    text.get(start..end).unwrap_or(text).to_string()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the child when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One plain HTTP/1.1 GET of `path` on `addr` (`host:port`): the whole response, headers
/// included (they are checked too), or an empty string when nothing answers.
fn get(addr: &str, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let Ok(mut tcp) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if tcp.write_all(request.as_bytes()).is_err() {
        return String::new();
    }
    let mut out = Vec::new();
    let _ = tcp.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn wait_for(addr: &str, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if get(addr, path).starts_with("HTTP/1.1 200") {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{addr}{path} did not answer within 60s");
}

/// The emulator's demo scenario with this test's credentials.
fn scenario(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/scenarios/demo.yaml"),
    )
    .unwrap()
    .replace("demo-only-secret", &format!("\"{ENTRA}\""))
    .replace("demo-search-admin-key", &format!("\"{SEARCH_KEY}\""))
    .replace("demo-password", &format!("\"{ES_PASSWORD}\""));
    assert!(text.contains(ENTRA) && text.contains(SEARCH_KEY) && text.contains(ES_PASSWORD));
    let path = dir.join("scenario.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn monitor_config(dir: &Path, emu: &str) -> std::path::PathBuf {
    let secret_file = |name: &str, value: &str| {
        let p = dir.join(name);
        std::fs::write(&p, format!("{value}\n")).unwrap();
        format!("file:{}", p.display())
    };
    let search_key = secret_file("search-key", SEARCH_KEY);
    let wrong_entra = secret_file("wrong-entra", ENTRA_WRONG);
    let yaml = format!(
        r#"
instance: redact
defaults: {{ interval: 1s, timeout: 6s, objective: 3s }}
systems:
  crm:
    kind: dataverse
    url: {emu}/crm
    table: accounts
    id_column: accountid
    key_column: name
    payload_column: description
    scope: https://crm.crm.dynamics.com/.default
    auth:
      method: client_secret
      tenant_id: contoso
      client_id: 5f8a0c3e-0000-4000-8000-1a9e0de70001
      client_secret: env:LW_REDACT_ENTRA
      authority: {emu}/entra
  crm2_rotated:
    kind: dataverse
    url: {emu}/crm2
    table: accounts
    id_column: accountid
    key_column: name
    payload_column: description
    scope: https://crm2.crm.dynamics.com/.default
    auth:
      method: client_secret
      tenant_id: contoso
      client_id: 5f8a0c3e-0000-4000-8000-1a9e0de70001
      client_secret: {wrong_entra}
      authority: {emu}/entra
  search:
    kind: azure_search
    endpoint: {emu}/search/srch
    index: sentinels
    mode: lookup
    key_field: name
    payload_field: description
    auth: {{ method: api_key, key: {search_key} }}
  es:
    kind: elasticsearch
    url: {emu}/es/logs
    index: sentinels
    mode: searchable
    key_field: name
    payload_field: description
    auth: {{ method: basic, username: elastic, password: env:LW_REDACT_ES_PASSWORD }}
  es_wrong_key:
    kind: elasticsearch
    url: {emu}/es/logs
    index: sentinels
    payload_field: description
    auth: {{ method: api_key, key: env:LW_REDACT_ES_KEY }}
  lake:
    kind: synapse_link_csv
    url: {emu}/devstoreaccount1/dataverse-demo-crm
    table: account
    key_column: name
    payload_column: description
    auth: {{ method: shared_key, account_key: env:LW_REDACT_SHARED_KEY }}
  lake_sas:
    kind: synapse_link_csv
    url: {emu}/devstoreaccount1/dataverse-demo-crm
    table: account
    key_column: name
    auth: {{ method: sas, token: env:LW_REDACT_SAS }}
  lake_down:
    kind: synapse_link_csv
    url: http://127.0.0.1:1/devstoreaccount1/nothing-listens-here
    table: account
    key_column: name
    auth: {{ method: sas, token: env:LW_REDACT_SAS }}
paths:
  - {{ source: crm, target: lake_sas }}
  - {{ source: crm, target: lake_down }}
  - {{ source: crm, target: search }}
  - {{ source: crm, target: es }}
  - {{ source: crm, target: es_wrong_key }}
  - {{ source: crm, target: crm2_rotated }}
  - {{ source: crm, target: lake }}
"#
    );
    let path = dir.join("lagwatch.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn lagwatch() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lagwatch"));
    // The HTTP stack is named: a bare `trace` keeps its connection chatter at info.
    let everything = "trace,hyper=trace,hyper_util=trace,h2=trace,reqwest=trace,rustls=trace";
    c.env("RUST_LOG", everything)
        .env("LW_REDACT_ENTRA", ENTRA)
        .env("LW_REDACT_ES_PASSWORD", ES_PASSWORD)
        .env("LW_REDACT_ES_KEY", ES_WRONG_KEY)
        .env("LW_REDACT_SHARED_KEY", SHARED_KEY)
        .env("LW_REDACT_SAS", SAS)
        .stdin(Stdio::null());
    c
}

#[test]
fn no_secret_in_logs_metrics_pages_api_or_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let emu_port = free_port();
    let emu_addr = format!("127.0.0.1:{emu_port}");
    let emu = format!("http://{emu_addr}");
    let lake_dir = dir.path().join("lake");
    std::fs::create_dir_all(&lake_dir).unwrap();
    let _emulator = Running(
        Command::new(env!("CARGO_BIN_EXE_lagwatch"))
            .args(["emulate", "--listen", &format!("127.0.0.1:{emu_port}")])
            .arg("--scenario")
            .arg(scenario(dir.path()))
            .arg("--lake-dir")
            .arg(&lake_dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the emulator starts"),
    );
    wait_for(&emu_addr, "/");
    let config = monitor_config(dir.path(), &emu);

    // check-config of a valid file prints every system, secrets redacted.
    let out = lagwatch()
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{printed}");
    assert!(printed.contains("es_wrong_key"), "{printed}");
    assert_clean("check-config output", &printed);

    // A run with failures: a rejected client secret, 401s, signed requests that fail.
    let port = free_port();
    let stdout = std::fs::File::create(dir.path().join("stdout")).unwrap();
    let stderr = std::fs::File::create(dir.path().join("stderr")).unwrap();
    let monitor = Running(
        lagwatch()
            .args(["run", "--listen", &format!("127.0.0.1:{port}"), "--config"])
            .arg(&config)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("the monitor starts"),
    );
    let base = format!("127.0.0.1:{port}");
    wait_for(&base, "/healthz");
    std::thread::sleep(Duration::from_secs(8));
    let metrics = get(&base, "/metrics");
    // The failure paths were taken: 401s for the wrong key, a refused client secret, a lake
    // that cannot be reached.
    for failed in [
        r#"lagwatch_requests_total{operation="lookup",status="4xx",system="es_wrong_key"}"#,
        r#"lagwatch_lookup_errors_total{kind="auth",source="crm",target="crm2_rotated"}"#,
        r#"lagwatch_requests_total{operation="lookup",status="transport_error",system="lake_down"}"#,
    ] {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(failed))
            .unwrap_or_else(|| panic!("no {failed} in {metrics}"));
        assert!(!line.ends_with(" 0"), "{line}");
    }
    for (what, url) in [
        ("/metrics", "/metrics"),
        ("the status page", "/"),
        ("/api/v1/paths", "/api/v1/paths"),
        ("/api/v1/reconciliations", "/api/v1/reconciliations"),
        ("/api/v1/discrepancies", "/api/v1/discrepancies"),
    ] {
        let body = get(&base, url);
        assert!(!body.is_empty(), "{what} answered");
        assert_clean(what, &body);
    }
    drop(monitor);
    let logs = format!(
        "{}{}",
        std::fs::read_to_string(dir.path().join("stdout")).unwrap(),
        std::fs::read_to_string(dir.path().join("stderr")).unwrap()
    );
    assert!(
        logs.contains(" level=trace ") || logs.contains(" level=debug "),
        "trace logging was on"
    );
    assert!(
        logs.contains("crm2_rotated"),
        "the rejected secret was logged about"
    );
    assert_clean("the monitor's logs at trace level", &logs);
}

#[test]
fn rejected_configurations_do_not_echo_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let bad = |name: &str, auth: &str| {
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            format!(
                r#"
instance: bad
systems:
  src: {{ kind: simulated }}
  es:
    kind: elasticsearch
    url: http://127.0.0.1:1/es
    index: sentinels
    payload_field: description
    auth: {auth}
paths:
  - {{ source: src, target: es }}
"#
            ),
        )
        .unwrap();
        p
    };
    let cases = [
        // A literal secret where a reference belongs.
        bad(
            "literal.yaml",
            &format!("{{ method: basic, username: elastic, password: \"{ES_PASSWORD}\" }}"),
        ),
        // A resolved secret beside a mistake in the same block.
        bad(
            "typo.yaml",
            "{ method: basic, username: elastic, password: env:LW_REDACT_ES_PASSWORD, pasword: env:LW_REDACT_ES_KEY }",
        ),
        // A secret given to a method that takes none of it.
        bad(
            "wrong_method.yaml",
            "{ method: api_key, key: env:LW_REDACT_ES_KEY, password: env:LW_REDACT_ES_PASSWORD }",
        ),
    ];
    for file in cases {
        let out = lagwatch()
            .env("RUST_LOG", "trace")
            .arg("check-config")
            .arg(&file)
            .output()
            .unwrap();
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(2), "{}: {printed}", file.display());
        assert_clean(&format!("check-config {}", file.display()), &printed);
    }
}

#[test]
fn the_sentinel_payload_carries_nothing_sensitive() {
    let s = lagwatch::sentinel::Sentinel::new("redact", 7, chrono::Utc::now());
    let payload: serde_json::Value = serde_json::from_str(&s.payload).expect("the payload is JSON");
    let fields: Vec<&str> = payload
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(fields, ["instance", "seq", "written_at"], "{payload}");
    assert_clean("the sentinel payload", &s.payload);
}
