//! The durable probe ledger through restarts and crashes: lagwatch (the library `App`, or the
//! binary) against the emulator over loopback, sentinels left in flight by one process ended by
//! the next, every measured lag checked against the emulator's ground truth, and the source
//! checked for leftovers.

use crate::common;

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lagwatch::app::App;
use lagwatch::ledger::{Entry, Health, Ledger};
use lagwatch::metrics::Metrics;
use lagwatch::probe::{Outcome, ProbeRecord};
use lagwatch_emulator::{Emulator, Scenario};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "ledger-test-secret";
const INSTANCE: &str = "ltest";

fn scenario(lag: &str) -> String {
    common::twin::scenario(SECRET, lag)
}

use common::twin::dataverse;

/// crm → crm2 probed every `every`, with `state_dir` under `dir`.
fn config(origin: &str, dir: &Path, every: &str, timeout: &str) -> String {
    let secret = dir.join("secret");
    std::fs::write(&secret, SECRET).expect("secret file");
    format!(
        r#"
instance: {INSTANCE}
state_dir: {state}
systems:{crm}{crm2}
paths:
  - source: crm
    target: crm2
    interval: {every}
    objective: 2s
    timeout: {timeout}
    confirm: 0s
"#,
        state = dir.join("state").display(),
        crm = dataverse("crm", origin, &secret),
        crm2 = dataverse("crm2", origin, &secret),
    )
}

struct Estate {
    origin: String,
    emulator: Arc<Emulator>,
    _stop: tokio_util::sync::DropGuard,
}

async fn estate(lag: &str) -> Estate {
    let emulator = Emulator::new(Scenario::from_yaml(&scenario(lag)).expect("scenario"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let stop = CancellationToken::new();
    let (e, s) = (emulator.clone(), stop.clone());
    tokio::spawn(async move { e.serve(listener, s).await });
    Estate {
        origin,
        emulator,
        _stop: stop.drop_guard(),
    }
}

/// A monitor running on a loopback port until its `stop` is cancelled.
struct Running {
    app: Arc<App>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn start(app: App) -> Running {
        let app = Arc::new(app);
        let stop = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let (a, s) = (app.clone(), stop.clone());
        let task = tokio::spawn(async move { a.run(listener, s).await });
        Running { app, stop, task }
    }

    /// Shuts down as on SIGTERM and waits for it.
    async fn stop(self) -> Arc<App> {
        self.stop.cancel();
        self.task.await.expect("join").expect("served");
        self.app
    }
}

fn build(text: &str) -> App {
    let config = lagwatch_emulator::REGISTRY
        .from_yaml("ledger-test.yaml", text)
        .unwrap_or_else(|e| panic!("{e}"));
    App::build(config).unwrap_or_else(|e| panic!("{e}"))
}

/// Keys of this instance's sentinels that exist in the source right now (the Dataverse Web
/// API, as any client would ask it).
async fn sentinels_in_source(origin: &str) -> BTreeSet<String> {
    let http = reqwest::Client::new();
    common::entra::sentinels_in(&http, origin, "crm", ("lagwatch-test", SECRET), INSTANCE).await
}

/// The ledger's content, read as the next process would (the process using it has stopped).
fn ledger_entries(dir: &Path) -> Vec<Entry> {
    let ledger = Ledger::open(&dir.join("state"), &Metrics::new());
    assert_eq!(ledger.health(), Health::Up);
    ledger.take_snapshot().entries
}

fn ledger_ids(dir: &Path) -> BTreeSet<String> {
    ledger_entries(dir).into_iter().map(|e| e.id).collect()
}

/// Asserts a converged record's estimate contains the emulator's truth (`slack` for the wall
/// clock conversions of a resumed probe).
fn check_truth(estate: &Estate, r: &ProbeRecord, slack: Duration) {
    let truth = estate
        .emulator
        .truth("crm2", r.sentinel.key())
        .unwrap_or_else(|| panic!("truth for {}", r.sentinel));
    let visible = truth.visible_at.expect("visible");
    let truth_lag = visible.saturating_duration_since(truth.committed_at);
    let est = r.estimate.expect("a converged probe has an estimate");
    assert!(
        est.contains(truth_lag, slack),
        "{}: measured {:?} ± {:?}, truth {truth_lag:?} (resumed: {})",
        r.sentinel,
        est.lag,
        est.uncertainty,
        r.resumed
    );
}

/// Collects records until `done` says so or `limit` passes.
async fn collect(
    rx: &mut tokio::sync::broadcast::Receiver<ProbeRecord>,
    limit: Duration,
    mut done: impl FnMut(&[ProbeRecord]) -> bool,
) -> Vec<ProbeRecord> {
    let mut out = Vec::new();
    let end = tokio::time::Instant::now() + limit;
    while !done(&out) {
        match tokio::time::timeout_at(end, rx.recv()).await {
            Ok(Ok(r)) => out.push(r),
            Ok(Err(RecvError::Lagged(n))) => panic!("lost {n} records"),
            Ok(Err(RecvError::Closed)) | Err(_) => break,
        }
    }
    out
}

fn metric(app: &App, line_start: &str) -> f64 {
    let text = app.engine.metrics().render();
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .map(|v| v.trim().parse().expect("a number"))
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_restart_resumes_sentinels_in_flight_and_measures_them_once() {
    let estate = estate("4s").await;
    let dir = tempfile::tempdir().expect("dir");
    let text = config(&estate.origin, dir.path(), "1s", "30s");

    // First process: a few seconds of probing, then SIGTERM-like shutdown with sentinels still
    // on their way to crm2 (4 s behind).
    let first = build(&text);
    let mut rx = first.engine.subscribe();
    let first = Running::start(first).await;
    let before = collect(&mut rx, Duration::from_secs(20), |r| r.len() >= 2).await;
    assert!(before.len() >= 2, "the first process measured something");
    let first = first.stop().await;
    let after_stop = collect(&mut rx, Duration::from_millis(200), |_| false).await;
    let first_ids: HashSet<String> = before
        .iter()
        .chain(&after_stop)
        .map(|r| r.sentinel.key().to_string())
        .collect();
    assert_eq!(
        metric(&first, "lagwatch_ledger_up "),
        1.0,
        "the ledger was up"
    );

    // What the first process left: in the ledger, and in the source, the same sentinels.
    let pending = ledger_ids(dir.path());
    assert!(
        !pending.is_empty(),
        "sentinels in flight at shutdown stay for the next start"
    );
    assert_eq!(sentinels_in_source(&estate.origin).await, pending);
    assert!(
        pending.iter().all(|id| !first_ids.contains(id)),
        "none of them was counted by the first process"
    );

    // Second process: resumes exactly those, each converged once with the truth in its bound.
    let second = build(&text);
    let mut rx = second.engine.subscribe();
    let second = Running::start(second).await;
    let want = pending.clone();
    let records = collect(&mut rx, Duration::from_secs(30), |r| {
        let resumed: HashSet<&str> = r
            .iter()
            .filter(|r| r.resumed)
            .map(|r| r.sentinel.key())
            .collect();
        want.iter().all(|id| resumed.contains(id.as_str()))
    })
    .await;
    let resumed: Vec<&ProbeRecord> = records.iter().filter(|r| r.resumed).collect();
    let resumed_ids: BTreeSet<String> = resumed
        .iter()
        .map(|r| r.sentinel.key().to_string())
        .collect();
    assert_eq!(resumed_ids, pending, "every pending sentinel resumed");
    assert_eq!(resumed.len(), pending.len(), "each exactly once");
    for r in &resumed {
        assert_eq!(r.outcome, Outcome::Converged);
        check_truth(&estate, r, Duration::from_millis(20));
    }
    for r in records.iter().filter(|r| !r.resumed) {
        if r.outcome == Outcome::Converged {
            check_truth(&estate, r, Duration::from_millis(1));
        }
        assert!(
            r.seq > resumed.iter().map(|r| r.seq).max().unwrap_or(0),
            "numbering continues after the resumed sentinels"
        );
    }
    assert_eq!(
        metric(
            &second.app,
            "lagwatch_probes_resumed_total{outcome=\"converged\",source=\"crm\",target=\"crm2\"} "
        ),
        pending.len() as f64
    );
    assert_eq!(
        metric(
            &second.app,
            "lagwatch_sentinels_lost_total{source=\"crm\"} "
        ),
        0.0
    );
    // The lag histogram holds only the second process's own measurements.
    let own = records
        .iter()
        .filter(|r| !r.resumed && r.outcome == Outcome::Converged)
        .count();
    assert_eq!(
        metric(
            &second.app,
            "lagwatch_lag_seconds_count{source=\"crm\",target=\"crm2\"} "
        ),
        own as f64
    );

    // Resumed sentinels are deleted from the source once measured.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let left = sentinels_in_source(&estate.origin).await;
    assert!(
        pending.iter().all(|id| !left.contains(id)),
        "resumed sentinels deleted: {left:?}"
    );
    second.stop().await;
    // Whatever the second left in flight is in its ledger, and nothing else is in the source.
    assert_eq!(
        sentinels_in_source(&estate.origin).await,
        ledger_ids(dir.path())
    );
}

/// Runs `app` on its own runtime for `for_` and then drops that runtime with every task still
/// running: no shutdown, no cleanup, as when the process is killed.
fn run_and_crash(app: App, for_: Duration) -> Vec<ProbeRecord> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let records = rt.block_on(async {
            let app = Arc::new(app);
            let mut rx = app.engine.subscribe();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let a = app.clone();
            tokio::spawn(async move { a.run(listener, CancellationToken::new()).await });
            collect(&mut rx, for_, |_| false).await
        });
        rt.shutdown_background();
        records
    })
    .join()
    .expect("crashing thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_the_next_process_ends_every_probe_and_leaks_nothing() {
    let estate = estate("3s").await;
    let dir = tempfile::tempdir().expect("dir");
    let text = config(&estate.origin, dir.path(), "500ms", "30s");
    let crashed = tokio::task::spawn_blocking({
        let app = build(&text);
        move || run_and_crash(app, Duration::from_secs(6))
    })
    .await
    .expect("crash");
    let measured: HashSet<String> = crashed
        .iter()
        .map(|r| r.sentinel.key().to_string())
        .collect();
    let entries = ledger_entries(dir.path());
    let pending: BTreeSet<String> = entries.iter().map(|e| e.id.clone()).collect();
    // Acknowledged with paths still waiting: these must be resumed; the rest only deleted.
    let resumable: BTreeSet<String> = entries
        .iter()
        .filter(|e| e.acked_at.is_some() && !e.probes.is_empty() && !e.undeleted)
        .map(|e| e.id.clone())
        .collect();
    assert!(!resumable.is_empty(), "the crash left sentinels in flight");
    // An outcome is in the ledger before it is published, so nothing counted by the crashed
    // process is resumed (and counted again). A counted sentinel may still be in the ledger,
    // resolved and waiting for its delete, when the crash comes between the two.
    let counted_and_resumable: Vec<&String> = resumable
        .iter()
        .filter(|id| measured.contains(*id))
        .collect();
    assert!(
        counted_and_resumable.is_empty(),
        "counted, yet left to resume: {counted_and_resumable:?}"
    );
    let in_source = sentinels_in_source(&estate.origin).await;
    assert!(
        in_source.is_subset(&pending),
        "every sentinel in the source is known to the ledger: {in_source:?} vs {pending:?}"
    );

    let next = build(&text);
    let mut rx = next.engine.subscribe();
    let next = Running::start(next).await;
    let records = collect(&mut rx, Duration::from_secs(30), |r| {
        let done: HashSet<&str> = r.iter().map(|r| r.sentinel.key()).collect();
        resumable.iter().all(|id| done.contains(id.as_str()))
    })
    .await;
    for r in records.iter().filter(|r| r.resumed) {
        assert!(pending.contains(r.sentinel.key()));
        assert!(!measured.contains(r.sentinel.key()), "never counted twice");
        assert_eq!(r.outcome, Outcome::Converged);
        check_truth(&estate, r, Duration::from_millis(20));
    }
    let resumed: BTreeSet<String> = records
        .iter()
        .filter(|r| r.resumed)
        .map(|r| r.sentinel.key().to_string())
        .collect();
    assert_eq!(resumed, resumable, "acknowledged sentinels were resumed");
    tokio::time::sleep(Duration::from_millis(500)).await;
    next.stop().await;
    // Writes caught mid-flight by the crash were deleted (owed deletes), resumed ones after
    // their outcome: the source holds exactly what the second process left in its ledger.
    let left = sentinels_in_source(&estate.origin).await;
    assert!(
        pending.iter().all(|id| !left.contains(id)),
        "nothing of the crashed process is left: {left:?}"
    );
    // Every sentinel left in the source is in the ledger. The ledger may hold more: a write
    // whose answer never came (a timeout under load) is an owed delete until it can no longer
    // appear, kept for the next process whether or not it landed; nothing else.
    let kept = ledger_entries(dir.path());
    let kept_ids: BTreeSet<String> = kept.iter().map(|e| e.id.clone()).collect();
    assert!(left.is_subset(&kept_ids), "{left:?} vs {kept_ids:?}");
    for e in kept.iter().filter(|e| !left.contains(&e.id)) {
        assert!(e.undeleted, "in the ledger, gone from the source: {e:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinels_the_ledger_lost_are_found_by_the_sweep_and_counted() {
    let estate = estate("3s").await;
    let dir = tempfile::tempdir().expect("dir");
    let text = config(&estate.origin, dir.path(), "500ms", "4s");
    tokio::task::spawn_blocking({
        let app = build(&text);
        move || run_and_crash(app, Duration::from_secs(3))
    })
    .await
    .expect("crash");
    let orphans = sentinels_in_source(&estate.origin).await;
    assert!(!orphans.is_empty());
    // The ledger is lost with the disk it was on.
    std::fs::remove_dir_all(dir.path().join("state")).expect("remove state");
    // The sweep takes only sentinels older than the longest timeout (4 s).
    tokio::time::sleep(Duration::from_secs(5)).await;

    let next = Running::start(build(&text)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = sentinels_in_source(&estate.origin).await;
        if orphans.iter().all(|id| !left.contains(id)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "orphans not swept: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        metric(&next.app, "lagwatch_sentinels_lost_total{source=\"crm\"} "),
        orphans.len() as f64
    );
    next.stop().await;
}

/// Whether this machine lets a test mount a filesystem in a private mount namespace (root, as
/// on CI). Required when CI says so.
fn can_mount(dir: &Path) -> bool {
    let ok = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg("mount -t tmpfs -o size=64k tmpfs \"$1\"")
        .arg("sh")
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        common::tools::missing(
            "a tmpfs in a private mount namespace (unshare -m)",
            "cannot be mounted here (it needs root)",
        );
    }
    ok
}

/// The ledger's disk fills up while lagwatch runs: a real ENOSPC from a small tmpfs mounted
/// (in a private mount namespace, so nothing leaks onto the host) where state_dir is. Probing
/// goes on, `/metrics` and `/readyz` say the ledger is down, and it comes back by itself once
/// space is freed.
#[test]
fn a_full_disk_degrades_the_ledger_and_it_recovers_when_space_returns() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let estate = rt.block_on(estate("1s"));
    let dir = tempfile::tempdir().expect("dir");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    if !can_mount(&state) {
        return; // reported by can_mount
    }
    let cfg = dir.path().join("lagwatch.yaml");
    std::fs::write(&cfg, config(&estate.origin, dir.path(), "500ms", "30s")).expect("config");
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c"])
        .arg("mount -t tmpfs -o size=16m tmpfs \"$1\" && exec \"$2\" run --listen 127.0.0.1:0 --config \"$3\"")
        .arg("sh")
        .arg(&state)
        .arg(env!("CARGO_BIN_EXE_lagwatch"))
        .arg(&cfg)
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::null());
    let bin = common::demo::start_command(cmd);
    let addr = bin.addr;
    let converged = || common::probes(addr, "crm", "crm2", "converged");
    common::wait_until(
        "ledger up and probes converging",
        Duration::from_secs(20),
        || common::scrape(addr, "lagwatch_ledger_up ") == Some(1.0) && converged() >= 1.0,
    );

    // Fill the ledger's filesystem, seen through the process's own mount namespace.
    let filler = Path::new(&format!("/proc/{}/root", bin.child.id()))
        .join(state.strip_prefix("/").expect("absolute"))
        .join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).expect("filler in the tmpfs");
        let chunk = vec![0u8; 64 * 1024];
        let full = loop {
            if let Err(e) = f.write_all(&chunk).and_then(|()| f.flush()) {
                break e;
            }
        };
        assert_eq!(full.raw_os_error(), Some(28), "ENOSPC: {full}");
    }
    common::wait_until("ledger reported down", Duration::from_secs(20), || {
        common::scrape(addr, "lagwatch_ledger_up ") == Some(0.0)
    });
    assert!(
        common::scrape(addr, "lagwatch_ledger_errors_total{operation=\"write\"} ").unwrap_or(0.0)
            >= 1.0
    );
    let (status, _, ready) = common::http_get(addr, "/readyz");
    assert_eq!(status, 200, "{ready}");
    assert!(
        ready.contains("ledger: unavailable, probing without resume"),
        "{ready}"
    );
    // Measuring goes on without the ledger.
    let before = converged();
    common::wait_until(
        "probes converge with the disk full",
        Duration::from_secs(20),
        || converged() >= before + 2.0,
    );

    std::fs::remove_file(&filler).expect("free the space");
    common::wait_until("ledger up again", Duration::from_secs(20), || {
        common::scrape(addr, "lagwatch_ledger_up ") == Some(1.0)
    });
    let (_, _, ready) = common::http_get(addr, "/readyz");
    assert!(ready.contains("ledger: ok"), "{ready}");

    // The file is exact again: no sentinel that ended while the disk was full is left in it
    // (a restart would resume it and count its probe a second time). Read the source first,
    // then the ledger; a sentinel written in between, or deleted and not yet forgotten, is not
    // a stale one: only those written 2 s before the source was read and gone from it count.
    let ledger_file = filler.with_file_name(lagwatch::ledger::FILE_NAME);
    let stale = || {
        let listed_at = chrono::Utc::now();
        let in_source = rt.block_on(sentinels_in_source(&estate.origin));
        // A copy (file and write-ahead log): SQLite resolves the /proc/<pid>/root link to
        // this namespace's view, where the tmpfs is not mounted.
        let copy = tempfile::tempdir().expect("dir");
        for suffix in ["", "-wal"] {
            let from = format!("{}{suffix}", ledger_file.display());
            if Path::new(&from).exists() {
                std::fs::copy(&from, copy.path().join(format!("ledger.sqlite{suffix}")))
                    .expect("copy the ledger");
            }
        }
        let read = || -> rusqlite::Result<Vec<(String, i64)>> {
            let db = rusqlite::Connection::open(copy.path().join("ledger.sqlite"))?;
            let mut rows =
                db.prepare("SELECT id, written_us FROM sentinels WHERE undeleted = 0")?;
            rows.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        };
        // Copied mid-write, the pair can be torn: then look again.
        let Ok(held) = read() else {
            return vec!["(a torn copy)".to_string()];
        };
        let before = (listed_at - chrono::Duration::seconds(2)).timestamp_micros();
        held.into_iter()
            .filter(|(id, written)| *written < before && !in_source.contains(id))
            .map(|(id, _)| id)
            .collect::<Vec<_>>()
    };
    common::wait_until(
        "the ledger holds only sentinels still in the source",
        Duration::from_secs(20),
        || stale().is_empty(),
    );
    common::demo::terminate(bin);
}

/// A ledger that cannot be opened (its directory is a file) leaves lagwatch probing, says so
/// in `/metrics` and `/readyz`, and is not touched.
#[test]
fn an_unusable_ledger_is_a_clear_error_and_a_fallback() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let estate = rt.block_on(estate("1s"));
    let dir = tempfile::tempdir().expect("dir");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    let garbage = b"not a ledger at all\n".repeat(300);
    std::fs::write(state.join("ledger.sqlite"), &garbage).expect("garbage ledger");
    let cfg = dir.path().join("lagwatch.yaml");
    std::fs::write(&cfg, config(&estate.origin, dir.path(), "500ms", "30s")).expect("config");
    let (bin, log) = common::demo::run_logged(&cfg, &[], "info");
    let addr = bin.addr;
    common::wait_until(
        "probes converging without the ledger",
        Duration::from_secs(20),
        || {
            common::scrape(
                addr,
                "lagwatch_probes_total{outcome=\"converged\",source=\"crm\",target=\"crm2\"} ",
            )
            .unwrap_or(0.0)
                >= 1.0
        },
    );
    assert_eq!(common::scrape(addr, "lagwatch_ledger_up "), Some(0.0));
    assert_eq!(
        common::scrape(addr, "lagwatch_ledger_errors_total{operation=\"open\"} "),
        Some(1.0)
    );
    let (status, _, ready) = common::http_get(addr, "/readyz");
    assert_eq!(status, 200);
    assert!(
        ready.contains("ledger: unavailable, probing without resume"),
        "{ready}"
    );
    assert!(ready.contains("ledger.sqlite"), "names the file: {ready}");
    common::demo::terminate(bin);
    let log = std::fs::read_to_string(&log).expect("log");
    assert!(
        log.contains("The probe ledger cannot be used") && log.contains("ledger.sqlite"),
        "{log}"
    );
    assert_eq!(
        std::fs::read(state.join("ledger.sqlite")).expect("still there"),
        garbage,
        "the file is left as it was"
    );
}

/// POSTs to a running binary; returns (status, body).
fn post(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("status");
    (status, raw)
}

/// A reload hands the sentinels in flight to the new configuration through the ledger: they
/// are resumed, not deleted and lost.
#[test]
fn a_reload_hands_the_probes_in_flight_over_through_the_ledger() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let estate = rt.block_on(estate("5s"));
    let dir = tempfile::tempdir().expect("dir");
    let cfg = dir.path().join("lagwatch.yaml");
    std::fs::write(&cfg, config(&estate.origin, dir.path(), "1s", "30s")).expect("config");
    let bin = common::demo::start(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--config",
        cfg.to_str().expect("utf-8"),
        "--web.enable-lifecycle",
    ]);
    let addr = bin.addr;
    let metric = |line: &str| common::scrape(addr, line).unwrap_or(0.0);
    common::wait_until("sentinels in flight", Duration::from_secs(20), || {
        metric("lagwatch_probes_in_flight{source=\"crm\",target=\"crm2\"} ") >= 2.0
    });
    let (status, body) = post(addr, "/-/reload");
    assert_eq!(status, 200, "{body}");
    common::wait_until(
        "the new configuration resumes them",
        Duration::from_secs(30),
        || {
            metric(
                "lagwatch_probes_resumed_total{outcome=\"converged\",source=\"crm\",target=\"crm2\"} ",
            ) >= 2.0
        },
    );
    assert_eq!(
        metric(
            "lagwatch_probes_resumed_total{outcome=\"timeout\",source=\"crm\",target=\"crm2\"} "
        ),
        0.0
    );
    common::demo::terminate(bin);
}
