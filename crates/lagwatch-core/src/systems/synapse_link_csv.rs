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
//! The system also has an inventory for reconciliation ([`CsvInventory`]): the table's rows as
//! the export's change log, read page by page through the same metered store.
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

use serde::Deserialize;
use serde_json::Value;

use super::{BuildContext, System, SystemKind, SystemSpec, check_names, decode_as, lake_access};
use crate::auth::AuthBlock;
use crate::config::Issue;
use crate::gate::Gate;
use crate::lake::inventory::{CsvInventory, CsvLayout};
use crate::lake::synapse::{Cursor, TableSpec};
use crate::lake::table::TableCursor;
use crate::lake::{LakeStore, LakeTarget};
use crate::sentinel::KEY_PREFIX;

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

/// Why the table layout runs no update canary.
const TABLE_VERSIONS: &str = "the table layout's reader reads what was appended to a partition file, and in in-place mode an update rewrites its row where it was already read, so a canary's newer versions may not show; use layout: incremental";

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

impl SystemSpec for SynapseLinkCsvConfig {
    fn kind(&self) -> &'static str {
        "synapse_link_csv"
    }

    fn observes_regressions(&self) -> Result<(), String> {
        Err(crate::lake::REGRESSIONS_UNREAD.to_string())
    }

    /// Incremental folders are each read once, whole: a canary's every row is seen, and a
    /// lookup answers its latest. The table layout's reader reads what was appended to a
    /// partition file, so a canary row rewritten in place (same length, before the point
    /// read) would not show.
    fn shows_versions(&self) -> Result<(), String> {
        match (self.layout, &self.payload_column) {
            (Layout::Table, _) => Err(TABLE_VERSIONS.to_string()),
            (Layout::Incremental, None) => {
                Err("it has no payload_column, so a canary's version cannot be read".to_string())
            }
            (Layout::Incremental, Some(_)) => Ok(()),
        }
    }

    fn keeps_versions(&self) -> Result<(), String> {
        self.shows_versions()
    }

    fn can_list(&self) -> Result<(), String> {
        Ok(())
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
}

impl SystemKind for SynapseLinkCsvConfig {
    fn build(&self, name: &str, cx: &BuildContext, gate: Arc<Gate>) -> Result<System, Issue> {
        // One metered store for probing and reconciliation: one HTTP system, one token cache.
        let store: Arc<dyn LakeStore> = Arc::from(lake_access::open(
            name,
            &self.url,
            self.auth.as_ref(),
            cx,
            &gate,
        )?);
        let spec = TableSpec {
            table: self.table.clone(),
            key_column: self.key_column.clone(),
            payload_column: self.payload_column.clone(),
            key_prefix: format!("{KEY_PREFIX}-"),
        };
        let newest = cx.metrics.lake_last_folder.with_label_values(&[name]);
        let shared = Box::new(store.clone());
        let target = Arc::new(match self.layout {
            Layout::Incremental => {
                let since = lake_access::start_since();
                LakeTarget::new(
                    shared,
                    Cursor::new(spec, since, lake_access::REMEMBER),
                    newest,
                )
            }
            Layout::Table => LakeTarget::new(
                shared,
                TableCursor::new(spec, lake_access::REMEMBER),
                newest,
            ),
        });
        let layout = match self.layout {
            Layout::Incremental => CsvLayout::Incremental,
            Layout::Table => CsvLayout::Table,
        };
        let inventory = Arc::new(CsvInventory::new(store, self.table.clone(), layout));
        Ok(System::target_only(name, self.kind(), gate, target).with_inventory(inventory))
    }
}

/// The connector: one table of one export, read with a [`Cursor`] (incremental folders) or a
/// [`TableCursor`] (table layout).
pub type SynapseLinkCsv = LakeTarget;

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
