//! Soak benchmark: 1,000 paths against the emulator with faults injected at random for
//! `LAGWATCH_SOAK_SECONDS` (default 600), one graceful restart mid-way, then a clean restart
//! that resumes what was left. Prints a markdown report: faults injected, writes and
//! outcomes per life, what the ledger and the sources held after each stop, RSS and open
//! sockets over time (warm-up vs end, slope), CPU, and whether every invariant held (see
//! `tests/common/soak.rs`; `tests/soak.rs` is the short version CI runs).
//!
//! The emulator is a child `lagwatch emulate` (the release binary cargo builds for benches);
//! the monitor runs in this process, which is the one measured.
//!
//! `cargo bench --bench soak` (`LAGWATCH_SOAK_SECONDS=N`, `LAGWATCH_SOAK_PATHS=N`,
//! `LAGWATCH_SOAK_SEED=N` to replay a run's fault sequence, printed in its report)

#[path = "../tests/common/soak.rs"]
mod soak;

use std::time::Duration;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let seconds = env("LAGWATCH_SOAK_SECONDS", 600);
    let paths = env("LAGWATCH_SOAK_PATHS", 1000) as usize;
    let o = soak::Options::for_paths(
        paths,
        Duration::from_secs(seconds),
        env!("CARGO_BIN_EXE_lagwatch").into(),
    );
    let report = soak::run(o);
    println!("# lagwatch soak benchmark\n");
    println!("{}", report.markdown());
    if !report.violations.is_empty() {
        std::process::exit(1);
    }
}
