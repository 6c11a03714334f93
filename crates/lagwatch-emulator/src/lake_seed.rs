//! The seeded rows of a lake replica's table: the replica's copy of every seeded row of its
//! source ([`super::seed`]), with the replica's exact drift, written into the lake when the
//! emulator starts, as Synapse Link's initial sync writes a table's rows.
//!
//! Why: reconciliation is tested end to end against ground truth. A lake replica's seeded rows
//! are what [`DriftPlan::replica_fate`] and [`replica_copy`] say a replica view shows, so a
//! reader of the lake must end up with exactly the keys and versions `seed.rs` lists:
//!
//! - `missing` rows are not written;
//! - `extra` rows (deleted in the source, the delete never arrived) are written as rows;
//! - rows deleted in the source whose delete arrived are written as the row followed by its
//!   delete row (only `Id`, the sink times and `IsDelete` = `True`, as a delete reaching the
//!   export is written), in the same folder, partition file or commit — except in a
//!   table-layout lake in `in_place` mode, where a delete removes the row from its file, so the
//!   row is simply not there;
//! - `stale` rows carry the version before (`versionnumber` 1,000,000 + 2 i, `modifiedon` one
//!   second earlier, string columns other than the key ending in `" (previous)"`), `changed`
//!   rows their upper-cased string columns, in-flight rows the version before the in-flight
//!   update (the generated row).
//!
//! Where they go, per layout: incremental folders → the first folder (the initial sync, open
//! from the emulator's start), `<table>/<yyyy>.csv` by `createdon`; table layout → the
//! partition files by `createdon`, before any replicated row; Delta → one commit (version 1,
//! right after the table's creation) adding data files of [`DELTA_BATCH`] rows each.
//!
//! Rows are generated one at a time from their index and written in chunks of at most
//! [`CHUNK_BYTES`] (a Delta file's rows at a time), never as a table-sized collection, so a
//! million seeded rows cost one chunk of memory while they are written. Their sink times
//! (`SinkCreatedOn`, `SinkModifiedOn`) are the emulator's start, when the initial sync ran;
//! `createdon` and `modifiedon` are whole seconds, as the Web API writes them.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use chrono::{DateTime, SubsecRound as _, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::lake::LakeDef;
use super::lake_sink::LakeSink;
use super::scenario::{ColumnType, Scenario};
use super::seed::{
    DriftPlan, RowFate, Seed, created_age_secs, generated_fields, replica_copy, row_id,
};

/// Largest CSV chunk written at once (also Azure's Append Block limit).
pub const CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// Rows per Delta data file of the seeded commit.
pub const DELTA_BATCH: usize = 20_000;

/// What a lake table needs to generate its replica's seeded rows.
#[derive(Debug, Clone)]
pub(crate) struct LakeSeed {
    env: String,
    set: String,
    seed: Seed,
    plan: DriftPlan,
    columns: BTreeMap<String, ColumnType>,
    /// The replica's key column: [`replica_copy`] leaves it as it is.
    key_column: String,
}

/// One seeded row as a lake holds it.
#[derive(Debug, Clone)]
pub(crate) struct SeedRow {
    pub id: Uuid,
    /// Partition of its `createdon` (table layout and incremental files).
    pub partition: String,
    /// The CSV line (with `\n`).
    pub line: String,
    /// The delete row that follows it (its delete reached the export).
    pub delete: Option<String>,
}

impl LakeSeed {
    /// The seed of replica `replica` (source `env/set`, key `key_column`) in scenario `s`, if
    /// its source table is seeded.
    pub(crate) fn of(
        s: &Scenario,
        replica: &str,
        env: &str,
        set: &str,
        key_column: &str,
    ) -> Option<LakeSeed> {
        let table = s.dataverse.get(env)?.tables.get(set)?;
        let seed = table.seed.clone()?;
        let drift = s
            .replicas
            .get(replica)
            .and_then(|r| r.drift)
            .unwrap_or_default();
        // The scenario was validated: the plan exists.
        let plan = DriftPlan::new(&seed, drift).ok()?;
        Some(LakeSeed {
            env: env.to_string(),
            set: set.to_string(),
            seed,
            plan,
            columns: table.columns.clone(),
            key_column: key_column.to_string(),
        })
    }

    /// Seeded rows of the source (indexes `0..rows`).
    pub(crate) fn rows(&self) -> u64 {
        self.plan.rows
    }

    /// Seeded row `i` as table `ti` of `def` holds it (`None`: not there), with deletes that
    /// arrived as a delete row after the row when `delete_rows`, else left out. `started` is
    /// the emulator's wall-clock start.
    pub(crate) fn row(
        &self,
        def: &LakeDef,
        ti: usize,
        i: u64,
        started: DateTime<Utc>,
        delete_rows: bool,
    ) -> Option<SeedRow> {
        let fate = self.plan.replica_fate(i);
        let fields = generated_fields(&self.columns, &self.seed, i);
        let (shaped, version, deleted) = match replica_copy(&fields, &self.key_column, i, fate) {
            Some((shaped, version)) => (shaped, version, false),
            None if fate == RowFate::Deleted && delete_rows => {
                let (shaped, version) =
                    replica_copy(&fields, &self.key_column, i, RowFate::Normal)?;
                (shaped, version, true)
            }
            None => return None,
        };
        let created = (started
            - chrono::Duration::seconds(
                i64::try_from(created_age_secs(self.plan.rows, i)).unwrap_or(i64::MAX),
            ))
        .trunc_subsecs(0);
        let modified = if fate == RowFate::Stale {
            created
        } else {
            created + chrono::Duration::seconds(1)
        };
        let source: Map<String, Value> = match json!({
            "createdon": super::rfc3339(created),
            "modifiedon": super::rfc3339(modified),
            "versionnumber": version,
        }) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let id = row_id(&self.env, &self.set, i);
        let table = &def.tables[ti];
        Some(SeedRow {
            id,
            partition: def.partition(created),
            line: table.line(id, Some((&shaped, &source)), started),
            delete: deleted.then(|| table.line(id, None, started)),
        })
    }
}

/// Writes the seeded rows of table `ti` of `def` into `<dir>/<partition>.csv` files, streaming,
/// and returns the partitions written. Each file's first chunk replaces the file, so a start-up
/// retried after a storage error writes the rows once. `each` sees every row written (the
/// in-place table layout keeps their ids and indexes for its later rewrites).
pub(crate) async fn write_csv(
    sink: &dyn LakeSink,
    def: &LakeDef,
    ti: usize,
    dir: &str,
    started: DateTime<Utc>,
    delete_rows: bool,
    mut each: impl FnMut(u64, &SeedRow),
) -> io::Result<BTreeSet<String>> {
    let Some(seed) = def.tables[ti].seed.as_ref() else {
        return Ok(BTreeSet::new());
    };
    let mut written: BTreeSet<String> = BTreeSet::new();
    let mut chunk = String::new();
    let mut chunk_partition: Option<String> = None;
    for i in 0..seed.rows() {
        let Some(row) = seed.row(def, ti, i, started, delete_rows) else {
            continue;
        };
        let full = chunk.len() + row.line.len() > CHUNK_BYTES;
        if let Some(p) = &chunk_partition
            && (*p != row.partition || full)
        {
            flush(sink, dir, p, &mut chunk, &mut written).await?;
        }
        chunk_partition = Some(row.partition.clone());
        each(i, &row);
        chunk.push_str(&row.line);
        if let Some(d) = &row.delete {
            chunk.push_str(d);
        }
    }
    if let Some(p) = &chunk_partition {
        flush(sink, dir, p, &mut chunk, &mut written).await?;
    }
    Ok(written)
}

/// Writes `chunk` to `<dir>/<partition>.csv`: replaces the file if this run has not written it
/// yet, else appends.
async fn flush(
    sink: &dyn LakeSink,
    dir: &str,
    partition: &str,
    chunk: &mut String,
    written: &mut BTreeSet<String>,
) -> io::Result<()> {
    if chunk.is_empty() {
        return Ok(());
    }
    let path = format!("{dir}/{partition}.csv");
    if written.contains(partition) {
        sink.append(&path, chunk.as_bytes()).await?;
    } else {
        sink.create_dir(dir).await?;
        // Azure's append blobs are made by the first append; replacing means deleting first.
        sink.delete(&path).await?;
        sink.append(&path, chunk.as_bytes()).await?;
        written.insert(partition.to_string());
    }
    chunk.clear();
    Ok(())
}
