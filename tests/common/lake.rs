//! Lakes written file by file for the lake tests, and lake systems built from YAML.
//!
//! The CSV helpers write the `account` table of a Synapse Link export (its CDM manifest
//! [`MODEL`] and headerless rows in that column order); [`DeltaTable`] writes a Delta table's
//! transaction log action by action, with Parquet data files of [`DELTA_SCHEMA`], so every case
//! of the protocol can be set up exactly.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use lagwatch::metrics::Metrics;
use lagwatch::systems::{BuildContext, System};
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use serde_json::{Value, json};

/// The CDM `model.json` of an export holding the `account` table (key `name`, payload
/// `description`).
pub const MODEL: &str = r#"{"name":"cdm","version":"1.0","entities":[
 {"$type":"LocalEntity","name":"account","attributes":[
  {"name":"Id","dataType":"guid"},{"name":"SinkCreatedOn","dataType":"dateTime"},
  {"name":"SinkModifiedOn","dataType":"dateTime"},{"name":"name","dataType":"string"},
  {"name":"description","dataType":"string"},{"name":"versionnumber","dataType":"int64"},
  {"name":"IsDelete","dataType":"boolean"}]}]}"#;

/// One headerless row of [`MODEL`]'s `account` table, with RFC 4180 quoting.
pub fn csv_row(key: &str, payload: &str) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    format!(
        "{},2026-11-02T10:15:07.1234567Z,2026-11-02T10:15:07.1234567Z,{},{},123,False\n",
        uuid::Uuid::now_v7(),
        q(key),
        q(payload)
    )
}

/// The system `lake` built from YAML as `lagwatch run` builds it (all its roles), with its
/// metrics. `block` is its body: `kind: …` then its other keys, each indented by 4 and ended
/// by a line feed.
pub fn system(block: &str) -> (System, Metrics) {
    let yaml = format!(
        "instance: test\n\
         systems:\n  crm:\n    kind: simulated\n  lake:\n    {block}\
         paths:\n  - source: crm\n    target: lake\n    timeout: 2h\n    objective: 30m\n"
    );
    let config = lagwatch_emulator::REGISTRY
        .from_yaml("lake.yaml", &yaml)
        .unwrap_or_else(|e| panic!("{e}"));
    let metrics = Metrics::new();
    let cx = BuildContext::new(metrics.clone());
    let gate = cx.gate("lake", config.limits["lake"]);
    let system = config.systems["lake"]
        .build("lake", &cx, gate)
        .unwrap_or_else(|e| panic!("{}: {}", e.key, e.reason));
    (system, metrics)
}

// ---------------------------------------------------------------- Delta

/// The schema of a [`DeltaTable`]: key `name`, payload `description`, and `SinkCreatedOn`.
pub const DELTA_SCHEMA: &str = r#"{"type":"struct","fields":[
 {"name":"Id","type":"string","nullable":true,"metadata":{}},
 {"name":"name","type":"string","nullable":true,"metadata":{}},
 {"name":"description","type":"string","nullable":true,"metadata":{}},
 {"name":"SinkCreatedOn","type":"timestamp","nullable":true,"metadata":{}}]}"#;

/// One data row of a [`DeltaTable`]: key, description, SinkCreatedOn (µs).
pub type DeltaRow = (String, String, i64);

/// A Delta table written by hand, one commit at a time.
pub struct DeltaTable {
    pub root: PathBuf,
    /// The last version committed.
    pub version: u64,
    /// Whether the folder is removed when the table is dropped.
    owned: bool,
}

impl DeltaTable {
    /// A new table (commit 0: protocol and metadata) in a fresh temp folder, removed when
    /// dropped.
    pub fn new() -> DeltaTable {
        let root =
            std::env::temp_dir().join(format!("lagwatch-delta-test-{}", uuid::Uuid::now_v7()));
        let mut t = DeltaTable::create_at(&root);
        t.owned = true;
        t
    }

    /// A new table (commit 0) at `root`, which is left in place when the table is dropped.
    pub fn create_at(root: &Path) -> DeltaTable {
        std::fs::create_dir_all(root.join("_delta_log")).unwrap();
        let t = DeltaTable::open(root, 0);
        t.write_commit(
            0,
            &[
                json!({"commitInfo": {"timestamp": 1_700_000_000_000_i64, "operation": "CREATE TABLE"}}),
                json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}),
                json!({"metaData": {"id": "t1", "format": {"provider": "parquet", "options": {}},
                    "schemaString": DELTA_SCHEMA, "partitionColumns": [], "configuration": {},
                    "createdTime": 1_700_000_000_000_i64}}),
            ],
        );
        t
    }

    /// The table at `root` whose last commit is `version`, to commit more to; nothing is
    /// written, and the folder is left in place when dropped.
    pub fn open(root: &Path, version: u64) -> DeltaTable {
        DeltaTable {
            root: root.to_path_buf(),
            version,
            owned: false,
        }
    }

    pub fn write_commit(&self, v: u64, actions: &[Value]) {
        let text: String = actions.iter().map(|a| format!("{a}\n")).collect();
        std::fs::write(self.root.join(format!("_delta_log/{v:020}.json")), text).unwrap();
    }

    /// Commits `actions` as the next version.
    pub fn commit(&mut self, actions: &[Value]) {
        self.version += 1;
        let mut all = vec![json!({"commitInfo": {"timestamp": now_ms(), "operation": "WRITE"}})];
        all.extend_from_slice(actions);
        self.write_commit(self.version, &all);
    }

    /// Writes a data file and returns its `add` action.
    pub fn data(&self, name: &str, rows: &[DeltaRow], data_change: bool, mtime_ms: i64) -> Value {
        let bytes = parquet_file(rows);
        std::fs::write(self.root.join(name), &bytes).unwrap();
        let keys = rows.iter().map(|r| r.0.as_str());
        let stats = json!({
            "numRecords": rows.len(),
            "minValues": {"name": keys.clone().min()},
            "maxValues": {"name": keys.max()},
        });
        json!({"add": {"path": name, "partitionValues": {}, "size": bytes.len(),
            "modificationTime": mtime_ms, "dataChange": data_change,
            "stats": stats.to_string()}})
    }

    pub fn remove(&self, name: &str, data_change: bool) -> Value {
        json!({"remove": {"path": name, "deletionTimestamp": now_ms(), "dataChange": data_change}})
    }

    pub fn bytes(&self, rel: &str) -> u64 {
        std::fs::metadata(self.root.join(rel)).unwrap().len()
    }
}

impl Drop for DeltaTable {
    fn drop(&mut self) {
        if self.owned {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// A snappy Parquet file with the four columns of [`DELTA_SCHEMA`].
pub fn parquet_file(rows: &[DeltaRow]) -> Vec<u8> {
    let schema = Arc::new(
        parquet::schema::parser::parse_message_type(
            "message spark_schema { optional binary Id (STRING); optional binary name (STRING); \
             optional binary description (STRING); \
             optional int64 SinkCreatedOn (TIMESTAMP(MICROS,true)); }",
        )
        .unwrap(),
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(parquet::basic::Compression::SNAPPY)
            .build(),
    );
    let mut w = SerializedFileWriter::new(Vec::new(), schema, props).unwrap();
    let mut rg = w.next_row_group().unwrap();
    let defs = vec![1i16; rows.len()];
    let strings = |f: &dyn Fn(&DeltaRow) -> String| -> Vec<ByteArray> {
        rows.iter()
            .map(|r| ByteArray::from(f(r).as_str()))
            .collect()
    };
    let columns = [
        strings(&|_| uuid::Uuid::now_v7().to_string()),
        strings(&|r| r.0.clone()),
        strings(&|r| r.1.clone()),
    ];
    for values in &columns {
        let mut c = rg.next_column().unwrap().unwrap();
        c.typed::<ByteArrayType>()
            .write_batch(values, Some(&defs), None)
            .unwrap();
        c.close().unwrap();
    }
    let mut c = rg.next_column().unwrap().unwrap();
    let times: Vec<i64> = rows.iter().map(|r| r.2).collect();
    c.typed::<Int64Type>()
        .write_batch(&times, Some(&defs), None)
        .unwrap();
    c.close().unwrap();
    rg.close().unwrap();
    w.into_inner().unwrap()
}
