//! `synapse_link_csv`: the analytics lake as Synapse Link for Dataverse writes it in CSV, with
//! incremental update folders, as a target.
//!
//! Why: the lake is the slowest hop of an estate (folders every 5 minutes to a day) and the
//! least visible one. Each lookup brings the export's [`Cursor`] up to date — one read of
//! `Changelog/changelog.info` when nothing completed, the new folders' files when something
//! did — and answers from what complete folders held. A lookup never answers from an older
//! scan than its own, so "absent" always means "absent when this request was sent", which the
//! lag estimate relies on. Scans are serialised per target; they are cheap when nothing changed.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use prometheus::Gauge;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::{BuildContext, System, SystemKind, check_names, decode_as};
use crate::config::Issue;
use crate::connector::{ConnectorError, Lookup, Target};
use crate::gate::Gate;
use crate::lake::synapse::{Cursor, TableSpec};
use crate::lake::{LakeStore, LocalStore, Metered};
use crate::sentinel::{KEY_PREFIX, SentinelId};

/// How long found sentinels are remembered (longer than any sensible lake timeout).
const REMEMBER: Duration = Duration::from_secs(24 * 3600);
/// Folders that closed this long before start-up are skipped unread; covers clock offsets.
const START_MARGIN: Duration = Duration::from_secs(600);

/// Config of a `kind: synapse_link_csv` system.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynapseLinkCsvConfig {
    /// The export's container: `file:///lake/dataverse-contoso-unq1234` for a local copy.
    pub url: String,
    /// Table (entity) name as in `model.json`, e.g. `account`.
    pub table: String,
    /// Column holding the sentinel key, e.g. `name`.
    pub key_column: String,
    /// Column holding the payload, compared with what was written; presence only when absent.
    #[serde(default)]
    pub payload_column: Option<String>,
}

/// Registry entry: types and checks a `kind: synapse_link_csv` block.
///
/// # Errors
/// An [`Issue`] naming the offending key.
pub fn decode(key: &str, value: Value) -> Result<Box<dyn SystemKind>, Issue> {
    let c: SynapseLinkCsvConfig = decode_as(key, value)?;
    local_root(&c.url).map_err(|why| Issue::new(format!("{key}.url"), why))?;
    check_names(
        key,
        "a Dataverse logical name",
        &[
            ("table", &c.table),
            ("key_column", &c.key_column),
            ("payload_column", c.payload_column.as_deref().unwrap_or("x")),
        ],
    )?;
    Ok(Box::new(c))
}

/// The local folder of a `file://` URL.
fn local_root(url: &str) -> Result<std::path::PathBuf, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("\"{url}\" is not a URL ({e})"))?;
    match parsed.scheme() {
        "file" => parsed
            .to_file_path()
            .map_err(|()| format!("\"{url}\" is not a local folder URL such as file:///lake/c")),
        "abfs" | "abfss" | "az" | "azure" | "adl" | "https" | "http" => Err(format!(
            "\"{url}\": reading the lake from Azure storage is not supported yet; mount or copy \
             the container and use a file:// URL"
        )),
        other => Err(format!(
            "\"{url}\": unknown scheme {other}; use file:///path/to/container"
        )),
    }
}

impl SystemKind for SynapseLinkCsvConfig {
    fn kind(&self) -> &'static str {
        "synapse_link_csv"
    }

    fn can_write(&self) -> Result<(), String> {
        Err(
            "the lake is written by Synapse Link; write sentinels into the Dataverse table it \
             exports and probe this system as a target"
                .to_string(),
        )
    }

    fn describe(&self) -> String {
        format!(
            "{} table {} (key {}, payload {}), incremental update folders",
            self.url,
            self.table,
            self.key_column,
            self.payload_column.as_deref().unwrap_or("not compared"),
        )
    }

    fn build(&self, name: &str, cx: &BuildContext, gate: Arc<Gate>) -> Result<System, Issue> {
        let root =
            local_root(&self.url).map_err(|why| Issue::new(format!("systems.{name}.url"), why))?;
        let store = Metered::new(
            LocalStore::new(root),
            cx.metrics.lake_objects_listed.with_label_values(&[name]),
            cx.metrics.lake_bytes_read.with_label_values(&[name]),
        );
        let since = chrono::Utc::now()
            - chrono::Duration::from_std(START_MARGIN).unwrap_or(chrono::Duration::zero());
        let cursor = Cursor::new(
            TableSpec {
                table: self.table.clone(),
                key_column: self.key_column.clone(),
                payload_column: self.payload_column.clone(),
                key_prefix: format!("{KEY_PREFIX}-"),
            },
            since,
            REMEMBER,
        );
        let target = Arc::new(SynapseLinkCsv {
            store: Box::new(store),
            cursor: Mutex::new(cursor),
            last_folder: cx.metrics.lake_last_folder.with_label_values(&[name]),
        });
        Ok(System::target_only(name, self.kind(), gate, target))
    }
}

/// The connector: one table of one export.
pub struct SynapseLinkCsv {
    store: Box<dyn LakeStore>,
    cursor: Mutex<Cursor>,
    last_folder: Gauge,
}

impl SynapseLinkCsv {
    /// A target reading `store` with `cursor`; `last_folder` gets the newest complete folder.
    pub fn new(store: Box<dyn LakeStore>, cursor: Cursor, last_folder: Gauge) -> Self {
        SynapseLinkCsv {
            store,
            cursor: Mutex::new(cursor),
            last_folder,
        }
    }
}

#[async_trait]
impl Target for SynapseLinkCsv {
    async fn lookup(&self, id: &SentinelId) -> Result<Lookup, ConnectorError> {
        let mut cursor = self.cursor.lock().await;
        let scan = cursor.scan(self.store.as_ref()).await?;
        if let Some(t) = scan.newest_complete {
            self.last_folder.set(t.timestamp_millis() as f64 / 1000.0);
        }
        Ok(match cursor.found(id.key()) {
            Some(f) => Lookup::Present {
                payload: f.payload.clone(),
            },
            None => Lookup::Absent,
        })
    }

    /// Rows carry `SinkCreatedOn`, the export's own time of writing them.
    fn records_apply_time(&self) -> bool {
        true
    }

    async fn applied_at(&self, id: &SentinelId) -> Option<chrono::DateTime<chrono::Utc>> {
        self.cursor.lock().await.found(id.key())?.sink_at
    }
}
