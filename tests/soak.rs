//! The short soak that runs in CI: 200 paths (4 Dataverse sources × 50 targets) against the
//! emulator (a child `lagwatch emulate`) with faults injected at random for about a minute,
//! one graceful restart mid-way, then a clean restart that resumes what was left (the fault
//! sequence is seeded: `LAGWATCH_SOAK_SEED`, printed in the report, replays it). It asserts
//! the invariants of the full soak (`benches/soak.rs`, whose figures are in BENCHMARKS.md):
//! every sentinel written ends in exactly one outcome per path, nothing is leaked into a
//! source, memory does not grow after warm-up beyond a tolerance, and open sockets stay
//! within what the systems' concurrency caps allow.
//!
//! Light on purpose (CI shares 2 cores with the rest of the suite): an 8 s interval gives
//! about 25 probes and 150 requests per second. The tolerances carry headroom for a debug
//! build under load: +48 MiB of RSS (a leak of 1 KiB per request would add ~10 MiB here, so
//! this catches only gross leaks; the bench's 10 minutes is the finer instrument). Sockets:
//! never more open at once than the 54 systems' concurrency caps allow (486; a socket leaked
//! by one request in ten would pass it within the run), and at most 4 more than before
//! once every monitor stopped (exact in practice: the harness's own client). The bench's
//! warm-up-to-last-quarter growth check is off here: idle connections live 90 s, longer than
//! this soak's last quarter, so a throttled system resuming with all 8 slots just before it
//! shows there as growth (CI once saw 59 sockets during warm-up and 134 late, flat, after a
//! throttle fault).

#[path = "common/soak.rs"]
mod soak;

use std::time::Duration;

#[test]
fn soak_with_random_faults_loses_no_outcome_and_leaks_nothing() {
    let mut o = soak::Options::for_paths(
        200,
        Duration::from_secs(70),
        env!("CARGO_BIN_EXE_lagwatch").into(),
    );
    o.sources = 4;
    o.targets = 50;
    o.interval = Duration::from_secs(8);
    o.timeout = Duration::from_secs(20);
    o.warmup = Duration::from_secs(20);
    o.recover = Duration::from_secs(25);
    o.window = (2.0, 6.0);
    o.gap = (0.5, 3.0);
    o.sample_every = Duration::from_secs(2);
    o.rss_tolerance_mib = 48.0;
    o.socket_growth_tolerance = None;
    let report = soak::run(o);
    eprintln!("{}", report.markdown());
    assert!(report.records > 0, "probes ended");
    assert!(
        report.faults.values().sum::<u64>() >= 5,
        "faults were injected: {:?}",
        report.faults
    );
    assert!(
        report.violations.is_empty(),
        "{}",
        report.violations.join("\n")
    );
}
