//! Reconciliation's inventory of the lake kinds on local folders laid out as the exports
//! document them: rows in the order the changes were written, delete rows marked, the folder
//! being written never read, a CSV file read in bounded ranges split at record boundaries
//! (quoted line feeds included) with one store call per page, a Delta table read from its
//! snapshot's live files (removed files never read, checkpoints and expired logs followed),
//! garbage and unknown columns a typed error.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use common::lake::{MODEL, system};
use lagwatch::connector::ConnectorError;
use lagwatch::connector::inventory::{Inventory, InventoryQuery, InventoryRow, InventoryShape};
use lagwatch::lake::delta_inventory::DeltaInventory;
use lagwatch::lake::inventory::{CsvInventory, CsvLayout, PAGE_BYTES};
use lagwatch::lake::{FileEntry, LakeError, LakeStore, Listing, LocalStore, Metered};
use lagwatch_emulator::LocalDirSink;
use lagwatch_emulator::delta::{Cell, DeltaSchema, DeltaType, DeltaWriter, Row};
use prometheus::IntCounter;
use serde_json::json;

const F1: &str = "2026-11-02T10.15.00.000Z";
const F2: &str = "2026-11-02T10.20.00.000Z";
const F3: &str = "2026-11-02T10.25.00.000Z";

/// A scratch folder, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("lagwatch-inv-{tag}-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    fn write(&self, rel: &str, text: impl AsRef<[u8]>) {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn append(&self, rel: &str, text: &str) {
        let p = self.0.join(rel);
        let mut old = std::fs::read_to_string(&p).unwrap_or_default();
        old.push_str(text);
        self.write(rel, old);
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A store that counts its calls and the longest range it was asked for, over a metered local
/// folder.
struct Counting {
    inner: Metered<LocalStore>,
    calls: AtomicU64,
    longest_slice: AtomicU64,
}

#[async_trait]
impl LakeStore for Counting {
    async fn list(&self, dir: &str) -> Result<Listing, LakeError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.list(dir).await
    }

    async fn get(&self, path: &str) -> Result<Option<Vec<u8>>, LakeError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.get(path).await
    }

    async fn get_range(&self, path: &str, start: u64) -> Result<Option<Vec<u8>>, LakeError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.get_range(path, start).await
    }

    async fn get_slice(
        &self,
        path: &str,
        start: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, LakeError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.longest_slice.fetch_max(len, Ordering::SeqCst);
        self.inner.get_slice(path, start, len).await
    }

    async fn stat(&self, path: &str) -> Result<Option<FileEntry>, LakeError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.stat(path).await
    }
}

struct Store {
    store: Arc<Counting>,
    listed: IntCounter,
    read: IntCounter,
}

fn store(root: &Path) -> Store {
    let listed = IntCounter::new("listed", "test").unwrap();
    let read = IntCounter::new("read", "test").unwrap();
    Store {
        store: Arc::new(Counting {
            inner: Metered::new(LocalStore::new(root), listed.clone(), read.clone()),
            calls: AtomicU64::new(0),
            longest_slice: AtomicU64::new(0),
        }),
        listed,
        read,
    }
}

fn query(columns: &[&str]) -> InventoryQuery {
    InventoryQuery {
        table: None,
        columns: columns.iter().map(|c| c.to_string()).collect(),
        changed_since: None,
        page_size: 5000,
    }
}

/// Every page until the last, checking that each makes exactly one store call and that the
/// continuation is a plain string passed back as such; the rows and the page count.
async fn read_all(
    inv: &dyn Inventory,
    q: &InventoryQuery,
    calls: &AtomicU64,
) -> Result<(Vec<InventoryRow>, usize), ConnectorError> {
    let mut next: Option<String> = None;
    let mut rows = Vec::new();
    let mut pages = 0;
    loop {
        let before = calls.load(Ordering::SeqCst);
        let page = inv.page(q, next.as_deref()).await?;
        assert_eq!(
            calls.load(Ordering::SeqCst) - before,
            1,
            "page {pages} made one store call"
        );
        pages += 1;
        rows.extend(page.rows);
        match page.next {
            Some(n) => next = Some(n.clone()),
            None => return Ok((rows, pages)),
        }
        assert!(pages < 100_000, "the pages end");
    }
}

/// `(values…, deleted)` of rows as text, for readable assertions.
fn show(rows: &[InventoryRow]) -> Vec<String> {
    rows.iter()
        .map(|r| {
            let v: Vec<&str> = r
                .values
                .iter()
                .map(|v| v.as_deref().unwrap_or("∅"))
                .collect();
            format!("{}{}", v.join("|"), if r.deleted { " DELETED" } else { "" })
        })
        .collect()
}

fn csv_row(id: &str, name: &str, description: &str, version: u64) -> String {
    let q = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    format!(
        "{id},2026-11-02T10:15:07.1234567Z,2026-11-02T10:15:07.0000000Z,{},{},{version},False\n",
        q(name),
        q(description)
    )
}

fn csv_delete(id: &str) -> String {
    format!("{id},2026-11-02T10:21:00.0000000Z,2026-11-02T10:21:00.0000000Z,,,,True\n")
}

fn bad_response(e: &ConnectorError) -> &str {
    match e {
        ConnectorError::BadResponse { detail, .. } => detail,
        other => panic!("not a BadResponse: {other:?}"),
    }
}

#[tokio::test]
async fn incremental_folders_come_oldest_first_with_updates_and_deletes_and_never_the_open_one() {
    let lake = Dir::new("incremental");
    for f in [F1, F2, F3] {
        lake.write(&format!("{f}/model.json"), MODEL);
    }
    lake.write("Changelog/changelog.info", F3);
    // The initial sync, then an update of k1 and the delete of k2 in the next folder; the
    // folder being written has k3 and another update of k1.
    lake.write(
        &format!("{F1}/account/2026.csv"),
        csv_row("k1", "one", "first", 1) + &csv_row("k2", "two", "a \"quoted\",\nline", 1),
    );
    lake.write(
        &format!("{F1}/account/2025.csv"),
        csv_row("k0", "zero", "old", 1),
    );
    lake.write(
        &format!("{F2}/account/2026.csv"),
        csv_row("k1", "one", "second", 2) + &csv_delete("k2"),
    );
    lake.write(&format!("{F2}/account/notes.txt"), "not a CSV file");
    lake.write(
        &format!("{F3}/account/2026.csv"),
        csv_row("k3", "three", "open", 1),
    );
    lake.write(&format!("{F1}/contact/2026.csv"), "other,table\n");
    let s = store(&lake.0);
    let inv = CsvInventory::new(s.store.clone(), "account", CsvLayout::Incremental);
    assert_eq!(inv.shape(), InventoryShape::Changes);
    let q = query(&[
        "Id",
        "versionnumber",
        "description",
        "SinkModifiedOn",
        "IsDelete",
    ]);
    inv.check(&q).expect("a fine query");
    let (rows, pages) = read_all(&inv, &q, &s.store.calls).await.unwrap();
    assert_eq!(
        show(&rows),
        [
            "k0|1|old|2026-11-02T10:15:07Z|false",
            "k1|1|first|2026-11-02T10:15:07Z|false",
            "k2|1|a \"quoted\",\nline|2026-11-02T10:15:07Z|false",
            "k1|2|second|2026-11-02T10:15:07Z|false",
            "k2|∅|∅|2026-11-02T10:21:00Z|true DELETED",
        ]
    );
    // changelog, root, and per folder: listing, model.json, one read per file.
    assert_eq!(pages, 2 + (2 + 2) + (2 + 1));
    assert!(s.read.get() > 0 && s.listed.get() > 0, "metered");

    // A table another folder's model.json does not know, and an unknown column, are errors
    // naming what is missing.
    let e = read_all(&inv, &query(&["Id", "nope"]), &s.store.calls)
        .await
        .unwrap_err();
    let d = bad_response(&e);
    assert!(
        d.contains("table account has no column nope") && d.contains("model.json"),
        "{d}"
    );
    let other = InventoryQuery {
        table: Some("lead".into()),
        ..query(&["Id"])
    };
    let (rows, _) = read_all(&inv, &other, &s.store.calls).await.unwrap();
    assert!(rows.is_empty(), "no folder has lead files");
    assert!(
        inv.check(&InventoryQuery {
            table: Some("../x".into()),
            ..query(&["Id"])
        })
        .is_err()
    );
    assert!(inv.check(&query(&[])).is_err());
}

#[tokio::test]
async fn a_file_bigger_than_a_page_is_split_at_record_boundaries_wherever_the_page_ends() {
    let lake = Dir::new("split");
    lake.write(&format!("{F1}/model.json"), MODEL);
    lake.write("Changelog/changelog.info", F2);
    let mut want = Vec::new();
    let mut text = String::new();
    for i in 0..40 {
        // Quoted line feeds, commas and quotes in every third row; one record longer than
        // the smaller pages below.
        let description = match i % 3 {
            0 => format!("plain {i}"),
            1 => format!("two\nlines, \"{i}\"\n"),
            _ => "x".repeat(if i == 20 { 300 } else { 5 }),
        };
        text.push_str(&csv_row(&format!("k{i:02}"), "n", &description, i));
        want.push(format!("k{i:02}|{description}"));
    }
    // The last record without its line feed: a complete folder's file ends where it ends.
    text.pop();
    lake.write(&format!("{F1}/account/2026.csv"), &text);
    let q = query(&["Id", "description"]);
    for page in [7, 31, 64, 100, 101, 257, 1000, PAGE_BYTES] {
        let s = store(&lake.0);
        let inv = CsvInventory::new(s.store.clone(), "account", CsvLayout::Incremental)
            .with_page_bytes(page);
        let (rows, pages) = read_all(&inv, &q, &s.store.calls)
            .await
            .unwrap_or_else(|e| panic!("page {page}: {e}"));
        assert_eq!(show(&rows), want, "page {page}");
        // Bounded: every range read is the page (or, to get past the long record, a few
        // doubling of it) and 64 bytes of fingerprint.
        let longest = s.store.longest_slice.load(Ordering::SeqCst);
        assert!(
            longest <= 64 + page.clamp(1024, PAGE_BYTES),
            "page {page}: {longest}"
        );
        if page >= 1000 {
            assert!(pages <= 4 + text.len() / page as usize + 2, "{pages} pages");
        }
    }
}

#[tokio::test]
async fn garbage_csv_is_a_bad_response() {
    for (name, body) in [
        ("short record", b"k1,a,b\nk2\nk3,a,b,c,d,1,False\n".to_vec()),
        (
            "not UTF-8",
            b"k1,a,b,c,d,1,False\nk2,\xff\xfe,b,c,d,1,False\n".to_vec(),
        ),
        ("open quote", b"k1,\"never closed,x,y,1,False\n".to_vec()),
    ] {
        let lake = Dir::new("garbage");
        lake.write(&format!("{F1}/model.json"), MODEL);
        lake.write("Changelog/changelog.info", F2);
        lake.write(&format!("{F1}/account/2026.csv"), body);
        let s = store(&lake.0);
        let inv = CsvInventory::new(s.store.clone(), "account", CsvLayout::Incremental);
        let e = read_all(&inv, &query(&["Id"]), &s.store.calls)
            .await
            .expect_err(name);
        let d = bad_response(&e);
        assert!(d.contains("account/2026.csv"), "{name}: {d}");
    }
    let lake = Dir::new("garbage-model");
    lake.write(&format!("{F1}/model.json"), "<html>");
    lake.write("Changelog/changelog.info", F2);
    lake.write(&format!("{F1}/account/2026.csv"), csv_row("k", "n", "d", 1));
    let s = store(&lake.0);
    let inv = CsvInventory::new(s.store.clone(), "account", CsvLayout::Incremental);
    let e = read_all(&inv, &query(&["Id"]), &s.store.calls)
        .await
        .unwrap_err();
    assert!(bad_response(&e).contains("not a CDM model.json"));
    // A continuation from elsewhere is refused, not misread.
    let e = inv
        .page(&query(&["Id"]), Some("{\"step\":1}"))
        .await
        .unwrap_err();
    assert!(bad_response(&e).contains("not a continuation"));
    // No changelog: not an incremental export.
    let empty = Dir::new("empty");
    let s = store(&empty.0);
    let inv = CsvInventory::new(s.store.clone(), "account", CsvLayout::Incremental);
    let e = inv.page(&query(&["Id"]), None).await.unwrap_err();
    assert!(bad_response(&e).contains("Changelog/changelog.info"));
}

#[tokio::test]
async fn the_table_layout_reads_partitions_in_order_and_rereads_a_file_rewritten_in_place() {
    let lake = Dir::new("table");
    lake.write("model.json", MODEL);
    // Append-only: every version appended, deletes as IsDelete rows.
    lake.write(
        "account/2026.csv",
        csv_row("k2", "two", "v1", 1) + &csv_row("k2", "two", "v2", 2) + &csv_delete("k1"),
    );
    lake.write("account/2025.csv", csv_row("k1", "one", "v1", 1));
    let s = store(&lake.0);
    let inv = CsvInventory::new(s.store.clone(), "account", CsvLayout::Table);
    let q = query(&["Id", "versionnumber"]);
    let (rows, pages) = read_all(&inv, &q, &s.store.calls).await.unwrap();
    assert_eq!(
        show(&rows),
        ["k1|1", "k2|1", "k2|2", "k1|∅ DELETED"],
        "2025.csv before 2026.csv, lines in file order"
    );
    assert_eq!(pages, 4, "model.json, listing, one read per file");

    // A record being appended (no line feed yet) is not a row yet.
    lake.append("account/2026.csv", "k9,2026-11-02T10:15:07Z,2026");
    let (rows, _) = read_all(&inv, &q, &s.store.calls).await.unwrap();
    assert_eq!(rows.len(), 4);

    // In place: the file is rewritten between two pages; it is read again from its start.
    let lake = Dir::new("in-place");
    lake.write("model.json", MODEL);
    let before: String = (0..10)
        .map(|i| csv_row(&format!("k{i}"), "n", "old", 1))
        .collect();
    lake.write("account/2026.csv", &before);
    let s = store(&lake.0);
    let inv = CsvInventory::new(s.store.clone(), "account", CsvLayout::Table).with_page_bytes(150);
    let mut next = None;
    let mut rows = Vec::new();
    for _ in 0..3 {
        let page = inv.page(&q, next.as_deref()).await.unwrap();
        rows.extend(page.rows);
        next = page.next;
    }
    assert!(!rows.is_empty() && rows.len() < 10, "part of the file read");
    let after: String = (0..10)
        .map(|i| csv_row(&format!("k{i}"), "n", "new, longer than before", 2))
        .collect();
    lake.write("account/2026.csv", &after);
    loop {
        let page = inv.page(&q, next.as_deref()).await.unwrap();
        rows.extend(page.rows);
        match page.next {
            Some(n) => next = Some(n),
            None => break,
        }
    }
    let shown = show(&rows);
    let tail = &shown[shown.len() - 10..];
    let want: Vec<String> = (0..10).map(|i| format!("k{i}|2")).collect();
    assert_eq!(
        tail, want,
        "the rewritten file whole, after what was read before"
    );

    // No model.json: not a table-layout export.
    let empty = Dir::new("no-model");
    let s = store(&empty.0);
    let inv = CsvInventory::new(s.store.clone(), "account", CsvLayout::Table);
    let e = inv.page(&q, None).await.unwrap_err();
    assert!(bad_response(&e).contains("model.json: missing"));
}

// ---- Delta ----------------------------------------------------------------------------------

fn delta_schema() -> DeltaSchema {
    DeltaSchema::new([
        ("Id", DeltaType::String),
        ("name", DeltaType::String),
        ("versionnumber", DeltaType::Long),
        ("SinkModifiedOn", DeltaType::Timestamp),
        ("IsDelete", DeltaType::Boolean),
    ])
    .unwrap()
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn delta_row(id: &str, name: &str, version: i64) -> Row {
    vec![
        Some(Cell::Str(id.into())),
        Some(Cell::Str(name.into())),
        Some(Cell::Long(version)),
        Some(Cell::Timestamp(t("2026-11-02T10:15:07Z"))),
        Some(Cell::Bool(false)),
    ]
}

fn delta_delete(id: &str) -> Row {
    vec![
        Some(Cell::Str(id.into())),
        None,
        None,
        Some(Cell::Timestamp(t("2026-11-02T10:16:00.5Z"))),
        Some(Cell::Bool(true)),
    ]
}

/// A Delta table written by the emulator's writer under `dir/t`, with a fixed clock.
async fn delta_table(dir: &Dir) -> DeltaWriter {
    let c = Arc::new(AtomicU64::new(0));
    let mut w = DeltaWriter::new(Arc::new(LocalDirSink::new(&dir.0)), "t").with_clock(move || {
        t("2026-11-02T10:00:00Z")
            + chrono::Duration::seconds(c.fetch_add(1, Ordering::SeqCst) as i64)
    });
    w.create(delta_schema()).await.unwrap();
    w
}

#[tokio::test]
async fn a_delta_table_is_read_file_by_file_in_commit_order_without_its_removed_files() {
    let dir = Dir::new("delta");
    let mut w = delta_table(&dir).await;
    w.append(&[delta_row("k1", "one", 1), delta_row("k2", "two", 1)])
        .await
        .unwrap();
    let first = w.files()[0].path.clone();
    w.append(&[delta_row("k1", "one", 2), delta_delete("k2")])
        .await
        .unwrap();
    w.append(&[delta_row("k3", "three", 1)]).await.unwrap();
    // A DELETE that rewrote nothing (all of the first file's rows gone): a remove with
    // dataChange true. The file stays on storage, garbled, so reading it would fail.
    let remove = json!({"remove": {"path": first, "deletionTimestamp": 1, "dataChange": true}});
    dir.write(
        "t/_delta_log/00000000000000000004.json",
        format!("{{\"commitInfo\":{{\"timestamp\":1}}}}\n{remove}\n"),
    );
    dir.write(&format!("t/{first}"), "garbage, not parquet");

    let s = store(&dir.0.join("t"));
    let inv = DeltaInventory::new(s.store.clone(), "file:///lake/t");
    assert_eq!(inv.shape(), InventoryShape::Changes);
    let q = query(&["id", "Name", "versionnumber", "SinkModifiedOn"]);
    let (rows, pages) = read_all(&inv, &q, &s.store.calls).await.unwrap();
    assert_eq!(
        show(&rows),
        [
            "k1|one|2|2026-11-02T10:15:07Z",
            "k2|∅|∅|2026-11-02T10:16:00.500Z DELETED",
            "k3|three|1|2026-11-02T10:15:07Z",
        ]
    );
    // hint, commits 0..=4 and the missing 5, two live files.
    assert_eq!(pages, 1 + 6 + 2);

    // An unknown column names the column and the table; a query for another table is refused.
    let e = read_all(&inv, &query(&["Id", "nope"]), &s.store.calls)
        .await
        .unwrap_err();
    assert!(
        bad_response(&e).contains("table file:///lake/t has no column nope"),
        "{e}"
    );
    assert!(
        inv.check(&InventoryQuery {
            table: Some("account".into()),
            ..query(&["Id"])
        })
        .is_err()
    );
    inv.check(&InventoryQuery {
        table: Some("T".into()),
        ..query(&["Id"])
    })
    .expect("its own table");
}

#[tokio::test]
async fn a_delta_table_is_read_from_its_checkpoint_after_compaction_and_log_expiry() {
    let dir = Dir::new("delta-checkpoint");
    let mut w = delta_table(&dir).await;
    let mut n = 0;
    for round in 0..3 {
        let batch: Vec<Row> = (0..5)
            .map(|_| {
                n += 1;
                delta_row(&format!("k{}", n % 7), "x", n)
            })
            .collect();
        w.append(&batch).await.unwrap();
        if round == 1 {
            w.compact().await.unwrap();
        }
    }
    w.append(&[delta_delete("k3")]).await.unwrap();
    w.checkpoint().await.unwrap();
    w.append(&[delta_row("k3", "back", 99)]).await.unwrap();
    let version = w.version().unwrap();
    w.expire_log(version).await.unwrap();
    assert!(
        !dir.0
            .join("t/_delta_log/00000000000000000000.json")
            .exists()
    );
    let want: Vec<String> = w
        .rows()
        .iter()
        .map(|r| {
            let id = match &r[0] {
                Some(Cell::Str(s)) => s.clone(),
                _ => panic!("an id"),
            };
            let v = match &r[2] {
                Some(Cell::Long(v)) => v.to_string(),
                _ => "∅".into(),
            };
            let deleted = matches!(r[4], Some(Cell::Bool(true)));
            format!("{id}|{v}{}", if deleted { " DELETED" } else { "" })
        })
        .collect();

    let s = store(&dir.0.join("t"));
    let inv = DeltaInventory::new(s.store.clone(), "t");
    let (rows, _) = read_all(&inv, &query(&["Id", "versionnumber"]), &s.store.calls)
        .await
        .unwrap();
    assert_eq!(show(&rows), want, "the writer's rows, in its file order");

    // A data file that is not parquet, and a log line that is not an action: BadResponse.
    let dir = Dir::new("delta-garbage");
    let mut w = delta_table(&dir).await;
    w.append(&[delta_row("k1", "one", 1)]).await.unwrap();
    let file = w.files()[0].path.clone();
    dir.write(&format!("t/{file}"), "PAR1 garbage");
    let s = store(&dir.0.join("t"));
    let inv = DeltaInventory::new(s.store.clone(), "t");
    let e = read_all(&inv, &query(&["Id"]), &s.store.calls)
        .await
        .unwrap_err();
    assert!(
        bad_response(&e).contains("not a readable Parquet file"),
        "{e}"
    );
    dir.write("t/_delta_log/00000000000000000002.json", "{oops\n");
    let e = read_all(&inv, &query(&["Id"]), &s.store.calls)
        .await
        .unwrap_err();
    assert!(bad_response(&e).contains("not a Delta log action"), "{e}");
}

#[tokio::test]
async fn the_lake_kinds_have_an_inventory_metered_like_their_probes() {
    let lake = Dir::new("kind-table");
    lake.write("model.json", MODEL);
    lake.write("account/2026.csv", csv_row("k1", "one", "d", 3));
    let url = url::Url::from_file_path(&lake.0).unwrap();
    let (sys, metrics) = system(&format!(
        "kind: synapse_link_csv\n    url: {url}\n    table: account\n    key_column: name\n    \
         layout: table\n"
    ));
    let inv = sys.inventory.expect("an inventory");
    assert!(sys.target.is_some());
    let mut next = None;
    let mut rows = Vec::new();
    loop {
        let page = inv
            .page(&query(&["Id", "versionnumber"]), next.as_deref())
            .await
            .unwrap();
        rows.extend(page.rows);
        match page.next {
            Some(n) => next = Some(n),
            None => break,
        }
    }
    assert_eq!(show(&rows), ["k1|3"]);
    let read = metrics.lake_bytes_read.with_label_values(&["lake"]).get();
    let listed = metrics
        .lake_objects_listed
        .with_label_values(&["lake"])
        .get();
    assert!(read > 0 && listed > 0, "read {read}, listed {listed}");

    let dir = Dir::new("kind-delta");
    let mut w = delta_table(&dir).await;
    w.append(&[delta_row("k1", "one", 7)]).await.unwrap();
    let url = url::Url::from_file_path(dir.0.join("t")).unwrap();
    let (sys, _) = system(&format!(
        "kind: delta\n    url: {url}\n    key_column: name\n"
    ));
    let inv = sys.inventory.expect("an inventory");
    let mut next = None;
    let mut rows = Vec::new();
    loop {
        let page = inv
            .page(&query(&["Id", "versionnumber"]), next.as_deref())
            .await
            .unwrap();
        rows.extend(page.rows);
        match page.next {
            Some(n) => next = Some(n),
            None => break,
        }
    }
    assert_eq!(show(&rows), ["k1|7"]);
}
