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

use lagwatch::app::App;
use lagwatch::probe::platform::{PlatformView, Verdict};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::common;
use crate::common::twin::Served;
use lagwatch_emulator::{Emulator, GroundTruth};

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

/// A path: source, target, and its `platform_status` (flow style).
type PathSpec = (String, String, String);

/// `paths:` of each [`PathSpec`]: a sentinel every second, missing for longer than
/// `objective` is stuck, timing out after a minute; no update or pair canary.
fn paths(objective: &str, list: &[PathSpec]) -> String {
    let mut yaml = "paths:\n".to_string();
    for (source, target, status) in list {
        yaml += &format!(
            "  - {{ source: {source}, target: {target}, interval: 1s, objective: {objective}, \
             timeout: 60s, update_interval: 0s, pair_interval: 0s, platform_status: {status} }}\n"
        );
    }
    yaml
}

/// A path of `source` to `target` whose status is read every 30 s with a grace of 3 s:
/// `status` is what the surface needs (`surface: …` and its keys).
fn path(source: &str, target: &str, status: &str) -> PathSpec {
    (
        source.to_string(),
        target.to_string(),
        format!("{{ {status}, interval: 30s, grace: 3s }}"),
    )
}

/// A path's platform status after a run: its source and target, its view, and the
/// emulator's status truth of the replica named as the target.
struct Judged {
    source: String,
    target: String,
    view: PlatformView,
    truth: Value,
}

/// An estate served and monitored for a while, each path's platform status judged.
struct Monitored {
    served: Served,
    app: Arc<App>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    /// Each path's, in configuration order.
    verdicts: Vec<Judged>,
    /// The metrics after the last reads.
    text: String,
}

impl Monitored {
    /// Serves `scenario` (client `lagwatch-app`, secret `platform-secret`) and runs for `d`
    /// a monitor of what `monitor` writes for the emulator's base URL and `auth:` value: its
    /// `systems` (YAML map entries indented by two) and paths ([`paths`], objective
    /// `objective`). The status is read at start-up; after `d` every path's once more, and
    /// judged. The engine keeps running, so its paths still hold what they miss.
    async fn start(
        scenario: &str,
        objective: &str,
        d: Duration,
        monitor: impl FnOnce(&str, &str) -> (String, Vec<PathSpec>),
    ) -> Monitored {
        let served = Served::start(scenario, "lagwatch-app", "platform-secret").await;
        let (systems, list) = monitor(&served.base, &served.auth);
        let yaml = format!(
            "instance: plat\nsystems:{systems}{}",
            paths(objective, &list)
        );
        let app = Arc::new(common::app(&yaml));
        let stop = CancellationToken::new();
        let task = tokio::spawn(app.engine.clone().run(stop.clone()));
        tokio::time::sleep(d).await;
        let token = CancellationToken::new();
        let mut verdicts = Vec::new();
        for w in app.engine.platform() {
            w.read_once(&token).await;
            let (source, target) = (w.path.spec.source.clone(), w.path.spec.target.clone());
            let truth = served.truth(&format!("status/{target}")).await;
            verdicts.push(Judged {
                source,
                target,
                view: w.view(),
                truth,
            });
        }
        let text = app.engine.metrics().render();
        Monitored {
            served,
            app,
            stop,
            task,
            verdicts,
            text,
        }
    }

    /// Checks each path's verdict and whether the emulator's truth says its surface lies now
    /// (`want`: target, verdict, lie, in configuration order), and the verdict's series.
    fn assert_verdicts(&self, want: &[(&str, Verdict, Option<&str>)]) {
        assert_eq!(self.verdicts.len(), want.len());
        for (j, (name, verdict, lie)) in self.verdicts.iter().zip(want) {
            let (source, target, view, truth) = (&j.source, &j.target, &j.view, &j.truth);
            assert_eq!(target, name);
            assert_eq!(
                view.verdict, *verdict,
                "{target}: {view:#?}\ntruth: {truth:#}"
            );
            assert_eq!(
                truth["lying"].as_str(),
                *lie,
                "{target}: the surface lies as the scenario says: {truth:#}"
            );
            let series = format!(
                "lagwatch_status_verdict{{source=\"{source}\",target=\"{target}\",verdict=\"{}\"}} 1",
                verdict.label()
            );
            assert!(self.text.contains(&series), "{series}");
        }
    }

    /// Stops the engine, then the emulator.
    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
        self.served.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_indexer_claim_is_judged_beside_the_canary_as_the_truth_says() {
    let key = common::fakes::secret_file("search-key", "platform-admin-key");
    // Sentinels every second: by 10 s the flowing paths have converged many times and the
    // stalled ones have had sentinels missing for longer than the 2 s objective.
    let m = Monitored::start(SCENARIO, "2s", Duration::from_secs(10), |base, auth| {
        let mut systems = common::twin::dataverse_signed("crm", base, auth);
        let mut list = Vec::new();
        for t in TARGETS {
            systems += &format!(
                "  {t}:\n    kind: azure_search\n    endpoint: {base}/search/srch\n    index: {t}\n    \
                 mode: lookup\n    key_field: name\n    payload_field: description\n    \
                 auth: {{ method: api_key, key: \"{key}\" }}\n"
            );
            let status = format!("surface: azure_search_indexer, indexer: {t}-indexer");
            list.push(path("crm", t, &status));
        }
        (systems, list)
    })
    .await;
    m.assert_verdicts(&[
        ("flowing", Verdict::Agree, None),
        ("known", Verdict::Explained, None),
        (
            "lying",
            Verdict::HealthyButStuck,
            Some("healthy_while_stuck"),
        ),
        ("failing", Verdict::StatusStale, Some("error_while_flowing")),
        ("frozen", Verdict::StatusStale, Some("stale_while_flowing")),
    ]);
    // The claims are the indexer's: its last run's outcome, in its own words.
    let known = &m.verdicts[1].view;
    let claim = &known.latest.as_ref().expect("a claim").claim;
    assert_eq!(claim.state.label(), "error", "{claim:?}");
    assert!(claim.raw.contains("transientFailure"), "{}", claim.raw);
    assert!(
        m.text.contains(
            "lagwatch_requests_total{operation=\"status\",status=\"2xx\",system=\"flowing\"}"
        ),
        "status reads are counted as requests of their system"
    );
    m.stop().await;
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
    let list: Vec<_> = ["honest", "passed"]
        .into_iter()
        .map(|name| {
            let status = format!(
                "{{ surface: synapse_link, table: account, profile: {name}, interval: 30s, grace: 1s }}"
            );
            ("crm".to_string(), name.to_string(), status)
        })
        .collect();
    yaml += &paths("3s", &list);
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
        let (id, _, truth) = oldest_missing(&app, &estate.emulator, target);
        assert!(truth.dropped, "{target}: {id} was lost: {truth:?}");
    }
    stop.cancel();
    let _ = rt.block_on(run);
}

/// The oldest sentinel the path to `target` misses: its id, its row version when the source
/// gave one, and its truth in the replica named as the target.
fn oldest_missing(
    app: &App,
    emulator: &Emulator,
    target: &str,
) -> (String, Option<u64>, GroundTruth) {
    let path = common::path_to(app, target);
    let st = path.state();
    let seq = *st.pending.keys().next().expect("a pending sentinel");
    let id = st
        .awaiting
        .get(&seq)
        .expect("the path remembers the sentinel it has not found")
        .clone();
    let version = st.versions.get(&seq).copied();
    drop(st);
    let truth = emulator
        .truth(target, id.key())
        .expect("the sentinel's truth");
    (id.to_string(), version, truth)
}

/// The estate of the last three tests, each monitoring some of its replicas.
///
/// Three Dataverse environments, each with its table's Dataverse search index: flowing,
/// stalled while its status claims syncs, and losing half its records while its status's
/// watermark passes them. And one table copied into two Elasticsearch indexes refreshed every
/// half second (one honest, one whose refresh statistics stop at the start while documents
/// keep becoming searchable), and by two dual-write maps (one running, one paused: its map
/// state).
const ESTATE: &str = r#"
credentials:
  - { tenant: contoso, client_id: lagwatch-app, client_secret: platform-secret }
dataverse:
  flow: { tables: { accounts: { id: accountid, columns: { name: string, description: string } } } }
  stuck: { tables: { accounts: { id: accountid, columns: { name: string, description: string } } } }
  lossy: { tables: { accounts: { id: accountid, columns: { name: string, description: string } } } }
  crm: { tables: { accounts: { id: accountid, columns: { name: string, description: string } } } }
elasticsearch:
  logs: { users: { elastic: es-secret }, refresh_interval: 500ms }
fno:
  fin: { default_company: dat }
replicas:
  flow_index:
    source: flow/accounts
    target: { kind: dataverse_search, env: flow, table: accounts }
    key: name
    lag: { distribution: uniform, min: 200ms, max: 500ms }
  stuck_index:
    source: stuck/accounts
    target: { kind: dataverse_search, env: stuck, table: accounts }
    key: name
    lag: { distribution: uniform, min: 200ms, max: 500ms }
    outages: [ { start: 0s, duration: 1h, mode: stall } ]
    status_lie: healthy_while_stuck
  lossy_index:
    source: lossy/accounts
    target: { kind: dataverse_search, env: lossy, table: accounts }
    key: name
    lag: { distribution: uniform, min: 200ms, max: 500ms }
    drop_probability: 0.5
    status_lie: watermark_without_record
  es_flowing:
    source: crm/accounts
    target: { kind: elasticsearch, cluster: logs, index: flowing }
    key: name
    lag: { distribution: uniform, min: 200ms, max: 500ms }
  es_frozen:
    source: crm/accounts
    target: { kind: elasticsearch, cluster: logs, index: frozen }
    key: name
    lag: { distribution: uniform, min: 200ms, max: 500ms }
    status_lie: { lie: stale_while_flowing, start: 0s }
  dw_running:
    source: crm/accounts
    target: { kind: fno, env: fin, entity: CustomersV3, company: usmf }
    key: name
    map: { name: OrganizationName, description: Description }
    lag: { distribution: uniform, min: 200ms, max: 500ms }
  dw_paused:
    source: crm/accounts
    target: { kind: fno, env: fin, entity: VendorsV2, company: usmf }
    key: name
    map: { name: VendorName, description: Description }
    lag: { distribution: uniform, min: 200ms, max: 500ms }
    state: paused
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataverse_search_status_is_judged_beside_the_canary_as_the_truth_says() {
    // Sentinels every second, half of them lost on one path: by 12 s the oldest missing one
    // is past its objective and later ones have been indexed.
    let m = Monitored::start(ESTATE, "2s", Duration::from_secs(12), |base, auth| {
        let mut systems = String::new();
        let mut list = Vec::new();
        for env in ["flow", "stuck", "lossy"] {
            systems += &common::twin::dataverse_signed(env, base, auth);
            // Dataverse search allows a request a second a user; the emulator sets no
            // such budget, and each sentinel is read a few times.
            systems += &format!(
                "  {env}_index:\n    kind: dataverse_search\n    url: {base}/{env}\n    \
                     entity: account\n    key_column: name\n    payload_column: description\n    \
                     scope: https://{env}.crm.dynamics.com/.default\n    auth: {auth}\n    \
                     limits: {{ requests: 600, per: 1m, max_concurrency: 2 }}\n"
            );
            let target = format!("{env}_index");
            list.push(path(
                env,
                &target,
                "surface: dataverse_search, table: account",
            ));
        }
        (systems, list)
    })
    .await;
    m.assert_verdicts(&[
        ("flow_index", Verdict::Agree, None),
        (
            "stuck_index",
            Verdict::HealthyButStuck,
            Some("healthy_while_stuck"),
        ),
        (
            "lossy_index",
            Verdict::WatermarkPassedCanaryMissing,
            Some("watermark_without_record"),
        ),
    ]);
    // The claims are searchstatus's words: the table's entry, its version!time watermark.
    for j in &m.verdicts {
        let claim = &j.view.latest.as_ref().expect("a claim").claim;
        assert_eq!(claim.state.label(), "healthy", "{}: {claim:?}", j.target);
        assert!(
            claim.raw.contains("entitystatus=EntitySyncComplete"),
            "{}",
            claim.raw
        );
        assert_eq!(
            claim.watermark,
            j.truth["claims"]["watermark"].as_u64(),
            "{}: the watermark read is the one served: {:#}",
            j.target,
            j.truth
        );
    }
    // Flowing: the claim is the honest one.
    let flow = &m.verdicts[0].truth;
    let mut honest = flow["truth"].clone();
    honest
        .as_object_mut()
        .expect("the truth is an object")
        .remove("replication");
    assert_eq!(flow["claims"], honest, "{flow:#}");
    // Stalled: nothing was findable (the honest entry is the initial sync's), the oldest
    // missing sentinel waits behind the stall, and the claimed sync time is now.
    let stuck = &m.verdicts[1].truth;
    assert_eq!(stuck["truth"]["replication"], "stalled", "{stuck:#}");
    assert_eq!(stuck["truth"]["watermark"], 1_000_000, "{stuck:#}");
    assert_eq!(stuck["claims"]["last_sync"], stuck["now"], "{stuck:#}");
    let (id, _, truth) = oldest_missing(&m.app, &m.served.emulator, "stuck_index");
    assert!(
        !truth.dropped && truth.lag() > Some(Duration::from_secs(1800)),
        "{id} waits for the stall's end: {truth:?}"
    );
    // Lossy: the oldest missing sentinel was dropped, the claimed watermark passes its
    // version, the honest one does not.
    let (id, version, truth) = oldest_missing(&m.app, &m.served.emulator, "lossy_index");
    assert!(truth.dropped, "{id} was lost: {truth:?}");
    let v = version.expect("the sentinel's row version was read");
    let lossy = &m.verdicts[2].truth;
    let claimed = lossy["claims"]["watermark"].as_u64();
    let honest = lossy["truth"]["watermark"].as_u64();
    assert!(
        honest < Some(v) && Some(v) <= claimed,
        "honest {honest:?} < lost {v} <= claimed {claimed:?}"
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_refresh_counts_are_judged_beside_the_canary_as_the_truth_says() {
    let password = common::fakes::secret_file("es-password", "es-secret");
    // The status is read at start-up and again at 10 s: the honest count grew between the
    // two, the frozen one did not, while sentinels written after the first read arrived.
    let m = Monitored::start(ESTATE, "2s", Duration::from_secs(10), |base, auth| {
        let mut systems = common::twin::dataverse_signed("crm", base, auth);
        let mut list = Vec::new();
        for (target, index) in [("es_flowing", "flowing"), ("es_frozen", "frozen")] {
            systems += &format!(
                "  {target}:\n    kind: elasticsearch\n    url: {base}/es/logs\n    index: {index}\n    \
                 mode: searchable\n    key_field: name\n    payload_field: description\n    \
                 auth: {{ method: basic, username: elastic, password: \"{password}\" }}\n"
            );
            list.push(path("crm", target, "surface: elasticsearch_refresh"));
        }
        (systems, list)
    })
    .await;
    m.assert_verdicts(&[
        ("es_flowing", Verdict::Agree, None),
        (
            "es_frozen",
            Verdict::StatusStale,
            Some("stale_while_flowing"),
        ),
    ]);
    for j in &m.verdicts {
        let latest = j.view.latest.as_ref().expect("a claim");
        // The count read is the one served, and the index's true count has moved on.
        assert_eq!(
            latest.claim.syncs,
            j.truth["claims"]["counter"].as_u64(),
            "{}: {:#}",
            j.target,
            j.truth
        );
        assert!(
            j.truth["truth"]["counter"].as_u64() > Some(0),
            "{:#}",
            j.truth
        );
    }
    let frozen = m.verdicts[1].view.latest.as_ref().expect("a claim");
    assert_eq!(frozen.claim.syncs, Some(0), "frozen at the lie's start");
    // A count that did not move is dated from the read that first showed it: start-up.
    let by = frozen.sync_by.expect("the first read dates the count");
    assert!(
        frozen.read_at - by > chrono::Duration::seconds(8),
        "{by} is the start-up read's, not {}",
        frozen.read_at
    );
    let flowing = m.verdicts[0].view.latest.as_ref().expect("a claim");
    assert_eq!(
        flowing.sync_by,
        Some(flowing.read_at),
        "a count that grew: by this read"
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_write_map_status_is_judged_beside_the_canary_as_the_truth_says() {
    let m = Monitored::start(ESTATE, "2s", Duration::from_secs(10), |base, auth| {
        let mut systems = common::twin::dataverse_signed("crm", base, auth);
        let mut list = Vec::new();
        for (target, entity, key, internal) in [
            ("dw_running", "CustomersV3", "OrganizationName", "Customers V3"),
            ("dw_paused", "VendorsV2", "VendorName", "Vendors V2"),
        ] {
            systems += &format!(
                "  {target}:\n    kind: fo_odata\n    url: {base}/fno/fin\n    entity_set: {entity}\n    \
                 key_field: {key}\n    payload_field: Description\n    data_area_id: usmf\n    \
                 scope: https://fin.operations.dynamics.com/.default\n    auth: {auth}\n"
            );
            // The values this environment's maps were seen to take (the emulator's encoding).
            let status = format!(
                "surface: dual_write, internal_entity: {internal}, external_entity: accounts, \
                 status_values: {{ 1: healthy, 2: paused }}"
            );
            list.push(path("crm", target, &status));
        }
        (systems, list)
    })
    .await;
    m.assert_verdicts(&[
        ("dw_running", Verdict::Agree, None),
        ("dw_paused", Verdict::Explained, None),
    ]);
    for (j, (status, state, replication)) in m
        .verdicts
        .iter()
        .zip([(1, "healthy", "flowing"), (2, "paused", "paused")])
    {
        let claim = &j.view.latest.as_ref().expect("a claim").claim;
        assert_eq!(claim.state.label(), state, "{}: {claim:?}", j.target);
        assert_eq!(claim.raw, format!("Status={status}"), "{}", j.target);
        assert_eq!(
            j.truth["claims"]["surface"]["Status"], status,
            "{:#}",
            j.truth
        );
        assert_eq!(
            j.truth["truth"]["replication"], replication,
            "{:#}",
            j.truth
        );
    }
    m.stop().await;
}
