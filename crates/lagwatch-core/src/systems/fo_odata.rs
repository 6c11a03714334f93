//! `fo_odata`: Finance & Operations data entities over OData, either side of dual-write.
//!
//! As a source (the map's F&O-to-Dataverse direction, with `data_area_id` and the entity's
//! mandatory `fields`): a sentinel is created with `POST {base}/data/{EntitySet}` (key in
//! `key_field`, payload in `payload_field`, `dataAreaId`, the fields; F&O's number sequence
//! assigns the entity key), read back with the lookup's query, deleted by its entity key read
//! first (`DELETE {base}/data/{EntitySet}(dataAreaId='…',CustomerAccount='…')`), and swept at
//! start-up with F&O's wildcard equality (`key eq 'prefix*'`, as `$filter` has no
//! `startswith`). The rest of this page is the target side.
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
//! through `SystemSpec::synchronous_within`, and the engine ends such a probe as `halted`: no
//! lag is recorded, the path shows state `halted`, and the next sentinels show the resume.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::{Client, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use std::sync::Arc;

use super::http_inventory::{ODataLister, check_query, odata_table};
use super::status::{self, dual_write::DualWrite};
use super::wire::{Collection, literal, odata, odata_error, payload_text};
use super::{BuildContext, System, SystemKind, SystemSpec, check_names, check_url, decode_as};
use crate::auth::{Accepts, AuthBlock};
use crate::config::platform::Surface;
use crate::config::{Dur, Issue};
use crate::connector::inventory::{Inventory, InventoryPage, InventoryQuery};
use crate::connector::status::StatusReader;
use crate::connector::{ConnectorError, Lookup, Source, Target, Updated};
use crate::gate::Gate;
use crate::net::{HttpSystem, Reply, excerpt};
use crate::sentinel::{Sentinel, SentinelId};

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
    /// How sentinels are created here, when the entity is a source (F&O → Dataverse through
    /// dual-write); `None`: a target only.
    pub writes: Option<Writes>,
}

/// What creating and deleting a sentinel row in an F&O entity needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writes {
    /// Fields every sentinel row gets: the entity's mandatory fields (`CustomerGroupId` for
    /// `CustomersV3`), as JSON values.
    pub fields: serde_json::Map<String, Value>,
    /// The entity's key fields besides `dataAreaId`, which address a row for a delete
    /// (`CustomersV3`: `CustomerAccount`); F&O's number sequence fills them on create.
    pub entity_key: Vec<String>,
}

/// The connector: one entity set of one F&O environment.
pub struct FoOdata {
    http: HttpSystem,
    map: EntityMap,
}

impl FoOdata {
    /// A target with the [`DEFAULT_SYNC_GRACE`].
    pub fn new(http: HttpSystem, map: EntityMap) -> Self {
        FoOdata { http, map }
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
        op: &'static str,
        ids: &[SentinelId],
        select: &str,
    ) -> Result<(Vec<Value>, crate::net::Reply), ConnectorError> {
        let url = self.collection_url();
        let filter = self.filter(ids);
        let top = ids.len().to_string();
        let reply = self
            .http
            .send(op, |c: &Client| {
                odata(c.get(&url)).query(&[
                    ("cross-company", "true"),
                    ("$filter", filter.as_str()),
                    ("$select", select),
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

    fn collection_url(&self) -> String {
        format!("{}/data/{}", self.map.base, self.map.entity_set)
    }

    /// The fields a lookup asks for: the key and the payload.
    fn lookup_select(&self) -> String {
        match &self.map.payload_field {
            Some(p) => format!("{},{p}", self.map.key_field),
            None => self.map.key_field.clone(),
        }
    }

    /// The row of `id` (`op`: the operation it is counted as), checked to be the sentinel's: F&O
    /// compares strings without case and with `*` as a wildcard, so another row may answer.
    async fn row_of(
        &self,
        op: &'static str,
        id: &SentinelId,
        select: &str,
    ) -> Result<Option<Value>, ConnectorError> {
        let (rows, reply) = self
            .rows_with_keys(op, std::slice::from_ref(id), select)
            .await?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
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
        Ok(Some(row))
    }

    /// What creating rows needs; an error for a connector built as a target only.
    fn writes(&self) -> Result<&Writes, ConnectorError> {
        self.map
            .writes
            .as_ref()
            .ok_or_else(|| ConnectorError::BadResponse {
                status: 0,
                detail: "this F&O system is not configured as a source".to_string(),
            })
    }

    /// Creates the sentinel's row (`op`: the operation it is counted as) with the key, the
    /// payload, the company and the entity's mandatory fields.
    async fn create(&self, op: &'static str, s: &Sentinel) -> Result<Reply, ConnectorError> {
        let writes = self.writes()?;
        let mut body = writes.fields.clone();
        body.insert(
            self.map.key_field.clone(),
            Value::String(s.id.key().to_string()),
        );
        if let Some(p) = &self.map.payload_field {
            body.insert(p.clone(), Value::String(s.payload.clone()));
        }
        if let Some(company) = &self.map.data_area_id {
            body.insert("dataAreaId".to_string(), Value::String(company.clone()));
        }
        let url = self.collection_url();
        let reply = self
            .http
            .send(op, |c: &Client| odata(c.post(&url)).json(&body))
            .await?;
        match reply.status {
            // 201 with the row, or 204 when the client asked for no content.
            StatusCode::CREATED | StatusCode::NO_CONTENT => Ok(reply),
            _ => Err(odata_error(&reply)),
        }
    }

    /// The URL of the sentinel's row by its entity key (`dataAreaId` and the keys the number
    /// sequence filled), from one read counted as `op`; `None` when there is no such row.
    async fn entity_url(
        &self,
        op: &'static str,
        id: &SentinelId,
    ) -> Result<Option<String>, ConnectorError> {
        let writes = self.writes()?;
        let mut select = vec!["dataAreaId".to_string(), self.map.key_field.clone()];
        select.extend(writes.entity_key.iter().cloned());
        let Some(row) = self.row_of(op, id, &select.join(",")).await? else {
            return Ok(None);
        };
        let mut parts = Vec::new();
        for field in
            std::iter::once("dataAreaId").chain(writes.entity_key.iter().map(String::as_str))
        {
            let Some(value) = row.get(field).and_then(Value::as_str) else {
                return Err(ConnectorError::BadResponse {
                    status: 200,
                    detail: format!("the row of {} has no {field} to address it by", id.key()),
                });
            };
            parts.push(format!("{field}={}", literal(value)));
        }
        Ok(Some(format!(
            "{}({})",
            self.collection_url(),
            parts.join(",")
        )))
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
    /// One `$filter` with every key (`or`): one query of the entity.
    fn reads_together(&self) -> bool {
        true
    }

    async fn lookup_together(&self, ids: &[SentinelId]) -> Result<Vec<Lookup>, ConnectorError> {
        let (rows, _) = self
            .rows_with_keys("lookup", ids, &self.lookup_select())
            .await?;
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
        Ok(self
            .row_of("lookup", id, &self.lookup_select())
            .await?
            .map_or(Lookup::Absent, |row| self.found(&row)))
    }
}

/// F&O as a source: the sentinel is created through the entity the dual-write map covers, in
/// the configured company, with the key in `key_field`, the payload in `payload_field` and the
/// entity's mandatory `fields`; F&O's number sequence assigns the entity key. A delete finds the
/// row's entity key first (one read), then deletes it by that key.
#[async_trait]
impl Source for FoOdata {
    async fn write(&self, s: &Sentinel) -> Result<(), ConnectorError> {
        self.create("write", s).await.map(|_| ())
    }

    async fn read(&self, id: &SentinelId) -> Result<Lookup, ConnectorError> {
        Ok(self
            .row_of("read", id, &self.lookup_select())
            .await?
            .map_or(Lookup::Absent, |row| self.found(&row)))
    }

    async fn delete(&self, id: &SentinelId) -> Result<(), ConnectorError> {
        let Some(url) = self.entity_url("delete", id).await? else {
            return Ok(()); // already gone
        };
        let reply = self
            .http
            .send("delete", |c: &Client| odata(c.delete(&url)))
            .await?;
        match reply.status {
            StatusCode::NO_CONTENT | StatusCode::OK | StatusCode::NOT_FOUND => Ok(()),
            _ => Err(odata_error(&reply)),
        }
    }

    /// An upsert by the sentinel key: the row's entity key first (one read), then a `PATCH`
    /// of the payload by that key; a row not there yet is created as [`Source::write`] does.
    async fn update(&self, s: &Sentinel) -> Result<Updated, ConnectorError> {
        let Some(payload_field) = &self.map.payload_field else {
            return Err(ConnectorError::BadResponse {
                status: 0,
                detail: "an update needs a payload_field to write the new content into".to_string(),
            });
        };
        let Some(url) = self.entity_url("update", &s.id).await? else {
            let reply = self.create("update", s).await?;
            return Ok(reply.updated());
        };
        let mut body = serde_json::Map::new();
        body.insert(payload_field.clone(), Value::String(s.payload.clone()));
        let reply = self
            .http
            .send("update", |c: &Client| odata(c.patch(&url)).json(&body))
            .await?;
        match reply.status {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(reply.updated()),
            _ => Err(odata_error(&reply)),
        }
    }

    /// F&O's `$filter` has no `startswith`; its wildcard equality (`key eq 'prefix*'`) is the
    /// documented form (fact sheet §4.1). The entity has no creation time in common, so
    /// `before` is the sentinel's own: its UUID v7's timestamp.
    async fn list_own(
        &self,
        prefix: &str,
        before: DateTime<Utc>,
    ) -> Result<Vec<SentinelId>, ConnectorError> {
        let mut filter = format!(
            "{} eq {}",
            self.map.key_field,
            literal(&format!("{prefix}*"))
        );
        if let Some(company) = &self.map.data_area_id {
            filter.push_str(&format!(" and dataAreaId eq {}", literal(company)));
        }
        let ids = super::wire::sweep(
            &self.http,
            &self.collection_url(),
            &[
                ("cross-company", "true"),
                ("$filter", filter.as_str()),
                ("$select", self.map.key_field.as_str()),
            ],
            &self.map.key_field,
            odata,
            odata_error,
        )
        .await?;
        Ok(ids
            .into_iter()
            .filter(|id| id.key().starts_with(prefix) && id.written_before(before))
            .collect())
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
    /// As a source: fields every sentinel row gets, the entity's mandatory ones (for
    /// `CustomersV3`: `CustomerGroupId`, a customer group that exists in the company).
    #[serde(default)]
    pub fields: serde_json::Map<String, Value>,
    /// As a source: the entity's key fields besides `dataAreaId`, which F&O's number sequence
    /// fills on create and a delete addresses the row by; known for `CustomersV3`
    /// (`CustomerAccount`).
    #[serde(default)]
    pub entity_key: Option<Vec<String>>,
}

/// What lagwatch knows of the stock entities it can write: the entity key besides
/// `dataAreaId`, the length of its text, and the fields a create must set.
struct KnownEntity {
    name: &'static str,
    entity_key: &'static [&'static str],
    key_length: usize,
    mandatory: &'static [&'static str],
}

/// `CustomersV3`, the entity of the "Customers V3 to accounts" map: a customer account is at
/// most 20 characters, and a customer needs a customer group.
const KNOWN: &[KnownEntity] = &[KnownEntity {
    name: "CustomersV3",
    entity_key: &["CustomerAccount"],
    key_length: 20,
    mandatory: &["CustomerGroupId"],
}];

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
    super::check_base_url(
        &format!("{key}.url"),
        &c.url,
        "https://contoso.operations.dynamics.com",
        &[("data", "lagwatch adds /data/<entity_set> itself")],
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
    for field in c.fields.keys() {
        let at = format!("{key}.fields.{field}");
        if !super::is_name(field) {
            return Err(Issue::new(
                at,
                format!("\"{field}\" is not an OData name (letters, digits, _)"),
            ));
        }
        let taken = [
            Some("dataAreaId"),
            Some(c.key_field.as_str()),
            c.payload_field.as_deref(),
        ];
        if taken
            .iter()
            .flatten()
            .any(|t| t.eq_ignore_ascii_case(field))
        {
            return Err(Issue::new(
                at,
                "lagwatch sets this field itself (dataAreaId from data_area_id, the key, the payload); leave it out of fields",
            ));
        }
    }
    c.auth.resolve(&format!("{key}.auth"), Accepts::ENTRA)?;
    Ok(Box::new(c))
}

impl FoOdataConfig {
    /// The dual-write grace of this system (either direction).
    pub fn grace(&self) -> Duration {
        self.sync_grace.map_or(DEFAULT_SYNC_GRACE, |d| d.get())
    }

    fn known(&self) -> Option<&'static KnownEntity> {
        KNOWN
            .iter()
            .find(|k| k.name.eq_ignore_ascii_case(&self.entity_set))
    }

    /// What creating sentinels here needs, or why it cannot be done (naming the key to set).
    fn writes(&self) -> Result<Writes, String> {
        if self.data_area_id.is_none() {
            return Err(
                "set data_area_id: the legal entity (company) sentinels are created in".to_string(),
            );
        }
        let known = self.known();
        let entity_key: Vec<String> = match (&self.entity_key, known) {
            (Some(k), _) if !k.is_empty() => k.clone(),
            (_, Some(k)) => k.entity_key.iter().map(|f| f.to_string()).collect(),
            _ => {
                return Err(format!(
                    "set entity_key: the key fields of {} besides dataAreaId, to delete a sentinel's row by",
                    self.entity_set
                ));
            }
        };
        if let Some(k) = entity_key
            .iter()
            .find(|k| k.eq_ignore_ascii_case(&self.key_field))
        {
            let length = known.map_or(String::new(), |e| {
                format!(" (at most {} characters)", e.key_length)
            });
            return Err(format!(
                "key_field {k} is the entity key{length}, which F&O's number sequence assigns; put the sentinel key in a text field the map carries, such as OrganizationName"
            ));
        }
        if let Some(missing) = known
            .into_iter()
            .flat_map(|k| k.mandatory.iter())
            .find(|f| !self.fields.contains_key(**f))
        {
            return Err(format!(
                "{} needs {missing} on create: set fields.{missing}",
                self.entity_set
            ));
        }
        Ok(Writes {
            fields: self.fields.clone(),
            entity_key,
        })
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
        self.writes().map(|_| ())
    }

    /// The map's configuration in F&O (`DualWriteProjectConfigurations`, `systems::status`).
    fn status_surfaces(&self) -> &'static [&'static str] {
        &["dual_write"]
    }

    /// A row is found by the sentinel key and written again by its entity key, so a source
    /// with a payload field can update (update canaries, conflict probes).
    fn can_update(&self) -> Result<(), String> {
        self.can_write()?;
        match self.payload_field {
            Some(_) => Ok(()),
            None => Err("an update is written into payload_field, which is not set".to_string()),
        }
    }

    /// The dual-write map writes Dataverse in the F&O write's transaction while it runs.
    fn dual_writes_to(&self, target_kind: &str) -> Option<Duration> {
        (target_kind == "dataverse").then(|| self.grace())
    }

    fn synchronous_within(&self) -> Option<Duration> {
        Some(self.grace())
    }

    fn describe(&self) -> String {
        let writes = match self.writes() {
            Ok(w) => format!(
                ", a source (creates with {}; deletes by dataAreaId,{})",
                if w.fields.is_empty() {
                    "no other field".to_string()
                } else {
                    w.fields.keys().cloned().collect::<Vec<_>>().join(",")
                },
                w.entity_key.join(",")
            ),
            Err(_) => String::new(),
        };
        format!(
            "{} entity {} (key {}, payload {}{}){writes}, sync grace {}, auth {}",
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
        let base = self.url.trim_end_matches('/').to_string();
        let status = {
            let (http, base) = (http.clone(), base.clone());
            status::surfaces(self.kind(), move |surface| match surface {
                Surface::DualWrite {
                    internal_entity,
                    external_entity,
                    status_values,
                } => Some(Arc::new(DualWrite::new(
                    http.clone(),
                    base.clone(),
                    internal_entity.clone(),
                    external_entity.clone(),
                    status_values.clone(),
                )) as Arc<dyn StatusReader>),
                _ => None,
            })
        };
        let connector = Arc::new(FoOdata::new(
            http,
            EntityMap {
                base,
                entity_set: self.entity_set.clone(),
                key_field: self.key_field.clone(),
                payload_field: self.payload_field.clone(),
                data_area_id: self.data_area_id.clone(),
                writes: self.writes().ok(),
            },
        ));
        let mut system = System::target_only(name, self.kind(), gate, connector.clone())
            .with_inventory(connector.clone())
            .with_status(status);
        if connector.map.writes.is_some() {
            system.source = Some(connector);
        }
        Ok(system)
    }
}

/// How long a sentinel may be missing from F&O, after Dataverse acknowledged it, before the
/// map is taken as not running. Not a documented figure: a running map commits the F&O row
/// inside the Dataverse write (fact sheet §4.3), so this only absorbs the first poll gaps and
/// clock granularity.
pub const DEFAULT_SYNC_GRACE: Duration = Duration::from_secs(30);
