//! SIGTERM while a source hangs: lagwatch stops starting probes, keeps what is in flight in
//! its ledger, and exits 0 within its shutdown deadline even though a write never answers.

mod common;

use std::time::{Duration, Instant};

const SECRET: &str = "shutdown-test-secret";

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

    let sent = Instant::now();
    let pid = bin.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let code = loop {
        if let Some(code) = bin.child.try_wait().expect("wait") {
            break code;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(30),
            "still running 30 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let took = sent.elapsed();
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
