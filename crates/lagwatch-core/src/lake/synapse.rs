//! Synapse Link for Dataverse, incremental update folders (fact sheet §5.3, §5.4).
//!
//! The export writes a timestamped folder per interval (5 minutes to a day):
//!
//! ```text
//! <container>/Changelog/changelog.info        the folder being written now: never read it
//! <container>/2026-11-02T10.15.00.000Z/model.json      column order of every table
//! <container>/2026-11-02T10.15.00.000Z/account/*.csv   headerless rows changed in the interval
//! ```
//!
//! A folder is complete once `changelog.info` names a later one. The [`Cursor`] keeps which
//! complete folders it has read, so a scan costs one small read of `changelog.info` when nothing
//! changed, and one root listing plus the new folders' files when something did: the cost of a
//! poll follows what changed, never the size of the lake. Folders that closed before lagwatch
//! started are skipped unread (they cannot hold its sentinels); folders the export deletes after
//! a day simply stop being listed.
//!
//! Only rows whose key starts with this instance's sentinel prefix are kept, so memory is
//! bounded by lagwatch's own sentinels, and those are forgotten after [`Cursor`]'s `keep`.
//! Deletes are rows too (`IsDelete` = `True`, with only the record's `Id`): the latest row of a
//! sentinel, in folder and file order, decides whether a lookup finds it.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};

use super::{Batch, DELETE_COLUMNS, LakeError, LakeStore, Sightings, cdm, delete_flag};

/// Where the export names the folder it is writing.
pub const CHANGELOG: &str = "Changelog/changelog.info";

/// The instant in a folder name, `2026-11-02T10.15.00.000Z` (the documented format string is
/// `yyyy-MM-dd'T'HH:mm:ss.SSSz`; whether the separators on disk are `:` or `.` is not
/// documented, so both are accepted, with or without milliseconds).
pub fn folder_time(name: &str) -> Option<DateTime<Utc>> {
    let (date, time) = name.split_once('T')?;
    let time = time.strip_suffix('Z')?.replace(':', ".");
    let mut parts = time.splitn(4, '.');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    let frac = parts.next().unwrap_or("0");
    if [h, m, s].iter().any(|p| p.len() != 2) || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let text = format!("{date}T{h}:{m}:{s}.{frac}");
    NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

/// A datetime as the export writes it (several formats are seen, fact sheet §5.4).
pub fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%m/%d/%Y %I:%M:%S %p",
        "%m/%d/%Y %H:%M:%S",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, f) {
            return Some(n.and_utc());
        }
    }
    None
}

/// Which rows of which table a cursor looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// Table (entity) name as in `model.json` and the folder, e.g. `account`.
    pub table: String,
    /// Column holding the sentinel key, e.g. `name`.
    pub key_column: String,
    /// Column holding the payload; `None`: presence only.
    pub payload_column: Option<String>,
    /// Only keys starting with this are kept (`lagwatch-<instance>-`).
    pub key_prefix: String,
}

pub use super::Found;

/// Where the columns a cursor needs are in a table's CSV rows, from `model.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Columns {
    /// How many fields every row has.
    pub count: usize,
    pub key_at: usize,
    pub payload_at: Option<usize>,
    /// `SinkCreatedOn`, else `SinkModifiedOn`.
    pub sink_at: Option<usize>,
    /// `Id`, the record's id: all a delete row has to name its record by.
    pub id_at: Option<usize>,
    /// `IsDelete` (or `isDeleted`): the delete marker of append-only exports.
    pub delete_at: Option<usize>,
}

impl Columns {
    /// The positions of `spec`'s columns in the `model.json` at `model_path`.
    ///
    /// # Errors
    /// [`LakeError::Malformed`] when the manifest is not CDM, does not list the table, or the
    /// table lacks the key or payload column.
    pub(crate) fn of(
        bytes: &[u8],
        model_path: &str,
        spec: &TableSpec,
    ) -> Result<Columns, LakeError> {
        let Some(columns) = cdm::columns(bytes, model_path, &spec.table)? else {
            return Err(LakeError::Malformed {
                path: model_path.to_string(),
                reason: format!("does not list table {}", spec.table),
            });
        };
        let at = |name: &str| columns.iter().position(|c| c.eq_ignore_ascii_case(name));
        let Some(key_at) = at(&spec.key_column) else {
            return Err(LakeError::Malformed {
                path: model_path.to_string(),
                reason: format!("table {} has no column {}", spec.table, spec.key_column),
            });
        };
        let payload_at = match &spec.payload_column {
            None => None,
            Some(p) => Some(at(p).ok_or_else(|| LakeError::Malformed {
                path: model_path.to_string(),
                reason: format!("table {} has no column {p}", spec.table),
            })?),
        };
        Ok(Columns {
            count: columns.len(),
            key_at,
            payload_at,
            sink_at: at("SinkCreatedOn").or_else(|| at("SinkModifiedOn")),
            id_at: at("Id"),
            delete_at: DELETE_COLUMNS.iter().find_map(|c| at(c)),
        })
    }

    /// Puts the sentinel row in `record` into `batch`: a row whose key starts with `prefix`,
    /// or a delete row of a sentinel `known` or earlier in the batch has (other rows are left
    /// out, so memory follows lagwatch's own sentinels, not the table).
    ///
    /// # Errors
    /// The reason, when the delete marker is neither `True`, `False` nor empty.
    pub(crate) fn read(
        &self,
        record: &csv::StringRecord,
        prefix: &str,
        observed: DateTime<Utc>,
        known: &Sightings,
        batch: &mut Batch,
    ) -> Result<(), String> {
        let field = |at: Option<usize>| at.and_then(|i| record.get(i)).unwrap_or_default();
        let delete = delete_flag(field(self.delete_at))?;
        let key = field(Some(self.key_at));
        batch.push(known, prefix, key, field(self.id_at), delete, || Found {
            payload: self
                .payload_at
                .and_then(|i| record.get(i))
                .map(str::to_string),
            sink_at: self
                .sink_at
                .and_then(|i| record.get(i))
                .and_then(parse_datetime),
            observed,
        });
        Ok(())
    }
}

/// What a scan saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scan {
    /// Folders read in this scan.
    pub folders_read: usize,
    /// The newest complete folder's time, once known.
    pub newest_complete: Option<DateTime<Utc>>,
}

/// Reading position in one export's incremental folders.
#[derive(Debug)]
pub struct Cursor {
    spec: TableSpec,
    /// Folders closed before this are skipped unread.
    ignore_closed_before: DateTime<Utc>,
    /// `changelog.info` as last processed completely.
    last_open: Option<String>,
    /// Complete folders already handled (pruned to those still listed).
    done: BTreeSet<String>,
    seen: Sightings,
    keep: Duration,
    newest_complete: Option<DateTime<Utc>>,
}

impl Cursor {
    /// A cursor that reads folders closed at or after `since` (lagwatch's start, minus a
    /// margin for clock offset) and remembers found sentinels for `keep` (longer than every
    /// path's timeout).
    pub fn new(spec: TableSpec, since: DateTime<Utc>, keep: Duration) -> Self {
        Cursor {
            spec,
            ignore_closed_before: since,
            last_open: None,
            done: BTreeSet::new(),
            seen: Sightings::default(),
            keep,
            newest_complete: None,
        }
    }

    /// The sentinel with key `key`, if a complete folder held it and no later folder holds
    /// its delete row (the latest row of a key, in folder and file order, decides).
    pub fn found(&self, key: &str) -> Option<&Found> {
        self.seen.found(key)
    }

    /// Reads what completed since the last scan. State changes only after a folder has been
    /// read whole, so a scan abandoned half-way (deadline) or failed is simply redone.
    ///
    /// # Errors
    /// [`LakeError`] when the store fails or a file is not the documented layout.
    pub async fn scan(&mut self, store: &dyn LakeStore) -> Result<Scan, LakeError> {
        let mut scan = Scan {
            newest_complete: self.newest_complete,
            ..Scan::default()
        };
        let Some(raw) = store.get(CHANGELOG).await? else {
            return Err(LakeError::Malformed {
                path: CHANGELOG.to_string(),
                reason: "missing: the container is not (yet) an incremental-update-folder \
                         export of Synapse Link"
                    .to_string(),
            });
        };
        let open = String::from_utf8_lossy(&raw).trim().to_string();
        let Some(open_time) = folder_time(&open) else {
            return Err(LakeError::Malformed {
                path: CHANGELOG.to_string(),
                reason: format!(
                    "names \"{}\", not a folder such as 2026-11-02T10.15.00.000Z",
                    crate::net::excerpt(open.as_bytes())
                ),
            });
        };
        if self.last_open.as_deref() == Some(open.as_str()) {
            return Ok(scan);
        }
        let listing = store.list("").await?;
        let mut folders: Vec<(DateTime<Utc>, String)> = listing
            .dirs
            .into_iter()
            .filter_map(|d| folder_time(&d).map(|t| (t, d)))
            .collect();
        folders.sort();
        // Forget folders the export has deleted; keep the set as small as the lake's retention.
        self.done
            .retain(|d| folders.iter().any(|(_, name)| name == d));
        let complete: Vec<usize> = (0..folders.len())
            .filter(|&i| folders[i].0 < open_time)
            .collect();
        for &i in &complete {
            let (time, name) = &folders[i];
            if self.done.contains(name) {
                continue;
            }
            let closed_at = folders.get(i + 1).map_or(open_time, |(t, _)| *t);
            if closed_at >= self.ignore_closed_before {
                let rows = self.read_folder(store, name, *time).await?;
                scan.folders_read += 1;
                self.seen.apply(rows, None);
            }
            self.done.insert(name.clone());
        }
        if let Some(&i) = complete.last() {
            let t = folders[i].0;
            self.newest_complete = Some(self.newest_complete.map_or(t, |n| n.max(t)));
        }
        scan.newest_complete = self.newest_complete;
        self.last_open = Some(open);
        self.seen.forget_old(self.newest_complete, self.keep);
        Ok(scan)
    }

    /// The sentinel rows of one complete folder, delete rows included, in file and row order.
    async fn read_folder(
        &self,
        store: &dyn LakeStore,
        folder: &str,
        time: DateTime<Utc>,
    ) -> Result<Batch, LakeError> {
        let dir = format!("{folder}/{}", self.spec.table);
        let files = store.list(&dir).await?.files;
        let csvs: Vec<_> = files.iter().filter(|f| f.name.ends_with(".csv")).collect();
        let mut out = Batch::default();
        if csvs.is_empty() {
            return Ok(out);
        }
        let model_path = format!("{folder}/model.json");
        let Some(model) = store.get(&model_path).await? else {
            return Err(LakeError::Malformed {
                path: model_path,
                reason: "missing, so the CSV files' columns are unknown".to_string(),
            });
        };
        let columns = Columns::of(&model, &model_path, &self.spec)?;
        for f in csvs {
            let path = format!("{dir}/{}", f.name);
            let Some(bytes) = store.get(&path).await? else {
                continue; // deleted between listing and reading
            };
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(bytes.as_slice());
            for record in reader.records() {
                let record = record.map_err(|e| LakeError::Malformed {
                    path: path.clone(),
                    reason: format!("not CSV ({e})"),
                })?;
                if record.len() != columns.count {
                    return Err(LakeError::Malformed {
                        path: path.clone(),
                        reason: format!(
                            "a row on line {} has {} fields; model.json lists {} columns",
                            record.position().map_or(0, |p| p.line()),
                            record.len(),
                            columns.count
                        ),
                    });
                }
                let line = record.position().map_or(0, |p| p.line());
                columns
                    .read(&record, &self.spec.key_prefix, time, &self.seen, &mut out)
                    .map_err(|reason| LakeError::Malformed {
                        path: path.clone(),
                        reason: format!("the row on line {line}: {reason}"),
                    })?;
            }
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl super::LakeCursor for Cursor {
    async fn refresh(&mut self, store: &dyn LakeStore) -> Result<Option<DateTime<Utc>>, LakeError> {
        Ok(self.scan(store).await?.newest_complete)
    }

    fn found(&self, key: &str) -> Option<&Found> {
        Cursor::found(self, key)
    }

    /// Each complete folder is read once, whole, in order: every row the export appended.
    fn keeps_versions(&self) -> bool {
        true
    }

    fn log(&self, key: &str) -> Option<&crate::connector::RowLog> {
        self.seen.log(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An incremental export in a temp folder; folder `i` opens at 10:0i.
    struct Export(std::path::PathBuf);

    impl Export {
        fn new() -> Export {
            let root =
                std::env::temp_dir().join(format!("lagwatch-folders-{}", rand::random::<u64>()));
            std::fs::create_dir_all(root.join("Changelog")).unwrap();
            Export(root)
        }

        fn folder(i: u32) -> String {
            format!("2026-11-02T10.{i:02}.00.000Z")
        }

        /// Writes folder `i` with `rows` (`Id`, `name`, `IsDelete`) and opens folder `i + 1`.
        fn close(&self, i: u32, rows: &str) {
            let dir = self.0.join(Export::folder(i));
            std::fs::create_dir_all(dir.join("account")).unwrap();
            std::fs::write(
                dir.join("model.json"),
                r#"{"entities":[{"name":"account","attributes":[{"name":"Id"},{"name":"name"},
                {"name":"IsDelete"}]}]}"#,
            )
            .unwrap();
            std::fs::write(dir.join("account/2026.csv"), rows).unwrap();
            std::fs::write(self.0.join(CHANGELOG), Export::folder(i + 1)).unwrap();
        }

        fn cursor(&self) -> (super::super::LocalStore, Cursor) {
            let spec = TableSpec {
                table: "account".into(),
                key_column: "name".into(),
                payload_column: None,
                key_prefix: "lagwatch-".into(),
            };
            let since = "2026-11-02T09:00:00Z".parse().unwrap();
            (
                super::super::LocalStore::new(&self.0),
                Cursor::new(spec, since, Duration::from_secs(86_400)),
            )
        }
    }

    impl Drop for Export {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[tokio::test]
    async fn a_delete_row_in_a_later_folder_hides_a_sentinel_until_its_row_comes_back() {
        let e = Export::new();
        let (store, mut c) = e.cursor();
        e.close(0, "g1,lagwatch-a,False\ng2,lagwatch-b,\nb1,business,\n");
        c.scan(&store).await.unwrap();
        assert!(c.found("lagwatch-a").is_some() && c.found("lagwatch-b").is_some());
        // Delete rows carry only the record's Id.
        e.close(1, "g1,,True\nb1,,True\n");
        c.scan(&store).await.unwrap();
        assert_eq!(c.found("lagwatch-a"), None);
        assert!(c.found("lagwatch-b").is_some());
        // Back (a resurrection) ...
        e.close(2, "g1,lagwatch-a,\n");
        c.scan(&store).await.unwrap();
        assert!(c.found("lagwatch-a").is_some());
        // ... and a row and its delete in one folder: the later row decides.
        e.close(3, "g3,lagwatch-c,\ng1,,True\ng3,,TRUE\n");
        c.scan(&store).await.unwrap();
        assert_eq!((c.found("lagwatch-a"), c.found("lagwatch-c")), (None, None));
        assert!(c.found("lagwatch-b").is_some());
    }

    #[tokio::test]
    async fn a_delete_marker_that_is_not_a_boolean_is_malformed() {
        for garbage in ["g1,lagwatch-a,yes\n", "g1,,0\n", "g1,lagwatch-a\n"] {
            let e = Export::new();
            let (store, mut c) = e.cursor();
            e.close(0, "g1,lagwatch-a,\n");
            c.scan(&store).await.unwrap();
            e.close(1, garbage);
            let err = c.scan(&store).await.unwrap_err();
            assert!(
                matches!(err, LakeError::Malformed { .. }),
                "{garbage}: {err}"
            );
            assert!(err.to_string().contains("line 1"), "{err}");
            assert!(
                c.found("lagwatch-a").is_some(),
                "a failed read changes nothing"
            );
        }
    }

    #[test]
    fn folder_names_parse_with_either_separator() {
        let want = "2026-11-02T10:15:00Z".parse::<DateTime<Utc>>().unwrap();
        for name in [
            "2026-11-02T10.15.00.000Z",
            "2026-11-02T10:15:00.000Z",
            "2026-11-02T10.15.00Z",
        ] {
            assert_eq!(folder_time(name), Some(want), "{name}");
        }
        for bad in [
            "Changelog",
            "model.json",
            "2026-11-02",
            "2026-11-02T10.15Z",
            "x",
        ] {
            assert_eq!(folder_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn export_datetimes_parse_in_the_seen_formats() {
        let want = "2026-11-02T10:15:07Z".parse::<DateTime<Utc>>().unwrap();
        for text in [
            "2026-11-02T10:15:07Z",
            "2026-11-02T10:15:07.0000000Z",
            "2026-11-02T10:15:07.0000000+00:00",
            "2026-11-02T10:15:07",
            "11/02/2026 10:15:07 AM",
        ] {
            assert_eq!(parse_datetime(text), Some(want), "{text}");
        }
        assert_eq!(parse_datetime("yesterday"), None);
    }
}
