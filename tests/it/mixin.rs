//! The monitoring mixin in `mixin/` renders the shipped rule files: `scripts/mixin --check`
//! renders it with jsonnet and fails, with a diff, when `alerts/lagwatch.alerts.yml`,
//! `alerts/lagwatch.rules.yml` (or a dashboard the mixin defines) differ from the committed
//! files. jsonnet is the Debian package `jsonnet` (`scripts/install-test-tools`); without it
//! the test skips, unless `LAGWATCH_REQUIRE_TOOLS=1`, where it fails.

use crate::common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn jsonnet_installed() -> bool {
    Command::new("jsonnet")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn the_generated_rule_files_are_what_the_mixin_renders() {
    if !jsonnet_installed() {
        common::tools::missing("jsonnet", "is not installed");
        return;
    }
    let out = Command::new(root().join("scripts/mixin"))
        .arg("--check")
        .output()
        .expect("scripts/mixin runs");
    assert!(
        out.status.success(),
        "scripts/mixin --check failed (run scripts/mixin and commit the files):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_generated_file_says_it_is_generated() {
    for file in ["alerts/lagwatch.alerts.yml", "alerts/lagwatch.rules.yml"] {
        let text = std::fs::read_to_string(root().join(file)).expect(file);
        let first = text.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("# Generated from mixin/ by scripts/mixin: do not edit."),
            "{file} starts with the generated-file line, not {first:?}"
        );
    }
}

#[test]
fn the_mixin_config_names_the_member_labels_and_a_runbook_base() {
    let config = std::fs::read_to_string(root().join("mixin/config.libsonnet")).expect("config");
    for key in [
        "jobSelector:",
        "haLabels: ['instance', 'pod']",
        "runbookURLBase:",
        "'for':",
    ] {
        assert!(config.contains(key), "mixin/config.libsonnet sets {key}");
    }
    // The placeholder project URL is gone from everything the mixin ships.
    for file in [
        "mixin/config.libsonnet",
        "alerts/lagwatch.alerts.yml",
        "alerts/README.md",
    ] {
        let text = std::fs::read_to_string(root().join(file)).expect(file);
        assert!(
            !text.contains("github.com/lagwatch/lagwatch"),
            "{file} still points at the placeholder https://github.com/lagwatch/lagwatch"
        );
    }
}
