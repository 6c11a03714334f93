//! The emulated lake in the table layout (`layout: table`, fact sheet §5.2): `model.json` and
//! `<table>/<partition>.csv` at the container's root; in in-place mode creates are appended and
//! updates and deletes rewrite the file, in append-only mode everything is appended; a row's
//! ground truth `visible_at` is its sink instant; and lagwatch's table cursor finds every
//! sentinel exactly from that instant on, through creates, updates and deletes around it, and
//! no longer from its delete's `gone_at`.
//! Paused tokio time.

use crate::common::{self, entra};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use lagwatch::lake::LocalStore;
use lagwatch::lake::synapse::TableSpec;
use lagwatch::lake::table::TableCursor;
use lagwatch_emulator::{Emulator, EmulatorError, Scenario};
use serde_json::{Value, json};
use tokio::time::{Instant, advance};

const SCENARIO: &str = r#"
credentials:
  - { tenant: contoso, client_id: app-1, client_secret: s3cret }
dataverse:
  crm:
    tables:
      accounts:
        id: accountid
        columns: { name: string, description: string }
lakes:
  inplace: { container: dataverse-contoso-inplace, layout: table, partition: month }
  appendonly: { container: dataverse-contoso-append, layout: table, update_mode: append_only }
replicas:
  inplace:
    source: crm/accounts
    target: { kind: lake, lake: inplace, table: account }
    key: name
    lag: { distribution: fixed, value: 5s }
  appendonly:
    source: crm/accounts
    target: { kind: lake, lake: appendonly, table: account }
    key: name
    lag: { distribution: fixed, value: 5s }
"#;

struct Estate {
    emu: Arc<Emulator>,
    token: String,
    _dir: tempfile::TempDir,
}

async fn send(emu: &Emulator, method: &str, uri: &str, auth: Option<&str>, body: &str) -> Value {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if let Some(t) = auth {
        b = b.header("authorization", format!("Bearer {t}"));
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

impl Estate {
    async fn new(scenario: &str) -> Estate {
        let dir = common::temp_dir("lagwatch-lake-table-");
        let emu = Emulator::with_lake_root(
            Scenario::from_yaml(scenario).unwrap_or_else(|e| panic!("{e}")),
            dir.path(),
        );
        emu.flush_lake().await.expect("lake written");
        let token =
            entra::token_in_process(&emu, "app-1", "s3cret", "https://crm.crm.dynamics.com").await;
        Estate {
            emu,
            token,
            _dir: dir,
        }
    }

    fn container(&self, lake: &str) -> PathBuf {
        self.emu.lake_dir(lake).expect("lake dir")
    }

    async fn create(&self, name: &str, description: &str) -> String {
        let body = json!({"name": name, "description": description}).to_string();
        let req = Request::builder()
            .method("POST")
            .uri("/crm/api/data/v9.2/accounts")
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .header("prefer", "return=representation")
            .body(Body::from(body))
            .expect("request");
        let resp = self.emu.handle(req).await;
        assert!(resp.status().is_success(), "{}", resp.status());
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        let v: Value = serde_json::from_slice(&bytes).expect("row");
        v["accountid"].as_str().expect("id").to_string()
    }

    async fn update(&self, id: &str, description: &str) {
        let uri = format!("/crm/api/data/v9.2/accounts({id})");
        let body = json!({ "description": description }).to_string();
        send(&self.emu, "PATCH", &uri, Some(&self.token), &body).await;
    }

    async fn delete(&self, id: &str) {
        let req = Request::builder()
            .method("DELETE")
            .uri(format!("/crm/api/data/v9.2/accounts({id})"))
            .header("authorization", format!("Bearer {}", self.token))
            .body(Body::empty())
            .expect("request");
        assert_eq!(self.emu.handle(req).await.status(), 204);
    }

    async fn step(&self, d: Duration) {
        advance(d).await;
        self.emu.flush_lake().await.expect("flush");
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn entries(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// `(Id, name, description, IsDelete)` of each row, in file order.
fn rows(model: &Path, csv: &Path) -> Vec<[String; 4]> {
    let m: Value = serde_json::from_str(&read(model)).expect("model.json");
    let cols: Vec<String> = m["entities"][0]["attributes"]
        .as_array()
        .expect("attributes")
        .iter()
        .map(|a| a["name"].as_str().expect("name").to_string())
        .collect();
    let at = |n: &str| cols.iter().position(|c| c == n).expect(n);
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(csv)
        .expect("csv");
    r.records()
        .map(|rec| {
            let rec = rec.expect("record");
            assert_eq!(rec.len(), cols.len());
            ["Id", "name", "description", "IsDelete"].map(|n| rec[at(n)].to_string())
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn in_place_mode_appends_creates_and_rewrites_the_file_for_updates_and_deletes() {
    let e = Estate::new(SCENARIO).await;
    let c = e.container("inplace");
    assert_eq!(entries(&c), ["model.json"], "no Changelog, no folders");
    let a = e.create("SENT-A", "a").await;
    let b = e.create("SENT-B", "b").await;
    let d = e.create("SENT-D", "d").await;
    e.step(Duration::from_millis(4_999)).await;
    assert_eq!(
        entries(&c),
        ["model.json"],
        "nothing before the sink instant"
    );
    e.step(Duration::from_millis(1)).await;
    let month = e.emu.wall_time(Instant::now()).format("%Y-%m").to_string();
    let file = c.join("account").join(format!("{month}.csv"));
    assert_eq!(entries(&c.join("account")), [format!("{month}.csv")]);
    let names = |r: &[[String; 4]]| r.iter().map(|r| r[1].clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&rows(&c.join("model.json"), &file)),
        ["SENT-A", "SENT-B", "SENT-D"]
    );
    // model.json at the root names the partition, by month.
    let m: Value = serde_json::from_str(&read(&c.join("model.json"))).unwrap();
    let entity = &m["entities"][0];
    assert_eq!(entity["partitions"][0]["name"], month.as_str());
    assert!(
        entity["partitions"][0]["location"]
            .as_str()
            .is_some_and(|l| l.ends_with(&format!("/account/{month}.csv")))
    );
    assert!(
        entity["annotations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "Athena:PartitionGranularity" && a["value"] == "Month")
    );
    // The truth: visible when put into the file, no folder.
    let t = e.emu.truth("inplace", "SENT-B").expect("truth");
    assert_eq!(t.visible_at, t.sink_at);
    let j = send(&e.emu, "GET", "/_truth/inplace/SENT-B", None, "").await;
    assert_eq!(j["folder"], Value::Null);
    assert_eq!(j["visible_now"], true);

    // An update replaces the row where it is; a delete removes it; a create is appended.
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let before = inode(&file);
    // Held open so its inode cannot be reused by the rewrites' new files (two rewrites: the
    // second could otherwise get the first one's freed inode back).
    let held = std::fs::File::open(&file).unwrap();
    e.update(&b, "b, updated").await;
    e.delete(&a).await;
    let f = e.create("SENT-F", "f").await;
    e.step(Duration::from_secs(5)).await;
    let got = rows(&c.join("model.json"), &file);
    assert_eq!(names(&got), ["SENT-B", "SENT-D", "SENT-F"]);
    assert_eq!(got[0][0], b);
    assert_eq!(got[0][2], "b, updated");
    assert_eq!(
        (got[1][0].as_str(), got[2][0].as_str()),
        (d.as_str(), f.as_str())
    );
    assert!(
        got.iter().all(|r| r[3].is_empty()),
        "no delete rows in place"
    );
    assert_ne!(inode(&file), before, "rewritten by rename (atomic)");
    drop(held);
    assert_eq!(
        entries(&c.join("account")),
        [format!("{month}.csv")],
        "no temp file left"
    );
    // A create alone is appended: same file, longer.
    let before = (inode(&file), read(&file));
    e.create("SENT-G", "g").await;
    e.step(Duration::from_secs(5)).await;
    assert_eq!(inode(&file), before.0);
    assert!(read(&file).starts_with(&before.1));
}

#[tokio::test(start_paused = true)]
async fn append_only_mode_appends_every_version_and_deletes_as_rows() {
    let e = Estate::new(SCENARIO).await;
    let c = e.container("appendonly");
    let a = e.create("SENT-A", "a").await;
    e.step(Duration::from_secs(6)).await;
    e.update(&a, "a2").await;
    e.step(Duration::from_secs(6)).await;
    e.delete(&a).await;
    e.step(Duration::from_secs(4)).await;
    assert_eq!(
        rows(
            &c.join("model.json"),
            &c.join("account").join(format!(
                "{}.csv",
                e.emu.wall_time(Instant::now()).format("%Y")
            ))
        )
        .len(),
        2,
        "the delete reaches the export after the replica's lag (5s)"
    );
    e.step(Duration::from_secs(1)).await;
    let year = e.emu.wall_time(Instant::now()).format("%Y").to_string();
    let got = rows(
        &c.join("model.json"),
        &c.join("account").join(format!("{year}.csv")),
    );
    let desc: Vec<(&str, &str, &str)> = got
        .iter()
        .map(|r| (r[0].as_str(), r[2].as_str(), r[3].as_str()))
        .collect();
    assert_eq!(
        desc,
        [
            (a.as_str(), "a", ""),
            (a.as_str(), "a2", ""),
            (a.as_str(), "", "True")
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_table_cursor_finds_what_the_emulator_wrote_from_its_visible_at() {
    for lake in ["inplace", "appendonly"] {
        let e = Estate::new(SCENARIO).await;
        let store = LocalStore::new(e.container(lake));
        let mut cursor = TableCursor::new(
            TableSpec {
                table: "account".into(),
                key_column: "name".into(),
                payload_column: Some("description".into()),
                key_prefix: "lagwatch-t-".into(),
            },
            Duration::from_secs(3600),
        );
        // Started before anything was exported: the table's first file is read from its start.
        cursor.scan(&store).await.expect("first scan");
        let payload = "{\"seq\":1}, with \"quotes\"\nand a newline";
        let mut keys = Vec::new();
        let mut business = Vec::new();
        let mut whole_reads = 0;
        for i in 0..12 {
            let key = format!("lagwatch-t-{i}");
            e.create(&key, payload).await;
            keys.push(key);
            // Business traffic around the sentinels: creates, updates, deletes (rewrites).
            business.push(e.create(&format!("business-{i}"), "x").await);
            if i % 3 == 1 {
                e.update(&business[i - 1], "changed, and longer than before")
                    .await;
            }
            if i % 4 == 3 {
                e.delete(&business[i - 2]).await;
            }
            for _ in 0..3 {
                e.step(Duration::from_secs(1)).await;
                let scan = cursor.scan(&store).await.expect("scan");
                whole_reads += scan.whole_reads;
                let now = Instant::now();
                for key in &keys {
                    let t = e.emu.truth(lake, key).expect("truth");
                    let visible = t.visible_at.expect("visible");
                    match cursor.found(key) {
                        Some(f) => {
                            assert!(now >= visible, "{lake}: {key} read before it was written");
                            assert_eq!(f.payload.as_deref(), Some(payload));
                            let sink = e.emu.wall_time(t.sink_at.expect("sink"));
                            let got = f.sink_at.expect("SinkCreatedOn");
                            assert!((got - sink).num_microseconds().unwrap_or(i64::MAX).abs() < 1);
                        }
                        None => assert!(now < visible, "{lake}: {key} missing after {visible:?}"),
                    }
                }
                assert!(scan.files_read <= 1, "{scan:?}");
            }
        }
        e.step(Duration::from_secs(6)).await;
        whole_reads += cursor.scan(&store).await.expect("scan").whole_reads;
        assert!(keys.iter().all(|k| cursor.found(k).is_some()), "{lake}");
        // Appends are read from where the cursor stopped; only rewrites are read whole.
        match lake {
            "appendonly" => assert_eq!(whole_reads, 1, "only the new file"),
            _ => assert!(
                whole_reads >= 1 + 4 + 2,
                "{whole_reads}: the new file and rewrites"
            ),
        }
        // Deleting sentinels (lagwatch's cleanup) rewrites the file or appends delete rows:
        // each is found until its truth's gone_at and not from then on; the others stay.
        for key in &keys[..2] {
            let id = e.emu.truth(lake, key).expect("truth").record_id.to_string();
            e.delete(&id).await;
        }
        for _ in 0..7 {
            e.step(Duration::from_secs(1)).await;
            cursor.scan(&store).await.expect("scan");
            let now = Instant::now();
            for key in &keys[..2] {
                let gone = e.emu.truth(lake, key).expect("truth").gone_at;
                let gone = gone.expect("the delete arrives");
                assert_eq!(cursor.found(key).is_none(), now >= gone, "{lake}: {key}");
            }
        }
        assert!(
            keys[..2].iter().all(|k| cursor.found(k).is_none()),
            "{lake}"
        );
        assert!(
            keys[2..].iter().all(|k| cursor.found(k).is_some()),
            "{lake}"
        );
    }
}

#[test]
fn table_layout_mistakes_name_the_key() {
    assert!(Scenario::from_yaml(SCENARIO).is_ok());
    for (from, to, want) in [
        (
            "layout: table, partition: month",
            "partition: month",
            "lakes.inplace.partition",
        ),
        (
            "layout: table, update_mode: append_only",
            "update_mode: append_only",
            "lakes.appendonly.update_mode",
        ),
        (
            "layout: table, partition: month",
            "layout: tables",
            "lakes.inplace.layout",
        ),
        (
            "partition: month",
            "partition: week",
            "lakes.inplace.partition",
        ),
        (
            "    lag: { distribution: fixed, value: 5s }\n  appendonly:",
            "    lag: { distribution: fixed, value: 5s }\n    folder_interval: 30s\n  appendonly:",
            "replicas.inplace.folder_interval",
        ),
    ] {
        assert!(SCENARIO.contains(from), "{from}");
        let yaml = SCENARIO.replacen(from, to, 1);
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
