//! The dual-write map configuration on the F&O side (fact sheet §1.4):
//! `GET /fno/{env}/data/DualWriteProjectConfigurations` with F&O's authentication, `$filter`
//! (F&O's subset, e.g. `InternalEntityName eq 'Customers V3' and ExternalEntityName eq
//! 'accounts'`), `$select`, `$top`; `cross-company` is accepted and changes nothing (the
//! table is not per company).
//!
//! One row per dual-write replica touching the environment: a Dataverse → F&O replica into one
//! of its entities, or an F&O → Dataverse one out of it. `ProjectName` is the replica's name,
//! `InternalEntityName` the entity's name in the map (`internal_entity_name`, default the
//! entity set name split before capitals: `CustomersV3` → `Customers V3`),
//! `ExternalEntityName` the Dataverse entity set, `ExternalEnvironmentUrl` the Dataverse
//! environment's resource URL, `QueryFilterExpression` the replica's `filter` (or empty),
//! `IsDebugMode`, `IsDelete`, `EnableFailureReconciliation` `"No"`.
//!
//! `Status` is an integer Microsoft does not document; the values are the emulator's own:
//! **1** running, **2** paused (`state: paused` or a `paused` window), **3** error (the map's
//! runtime is failing: a `stall` outage), **0** not running (`state: stopped`). An
//! `unavailable` outage fails F&O reads, not the map: 1.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::super::odata::{self, Dialect};
use super::super::replication::{Origin, ReplicaDef};
use super::super::scenario::{LieKind, Target};
use super::super::{Emulator, Req, hv, json_response};
use super::{Claim, Condition};

/// The entity set.
pub(crate) const ENTITY: &str = "DualWriteProjectConfigurations";

const FIELDS: &[&str] = &[
    "ProjectName",
    "InternalEntityName",
    "ExternalEntityName",
    "ExternalEnvironmentUrl",
    "Status",
    "IsDebugMode",
    "IsDelete",
    "QueryFilterExpression",
    "EnableFailureReconciliation",
];

/// `CustomersV3` → `Customers V3`: a space before each capital that follows a small letter.
pub(crate) fn spaced(entity: &str) -> String {
    let mut out = String::with_capacity(entity.len() + 4);
    let mut prev_lower = false;
    for c in entity.chars() {
        if c.is_uppercase() && prev_lower {
            out.push(' ');
        }
        prev_lower = c.is_lowercase();
        out.push(c);
    }
    out
}

/// The claimed state of a `Status` value.
fn state_of(status: u64) -> &'static str {
    match status {
        1 => "healthy",
        2 => "paused",
        3 => "error",
        _ => "not_running",
    }
}

impl Emulator {
    /// `(F&O env, F&O entity, Dataverse env, Dataverse set)` of a dual-write replica.
    fn dual_write_ends(r: &ReplicaDef) -> Option<(&str, &str, &str, &str)> {
        match (&r.origin, &r.target) {
            (Origin::Dataverse, Target::Fno { env, entity, .. }) => {
                Some((env, entity, &r.env, &r.set))
            }
            (Origin::Fno, Target::Dataverse { env, table }) => Some((&r.env, &r.set, env, table)),
            _ => None,
        }
    }

    /// The claim of dual-write replica `r`: its configuration row as `raw`.
    pub(crate) fn dual_write_claim(&self, r: &ReplicaDef, now: Instant, honest: bool) -> Claim {
        let mut status = match self.condition(&r.name, now) {
            Condition::Flowing | Condition::Unavailable => 1,
            Condition::Paused => 2,
            Condition::Stalled => 3,
            Condition::Stopped => 0,
        };
        match self.lie_for(&r.name, now, honest).map(|l| l.kind) {
            Some(LieKind::HealthyWhileStuck) => status = 1,
            Some(LieKind::ErrorWhileFlowing) if status == 1 => status = 3,
            _ => {}
        }
        let mut claim = Claim::new(state_of(status));
        let Some((_, entity, denv, dset)) = Self::dual_write_ends(r) else {
            return claim;
        };
        let internal = self
            .scenario
            .replicas
            .get(&r.name)
            .and_then(|x| x.internal_entity_name.clone())
            .unwrap_or_else(|| spaced(entity));
        let mut raw = Map::new();
        raw.insert("ProjectName".into(), json!(r.name));
        raw.insert("InternalEntityName".into(), json!(internal));
        raw.insert("ExternalEntityName".into(), json!(dset));
        raw.insert(
            "ExternalEnvironmentUrl".into(),
            json!(
                self.dataverse_resources(denv, "")
                    .first()
                    .cloned()
                    .unwrap_or_default()
            ),
        );
        raw.insert("Status".into(), json!(status));
        raw.insert("IsDebugMode".into(), json!("No"));
        raw.insert("IsDelete".into(), json!("No"));
        raw.insert(
            "QueryFilterExpression".into(),
            json!(
                self.scenario
                    .replicas
                    .get(&r.name)
                    .and_then(|x| x.filter.clone())
                    .unwrap_or_default()
            ),
        );
        raw.insert("EnableFailureReconciliation".into(), json!("No"));
        claim.raw = raw;
        claim
    }

    /// `GET /fno/{env}/data/DualWriteProjectConfigurations` (authenticated by the caller).
    pub(crate) fn dual_write_configs(&self, req: &Req, env: &str, base: &str) -> Response {
        let error = |status: StatusCode, m: String| {
            let mut r = json_response(status, &json!({"error": {"code": "", "message": m}}));
            r.headers_mut().insert("odata-version", hv("4.0"));
            r
        };
        if req.method != axum::http::Method::GET {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "The requested resource does not support http method '{}'.",
                    req.method
                ),
            );
        }
        let unknown = |c: &str| {
            format!(
                "Could not find a property named '{c}' on type 'Microsoft.Dynamics.DataEntities.DualWriteProjectConfiguration'."
            )
        };
        let select = match req.query.get("$select").map(odata::parse_select) {
            None => None,
            Some(Ok(cols)) => {
                if let Some(c) = cols.iter().find(|c| !FIELDS.contains(&c.as_str())) {
                    return error(StatusCode::BAD_REQUEST, unknown(c));
                }
                Some(cols)
            }
            Some(Err(e)) => return error(StatusCode::BAD_REQUEST, e),
        };
        let filter = match req.query.get("$filter").map(odata::parse_filter) {
            None => None,
            Some(Ok(f)) => {
                if let Some(c) = f.fields().into_iter().find(|c| !FIELDS.contains(c)) {
                    return error(StatusCode::BAD_REQUEST, unknown(c));
                }
                Some(f)
            }
            Some(Err(e)) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("The query specified in the URI is not valid: {e}"),
                );
            }
        };
        let top = match req.query.get("$top").map(odata::parse_top) {
            None => usize::MAX,
            Some(Ok(t)) => t,
            Some(Err(e)) => return error(StatusCode::BAD_REQUEST, e),
        };
        let now = Instant::now();
        let value: Vec<Value> = self
            .replicas
            .iter()
            .filter(|r| Self::dual_write_ends(r).is_some_and(|(fenv, ..)| fenv == env))
            .map(|r| self.dual_write_claim(r, now, false).raw)
            .filter(|row| filter.as_ref().is_none_or(|f| f.matches(row, Dialect::FNO)))
            .take(top)
            .map(|row| {
                Value::Object(match &select {
                    None => row,
                    Some(cols) => row.into_iter().filter(|(k, _)| cols.contains(k)).collect(),
                })
            })
            .collect();
        let mut r = json_response(
            StatusCode::OK,
            &json!({"@odata.context": format!("{base}$metadata#{ENTITY}"), "value": value}),
        );
        r.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            hv("application/json; odata.metadata=minimal"),
        );
        r.headers_mut().insert("odata-version", hv("4.0"));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_names_split_before_capitals() {
        assert_eq!(spaced("CustomersV3"), "Customers V3");
        assert_eq!(spaced("SalesOrderHeadersV2"), "Sales Order Headers V2");
        assert_eq!(spaced("CDSContacts"), "CDSContacts");
        assert_eq!(
            [1, 2, 3, 0].map(state_of),
            ["healthy", "paused", "error", "not_running"]
        );
    }
}
