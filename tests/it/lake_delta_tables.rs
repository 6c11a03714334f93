//! The `delta` reader against Delta tables it did not write: tables written by delta-rs (the
//! reference implementation: its checkpoints, its OPTIMIZE output in zstd, its expired log)
//! and tables written by the emulator's `DeltaWriter` step by step, so the cursor can be
//! caught between commits: a sentinel compacted, checkpointed, its log expired and its file
//! vacuumed while lagwatch was not looking is still found, through the checkpoint.
//!
//! delta-rs comes from `.tools/pydelta` (scripts/install-test-tools); without it those tests
//! skip, unless `LAGWATCH_REQUIRE_TOOLS=1`.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::delta::{ReferenceSpec, lake_cells, lake_schema, lake_sentinel_cells, reference_table};
use lagwatch::connector::{Lookup, Target};
use lagwatch::lake::delta::{DeltaCursor, DeltaSpec};
use lagwatch::lake::{LocalStore, Metered};
use lagwatch::sentinel::SentinelId;
use lagwatch::systems::delta::DeltaTarget;
use lagwatch_emulator::LocalDirSink;
use lagwatch_emulator::delta::DeltaWriter;
use prometheus::{Gauge, IntCounter};

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        Scratch(std::env::temp_dir().join(format!(
            "lagwatch-delta-tables-{tag}-{}",
            uuid::Uuid::now_v7()
        )))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Probe {
    target: DeltaTarget,
    read: IntCounter,
    listed: IntCounter,
}

fn probe(table: &Path, since: DateTime<Utc>) -> Probe {
    let read = IntCounter::new("read", "test").unwrap();
    let listed = IntCounter::new("listed", "test").unwrap();
    let cursor = DeltaCursor::new(
        DeltaSpec {
            key_column: "name".into(),
            payload_column: Some("description".into()),
            key_prefix: "lagwatch-".into(),
        },
        since,
        Duration::from_secs(3600),
    );
    let store = Metered::new(LocalStore::new(table), listed.clone(), read.clone());
    Probe {
        target: DeltaTarget::new(
            Box::new(store),
            cursor,
            Gauge::new("commit", "test").unwrap(),
        ),
        read,
        listed,
    }
}

fn long_ago() -> DateTime<Utc> {
    "2020-01-01T00:00:00Z".parse().unwrap()
}

/// The `SinkCreatedOn` of [`lake_sentinel_cells`] (lake row 99 of the shared fixtures).
fn sentinel_sink() -> DateTime<Utc> {
    "2026-11-02T10:16:39.123456Z".parse().unwrap()
}

#[tokio::test]
async fn a_sentinel_in_a_table_written_by_delta_rs_is_found_from_its_checkpoint() {
    let dir = Scratch::new("ref");
    let id = SentinelId::new("delta");
    // Versions 0 create, 1–3 appends, 4 OPTIMIZE + checkpoint, 5 the sentinel; commits before
    // the checkpoint expired, so the reader must start from the checkpoint.
    let Some(table) = reference_table(&dir.0, &ReferenceSpec::lake_history(id.key())) else {
        return;
    };
    assert!(!table.join("_delta_log/00000000000000000000.json").exists());
    let p = probe(&table, long_ago());
    let got = p.target.lookup(&id).await.unwrap();
    assert_eq!(
        got,
        Lookup::Present {
            payload: Some(String::new())
        }
    );
    assert_eq!(p.target.applied_at(&id).await, Some(sentinel_sink()));
    assert_eq!(
        p.listed.get(),
        0,
        "the checkpoint was found from _last_checkpoint"
    );
    assert_eq!(
        p.target.lookup(&SentinelId::new("delta")).await.unwrap(),
        Lookup::Absent
    );
}

#[tokio::test]
async fn without_the_checkpoint_hint_the_log_is_listed_once() {
    let dir = Scratch::new("nohint");
    let id = SentinelId::new("delta");
    let Some(table) = reference_table(&dir.0, &ReferenceSpec::lake_history(id.key())) else {
        return;
    };
    std::fs::remove_file(table.join("_delta_log/_last_checkpoint")).unwrap();
    let p = probe(&table, long_ago());
    assert!(matches!(
        p.target.lookup(&id).await.unwrap(),
        Lookup::Present { .. }
    ));
    let listed = p.listed.get();
    assert!(listed > 0);
    assert!(matches!(
        p.target.lookup(&id).await.unwrap(),
        Lookup::Present { .. }
    ));
    assert_eq!(p.listed.get(), listed, "listed once, at start-up only");
}

/// An emulator-written table under `dir`, created with the lake schema.
async fn emulated(dir: &Path) -> (DeltaWriter, PathBuf) {
    let sink = Arc::new(LocalDirSink::new(dir));
    let mut w = DeltaWriter::new(sink, "lake/account").with_tombstone_retention(Duration::ZERO);
    w.create(lake_schema()).await.unwrap();
    (w, dir.join("lake/account"))
}

#[tokio::test]
async fn a_sentinel_compacted_checkpointed_expired_and_vacuumed_behind_the_readers_back_is_found() {
    let dir = Scratch::new("behind");
    let (mut w, table) = emulated(&dir.0).await;
    w.append(&lake_cells(0, 50)).await.unwrap();
    let p = probe(&table, long_ago());
    let id = SentinelId::new("delta");
    assert_eq!(p.target.lookup(&id).await.unwrap(), Lookup::Absent);

    // While lagwatch is not polling: the sentinel arrives, the table is compacted (its file
    // is replaced), checkpointed, the commits before the checkpoint are deleted and the
    // replaced files vacuumed. The commit that added the sentinel no longer exists.
    let mut row = lake_sentinel_cells(id.key());
    row[5] = None; // description (the payload) null
    w.append(&[row]).await.unwrap();
    w.append(&lake_cells(50, 10)).await.unwrap();
    w.compact().await.unwrap().expect("compacted");
    let cp = w.checkpoint().await.unwrap();
    w.expire_log(cp).await.unwrap();
    w.vacuum(Duration::ZERO).await.unwrap();
    assert!(!table.join("_delta_log/00000000000000000002.json").exists());

    assert_eq!(
        p.target.lookup(&id).await.unwrap(),
        Lookup::Present {
            payload: Some(String::new())
        },
        "a null payload reads as empty text, as in the CSV export"
    );
    assert_eq!(p.target.applied_at(&id).await, Some(sentinel_sink()));
    // Caught up: the next poll is idle again (the next commit and the hint), not another
    // read of the checkpoint.
    let read = p.read.get();
    assert!(matches!(
        p.target.lookup(&id).await.unwrap(),
        Lookup::Present { .. }
    ));
    let hint = std::fs::metadata(table.join("_delta_log/_last_checkpoint"))
        .unwrap()
        .len();
    assert_eq!(p.read.get() - read, hint);
}

#[tokio::test]
async fn a_reader_keeping_up_reads_each_new_file_once_and_compactions_never() {
    let dir = Scratch::new("keepup");
    let (mut w, table) = emulated(&dir.0).await;
    let p = probe(&table, long_ago());
    let id = SentinelId::new("delta");
    assert_eq!(p.target.lookup(&id).await.unwrap(), Lookup::Absent);
    for i in 0..5 {
        w.append(&lake_cells(i * 20, 20)).await.unwrap();
        assert_eq!(p.target.lookup(&id).await.unwrap(), Lookup::Absent);
    }
    // Business rows only (names "Account n"): the writer's statistics skip every data file.
    let after_business = p.read.get();
    let log: u64 = (0..=5)
        .map(|v| {
            std::fs::metadata(table.join(format!("_delta_log/{v:020}.json")))
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(after_business, log, "only the log was read");

    let v = w.append(&[lake_sentinel_cells(id.key())]).await.unwrap();
    let read = p.read.get();
    assert!(matches!(
        p.target.lookup(&id).await.unwrap(),
        Lookup::Present { .. }
    ));
    let new_file = w
        .files()
        .into_iter()
        .find(|f| !f.stats.contains("Account"))
        .map(|f| f.size)
        .unwrap();
    let commit = std::fs::metadata(table.join(format!("_delta_log/{v:020}.json")))
        .unwrap()
        .len();
    assert_eq!(
        p.read.get() - read,
        commit + u64::try_from(new_file).unwrap()
    );

    let v = w.compact().await.unwrap().unwrap();
    let cp = w.checkpoint().await.unwrap();
    assert_eq!(cp, v);
    let read = p.read.get();
    assert!(matches!(
        p.target.lookup(&id).await.unwrap(),
        Lookup::Present { .. }
    ));
    let commit = std::fs::metadata(table.join(format!("_delta_log/{v:020}.json")))
        .unwrap()
        .len();
    let hint = std::fs::metadata(table.join("_delta_log/_last_checkpoint"))
        .unwrap()
        .len();
    assert_eq!(
        p.read.get() - read,
        commit + hint,
        "the compaction's commit and the idle check after it; not the compacted file"
    );
}
