//! `dual_write`: a dual-write map as F&O configures it (fact sheet §1.1, §1.4). One request to
//! the data entity Microsoft's troubleshooting article has admins open
//! (`DualWriteProjectConfigurationEntity`; its entity set name `DualWriteProjectConfigurations`
//! is known from a third-party tool only, ⚠):
//!
//! ```http
//! GET {base}/data/DualWriteProjectConfigurations?cross-company=true&$filter=InternalEntityName eq 'Customers V3' and ExternalEntityName eq 'accounts'&$select=ProjectName,InternalEntityName,ExternalEntityName,Status
//! ```
//!
//! Why so little is mapped: the table's `Status` is an integer whose values Microsoft does not
//! document, and the maker portal's gateway that does say "Running" is not a service-principal
//! API. So `raw` is `Status=<value>` as F&O returns it (a number; an enum's name should the
//! entity expose one), and the state is [`ClaimState::Unknown`] unless the configuration maps
//! that value (`status_values`, learnt from the environment). No row means the map is not
//! deployed: not running. Several rows (one per project) agree or are unknown: the state is
//! the mapped one when every row maps to the same state.

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::Client;
use serde_json::{Map, Value};

use super::{Access, Field, claim, get, rows, text};
use crate::connector::ConnectorError;
use crate::connector::status::{Claim, ClaimState, StatusReader};
use crate::net::{HttpSystem, excerpt};
use crate::systems::wire::{literal, odata, odata_error};

/// What reading the map configuration needs.
pub const ACCESS: Access = Access {
    grant: "the F&O user of the application a role with read access to the data entity \
            DualWriteProjectConfigurationEntity (System administrator has it)",
    missing: "the entity set DualWriteProjectConfigurations is not in this F&O environment \
              (is dual-write set up, and the entity public?)",
};

/// The reader: one map of one F&O environment.
pub struct DualWrite {
    http: HttpSystem,
    base: String,
    internal: String,
    external: String,
    values: BTreeMap<String, ClaimState>,
}

impl DualWrite {
    /// `base` is the F&O environment URL (no trailing slash); `internal` and `external` the
    /// map's entity names as F&O stores them (`Customers V3`, `accounts`); `values` what the
    /// configuration says `Status` values mean.
    pub fn new(
        http: HttpSystem,
        base: String,
        internal: String,
        external: String,
        values: BTreeMap<String, ClaimState>,
    ) -> Self {
        DualWrite {
            http,
            base,
            internal,
            external,
            values,
        }
    }
}

/// The text of a row's `Status`: a number as its digits, a name as it is.
fn status_text(row: &Map<String, Value>) -> Field<Option<String>> {
    match row.get("Status") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!(
            "Status is neither a number nor a name: {}",
            excerpt(other.to_string().as_bytes())
        )),
    }
}

/// The claim of the map's configuration rows, with the configured meaning of `Status` values.
///
/// # Errors
/// A row whose `Status` is not a number or a name.
pub fn map_claim(
    rows: &[Map<String, Value>],
    values: &BTreeMap<String, ClaimState>,
) -> Field<Claim> {
    if rows.is_empty() {
        return Ok(claim(
            ClaimState::NotRunning,
            "no DualWriteProjectConfigurations row (the map is not deployed)",
        ));
    }
    let mut raw = Vec::new();
    let mut states = Vec::new();
    for row in rows {
        let status = status_text(row)?;
        let mut said = match &status {
            Some(s) => format!("Status={s}"),
            None => "no Status".to_string(),
        };
        if rows.len() > 1 {
            said.push_str(&format!(" ({})", text(row, "ProjectName")?.unwrap_or("?")));
        }
        raw.push(said);
        states.push(
            status
                .and_then(|s| values.get(&s).copied())
                .unwrap_or(ClaimState::Unknown),
        );
    }
    let state = if states.iter().all(|s| *s == states[0]) {
        states[0]
    } else {
        ClaimState::Unknown
    };
    Ok(claim(state, raw.join(", ")))
}

#[async_trait]
impl StatusReader for DualWrite {
    fn surface(&self) -> &'static str {
        "dual_write"
    }

    async fn read(&self) -> Result<Claim, ConnectorError> {
        let url = format!("{}/data/DualWriteProjectConfigurations", self.base);
        let filter = format!(
            "InternalEntityName eq {} and ExternalEntityName eq {}",
            literal(&self.internal),
            literal(&self.external)
        );
        let reply = get(
            &self.http,
            &ACCESS,
            |c: &Client| {
                odata(c.get(&url)).query(&[
                    ("cross-company", "true"),
                    ("$filter", filter.as_str()),
                    (
                        "$select",
                        "ProjectName,InternalEntityName,ExternalEntityName,Status",
                    ),
                ])
            },
            odata_error,
        )
        .await?;
        let rows = rows(&reply)?;
        map_claim(&rows, &self.values).map_err(|e| reply.bad_response(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(project: &str, status: Value) -> Map<String, Value> {
        json!({"ProjectName": project, "InternalEntityName": "Customers V3",
            "ExternalEntityName": "accounts", "Status": status})
        .as_object()
        .cloned()
        .unwrap()
    }

    fn values() -> BTreeMap<String, ClaimState> {
        [
            ("1".to_string(), ClaimState::Healthy),
            ("2".to_string(), ClaimState::Paused),
            ("Running".to_string(), ClaimState::Healthy),
        ]
        .into()
    }

    #[test]
    fn a_status_is_raw_and_unknown_unless_configured() {
        let c = map_claim(&[row("p", json!(1))], &BTreeMap::new()).unwrap();
        assert_eq!(c.state, ClaimState::Unknown);
        assert_eq!(c.raw, "Status=1");
        assert_eq!(
            map_claim(&[row("p", json!(1))], &values()).unwrap().state,
            ClaimState::Healthy
        );
        assert_eq!(
            map_claim(&[row("p", json!(2))], &values()).unwrap().state,
            ClaimState::Paused
        );
        assert_eq!(
            map_claim(&[row("p", json!(7))], &values()).unwrap().state,
            ClaimState::Unknown
        );
        // An enum's name, should the entity give one.
        let c = map_claim(&[row("p", json!("Running"))], &values()).unwrap();
        assert_eq!(
            (c.state, c.raw.as_str()),
            (ClaimState::Healthy, "Status=Running")
        );
    }

    #[test]
    fn no_row_is_a_map_not_deployed_and_rows_must_agree() {
        let c = map_claim(&[], &values()).unwrap();
        assert_eq!(c.state, ClaimState::NotRunning);
        assert!(c.raw.contains("not deployed"), "{}", c.raw);
        let c = map_claim(&[row("a", json!(1)), row("b", json!(1))], &values()).unwrap();
        assert_eq!(c.state, ClaimState::Healthy);
        assert_eq!(c.raw, "Status=1 (a), Status=1 (b)");
        let c = map_claim(&[row("a", json!(1)), row("b", json!(2))], &values()).unwrap();
        assert_eq!(c.state, ClaimState::Unknown);
        assert!(map_claim(&[row("a", json!([1]))], &values()).is_err());
    }
}
