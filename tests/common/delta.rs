//! delta-rs, the reference Delta Lake implementation, for the Delta tests.
//!
//! Why: lagwatch writes Delta tables (the emulator's `DeltaWriter`) and reads them (the `delta`
//! kind) with its own code; a second, independent implementation says whether what we write is
//! valid Delta and gives the reader tables written the way real engines write them
//! (checkpoints, OPTIMIZE, expired logs, zstd). delta-rs runs from the Python virtual
//! environment `.tools/pydelta` (pinned `deltalake` and `pyarrow`, made by
//! `scripts/install-test-tools`) through `tests/fixtures/delta_reference.py`, whose doc string
//! gives its command line and JSON.
//!
//! Without the environment the callers skip with a message, unless `LAGWATCH_REQUIRE_TOOLS=1`
//! (`scripts/test`, CI), where they fail: the convention of `tests/it/lake_azurite.rs`.
//! `LAGWATCH_PYDELTA_PYTHON` names another Python with `deltalake` installed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Duration, Utc};
use lagwatch_emulator::delta::{Cell, DeltaSchema};
use lagwatch_emulator::scenario::ColumnType;
use serde::Serialize;
use serde_json::{Map, Value, json};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/delta_reference.py")
}

/// The Python that runs delta-rs.
#[derive(Debug, Clone)]
pub struct PyDelta {
    python: PathBuf,
}

impl PyDelta {
    /// The installed environment, or `None` (with the reason printed) when it is missing and
    /// tools are not required.
    ///
    /// # Panics
    /// When it is missing and `LAGWATCH_REQUIRE_TOOLS=1`.
    pub fn find() -> Option<PyDelta> {
        let python = std::env::var_os("LAGWATCH_PYDELTA_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/pydelta/bin/python")
            });
        if python.exists() {
            return Some(PyDelta { python });
        }
        super::tools::missing(
            "delta-rs",
            &format!("is not installed ({} is missing)", python.display()),
        );
        None
    }

    /// Runs the script; its JSON output. Panics with its stderr when it fails.
    fn run(&self, args: &[&std::ffi::OsStr]) -> Value {
        let out = Command::new(&self.python)
            .arg(script())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.python.display()));
        assert!(
            out.status.success(),
            "delta_reference.py {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "delta_reference.py printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// delta-rs's view of a table: `{"version", "schema", "num_rows", "rows", "files",
    /// "history"}`.
    pub fn read(&self, table: &Path) -> Value {
        self.run(&["read".as_ref(), table.as_os_str()])
    }

    /// Like [`read`](Self::read), `rows` only those whose `column` (as text) is `value`.
    pub fn read_where(&self, table: &Path, column: &str, value: &str) -> Value {
        let filter = format!("{column}={value}");
        self.run(&[
            "read".as_ref(),
            table.as_os_str(),
            "--where".as_ref(),
            filter.as_ref(),
        ])
    }

    /// Builds the table at `table` (which must not hold one yet) with delta-rs; returns
    /// `{"version", "log", "files"}`. The spec is written beside it as `<table>.spec.json`.
    pub fn write(&self, table: &Path, spec: &ReferenceSpec) -> Value {
        let spec_path = PathBuf::from(format!("{}.spec.json", table.display()));
        if let Some(parent) = spec_path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&spec_path, serde_json::to_vec_pretty(spec).unwrap()).unwrap();
        self.run(&["write".as_ref(), table.as_os_str(), spec_path.as_os_str()])
    }
}

/// A reference table written by delta-rs at `dir` (created; it must not hold a table yet),
/// following `spec`; returns its root (`dir`). `None` when delta-rs is not installed and tools
/// are not required (the skip is printed); the caller returns early.
///
/// # Panics
/// When delta-rs is required but missing, or fails.
pub fn reference_table(dir: &Path, spec: &ReferenceSpec) -> Option<PathBuf> {
    let py = PyDelta::find()?;
    py.write(dir, spec);
    Some(dir.to_path_buf())
}

/// How `delta_reference.py write` builds a table: columns, table configuration, and steps.
#[derive(Debug, Clone, Serialize)]
pub struct ReferenceSpec {
    /// Every column is nullable.
    pub columns: Vec<SpecColumn>,
    /// Table properties (`delta.logRetentionDuration`, …).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub configuration: BTreeMap<String, String>,
    /// In order; each append is one commit.
    pub ops: Vec<SpecOp>,
}

/// A column: name and Delta type name (`string`, `long`, `boolean`, `timestamp`).
#[derive(Debug, Clone, Serialize)]
pub struct SpecColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
}

/// One step of a reference table's history.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpecOp {
    /// One commit with these rows (column → JSON value; timestamps as RFC 3339 text).
    Append(Vec<Map<String, Value>>),
    /// `optimize.compact()`: every small file rewritten into one (zstd, delta-rs's default).
    Compact,
    /// `create_checkpoint()` at the current version.
    Checkpoint,
    /// `cleanup_metadata()`: commits older than the last checkpoint and the log retention
    /// are deleted.
    CleanupMetadata,
    /// `vacuum` with no retention: removed data files are deleted.
    Vacuum,
}

/// The sentinel row's `Id` in [`ReferenceSpec::lake_history`] (its key is the `name`).
pub const SENTINEL_ID: &str = "5e471e1a-0000-4000-8000-00000000cafe";

impl ReferenceSpec {
    /// A spec with `schema`'s columns and no step yet.
    pub fn new(schema: &DeltaSchema) -> Self {
        ReferenceSpec {
            columns: schema
                .fields()
                .iter()
                .map(|f| SpecColumn {
                    name: f.name.clone(),
                    data_type: f.data_type.name().to_string(),
                })
                .collect(),
            configuration: BTreeMap::new(),
            ops: Vec::new(),
        }
    }

    /// An emulated lake table of accounts (the demo's columns: `name`, `accountnumber`,
    /// `customertypecode`, `description`, id `accountid`), with a log retention of zero so
    /// [`SpecOp::CleanupMetadata`] expires every commit before the last checkpoint at once.
    pub fn lake() -> Self {
        let mut spec = ReferenceSpec::new(&lake_schema());
        spec.configuration.insert(
            "delta.logRetentionDuration".into(),
            "interval 0 seconds".into(),
        );
        spec
    }

    /// The history a Delta reader must cope with: three appends of three rows, a compaction,
    /// a checkpoint, an append holding the sentinel (`name` = `sentinel`, `Id` =
    /// [`SENTINEL_ID`]) and a delete marker after it, then the log expired up to the
    /// checkpoint. Versions: 0 create, 1–3 appends, 4 optimize (checkpoint), 5 sentinel.
    pub fn lake_history(sentinel: &str) -> Self {
        ReferenceSpec::lake()
            .then(SpecOp::Append(lake_rows(0, 3)))
            .then(SpecOp::Append(lake_rows(3, 3)))
            .then(SpecOp::Append(lake_rows(6, 3)))
            .then(SpecOp::Compact)
            .then(SpecOp::Checkpoint)
            .then(SpecOp::Append(vec![
                lake_sentinel(sentinel),
                lake_delete_marker(1),
            ]))
            .then(SpecOp::CleanupMetadata)
    }

    /// Adds a step.
    pub fn then(mut self, op: SpecOp) -> Self {
        self.ops.push(op);
        self
    }
}

/// The lake schema of [`ReferenceSpec::lake`] (what the emulator's lake writes for the demo's
/// accounts table).
pub fn lake_schema() -> DeltaSchema {
    DeltaSchema::lake_table(
        "accountid",
        [
            ("name", ColumnType::String),
            ("accountnumber", ColumnType::String),
            ("customertypecode", ColumnType::Int),
            ("description", ColumnType::String),
        ],
    )
    .expect("the lake schema")
}

fn guid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

fn lake_time(n: u64) -> DateTime<Utc> {
    let base = DateTime::parse_from_rfc3339("2026-11-02T10:15:00.123456Z").expect("time");
    base.with_timezone(&Utc) + Duration::seconds(i64::try_from(n).unwrap_or(0))
}

/// Lake rows `start..start + count` as cells of [`lake_schema`] (deterministic values).
pub fn lake_cells(start: u64, count: u64) -> Vec<Vec<Option<Cell>>> {
    (start..start + count)
        .map(|n| {
            let at = lake_time(n);
            let i = i64::try_from(n).unwrap_or(0);
            vec![
                Some(Cell::Str(guid(n))),
                Some(Cell::Timestamp(at)),
                Some(Cell::Timestamp(at)),
                Some(Cell::Str(format!("ACC-{n:04}"))),
                Some(Cell::Long(i % 3)),
                (n % 2 == 0).then(|| Cell::Str(format!("row {n}, with a comma"))),
                Some(Cell::Str(format!("Account {n}"))),
                Some(Cell::Str(guid(n))),
                Some(Cell::Timestamp(at - Duration::seconds(2))),
                Some(Cell::Timestamp(at - Duration::seconds(1))),
                Some(Cell::Long(1000 + i)),
                Some(Cell::Bool(false)),
            ]
        })
        .collect()
}

/// The sentinel row as cells of [`lake_schema`]: `name` = `key`, `Id` = [`SENTINEL_ID`].
pub fn lake_sentinel_cells(key: &str) -> Vec<Option<Cell>> {
    let mut row = lake_cells(99, 1).remove(0);
    row[0] = Some(Cell::Str(SENTINEL_ID.into()));
    row[6] = Some(Cell::Str(key.into()));
    row[7] = Some(Cell::Str(SENTINEL_ID.into()));
    row
}

/// A delete marker of lake row `n` as cells: only `Id`, the sink times and `IsDelete`.
pub fn lake_delete_marker_cells(n: u64) -> Vec<Option<Cell>> {
    let at = lake_time(500 + n);
    let mut row = vec![None; lake_schema().fields().len()];
    row[0] = Some(Cell::Str(guid(n)));
    row[1] = Some(Cell::Timestamp(at));
    row[2] = Some(Cell::Timestamp(at));
    row[11] = Some(Cell::Bool(true));
    row
}

/// Rows as `delta_reference.py` takes and prints them.
pub fn lake_rows(start: u64, count: u64) -> Vec<Map<String, Value>> {
    let schema = lake_schema();
    lake_cells(start, count)
        .iter()
        .map(|r| row_json(&schema, r))
        .collect()
}

/// The sentinel row as JSON.
pub fn lake_sentinel(key: &str) -> Map<String, Value> {
    row_json(&lake_schema(), &lake_sentinel_cells(key))
}

/// A delete marker as JSON.
pub fn lake_delete_marker(n: u64) -> Map<String, Value> {
    row_json(&lake_schema(), &lake_delete_marker_cells(n))
}

/// A row as `delta_reference.py` prints it: column → value, timestamps as RFC 3339 UTC with
/// microseconds.
pub fn row_json(schema: &DeltaSchema, row: &[Option<Cell>]) -> Map<String, Value> {
    schema
        .fields()
        .iter()
        .zip(row)
        .map(|(f, cell)| {
            let v = match cell {
                None => Value::Null,
                Some(Cell::Str(s)) => json!(s),
                Some(Cell::Long(n)) => json!(n),
                Some(Cell::Bool(b)) => json!(b),
                Some(Cell::Timestamp(t)) => json!(t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
            };
            (f.name.clone(), v)
        })
        .collect()
}

/// Rows sorted by their JSON text: both sides of a comparison with `delta_reference.py read`
/// go through this, so the order does not depend on how Python sorts.
pub fn sorted_rows(rows: impl IntoIterator<Item = Value>) -> Vec<Value> {
    let mut rows: Vec<Value> = rows.into_iter().collect();
    rows.sort_by_cached_key(Value::to_string);
    rows
}

/// `(name, type)` of a schema, as `delta_reference.py read` prints them.
pub fn schema_json(schema: &DeltaSchema) -> Vec<(String, String)> {
    schema
        .fields()
        .iter()
        .map(|f| (f.name.clone(), f.data_type.name().to_string()))
        .collect()
}
