//! Synapse Link for Dataverse, the table layout (fact sheet §5.2, §5.4, §5.5).
//!
//! Without incremental update folders the export keeps one CSV file per table partition and
//! changes it where it is:
//!
//! ```text
//! <container>/model.json              CDM manifest: every table's columns, in CSV order
//! <container>/account/2026.csv        headerless rows of the accounts created in 2026
//! <container>/account/2026-11.csv     (or by month, when the profile partitions by month)
//! ```
//!
//! Creates are appended to the partition of their `createdon`; in *in-place update* mode an
//! update or a delete rewrites the file, in *append-only* mode everything (deletes as rows with
//! `IsDelete`) is appended. A poll must not cost the size of the table, so the [`TableCursor`]
//! remembers per partition file its size, its version (ETag or modification time), how far it
//! has read (the end of the last complete record) and a fingerprint, the ≤ 64 bytes before that
//! point. Each scan:
//!
//! 1. looks at `model.json` (one `stat`) and reads it only when its version changed, keeping
//!    the table's column positions;
//! 2. lists `<table>/` once (partitions are few: one per year or month);
//! 3. for each `.csv` file: unchanged (same size and version) → nothing; otherwise a range
//!    read from 64 bytes before the point it has read to: if those bytes still are the
//!    fingerprint, the file grew behind what was read (the common case: creates appended, or
//!    a rewrite that left everything before that point as it was) and only the new bytes are
//!    parsed; if not (rewritten, shrunk), the file is read whole once.
//!
//! Files that exist when the cursor first scans are not parsed: it starts at their end (one
//! range read of the last 64 bytes gives the fingerprint), since sentinels are written after
//! lagwatch starts and take far longer than the engine's first poll (250 ms) to reach the
//! export. Strictly it starts after the last line feed of those bytes, which may sit inside a
//! quoted field of a record being written; that position is trusted only once the records
//! behind it line up, and the file is read whole (once) if they do not. A file that appears
//! later is read from its start. Only complete records count: a trailing record without its
//! line feed (outside quotes) is a write in progress and waits for the next poll; a last
//! record with the wrong number of fields at the very end of the file is treated the same,
//! but one followed by more data is [`LakeError::Malformed`].
//!
//! Only rows whose key starts with this instance's sentinel prefix are kept (its first sighting,
//! until the cursor's `keep` has passed), and deletes, as the export makes them: append-only, a
//! later row with `IsDelete` (matched by `Id`) makes a sentinel absent; in place, a sentinel
//! missing from its partition file when a rewrite sends the file to a whole read was deleted
//! (unless the file ends inside a record: still being written), as are the rows of a partition
//! file that is gone. A later row of the key (appended, or back in a rewrite) is found again.
//! A rewrite is read whole whenever it moved the bytes before the point read, which removing a
//! row before that point does; so a delete costs the whole read its rewrite costs anyway.
//!
//! What this does not see: a row inserted *before* the point already read while the 64 bytes
//! before that point stay where they were (a rewrite of the same length up to there).
//! Creates are appended, so a new sentinel is never such a row; updates and deletes only touch
//! rows already read. What it costs: a poll is a `stat`, a listing and, per changed file, the
//! new bytes plus 64; an in-place rewrite of a partition before the point read costs a whole
//! read of that file (once per rewrite; over Azure Storage, up to the store's object cap).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::synapse::{Columns, Found, TableSpec};
use super::{Batch, Change, FileEntry, LakeError, LakeStore, Sightings};

/// The manifest at the container's root.
pub const MODEL: &str = "model.json";

/// How many bytes before the read point are kept and compared (the fingerprint).
pub const FINGERPRINT_BYTES: u64 = 64;

/// Reading position in one partition file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileState {
    /// Size and version as last listed: when both are the same, nothing changed.
    size: u64,
    version: Option<String>,
    /// Bytes read: the end of the last complete record.
    offset: u64,
    /// The ≤ [`FINGERPRINT_BYTES`] bytes before `offset`, as they were read.
    fingerprint: Vec<u8>,
    /// Whether `offset` is known to start a record: true once records were read up to it
    /// from a known start (the file's start, or a verified offset). False for a position taken
    /// from a file's last bytes at start-up, where a line feed may sit inside a quoted field.
    verified: bool,
}

/// What a scan saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableScan {
    /// Partition files read in this scan (from their end or whole).
    pub files_read: usize,
    /// Of those, files read whole (new, rewritten or shrunk).
    pub whole_reads: usize,
    /// Whether `model.json` was read.
    pub model_read: bool,
    /// The newest last-modified time of the table's partition files, once known.
    pub newest_file: Option<DateTime<Utc>>,
}

/// Reading position in one table of a table-layout export.
#[derive(Debug)]
pub struct TableCursor {
    spec: TableSpec,
    /// `model.json`'s size and version when its columns were read.
    model_seen: Option<(u64, Option<String>)>,
    columns: Option<Columns>,
    /// Partition files by name (pruned to those still listed).
    files: BTreeMap<String, FileState>,
    /// Whether a scan has listed the table once (files seen after that are read from the start).
    primed: bool,
    seen: Sightings,
    keep: Duration,
    newest_file: Option<DateTime<Utc>>,
    /// Newest `observed` of a found sentinel, what `keep` counts from.
    newest_observed: Option<DateTime<Utc>>,
}

/// What parsing a run of bytes gave.
#[derive(Debug)]
struct Parsed {
    /// Bytes consumed: complete records only.
    consumed: usize,
    rows: Batch,
}

/// The record at byte `at` of a run of bytes is not the documented CSV (`reason`).
#[derive(Debug)]
struct ParseError {
    at: u64,
    reason: String,
}

impl ParseError {
    /// The error of a run read from `path` at file offset `base`.
    fn at(self, path: &str, base: u64) -> LakeError {
        LakeError::Malformed {
            path: path.to_string(),
            reason: format!("the row at byte {}: {}", base + self.at, self.reason),
        }
    }
}

impl TableCursor {
    /// A cursor for `spec` that remembers found sentinels for `keep` (longer than every path's
    /// timeout).
    pub fn new(spec: TableSpec, keep: Duration) -> Self {
        TableCursor {
            spec,
            model_seen: None,
            columns: None,
            files: BTreeMap::new(),
            primed: false,
            seen: Sightings::default(),
            keep,
            newest_file: None,
            newest_observed: None,
        }
    }

    /// The sentinel with key `key`, if a partition file held it and the export has not
    /// deleted it since (module docs).
    pub fn found(&self, key: &str) -> Option<&Found> {
        self.seen.found(key)
    }

    /// Reads what changed since the last scan. A file's position moves only once its new
    /// records were read, so a scan that fails half-way (or is abandoned at a deadline) is
    /// redone from where each file was.
    ///
    /// # Errors
    /// [`LakeError`] when the store fails, `model.json` is missing or does not describe the
    /// table, or a file is not the documented CSV.
    pub async fn scan(&mut self, store: &dyn LakeStore) -> Result<TableScan, LakeError> {
        let mut scan = TableScan::default();
        let columns = self.columns(store, &mut scan).await?;
        let dir = self.spec.table.clone();
        let files: Vec<FileEntry> = store
            .list(&dir)
            .await?
            .files
            .into_iter()
            .filter(|f| f.name.ends_with(".csv"))
            .collect();
        // Partitions the export removed (a table dropped and added again) are forgotten, and
        // so are the rows they held: they are no longer in the lake.
        self.files
            .retain(|name, _| files.iter().any(|f| &f.name == name));
        for gone in self.seen.files() {
            if !files.iter().any(|f| format!("{dir}/{}", f.name) == gone) {
                for key in self.seen.file_gone(&gone, &[]) {
                    self.seen.remove(&key);
                }
            }
        }
        for f in &files {
            if let Some(m) = f.modified {
                self.newest_file = Some(self.newest_file.map_or(m, |n| n.max(m)));
            }
            let path = format!("{dir}/{}", f.name);
            let observed = f.modified.unwrap_or_else(Utc::now);
            let next = match self.files.get(&f.name) {
                None if !self.primed => start_at_end(store, &path, f).await?,
                None => {
                    scan.files_read += 1;
                    scan.whole_reads += 1;
                    self.read_whole(store, &path, f, &columns, observed).await?
                }
                Some(s) if s.size == f.size && s.version == f.version => continue,
                Some(s) => {
                    let s = s.clone();
                    scan.files_read += 1;
                    match self
                        .read_tail(store, &path, f, &s, &columns, observed)
                        .await?
                    {
                        Tail::Read(next) => next,
                        Tail::Whole => {
                            scan.whole_reads += 1;
                            self.read_whole(store, &path, f, &columns, observed).await?
                        }
                    }
                }
            };
            match next {
                Some(state) => self.files.insert(f.name.clone(), state),
                // Deleted between listing and reading.
                None => self.files.remove(&f.name),
            };
        }
        self.primed = true;
        self.seen.forget_old(self.newest_observed, self.keep);
        scan.newest_file = self.newest_file;
        Ok(scan)
    }

    /// The table's column positions, reading `model.json` only when it changed.
    async fn columns(
        &mut self,
        store: &dyn LakeStore,
        scan: &mut TableScan,
    ) -> Result<Columns, LakeError> {
        let missing = || LakeError::Malformed {
            path: MODEL.to_string(),
            reason: "missing: the container is not (yet) a Synapse Link export in the table \
                     layout (an incremental-folder export needs layout: incremental)"
                .to_string(),
        };
        let Some(entry) = store.stat(MODEL).await? else {
            return Err(missing());
        };
        let seen = (entry.size, entry.version);
        if let Some(c) = self.columns
            && self.model_seen.as_ref() == Some(&seen)
        {
            return Ok(c);
        }
        let Some(bytes) = store.get(MODEL).await? else {
            return Err(missing());
        };
        scan.model_read = true;
        let columns = Columns::of(&bytes, MODEL, &self.spec)?;
        // A manifest that changed while it was read is read again on the next scan.
        self.model_seen = (seen.0 == bytes.len() as u64).then_some(seen);
        self.columns = Some(columns);
        Ok(columns)
    }

    /// Reads the bytes appended behind the fingerprint, or says the file must be read whole.
    async fn read_tail(
        &mut self,
        store: &dyn LakeStore,
        path: &str,
        f: &FileEntry,
        s: &FileState,
        columns: &Columns,
        observed: DateTime<Utc>,
    ) -> Result<Tail, LakeError> {
        if f.size < s.offset {
            return Ok(Tail::Whole);
        }
        let fp = s.fingerprint.len();
        let start = s.offset - fp as u64;
        let Some(bytes) = store.get_range(path, start).await? else {
            return Ok(Tail::Read(None));
        };
        if bytes.get(..fp) != Some(s.fingerprint.as_slice()) {
            return Ok(Tail::Whole);
        }
        let new = &bytes[fp..];
        let parsed = parse(new, columns, &self.spec.key_prefix, observed, &self.seen);
        // From an unverified start, records that do not line up (a wrong field count, or line
        // feeds but no complete record: quoting read inside out) mean the start was inside a
        // quoted field: the file is read whole instead, once.
        if !s.verified
            && match &parsed {
                Err(_) => true,
                Ok(p) => p.consumed == 0 && new.contains(&b'\n'),
            }
        {
            return Ok(Tail::Whole);
        }
        let parsed = parsed.map_err(|e| e.at(path, s.offset))?;
        self.keep_rows(parsed.rows, path);
        let end = fp + parsed.consumed;
        Ok(Tail::Read(Some(FileState {
            size: f.size,
            version: f.version.clone(),
            offset: s.offset + parsed.consumed as u64,
            fingerprint: tail_of(&bytes[..end]),
            verified: s.verified || parsed.consumed > 0,
        })))
    }

    /// Reads a file from its start (new, rewritten or shrunk). A sentinel this file held
    /// that the file no longer has was deleted in place (module docs).
    async fn read_whole(
        &mut self,
        store: &dyn LakeStore,
        path: &str,
        f: &FileEntry,
        columns: &Columns,
        observed: DateTime<Utc>,
    ) -> Result<Option<FileState>, LakeError> {
        let Some(bytes) = store.get(path).await? else {
            return Ok(None);
        };
        let mut parsed = parse(&bytes, columns, &self.spec.key_prefix, observed, &self.seen)
            .map_err(|e| e.at(path, 0))?;
        // A file that ends inside a record is being written: what it lacks may still come.
        if parsed.consumed == bytes.len() {
            for key in self.seen.in_file(path) {
                if !parsed.rows.has(&key) {
                    parsed.rows.rows.push((key, None, Change::Delete));
                }
            }
        }
        self.keep_rows(parsed.rows, path);
        Ok(Some(FileState {
            size: f.size,
            version: f.version.clone(),
            offset: parsed.consumed as u64,
            fingerprint: tail_of(&bytes[..parsed.consumed]),
            verified: true,
        }))
    }

    /// Applies the rows read from `path`, in order; a sentinel already found keeps its first
    /// sighting.
    fn keep_rows(&mut self, rows: Batch, path: &str) {
        for (_, _, change) in &rows.rows {
            if let Change::Upsert(found) = change {
                let t = found.observed;
                self.newest_observed = Some(self.newest_observed.map_or(t, |n| n.max(t)));
            }
        }
        self.seen.apply(rows, Some(path));
    }
}

/// What a tail read came to.
enum Tail {
    /// The new position (`None`: the file is gone).
    Read(Option<FileState>),
    /// The fingerprint no longer matches: read the file whole.
    Whole,
}

/// A file that exists when the cursor first scans: its position is its end, its fingerprint
/// the bytes before that (one range read of at most [`FINGERPRINT_BYTES`]). Strictly, the
/// position is after the last line feed of those bytes, so a record still being written is
/// read once complete; whether that line feed ends a record or sits inside a quoted field
/// cannot be told from the last bytes alone, so the position stays unverified until records
/// line up behind it (else the file is read whole, once). A file no longer than the window
/// was read from its start, so its position is exact.
async fn start_at_end(
    store: &dyn LakeStore,
    path: &str,
    f: &FileEntry,
) -> Result<Option<FileState>, LakeError> {
    let start = f.size.saturating_sub(FINGERPRINT_BYTES);
    let Some(tail) = store.get_range(path, start).await? else {
        return Ok(None);
    };
    let kept = if start == 0 {
        complete_len(&tail)
    } else {
        // No line feed in the window: a long record is being written; its rest will not line
        // up as a record, which sends the file to a whole read.
        tail.iter()
            .rposition(|&b| b == b'\n')
            .map_or(tail.len(), |i| i + 1)
    };
    Ok(Some(FileState {
        size: f.size,
        version: f.version.clone(),
        offset: start + kept as u64,
        fingerprint: tail_of(&tail[..kept]),
        verified: start == 0,
    }))
}

/// The last ≤ [`FINGERPRINT_BYTES`] bytes of `bytes`.
fn tail_of(bytes: &[u8]) -> Vec<u8> {
    let n = usize::try_from(FINGERPRINT_BYTES).unwrap_or(usize::MAX);
    bytes[bytes.len().saturating_sub(n)..].to_vec()
}

/// The length of the complete records at the start of `data`: up to and including the last
/// line feed outside a quoted field (RFC 4180: every `"` toggles quoting, `""` toggles twice).
pub(crate) fn complete_len(data: &[u8]) -> usize {
    record_bounds(data).0
}

/// [`complete_len`], and whether `data` ends inside a quoted field (so what follows the last
/// complete record cannot be a whole record yet, even at the end of a file).
pub(crate) fn record_bounds(data: &[u8]) -> (usize, bool) {
    let mut quoted = false;
    let mut end = 0;
    for (i, &b) in data.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => end = i + 1,
            _ => {}
        }
    }
    (end, quoted)
}

/// Parses the complete records of `data` (which starts at a record boundary), keeping the
/// sentinel rows.
fn parse(
    data: &[u8],
    columns: &Columns,
    prefix: &str,
    observed: DateTime<Utc>,
    known: &Sightings,
) -> Result<Parsed, ParseError> {
    let complete = complete_len(data);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(&data[..complete]);
    let mut record = csv::StringRecord::new();
    let mut parsed = Parsed {
        consumed: complete,
        rows: Batch::default(),
    };
    loop {
        let start = reader.position().byte();
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                return Err(ParseError {
                    at: start,
                    reason: format!("not CSV ({e})"),
                });
            }
        }
        if record.len() != columns.count {
            let end = usize::try_from(reader.position().byte()).unwrap_or(usize::MAX);
            if end >= data.len() {
                // The last record of the file, complete by its line feed but not by its
                // fields: a write in progress; read again when more follows.
                parsed.consumed = usize::try_from(start).unwrap_or(0);
                break;
            }
            return Err(ParseError {
                at: start,
                reason: format!(
                    "{} fields; model.json lists {} columns",
                    record.len(),
                    columns.count
                ),
            });
        }
        columns
            .read(&record, prefix, observed, known, &mut parsed.rows)
            .map_err(|reason| ParseError { at: start, reason })?;
    }
    Ok(parsed)
}

#[async_trait::async_trait]
impl super::LakeCursor for TableCursor {
    async fn refresh(&mut self, store: &dyn LakeStore) -> Result<Option<DateTime<Utc>>, LakeError> {
        Ok(self.scan(store).await?.newest_file)
    }

    fn found(&self, key: &str) -> Option<&Found> {
        TableCursor::found(self, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::LocalStore;

    fn columns() -> Columns {
        Columns {
            count: 3,
            key_at: 1,
            payload_at: Some(2),
            sink_at: None,
            id_at: Some(0),
            delete_at: None,
        }
    }

    fn t0() -> DateTime<Utc> {
        "2026-11-02T10:15:00Z".parse().unwrap()
    }

    /// A table-layout lake in a temp folder: `model.json` with `Id`, `name`, `description`,
    /// `IsDelete`, and `account/2026.csv`.
    struct Lake(std::path::PathBuf);

    const P: &str = "account/2026.csv";

    impl Lake {
        fn new() -> Lake {
            let root =
                std::env::temp_dir().join(format!("lagwatch-table-{}", rand::random::<u64>()));
            std::fs::create_dir_all(root.join("account")).unwrap();
            std::fs::write(
                root.join(MODEL),
                r#"{"entities":[{"name":"account","attributes":[{"name":"Id"},{"name":"name"},
                {"name":"description"},{"name":"IsDelete"}]}]}"#,
            )
            .unwrap();
            std::fs::write(root.join(P), "b1,business,x,\n").unwrap();
            Lake(root)
        }

        fn append(&self, text: &str) {
            use std::io::Write as _;
            let mut f = std::fs::File::options()
                .append(true)
                .open(self.0.join(P))
                .unwrap();
            f.write_all(text.as_bytes()).unwrap();
        }

        /// Rewrites the partition file as an in-place export does: a new file renamed over it.
        fn rewrite(&self, text: &str) {
            let tmp = self.0.join("account/.tmp");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(tmp, self.0.join(P)).unwrap();
        }

        fn cursor(&self) -> (LocalStore, TableCursor) {
            let spec = TableSpec {
                table: "account".into(),
                key_column: "name".into(),
                payload_column: Some("description".into()),
                key_prefix: "lagwatch-".into(),
            };
            (
                LocalStore::new(&self.0),
                TableCursor::new(spec, Duration::from_secs(3600)),
            )
        }
    }

    impl Drop for Lake {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[tokio::test]
    async fn an_appended_delete_row_hides_a_sentinel_until_a_later_row_brings_it_back() {
        let lake = Lake::new();
        let (store, mut c) = lake.cursor();
        c.scan(&store).await.unwrap();
        lake.append("g1,lagwatch-a,one,False\n");
        c.scan(&store).await.unwrap();
        assert_eq!(
            c.found("lagwatch-a").unwrap().payload.as_deref(),
            Some("one")
        );
        // The delete row carries only the record's Id (fact sheet §5.5).
        lake.append("g1,,,True\n");
        c.scan(&store).await.unwrap();
        assert_eq!(c.found("lagwatch-a"), None);
        // The row again (a resurrection), then deleted again, within one read: the last decides.
        lake.append("g1,lagwatch-a,one,\n");
        c.scan(&store).await.unwrap();
        assert!(c.found("lagwatch-a").is_some());
        lake.append("g1,,,true\ng2,lagwatch-b,two,\n");
        let scan = c.scan(&store).await.unwrap();
        assert_eq!((c.found("lagwatch-a"), scan.whole_reads), (None, 0));
        assert!(c.found("lagwatch-b").is_some());
        // A delete row of a record that is not a sentinel changes nothing.
        lake.append("b1,,,True\n");
        c.scan(&store).await.unwrap();
        assert!(c.found("lagwatch-b").is_some());
    }

    #[tokio::test]
    async fn a_sentinel_missing_from_its_rewritten_file_was_deleted_in_place() {
        let lake = Lake::new();
        let (store, mut c) = lake.cursor();
        c.scan(&store).await.unwrap();
        lake.append("g1,lagwatch-a,one,\ng2,lagwatch-b,two,\n");
        c.scan(&store).await.unwrap();
        assert!(c.found("lagwatch-a").is_some() && c.found("lagwatch-b").is_some());
        // In place: the row of `a` removed, the rest rewritten (and a business row updated).
        lake.rewrite("b1,business,changed,\ng2,lagwatch-b,two,\n");
        let scan = c.scan(&store).await.unwrap();
        assert_eq!(scan.whole_reads, 1);
        assert_eq!(c.found("lagwatch-a"), None);
        assert!(c.found("lagwatch-b").is_some());
        // Put back (a resurrection): found again.
        lake.rewrite("b1,business,changed,\ng1,lagwatch-a,one,\ng2,lagwatch-b,two,\n");
        c.scan(&store).await.unwrap();
        assert!(c.found("lagwatch-a").is_some());
        // A partition file that is gone took its rows with it.
        std::fs::remove_file(lake.0.join(P)).unwrap();
        c.scan(&store).await.unwrap();
        assert_eq!((c.found("lagwatch-a"), c.found("lagwatch-b")), (None, None));
    }

    #[tokio::test]
    async fn a_rewrite_still_being_written_deletes_nothing() {
        let lake = Lake::new();
        let (store, mut c) = lake.cursor();
        c.scan(&store).await.unwrap();
        lake.append("g1,lagwatch-a,one,\ng2,lagwatch-b,two,\n");
        c.scan(&store).await.unwrap();
        // Cut inside its last record: the rows after the cut may still come.
        lake.rewrite("g1,lagwatch-a,one,\ng2,lagwatch-b,t");
        c.scan(&store).await.unwrap();
        assert!(c.found("lagwatch-b").is_some());
    }

    #[tokio::test]
    async fn a_delete_marker_that_is_not_a_boolean_is_malformed() {
        for garbage in [
            "g1,lagwatch-a,one,maybe\n",
            "g1,,,1\n",
            "g1,lagwatch-a\n,x\n",
        ] {
            let lake = Lake::new();
            let (store, mut c) = lake.cursor();
            c.scan(&store).await.unwrap();
            lake.append("g0,lagwatch-z,z,\n");
            c.scan(&store).await.unwrap();
            lake.append(garbage);
            lake.append("g3,lagwatch-c,three,\n");
            let e = c.scan(&store).await.unwrap_err();
            assert!(matches!(e, LakeError::Malformed { .. }), "{garbage}: {e}");
            assert!(
                e.to_string()
                    .starts_with("account/2026.csv: the row at byte"),
                "{e}"
            );
            assert!(
                c.found("lagwatch-z").is_some(),
                "a failed read changes nothing"
            );
        }
    }

    #[test]
    fn complete_records_end_at_a_line_feed_outside_quotes() {
        assert_eq!(complete_len(b""), 0);
        assert_eq!(complete_len(b"a,b,c"), 0);
        assert_eq!(complete_len(b"a,b,c\nd,e"), 6);
        assert_eq!(complete_len(b"a,\"b\nc\",d\n"), 10);
        assert_eq!(complete_len(b"a,\"b\nc"), 0, "inside a quoted field");
        assert_eq!(complete_len(b"a,\"b\"\"\n\",c\r\nx"), 12);
    }

    #[test]
    fn only_complete_sentinel_rows_are_kept() {
        let data = b"1,lagwatch-a,\"p, \"\"q\"\"\nr\"\n2,other,x\n3,lagwatch-b,y";
        let p = parse(data, &columns(), "lagwatch-", t0(), &Sightings::default()).unwrap();
        assert_eq!(p.consumed, data.len() - "3,lagwatch-b,y".len());
        assert_eq!(p.rows.rows.len(), 1);
        let (key, id, change) = &p.rows.rows[0];
        assert_eq!((key.as_str(), id.as_deref()), ("lagwatch-a", Some("1")));
        let Change::Upsert(found) = change else {
            panic!("{change:?}")
        };
        assert_eq!(found.payload.as_deref(), Some("p, \"q\"\nr"));
    }

    #[test]
    fn a_short_last_record_waits_but_a_short_record_inside_is_malformed() {
        let none = Sightings::default();
        let p = parse(
            b"1,lagwatch-a,x\n2,lag\n",
            &columns(),
            "lagwatch-",
            t0(),
            &none,
        )
        .unwrap();
        assert_eq!((p.consumed, p.rows.rows.len()), (15, 1));
        let e = parse(
            b"1,lagwatch-a,x\n1,two\n2,lagwatch-b,x\n",
            &columns(),
            "lagwatch-",
            t0(),
            &none,
        )
        .unwrap_err()
        .at("account/2026.csv", 100);
        assert_eq!(
            e.to_string(),
            "account/2026.csv: the row at byte 115: 2 fields; model.json lists 3 columns"
        );
        // Followed by a partial record, the short one is not the end of the file either.
        assert!(parse(b"1,two\n2,lag", &columns(), "lagwatch-", t0(), &none).is_err());
        // Bytes that are not UTF-8 are not CSV text.
        let e = parse(b"1,\xff\xfe,x\n", &columns(), "lagwatch-", t0(), &none).unwrap_err();
        assert!(e.reason.starts_with("not CSV"), "{}", e.reason);
    }
}
