//! lagwatch's own wall clock stepping forwards and backwards while it probes (an NTP step, a
//! VM resumed, an operator's `date -s`): the lag it reports must not move, because it is
//! measured on the monotonic clock; only wall-clock figures may (timestamps, and the clock
//! offset it reports for each system, which should show the step).
//!
//! The step is real for the lagwatch process only: the binary runs under libfaketime (Debian's
//! `faketime`, LD_PRELOAD) with `FAKETIME_DONT_FAKE_MONOTONIC=1`, its offset read from a file
//! this test rewrites; the emulator runs in this process on the true clock. Needs libfaketime:
//! without it the test skips, unless `LAGWATCH_REQUIRE_TOOLS=1`, where it fails.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

const SECRET: &str = "wall-clock-secret";
/// The emulated replication lag crm → crm2.
const LAG_S: f64 = 2.0;

fn libfaketime() -> Option<PathBuf> {
    let found = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists());
    if found.is_none() {
        common::tools::missing("libfaketime", "is not installed (Debian package faketime)");
    }
    found
}

/// The lag histogram of crm → crm2: (sum, count, count at or below 10 s).
fn lags(addr: std::net::SocketAddr) -> (f64, f64, f64) {
    let labels = "source=\"crm\",target=\"crm2\"";
    (
        common::scrape(addr, &format!("lagwatch_lag_seconds_sum{{{labels}}} ")).unwrap_or(0.0),
        common::scrape(addr, &format!("lagwatch_lag_seconds_count{{{labels}}} ")).unwrap_or(0.0),
        common::scrape(
            addr,
            &format!("lagwatch_lag_seconds_bucket{{{labels},le=\"10\"}} "),
        )
        .unwrap_or(0.0),
    )
}

fn step(file: &Path, offset: &str) {
    // Written whole then renamed: the process re-reads the file on every clock call.
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, format!("{offset}\n")).expect("offset");
    std::fs::rename(&tmp, file).expect("offset file");
}

#[test]
fn stepping_lagwatchs_wall_clock_changes_no_measured_lag() {
    let Some(lib) = libfaketime() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (_emulator, origin, _stop) = common::twin::serve(&rt, SECRET, &format!("{LAG_S}s"));
    let dir = tempfile::tempdir().expect("dir");
    let cfg = common::twin::monitor_config(
        dir.path(),
        &origin,
        SECRET,
        "wallclock",
        "  - { source: crm, target: crm2, interval: 1s, objective: 5s, timeout: 30s, confirm: 0s }\n",
    );
    let offset = dir.path().join("faketime");
    step(&offset, "+0");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_lagwatch"));
    cmd.args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .env("LD_PRELOAD", &lib)
        .env("FAKETIME_TIMESTAMP_FILE", &offset)
        .env("FAKETIME_NO_CACHE", "1")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::null());
    let bin = common::demo::start_command(cmd);
    let addr = bin.addr;
    let converged = || common::probes(addr, "crm", "crm2", "converged");
    let not_converged = || {
        ["timeout", "error", "halted"]
            .iter()
            .map(|o| common::probes(addr, "crm", "crm2", o))
            .sum::<f64>()
    };
    common::wait_until("probes converge", Duration::from_secs(30), || {
        converged() >= 2.0
    });

    // The faked clock is in force: lagwatch's own timestamps carry it.
    for (offset_s, label) in [(3600.0, "+3600"), (-3600.0, "-3600"), (0.0, "+0")] {
        let before = lags(addr);
        let probes_before = converged();
        step(&offset, label);
        common::wait_until(
            &format!("{label}: three probes converge"),
            Duration::from_secs(40),
            || converged() >= probes_before + 3.0,
        );
        let after = lags(addr);
        let (n, sum, low) = (after.1 - before.1, after.0 - before.0, after.2 - before.2);
        assert!(n >= 3.0, "{label}: {n} lags observed");
        let mean = sum / n;
        assert!(
            (LAG_S - 0.5..LAG_S + 2.0).contains(&mean),
            "{label}: the mean lag over {n} probes is {mean:.3} s, the true lag {LAG_S} s"
        );
        assert_eq!(low, n, "{label}: every lag under 10 s");
        let (_, _, paths) = common::http_get(addr, "/api/v1/paths");
        let v: serde_json::Value = serde_json::from_str(&paths).expect("json");
        let generated = v["generated_at"]
            .as_str()
            .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
            .expect("generated_at");
        let skew = (generated - chrono::Utc::now()).num_milliseconds() as f64 / 1000.0;
        assert!(
            (skew - offset_s).abs() < 30.0,
            "{label}: lagwatch's wall clock is {skew:.0} s off ours (the step is in force)"
        );
        // The offset it reports for the system (its clock minus lagwatch's) shows the step.
        common::wait_until(
            &format!("{label}: the clock offset of crm shows the step"),
            Duration::from_secs(30),
            || {
                common::scrape(addr, "lagwatch_clock_offset_seconds{system=\"crm\"} ")
                    .is_some_and(|o| (o + offset_s).abs() < 30.0)
            },
        );
    }
    assert_eq!(not_converged(), 0.0, "no probe failed or timed out");
    common::demo::terminate(bin);
}
