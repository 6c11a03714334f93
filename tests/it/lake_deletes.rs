//! Deletes on the lake kinds, end to end: the engine writes sentinels into the emulated
//! Dataverse, finds them in the emulator's lakes (incremental CSV folders, an in-place table
//! layout, Delta) and, after deleting each, watches its delete there. Every watched delete is
//! checked key by key against the emulator's ground truth: the delete lag's stated bound holds
//! the instant the delete became readable (`gone_at`, after `delete_sink_at`), a dropped delete
//! is a lost delete, a resurrection is counted only where the lake wrote the row again, and the
//! clean lakes count no lost delete and no resurrection.
//!
//! Real time (the emulator is served over HTTP and writes real files): about a minute.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

const SECRET: &str = "lake-deletes-secret";

/// Clean and faulty lakes of each layout, all replicas of `crm/accounts`.
const SCENARIO: &str = r#"
seed: 11
credentials:
  - { tenant: contoso, client_id: lagwatch-test, client_secret: lake-deletes-secret }
dataverse:
  crm:
    tables:
      accounts: { id: accountid, columns: { name: string, description: string } }
lakes:
  inc: { container: del-incremental }
  incx: { container: del-incremental-faulty }
  tbl: { container: del-table, layout: table, update_mode: in_place }
  fab: { container: del-fabric, layout: delta }
  fabx: { container: del-fabric-faulty, layout: delta }
replicas:
  inc: { source: crm/accounts, target: { kind: lake, lake: inc, table: account }, key: name, FAST }
  incx: { source: crm/accounts, target: { kind: lake, lake: incx, table: account }, key: name, FAST, FAULTS }
  tbl: { source: crm/accounts, target: { kind: lake, lake: tbl, table: account }, key: name, LAG }
  fab: { source: crm/accounts, target: { kind: lake, lake: fab, table: account }, key: name, FAST }
  fabx: { source: crm/accounts, target: { kind: lake, lake: fabx, table: account }, key: name, FAST, FAULTS }
"#;

const LAG: &str = "lag: { distribution: fixed, value: 300ms }";
/// The folder and Delta commit interval (the table layout writes each row as it arrives).
const FOLDERS: &str = "folder_interval: 1s";
/// A third of the deletes never arrive, a third come back for 2 s a second after arriving.
const FAULTS: &str = "delete_drop_probability: 0.33, resurrect_probability: 0.5, \
                      resurrect_after: 1s, resurrect_for: 2s";

/// The lake systems: `(name, kind and url)`, the url relative to the lakes' root.
const LAKES: [(&str, &str); 5] = [
    (
        "inc",
        "kind: synapse_link_csv\n    url: file://ROOT/del-incremental\n    table: account",
    ),
    (
        "incx",
        "kind: synapse_link_csv\n    url: file://ROOT/del-incremental-faulty\n    table: account",
    ),
    (
        "tbl",
        "kind: synapse_link_csv\n    url: file://ROOT/del-table\n    table: account\n    layout: table",
    ),
    (
        "fab",
        "kind: delta\n    url: file://ROOT/del-fabric/deltalake/account",
    ),
    (
        "fabx",
        "kind: delta\n    url: file://ROOT/del-fabric-faulty/deltalake/account",
    ),
];

/// Room below the bound for the lake writer's wake-up after a folder closes or a commit is
/// due: the emulator writes the files then, so a read sent just after `gone_at` may still see
/// the row (20 ms was enough on an idle machine; 140 ms was seen with the whole suite running
/// on two cores). Nothing lagwatch does makes it see a delete before it is written, so above
/// the bound only the two wall clocks' anchoring is allowed for.
const WRITER_SLACK: Duration = Duration::from_secs(1);
const CLOCK_SLACK: Duration = Duration::from_millis(20);

#[test]
fn lake_deletes_match_the_emulators_truth_key_by_key() {
    let text = SCENARIO
        .replace("FAST", &format!("{LAG}, {FOLDERS}"))
        .replace("LAG", LAG)
        .replace("FAULTS", FAULTS);
    let estate = common::twin::LakeEstate::start(&text, SECRET, "ldel");
    let (rt, emu, root) = (&estate.rt, &estate.emulator, &estate.root);
    let _in_rt = rt.enter();
    let mut yaml = estate.yaml.clone();
    for (name, block) in LAKES {
        let block = block.replace("ROOT", root);
        yaml += &format!(
            "  {name}:\n    {block}\n    key_column: name\n    payload_column: description\n"
        );
    }
    yaml += "paths:\n";
    for (name, _) in LAKES {
        // Reads every 1.5 s for 4.5 s after the first absent one: a 2 s resurrection is seen.
        yaml += &format!(
            "  - {{ source: crm, target: {name}, interval: 2s, timeout: 8s, confirm: 4500ms, \
             delete_sample: 1, contract: {{ visibility: 5s, deletes: 8s }} }}\n"
        );
    }
    let app = common::app(&yaml);
    rt.block_on(common::run_for(&app, Duration::from_secs(60)));

    let mut seen: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for path in app.engine.paths() {
        let target = path.spec.target.as_str();
        let state = path.state();
        let (mut gone, mut lost, mut resurrected) = (0, 0, 0);
        for (key, d) in &common::watched_deletes(&state, "ldel") {
            let truth = emu.truth(target, key).expect("the emulator's truth");
            let wall = |at| emu.wall_time(at);
            if !common::delete_settled_as_truth(target, key, d, truth.delete_dropped, &truth) {
                lost += 1;
                continue;
            }
            let gone_at = truth.gone_at.expect("the delete arrived");
            let sink = truth.delete_sink_at.expect("the delete row was written");
            assert!(sink <= gone_at, "{target}: readable after it was written");
            // A resurrection is counted only where the lake wrote the row again; the lag is
            // then measured to its second delete, as a write's lag to its last miss.
            let end = match (d.resurrections, truth.resurrected) {
                (0, _) => gone_at,
                (_, Some((_, to))) => to,
                (n, None) => panic!("{target} {key}: {n} resurrections counted, none written"),
            };
            let lag = (wall(end) - d.acked_at).to_std().unwrap_or(Duration::ZERO);
            let est = d.estimate.expect("a delete that arrived has a lag");
            assert!(
                est.lower() <= lag + WRITER_SLACK && lag <= est.upper() + CLOCK_SLACK,
                "{target} {key}: truth {lag:?} outside {est:?}"
            );
            gone += 1;
            resurrected += usize::from(d.resurrections);
        }
        let m = app.engine.metrics().paths.get("crm", target).unwrap();
        assert_eq!(m.deletes_lost.get() as usize, lost, "{target}");
        assert_eq!(
            m.delete_lag.as_ref().expect("deletes watched").count() as usize,
            gone,
            "{target}: every delete that arrived is one observation, no other"
        );
        assert!(
            m.resurrections.get() as usize >= resurrected,
            "{target}: a watch the stop cut short may have counted one without a trace"
        );
        if !target.ends_with('x') {
            assert_eq!((lost, m.resurrections.get()), (0, 0), "{target}: clean");
        }
        assert!(gone >= 5, "{target}: {gone} deletes arrived");
        seen.insert(target, (gone, lost, resurrected));
    }
    for faulty in ["incx", "fabx"] {
        let (_, lost, resurrected) = seen[faulty];
        assert!(lost >= 1 && resurrected >= 1, "{faulty}: {seen:?}");
    }
    eprintln!("lake deletes (arrived, lost, resurrected) per target: {seen:?}");
    // What the reads cost: lake objects listed and bytes read per target, and the watches' reads.
    let text = app.engine.metrics().render();
    for line in text.lines().filter(|l| {
        l.starts_with("lagwatch_lake_objects_listed_total")
            || l.starts_with("lagwatch_lake_bytes_read_total")
    }) {
        eprintln!("{line}");
    }
    for path in app.engine.paths() {
        let reads: u32 = path
            .state()
            .deletes
            .iter()
            .map(|d| u32::from(d.reads))
            .sum();
        eprintln!("{}: {reads} reads by delete watches", path.spec.target);
    }
}
