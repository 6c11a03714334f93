//! The platform's own status beside the canary, end to end: lagwatch writes sentinels into the
//! emulated Dataverse, finds them (or not) in emulated Azure AI Search indexes, reads each
//! index's indexer status through the Azure AI Search REST API, and judges the claim beside its
//! sentinels. The emulated indexers tell the truth or lie on purpose (`status_lie`), with the
//! truth at `/_truth/status/<replica>`: each verdict is produced on purpose and must be the one
//! reported. Two lakes that lose rows are read through Synapse Link's own tables, one whose
//! version watermark passes the lost rows: `healthy_but_stuck` and
//! `watermark_passed_canary_missing`, the missing sentinel lost in the truth.

use std::sync::Arc;
use std::time::Duration;

use lagwatch::probe::platform::Verdict;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::common;

const SCENARIO: &str = r#"
credentials:
  - { tenant: contoso, client_id: lagwatch-app, client_secret: platform-secret }
dataverse:
  crm:
    tables:
      accounts: { id: accountid, columns: { name: string, description: string } }
search:
  srch: { api_keys: [platform-admin-key] }
replicas:
  flowing:                            # indexed in about half a second, the indexer honest
    source: crm/accounts
    target: { kind: search, service: srch, index: flowing }
    key: name
    lag: { distribution: uniform, min: 200ms, max: 500ms }
    indexer: { name: flowing-indexer, every: 1s }
  known:                              # stalled, and the indexer's runs fail: it knows
    source: crm/accounts
    target: { kind: search, service: srch, index: known }
    key: name
    lag: { distribution: uniform, min: 200ms, max: 500ms }
    indexer: { name: known-indexer, every: 1s }
    outages: [ { start: 0s, duration: 1h, mode: stall } ]
  lying:                              # stalled, while the indexer reports successful runs
    source: crm/accounts
    target: { kind: search, service: srch, index: lying }
    key: name
    lag: { distribution: uniform, min: 200ms, max: 500ms }
    indexer: { name: lying-indexer, every: 1s }
    outages: [ { start: 0s, duration: 1h, mode: stall } ]
    status_lie: healthy_while_stuck
  failing:                            # flowing, while the indexer reports failed runs
    source: crm/accounts
    target: { kind: search, service: srch, index: failing }
    key: name
    lag: { distribution: uniform, min: 200ms, max: 500ms }
    indexer: { name: failing-indexer, every: 1s }
    status_lie: error_while_flowing
  frozen:                             # flowing, while the indexer's history stops at 3 s
    source: crm/accounts
    target: { kind: search, service: srch, index: frozen }
    key: name
    lag: { distribution: uniform, min: 200ms, max: 500ms }
    indexer: { name: frozen-indexer, every: 1s }
    status_lie: { lie: stale_while_flowing, start: 3s }
"#;

/// The replicas, each read by a target of the same name with its indexer's status.
const TARGETS: [&str; 5] = ["flowing", "known", "lying", "failing", "frozen"];

fn monitor(base: &str, auth: &str, search_key: &str) -> String {
    let mut yaml = format!(
        r#"
instance: plat
systems:
  crm:
    kind: dataverse
    url: {base}/crm
    table: accounts
    id_column: accountid
    key_column: name
    payload_column: description
    scope: https://crm.crm.dynamics.com/.default
    auth: {auth}
"#
    );
    for t in TARGETS {
        yaml.push_str(&format!(
            r#"  {t}:
    kind: azure_search
    endpoint: {base}/search/srch
    index: {t}
    mode: lookup
    key_field: name
    payload_field: description
    auth: {{ method: api_key, key: "{search_key}" }}
"#
        ));
    }
    yaml.push_str("paths:\n");
    for t in TARGETS {
        yaml.push_str(&format!(
            r#"  - source: crm
    target: {t}
    interval: 1s
    objective: 2s
    timeout: 60s
    update_interval: 0s
    pair_interval: 0s
    platform_status: {{ surface: azure_search_indexer, indexer: {t}-indexer, interval: 30s, grace: 3s }}
"#
        ));
    }
    yaml
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_indexer_claim_is_judged_beside_the_canary_as_the_truth_says() {
    let served = common::twin::Served::start(SCENARIO, "lagwatch-app", "platform-secret").await;
    let key = common::fakes::secret_file("search-key", "platform-admin-key");
    let app = Arc::new(common::app(&monitor(&served.base, &served.auth, &key)));
    let stop = CancellationToken::new();
    let run = tokio::spawn(app.engine.clone().run(stop.clone()));
    // Sentinels every second: by 10 s the flowing paths have converged many times and the
    // stalled ones have had sentinels missing for longer than the 2 s objective.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let token = CancellationToken::new();
    let client = reqwest::Client::new();
    let mut verdicts = Vec::new();
    for w in app.engine.platform() {
        w.read_once(&token).await;
        let view = w.view();
        let truth: Value = client
            .get(format!(
                "{}/_truth/status/{}",
                served.base, w.path.spec.target
            ))
            .send()
            .await
            .expect("the truth")
            .json()
            .await
            .expect("the truth is JSON");
        verdicts.push((w.path.spec.target.clone(), view, truth));
    }
    stop.cancel();
    let _ = run.await;
    let text = app.engine.metrics().render();
    served.stop().await;

    let want = [
        ("flowing", Verdict::Agree, None),
        ("known", Verdict::Explained, None),
        (
            "lying",
            Verdict::HealthyButStuck,
            Some("healthy_while_stuck"),
        ),
        ("failing", Verdict::StatusStale, Some("error_while_flowing")),
        ("frozen", Verdict::StatusStale, Some("stale_while_flowing")),
    ];
    for ((target, view, truth), (name, verdict, lie)) in verdicts.iter().zip(want) {
        assert_eq!(target, name);
        assert_eq!(
            view.verdict, verdict,
            "{target}: {view:#?}\ntruth: {truth:#}"
        );
        // The emulator's truth agrees on whether its surface is lying now.
        assert_eq!(
            truth["lying"].as_str(),
            lie,
            "{target}: the surface lies as the scenario says: {truth:#}"
        );
        let series = format!(
            "lagwatch_status_verdict{{source=\"crm\",target=\"{target}\",verdict=\"{}\"}} 1",
            verdict.label()
        );
        assert!(text.contains(&series), "{series}");
    }
    // The claims are the indexer's: its last run's outcome, in its own words.
    let known = &verdicts[1].1;
    let claim = &known.latest.as_ref().expect("a claim").claim;
    assert_eq!(claim.state.label(), "error", "{claim:?}");
    assert!(claim.raw.contains("transientFailure"), "{}", claim.raw);
    assert!(
        text.contains(
            "lagwatch_requests_total{operation=\"status\",status=\"2xx\",system=\"flowing\"}"
        ),
        "status reads are counted as requests of their system"
    );
}

/// Two lakes that lose half their rows, read by Synapse Link's own tables: an honest one whose
/// version watermark stops below the first lost row, and one whose watermark passes lost rows.
const LOSSY: &str = r#"
seed: 11
credentials:
  - { tenant: contoso, client_id: lagwatch-test, client_secret: platform-lake-secret }
dataverse:
  crm:
    tables:
      accounts: { id: accountid, columns: { name: string, description: string } }
lakes:
  honest: { container: status-honest }
  passed: { container: status-passed }
replicas:
  honest: { source: crm/accounts, target: { kind: lake, lake: honest, table: account }, key: name, lag: { distribution: fixed, value: 300ms }, folder_interval: 1s, drop_probability: 0.5 }
  passed: { source: crm/accounts, target: { kind: lake, lake: passed, table: account }, key: name, lag: { distribution: fixed, value: 300ms }, folder_interval: 1s, drop_probability: 0.5, status_lie: watermark_without_record }
"#;

#[test]
fn a_lake_that_loses_rows_is_healthy_but_stuck_and_a_watermark_past_a_lost_row_says_so() {
    let estate = common::twin::LakeEstate::start(LOSSY, "platform-lake-secret", "plake");
    let (rt, root) = (&estate.rt, &estate.root);
    let _in_rt = rt.enter();
    let mut yaml = estate.yaml.clone();
    for name in ["honest", "passed"] {
        yaml += &format!(
            "  {name}:\n    kind: synapse_link_csv\n    url: file://{root}/status-{name}\n    table: account\n    key_column: name\n    payload_column: description\n"
        );
    }
    yaml += "paths:\n";
    for name in ["honest", "passed"] {
        yaml += &format!(
            "  - {{ source: crm, target: {name}, interval: 1s, timeout: 60s, objective: 3s, \
             update_interval: 0s, pair_interval: 0s, \
             platform_status: {{ surface: synapse_link, table: account, profile: {name}, interval: 30s, grace: 1s }} }}\n"
        );
    }
    let app = Arc::new(common::app(&yaml));
    // Sentinels every second, half of them lost: by 12 s the oldest missing one is 3 s past
    // its objective and later ones have reached the lake.
    let stop = CancellationToken::new();
    let run = rt.spawn(app.engine.clone().run(stop.clone()));
    let views: Vec<_> = rt.block_on(async {
        tokio::time::sleep(Duration::from_secs(12)).await;
        let token = CancellationToken::new();
        let mut views = Vec::new();
        for w in app.engine.platform() {
            w.read_once(&token).await;
            views.push(w.view());
        }
        views
    });
    let (honest, passed) = (&views[0], &views[1]);
    // Honest: Synapse Link says InProgress ("active and error-free") and syncs on, while a
    // sentinel is missing; its watermark stays below the lost row.
    assert_eq!(honest.verdict, Verdict::HealthyButStuck, "{honest:#?}");
    let claim = &honest.latest.as_ref().expect("a claim").claim;
    assert_eq!(claim.state.label(), "healthy");
    assert!(claim.raw.contains("syncstate=2"), "{}", claim.raw);
    // Lying: the watermark passes the missing sentinel's own row version.
    assert_eq!(
        passed.verdict,
        Verdict::WatermarkPassedCanaryMissing,
        "{passed:#?}"
    );
    // Each path's oldest missing sentinel is lost in the emulator's truth, not late.
    for target in ["honest", "passed"] {
        let path = common::path_to(&app, target);
        let st = path.state();
        let seq = *st.pending.keys().next().expect("a pending sentinel");
        let id = st
            .awaiting
            .get(&seq)
            .expect("an ordered target remembers it")
            .clone();
        drop(st);
        let truth = estate
            .emulator
            .truth(target, id.key())
            .expect("the sentinel's truth");
        assert!(truth.dropped, "{target}: {id} was lost: {truth:?}");
    }
    stop.cancel();
    let _ = rt.block_on(run);
}
