//! `dataverse_search`: Dataverse search's own status, the table's entry (fact sheet §1.1,
//! §1.3). One request, the documented status function:
//!
//! ```http
//! GET {base}/searchstatus            (base = https://<org>.crm.dynamics.com/api/data/v9.2)
//! → 200 {"response":"{\"value\":{\"status\":\"provisioned\",\"entitystatusresults\":[{\"entitylogicalname\":\"account\",\"lastdatasynctimestamp\":\"73630169!09/12/2022 14:26:14\",\"entitystatus\":\"EntitySyncComplete\",…}],…}}"}
//! ```
//!
//! Why this surface: Microsoft tells makers to read `lastdatasynctimestamp` to learn when a
//! table's last sync completed, and it carries a version as well as a time, so a sentinel
//! whose `versionnumber` is below the watermark and still not found is the strongest evidence
//! there is. The answer is JSON inside a string, as `searchquery`'s (read with the same
//! helper); the inner object is read in its documented `value` wrapper or, should a service
//! version leave the wrapper out, bare when it has the status's own fields; anything else is a
//! bad response, never a guess.
//!
//! | answer | claim |
//! |---|---|
//! | `status` notprovisioned, provisioninginprogress | not running |
//! | `status` provisioned, no entry for the table | not running (the table is not indexed) |
//! | the table's `entitystatus` EntitySyncComplete | healthy |
//! | any other `status` or `entitystatus` | unknown |
//!
//! `lastdatasynctimestamp` (`"<version>!MM/dd/yyyy HH:mm:ss"`) gives the watermark and
//! `last_sync`; the time has no zone designator and is taken as UTC (unverified, fact sheet
//! §1.3). Words are compared without regard to case.

use async_trait::async_trait;
use reqwest::Client;
use serde_json::{Map, Value};

use super::{Access, Field, claim, get, text, version_at};
use crate::connector::ConnectorError;
use crate::connector::status::{Claim, ClaimState, StatusReader};
use crate::net::{HttpSystem, excerpt};
use crate::systems::wire::{odata, odata_error, search_error, string_wrapped};

/// What reading the search status needs. The fact sheet has no documented privilege for the
/// function (❓); the application user's ordinary Dataverse access is what is known to work.
pub const ACCESS: Access = Access {
    grant: "the application user a security role that may call the searchstatus function \
            (Dataverse documents no specific privilege for it)",
    missing: "is Dataverse search turned on in this environment, and the Web API version one \
              that has searchstatus?",
};

/// The reader: one table's entry in one environment's search status.
pub struct DataverseSearchStatus {
    http: HttpSystem,
    base: String,
    table: String,
}

impl DataverseSearchStatus {
    /// `base` is the environment's Web API base (no trailing slash), `table` the logical name.
    pub fn new(http: HttpSystem, base: String, table: String) -> Self {
        DataverseSearchStatus { http, base, table }
    }
}

/// The status object inside the answer: `value` of the inner JSON, or the inner JSON itself
/// when it has no `value` but the status's own fields.
fn status_object(inner: &Value) -> Field<&Map<String, Value>> {
    if let Some(e) = search_error(inner.get("error").or_else(|| inner.get("Error"))) {
        return Err(format!("search status error: {e}"));
    }
    fn bare(v: &Value) -> Option<&Map<String, Value>> {
        v.as_object()
            .filter(|o| o.contains_key("status") || o.contains_key("entitystatusresults"))
    }
    match inner.get("value") {
        Some(v) => bare(v),
        None => bare(inner),
    }
    .ok_or_else(|| {
        format!(
            "expected {{\"value\":{{\"status\",\"entitystatusresults\"}}}} in response, got {}",
            excerpt(inner.to_string().as_bytes())
        )
    })
}

/// The claim of the search status `inner` (the JSON inside `response`) for `table`.
///
/// # Errors
/// An answer that is not the documented shape.
pub fn status_claim(inner: &Value, table: &str) -> Field<Claim> {
    let status = status_object(inner)?;
    let provisioning = text(status, "status")?.ok_or("the search status has no status")?;
    let raw = format!("status={provisioning}");
    match provisioning.to_ascii_lowercase().as_str() {
        "provisioned" => {}
        "notprovisioned" | "provisioninginprogress" => {
            return Ok(claim(ClaimState::NotRunning, raw));
        }
        _ => return Ok(claim(ClaimState::Unknown, raw)),
    }
    let entries = match status.get("entitystatusresults") {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(format!(
                "entitystatusresults is not a list: {}",
                excerpt(other.to_string().as_bytes())
            ));
        }
    };
    let mut entry = None;
    for e in entries {
        let e = e
            .as_object()
            .ok_or("an entitystatusresults entry is not an object")?;
        if text(e, "entitylogicalname")?.is_some_and(|n| n.eq_ignore_ascii_case(table)) {
            entry = Some(e);
            break;
        }
    }
    let Some(entry) = entry else {
        return Ok(claim(
            ClaimState::NotRunning,
            format!("{raw}; no entitystatusresults entry for {table} (the table is not indexed)"),
        ));
    };
    let entity_status = text(entry, "entitystatus")?;
    let state = match entity_status {
        Some(s) if s.eq_ignore_ascii_case("EntitySyncComplete") => ClaimState::Healthy,
        _ => ClaimState::Unknown,
    };
    let watermark = text(entry, "lastdatasynctimestamp")?
        .filter(|s| !s.trim().is_empty())
        .map(|s| version_at(s).map_err(|e| format!("lastdatasynctimestamp is {e}")))
        .transpose()?;
    let mut raw = vec![raw];
    raw.push(match entity_status {
        Some(s) => format!("entitystatus={s}"),
        None => "no entitystatus".to_string(),
    });
    if let Some(ts) = text(entry, "lastdatasynctimestamp")? {
        raw.push(format!("lastdatasynctimestamp={ts}"));
    }
    Ok(Claim {
        watermark: watermark.map(|(v, _)| v),
        last_sync: watermark.map(|(_, t)| t),
        ..claim(state, raw.join(", "))
    })
}

#[async_trait]
impl StatusReader for DataverseSearchStatus {
    fn surface(&self) -> &'static str {
        "dataverse_search"
    }

    async fn read(&self) -> Result<Claim, ConnectorError> {
        let url = format!("{}/searchstatus", self.base);
        let reply = get(
            &self.http,
            &ACCESS,
            |c: &Client| odata(c.get(&url)).header("If-None-Match", "null"),
            odata_error,
        )
        .await?;
        let inner: Value = string_wrapped(&reply)?;
        status_claim(&inner, &self.table).map_err(|e| reply.bad_response(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(status: &str, entries: Value) -> Value {
        json!({"value": {"status": status, "lockboxstatus": "disabled", "cmkstatus": "disabled",
            "entitystatusresults": entries, "manytomanyrelationshipsyncstatus": []}})
    }

    fn account(status: &str) -> Value {
        json!({"entitylogicalname": "account", "objecttypecode": 1,
            "lastdatasynctimestamp": "73630169!09/12/2022 14:26:14",
            "lastprincipalobjectaccesssynctimestamp": "0!01/01/0001 00:00:00",
            "entitystatus": status, "searchableindexedfieldinfomap": {}})
    }

    #[test]
    fn a_synced_table_is_healthy_with_its_watermark() {
        let c = status_claim(
            &answer("provisioned", json!([account("EntitySyncComplete")])),
            "account",
        )
        .unwrap();
        assert_eq!(c.state, ClaimState::Healthy);
        assert_eq!(c.watermark, Some(73_630_169));
        assert_eq!(
            c.last_sync.unwrap().to_rfc3339(),
            "2022-09-12T14:26:14+00:00"
        );
        assert_eq!(
            c.raw,
            "status=provisioned, entitystatus=EntitySyncComplete, lastdatasynctimestamp=73630169!09/12/2022 14:26:14"
        );
        // Another entity status is the platform's word, unmapped.
        let c = status_claim(
            &answer("Provisioned", json!([account("EntitySyncInProgress")])),
            "Account",
        )
        .unwrap();
        assert_eq!(c.state, ClaimState::Unknown);
        assert_eq!(c.watermark, Some(73_630_169));
    }

    #[test]
    fn search_that_is_not_provisioned_or_a_table_not_indexed_is_not_running() {
        for s in ["notprovisioned", "provisioninginprogress"] {
            let c = status_claim(&answer(s, json!([])), "account").unwrap();
            assert_eq!(c.state, ClaimState::NotRunning, "{s}");
            assert_eq!(c.raw, format!("status={s}"));
        }
        let c = status_claim(&answer("deprovisioning", json!([])), "account").unwrap();
        assert_eq!(c.state, ClaimState::Unknown);
        let other = json!([{"entitylogicalname": "contact", "entitystatus": "EntitySyncComplete"}]);
        let c = status_claim(&answer("provisioned", other), "account").unwrap();
        assert_eq!(c.state, ClaimState::NotRunning);
        assert!(c.raw.contains("not indexed"), "{}", c.raw);
    }

    #[test]
    fn the_status_is_read_with_or_without_its_value_wrapper_and_nothing_else() {
        let bare = answer("provisioned", json!([account("EntitySyncComplete")]))["value"].clone();
        assert_eq!(
            status_claim(&bare, "account").unwrap().state,
            ClaimState::Healthy
        );
        for garbage in [
            json!({"Value": []}),
            json!([1, 2]),
            json!({"value": {"documentcount": 3}}),
            json!({"value": {"status": 1}}),
            json!({"value": {"status": "provisioned", "entitystatusresults": {"a": 1}}}),
            json!({"value": {"status": "provisioned", "entitystatusresults": [{"entitylogicalname": "account", "lastdatasynctimestamp": "yesterday"}]}}),
            json!({"Error": {"Message": "boom"}}),
        ] {
            assert!(status_claim(&garbage, "account").is_err(), "{garbage}");
        }
        let e = status_claim(&json!({"Error": {"Message": "boom"}}), "account").unwrap_err();
        assert!(e.contains("boom"), "{e}");
    }
}
