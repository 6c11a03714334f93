//! The analytics lake: Synapse Link for Dataverse exporting incremental update folders
//! (fact sheet §5.3–§5.5) or, for a lake with `layout: table`, one CSV file per table
//! partition (§5.2, written by [`super::lake_table`]), as real files.
//!
//! Why real files: lagwatch reads a lake by listing folders and reading `model.json`,
//! `changelog.info` and headerless CSV files, so the emulator has to produce exactly those, on
//! the schedule the export keeps, and know when each row became readable.
//!
//! # Layout
//!
//! The table layout is described in [`super::lake_table`]: `model.json` and
//! `<table>/<yyyy>.csv` (or `<yyyy-MM>.csv`) at the container's root, creates appended,
//! updates and deletes rewriting the file in place (or, append-only, appended too); a row is
//! visible at its sink instant. The rest of this section is the incremental layout.
//!
//! Under the sink's root (a directory: `lagwatch emulate --lake-dir`), per scenario lake:
//!
//! ```text
//! <container>/model.json                          CDM manifest of every table of the lake
//! <container>/Changelog/changelog.info            the folder being written now (no newline)
//! <container>/2026-11-02T10.15.00.000Z/model.json CDM manifest (all tables), written at open
//! <container>/2026-11-02T10.15.00.000Z/account/2026.csv   rows appended during the interval
//! <container>/2026-11-02T10.15.30.000Z/model.json
//! ```
//!
//! - Folder names are the UTC instant the folder opened, `yyyy-MM-dd'T'HH.mm.ss.SSS'Z'`
//!   (the documented format with `.` for `:`, which is not portable in file names). Folder
//!   `k` opens at emulator start + `k × folder_interval` and closes when folder `k + 1` opens:
//!   the writer first creates folder `k + 1` with its `model.json`, then replaces
//!   `changelog.info` with its name. A reader must only read folders older than the one
//!   `changelog.info` names.
//! - Every folder has a `model.json` from the moment it exists; table folders and CSV files
//!   appear only when rows were appended. When a folder closes with files in it, its
//!   `model.json` is rewritten with their `partitions`.
//! - `model.json` (CDM, as read by Microsoft's `dataverse-to-sql`): `{"name":"cdm",
//!   "version":"1.0","entities":[{"$type":"LocalEntity","name":"account","annotations":[…],
//!   "attributes":[…],"partitions":[{"name":"2026","location":"file:///…/account/2026.csv",
//!   "fileFormatSettings":{"$type":"CsvFormatSettings","columnHeaders":false,…}}]}]}`.
//!   Attributes, in CSV order: `Id` (guid), `SinkCreatedOn`, `SinkModifiedOn` (dateTime), the
//!   table's configured columns in name order (string/int64/boolean), its id column (guid),
//!   `createdon` (dateTimeOffset), `modifiedon` (dateTime), `versionnumber` (int64),
//!   `IsDelete` (boolean).
//! - CSV: no header; one row per change, appended; RFC 4180 quoting (a field with `,`, `"`,
//!   CR or LF is quoted and `"` doubled), rows end with `\n`. Datetimes with 7 fractional
//!   digits: `SinkCreatedOn`/`SinkModifiedOn`/`modifiedon` as `2026-11-02T10:15:07.1234567Z`,
//!   `createdon` as `2026-11-02T10:15:07.0000000+00:00`; booleans `True`/`False`; null empty.
//!   Partitions by year of `createdon`: `account/2026.csv`.
//! - A row's `SinkCreatedOn` = `SinkModifiedOn` = the instant it reached the export (commit +
//!   the replica's lag, after stalls): the *sink* instant. It is appended to the folder open at
//!   that instant and becomes readable when that folder closes. A delete reaches the export
//!   like a write, at the replica's `gone_at` (the Dataverse delete + a lag drawn from the
//!   replica's distribution, never before the row's own sink instant), and is appended then as
//!   a row with only `Id`, the sink times and `IsDelete` = `True`, if a version of the row had
//!   reached the export before (versions due from then on never do, so a row whose delete was
//!   drawn shorter than its write's lag is never written). A dropped delete
//!   (`delete_drop_probability`) appends nothing. A resurrection (`resurrect_probability`)
//!   appends the row's last version again at `gone_at + resurrect_after` and a second delete
//!   row at the end of its window; in the table layout, in place, the row is put back into its
//!   partition file and removed again; Delta commits both change rows.
//! - Lost and repeated versions, on purpose, for a check that a change log holds every
//!   version once (incremental folders and the append-only table layout only; the scenario
//!   refuses them elsewhere, where a snapshot may skip versions legally): an update (a write
//!   of a record the replica already had, not deleted) whose `version_drop_probability` draw
//!   hits is never appended, so the lake shows the version before until a later one arrives;
//!   one whose `version_duplicate_probability` draw hits is appended twice, the copy identical
//!   (sink times included) right behind the first, as an export retry leaves it. A create, a
//!   delete row and a resurrection's row are never lost nor repeated this way.
//! - `model.json` and `changelog.info` are written to a dot-named temporary file and renamed.
//!
//! # Ground truth
//!
//! For a lake replica `visible_at` is the instant the row's folder closed (table layout: the
//! instant it was put into its partition file, its sink instant), and `sink_at` the instant
//! it was appended (what `SinkCreatedOn` says). After a delete, `delete_sink_at` is when the
//! delete row was appended and `gone_at` when it became readable (the same rule as
//! `visible_at`); a resurrection's `{from, to}` are when its row and its second delete row
//! became readable (equal when both went into one folder or one Delta commit: a reader of
//! completed folders then sees the row and its delete together, never the row alone).
//! `versions_dropped` and `versions_duplicated` list the commit instants of the updates lost
//! and written twice (a duplicate whose rows a delete overtook before they reached the export
//! is not one; a lost latest version leaves the truth `dropped`, its `visible_at` null).
//!
//! # Time
//!
//! Folders roll on `tokio::time`, so paused-time tests run hours of folders in milliseconds.
//! The files are brought up to date (rows whose sink instant has passed appended, folders
//! whose close instant has passed closed) by:
//! - every request the emulator handles, before handling it;
//! - [`Emulator::flush_lake`], for tests that read the files without a request;
//! - a background task, spawned by the constructor when the scenario has lakes and a tokio
//!   runtime is running, that wakes at the next close or sink instant (this is what keeps
//!   `lagwatch emulate`'s files current while nobody sends requests).
//!
//! Seeded rows ([`super::seed`]) are the initial full copy: a lake replica of a seeded table
//! starts with its copy of them, drift included, in the first folder, the partition files or
//! the first Delta commit ([`super::lake_seed`]).
//!
//! Left out: the extra empty folder
//! real exports sometimes leave after retries, folder retention (nothing is ever deleted),
//! `Microsoft.Athena.TrickleFeedService/` and `OptionsetMetadata/`, stalls of the folder
//! schedule itself (a `stall` outage delays rows, folders keep rolling); in the table layout,
//! `Microsoft.Athena.TrickleFeedService/`, and the sync batching of the real export (each row is written at its own sink instant).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Datelike as _, Utc};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use tokio::time::Instant;
use uuid::Uuid;

use crate::simulated::{ReplicaEntry, VersionFate};

use super::Emulator;
use super::lake_delta::{self, DeltaTables, wall_clock};
use super::lake_seed::{self, LakeSeed};
use super::lake_sink::{LakeSink, LocalDirSink, write_atomic};
use super::lake_table::TableFiles;
use super::replication::ReplicaDef;
use super::scenario::{
    ColumnType, DEFAULT_FOLDER_INTERVAL, FOREVER, LakeLayout, Partitioning, Scenario, Target,
    UpdateMode,
};

/// Where `changelog.info` is, under the container.
pub const CHANGELOG: &str = "Changelog/changelog.info";

/// Most rows waiting for their sink instant per lake; the oldest are forgotten first.
const PENDING_CAPACITY: usize = 200_000;

/// A folder name: the UTC instant with milliseconds, `.` as time separator.
pub fn folder_name(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H.%M.%S%.3fZ").to_string()
}

/// Seconds with 7 fractional digits (the export's `SSSSSSS`).
fn seconds7(t: DateTime<Utc>) -> String {
    let frac = (t.timestamp_subsec_nanos() / 100).min(9_999_999);
    format!("{}.{frac:07}", t.format("%Y-%m-%dT%H:%M:%S"))
}

/// A datetime as the export writes it: `2026-11-02T10:15:07.1234567Z`.
pub fn export_time(t: DateTime<Utc>) -> String {
    format!("{}Z", seconds7(t))
}

/// A `dateTimeOffset` as the export writes it: `2026-11-02T10:15:07.1234567+00:00`.
pub fn export_time_offset(t: DateTime<Utc>) -> String {
    format!("{}+00:00", seconds7(t))
}

/// One CSV field, quoted when it holds a delimiter, a quote or a line break (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A JSON value as CSV text: strings as they are, `True`/`False`, null empty.
fn value_text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => if *b { "True" } else { "False" }.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => other.to_string(),
    }
}

/// What a CSV column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cell {
    /// `Id`: the row's GUID.
    Id,
    /// `SinkCreatedOn`, `SinkModifiedOn`: when the row reached the export.
    Sink,
    /// A configured column of the source table.
    Field(String),
    /// The table's own id column (`accountid`).
    RecordId,
    CreatedOn,
    ModifiedOn,
    VersionNumber,
    IsDelete,
}

#[derive(Debug, Clone)]
struct Column {
    name: String,
    data_type: &'static str,
    max_length: i64,
    cell: Cell,
}

impl Column {
    fn new(name: &str, data_type: &'static str, cell: Cell) -> Self {
        Column {
            name: name.to_string(),
            data_type,
            max_length: if data_type == "string" { 4000 } else { -1 },
            cell,
        }
    }
}

/// The values of an upserted row: the replica-shaped fields and the source row (system
/// columns).
type RowValues<'a> = (&'a Map<String, Value>, &'a Map<String, Value>);

/// One exported table of a lake.
#[derive(Debug, Clone)]
pub(crate) struct LakeTable {
    /// The scenario replica filling it.
    pub replica: String,
    /// Entity name: folder and `model.json` entity.
    pub table: String,
    columns: Vec<Column>,
    /// The replica's copy of its source's seeded rows, written at start-up
    /// ([`super::lake_seed`]).
    pub seed: Option<LakeSeed>,
}

impl LakeTable {
    /// Column names in CSV order.
    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// `(name, CDM data type)` of each column, in CSV order.
    pub fn column_types(&self) -> Vec<(&str, &'static str)> {
        self.columns
            .iter()
            .map(|c| (c.name.as_str(), c.data_type))
            .collect()
    }

    /// The CSV line (with `\n`) of a row: `Some((shaped fields, source row))` for an upsert,
    /// `None` for a delete marker.
    pub(crate) fn line(&self, id: Uuid, row: Option<RowValues<'_>>, sink: DateTime<Utc>) -> String {
        let date = |v: Option<&Value>, offset: bool| -> String {
            let Some(Value::String(s)) = v else {
                return value_text(v);
            };
            match DateTime::parse_from_rfc3339(s) {
                Ok(t) if offset => export_time_offset(t.with_timezone(&Utc)),
                Ok(t) => export_time(t.with_timezone(&Utc)),
                Err(_) => s.clone(),
            }
        };
        let mut fields = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            let text = match (&c.cell, row) {
                (Cell::Id, _) => id.to_string(),
                (Cell::Sink, _) => export_time(sink),
                (Cell::IsDelete, None) => "True".to_string(),
                (_, None) | (Cell::IsDelete, Some(_)) => String::new(),
                (Cell::Field(f), Some((shaped, _))) => value_text(shaped.get(f)),
                (Cell::RecordId, Some(_)) => id.to_string(),
                (Cell::CreatedOn, Some((_, src))) => date(src.get("createdon"), true),
                (Cell::ModifiedOn, Some((_, src))) => date(src.get("modifiedon"), false),
                (Cell::VersionNumber, Some((_, src))) => value_text(src.get("versionnumber")),
            };
            fields.push(csv_field(&text));
        }
        let mut line = fields.join(",");
        line.push('\n');
        line
    }
}

/// One lake of the scenario, resolved.
#[derive(Debug, Clone)]
pub(crate) struct LakeDef {
    pub name: String,
    pub container: String,
    pub interval: Duration,
    pub tables: Vec<LakeTable>,
    /// `Some` for the table layout (partitioning, update mode); `None`: incremental folders
    /// or Delta.
    pub table_layout: Option<(Partitioning, UpdateMode)>,
    /// Delta tables (`layout: delta`, [`super::lake_delta`]), refreshed every `interval`.
    pub delta: bool,
}

impl LakeDef {
    /// The partition file name (without `.csv`) of a row created at `t`.
    pub(crate) fn partition(&self, t: DateTime<Utc>) -> String {
        match self.table_layout {
            Some((Partitioning::Month, _)) => format!("{:04}-{:02}", t.year(), t.month()),
            _ => t.year().to_string(),
        }
    }
}

/// A row waiting for its sink instant (or for the next flush).
#[derive(Debug, Clone)]
pub(crate) struct PendingRow {
    pub sink: Instant,
    pub seq: u64,
    pub id: Uuid,
    pub table: usize,
    pub partition: String,
    pub line: String,
    /// A delete (the line is the delete marker row).
    pub delete: bool,
    /// The second copy of a duplicated version (`version_duplicate_probability`): when the
    /// version committed, so a delete that cancels the copy takes it out of the truth.
    pub copy_of: Option<Instant>,
    /// The row's `versionnumber` (`None`: a delete row), for the status surfaces.
    pub version: Option<u64>,
}

/// Writer position of one lake.
#[derive(Debug, Default)]
struct Writer {
    started: bool,
    /// Index of the open folder.
    index: u64,
    /// `(table, partition)` files written into the open folder.
    files: BTreeSet<(usize, String)>,
    /// Table layout: the partition files.
    table: TableFiles,
    /// Delta layout: the tables' writers.
    delta: DeltaTables,
    /// Last error reported, so a failing directory is logged once per distinct error.
    last_error: Option<String>,
}

/// A Delta table's commit of one refresh: (lake, table, refresh).
type CommitKey = (usize, usize, u64);

/// The lakes of an emulator: definitions, rows in flight, writer state.
pub(crate) struct Lakes {
    pub defs: Vec<LakeDef>,
    sink: Option<Arc<dyn LakeSink>>,
    root: Option<PathBuf>,
    pending: Mutex<Vec<Vec<PendingRow>>>,
    /// Earliest instant a flush has something to do.
    due: Mutex<Instant>,
    writers: tokio::sync::Mutex<Vec<Writer>>,
    /// Wakes the background task when a row is committed.
    pub wake: Arc<Notify>,
    seq: AtomicU64,
    /// Set by [`Emulator::stop_lake`]: nothing is written any more.
    stopped: std::sync::atomic::AtomicBool,
    /// When each Delta table's commit of a refresh was written, by (lake, table, refresh):
    /// the rows of a refresh are visible from the later of its scheduled end and this (a
    /// `file://` lake is read without a request that would bring it up to date first).
    delta_written: Mutex<(HashMap<CommitKey, Instant>, VecDeque<CommitKey>)>,
    /// The root was made up here (no `lake_root` given): removed when the lakes are dropped.
    owned_root: bool,
}

impl Drop for Lakes {
    fn drop(&mut self) {
        if self.owned_root
            && let Some(root) = &self.root
        {
            let _ = std::fs::remove_dir_all(root);
        }
    }
}

impl Lakes {
    pub fn build(
        s: &Scenario,
        replicas: &[ReplicaDef],
        options: &super::EmulatorOptions,
        started: Instant,
    ) -> Lakes {
        let mut defs = Vec::new();
        for (name, lake) in &s.lakes {
            let mut interval = None;
            let mut tables = Vec::new();
            for r in replicas {
                let Target::Lake { lake: l, table } = &r.target else {
                    continue;
                };
                if l != name {
                    continue;
                }
                let Some(replica) = s.replicas.get(&r.name) else {
                    continue;
                };
                if interval.is_none() {
                    interval = replica.folder_interval;
                }
                let Some(t) = s.dataverse.get(&r.env).and_then(|e| e.tables.get(&r.set)) else {
                    continue;
                };
                let mut columns = vec![
                    Column::new("Id", "guid", Cell::Id),
                    Column::new("SinkCreatedOn", "dateTime", Cell::Sink),
                    Column::new("SinkModifiedOn", "dateTime", Cell::Sink),
                ];
                for (c, ty) in &t.columns {
                    let data_type = match ty {
                        ColumnType::String => "string",
                        ColumnType::Int => "int64",
                        ColumnType::Bool => "boolean",
                    };
                    columns.push(Column::new(c, data_type, Cell::Field(c.clone())));
                }
                columns.extend([
                    Column::new(&t.id_column(&r.set), "guid", Cell::RecordId),
                    Column::new("createdon", "dateTimeOffset", Cell::CreatedOn),
                    Column::new("modifiedon", "dateTime", Cell::ModifiedOn),
                    Column::new("versionnumber", "int64", Cell::VersionNumber),
                    Column::new("IsDelete", "boolean", Cell::IsDelete),
                ]);
                tables.push(LakeTable {
                    replica: r.name.clone(),
                    table: table.clone(),
                    columns,
                    seed: LakeSeed::of(s, &r.name, &r.env, &r.set, &r.key_column),
                });
            }
            defs.push(LakeDef {
                name: name.clone(),
                container: lake.container.clone(),
                interval: interval.unwrap_or(DEFAULT_FOLDER_INTERVAL).get(),
                tables,
                table_layout: lake.table_layout(),
                delta: lake.layout == LakeLayout::Delta,
            });
        }
        let (sink, root): (Option<Arc<dyn LakeSink>>, Option<PathBuf>) = if defs.is_empty() {
            (None, None)
        } else if let Some(sink) = &options.lake_sink {
            (Some(sink.clone()), None)
        } else {
            let root = options.lake_root.clone().unwrap_or_else(|| {
                std::env::temp_dir().join(format!("lagwatch-lake-{}", Uuid::now_v7()))
            });
            let local = LocalDirSink::new(root);
            let root = local.root().to_path_buf();
            (Some(Arc::new(local)), Some(root))
        };
        let owned_root = root.is_some() && options.lake_root.is_none();
        Lakes {
            owned_root,
            pending: Mutex::new(vec![Vec::new(); defs.len()]),
            writers: tokio::sync::Mutex::new(defs.iter().map(|_| Writer::default()).collect()),
            defs,
            sink,
            root,
            due: Mutex::new(started),
            wake: Arc::new(Notify::new()),
            seq: AtomicU64::new(0),
            stopped: std::sync::atomic::AtomicBool::new(false),
            delta_written: Mutex::default(),
        }
    }

    /// Commits written, remembered per (lake, table, refresh) for the ground truth.
    const DELTA_WRITTEN: usize = 10_000;

    fn delta_written(&self, li: usize, committed: Vec<(usize, Instant)>, refresh: u64) {
        let mut g = self.delta_written.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *g;
        for (ti, at) in committed {
            if map.insert((li, ti, refresh), at).is_none() {
                order.push_back((li, ti, refresh));
            }
        }
        while order.len() > Self::DELTA_WRITTEN {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }

    fn delta_written_at(&self, li: usize, ti: usize, refresh: u64) -> Option<Instant> {
        let g = self.delta_written.lock().unwrap_or_else(|e| e.into_inner());
        g.0.get(&(li, ti, refresh)).copied()
    }

    fn pending(&self) -> MutexGuard<'_, Vec<Vec<PendingRow>>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn due(&self) -> MutexGuard<'_, Instant> {
        self.due.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `(lake, table)` indexes of a replica's table.
    fn locate(&self, replica: &str) -> Option<(usize, usize)> {
        self.defs.iter().enumerate().find_map(|(li, d)| {
            d.tables
                .iter()
                .position(|t| t.replica == replica)
                .map(|ti| (li, ti))
        })
    }

    /// The lake a replica writes into.
    pub fn of_replica(&self, replica: &str) -> Option<&LakeDef> {
        self.locate(replica).map(|(li, _)| &self.defs[li])
    }

    /// Whether a flush has something to do at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        !self.defs.is_empty() && now >= *self.due()
    }

    /// When a flush next has something to do (`None` without lakes).
    pub fn next_due(&self) -> Option<Instant> {
        (!self.defs.is_empty()).then(|| *self.due())
    }

    fn push(&self, li: usize, row: PendingRow) {
        let sink = row.sink;
        {
            let mut pending = self.pending();
            let rows = &mut pending[li];
            rows.push(row);
            if rows.len() > PENDING_CAPACITY {
                let oldest = rows
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, r)| r.seq)
                    .map(|(i, _)| i);
                if let Some(i) = oldest {
                    rows.swap_remove(i);
                }
            }
        }
        {
            let mut due = self.due();
            *due = (*due).min(sink);
        }
        self.wake.notify_one();
    }

    /// Removes and returns the rows of lake `li` whose sink instant satisfies `pred`, in sink
    /// order.
    fn take(&self, li: usize, pred: impl Fn(Instant) -> bool) -> Vec<PendingRow> {
        let mut pending = self.pending();
        let (mut due, rest): (Vec<PendingRow>, Vec<PendingRow>) = std::mem::take(&mut pending[li])
            .into_iter()
            .partition(|r| pred(r.sink));
        pending[li] = rest;
        due.sort_by_key(|r| (r.sink, r.seq));
        due
    }

    /// Puts rows back after a failed write (they are tried again on the next flush).
    fn restore(&self, li: usize, rows: Vec<PendingRow>) {
        if rows.is_empty() {
            return;
        }
        let mut pending = self.pending();
        pending[li].extend(rows);
    }
}

fn nanos(d: Duration) -> u128 {
    d.as_nanos().max(1)
}

impl Emulator {
    /// Directory the lakes are written under, if the scenario has lakes written to a local
    /// directory.
    pub fn lake_root(&self) -> Option<&Path> {
        self.lakes.root.as_deref()
    }

    /// Directory of lake `lake` (`<lake root>/<container>`).
    pub fn lake_dir(&self, lake: &str) -> Option<PathBuf> {
        let def = self.lakes.defs.iter().find(|d| d.name == lake)?;
        Some(self.lake_root()?.join(&def.container))
    }

    /// Index of the folder of `def` open at `at`.
    pub(crate) fn folder_index(&self, def: &LakeDef, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.started).as_nanos();
        u64::try_from(since / nanos(def.interval)).unwrap_or(u64::MAX)
    }

    /// When folder `k` of `def` opens (and folder `k - 1` closes).
    pub(crate) fn folder_opens(&self, def: &LakeDef, k: u64) -> Instant {
        let n = nanos(def.interval).saturating_mul(u128::from(k));
        self.started + Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))
    }

    /// The close instant of the folder a row sinking at `sink` goes into, and that folder's
    /// name (`None` for the table layout, which has no folders).
    pub(crate) fn lake_folder_of(&self, replica: &str, sink: Instant) -> Option<(Instant, String)> {
        let def = self.lakes.of_replica(replica)?;
        if def.table_layout.is_some() || def.delta {
            return None;
        }
        let k = self.folder_index(def, sink);
        let name = folder_name(self.unstepped_wall_time(self.folder_opens(def, k)));
        Some((self.folder_opens(def, k.saturating_add(1)), name))
    }

    /// When a row of `replica` that reached the export at `sink` becomes readable: the close
    /// of its folder, or (table layout) `sink` itself, when it is put into its file.
    pub(crate) fn lake_visible_at(&self, replica: &str, sink: Instant) -> Option<Instant> {
        let def = self.lakes.of_replica(replica)?;
        if def.delta {
            // Committed when the refresh interval it reached the export in ends, or when that
            // commit was written, if later.
            let k = self.folder_index(def, sink);
            let end = self.folder_opens(def, k.saturating_add(1));
            let written = self
                .lakes
                .locate(replica)
                .and_then(|(li, ti)| self.lakes.delta_written_at(li, ti, k));
            return Some(written.map_or(end, |w| w.max(end)));
        }
        match def.table_layout {
            Some(_) => Some(sink),
            None => self.lake_folder_of(replica, sink).map(|(close, _)| close),
        }
    }

    /// Queues the version `entry` of record `id`, committed at `committed`, for the lake
    /// table of replica `r` (called right after the landscape committed it): twice, the
    /// copy right behind, if its version draw says [`VersionFate::Duplicated`]. Whether the
    /// copy was queued: a version that never reaches the export is duplicated in no lake.
    pub(crate) fn lake_commit(
        &self,
        r: &ReplicaDef,
        id: Uuid,
        entry: &ReplicaEntry,
        committed: Instant,
    ) -> bool {
        let Some(sink) = entry.visible_at else {
            return false; // dropped (a version draw too): never reaches the export
        };
        if sink > self.started + FOREVER.get() / 2 {
            return false; // queued behind a paused map for the life of the emulator
        }
        let Some((li, row)) = self.lake_row(r, id, Some(entry), sink) else {
            return false;
        };
        let copy = (entry.version == VersionFate::Duplicated).then(|| PendingRow {
            seq: self.lakes.seq.fetch_add(1, Ordering::Relaxed),
            copy_of: Some(committed),
            ..row.clone()
        });
        self.lake_queue(li, row);
        match copy {
            Some(copy) => {
                self.lake_queue(li, copy);
                true
            }
            None => false,
        }
    }

    /// Queues a row of record `id` reaching the lake table of replica `r` at `sink`: version
    /// `entry`, or (`None`) its delete row.
    fn lake_push(&self, r: &ReplicaDef, id: Uuid, entry: Option<&ReplicaEntry>, sink: Instant) {
        if let Some((li, row)) = self.lake_row(r, id, entry, sink) {
            self.lake_queue(li, row);
        }
    }

    /// Queues `row` for lake `li`, noted for the table's status ([`super::status`]).
    fn lake_queue(&self, li: usize, row: PendingRow) {
        if let Some(t) = self.lakes.defs[li].tables.get(row.table) {
            self.book()
                .lakes
                .entry(t.replica.clone())
                .or_default()
                .note_export(row.sink, row.seq, row.version);
        }
        self.lakes.push(li, row);
    }

    /// The row [`Emulator::lake_push`] queues, with the index of its lake.
    fn lake_row(
        &self,
        r: &ReplicaDef,
        id: Uuid,
        entry: Option<&ReplicaEntry>,
        sink: Instant,
    ) -> Option<(usize, PendingRow)> {
        let (li, ti) = self.lakes.locate(&r.name)?;
        let sink_wall = self.unstepped_wall_time(sink);
        let def = &self.lakes.defs[li];
        let mut version = None;
        let (line, partition) = match entry {
            Some(entry) => {
                let source: Map<String, Value> =
                    serde_json::from_str(&entry.payload).unwrap_or_default();
                version = source.get("versionnumber").and_then(Value::as_u64);
                let shaped = r.shape(entry);
                let created = source
                    .get("createdon")
                    .and_then(Value::as_str)
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map_or(sink_wall, |t| t.with_timezone(&Utc));
                (
                    def.tables[ti].line(id, Some((&shaped, &source)), sink_wall),
                    def.partition(created),
                )
            }
            // The table layout puts a delete where the record's rows are (see `lake_table`).
            None => (
                def.tables[ti].line(id, None, sink_wall),
                def.partition(sink_wall),
            ),
        };
        Some((
            li,
            PendingRow {
                sink,
                seq: self.lakes.seq.fetch_add(1, Ordering::Relaxed),
                id,
                table: ti,
                partition,
                line,
                delete: entry.is_none(),
                copy_of: None,
                version,
            },
        ))
    }

    /// Record `id` was deleted; `entry` is its last version with the delete as the landscape
    /// drew it for replica `r`, `prior_at` when the version before it reached the export.
    /// Deletes apply in order: versions due at or after `gone_at` never reach the export (a
    /// delete drawn shorter than the write's lag has `gone_at` = `visible_at`: the row never
    /// shows), and the delete row is appended at `gone_at` if a version reached it before. A resurrection
    /// writes the row (its last version) again when it starts and a delete row when it ends;
    /// a dropped delete, or one queued behind a paused map, writes nothing. Returns the
    /// commit instants of duplicated versions whose copy the delete cancelled: they are not
    /// in the lake twice after all.
    pub(crate) fn lake_delete(
        &self,
        r: &ReplicaDef,
        id: Uuid,
        entry: &ReplicaEntry,
        prior_at: Option<Instant>,
    ) -> Vec<Instant> {
        let Some((li, ti)) = self.lakes.locate(&r.name) else {
            return Vec::new();
        };
        let Some(gone) = entry.gone_at else {
            return Vec::new();
        };
        if gone > self.started + FOREVER.get() / 2 {
            return Vec::new();
        }
        let mut cancelled = Vec::new();
        let mut taken = Vec::new();
        let still_due = {
            let mut pending = self.lakes.pending();
            pending[li].retain(|p| {
                let cancel = p.id == id && p.table == ti && p.sink >= gone;
                if cancel {
                    cancelled.extend(p.copy_of);
                    taken.push((p.sink, p.seq));
                }
                !cancel
            });
            pending[li].iter().any(|p| p.id == id && p.table == ti)
        };
        if !taken.is_empty() {
            let mut book = self.book();
            let log = book.lakes.entry(r.name.clone()).or_default();
            for (sink, seq) in taken {
                log.cancel(sink, seq);
            }
        }
        let exported = [entry.visible_at, prior_at]
            .into_iter()
            .flatten()
            .any(|v| v < gone);
        if !(exported || still_due) {
            return cancelled;
        }
        self.lake_push(r, id, None, gone);
        if let Some((from, to)) = entry.resurrected {
            self.lake_push(r, id, Some(entry), from);
            self.lake_push(r, id, None, to);
        }
        cancelled
    }

    /// Brings every lake's files up to now: appends the rows whose sink instant has passed to
    /// the folder open at that instant, and closes every folder whose close instant has passed
    /// (opening the next, then naming it in `changelog.info`). Requests and the background
    /// task do this on their own; tests reading files directly call it first.
    ///
    /// # Errors
    /// The first storage error; whatever failed is tried again on the next flush.
    pub async fn flush_lake(&self) -> std::io::Result<()> {
        let Some(sink) = self.lakes.sink.clone() else {
            return Ok(());
        };
        let mut writers = self.lakes.writers.lock().await;
        if self.lakes.stopped.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        let now = Instant::now();
        let mut first_error = None;
        let mut next = now + Duration::from_secs(24 * 3600);
        for (li, w) in writers.iter_mut().enumerate() {
            let def = &self.lakes.defs[li];
            match self.advance_lake(sink.as_ref(), li, w, now).await {
                Ok(()) => {
                    w.last_error = None;
                    if def.table_layout.is_none() {
                        next = next.min(self.folder_opens(def, w.index.saturating_add(1)));
                    }
                }
                Err(e) => {
                    let text = e.to_string();
                    if w.last_error.as_deref() != Some(text.as_str()) {
                        tracing::warn!(lake = %def.name, error = %text, "emulated lake: cannot write");
                        w.last_error = Some(text);
                    }
                    next = next.min(now + def.interval.min(Duration::from_secs(1)));
                    first_error.get_or_insert(e);
                }
            }
        }
        {
            // Rows still pending are due at their sink instant; those left behind by an error
            // (sink instant passed) are retried with the failed lake, at `next`.
            let pending = self.lakes.pending();
            let mut due = self.lakes.due();
            *due = pending
                .iter()
                .flatten()
                .map(|r| r.sink)
                .filter(|s| *s > now)
                .fold(next, Instant::min);
        }
        drop(writers);
        first_error.map_or(Ok(()), Err)
    }

    async fn advance_lake(
        &self,
        sink: &dyn LakeSink,
        li: usize,
        w: &mut Writer,
        now: Instant,
    ) -> std::io::Result<()> {
        let def = &self.lakes.defs[li];
        let c = &def.container;
        if let Some((_, mode)) = def.table_layout {
            return self.advance_table(sink, li, w, now, mode).await;
        }
        if def.delta {
            return self.advance_delta(li, w, now).await;
        }
        if !w.started {
            // From folder 0 even if the first flush comes late (or storage failed for a
            // while): every row then lands in the folder its ground truth names.
            let k = 0;
            sink.create_dir(&format!("{c}/Changelog")).await?;
            write_atomic(
                sink,
                &format!("{c}/model.json"),
                &self.model_json(def, None),
            )
            .await?;
            self.open_folder(sink, def, k).await?;
            w.files.clear();
            // The initial sync: the seeded rows are in the first folder.
            let folder = self.folder_name_of(def, k);
            for (ti, t) in def.tables.iter().enumerate() {
                let dir = format!("{c}/{folder}/{}", t.table);
                let written =
                    lake_seed::write_csv(sink, def, ti, &dir, self.started_wall, true, |_, _| {})
                        .await?;
                w.files.extend(written.into_iter().map(|p| (ti, p)));
            }
            w.started = true;
            w.index = k;
        }
        loop {
            let close = self.folder_opens(def, w.index.saturating_add(1));
            if close > now {
                break;
            }
            let rows = self.lakes.take(li, |s| s < close);
            self.append_rows(sink, li, w, rows).await?;
            if !w.files.is_empty() {
                let name = self.folder_name_of(def, w.index);
                let model = self.model_json(def, Some((&name, &w.files)));
                write_atomic(sink, &format!("{c}/{name}/model.json"), &model).await?;
            }
            self.open_folder(sink, def, w.index + 1).await?;
            w.index += 1;
            w.files.clear();
        }
        let rows = self.lakes.take(li, |s| s <= now);
        self.append_rows(sink, li, w, rows).await
    }

    /// The Delta layout: the tables created, then one commit per ended refresh interval with
    /// the rows that reached the export during it (see [`super::lake_delta`]).
    async fn advance_delta(&self, li: usize, w: &mut Writer, now: Instant) -> std::io::Result<()> {
        let def = &self.lakes.defs[li];
        let Some(sink) = self.lakes.sink.clone() else {
            return Ok(());
        };
        if !w.started {
            w.delta
                .create(sink, def, wall_clock(self.started, self.started_wall))
                .await?;
            // The initial sync: the seeded rows are the tables' first commit.
            w.delta.seed(def, self.started_wall).await?;
            w.started = true;
            w.index = 0;
        }
        loop {
            let close = self.folder_opens(def, w.index.saturating_add(1));
            if close > now {
                return Ok(());
            }
            let rows = self.lakes.take(li, |s| s < close);
            match w.delta.refresh(def, rows).await {
                Ok(committed) => self.lakes.delta_written(li, committed, w.index),
                Err((e, retry)) => {
                    self.lakes.restore(li, retry);
                    return Err(e);
                }
            }
            w.index += 1;
        }
    }

    /// The table layout: `model.json` first, then every row whose sink instant has passed
    /// into its partition file (see [`super::lake_table`]), then `model.json` again if a file
    /// was added, so its partitions name every file.
    async fn advance_table(
        &self,
        sink: &dyn LakeSink,
        li: usize,
        w: &mut Writer,
        now: Instant,
        mode: UpdateMode,
    ) -> std::io::Result<()> {
        let def = &self.lakes.defs[li];
        let model = format!("{}/model.json", def.container);
        if !w.started {
            sink.create_dir(&def.container).await?;
            write_atomic(
                sink,
                &model,
                &self.model_json(def, Some(("", &w.table.written))),
            )
            .await?;
            // The initial sync: the seeded rows open their partition files.
            w.table.seed(sink, def, mode, self.started_wall).await?;
            w.started = true;
        }
        let rows = self.lakes.take(li, |s| s <= now);
        let started = self.started_wall;
        let regenerate = |ti: usize, i: u64| {
            def.tables
                .get(ti)?
                .seed
                .as_ref()?
                .row(def, ti, i, started, false)
                .map(|r| r.line)
        };
        let written = w.table.write(sink, def, mode, rows, &regenerate).await;
        if w.table.model_stale {
            write_atomic(
                sink,
                &model,
                &self.model_json(def, Some(("", &w.table.written))),
            )
            .await?;
            w.table.model_stale = false;
        }
        written.map_err(|(e, rows)| {
            self.lakes.restore(li, rows);
            e
        })
    }

    fn folder_name_of(&self, def: &LakeDef, k: u64) -> String {
        folder_name(self.unstepped_wall_time(self.folder_opens(def, k)))
    }

    /// Creates folder `k` with its `model.json`, then names it in `changelog.info` (which
    /// closes the previous one).
    async fn open_folder(&self, sink: &dyn LakeSink, def: &LakeDef, k: u64) -> std::io::Result<()> {
        let c = &def.container;
        let name = self.folder_name_of(def, k);
        sink.create_dir(&format!("{c}/{name}")).await?;
        let model = self.model_json(def, Some((&name, &BTreeSet::new())));
        write_atomic(sink, &format!("{c}/{name}/model.json"), &model).await?;
        write_atomic(sink, &format!("{c}/{CHANGELOG}"), name.as_bytes()).await
    }

    /// Appends rows to the open folder, one write per file.
    async fn append_rows(
        &self,
        sink: &dyn LakeSink,
        li: usize,
        w: &mut Writer,
        rows: Vec<PendingRow>,
    ) -> std::io::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let def = &self.lakes.defs[li];
        let folder = self.folder_name_of(def, w.index);
        let mut files: BTreeMap<(usize, String), String> = BTreeMap::new();
        for r in &rows {
            files
                .entry((r.table, r.partition.clone()))
                .or_default()
                .push_str(&r.line);
        }
        for ((ti, partition), text) in &files {
            let table = &def.tables[*ti].table;
            let dir = format!("{}/{folder}/{table}", def.container);
            let result = async {
                sink.create_dir(&dir).await?;
                sink.append(&format!("{dir}/{partition}.csv"), text.as_bytes())
                    .await
            }
            .await;
            if let Err(e) = result {
                // Files appended before this one keep their rows; the rest are tried again.
                let retry = rows
                    .into_iter()
                    .filter(|r| (r.table, &r.partition) >= (*ti, partition))
                    .collect();
                self.lakes.restore(li, retry);
                return Err(e);
            }
            w.files.insert((*ti, partition.clone()));
        }
        Ok(())
    }

    /// The CDM `model.json` of a lake: every table, with the partitions of `folder`'s files
    /// (`None`: the container's root manifest, without partitions; `""`: the root manifest of
    /// the table layout, whose files are at the root).
    fn model_json(
        &self,
        def: &LakeDef,
        folder: Option<(&str, &BTreeSet<(usize, String)>)>,
    ) -> Vec<u8> {
        let sink = self.lakes.sink.as_ref();
        let completed = self
            .unstepped_wall_time(self.started)
            .format("%-m/%-d/%Y %-I:%M:%S %p")
            .to_string();
        let granularity = match def.table_layout {
            Some((Partitioning::Month, _)) => "Month",
            _ => "Year",
        };
        let entities: Vec<Value> = def
            .tables
            .iter()
            .enumerate()
            .map(|(ti, t)| {
                let partitions: Vec<Value> = folder
                    .map(|(name, files)| {
                        files
                            .iter()
                            .filter(|(i, _)| *i == ti)
                            .map(|(_, p)| {
                                let path = if name.is_empty() {
                                    format!("{}/{}/{p}.csv", def.container, t.table)
                                } else {
                                    format!("{}/{name}/{}/{p}.csv", def.container, t.table)
                                };
                                json!({
                                    "name": p,
                                    "location": sink.map(|s| s.url(&path)).unwrap_or(path),
                                    "fileFormatSettings": {
                                        "$type": "CsvFormatSettings",
                                        "columnHeaders": false,
                                        "delimiter": ",",
                                        "quoteStyle": "QuoteStyle.Csv",
                                        "csvStyle": "CsvStyle.QuoteAlways",
                                        "encoding": "UTF-8",
                                    },
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                json!({
                    "$type": "LocalEntity",
                    "name": t.table,
                    "description": t.table,
                    "annotations": [
                        {"name": "Athena:PartitionGranularity", "value": granularity},
                        {"name": "Athena:InitialSyncState", "value": "Completed"},
                        {"name": "Athena:InitialSyncDataCompletedTime", "value": completed},
                    ],
                    "attributes": t.columns.iter().map(|c| json!({
                        "name": c.name,
                        "dataType": c.data_type,
                        "maxLength": c.max_length,
                    })).collect::<Vec<_>>(),
                    "partitions": partitions,
                })
            })
            .collect();
        let model = json!({
            "name": "cdm",
            "description": "cdm",
            "version": "1.0",
            "entities": entities,
        });
        serde_json::to_vec_pretty(&model).unwrap_or_default()
    }

    /// Describes the lakes for the service description.
    pub(crate) fn describe_lakes(&self) -> Vec<Value> {
        self.lakes
            .defs
            .iter()
            .map(|d| {
                json!({
                    "lake": d.name,
                    "container": d.container,
                    "path": self.lake_dir(&d.name).map(|p| p.display().to_string()),
                    "layout": if d.delta { "delta" } else if d.table_layout.is_some() { "table" } else { "incremental" },
                    "update_mode": d.table_layout.map(|(_, m)| match m {
                        UpdateMode::InPlace => "in_place",
                        UpdateMode::AppendOnly => "append_only",
                    }),
                    "partition": d.table_layout.map(|(p, _)| match p {
                        Partitioning::Year => "year",
                        Partitioning::Month => "month",
                    }),
                    "folder_interval_seconds": d.table_layout.is_none().then_some(d.interval.as_secs_f64()),
                    "delta_tables": d.delta.then(|| d.tables.iter().map(|t| lake_delta::table_root(&d.container, &t.table)).collect::<Vec<_>>()),
                    "tables": d.tables.iter().map(|t| json!({
                        "table": t.table,
                        "replica": t.replica,
                        "columns": t.column_names(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect()
    }

    /// Stops writing lakes for good (the background task ends; later flushes do nothing), so
    /// their directory can be removed without being written again. Waits for a flush in
    /// progress.
    pub async fn stop_lake(&self) {
        let _writers = self.lakes.writers.lock().await;
        self.lakes
            .stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.lakes.wake.notify_one();
    }

    /// Starts the background task that keeps the lake files current (see the module docs).
    /// Nothing without lakes or outside a tokio runtime.
    pub(crate) fn spawn_lake_task(self: &Arc<Self>) {
        if self.lakes.defs.is_empty() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak = Arc::downgrade(self);
        let wake = self.lakes.wake.clone();
        rt.spawn(async move {
            loop {
                let notified = wake.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let due = {
                    let Some(emu) = weak.upgrade() else {
                        return;
                    };
                    if emu.lakes.stopped.load(std::sync::atomic::Ordering::SeqCst) {
                        return;
                    }
                    if emu.lakes.is_due(Instant::now()) {
                        // Errors are logged by the flush and retried at the next due instant.
                        let _ = emu.flush_lake().await;
                    }
                    match emu.lakes.next_due() {
                        Some(d) => d,
                        None => return,
                    }
                };
                tokio::select! {
                    () = tokio::time::sleep_until(due) => {}
                    () = &mut notified => {}
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_use_dots_and_milliseconds() {
        let t = "2026-11-02T10:15:00.123456Z"
            .parse::<DateTime<Utc>>()
            .unwrap();
        assert_eq!(folder_name(t), "2026-11-02T10.15.00.123Z");
        let t = "2026-11-02T10:15:00Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(folder_name(t), "2026-11-02T10.15.00.000Z");
    }

    #[test]
    fn export_times_have_seven_digits() {
        let t = "2026-11-02T10:15:07.123456789Z"
            .parse::<DateTime<Utc>>()
            .unwrap();
        assert_eq!(export_time(t), "2026-11-02T10:15:07.1234567Z");
        assert_eq!(export_time_offset(t), "2026-11-02T10:15:07.1234567+00:00");
        let t = "2026-11-02T10:15:07Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(export_time(t), "2026-11-02T10:15:07.0000000Z");
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field(""), "");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("cr\r"), "\"cr\r\"");
        assert_eq!(value_text(Some(&json!(true))), "True");
        assert_eq!(value_text(Some(&json!(3))), "3");
        assert_eq!(value_text(Some(&Value::Null)), "");
        assert_eq!(value_text(None), "");
    }

    fn table() -> LakeTable {
        LakeTable {
            replica: "lake".into(),
            table: "account".into(),
            columns: vec![
                Column::new("Id", "guid", Cell::Id),
                Column::new("SinkCreatedOn", "dateTime", Cell::Sink),
                Column::new("SinkModifiedOn", "dateTime", Cell::Sink),
                Column::new("name", "string", Cell::Field("name".into())),
                Column::new("accountid", "guid", Cell::RecordId),
                Column::new("createdon", "dateTimeOffset", Cell::CreatedOn),
                Column::new("modifiedon", "dateTime", Cell::ModifiedOn),
                Column::new("versionnumber", "int64", Cell::VersionNumber),
                Column::new("IsDelete", "boolean", Cell::IsDelete),
            ],
            seed: None,
        }
    }

    /// Five lake replicas of one table: losing every update's row, doubling it, neither;
    /// in incremental folders (`drop`, `dup`, `plain`) and the append-only table layout
    /// (`drop_t`, `dup_t`).
    const VERSIONS: &str = r#"
seed: 7
dataverse:
  crm:
    tables:
      accounts: { id: accountid, columns: { name: string } }
lakes:
  drop: { container: dataverse-crm-drop }
  dup: { container: dataverse-crm-dup }
  plain: { container: dataverse-crm-plain }
  drop_t: { container: dataverse-crm-drop-t, layout: table, update_mode: append_only }
  dup_t: { container: dataverse-crm-dup-t, layout: table, update_mode: append_only }
replicas:
  drop:
    source: crm/accounts
    target: { kind: lake, lake: drop, table: account }
    lag: { distribution: fixed, value: 2s }
    folder_interval: 10s
    version_drop_probability: 1.0
  dup:
    source: crm/accounts
    target: { kind: lake, lake: dup, table: account }
    lag: { distribution: fixed, value: 2s }
    folder_interval: 10s
    version_duplicate_probability: 1.0
  plain:
    source: crm/accounts
    target: { kind: lake, lake: plain, table: account }
    lag: { distribution: fixed, value: 2s }
    folder_interval: 10s
  drop_t:
    source: crm/accounts
    target: { kind: lake, lake: drop_t, table: account }
    lag: { distribution: fixed, value: 2s }
    version_drop_probability: 1.0
  dup_t:
    source: crm/accounts
    target: { kind: lake, lake: dup_t, table: account }
    lag: { distribution: fixed, value: 2s }
    version_duplicate_probability: 1.0
"#;

    /// Every CSV line under `dir`, files in path order (folders in time order).
    fn csv_lines(dir: &Path) -> Vec<String> {
        let mut files = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
                let path = e.expect("entry").path();
                if path.is_dir() {
                    todo.push(path);
                } else if path.extension().is_some_and(|x| x == "csv") {
                    files.push(path);
                }
            }
        }
        files.sort();
        files
            .iter()
            .flat_map(|f| {
                let text = std::fs::read_to_string(f).expect("csv");
                text.lines().map(str::to_string).collect::<Vec<_>>()
            })
            .collect()
    }

    /// The versionnumber of each row of record `id` in lake `lake`, in file order (0 for a
    /// delete row).
    fn versions_in(emu: &Emulator, lake: &str, id: Uuid) -> Vec<u64> {
        let dir = emu.lake_dir(lake).expect("lake dir");
        csv_lines(&dir)
            .iter()
            .filter(|l| l.starts_with(&id.to_string()))
            .map(|l| {
                // Id, SinkCreatedOn, SinkModifiedOn, name, accountid, createdon, modifiedon,
                // versionnumber, IsDelete
                let cells: Vec<&str> = l.split(',').collect();
                assert_eq!(cells.len(), 9, "{l}");
                cells[7].parse().unwrap_or(0)
            })
            .collect()
    }

    /// Writes version `v` of record `id` the way a Dataverse create or update replicates it;
    /// returns its commit instant.
    fn write(emu: &Emulator, id: Uuid, v: u64) -> Instant {
        let at = emu.wall_now().to_rfc3339();
        let row: Map<String, Value> = serde_json::from_value(json!({
            "accountid": id.to_string(),
            "name": format!("v{v}"),
            "createdon": at,
            "modifiedon": at,
            "versionnumber": v,
        }))
        .expect("row");
        let committed = Instant::now();
        emu.replicate("crm", "accounts", id, &row);
        committed
    }

    async fn truth_json(emu: &Emulator, replica: &str, id: Uuid) -> Value {
        let req = axum::http::Request::builder()
            .uri(format!("/_truth/{replica}/{id}"))
            .body(axum::body::Body::empty())
            .expect("request");
        let resp = emu.handle(req).await;
        assert_eq!(resp.status(), 200);
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[tokio::test(start_paused = true)]
    async fn updates_are_lost_or_doubled_in_the_lake_as_the_truth_says() {
        let scenario = Scenario::from_yaml(VERSIONS).unwrap_or_else(|e| panic!("{e}"));
        let emu = Emulator::new(scenario);
        emu.flush_lake().await.expect("lake written");
        let id = Uuid::now_v7();
        write(&emu, id, 1);
        let mut updates = Vec::new();
        for v in 2..=4 {
            tokio::time::advance(Duration::from_secs(1)).await;
            updates.push(write(&emu, id, v));
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        emu.flush_lake().await.expect("flush");

        for lake in ["drop", "drop_t"] {
            assert_eq!(versions_in(&emu, lake, id), [1], "{lake}: only the create");
            let t = emu.truth(lake, &id.to_string()).expect("truth");
            assert_eq!(t.versions_dropped, updates, "{lake}");
            assert!(t.versions_duplicated.is_empty(), "{lake}");
            assert!(
                t.dropped && t.visible_at.is_none(),
                "{lake}: the latest is lost"
            );
        }
        for lake in ["dup", "dup_t"] {
            assert_eq!(
                versions_in(&emu, lake, id),
                [1, 2, 2, 3, 3, 4, 4],
                "{lake}: the create once, each update twice"
            );
            let rows: Vec<String> = csv_lines(&emu.lake_dir(lake).expect("dir"))
                .into_iter()
                .filter(|l| l.starts_with(&id.to_string()))
                .collect();
            for pair in [(1, 2), (3, 4), (5, 6)] {
                assert_eq!(rows[pair.0], rows[pair.1], "{lake}: an identical copy");
            }
            let t = emu.truth(lake, &id.to_string()).expect("truth");
            assert_eq!(t.versions_duplicated, updates, "{lake}");
            assert!(t.versions_dropped.is_empty(), "{lake}");
            assert!(!t.dropped && t.visible_at.is_some(), "{lake}");
        }
        assert_eq!(versions_in(&emu, "plain", id), [1, 2, 3, 4]);
        let t = emu.truth("plain", &id.to_string()).expect("truth");
        assert!(t.versions_dropped.is_empty() && t.versions_duplicated.is_empty());

        let j = truth_json(&emu, "drop", id).await;
        let listed = j["versions_dropped"].as_array().expect("array");
        assert_eq!(listed.len(), 3, "{j}");
        for (entry, at) in listed.iter().zip(&updates) {
            let wall = emu.wall_time(*at);
            assert_eq!(entry["committed_at"], json!(crate::rfc3339(wall)));
            let unix = entry["committed_at_unix"].as_f64().expect("unix seconds");
            assert!(
                (unix - wall.timestamp_millis() as f64 / 1e3).abs() < 1e-3,
                "{entry}"
            );
        }
        assert_eq!(j["versions_duplicated"], json!([]));
        let j = truth_json(&emu, "dup", id).await;
        assert_eq!(j["versions_duplicated"].as_array().map(Vec::len), Some(3));

        // The delete still follows the create's row, past the lost updates; a record written
        // again is a create, with a truth of its own.
        emu.unreplicate("crm", "accounts", id);
        tokio::time::advance(Duration::from_secs(30)).await;
        emu.flush_lake().await.expect("flush");
        for lake in ["drop", "drop_t"] {
            assert_eq!(
                versions_in(&emu, lake, id),
                [1, 0],
                "{lake}: create, delete"
            );
        }
        assert_eq!(versions_in(&emu, "dup", id), [1, 2, 2, 3, 3, 4, 4, 0]);
        write(&emu, id, 5);
        tokio::time::advance(Duration::from_secs(30)).await;
        emu.flush_lake().await.expect("flush");
        for lake in ["drop", "drop_t", "dup", "dup_t"] {
            assert_eq!(versions_in(&emu, lake, id).last(), Some(&5), "{lake}");
            let t = emu.truth(lake, &id.to_string()).expect("truth");
            assert!(
                t.versions_dropped.is_empty() && t.versions_duplicated.is_empty(),
                "{lake}: {t:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_duplicate_a_delete_overtakes_is_not_one() {
        // The delete is drawn as fast as the write: the update's rows never reach the export.
        let scenario = Scenario::from_yaml(VERSIONS).unwrap_or_else(|e| panic!("{e}"));
        let emu = Emulator::new(scenario);
        emu.flush_lake().await.expect("lake written");
        let id = Uuid::now_v7();
        write(&emu, id, 1);
        tokio::time::advance(Duration::from_secs(5)).await;
        write(&emu, id, 2);
        emu.unreplicate("crm", "accounts", id);
        tokio::time::advance(Duration::from_secs(30)).await;
        emu.flush_lake().await.expect("flush");
        for lake in ["dup", "dup_t"] {
            assert_eq!(versions_in(&emu, lake, id), [1, 0], "{lake}");
            let t = emu.truth(lake, &id.to_string()).expect("truth");
            assert!(t.versions_duplicated.is_empty(), "{lake}: {t:?}");
        }
    }

    #[test]
    fn rows_follow_the_column_order() {
        let id = Uuid::parse_str("6f1c5d4e-0000-4000-8000-000000000001").unwrap();
        let sink = "2026-11-02T10:15:07.5Z".parse::<DateTime<Utc>>().unwrap();
        let shaped: Map<String, Value> =
            serde_json::from_value(json!({"name": "a, \"b\"\nc"})).unwrap();
        let source: Map<String, Value> = serde_json::from_value(json!({
            "createdon": "2026-11-02T10:15:05Z",
            "modifiedon": "2026-11-02T10:15:06Z",
            "versionnumber": 1000001
        }))
        .unwrap();
        assert_eq!(
            table().line(id, Some((&shaped, &source)), sink),
            "6f1c5d4e-0000-4000-8000-000000000001,2026-11-02T10:15:07.5000000Z,\
             2026-11-02T10:15:07.5000000Z,\"a, \"\"b\"\"\nc\",6f1c5d4e-0000-4000-8000-000000000001,\
             2026-11-02T10:15:05.0000000+00:00,2026-11-02T10:15:06.0000000Z,1000001,\n"
        );
        assert_eq!(
            table().line(id, None, sink),
            "6f1c5d4e-0000-4000-8000-000000000001,2026-11-02T10:15:07.5000000Z,\
             2026-11-02T10:15:07.5000000Z,,,,,,True\n"
        );
    }
}
