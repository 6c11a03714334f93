//! Reconciliation's view of a Synapse Link CSV export: every row of one table, page by page, as
//! the change log the export is ([`InventoryShape::Changes`]).
//!
//! Why a change log: neither layout holds "the table now". Incremental update folders hold the
//! changes of each interval (the first folder the initial full copy), and an append-only
//! partition file holds every version of a row and its delete as a row with `IsDelete`. So rows
//! come back in the order the export wrote them and a row whose `IsDelete` is true is a delete
//! marker; the runner keeps the last row per key. In-place partition files (one row per key)
//! read the same way.
//!
//! What is read, in order:
//!
//! - **incremental**: `Changelog/changelog.info` first; then one listing of the container's
//!   root, keeping the folders *older* than the one `changelog.info` names (the folder being
//!   written is never read, as the probe's [`Cursor`](super::synapse::Cursor) does), oldest
//!   first; per folder the `.csv` files of the table in name order, after that folder's
//!   `model.json` (each folder has its own, so a column added mid-way is found).
//! - **table**: `model.json` at the root, then the table's partition files in name order
//!   (`2025.csv` before `2026.csv`), lines in file order.
//!
//! Each [`Inventory::page`] call makes exactly one store call (a read of `changelog.info` or a
//! `model.json`, one listing, or one range of one CSV file), so the runner's pacing and the
//! system's gate see every request; pages of the listing and manifest steps carry no rows.
//! **Memory is bounded by the page**: a CSV file is never read whole, only
//! [`PAGE_BYTES`] from the offset where the last page's last complete record ended
//! ([`LakeStore::get_slice`]), so a page holds at most that many bytes and their rows. A
//! record is complete at a line feed outside quotes (quoted fields may hold line feeds: the
//! splitting of the table layout's cursor, `table::record_bounds`); a record longer than a page
//! makes the next read twice as long, up to [`MAX_RECORD_BYTES`].
//!
//! The query's `page_size` is not used: a row count would not bound memory (a row may be a
//! few bytes or megabytes), the byte range does. Nor is `changed_since`: a lake cannot be
//! filtered before it is read, so every row comes back and the runner filters.
//!
//! The continuation is this reader's own state as JSON: the folders still to read (listed
//! once per run), the current folder's files and sizes, the resolved column positions, the
//! offset, and the 64 bytes before it. Each range read starts 64 bytes early and checks those
//! bytes: a complete folder never changes, so a mismatch there is a malformed lake; a
//! table-layout partition file rewritten in place between two pages is read again from its
//! start (rows read again later win; a row the rewrite removed stays as it was read, which a
//! reconciliation's settle window reports as lag, not loss).
//!
//! Values are text as the trait asks: fields as written, except that an empty field is null
//! (CSV cannot tell them apart, and the export writes null as empty), `boolean` columns are
//! `true`/`false` (the export writes `True`/`False`), and `dateTime`/`dateTimeOffset` columns
//! are RFC 3339 UTC with a fraction only when it is not zero (`2026-11-02T10:15:07Z`, as the
//! Web API writes them; the export writes seven fractional digits). Delete rows carry only
//! `Id` and the sink times (fact sheet §5.5), so a reconciliation of a lake keys on `Id`.

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::synapse::{CHANGELOG, folder_time, parse_datetime};
use super::table::{MODEL, record_bounds};
use super::{LakeError, LakeStore, cdm};
use crate::connector::ConnectorError;
use crate::connector::inventory::{
    Inventory, InventoryPage, InventoryQuery, InventoryRow, InventoryShape,
};

/// Bytes of CSV read per page: what bounds a page's memory.
pub const PAGE_BYTES: u64 = 4 * 1024 * 1024;
/// The longest record read: a read that finds no complete record doubles, up to this.
pub const MAX_RECORD_BYTES: u64 = 64 * 1024 * 1024;
/// Bytes before the offset that are read again and compared, to notice a rewritten file.
const FINGERPRINT_BYTES: usize = 64;
/// Tag of this reader's continuations: another reader's (or version's) is refused, not misread.
const FORMAT: &str = "lake-csv/1";

/// Which Synapse Link CSV layout is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsvLayout {
    /// Incremental update folders and `Changelog/changelog.info` (fact sheet §5.3).
    Incremental,
    /// `model.json` and `<table>/<partition>.csv` at the container's root (§5.2).
    Table,
}

/// One table of a Synapse Link CSV export, read for reconciliation. See the module docs.
pub struct CsvInventory {
    store: Arc<dyn LakeStore>,
    table: String,
    layout: CsvLayout,
    page_bytes: u64,
}

impl CsvInventory {
    /// The inventory of `table` (the configured one; a query may name another table of the
    /// same export) in `store`.
    pub fn new(store: Arc<dyn LakeStore>, table: impl Into<String>, layout: CsvLayout) -> Self {
        CsvInventory {
            store,
            table: table.into(),
            layout,
            page_bytes: PAGE_BYTES,
        }
    }

    /// Reads `n` bytes per page instead of [`PAGE_BYTES`] (tests split small files with it).
    #[must_use]
    pub fn with_page_bytes(mut self, n: u64) -> Self {
        self.page_bytes = n.max(1);
        self
    }

    fn table<'a>(&'a self, query: &'a InventoryQuery) -> &'a str {
        query.table.as_deref().unwrap_or(&self.table)
    }
}

/// How a column's fields become comparable text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    Text,
    Bool,
    Time,
}

impl Kind {
    /// The kind of a CDM data type.
    fn of_cdm(data_type: &str) -> Kind {
        match data_type.to_ascii_lowercase().as_str() {
            "boolean" => Kind::Bool,
            "datetime" | "datetimeoffset" | "date" => Kind::Time,
            _ => Kind::Text,
        }
    }

    /// The text of a field (empty: null).
    fn text(self, field: &str) -> Option<String> {
        if field.is_empty() {
            return None;
        }
        Some(match self {
            Kind::Text => field.to_string(),
            Kind::Bool => bool_text(field).map_or_else(|| field.to_string(), str::to_string),
            Kind::Time => parse_datetime(field).map_or_else(|| field.to_string(), canonical_time),
        })
    }
}

/// `true`/`false` for the ways lakes write booleans (`True`, `false`, `1`, `0`).
pub(crate) fn bool_text(field: &str) -> Option<&'static str> {
    match field.trim() {
        t if t.eq_ignore_ascii_case("true") || t == "1" => Some("true"),
        t if t.eq_ignore_ascii_case("false") || t == "0" => Some("false"),
        _ => None,
    }
}

/// A datetime as inventory text: RFC 3339 UTC, fraction only when not zero.
pub(crate) fn canonical_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Names of the delete marker column (the fact sheet's `IsDelete`; the docs say `isDeleted`).
pub(crate) const DELETE_COLUMNS: &[&str] = &["IsDelete", "isDeleted"];

/// Where the requested columns are in a table's CSV records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Resolved {
    /// Fields per record, as `model.json` lists them.
    count: usize,
    /// Per requested column, its field.
    at: Vec<usize>,
    kinds: Vec<Kind>,
    /// The delete marker's field, if the table has one.
    delete_at: Option<usize>,
}

impl Resolved {
    /// The positions of `wanted` in the typed columns of `table` (from `model_path`).
    fn of(
        columns: &[cdm::Column],
        wanted: &[String],
        model_path: &str,
        table: &str,
    ) -> Result<Resolved, LakeError> {
        let find = |name: &str| {
            columns
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(name))
        };
        let mut at = Vec::with_capacity(wanted.len());
        let mut kinds = Vec::with_capacity(wanted.len());
        for w in wanted {
            let Some(i) = find(w) else {
                return Err(LakeError::Malformed {
                    path: model_path.to_string(),
                    reason: format!("table {table} has no column {w}"),
                });
            };
            at.push(i);
            kinds.push(Kind::of_cdm(&columns[i].data_type));
        }
        Ok(Resolved {
            count: columns.len(),
            at,
            kinds,
            delete_at: DELETE_COLUMNS.iter().find_map(|c| find(c)),
        })
    }

    fn row(&self, record: &csv::StringRecord) -> InventoryRow {
        InventoryRow {
            values: self
                .at
                .iter()
                .zip(&self.kinds)
                .map(|(&i, k)| record.get(i).and_then(|f| k.text(f)))
                .collect(),
            deleted: self
                .delete_at
                .and_then(|i| record.get(i))
                .and_then(bool_text)
                == Some("true"),
        }
    }
}

/// A CSV file still to read: name in its folder, size when listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileRef {
    name: String,
    size: u64,
}

/// What the next page does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Step {
    /// Incremental: read `changelog.info`.
    Changelog,
    /// Incremental: list the root, keeping the folders older than `open`.
    Root { open: String },
    /// List the table's files (in the current folder; table layout: at the root).
    Folder,
    /// Read the current folder's (table layout: the root's) `model.json`.
    Model,
    /// Read the next range of `files[0]`.
    Read,
    /// Nothing left.
    Done,
}

/// The continuation: where the reading is. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    format: String,
    step: Step,
    /// Incremental: complete folders not finished yet, oldest first (`folders[0]` is current).
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    folders: VecDeque<String>,
    /// Files of the current folder not finished yet (`files[0]` is being read).
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    files: VecDeque<FileRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    columns: Option<Resolved>,
    /// Bytes of `files[0]` read: the end of the last complete record.
    #[serde(default)]
    offset: u64,
    /// The ≤ 64 bytes before `offset`, base64.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    fingerprint: String,
    /// Bytes to read next when a page found no complete record (0: the page size).
    #[serde(default)]
    want: u64,
}

fn bad_continuation(why: &str) -> ConnectorError {
    ConnectorError::BadResponse {
        status: 0,
        detail: format!("not a continuation of this lake inventory ({why})"),
    }
}

impl State {
    fn start(layout: CsvLayout) -> State {
        State {
            format: FORMAT.to_string(),
            step: match layout {
                CsvLayout::Incremental => Step::Changelog,
                CsvLayout::Table => Step::Model,
            },
            folders: VecDeque::new(),
            files: VecDeque::new(),
            columns: None,
            offset: 0,
            fingerprint: String::new(),
            want: 0,
        }
    }

    fn decode(text: &str) -> Result<State, ConnectorError> {
        let s: State = serde_json::from_str(text).map_err(|e| bad_continuation(&e.to_string()))?;
        if s.format != FORMAT {
            return Err(bad_continuation("another reader's format"));
        }
        Ok(s)
    }

    fn encode(&self) -> String {
        // A struct of strings, numbers and sequences always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The current file is finished: on to the next, or past the folder's last.
    fn next_file(&mut self, layout: CsvLayout) {
        self.files.pop_front();
        self.offset = 0;
        self.fingerprint.clear();
        self.want = 0;
        if self.files.is_empty() {
            self.next_folder(layout);
        }
    }

    /// The current folder is finished (table layout: the table is).
    fn next_folder(&mut self, layout: CsvLayout) {
        self.files.clear();
        match layout {
            CsvLayout::Table => self.step = Step::Done,
            CsvLayout::Incremental => {
                self.folders.pop_front();
                self.columns = None;
                self.step = if self.folders.is_empty() {
                    Step::Done
                } else {
                    Step::Folder
                };
            }
        }
    }
}

impl CsvInventory {
    /// The folder the current table files are in.
    fn dir(&self, state: &State, table: &str) -> Result<String, ConnectorError> {
        match self.layout {
            CsvLayout::Table => Ok(table.to_string()),
            CsvLayout::Incremental => state
                .folders
                .front()
                .map(|f| format!("{f}/{table}"))
                .ok_or_else(|| bad_continuation("no folder to read")),
        }
    }

    fn model_path(&self, state: &State) -> Result<String, ConnectorError> {
        match self.layout {
            CsvLayout::Table => Ok(MODEL.to_string()),
            CsvLayout::Incremental => state
                .folders
                .front()
                .map(|f| format!("{f}/model.json"))
                .ok_or_else(|| bad_continuation("no folder to read")),
        }
    }

    /// One step (one store call); the rows it read.
    async fn step(
        &self,
        state: &mut State,
        query: &InventoryQuery,
    ) -> Result<Vec<InventoryRow>, ConnectorError> {
        let table = self.table(query);
        let store = self.store.as_ref();
        match state.step.clone() {
            Step::Changelog => {
                let Some(raw) = store.get(CHANGELOG).await? else {
                    return Err(LakeError::Malformed {
                        path: CHANGELOG.to_string(),
                        reason: "missing: the container is not (yet) an incremental-update-folder \
                                 export of Synapse Link"
                            .to_string(),
                    }
                    .into());
                };
                let open = String::from_utf8_lossy(&raw).trim().to_string();
                if folder_time(&open).is_none() {
                    return Err(LakeError::Malformed {
                        path: CHANGELOG.to_string(),
                        reason: format!(
                            "names \"{}\", not a folder such as 2026-11-02T10.15.00.000Z",
                            crate::net::excerpt(open.as_bytes())
                        ),
                    }
                    .into());
                }
                state.step = Step::Root { open };
            }
            Step::Root { open } => {
                let open_time =
                    folder_time(&open).ok_or_else(|| bad_continuation("open folder"))?;
                let mut folders: Vec<(DateTime<Utc>, String)> = store
                    .list("")
                    .await?
                    .dirs
                    .into_iter()
                    .filter_map(|d| folder_time(&d).map(|t| (t, d)))
                    .filter(|(t, _)| *t < open_time)
                    .collect();
                folders.sort();
                state.folders = folders.into_iter().map(|(_, d)| d).collect();
                state.step = if state.folders.is_empty() {
                    Step::Done
                } else {
                    Step::Folder
                };
            }
            Step::Folder => {
                let dir = self.dir(state, table)?;
                let mut files: Vec<FileRef> = store
                    .list(&dir)
                    .await?
                    .files
                    .into_iter()
                    .filter(|f| f.name.ends_with(".csv"))
                    .map(|f| FileRef {
                        name: f.name,
                        size: f.size,
                    })
                    .collect();
                files.sort_by(|a, b| a.name.cmp(&b.name));
                state.files = files.into();
                state.offset = 0;
                state.fingerprint.clear();
                if state.files.is_empty() {
                    state.next_folder(self.layout);
                } else {
                    state.step = match self.layout {
                        CsvLayout::Incremental => Step::Model,
                        CsvLayout::Table => Step::Read,
                    };
                }
            }
            Step::Model => {
                let path = self.model_path(state)?;
                let Some(bytes) = store.get(&path).await? else {
                    return Err(LakeError::Malformed {
                        reason: match self.layout {
                            CsvLayout::Incremental => {
                                "missing, so the CSV files' columns are unknown".to_string()
                            }
                            CsvLayout::Table => "missing: the container is not (yet) a Synapse \
                                                 Link export in the table layout"
                                .to_string(),
                        },
                        path,
                    }
                    .into());
                };
                let Some(columns) = cdm::typed_columns(&bytes, &path, table)? else {
                    return Err(LakeError::Malformed {
                        reason: format!("does not list table {table}"),
                        path,
                    }
                    .into());
                };
                state.columns = Some(Resolved::of(&columns, &query.columns, &path, table)?);
                state.step = match self.layout {
                    CsvLayout::Incremental => Step::Read,
                    CsvLayout::Table => Step::Folder,
                };
            }
            Step::Read => return self.read(state, query, table).await,
            Step::Done => {}
        }
        Ok(Vec::new())
    }

    /// One range of the current file: its complete records.
    async fn read(
        &self,
        state: &mut State,
        query: &InventoryQuery,
        table: &str,
    ) -> Result<Vec<InventoryRow>, ConnectorError> {
        let columns = state
            .columns
            .clone()
            .filter(|c| c.at.len() == query.columns.len())
            .ok_or_else(|| bad_continuation("columns of another query"))?;
        let file = state
            .files
            .front()
            .cloned()
            .ok_or_else(|| bad_continuation("no file to read"))?;
        let path = format!("{}/{}", self.dir(state, table)?, file.name);
        let fingerprint = base64::engine::general_purpose::STANDARD
            .decode(&state.fingerprint)
            .map_err(|_| bad_continuation("fingerprint"))?;
        let fp = fingerprint.len();
        let start = state
            .offset
            .checked_sub(fp as u64)
            .ok_or_else(|| bad_continuation("offset"))?;
        let want = if state.want == 0 {
            self.page_bytes
        } else {
            state.want
        };
        let Some(bytes) = self.store.get_slice(&path, start, fp as u64 + want).await? else {
            // Deleted since it was listed (retention): nothing more to read in it.
            state.next_file(self.layout);
            return Ok(Vec::new());
        };
        if bytes.get(..fp) != Some(fingerprint.as_slice()) {
            return match self.layout {
                CsvLayout::Incremental => Err(LakeError::Malformed {
                    path,
                    reason: format!(
                        "changed while it was read (the bytes before {} differ), though a \
                         complete folder's files never change",
                        state.offset
                    ),
                }
                .into()),
                CsvLayout::Table => {
                    // Rewritten in place: read it again from its start.
                    state.offset = 0;
                    state.fingerprint.clear();
                    state.want = 0;
                    Ok(Vec::new())
                }
            };
        }
        let data = &bytes[fp..];
        // A short read is the end. A complete folder's files do not change, so their listed
        // size is the end too (saving a read of nothing); a partition file may have been
        // rewritten longer since it was listed, so only a short read ends it.
        let at_end = (data.len() as u64) < want
            || (self.layout == CsvLayout::Incremental
                && state.offset.saturating_add(data.len() as u64) >= file.size);
        let (complete, open_quote) = record_bounds(data);
        let take = if at_end && self.layout == CsvLayout::Incremental {
            // A complete folder's file ends where it ends: a last record without its line feed
            // is still a record, unless a quoted field never closed.
            if open_quote {
                return Err(LakeError::Malformed {
                    path,
                    reason: format!(
                        "ends inside a quoted field (the record at byte {})",
                        state.offset + complete as u64
                    ),
                }
                .into());
            }
            data.len()
        } else {
            // Table layout: a record without its line feed at the end is still being written.
            complete
        };
        if take == 0 && !at_end {
            if want >= MAX_RECORD_BYTES {
                return Err(LakeError::Malformed {
                    path,
                    reason: format!(
                        "no record ends within the {MAX_RECORD_BYTES} bytes from byte {}",
                        state.offset
                    ),
                }
                .into());
            }
            state.want = want.saturating_mul(2).min(MAX_RECORD_BYTES);
            return Ok(Vec::new());
        }
        let rows = parse(
            &data[..take],
            &columns,
            at_end && self.layout == CsvLayout::Table,
        )
        .map_err(|(at, reason)| LakeError::Malformed {
            path: path.clone(),
            reason: format!("the row at byte {}: {reason}", state.offset + at),
        })?;
        if at_end {
            state.next_file(self.layout);
        } else {
            let end = fp + take;
            let kept = &bytes[end.saturating_sub(FINGERPRINT_BYTES)..end];
            state.offset += take as u64;
            state.fingerprint = base64::engine::general_purpose::STANDARD.encode(kept);
            state.want = 0;
        }
        Ok(rows)
    }
}

/// The rows of `data` (whole records). A record with the wrong number of fields is an error
/// `(byte, reason)`, except the last one of a table-layout file (`last_may_be_partial`), a write
/// in progress, which is skipped as the probe's cursor skips it.
fn parse(
    data: &[u8],
    columns: &Resolved,
    last_may_be_partial: bool,
) -> Result<Vec<InventoryRow>, (u64, String)> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(data);
    let mut record = csv::StringRecord::new();
    let mut rows = Vec::new();
    loop {
        let start = reader.position().byte();
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err((start, format!("not CSV ({e})"))),
        }
        if record.len() != columns.count {
            let end = usize::try_from(reader.position().byte()).unwrap_or(usize::MAX);
            if last_may_be_partial && end >= data.len() {
                break;
            }
            return Err((
                start,
                format!(
                    "{} fields; model.json lists {} columns",
                    record.len(),
                    columns.count
                ),
            ));
        }
        rows.push(columns.row(&record));
    }
    Ok(rows)
}

#[async_trait]
impl Inventory for CsvInventory {
    fn shape(&self) -> InventoryShape {
        InventoryShape::Changes
    }

    /// Only what can be told without the lake: columns are named in each folder's
    /// `model.json`, so an unknown column is an error of the first page that reads one.
    fn check(&self, query: &InventoryQuery) -> Result<(), String> {
        if query.columns.is_empty() {
            return Err("name at least one column to read".to_string());
        }
        let table = self.table(query);
        if table.is_empty() || table.contains(['/', '\\']) || table == "." || table == ".." {
            return Err(format!(
                "\"{table}\" is not a table name of the export (a folder name such as account)"
            ));
        }
        Ok(())
    }

    async fn fetch(
        &self,
        query: &InventoryQuery,
        next: Option<&str>,
    ) -> Result<InventoryPage, ConnectorError> {
        let mut state = match next {
            None => State::start(self.layout),
            Some(text) => State::decode(text)?,
        };
        let rows = self.step(&mut state, query).await?;
        Ok(InventoryPage {
            rows,
            next: (state.step != Step::Done).then(|| state.encode()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_become_comparable_text() {
        assert_eq!(Kind::Text.text("a, \"b\""), Some("a, \"b\"".to_string()));
        assert_eq!(Kind::Text.text(""), None);
        assert_eq!(Kind::Bool.text("True"), Some("true".to_string()));
        assert_eq!(Kind::Bool.text("0"), Some("false".to_string()));
        assert_eq!(Kind::Bool.text("maybe"), Some("maybe".to_string()));
        for t in [
            "2026-11-02T10:15:07.0000000Z",
            "2026-11-02T10:15:07.0000000+00:00",
            "11/02/2026 10:15:07 AM",
        ] {
            assert_eq!(
                Kind::Time.text(t),
                Some("2026-11-02T10:15:07Z".to_string()),
                "{t}"
            );
        }
        assert_eq!(
            Kind::Time.text("2026-11-02T10:15:07.1234567Z"),
            Some("2026-11-02T10:15:07.123456700Z".to_string())
        );
        assert_eq!(Kind::Time.text("soon"), Some("soon".to_string()));
        assert_eq!(Kind::of_cdm("dateTimeOffset"), Kind::Time);
        assert_eq!(Kind::of_cdm("Boolean"), Kind::Bool);
        assert_eq!(Kind::of_cdm("int64"), Kind::Text);
    }

    #[test]
    fn continuations_round_trip_and_foreign_ones_are_refused() {
        let mut s = State::start(CsvLayout::Incremental);
        s.folders = ["a".to_string(), "b".to_string()].into();
        s.files = [FileRef {
            name: "2026.csv".into(),
            size: 9,
        }]
        .into();
        s.offset = 5;
        s.fingerprint = "AAE=".into();
        s.step = Step::Read;
        assert_eq!(State::decode(&s.encode()).unwrap(), s);
        for bad in [
            "",
            "{}",
            "null",
            r#"{"format":"lake-delta/1","step":"done"}"#,
        ] {
            assert!(State::decode(bad).is_err(), "{bad}");
        }
        s.next_file(CsvLayout::Incremental);
        assert_eq!((s.step.clone(), s.folders.len()), (Step::Folder, 1));
        s.next_folder(CsvLayout::Incremental);
        assert_eq!(s.step, Step::Done);
    }

    #[test]
    fn records_parse_with_delete_markers_and_partial_last_rows() {
        let columns = Resolved {
            count: 3,
            at: vec![0, 1],
            kinds: vec![Kind::Text, Kind::Text],
            delete_at: Some(2),
        };
        let rows = parse(b"k1,\"a\nb\",\nk1,,True\nk2,x", &columns, false);
        assert!(rows.is_err(), "a short record inside is malformed");
        let rows = parse(b"k1,\"a\nb\",\nk1,,True\nk2,x", &columns, true).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].values, [Some("k1".into()), Some("a\nb".into())]);
        assert!(!rows[0].deleted && rows[1].deleted);
        let e = parse(b"k1,a,\nk2\nk3,b,\n", &columns, true).unwrap_err();
        assert_eq!(e, (6, "1 fields; model.json lists 3 columns".to_string()));
    }
}
