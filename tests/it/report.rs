//! `lagwatch report` and `GET /report` through the public surface: the real binary asks a
//! running `lagwatch run` over HTTP and prints every path and guarantee as Markdown or HTML;
//! what goes wrong is said with what to do about it, and exits 2 (flags, file) or 1 (the
//! instance could not be asked).

use crate::common;

use std::io::ErrorKind;
use std::net::TcpListener;
use std::time::Duration;

use common::demo::{output, run_logged, terminate};
use lagwatch::contracts::ContractsReport;

/// Two paths: `fast` keeps its contract, `slow` (2 s) misses its 1 s visibility every time.
const ESTATE: &str = r#"
instance: report-it
systems:
  src: { kind: simulated }
  fast: { kind: simulated, replica_of: src, lag: { distribution: fixed, value: 100ms } }
  slow: { kind: simulated, replica_of: src, lag: { distribution: fixed, value: 2s } }
paths:
  - { source: src, target: fast, interval: 1s, timeout: 10s, contract: { visibility: 5s, monotonic_reads: true, deletes: 5s } }
  - { source: src, target: slow, interval: 1s, timeout: 10s, contract: { visibility: 1s } }
"#;

/// A loopback port nothing listens on (it was free a moment ago).
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("its address").port()
}

#[test]
fn the_command_prints_every_path_and_guarantee_of_a_running_instance() {
    let dir = common::temp_dir("lagwatch-report-");
    let config = dir.path().join("lagwatch.yaml");
    std::fs::write(&config, ESTATE).expect("config");
    let (lw, _log) = run_logged(&config, &[], "info");
    let addr = lw.addr;
    common::wait_until(
        "both paths resolved two probes",
        Duration::from_secs(30),
        || {
            common::probes(addr, "src", "fast", "converged") >= 2.0
                && common::probes(addr, "src", "slow", "converged") >= 2.0
        },
    );
    // What the instance serves as JSON is what both outputs are checked against.
    let (status, _, body) = common::http_get(addr, "/api/v1/contracts?since=1h");
    assert_eq!(status, 200, "{body}");
    let served: ContractsReport = serde_json::from_str(&body).expect("the report's JSON");
    assert_eq!(served.paths.len(), 2);

    let url = format!("http://{addr}");
    let (code, md, err) = output(&["report", "--url", &url, "--since", "1h"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(md.starts_with("# Consistency report: report-it\n"), "{md}");
    for p in &served.paths {
        let heading = format!("\n## {} → {} ({})\n", p.source, p.target, p.target_kind);
        assert!(md.contains(&heading), "{heading} in {md}");
        assert_eq!(p.guarantees.len(), 6);
        for g in &p.guarantees {
            let declared = g.declared.as_deref().unwrap_or("not declared");
            let row = format!("| {} | {declared} | ", g.guarantee.replace('_', "\\_"));
            assert!(md.contains(&row), "{row} in {md}");
        }
    }
    assert!(md.contains("| visibility | 5s | holds |"), "{md}");
    assert!(md.contains("| visibility | 1s | violated "), "{md}");
    assert_eq!(
        md.matches("<svg ").count(),
        4,
        "a t-visibility curve and (the update canary runs by default) a k-staleness chart per path"
    );
    assert_eq!(md.matches("| age ≤ | reads | P(fresh) |").count(), 2);

    let (code, html, err) = output(&["report", "--url", &url, "--since=1h", "--format", "html"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(html.contains("<title>lagwatch report · report-it · "));
    assert_eq!(html.matches("<section class=\"path\">").count(), 2);
    assert_eq!(html.matches("<tr data-guarantee=").count(), 12);
    // The slow path's evidence links to the probe that broke its visibility, on the instance.
    let slow = html
        .split("<h2>src → slow (simulated)</h2>")
        .nth(1)
        .expect("the slow path's section");
    let key = slow
        .split("href=\"/api/v1/probes?sentinel=")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("evidence of the slow path");
    assert!(key.starts_with("lagwatch-report-it-"), "{key}");
    let (status, _, probes) = common::http_get(addr, &format!("/api/v1/probes?sentinel={key}"));
    assert_eq!(status, 200, "{probes}");
    let probes: serde_json::Value = serde_json::from_str(&probes).expect("JSON");
    assert_eq!(probes["probes"][0]["sentinel"], key);
    assert_eq!(probes["probes"][0]["target"], "slow");

    // Without --url, the instance's own file says where it listens.
    let file = dir.path().join("with-listen.yaml");
    std::fs::write(&file, format!("server: {{ listen: \"{addr}\" }}{ESTATE}")).expect("config");
    let file = file.to_str().expect("a UTF-8 path");
    let (code, md, err) = output(&["report", "--config", file]);
    assert_eq!(code, Some(0), "{err}");
    assert!(md.contains("\n## src → slow (simulated)\n"), "{md}");

    // The page says the same, is linked from the status page, and refuses a bad window.
    let (status, content_type, page) = common::http_get(addr, "/report?since=1h");
    assert_eq!(status, 200, "{page}");
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(page.contains("<h2>src → fast (simulated)</h2>"));
    assert_eq!(page.matches("<tr data-guarantee=").count(), 12);
    let (status, _, refused) = common::http_get(addr, "/report?since=8d");
    assert_eq!(
        (status, refused.trim()),
        (400, "since: must be longer than 0s and at most 7d")
    );
    let (_, _, index) = common::http_get(addr, "/");
    assert!(index.contains(r#"<a href="/report">Consistency report</a>"#));
    terminate(lw);
}

#[test]
fn nothing_listening_exits_1_saying_where_it_asked_and_what_to_do() {
    let port = closed_port();
    let (code, out, err) = output(&["report", "--url", &format!("http://127.0.0.1:{port}")]);
    assert_eq!(code, Some(1), "{err}");
    assert!(out.is_empty(), "{out}");
    let refused = format!("not reachable at http://127.0.0.1:{port}/: connection refused");
    for part in [refused.as_str(), "`lagwatch run`", "--url"] {
        assert!(err.contains(part), "{part} in {err}");
    }
    // From the file: an instance listening on every address is asked on loopback.
    let dir = common::temp_dir("lagwatch-report-");
    let file = dir.path().join("lagwatch.yaml");
    std::fs::write(
        &file,
        format!("server: {{ listen: \"0.0.0.0:{port}\" }}{ESTATE}"),
    )
    .expect("config");
    let (code, _, err) = output(&["report", "--config", file.to_str().expect("UTF-8")]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("not reachable at http://127.0.0.1:{port}/")),
        "{err}"
    );
}

#[test]
fn bad_flags_and_files_exit_2_before_anything_is_asked() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    listener.set_nonblocking(true).expect("non-blocking");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    for (since, why) in [
        (
            "soon",
            "invalid duration \"soon\": write a number and a unit",
        ),
        ("8d", "must be longer than 0s and at most 7d"),
        ("0s", "must be longer than 0s and at most 7d"),
    ] {
        let (code, out, err) = output(&["report", "--url", &url, "--since", since]);
        assert_eq!(code, Some(2), "{since}: {err}");
        assert!(out.is_empty());
        assert!(err.contains(&format!("--since {since}: {why}")), "{err}");
    }
    let asked = listener.accept();
    assert!(
        matches!(&asked, Err(e) if e.kind() == ErrorKind::WouldBlock),
        "nothing may be asked: {asked:?}"
    );
    let (code, _, err) = output(&["report", "--config", "/nonexistent/lagwatch.yaml"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("/nonexistent/lagwatch.yaml"), "{err}");
    let (code, _, err) = output(&["report", "--url", "ftp://127.0.0.1:21"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("http or https"), "{err}");
    let (code, _, err) = output(&["report"]);
    assert_eq!(code, Some(2), "neither --config nor --url: {err}");
    let (code, _, err) = output(&["report", "--url", &url, "--format", "pdf"]);
    assert_eq!(code, Some(2), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_instance_s_refusals_are_shown_and_credentials_are_sent_never_shown() {
    use wiremock::matchers::{header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let server = MockServer::start().await;
    let empty = serde_json::json!({
        "instance": "behind-auth",
        "generated_at": "2026-12-06T10:00:00Z",
        "window_start": "2026-12-05T10:00:00Z",
        "paths": [],
    });
    Mock::given(method("GET"))
        .and(path("/api/v1/contracts"))
        .and(query_param("since", "24h"))
        .and(header("authorization", "Basic dXNlcjpzM2NyZXQ="))
        .respond_with(ResponseTemplate::new(200).set_body_json(empty))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v1/contracts"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(serde_json::json!({ "error": "since: not from this instance" })),
        )
        .mount(&server)
        .await;
    Mock::given(path("/behind/proxy/api/v1/contracts"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let port = server.address().port();
    let run = |url: String| tokio::task::spawn_blocking(move || output(&["report", "--url", &url]));

    let (code, md, err) = run(format!("http://user:s3cret@127.0.0.1:{port}"))
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert!(
        md.contains("# Consistency report: behind-auth") && md.contains("No path is configured.")
    );

    let (code, _, err) = run(format!("http://user:wrong@127.0.0.1:{port}/"))
        .await
        .unwrap();
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("(HTTP 400): since: not from this instance"),
        "{err}"
    );
    assert!(!err.contains("wrong"), "a password is never shown: {err}");

    let (code, _, err) = run(format!("http://127.0.0.1:{port}/behind/proxy"))
        .await
        .unwrap();
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("asks for credentials (HTTP 401)") && err.contains("USER:PASSWORD@"),
        "{err}"
    );
}
