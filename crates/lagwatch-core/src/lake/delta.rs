//! Delta Lake tables (Link to Fabric in OneLake, Synapse Link's Delta conversion), read from
//! the transaction log so that a poll costs what changed, never the size of the table.
//!
//! A Delta table is a folder of Parquet data files plus `_delta_log/`: one JSON file of
//! actions per commit (`00000000000000000042.json`: `add` and `remove` of data files,
//! `metaData`, `protocol`, `commitInfo`), Parquet checkpoints that sum the log up every few
//! commits (`…42.checkpoint.parquet`, named by `_last_checkpoint`), and log retention that
//! deletes old commit files once a checkpoint covers them.
//!
//! The [`DeltaCursor`] keeps the version it has applied and the set of live data files, each
//! marked *accounted* (its rows were read, or it is older than lagwatch, so it cannot hold a
//! sentinel) or not. A poll:
//!
//! 1. reads the next commit file (`GET …/<next>.json`; a 404 means nothing new, and then
//!    `_last_checkpoint` tells whether log retention has moved past the cursor, in which case
//!    it catches up from that checkpoint instead);
//! 2. applies each new commit: `add` with `dataChange: true` is new rows (to read, unless its
//!    column statistics prove no key in it starts with lagwatch's prefix and, for keyless
//!    rows, no `Id` in it is a found sentinel's); `remove` drops a file; `add` with
//!    `dataChange: false` is rows moved by compaction (OPTIMIZE) — already accounted for,
//!    unless the commit removed a file whose rows were never read (it vanished before it could
//!    be read, or arrived in a checkpoint), in which case the compacted file is read;
//! 3. reads the data files that are live and not accounted for, in commit order, keeping only
//!    rows whose key starts with the sentinel prefix and delete rows of found sentinels.
//!
//! Deletes (the `deletes` guarantee): a lookup answers from the table version read last. A
//! sentinel is deleted by a change row with `IsDelete` true (append-only tables: Synapse
//! Link's and the export's change rows; matched by `Id`, since a delete row carries nothing
//! else), or when every data file holding its row was removed with `dataChange` and no file
//! added by that commit or a later one holds it (a merge rewriting the file without the row).
//! Compaction moves its rows to the files it adds. A later row brings it back: a resurrection.
//!
//! So an idle poll is two small requests, a poll after a commit reads that commit and its new
//! files, and a compaction costs nothing. State changes only after each step completes, so a
//! poll abandoned at its deadline, or failed, is resumed by the next.
//!
//! Supported: reader versions 1–3 with the reader features `columnMapping` (name and id
//! modes), `deletionVectors` (the vectors are not read: a row deleted by one still counts as
//! present, so such a delete shows as lost), `timestampNtz`, `typeWidening` and `vacuumProtocolCheck`; classic
//! single- and multi-part checkpoints. Not supported, with a typed error naming it: V2
//! checkpoints (sidecar files), data file paths that are absolute URLs (shallow clones), and a
//! key column that is a partition column.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use parquet::schema::types::Type;
use serde::Deserialize;
use serde_json::Value;

use super::synapse::parse_datetime;
use super::{
    Batch, DELETE_COLUMNS, Found, LakeCursor, LakeError, LakeStore, Sightings, delete_flag,
};

/// The transaction log's folder under the table root.
pub const LOG_DIR: &str = "_delta_log";
/// The hint naming the newest checkpoint.
pub const LAST_CHECKPOINT: &str = "_delta_log/_last_checkpoint";

/// The reader features this reader understands (protocol reader version 3).
const READER_FEATURES: &[&str] = &[
    "columnMapping",
    "deletionVectors",
    "timestampNtz",
    "typeWidening",
    "typeWidening-preview",
    "vacuumProtocolCheck",
];

/// The commit file of version `v`.
pub fn commit_path(v: u64) -> String {
    format!("{LOG_DIR}/{v:020}.json")
}

/// The checkpoint files of version `v`: one, or `parts` of a multi-part checkpoint.
pub fn checkpoint_paths(v: u64, parts: Option<u32>) -> Vec<String> {
    match parts {
        Some(n) if n > 1 => (1..=n)
            .map(|i| format!("{LOG_DIR}/{v:020}.checkpoint.{i:010}.{n:010}.parquet"))
            .collect(),
        _ => vec![format!("{LOG_DIR}/{v:020}.checkpoint.parquet")],
    }
}

/// Which rows a cursor looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaSpec {
    /// Column (logical name, as in the table's schema) holding the sentinel key.
    pub key_column: String,
    /// Column holding the payload; `None`: presence only.
    pub payload_column: Option<String>,
    /// Only keys starting with this are kept (`lagwatch-<instance>-`).
    pub key_prefix: String,
}

/// What a scan did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Commits applied in this scan.
    pub commits: usize,
    /// Data files read in this scan.
    pub files_read: usize,
    /// Whether the scan started from a checkpoint (start-up or catching up).
    pub from_checkpoint: bool,
    /// Time of the newest commit seen so far.
    pub newest_commit: Option<DateTime<Utc>>,
}

// ---- the log's actions -------------------------------------------------------------------

/// One line of a commit file, or one row of a checkpoint. Unknown actions (`txn`, `cdc`,
/// `domainMetadata`, …) are ignored.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Action {
    #[serde(default)]
    pub(crate) add: Option<Add>,
    #[serde(default)]
    pub(crate) remove: Option<Remove>,
    #[serde(default, rename = "metaData")]
    pub(crate) meta_data: Option<MetaData>,
    #[serde(default)]
    pub(crate) protocol: Option<Protocol>,
    #[serde(default, rename = "commitInfo")]
    pub(crate) commit_info: Option<Value>,
    #[serde(default, rename = "checkpointMetadata")]
    pub(crate) checkpoint_metadata: Option<Value>,
    #[serde(default)]
    pub(crate) sidecar: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Add {
    pub(crate) path: String,
    #[serde(default)]
    pub(crate) modification_time: Option<i64>,
    #[serde(default)]
    pub(crate) data_change: Option<bool>,
    #[serde(default)]
    pub(crate) stats: Option<String>,
    /// Rows of the file deleted without rewriting it; `None` (or null in a checkpoint) when
    /// every row of the file is live.
    #[serde(default, rename = "deletionVector")]
    pub(crate) deletion_vector: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Remove {
    pub(crate) path: String,
    #[serde(default)]
    pub(crate) data_change: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MetaData {
    pub(crate) schema_string: String,
    #[serde(default)]
    pub(crate) partition_columns: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) configuration: Option<HashMap<String, Value>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Protocol {
    pub(crate) min_reader_version: i64,
    #[serde(default)]
    pub(crate) reader_features: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct LastCheckpoint {
    pub(crate) version: u64,
    #[serde(default)]
    pub(crate) parts: Option<u32>,
}

/// More parts than any writer splits a checkpoint into. A hint (or a checkpoint file name)
/// naming more is garbage, refused before a path is made for every part: `"parts":
/// 4294967295` would otherwise be four billion strings.
pub const MAX_CHECKPOINT_PARTS: u32 = 10_000;

impl LastCheckpoint {
    /// The hint if it can be followed: at most [`MAX_CHECKPOINT_PARTS`] parts, and a version
    /// after which a commit can still follow.
    pub(crate) fn checked(self, path: &str) -> Result<LastCheckpoint, LakeError> {
        if let Some(n) = self.parts.filter(|&n| n > MAX_CHECKPOINT_PARTS) {
            return Err(malformed(
                path,
                format!(
                    "names a checkpoint in {n} parts, more than the {MAX_CHECKPOINT_PARTS} read"
                ),
            ));
        }
        if self.version == u64::MAX {
            return Err(malformed(path, "names the last possible version"));
        }
        Ok(self)
    }
}

pub(crate) fn malformed(path: &str, reason: impl Into<String>) -> LakeError {
    LakeError::Malformed {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// The actions of one commit file.
pub(crate) fn parse_commit(path: &str, bytes: &[u8]) -> Result<Vec<Action>, LakeError> {
    let text = std::str::from_utf8(bytes).map_err(|_| malformed(path, "not UTF-8 text"))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let action: Action = serde_json::from_str(line).map_err(|e| {
            malformed(
                path,
                format!(
                    "line {}: not a Delta log action ({e}): {}",
                    i + 1,
                    crate::net::excerpt(line.as_bytes())
                ),
            )
        })?;
        out.push(action);
    }
    Ok(out)
}

/// A relative data file path as the log writes it (a URI path, percent-encoded).
pub(crate) fn data_path(log_file: &str, raw: &str) -> Result<String, LakeError> {
    if raw.contains("://") || raw.starts_with('/') {
        return Err(malformed(
            log_file,
            format!(
                "data file \"{}\" is an absolute URL (a shallow clone?); only files inside the \
                 table are supported",
                crate::net::excerpt(raw.as_bytes())
            ),
        ));
    }
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| malformed(log_file, "a data file path is not UTF-8 once decoded"))?;
    if decoded
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(malformed(
            log_file,
            format!("data file \"{decoded}\" is not a path inside the table"),
        ));
    }
    Ok(decoded.into_owned())
}

pub(crate) fn check_protocol(path: &str, p: &Protocol) -> Result<(), LakeError> {
    if p.min_reader_version > 3 || p.min_reader_version < 1 {
        return Err(malformed(
            path,
            format!(
                "the table needs Delta reader version {}; lagwatch reads versions 1 to 3",
                p.min_reader_version
            ),
        ));
    }
    if let Some(features) = &p.reader_features {
        let unsupported: Vec<&str> = features
            .iter()
            .map(String::as_str)
            .filter(|f| !READER_FEATURES.contains(f))
            .collect();
        if !unsupported.is_empty() {
            return Err(malformed(
                path,
                format!(
                    "the table needs reader features lagwatch does not have: {}",
                    unsupported.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

// ---- the table's columns -----------------------------------------------------------------

/// A column as stored in the data files.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub(crate) struct Physical {
    pub(crate) name: String,
    /// Parquet field id, with column mapping mode `id`.
    pub(crate) id: Option<i32>,
}

/// Where the columns the cursor needs are in the data files.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Columns {
    key: Physical,
    payload: Option<Physical>,
    sink: Option<Physical>,
    /// `Id`: the record's id, all a delete row names its record by.
    id: Option<Physical>,
    /// `IsDelete` (or `isDeleted`): the delete marker of change rows.
    delete: Option<Physical>,
}

/// A table's logical columns, from its `metaData`: what maps a column name to the column in
/// the data files (column mapping, fact sheet §5.6 tables use it).
#[derive(Debug, Clone)]
pub(crate) struct TableSchema {
    fields: Vec<Value>,
    /// `delta.columnMapping.mode`: `none`, `name` or `id`.
    mapping: String,
    partitions: Vec<String>,
}

impl TableSchema {
    /// The schema of `meta` (read from `path`).
    pub(crate) fn of(path: &str, meta: &MetaData) -> Result<TableSchema, LakeError> {
        let schema: Value = serde_json::from_str(&meta.schema_string)
            .map_err(|e| malformed(path, format!("metaData.schemaString is not JSON ({e})")))?;
        let Some(fields) = schema.get("fields").and_then(Value::as_array) else {
            return Err(malformed(path, "metaData.schemaString has no fields"));
        };
        let mapping = meta
            .configuration
            .as_ref()
            .and_then(|c| c.get("delta.columnMapping.mode"))
            .and_then(Value::as_str)
            .unwrap_or("none");
        Ok(TableSchema {
            fields: fields.clone(),
            mapping: mapping.to_string(),
            partitions: meta.partition_columns.clone().unwrap_or_default(),
        })
    }

    /// The data file column of logical column `logical` (names compare case-insensitively, as
    /// Spark's do), if the table has it.
    pub(crate) fn find(&self, logical: &str) -> Option<Physical> {
        let field = self.fields.iter().find(|f| {
            f.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case(logical))
        })?;
        let name = field.get("name").and_then(Value::as_str)?;
        let md = field.get("metadata");
        let physical = md
            .and_then(|m| m.get("delta.columnMapping.physicalName"))
            .and_then(Value::as_str)
            .filter(|_| self.mapping != "none")
            .unwrap_or(name);
        let id = md
            .and_then(|m| m.get("delta.columnMapping.id"))
            .and_then(Value::as_i64)
            .filter(|_| self.mapping == "id")
            .and_then(|i| i32::try_from(i).ok());
        Some(Physical {
            name: physical.to_string(),
            id,
        })
    }

    /// Whether `logical` is a partition column (its values are in the log, not the files).
    pub(crate) fn is_partition(&self, logical: &str) -> bool {
        self.partitions
            .iter()
            .any(|p| p.eq_ignore_ascii_case(logical))
    }
}

/// The physical columns of `spec` in the table described by `meta`.
fn columns(path: &str, meta: &MetaData, spec: &DeltaSpec) -> Result<Columns, LakeError> {
    let schema = TableSchema::of(path, meta)?;
    let find = |logical: &str| schema.find(logical);
    let Some(key) = find(&spec.key_column) else {
        return Err(malformed(
            path,
            format!("the table has no column {}", spec.key_column),
        ));
    };
    if schema.is_partition(&spec.key_column) {
        return Err(malformed(
            path,
            format!(
                "{} is a partition column; the key column must be a data column",
                spec.key_column
            ),
        ));
    }
    let payload = match &spec.payload_column {
        None => None,
        Some(p) => {
            Some(find(p).ok_or_else(|| malformed(path, format!("the table has no column {p}")))?)
        }
    };
    let sink = find("SinkCreatedOn").or_else(|| find("SinkModifiedOn"));
    Ok(Columns {
        key,
        payload,
        sink,
        id: find("Id"),
        delete: DELETE_COLUMNS.iter().find_map(|c| find(c)),
    })
}

/// Whether a file's statistics allow a key starting with `prefix` (no statistics: yes).
///
/// Writers truncate string statistics (a prefix of the minimum; a maximum at least as large
/// as the true one), so this stays conservative.
fn may_hold(stats: Option<&str>, key: &str, prefix: &str) -> bool {
    let Some(stats) = stats.and_then(|s| serde_json::from_str::<Value>(s).ok()) else {
        return true;
    };
    if stats.get("numRecords").and_then(Value::as_u64) == Some(0) {
        return false;
    }
    let stat = |which: &str| {
        stats
            .get(which)
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
    };
    if let Some(max) = stat("maxValues")
        && max < prefix
        && !max.starts_with(prefix)
    {
        return false;
    }
    if let Some(min) = stat("minValues")
        && min > prefix
        && !min.starts_with(prefix)
    {
        return false;
    }
    true
}

/// Whether a file's statistics allow a delete row of a sentinel whose record has one of
/// `ids`: a row without a key (a delete row names its record by `Id` only) with an `Id` in the
/// file's range (no statistics: yes). Why: business deletes are common, and a file holding
/// only theirs need not be read.
fn may_hold_delete<'a>(
    stats: Option<&str>,
    key: &str,
    id: &str,
    mut ids: impl Iterator<Item = &'a str>,
) -> bool {
    let Some(stats) = stats.and_then(|s| serde_json::from_str::<Value>(s).ok()) else {
        return true;
    };
    let of = |which: &str, column: &str| stats.get(which).and_then(|m| m.get(column)).cloned();
    if stats.get("numRecords").and_then(Value::as_u64) == Some(0)
        || of("nullCount", key).and_then(|n| n.as_u64()) == Some(0)
    {
        return false;
    }
    let min = of("minValues", id);
    let max = of("maxValues", id);
    let (min, max) = (
        min.as_ref().and_then(Value::as_str),
        max.as_ref().and_then(Value::as_str),
    );
    // Truncated statistics stay conservative: a minimum is a prefix of the true one, a
    // maximum at least as large.
    ids.any(|i| min.is_none_or(|m| i >= m) && max.is_none_or(|m| i <= m || i.starts_with(m)))
}

// ---- Parquet -----------------------------------------------------------------------------

pub(crate) fn parquet_error(path: &str, e: &parquet::errors::ParquetError) -> LakeError {
    malformed(path, format!("not a readable Parquet file ({e})"))
}

/// A Parquet file opened from its footer, with every column chunk checked to lie within the
/// file: the `parquet` crate panics on a negative chunk offset or size
/// (`ColumnChunkMetaData::byte_range`), which a corrupt or hostile footer can hold. Its rows
/// are only reached through [`ParquetFile::rows`], which bounds the pages first.
pub(crate) fn open_parquet(path: &str, bytes: Vec<u8>) -> Result<ParquetFile, LakeError> {
    let len = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
    let bytes = bytes::Bytes::from(bytes);
    let reader = SerializedFileReader::new(bytes.clone()).map_err(|e| parquet_error(path, &e))?;
    for rg in reader.metadata().row_groups() {
        for c in rg.columns() {
            let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset());
            let inside = start >= 0
                && c.data_page_offset() >= 0
                && c.compressed_size() >= 0
                && start
                    .checked_add(c.compressed_size())
                    .is_some_and(|end| end <= len);
            if !inside {
                return Err(malformed(
                    path,
                    "not a readable Parquet file (a column chunk outside the file)",
                ));
            }
        }
    }
    Ok(ParquetFile {
        path: path.to_string(),
        bytes,
        reader,
    })
}

/// A Parquet file whose footer [`open_parquet`] checked. Reading rows is the one way to its
/// pages, so no page is decoded before [`super::pages::check`] bounded what its header
/// claims: the crate allocates what a header claims, not what the file holds.
pub(crate) struct ParquetFile {
    path: String,
    /// The file (shared with `reader`, not a copy), for the page walk.
    bytes: bytes::Bytes,
    reader: SerializedFileReader<bytes::Bytes>,
}

impl ParquetFile {
    pub(crate) fn metadata(&self) -> &parquet::file::metadata::ParquetMetaData {
        self.reader.metadata()
    }

    /// The rows of the top-level columns of `projection` (all, with `None`), after checking
    /// the pages of exactly the column chunks they are read from.
    pub(crate) fn rows(
        &self,
        projection: Option<Type>,
    ) -> Result<parquet::record::reader::RowIter<'_>, LakeError> {
        let descr = self.metadata().file_metadata().schema_descr();
        let wanted: Option<HashSet<&str>> = projection
            .as_ref()
            .map(|p| p.get_fields().iter().map(|f| f.name()).collect());
        let read = |i: usize| {
            wanted.as_ref().is_none_or(|w| {
                descr
                    .column(i)
                    .path()
                    .parts()
                    .first()
                    .is_some_and(|top| w.contains(top.as_str()))
            })
        };
        super::pages::check(&self.bytes, self.metadata(), read).map_err(|reason| {
            malformed(
                &self.path,
                format!("not a readable Parquet file ({reason})"),
            )
        })?;
        self.reader
            .get_row_iter(projection)
            .map_err(|e| parquet_error(&self.path, &e))
    }
}

/// The rows of a checkpoint file as log actions.
pub(crate) fn checkpoint_actions(path: &str, bytes: Vec<u8>) -> Result<Vec<Action>, LakeError> {
    let reader = open_parquet(path, bytes)?;
    let rows = reader.rows(None)?;
    let mut out = Vec::new();
    for row in rows {
        let row = row.map_err(|e| parquet_error(path, &e))?;
        let action: Action = serde_json::from_value(row.to_json_value()).map_err(|e| {
            malformed(
                path,
                format!("a checkpoint row is not a Delta action ({e})"),
            )
        })?;
        out.push(action);
    }
    Ok(out)
}

fn field_text(f: &Field) -> Option<String> {
    match f {
        Field::Null => None,
        Field::Str(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn field_time(f: &Field) -> Option<DateTime<Utc>> {
    match f {
        Field::TimestampMicros(us) => DateTime::from_timestamp_micros(*us),
        Field::TimestampMillis(ms) => DateTime::from_timestamp_millis(*ms),
        Field::Str(s) => parse_datetime(s),
        _ => None,
    }
}

/// The top-level column of a data file that holds `c`: by field id with column mapping mode
/// `id`, else by (physical) name.
pub(crate) fn locate(fields: &[Arc<Type>], c: &Physical) -> Option<Arc<Type>> {
    fields
        .iter()
        .find(|f| {
            f.name() == c.name
                || c.id
                    .is_some_and(|id| f.get_basic_info().has_id() && f.get_basic_info().id() == id)
        })
        .cloned()
}

/// The sentinel rows of one data file, in file order: rows whose key starts with `prefix`,
/// and delete rows (`IsDelete`) of a sentinel `known` or earlier in the file has.
fn data_rows(
    path: &str,
    bytes: Vec<u8>,
    cols: &Columns,
    prefix: &str,
    now: DateTime<Utc>,
    known: &Sightings,
) -> Result<Batch, LakeError> {
    let reader = open_parquet(path, bytes)?;
    let schema = reader.metadata().file_metadata().schema();
    let fields = schema.get_fields();
    let locate = |c: &Physical| locate(fields, c);
    let Some(key) = locate(&cols.key) else {
        return Err(malformed(
            path,
            format!("has no column {} (the table's key column)", cols.key.name),
        ));
    };
    let others =
        [&cols.payload, &cols.sink, &cols.id, &cols.delete].map(|c| c.as_ref().and_then(locate));
    // Column names to find in a row; empty: the file has no such column.
    let names: Vec<String> = std::iter::once(Some(&key))
        .chain(others.iter().map(Option::as_ref))
        .map(|t| t.map(|t| t.name().to_string()).unwrap_or_default())
        .collect();
    let mut projected: Vec<Arc<Type>> = vec![key];
    projected.extend(others.into_iter().flatten());
    let mut seen = HashSet::new();
    projected.retain(|t| seen.insert(t.name().to_string()));
    let projection = Type::group_type_builder(schema.name())
        .with_fields(projected)
        .build()
        .map_err(|e| parquet_error(path, &e))?;
    let rows = reader.rows(Some(projection))?;
    let mut out = Batch::default();
    for (i, row) in rows.enumerate() {
        let row = row.map_err(|e| parquet_error(path, &e))?;
        let get = |name: &str| {
            row.get_column_iter()
                .find(|(n, _)| !name.is_empty() && n.as_str() == name)
                .map(|(_, f)| f)
        };
        // A delete row has no key, only its record's `Id`.
        let k = match get(&names[0]) {
            Some(Field::Str(k)) => k.as_str(),
            None | Some(Field::Null) => "",
            Some(_) => continue,
        };
        let delete = match get(&names[4]) {
            None | Some(Field::Null) => false,
            Some(Field::Bool(b)) => *b,
            Some(Field::Str(t)) => {
                delete_flag(t).map_err(|reason| malformed(path, format!("row {i}: {reason}")))?
            }
            Some(other) => {
                return Err(malformed(
                    path,
                    format!("row {i}: IsDelete is {other}, not a boolean"),
                ));
            }
        };
        let id = get(&names[3]).and_then(field_text).unwrap_or_default();
        out.push(known, prefix, k, &id, delete, || Found {
            payload: cols
                .payload
                .as_ref()
                .map(|_| get(&names[1]).and_then(field_text).unwrap_or_default()),
            sink_at: get(&names[2]).and_then(field_time),
            observed: now,
        });
    }
    Ok(out)
}

/// The newest checkpoint in a listing of the log: where to start when there is neither a
/// `_last_checkpoint` nor a commit 0 (log retention without the hint).
pub(crate) async fn find_checkpoint(store: &dyn LakeStore) -> Result<LastCheckpoint, LakeError> {
    let listing = store.list(LOG_DIR).await?;
    let mut best: Option<LastCheckpoint> = None;
    for f in &listing.files {
        let Some((v, rest)) = f.name.split_once(".checkpoint") else {
            continue;
        };
        let Ok(version) = v.parse::<u64>() else {
            continue;
        };
        let parts = rest
            .strip_suffix(".parquet")
            .and_then(|r| r.rsplit('.').next())
            .and_then(|n| n.parse::<u32>().ok());
        let Ok(found) = (LastCheckpoint { version, parts }).checked(LOG_DIR) else {
            continue; // not a name a writer gives a checkpoint
        };
        if best.as_ref().is_none_or(|b| b.version < version) {
            best = Some(found);
        }
    }
    best.ok_or_else(|| {
        malformed(
            LOG_DIR,
            "has no commit 0, no _last_checkpoint and no checkpoint: not a Delta table \
             (yet), or the URL does not point at a table's root",
        )
    })
}

// ---- the cursor --------------------------------------------------------------------------

/// Reading position in one Delta table.
#[derive(Debug)]
pub struct DeltaCursor {
    spec: DeltaSpec,
    /// Data files written before this (ms since the epoch) cannot hold a sentinel.
    since_ms: i64,
    /// The next commit to apply; `None` until the first scan found the table's state.
    next: Option<u64>,
    /// Live data files.
    live: HashMap<String, Live>,
    columns: Option<Columns>,
    seen: Sightings,
    /// Sentinels whose every data file a commit removed (by the version that removed the
    /// last): deleted, unless a file added then or later holds their row again.
    orphans: HashMap<String, u64>,
    keep: Duration,
    newest_commit: Option<DateTime<Utc>>,
}

/// A live data file as the cursor knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Live {
    /// Its rows are accounted for: read, older than lagwatch, or shown by its statistics to
    /// hold no sentinel row.
    accounted: bool,
    /// The version that added it: files are read in commit order, so a key's later change
    /// row wins.
    version: u64,
}

impl DeltaCursor {
    /// A cursor that skips data files written before `since` (lagwatch's start minus a
    /// margin for clock offset) and remembers found sentinels for `keep`.
    pub fn new(spec: DeltaSpec, since: DateTime<Utc>, keep: Duration) -> Self {
        DeltaCursor {
            spec,
            since_ms: since.timestamp_millis(),
            next: None,
            live: HashMap::new(),
            columns: None,
            seen: Sightings::default(),
            orphans: HashMap::new(),
            keep,
            newest_commit: None,
        }
    }

    /// The sentinel with key `key`, if a data file held it and the table version read last
    /// has not deleted it (module docs).
    pub fn found(&self, key: &str) -> Option<&Found> {
        self.seen.found(key)
    }

    /// The version of the newest commit applied, once known.
    pub fn version(&self) -> Option<u64> {
        self.next.and_then(|n| n.checked_sub(1))
    }

    /// Live data files whose rows are not accounted for yet (read failed, or file missing).
    pub fn unread(&self) -> usize {
        self.live.values().filter(|l| !l.accounted).count()
    }

    /// Brings the cursor up to the table's newest commit and reads the new data files.
    ///
    /// # Errors
    /// [`LakeError`] when the store fails or the log or a data file is not what the Delta
    /// protocol documents; the cursor keeps what it had applied and resumes on the next scan.
    pub async fn scan(&mut self, store: &dyn LakeStore) -> Result<Scan, LakeError> {
        let mut scan = Scan::default();
        let mut next = match self.next {
            Some(n) => n,
            None => {
                scan.from_checkpoint = self.bootstrap(store).await?;
                self.next.unwrap_or(0)
            }
        };
        loop {
            let path = commit_path(next);
            if let Some(bytes) = store.get(&path).await? {
                let actions = parse_commit(&path, &bytes)?;
                self.apply_commit(next, &path, &actions)?;
                next += 1;
                self.next = Some(next);
                scan.commits += 1;
                continue;
            }
            // Nothing at `next`: either nothing new, or log retention moved past the cursor.
            let Some(last) = self.last_checkpoint(store).await? else {
                break;
            };
            if last.version < next {
                break;
            }
            if store.get(&path).await?.is_some() {
                continue; // committed meanwhile; apply it normally
            }
            self.restore_from(store, &last).await?;
            scan.from_checkpoint = true;
            next = last.version + 1;
            self.next = Some(next);
        }
        scan.files_read = self.read_pending(store).await?;
        scan.newest_commit = self.newest_commit;
        // Rows are dated by when they were read, so "newest" is now.
        self.seen.forget_old(Some(Utc::now()), self.keep);
        Ok(scan)
    }

    async fn last_checkpoint(
        &self,
        store: &dyn LakeStore,
    ) -> Result<Option<LastCheckpoint>, LakeError> {
        let Some(bytes) = store.get(LAST_CHECKPOINT).await? else {
            return Ok(None);
        };
        let last: LastCheckpoint = serde_json::from_slice(&bytes).map_err(|e| {
            malformed(
                LAST_CHECKPOINT,
                format!(
                    "not a checkpoint hint ({e}): {}",
                    crate::net::excerpt(&bytes)
                ),
            )
        })?;
        last.checked(LAST_CHECKPOINT).map(Some)
    }

    /// First scan: the table's state from its newest checkpoint (or from commit 0). Returns
    /// whether a checkpoint was used.
    async fn bootstrap(&mut self, store: &dyn LakeStore) -> Result<bool, LakeError> {
        let last = match self.last_checkpoint(store).await? {
            Some(l) => l,
            None => {
                let first = commit_path(0);
                if let Some(bytes) = store.get(&first).await? {
                    self.apply_commit(0, &first, &parse_commit(&first, &bytes)?)?;
                    self.next = Some(1);
                    return Ok(false);
                }
                // No hint and no first commit: log retention without `_last_checkpoint`, or
                // no table. One listing of the log tells.
                find_checkpoint(store).await?
            }
        };
        self.restore_from(store, &last).await?;
        self.next = Some(last.version + 1);
        Ok(true)
    }

    /// Replaces the live set with a checkpoint's, keeping what was known about each file.
    async fn restore_from(
        &mut self,
        store: &dyn LakeStore,
        last: &LastCheckpoint,
    ) -> Result<(), LakeError> {
        let mut actions = Vec::new();
        let mut first = String::new();
        for path in checkpoint_paths(last.version, last.parts) {
            let Some(bytes) = store.get(&path).await? else {
                return Err(malformed(
                    &path,
                    "missing, though _last_checkpoint (or the log) names it",
                ));
            };
            actions.extend(checkpoint_actions(&path, bytes)?);
            if first.is_empty() {
                first = path;
            }
        }
        let mut live = HashMap::new();
        for a in &actions {
            if a.checkpoint_metadata.is_some() || a.sidecar.is_some() {
                return Err(malformed(
                    &first,
                    "a V2 checkpoint (with sidecar files); lagwatch reads classic checkpoints",
                ));
            }
            if let Some(p) = &a.protocol {
                check_protocol(&first, p)?;
            }
            if let Some(m) = &a.meta_data {
                self.columns = Some(columns(&first, m, &self.spec)?);
            }
            if let Some(add) = &a.add {
                let path = data_path(&first, &add.path)?;
                let known = self.live.get(&path).copied().unwrap_or_else(|| Live {
                    accounted: !self.unaccounted(add),
                    version: last.version,
                });
                live.insert(path, known);
            }
        }
        if self.columns.is_none() {
            return Err(malformed(&first, "has no metaData action"));
        }
        self.live = live;
        // Files gone between the version read last and the checkpoint: whether compaction
        // moved their rows is not known, so their sentinels are deleted unless a new file
        // (all of which are read, being newer than lagwatch) holds them.
        for file in self.seen.files() {
            if !self.live.contains_key(&file) {
                for key in self.seen.file_gone(&file, &[]) {
                    self.orphans.insert(key, last.version);
                }
            }
        }
        Ok(())
    }

    /// Whether the rows of a newly added file must be read: it is newer than lagwatch and its
    /// statistics allow a sentinel row or a delete row of a sentinel found.
    fn unaccounted(&self, add: &Add) -> bool {
        let Some(c) = self.columns.as_ref() else {
            return true;
        };
        let stats = add.stats.as_deref();
        add.modification_time.unwrap_or(i64::MAX) >= self.since_ms
            && (may_hold(stats, &c.key.name, &self.spec.key_prefix)
                || c.id.as_ref().is_some_and(|id| {
                    !self.seen.is_empty()
                        && may_hold_delete(stats, &c.key.name, &id.name, self.seen.ids())
                }))
    }

    /// Applies one commit's actions (of version `version`) to the live set.
    fn apply_commit(
        &mut self,
        version: u64,
        path: &str,
        actions: &[Action],
    ) -> Result<(), LakeError> {
        for a in actions {
            if let Some(p) = &a.protocol {
                check_protocol(path, p)?;
            }
            if let Some(m) = &a.meta_data {
                self.columns = Some(columns(path, m, &self.spec)?);
            }
        }
        if self.columns.is_none() {
            return Err(malformed(
                path,
                "no metaData action before this commit: the log is incomplete",
            ));
        }
        // Removes first: a file removed and re-added in one commit (a deletion vector
        // update) keeps what was known about it.
        let mut removed: HashMap<String, Live> = HashMap::new();
        let mut rows_unaccounted_moved = false;
        let mut moved = Vec::new();
        let mut dropped = Vec::new();
        for r in actions.iter().filter_map(|a| a.remove.as_ref()) {
            let p = data_path(path, &r.path)?;
            if let Some(live) = self.live.remove(&p) {
                if !live.accounted && r.data_change == Some(false) {
                    rows_unaccounted_moved = true;
                }
                removed.insert(p.clone(), live);
            }
            if r.data_change == Some(false) {
                moved.push(p);
            } else {
                dropped.push(p);
            }
        }
        let mut newest = None;
        let mut compacted = Vec::new();
        for add in actions.iter().filter_map(|a| a.add.as_ref()) {
            let p = data_path(path, &add.path)?;
            let live = if let Some(&before) = removed.get(&p) {
                before
            } else if add.data_change == Some(false) {
                compacted.push(p.clone());
                Live {
                    accounted: !rows_unaccounted_moved,
                    version,
                }
            } else {
                Live {
                    accounted: !self.unaccounted(add),
                    version,
                }
            };
            self.live.insert(p, live);
            newest = newest.max(add.modification_time);
        }
        // Where the found sentinels' rows are now: a file added back in the same commit (a
        // deletion vector) keeps them, compaction moved them into its new files, and any
        // other removal (a merge rewriting the file without the row) took them out of the
        // table, unless a file added by this commit or a later one has them again.
        for (files, to) in [(moved, compacted.as_slice()), (dropped, &[][..])] {
            for file in files {
                if !self.live.contains_key(&file) {
                    for key in self.seen.file_gone(&file, to) {
                        self.orphans.insert(key, version);
                    }
                }
            }
        }
        let committed = actions
            .iter()
            .filter_map(|a| a.commit_info.as_ref())
            .find_map(|c| {
                c.get("inCommitTimestamp")
                    .or_else(|| c.get("timestamp"))
                    .and_then(Value::as_i64)
            })
            .or(newest)
            .and_then(DateTime::from_timestamp_millis);
        if let Some(t) = committed {
            self.newest_commit = Some(self.newest_commit.map_or(t, |n| n.max(t)));
        }
        Ok(())
    }

    /// Reads every live file whose rows are not accounted for, in commit order, so a key's
    /// latest change row decides. Then the sentinels whose files were removed and whose row
    /// no file read since holds are deleted (unless a file that could hold it is missing).
    /// Returns how many files were read.
    async fn read_pending(&mut self, store: &dyn LakeStore) -> Result<usize, LakeError> {
        let Some(cols) = self.columns.clone() else {
            return Ok(0);
        };
        let mut pending: Vec<(u64, String)> = self
            .live
            .iter()
            .filter(|(_, l)| !l.accounted)
            .map(|(p, l)| (l.version, p.clone()))
            .collect();
        pending.sort();
        let mut read = 0;
        let mut missing_from: Option<u64> = None;
        for (version, path) in pending {
            // Missing: vacuumed or not yet visible; stays unaccounted, so a compaction that
            // removes it makes its replacement be read.
            let Some(bytes) = store.get(&path).await? else {
                missing_from = Some(missing_from.map_or(version, |m| m.min(version)));
                continue;
            };
            let rows = data_rows(
                &path,
                bytes,
                &cols,
                &self.spec.key_prefix,
                Utc::now(),
                &self.seen,
            )?;
            read += 1;
            for (key, ..) in &rows.rows {
                self.orphans.remove(key);
            }
            self.seen.apply(rows, Some(&path));
            if let Some(l) = self.live.get_mut(&path) {
                l.accounted = true;
            }
        }
        // A missing file added at or after a sentinel's removal may hold its row again.
        let orphans = std::mem::take(&mut self.orphans);
        for (key, version) in orphans {
            if missing_from.is_some_and(|m| m >= version) {
                self.orphans.insert(key, version);
            } else {
                self.seen.remove(&key);
            }
        }
        Ok(read)
    }
}

#[async_trait::async_trait]
impl LakeCursor for DeltaCursor {
    async fn refresh(&mut self, store: &dyn LakeStore) -> Result<Option<DateTime<Utc>>, LakeError> {
        Ok(self.scan(store).await?.newest_commit)
    }

    fn found(&self, key: &str) -> Option<&Found> {
        DeltaCursor::found(self, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Delta table in a temp folder with the columns `Id`, `name` and `IsDelete` (boolean,
    /// or text with `text_marker`), committed by hand.
    struct Table {
        root: std::path::PathBuf,
        version: u64,
        text_marker: bool,
    }

    /// `(Id, name, IsDelete)`; `None`: null.
    type Row<'a> = (&'a str, Option<&'a str>, Option<&'a str>);

    impl Table {
        fn new(text_marker: bool) -> Table {
            let root = std::env::temp_dir().join(format!("lagwatch-dl-{}", rand::random::<u64>()));
            std::fs::create_dir_all(root.join(LOG_DIR)).unwrap();
            let marker = if text_marker { "string" } else { "boolean" };
            let schema = serde_json::json!({"type": "struct", "fields": [
                {"name": "Id", "type": "string", "nullable": true, "metadata": {}},
                {"name": "name", "type": "string", "nullable": true, "metadata": {}},
                {"name": "IsDelete", "type": marker, "nullable": true, "metadata": {}}]});
            let t = Table {
                root,
                version: 0,
                text_marker,
            };
            t.write(
                0,
                &[
                    serde_json::json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}),
                    serde_json::json!({"metaData": {"schemaString": schema.to_string(),
                    "partitionColumns": []}}),
                ],
            );
            t
        }

        fn write(&self, v: u64, actions: &[Value]) {
            let text: String = actions.iter().map(|a| format!("{a}\n")).collect();
            std::fs::write(self.root.join(commit_path(v)), text).unwrap();
        }

        fn commit(&mut self, actions: &[Value]) {
            self.version += 1;
            self.write(self.version, actions);
        }

        /// Writes data file `name` with `rows` and returns its `add` (no statistics).
        fn add(&self, name: &str, rows: &[Row<'_>], data_change: bool) -> Value {
            use parquet::data_type::{BoolType, ByteArray, ByteArrayType};
            let marker = if self.text_marker {
                "binary IsDelete (STRING)"
            } else {
                "boolean IsDelete"
            };
            let schema = Arc::new(
                parquet::schema::parser::parse_message_type(&format!(
                    "message m {{ optional binary Id (STRING); optional binary name (STRING); \
                     optional {marker}; }}"
                ))
                .unwrap(),
            );
            let props = Arc::new(parquet::file::properties::WriterProperties::builder().build());
            let mut w = parquet::file::writer::SerializedFileWriter::new(Vec::new(), schema, props)
                .unwrap();
            let mut rg = w.next_row_group().unwrap();
            let column = |pick: &dyn Fn(&Row<'_>) -> Option<String>| {
                let values: Vec<Option<String>> = rows.iter().map(pick).collect();
                let defs: Vec<i16> = values.iter().map(|v| i16::from(v.is_some())).collect();
                (values.into_iter().flatten().collect::<Vec<_>>(), defs)
            };
            let texts = [
                column(&|r| Some(r.0.to_string())),
                column(&|r| r.1.map(str::to_string)),
            ];
            for (values, defs) in &texts {
                let values: Vec<ByteArray> =
                    values.iter().map(|v| ByteArray::from(v.as_str())).collect();
                let mut c = rg.next_column().unwrap().unwrap();
                c.typed::<ByteArrayType>()
                    .write_batch(&values, Some(defs), None)
                    .unwrap();
                c.close().unwrap();
            }
            let (marks, defs) = column(&|r| r.2.map(str::to_string));
            let mut c = rg.next_column().unwrap().unwrap();
            if self.text_marker {
                let v: Vec<ByteArray> = marks.iter().map(|v| ByteArray::from(v.as_str())).collect();
                c.typed::<ByteArrayType>()
                    .write_batch(&v, Some(&defs), None)
                    .unwrap();
            } else {
                let v: Vec<bool> = marks.iter().map(|m| m == "true").collect();
                c.typed::<BoolType>()
                    .write_batch(&v, Some(&defs), None)
                    .unwrap();
            }
            c.close().unwrap();
            rg.close().unwrap();
            std::fs::write(self.root.join(name), w.into_inner().unwrap()).unwrap();
            serde_json::json!({"add": {"path": name, "dataChange": data_change,
                "modificationTime": Utc::now().timestamp_millis()}})
        }

        fn remove(name: &str, data_change: bool) -> Value {
            serde_json::json!({"remove": {"path": name, "dataChange": data_change}})
        }

        fn cursor(&self) -> (crate::lake::LocalStore, DeltaCursor) {
            let spec = DeltaSpec {
                key_column: "name".into(),
                payload_column: None,
                key_prefix: "lagwatch-".into(),
            };
            let since = Utc::now() - chrono::Duration::seconds(60);
            (
                crate::lake::LocalStore::new(&self.root),
                DeltaCursor::new(spec, since, Duration::from_secs(3600)),
            )
        }
    }

    impl Drop for Table {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    #[tokio::test]
    async fn a_delete_row_in_a_later_commit_hides_a_sentinel_until_its_row_comes_back() {
        let mut t = Table::new(false);
        let (store, mut c) = t.cursor();
        let a = t.add(
            "a.parquet",
            &[
                ("g1", Some("lagwatch-a"), Some("false")),
                ("b1", Some("x"), None),
            ],
            true,
        );
        t.commit(&[a]);
        c.scan(&store).await.unwrap();
        assert!(c.found("lagwatch-a").is_some());
        // Delete rows carry only the record's Id.
        let b = t.add(
            "b.parquet",
            &[("g1", None, Some("true")), ("b1", None, Some("true"))],
            true,
        );
        t.commit(&[b]);
        c.scan(&store).await.unwrap();
        assert_eq!(c.found("lagwatch-a"), None);
        // Back (a resurrection), then deleted and back again over commits read in one scan:
        // commit order decides, whatever the file names.
        let z = t.add("z.parquet", &[("g1", Some("lagwatch-a"), None)], true);
        t.commit(&[z]);
        c.scan(&store).await.unwrap();
        assert!(c.found("lagwatch-a").is_some());
        let y = t.add("y.parquet", &[("g1", None, Some("true"))], true);
        t.commit(&[y]);
        let x = t.add(
            "x.parquet",
            &[("g1", Some("lagwatch-a"), Some("false"))],
            true,
        );
        t.commit(&[x]);
        let w = t.add("w.parquet", &[("g1", None, Some("true"))], true);
        t.commit(&[w]);
        assert_eq!(c.scan(&store).await.unwrap().files_read, 3);
        assert_eq!(c.found("lagwatch-a"), None);
    }

    #[tokio::test]
    async fn a_removed_file_takes_its_rows_unless_compaction_moved_them() {
        let mut t = Table::new(false);
        let (store, mut c) = t.cursor();
        let a = t.add(
            "a.parquet",
            &[
                ("g1", Some("lagwatch-a"), None),
                ("g2", Some("lagwatch-b"), None),
            ],
            true,
        );
        t.commit(&[a]);
        c.scan(&store).await.unwrap();
        // Compaction (dataChange false) moves the rows: still there, the new file not read.
        let k = t.add(
            "k.parquet",
            &[
                ("g1", Some("lagwatch-a"), None),
                ("g2", Some("lagwatch-b"), None),
            ],
            false,
        );
        t.commit(&[Table::remove("a.parquet", false), k]);
        assert_eq!(c.scan(&store).await.unwrap().files_read, 0);
        assert!(c.found("lagwatch-a").is_some() && c.found("lagwatch-b").is_some());
        // A merge deletes `a`: its file removed, rewritten without the row.
        let m = t.add("m.parquet", &[("g2", Some("lagwatch-b"), None)], true);
        t.commit(&[Table::remove("k.parquet", true), m]);
        c.scan(&store).await.unwrap();
        assert_eq!(c.found("lagwatch-a"), None);
        assert!(c.found("lagwatch-b").is_some());
        // A merge that puts `a` back (a resurrection), and one that deletes `b` in two commits
        // read by one scan: the last version decides.
        let n = t.add(
            "n.parquet",
            &[
                ("g1", Some("lagwatch-a"), None),
                ("g2", Some("lagwatch-b"), None),
            ],
            true,
        );
        t.commit(&[Table::remove("m.parquet", true), n]);
        let o = t.add("o.parquet", &[("g1", Some("lagwatch-a"), None)], true);
        t.commit(&[Table::remove("n.parquet", true), o]);
        c.scan(&store).await.unwrap();
        assert!(c.found("lagwatch-a").is_some());
        assert_eq!(c.found("lagwatch-b"), None);
        // A file re-added in the same commit (a deletion vector) keeps what it held.
        let mut dv = t.add("o.parquet", &[("g1", Some("lagwatch-a"), None)], true);
        dv["add"]["deletionVector"] = serde_json::json!({"storageType": "i"});
        t.commit(&[Table::remove("o.parquet", true), dv]);
        c.scan(&store).await.unwrap();
        assert!(c.found("lagwatch-a").is_some());
    }

    #[tokio::test]
    async fn a_delete_marker_that_is_not_a_boolean_is_malformed() {
        let mut t = Table::new(true);
        let (store, mut c) = t.cursor();
        let a = t.add(
            "a.parquet",
            &[
                ("g1", Some("lagwatch-a"), Some("False")),
                ("g2", Some("lagwatch-b"), Some("")),
            ],
            true,
        );
        t.commit(&[a]);
        c.scan(&store).await.unwrap();
        assert!(c.found("lagwatch-a").is_some() && c.found("lagwatch-b").is_some());
        let b = t.add("b.parquet", &[("g1", None, Some("True"))], true);
        t.commit(&[b]);
        c.scan(&store).await.unwrap();
        assert_eq!(c.found("lagwatch-a"), None);
        let g = t.add("g.parquet", &[("g2", None, Some("maybe"))], true);
        t.commit(&[g]);
        let e = c.scan(&store).await.unwrap_err();
        assert!(matches!(e, LakeError::Malformed { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "g.parquet: row 0: IsDelete is \"maybe\", neither True, False nor empty"
        );
        assert!(c.found("lagwatch-b").is_some());
    }

    #[test]
    fn statistics_skip_files_that_cannot_hold_a_sentinels_delete_row() {
        let stats = |nulls: u64, min: &str, max: &str| {
            serde_json::json!({"numRecords": 5, "nullCount": {"name": nulls},
                "minValues": {"Id": min}, "maxValues": {"Id": max}})
            .to_string()
        };
        let ids = ["5", "c"];
        let may = |s: Option<&str>| may_hold_delete(s, "name", "Id", ids.iter().copied());
        assert!(may(None));
        assert!(
            !may(Some(&stats(0, "0", "f"))),
            "every row has a key: no delete rows"
        );
        assert!(may(Some(&stats(1, "0", "f"))));
        assert!(may(Some(&stats(1, "a", "d"))));
        assert!(!may(Some(&stats(1, "6", "b"))), "no sentinel's Id in range");
        assert!(!may(Some(r#"{"numRecords":0}"#)));
        assert!(
            may(Some(r#"{"numRecords":3}"#)),
            "no statistics of the columns"
        );
    }

    #[test]
    fn checkpoint_hints_that_cannot_be_followed_are_refused() {
        // `parts: 4294967295` made a path for every part before reading the first.
        let hint = |json: &str| {
            serde_json::from_str::<LastCheckpoint>(json)
                .unwrap()
                .checked(LAST_CHECKPOINT)
        };
        assert!(hint(r#"{"version":3,"parts":4294967295}"#).is_err());
        assert!(hint(r#"{"version":3,"parts":10001}"#).is_err());
        assert!(hint(r#"{"version":18446744073709551615}"#).is_err());
        assert_eq!(hint(r#"{"version":3,"parts":2}"#).unwrap().parts, Some(2));
        assert_eq!(hint(r#"{"version":3}"#).unwrap().version, 3);
    }

    #[test]
    fn log_file_names_follow_the_protocol() {
        assert_eq!(commit_path(42), "_delta_log/00000000000000000042.json");
        assert_eq!(
            checkpoint_paths(10, None),
            ["_delta_log/00000000000000000010.checkpoint.parquet"]
        );
        assert_eq!(
            checkpoint_paths(10, Some(2)),
            [
                "_delta_log/00000000000000000010.checkpoint.0000000001.0000000002.parquet",
                "_delta_log/00000000000000000010.checkpoint.0000000002.0000000002.parquet"
            ]
        );
    }

    #[test]
    fn data_paths_are_decoded_and_stay_inside_the_table() {
        assert_eq!(
            data_path("l", "year=2026/part%20one.parquet").unwrap(),
            "year=2026/part one.parquet"
        );
        for bad in [
            "abfss://c@a.dfs.core.windows.net/t/x.parquet",
            "/etc/x",
            "../x.parquet",
            "a//b",
            "%2E%2E/x",
        ] {
            assert!(data_path("l", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn statistics_skip_files_that_cannot_hold_the_prefix() {
        let p = "lagwatch-i1-";
        let stats = |min: &str, max: &str| {
            serde_json::json!({"numRecords": 5, "minValues": {"name": min}, "maxValues": {"name": max}})
                .to_string()
        };
        assert!(may_hold(None, "name", p));
        assert!(may_hold(Some("not json"), "name", p));
        assert!(!may_hold(Some(&stats("a", "b")), "name", p));
        assert!(!may_hold(Some(&stats("m", "z")), "name", p));
        assert!(may_hold(Some(&stats("a", "z")), "name", p));
        assert!(may_hold(
            Some(&stats("lagwatch-i1-0", "lagwatch-i1-9")),
            "name",
            p
        ));
        // Truncated statistics: the minimum is a prefix, the maximum stays above the truth.
        assert!(may_hold(
            Some(&stats("lagwatch-i", "lagwatch-i1-\u{10FFFF}")),
            "name",
            p
        ));
        assert!(may_hold(Some(&stats("a", "lagwatch-i1-")), "name", p));
        assert!(!may_hold(Some(&stats("a", "lagwatch-i0")), "name", p));
        assert!(may_hold(Some(&stats("a", "z")), "other", p));
        assert!(!may_hold(Some(r#"{"numRecords":0}"#), "name", p));
    }

    #[test]
    fn protocols_beyond_the_reader_are_named() {
        let p = |v: i64, f: Option<&[&str]>| Protocol {
            min_reader_version: v,
            reader_features: f.map(|f| f.iter().map(|s| s.to_string()).collect()),
        };
        assert!(check_protocol("l", &p(1, None)).is_ok());
        assert!(check_protocol("l", &p(3, Some(&["deletionVectors", "columnMapping"]))).is_ok());
        let e = check_protocol("l", &p(3, Some(&["v2Checkpoint", "deletionVectors"])))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "l: the table needs reader features lagwatch does not have: v2Checkpoint"
        );
        assert!(
            check_protocol("l", &p(4, None))
                .unwrap_err()
                .to_string()
                .contains("reader version 4")
        );
    }

    #[test]
    fn garbage_log_lines_are_typed_errors() {
        let e = parse_commit("c.json", b"{\"add\":{\"path\":\"x\"}}\n{oops\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("c.json: line 2: not a Delta log action"),
            "{e}"
        );
        assert!(parse_commit("c.json", b"{\"add\":{\"size\":1}}").is_err());
        assert!(parse_commit("c.json", &[0xff, 0xfe]).is_err());
        let ok = parse_commit(
            "c.json",
            b"{\"txn\":{}}\n\n{\"commitInfo\":{\"timestamp\":1}}\n",
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
    }

    #[test]
    fn column_mapping_names_the_physical_columns() {
        let meta = MetaData {
            schema_string: serde_json::json!({"type": "struct", "fields": [
                {"name": "Id", "type": "string", "nullable": true, "metadata": {
                    "delta.columnMapping.id": 1, "delta.columnMapping.physicalName": "col-a"}},
                {"name": "name", "type": "string", "nullable": true, "metadata": {
                    "delta.columnMapping.id": 2, "delta.columnMapping.physicalName": "col-b"}},
                {"name": "SinkModifiedOn", "type": "timestamp", "nullable": true, "metadata": {
                    "delta.columnMapping.id": 3, "delta.columnMapping.physicalName": "col-c"}}
            ]})
            .to_string(),
            partition_columns: Some(vec![]),
            configuration: Some(HashMap::from([(
                "delta.columnMapping.mode".to_string(),
                Value::from("id"),
            )])),
        };
        let spec = DeltaSpec {
            key_column: "Name".into(),
            payload_column: None,
            key_prefix: "lagwatch-".into(),
        };
        let c = columns("l", &meta, &spec).unwrap();
        assert_eq!(
            c.key,
            Physical {
                name: "col-b".into(),
                id: Some(2)
            }
        );
        assert_eq!(c.sink.unwrap().name, "col-c");
        let mut unmapped = meta.clone();
        unmapped.configuration = None;
        assert_eq!(columns("l", &unmapped, &spec).unwrap().key.name, "name");
        let missing = DeltaSpec {
            key_column: "nope".into(),
            ..spec.clone()
        };
        assert_eq!(
            columns("l", &meta, &missing).unwrap_err().to_string(),
            "l: the table has no column nope"
        );
        let mut partitioned = unmapped;
        partitioned.partition_columns = Some(vec!["name".into()]);
        assert!(
            columns("l", &partitioned, &spec)
                .unwrap_err()
                .to_string()
                .contains("partition column")
        );
    }
}
