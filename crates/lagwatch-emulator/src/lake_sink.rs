//! Where the emulated lake's files go: a small storage trait and its local-directory
//! implementation.
//!
//! The lake writer ([`super::lake`]) needs four storage calls: create a folder, write a whole
//! file, append to a file, rename a file. [`LocalDirSink`] does them with `tokio::fs` under a
//! root directory; [`super::BlobSink`] does them against Azure Blob Storage or Azurite (folders
//! implicit, a whole-file write being one atomic put, appends as append blobs).
//!
//! Paths are relative to the sink's root, `/`-separated, without a leading `/`; the first
//! segment is the container (`dataverse-contoso-unq1234/Changelog/changelog.info`).

use std::io;
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use tokio::io::AsyncWriteExt as _;

/// The storage calls the lake writer makes. A reader of the lake must never see a
/// half-written `model.json` or `changelog.info`: the writer writes those with
/// [`write_atomic`] (write a temporary name, then rename over the real one).
#[async_trait]
pub trait LakeSink: Send + Sync + 'static {
    /// Creates a folder and its parents; an existing folder is fine.
    async fn create_dir(&self, path: &str) -> io::Result<()>;
    /// Writes a whole file, replacing any previous content.
    async fn write(&self, path: &str, bytes: &[u8]) -> io::Result<()>;
    /// Appends to a file, creating it if needed.
    async fn append(&self, path: &str, bytes: &[u8]) -> io::Result<()>;
    /// Renames a file, replacing the target if it exists.
    async fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Deletes a file; an absent file is fine (retention and compaction delete what they
    /// replaced, and may be retried).
    async fn delete(&self, path: &str) -> io::Result<()>;
    /// Writes `path` so that readers see either the old content or the new, never a part.
    /// The default writes a temporary name and renames it; a store whose whole-object write
    /// is atomic already (a blob put) overrides it with one write.
    async fn write_atomic(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        let tmp = temp_name(path);
        self.write(&tmp, bytes).await?;
        self.rename(&tmp, path).await
    }
    /// The URL of a path, as `model.json` partitions name their files.
    fn url(&self, path: &str) -> String;
}

/// The temporary name [`write_atomic`] writes `path` under first: a dot file beside it
/// (`Changelog/.changelog.info.tmp`), so a listing for `*.csv` or timestamped folders never
/// matches it.
pub fn temp_name(path: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/.{name}.tmp"),
        None => format!(".{path}.tmp"),
    }
}

/// Writes `path` so that readers see either the old content or the new, never a part.
///
/// # Errors
/// The sink's I/O errors.
pub async fn write_atomic(sink: &dyn LakeSink, path: &str, bytes: &[u8]) -> io::Result<()> {
    sink.write_atomic(path, bytes).await
}

/// A directory on the local file system (`lagwatch emulate --lake-dir`).
#[derive(Debug, Clone)]
pub struct LocalDirSink {
    root: PathBuf,
}

impl LocalDirSink {
    /// A sink writing under `root` (made absolute against the current directory; created on
    /// the first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let root = std::path::absolute(&root).unwrap_or(root);
        LocalDirSink { root }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file-system path of a sink path; `..`, absolute and empty segments are refused,
    /// so nothing is ever written outside the root.
    fn resolve(&self, path: &str) -> io::Result<PathBuf> {
        let rel = Path::new(path);
        let clean = !path.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
        if !clean {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not a relative lake path: {path:?}"),
            ));
        }
        Ok(self.root.join(rel))
    }
}

#[async_trait]
impl LakeSink for LocalDirSink {
    async fn create_dir(&self, path: &str) -> io::Result<()> {
        tokio::fs::create_dir_all(self.resolve(path)?).await
    }

    async fn write(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        tokio::fs::write(self.resolve(path)?, bytes).await
    }

    async fn append(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.resolve(path)?)
            .await?;
        f.write_all(bytes).await?;
        f.flush().await
    }

    async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        tokio::fs::rename(self.resolve(from)?, self.resolve(to)?).await
    }

    async fn delete(&self, path: &str) -> io::Result<()> {
        match tokio::fs::remove_file(self.resolve(path)?).await {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    fn url(&self, path: &str) -> String {
        let full = self.root.join(path);
        url::Url::from_file_path(&full)
            .map(String::from)
            .unwrap_or_else(|()| format!("file://{}", full.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("lagwatch-sink-{tag}-{}", uuid::Uuid::now_v7()))
    }

    #[test]
    fn temp_names_are_hidden_beside_the_file() {
        assert_eq!(
            temp_name("c/Changelog/changelog.info"),
            "c/Changelog/.changelog.info.tmp"
        );
        assert_eq!(temp_name("model.json"), ".model.json.tmp");
    }

    #[tokio::test]
    async fn local_sink_writes_appends_renames_and_stays_inside_its_root() {
        let root = scratch("local");
        let sink = LocalDirSink::new(&root);
        sink.create_dir("c/f/account").await.unwrap();
        sink.append("c/f/account/2026.csv", b"a\n").await.unwrap();
        sink.append("c/f/account/2026.csv", b"b\n").await.unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("c/f/account/2026.csv")).unwrap(),
            "a\nb\n"
        );
        write_atomic(&sink, "c/model.json", b"{}").await.unwrap();
        write_atomic(&sink, "c/model.json", b"{\"x\":1}")
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("c/model.json")).unwrap(),
            "{\"x\":1}"
        );
        assert!(
            !root.join("c/.model.json.tmp").exists(),
            "temp file renamed"
        );
        sink.delete("c/model.json").await.unwrap();
        assert!(!root.join("c/model.json").exists());
        sink.delete("c/model.json")
            .await
            .expect("deleting twice is fine");
        for bad in ["", "../x", "/etc/x", "c/../../x"] {
            let e = sink.write(bad, b"x").await.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
        assert!(sink.url("c/f/account/2026.csv").starts_with("file:///"));
        assert!(
            sink.url("c/f/account/2026.csv")
                .ends_with("/c/f/account/2026.csv")
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
