//! The Synapse Link CSV target (incremental update folders) on a local folder laid out as the
//! export documents it (fact sheet §5.3, §5.4): sentinels found only in complete folders, the
//! folder being written never read, cost per poll bounded by what changed, garbage a typed
//! error.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::lake::{MODEL, csv_row as row};
use lagwatch::connector::{ConnectorError, Lookup, Target};
use lagwatch::lake::synapse::{Cursor, TableSpec};
use lagwatch::lake::{LocalStore, Metered};
use lagwatch::sentinel::SentinelId;
use lagwatch::systems::synapse_link_csv::SynapseLinkCsv;
use prometheus::{Gauge, IntCounter};

struct Lake {
    root: PathBuf,
}

impl Lake {
    fn new() -> Lake {
        let root = std::env::temp_dir().join(format!(
            "lagwatch-lake-test-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(root.join("Changelog")).unwrap();
        Lake { root }
    }

    fn open(&self, folder: &str) {
        std::fs::create_dir_all(self.root.join(folder)).unwrap();
        std::fs::write(self.root.join(folder).join("model.json"), MODEL).unwrap();
        std::fs::write(self.root.join("Changelog/changelog.info"), folder).unwrap();
    }

    fn append(&self, folder: &str, csv: &str) {
        let dir = self.root.join(folder).join("account");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("2026.csv");
        let mut old = std::fs::read_to_string(&path).unwrap_or_default();
        old.push_str(csv);
        std::fs::write(path, old).unwrap();
    }

    fn bytes(&self, rel: &str) -> u64 {
        std::fs::metadata(self.root.join(rel)).unwrap().len()
    }
}

impl Drop for Lake {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

struct Probe {
    target: SynapseLinkCsv,
    listed: IntCounter,
    read: IntCounter,
    folder: Gauge,
}

fn target(root: &Path, since: DateTime<Utc>) -> Probe {
    let listed = IntCounter::new("listed", "test").unwrap();
    let read = IntCounter::new("read", "test").unwrap();
    let folder = Gauge::new("folder", "test").unwrap();
    let cursor = Cursor::new(
        TableSpec {
            table: "account".into(),
            key_column: "name".into(),
            payload_column: Some("description".into()),
            key_prefix: "lagwatch-".into(),
        },
        since,
        Duration::from_secs(3600),
    );
    let store = Metered::new(LocalStore::new(root), listed.clone(), read.clone());
    Probe {
        target: SynapseLinkCsv::new(Box::new(store), cursor, folder.clone()),
        listed,
        read,
        folder,
    }
}

fn long_ago() -> DateTime<Utc> {
    "2020-01-01T00:00:00Z".parse().unwrap()
}

const F1: &str = "2026-11-02T10.15.00.000Z";
const F2: &str = "2026-11-02T10.20.00.000Z";
const F3: &str = "2026-11-02T10.25.00.000Z";

#[tokio::test]
async fn a_sentinel_counts_only_once_its_folder_is_complete() {
    let lake = Lake::new();
    let id = SentinelId::new("lake");
    let payload = "{\"seq\":1, \"note\":\"a \"\"quoted\"\", multi\nline value\"}";
    lake.open(F1);
    lake.append(F1, &row(id.key(), payload));
    let p = target(&lake.root, long_ago());
    // F1 is the folder being written: never read, even though the row is in it.
    assert_eq!(p.target.lookup(&id).await.unwrap(), Lookup::Absent);
    assert_eq!(p.folder.get(), 0.0, "no complete folder yet");
    lake.open(F2);
    assert_eq!(
        p.target.lookup(&id).await.unwrap(),
        Lookup::Present {
            payload: Some(payload.to_string())
        }
    );
    let f1: DateTime<Utc> = "2026-11-02T10:15:00Z".parse().unwrap();
    assert_eq!(p.folder.get(), f1.timestamp() as f64);
    // Another instance's and non-sentinel rows are ignored; an unknown key stays absent.
    assert_eq!(
        p.target.lookup(&SentinelId::new("lake")).await.unwrap(),
        Lookup::Absent
    );
}

#[tokio::test]
async fn a_poll_reads_only_what_changed_however_big_the_lake() {
    let lake = Lake::new();
    lake.open(F1);
    let mut big = String::new();
    for i in 0..100_000 {
        big.push_str(&row(&format!("business-row-{i}"), "x"));
    }
    lake.append(F1, &big);
    lake.open(F2);
    let p = target(&lake.root, long_ago());
    let id = SentinelId::new("lake");
    assert_eq!(p.target.lookup(&id).await.unwrap(), Lookup::Absent);
    assert!(
        p.read.get() > 10_000_000,
        "the first scan read the big folder"
    );

    // Nothing completed: one read of changelog.info, no listing.
    let (listed, read) = (p.listed.get(), p.read.get());
    assert_eq!(p.target.lookup(&id).await.unwrap(), Lookup::Absent);
    assert_eq!(p.listed.get(), listed);
    assert_eq!(p.read.get() - read, lake.bytes("Changelog/changelog.info"));

    // One new increment: read that folder's files and nothing of the 100,000 rows.
    lake.append(F2, &row(id.key(), "p"));
    lake.open(F3);
    let (listed, read) = (p.listed.get(), p.read.get());
    assert!(matches!(
        p.target.lookup(&id).await.unwrap(),
        Lookup::Present { .. }
    ));
    let expected = lake.bytes("Changelog/changelog.info")
        + lake.bytes(&format!("{F2}/model.json"))
        + lake.bytes(&format!("{F2}/account/2026.csv"));
    assert_eq!(p.read.get() - read, expected);
    // The root (Changelog + 3 folders) and the new folder's table directory (1 file).
    assert_eq!(p.listed.get() - listed, 4 + 1);
}

#[tokio::test]
async fn folders_closed_before_start_are_not_read_and_deleted_folders_are_forgotten() {
    let lake = Lake::new();
    let id = SentinelId::new("lake");
    lake.open(F1);
    lake.append(F1, &row(id.key(), "old"));
    lake.open(F2);
    // Started after F1 closed (at F2's time): F1 cannot hold a sentinel of this run.
    let started: DateTime<Utc> = "2026-11-02T10:21:00Z".parse().unwrap();
    let p = target(&lake.root, started);
    assert_eq!(p.target.lookup(&id).await.unwrap(), Lookup::Absent);
    assert_eq!(p.read.get(), lake.bytes("Changelog/changelog.info"));
    // The export deletes F1 after a day; scanning goes on.
    std::fs::remove_dir_all(lake.root.join(F1)).unwrap();
    lake.append(F2, &row(id.key(), "new"));
    lake.open(F3);
    assert_eq!(
        p.target.lookup(&id).await.unwrap(),
        Lookup::Present {
            payload: Some("new".into())
        }
    );
}

#[tokio::test]
async fn garbage_in_the_lake_is_a_typed_error_and_the_scan_is_retried() {
    let id = SentinelId::new("lake");
    type Spoil = fn(&Lake);
    let cases: &[(&str, Spoil)] = &[
        ("changelog.info", |l| {
            std::fs::write(l.root.join("Changelog/changelog.info"), "garbage").unwrap()
        }),
        ("model.json", |l| {
            std::fs::write(l.root.join(F1).join("model.json"), "{\"entities\":7}").unwrap()
        }),
        ("2026.csv", |l| l.append(F1, "only,three,fields\n")),
        ("2026.csv", |l| l.append(F1, "\"unterminated,quote\n")),
    ];
    for (file, spoil) in cases {
        let lake = Lake::new();
        lake.open(F1);
        lake.append(F1, &row(id.key(), "p"));
        lake.open(F2);
        spoil(&lake);
        let p = target(&lake.root, long_ago());
        match p.target.lookup(&id).await {
            Err(ConnectorError::BadResponse { detail, .. }) => {
                assert!(detail.contains(file), "{file}: {detail}")
            }
            other => panic!("{file}: {other:?}"),
        }
    }
    // Missing changelog: not an incremental export.
    let lake = Lake::new();
    let p = target(&lake.root, long_ago());
    assert!(matches!(
        p.target.lookup(&id).await,
        Err(ConnectorError::BadResponse { .. })
    ));
}
