//! Remembered discrepancies on disk, so persistence survives restarts and CLI runs.
//!
//! One JSON file per entry, `<state_dir>/reconcile/<source>/<target>/<name>.json`, replaced
//! atomically (written beside it, synced, renamed), so a crash mid-write leaves the previous
//! state. A file that cannot be read is reported and treated as empty (every key starts as
//! transient again) rather than stopping reconciliation.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::judge::State;

/// Format version written into every file.
const FORMAT: u32 = 1;

#[derive(serde::Serialize, serde::Deserialize)]
struct File {
    format: u32,
    #[serde(flatten)]
    state: State,
}

/// Where one entry's state lives (`None`: in memory only).
#[derive(Debug, Clone)]
pub struct Store {
    path: Option<PathBuf>,
}

/// Why state could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a lagwatch reconciliation state file: {reason}")]
    Format { path: String, reason: String },
}

impl Store {
    pub fn new(state_dir: Option<&Path>, source: &str, target: &str, name: &str) -> Store {
        Store {
            path: state_dir.map(|d| {
                d.join("reconcile")
                    .join(source)
                    .join(target)
                    .join(format!("{name}.json"))
            }),
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The saved state; empty when there is none yet.
    ///
    /// # Errors
    /// [`StoreError`] when the file exists but cannot be read or parsed.
    pub fn load(&self) -> Result<State, StoreError> {
        let Some(path) = &self.path else {
            return Ok(State::default());
        };
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(source) => {
                return Err(StoreError::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        let file: File = serde_json::from_slice(&text).map_err(|e| StoreError::Format {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        if file.format != FORMAT {
            return Err(StoreError::Format {
                path: path.display().to_string(),
                reason: format!("format {} (this lagwatch writes {FORMAT})", file.format),
            });
        }
        Ok(file.state)
    }

    /// Replaces the saved state atomically.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the directory or file cannot be written.
    pub fn save(&self, state: &State) -> Result<(), StoreError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let io = |source| StoreError::Io {
            path: path.display().to_string(),
            source,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        let body = serde_json::to_vec(&File {
            format: FORMAT,
            state: state.clone(),
        })
        .map_err(|e| io(std::io::Error::other(e)))?;
        tmp.write_all(&body).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::diff::Kind;
    use crate::reconcile::judge::Entry;

    #[test]
    fn state_survives_a_save_and_load_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::new(Some(dir.path()), "crm", "fno", "accounts");
        assert_eq!(store.load().expect("empty"), State::default());
        let mut state = State::default();
        state.entries.insert(
            "k".into(),
            Entry {
                kind: Kind::Missing,
                judged: true,
                runs: 2,
                first_seen: chrono::Utc::now(),
                source_version: Some("7".into()),
                replica_version: None,
                source_changed: None,
            },
        );
        store.save(&state).expect("save");
        assert_eq!(store.load().expect("load"), state);
        let path = store.path().expect("path").to_path_buf();
        assert!(path.ends_with("reconcile/crm/fno/accounts.json"));
        std::fs::write(&path, b"{not json").expect("write");
        let e = store.load().expect_err("garbage");
        assert!(e.to_string().contains("accounts.json"), "{e}");
        assert!(Store::new(None, "a", "b", "c").save(&state).is_ok());
    }
}
