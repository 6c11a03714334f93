//! Helpers shared by the behaviour tests.
#![allow(dead_code)]

pub mod blob;
pub mod delta;
pub mod demo;
pub mod entra;
pub mod fakes;
pub mod lake;
pub mod logs;
pub mod prometheus;
pub mod shapes;
pub mod tools;
pub mod twin;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use lagwatch::app::App;

/// Makes every series of a configured path and its systems exist, including those that appear
/// only with their first event (errors, throttling, resumed probes, the last lag), so a test
/// can check a rule or a dashboard against everything lagwatch may export.
pub fn every_series(m: &lagwatch::metrics::Metrics, source: &str, target: &str) {
    let p = m.paths.get(source, target).expect("a configured path");
    for kind in lagwatch::connector::ConnectorError::KINDS {
        p.lookup_error(kind);
    }
    p.last_lag.set(1.0);
    p.uncertainty.set(0.1);
    p.last_converged.set(1.0);
    p.skipped.inc();
    p.monotonic.inc();
    p.read_observed(1.0, true);
    p.read_observed(1.0, false);
    // Exported for the guarantees the path declares only.
    for i in 0..lagwatch::config::Contract::N {
        p.contract_violated(i);
    }
    p.deletes_lost.inc();
    p.resurrections.inc();
    for result in 0..lagwatch::metrics::series::PAIR_RESULTS.len() {
        p.pair(result, Some(0));
    }
    p.pair(1, Some(1));
    p.order_inversions.inc();
    p.updates_lost.inc();
    for outcome in 0..5 {
        p.probe(outcome, true);
    }
    for system in [source, target] {
        for op in lagwatch::metrics::SOURCE_OPERATIONS
            .iter()
            .chain(lagwatch::metrics::TARGET_OPERATIONS)
        {
            m.observe_request(system, op, "2xx", 0.1);
        }
        m.throttled.with_label_values(&[system]);
        m.throttle_wait.with_label_values(&[system]);
        m.admission_timeouts.with_label_values(&[system]);
    }
    m.writes.with_label_values(&[source, "throttled"]);
    m.sentinels_lost.with_label_values(&[source]);
    m.deletes_owed.with_label_values(&[source]).set(1);
}

/// Runs `app`'s engine for `d` (of paused time, in a paused test), then stops it and waits
/// for it to end.
pub async fn run_for(app: &App, d: std::time::Duration) {
    let stop = tokio_util::sync::CancellationToken::new();
    let run = tokio::spawn(app.engine.clone().run(stop.clone()));
    tokio::time::sleep(d).await;
    stop.cancel();
    run.await.expect("the engine ends");
}

/// The value of `name{labels}` in `app`'s exposition (a counter, a histogram bucket); 0 when
/// not exported (counters of events appear with their first event).
pub fn sample(app: &App, name: &str, labels: &str) -> f64 {
    let text = app.engine.metrics().render();
    text.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix('{')?;
            let (ls, v) = rest.split_once("} ")?;
            (ls == labels).then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0.0)
}

/// The deletes a path watched, each with its sentinel's key (`instance` is the config's):
/// how a test looks each one up in a replica's truth.
pub fn watched_deletes(
    state: &lagwatch::probe::path::PathState,
    instance: &str,
) -> Vec<(String, lagwatch::probe::deletes::DeleteTrace)> {
    state
        .deletes
        .iter()
        .map(|d| {
            let probe = state
                .traces
                .iter()
                .find(|t| t.seq == d.seq)
                .expect("each watched delete has its probe");
            (probe.sentinel(instance).key().to_string(), *d)
        })
        .collect()
}

/// Checks a watched delete's outcome against whether its replica dropped the delete (`truth`
/// is shown on failure): lost, with no lag, if it did, else gone. Returns whether it arrived.
pub fn delete_settled_as_truth(
    target: &str,
    key: &str,
    d: &lagwatch::probe::deletes::DeleteTrace,
    dropped: bool,
    truth: &dyn std::fmt::Debug,
) -> bool {
    use lagwatch::probe::deletes::DeleteOutcome;
    let want = if dropped {
        DeleteOutcome::Lost
    } else {
        DeleteOutcome::Gone
    };
    assert_eq!(d.outcome, want, "{target} {key}: {d:?} {truth:?}");
    assert_eq!(
        d.estimate.is_some(),
        !dropped,
        "a lag only for a delete that arrived"
    );
    !dropped
}

/// The row of guarantee `g` of the path to `target` in a consistency report.
pub fn guarantee<'a>(
    r: &'a lagwatch::contracts::ContractsReport,
    target: &str,
    g: &str,
) -> &'a lagwatch::contracts::GuaranteeReport {
    r.paths
        .iter()
        .find(|p| p.target == target)
        .and_then(|p| p.guarantees.iter().find(|x| x.guarantee == g))
        .unwrap_or_else(|| panic!("{target} {g}"))
}

/// The path of `app` that reads `target` (the first, for a target several sources write).
pub fn path_to(app: &App, target: &str) -> std::sync::Arc<lagwatch::probe::PathHandle> {
    app.engine
        .paths()
        .iter()
        .find(|p| p.spec.target == target)
        .unwrap_or_else(|| panic!("a path to {target}"))
        .clone()
}

/// Builds an app from YAML text (panics with the config error: a test's own input).
pub fn app(yaml: &str) -> App {
    let config = lagwatch_emulator::REGISTRY
        .from_yaml("test.yaml", yaml)
        .unwrap_or_else(|e| panic!("{e}"));
    App::build(config).unwrap_or_else(|e| panic!("{e}"))
}

/// A plain HTTP/1.1 GET; returns (status, content-type, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("http response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, content_type, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// One sample of a running binary's `/metrics`: the value on the line that starts with
/// `series` (name and labels as rendered, then a space).
pub fn scrape(addr: SocketAddr, series: &str) -> Option<f64> {
    let (_, _, body) = http_get(addr, "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
}

/// Polls `f` every 200 ms until it holds; panics naming `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + limit;
    while !f() {
        assert!(std::time::Instant::now() < end, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `lagwatch_probes_total` of one path and outcome from a running binary (0 before any).
pub fn probes(addr: SocketAddr, source: &str, target: &str, outcome: &str) -> f64 {
    scrape(
        addr,
        &format!("lagwatch_probes_total{{outcome=\"{outcome}\",source=\"{source}\",target=\"{target}\"}} "),
    )
    .unwrap_or(0.0)
}

/// A fresh directory under the system's temp dir, named `{prefix}…`, removed when dropped.
pub fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("a temp dir")
}
