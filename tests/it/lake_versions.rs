//! `updates: every` on a change-log lake, end to end: the engine updates its canary row in the
//! emulated Dataverse every 2 s and reads the canary's rows from the emulator's incremental
//! CSV folders. A clean lake shows every version once (none lost, none repeated, and the
//! k-staleness of its reads small); a lake that drops and repeats update rows on purpose is
//! counted exactly the versions the emulator's truth says it dropped and repeated.
//!
//! Real time (the emulator is served over HTTP and writes real files): about 50 s.

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
  lossy: { container: versions-lossy }
replicas:
  clean: { source: crm/accounts, target: { kind: lake, lake: clean, table: account }, key: name, lag: { distribution: fixed, value: 300ms }, folder_interval: 1s }
  lossy: { source: crm/accounts, target: { kind: lake, lake: lossy, table: account }, key: name, lag: { distribution: fixed, value: 300ms }, folder_interval: 1s, version_drop_probability: 0.3, version_duplicate_probability: 0.3 }
"#;

/// The canary of the test's one source group (`crm`, probes every 5 s).
fn canary() -> SentinelId {
    SentinelId::canary("lver", "crm@5000ms")
}

/// The update canary's interval and the paths' timeout.
const EVERY: Duration = Duration::from_secs(2);
const TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn a_change_log_counts_exactly_the_versions_it_lost_or_repeated_and_a_clean_one_none() {
    let estate = common::twin::LakeEstate::start(SCENARIO, "lake-versions-secret", "lver");
    let (rt, root) = (&estate.rt, &estate.root);
    let _in_rt = rt.enter();
    let mut yaml = estate.yaml.clone();
    for name in ["clean", "lossy"] {
        yaml += &format!(
            "  {name}:\n    kind: synapse_link_csv\n    url: file://{root}/versions-{name}\n    table: account\n    key_column: name\n    payload_column: description\n"
        );
    }
    yaml += "paths:\n";
    for name in ["clean", "lossy"] {
        yaml += &format!(
            "  - {{ source: crm, target: {name}, interval: 5s, timeout: {}s, objective: 5s, \
             update_interval: {}s, pair_interval: 0s, contract: {{ updates: every }} }}\n",
            TIMEOUT.as_secs(),
            EVERY.as_secs()
        );
    }
    let app = common::app(&yaml);
    rt.block_on(common::run_for(&app, Duration::from_secs(50)));
    let end = tokio::time::Instant::now();
    let metrics = app.engine.metrics().render();
    let labels = |target: &str| format!("source=\"crm\",target=\"{target}\"");

    // The clean log: every version once, and reads at most one version behind (a version
    // reaches the lake 0.3 s after its write and is readable when its 1 s folder closes; the
    // read comes half a period after the write).
    let clean = labels("clean");
    let reads = common::sample(&app, "lagwatch_version_staleness_count", &clean);
    assert!(reads >= 15.0, "{reads} canary reads\n{metrics}");
    let k_le_1 = common::sample(
        &app,
        "lagwatch_version_staleness_bucket",
        &format!("{clean},le=\"1\""),
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
            metrics.contains(&format!("{family}{{{clean}}} 0\n")),
            "{family} exported, at 0\n{metrics}"
        );
    }
    let broken = |target: &str| {
        common::sample(
            &app,
            "lagwatch_contract_violations_total",
            &format!("guarantee=\"updates\",{}", labels(target)),
        )
    };
    assert_eq!(broken("clean"), 0.0, "a clean log breaks nothing");

    // The lossy log, against the emulator's truth for the canary's key.
    let truth = estate
        .emulator
        .truth("lossy", canary().key())
        .expect("the canary reached the lossy lake");
    let lossy = labels("lossy");
    let lost = common::sample(&app, "lagwatch_versions_lost_total", &lossy);
    let repeated = common::sample(&app, "lagwatch_versions_duplicated_total", &lossy);
    // Every dropped version a timeout (and a read) before the end is judged; a later one may
    // not be yet. A repeat is read once its folder closed and a read came: a few seconds.
    let before = |at: &[tokio::time::Instant], margin: Duration| {
        at.iter().filter(|t| **t + margin <= end).count() as f64
    };
    let dropped = truth.versions_dropped.len() as f64;
    let dropped_judged = before(
        &truth.versions_dropped,
        TIMEOUT + 2 * EVERY + Duration::from_secs(1),
    );
    let doubled = truth.versions_duplicated.len() as f64;
    let doubled_read = before(
        &truth.versions_duplicated,
        2 * EVERY + Duration::from_secs(2),
    );
    assert!(
        dropped_judged >= 2.0 && doubled_read >= 2.0,
        "the knobs injected too little: {truth:?}"
    );
    assert!(
        (dropped_judged..=dropped).contains(&lost),
        "{lost} versions counted lost; the lake dropped {dropped}, {dropped_judged} of them a timeout before the end"
    );
    assert!(
        (doubled_read..=doubled).contains(&repeated),
        "{repeated} versions counted repeated; the lake doubled {doubled}, {doubled_read} of them readable before the end"
    );
    assert_eq!(
        broken("lossy"),
        lost + repeated,
        "each is a violation of the declared updates: every"
    );
    // A dropped update is skipped by a snapshot reader legally: the log's latest row still
    // moves on, so no update is lost in the `latest` sense while later versions arrive.
    assert_eq!(
        common::sample(&app, "lagwatch_updates_lost_total", &lossy),
        0.0
    );
    // The report: the declared `every`, violated by each lost and repeated version.
    let report = lagwatch::contracts::report(&app.engine, "lver", Duration::from_secs(3600));
    let updates = |target: &str| common::guarantee(&report, target, "updates");
    let row = updates("lossy");
    assert_eq!(row.declared.as_deref(), Some("every"));
    assert_eq!(row.violations as f64, lost + repeated);
    assert!(
        row.summary.contains("(one every 2s)")
            && row
                .summary
                .contains(&format!("{lost} never in the change log")),
        "{}",
        row.summary
    );
    assert_eq!(updates("clean").status, lagwatch::contracts::Status::Holds);
    // The evidence names the canary.
    let path = app
        .engine
        .paths()
        .iter()
        .find(|p| &*p.spec.target == "lossy")
        .cloned()
        .expect("the lossy path");
    let evidence = path.state().evidence.clone();
    assert!(
        evidence.iter().any(
            |e| e.kind == lagwatch::probe::history::EvidenceKind::VersionsBroken
                && &*e.sentinel == canary().key()
        ),
        "{evidence:?}"
    );
}
