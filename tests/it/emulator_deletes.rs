//! Deletes propagate like writes, checked against ground truth, in-process under paused tokio
//! time: a deleted row stays in each replica until its truth's `gone_at` and not after, on
//! every replica kind, by key and in queries (Dataverse replica, F&O, Azure AI Search,
//! Elasticsearch `_doc` and `_search`); a lake gets its delete row in the export that follows
//! `gone_at`; a dropped delete keeps the row for good; a resurrection shows it again exactly
//! inside its window; the defaults drop and resurrect nothing. The `simulated` kind's systems
//! do the same through lagwatch's connector API.

use crate::common::{self, entra};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use chrono::Utc;
use lagwatch::connector::Lookup;
use lagwatch::sentinel::Sentinel;
use lagwatch::systems::{BuildContext, System};
use lagwatch_emulator::lake::folder_name;
use lagwatch_emulator::simulated::Landscape;
use lagwatch_emulator::{Emulator, GroundTruth, Scenario};
use serde_json::{Value, json};
use tokio::time::{Instant, advance};

/// One replica of each kind, from `crm/accounts` keyed by `accountnumber`, each with lag
/// `LAG` and the lines `KNOBS`; the lake rolls a folder every second.
const SCENARIO: &str = r#"
seed: 3
credentials:
  - { tenant: contoso, client_id: app-1, client_secret: s3cret }
dataverse:
  crm:
    tables:
      accounts:
        id: accountid
        columns: { name: string, accountnumber: string }
  crm2:
    tables:
      accounts:
        columns: { name: string, accountnumber: string }
fno:
  fin: {}
search:
  srch: { api_keys: [k1] }
elasticsearch:
  logs: { refresh_interval: 1s }
lakes:
  dl: { container: dataverse-contoso-deletes }
replicas:
  crm2:
    source: crm/accounts
    target: { kind: dataverse, env: crm2, table: accounts }
    key: accountnumber
    LAG
    KNOBS
  fno:
    source: crm/accounts
    target: { kind: fno, env: fin, entity: CustomersV3, company: usmf }
    key: accountnumber
    map: { accountnumber: CustomerAccount, name: OrganizationName }
    LAG
    KNOBS
  search:
    source: crm/accounts
    target: { kind: search, service: srch, index: sentinels }
    key: accountnumber
    LAG
    KNOBS
  es:
    source: crm/accounts
    target: { kind: elasticsearch, cluster: logs, index: sentinels }
    key: accountnumber
    LAG
    KNOBS
  lake:
    source: crm/accounts
    target: { kind: lake, lake: dl, table: account }
    key: accountnumber
    folder_interval: 1s
    LAG
    KNOBS
"#;

const FIXED: &str = "lag: { distribution: fixed, value: 300ms }";
const LAG: Duration = Duration::from_millis(300);
/// The HTTP replicas (the lake is read from its files).
const SERVED: [&str; 4] = ["crm2", "fno", "search", "es"];
/// Elasticsearch's refresh interval, and the lake's folder interval.
const SECOND: Duration = Duration::from_secs(1);

fn scenario(lag: &str, knobs: &[&str]) -> Scenario {
    let knobs: String = knobs.iter().map(|k| format!("    {k}\n")).collect();
    let text = SCENARIO
        .replace("    LAG\n", &format!("    {lag}\n"))
        .replace("    KNOBS\n", &knobs);
    Scenario::from_yaml(&text).unwrap_or_else(|e| panic!("{e}"))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One way to read a row: what it is, the replica it reads, method, URI, headers, body.
type Ask<'a> = (
    &'static str,
    &'static str,
    &'static str,
    String,
    &'a [(&'a str, &'a str)],
    Value,
);

struct Estate {
    emu: Arc<Emulator>,
    /// `Authorization` values for each environment.
    crm: String,
    crm2: String,
    fin: String,
    _dir: tempfile::TempDir,
}

impl Estate {
    async fn new(lag: &str, knobs: &[&str]) -> Estate {
        let dir = common::temp_dir("lagwatch-deletes-");
        let emu = Emulator::with_lake_root(scenario(lag, knobs), dir.path());
        emu.flush_lake().await.expect("lake written");
        let token = |resource: &'static str| {
            let emu = emu.clone();
            async move {
                let t = entra::token_in_process(&emu, "app-1", "s3cret", resource).await;
                format!("Bearer {t}")
            }
        };
        Estate {
            crm: token("https://crm.crm.dynamics.com").await,
            crm2: token("https://crm2.crm.dynamics.com").await,
            fin: token("https://fin.operations.dynamics.com").await,
            emu,
            _dir: dir,
        }
    }

    fn started(&self) -> Instant {
        self.emu.landscape().started_at()
    }

    /// Waits until `at` (after the emulator's start).
    async fn until(&self, at: Duration) {
        advance((self.started() + at).saturating_duration_since(Instant::now())).await;
    }

    async fn send(
        &self,
        method: &str,
        uri: &str,
        auth: &[(&str, &str)],
        body: Value,
    ) -> (u16, Value) {
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .header("prefer", "return=representation");
        for (k, v) in auth {
            b = b.header(*k, *v);
        }
        let body = if body.is_null() {
            Body::empty()
        } else {
            Body::from(body.to_string())
        };
        entra::answer(&self.emu, b.body(body).expect("request")).await
    }

    /// Creates account `number` in `crm`; its id.
    async fn create(&self, number: &str) -> String {
        let body = json!({"name": format!("Sentinel {number}"), "accountnumber": number});
        let auth = [("authorization", self.crm.as_str())];
        let (status, row) = self
            .send("POST", "/crm/api/data/v9.2/accounts", &auth, body)
            .await;
        assert_eq!(status, 201, "{row}");
        row["accountid"].as_str().expect("id").to_string()
    }

    async fn delete(&self, id: &str) {
        let uri = format!("/crm/api/data/v9.2/accounts({id})");
        let auth = [("authorization", self.crm.as_str())];
        let (status, body) = self.send("DELETE", &uri, &auth, Value::Null).await;
        assert_eq!(status, 204, "{body}");
        let (status, _) = self.send("GET", &uri, &auth, Value::Null).await;
        assert_eq!(status, 404, "the source forgets a deleted row at once");
    }

    /// Whether each way of reading a served replica finds account `number` (Dataverse id
    /// `id`) now, by key and by query, with the replica read; Elasticsearch `_search` apart
    /// (it rounds to refreshes).
    async fn reads(&self, number: &str, id: &str) -> Vec<(&'static str, &'static str, bool)> {
        let (crm2, fin, key) = (
            [("authorization", self.crm2.as_str())],
            [("authorization", self.fin.as_str())],
            [("api-key", "k1")],
        );
        let docs = "/search/srch/indexes/sentinels/docs";
        let search = "api-version=2025-09-01";
        let filter = json!({"filter": format!("accountnumber eq '{number}'")});
        let asks: [Ask; 7] = [
            (
                "dataverse replica by id",
                "crm2",
                "GET",
                format!("/crm2/api/data/v9.2/accounts({id})"),
                &crm2,
                Value::Null,
            ),
            (
                "dataverse replica $filter",
                "crm2",
                "GET",
                format!("/crm2/api/data/v9.2/accounts?$filter=accountnumber%20eq%20'{number}'"),
                &crm2,
                Value::Null,
            ),
            (
                "fno by key",
                "fno",
                "GET",
                format!("/fno/fin/data/CustomersV3(dataAreaId='usmf',CustomerAccount='{number}')"),
                &fin,
                Value::Null,
            ),
            (
                "fno $filter",
                "fno",
                "GET",
                format!(
                    "/fno/fin/data/CustomersV3?cross-company=true&$filter=CustomerAccount%20eq%20'{number}'"
                ),
                &fin,
                Value::Null,
            ),
            (
                "search by key",
                "search",
                "GET",
                format!("{docs}/{number}?{search}"),
                &key,
                Value::Null,
            ),
            (
                "search $filter",
                "search",
                "POST",
                format!("{docs}/search?{search}"),
                &key,
                filter,
            ),
            (
                "elasticsearch _doc",
                "es",
                "GET",
                format!("/es/logs/sentinels/_doc/{number}"),
                &[],
                Value::Null,
            ),
        ];
        let mut out = Vec::with_capacity(asks.len());
        for (what, replica, method, uri, auth, body) in asks {
            let (status, body) = self.send(method, &uri, auth, body).await;
            let found = match status {
                200 => body["value"].as_array().is_none_or(|v| !v.is_empty()),
                404 => false,
                s => panic!("{what}: status {s}: {body}"),
            };
            out.push((what, replica, found));
        }
        out
    }

    /// Whether every read of [`Estate::reads`] finds the row now (all must agree).
    async fn found(&self, number: &str, id: &str) -> bool {
        let reads = self.reads(number, id).await;
        let all = reads[0].2;
        assert!(reads.iter().all(|(_, _, f)| *f == all), "{reads:?}");
        all
    }

    async fn searchable(&self, number: &str) -> bool {
        let (status, body) = self
            .send(
                "POST",
                "/es/logs/sentinels/_search",
                &[],
                json!({"query": {"term": {"accountnumber": number}}}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["hits"]["total"]["value"] == 1
    }

    fn truth(&self, replica: &str, number: &str) -> GroundTruth {
        self.emu.truth(replica, number).expect("truth")
    }

    /// The first Elasticsearch refresh at or after `at`.
    fn refresh(&self, at: Instant) -> Instant {
        let n = at
            .saturating_duration_since(self.started())
            .as_nanos()
            .div_ceil(SECOND.as_nanos());
        self.started() + SECOND * u32::try_from(n).expect("ticks")
    }

    /// The name of the lake folder open at `at`.
    fn folder_of(&self, at: Instant) -> String {
        let k = at.saturating_duration_since(self.started()).as_nanos() / SECOND.as_nanos();
        let opened = self.started() + SECOND * u32::try_from(k).expect("folders");
        folder_name(self.emu.wall_time(opened))
    }

    /// `(folder, IsDelete)` of each lake row of record `id`, in export order.
    async fn lake_rows(&self, id: &str) -> Vec<(String, bool)> {
        self.emu.flush_lake().await.expect("flush");
        let c: PathBuf = self.emu.lake_dir("dl").expect("lake dir");
        let model: Value =
            serde_json::from_slice(&std::fs::read(c.join("model.json")).expect("model.json"))
                .expect("json");
        let cols: Vec<&str> = model["entities"][0]["attributes"]
            .as_array()
            .expect("attributes")
            .iter()
            .map(|a| a["name"].as_str().expect("name"))
            .collect();
        let at = |n: &str| cols.iter().position(|c| *c == n).expect(n);
        let mut folders: Vec<String> = std::fs::read_dir(&c)
            .expect("container")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with('Z'))
            .collect();
        folders.sort();
        let mut out = Vec::new();
        for f in folders {
            let dir = c.join(&f).join("account");
            let Ok(files) = std::fs::read_dir(&dir) else {
                continue;
            };
            for file in files {
                let mut r = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .from_path(file.expect("file").path())
                    .expect("csv");
                for rec in r.records() {
                    let rec = rec.expect("record");
                    if &rec[at("Id")] == id {
                        out.push((f.clone(), &rec[at("IsDelete")] == "True"));
                    }
                }
            }
        }
        out
    }
}

#[tokio::test(start_paused = true)]
async fn a_deleted_row_stays_until_gone_at_on_every_replica_kind() {
    let e = Estate::new(FIXED, &[]).await;
    e.until(ms(100)).await;
    let id = e.create("SENT-1").await;
    e.until(ms(1800)).await;
    assert!(e.found("SENT-1", &id).await && e.searchable("SENT-1").await);
    let deleted = Instant::now();
    e.delete(&id).await;
    advance(LAG - ms(1)).await;
    assert!(e.found("SENT-1", &id).await, "until gone_at");
    assert!(
        e.lake_rows(&id).await.iter().all(|(_, delete)| !delete),
        "no delete row yet"
    );
    advance(ms(1)).await;
    assert!(!e.found("SENT-1", &id).await, "gone at gone_at");
    for replica in SERVED {
        let t = e.truth(replica, "SENT-1");
        assert_eq!(t.deleted_at, Some(deleted), "{replica}");
        assert_eq!(t.gone_at, Some(deleted + LAG), "{replica}");
        assert_eq!(t.delete_lag(), Some(LAG), "{replica}");
        assert!(
            !t.delete_dropped && t.resurrected.is_none(),
            "{replica}: {t:?}"
        );
    }
    // `_search` finds it until the first refresh at or after gone_at (3 s).
    assert_eq!(e.refresh(deleted + LAG), e.started() + SECOND * 3);
    assert!(e.searchable("SENT-1").await);
    e.until(SECOND * 3 - ms(1)).await;
    assert!(e.searchable("SENT-1").await);
    e.until(SECOND * 3).await;
    assert!(!e.searchable("SENT-1").await);

    // The lake: deleted during folder 1, the delete row reaches the export at 2.1 s, in
    // folder 2, readable when it closes at 3 s.
    let t = e.truth("lake", "SENT-1");
    assert_eq!(t.delete_sink_at, Some(deleted + LAG));
    assert_eq!(t.gone_at, Some(e.started() + SECOND * 3));
    let rows = e.lake_rows(&id).await;
    assert_eq!(
        rows,
        [
            (e.folder_of(e.started() + ms(400)), false),
            (e.folder_of(deleted + LAG), true)
        ]
    );
    assert_ne!(e.folder_of(deleted), e.folder_of(deleted + LAG));

    // The defaults: gone for good, the truth endpoint says so.
    advance(SECOND * 30).await;
    assert!(!e.found("SENT-1", &id).await && !e.searchable("SENT-1").await);
    assert_eq!(e.lake_rows(&id).await.len(), 2);
    let (status, j) = e.send("GET", "/_truth/fno/SENT-1", &[], Value::Null).await;
    assert_eq!(status, 200, "{j}");
    let unix = |k: &str| j[k].as_f64().unwrap_or_else(|| panic!("{k}: {j}"));
    assert!(
        (unix("gone_at_unix") - unix("deleted_at_unix") - 0.3).abs() < 1e-6,
        "{j}"
    );
    assert!((unix("delete_lag_seconds") - 0.3).abs() < 1e-9, "{j}");
    assert_eq!(
        (&j["delete_dropped"], &j["resurrected"], &j["visible_now"]),
        (&json!(false), &Value::Null, &json!(false))
    );
    let (_, j) = e.send("GET", "/_truth/lake/SENT-1", &[], Value::Null).await;
    assert!(
        j["delete_sink_at"].is_string() && j["gone_at"].is_string(),
        "{j}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dropped_delete_keeps_the_row_for_good() {
    let e = Estate::new(FIXED, &["delete_drop_probability: 1"]).await;
    let id = e.create("SENT-DROP").await;
    e.until(ms(1800)).await;
    e.delete(&id).await;
    advance(Duration::from_secs(600)).await;
    assert!(e.found("SENT-DROP", &id).await && e.searchable("SENT-DROP").await);
    for replica in SERVED.into_iter().chain(["lake"]) {
        let t = e.truth(replica, "SENT-DROP");
        assert!(t.delete_dropped, "{replica}: {t:?}");
        assert!(t.deleted_at.is_some() && t.gone_at.is_none() && t.resurrected.is_none());
    }
    assert_eq!(
        e.lake_rows(&id).await,
        [(e.folder_of(e.started() + LAG), false)]
    );
    let (_, j) = e
        .send("GET", "/_truth/search/SENT-DROP", &[], Value::Null)
        .await;
    assert_eq!(
        (&j["delete_dropped"], &j["gone_at"], &j["visible_now"]),
        (&json!(true), &Value::Null, &json!(true)),
        "{j}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_resurrection_shows_the_row_exactly_inside_its_window() {
    let knobs = [
        "resurrect_probability: 1",
        "resurrect_after: 500ms",
        "resurrect_for: 1s",
    ];
    let e = Estate::new(FIXED, &knobs).await;
    e.until(ms(100)).await;
    let id = e.create("SENT-BACK").await;
    e.until(ms(1800)).await;
    let deleted = Instant::now();
    e.delete(&id).await;
    let gone = deleted + LAG;
    let (from, to) = (gone + ms(500), gone + ms(1500));
    for replica in SERVED {
        let t = e.truth(replica, "SENT-BACK");
        assert_eq!(
            (t.gone_at, t.resurrected),
            (Some(gone), Some((from, to))),
            "{replica}"
        );
    }
    let (mut shown, mut hidden) = (0, 0);
    while Instant::now() < deleted + SECOND * 4 {
        let now = Instant::now();
        let expected = now < gone || (now >= from && now < to);
        assert_eq!(
            e.found("SENT-BACK", &id).await,
            expected,
            "{:?} after the delete",
            now - deleted
        );
        let indexed = now < e.refresh(gone) || (now >= e.refresh(from) && now < e.refresh(to));
        assert_eq!(
            e.searchable("SENT-BACK").await,
            indexed,
            "{:?}",
            now - deleted
        );
        if now >= gone {
            shown += usize::from(expected);
            hidden += usize::from(!expected);
        }
        advance(ms(50)).await;
    }
    assert_eq!(
        (shown, hidden),
        (20, 54),
        "the window and around it were read"
    );
    // The lake writes the row again at 2.6 s (folder 2, after its delete row at 2.1 s) and
    // deletes it again at 3.6 s (folder 3); the truth names the closes of those folders.
    let t = e.truth("lake", "SENT-BACK");
    assert_eq!(
        t.resurrected,
        Some((e.started() + SECOND * 3, e.started() + SECOND * 4))
    );
    let rows = e.lake_rows(&id).await;
    let f = |at: Instant| e.folder_of(at);
    assert_eq!(
        rows,
        [
            (f(e.started() + ms(400)), false),
            (f(gone), true),
            (f(from), false),
            (f(to), true)
        ]
    );
    let (_, j) = e
        .send("GET", "/_truth/fno/SENT-BACK", &[], Value::Null)
        .await;
    let w = &j["resurrected"];
    assert!(
        (w["to_unix"].as_f64().unwrap_or(0.0) - w["from_unix"].as_f64().unwrap_or(0.0) - 1.0).abs()
            < 1e-6,
        "{j}"
    );
}

#[tokio::test(start_paused = true)]
async fn by_default_deletes_follow_their_writes_and_are_never_dropped_or_undone() {
    let e = Estate::new(
        "lag: { distribution: uniform, min: 100ms, max: 900ms }",
        &[],
    )
    .await;
    let mut rows = Vec::new();
    for i in 0..12 {
        let number = format!("SENT-D-{i}");
        let id = e.create(&number).await;
        // Half deleted at once (before they can have arrived), half a little later.
        advance(ms(if i % 2 == 0 { 0 } else { 500 })).await;
        e.delete(&id).await;
        rows.push((number, id));
    }
    let end = Instant::now() + SECOND * 3;
    let mut seen_after_delete = 0;
    while Instant::now() < end {
        let now = Instant::now();
        for (number, id) in &rows {
            // Each replica draws its own lags: each read against its replica's truth.
            for (what, replica, shown) in e.reads(number, id).await {
                let t = e.truth(replica, number);
                assert_eq!(shown, t.visible(now), "{what} {number} at {now:?}: {t:?}");
                seen_after_delete += usize::from(shown && t.deleted_at.is_some_and(|d| now >= d));
            }
        }
        advance(ms(25)).await;
    }
    assert!(
        seen_after_delete > 0,
        "some deleted rows were seen until their gone_at"
    );
    for (number, _) in &rows {
        for replica in SERVED.into_iter().chain(["lake"]) {
            let t = e.truth(replica, number);
            assert!(
                !t.delete_dropped && t.resurrected.is_none(),
                "{replica} {number}: {t:?}"
            );
            assert!(t.gone_at.is_some(), "{replica} {number}: {t:?}");
        }
        let t = e.truth("fno", number);
        assert!(t.gone_at >= t.visible_at, "in order: {t:?}");
        assert!(!t.visible(Instant::now()));
    }
}

#[test]
fn delete_knobs_are_checked_like_the_others() {
    for (knob, key) in [
        (
            "delete_drop_probability: 1.5",
            "replicas.crm2.delete_drop_probability",
        ),
        (
            "resurrect_probability: -0.1",
            "replicas.crm2.resurrect_probability",
        ),
        ("resurrect_for: 0s", "replicas.crm2.resurrect_for"),
    ] {
        let text = SCENARIO
            .replace("    LAG\n", &format!("    {FIXED}\n"))
            .replacen("    KNOBS\n", &format!("    {knob}\n"), 1)
            .replace("    KNOBS\n", "");
        match Scenario::from_yaml(&text) {
            Err(lagwatch_emulator::EmulatorError::Invalid { key: k, .. }) => assert_eq!(k, key),
            other => panic!("{knob}: {other:?}"),
        }
    }
    let s = scenario(FIXED, &["resurrect_probability: 0.5"]);
    let r = &s.replicas["fno"];
    assert_eq!(
        (r.resurrect_after, r.resurrect_for),
        (
            lagwatch::config::Dur::secs(1),
            lagwatch::config::Dur::secs(3)
        )
    );
    assert_eq!(r.delete_drop_probability, 0.0);
}

/// The systems of a `simulated` landscape as `lagwatch run` builds them, and its landscape.
fn simulated(yaml: &str) -> (Vec<System>, Arc<Landscape>) {
    let config = lagwatch_emulator::REGISTRY
        .from_yaml("deletes.yaml", yaml)
        .unwrap_or_else(|e| panic!("{e}"));
    let cx = BuildContext::new(lagwatch::metrics::Metrics::new());
    let systems = ["src", "plain", "dropping", "undoing"]
        .map(|name| {
            let gate = cx.gate(name, config.limits[name]);
            config.systems[name]
                .build(name, &cx, gate)
                .unwrap_or_else(|e| panic!("{}: {}", e.key, e.reason))
        })
        .into();
    (systems, cx.shared.get_or_insert_with(Landscape::new))
}

const SIMULATED: &str = r#"
instance: t
systems:
  src: { kind: simulated, seed: 4, write_latency: 0s, read_latency: 0s }
  plain: { kind: simulated, replica_of: src, read_latency: 0s, lag: { distribution: fixed, value: 2s } }
  dropping:
    kind: simulated
    replica_of: src
    read_latency: 0s
    lag: { distribution: fixed, value: 2s }
    delete_drop_probability: 1
  undoing:
    kind: simulated
    replica_of: src
    read_latency: 0s
    lag: { distribution: fixed, value: 2s }
    resurrect_probability: 1
    resurrect_after: 1s
    resurrect_for: 2s
paths:
  - { source: src, target: plain }
  - { source: src, target: dropping }
  - { source: src, target: undoing }
"#;

#[tokio::test(start_paused = true)]
async fn simulated_systems_delete_with_lag_drops_and_resurrections() {
    let (systems, landscape) = simulated(SIMULATED);
    let source = systems[0].source.clone().expect("source");
    let s = Sentinel::new("t", 1, Utc::now());
    source.write(&s).await.expect("write");
    advance(SECOND * 3).await;
    let deleted = Instant::now();
    source.delete(&s.id).await.expect("delete");
    assert_eq!(source.read(&s.id).await.expect("read"), Lookup::Absent);
    let shows = |i: usize| {
        let target = systems[i].target.clone().expect("target");
        let id = s.id.clone();
        async move {
            matches!(
                target.lookup(&id).await.expect("lookup"),
                Lookup::Present { .. }
            )
        }
    };
    let gone = deleted + SECOND * 2;
    let (from, to) = (gone + SECOND, gone + SECOND * 3);
    let t = |replica: &str| landscape.truth(replica, s.id.key()).expect("truth");
    assert_eq!(
        (t("plain").deleted_at, t("plain").gone_at),
        (Some(deleted), Some(gone))
    );
    assert!(t("dropping").delete_dropped && t("dropping").gone_at.is_none());
    assert_eq!(t("undoing").resurrected, Some((from, to)));
    for (after, plain, dropping, undoing) in [
        (ms(1999), true, true, true),
        (ms(2000), false, true, false),
        (ms(2999), false, true, false),
        (ms(3000), false, true, true),
        (ms(4999), false, true, true),
        (ms(5000), false, true, false),
        (SECOND * 600, false, true, false),
    ] {
        advance((deleted + after).saturating_duration_since(Instant::now())).await;
        assert_eq!(
            [shows(1).await, shows(2).await, shows(3).await],
            [plain, dropping, undoing],
            "{after:?}"
        );
    }
    assert!(landscape.source_keys("src").is_empty());
}

#[test]
fn simulated_delete_knobs_are_checked() {
    for (bad, key) in [
        (
            "delete_drop_probability: 2",
            "systems.dropping.delete_drop_probability",
        ),
        ("resurrect_for: 0s", "systems.undoing.resurrect_for"),
    ] {
        let yaml = SIMULATED
            .replace(
                "delete_drop_probability: 1",
                if key.contains("dropping") {
                    bad
                } else {
                    "delete_drop_probability: 1"
                },
            )
            .replace(
                "resurrect_for: 2s",
                if key.contains("undoing") {
                    bad
                } else {
                    "resurrect_for: 2s"
                },
            );
        let e = lagwatch_emulator::REGISTRY
            .from_yaml("deletes.yaml", &yaml)
            .err()
            .unwrap_or_else(|| panic!("{bad} accepted"));
        assert!(e.to_string().contains(key), "{e}");
    }
}
