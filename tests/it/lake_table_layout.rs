//! The Synapse Link CSV target in the table layout (fact sheet §5.2, §5.4), on a local folder
//! laid out as the export documents it: `model.json` and `<table>/<partition>.csv`, appended to
//! and rewritten in place. Sentinels are found when appended, when a file is rewritten, and in
//! partitions that appear later; a record still being written is not read until complete; a
//! poll of a 100,000-row partition reads its new bytes and 64 bytes before them, nothing else;
//! garbage is a typed error.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lagwatch::connector::{ConnectorError, Lookup, Target};
use lagwatch::lake::synapse::TableSpec;
use lagwatch::lake::table::{FINGERPRINT_BYTES, TableCursor};
use lagwatch::lake::{LocalStore, Metered};
use lagwatch::sentinel::SentinelId;
use lagwatch::systems::synapse_link_csv::SynapseLinkCsv;
use prometheus::{Gauge, IntCounter};

const MODEL: &str = r#"{"name":"cdm","version":"1.0","entities":[
 {"$type":"LocalEntity","name":"contact","attributes":[{"name":"Id","dataType":"guid"}]},
 {"$type":"LocalEntity","name":"account","annotations":[
   {"name":"Athena:PartitionGranularity","value":"Year"}],"attributes":[
  {"name":"Id","dataType":"guid"},{"name":"SinkCreatedOn","dataType":"dateTime"},
  {"name":"SinkModifiedOn","dataType":"dateTime"},{"name":"name","dataType":"string"},
  {"name":"description","dataType":"string"},{"name":"versionnumber","dataType":"int64"},
  {"name":"IsDelete","dataType":"boolean"}]}]}"#;

/// A table-layout export in a temp folder, removed when dropped.
struct Lake {
    root: PathBuf,
}

impl Lake {
    fn new() -> Lake {
        let root = std::env::temp_dir().join(format!(
            "lagwatch-lake-table-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7()
        ));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("model.json"), MODEL).unwrap();
        Lake { root }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn append(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    /// Rewrites a file as the export does in in-place mode: a new file renamed over the old.
    fn rewrite(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        let tmp = p.with_extension("csv.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(tmp, p).unwrap();
    }

    fn size(&self, rel: &str) -> u64 {
        std::fs::metadata(self.path(rel)).unwrap().len()
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }
}

impl Drop for Lake {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// One row of the account table, with RFC 4180 quoting.
fn row(key: &str, payload: &str) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    format!(
        "{},2026-11-02T10:15:07.1234567Z,2026-11-02T10:15:07.1234567Z,{},{},1000001,False\n",
        uuid::Uuid::now_v7(),
        q(key),
        q(payload)
    )
}

fn business_rows(n: usize, tag: &str) -> String {
    (0..n)
        .map(|i| row(&format!("business-{tag}-{i}"), "Contoso account, Seattle"))
        .collect()
}

struct Probe {
    target: SynapseLinkCsv,
    listed: IntCounter,
    read: IntCounter,
    newest: Gauge,
}

impl Probe {
    fn new(root: &Path) -> Probe {
        let listed = IntCounter::new("listed", "test").unwrap();
        let read = IntCounter::new("read", "test").unwrap();
        let newest = Gauge::new("newest", "test").unwrap();
        let cursor = TableCursor::new(
            TableSpec {
                table: "account".into(),
                key_column: "name".into(),
                payload_column: Some("description".into()),
                key_prefix: "lagwatch-".into(),
            },
            Duration::from_secs(3600),
        );
        let store = Metered::new(LocalStore::new(root), listed.clone(), read.clone());
        Probe {
            target: SynapseLinkCsv::new(Box::new(store), cursor, newest.clone()),
            listed,
            read,
            newest,
        }
    }

    /// A lookup and what it cost: `(answer, objects listed, bytes read)`.
    async fn lookup(&self, id: &SentinelId) -> (Lookup, u64, u64) {
        let (l, r) = (self.listed.get(), self.read.get());
        let answer = self.target.lookup(id).await.expect("lookup");
        (answer, self.listed.get() - l, self.read.get() - r)
    }

    async fn error(&self, id: &SentinelId) -> String {
        match self.target.lookup(id).await {
            Err(ConnectorError::BadResponse { detail, .. }) => detail,
            other => panic!("expected a bad response, got {other:?}"),
        }
    }
}

fn present(payload: &str) -> Lookup {
    Lookup::Present {
        payload: Some(payload.to_string()),
    }
}

const P2026: &str = "account/2026.csv";

#[tokio::test]
async fn a_sentinel_appended_to_a_partition_is_found_and_the_file_time_is_exported() {
    let lake = Lake::new();
    let id = SentinelId::new("lake");
    lake.append(P2026, &business_rows(50, "a"));
    let p = Probe::new(&lake.root);
    assert_eq!(p.lookup(&id).await.0, Lookup::Absent);
    let payload = "{\"seq\":1, \"note\":\"a \"\"quoted\"\", multi\nline value\"}";
    lake.append(P2026, &row(id.key(), payload));
    assert_eq!(p.lookup(&id).await.0, present(payload));
    assert_eq!(
        p.target.applied_at(&id).await.map(|t| t.to_rfc3339()),
        Some("2026-11-02T10:15:07.123456700+00:00".to_string())
    );
    let mtime = std::fs::metadata(lake.path(P2026))
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    assert!(
        (p.newest.get() - mtime.as_secs_f64()).abs() < 0.002,
        "{} vs {mtime:?}",
        p.newest.get()
    );
    // Other instances' rows and unknown keys stay absent.
    assert_eq!(p.lookup(&SentinelId::new("lake")).await.0, Lookup::Absent);

    // A partition that appears after start-up is read from its start.
    let next_year = SentinelId::new("lake");
    lake.append(
        "account/2027.csv",
        &format!("{}{}", business_rows(3, "b"), row(next_year.key(), "n")),
    );
    let (answer, listed, read) = p.lookup(&next_year).await;
    assert_eq!(answer, present("n"));
    assert_eq!(listed, 1 + 2, "model.json's stat and two partitions");
    assert_eq!(read, lake.size("account/2027.csv"), "the new file, once");
    // Files that are not CSV partitions are not read.
    lake.append("account/.2027.csv.tmp", "garbage");
    lake.append("account/notes.txt", "garbage");
    let (_, _, read) = p.lookup(&next_year).await;
    assert_eq!(read, 0);
}

#[tokio::test]
async fn a_partition_rewritten_in_place_is_read_whole_and_a_sentinel_it_lost_is_deleted() {
    let lake = Lake::new();
    let first = SentinelId::new("lake");
    let second = SentinelId::new("lake");
    lake.append(P2026, &business_rows(20, "a"));
    let p = Probe::new(&lake.root);
    assert_eq!(p.lookup(&first).await.0, Lookup::Absent);
    lake.append(P2026, &row(first.key(), "one"));
    assert_eq!(p.lookup(&first).await.0, present("one"));
    let before = lake.size(P2026);

    // In-place update mode: the first sentinel deleted, a business row updated, and the second
    // sentinel placed before rows that were already read.
    let text = lake.read(P2026);
    let mut lines: Vec<&str> = text.lines().filter(|l| !l.contains(first.key())).collect();
    let updated = row("business-a-3", "updated, now longer than it was");
    lines[3] = updated.trim_end();
    let inserted = row(second.key(), "two");
    lines.insert(5, inserted.trim_end());
    let rewritten = lines.join("\n") + "\n";
    lake.rewrite(P2026, &rewritten);
    let (answer, listed, read) = p.lookup(&second).await;
    assert_eq!(answer, present("two"));
    assert_eq!(listed, 2);
    // The range read that found the fingerprint gone, then the whole file.
    let size = rewritten.len() as u64;
    assert_eq!(read, (size - (before - FINGERPRINT_BYTES)) + size);
    // The sentinel the rewritten file no longer has was deleted in place.
    assert_eq!(p.lookup(&first).await.0, Lookup::Absent);

    // A file that shrank below what was read is read whole too.
    let third = SentinelId::new("lake");
    let short = row(third.key(), "three");
    lake.rewrite(P2026, &short);
    let (answer, _, read) = p.lookup(&third).await;
    assert_eq!(answer, present("three"));
    assert_eq!(read, short.len() as u64);
    assert_eq!(
        p.lookup(&second).await.0,
        Lookup::Absent,
        "not in the file any more"
    );
}

#[tokio::test]
async fn a_half_written_record_is_read_once_it_is_complete() {
    let lake = Lake::new();
    let id = SentinelId::new("lake");
    lake.append(P2026, &business_rows(5, "a"));
    let p = Probe::new(&lake.root);
    assert_eq!(p.lookup(&id).await.0, Lookup::Absent);
    let payload = "first line\nsecond line, \"quoted\"";
    let full = row(id.key(), payload);
    // Cut inside the quoted multi-line field: its line feed is not the end of the record.
    let cut = full.find("second").unwrap();
    lake.append(P2026, &full[..cut]);
    assert_eq!(p.lookup(&id).await.0, Lookup::Absent);
    // All fields there but no line feed yet: still being written.
    lake.append(P2026, &full[cut..full.len() - 1]);
    assert_eq!(p.lookup(&id).await.0, Lookup::Absent);
    lake.append(P2026, "\n");
    let (answer, _, read) = p.lookup(&id).await;
    assert_eq!(answer, present(payload));
    // Each poll read from the last complete record: 64 bytes before it and the rest.
    assert_eq!(read, FINGERPRINT_BYTES + full.len() as u64);

    // A last record with too few fields is a write in progress too ...
    let other = SentinelId::new("lake");
    lake.append(P2026, "0f0e0d0c-0000-4000-8000-000000000001,2026-11-02\n");
    assert_eq!(p.lookup(&other).await.0, Lookup::Absent);
    // ... but once more follows it, the file is not the documented CSV.
    lake.append(P2026, &row(other.key(), "x"));
    let e = p.error(&other).await;
    assert!(
        e.starts_with("account/2026.csv: the row at byte ")
            && e.ends_with(": 2 fields; model.json lists 7 columns"),
        "{e}"
    );
}

#[tokio::test]
async fn a_file_caught_mid_write_at_start_up_is_read_from_its_last_record() {
    let lake = Lake::new();
    let id = SentinelId::new("lake");
    let pending = row("business-pending", "a value on one line");
    // Shorter than the 64 bytes read at start-up, so the last line feed is among them.
    let cut = 30;
    lake.append(
        P2026,
        &format!("{}{}", business_rows(3, "a"), &pending[..cut]),
    );
    let p = Probe::new(&lake.root);
    assert_eq!(p.lookup(&id).await.0, Lookup::Absent);
    let appended = format!("{}{}", &pending[cut..], row(id.key(), "p"));
    lake.append(P2026, &appended);
    let (answer, _, read) = p.lookup(&id).await;
    assert_eq!(answer, present("p"));
    // The same 64 bytes (up to the last line feed, and the pending record's start) and what
    // followed: no whole read.
    assert_eq!(read, FINGERPRINT_BYTES + appended.len() as u64);
}

#[tokio::test]
async fn a_start_up_position_inside_a_quoted_field_is_caught_and_the_file_read_whole() {
    let lake = Lake::new();
    let id = SentinelId::new("lake");
    // Caught just after a line feed inside a quoted field: from its last bytes the file looks
    // like it ends with a complete record.
    let pending = row("business-pending", "a value with a\nline feed");
    let cut = pending.find("line feed").unwrap();
    lake.append(
        P2026,
        &format!("{}{}", business_rows(3, "a"), &pending[..cut]),
    );
    let p = Probe::new(&lake.root);
    assert_eq!(p.lookup(&id).await.0, Lookup::Absent);
    let appended = format!("{}{}", &pending[cut..], row(id.key(), "p"));
    lake.append(P2026, &appended);
    let (answer, _, read) = p.lookup(&id).await;
    assert_eq!(answer, present("p"));
    // The range read whose records did not line up, then the whole file, once.
    assert_eq!(
        read,
        FINGERPRINT_BYTES + appended.len() as u64 + lake.size(P2026)
    );
    let next = SentinelId::new("lake");
    let more = row(next.key(), "q");
    lake.append(P2026, &more);
    let (answer, _, read) = p.lookup(&next).await;
    assert_eq!(answer, present("q"));
    assert_eq!(read, FINGERPRINT_BYTES + more.len() as u64);
}

#[tokio::test]
async fn a_poll_of_a_100k_row_partition_reads_only_its_new_tail() {
    let lake = Lake::new();
    lake.append(P2026, &business_rows(100_000, "big"));
    assert!(lake.size(P2026) > 10_000_000);
    let p = Probe::new(&lake.root);
    let id = SentinelId::new("lake");
    // Start-up: model.json and the fingerprint of the existing file, nothing of its rows.
    let (answer, listed, read) = p.lookup(&id).await;
    assert_eq!(answer, Lookup::Absent);
    assert_eq!(read, MODEL.len() as u64 + FINGERPRINT_BYTES);
    assert_eq!(listed, 1 + 1);
    // Nothing changed: model.json's stat and the table's listing, no byte read.
    let (_, listed, read) = p.lookup(&id).await;
    assert_eq!((listed, read), (2, 0));
    // One sentinel appended: 64 bytes before it and the row, nothing else.
    let sentinel = row(id.key(), "tail");
    lake.append(P2026, &sentinel);
    let (answer, listed, read) = p.lookup(&id).await;
    assert_eq!(answer, present("tail"));
    assert_eq!(read, FINGERPRINT_BYTES + sentinel.len() as u64);
    assert!(read < 1024 + sentinel.len() as u64);
    assert_eq!(listed, 2);
}

#[tokio::test]
async fn model_json_is_read_again_only_when_it_changes() {
    let lake = Lake::new();
    lake.append(P2026, &business_rows(3, "a"));
    let p = Probe::new(&lake.root);
    let id = SentinelId::new("lake");
    let (_, _, read) = p.lookup(&id).await;
    assert_eq!(read, MODEL.len() as u64 + FINGERPRINT_BYTES);
    // The profile adds a column: the manifest changes, rows appended from now on have it.
    let model = MODEL.replace(
        r#"{"name":"IsDelete","dataType":"boolean"}"#,
        r#"{"name":"IsDelete","dataType":"boolean"},{"name":"lw_region","dataType":"string"}"#,
    );
    std::fs::write(lake.path("model.json"), &model).unwrap();
    let added = row(id.key(), "p").replace('\n', ",emea\n");
    lake.append(P2026, &added);
    let (answer, _, read) = p.lookup(&id).await;
    assert_eq!(answer, present("p"));
    assert_eq!(
        read,
        (model.len() + FINGERPRINT_BYTES as usize + added.len()) as u64
    );
    let (_, _, read) = p.lookup(&id).await;
    assert_eq!(read, 0, "the manifest did not change again");
}

#[tokio::test]
async fn garbage_is_a_typed_error_naming_the_file() {
    let id = SentinelId::new("lake");
    type Spoil = fn(&Lake);
    let cases: &[(&str, Spoil)] = &[
        ("model.json: not a CDM model.json", |l| {
            std::fs::write(l.path("model.json"), "<html>").unwrap()
        }),
        ("model.json: does not list table account", |l| {
            std::fs::write(l.path("model.json"), r#"{"entities":[]}"#).unwrap()
        }),
        ("account/2026.csv: the row at byte ", |l| {
            l.append(P2026, "only,three,fields\nand,one,more\n")
        }),
        ("2026.csv: the row at byte ", |l| {
            let long = row("a", "b").replace('\n', ",extra,extra\n");
            l.append(P2026, &format!("{long}{}", row("c", "d")))
        }),
        ("not CSV", |l| {
            let mut bad = row("x", "y").into_bytes();
            bad.insert(40, 0xff);
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(l.path(P2026))
                .unwrap();
            f.write_all(&bad).unwrap();
        }),
    ];
    for (want, spoil) in cases {
        let lake = Lake::new();
        lake.append(P2026, &business_rows(2, "a"));
        let p = Probe::new(&lake.root);
        assert_eq!(p.lookup(&id).await.0, Lookup::Absent);
        spoil(&lake);
        let e = p.error(&id).await;
        assert!(e.contains(want), "{want}: {e}");
    }
}

#[tokio::test]
async fn a_missing_manifest_is_an_error_and_a_missing_table_folder_is_absent() {
    let lake = Lake::new();
    std::fs::remove_file(lake.path("model.json")).unwrap();
    let p = Probe::new(&lake.root);
    let id = SentinelId::new("lake");
    let e = p.error(&id).await;
    assert!(
        e.starts_with("model.json: missing: the container is not (yet) a Synapse Link export in the table layout"),
        "{e}"
    );
    // An export that has not written the table yet: nothing there, not an error.
    std::fs::write(lake.path("model.json"), MODEL).unwrap();
    assert_eq!(p.lookup(&id).await.0, Lookup::Absent);
    assert_eq!(p.newest.get(), 0.0, "no partition file yet");
    lake.append(P2026, &row(id.key(), "first file"));
    assert_eq!(p.lookup(&id).await.0, present("first file"));
    assert!(p.newest.get() > 0.0);
}
