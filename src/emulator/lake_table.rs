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

/// The partition files of one table-layout lake, as written so far.
#[derive(Debug, Default)]
pub(crate) struct TableFiles {
    /// In-place mode: each file's rows in file order (`(record id, CSV line)`), what a rewrite
    /// writes. Append-only mode keeps none.
    rows: BTreeMap<FileKey, Vec<(Uuid, String)>>,
    /// Files that exist (what `model.json` lists as partitions).
    pub written: BTreeSet<FileKey>,
    /// The partition each record's rows went to, where its update or delete goes.
    partition_of: HashMap<(usize, Uuid), String>,
    /// A file was added since `model.json` was last written.
    pub model_stale: bool,
}

impl TableFiles {
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
    ) -> Result<(), (io::Error, Vec<PendingRow>)> {
        let mut by_file: BTreeMap<FileKey, Vec<PendingRow>> = BTreeMap::new();
        for r in rows {
            let known = self.partition_of.get(&(r.table, r.id)).cloned();
            let partition = match (r.delete, known) {
                (true, Some(p)) => p,
                // In place, deleting a row that never reached a file changes nothing.
                (true, None) if mode == UpdateMode::InPlace => continue,
                (_, known) => known.unwrap_or_else(|| r.partition.clone()),
            };
            self.partition_of.insert((r.table, r.id), partition.clone());
            by_file.entry((r.table, partition)).or_default().push(r);
        }
        let mut files = by_file.into_iter();
        while let Some((key, rows)) = files.next() {
            if let Err(e) = self.write_file(sink, def, mode, &key, &rows).await {
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
    ) -> io::Result<()> {
        let (ti, partition) = key;
        let dir = format!("{}/{}", def.container, def.tables[*ti].table);
        let path = format!("{dir}/{partition}.csv");
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
                    content[i].1.clone_from(&r.line);
                    rewrite = true;
                }
                (UpdateMode::InPlace, false, None) => {
                    content.push((r.id, r.line.clone()));
                    appended.push_str(&r.line);
                }
            }
        }
        if !rewrite && appended.is_empty() {
            return Ok(());
        }
        sink.create_dir(&dir).await?;
        if rewrite {
            let whole: String = content.iter().map(|(_, line)| line.as_str()).collect();
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
