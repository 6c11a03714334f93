//! The emulated analytics lake (Synapse Link incremental update folders) on disk: folders roll
//! on schedule, `changelog.info` names the open folder, a replicated row lands in the folder
//! open when it reached the export, in `model.json` column order and RFC 4180 quoting, and the
//! ground truth's `visible_at` is the instant that folder closed. Paused tokio time, except
//! where the background task and the `emulate` command are checked in real time.

use crate::common::entra;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::Request;
use lagwatch_emulator::lake::{export_time, folder_name};
use lagwatch_emulator::{Emulator, EmulatorError, EmulatorOptions, LakeSink, Scenario};
use serde_json::{Value, json};
use tokio::time::{Instant, advance};

const SCENARIO: &str = r#"
seed: 5
credentials:
  - { tenant: contoso, client_id: app-1, client_secret: s3cret }
dataverse:
  crm:
    tables:
      accounts:
        id: accountid
        columns: { name: string, accountnumber: string, customertypecode: int, description: string }
lakes:
  dl: { container: dataverse-contoso-unq1234 }
  stalled: { container: dataverse-contoso-stalled }
  stopped: { container: dataverse-contoso-stopped }
replicas:
  lake:
    source: crm/accounts
    target: { kind: lake, lake: dl, table: account }
    key: name
    lag: { distribution: fixed, value: 10s }
    folder_interval: 30s
  stalled:
    source: crm/accounts
    target: { kind: lake, lake: stalled, table: account }
    key: name
    lag: { distribution: fixed, value: 1s }
    folder_interval: 30s
    outages: [ { start: 0s, duration: 70s, mode: stall } ]
  stopped:
    source: crm/accounts
    target: { kind: lake, lake: stopped, table: account }
    key: name
    lag: { distribution: fixed, value: 1s }
    folder_interval: 30s
    state: stopped
"#;

const INTERVAL: Duration = Duration::from_secs(30);

/// A directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("lagwatch-{tag}-{}", uuid::Uuid::now_v7()));
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn send(emu: &Emulator, method: &str, uri: &str, auth: Option<&str>, body: &str) -> Value {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "emulator.test")
        .header("content-type", "application/json");
    if let Some(t) = auth {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    if method == "POST" && uri.contains("/api/data/") {
        b = b.header("prefer", "return=representation");
    }
    let resp = emu
        .handle(b.body(Body::from(body.to_string())).expect("request"))
        .await;
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    assert!(status < 300, "{method} {uri}: {status} {v}");
    v
}

struct Estate {
    emu: Arc<Emulator>,
    token: String,
    dir: TempDir,
}

impl Estate {
    async fn new() -> Estate {
        let dir = TempDir::new("lake");
        let emu = Emulator::with_lake_root(
            Scenario::from_yaml(SCENARIO).unwrap_or_else(|e| panic!("{e}")),
            &dir.0,
        );
        emu.flush_lake().await.expect("lake written");
        let token =
            entra::token_in_process(&emu, "app-1", "s3cret", "https://crm.crm.dynamics.com").await;
        Estate { emu, token, dir }
    }

    fn container(&self, lake: &str) -> PathBuf {
        self.emu.lake_dir(lake).expect("lake dir")
    }

    fn started(&self) -> Instant {
        self.emu.landscape().started_at()
    }

    /// Name of folder `k` (opened at start + k × 30 s).
    fn folder(&self, k: u32) -> String {
        folder_name(self.emu.wall_time(self.started() + INTERVAL * k))
    }

    async fn create(&self, name: &str, description: &str) -> (String, Instant) {
        let at = Instant::now();
        let body = json!({"name": name, "accountnumber": "A-1", "customertypecode": 3, "description": description});
        let r = send(
            &self.emu,
            "POST",
            "/crm/api/data/v9.2/accounts",
            Some(&self.token),
            &body.to_string(),
        )
        .await;
        (r["accountid"].as_str().expect("id").to_string(), at)
    }

    async fn step(&self, d: Duration) {
        advance(d).await;
        self.emu.flush_lake().await.expect("flush");
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn changelog(container: &Path) -> String {
    read(&container.join("Changelog/changelog.info"))
}

/// Sorted names of the timestamped folders of a container.
fn folders(container: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(container)
        .expect("container")
        .map(|e| e.expect("entry"))
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "Changelog")
        .collect();
    out.sort();
    out
}

/// Entries of a folder (names).
fn entries(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// Attribute names of `table` in a `model.json`.
fn columns(model: &Path, table: &str) -> Vec<String> {
    let m: Value = serde_json::from_str(&read(model)).expect("model.json is JSON");
    assert_eq!(m["name"], "cdm");
    assert_eq!(m["version"], "1.0");
    let e = m["entities"]
        .as_array()
        .expect("entities")
        .iter()
        .find(|e| e["name"] == table)
        .unwrap_or_else(|| panic!("{table} in {}", model.display()));
    assert_eq!(e["$type"], "LocalEntity");
    e["attributes"]
        .as_array()
        .expect("attributes")
        .iter()
        .map(|a| a["name"].as_str().expect("name").to_string())
        .collect()
}

/// RFC 4180 records (no header).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        field.is_empty() && row.is_empty(),
        "last row ends with a newline"
    );
    rows
}

#[tokio::test(start_paused = true)]
async fn folders_roll_on_schedule_and_changelog_names_the_open_folder() {
    let e = Estate::new().await;
    let c = e.container("dl");
    assert!(c.starts_with(&e.dir.0));
    assert_eq!(changelog(&c), e.folder(0));
    assert_eq!(folders(&c), [e.folder(0)]);
    assert!(c.join("model.json").is_file(), "root manifest");
    assert_eq!(entries(&c.join(e.folder(0))), ["model.json"]);
    assert_eq!(
        columns(&c.join(e.folder(0)).join("model.json"), "account")[..3],
        ["Id", "SinkCreatedOn", "SinkModifiedOn"]
    );

    e.step(INTERVAL - Duration::from_millis(1)).await;
    assert_eq!(changelog(&c), e.folder(0), "not before the interval");
    assert_eq!(folders(&c).len(), 1);
    e.step(Duration::from_millis(1)).await;
    assert_eq!(changelog(&c), e.folder(1));
    e.step(INTERVAL * 3).await;
    assert_eq!(changelog(&c), e.folder(4));
    let want: Vec<String> = (0..=4).map(|k| e.folder(k)).collect();
    assert_eq!(folders(&c), want);
    // The names are 30 s apart and use '.' as time separator.
    assert!(want[1].contains('T') && !want[1].contains(':') && want[1].ends_with('Z'));
    // Empty intervals: only a model.json, no table folders, no temp files left behind.
    for f in &want {
        assert_eq!(entries(&c.join(f)), ["model.json"], "{f}");
    }
    assert_eq!(entries(&c.join("Changelog")), ["changelog.info"]);
    // Every lake rolls, whether rows reach it or not.
    assert_eq!(changelog(&e.container("stopped")), e.folder(4));
}

#[tokio::test(start_paused = true)]
async fn a_row_lands_in_its_folder_in_column_order_with_quoting() {
    let e = Estate::new().await;
    let c = e.container("dl");
    e.step(Duration::from_secs(35)).await; // folder 1 is open: [30 s, 60 s)
    let payload = "a, \"quoted\" value\nsecond line";
    let (id, at) = e.create("SENT-ROW-1", payload).await;

    // After the lag the row is appended to the open folder, which a reader must not read yet.
    e.step(Duration::from_secs(10)).await;
    assert_eq!(changelog(&c), e.folder(1));
    let year = e.emu.wall_time(at).format("%Y").to_string();
    let csv_path = c
        .join(e.folder(1))
        .join("account")
        .join(format!("{year}.csv"));
    let text = read(&csv_path);
    assert!(
        text.contains("\"a, \"\"quoted\"\" value\nsecond line\""),
        "RFC 4180 quoting: {text}"
    );
    let cols = columns(&c.join(e.folder(1)).join("model.json"), "account");
    assert_eq!(
        cols,
        [
            "Id",
            "SinkCreatedOn",
            "SinkModifiedOn",
            "accountnumber",
            "customertypecode",
            "description",
            "name",
            "accountid",
            "createdon",
            "modifiedon",
            "versionnumber",
            "IsDelete"
        ]
    );
    let rows = parse_csv(&text);
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.len(), cols.len());
    let field = |name: &str| row[cols.iter().position(|c| c == name).expect(name)].as_str();
    let sink = at + Duration::from_secs(10);
    assert_eq!(field("Id"), id);
    assert_eq!(field("accountid"), id);
    assert_eq!(field("name"), "SENT-ROW-1");
    assert_eq!(field("description"), payload);
    assert_eq!(field("customertypecode"), "3");
    assert_eq!(field("SinkCreatedOn"), export_time(e.emu.wall_time(sink)));
    assert_eq!(field("SinkModifiedOn"), field("SinkCreatedOn"));
    assert!(
        field("createdon").ends_with("+00:00"),
        "{}",
        field("createdon")
    );
    assert!(field("versionnumber").parse::<u64>().is_ok());
    assert_eq!(field("IsDelete"), "");

    // When the folder closes the next one opens without table files, and the closed folder's
    // manifest lists its partition.
    e.step(Duration::from_secs(15)).await; // 60 s
    assert_eq!(changelog(&c), e.folder(2));
    assert_eq!(entries(&c.join(e.folder(2))), ["model.json"]);
    let m: Value = serde_json::from_str(&read(&c.join(e.folder(1)).join("model.json"))).unwrap();
    let partitions = &m["entities"][0]["partitions"];
    assert_eq!(partitions[0]["name"], year.as_str());
    assert!(
        partitions[0]["location"].as_str().is_some_and(
            |l| l.starts_with("file:///") && l.ends_with(&format!("/account/{year}.csv"))
        )
    );
    assert_eq!(read(&csv_path), text, "a closed folder never changes");

    // Ground truth: visible when the folder closed, appended at the sink instant.
    let t = e.emu.truth("lake", "SENT-ROW-1").expect("truth");
    assert_eq!(t.committed_at, at);
    assert_eq!(t.sink_at, Some(sink));
    assert_eq!(t.visible_at, Some(e.started() + INTERVAL * 2));
    assert_eq!(t.lag(), Some(e.started() + INTERVAL * 2 - at));
    let j = send(&e.emu, "GET", "/_truth/lake/SENT-ROW-1", None, "").await;
    assert_eq!(j["folder"], e.folder(1));
    assert_eq!(j["visible_now"], true);
    assert!(j["sink_at"].is_string() && j["sink_at_unix"].is_number());
    assert!(j["visible_at_unix"].as_f64() > j["sink_at_unix"].as_f64());
    assert_eq!(j["record_id"], id.as_str());
}

#[tokio::test(start_paused = true)]
async fn visible_at_is_the_close_of_the_folder_holding_the_row() {
    let e = Estate::new().await;
    let c = e.container("dl");
    // Commits spread over several folders; each row sinks 10 s later.
    let mut made = Vec::new();
    for (i, gap) in [3u64, 14, 9, 21, 1, 17].iter().enumerate() {
        e.step(Duration::from_secs(*gap)).await;
        let name = format!("SENT-SPREAD-{i}");
        let (id, _) = e.create(&name, "x").await;
        made.push((name, id));
    }
    e.step(Duration::from_secs(120)).await;
    for (name, id) in &made {
        let t = e.emu.truth("lake", name).expect("truth");
        let sink = t.sink_at.expect("sink_at");
        let visible = t.visible_at.expect("visible_at");
        let since = sink - e.started();
        let k = (since.as_nanos() / INTERVAL.as_nanos()) as u32;
        assert_eq!(visible, e.started() + INTERVAL * (k + 1), "{name}");
        // The row is in folder k and nowhere else.
        let holders: Vec<String> = folders(&c)
            .into_iter()
            .filter(|f| {
                let dir = c.join(f).join("account");
                dir.is_dir()
                    && entries(&dir)
                        .iter()
                        .any(|file| read(&dir.join(file)).contains(id.as_str()))
            })
            .collect();
        assert_eq!(holders, [e.folder(k)], "{name}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_row_is_unreadable_until_its_folder_closes() {
    let e = Estate::new().await;
    let c = e.container("dl");
    e.step(Duration::from_secs(5)).await;
    let (id, _) = e.create("SENT-EDGE-1", "x").await;
    let t = e.emu.truth("lake", "SENT-EDGE-1").expect("truth");
    let visible = t.visible_at.expect("visible");
    let to_edge = visible - Instant::now() - Duration::from_millis(1);
    e.step(to_edge).await;
    // Just before the close, changelog.info still names the row's folder.
    let folder = changelog(&c);
    assert!(
        read(&c.join(&folder).join("account").join(format!(
            "{}.csv",
            e.emu.wall_time(Instant::now()).format("%Y")
        )))
        .contains(&id)
    );
    e.step(Duration::from_millis(1)).await;
    assert_ne!(changelog(&c), folder, "closed exactly at visible_at");
    assert!(folder < changelog(&c));
}

#[tokio::test(start_paused = true)]
async fn stalls_delay_rows_and_stopped_exports_drop_them() {
    let e = Estate::new().await;
    e.create("SENT-STALL-1", "x").await;
    e.step(Duration::from_secs(100)).await;

    // The stall (0-70 s) holds the row back until it ends: folder 2 [60 s, 90 s).
    let t = e.emu.truth("stalled", "SENT-STALL-1").expect("truth");
    assert_eq!(t.sink_at, Some(e.started() + Duration::from_secs(70)));
    assert_eq!(t.visible_at, Some(e.started() + INTERVAL * 3));
    assert!(!t.dropped);
    let c = e.container("stalled");
    for k in 0..2 {
        assert_eq!(entries(&c.join(e.folder(k))), ["model.json"]);
    }
    assert!(
        c.join(e.folder(2)).join("account").is_dir(),
        "in the folder open when the stall ended"
    );

    // A stopped export never writes the row.
    let t = e.emu.truth("stopped", "SENT-STALL-1").expect("truth");
    assert!(t.dropped);
    assert_eq!((t.visible_at, t.sink_at), (None, None));
    let c = e.container("stopped");
    for f in folders(&c) {
        assert_eq!(entries(&c.join(&f)), ["model.json"], "{f}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_delete_appends_a_delete_row_once_exported() {
    let e = Estate::new().await;
    let c = e.container("dl");
    let (exported, _) = e.create("SENT-DEL-1", "x").await;
    e.step(Duration::from_secs(40)).await; // exported at 10 s (folder 0), folder 1 open
    let (unexported, _) = e.create("SENT-DEL-2", "x").await;
    for id in [&exported, &unexported] {
        let r = Request::builder()
            .method("DELETE")
            .uri(format!("/crm/api/data/v9.2/accounts({id})"))
            .header("authorization", format!("Bearer {}", e.token))
            .body(Body::empty())
            .expect("request");
        assert_eq!(e.emu.handle(r).await.status(), 204);
    }
    e.step(Duration::from_secs(60)).await;
    let dir = c.join(e.folder(1)).join("account");
    let rows: Vec<Vec<String>> = entries(&dir)
        .iter()
        .flat_map(|f| parse_csv(&read(&dir.join(f))))
        .collect();
    let cols = columns(&c.join(e.folder(1)).join("model.json"), "account");
    let at = |name: &str| cols.iter().position(|c| c == name).expect(name);
    assert_eq!(
        rows.len(),
        1,
        "only the exported row gets a delete row: {rows:?}"
    );
    assert_eq!(rows[0][at("Id")], exported);
    assert_eq!(rows[0][at("IsDelete")], "True");
    assert_eq!(rows[0][at("name")], "");
    // The deleted-before-export row never shows up anywhere.
    for f in folders(&c) {
        let dir = c.join(&f).join("account");
        if dir.is_dir() {
            for file in entries(&dir) {
                assert!(!read(&dir.join(file)).contains(&unexported), "{f}");
            }
        }
    }
}

/// A storage that always fails.
struct Broken;

#[async_trait]
impl LakeSink for Broken {
    async fn create_dir(&self, _: &str) -> io::Result<()> {
        Err(io::Error::other("disk on fire"))
    }
    async fn write(&self, _: &str, _: &[u8]) -> io::Result<()> {
        Err(io::Error::other("disk on fire"))
    }
    async fn append(&self, _: &str, _: &[u8]) -> io::Result<()> {
        Err(io::Error::other("disk on fire"))
    }
    async fn rename(&self, _: &str, _: &str) -> io::Result<()> {
        Err(io::Error::other("disk on fire"))
    }
    async fn delete(&self, _: &str) -> io::Result<()> {
        Err(io::Error::other("disk on fire"))
    }
    fn url(&self, path: &str) -> String {
        format!("broken:///{path}")
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_storage_is_an_error_not_a_panic() {
    let emu = Emulator::with_options(
        Scenario::from_yaml(SCENARIO).unwrap_or_else(|e| panic!("{e}")),
        EmulatorOptions {
            lake_sink: Some(Arc::new(Broken)),
            ..EmulatorOptions::default()
        },
    );
    assert!(emu.lake_root().is_none());
    let err = emu.flush_lake().await.expect_err("storage fails");
    assert!(err.to_string().contains("disk on fire"));
    advance(Duration::from_secs(45)).await;
    // Requests are still served.
    let v = send(&emu, "GET", "/", None, "").await;
    assert_eq!(v["lakes"][0]["container"], "dataverse-contoso-unq1234");
    // Truth does not depend on storage.
    assert!(emu.truth("lake", "nothing").is_none());
}

#[tokio::test]
async fn the_background_task_rolls_folders_in_real_time() {
    let dir = TempDir::new("lake-rt");
    let yaml = SCENARIO.replace("folder_interval: 30s", "folder_interval: 1s");
    let emu = Emulator::with_lake_root(
        Scenario::from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}")),
        &dir.0,
    );
    let c = emu.lake_dir("dl").expect("dir");
    // No request and no flush: the task alone writes and closes folders.
    // A folder exists (with its model.json) before changelog.info names it, never after.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if c.join("Changelog/changelog.info").is_file() {
            let open = changelog(&c);
            let names = folders(&c);
            assert!(names.contains(&open), "{open} exists");
            assert!(c.join(&open).join("model.json").is_file());
            assert!(names.iter().filter(|n| **n > open).count() <= 1);
            if names.iter().filter(|n| **n < open).count() >= 2 {
                break;
            }
        }
        assert!(std::time::Instant::now() < deadline, "folders did not roll");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn emulate_writes_the_lake_into_lake_dir() {
    let dir = TempDir::new("lake-cli");
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/scenarios/lake.yaml");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lagwatch"))
        .args(["emulate", "--listen", "127.0.0.1:0", "--scenario"])
        .arg(&scenario)
        .arg("--lake-dir")
        .arg(&dir.0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("lagwatch runs");
    let changelog = dir
        .0
        .join("dataverse-contoso-unq1234/Changelog/changelog.info");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !changelog.is_file() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let found = changelog.is_file();
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(found, "no changelog.info; stdout: {stdout}");
    assert!(
        stdout.contains(&format!("writing lakes under {}", dir.0.display())),
        "{stdout}"
    );
    let open = std::fs::read_to_string(&changelog).expect("changelog");
    assert!(
        dir.0
            .join("dataverse-contoso-unq1234")
            .join(&open)
            .join("model.json")
            .is_file()
    );
}

const BASE: &str = r#"
dataverse:
  crm:
    tables:
      accounts: { columns: { name: string, description: string } }
lakes:
  dl: { container: dataverse-contoso-unq1234 }
replicas:
  lake:
    source: crm/accounts
    target: { kind: lake, lake: dl, table: account }
    key: name
    lag: { distribution: fixed, value: 1s }
    folder_interval: 30s
"#;

#[test]
fn lake_mistakes_name_the_key() {
    assert!(Scenario::from_yaml(BASE).is_ok());
    let second = "    folder_interval: 30s\n  second:\n    source: crm/accounts\n    key: name\n    lag: { distribution: fixed, value: 1s }\n";
    for (from, to, want) in [
        (
            "{ container: dataverse-contoso-unq1234 }",
            "{ container: x, region: west }",
            "lakes.dl.region",
        ),
        (
            "{ container: dataverse-contoso-unq1234 }",
            "{}",
            "lakes.dl.container",
        ),
        (
            "dataverse-contoso-unq1234",
            "Dataverse_Contoso",
            "lakes.dl.container",
        ),
        ("lake: dl,", "lake: dw,", "replicas.lake.target.lake"),
        (
            "table: account }",
            "table: \"a/b\" }",
            "replicas.lake.target.table",
        ),
        (
            "folder_interval: 30s",
            "folder_interval: 5 mins",
            "replicas.lake.folder_interval",
        ),
        (
            "folder_interval: 30s",
            "folder_interval: 10ms",
            "replicas.lake.folder_interval",
        ),
        (
            "    folder_interval: 30s\n",
            "    folder_interval: 30s\n    map: { name: name }\n",
            "replicas.lake.map",
        ),
        (
            "    folder_interval: 30s\n",
            "    folder_interval: 30s\n    transform: { name: uppercase }\n",
            "replicas.lake.transform.name",
        ),
        (
            "    folder_interval: 30s\n",
            "    folder_interval: 30s\n    flap_probability: 0.5\n",
            "replicas.lake.flap_probability",
        ),
        (
            "    folder_interval: 30s\n",
            "    folder_interval: 30s\n    outages: [ { start: 1m, duration: 1m, mode: stall }, { start: 1m, duration: 1m, mode: unavailable } ]\n",
            "replicas.lake.outages[1].mode",
        ),
        (
            "    folder_interval: 30s\n",
            &format!(
                "{second}    target: {{ kind: lake, lake: dl, table: contact }}\n    folder_interval: 1m\n"
            ),
            "replicas.second.folder_interval",
        ),
        (
            "    folder_interval: 30s\n",
            &format!("{second}    target: {{ kind: lake, lake: dl, table: account }}\n"),
            "replicas.second.target.table",
        ),
        (
            "    folder_interval: 30s\n",
            &format!(
                "{second}    target: {{ kind: dataverse, env: crm, table: accounts }}\n    folder_interval: 1m\n"
            ),
            "replicas.second.folder_interval",
        ),
        (
            "  dl: { container: dataverse-contoso-unq1234 }\n",
            "  dl: { container: dataverse-contoso-unq1234 }\n  dl2: { container: dataverse-contoso-unq1234 }\n",
            "lakes.dl2.container",
        ),
        (
            "description: string",
            "description: string, IsDelete: bool",
            "replicas.lake.source",
        ),
    ] {
        assert!(BASE.contains(from), "{from}");
        let yaml = BASE.replacen(from, to, 1);
        match Scenario::from_yaml(&yaml) {
            Err(EmulatorError::Invalid { key, reason }) => {
                assert!(key.starts_with(want), "{want}: got {key}: {reason}");
                assert!(!reason.is_empty());
            }
            Err(e) => panic!("{want}: not a key error: {e}"),
            Ok(_) => panic!("{want}: accepted:\n{yaml}"),
        }
    }
}
