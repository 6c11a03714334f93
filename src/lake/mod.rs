//! Reading an analytics lake (Synapse Link for Dataverse, Link to Fabric) without re-reading it.
//!
//! Why a module of its own: lake targets do not answer "is this key there?" in one request the
//! way an API does. They are folders of files that only grow (or get compacted), so a lookup
//! has to scan what is new since the last scan and remember what it found. This module holds
//! the parts every lake kind shares:
//!
//! - [`LakeStore`]: the two storage calls a scan needs (list one folder, read one object),
//!   implemented for a local folder ([`LocalStore`], `file://`) and metered by [`Metered`] so
//!   `lagwatch_lake_objects_listed_total` and `lagwatch_lake_bytes_read_total` count exactly
//!   what each poll cost;
//! - [`cdm`]: the CDM `model.json` that gives headerless CSV files their column order;
//! - [`synapse`]: the incremental-update-folder layout and its cursor;
//! - [`blob`]: Azure Blob Storage (also ADLS Gen2, OneLake, Azurite) over the Blob REST API.
//!
//! Storage is reached through this small trait instead of the `object_store` crate: the scans
//! need two calls, and the HTTP stores can then go through lagwatch's own HTTP layer (gate,
//! budget, request metrics, Entra tokens) instead of a second HTTP client stack.

pub mod blob;
pub mod cdm;
pub mod delta;
pub mod synapse;

use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use prometheus::IntCounter;

use crate::connector::ConnectorError;

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
            LakeError::Store { .. } => ConnectorError::Transport(e.to_string()),
            // The read worked; what came back is not a documented layout.
            LakeError::Malformed { .. } => ConnectorError::BadResponse {
                status: 200,
                detail: e.to_string(),
            },
            LakeError::Remote { path, error } => match error {
                ConnectorError::Auth(m) => ConnectorError::Auth(format!("{path}: {m}")),
                ConnectorError::Transport(m) => ConnectorError::Transport(format!("{path}: {m}")),
                ConnectorError::Unavailable { status, detail } => ConnectorError::Unavailable {
                    status,
                    detail: format!("{path}: {detail}"),
                },
                ConnectorError::BadResponse { status, detail } => ConnectorError::BadResponse {
                    status,
                    detail: format!("{path}: {detail}"),
                },
                e @ (ConnectorError::Throttled { .. } | ConnectorError::Timeout) => e,
            },
        }
    }
}

/// One file in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Name within the listed folder (no `/`).
    pub name: String,
    pub size: u64,
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
                listing.files.push(FileEntry {
                    name,
                    size: meta.len(),
                });
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_local_store_lists_one_level_and_stays_inside_its_root() {
        let dir = std::env::temp_dir().join(format!("lagwatch-lake-{}", rand::random::<u64>()));
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::fs::write(dir.join("a/x.csv"), "1,2\n").unwrap();
        let store = LocalStore::new(&dir);
        let l = store.list("a").await.unwrap();
        assert_eq!(l.dirs, ["b"]);
        assert_eq!(
            l.files,
            [FileEntry {
                name: "x.csv".into(),
                size: 4
            }]
        );
        assert_eq!(store.list("missing").await.unwrap(), Listing::default());
        assert_eq!(store.get("a/x.csv").await.unwrap().unwrap(), b"1,2\n");
        assert_eq!(store.get("a/none.csv").await.unwrap(), None);
        assert!(store.get("../etc/passwd").await.is_err());
        assert!(store.get("/etc/passwd").await.is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
