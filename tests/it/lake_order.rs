//! Order inversions (consistent prefix) on change-log lakes, end to end: the engine writes a
//! sentinel a second into the emulated Dataverse and reads the emulator's incremental CSV
//! lakes, where each probe's read also asks for the earlier sentinels still missing. A lake
//! that applies rows in order (a fixed lag) must count none; one whose rows overtake each other
//! (lags drawn between 0.2 s and 5 s) counts inversions, each of them checked against the
//! truth: an earlier sentinel became readable after the one counted.
//!
//! Real time (the emulator is served over HTTP and writes real files): about 30 s.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

const SCENARIO: &str = r#"
seed: 3
credentials:
  - { tenant: contoso, client_id: lagwatch-test, client_secret: lake-order-secret }
dataverse:
  crm:
    tables:
      accounts: { id: accountid, columns: { name: string, description: string } }
lakes:
  ordered: { container: order-ordered }
  shuffled: { container: order-shuffled }
replicas:
  ordered: { source: crm/accounts, target: { kind: lake, lake: ordered, table: account }, key: name, lag: { distribution: fixed, value: 300ms }, folder_interval: 1s }
  shuffled: { source: crm/accounts, target: { kind: lake, lake: shuffled, table: account }, key: name, lag: { distribution: uniform, min: 200ms, max: 5s }, folder_interval: 1s }
"#;

#[test]
fn an_ordered_lake_counts_no_inversion_and_a_shuffled_one_only_true_ones() {
    let estate = common::twin::LakeEstate::start(SCENARIO, "lake-order-secret", "lord");
    let (rt, emu, root) = (&estate.rt, &estate.emulator, &estate.root);
    let _in_rt = rt.enter();
    let mut yaml = estate.yaml.clone();
    for (name, container) in [("ordered", "order-ordered"), ("shuffled", "order-shuffled")] {
        yaml += &format!(
            "  {name}:\n    kind: synapse_link_csv\n    url: file://{root}/{container}\n    table: account\n    key_column: name\n    payload_column: description\n"
        );
    }
    yaml += "paths:\n";
    for name in ["ordered", "shuffled"] {
        yaml += &format!(
            "  - {{ source: crm, target: {name}, interval: 1s, timeout: 15s, objective: 10s, \
             max_in_flight: 30, pair_interval: 0s, poll: {{ first: 250ms, max_gap: 500ms }} }}\n"
        );
    }
    let app = common::app(&yaml);
    rt.block_on(common::run_for(&app, Duration::from_secs(30)));

    let mut counted = BTreeMap::new();
    for path in app.engine.paths() {
        let target = path.spec.target.clone();
        let state = path.state();
        // Every probe of the run, by sequence number, with when its row became readable.
        let readable: BTreeMap<u64, (String, Option<tokio::time::Instant>)> = state
            .traces
            .iter()
            .map(|t| {
                let key = t.sentinel("lord").key().to_string();
                let truth = emu.truth(&target, &key).expect("the emulator's truth");
                (t.seq, (key, truth.visible_at))
            })
            .collect();
        let evidence: Vec<String> = state
            .evidence
            .iter()
            .filter(|e| e.kind == lagwatch::probe::history::EvidenceKind::OutOfOrder)
            .map(|e| e.sentinel.to_string())
            .collect();
        let first = readable.keys().next().copied().unwrap_or(0);
        let mut checked = 0;
        for key in &evidence {
            let Some((seq, (_, at))) = readable.iter().find(|(_, (k, _))| k == key) else {
                continue; // still being confirmed at the stop
            };
            // An earlier sentinel still in flight at the stop has no trace to look up: such
            // an inversion (in the last timeout of the run) cannot be checked here.
            if (first..*seq).any(|h| !readable.contains_key(&h)) {
                continue;
            }
            let at = at.expect("it was seen, so it became readable");
            assert!(
                readable
                    .range(..seq)
                    .any(|(_, (_, earlier))| earlier.is_none_or(|e| e > at)),
                "{target}: {key} counted, but every earlier sentinel was readable before it"
            );
            checked += 1;
        }
        if !evidence.is_empty() {
            assert!(
                checked >= 1,
                "{target}: no counted inversion could be checked"
            );
        }
        eprintln!(
            "{target}: {checked} of {} inversions checked against the truth",
            evidence.len()
        );
        let n = app
            .engine
            .metrics()
            .paths
            .get("crm", &target)
            .expect("series")
            .order_inversions
            .get();
        // The evidence keeps the latest 16 of a kind: each counted inversion is one.
        assert_eq!(evidence.len(), (n as usize).min(16), "{target}");
        assert!(readable.len() >= 20, "{target}: {} probes", readable.len());
        counted.insert(target, (n, evidence.len(), readable.len()));
    }
    eprintln!("order inversions (counted, evidence, probes): {counted:?}");
    assert_eq!(counted["ordered"].0, 0, "an ordered lake never inverts");
    assert!(counted["shuffled"].0 >= 2, "{counted:?}");
    let report = lagwatch::contracts::report(&app.engine, "lord", Duration::from_secs(3600));
    for p in &report.paths {
        let order = p
            .guarantees
            .iter()
            .find(|g| g.guarantee == "order")
            .expect("the order row");
        assert_eq!(order.violations, counted[&p.target].0, "{}", p.target);
    }
}
