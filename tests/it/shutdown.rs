//! SIGTERM while a source hangs: lagwatch stops starting probes, keeps what is in flight in
//! its ledger, and exits 0 within its shutdown deadline even though a write never answers.

use crate::common;

use std::time::{Duration, Instant};

const SECRET: &str = "shutdown-test-secret";

/// Sends SIGTERM and waits (at most 30 s) for the exit; its status and how long it took.
fn sigterm(bin: &mut common::demo::Demo) -> (std::process::ExitStatus, Duration) {
    let sent = Instant::now();
    let pid = bin.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    loop {
        if let Some(code) = bin.child.try_wait().expect("wait") {
            return (code, sent.elapsed());
        }
        assert!(
            sent.elapsed() < Duration::from_secs(30),
            "still running 30 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigterm_ends_within_the_deadline_while_the_source_hangs() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (_emulator, origin, _stop) = common::twin::serve(&rt, SECRET, "3s");
    let dir = tempfile::tempdir().expect("dir");
    let cfg = common::twin::monitor_config(
        dir.path(),
        &origin,
        SECRET,
        "stest",
        "  - { source: crm, target: crm2, interval: 500ms, timeout: 60s, request_timeout: 60s, objective: 10s }\n",
    );
    let mut bin = common::demo::start(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--config",
        cfg.to_str().expect("utf-8"),
    ]);
    let addr = bin.addr;
    let in_flight = || {
        common::scrape(
            addr,
            "lagwatch_probes_in_flight{source=\"crm\",target=\"crm2\"} ",
        )
        .unwrap_or(0.0)
    };
    let end = Instant::now() + Duration::from_secs(20);
    while in_flight() < 2.0 {
        assert!(Instant::now() < end, "no sentinel in flight");
        std::thread::sleep(Duration::from_millis(200));
    }
    // From now on Dataverse answers nothing for 10 minutes: writes and deletes hang.
    let r = rt
        .block_on(
            reqwest::Client::new()
                .post(format!("{origin}/_faults"))
                .json(&serde_json::json!({"prefix": "/crm/", "mode": "slow", "delay_seconds": 600}))
                .send(),
        )
        .expect("fault");
    assert!(r.status().is_success());
    std::thread::sleep(Duration::from_secs(2));

    let (code, took) = sigterm(&mut bin);
    assert!(code.success(), "exit status {code:?}");
    assert!(
        took <= lagwatch::probe::SHUTDOWN_DEADLINE + Duration::from_secs(3),
        "took {took:?}"
    );
    // What could not be deleted is in the ledger for the next start.
    let ledger = lagwatch::ledger::Ledger::open(
        &dir.path().join("state"),
        &lagwatch::metrics::Metrics::new(),
    );
    assert!(!ledger.take_snapshot().entries.is_empty());
}

/// SIGTERM while lagwatch honours a 30 s Retry-After from the source, without a `state_dir`:
/// every wait (the throttling pause, admission, poll sleeps) is interrupted, the in-flight
/// sentinels are deleted once despite the pause, and the process exits 0 within its deadline
/// with the source empty.
#[test]
fn sigterm_during_a_long_retry_after_deletes_every_sentinel_in_time() {
    const INSTANCE: &str = "sthrottle";
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    // crm2 lags 40 s behind, so the sentinels are still in flight when SIGTERM comes.
    let (_emulator, origin, _stop) = common::twin::serve(&rt, SECRET, "40s");
    let dir = tempfile::tempdir().expect("dir");
    let cfg = common::twin::monitor_config_without_state(
        dir.path(),
        &origin,
        SECRET,
        INSTANCE,
        "  - { source: crm, target: crm2, interval: 500ms, timeout: 2m, objective: 10s }\n",
    );
    let mut bin = common::demo::start(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--config",
        cfg.to_str().expect("utf-8"),
    ]);
    let addr = bin.addr;
    common::wait_until("sentinels in flight", Duration::from_secs(20), || {
        common::scrape(
            addr,
            "lagwatch_probes_in_flight{source=\"crm\",target=\"crm2\"} ",
        )
        .unwrap_or(0.0)
            >= 3.0
    });
    let http = reqwest::Client::new();
    let fault = |request: reqwest::RequestBuilder| {
        let r = rt.block_on(request.send()).expect("fault request");
        assert!(r.status().is_success(), "{}", r.status());
    };
    fault(http.post(format!("{origin}/_faults")).json(
        &serde_json::json!({"prefix": "/crm/", "mode": "throttle", "retry_after_seconds": 30}),
    ));
    common::wait_until("a 429 from the source", Duration::from_secs(10), || {
        common::scrape(addr, "lagwatch_throttled_total{system=\"crm\"} ").unwrap_or(0.0) >= 1.0
    });
    // The source would take requests again; lagwatch still owes it 30 s of silence.
    fault(http.delete(format!("{origin}/_faults")));
    let in_source = || {
        rt.block_on(common::entra::sentinels_in(
            &http,
            &origin,
            "crm",
            ("lagwatch-test", SECRET),
            INSTANCE,
        ))
    };
    assert!(!in_source().is_empty(), "sentinels in flight at SIGTERM");

    let (code, took) = sigterm(&mut bin);
    assert!(code.success(), "exit status {code:?}");
    assert!(took <= lagwatch::probe::SHUTDOWN_DEADLINE, "took {took:?}");
    let left = in_source();
    assert!(left.is_empty(), "left in the source: {left:?}");
}
