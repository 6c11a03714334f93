//! Configuration reload through the real binary: SIGHUP and `POST /-/reload`, a valid file
//! swapped in, an invalid one rejected with the running configuration kept; `POST /-/reload`
//! only with `--web.enable-lifecycle`.

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::demo::{Demo, start_with, terminate};

const TWO_PATHS: &str = r#"
instance: reload
systems:
  src: { kind: simulated }
  a: { kind: simulated, replica_of: src, lag: { distribution: fixed, value: 100ms } }
  b: { kind: simulated, replica_of: src, lag: { distribution: fixed, value: 100ms } }
paths:
  - { source: src, target: a, interval: 1s, timeout: 10s, objective: 5s }
  - { source: src, target: b, interval: 1s, timeout: 10s, objective: 5s }
"#;

/// TWO_PATHS with b dropped and c added.
const OTHER_PATHS: &str = r#"
instance: reload
systems:
  src: { kind: simulated }
  a: { kind: simulated, replica_of: src, lag: { distribution: fixed, value: 100ms } }
  c: { kind: simulated, replica_of: src, lag: { distribution: fixed, value: 100ms } }
paths:
  - { source: src, target: a, interval: 1s, timeout: 10s, objective: 5s }
  - { source: src, target: c, interval: 1s, timeout: 10s, objective: 5s }
"#;

/// Parses, but a duration is malformed: the error names `paths[1].timeout`.
const INVALID: &str = r#"
instance: reload
systems:
  src: { kind: simulated }
  a: { kind: simulated, replica_of: src, lag: { distribution: fixed, value: 100ms } }
paths:
  - { source: src, target: a, interval: 1s, timeout: 10s, objective: 5s }
  - { source: src, target: a, interval: 1s, timeout: 5 mins, objective: 5s }
"#;

fn metric(addr: SocketAddr, series: &str) -> Option<f64> {
    let (_, _, text) = common::http_get(addr, "/metrics");
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

fn targets(addr: SocketAddr) -> Vec<String> {
    let (status, _, body) = common::http_get(addr, "/api/v1/paths");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let mut t: Vec<String> = v["paths"]
        .as_array()
        .expect("paths")
        .iter()
        .map(|p| p["target"].as_str().unwrap_or_default().to_string())
        .collect();
    t.sort();
    t
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn hup(lw: &Demo) {
    let status = Command::new("kill")
        .args(["-HUP", &lw.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// A plain HTTP/1.1 request with an empty body; returns (status, body).
fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("http response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, body.to_string())
}

const OK: &str = "lagwatch_config_last_reload_successful";
const TS: &str = "lagwatch_config_last_reload_success_timestamp_seconds";

fn converged(addr: SocketAddr, target: &str) -> f64 {
    metric(
        addr,
        &format!(
            "lagwatch_probes_total{{outcome=\"converged\",source=\"src\",target=\"{target}\"}}"
        ),
    )
    .unwrap_or(0.0)
}

/// The text `check-config` prints for `file` (the same `ConfigError`).
fn config_error(file: &Path) -> String {
    match lagwatch_emulator::REGISTRY.load(file) {
        Ok(_) => panic!("{} is meant to be invalid", file.display()),
        Err(e) => e.to_string(),
    }
}

/// `lagwatch run` on TWO_PATHS; `lifecycle` passes `--web.enable-lifecycle`, without which
/// `POST /-/reload` is refused.
fn start(dir: &Path, lifecycle: bool) -> (Demo, std::path::PathBuf, std::path::PathBuf) {
    let config = dir.join("lagwatch.yaml");
    std::fs::write(&config, TWO_PATHS).expect("write config");
    let log = dir.join("stderr.log");
    let stderr = std::fs::File::create(&log).expect("log file");
    let mut args = vec![
        "run",
        "--config",
        config.to_str().expect("utf-8 path"),
        "--listen",
        "127.0.0.1:0",
    ];
    if lifecycle {
        args.push("--web.enable-lifecycle");
    }
    let lw = start_with(&args, Stdio::from(stderr), "info");
    (lw, config, log)
}

#[test]
fn sighup_swaps_a_valid_config_and_keeps_the_running_one_when_invalid() {
    let dir = tempfile::tempdir().expect("temp dir");
    // SIGHUP needs no --web.enable-lifecycle.
    let (lw, config, log) = start(dir.path(), false);
    let addr = lw.addr;
    assert_eq!(targets(addr), ["a", "b"]);
    assert_eq!(metric(addr, OK), Some(1.0), "1 from start-up");
    let started = metric(addr, TS).expect("timestamp from start-up");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - started).abs() < 60.0,
        "start time {started}, now {now}"
    );
    wait_until("path a converges", || converged(addr, "a") >= 1.0);
    wait_until("ready", || common::http_get(addr, "/readyz").0 == 200);
    std::thread::sleep(Duration::from_millis(1100));

    // A valid new file: b goes, c comes, a keeps its counters.
    let before = converged(addr, "a");
    std::fs::write(&config, OTHER_PATHS).expect("write config");
    hup(&lw);
    wait_until("the new paths are served", || targets(addr) == ["a", "c"]);
    // The new paths start their first probe within 10 s; a ready monitor stays ready meanwhile.
    let (status, _, body) = common::http_get(addr, "/readyz");
    assert_eq!(status, 200, "ready across the reload: {body}");
    assert_eq!(metric(addr, OK), Some(1.0));
    let reloaded = metric(addr, TS).expect("timestamp");
    assert!(
        reloaded > started,
        "timestamp moved: {started} -> {reloaded}"
    );
    assert!(
        converged(addr, "a") >= before,
        "counters carry on across reloads"
    );
    let (_, _, text) = common::http_get(addr, "/metrics");
    assert!(
        !text.contains("target=\"b\""),
        "series of the removed path are gone"
    );
    assert!(text.contains("target=\"c\""));
    wait_until("the new path converges", || converged(addr, "c") >= 1.0);

    // An invalid file: rejected, the running paths keep probing.
    std::fs::write(&config, INVALID).expect("write config");
    let error = config_error(&config);
    assert!(error.contains("paths[1].timeout"), "{error}");
    hup(&lw);
    wait_until("the reload is rejected", || metric(addr, OK) == Some(0.0));
    assert_eq!(metric(addr, TS), Some(reloaded), "the timestamp stays");
    assert_eq!(targets(addr), ["a", "c"]);
    let probed = converged(addr, "c");
    wait_until("the old paths keep probing", || {
        converged(addr, "c") > probed
    });
    // An error line whose `error` is the text (quoted and escaped in logfmt, so read as such).
    let logged = common::logs::records(&log).into_iter().any(|r| {
        common::logs::get(&r, "level") == "error" && common::logs::get(&r, "error").contains(&error)
    });
    let logs = std::fs::read_to_string(&log).expect("log");
    assert!(logged, "the log names file, key and reason: {logs}");

    // A later valid reload recovers.
    std::fs::write(&config, TWO_PATHS).expect("write config");
    hup(&lw);
    wait_until("the reload succeeds again", || {
        metric(addr, OK) == Some(1.0)
    });
    wait_until("the paths are back", || targets(addr) == ["a", "b"]);
    assert!(metric(addr, TS).expect("timestamp") > reloaded);
    terminate(lw);
}

#[test]
fn post_reload_answers_with_the_outcome() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (lw, config, log) = start(dir.path(), true);
    let addr = lw.addr;
    let logs = std::fs::read_to_string(&log).expect("log");
    assert!(
        logs.contains("lagwatch is running.")
            && logs.contains("SIGHUP or POST /-/reload (--web.enable-lifecycle)"),
        "the start-up line says how to reload: {logs}"
    );

    let (status, body) = request(addr, "GET", "/-/reload");
    assert_eq!(status, 405, "only POST or PUT reloads: {body}");

    std::fs::write(&config, INVALID).expect("write config");
    let error = config_error(&config);
    let (status, body) = request(addr, "POST", "/-/reload");
    assert_eq!(status, 500, "{body}");
    assert!(body.contains(&error), "the ConfigError text: {body}");
    assert!(body.contains(config.to_str().unwrap()), "{body}");
    assert_eq!(metric(addr, OK), Some(0.0));
    assert_eq!(targets(addr), ["a", "b"]);

    // Every error of the file, as check-config reports them, not the first only.
    std::fs::write(&config, format!("{INVALID}stray: 1\n")).expect("write config");
    let errors = lagwatch_emulator::REGISTRY
        .check(&config, lagwatch::config::LoadOptions::default())
        .expect_err("two errors");
    assert!(errors.0.len() >= 2, "{errors}");
    let (status, body) = request(addr, "POST", "/-/reload");
    assert_eq!(status, 500, "{body}");
    for e in &errors.0 {
        assert!(body.contains(&e.to_string()), "{e} in {body}");
    }

    // The instance cannot change without a restart.
    std::fs::write(
        &config,
        TWO_PATHS.replace("instance: reload", "instance: other"),
    )
    .expect("write config");
    let (status, body) = request(addr, "POST", "/-/reload");
    assert_eq!(status, 500, "{body}");
    assert!(body.contains(": instance: changed from"), "{body}");

    std::fs::write(&config, OTHER_PATHS).expect("write config");
    let (status, body) = request(addr, "POST", "/-/reload");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("reloaded, 2 paths"), "{body}");
    assert_eq!(metric(addr, OK), Some(1.0));
    assert_eq!(targets(addr), ["a", "c"]);
    terminate(lw);
}

#[test]
fn without_the_lifecycle_flag_post_reload_is_refused_and_sighup_still_reloads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (lw, config, log) = start(dir.path(), false);
    let addr = lw.addr;
    let logs = std::fs::read_to_string(&log).expect("log");
    assert!(
        logs.contains("lagwatch is running.")
            && logs.contains("SIGHUP only (POST /-/reload needs --web.enable-lifecycle)"),
        "the start-up line says POST /-/reload is off: {logs}"
    );
    assert_eq!(targets(addr), ["a", "b"]);
    assert_eq!(metric(addr, OK), Some(1.0));
    let started = metric(addr, TS).expect("timestamp from start-up");

    // A changed file is not picked up over HTTP, and the refusal is no failed reload.
    std::fs::write(&config, OTHER_PATHS).expect("write config");
    for method in ["POST", "PUT"] {
        let (status, body) = request(addr, method, "/-/reload");
        assert_eq!(status, 403, "{method}: {body}");
        assert!(
            body.contains("lifecycle API is not enabled")
                && body.contains("--web.enable-lifecycle"),
            "{method}: {body}"
        );
    }
    // The refusal is synchronous; give a reload that should not happen time to show anyway.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(targets(addr), ["a", "b"], "the changed file is not loaded");
    assert_eq!(
        metric(addr, OK),
        Some(1.0),
        "a refusal is not a failed reload"
    );
    assert_eq!(metric(addr, TS), Some(started), "nor a reload at all");

    // SIGHUP reloads regardless of the flag.
    hup(&lw);
    wait_until("SIGHUP loads the new paths", || targets(addr) == ["a", "c"]);
    assert_eq!(metric(addr, OK), Some(1.0));
    terminate(lw);
}

#[test]
fn the_demo_ignores_sighup_and_refuses_post_reload() {
    let lw = common::demo::start_demo();
    let (status, body) = request(lw.addr, "POST", "/-/reload");
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("nothing to reload") && body.contains("generated"),
        "says why: {body}"
    );
    hup(&lw);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        common::http_get(lw.addr, "/healthz").0,
        200,
        "still running"
    );
    terminate(lw);
}
