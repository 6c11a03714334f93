//! The external tools some tests need (`scripts/install-test-tools` installs them all). A test
//! whose tool is missing fails when `LAGWATCH_REQUIRE_TOOLS=1` (`scripts/test`, CI) and is
//! otherwise reported as skipped, with its reason, never as a silent pass.

use std::io::Write as _;

/// Whether the run requires every tool (`LAGWATCH_REQUIRE_TOOLS=1`).
pub fn required() -> bool {
    std::env::var("LAGWATCH_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// `tool` cannot be used (`why`): panics when tools are required; otherwise says that the
/// calling test is skipped and why, on stderr past the test harness's capture (which would
/// hide it in a passing run). The caller then returns without asserting anything.
pub fn missing(tool: &str, why: &str) {
    assert!(
        !required(),
        "{tool} is required (LAGWATCH_REQUIRE_TOOLS=1) but {why}: run scripts/install-test-tools"
    );
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {tool} {why} (scripts/install-test-tools installs it)"
    );
}
