//! Reading an analytics lake (Synapse Link for Dataverse, Link to Fabric) without re-reading it.
//!
//! Why a module of its own: lake targets do not answer "is this key there?" in one request the
//! way an API does. They are folders of files that only grow (or get compacted), so a lookup
//! has to scan what is new since the last scan and remember what it found. This module holds
//! the parts every lake kind shares:
//!
//! - [`LakeStore`]: the storage calls a scan needs (list one folder, read one object, read the
//!   end of one object from an offset, look at one object's size and version), implemented
//!   for a local folder ([`LocalStore`], `file://`) and metered by [`Metered`] so
//!   `lagwatch_lake_objects_listed_total` and `lagwatch_lake_bytes_read_total` count exactly
//!   what each poll cost;
//! - [`cdm`]: the CDM `model.json` that gives headerless CSV files their column order;
//! - [`synapse`]: the incremental-update-folder layout and its cursor;
//! - [`table`]: the table layout (one CSV file per partition, upserted in place) and its
//!   cursor, which reads only the bytes appended since the last poll;
//! - [`blob`]: Azure Blob Storage (also ADLS Gen2, OneLake, Azurite) over the Blob REST API;
//! - [`inventory`] and [`delta_inventory`]: every row of a table, page by page, for
//!   reconciliation (the `Inventory` capability), one store call per page.
//!
//! Storage is reached through this small trait instead of the `object_store` crate: the scans
//! need a handful of calls, and the HTTP stores can then go through lagwatch's own HTTP layer
//! (gate, budget, request metrics, Entra tokens) instead of a second HTTP client stack.

pub mod blob;
pub mod cdm;
pub mod delta;
pub mod delta_inventory;
pub mod inventory;
pub mod pages;
pub mod synapse;
pub mod table;
pub mod target;

pub use target::LakeTarget;

/// Why a lake kind cannot show a regression: a lookup answers from the first row found of a
/// sentinel until the lake shows it deleted (which a delete watch reads, not a probe).
pub const REGRESSIONS_UNREAD: &str = "its reader keeps the first row it found of a sentinel until the lake shows the sentinel deleted, so an older version after a newer one cannot show";

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prometheus::IntCounter;

use crate::connector::{Cause, ConnectorError, RowLog};
use crate::sentinel::SentinelId;

/// Why a lake could not be read or understood. Never a panic: a lake's garbage is an error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LakeError {
    /// The store could not be reached or refused the call.
    #[error("{path}: {message}")]
    Store { path: String, message: String },
    /// The store answered with content that is not what the layout documents.
    #[error("{path}: {reason}")]
    Malformed { path: String, reason: String },
    /// A request to an HTTP store failed; the connector error keeps its kind (throttled,
    /// auth, unavailable, …) so the engine and the gate react as to any other system.
    #[error("{path}: {error}")]
    Remote {
        path: String,
        #[source]
        error: ConnectorError,
    },
}

impl From<LakeError> for ConnectorError {
    fn from(e: LakeError) -> Self {
        match e {
            LakeError::Store { .. } => {
                ConnectorError::Transport(Cause::with_error(e.to_string(), e))
            }
            // The read worked; what came back is not a documented layout.
            LakeError::Malformed { .. } => ConnectorError::BadResponse {
                status: 200,
                detail: e.to_string(),
            },
            LakeError::Remote { path, error } => error.context(&path),
        }
    }
}

/// A sentinel row a cursor found (in a complete incremental folder, a table-layout partition
/// file, or a Delta data file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub payload: Option<String>,
    /// `SinkCreatedOn` (else `SinkModifiedOn`) of the row, when the export wrote one.
    pub sink_at: Option<DateTime<Utc>>,
    /// The lake's own time of the row, from which it is forgotten after the cursor's `keep`:
    /// the time in the name of the incremental folder that held it, (table layout) the
    /// last-modified time of the partition file when a scan first read the row (the scan's
    /// wall-clock time if the store does not say; a row rewritten in place keeps it), or
    /// (Delta) the time the data file was read.
    pub observed: DateTime<Utc>,
}

/// The columns that mark an export's delete rows: `IsDelete` as Synapse Link writes it, or
/// `isDeleted` as its documentation names it (fact sheet §5.5).
pub(crate) const DELETE_COLUMNS: [&str; 2] = ["IsDelete", "isDeleted"];

/// Whether an export row's delete marker (text) says the row is a delete: `True`; empty or
/// `False` is a row that is there. Compared without case, as the boolean text of a CSV
/// export varies by writer.
///
/// # Errors
/// The reason, when the text is anything else: a lake whose delete marker cannot be read
/// would give delete lags that mean nothing.
pub(crate) fn delete_flag(text: &str) -> Result<bool, String> {
    match text.trim() {
        "" => Ok(false),
        t if t.eq_ignore_ascii_case("true") => Ok(true),
        t if t.eq_ignore_ascii_case("false") => Ok(false),
        t => Err(format!(
            "IsDelete is \"{}\", neither True, False nor empty",
            crate::net::excerpt(t.as_bytes())
        )),
    }
}

/// What one export row says about a sentinel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// The row is there, with what a lookup answers.
    Upsert(Found),
    /// A delete row (`IsDelete`), or (inferred by a cursor) the row left the lake.
    Delete,
}

/// The sentinel rows of one read (a folder, a file or a run of it, a Delta data file), in the
/// export's order, collected before they are applied so that a read failing half-way changes
/// nothing.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// Key, the record's `Id` (when the row had one) and what the row says.
    pub(crate) rows: Vec<(String, Option<String>, Change)>,
    /// `Id` → key of the sentinel rows of this read, for delete rows later in it.
    ids: HashMap<String, String>,
}

impl Batch {
    /// Takes one export row: its `key` and `id` (the record's `Id`, empty when the table has
    /// none), whether it is a `delete` row, and (only called for a sentinel that is there)
    /// what it holds. Other rows are left out, so memory follows lagwatch's own sentinels.
    ///
    /// Why the `Id`: a delete row carries only the record's id, the sink times and the
    /// marker (fact sheet §5.5), so it is matched to a sentinel by the `Id` its earlier rows had.
    pub(crate) fn push(
        &mut self,
        known: &Sightings,
        prefix: &str,
        key: &str,
        id: &str,
        delete: bool,
        found: impl FnOnce() -> Found,
    ) {
        if !delete {
            if key.starts_with(prefix) {
                let id = (!id.is_empty()).then(|| id.to_string());
                if let Some(id) = &id {
                    self.ids.insert(id.clone(), key.to_string());
                }
                self.rows
                    .push((key.to_string(), id, Change::Upsert(found())));
            }
            return;
        }
        let key = if key.starts_with(prefix) {
            Some(key.to_string())
        } else if key.is_empty() && !id.is_empty() {
            self.ids
                .get(id)
                .cloned()
                .or_else(|| known.key_of(id).map(str::to_string))
        } else {
            None
        };
        if let Some(key) = key {
            self.rows.push((key, None, Change::Delete));
        }
    }

    /// Whether this read has a row of `key`.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.rows.iter().any(|(k, ..)| k == key)
    }
}

/// A sentinel that is in the lake as a cursor last read it.
#[derive(Debug, Clone)]
struct Sighting {
    found: Found,
    /// The record's `Id`, which its delete row will carry.
    id: Option<String>,
    /// The files holding a live row of it (table layout: its partition file; Delta: the
    /// data files), where the layout can delete a row by removing it from its file.
    files: Vec<String>,
}

/// The sentinels a cursor has found and not seen deleted since: what a lookup answers from.
///
/// Why one type for every layout: the rule is the same — the latest row of a key in the
/// export's order decides (a delete row or a removal makes it absent, a later row present
/// again, which is how a resurrection shows) — and so is the bound on memory.
#[derive(Debug, Default)]
pub(crate) struct Sightings {
    by_key: HashMap<String, Sighting>,
    by_id: HashMap<String, String>,
    /// Every row of each update canary, in the export's order (canaries are few: one per
    /// source group).
    logs: HashMap<String, RowLog>,
}

/// Most sentinel rows remembered at once; the oldest go first.
pub(crate) const MAX_FOUND: usize = 100_000;

impl Sightings {
    /// The sentinel with key `key`, if it is there.
    pub(crate) fn found(&self, key: &str) -> Option<&Found> {
        self.by_key.get(key).map(|s| &s.found)
    }

    /// Every row of the update canary `key` read so far, in the export's order.
    pub(crate) fn log(&self, key: &str) -> Option<&RowLog> {
        self.logs.get(key)
    }

    /// The key of the sentinel whose record has `Id` `id`.
    pub(crate) fn key_of(&self, id: &str) -> Option<&str> {
        self.by_id.get(id).map(String::as_str)
    }

    /// The `Id`s of the sentinels that are there (those whose rows had one).
    pub(crate) fn ids(&self) -> impl Iterator<Item = &str> {
        self.by_id.keys().map(String::as_str)
    }

    /// Whether any sentinel is there.
    pub(crate) fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Applies a read's rows in order; the rows that are there are held by `file`, if given.
    /// A sentinel already there keeps its first sighting (what the lag was measured from); an
    /// update canary shows its latest row, and each of its rows is logged.
    pub(crate) fn apply(&mut self, batch: Batch, file: Option<&str>) {
        for (key, id, change) in batch.rows {
            match change {
                Change::Delete => self.remove(&key),
                Change::Upsert(found) => {
                    let canary = SentinelId::is_canary_key(&key);
                    if canary {
                        self.logs
                            .entry(key.clone())
                            .or_default()
                            .push(found.payload.clone());
                    }
                    let s = match self.by_key.entry(key.clone()) {
                        Entry::Occupied(o) => {
                            let s = o.into_mut();
                            if canary {
                                s.found = found;
                            }
                            s
                        }
                        Entry::Vacant(v) => v.insert(Sighting {
                            found,
                            id: None,
                            files: Vec::new(),
                        }),
                    };
                    if let Some(id) = id {
                        if let Some(old) = s.id.replace(id.clone())
                            && old != id
                        {
                            self.by_id.remove(&old);
                        }
                        self.by_id.insert(id, key);
                    }
                    if let Some(f) = file
                        && !s.files.iter().any(|h| h == f)
                    {
                        s.files.push(f.to_string());
                    }
                }
            }
        }
    }

    /// The sentinel `key` is no longer there.
    pub(crate) fn remove(&mut self, key: &str) {
        if let Some(s) = self.by_key.remove(key)
            && let Some(id) = s.id
        {
            self.by_id.remove(&id);
        }
    }

    /// The sentinels with a row in `file`.
    pub(crate) fn in_file(&self, file: &str) -> Vec<String> {
        self.by_key
            .iter()
            .filter(|(_, s)| s.files.iter().any(|f| f == file))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Every file holding a sentinel's row.
    pub(crate) fn files(&self) -> std::collections::BTreeSet<String> {
        self.by_key
            .values()
            .flat_map(|s| s.files.iter().cloned())
            .collect()
    }

    /// `file` left the table; its rows moved to the files `to` (compaction) or, with none,
    /// went with it. Returns the sentinels now held by no file.
    pub(crate) fn file_gone(&mut self, file: &str, to: &[String]) -> Vec<String> {
        let mut orphans = Vec::new();
        for (key, s) in &mut self.by_key {
            let before = s.files.len();
            s.files.retain(|f| f != file);
            if s.files.len() == before {
                continue;
            }
            for t in to {
                if !s.files.contains(t) {
                    s.files.push(t.clone());
                }
            }
            if s.files.is_empty() {
                orphans.push(key.clone());
            }
        }
        orphans
    }

    /// Forgets sentinels observed more than `keep` before `newest`, then the oldest beyond
    /// [`MAX_FOUND`]: the bound on a cursor's memory.
    pub(crate) fn forget_old(&mut self, newest: Option<DateTime<Utc>>, keep: Duration) {
        let keep = chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
        let mut gone: Vec<String> = Vec::new();
        if let Some(newest) = newest {
            gone.extend(
                self.by_key
                    .iter()
                    .filter(|(_, s)| newest.signed_duration_since(s.found.observed) > keep)
                    .map(|(k, _)| k.clone()),
            );
        }
        for k in &gone {
            self.remove(k);
        }
        if self.by_key.len() > MAX_FOUND {
            let mut by_age: Vec<(DateTime<Utc>, String)> = self
                .by_key
                .iter()
                .map(|(k, s)| (s.found.observed, k.clone()))
                .collect();
            by_age.sort();
            let n = self.by_key.len() - MAX_FOUND;
            for (_, k) in by_age.into_iter().take(n) {
                self.remove(&k);
            }
        }
    }
}

/// A reading position in one lake table: the role every lake layout plays for [`LakeTarget`].
///
/// Why a trait: the layouts differ in what they read (folders and `changelog.info`, partition
/// files from an offset, a transaction log) but a lookup is the same for all — bring the
/// cursor up to date, then answer from what it has found.
#[async_trait]
pub trait LakeCursor: Send + Sync + 'static {
    /// Reads what changed since the last scan. Returns the time of the lake's newest data
    /// (newest complete folder, partition file or commit), once known, for
    /// `lagwatch_lake_last_folder_timestamp_seconds`.
    ///
    /// # Errors
    /// [`LakeError`] when the store fails or the lake is not the documented layout; the cursor
    /// resumes on the next scan.
    async fn refresh(&mut self, store: &dyn LakeStore) -> Result<Option<DateTime<Utc>>, LakeError>;
    /// The sentinel with key `key`, if a scan found it and has not seen it deleted since.
    fn found(&self, key: &str) -> Option<&Found>;
    /// Whether the layout is a change log read row by row, each row once (incremental update
    /// folders), so [`log`](Self::log) holds every version a canary reached the lake with.
    fn keeps_versions(&self) -> bool {
        false
    }
    /// Every row of the update canary `key` read so far, in the export's order.
    fn log(&self, _key: &str) -> Option<&RowLog> {
        None
    }
}

/// One file in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Name within the listed folder (no `/`).
    pub name: String,
    pub size: u64,
    /// Changes whenever the content changes, even at the same size (a file rewritten in place):
    /// a blob's ETag, a local file's modification time in nanoseconds and size. `None` when
    /// the store does not say; then only the size tells that a file changed.
    pub version: Option<String>,
    /// When the file was last written, by the store's clock, if the store says.
    pub modified: Option<DateTime<Utc>>,
}

impl FileEntry {
    /// An entry with only a name and a size (stores or tests that know nothing more).
    pub fn new(name: impl Into<String>, size: u64) -> Self {
        FileEntry {
            name: name.into(),
            size,
            version: None,
            modified: None,
        }
    }
}

/// What one folder holds, one level deep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Sub-folder names (no `/`).
    pub dirs: Vec<String>,
    pub files: Vec<FileEntry>,
}

/// The storage calls a lake scan needs. Paths are relative to the store's root, `/`-separated,
/// without a leading `/`; `""` is the root.
#[async_trait]
pub trait LakeStore: Send + Sync + 'static {
    /// The folders and files directly under `dir`; an absent folder is an empty listing.
    async fn list(&self, dir: &str) -> Result<Listing, LakeError>;
    /// The whole object at `path`, or `None` if it does not exist.
    async fn get(&self, path: &str) -> Result<Option<Vec<u8>>, LakeError>;
    /// The bytes of the object at `path` from offset `start` to its end (empty when `start` is
    /// at or past the end), or `None` if it does not exist. This is what keeps a poll of a
    /// file that only grows as cheap as what was appended, however big the file is.
    async fn get_range(&self, path: &str, start: u64) -> Result<Option<Vec<u8>>, LakeError>;
    /// At most `len` bytes of the object at `path` from offset `start` (fewer when the object
    /// ends first, empty when `start` is at or past its end), or `None` if it does not exist.
    /// This is what bounds the memory of a reader that goes through a big file page by page
    /// (reconciliation's inventory). The default reads to the end and cuts, which is correct
    /// but not bounded; the stores lagwatch ships override it with a bounded read.
    async fn get_slice(
        &self,
        path: &str,
        start: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, LakeError> {
        Ok(self.get_range(path, start).await?.map(|mut b| {
            b.truncate(usize::try_from(len).unwrap_or(usize::MAX));
            b
        }))
    }
    /// The listing entry of the object at `path` (size, version, modification time), or `None`
    /// if it does not exist: how a scan tells whether one file changed without reading it.
    /// The default lists the parent folder; stores with a cheaper call (a blob's `HEAD`)
    /// override it.
    async fn stat(&self, path: &str) -> Result<Option<FileEntry>, LakeError> {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        Ok(self
            .list(dir)
            .await?
            .files
            .into_iter()
            .find(|f| f.name == name))
    }
}

/// A local folder (`file://` URLs, the demo's lake, tests).
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore { root: root.into() }
    }

    /// The file system path of `rel`, refusing anything that would leave the root.
    fn resolve(&self, rel: &str) -> Result<PathBuf, LakeError> {
        let p = Path::new(rel);
        if p.components().all(|c| matches!(c, Component::Normal(_))) {
            Ok(self.root.join(p))
        } else {
            Err(LakeError::Malformed {
                path: rel.to_string(),
                reason: "not a path inside the lake".to_string(),
            })
        }
    }
}

fn store_error(path: &str, e: &std::io::Error) -> LakeError {
    LakeError::Store {
        path: path.to_string(),
        message: e.to_string(),
    }
}

#[async_trait]
impl LakeStore for LocalStore {
    async fn list(&self, dir: &str) -> Result<Listing, LakeError> {
        let path = if dir.is_empty() {
            self.root.clone()
        } else {
            self.resolve(dir)?
        };
        let mut rd = match tokio::fs::read_dir(&path).await {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Listing::default()),
            Err(e) => return Err(store_error(dir, &e)),
        };
        let mut listing = Listing::default();
        while let Some(entry) = rd.next_entry().await.map_err(|e| store_error(dir, &e))? {
            let Ok(name) = entry.file_name().into_string() else {
                continue; // not a name any Azure store could have
            };
            // Vanishing entries (a folder deleted by lake retention) are skipped, not errors.
            let Ok(meta) = entry.metadata().await else {
                continue;
            };
            if meta.is_dir() {
                listing.dirs.push(name);
            } else if meta.is_file() {
                listing.files.push(local_entry(name, &meta));
            }
        }
        listing.dirs.sort();
        listing.files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(listing)
    }

    async fn get(&self, path: &str) -> Result<Option<Vec<u8>>, LakeError> {
        match tokio::fs::read(self.resolve(path)?).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(store_error(path, &e)),
        }
    }

    async fn get_range(&self, path: &str, start: u64) -> Result<Option<Vec<u8>>, LakeError> {
        use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
        let mut file = match tokio::fs::File::open(self.resolve(path)?).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(store_error(path, &e)),
        };
        let len = file
            .metadata()
            .await
            .map_err(|e| store_error(path, &e))?
            .len();
        if start >= len {
            return Ok(Some(Vec::new()));
        }
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|e| store_error(path, &e))?;
        // The file may still grow while it is read: what is there at the end of the read counts.
        let mut bytes = Vec::with_capacity(usize::try_from(len - start).unwrap_or(0));
        file.read_to_end(&mut bytes)
            .await
            .map_err(|e| store_error(path, &e))?;
        Ok(Some(bytes))
    }

    async fn get_slice(
        &self,
        path: &str,
        start: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, LakeError> {
        use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
        let mut file = match tokio::fs::File::open(self.resolve(path)?).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(store_error(path, &e)),
        };
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|e| store_error(path, &e))?;
        // Capacity from what is there, not from `len`: a generous `len` costs no memory.
        let size = file
            .metadata()
            .await
            .map_err(|e| store_error(path, &e))?
            .len();
        let want = len.min(size.saturating_sub(start));
        let mut bytes = Vec::with_capacity(usize::try_from(want).unwrap_or(0));
        file.take(len)
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| store_error(path, &e))?;
        Ok(Some(bytes))
    }

    async fn stat(&self, path: &str) -> Result<Option<FileEntry>, LakeError> {
        let full = self.resolve(path)?;
        match tokio::fs::metadata(&full).await {
            Ok(meta) if meta.is_file() => {
                let name = path.rsplit('/').next().unwrap_or(path).to_string();
                Ok(Some(local_entry(name, &meta)))
            }
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(store_error(path, &e)),
        }
    }
}

/// A local file's listing entry. Its version is the modification time in nanoseconds and the
/// size, and on Unix the inode: a file rewritten by renaming a new one over it (how a writer
/// replaces a file atomically) gets a new inode even within one tick of the file system's
/// clock, which is coarser than nanoseconds; a same-size write in place within one tick is
/// the one change this cannot tell.
fn local_entry(name: String, meta: &std::fs::Metadata) -> FileEntry {
    let modified = meta.modified().ok();
    let nanos = modified
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let inode = 0;
    FileEntry {
        name,
        size: meta.len(),
        version: Some(format!("{inode}-{nanos}-{}", meta.len())),
        modified: modified.map(DateTime::<Utc>::from),
    }
}

/// A store whose every listing entry and byte read is counted, per target.
pub struct Metered<S> {
    inner: S,
    objects_listed: IntCounter,
    bytes_read: IntCounter,
}

impl<S: LakeStore> Metered<S> {
    pub fn new(inner: S, objects_listed: IntCounter, bytes_read: IntCounter) -> Self {
        Metered {
            inner,
            objects_listed,
            bytes_read,
        }
    }
}

#[async_trait]
impl<S: LakeStore> LakeStore for Metered<S> {
    async fn list(&self, dir: &str) -> Result<Listing, LakeError> {
        let l = self.inner.list(dir).await?;
        self.objects_listed
            .inc_by((l.dirs.len() + l.files.len()) as u64);
        Ok(l)
    }

    async fn get(&self, path: &str) -> Result<Option<Vec<u8>>, LakeError> {
        let b = self.inner.get(path).await?;
        if let Some(b) = &b {
            self.bytes_read.inc_by(b.len() as u64);
        }
        Ok(b)
    }

    async fn get_range(&self, path: &str, start: u64) -> Result<Option<Vec<u8>>, LakeError> {
        let b = self.inner.get_range(path, start).await?;
        if let Some(b) = &b {
            self.bytes_read.inc_by(b.len() as u64);
        }
        Ok(b)
    }

    async fn get_slice(
        &self,
        path: &str,
        start: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, LakeError> {
        let b = self.inner.get_slice(path, start, len).await?;
        if let Some(b) = &b {
            self.bytes_read.inc_by(b.len() as u64);
        }
        Ok(b)
    }

    /// Counted as one object listed: it is one listing entry's worth of metadata.
    async fn stat(&self, path: &str) -> Result<Option<FileEntry>, LakeError> {
        let e = self.inner.stat(path).await?;
        if e.is_some() {
            self.objects_listed.inc();
        }
        Ok(e)
    }
}

/// A shared store is a store: a lake kind's target (probing) and its inventory
/// (reconciliation) read through one metered store, so one HTTP system, one token cache and
/// one set of `lagwatch_lake_*` counters serve both.
#[async_trait]
impl<S: LakeStore + ?Sized> LakeStore for std::sync::Arc<S> {
    async fn list(&self, dir: &str) -> Result<Listing, LakeError> {
        (**self).list(dir).await
    }

    async fn get(&self, path: &str) -> Result<Option<Vec<u8>>, LakeError> {
        (**self).get(path).await
    }

    async fn get_range(&self, path: &str, start: u64) -> Result<Option<Vec<u8>>, LakeError> {
        (**self).get_range(path, start).await
    }

    async fn get_slice(
        &self,
        path: &str,
        start: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, LakeError> {
        (**self).get_slice(path, start, len).await
    }

    async fn stat(&self, path: &str) -> Result<Option<FileEntry>, LakeError> {
        (**self).stat(path).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(at: &str) -> Found {
        Found {
            payload: None,
            sink_at: None,
            observed: at.parse().unwrap(),
        }
    }

    #[test]
    fn sightings_follow_the_latest_row_of_a_key_and_forget_by_age() {
        let mut seen = Sightings::default();
        let mut b = Batch::default();
        b.push(&seen, "lw-", "lw-a", "g1", false, || {
            found("2026-11-02T10:00:00Z")
        });
        b.push(&seen, "lw-", "other", "g9", false, || {
            found("2026-11-02T10:00:00Z")
        });
        b.push(&seen, "lw-", "lw-b", "", false, || {
            found("2026-11-02T10:05:00Z")
        });
        seen.apply(b, Some("f1"));
        assert_eq!(seen.key_of("g1"), Some("lw-a"));
        assert!(seen.found("other").is_none(), "not a sentinel");
        // A delete row names its record by Id only; an unknown Id or a business key is no row.
        let mut b = Batch::default();
        b.push(&seen, "lw-", "", "g1", true, || unreachable!());
        b.push(&seen, "lw-", "", "g9", true, || unreachable!());
        b.push(&seen, "lw-", "other", "g9", true, || unreachable!());
        assert_eq!(b.rows.len(), 1);
        seen.apply(b, None);
        assert!(seen.found("lw-a").is_none() && seen.key_of("g1").is_none());
        // Files: a removal leaves a sentinel no file holds; compaction moves it.
        assert_eq!(
            seen.file_gone("f1", &["f2".to_string()]),
            Vec::<String>::new()
        );
        assert_eq!(seen.in_file("f2"), ["lw-b"]);
        assert_eq!(seen.file_gone("f2", &[]), ["lw-b"]);
        // Forgotten `keep` after the newest time, by when it was first seen.
        seen.forget_old(
            Some("2026-11-02T11:05:01Z".parse().unwrap()),
            Duration::from_secs(3600),
        );
        assert!(seen.is_empty());
    }

    #[test]
    fn a_canary_shows_its_latest_row_and_logs_every_row_while_a_sentinel_keeps_its_first() {
        let canary = SentinelId::canary("t", "g");
        let probe = SentinelId::new("t");
        let mut seen = Sightings::default();
        let row = |text: &str, at: &str| Found {
            payload: Some(text.to_string()),
            ..found(at)
        };
        for (i, v) in ["v1", "v2", "v2"].into_iter().enumerate() {
            let mut b = Batch::default();
            let at = format!("2026-11-02T10:0{i}:00Z");
            b.push(&seen, "lagwatch-", canary.key(), "c", false, || row(v, &at));
            b.push(&seen, "lagwatch-", probe.key(), "p", false, || row(v, &at));
            seen.apply(b, None);
        }
        let latest = seen.found(canary.key()).and_then(|f| f.payload.clone());
        assert_eq!(latest.as_deref(), Some("v2"));
        assert_eq!(
            seen.found(canary.key()).map(|f| f.observed),
            Some("2026-11-02T10:02:00Z".parse().unwrap()),
            "a canary written again is not forgotten by the age of its first row"
        );
        let first = seen.found(probe.key()).and_then(|f| f.payload.clone());
        assert_eq!(first.as_deref(), Some("v1"));
        let log = seen.log(canary.key()).cloned().unwrap_or_default();
        assert_eq!(log.rows, 3);
        assert_eq!(log.after(1).collect::<Vec<_>>(), [Some("v2"), Some("v2")]);
        assert!(seen.log(probe.key()).is_none());
    }

    #[test]
    fn delete_markers_are_true_false_or_empty() {
        for (text, want) in [
            ("", false),
            ("True", true),
            (" true ", true),
            ("FALSE", false),
        ] {
            assert_eq!(delete_flag(text), Ok(want), "{text:?}");
        }
        for bad in ["1", "0", "yes", "Truee", "\u{0}"] {
            assert!(delete_flag(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn a_local_store_lists_one_level_and_stays_inside_its_root() {
        let dir = std::env::temp_dir().join(format!("lagwatch-lake-{}", rand::random::<u64>()));
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::fs::write(dir.join("a/x.csv"), "1,2\n").unwrap();
        let store = LocalStore::new(&dir);
        let l = store.list("a").await.unwrap();
        assert_eq!(l.dirs, ["b"]);
        assert_eq!(l.files.len(), 1);
        assert_eq!((l.files[0].name.as_str(), l.files[0].size), ("x.csv", 4));
        assert!(l.files[0].modified.is_some());
        assert_eq!(
            store.stat("a/x.csv").await.unwrap().as_ref(),
            Some(&l.files[0])
        );
        assert_eq!(store.stat("a/none.csv").await.unwrap(), None);
        assert_eq!(
            store.stat("a/b").await.unwrap(),
            None,
            "a folder is not a file"
        );
        assert_eq!(store.list("missing").await.unwrap(), Listing::default());
        assert_eq!(store.get("a/x.csv").await.unwrap().unwrap(), b"1,2\n");
        assert_eq!(store.get("a/none.csv").await.unwrap(), None);
        assert!(store.get("../etc/passwd").await.is_err());
        assert!(store.get("/etc/passwd").await.is_err());
        assert!(store.get_range("../etc/passwd", 0).await.is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_range_read_returns_the_end_of_a_file_and_its_version_follows_rewrites() {
        let dir = std::env::temp_dir().join(format!("lagwatch-lake-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("p.csv"), "0123456789").unwrap();
        let store = LocalStore::new(&dir);
        assert_eq!(
            store.get_range("p.csv", 0).await.unwrap().unwrap(),
            b"0123456789"
        );
        assert_eq!(store.get_range("p.csv", 7).await.unwrap().unwrap(), b"789");
        assert_eq!(store.get_range("p.csv", 10).await.unwrap().unwrap(), b"");
        assert_eq!(store.get_range("p.csv", 99).await.unwrap().unwrap(), b"");
        assert_eq!(store.get_range("none.csv", 0).await.unwrap(), None);
        // A bounded read stops at `len` or at the end, whichever comes first.
        assert_eq!(
            store.get_slice("p.csv", 2, 3).await.unwrap().unwrap(),
            b"234"
        );
        assert_eq!(
            store.get_slice("p.csv", 8, 9).await.unwrap().unwrap(),
            b"89"
        );
        assert_eq!(store.get_slice("p.csv", 12, 9).await.unwrap().unwrap(), b"");
        assert_eq!(store.get_slice("none.csv", 0, 9).await.unwrap(), None);
        assert!(store.get_slice("../p.csv", 0, 9).await.is_err());
        let before = store.stat("p.csv").await.unwrap().unwrap();
        // Rewritten in place at the same size: the version changes, the size does not.
        let file = std::fs::File::options()
            .write(true)
            .open(dir.join("p.csv"))
            .unwrap();
        std::fs::write(dir.join("p.csv"), "abcdefghij").unwrap();
        file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
            .unwrap();
        let after = store.stat("p.csv").await.unwrap().unwrap();
        assert_eq!(after.size, before.size);
        assert_ne!(after.version, before.version);

        let listed = IntCounter::new("l", "t").unwrap();
        let read = IntCounter::new("r", "t").unwrap();
        let metered = Metered::new(LocalStore::new(&dir), listed.clone(), read.clone());
        assert_eq!(
            metered.get_range("p.csv", 6).await.unwrap().unwrap(),
            b"ghij"
        );
        assert!(metered.stat("p.csv").await.unwrap().is_some());
        assert_eq!((listed.get(), read.get()), (1, 4));
        let shared: std::sync::Arc<dyn LakeStore> = std::sync::Arc::new(metered);
        assert_eq!(
            shared.get_slice("p.csv", 1, 2).await.unwrap().unwrap(),
            b"bc"
        );
        assert_eq!(
            read.get(),
            6,
            "a bounded read through a shared store is metered"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
