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

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};

use super::{LakeError, LakeStore, cdm};

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
        })
    }

    /// The sentinel in `record`, if its key starts with `prefix` (other rows are not kept, so
    /// memory follows lagwatch's own sentinels, not the table).
    pub(crate) fn sentinel(
        &self,
        record: &csv::StringRecord,
        prefix: &str,
        observed: DateTime<Utc>,
    ) -> Option<(String, Found)> {
        let key = record.get(self.key_at).unwrap_or_default();
        if !key.starts_with(prefix) {
            return None;
        }
        Some((
            key.to_string(),
            Found {
                payload: self
                    .payload_at
                    .and_then(|i| record.get(i))
                    .map(str::to_string),
                sink_at: self
                    .sink_at
                    .and_then(|i| record.get(i))
                    .and_then(parse_datetime),
                observed,
            },
        ))
    }
}

/// Forgets found sentinels observed more than `keep` before `newest`, then the oldest beyond
/// [`MAX_FOUND`]: the bound on a cursor's memory.
pub(crate) fn forget_old(
    found: &mut HashMap<String, Found>,
    newest: Option<DateTime<Utc>>,
    keep: Duration,
) {
    let keep = chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
    if let Some(newest) = newest {
        found.retain(|_, f| newest.signed_duration_since(f.observed) <= keep);
    }
    if found.len() > MAX_FOUND {
        let mut by_age: Vec<(DateTime<Utc>, String)> =
            found.iter().map(|(k, f)| (f.observed, k.clone())).collect();
        by_age.sort();
        for (_, k) in by_age.into_iter().take(found.len() - MAX_FOUND) {
            found.remove(&k);
        }
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
    found: HashMap<String, Found>,
    keep: Duration,
    newest_complete: Option<DateTime<Utc>>,
}

/// Most sentinel rows remembered at once; the oldest go first.
pub(crate) const MAX_FOUND: usize = 100_000;

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
            found: HashMap::new(),
            keep,
            newest_complete: None,
        }
    }

    /// The sentinel with key `key`, if a complete folder held it.
    pub fn found(&self, key: &str) -> Option<&Found> {
        self.found.get(key)
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
                for (key, found) in rows {
                    self.found.insert(key, found);
                }
            }
            self.done.insert(name.clone());
        }
        if let Some(&i) = complete.last() {
            let t = folders[i].0;
            self.newest_complete = Some(self.newest_complete.map_or(t, |n| n.max(t)));
        }
        scan.newest_complete = self.newest_complete;
        self.last_open = Some(open);
        forget_old(&mut self.found, self.newest_complete, self.keep);
        Ok(scan)
    }

    /// The sentinel rows of one complete folder.
    async fn read_folder(
        &self,
        store: &dyn LakeStore,
        folder: &str,
        time: DateTime<Utc>,
    ) -> Result<Vec<(String, Found)>, LakeError> {
        let dir = format!("{folder}/{}", self.spec.table);
        let files = store.list(&dir).await?.files;
        let csvs: Vec<_> = files.iter().filter(|f| f.name.ends_with(".csv")).collect();
        if csvs.is_empty() {
            return Ok(Vec::new());
        }
        let model_path = format!("{folder}/model.json");
        let Some(model) = store.get(&model_path).await? else {
            return Err(LakeError::Malformed {
                path: model_path,
                reason: "missing, so the CSV files' columns are unknown".to_string(),
            });
        };
        let columns = Columns::of(&model, &model_path, &self.spec)?;
        let mut out = Vec::new();
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
                out.extend(columns.sentinel(&record, &self.spec.key_prefix, time));
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
