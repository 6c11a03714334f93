//! The Delta layout of the emulated lake: each table a Delta Lake table, as Link to Fabric (or
//! Synapse Link's Delta conversion) keeps it, written by [`DeltaWriter`].
//!
//! ```text
//! <container>/deltalake/account/_delta_log/00000000000000000000.json   create
//! <container>/deltalake/account/_delta_log/00000000000000000001.json   one refresh's rows
//! <container>/deltalake/account/part-00000-<uuid>-c000.snappy.parquet
//! <container>/deltalake/account/_delta_log/00000000000000000010.checkpoint.parquet
//! ```
//!
//! The lake refreshes on the replica's `folder_interval`: the rows that reached the export
//! during an interval are committed together, as one append per table, when it ends — that
//! instant (or, when the writer got to it later, the instant the commit was written) is a
//! row's ground truth `visible_at`; its `SinkCreatedOn` is when it reached the export. Every
//! [`COMPACT_EVERY`] refreshes the table is compacted (OPTIMIZE: its files
//! replaced by one, `dataChange: false`), and once [`CHECKPOINT_EVERY`] commits have passed
//! since the last checkpoint a checkpoint is written; files replaced more than
//! [`VACUUM_AFTER`] ago are vacuumed. Rows are the export's change rows, as the CSV export
//! writes them (a delete is a row with `IsDelete`), not a merged current state. A seeded
//! table's rows ([`super::lake_seed`]) are version 1, right after the table's creation, in
//! sealed files that compaction leaves alone (as OPTIMIZE leaves files of its target size).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::delta::{Cell, DeltaError, DeltaSchema, DeltaType, DeltaWriter, Row};
use super::lake::{LakeDef, PendingRow};
use super::lake_seed::DELTA_BATCH;
use super::lake_sink::LakeSink;
use lagwatch::lake::synapse::parse_datetime;

/// Refreshes between compactions.
pub const COMPACT_EVERY: u64 = 6;
/// Commits between checkpoints.
pub const CHECKPOINT_EVERY: i64 = 10;
/// Replaced files are deleted this long after their removal.
pub const VACUUM_AFTER: Duration = Duration::from_secs(3600);

/// Where table `table` of a lake in `container` lives, relative to the sink's root.
pub fn table_root(container: &str, table: &str) -> String {
    format!("{container}/deltalake/{table}")
}

fn io_error(e: DeltaError) -> io::Error {
    match e {
        DeltaError::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

/// The Delta tables of one lake and how many refreshes they went through.
#[derive(Default)]
pub(crate) struct DeltaTables {
    writers: Vec<DeltaWriter>,
    refreshes: u64,
    /// Tables (in order) whose seeded rows are committed.
    seeded: usize,
}

impl std::fmt::Debug for DeltaTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaTables")
            .field("tables", &self.writers.len())
            .field("refreshes", &self.refreshes)
            .finish()
    }
}

impl DeltaTables {
    /// Creates every table (version 0). `clock` gives the emulator's wall time.
    pub(crate) async fn create(
        &mut self,
        sink: Arc<dyn LakeSink>,
        def: &LakeDef,
        clock: impl Fn() -> DateTime<Utc> + Clone + Send + Sync + 'static,
    ) -> io::Result<()> {
        if self.writers.len() == def.tables.len() {
            return Ok(());
        }
        for t in &def.tables[self.writers.len()..] {
            let fields = t.column_types().into_iter().map(|(name, ty)| {
                let ty = match ty {
                    "int64" => DeltaType::Long,
                    "boolean" => DeltaType::Boolean,
                    "dateTime" | "dateTimeOffset" => DeltaType::Timestamp,
                    _ => DeltaType::String,
                };
                (name.to_string(), ty)
            });
            let schema = DeltaSchema::new(fields).map_err(io_error)?;
            let mut w = DeltaWriter::new(sink.clone(), &table_root(&def.container, &t.table))
                .with_clock(clock.clone())
                .with_tombstone_retention(VACUUM_AFTER);
            w.create(schema).await.map_err(io_error)?;
            self.writers.push(w);
        }
        Ok(())
    }

    /// Commits each table's seeded rows ([`super::lake_seed`]) as its first commit after
    /// version 0: data files of [`DELTA_BATCH`] rows, generated one batch at a time, in one
    /// commit. A row whose delete reached the export is followed by its delete row in the same
    /// batch. Files are sealed (never compacted, their rows not kept by the writer): a million
    /// seeded rows cost one batch of memory. Tables already seeded are skipped, so a start-up
    /// retried after a storage error commits them once.
    ///
    /// # Errors
    /// The writer's (storage, parquet); the table is then not seeded and is tried again.
    pub(crate) async fn seed(&mut self, def: &LakeDef, started: DateTime<Utc>) -> io::Result<()> {
        while self.seeded < self.writers.len() {
            let ti = self.seeded;
            if let Some(seed) = def.tables.get(ti).and_then(|t| t.seed.as_ref()) {
                let rows = seed.rows();
                let mut i = 0;
                let batches = std::iter::from_fn(|| {
                    let mut batch = Vec::new();
                    while i < rows && batch.len() < DELTA_BATCH {
                        if let Some(r) = seed.row(def, ti, i, started, true) {
                            batch.push(cells(def, ti, &r.line));
                            if let Some(d) = &r.delete {
                                batch.push(cells(def, ti, d));
                            }
                        }
                        i += 1;
                    }
                    (!batch.is_empty()).then_some(batch)
                });
                self.writers[ti]
                    .append_sealed(batches)
                    .await
                    .map_err(io_error)?;
            }
            self.seeded += 1;
        }
        Ok(())
    }

    /// Commits one refresh: `rows` (in sink order) appended per table, then compaction,
    /// checkpoint and vacuum when due. Returns, per table that committed, the instant its
    /// commit had been written (readable from then on, which under load is later than the
    /// refresh's scheduled end: the ground truth takes the later of the two).
    ///
    /// # Errors
    /// The first storage error, with the rows of the tables not committed yet (the caller
    /// queues them again for the next flush); tables before it keep their commit.
    pub(crate) async fn refresh(
        &mut self,
        def: &LakeDef,
        rows: Vec<PendingRow>,
    ) -> Result<Vec<(usize, Instant)>, (io::Error, Vec<PendingRow>)> {
        let mut committed = Vec::new();
        let mut by_table: Vec<Vec<PendingRow>> = vec![Vec::new(); self.writers.len()];
        for r in rows {
            if let Some(t) = by_table.get_mut(r.table) {
                t.push(r);
            }
        }
        for ti in 0..self.writers.len() {
            let batch = std::mem::take(&mut by_table[ti]);
            if batch.is_empty() {
                continue;
            }
            let cells: Vec<Row> = batch.iter().map(|r| cells(def, r.table, &r.line)).collect();
            if let Err(e) = self.writers[ti].append(&cells).await {
                let mut retry = batch;
                retry.extend(by_table.into_iter().skip(ti + 1).flatten());
                return Err((io_error(e), retry));
            }
            committed.push((ti, Instant::now()));
        }
        self.refreshes += 1;
        let compact = self.refreshes.is_multiple_of(COMPACT_EVERY);
        for w in &mut self.writers {
            // Housekeeping failures are retried at the next refresh that needs them; rows are
            // already committed.
            let result: Result<(), DeltaError> = async {
                if compact {
                    w.compact().await?;
                }
                let since = w.checkpoints().last().copied().unwrap_or(0);
                if w.version().unwrap_or(0) - since >= CHECKPOINT_EVERY {
                    w.checkpoint().await?;
                }
                w.vacuum(VACUUM_AFTER).await?;
                Ok(())
            }
            .await;
            if let Err(e) = result {
                return Err((io_error(e), Vec::new()));
            }
        }
        Ok(committed)
    }
}

/// The cells of a CSV line of table `ti`, typed by the table's columns.
fn cells(def: &LakeDef, ti: usize, line: &str) -> Row {
    let types = def.tables[ti].column_types();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(line.as_bytes());
    let record = reader
        .records()
        .next()
        .and_then(Result::ok)
        .unwrap_or_default();
    types
        .iter()
        .enumerate()
        .map(|(i, (_, ty))| {
            let text = record.get(i).filter(|t| !t.is_empty())?;
            match *ty {
                "int64" => text.parse().ok().map(Cell::Long),
                "boolean" => Some(Cell::Bool(text.eq_ignore_ascii_case("true"))),
                "dateTime" | "dateTimeOffset" => parse_datetime(text).map(Cell::Timestamp),
                _ => Some(Cell::Str(text.to_string())),
            }
        })
        .collect()
}

/// When a refresh closing at `close` commits: the emulator's wall clock, for commit times.
pub(crate) fn wall_clock(
    started: Instant,
    started_wall: DateTime<Utc>,
) -> impl Fn() -> DateTime<Utc> + Clone + Send + Sync + 'static {
    move || {
        let d = Instant::now().saturating_duration_since(started);
        started_wall + chrono::Duration::from_std(d).unwrap_or_default()
    }
}
