//! A Delta Lake table writer for the emulated lake: transaction log, snappy parquet data files,
//! OPTIMIZE-style compaction, classic checkpoints, log retention and vacuum.
//!
//! Why: Synapse Link to Fabric and BYOS Parquet export Dataverse tables as Delta tables (fact
//! sheet §5.6). lagwatch's Delta reader has to be tested against real tables whose content and
//! history are known exactly, and the demo should show a Fabric-like lake, so the emulator
//! writes the files itself, through the same [`LakeSink`] as the CSV export. What it writes
//! follows the Delta transaction protocol (`PROTOCOL.md` of delta-io/delta), and
//! `tests/it/delta_reference.rs` has delta-rs, the reference implementation, read it back.
//!
//! # Layout
//!
//! Under the table's prefix (`<container>/deltalake/account`):
//!
//! ```text
//! _delta_log/00000000000000000000.json            version 0: commitInfo, protocol, metaData
//! _delta_log/00000000000000000001.json            commitInfo, add (one per append)
//! _delta_log/00000000000000000004.checkpoint.parquet   protocol, metaData, add, remove rows
//! _delta_log/_last_checkpoint                     {"version":4,"size":6,…}
//! part-00000-<uuid>-c000.snappy.parquet           data files (never overwritten)
//! ```
//!
//! - Commits are newline-delimited JSON, one action a line, written whole with
//!   [`LakeSink::write_atomic`]: the protocol makes a commit file the unit of atomicity. This
//!   writer is the only one of its table, so it knows the next version and never overwrites
//!   a commit.
//! - Protocol `{minReaderVersion: 1, minWriterVersion: 2}`: no table features, so any reader
//!   can read the table. No partition columns, empty configuration.
//! - Data files: flat schema, every column optional; strings `BYTE_ARRAY (STRING)`, longs
//!   `INT64`, booleans `BOOLEAN`, timestamps `INT64 TIMESTAMP(MICROS, adjusted to UTC)` (the
//!   protocol's mapping for `timestamp`); snappy, what Spark and Fabric write by default.
//! - `add.stats` is a JSON string: `numRecords`, `minValues`, `maxValues`, `nullCount`, as
//!   Spark computes them (the protocol's "Per-file Statistics"): strings cut to a 32-character
//!   prefix (Spark's default); a cut maximum gets U+10FFFF appended so it stays an upper bound,
//!   or is left out when the next character already is U+10FFFF; timestamps truncated to
//!   milliseconds (`2026-11-02T10:15:07.123Z`); booleans only in `nullCount`; a column with
//!   only nulls has no min/max.
//! - Compaction is one commit that `remove`s every live file and `add`s one file holding their
//!   rows in order, both with `dataChange: false`, like Delta's OPTIMIZE. Removed files stay on
//!   storage until [`DeltaWriter::vacuum`]. Files of an initial load
//!   ([`DeltaWriter::append_sealed`]) are sealed: compaction leaves them alone, as OPTIMIZE
//!   leaves files of its target size, and the writer does not keep their rows.
//! - Checkpoints are classic V1 checkpoints (`<version>.checkpoint.parquet`, one row per action:
//!   protocol, metaData, every live add, every unexpired remove), with the protocol's column
//!   names and nested types (maps and lists with three-level repetition); fields the protocol
//!   marks required are `required` inside their optional action group, as delta-rs writes them.
//!   Tombstones expire after [`DEFAULT_TOMBSTONE_RETENTION`] (`delta.deletedFileRetentionDuration`'s
//!   default), counted on the writer's clock.
//! - [`DeltaWriter::expire_log`] is the protocol's metadata cleanup: commits and checkpoints
//!   older than the newest checkpoint at or before a version are deleted; that checkpoint and
//!   its commit stay.
//!
//! The writer keeps the rows of live files in memory (compaction rewrites them; [`LakeSink`]
//! has no read): fine for the emulator's small tables, not a general-purpose writer. Clock and
//! ids are injectable ([`DeltaWriter::with_clock`], [`DeltaWriter::with_ids`]) so tests get
//! the same bytes every run.
//!
//! Left out: partitioning, deletion vectors, table features, `txn`/`domainMetadata` actions,
//! `stats_parsed`, multi-part and V2 checkpoints, `.crc` files, concurrent writers.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parquet::basic::{Compression, LogicalType, Repetition, TimeUnit, Type as PhysicalType};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::{SchemaDescriptor, Type, TypePtr};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::lake_sink::LakeSink;
use super::scenario::ColumnType;

/// The log folder under a table's root.
pub const LOG_DIR: &str = "_delta_log";

/// Characters of a string kept in `minValues`/`maxValues` (Spark's
/// `delta.dataSkippingStringPrefixLength` default).
pub const STATS_STRING_PREFIX: usize = 32;

/// How long a `remove` stays in checkpoints as a tombstone (the default of
/// `delta.deletedFileRetentionDuration`, one week).
pub const DEFAULT_TOMBSTONE_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// What the engine calls itself in `commitInfo.engineInfo` and the parquet `created_by`.
const ENGINE: &str = "lagwatch-emulator";

/// Errors of the Delta writer.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// The sink failed.
    #[error("delta table storage: {0}")]
    Io(#[from] io::Error),
    /// Encoding a parquet file failed.
    #[error("delta table parquet: {0}")]
    Parquet(#[from] ParquetError),
    /// [`DeltaWriter::create`] was called twice.
    #[error("the delta table at {0:?} is already created")]
    AlreadyCreated(String),
    /// A call other than [`DeltaWriter::create`] came first.
    #[error("the delta table at {0:?} is not created yet")]
    NotCreated(String),
    /// The schema is unusable (no column, an empty or duplicate name).
    #[error("delta schema: {0}")]
    Schema(String),
    /// A row does not fit the schema.
    #[error("row {row}: {reason}")]
    Row {
        /// Index of the row in the append.
        row: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// [`DeltaWriter::append`] with no row (a data file holds at least one).
    #[error("an append needs at least one row")]
    NoRows,
}

/// A column type of the emulated lake tables (a subset of Delta's primitive types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaType {
    /// `string`: UTF-8 text.
    String,
    /// `long`: signed 64-bit integer.
    Long,
    /// `boolean`.
    Boolean,
    /// `timestamp`: microseconds since the Unix epoch, UTC.
    Timestamp,
}

impl DeltaType {
    /// The type's name in a Delta schema string.
    pub fn name(self) -> &'static str {
        match self {
            DeltaType::String => "string",
            DeltaType::Long => "long",
            DeltaType::Boolean => "boolean",
            DeltaType::Timestamp => "timestamp",
        }
    }
}

/// One column of a table. Every column is nullable: lake rows carry nulls (a delete marker has
/// only its id, sink times and `IsDelete`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaField {
    /// Column name.
    pub name: String,
    /// Column type.
    pub data_type: DeltaType,
}

/// The columns of a table, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaSchema {
    fields: Vec<DeltaField>,
}

impl DeltaSchema {
    /// A schema from `(name, type)` pairs.
    ///
    /// # Errors
    /// [`DeltaError::Schema`] for no column, an empty name, or two names equal ignoring case
    /// (the protocol wants column names unique regardless of case).
    pub fn new<N: Into<String>>(
        fields: impl IntoIterator<Item = (N, DeltaType)>,
    ) -> Result<Self, DeltaError> {
        let fields: Vec<DeltaField> = fields
            .into_iter()
            .map(|(name, data_type)| DeltaField {
                name: name.into(),
                data_type,
            })
            .collect();
        if fields.is_empty() {
            return Err(DeltaError::Schema("a table needs a column".into()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for f in &fields {
            if f.name.is_empty() {
                return Err(DeltaError::Schema("a column name is empty".into()));
            }
            if !seen.insert(f.name.to_lowercase()) {
                return Err(DeltaError::Schema(format!(
                    "column {:?} appears twice (names are compared ignoring case)",
                    f.name
                )));
            }
        }
        Ok(DeltaSchema { fields })
    }

    /// The columns of an emulated lake table, in the order the CSV export writes them (see
    /// [`super::lake`]): `Id` (string), `SinkCreatedOn`, `SinkModifiedOn` (timestamp), the
    /// configured columns in name order (string / long / boolean), the table's id column
    /// (string), `createdon`, `modifiedon` (timestamp), `versionnumber` (long), `IsDelete`
    /// (boolean).
    ///
    /// # Errors
    /// [`DeltaError::Schema`] when a configured column collides with a system column.
    pub fn lake_table<'a>(
        id_column: &str,
        columns: impl IntoIterator<Item = (&'a str, ColumnType)>,
    ) -> Result<Self, DeltaError> {
        let mut configured: Vec<(&str, ColumnType)> = columns.into_iter().collect();
        configured.sort_by(|a, b| a.0.cmp(b.0));
        let mut fields = vec![
            ("Id".to_string(), DeltaType::String),
            ("SinkCreatedOn".to_string(), DeltaType::Timestamp),
            ("SinkModifiedOn".to_string(), DeltaType::Timestamp),
        ];
        fields.extend(configured.into_iter().map(|(name, ty)| {
            let ty = match ty {
                ColumnType::String => DeltaType::String,
                ColumnType::Int => DeltaType::Long,
                ColumnType::Bool => DeltaType::Boolean,
            };
            (name.to_string(), ty)
        }));
        fields.extend([
            (id_column.to_string(), DeltaType::String),
            ("createdon".to_string(), DeltaType::Timestamp),
            ("modifiedon".to_string(), DeltaType::Timestamp),
            ("versionnumber".to_string(), DeltaType::Long),
            ("IsDelete".to_string(), DeltaType::Boolean),
        ]);
        DeltaSchema::new(fields)
    }

    /// The columns.
    pub fn fields(&self) -> &[DeltaField] {
        &self.fields
    }

    /// The schema as the `metaData.schemaString` of the log (Spark's `StructType` JSON).
    pub fn schema_string(&self) -> String {
        let fields: Vec<Value> = self
            .fields
            .iter()
            .map(|f| {
                json!({"name": f.name, "type": f.data_type.name(), "nullable": true, "metadata": {}})
            })
            .collect();
        json!({"type": "struct", "fields": fields}).to_string()
    }

    /// The parquet schema of a data file. Built with the type builders, not the text parser,
    /// because column names are configured and need no escaping this way.
    fn parquet_type(&self) -> Result<TypePtr, DeltaError> {
        let mut columns = Vec::with_capacity(self.fields.len());
        for f in &self.fields {
            let (physical, logical) = match f.data_type {
                DeltaType::String => (PhysicalType::BYTE_ARRAY, Some(LogicalType::String)),
                DeltaType::Long => (PhysicalType::INT64, None),
                DeltaType::Boolean => (PhysicalType::BOOLEAN, None),
                DeltaType::Timestamp => (
                    PhysicalType::INT64,
                    Some(LogicalType::timestamp(true, TimeUnit::MICROS)),
                ),
            };
            let column = Type::primitive_type_builder(&f.name, physical)
                .with_repetition(Repetition::OPTIONAL)
                .with_logical_type(logical)
                .build()?;
            columns.push(Arc::new(column));
        }
        Ok(Arc::new(
            Type::group_type_builder("schema")
                .with_fields(columns)
                .build()?,
        ))
    }
}

/// One value of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// For a `string` column.
    Str(String),
    /// For a `long` column.
    Long(i64),
    /// For a `boolean` column.
    Bool(bool),
    /// For a `timestamp` column; kept to the microsecond (finer digits are dropped on append).
    Timestamp(DateTime<Utc>),
}

impl Cell {
    fn fits(&self, ty: DeltaType) -> bool {
        matches!(
            (self, ty),
            (Cell::Str(_), DeltaType::String)
                | (Cell::Long(_), DeltaType::Long)
                | (Cell::Bool(_), DeltaType::Boolean)
                | (Cell::Timestamp(_), DeltaType::Timestamp)
        )
    }
}

/// A row: one optional cell per schema column, in schema order (`None` is null).
pub type Row = Vec<Option<Cell>>;

/// A live data file, as its `add` action says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddFile {
    /// Path relative to the table root.
    pub path: String,
    /// Bytes.
    pub size: i64,
    /// Milliseconds since the epoch when it was written.
    pub modification_time: i64,
    /// `false` for a compacted file (its rows were already in the table).
    pub data_change: bool,
    /// The `stats` JSON string.
    pub stats: String,
}

/// A removed data file, as its `remove` action says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveFile {
    /// Path relative to the table root.
    pub path: String,
    /// Milliseconds since the epoch when it was removed.
    pub deletion_timestamp: i64,
    /// `false` when compaction removed it.
    pub data_change: bool,
    /// Bytes.
    pub size: i64,
}

/// The writer's clock (wall time: Delta timestamps are milliseconds since the epoch).
type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;
/// Where data file and table ids come from.
type Ids = Box<dyn FnMut() -> Uuid + Send + Sync>;

/// A live file and its rows (kept for compaction).
#[derive(Debug, Clone)]
struct LiveFile {
    add: AddFile,
    /// Empty for a sealed file.
    rows: Vec<Row>,
    /// Written by [`DeltaWriter::append_sealed`]: its rows are not kept and compaction leaves
    /// it alone.
    sealed: bool,
}

#[derive(Debug, Clone)]
struct Tombstone {
    remove: RemoveFile,
    /// The file was deleted from storage by [`DeltaWriter::vacuum`].
    vacuumed: bool,
}

/// The table as of the last commit.
#[derive(Debug, Clone)]
struct TableState {
    schema: DeltaSchema,
    id: Uuid,
    created_time: i64,
    version: i64,
    files: Vec<LiveFile>,
    tombstones: Vec<Tombstone>,
    /// Versions with a checkpoint on storage, ascending.
    checkpoints: Vec<i64>,
    /// The oldest commit still on storage.
    oldest_commit: i64,
}

/// Writes one Delta table under a path prefix of a [`LakeSink`]. See the module docs.
pub struct DeltaWriter {
    sink: Arc<dyn LakeSink>,
    root: String,
    clock: Clock,
    ids: Ids,
    tombstone_retention: Duration,
    table: Option<TableState>,
}

impl fmt::Debug for DeltaWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeltaWriter")
            .field("root", &self.root)
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

impl DeltaWriter {
    /// A writer for the table at `root` (a sink path such as `container/deltalake/account`;
    /// surrounding `/` are ignored, empty is the sink's root). Nothing is written before
    /// [`create`](Self::create). Clock: `Utc::now`; ids: UUID v7.
    pub fn new(sink: Arc<dyn LakeSink>, root: &str) -> Self {
        DeltaWriter {
            sink,
            root: root.trim_matches('/').to_string(),
            clock: Arc::new(Utc::now),
            ids: Box::new(Uuid::now_v7),
            tombstone_retention: DEFAULT_TOMBSTONE_RETENTION,
            table: None,
        }
    }

    /// Replaces the clock (commit timestamps, modification and deletion times, tombstone
    /// expiry, vacuum's age).
    #[must_use]
    pub fn with_clock(mut self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Replaces the id source (the table id, then one id per data file, in that order).
    #[must_use]
    pub fn with_ids(mut self, ids: impl FnMut() -> Uuid + Send + Sync + 'static) -> Self {
        self.ids = Box::new(ids);
        self
    }

    /// Replaces how long removed files stay in checkpoints as tombstones.
    #[must_use]
    pub fn with_tombstone_retention(mut self, retention: Duration) -> Self {
        self.tombstone_retention = retention;
        self
    }

    /// The table's root path in the sink.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The sink path of a file under the table root.
    pub fn path(&self, relative: &str) -> String {
        if self.root.is_empty() {
            relative.to_string()
        } else {
            format!("{}/{relative}", self.root)
        }
    }

    /// The sink path of the commit of `version`.
    pub fn commit_path(&self, version: i64) -> String {
        self.path(&format!("{LOG_DIR}/{version:020}.json"))
    }

    /// The sink path of the checkpoint of `version`.
    pub fn checkpoint_path(&self, version: i64) -> String {
        self.path(&format!("{LOG_DIR}/{version:020}.checkpoint.parquet"))
    }

    /// The sink path of `_last_checkpoint`.
    pub fn last_checkpoint_path(&self) -> String {
        self.path(&format!("{LOG_DIR}/_last_checkpoint"))
    }

    /// The latest committed version (`None` before [`create`](Self::create)).
    pub fn version(&self) -> Option<i64> {
        self.table.as_ref().map(|t| t.version)
    }

    /// The table's schema (`None` before [`create`](Self::create)).
    pub fn schema(&self) -> Option<&DeltaSchema> {
        self.table.as_ref().map(|t| &t.schema)
    }

    /// The table id (`metaData.id`).
    pub fn table_id(&self) -> Option<Uuid> {
        self.table.as_ref().map(|t| t.id)
    }

    /// The live files, oldest first.
    pub fn files(&self) -> Vec<&AddFile> {
        self.table
            .iter()
            .flat_map(|t| t.files.iter().map(|f| &f.add))
            .collect()
    }

    /// Every file removed so far (tombstones, expired or not, vacuumed or not), oldest first.
    pub fn removed(&self) -> Vec<&RemoveFile> {
        self.table
            .iter()
            .flat_map(|t| t.tombstones.iter().map(|t| &t.remove))
            .collect()
    }

    /// The rows of the table as of the latest version, in file order (what a reader sees),
    /// but those of sealed files ([`append_sealed`](Self::append_sealed)), which are not kept.
    pub fn rows(&self) -> Vec<&Row> {
        self.table
            .iter()
            .flat_map(|t| t.files.iter().flat_map(|f| f.rows.iter()))
            .collect()
    }

    /// Versions that have a checkpoint on storage, ascending.
    pub fn checkpoints(&self) -> &[i64] {
        self.table.as_ref().map_or(&[], |t| &t.checkpoints)
    }

    /// The oldest commit version still on storage.
    pub fn oldest_commit(&self) -> Option<i64> {
        self.table.as_ref().map(|t| t.oldest_commit)
    }

    fn now_ms(&self) -> i64 {
        (self.clock)().timestamp_millis()
    }

    fn state_mut(&mut self) -> Result<&mut TableState, DeltaError> {
        self.table
            .as_mut()
            .ok_or_else(|| DeltaError::NotCreated(self.root.clone()))
    }

    fn state(&self) -> Result<&TableState, DeltaError> {
        self.table
            .as_ref()
            .ok_or_else(|| DeltaError::NotCreated(self.root.clone()))
    }

    /// Creates the table: version 0 with `commitInfo`, `protocol` and `metaData`.
    ///
    /// # Errors
    /// [`DeltaError::AlreadyCreated`] on a second call; the sink's errors.
    pub async fn create(&mut self, schema: DeltaSchema) -> Result<i64, DeltaError> {
        if self.table.is_some() {
            return Err(DeltaError::AlreadyCreated(self.root.clone()));
        }
        let now = self.now_ms();
        let state = TableState {
            schema,
            id: (self.ids)(),
            created_time: now,
            version: 0,
            files: Vec::new(),
            tombstones: Vec::new(),
            checkpoints: Vec::new(),
            oldest_commit: 0,
        };
        self.sink.create_dir(&self.path(LOG_DIR)).await?;
        let actions = [
            commit_info(
                now,
                "CREATE TABLE",
                json!({"mode": "ErrorIfExists", "partitionBy": "[]"}),
                true,
            ),
            protocol_json(),
            metadata_json(&state),
        ];
        self.commit(0, &actions).await?;
        self.table = Some(state);
        Ok(0)
    }

    /// Appends rows as one new data file and one commit; returns the new version.
    ///
    /// # Errors
    /// [`DeltaError::NoRows`], [`DeltaError::Row`] for a row that does not fit the schema,
    /// [`DeltaError::NotCreated`]; parquet and sink errors (the table is then unchanged; a
    /// data file written before a failed commit is an orphan no reader sees).
    pub async fn append(&mut self, rows: &[Row]) -> Result<i64, DeltaError> {
        let state = self.state()?;
        if rows.is_empty() {
            return Err(DeltaError::NoRows);
        }
        let rows = normalize_rows(&state.schema, rows)?;
        let version = state.version + 1;
        let now = self.now_ms();
        let add = self.write_data_file(&rows, now, true).await?;
        let actions = [
            commit_info(
                now,
                "WRITE",
                json!({"mode": "Append", "partitionBy": "[]"}),
                true,
            ),
            add_json(&add),
        ];
        self.commit(version, &actions).await?;
        let state = self.state_mut()?;
        state.version = version;
        state.files.push(LiveFile {
            add,
            rows,
            sealed: false,
        });
        Ok(version)
    }

    /// Appends rows as data files of one commit, one file per batch of `batches`, without
    /// keeping their rows: an initial load (a seeded table) too big to hold in memory, written
    /// a batch at a time. The files are sealed: [`compact`](Self::compact) leaves them alone,
    /// as OPTIMIZE leaves files of its target size, and [`rows`](Self::rows) does not list
    /// their rows. Returns the new version, or `None` (nothing written) when no batch has rows.
    ///
    /// Sealed files belong before the files of later appends (an initial load): compaction
    /// puts its file after them, which keeps the table's rows in commit order only then.
    ///
    /// # Errors
    /// As [`append`](Self::append); data files written before a failed commit are orphans.
    pub async fn append_sealed<I>(&mut self, batches: I) -> Result<Option<i64>, DeltaError>
    where
        I: Iterator<Item = Vec<Row>> + Send,
    {
        let version = self.state()?.version + 1;
        let now = self.now_ms();
        let mut adds = Vec::new();
        for batch in batches {
            if batch.is_empty() {
                continue;
            }
            let rows = normalize_rows(&self.state()?.schema, &batch)?;
            adds.push(self.write_data_file(&rows, now, true).await?);
        }
        if adds.is_empty() {
            return Ok(None);
        }
        let mut actions = vec![commit_info(
            now,
            "WRITE",
            json!({"mode": "Append", "partitionBy": "[]"}),
            true,
        )];
        actions.extend(adds.iter().map(add_json));
        self.commit(version, &actions).await?;
        let state = self.state_mut()?;
        state.version = version;
        state.files.extend(adds.into_iter().map(|add| LiveFile {
            add,
            rows: Vec::new(),
            sealed: true,
        }));
        Ok(Some(version))
    }

    /// Rewrites every live file that is not sealed into one, like OPTIMIZE: one commit
    /// removing them all and adding the new file after the sealed ones, both with
    /// `dataChange: false`. Returns the new version, or `None` (nothing written) when there
    /// are fewer than two such files.
    ///
    /// # Errors
    /// [`DeltaError::NotCreated`]; parquet and sink errors (the table is then unchanged).
    pub async fn compact(&mut self) -> Result<Option<i64>, DeltaError> {
        let state = self.state()?;
        let small: Vec<&LiveFile> = state.files.iter().filter(|f| !f.sealed).collect();
        if small.len() < 2 {
            return Ok(None);
        }
        let version = state.version + 1;
        let rows: Vec<Row> = small.iter().flat_map(|f| f.rows.clone()).collect();
        let now = self.now_ms();
        let removed: Vec<RemoveFile> = small
            .iter()
            .map(|f| RemoveFile {
                path: f.add.path.clone(),
                deletion_timestamp: now,
                data_change: false,
                size: f.add.size,
            })
            .collect();
        let add = self.write_data_file(&rows, now, false).await?;
        let mut actions = vec![commit_info(
            now,
            "OPTIMIZE",
            json!({"predicate": "[]", "zOrderBy": "[]"}),
            false,
        )];
        actions.extend(removed.iter().map(remove_json));
        actions.push(add_json(&add));
        self.commit(version, &actions).await?;
        let state = self.state_mut()?;
        state.version = version;
        state.files.retain(|f| f.sealed);
        state.files.push(LiveFile {
            add,
            rows,
            sealed: false,
        });
        state
            .tombstones
            .extend(removed.into_iter().map(|remove| Tombstone {
                remove,
                vacuumed: false,
            }));
        Ok(Some(version))
    }

    /// Writes a checkpoint of the latest version (`<version>.checkpoint.parquet`, then
    /// `_last_checkpoint`); returns that version.
    ///
    /// # Errors
    /// [`DeltaError::NotCreated`]; parquet and sink errors.
    pub async fn checkpoint(&mut self) -> Result<i64, DeltaError> {
        let state = self.state()?;
        let version = state.version;
        let now = self.now_ms();
        let retention = i64::try_from(self.tombstone_retention.as_millis()).unwrap_or(i64::MAX);
        let mut rows = vec![checkpoint_protocol(), checkpoint_metadata(state)];
        let mut adds = 0;
        for f in &state.files {
            rows.push(checkpoint_add(&f.add));
            adds += 1;
        }
        for t in &state.tombstones {
            if t.remove.deletion_timestamp.saturating_add(retention) > now {
                rows.push(checkpoint_remove(&t.remove));
            }
        }
        let schema = Arc::new(parse_message_type(CHECKPOINT_SCHEMA)?);
        let bytes = write_parquet(schema, &rows, Compression::SNAPPY)?;
        let size = rows.len();
        self.sink
            .write_atomic(&self.checkpoint_path(version), &bytes)
            .await?;
        let last = json!({
            "version": version,
            "size": size,
            "sizeInBytes": bytes.len(),
            "numOfAddFiles": adds,
        });
        self.sink
            .write_atomic(&self.last_checkpoint_path(), last.to_string().as_bytes())
            .await?;
        let state = self.state_mut()?;
        if state.checkpoints.last() != Some(&version) {
            state.checkpoints.push(version);
        }
        Ok(version)
    }

    /// Log retention (the protocol's metadata cleanup): finds the newest checkpoint at or
    /// before `before_version` and deletes every commit and checkpoint older than it. That
    /// checkpoint and its commit stay, so the table still reads from there on. Nothing happens
    /// without such a checkpoint. Returns the sink paths deleted.
    ///
    /// # Errors
    /// [`DeltaError::NotCreated`]; sink errors (what was deleted before stays deleted; a
    /// retry deletes the rest).
    pub async fn expire_log(&mut self, before_version: i64) -> Result<Vec<String>, DeltaError> {
        let state = self.state()?;
        let Some(&cutoff) = state
            .checkpoints
            .iter()
            .rev()
            .find(|&&v| v <= before_version)
        else {
            return Ok(Vec::new());
        };
        let mut paths: Vec<String> = (state.oldest_commit..cutoff)
            .map(|v| self.commit_path(v))
            .collect();
        paths.extend(
            state
                .checkpoints
                .iter()
                .filter(|&&v| v < cutoff)
                .map(|&v| self.checkpoint_path(v)),
        );
        for p in &paths {
            self.sink.delete(p).await?;
        }
        let state = self.state_mut()?;
        state.oldest_commit = state.oldest_commit.max(cutoff);
        state.checkpoints.retain(|&v| v >= cutoff);
        Ok(paths)
    }

    /// Vacuum: deletes the data files that commits removed at least `older_than` ago (by the
    /// writer's clock) and that are not live again. Writes no commit (the log already says the
    /// files are gone). Returns the sink paths deleted.
    ///
    /// # Errors
    /// [`DeltaError::NotCreated`]; sink errors.
    pub async fn vacuum(&mut self, older_than: Duration) -> Result<Vec<String>, DeltaError> {
        let state = self.state()?;
        let now = self.now_ms();
        let age = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
        let due: Vec<usize> = state
            .tombstones
            .iter()
            .enumerate()
            .filter(|(_, t)| {
                !t.vacuumed
                    && t.remove.deletion_timestamp <= now.saturating_sub(age)
                    && !state.files.iter().any(|f| f.add.path == t.remove.path)
            })
            .map(|(i, _)| i)
            .collect();
        let mut deleted = Vec::with_capacity(due.len());
        for &i in &due {
            let path = self.path(&state.tombstones[i].remove.path);
            self.sink.delete(&path).await?;
            deleted.push(path);
        }
        let state = self.state_mut()?;
        for i in due {
            state.tombstones[i].vacuumed = true;
        }
        Ok(deleted)
    }

    /// Writes one commit file whole.
    async fn commit(&self, version: i64, actions: &[Value]) -> Result<(), DeltaError> {
        let mut text = String::new();
        for a in actions {
            text.push_str(&a.to_string());
            text.push('\n');
        }
        self.sink
            .write_atomic(&self.commit_path(version), text.as_bytes())
            .await?;
        Ok(())
    }

    /// Writes rows as a new snappy parquet data file; returns its `add`.
    async fn write_data_file(
        &mut self,
        rows: &[Row],
        now: i64,
        data_change: bool,
    ) -> Result<AddFile, DeltaError> {
        let state = self.state()?;
        let parquet_schema = state.schema.parquet_type()?;
        let stats = file_stats(&state.schema, rows);
        let values: Vec<PValue> = rows
            .iter()
            .map(|row| PValue::Group(row.iter().map(cell_value).collect()))
            .collect();
        let bytes = write_parquet(parquet_schema, &values, Compression::SNAPPY)?;
        let name = format!("part-00000-{}-c000.snappy.parquet", (self.ids)());
        self.sink.write(&self.path(&name), &bytes).await?;
        Ok(AddFile {
            path: name,
            size: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
            modification_time: now,
            data_change,
            stats,
        })
    }
}

/// Checks rows against the schema and keeps timestamps to the microsecond.
fn normalize_rows(schema: &DeltaSchema, rows: &[Row]) -> Result<Vec<Row>, DeltaError> {
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            if row.len() != schema.fields.len() {
                return Err(DeltaError::Row {
                    row: i,
                    reason: format!("{} cells for {} columns", row.len(), schema.fields.len()),
                });
            }
            row.iter()
                .zip(&schema.fields)
                .map(|(cell, field)| match cell {
                    None => Ok(None),
                    Some(c) if !c.fits(field.data_type) => Err(DeltaError::Row {
                        row: i,
                        reason: format!(
                            "column {:?} is {}, not {c:?}",
                            field.name,
                            field.data_type.name()
                        ),
                    }),
                    Some(Cell::Timestamp(t)) => {
                        DateTime::from_timestamp_micros(t.timestamp_micros())
                            .map(|t| Some(Cell::Timestamp(t)))
                            .ok_or_else(|| DeltaError::Row {
                                row: i,
                                reason: format!("column {:?}: timestamp out of range", field.name),
                            })
                    }
                    Some(c) => Ok(Some(c.clone())),
                })
                .collect()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Log actions

fn commit_info(now: i64, operation: &str, parameters: Value, blind_append: bool) -> Value {
    json!({"commitInfo": {
        "timestamp": now,
        "operation": operation,
        "operationParameters": parameters,
        "isBlindAppend": blind_append,
        "engineInfo": ENGINE,
    }})
}

fn protocol_json() -> Value {
    json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}})
}

fn metadata_json(state: &TableState) -> Value {
    json!({"metaData": {
        "id": state.id.to_string(),
        "format": {"provider": "parquet", "options": {}},
        "schemaString": state.schema.schema_string(),
        "partitionColumns": [],
        "configuration": {},
        "createdTime": state.created_time,
    }})
}

fn add_json(add: &AddFile) -> Value {
    json!({"add": {
        "path": add.path,
        "partitionValues": {},
        "size": add.size,
        "modificationTime": add.modification_time,
        "dataChange": add.data_change,
        "stats": add.stats,
    }})
}

fn remove_json(remove: &RemoveFile) -> Value {
    json!({"remove": {
        "path": remove.path,
        "deletionTimestamp": remove.deletion_timestamp,
        "dataChange": remove.data_change,
        "extendedFileMetadata": true,
        "partitionValues": {},
        "size": remove.size,
    }})
}

// ---------------------------------------------------------------------------------------------
// Statistics

/// A timestamp as Delta statistics write it: milliseconds, truncated (the protocol's footnote).
fn stats_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A string minimum: its first [`STATS_STRING_PREFIX`] characters (a prefix is never greater).
fn stats_min_string(s: &str) -> String {
    s.chars().take(STATS_STRING_PREFIX).collect()
}

/// A string maximum: the string itself when short; else its prefix with U+10FFFF appended,
/// which sorts after every string continuing the prefix with a lower character (UTF-8 byte
/// order is code point order); `None` when the next character is U+10FFFF itself, where no
/// short bound exists.
fn stats_max_string(s: &str) -> Option<String> {
    let mut chars = s.chars();
    let prefix: String = chars.by_ref().take(STATS_STRING_PREFIX).collect();
    match chars.next() {
        None => Some(prefix),
        Some(char::MAX) => None,
        Some(_) => Some(prefix + "\u{10FFFF}"),
    }
}

/// The `stats` JSON string of a data file holding `rows`.
fn file_stats(schema: &DeltaSchema, rows: &[Row]) -> String {
    let mut min = Map::new();
    let mut max = Map::new();
    let mut nulls = Map::new();
    for (i, field) in schema.fields.iter().enumerate() {
        let cells = rows
            .iter()
            .filter_map(|r| r.get(i).and_then(Option::as_ref));
        let present = cells.clone().count();
        nulls.insert(field.name.clone(), json!(rows.len() - present));
        let (lo, hi): (Option<Value>, Option<Value>) = match field.data_type {
            DeltaType::Boolean => (None, None),
            DeltaType::String => {
                let strs = cells.filter_map(|c| match c {
                    Cell::Str(s) => Some(s.as_str()),
                    _ => None,
                });
                (
                    strs.clone().min().map(|s| json!(stats_min_string(s))),
                    strs.max().and_then(stats_max_string).map(Value::from),
                )
            }
            DeltaType::Long => {
                let longs = cells.filter_map(|c| match c {
                    Cell::Long(n) => Some(*n),
                    _ => None,
                });
                (
                    longs.clone().min().map(Value::from),
                    longs.max().map(Value::from),
                )
            }
            DeltaType::Timestamp => {
                let times = cells.filter_map(|c| match c {
                    Cell::Timestamp(t) => Some(*t),
                    _ => None,
                });
                (
                    times.clone().min().map(|t| json!(stats_time(t))),
                    times.max().map(|t| json!(stats_time(t))),
                )
            }
        };
        if let Some(v) = lo {
            min.insert(field.name.clone(), v);
        }
        if let Some(v) = hi {
            max.insert(field.name.clone(), v);
        }
    }
    json!({
        "numRecords": rows.len(),
        "minValues": min,
        "maxValues": max,
        "nullCount": nulls,
    })
    .to_string()
}

// ---------------------------------------------------------------------------------------------
// Checkpoint rows

/// The checkpoint's parquet schema: the protocol's action columns, required where the
/// protocol marks a field required, inside optional action groups (one action per row).
const CHECKPOINT_SCHEMA: &str = "
message checkpoint {
  optional group metaData {
    required binary id (STRING);
    optional binary name (STRING);
    optional binary description (STRING);
    required group format {
      required binary provider (STRING);
      required group options (MAP) {
        repeated group key_value {
          required binary key (STRING);
          optional binary value (STRING);
        }
      }
    }
    required binary schemaString (STRING);
    required group partitionColumns (LIST) {
      repeated group list {
        required binary element (STRING);
      }
    }
    optional int64 createdTime;
    required group configuration (MAP) {
      repeated group key_value {
        required binary key (STRING);
        optional binary value (STRING);
      }
    }
  }
  optional group protocol {
    required int32 minReaderVersion;
    required int32 minWriterVersion;
  }
  optional group add {
    required binary path (STRING);
    required group partitionValues (MAP) {
      repeated group key_value {
        required binary key (STRING);
        optional binary value (STRING);
      }
    }
    required int64 size;
    required int64 modificationTime;
    required boolean dataChange;
    optional binary stats (STRING);
  }
  optional group remove {
    required binary path (STRING);
    optional int64 deletionTimestamp;
    required boolean dataChange;
    optional boolean extendedFileMetadata;
    optional group partitionValues (MAP) {
      repeated group key_value {
        required binary key (STRING);
        optional binary value (STRING);
      }
    }
    optional int64 size;
  }
}
";

/// An empty map or list value: the group holding no repeated entry.
fn empty_repeated() -> PValue {
    PValue::Group(vec![PValue::Repeated(Vec::new())])
}

/// A checkpoint row: the four action columns, one of them set.
fn checkpoint_row(metadata: PValue, protocol: PValue, add: PValue, remove: PValue) -> PValue {
    PValue::Group(vec![metadata, protocol, add, remove])
}

fn checkpoint_protocol() -> PValue {
    let protocol = PValue::Group(vec![PValue::I32(1), PValue::I32(2)]);
    checkpoint_row(PValue::Null, protocol, PValue::Null, PValue::Null)
}

fn checkpoint_metadata(state: &TableState) -> PValue {
    let metadata = PValue::Group(vec![
        PValue::Str(state.id.to_string()),
        PValue::Null,
        PValue::Null,
        PValue::Group(vec![PValue::Str("parquet".into()), empty_repeated()]),
        PValue::Str(state.schema.schema_string()),
        empty_repeated(),
        PValue::I64(state.created_time),
        empty_repeated(),
    ]);
    checkpoint_row(metadata, PValue::Null, PValue::Null, PValue::Null)
}

fn checkpoint_add(add: &AddFile) -> PValue {
    let add = PValue::Group(vec![
        PValue::Str(add.path.clone()),
        empty_repeated(),
        PValue::I64(add.size),
        PValue::I64(add.modification_time),
        PValue::Bool(add.data_change),
        PValue::Str(add.stats.clone()),
    ]);
    checkpoint_row(PValue::Null, PValue::Null, add, PValue::Null)
}

fn checkpoint_remove(remove: &RemoveFile) -> PValue {
    let remove = PValue::Group(vec![
        PValue::Str(remove.path.clone()),
        PValue::I64(remove.deletion_timestamp),
        PValue::Bool(remove.data_change),
        PValue::Bool(true),
        empty_repeated(),
        PValue::I64(remove.size),
    ]);
    checkpoint_row(PValue::Null, PValue::Null, PValue::Null, remove)
}

// ---------------------------------------------------------------------------------------------
// Parquet: a small record shredder over the column writers

/// A value shaped like a parquet schema node: a primitive for a leaf, `Group` (children in
/// schema order) for a group, `Repeated` (one entry per repetition) for a repeated node, `Null`
/// for an absent optional value.
#[derive(Debug, Clone, PartialEq)]
enum PValue {
    Null,
    Str(String),
    I32(i32),
    I64(i64),
    Bool(bool),
    Group(Vec<PValue>),
    Repeated(Vec<PValue>),
}

fn cell_value(cell: &Option<Cell>) -> PValue {
    match cell {
        None => PValue::Null,
        Some(Cell::Str(s)) => PValue::Str(s.clone()),
        Some(Cell::Long(n)) => PValue::I64(*n),
        Some(Cell::Bool(b)) => PValue::Bool(*b),
        Some(Cell::Timestamp(t)) => PValue::I64(t.timestamp_micros()),
    }
}

/// The values of one leaf column.
enum LeafValues {
    Bytes(Vec<ByteArray>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
}

/// One leaf column being shredded: its non-null values and the levels of every entry.
struct Leaf {
    values: LeafValues,
    def: Vec<i16>,
    rep: Vec<i16>,
}

fn shape_error(what: impl fmt::Display) -> DeltaError {
    DeltaError::Parquet(ParquetError::General(format!(
        "value does not fit the parquet schema: {what}"
    )))
}

impl Leaf {
    fn new(physical: PhysicalType) -> Result<Self, DeltaError> {
        let values = match physical {
            PhysicalType::BYTE_ARRAY => LeafValues::Bytes(Vec::new()),
            PhysicalType::INT32 => LeafValues::I32(Vec::new()),
            PhysicalType::INT64 => LeafValues::I64(Vec::new()),
            PhysicalType::BOOLEAN => LeafValues::Bool(Vec::new()),
            other => return Err(shape_error(format!("unsupported physical type {other}"))),
        };
        Ok(Leaf {
            values,
            def: Vec::new(),
            rep: Vec::new(),
        })
    }

    fn push(&mut self, value: &PValue, def: i16, rep: i16) -> Result<(), DeltaError> {
        match (&mut self.values, value) {
            (LeafValues::Bytes(v), PValue::Str(s)) => v.push(ByteArray::from(s.as_str())),
            (LeafValues::I32(v), PValue::I32(n)) => v.push(*n),
            (LeafValues::I64(v), PValue::I64(n)) => v.push(*n),
            (LeafValues::Bool(v), PValue::Bool(b)) => v.push(*b),
            (_, other) => return Err(shape_error(format!("{other:?} for a leaf"))),
        }
        self.def.push(def);
        self.rep.push(rep);
        Ok(())
    }

    fn push_null(&mut self, def: i16, rep: i16) {
        self.def.push(def);
        self.rep.push(rep);
    }
}

/// Records "absent at this level" for every leaf under `ty`.
fn shred_absent(ty: &Type, def: i16, rep: i16, leaves: &mut [Leaf], next: &mut usize) {
    if ty.is_primitive() {
        if let Some(leaf) = leaves.get_mut(*next) {
            leaf.push_null(def, rep);
        }
        *next += 1;
    } else {
        for child in ty.get_fields() {
            shred_absent(child, def, rep, leaves, next);
        }
    }
}

/// Shreds `value` for schema node `ty` into the leaves from `*next` on (Dremel): `def` is the
/// definition level reached above this node, `rep` the repetition level of this entry, `depth`
/// the number of repeated ancestors.
fn shred(
    ty: &Type,
    value: &PValue,
    def: i16,
    rep: i16,
    depth: i16,
    leaves: &mut [Leaf],
    next: &mut usize,
) -> Result<(), DeltaError> {
    match ty.get_basic_info().repetition() {
        Repetition::REPEATED => {
            let PValue::Repeated(items) = value else {
                return Err(shape_error(format!("{value:?} for repeated {}", ty.name())));
            };
            if items.is_empty() {
                shred_absent(ty, def, rep, leaves, next);
                return Ok(());
            }
            let start = *next;
            for (i, item) in items.iter().enumerate() {
                *next = start;
                let rep = if i == 0 { rep } else { depth + 1 };
                shred_content(ty, item, def + 1, rep, depth + 1, leaves, next)?;
            }
            Ok(())
        }
        Repetition::OPTIONAL => {
            if *value == PValue::Null {
                shred_absent(ty, def, rep, leaves, next);
                Ok(())
            } else {
                shred_content(ty, value, def + 1, rep, depth, leaves, next)
            }
        }
        Repetition::REQUIRED => {
            if *value == PValue::Null {
                return Err(shape_error(format!("null for required {}", ty.name())));
            }
            shred_content(ty, value, def, rep, depth, leaves, next)
        }
    }
}

/// Shreds a present value of `ty` (its repetition already accounted for).
fn shred_content(
    ty: &Type,
    value: &PValue,
    def: i16,
    rep: i16,
    depth: i16,
    leaves: &mut [Leaf],
    next: &mut usize,
) -> Result<(), DeltaError> {
    if ty.is_primitive() {
        let leaf = leaves
            .get_mut(*next)
            .ok_or_else(|| shape_error("more leaves than columns"))?;
        leaf.push(value, def, rep)?;
        *next += 1;
        return Ok(());
    }
    let PValue::Group(children) = value else {
        return Err(shape_error(format!("{value:?} for group {}", ty.name())));
    };
    if children.len() != ty.get_fields().len() {
        return Err(shape_error(format!(
            "{} values for the {} fields of {}",
            children.len(),
            ty.get_fields().len(),
            ty.name()
        )));
    }
    for (child, v) in ty.get_fields().iter().zip(children) {
        shred(child, v, def, rep, depth, leaves, next)?;
    }
    Ok(())
}

/// Encodes `rows` (each a `Group` of the root's fields) as a parquet file with one row group.
fn write_parquet(
    schema: TypePtr,
    rows: &[PValue],
    compression: Compression,
) -> Result<Vec<u8>, DeltaError> {
    let descr = SchemaDescriptor::new(schema.clone());
    let mut leaves = descr
        .columns()
        .iter()
        .map(|c| Leaf::new(c.physical_type()))
        .collect::<Result<Vec<_>, _>>()?;
    for row in rows {
        let PValue::Group(fields) = row else {
            return Err(shape_error("a row is not a group"));
        };
        if fields.len() != schema.get_fields().len() {
            return Err(shape_error("a row has the wrong number of fields"));
        }
        let mut next = 0;
        for (ty, v) in schema.get_fields().iter().zip(fields) {
            shred(ty, v, 0, 0, 0, &mut leaves, &mut next)?;
        }
    }
    let props = WriterProperties::builder()
        .set_compression(compression)
        .set_created_by(ENGINE.to_string())
        .build();
    let mut out = Vec::new();
    let mut writer = SerializedFileWriter::new(&mut out, schema, Arc::new(props))?;
    let mut group = writer.next_row_group()?;
    let mut index = 0;
    while let Some(mut column) = group.next_column()? {
        let (Some(leaf), Some(desc)) = (leaves.get(index), descr.columns().get(index)) else {
            return Err(shape_error("more columns than leaves"));
        };
        let def = (desc.max_def_level() > 0).then_some(leaf.def.as_slice());
        let rep = (desc.max_rep_level() > 0).then_some(leaf.rep.as_slice());
        match &leaf.values {
            LeafValues::Bytes(v) => column.typed::<ByteArrayType>().write_batch(v, def, rep)?,
            LeafValues::I32(v) => column.typed::<Int32Type>().write_batch(v, def, rep)?,
            LeafValues::I64(v) => column.typed::<Int64Type>().write_batch(v, def, rep)?,
            LeafValues::Bool(v) => column.typed::<BoolType>().write_batch(v, def, rep)?,
        };
        column.close()?;
        index += 1;
    }
    group.close()?;
    writer.close()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    use bytes::Bytes;
    use parquet::file::reader::{FileReader as _, SerializedFileReader};
    use parquet::record::{Field, Row as PRow};

    use super::*;
    use crate::lake_sink::LocalDirSink;

    const ROOT: &str = "dataverse-contoso/deltalake/account";

    fn scratch(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("lagwatch-delta-{tag}-{}", Uuid::now_v7()))
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// A writer on a fresh directory with a settable clock and counting ids.
    struct Fixture {
        dir: PathBuf,
        now: Arc<Mutex<DateTime<Utc>>>,
        writer: DeltaWriter,
    }

    impl Fixture {
        fn new(tag: &str) -> Self {
            let dir = scratch(tag);
            let now = Arc::new(Mutex::new(t("2026-11-02T10:00:00Z")));
            let clock = now.clone();
            let counter = AtomicU64::new(1);
            let writer = DeltaWriter::new(Arc::new(LocalDirSink::new(&dir)), ROOT)
                .with_clock(move || *clock.lock().unwrap())
                .with_ids(move || {
                    Uuid::from_u128(u128::from(counter.fetch_add(1, Ordering::SeqCst)))
                });
            Fixture { dir, now, writer }
        }

        fn advance(&self, by: Duration) {
            let mut now = self.now.lock().unwrap();
            *now += chrono::Duration::from_std(by).unwrap();
        }

        fn table(&self) -> PathBuf {
            self.dir.join(ROOT)
        }

        fn file(&self, relative: &str) -> PathBuf {
            self.table().join(relative)
        }

        fn commit(&self, version: i64) -> Vec<Value> {
            let text =
                std::fs::read_to_string(self.file(&format!("_delta_log/{version:020}.json")))
                    .unwrap();
            assert!(text.ends_with('\n'), "one action a line");
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
                .collect()
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn schema() -> DeltaSchema {
        DeltaSchema::lake_table(
            "accountid",
            [
                ("name", ColumnType::String),
                ("customertypecode", ColumnType::Int),
                ("donotemail", ColumnType::Bool),
            ],
        )
        .unwrap()
    }

    /// A lake row: `Id`, sink times, configured columns (customertypecode, donotemail, name),
    /// `accountid`, createdon, modifiedon, versionnumber, IsDelete.
    fn row(id: &str, name: Option<&str>, version: i64, at: &str) -> Row {
        let at = t(at);
        vec![
            Some(Cell::Str(id.into())),
            Some(Cell::Timestamp(at)),
            Some(Cell::Timestamp(at)),
            Some(Cell::Long(version % 3)),
            Some(Cell::Bool(version % 2 == 0)),
            name.map(|n| Cell::Str(n.into())),
            Some(Cell::Str(id.into())),
            Some(Cell::Timestamp(at)),
            Some(Cell::Timestamp(at)),
            Some(Cell::Long(version)),
            Some(Cell::Bool(false)),
        ]
    }

    /// A delete marker: only `Id`, the sink times and `IsDelete`.
    fn delete_marker(id: &str, at: &str) -> Row {
        let at = t(at);
        let mut r: Row = vec![None; 11];
        r[0] = Some(Cell::Str(id.into()));
        r[1] = Some(Cell::Timestamp(at));
        r[2] = Some(Cell::Timestamp(at));
        r[10] = Some(Cell::Bool(true));
        r
    }

    fn read_parquet(path: &Path) -> (SerializedFileReader<Bytes>, Vec<PRow>) {
        let bytes = Bytes::from(std::fs::read(path).unwrap());
        let reader = SerializedFileReader::new(bytes).unwrap();
        let rows = reader
            .get_row_iter(None)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        (reader, rows)
    }

    /// A parquet row as cells, by the schema's types.
    fn cells(row: &PRow, schema: &DeltaSchema) -> Row {
        let fields: Vec<(&String, &Field)> = row.get_column_iter().collect();
        assert_eq!(fields.len(), schema.fields().len());
        fields
            .iter()
            .zip(schema.fields())
            .map(|((name, field), f)| {
                assert_eq!(**name, f.name);
                match (field, f.data_type) {
                    (Field::Null, _) => None,
                    (Field::Str(s), DeltaType::String) => Some(Cell::Str(s.clone())),
                    (Field::Long(n), DeltaType::Long) => Some(Cell::Long(*n)),
                    (Field::Bool(b), DeltaType::Boolean) => Some(Cell::Bool(*b)),
                    (Field::TimestampMicros(us), DeltaType::Timestamp) => Some(Cell::Timestamp(
                        DateTime::from_timestamp_micros(*us).unwrap(),
                    )),
                    (other, ty) => panic!("{name}: {other:?} for {ty:?}"),
                }
            })
            .collect()
    }

    /// A group column of a record-API row.
    fn group<'a>(row: &'a PRow, name: &str) -> Option<&'a PRow> {
        match row.get_column_iter().find(|(n, _)| *n == name)?.1 {
            Field::Group(g) => Some(g),
            Field::Null => None,
            other => panic!("{name}: {other:?}"),
        }
    }

    fn field<'a>(row: &'a PRow, name: &str) -> &'a Field {
        row.get_column_iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no column {name}"))
            .1
    }

    #[tokio::test]
    async fn log_files_are_json_lines_with_the_documented_fields() {
        let mut fx = Fixture::new("log");
        assert_eq!(fx.writer.create(schema()).await.unwrap(), 0);
        let v0 = fx.commit(0);
        assert_eq!(v0.len(), 3);
        let info = &v0[0]["commitInfo"];
        assert_eq!(
            info["timestamp"],
            t("2026-11-02T10:00:00Z").timestamp_millis()
        );
        assert_eq!(info["operation"], "CREATE TABLE");
        assert_eq!(
            v0[1],
            json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}})
        );
        let meta = &v0[2]["metaData"];
        assert_eq!(
            meta["id"],
            Uuid::from_u128(1).to_string(),
            "the injected id"
        );
        assert_eq!(
            meta["format"],
            json!({"provider": "parquet", "options": {}})
        );
        assert_eq!(meta["partitionColumns"], json!([]));
        assert_eq!(meta["configuration"], json!({}));
        assert_eq!(meta["createdTime"], info["timestamp"]);
        let schema: Value = serde_json::from_str(meta["schemaString"].as_str().unwrap()).unwrap();
        assert_eq!(schema["type"], "struct");
        let columns: Vec<(String, String)> = schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                assert_eq!(f["nullable"], true);
                assert_eq!(f["metadata"], json!({}));
                (
                    f["name"].as_str().unwrap().into(),
                    f["type"].as_str().unwrap().into(),
                )
            })
            .collect();
        let expected = [
            ("Id", "string"),
            ("SinkCreatedOn", "timestamp"),
            ("SinkModifiedOn", "timestamp"),
            ("customertypecode", "long"),
            ("donotemail", "boolean"),
            ("name", "string"),
            ("accountid", "string"),
            ("createdon", "timestamp"),
            ("modifiedon", "timestamp"),
            ("versionnumber", "long"),
            ("IsDelete", "boolean"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(n, t)| ((*n).into(), (*t).into()))
            .collect();
        assert_eq!(columns, expected);

        fx.advance(Duration::from_secs(5));
        let rows = [
            row("a", Some("Contoso"), 7, "2026-11-02T10:00:01.123456Z"),
            row("b", None, 8, "2026-11-02T10:00:02.5Z"),
            delete_marker("c", "2026-11-02T10:00:03Z"),
        ];
        assert_eq!(fx.writer.append(&rows).await.unwrap(), 1);
        let v1 = fx.commit(1);
        assert_eq!(v1.len(), 2);
        assert_eq!(v1[0]["commitInfo"]["operation"], "WRITE");
        assert_eq!(v1[0]["commitInfo"]["operationParameters"]["mode"], "Append");
        let add = &v1[1]["add"];
        let path = add["path"].as_str().unwrap();
        assert_eq!(
            path,
            format!("part-00000-{}-c000.snappy.parquet", Uuid::from_u128(2)),
            "named with the injected id"
        );
        assert_eq!(add["partitionValues"], json!({}));
        assert_eq!(add["size"], std::fs::metadata(fx.file(path)).unwrap().len());
        assert_eq!(
            add["modificationTime"],
            t("2026-11-02T10:00:05Z").timestamp_millis()
        );
        assert_eq!(add["dataChange"], true);
        let stats: Value = serde_json::from_str(add["stats"].as_str().unwrap()).unwrap();
        assert_eq!(stats["numRecords"], 3);
        assert_eq!(stats["minValues"]["Id"], "a");
        assert_eq!(stats["maxValues"]["Id"], "c");
        assert_eq!(stats["minValues"]["versionnumber"], 7);
        assert_eq!(stats["maxValues"]["versionnumber"], 8);
        assert_eq!(
            stats["minValues"]["SinkCreatedOn"],
            "2026-11-02T10:00:01.123Z"
        );
        assert_eq!(
            stats["maxValues"]["SinkCreatedOn"],
            "2026-11-02T10:00:03.000Z"
        );
        assert_eq!(stats["minValues"]["name"], "Contoso");
        assert_eq!(stats["nullCount"]["name"], 2);
        assert_eq!(stats["nullCount"]["Id"], 0);
        assert_eq!(stats["nullCount"]["IsDelete"], 0);
        assert!(
            stats["minValues"].get("IsDelete").is_none(),
            "no min/max for booleans"
        );
        assert_eq!(fx.writer.version(), Some(1));
        assert!(
            !fx.file("_delta_log/.00000000000000000001.json.tmp")
                .exists(),
            "commits are written whole and renamed"
        );
    }

    #[test]
    fn stats_cut_long_strings_and_keep_bounds() {
        let long = "x".repeat(40);
        assert_eq!(stats_min_string(&long), "x".repeat(32));
        assert_eq!(
            stats_max_string(&long),
            Some(format!("{}\u{10FFFF}", "x".repeat(32)))
        );
        assert!(
            stats_max_string(&long).unwrap() > long,
            "still an upper bound"
        );
        let exact = "é".repeat(32);
        assert_eq!(
            stats_max_string(&exact).as_deref(),
            Some(exact.as_str()),
            "chars, not bytes"
        );
        let edge = format!("{}\u{10FFFF}z", "y".repeat(32));
        assert_eq!(stats_max_string(&edge), None, "no short upper bound exists");

        let schema = DeltaSchema::new([("s", DeltaType::String), ("n", DeltaType::Long)]).unwrap();
        let rows = vec![
            vec![Some(Cell::Str(long.clone())), None],
            vec![Some(Cell::Str(edge.clone())), None],
        ];
        let stats: Value = serde_json::from_str(&file_stats(&schema, &rows)).unwrap();
        assert_eq!(stats["minValues"]["s"], "x".repeat(32));
        assert!(
            stats["maxValues"].get("s").is_none(),
            "max left out rather than wrong"
        );
        assert!(
            stats["minValues"].get("n").is_none(),
            "only nulls: no bounds"
        );
        assert_eq!(stats["nullCount"], json!({"s": 0, "n": 2}));
    }

    #[tokio::test]
    async fn a_data_file_reads_back_to_the_same_rows() {
        let mut fx = Fixture::new("data");
        fx.writer.create(schema()).await.unwrap();
        let mut rows = vec![
            row(
                "a",
                Some("Contoso, \"Ltd\"\nnew line"),
                1,
                "2026-11-02T10:00:01.123456Z",
            ),
            row("b", Some("Ünïcödé ✓"), 2, "1999-12-31T23:59:59.999999Z"),
            delete_marker("c", "2026-11-02T10:00:03Z"),
        ];
        // Sub-microsecond digits are dropped: Delta timestamps are microseconds.
        rows[0][1] = Some(Cell::Timestamp(t("2026-11-02T10:00:01.123456789Z")));
        fx.writer.append(&rows).await.unwrap();
        rows[0][1] = Some(Cell::Timestamp(t("2026-11-02T10:00:01.123456Z")));
        assert_eq!(fx.writer.rows(), rows.iter().collect::<Vec<_>>());

        let path = fx.file(&fx.writer.files()[0].path);
        let (reader, read) = read_parquet(&path);
        let meta = reader.metadata();
        let columns = meta.file_metadata().schema_descr().columns().to_vec();
        let ts = columns
            .iter()
            .find(|c| c.name() == "SinkCreatedOn")
            .unwrap();
        assert_eq!(ts.physical_type(), PhysicalType::INT64);
        assert_eq!(
            ts.logical_type_ref(),
            Some(&LogicalType::timestamp(true, TimeUnit::MICROS)),
        );
        let name = columns.iter().find(|c| c.name() == "name").unwrap();
        assert_eq!(name.logical_type_ref(), Some(&LogicalType::String));
        assert!(
            columns
                .iter()
                .all(|c| c.self_type().get_basic_info().repetition() == Repetition::OPTIONAL)
        );
        assert_eq!(
            meta.row_group(0).column(0).compression(),
            Compression::SNAPPY
        );
        let read: Vec<Row> = read.iter().map(|r| cells(r, &schema())).collect();
        assert_eq!(read, rows);
    }

    #[tokio::test]
    async fn compaction_removes_every_live_file_and_adds_one_with_their_rows() {
        let mut fx = Fixture::new("compact");
        fx.writer.create(schema()).await.unwrap();
        fx.writer
            .append(&[row("a", Some("A"), 1, "2026-11-02T10:00:01Z")])
            .await
            .unwrap();
        fx.writer
            .append(&[
                row("b", Some("B"), 2, "2026-11-02T10:00:02Z"),
                delete_marker("a", "2026-11-02T10:00:03Z"),
            ])
            .await
            .unwrap();
        fx.writer
            .append(&[row("c", None, 3, "2026-11-02T10:00:04Z")])
            .await
            .unwrap();
        let before: Vec<AddFile> = fx.writer.files().into_iter().cloned().collect();
        let rows: Vec<Row> = fx.writer.rows().into_iter().cloned().collect();
        fx.advance(Duration::from_secs(60));
        assert_eq!(fx.writer.compact().await.unwrap(), Some(4));

        let v4 = fx.commit(4);
        assert_eq!(v4[0]["commitInfo"]["operation"], "OPTIMIZE");
        let removes: Vec<&Value> = v4.iter().filter_map(|a| a.get("remove")).collect();
        let adds: Vec<&Value> = v4.iter().filter_map(|a| a.get("add")).collect();
        assert_eq!(removes.len(), 3);
        assert_eq!(adds.len(), 1);
        for (r, f) in removes.iter().zip(&before) {
            assert_eq!(r["path"], f.path);
            assert_eq!(r["dataChange"], false);
            assert_eq!(r["size"], f.size);
            assert_eq!(
                r["deletionTimestamp"],
                t("2026-11-02T10:01:00Z").timestamp_millis()
            );
            assert!(fx.file(&f.path).exists(), "removed files stay until vacuum");
        }
        assert_eq!(adds[0]["dataChange"], false);
        let stats: Value = serde_json::from_str(adds[0]["stats"].as_str().unwrap()).unwrap();
        assert_eq!(stats["numRecords"], 4);
        let files = fx.writer.files();
        assert_eq!(files.len(), 1);
        assert_eq!(adds[0]["path"], files[0].path);
        let (_, read) = read_parquet(&fx.file(&files[0].path));
        let read: Vec<Row> = read.iter().map(|r| cells(r, &schema())).collect();
        assert_eq!(read, rows, "the same rows in the same order");
        assert_eq!(fx.writer.removed().len(), 3);
        assert_eq!(
            fx.writer.compact().await.unwrap(),
            None,
            "one file: nothing to do"
        );
        assert_eq!(fx.writer.version(), Some(4));
    }

    #[tokio::test]
    async fn the_checkpoint_has_one_row_per_live_action_with_nested_values() {
        let mut fx = Fixture::new("checkpoint");
        fx.writer.create(schema()).await.unwrap();
        fx.writer
            .append(&[row("a", Some("A"), 1, "2026-11-02T10:00:01Z")])
            .await
            .unwrap();
        fx.writer
            .append(&[row("b", Some("B"), 2, "2026-11-02T10:00:02Z")])
            .await
            .unwrap();
        fx.writer.compact().await.unwrap();
        fx.writer
            .append(&[row("c", None, 3, "2026-11-02T10:00:04Z")])
            .await
            .unwrap();
        assert_eq!(fx.writer.checkpoint().await.unwrap(), 4);

        let last: Value = serde_json::from_str(
            &std::fs::read_to_string(fx.file("_delta_log/_last_checkpoint")).unwrap(),
        )
        .unwrap();
        // protocol, metaData, two live adds, two tombstones.
        assert_eq!(last["version"], 4);
        assert_eq!(last["size"], 6);
        assert_eq!(last["numOfAddFiles"], 2);
        let path = fx.file("_delta_log/00000000000000000004.checkpoint.parquet");
        assert_eq!(last["sizeInBytes"], std::fs::metadata(&path).unwrap().len());

        let (_, rows) = read_parquet(&path);
        assert_eq!(rows.len(), 6);
        let mut adds = Vec::new();
        let mut removes = Vec::new();
        for r in &rows {
            let set: Vec<&str> = ["metaData", "protocol", "add", "remove"]
                .into_iter()
                .filter(|n| group(r, n).is_some())
                .collect();
            assert_eq!(set.len(), 1, "one action per row: {r:?}");
            match set[0] {
                "protocol" => {
                    let p = group(r, "protocol").unwrap();
                    assert_eq!(field(p, "minReaderVersion"), &Field::Int(1));
                    assert_eq!(field(p, "minWriterVersion"), &Field::Int(2));
                }
                "metaData" => {
                    let m = group(r, "metaData").unwrap();
                    assert_eq!(field(m, "id"), &Field::Str(Uuid::from_u128(1).to_string()));
                    assert_eq!(field(m, "name"), &Field::Null);
                    let format = group(m, "format").unwrap();
                    assert_eq!(field(format, "provider"), &Field::Str("parquet".into()));
                    let Field::MapInternal(options) = field(format, "options") else {
                        panic!("options is a map")
                    };
                    assert!(options.entries().is_empty());
                    assert_eq!(
                        field(m, "schemaString"),
                        &Field::Str(schema().schema_string())
                    );
                    let Field::ListInternal(partitions) = field(m, "partitionColumns") else {
                        panic!("partitionColumns is a list")
                    };
                    assert!(partitions.elements().is_empty());
                    let Field::MapInternal(config) = field(m, "configuration") else {
                        panic!("configuration is a map")
                    };
                    assert!(config.entries().is_empty());
                    assert_eq!(
                        field(m, "createdTime"),
                        &Field::Long(t("2026-11-02T10:00:00Z").timestamp_millis())
                    );
                }
                "add" => adds.push(group(r, "add").unwrap().clone()),
                _ => removes.push(group(r, "remove").unwrap().clone()),
            }
        }
        let live = fx.writer.files();
        assert_eq!(adds.len(), live.len());
        for (a, f) in adds.iter().zip(&live) {
            assert_eq!(field(a, "path"), &Field::Str(f.path.clone()));
            let Field::MapInternal(pv) = field(a, "partitionValues") else {
                panic!("partitionValues is a map")
            };
            assert!(pv.entries().is_empty(), "empty, not null");
            assert_eq!(field(a, "size"), &Field::Long(f.size));
            assert_eq!(
                field(a, "modificationTime"),
                &Field::Long(f.modification_time)
            );
            assert_eq!(field(a, "dataChange"), &Field::Bool(f.data_change));
            assert_eq!(field(a, "stats"), &Field::Str(f.stats.clone()));
        }
        assert_eq!(
            field(&adds[0], "dataChange"),
            &Field::Bool(false),
            "the compacted file"
        );
        let removed = fx.writer.removed();
        assert_eq!(removes.len(), removed.len());
        for (r, f) in removes.iter().zip(&removed) {
            assert_eq!(field(r, "path"), &Field::Str(f.path.clone()));
            assert_eq!(
                field(r, "deletionTimestamp"),
                &Field::Long(f.deletion_timestamp)
            );
            assert_eq!(field(r, "dataChange"), &Field::Bool(false));
            assert_eq!(field(r, "extendedFileMetadata"), &Field::Bool(true));
            assert_eq!(field(r, "size"), &Field::Long(f.size));
        }

        // A week later the tombstones have expired and leave the next checkpoint.
        fx.advance(DEFAULT_TOMBSTONE_RETENTION + Duration::from_secs(1));
        fx.writer
            .append(&[row("d", None, 4, "2026-11-09T10:00:04Z")])
            .await
            .unwrap();
        assert_eq!(fx.writer.checkpoint().await.unwrap(), 5);
        let (_, rows) =
            read_parquet(&fx.file("_delta_log/00000000000000000005.checkpoint.parquet"));
        assert_eq!(
            rows.len(),
            2 + 3,
            "protocol, metaData, three adds, no remove"
        );
        assert!(rows.iter().all(|r| group(r, "remove").is_none()));
    }

    #[tokio::test]
    async fn expire_log_keeps_the_checkpoint_and_vacuum_deletes_removed_files() {
        let mut fx = Fixture::new("retention");
        fx.writer.create(schema()).await.unwrap();
        fx.writer
            .append(&[row("a", Some("A"), 1, "2026-11-02T10:00:01Z")])
            .await
            .unwrap();
        fx.writer
            .append(&[row("b", Some("B"), 2, "2026-11-02T10:00:02Z")])
            .await
            .unwrap();
        let old: Vec<String> = fx.writer.files().iter().map(|f| f.path.clone()).collect();
        assert!(
            fx.writer.expire_log(10).await.unwrap().is_empty(),
            "no checkpoint yet"
        );
        fx.writer.checkpoint().await.unwrap();
        fx.writer.compact().await.unwrap();
        fx.writer.checkpoint().await.unwrap();
        fx.writer
            .append(&[row("c", None, 3, "2026-11-02T10:00:04Z")])
            .await
            .unwrap();
        assert_eq!(fx.writer.checkpoints(), &[2, 3]);

        // Only up to the checkpoint at or before the asked version.
        let deleted = fx.writer.expire_log(2).await.unwrap();
        assert_eq!(
            deleted,
            vec![fx.writer.commit_path(0), fx.writer.commit_path(1)]
        );
        let deleted = fx.writer.expire_log(4).await.unwrap();
        assert_eq!(
            deleted,
            vec![fx.writer.commit_path(2), fx.writer.checkpoint_path(2)]
        );
        let mut log: Vec<String> = std::fs::read_dir(fx.file("_delta_log"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        log.sort();
        assert_eq!(
            log,
            [
                "00000000000000000003.checkpoint.parquet",
                "00000000000000000003.json",
                "00000000000000000004.json",
                "_last_checkpoint"
            ]
        );
        assert_eq!(fx.writer.oldest_commit(), Some(3));

        assert!(
            fx.writer
                .vacuum(Duration::from_secs(3600))
                .await
                .unwrap()
                .is_empty(),
            "removed too recently"
        );
        fx.advance(Duration::from_secs(3600));
        let vacuumed = fx.writer.vacuum(Duration::from_secs(3600)).await.unwrap();
        assert_eq!(
            vacuumed,
            old.iter().map(|p| fx.writer.path(p)).collect::<Vec<_>>()
        );
        for p in &old {
            assert!(!fx.file(p).exists(), "{p} vacuumed");
        }
        for f in fx.writer.files() {
            assert!(fx.file(&f.path).exists(), "live files stay");
        }
        assert!(
            fx.writer.vacuum(Duration::ZERO).await.unwrap().is_empty(),
            "once only"
        );
    }

    #[tokio::test]
    async fn misuse_is_an_error_not_a_panic() {
        let mut fx = Fixture::new("errors");
        let r = row("a", None, 1, "2026-11-02T10:00:01Z");
        assert!(matches!(
            fx.writer.append(std::slice::from_ref(&r)).await,
            Err(DeltaError::NotCreated(_))
        ));
        assert!(matches!(
            fx.writer.checkpoint().await,
            Err(DeltaError::NotCreated(_))
        ));
        fx.writer.create(schema()).await.unwrap();
        assert!(matches!(
            fx.writer.create(schema()).await,
            Err(DeltaError::AlreadyCreated(_))
        ));
        assert!(matches!(
            fx.writer.append(&[]).await,
            Err(DeltaError::NoRows)
        ));
        let mut short = r.clone();
        short.pop();
        let e = fx.writer.append(&[r.clone(), short]).await.unwrap_err();
        assert!(matches!(e, DeltaError::Row { row: 1, .. }), "{e}");
        let mut wrong = r.clone();
        wrong[9] = Some(Cell::Str("1".into()));
        let e = fx.writer.append(&[wrong]).await.unwrap_err();
        assert!(e.to_string().contains("versionnumber"), "{e}");
        assert_eq!(
            fx.writer.version(),
            Some(0),
            "failed appends change nothing"
        );
        assert!(fx.writer.files().is_empty());

        assert!(DeltaSchema::new(Vec::<(String, DeltaType)>::new()).is_err());
        assert!(DeltaSchema::new([("a", DeltaType::Long), ("A", DeltaType::Long)]).is_err());
        assert!(DeltaSchema::lake_table("accountid", [("IsDelete", ColumnType::Bool)]).is_err());
    }
}
