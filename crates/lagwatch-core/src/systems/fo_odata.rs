//! `fo_odata`: Finance & Operations data entities over OData, the target of dual-write.
//!
//! Why: dual-write copies a Dataverse row into an F&O data entity (e.g. `accounts` →
//! `CustomersV3`). lagwatch writes the sentinel in Dataverse and looks for it here, by the
//! entity field the Dataverse key column is mapped to (fact sheet §4.1):
//!
//! ```http
//! GET {base}/data/{EntitySet}?cross-company=true&$filter={key_field} eq '{key}'&$select={key_field},{payload_field}&$top=1
//! Accept: application/json
//! OData-MaxVersion: 4.0
//! OData-Version: 4.0
//! → 200 {"@odata.context":"…","value":[{"@odata.etag":"…","CustomerAccount":"…","…":"…"}]}
//! ```
//!
//! `cross-company=true` because by default F&O only returns rows of the caller's default
//! company (§4.1); with a configured `data_area_id` the filter adds `and dataAreaId eq '…'`.
//! Literals have single quotes doubled. F&O string `eq` is case-insensitive and treats `*` as a
//! wildcard (§4.1), so a returned row whose key differs from the sentinel's (other than in
//! case) is a [`ConnectorError::BadResponse`], never a hit. An empty `value` is
//! [`Lookup::Absent`]; a 404 means the entity set does not exist and is an error. Throttling is
//! priority-based with `429` + `Retry-After` seconds (§4.2), handled by [`HttpSystem`]. Auth is
//! an Entra bearer token for `https://<env>.operations.dynamics.com/.default`.
//!
//! Dual-write is synchronous while a map is *Running* (§4.3): the F&O row is committed in the
//! same transaction as the Dataverse write (a failed dual-write rolls the Dataverse write back,
//! so it would not have been acknowledged). A row still missing [`DEFAULT_SYNC_GRACE`] (or the
//! configured `sync_grace`) after the acknowledgement therefore means the table map is
//! *Paused* (changes queue for at most one day / 1 GB, then block), *Stopped*, still
//! *Initializing*, or the sentinel fails the map's filter or company rules (no company,
//! `customertypecode` ≠ 3 for "Customers V3 to accounts"). The target declares the grace
//! through [`Target::synchronous_within`], and the engine ends such a probe as `halted`: no
//! lag is recorded, the path shows state `halted`, and the next sentinels show the resume.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Client, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use std::sync::Arc;

use super::http_inventory::{ODataLister, check_query, odata_table};
use super::wire::{Collection, literal, odata, odata_error, payload_text};
use super::{BuildContext, System, SystemKind, SystemSpec, check_names, check_url, decode_as};
use crate::auth::{Accepts, AuthBlock};
use crate::config::{Dur, Issue};
use crate::connector::inventory::{Inventory, InventoryPage, InventoryQuery};
use crate::connector::{ConnectorError, Lookup, Target};
use crate::gate::Gate;
use crate::net::{HttpSystem, excerpt};
use crate::sentinel::SentinelId;

/// Where dual-written sentinels land in an F&O environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityMap {
    /// Environment URL, `https://<env>.operations.dynamics.com` (no trailing slash); requests
    /// go to `<base>/data/<entity_set>`.
    pub base: String,
    /// Public collection name of the data entity the dual-write map writes, e.g. `CustomersV3`
    /// for the "Customers V3 to accounts" map.
    pub entity_set: String,
    /// Entity field the Dataverse key column is mapped to, e.g. `CustomerAccount` (mapped from
    /// `accountnumber`). Lookups filter on it.
    pub key_field: String,
    /// Entity field the Dataverse payload column is mapped to, e.g. `OrganizationName` (from
    /// `name`); its content is compared with the sentinel's to detect transformations.
    pub payload_field: Option<String>,
    /// Legal entity the sentinel's company maps to, e.g. `usmf`. When set, only rows of that
    /// company count (`and dataAreaId eq 'usmf'`); when absent, any company does.
    pub data_area_id: Option<String>,
}

/// The connector: one entity set of one F&O environment.
pub struct FoOdata {
    http: HttpSystem,
    map: EntityMap,
    sync_grace: Duration,
}

impl FoOdata {
    /// A target with the [`DEFAULT_SYNC_GRACE`].
    pub fn new(http: HttpSystem, map: EntityMap) -> Self {
        FoOdata {
            http,
            map,
            sync_grace: DEFAULT_SYNC_GRACE,
        }
    }

    /// How long a sentinel may be missing after the source acknowledged it before the map
    /// counts as not running.
    pub fn with_sync_grace(mut self, grace: Duration) -> Self {
        self.sync_grace = grace;
        self
    }

    /// `$filter` for the rows of `ids` (one key: `k eq '…'`; several: `(k eq '…' or …)`), in
    /// the configured company.
    fn filter(&self, ids: &[SentinelId]) -> String {
        let keys = ids
            .iter()
            .map(|id| format!("{} eq {}", self.map.key_field, literal(id.key())))
            .collect::<Vec<_>>();
        let mut f = if keys.len() == 1 {
            keys.concat()
        } else {
            format!("({})", keys.join(" or "))
        };
        if let Some(company) = &self.map.data_area_id {
            f.push_str(&format!(" and dataAreaId eq {}", literal(company)));
        }
        f
    }

    /// The rows of `ids`, in one query.
    async fn rows_with_keys(
        &self,
        ids: &[SentinelId],
    ) -> Result<(Vec<Value>, crate::net::Reply), ConnectorError> {
        let url = format!("{}/data/{}", self.map.base, self.map.entity_set);
        let filter = self.filter(ids);
        let select = match &self.map.payload_field {
            Some(p) => format!("{},{p}", self.map.key_field),
            None => self.map.key_field.clone(),
        };
        let top = ids.len().to_string();
        let reply = self
            .http
            .send("lookup", |c: &Client| {
                odata(c.get(&url)).query(&[
                    ("cross-company", "true"),
                    ("$filter", filter.as_str()),
                    ("$select", select.as_str()),
                    ("$top", top.as_str()),
                ])
            })
            .await?;
        if reply.status != StatusCode::OK {
            return Err(odata_error(&reply));
        }
        let page: Collection = reply.json()?;
        Ok((page.value, reply))
    }

    fn found(&self, row: &Value) -> Lookup {
        Lookup::Present {
            payload: self
                .map
                .payload_field
                .as_ref()
                .and_then(|p| row.get(p))
                .and_then(payload_text),
        }
    }
}

#[async_trait]
impl Target for FoOdata {
    /// Dual-write commits the F&O row with the Dataverse write while the map runs.
    fn synchronous_within(&self) -> Option<Duration> {
        Some(self.sync_grace)
    }

    /// One `$filter` with every key (`or`): one query of the entity.
    fn reads_together(&self) -> bool {
        true
    }

    async fn lookup_together(&self, ids: &[SentinelId]) -> Result<Vec<Lookup>, ConnectorError> {
        let (rows, _) = self.rows_with_keys(ids).await?;
        // F&O compares strings without regard to case, so its rows are matched the same way.
        Ok(ids
            .iter()
            .map(|id| {
                rows.iter()
                    .find(|row| {
                        row.get(&self.map.key_field)
                            .and_then(Value::as_str)
                            .is_some_and(|k| k.eq_ignore_ascii_case(id.key()))
                    })
                    .map_or(Lookup::Absent, |row| self.found(row))
            })
            .collect())
    }

    async fn lookup(&self, id: &SentinelId) -> Result<Lookup, ConnectorError> {
        let (rows, reply) = self.rows_with_keys(std::slice::from_ref(id)).await?;
        let Some(row) = rows.first() else {
            return Ok(Lookup::Absent);
        };
        if let Some(found) = row.get(&self.map.key_field).and_then(Value::as_str)
            && !found.eq_ignore_ascii_case(id.key())
        {
            return Err(reply.bad_response(format!(
                "asked for {} {} and got a row with {}",
                self.map.key_field,
                id.key(),
                excerpt(found.as_bytes())
            )));
        }
        Ok(self.found(row))
    }
}

/// Most rows F&O returns per page with server-driven paging (fact sheet §4.1).
pub const MAX_INVENTORY_PAGE: u32 = 10_000;

/// Lists an entity set for reconciliation: `GET {base}/data/{entity}?cross-company=true&$select=…`
/// (`&$filter=dataAreaId eq '…'` with a configured company), `Prefer: odata.maxpagesize`, then
/// each `@odata.nextLink` exactly, once it is checked to be on the configured origin (it
/// carries our bearer token).
///
/// `cross-company=true` for the same reason as lookups: without it F&O lists only the caller's
/// default company. `dataAreaId` is an ordinary column to ask for, which a company-striped key
/// needs. A `changed_since` scope is not sent: F&O entities share no change-time field and the
/// date literal form of its `$filter` is not documented (fact sheet §4.1, §8), so every row
/// comes back and the runner filters, as the query contract allows.
#[async_trait]
impl Inventory for FoOdata {
    fn check(&self, query: &InventoryQuery) -> Result<(), String> {
        check_query(query, odata_table)
    }

    async fn fetch(
        &self,
        query: &InventoryQuery,
        next: Option<&str>,
    ) -> Result<InventoryPage, ConnectorError> {
        let lister = ODataLister {
            http: &self.http,
            base: &self.map.base,
            max_page: MAX_INVENTORY_PAGE,
            headers: odata,
            error: odata_error,
        };
        lister
            .page(query, next, || {
                let entity = query.table.as_deref().unwrap_or(&self.map.entity_set);
                let mut params = vec![
                    ("cross-company", "true".to_string()),
                    ("$select", query.columns.join(",")),
                ];
                if let Some(company) = &self.map.data_area_id {
                    params.push(("$filter", format!("dataAreaId eq {}", literal(company))));
                }
                (format!("{}/data/{entity}", self.map.base), params)
            })
            .await
    }
}

/// Config of a `kind: fo_odata` system: the F&O side of a dual-write table map.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FoOdataConfig {
    /// Environment URL, `https://<env>.operations.dynamics.com`.
    pub url: String,
    /// Public collection name of the data entity, e.g. `CustomersV3`.
    pub entity_set: String,
    /// Entity field the Dataverse key column maps to, e.g. `CustomerAccount`.
    pub key_field: String,
    /// Entity field the map fills from the Dataverse payload column, compared with what was
    /// written (a transform or wrong mapping is a `mismatch`). Without it only presence is
    /// measured: the stock account ↔ customer maps carry no free-text column long enough.
    #[serde(default)]
    pub payload_field: Option<String>,
    /// Legal entity (company) the sentinels belong to, e.g. `usmf`; any company when absent.
    #[serde(default)]
    pub data_area_id: Option<String>,
    /// How long after the source acknowledged a sentinel it may still be missing before the
    /// map counts as not running (see [`DEFAULT_SYNC_GRACE`]).
    #[serde(default)]
    pub sync_grace: Option<Dur>,
    pub auth: AuthBlock,
    /// Token scope; `<environment URL>/.default` when absent.
    #[serde(default)]
    pub scope: Option<String>,
}

/// Registry entry: types and checks a `kind: fo_odata` block.
///
/// # Errors
/// An [`Issue`] naming the offending key.
pub fn decode(key: &str, value: Value) -> Result<Box<dyn super::SystemKind>, Issue> {
    let mut c: FoOdataConfig = decode_as(key, value)?;
    check_url(
        &format!("{key}.url"),
        &c.url,
        "an F&O environment URL such as https://contoso.operations.dynamics.com",
    )?;
    check_names(
        key,
        "an OData name",
        &[
            ("entity_set", &c.entity_set),
            ("key_field", &c.key_field),
            ("payload_field", c.payload_field.as_deref().unwrap_or("x")),
        ],
    )?;
    if let Some(company) = &c.data_area_id
        && (company.is_empty()
            || company.len() > 4
            || !company.chars().all(|ch| ch.is_ascii_alphanumeric()))
    {
        return Err(Issue::new(
            format!("{key}.data_area_id"),
            format!("\"{company}\" is not a legal entity id (1 to 4 letters or digits, e.g. usmf)"),
        ));
    }
    c.auth.resolve(&format!("{key}.auth"), Accepts::ENTRA)?;
    Ok(Box::new(c))
}

impl FoOdataConfig {
    /// The dual-write grace of this target.
    pub fn grace(&self) -> Duration {
        self.sync_grace.map_or(DEFAULT_SYNC_GRACE, |d| d.get())
    }
}

/// Why a target without a payload field runs no canary.
const NO_CONTENT: &str = "it has no payload_field (a field the dual-write map fills from the sentinel's payload column), so a canary's version cannot be read";

impl SystemSpec for FoOdataConfig {
    fn kind(&self) -> &'static str {
        "fo_odata"
    }

    /// Dual-write commits the F&O row in the Dataverse write's transaction: once there, it
    /// stays until it is deleted.
    fn monotonic_reads(&self) -> bool {
        true
    }

    /// Dual-write resolves a row's lookups when it writes it (a child whose parent is not in
    /// F&O fails, and rolls the Dataverse write back), so a child never shows before its
    /// parent.
    fn causal(&self) -> bool {
        true
    }

    /// A canary's version is read from its content, which only a mapped payload field holds.
    fn shows_versions(&self) -> Result<(), String> {
        match self.payload_field {
            Some(_) => Ok(()),
            None => Err(NO_CONTENT.to_string()),
        }
    }

    fn can_list(&self) -> Result<(), String> {
        Ok(())
    }
    fn can_write(&self) -> Result<(), String> {
        Err(
            "F&O is written by dual-write, not by lagwatch; write sentinels into the Dataverse \
             table the map reads and probe this system as a target"
                .to_string(),
        )
    }

    fn synchronous_within(&self) -> Option<Duration> {
        Some(self.grace())
    }

    fn describe(&self) -> String {
        format!(
            "{} entity {} (key {}, payload {}{}), sync grace {}, auth {}",
            self.url,
            self.entity_set,
            self.key_field,
            self.payload_field.as_deref().unwrap_or("not compared"),
            self.data_area_id
                .as_ref()
                .map(|c| format!(", company {c}"))
                .unwrap_or_default(),
            crate::config::Dur(self.grace()),
            self.auth.method()
        )
    }
}

impl SystemKind for FoOdataConfig {
    fn build(&self, name: &str, cx: &BuildContext, gate: Arc<Gate>) -> Result<System, Issue> {
        let http = super::http_system(
            name,
            cx,
            &gate,
            self.auth.credential(),
            || super::scope_or_derived(name, self.scope.as_deref(), &self.url),
            None,
        )?;
        let connector = Arc::new(
            FoOdata::new(
                http,
                EntityMap {
                    base: self.url.trim_end_matches('/').to_string(),
                    entity_set: self.entity_set.clone(),
                    key_field: self.key_field.clone(),
                    payload_field: self.payload_field.clone(),
                    data_area_id: self.data_area_id.clone(),
                },
            )
            .with_sync_grace(self.grace()),
        );
        Ok(
            System::target_only(name, self.kind(), gate, connector.clone())
                .with_inventory(connector),
        )
    }
}

/// How long a sentinel may be missing from F&O, after Dataverse acknowledged it, before the
/// map is taken as not running. Not a documented figure: a running map commits the F&O row
/// inside the Dataverse write (fact sheet §4.3), so this only absorbs the first poll gaps and
/// clock granularity.
pub const DEFAULT_SYNC_GRACE: Duration = Duration::from_secs(30);
