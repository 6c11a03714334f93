//! `synapse_link_csv`: the analytics lake as Synapse Link for Dataverse writes it in CSV, as a
//! target, in either of its layouts (`layout:`):
//!
//! - `incremental` (default): incremental update folders. Each lookup brings the export's
//!   [`Cursor`] up to date — one read of `Changelog/changelog.info` when nothing completed, the
//!   new folders' files when something did — and answers from what complete folders held.
//! - `table`: one CSV file per table partition (`account/2026.csv`), appended to and, in
//!   in-place update mode, rewritten where it is. Each lookup brings the [`TableCursor`] up to
//!   date — a look at `model.json`, one listing of the table's folder, and for each partition
//!   file that changed a range read of what was appended behind the bytes already read (the
//!   whole file only when it was rewritten before that point).
//!
//! Why: the lake is the slowest hop of an estate (folders every 5 minutes to a day) and the
//! least visible one. A lookup never answers from an older scan than its own, so "absent"
//! always means "absent when this request was sent", which the lag estimate relies on. Scans
//! are serialised per target; they are cheap when nothing changed.
//!
//! Where the lake is read from, by `url`:
//!
//! - `file:///mnt/lake/<container>`: a local (mounted or copied) folder, no `auth`;
//! - Azure Storage, through the Blob REST API ([`crate::lake::blob`]):
//!   `https://<account>.blob.core.windows.net/<container>[/<folder>]`, the same with `.dfs.`,
//!   `abfss://<container>@<account>.dfs.core.windows.net/[<folder>]`, OneLake
//!   (`https://onelake.dfs.fabric.microsoft.com/<workspace>/<item>/<folder>`) and emulators
//!   (`http://127.0.0.1:10000/devstoreaccount1/<container>`). `auth` is required: an Entra
//!   method (token scope `https://storage.azure.com/.default`, role Storage Blob Data Reader),
//!   `shared_key` (the account key), `sas` (a token with read and list permissions) or `none`
//!   (anonymous read access). OneLake takes Entra only.
//!
//! ```yaml
//! lake:
//!   kind: synapse_link_csv
//!   url: abfss://dataverse-contoso-unq1234@contosolake.dfs.core.windows.net/
//!   table: account
//!   key_column: name
//!   auth: { method: managed_identity }
//!   layout: table          # default: incremental
//! ```

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use prometheus::Gauge;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::{BuildContext, System, SystemKind, check_names, decode_as, lake_access};
use crate::auth::AuthBlock;
use crate::config::Issue;
use crate::connector::{ConnectorError, Lookup, Target};
use crate::gate::Gate;
use crate::lake::synapse::{Cursor, Found, TableSpec};
use crate::lake::table::TableCursor;
use crate::lake::{LakeError, LakeStore};
use crate::sentinel::{KEY_PREFIX, SentinelId};

/// How long found sentinels are remembered (longer than any sensible lake timeout).
const REMEMBER: Duration = Duration::from_secs(24 * 3600);
/// Folders that closed this long before start-up are skipped unread; covers clock offsets.
const START_MARGIN: Duration = Duration::from_secs(600);

/// Config of a `kind: synapse_link_csv` system.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynapseLinkCsvConfig {
    /// The export's container (or the folder in it that holds the export):
    /// `file:///lake/dataverse-contoso-unq1234` for a local copy, else an Azure Storage URL.
    pub url: String,
    /// Table (entity) name as in `model.json`, e.g. `account`.
    pub table: String,
    /// Column holding the sentinel key, e.g. `name`.
    pub key_column: String,
    /// Column holding the payload, compared with what was written; presence only when absent.
    #[serde(default)]
    pub payload_column: Option<String>,
    /// How to authenticate to Azure Storage; required for storage URLs, absent for `file://`.
    #[serde(default)]
    pub auth: Option<AuthBlock>,
    /// How the export lays out its files: `incremental` (incremental update folders, the
    /// default) or `table` (one CSV file per table partition, updated in place or append-only).
    #[serde(default)]
    pub layout: Layout,
}

/// The folder structure of a Synapse Link CSV export (fact sheet §5.2, §5.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Timestamped incremental update folders and `Changelog/changelog.info`.
    #[default]
    Incremental,
    /// `model.json` and `<table>/<partition>.csv` at the container's root.
    Table,
}

/// Registry entry: types and checks a `kind: synapse_link_csv` block.
///
/// # Errors
/// An [`Issue`] naming the offending key.
pub fn decode(key: &str, value: Value) -> Result<Box<dyn SystemKind>, Issue> {
    let mut c: SynapseLinkCsvConfig = decode_as(key, value)?;
    lake_access::check(key, &c.url, &mut c.auth)?;
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
            "{} table {} (key {}, payload {}), {}{}",
            self.url,
            self.table,
            self.key_column,
            self.payload_column.as_deref().unwrap_or("not compared"),
            match self.layout {
                Layout::Incremental => "incremental update folders",
                Layout::Table => "table layout (partition files read from where they grew)",
            },
            self.auth
                .as_ref()
                .map_or(String::new(), |a| format!(", auth {}", a.method())),
        )
    }

    fn build(&self, name: &str, cx: &BuildContext, gate: Arc<Gate>) -> Result<System, Issue> {
        let store = lake_access::open(name, &self.url, self.auth.as_ref(), cx, &gate)?;
        let spec = TableSpec {
            table: self.table.clone(),
            key_column: self.key_column.clone(),
            payload_column: self.payload_column.clone(),
            key_prefix: format!("{KEY_PREFIX}-"),
        };
        let reader = match self.layout {
            Layout::Incremental => {
                let since = chrono::Utc::now()
                    - chrono::Duration::from_std(START_MARGIN).unwrap_or(chrono::Duration::zero());
                Reader::from(Cursor::new(spec, since, REMEMBER))
            }
            Layout::Table => Reader::from(TableCursor::new(spec, REMEMBER)),
        };
        let target = Arc::new(SynapseLinkCsv::new(
            store,
            reader,
            cx.metrics.lake_last_folder.with_label_values(&[name]),
        ));
        Ok(System::target_only(name, self.kind(), gate, target))
    }
}

/// The cursor of one layout.
#[derive(Debug)]
pub enum Reader {
    Incremental(Cursor),
    Table(TableCursor),
}

impl From<Cursor> for Reader {
    fn from(c: Cursor) -> Self {
        Reader::Incremental(c)
    }
}

impl From<TableCursor> for Reader {
    fn from(c: TableCursor) -> Self {
        Reader::Table(c)
    }
}

impl Reader {
    /// Brings the cursor up to date; the time `last_folder` shows: the newest complete
    /// folder's (incremental), the newest partition file's last-modified time (table).
    async fn scan(
        &mut self,
        store: &dyn LakeStore,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, LakeError> {
        Ok(match self {
            Reader::Incremental(c) => c.scan(store).await?.newest_complete,
            Reader::Table(c) => c.scan(store).await?.newest_file,
        })
    }

    fn found(&self, key: &str) -> Option<&Found> {
        match self {
            Reader::Incremental(c) => c.found(key),
            Reader::Table(c) => c.found(key),
        }
    }
}

/// The connector: one table of one export.
pub struct SynapseLinkCsv {
    store: Box<dyn LakeStore>,
    cursor: Mutex<Reader>,
    last_folder: Gauge,
}

impl SynapseLinkCsv {
    /// A target reading `store` with `cursor` (a [`Cursor`] or a [`TableCursor`]);
    /// `last_folder` gets the newest complete folder, or the newest partition file's time.
    pub fn new(store: Box<dyn LakeStore>, cursor: impl Into<Reader>, last_folder: Gauge) -> Self {
        SynapseLinkCsv {
            store,
            cursor: Mutex::new(cursor.into()),
            last_folder,
        }
    }
}

#[async_trait]
impl Target for SynapseLinkCsv {
    async fn lookup(&self, id: &SentinelId) -> Result<Lookup, ConnectorError> {
        let mut cursor = self.cursor.lock().await;
        if let Some(t) = cursor.scan(self.store.as_ref()).await? {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn issue(v: Value) -> String {
        match decode("systems.lake", v) {
            Err(i) => format!("{}: {}", i.key, i.reason),
            Ok(k) => panic!("accepted {k:?}"),
        }
    }

    fn lake(url: &str, auth: Option<Value>) -> Value {
        let mut v = json!({"url": url, "table": "account", "key_column": "name"});
        if let Some(a) = auth {
            v["auth"] = a;
        }
        v
    }

    #[test]
    fn storage_urls_need_auth_and_local_folders_take_none() {
        let url = "abfss://dataverse-contoso@contosolake.dfs.core.windows.net/";
        assert!(
            issue(lake(url, None))
                .starts_with("systems.lake.auth: required for a lake in Azure Storage")
        );
        let ok = decode(
            "systems.lake",
            lake(url, Some(json!({"method": "managed_identity"}))),
        )
        .expect("managed identity");
        assert!(
            ok.describe().ends_with(", auth managed_identity"),
            "{}",
            ok.describe()
        );
        assert!(
            issue(lake("file:///lake/c", Some(json!({"method": "none"}))))
                .starts_with("systems.lake.auth: a file:// lake")
        );
        assert!(decode("systems.lake", lake("file:///lake/c", None)).is_ok());
        assert!(
            decode(
                "systems.lake",
                lake(
                    "http://127.0.0.1:10000/devstoreaccount1/lake",
                    Some(json!({"method": "none"}))
                )
            )
            .is_ok()
        );
    }

    #[test]
    fn the_layout_is_incremental_unless_table_is_asked_for() {
        let d = |v: Value| decode("systems.lake", v).expect("decodes").describe();
        assert!(d(lake("file:///lake/c", None)).contains("incremental update folders"));
        let mut v = lake("file:///lake/c", None);
        v["layout"] = json!("table");
        assert!(d(v).contains("table layout"));
        let mut v = lake("file:///lake/c", None);
        v["layout"] = json!("tables");
        assert_eq!(
            issue(v),
            "systems.lake.layout: unknown value \"tables\"; the values allowed here are: \
             incremental, table"
        );
    }

    #[test]
    fn onelake_takes_entra_only_and_bad_urls_name_the_forms() {
        let onelake = "https://onelake.dfs.fabric.microsoft.com/ws/Lake.Lakehouse/Files/dv";
        assert_eq!(
            issue(lake(onelake, Some(json!({"method": "none"})))),
            "systems.lake.auth.method: OneLake takes Entra ID only (client_secret, \
             client_certificate, workload_identity, managed_identity), not none"
        );
        assert!(
            issue(lake(onelake, Some(json!({"method": "basic"}))))
                .starts_with("systems.lake.auth.method: this kind does not take method basic")
        );
        let e = issue(lake("az://c/x", None));
        assert!(
            e.starts_with("systems.lake.url: \"az://c/x\": write the lake's URL"),
            "{e}"
        );
        let e = issue(lake(
            "https://a.blob.core.windows.net/c?sv=1&sig=SECRET",
            None,
        ));
        assert!(
            e.starts_with("systems.lake.url: a storage URL takes no query")
                && !e.contains("SECRET"),
            "{e}"
        );
    }
}
