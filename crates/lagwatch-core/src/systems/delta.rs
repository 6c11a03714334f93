//! `delta`: a Delta Lake table as a target — Link to Fabric's tables in OneLake, Synapse
//! Link's Delta conversion in ADLS Gen2, or any Delta table a pipeline fills from Dataverse.
//!
//! Why: Link to Fabric refreshes its tables "up to 60 minutes" after a change (fact sheet
//! §5.6), and nothing in Dataverse shows how far behind a table is. Each lookup brings the
//! table's [`DeltaCursor`] up to date from the transaction log — one `GET` of the next commit
//! (and of `_last_checkpoint`) when nothing changed, the new commits and their new data files
//! when something did — and answers from what it has read. A lookup never answers from an
//! older scan than its own, so "absent" means "absent when this request was sent".
//!
//! The system also has an inventory for reconciliation ([`DeltaInventory`]): the rows of the
//! snapshot's live data files, read file by file through the same metered store.
//!
//! `url` is the table's root folder (the one holding `_delta_log/`), in the forms of
//! [`super::lake_access`]: `file:///…`, `abfss://<container>@<account>.dfs.core.windows.net/
//! <path>`, `https://<account>.blob|dfs.core.windows.net/<container>/<path>`, OneLake
//! `https://onelake.dfs.fabric.microsoft.com/<workspace>/<lakehouse>.Lakehouse/Tables/<table>`.
//!
//! ```yaml
//! fabric:
//!   kind: delta
//!   url: https://onelake.dfs.fabric.microsoft.com/Contoso/Dataverse.Lakehouse/Tables/account
//!   key_column: name
//!   auth: { method: workload_identity }
//! ```

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::{BuildContext, System, SystemKind, SystemSpec, check_names, decode_as, lake_access};
use crate::auth::AuthBlock;
use crate::config::Issue;
use crate::gate::Gate;
use crate::lake::delta::{DeltaCursor, DeltaSpec};
use crate::lake::delta_inventory::DeltaInventory;
use crate::lake::{LakeStore, LakeTarget};
use crate::sentinel::KEY_PREFIX;

/// Config of a `kind: delta` system.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaConfig {
    /// The table's root folder, the one holding `_delta_log/`.
    pub url: String,
    /// Column holding the sentinel key, e.g. `name`.
    pub key_column: String,
    /// Column holding the payload, compared with what was written; presence only when absent.
    #[serde(default)]
    pub payload_column: Option<String>,
    /// How to authenticate to Azure Storage; required for storage URLs, absent for `file://`.
    #[serde(default)]
    pub auth: Option<AuthBlock>,
}

/// Registry entry: types and checks a `kind: delta` block.
///
/// # Errors
/// An [`Issue`] naming the offending key.
pub fn decode(key: &str, value: Value) -> Result<Box<dyn SystemKind>, Issue> {
    let mut c: DeltaConfig = decode_as(key, value)?;
    lake_access::check(key, &c.url, &mut c.auth)?;
    check_names(
        key,
        "a column name",
        &[
            ("key_column", &c.key_column),
            ("payload_column", c.payload_column.as_deref().unwrap_or("x")),
        ],
    )?;
    Ok(Box::new(c))
}

impl SystemSpec for DeltaConfig {
    fn kind(&self) -> &'static str {
        "delta"
    }

    fn observes_regressions(&self) -> Result<(), String> {
        Err(crate::lake::REGRESSIONS_UNREAD.to_string())
    }

    fn can_list(&self) -> Result<(), String> {
        Ok(())
    }
    fn can_write(&self) -> Result<(), String> {
        Err(
            "a Delta table is written by its pipeline (Link to Fabric, Synapse Link); write \
             sentinels into the Dataverse table it copies and probe this system as a target"
                .to_string(),
        )
    }

    fn describe(&self) -> String {
        format!(
            "{} Delta table (key {}, payload {}){}",
            self.url,
            self.key_column,
            self.payload_column.as_deref().unwrap_or("not compared"),
            self.auth
                .as_ref()
                .map_or(String::new(), |a| format!(", auth {}", a.method())),
        )
    }
}

impl SystemKind for DeltaConfig {
    fn build(&self, name: &str, cx: &BuildContext, gate: Arc<Gate>) -> Result<System, Issue> {
        // One metered store for probing and reconciliation: one HTTP system, one token cache.
        let store: Arc<dyn LakeStore> = Arc::from(lake_access::open(
            name,
            &self.url,
            self.auth.as_ref(),
            cx,
            &gate,
        )?);
        let since = lake_access::start_since();
        let cursor = DeltaCursor::new(
            DeltaSpec {
                key_column: self.key_column.clone(),
                payload_column: self.payload_column.clone(),
                key_prefix: format!("{KEY_PREFIX}-"),
            },
            since,
            lake_access::REMEMBER,
        );
        let target = Arc::new(DeltaTarget::new(
            Box::new(store.clone()),
            cursor,
            cx.metrics.lake_last_folder.with_label_values(&[name]),
        ));
        let inventory = Arc::new(DeltaInventory::new(store, self.url.clone()));
        Ok(System::target_only(name, self.kind(), gate, target).with_inventory(inventory))
    }
}

/// The connector: one Delta table, read with a [`DeltaCursor`].
pub type DeltaTarget = LakeTarget;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn issue(v: Value) -> String {
        match decode("systems.fabric", v) {
            Err(i) => format!("{}: {}", i.key, i.reason),
            Ok(k) => panic!("accepted {k:?}"),
        }
    }

    #[test]
    fn a_delta_table_takes_the_lake_url_and_auth_rules() {
        let onelake = "https://onelake.dfs.fabric.microsoft.com/ws/L.Lakehouse/Tables/account";
        let ok = decode(
            "systems.fabric",
            json!({"url": onelake, "key_column": "name", "auth": {"method": "managed_identity"}}),
        )
        .expect("valid");
        assert_eq!(
            ok.describe(),
            format!(
                "{onelake} Delta table (key name, payload not compared), auth managed_identity"
            )
        );
        assert_eq!(
            issue(json!({"url": onelake, "key_column": "name", "auth": {"method": "none"}})),
            "systems.fabric.auth.method: OneLake takes Entra ID only (client_secret, \
             client_certificate, workload_identity, managed_identity), not none"
        );
        assert!(
            issue(json!({"url": onelake, "key_column": "name"}))
                .starts_with("systems.fabric.auth: required for a lake in Azure Storage")
        );
        assert!(
            issue(json!({"url": "file:///lake/t", "key_column": "name", "table": "x"}))
                .contains("table")
        );
        assert!(
            decode(
                "systems.fabric",
                json!({"url": "file:///lake/t", "key_column": "name"})
            )
            .is_ok()
        );
    }
}
