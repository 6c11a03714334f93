//! Reconciliation's view of a Delta table (Link to Fabric, Synapse Link's Delta conversion, the
//! emulator's change rows): every row of the live data files of the table's current snapshot,
//! page by page, as a change log ([`InventoryShape::Changes`]).
//!
//! Why a change log: a table filled with the export's change rows holds several rows per key
//! and deletes as rows with `IsDelete`; a merged table (one row per key) reads the same way.
//! Rows come file by file in the order the files were committed (a compaction's file, holding
//! the rows it replaced in their order, comes where it was committed), rows in file order, and
//! a row whose `IsDelete` is true is a delete marker; the runner keeps the last row per key.
//!
//! What is read, one store call per [`Inventory::page`]:
//!
//! 1. `_delta_log/_last_checkpoint`; with it, each part of that checkpoint (files it lists
//!    come in the order of their `modificationTime`: a checkpoint does not keep commit order);
//!    without it, commit 0 (or, when log retention removed commit 0 and the hint, one listing
//!    of the log to find the newest checkpoint);
//! 2. each commit after that, until the first that does not exist: `add` puts a file at the
//!    end of the live list, `remove` takes it out, `metaData` (re)names the columns;
//! 3. each live data file, whole: Parquet keeps its schema and row groups in a footer at the
//!    end, so a file cannot be cut into byte ranges the way a CSV file can. **A page is one data
//!    file; its memory is bounded by the largest data file of the table and its rows** (Fabric
//!    and Spark write files of up to about 1 GB; the emulator's seeded files are small).
//!
//! The query's `page_size` and `changed_since` are not used (a page is a file; the runner
//! filters). Removed files are never read. The continuation is this reader's state as JSON: the step,
//! the live files still to read (paths and modification times) and the resolved columns. A
//! live file that is missing when its turn comes (vacuumed under a reader slower than the
//! table's retention) is an error, not a silent gap.
//!
//! Columns are found by name in the table's schema, through column mapping (`name` and `id`
//! modes) as the probe's cursor finds them. Not supported, each with a typed error: a
//! requested column that is a partition column (its values live in the log), and live files
//! with deletion vectors (reading the whole file would bring back deleted rows). Values are
//! text as the trait asks: strings as stored, numbers as Parquet's records print them,
//! booleans `true`/`false`, timestamps RFC 3339 UTC with a fraction only when not zero (as the
//! CSV inventory writes them), nulls `None`.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate};
use parquet::record::Field;
use parquet::schema::types::Type;
use serde::{Deserialize, Serialize};

use super::delta::{
    Action, LAST_CHECKPOINT, LOG_DIR, LastCheckpoint, MAX_CHECKPOINT_PARTS, Physical, TableSchema,
    check_protocol, checkpoint_actions, checkpoint_paths, commit_path, data_path, find_checkpoint,
    locate, malformed, open_parquet, parquet_error, parse_commit,
};
use super::inventory::{DELETE_COLUMNS, bool_text, canonical_time};
use super::{LakeError, LakeStore};
use crate::connector::ConnectorError;
use crate::connector::inventory::{
    Inventory, InventoryPage, InventoryQuery, InventoryRow, InventoryShape,
};

/// Tag of this reader's continuations.
const FORMAT: &str = "lake-delta/1";

/// One Delta table, read for reconciliation. See the module docs.
pub struct DeltaInventory {
    store: Arc<dyn LakeStore>,
    /// How errors name the table (its URL).
    label: String,
}

impl DeltaInventory {
    /// The inventory of the Delta table whose root `store` is; `label` names it in errors.
    pub fn new(store: Arc<dyn LakeStore>, label: impl Into<String>) -> Self {
        DeltaInventory {
            store,
            label: label.into(),
        }
    }
}

/// Where the requested columns are in the data files, per the newest `metaData` read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Resolved {
    /// Per requested column, its data file column (`None`: the schema has no such column).
    columns: Vec<Option<Physical>>,
    /// The delete marker column, if the table has one.
    delete: Option<Physical>,
}

impl Resolved {
    fn of(
        path: &str,
        schema: &TableSchema,
        wanted: &[String],
        label: &str,
    ) -> Result<Resolved, LakeError> {
        if let Some(p) = wanted.iter().find(|w| schema.is_partition(w)) {
            return Err(malformed(
                path,
                format!(
                    "column {p} of table {label} is a partition column; the inventory reads the \
                     columns of the data files only"
                ),
            ));
        }
        Ok(Resolved {
            columns: wanted.iter().map(|w| schema.find(w)).collect(),
            delete: DELETE_COLUMNS
                .iter()
                .filter(|c| !schema.is_partition(c))
                .find_map(|c| schema.find(c)),
        })
    }
}

/// A live data file: path under the table root and `modificationTime` (ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Live(String, i64);

/// What the next page does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Step {
    /// Read `_last_checkpoint`.
    Hint,
    /// No hint and no commit 0: list the log for its newest checkpoint.
    ListLog,
    /// Read part `part` (0-based) of the checkpoint of `version`.
    Checkpoint {
        version: u64,
        parts: Option<u32>,
        part: u32,
    },
    /// Read commit `next`.
    Commit {
        next: u64,
    },
    /// Read the first live file.
    Files,
    Done,
}

/// The continuation. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    format: String,
    step: Step,
    /// Live data files, in the order their rows were committed (while replaying the log), then
    /// those not read yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    live: Vec<Live>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    columns: Option<Resolved>,
    /// A checkpoint or commit 0 was applied: the log has a start.
    #[serde(default)]
    loaded: bool,
}

fn bad_continuation(why: &str) -> ConnectorError {
    ConnectorError::BadResponse {
        status: 0,
        detail: format!("not a continuation of this Delta inventory ({why})"),
    }
}

impl State {
    fn start() -> State {
        State {
            format: FORMAT.to_string(),
            step: Step::Hint,
            live: Vec::new(),
            columns: None,
            loaded: false,
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
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Applies the actions of a commit or a checkpoint part read from `path`.
    fn apply(
        &mut self,
        path: &str,
        actions: &[Action],
        query: &InventoryQuery,
        label: &str,
        checkpoint: bool,
    ) -> Result<(), LakeError> {
        for a in actions {
            if a.checkpoint_metadata.is_some() || a.sidecar.is_some() {
                return Err(malformed(
                    path,
                    "a V2 checkpoint (with sidecar files); lagwatch reads classic checkpoints",
                ));
            }
            if let Some(p) = &a.protocol {
                check_protocol(path, p)?;
            }
            if let Some(m) = &a.meta_data {
                let schema = TableSchema::of(path, m)?;
                self.columns = Some(Resolved::of(path, &schema, &query.columns, label)?);
            }
        }
        // A checkpoint's `remove` rows are tombstones of files already gone, not changes.
        if !checkpoint {
            for r in actions.iter().filter_map(|a| a.remove.as_ref()) {
                let p = data_path(path, &r.path)?;
                self.live.retain(|l| l.0 != p);
            }
        }
        for add in actions.iter().filter_map(|a| a.add.as_ref()) {
            let p = data_path(path, &add.path)?;
            if add.deletion_vector.as_ref().is_some_and(|v| !v.is_null()) {
                return Err(malformed(
                    path,
                    format!(
                        "data file {p} has a deletion vector; the inventory reads whole files \
                         and would bring back the rows it deletes"
                    ),
                ));
            }
            self.live.retain(|l| l.0 != p);
            self.live
                .push(Live(p, add.modification_time.unwrap_or(i64::MAX)));
        }
        Ok(())
    }
}

impl DeltaInventory {
    /// One step (one store call); the rows it read.
    async fn step(
        &self,
        state: &mut State,
        query: &InventoryQuery,
    ) -> Result<Vec<InventoryRow>, ConnectorError> {
        let store = self.store.as_ref();
        match state.step.clone() {
            Step::Hint => {
                state.step = match store.get(LAST_CHECKPOINT).await? {
                    Some(bytes) => {
                        let last: LastCheckpoint = serde_json::from_slice::<LastCheckpoint>(&bytes)
                            .map_err(|e| {
                                malformed(
                                    LAST_CHECKPOINT,
                                    format!(
                                        "not a checkpoint hint ({e}): {}",
                                        crate::net::excerpt(&bytes)
                                    ),
                                )
                            })?
                            .checked(LAST_CHECKPOINT)?;
                        Step::Checkpoint {
                            version: last.version,
                            parts: last.parts,
                            part: 0,
                        }
                    }
                    None => Step::Commit { next: 0 },
                };
            }
            Step::ListLog => {
                let last = find_checkpoint(store).await?;
                state.step = Step::Checkpoint {
                    version: last.version,
                    parts: last.parts,
                    part: 0,
                };
            }
            Step::Checkpoint {
                version,
                parts,
                part,
            } => {
                if parts.is_some_and(|n| n > MAX_CHECKPOINT_PARTS) {
                    return Err(bad_continuation("checkpoint parts"));
                }
                let paths = checkpoint_paths(version, parts);
                let path = paths
                    .get(usize::try_from(part).unwrap_or(usize::MAX))
                    .ok_or_else(|| bad_continuation("checkpoint part"))?;
                let Some(bytes) = store.get(path).await? else {
                    return Err(malformed(
                        path,
                        "missing, though _last_checkpoint (or the log) names it",
                    )
                    .into());
                };
                if part == 0 {
                    state.live.clear();
                }
                let actions = checkpoint_actions(path, bytes)?;
                state.apply(path, &actions, query, &self.label, true)?;
                if (part as usize) + 1 < paths.len() {
                    state.step = Step::Checkpoint {
                        version,
                        parts,
                        part: part + 1,
                    };
                } else {
                    // Stable: files of equal time keep the checkpoint's order.
                    state.live.sort_by_key(|l| l.1);
                    if state.columns.is_none() {
                        return Err(malformed(path, "has no metaData action").into());
                    }
                    state.loaded = true;
                    state.step = Step::Commit {
                        next: version.saturating_add(1),
                    };
                }
            }
            Step::Commit { next } => {
                let path = commit_path(next);
                match store.get(&path).await? {
                    Some(bytes) => {
                        let actions = parse_commit(&path, &bytes)?;
                        state.apply(&path, &actions, query, &self.label, false)?;
                        if state.columns.is_none() {
                            return Err(malformed(
                                &path,
                                "no metaData action before this commit: the log is incomplete",
                            )
                            .into());
                        }
                        state.loaded = true;
                        state.step = Step::Commit {
                            next: next.saturating_add(1),
                        };
                    }
                    None if !state.loaded => state.step = Step::ListLog,
                    None => {
                        self.check_columns(state, query)?;
                        state.step = if state.live.is_empty() {
                            Step::Done
                        } else {
                            Step::Files
                        };
                    }
                }
            }
            Step::Files => return self.read_file(state, query).await,
            Step::Done => {}
        }
        Ok(Vec::new())
    }

    /// Every requested column must be in the snapshot's schema.
    fn check_columns(&self, state: &State, query: &InventoryQuery) -> Result<(), LakeError> {
        let Some(resolved) = &state.columns else {
            return Err(malformed(LOG_DIR, "no metaData action in the log"));
        };
        if let Some((name, _)) = query
            .columns
            .iter()
            .zip(&resolved.columns)
            .find(|(_, p)| p.is_none())
        {
            return Err(malformed(
                LOG_DIR,
                format!("table {} has no column {name}", self.label),
            ));
        }
        if resolved.columns.len() != query.columns.len() {
            return Err(malformed(LOG_DIR, "the columns changed between pages"));
        }
        Ok(())
    }

    /// The first live file, whole: its rows.
    async fn read_file(
        &self,
        state: &mut State,
        query: &InventoryQuery,
    ) -> Result<Vec<InventoryRow>, ConnectorError> {
        let resolved = state
            .columns
            .clone()
            .filter(|c| c.columns.len() == query.columns.len())
            .ok_or_else(|| bad_continuation("columns of another query"))?;
        if state.live.is_empty() {
            state.step = Step::Done;
            return Ok(Vec::new());
        }
        let Live(path, _) = state.live.remove(0);
        let Some(bytes) = self.store.get(&path).await? else {
            return Err(malformed(
                &path,
                "a live data file of the snapshot is missing (vacuumed while it was read?)",
            )
            .into());
        };
        let rows = data_rows(&path, bytes, &resolved)?;
        if state.live.is_empty() {
            state.step = Step::Done;
        }
        Ok(rows)
    }
}

/// A Parquet value as inventory text.
fn field_text(f: &Field) -> Option<String> {
    match f {
        Field::Null => None,
        Field::Str(s) => Some(s.clone()),
        Field::Bool(b) => Some(b.to_string()),
        Field::TimestampMicros(us) => DateTime::from_timestamp_micros(*us).map(canonical_time),
        Field::TimestampMillis(ms) => DateTime::from_timestamp_millis(*ms).map(canonical_time),
        Field::Date(days) => NaiveDate::from_ymd_opt(1970, 1, 1)
            .and_then(|d| d.checked_add_signed(chrono::Duration::days(i64::from(*days))))
            .map(|d| d.format("%Y-%m-%d").to_string()),
        other => Some(other.to_string()),
    }
}

/// Whether a delete marker field says deleted.
fn field_deleted(f: &Field) -> bool {
    match f {
        Field::Bool(b) => *b,
        Field::Str(s) => bool_text(s) == Some("true"),
        _ => false,
    }
}

/// The rows of one data file.
fn data_rows(
    path: &str,
    bytes: Vec<u8>,
    resolved: &Resolved,
) -> Result<Vec<InventoryRow>, LakeError> {
    let reader = open_parquet(path, bytes)?;
    let schema = reader.metadata().file_metadata().schema();
    let fields = schema.get_fields();
    // Per requested column (then the delete marker), the file's column name, if it has one (a
    // file older than a column has none: null).
    let located: Vec<Option<Arc<Type>>> = resolved
        .columns
        .iter()
        .map(|c| c.as_ref().and_then(|c| locate(fields, c)))
        .chain(std::iter::once(
            resolved.delete.as_ref().and_then(|c| locate(fields, c)),
        ))
        .collect();
    let names: Vec<Option<String>> = located
        .iter()
        .map(|t| t.as_ref().map(|t| t.name().to_string()))
        .collect();
    let mut seen = HashSet::new();
    let projected: Vec<Arc<Type>> = located
        .iter()
        .flatten()
        .filter(|t| seen.insert(t.name().to_string()))
        .cloned()
        .collect();
    let width = resolved.columns.len();
    if projected.is_empty() {
        // None of the columns is in this file: every row is all nulls. The rows are counted
        // by reading the file's first column, not taken from the footer's `num_rows`: that
        // is a claim, and a hostile one would size this page (2^40 rows, terabytes).
        let Some(first) = fields.first().cloned() else {
            return Ok(Vec::new());
        };
        let projection = Type::group_type_builder(schema.name())
            .with_fields(vec![first])
            .build()
            .map_err(|e| parquet_error(path, &e))?;
        let mut out = Vec::new();
        for row in reader.rows(Some(projection))? {
            row.map_err(|e| parquet_error(path, &e))?;
            out.push(InventoryRow {
                values: vec![None; width],
                deleted: false,
            });
        }
        return Ok(out);
    }
    let projection = Type::group_type_builder(schema.name())
        .with_fields(projected)
        .build()
        .map_err(|e| parquet_error(path, &e))?;
    let rows = reader.rows(Some(projection))?;
    let mut out = Vec::new();
    for row in rows {
        let row = row.map_err(|e| parquet_error(path, &e))?;
        let get = |name: &Option<String>| {
            let name = name.as_deref()?;
            row.get_column_iter()
                .find(|(n, _)| n.as_str() == name)
                .map(|(_, f)| f)
        };
        out.push(InventoryRow {
            values: names[..width]
                .iter()
                .map(|n| get(n).and_then(field_text))
                .collect(),
            deleted: get(&names[width]).is_some_and(field_deleted),
        });
    }
    Ok(out)
}

#[async_trait]
impl Inventory for DeltaInventory {
    fn shape(&self) -> InventoryShape {
        InventoryShape::Changes
    }

    /// A `delta` system is one table, the one its `url` names; columns are checked against its
    /// schema when the log has been read.
    fn check(&self, query: &InventoryQuery) -> Result<(), String> {
        if query.columns.is_empty() {
            return Err("name at least one column to read".to_string());
        }
        if let Some(t) = &query.table {
            let own = self.label.trim_end_matches('/').rsplit('/').next();
            if own.is_none_or(|o| !o.eq_ignore_ascii_case(t)) {
                return Err(format!(
                    "a delta system reads the one table its url names ({}), not {t}; leave the \
                     table out or give another system",
                    self.label
                ));
            }
        }
        Ok(())
    }

    async fn fetch(
        &self,
        query: &InventoryQuery,
        next: Option<&str>,
    ) -> Result<InventoryPage, ConnectorError> {
        let mut state = match next {
            None => State::start(),
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
    fn parquet_values_become_comparable_text() {
        assert_eq!(field_text(&Field::Null), None);
        assert_eq!(
            field_text(&Field::Long(1_000_001)).as_deref(),
            Some("1000001")
        );
        assert_eq!(field_text(&Field::Bool(true)).as_deref(), Some("true"));
        assert_eq!(
            field_text(&Field::TimestampMicros(1_793_614_507_000_000)).as_deref(),
            Some("2026-11-02T10:15:07Z")
        );
        assert_eq!(
            field_text(&Field::TimestampMicros(1_793_614_507_123_456)).as_deref(),
            Some("2026-11-02T10:15:07.123456Z")
        );
        assert_eq!(field_text(&Field::Date(1)).as_deref(), Some("1970-01-02"));
        assert!(field_deleted(&Field::Bool(true)));
        assert!(field_deleted(&Field::Str("True".into())));
        assert!(!field_deleted(&Field::Null));
    }

    #[test]
    fn continuations_round_trip_and_foreign_ones_are_refused() {
        let mut s = State::start();
        s.step = Step::Checkpoint {
            version: 10,
            parts: Some(2),
            part: 1,
        };
        s.live = vec![Live("part-0.parquet".into(), 5)];
        assert_eq!(State::decode(&s.encode()).unwrap(), s);
        assert!(State::decode(r#"{"format":"lake-csv/1","step":"read"}"#).is_err());
        assert!(State::decode("[]").is_err());
    }
}
