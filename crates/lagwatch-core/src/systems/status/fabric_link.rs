//! `fabric_link`: Link to Fabric and Synapse Link Delta profiles, per table, from
//! `synapselinkexternaltablestates`, the one of Dataverse's Synapse Link tables that only Delta
//! profiles fill (fact sheet §1.1, §1.2). One request:
//!
//! ```http
//! GET {base}/synapselinkexternaltablestates?$select=entityname,lastsynchronizedon,lastsyncstate,tablestate,maxrecordversion,recordcount&$filter=entityname eq '<table>'
//! ```
//!
//! Why this table and not the profile's: the Delta conversion is the hop a lake reader waits
//! for, and its row carries the two things a canary can be judged against, the time of the
//! latest successful conversion (`lastsynchronizedon`) and the highest record version it
//! carried (`maxrecordversion`, the `versionnumber` space of the sentinel's write).
//!
//! | `tablestate` | claim |
//! |---|---|
//! | 1 Created | healthy ("conversion active and error-free"), unless `lastsyncstate` is 2 Failed: error |
//! | 2 Failed | error |
//! | 0 Not Created, 3 Deleted | not running |
//! | 4 In Progress, other | unknown |
//! | no row | not running (the table is not in a Delta profile) |
//!
//! Several rows (the table in several Delta profiles) are an error: this surface has no
//! profile to choose by, and picking one would judge the path against a profile it may not
//! read.

use async_trait::async_trait;
use reqwest::Client;
use serde_json::{Map, Value};

use super::synapse_link::ACCESS;
use super::{Field, claim, code, get, instant, labelled, rows, version};
use crate::connector::ConnectorError;
use crate::connector::status::{Claim, ClaimState, StatusReader};
use crate::net::HttpSystem;
use crate::systems::wire::{literal, odata, odata_error};

const TABLE_STATES: &[(i64, &str)] = &[
    (0, "Not Created"),
    (1, "Created"),
    (2, "Failed"),
    (3, "Deleted"),
    (4, "In Progress"),
];

/// The reader: one table's Delta conversion in one environment.
pub struct FabricLink {
    http: HttpSystem,
    base: String,
    table: String,
}

impl FabricLink {
    /// `base` is the environment's Web API base (no trailing slash), `table` the logical name.
    pub fn new(http: HttpSystem, base: String, table: String) -> Self {
        FabricLink { http, base, table }
    }
}

/// The claim of the table's row (`None`: no Delta profile has the table).
///
/// # Errors
/// A field that is not of its documented type.
pub fn table_claim(table: &str, row: Option<&Map<String, Value>>) -> Field<Claim> {
    let Some(row) = row else {
        return Ok(claim(
            ClaimState::NotRunning,
            format!(
                "no synapselinkexternaltablestate row for {table} (the table is not in a Delta profile)"
            ),
        ));
    };
    let table_state = code(row, "tablestate")?;
    let last = code(row, "lastsyncstate")?;
    let state = match (table_state, last) {
        (Some(1), Some(2)) => ClaimState::Error,
        (Some(1), _) => ClaimState::Healthy,
        (Some(2), _) => ClaimState::Error,
        (Some(0 | 3), _) => ClaimState::NotRunning,
        _ => ClaimState::Unknown,
    };
    let mut raw = vec![match table_state {
        Some(s) => labelled("tablestate", s, TABLE_STATES),
        None => "no tablestate".to_string(),
    }];
    if let Some(s) = last {
        raw.push(labelled("lastsyncstate", s, TABLE_STATES));
    }
    if let Some(n) = code(row, "recordcount")? {
        raw.push(format!("recordcount={n}"));
    }
    Ok(Claim {
        last_sync: instant(row, "lastsynchronizedon")?,
        watermark: version(row, "maxrecordversion")?,
        ..claim(state, raw.join(", "))
    })
}

#[async_trait]
impl StatusReader for FabricLink {
    fn surface(&self) -> &'static str {
        "fabric_link"
    }

    async fn read(&self) -> Result<Claim, ConnectorError> {
        let url = format!("{}/synapselinkexternaltablestates", self.base);
        let filter = format!("entityname eq {}", literal(&self.table));
        let reply = get(
            &self.http,
            &ACCESS,
            |c: &Client| {
                odata(c.get(&url)).header("If-None-Match", "null").query(&[
                    (
                        "$select",
                        "entityname,lastsynchronizedon,lastsyncstate,tablestate,maxrecordversion,recordcount",
                    ),
                    ("$filter", filter.as_str()),
                ])
            },
            odata_error,
        )
        .await?;
        let rows = rows(&reply)?;
        if rows.len() > 1 {
            return Err(reply.bad_response(format!(
                "{} Delta profiles sync {}; this surface reads one",
                rows.len(),
                self.table
            )));
        }
        table_claim(&self.table, rows.first()).map_err(|e| reply.bad_response(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn every_documented_table_state_is_mapped() {
        let cases = [
            (0, None, ClaimState::NotRunning),
            (1, None, ClaimState::Healthy),
            (1, Some(1), ClaimState::Healthy),
            (1, Some(2), ClaimState::Error),
            (2, None, ClaimState::Error),
            (3, None, ClaimState::NotRunning),
            (4, None, ClaimState::Unknown),
            (5, None, ClaimState::Unknown),
        ];
        for (table_state, last, want) in cases {
            let r = row(
                json!({"entityname": "account", "tablestate": table_state, "lastsyncstate": last}),
            );
            let c = table_claim("account", Some(&r)).unwrap();
            assert_eq!(
                c.state, want,
                "tablestate {table_state}, lastsyncstate {last:?}"
            );
        }
    }

    #[test]
    fn a_created_table_carries_its_conversion_time_and_version() {
        let r = row(json!({
            "entityname": "account", "tablestate": 1, "lastsyncstate": 1,
            "lastsynchronizedon": "2026-11-02T10:20:00Z", "maxrecordversion": 9123456,
            "recordcount": 42
        }));
        let c = table_claim("account", Some(&r)).unwrap();
        assert_eq!(
            c.raw,
            "tablestate=1 (Created), lastsyncstate=1 (Created), recordcount=42"
        );
        assert_eq!(
            c.last_sync.unwrap().to_rfc3339(),
            "2026-11-02T10:20:00+00:00"
        );
        assert_eq!(c.watermark, Some(9_123_456));
        let missing = table_claim("account", None).unwrap();
        assert_eq!(missing.state, ClaimState::NotRunning);
        let r = row(json!({"tablestate": 1, "maxrecordversion": "high"}));
        assert!(table_claim("account", Some(&r)).is_err());
    }
}
