//! The `delta` target on a local folder whose transaction log each test writes action by
//! action (so every case of the protocol can be set up exactly): a sentinel found in the commit
//! that added it, an idle poll costing two small requests, compaction costing nothing, a file
//! vacuumed before it was read found through its compacted replacement, statistics skipping
//! files, a 100,000-row table polled while reading only the increment, garbage a typed error.
//! Checkpoints written by a real Delta implementation are tested in `delta_reference.rs`.

use crate::common;

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::lake::{DeltaRow as Row, DeltaTable as Table, now_ms};
use lagwatch::connector::{ConnectorError, Lookup, Target};
use lagwatch::lake::delta::{DeltaCursor, DeltaSpec};
use lagwatch::lake::{LocalStore, Metered};
use lagwatch::sentinel::SentinelId;
use lagwatch::systems::delta::DeltaTarget;
use prometheus::{Gauge, IntCounter};
use serde_json::json;

fn long_ago() -> DateTime<Utc> {
    "2020-01-01T00:00:00Z".parse().unwrap()
}

struct Probe {
    target: DeltaTarget,
    listed: IntCounter,
    read: IntCounter,
    last_commit: Gauge,
}

fn target(root: &Path, since: DateTime<Utc>) -> Probe {
    let listed = IntCounter::new("listed", "test").unwrap();
    let read = IntCounter::new("read", "test").unwrap();
    let last_commit = Gauge::new("commit", "test").unwrap();
    let cursor = DeltaCursor::new(
        DeltaSpec {
            key_column: "name".into(),
            payload_column: Some("description".into()),
            key_prefix: "lagwatch-".into(),
        },
        since,
        Duration::from_secs(3600),
    );
    let store = Metered::new(LocalStore::new(root), listed.clone(), read.clone());
    Probe {
        target: DeltaTarget::new(Box::new(store), cursor, last_commit.clone()),
        listed,
        read,
        last_commit,
    }
}

fn business(n: usize) -> Vec<Row> {
    (0..n)
        .map(|i| (format!("business-row-{i:07}"), "x".to_string(), 0))
        .collect()
}

const SINK_US: i64 = 1_794_000_000_123_456;

#[tokio::test]
async fn a_sentinel_is_found_in_the_commit_that_adds_it_with_its_sink_time() {
    let mut t = Table::new();
    let p = target(&t.root, long_ago());
    let id = SentinelId::new("delta");
    assert_eq!(p.target.lookup(&id).await.unwrap(), Lookup::Absent);
    assert!(p.target.applied_at(&id).await.is_none());

    // Written but not committed: a data file without a commit is not in the table.
    let add = t.data(
        "part-1.parquet",
        &[(id.key().into(), "{\"seq\":1}".into(), SINK_US)],
        true,
        now_ms(),
    );
    assert_eq!(p.target.lookup(&id).await.unwrap(), Lookup::Absent);
    t.commit(&[add]);
    assert_eq!(
        p.target.lookup(&id).await.unwrap(),
        Lookup::Present {
            payload: Some("{\"seq\":1}".into())
        }
    );
    assert_eq!(
        p.target.applied_at(&id).await,
        DateTime::from_timestamp_micros(SINK_US)
    );
    assert!(
        p.last_commit.get() > 1_700_000_000.0,
        "newest commit time exported"
    );
    assert_eq!(
        p.target.lookup(&SentinelId::new("delta")).await.unwrap(),
        Lookup::Absent,
        "an unknown key stays absent"
    );
}

#[tokio::test]
async fn a_poll_reads_only_the_increment_however_big_the_table() {
    let mut t = Table::new();
    let mut big = t.data("part-big.parquet", &business(100_000), true, now_ms());
    // Without statistics, so the first scan cannot skip it.
    big["add"].as_object_mut().unwrap().remove("stats");
    t.commit(&[big]);
    let p = target(&t.root, long_ago());
    let id = SentinelId::new("delta");
    assert_eq!(p.target.lookup(&id).await.unwrap(), Lookup::Absent);
    let first = p.read.get();
    assert!(
        first > t.bytes("part-big.parquet"),
        "the first scan (lagwatch older than the data) read it: {first}"
    );

    // Idle: a 404 for the next commit and for _last_checkpoint; nothing read, nothing listed.
    let (listed, read) = (p.listed.get(), p.read.get());
    assert_eq!(p.target.lookup(&id).await.unwrap(), Lookup::Absent);
    assert_eq!((p.listed.get() - listed, p.read.get() - read), (0, 0));

    // One increment: its commit file and its data file, nothing of the 100,000 rows.
    let add = t.data(
        "part-2.parquet",
        &[(id.key().into(), "p".into(), SINK_US)],
        true,
        now_ms(),
    );
    t.commit(&[add]);
    let read = p.read.get();
    assert!(matches!(
        p.target.lookup(&id).await.unwrap(),
        Lookup::Present { .. }
    ));
    assert_eq!(
        p.read.get() - read,
        t.bytes("_delta_log/00000000000000000002.json") + t.bytes("part-2.parquet")
    );
    assert_eq!(
        p.listed.get(),
        listed,
        "the log is never listed while it has commit files"
    );
}

#[tokio::test]
async fn data_older_than_lagwatch_and_compactions_are_not_read() {
    let mut t = Table::new();
    let old = t.data("part-old.parquet", &business(1000), true, 1_600_000_000_000);
    t.commit(&[old]);
    let p = target(&t.root, Utc::now() - chrono::Duration::minutes(10));
    let id = SentinelId::new("delta");
    assert_eq!(p.target.lookup(&id).await.unwrap(), Lookup::Absent);
    let log = t.bytes("_delta_log/00000000000000000000.json")
        + t.bytes("_delta_log/00000000000000000001.json");
    assert_eq!(
        p.read.get(),
        log,
        "only the log was read; the old file predates lagwatch"
    );

    let add = t.data(
        "part-2.parquet",
        &[(id.key().into(), "p".into(), SINK_US)],
        true,
        now_ms(),
    );
    t.commit(&[add]);
    assert!(matches!(
        p.target.lookup(&id).await.unwrap(),
        Lookup::Present { .. }
    ));

    // OPTIMIZE: both files replaced by one, rows unchanged. Only the commit is read.
    let mut rows = business(1000);
    rows.push((id.key().into(), "p".into(), SINK_US));
    let compacted = t.data("part-compacted.parquet", &rows, false, now_ms());
    let r1 = t.remove("part-old.parquet", false);
    let r2 = t.remove("part-2.parquet", false);
    t.commit(&[r1, r2, compacted]);
    let read = p.read.get();
    assert!(matches!(
        p.target.lookup(&id).await.unwrap(),
        Lookup::Present { .. }
    ));
    assert_eq!(
        p.read.get() - read,
        t.bytes("_delta_log/00000000000000000003.json")
    );
}

#[tokio::test]
async fn a_file_vacuumed_before_it_was_read_is_found_through_its_compacted_replacement() {
    let mut t = Table::new();
    let p = target(&t.root, long_ago());
    let id = SentinelId::new("delta");
    assert_eq!(p.target.lookup(&id).await.unwrap(), Lookup::Absent);

    // Added, then compacted and vacuumed before lagwatch's next poll.
    let add = t.data(
        "part-1.parquet",
        &[(id.key().into(), "p".into(), SINK_US)],
        true,
        now_ms(),
    );
    t.commit(&[add]);
    let compacted = t.data(
        "part-c.parquet",
        &[(id.key().into(), "p".into(), SINK_US)],
        false,
        now_ms(),
    );
    let r = t.remove("part-1.parquet", false);
    t.commit(&[r, compacted]);
    std::fs::remove_file(t.root.join("part-1.parquet")).unwrap();
    assert!(matches!(
        p.target.lookup(&id).await.unwrap(),
        Lookup::Present { .. }
    ));

    // A file that vanished while still live is retried, not dropped.
    let id2 = SentinelId::new("delta");
    let add = t.data(
        "part-2.parquet",
        &[(id2.key().into(), "q".into(), SINK_US)],
        true,
        now_ms(),
    );
    let bytes = std::fs::read(t.root.join("part-2.parquet")).unwrap();
    std::fs::remove_file(t.root.join("part-2.parquet")).unwrap();
    t.commit(&[add]);
    assert_eq!(p.target.lookup(&id2).await.unwrap(), Lookup::Absent);
    std::fs::write(t.root.join("part-2.parquet"), bytes).unwrap();
    assert!(matches!(
        p.target.lookup(&id2).await.unwrap(),
        Lookup::Present { .. }
    ));
}

#[tokio::test]
async fn statistics_skip_files_without_sentinels() {
    let mut t = Table::new();
    let p = target(&t.root, long_ago());
    let id = SentinelId::new("delta");
    assert_eq!(p.target.lookup(&id).await.unwrap(), Lookup::Absent);
    let add = t.data("part-biz.parquet", &business(5000), true, now_ms());
    t.commit(&[add]);
    let read = p.read.get();
    assert_eq!(p.target.lookup(&id).await.unwrap(), Lookup::Absent);
    assert_eq!(
        p.read.get() - read,
        t.bytes("_delta_log/00000000000000000001.json"),
        "the data file's key range (business-row-…) cannot hold lagwatch-…"
    );
}

#[tokio::test]
async fn garbage_in_the_log_or_data_is_a_typed_error_and_the_scan_resumes() {
    let mut t = Table::new();
    let p = target(&t.root, long_ago());
    let id = SentinelId::new("delta");
    assert_eq!(p.target.lookup(&id).await.unwrap(), Lookup::Absent);

    std::fs::write(
        t.root.join("_delta_log/00000000000000000001.json"),
        "{not json\n",
    )
    .unwrap();
    let e = p.target.lookup(&id).await.unwrap_err();
    assert!(
        matches!(&e, ConnectorError::BadResponse { detail, .. }
            if detail.contains("00000000000000000001.json: line 1: not a Delta log action")),
        "{e:?}"
    );
    // The writer fixes the commit (a real log never changes; this is the retry path).
    t.version = 0;
    std::fs::write(
        t.root.join("part-bad.parquet"),
        b"PAR1 definitely not parquet",
    )
    .unwrap();
    t.commit(&[
        json!({"add": {"path": "part-bad.parquet", "partitionValues": {}, "size": 27,
        "modificationTime": now_ms(), "dataChange": true}}),
    ]);
    let e = p.target.lookup(&id).await.unwrap_err();
    assert!(
        matches!(&e, ConnectorError::BadResponse { detail, .. }
            if detail.contains("part-bad.parquet: not a readable Parquet file")),
        "{e:?}"
    );
    // The same file fails again (never silently skipped) until it is repaired.
    assert!(p.target.lookup(&id).await.is_err());
    let add = t.data(
        "part-bad.parquet",
        &[(id.key().into(), "p".into(), SINK_US)],
        true,
        now_ms(),
    );
    drop(add);
    assert!(matches!(
        p.target.lookup(&id).await.unwrap(),
        Lookup::Present { .. }
    ));

    // An unknown reader feature is named.
    t.commit(&[
        json!({"protocol": {"minReaderVersion": 3, "minWriterVersion": 7,
        "readerFeatures": ["v2Checkpoint"], "writerFeatures": ["v2Checkpoint"]}}),
    ]);
    let e = p.target.lookup(&id).await.unwrap_err();
    assert!(
        matches!(&e, ConnectorError::BadResponse { detail, .. }
            if detail.ends_with("the table needs reader features lagwatch does not have: v2Checkpoint")),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_folder_that_is_not_a_delta_table_is_named() {
    let dir = std::env::temp_dir().join(format!("lagwatch-delta-test-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = target(&dir, long_ago());
    let e = p
        .target
        .lookup(&SentinelId::new("delta"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ConnectorError::BadResponse { detail, .. }
            if detail.starts_with("_delta_log: has no commit 0, no _last_checkpoint")),
        "{e:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
