//! The table layout of the emulated lake (fact sheet §5.2): one CSV file per table partition at
//! the container's root, changed where it is.
//!
//! ```text
//! <container>/model.json            CDM manifest, its partitions naming every file below
//! <container>/account/2026.csv      rows of the accounts created in 2026 (or 2026-11.csv)
//! ```
//!
//! A row goes into the partition of its `createdon` (a delete into the partition its record's
//! rows went to). In [`UpdateMode::InPlace`] a create is appended to its file, and an update or
//! a delete rewrites the whole file (the row replaced where it was, or removed) with
//! [`LakeSink::write_atomic`], so a reader sees the old file or the new one, never a part; in
//! [`UpdateMode::AppendOnly`] everything is appended, deletes as rows with `IsDelete`. A
//! row's ground truth `visible_at` is its sink instant, when it is put into the file.
//!
//! Seeded rows ([`super::lake_seed`]) open the partition files at start-up; in place, a file's
//! seeded rows are kept as their indexes and generated again when the file is rewritten.
//!
//! Why a file of its own: the writer keeps the files' rows in memory (a rewrite needs them and
//! the sink cannot read), which the folder layout does not need; [`super::lake`] only hands
//! it the rows whose sink instant has passed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;

use uuid::Uuid;

use super::lake::{LakeDef, PendingRow};
use super::lake_sink::LakeSink;
use super::scenario::UpdateMode;

/// `(table index, partition name)`: one file, `<container>/<table>/<partition>.csv`.
type FileKey = (usize, String);

/// A row of an in-place partition file, as a rewrite writes it again.
#[derive(Debug, Clone)]
enum Line {
    /// A replicated row's CSV line.
    Text(String),
    /// Seeded row `i` ([`super::lake_seed`]), whose line is generated again when the file is
    /// rewritten: a million seeded rows cost their ids and indexes, not their text.
    Seed(u64),
}

/// The line of seeded row `i` of table `ti`, generated again for a rewrite.
pub(crate) type Regenerate<'a> = dyn Fn(usize, u64) -> Option<String> + Send + Sync + 'a;

/// The partition files of one table-layout lake, as written so far.
#[derive(Debug, Default)]
pub(crate) struct TableFiles {
    /// In-place mode: each file's rows in file order (`(record id, line)`), what a rewrite
    /// writes. Append-only mode keeps none.
    rows: BTreeMap<FileKey, Vec<(Uuid, Line)>>,
    /// Files that exist (what `model.json` lists as partitions).
    pub written: BTreeSet<FileKey>,
    /// The partition each record's rows went to, where its update or delete goes.
    partition_of: HashMap<(usize, Uuid), String>,
    /// A file was added since `model.json` was last written.
    pub model_stale: bool,
}

impl TableFiles {
    /// Writes the seeded rows of every table into their partition files (the initial sync),
    /// before any replicated row. In place, deletes that arrived left no row; append-only, a
    /// deleted row is followed by its delete row.
    ///
    /// # Errors
    /// The sink's; the files are written again from their start on the next try.
    pub(crate) async fn seed(
        &mut self,
        sink: &dyn LakeSink,
        def: &LakeDef,
        mode: UpdateMode,
        started: chrono::DateTime<chrono::Utc>,
    ) -> io::Result<()> {
        for (ti, t) in def.tables.iter().enumerate() {
            let dir = format!("{}/{}", def.container, t.table);
            let mut content: BTreeMap<String, Vec<(Uuid, Line)>> = BTreeMap::new();
            let in_place = mode == UpdateMode::InPlace;
            let written =
                super::lake_seed::write_csv(sink, def, ti, &dir, started, !in_place, |i, row| {
                    if in_place {
                        content
                            .entry(row.partition.clone())
                            .or_default()
                            .push((row.id, Line::Seed(i)));
                    }
                })
                .await?;
            for p in written {
                let key = (ti, p);
                if let Some(c) = content.remove(&key.1) {
                    self.rows.insert(key.clone(), c);
                }
                if self.written.insert(key) {
                    self.model_stale = true;
                }
            }
        }
        Ok(())
    }

    /// The partition of the in-place file holding record `id` of table `ti`, if one does
    /// (a seeded row, which is in no `partition_of` entry until it changes).
    fn holding(&self, ti: usize, id: Uuid) -> Option<String> {
        self.rows
            .iter()
            .find(|((t, _), content)| *t == ti && content.iter().any(|(r, _)| *r == id))
            .map(|((_, p), _)| p.clone())
    }

    /// Whether `rows` are all upserts of records file `key` does not hold yet, each once: an
    /// append, no rewrite.
    fn only_creates(&self, key: &FileKey, rows: &[PendingRow]) -> bool {
        let mut ids = std::collections::HashSet::new();
        let content = self.rows.get(key);
        rows.iter().all(|r| {
            !r.delete
                && ids.insert(r.id)
                && content.is_none_or(|c| c.iter().all(|(id, _)| *id != r.id))
        })
    }

    /// Puts `rows` (in sink order) into their files: one append or one atomic rewrite per file.
    ///
    /// # Errors
    /// The first storage error, with the rows of that file and of the files after it, which
    /// are not written (the caller queues them again); files before it keep their rows.
    pub(crate) async fn write(
        &mut self,
        sink: &dyn LakeSink,
        def: &LakeDef,
        mode: UpdateMode,
        rows: Vec<PendingRow>,
        regenerate: &Regenerate<'_>,
    ) -> Result<(), (io::Error, Vec<PendingRow>)> {
        let mut by_file: BTreeMap<FileKey, Vec<PendingRow>> = BTreeMap::new();
        for r in rows {
            let known = self.partition_of.get(&(r.table, r.id)).cloned();
            let partition = match (r.delete, known) {
                (true, Some(p)) => p,
                (true, None) if mode == UpdateMode::InPlace => match self.holding(r.table, r.id) {
                    Some(p) => p,
                    // In place, deleting a row that never reached a file changes nothing.
                    None => continue,
                },
                (_, known) => known.unwrap_or_else(|| r.partition.clone()),
            };
            self.partition_of.insert((r.table, r.id), partition.clone());
            by_file.entry((r.table, partition)).or_default().push(r);
        }
        let mut files = by_file.into_iter();
        while let Some((key, rows)) = files.next() {
            if let Err(e) = self
                .write_file(sink, def, mode, &key, &rows, regenerate)
                .await
            {
                let mut left = rows;
                left.extend(files.flat_map(|(_, r)| r));
                return Err((e, left));
            }
        }
        Ok(())
    }

    /// Applies one file's rows and writes the result; the state changes only once written.
    async fn write_file(
        &mut self,
        sink: &dyn LakeSink,
        def: &LakeDef,
        mode: UpdateMode,
        key: &FileKey,
        rows: &[PendingRow],
        regenerate: &Regenerate<'_>,
    ) -> io::Result<()> {
        let (ti, partition) = key;
        let dir = format!("{}/{}", def.container, def.tables[*ti].table);
        let path = format!("{dir}/{partition}.csv");
        if mode == UpdateMode::InPlace && self.only_creates(key, rows) {
            // The common case (new records appended) without copying the file's rows, which
            // may be a million seeded ones.
            let appended: String = rows.iter().map(|r| r.line.as_str()).collect();
            sink.create_dir(&dir).await?;
            sink.append(&path, appended.as_bytes()).await?;
            let content = self.rows.entry(key.clone()).or_default();
            content.extend(rows.iter().map(|r| (r.id, Line::Text(r.line.clone()))));
            if self.written.insert(key.clone()) {
                self.model_stale = true;
            }
            return Ok(());
        }
        let mut content = self.rows.get(key).cloned().unwrap_or_default();
        let mut appended = String::new();
        let mut rewrite = false;
        for r in rows {
            let at = content.iter().position(|(id, _)| *id == r.id);
            match (mode, r.delete, at) {
                (UpdateMode::AppendOnly, _, _) => appended.push_str(&r.line),
                (UpdateMode::InPlace, true, Some(i)) => {
                    content.remove(i);
                    rewrite = true;
                }
                (UpdateMode::InPlace, true, None) => {}
                (UpdateMode::InPlace, false, Some(i)) => {
                    content[i].1 = Line::Text(r.line.clone());
                    rewrite = true;
                }
                (UpdateMode::InPlace, false, None) => {
                    content.push((r.id, Line::Text(r.line.clone())));
                    appended.push_str(&r.line);
                }
            }
        }
        if !rewrite && appended.is_empty() {
            return Ok(());
        }
        sink.create_dir(&dir).await?;
        if rewrite {
            // The whole file in memory for one atomic write, as a rewrite in place needs.
            let mut whole = String::new();
            for (_, line) in &content {
                match line {
                    Line::Text(t) => whole.push_str(t),
                    Line::Seed(i) => {
                        if let Some(t) = regenerate(*ti, *i) {
                            whole.push_str(&t);
                        }
                    }
                }
            }
            sink.write_atomic(&path, whole.as_bytes()).await?;
        } else {
            sink.append(&path, appended.as_bytes()).await?;
        }
        if mode == UpdateMode::InPlace {
            self.rows.insert(key.clone(), content);
        }
        if self.written.insert(key.clone()) {
            self.model_stale = true;
        }
        Ok(())
    }
}
