//! delta-rs, the reference Delta implementation, against lagwatch's Delta code (see
//! `tests/common/delta.rs`):
//!
//! - the emulator's `DeltaWriter` writes a table (appends, a compaction, a checkpoint, more
//!   appends, an expired log, a vacuum) and delta-rs reads it back, after the compaction (log
//!   replay only) and at the end (from the checkpoint): same version, schema, rows and files.
//!   This is what says our writer makes valid Delta.
//! - delta-rs writes the reference table the Delta reader is tested against
//!   ([`common::delta::reference_table`]); its files are where a reader looks for them, and
//!   the `parquet` crate's record API decodes its checkpoint and data files (snappy and zstd).
//!
//! Without delta-rs (`.tools/pydelta`) the tests skip, unless `LAGWATCH_REQUIRE_TOOLS=1`.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::delta::{
    PyDelta, ReferenceSpec, SENTINEL_ID, lake_cells, lake_delete_marker_cells, lake_schema,
    lake_sentinel_cells, reference_table, row_json, schema_json, sorted_rows,
};
use lagwatch_emulator::LocalDirSink;
use lagwatch_emulator::delta::{Cell, DeltaWriter};
use parquet::file::reader::{FileReader as _, SerializedFileReader};
use parquet::record::Field;
use serde_json::Value;

const ROOT: &str = "dataverse-demo-crm/deltalake/account";

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        Scratch(
            std::env::temp_dir().join(format!("lagwatch-delta-ref-{tag}-{}", uuid::Uuid::now_v7())),
        )
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn log_files(table: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(table.join("_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Checks that delta-rs sees what the writer holds: version, schema, rows, live files.
fn assert_delta_rs_agrees(py: &PyDelta, table: &Path, writer: &DeltaWriter) -> Value {
    let schema = writer.schema().unwrap();
    let seen = py.read(table);
    assert_eq!(seen["version"], writer.version().unwrap(), "{seen}");
    let columns: Vec<(String, String)> = seen["schema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(columns, schema_json(schema));
    let expected = sorted_rows(
        writer
            .rows()
            .into_iter()
            .map(|r| Value::Object(row_json(schema, r))),
    );
    assert_eq!(seen["num_rows"], expected.len());
    assert_eq!(
        sorted_rows(seen["rows"].as_array().unwrap().iter().cloned()),
        expected
    );
    let files: Vec<(String, i64, i64)> = seen["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["size"].as_i64().unwrap(),
                f["num_records"]
                    .as_i64()
                    .expect("delta-rs parsed numRecords"),
            )
        })
        .collect();
    let mut ours: Vec<(String, i64, i64)> = writer
        .files()
        .iter()
        .map(|f| {
            let stats: Value = serde_json::from_str(&f.stats).unwrap();
            (
                f.path.clone(),
                f.size,
                stats["numRecords"].as_i64().unwrap(),
            )
        })
        .collect();
    ours.sort();
    assert_eq!(files, ours);
    seen
}

#[tokio::test]
async fn delta_rs_reads_what_the_emulator_writes() {
    let Some(py) = PyDelta::find() else { return };
    let scratch = Scratch::new("writer");
    let table = scratch.0.join(ROOT);
    let sink = Arc::new(LocalDirSink::new(&scratch.0));
    let mut writer = DeltaWriter::new(sink, ROOT);
    writer.create(lake_schema()).await.unwrap();

    let mut first = lake_cells(0, 3);
    // Stats edge cases: a long non-ASCII string (its max is cut and padded), quotes, a newline.
    first[0][6] = Some(Cell::Str(format!(
        "Ünïcödé {} \"quoted\"\nsecond line",
        "✓".repeat(40)
    )));
    writer.append(&first).await.unwrap();
    writer.append(&lake_cells(3, 2)).await.unwrap();
    writer
        .append(&[lake_delete_marker_cells(1), lake_cells(5, 1).remove(0)])
        .await
        .unwrap();
    assert_eq!(writer.compact().await.unwrap(), Some(4));
    // Log replay only: version 4 removes three files and adds one.
    let seen = assert_delta_rs_agrees(&py, &table, &writer);
    let ops: Vec<&str> = seen["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["CREATE TABLE", "WRITE", "WRITE", "WRITE", "OPTIMIZE"]);

    writer
        .append(&[lake_sentinel_cells("SENTINEL-writer-1")])
        .await
        .unwrap();
    assert_eq!(writer.checkpoint().await.unwrap(), 5);
    writer.append(&lake_cells(6, 2)).await.unwrap();
    let expired = writer.expire_log(6).await.unwrap();
    assert_eq!(expired.len(), 5, "commits 0–4");
    let vacuumed = writer.vacuum(Duration::ZERO).await.unwrap();
    assert_eq!(vacuumed.len(), 3, "the compacted files");
    assert_eq!(
        log_files(&table),
        [
            "00000000000000000005.checkpoint.parquet",
            "00000000000000000005.json",
            "00000000000000000006.json",
            "_last_checkpoint"
        ]
    );

    // From the checkpoint: version 6, the history left is 5 and 6.
    let seen = assert_delta_rs_agrees(&py, &table, &writer);
    let versions: Vec<i64> = seen["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [5, 6]);
    let sentinel = py.read_where(&table, "name", "SENTINEL-writer-1");
    let rows = sentinel["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{sentinel}");
    assert_eq!(rows[0]["Id"], SENTINEL_ID);
}

/// Every record of a parquet file through the record API.
fn parquet_rows(path: &Path) -> Vec<parquet::record::Row> {
    let reader = SerializedFileReader::new(Bytes::from(std::fs::read(path).unwrap()))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    reader
        .get_row_iter(None)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn column<'a>(row: &'a parquet::record::Row, name: &str) -> &'a Field {
    row.get_column_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| f)
        .unwrap_or(&Field::Null)
}

#[test]
fn delta_rs_writes_reference_tables_for_the_reader() {
    let scratch = Scratch::new("reference");
    let dir = scratch.0.join("deltalake/account");
    let Some(table) = reference_table(&dir, &ReferenceSpec::lake_history("SENTINEL-ref-1")) else {
        return;
    };
    assert_eq!(table, dir);
    let log = log_files(&table);
    // The log before the checkpoint is gone; the checkpoint, its commit and the last commit
    // stay.
    assert_eq!(
        log,
        [
            "00000000000000000004.checkpoint.parquet",
            "00000000000000000004.json",
            "00000000000000000005.json",
            "_last_checkpoint"
        ],
        "{log:?}"
    );
    let last: Value = serde_json::from_str(
        &std::fs::read_to_string(table.join("_delta_log/_last_checkpoint")).unwrap(),
    )
    .unwrap();
    assert_eq!(last["version"], 4);

    // The parquet crate decodes delta-rs's checkpoint: one action per row, live files in add.
    let checkpoint =
        parquet_rows(&table.join("_delta_log/00000000000000000004.checkpoint.parquet"));
    assert_eq!(checkpoint.len(), last["size"].as_u64().unwrap() as usize);
    let adds: Vec<String> = checkpoint
        .iter()
        .filter_map(|r| match column(r, "add") {
            Field::Group(add) => match column(add, "path") {
                Field::Str(p) => Some(p.clone()),
                other => panic!("add.path {other:?}"),
            },
            _ => None,
        })
        .collect();
    assert_eq!(adds.len(), 1, "one compacted file");

    // delta-rs finds the sentinel; so does the record API in the files delta-rs lists.
    let py = PyDelta::find().expect("found above");
    let seen = py.read_where(&table, "name", "SENTINEL-ref-1");
    assert_eq!(seen["version"], 5);
    assert_eq!(seen["num_rows"], 9 + 2);
    assert_eq!(seen["rows"].as_array().unwrap().len(), 1);
    let mut found = 0;
    let mut codecs = Vec::new();
    for f in seen["files"].as_array().unwrap() {
        let path = f["path"].as_str().unwrap();
        codecs.push(path.rsplit('.').nth(1).unwrap().to_string());
        for r in parquet_rows(&table.join(path)) {
            if column(&r, "name") == &Field::Str("SENTINEL-ref-1".into()) {
                assert_eq!(column(&r, "Id"), &Field::Str(SENTINEL_ID.into()));
                assert!(matches!(
                    column(&r, "SinkCreatedOn"),
                    Field::TimestampMicros(_)
                ));
                found += 1;
            }
        }
    }
    assert_eq!(found, 1);
    codecs.sort();
    assert_eq!(
        codecs,
        ["snappy", "zstd"],
        "OPTIMIZE writes zstd, appends snappy"
    );
}
