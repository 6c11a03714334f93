//! Reconciliation through the emulator over loopback HTTP: lagwatch's real connectors read a
//! seeded Dataverse table and its replicas, and every discrepancy found is checked against the
//! emulator's ground truth of the drift it injected (`/_truth/_drift/{replica}`).

use crate::common::entra;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use lagwatch::app::App;
use lagwatch::reconcile::diff::Kind;
use lagwatch_emulator::{Emulator, Scenario};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "reconcile-test-secret";

/// A seeded `crm/accounts` replicated to `crm2` (drifted) and `crm3` (clean).
fn scenario(rows: u64, lag: &str) -> String {
    format!(
        r#"
credentials:
  - {{ tenant: contoso, client_id: lagwatch-test, client_secret: {SECRET} }}
dataverse:
  crm:
    tables:
      accounts:
        id: accountid
        columns: {{ name: string, accountnumber: string, customertypecode: int, description: string }}
        seed: {{ rows: {rows}, values: {{ customertypecode: 3 }}, deleted: 6, in_flight: 5 }}
  crm2:
    tables:
      accounts:
        id: accountid
        columns: {{ name: string, accountnumber: string, customertypecode: int, description: string }}
  crm3:
    tables:
      accounts:
        id: accountid
        columns: {{ name: string, accountnumber: string, customertypecode: int, description: string }}
replicas:
  crm2:
    source: crm/accounts
    target: {{ kind: dataverse, env: crm2, table: accounts }}
    key: name
    lag: {{ distribution: fixed, value: {lag} }}
    drift: {{ missing: 7, stale: 4, extra: 3, changed: 2 }}
  crm3:
    source: crm/accounts
    target: {{ kind: dataverse, env: crm3, table: accounts }}
    key: name
    lag: {{ distribution: fixed, value: {lag} }}
"#
    )
}

fn dataverse(name: &str, origin: &str, secret_file: &Path) -> String {
    format!(
        r#"
  {name}:
    kind: dataverse
    url: {origin}/{name}
    table: accounts
    id_column: accountid
    key_column: name
    payload_column: description
    fields: {{ customertypecode: 3 }}
    scope: https://{name}.crm.dynamics.com/.default
    auth:
      method: client_secret
      tenant_id: contoso
      client_id: lagwatch-test
      client_secret: file:{secret}
      authority: {origin}/entra
"#,
        secret = secret_file.display()
    )
}

fn reconcile_entry(interval: &str) -> String {
    format!(
        r#"
    reconcile:
      - name: accounts
        interval: {interval}
        settle_floor: 1s
        page_size: 500
        source: {{ key: name, version: versionnumber, changed: modifiedon, compare: [accountnumber, description] }}
        target: {{ key: name, version: versionnumber, compare: [accountnumber, description] }}
"#
    )
}

/// The monitor's config: crm → crm2 and crm → crm3, each with a reconciliation.
/// `timeout` is also the settle window until probes have measured the lag.
fn config(origin: &str, dir: &Path, interval: &str, probe_every: &str, timeout: &str) -> String {
    let secret = dir.join("secret");
    std::fs::write(&secret, SECRET).expect("secret file");
    format!(
        r#"
instance: rtest
state_dir: {state}
systems:{crm}{crm2}{crm3}
paths:
  - source: crm
    target: crm2
    interval: {probe_every}
    objective: 1s
    timeout: {timeout}{entry}
  - source: crm
    target: crm3
    interval: {probe_every}
    objective: 1s
    timeout: {timeout}{entry}
"#,
        state = dir.join("state").display(),
        crm = dataverse("crm", origin, &secret),
        crm2 = dataverse("crm2", origin, &secret),
        crm3 = dataverse("crm3", origin, &secret),
        entry = reconcile_entry(interval),
    )
}

struct Estate {
    origin: String,
    stop: CancellationToken,
    _emulator: Arc<Emulator>,
}

async fn estate(rows: u64, lag: &str) -> Estate {
    let scenario = Scenario::from_yaml(&scenario(rows, lag)).expect("scenario");
    serve(Emulator::new(scenario)).await
}

/// Serves `emulator` on a loopback port until the estate's `stop`.
async fn serve(emulator: Arc<Emulator>) -> Estate {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let stop = CancellationToken::new();
    let (e, s) = (emulator.clone(), stop.clone());
    tokio::spawn(async move { e.serve(listener, s).await });
    Estate {
        origin,
        stop,
        _emulator: emulator,
    }
}

/// The drifted keys the emulator says it injected into `replica`, by fate.
async fn drift_truth(origin: &str, replica: &str) -> Value {
    reqwest::get(format!("{origin}/_truth/_drift/{replica}"))
        .await
        .expect("truth")
        .json()
        .await
        .expect("truth json")
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .expect("a list of keys")
        .iter()
        .map(|k| k.as_str().expect("key").to_string())
        .collect()
}

fn build(text: &str) -> App {
    let config = lagwatch_emulator::REGISTRY
        .from_yaml("reconcile-test.yaml", text)
        .unwrap_or_else(|e| panic!("{e}"));
    App::build(config).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_drift_is_found_with_its_exact_keys_and_becomes_persistent() {
    let estate = estate(3000, "500ms").await;
    let dir = tempfile::tempdir().expect("dir");
    let app = build(&config(&estate.origin, dir.path(), "1h", "1h", "2s"));
    let cancel = CancellationToken::new();
    let drifted = &app.reconciler.find("crm", "crm2", None)[0];
    let clean = &app.reconciler.find("crm", "crm3", None)[0];
    // No probes ran: the settle window is the path's timeout (2 s); the floor is 1 s.
    assert_eq!(drifted.settle_window(), Duration::from_secs(2));

    let first = drifted.run_once(&cancel).await.expect("first run");
    let t = &first.tally;
    // Seeded rows: 3000, 6 deleted in the source (3 of them still in crm2), 5 updated just now.
    assert_eq!(t.count(Kind::Missing, false), 7, "{t:?}");
    assert_eq!(t.count(Kind::Stale, false), 4);
    assert_eq!(
        t.count(Kind::Mismatched, false),
        2,
        "changed content, same version"
    );
    assert_eq!(
        t.count(Kind::Extra, false),
        0,
        "extras are dated by a first sighting"
    );
    assert_eq!(t.persistent_total(), 0);
    assert_eq!(t.unsettled, 3 + 5, "3 extras seen once, 5 rows in flight");
    assert_eq!(t.compared, 3000 - 6 + 3);
    assert_eq!(first.source.rows, 2994);
    assert_eq!(first.target.rows, 3000 - 6 + 3 - 7);
    assert_eq!(first.source.pages, 6, "500-row pages");

    tokio::time::sleep(Duration::from_millis(3200)).await;
    let second = drifted.run_once(&cancel).await.expect("second run");
    let t = &second.tally;
    for (kind, n) in [
        (Kind::Missing, 7),
        (Kind::Stale, 4),
        (Kind::Mismatched, 2),
        (Kind::Extra, 3),
    ] {
        assert_eq!(t.count(kind, true), n, "{kind:?} persistent: {t:?}");
        assert_eq!(t.count(kind, false), 0, "{kind:?} transient");
    }
    assert_eq!(t.unsettled, 5, "in-flight rows are never judged");

    // The keys are exactly those the emulator drifted.
    let truth = drift_truth(&estate.origin, "crm2").await;
    let found = drifted.discrepancies();
    let of = |k: Kind| -> BTreeSet<String> {
        found
            .iter()
            .filter(|d| d.kind == k)
            .map(|d| d.key.clone())
            .collect()
    };
    assert_eq!(of(Kind::Missing), keys(&truth["keys"]["missing"]));
    assert_eq!(of(Kind::Stale), keys(&truth["keys"]["stale"]));
    assert_eq!(of(Kind::Mismatched), keys(&truth["keys"]["changed"]));
    assert_eq!(of(Kind::Extra), keys(&truth["keys"]["extra"]));
    let stale = found
        .iter()
        .find(|d| d.kind == Kind::Stale)
        .expect("a stale key");
    let (s, r): (u64, u64) = (
        stale
            .source_version
            .as_deref()
            .expect("source version")
            .parse()
            .expect("number"),
        stale
            .replica_version
            .as_deref()
            .expect("replica version")
            .parse()
            .expect("number"),
    );
    assert!(s > r, "the replica holds the older version");

    // The clean replica: nothing judged, the in-flight rows unsettled.
    let c = clean.run_once(&cancel).await.expect("clean run");
    assert_eq!(c.tally.total(), 0, "{:?}", c.tally);
    assert_eq!(c.tally.unsettled, 5);

    // Metrics and the API say the same.
    let text = app.engine.metrics().render();
    for (kind, n) in [
        ("missing", 7),
        ("stale", 4),
        ("mismatched", 2),
        ("extra", 3),
    ] {
        let line = format!(
            "lagwatch_discrepancies{{kind=\"{kind}\",persistence=\"persistent\",source=\"crm\",table=\"accounts\",target=\"crm2\"}} {n}"
        );
        assert!(text.contains(&line), "missing {line}");
    }
    assert!(text.contains(
        "lagwatch_reconcile_runs_total{outcome=\"success\",source=\"crm\",table=\"accounts\",target=\"crm2\"} 2"
    ));
    assert!(text.contains(
        "lagwatch_reconcile_unsettled{source=\"crm\",table=\"accounts\",target=\"crm2\"} 5"
    ));

    let router = lagwatch::http::router(app.engine.clone(), app.reconciler.clone(), "rtest");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let api = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    let get = |q: String| {
        let url = format!("{api}/api/v1/discrepancies?{q}");
        async move {
            let r = reqwest::get(url).await.expect("api");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }
    };
    let (status, all) = get("source=crm&target=crm2&kind=stale".into()).await;
    assert_eq!(status, 200);
    assert_eq!(all["total"], 4);
    let (_, page1) = get("source=crm&limit=10".into()).await;
    assert_eq!(page1["total"], 16);
    assert_eq!(page1["discrepancies"].as_array().expect("list").len(), 10);
    let next = page1["next"].as_str().expect("a next page").to_string();
    let (_, page2) = get(format!("source=crm&limit=10&after={next}")).await;
    assert_eq!(page2["discrepancies"].as_array().expect("list").len(), 6);
    assert!(page2.get("next").is_none());
    let mut paged: Vec<String> = page1["discrepancies"]
        .as_array()
        .into_iter()
        .chain(page2["discrepancies"].as_array())
        .flatten()
        .map(|d| d["key"].as_str().expect("key").to_string())
        .collect();
    let n = paged.len();
    paged.dedup();
    assert_eq!(paged.len(), n, "pages do not overlap");
    let (status, err) = get("kind=lost".into()).await;
    assert_eq!(status, 400);
    assert!(
        err["error"]
            .as_str()
            .expect("error")
            .contains("missing, extra")
    );

    // A restart remembers: a new app on the same state_dir judges persistence at once.
    let again = build(&config(&estate.origin, dir.path(), "1h", "1h", "2s"));
    let third = again.reconciler.find("crm", "crm2", None)[0]
        .run_once(&cancel)
        .await
        .expect("after restart");
    assert_eq!(third.tally.count(Kind::Missing, true), 7);
    estate.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_in_flight_is_never_reported_as_drift_while_probes_run() {
    // Sentinels written every second replicate 2 s later; reconciliation runs every second.
    let estate = estate(200, "2s").await;
    let dir = tempfile::tempdir().expect("dir");
    let app = Arc::new(build(&config(
        &estate.origin,
        dir.path(),
        "1s",
        "1s",
        "30s",
    )));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let stop = CancellationToken::new();
    let run = {
        let (app, stop) = (app.clone(), stop.clone());
        tokio::spawn(async move { app.run(listener, stop).await })
    };
    let clean = app.reconciler.find("crm", "crm3", None)[0].clone();
    let mut runs_seen = 0;
    let mut max_unsettled = 0;
    let mut max_sentinel_rows = 0;
    let mut settle_from_probes = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Some(last) = clean.last_run() {
            assert_eq!(last.outcome, "success", "{:?}", last.error);
            let judged: u64 = last.discrepancies.values().map(|[t, p]| t + p).sum();
            assert_eq!(
                judged,
                0,
                "in-flight rows reported as drift: {:?}",
                clean.discrepancies()
            );
            max_unsettled = max_unsettled.max(last.unsettled);
            max_sentinel_rows = max_sentinel_rows.max(last.sentinel_rows);
            runs_seen += 1;
            // Once probes converged, the window follows their lag (about 2 s), not the
            // objective-based fallback.
            if (3.9..=6.0).contains(&last.settle_window_seconds) {
                settle_from_probes = true;
            }
        }
    }
    stop.cancel();
    run.await.expect("join").expect("served");
    estate.stop.cancel();
    assert!(runs_seen > 10, "reconciliation kept running");
    assert!(
        max_unsettled >= 5,
        "the 5 seeded in-flight rows were seen unsettled"
    );
    assert!(
        max_sentinel_rows > 0,
        "the probes' sentinels were read and left out: lagwatch's own rows are not the customer's data"
    );
    assert!(
        settle_from_probes,
        "the settle window came from the probes' lag"
    );
    // The drifted replica ran beside it and found its drift.
    let drifted = app.reconciler.find("crm", "crm2", None)[0].clone();
    let last = drifted.last_run().expect("ran");
    assert_eq!(last.discrepancies["missing"].iter().sum::<u64>(), 7);
}

fn lagwatch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lagwatch"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_exits_non_zero_once_discrepancies_persist() {
    let estate = estate(500, "500ms").await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("lagwatch.yaml");
    std::fs::write(&file, config(&estate.origin, dir.path(), "1h", "1h", "2s")).expect("config");
    let run = |path: &str, format: &str| {
        let out = lagwatch()
            .args(["reconcile", "--config"])
            .arg(&file)
            .args(["--path", path, "--format", format])
            .output()
            .expect("runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, csv, err) = run("crm/crm2", "csv");
    assert_eq!(code, Some(0), "first run: nothing persistent yet; {err}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "source,target,table,key,kind,persistence,first_seen,source_version,replica_version,source_changed"
    );
    assert_eq!(lines.len(), 1 + 7 + 4 + 2, "{csv}");
    std::thread::sleep(Duration::from_millis(3200));
    let (code, json, err) = run("crm/crm2", "json");
    assert_eq!(code, Some(1), "second run: persistent discrepancies; {err}");
    let v: Value = serde_json::from_str(&json).expect("json");
    assert_eq!(
        v["runs"][0]["run"]["discrepancies"]["extra"],
        serde_json::json!([0, 3])
    );
    let (code, _, err) = run("crm/crm3", "json");
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = run("crm/nowhere", "json");
    assert_eq!(code, Some(2));
    assert!(err.contains("no reconciliation of crm/nowhere; configured: crm/crm2 (table accounts), crm/crm3 (table accounts)"), "{err}");
    estate.stop.cancel();
    let (code, _, err) = run("crm/crm2", "json");
    assert_eq!(code, Some(3), "the emulator is gone: the run fails; {err}");
    assert!(err.contains("reading target crm2"), "{err}");
}

/// F&O (dual-write, compared by mapped fields), Azure AI Search and Elasticsearch replicas of a
/// seeded table, each drifted differently.
const OTHER_TARGETS: &str = r#"
credentials:
  - { tenant: contoso, client_id: lagwatch-test, client_secret: reconcile-test-secret }
dataverse:
  crm:
    tables:
      accounts:
        id: accountid
        columns: { name: string, accountnumber: string, customertypecode: int, description: string }
        seed: { rows: 1200, values: { customertypecode: 3 }, deleted: 4, in_flight: 3 }
fno:
  fin: { default_company: dat }
search:
  srch: { api_keys: [search-key] }
elasticsearch:
  logs: { users: { elastic: es-password }, refresh_interval: 1s }
replicas:
  fno:
    source: crm/accounts
    target: { kind: fno, env: fin, entity: CustomersV3, company: usmf }
    key: name
    map: { accountnumber: CustomerAccount, name: OrganizationName }
    lag: { distribution: fixed, value: 500ms }
    drift: { missing: 5, changed: 3, extra: 2 }
  search:
    source: crm/accounts
    target: { kind: search, service: srch, index: accounts }
    key: name
    lag: { distribution: fixed, value: 500ms }
    drift: { missing: 4, stale: 2 }
  es:
    source: crm/accounts
    target: { kind: elasticsearch, cluster: logs, index: accounts }
    key: name
    lag: { distribution: fixed, value: 500ms }
    drift: { missing: 3, extra: 1, changed: 2 }
"#;

fn other_targets_config(origin: &str, dir: &Path) -> String {
    let secret = dir.join("secret");
    std::fs::write(&secret, SECRET).expect("secret file");
    let write = |name: &str, value: &str| {
        let p = dir.join(name);
        std::fs::write(&p, value).expect("secret file");
        p.display().to_string()
    };
    let search_key = write("search-key", "search-key");
    let es_password = write("es-password", "es-password");
    let entry = |source: &str, target: &str| {
        format!(
            r#"
    reconcile:
      - name: accounts
        settle_floor: 1s
        page_size: 300
        source: {{ key: name, changed: modifiedon, compare: [{source}] }}
        target: {{ key: {target}, compare: [{target_compare}] }}
"#,
            target = target.split(':').next().unwrap_or_default(),
            target_compare = target.split(':').nth(1).unwrap_or_default(),
        )
    };
    format!(
        r#"
instance: rtest
systems:{crm}
  fno:
    kind: fo_odata
    url: {origin}/fno/fin
    entity_set: CustomersV3
    key_field: OrganizationName
    data_area_id: usmf
    sync_grace: 1s
    scope: https://fin.operations.dynamics.com/.default
    auth: {{ method: client_secret, tenant_id: contoso, client_id: lagwatch-test, client_secret: "file:{secret}", authority: {origin}/entra }}
  search:
    kind: azure_search
    endpoint: {origin}/search/srch
    index: accounts
    mode: lookup
    key_field: name
    payload_field: description
    auth: {{ method: api_key, key: "file:{search_key}" }}
  es:
    kind: elasticsearch
    url: {origin}/es/logs
    index: accounts
    mode: searchable
    key_field: name
    payload_field: description
    auth: {{ method: basic, username: elastic, password: "file:{es_password}" }}
paths:
  - source: crm
    target: fno
    objective: 1s
    timeout: 2s{fno}
  - source: crm
    target: search
    objective: 1s
    timeout: 2s{search}
  - source: crm
    target: es
    objective: 1s
    timeout: 2s{es}
"#,
        crm = dataverse("crm", origin, &secret),
        secret = secret.display(),
        fno = entry("accountnumber", "OrganizationName:CustomerAccount"),
        search = entry("description", "name:description"),
        es = entry("description", "name:description"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f_and_o_search_and_elasticsearch_replicas_are_reconciled_through_their_apis() {
    let scenario = Scenario::from_yaml(OTHER_TARGETS).expect("scenario");
    let estate = serve(Emulator::new(scenario)).await;
    let origin = estate.origin.clone();
    let dir = tempfile::tempdir().expect("dir");
    let app = build(&other_targets_config(&origin, dir.path()));
    let cancel = CancellationToken::new();
    // (target, missing, mismatched, extra): stale search rows carry changed text and no
    // version column is compared, so they are mismatched.
    let want = [("fno", 5, 3, 2), ("search", 4, 2, 0), ("es", 3, 2, 1)];
    for (target, ..) in want {
        let entry = &app.reconciler.find("crm", target, None)[0];
        let first = entry
            .run_once(&cancel)
            .await
            .unwrap_or_else(|e| panic!("{target}: {e}"));
        assert_eq!(first.tally.persistent_total(), 0, "{target}");
    }
    tokio::time::sleep(Duration::from_millis(3200)).await;
    for (target, missing, mismatched, extra) in want {
        let entry = &app.reconciler.find("crm", target, None)[0];
        let out = entry
            .run_once(&cancel)
            .await
            .unwrap_or_else(|e| panic!("{target}: {e}"));
        let t = &out.tally;
        assert_eq!(t.count(Kind::Missing, true), missing, "{target}: {t:?}");
        assert_eq!(
            t.count(Kind::Mismatched, true),
            mismatched,
            "{target}: {t:?}"
        );
        assert_eq!(t.count(Kind::Extra, true), extra, "{target}: {t:?}");
        assert_eq!(t.total(), missing + mismatched + extra, "{target}: {t:?}");
        assert_eq!(
            t.unsettled, 0,
            "{target}: in-flight rows keep their compared text"
        );
        assert!(
            out.target.pages >= 4,
            "{target}: paged ({} pages)",
            out.target.pages
        );
        let truth = drift_truth(&origin, target).await;
        let missing_keys: BTreeSet<String> = entry
            .discrepancies()
            .iter()
            .filter(|d| d.kind == Kind::Missing)
            .map(|d| d.key.clone())
            .collect();
        assert_eq!(missing_keys, keys(&truth["keys"]["missing"]), "{target}");
    }
    estate.stop.cancel();
}

/// A Synapse Link incremental export and a Link to Fabric Delta table of a seeded table.
const LAKES: &str = r#"
credentials:
  - { tenant: contoso, client_id: lagwatch-test, client_secret: reconcile-test-secret }
dataverse:
  crm:
    tables:
      accounts:
        id: accountid
        columns: { name: string, accountnumber: string, customertypecode: int, description: string }
        seed: { rows: 1500, values: { customertypecode: 3 }, deleted: 6, in_flight: 4 }
lakes:
  inc: { container: rec-incremental }
  fab: { container: rec-fabric, layout: delta }
replicas:
  inc:
    source: crm/accounts
    target: { kind: lake, lake: inc, table: account }
    lag: { distribution: fixed, value: 200ms }
    folder_interval: 2s
    drift: { missing: 4, stale: 3, extra: 2, changed: 2 }
  fab:
    source: crm/accounts
    target: { kind: lake, lake: fab, table: account }
    lag: { distribution: fixed, value: 200ms }
    folder_interval: 2s
    drift: { missing: 2, extra: 1, changed: 1 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lake_exports_are_reconciled_as_change_logs_keyed_on_the_record_id() {
    let lake = tempfile::tempdir().expect("lake dir");
    let scenario = Scenario::from_yaml(LAKES).expect("scenario");
    let estate = serve(Emulator::with_lake_root(scenario, lake.path())).await;
    let origin = estate.origin.clone();
    let dir = tempfile::tempdir().expect("dir");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).expect("secret");
    // Lake delete rows carry only `Id`, so the key is the record id on both sides.
    let entry = r#"
    reconcile:
      - name: account
        settle_floor: 1s
        page_size: 400
        source: { key: accountid, version: versionnumber, changed: modifiedon, compare: [accountnumber, description] }
        target: { key: Id, version: versionnumber, compare: [accountnumber, description] }
"#;
    let root = lake.path().display();
    let text = format!(
        r#"
instance: rtest
systems:{crm}
  inc:
    kind: synapse_link_csv
    url: file://{root}/rec-incremental
    table: account
    key_column: name
    payload_column: description
  fab:
    kind: delta
    url: file://{root}/rec-fabric/deltalake/account
    key_column: name
    payload_column: description
paths:
  - source: crm
    target: inc
    objective: 1s
    timeout: 2s{entry}
  - source: crm
    target: fab
    objective: 1s
    timeout: 2s{entry}
"#,
        crm = dataverse("crm", &origin, &secret),
    );
    let app = build(&text);
    let cancel = CancellationToken::new();
    // The seeded rows are in the first folder / commit: readable once it closed.
    let want = [("inc", 4, 3, 2, 2), ("fab", 2, 0, 1, 1)];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for (target, ..) in want {
        let entry = app.reconciler.find("crm", target, None)[0].clone();
        loop {
            // Before the emulator's first write the export does not exist yet: an error.
            let first = entry.run_once(&cancel).await;
            if first.as_ref().is_ok_and(|f| f.target.rows > 0) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{target}: the lake fills: {:?}",
                first.err()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(3200)).await;
    for (target, missing, stale, mismatched, extra) in want {
        let entry = &app.reconciler.find("crm", target, None)[0];
        let out = entry
            .run_once(&cancel)
            .await
            .unwrap_or_else(|e| panic!("{target}: {e}"));
        let t = &out.tally;
        assert_eq!(t.count(Kind::Missing, true), missing, "{target}: {t:?}");
        assert_eq!(t.count(Kind::Stale, true), stale, "{target}: {t:?}");
        assert_eq!(
            t.count(Kind::Mismatched, true),
            mismatched,
            "{target}: {t:?}"
        );
        assert_eq!(t.count(Kind::Extra, true), extra, "{target}: {t:?}");
        assert_eq!(
            t.total(),
            missing + stale + mismatched + extra,
            "{target}: {t:?}"
        );
        assert_eq!(t.unsettled, 4, "{target}: the in-flight rows");
        assert!(
            out.target.pages > 3,
            "{target}: read in pages ({})",
            out.target.pages
        );
    }
    estate.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_windowed_run_reads_only_recently_changed_source_rows() {
    let estate = estate(3000, "500ms").await;
    let dir = tempfile::tempdir().expect("dir");
    // Every seeded row changed more than an hour ago but the 5 in flight (changed now).
    let text = config(&estate.origin, dir.path(), "1h", "1h", "2s").replacen(
        "interval: 1h\n        settle_floor",
        "interval: 1h\n        changed_within: 30m\n        settle_floor",
        1,
    );
    let app = build(&text);
    let entry = &app.reconciler.find("crm", "crm2", None)[0];
    assert!(entry.spec.changed_within.is_some());
    let out = entry
        .run_once(&CancellationToken::new())
        .await
        .expect("windowed run");
    assert_eq!(
        out.source.rows, 5,
        "the $filter on modifiedon ran on the server"
    );
    assert_eq!(
        out.target.rows,
        3000 - 6 + 3 - 7,
        "the replica is read whole"
    );
    assert_eq!(
        out.tally.compared, 5,
        "replica-only keys are outside a window's judgement"
    );
    assert_eq!(out.tally.total(), 0);
    assert_eq!(out.tally.unsettled, 5);
    estate.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_held_back_past_the_settle_window_is_transient_and_then_heals() {
    // crm4 stalls for its first 8 s: a row written now arrives only then.
    let scenario = format!(
        r#"
credentials:
  - {{ tenant: contoso, client_id: lagwatch-test, client_secret: {SECRET} }}
dataverse:
  crm:
    tables:
      accounts:
        id: accountid
        columns: {{ name: string, accountnumber: string, customertypecode: int, description: string }}
  crm4:
    tables:
      accounts:
        id: accountid
        columns: {{ name: string, accountnumber: string, customertypecode: int, description: string }}
replicas:
  crm4:
    source: crm/accounts
    target: {{ kind: dataverse, env: crm4, table: accounts }}
    key: name
    lag: {{ distribution: fixed, value: 200ms }}
    outages: [ {{ start: 0s, duration: 8s, mode: stall }} ]
"#
    );
    let estate = serve(Emulator::new(
        Scenario::from_yaml(&scenario).expect("scenario"),
    ))
    .await;
    let origin = estate.origin.clone();
    let http = reqwest::Client::new();
    let token = entra::token(
        &http,
        &origin,
        "lagwatch-test",
        SECRET,
        "https://crm.crm.dynamics.com",
    )
    .await;
    let created = http
        .post(format!("{origin}/crm/api/data/v9.2/accounts"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "held-back", "accountnumber": "HB-1", "customertypecode": 3}))
        .send()
        .await
        .expect("create");
    assert!(created.status().is_success(), "{}", created.status());
    let written = std::time::Instant::now();

    let dir = tempfile::tempdir().expect("dir");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).expect("secret");
    let text = format!(
        "instance: rtest\nsystems:{}{}\npaths:\n  - source: crm\n    target: crm4\n    objective: 1s\n    timeout: 2s{}",
        dataverse("crm", &origin, &secret),
        dataverse("crm4", &origin, &secret),
        reconcile_entry("1h"),
    );
    let app = build(&text);
    let entry = &app.reconciler.find("crm", "crm4", None)[0];
    let cancel = CancellationToken::new();
    // Settle window 2 s (the timeout) + 1 s for whole-second modifiedon: judged after 4 s.
    tokio::time::sleep(Duration::from_secs(4).saturating_sub(written.elapsed())).await;
    let held = entry.run_once(&cancel).await.expect("run during the stall");
    assert_eq!(
        held.tally.count(Kind::Missing, false),
        1,
        "{:?}",
        held.tally
    );
    assert_eq!(held.tally.total(), 1);
    let keys: Vec<String> = entry.discrepancies().into_iter().map(|d| d.key).collect();
    assert_eq!(keys, ["held-back"]);

    tokio::time::sleep(Duration::from_secs(9).saturating_sub(written.elapsed())).await;
    let healed = entry.run_once(&cancel).await.expect("run after the stall");
    assert_eq!(healed.tally.total(), 0, "{:?}", healed.tally);
    assert_eq!(healed.tally.healed, [1, 0, 0, 0], "healed as missing");
    assert!(entry.discrepancies().is_empty());
    let text = app.engine.metrics().render();
    assert!(text.contains(
        "lagwatch_discrepancies_healed_total{kind=\"missing\",source=\"crm\",table=\"accounts\",target=\"crm4\"} 1"
    ));
    estate.stop.cancel();
}
