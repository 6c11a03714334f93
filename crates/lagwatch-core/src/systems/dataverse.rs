//! `dataverse`: the Dataverse Web API (v9.2), as a source and as a target.
//!
//! Writes use upsert-create-only: `PATCH {table}({sentinel uuid})` with `If-None-Match: *`, so
//! the client chooses the record id and a retried write can never create a duplicate (a 412 on
//! the retry means the first attempt landed). `POST` with `Prefer: return=representation` is
//! available for tables where upsert is not allowed. Reads select only the key and payload
//! columns. Another environment is a target of the same kind, looked up by the key column.
//! Shapes follow Microsoft's Web API documentation (see `docs/` fact sheet §1): OData headers
//! on every request, `{"error":{"code","message"}}` bodies turned into typed errors.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::{Client, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::http_inventory::{ODataLister, check_query, odata_table, odata_timestamp};
use super::status::{
    self, dataverse_search::DataverseSearchStatus, fabric_link::FabricLink,
    synapse_link::SynapseLink,
};
use super::wire::{literal, odata, web_api_base};
use super::{BuildContext, System, SystemKind, SystemSpec, decode_as};
use crate::auth::{Accepts, AuthBlock};
use crate::config::Issue;
use crate::config::platform::Surface;
use crate::connector::inventory::{Inventory, InventoryPage, InventoryQuery};
use crate::connector::status::StatusReader;
use crate::connector::{ConnectorError, Lookup, Source, Target, Updated};
use crate::gate::Gate;
use crate::net::{HttpSystem, Reply, excerpt};
use crate::sentinel::{Sentinel, SentinelId};

/// How sentinels are created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreateMode {
    /// `PATCH table(id)` + `If-None-Match: *`: idempotent under retries.
    #[default]
    Upsert,
    /// `POST table` with the id in the body and `Prefer: return=representation`.
    Post,
}

/// Where sentinels live in a Dataverse environment.
#[derive(Debug, Clone, PartialEq)]
pub struct TableMap {
    /// Web API base, `https://org.crm.dynamics.com/api/data/v9.2` (no trailing slash).
    pub base: String,
    /// Entity set name, e.g. `accounts`.
    pub table: String,
    /// Primary key column, e.g. `accountid`.
    pub id_column: String,
    /// Column holding the sentinel key, e.g. `accountnumber`.
    pub key_column: String,
    /// Column holding the payload, e.g. `description`.
    pub payload_column: String,
    /// Fixed extra fields written with every sentinel (`customertypecode: 3`, a company bind).
    pub fields: Map<String, Value>,
    pub create: CreateMode,
    /// The table's lookup to itself that a causal pair's child binds to its parent, e.g.
    /// `parentaccountid` (its single-valued navigation property).
    pub parent_column: Option<String>,
}

/// Config of a `kind: dataverse` system.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataverseConfig {
    /// Environment URL, `https://<org>.crm.dynamics.com`.
    pub url: String,
    /// Web API version.
    #[serde(default = "super::wire::default_api_version")]
    pub api_version: String,
    /// Entity set name of the sentinel table, e.g. `accounts`.
    pub table: String,
    /// Its primary key column, e.g. `accountid`.
    pub id_column: String,
    /// The string column that holds the sentinel key, e.g. `accountnumber`.
    pub key_column: String,
    /// The text column that holds the payload, e.g. `description`.
    pub payload_column: String,
    /// Fixed fields written with every sentinel: `customertypecode: 3` and a company bind
    /// (`"msdyn_company@odata.bind": "/cdm_companies(<guid>)"`) for dual-write.
    #[serde(default)]
    pub fields: Map<String, Value>,
    #[serde(default)]
    pub create: CreateMode,
    /// A lookup column of the sentinel table to the table itself (its navigation property,
    /// e.g. `parentaccountid` on `accounts`), with which a causal pair's child references its
    /// parent. Without it the source writes no causal pairs.
    pub parent_column: Option<String>,
    /// An Entra method (see `auth::credential`).
    pub auth: AuthBlock,
    /// Token scope; `<environment URL>/.default` when absent.
    pub scope: Option<String>,
}

/// Registry entry: types and checks a `kind: dataverse` block.
///
/// # Errors
/// An [`Issue`] naming the offending key.
pub fn decode(key: &str, value: Value) -> Result<Box<dyn SystemKind>, Issue> {
    let mut c: DataverseConfig = decode_as(key, value)?;
    super::wire::check_environment_url(&format!("{key}.url"), &c.url)?;
    super::check_names(
        key,
        "a Dataverse logical name",
        &[
            ("table", &c.table),
            ("id_column", &c.id_column),
            ("key_column", &c.key_column),
            ("payload_column", &c.payload_column),
        ],
    )?;
    if let Some(parent) = &c.parent_column {
        super::check_names(
            key,
            "a Dataverse navigation property name",
            &[("parent_column", parent)],
        )?;
    }
    c.auth.resolve(&format!("{key}.auth"), Accepts::ENTRA)?;
    Ok(Box::new(c))
}

impl SystemSpec for DataverseConfig {
    fn kind(&self) -> &'static str {
        "dataverse"
    }

    /// One database read by key: a row once there stays until it is deleted.
    fn monotonic_reads(&self) -> bool {
        true
    }

    fn can_list(&self) -> Result<(), String> {
        Ok(())
    }
    fn can_write(&self) -> Result<(), String> {
        Ok(())
    }

    /// Synapse Link's and Link to Fabric's tables and Dataverse search's status are read
    /// through the environment's Web API (`systems::status`).
    fn status_surfaces(&self) -> &'static [&'static str] {
        &["synapse_link", "fabric_link", "dataverse_search"]
    }

    /// An upsert by the record's id (`PATCH` without `If-None-Match`) writes a new version;
    /// with `create: post` the id is the server's, so there is nothing to address.
    fn can_update(&self) -> Result<(), String> {
        match self.create {
            CreateMode::Upsert => Ok(()),
            CreateMode::Post => Err(
                "with create: post the record id is Dataverse's, so the canary cannot be addressed; use create: upsert"
                    .to_string(),
            ),
        }
    }

    /// Reads and updates address a record by the id lagwatch gave it; a copy that a link
    /// created has an id of its own.
    fn updates_copies(&self) -> Result<(), String> {
        Err("it addresses a record by the id lagwatch gave it when it created it, and a copy a link made has an id of its own; name it first in between, so the canary row is created there".to_string())
    }

    fn can_link(&self) -> Result<(), String> {
        match self.parent_column {
            Some(_) => Ok(()),
            None => Err(
                "it has no parent_column (a lookup of the sentinel table to itself) to reference a parent with"
                    .to_string(),
            ),
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} table {} (key {}, payload {}), {:?} writes, auth {}",
            self.url,
            self.table,
            self.key_column,
            self.payload_column,
            self.create,
            self.auth.method()
        )
    }
}

impl SystemKind for DataverseConfig {
    fn build(&self, name: &str, cx: &BuildContext, gate: Arc<Gate>) -> Result<System, Issue> {
        let http = super::http_system(
            name,
            cx,
            &gate,
            self.auth.credential(),
            || super::scope_or_derived(name, self.scope.as_deref(), &self.url),
            None,
        )?;
        let base = web_api_base(&self.url, &self.api_version);
        let status = {
            let (http, base) = (http.clone(), base.clone());
            status::surfaces(self.kind(), move |surface| {
                let reader: Arc<dyn StatusReader> = match surface {
                    Surface::SynapseLink { table, profile } => Arc::new(SynapseLink::new(
                        http.clone(),
                        base.clone(),
                        table.clone(),
                        profile.clone(),
                    )),
                    Surface::FabricLink { table } => {
                        Arc::new(FabricLink::new(http.clone(), base.clone(), table.clone()))
                    }
                    Surface::DataverseSearch { table } => Arc::new(DataverseSearchStatus::new(
                        http.clone(),
                        base.clone(),
                        table.clone(),
                    )),
                    _ => return None,
                };
                Some(reader)
            })
        };
        let connector = Arc::new(Dataverse::new(
            http,
            TableMap {
                base,
                table: self.table.clone(),
                id_column: self.id_column.clone(),
                key_column: self.key_column.clone(),
                payload_column: self.payload_column.clone(),
                fields: self.fields.clone(),
                create: self.create,
                parent_column: self.parent_column.clone(),
            },
        ));
        Ok(System {
            name: name.to_string(),
            kind: self.kind(),
            gate,
            source: Some(connector.clone()),
            target: Some(connector.clone()),
            inventory: Some(connector),
            status: Some(status),
        })
    }
}

/// The connector: one environment, one table.
pub struct Dataverse {
    http: HttpSystem,
    map: Arc<TableMap>,
}

impl Dataverse {
    /// Whether `what` (a write, an update) stored the record. A 200/201 is Dataverse's answer
    /// only with the record's representation. A 200 carrying anything else (a proxy's HTML
    /// page, JSON of another shape) says nothing about the write, and counting it as written
    /// makes every path time out (and a synchronous target report `halted`) for a sentinel
    /// that may not exist: an error, whose sentinel the engine deletes in case it landed.
    fn stored(&self, reply: &Reply, what: &str) -> Result<(), ConnectorError> {
        match reply.status {
            StatusCode::NO_CONTENT => Ok(()),
            StatusCode::CREATED | StatusCode::OK if self.is_representation(reply) => Ok(()),
            StatusCode::CREATED | StatusCode::OK => Err(reply.bad_response(format!(
                "{what} answered without the record's representation: {}",
                excerpt(&reply.body)
            ))),
            _ => Err(api_error(reply)),
        }
    }

    /// Whether a 200/201 body is a record's representation: a JSON object with the id column.
    fn is_representation(&self, reply: &Reply) -> bool {
        serde_json::from_slice::<Value>(&reply.body)
            .ok()
            .and_then(|v| v.as_object().map(|o| o.contains_key(&self.map.id_column)))
            .unwrap_or(false)
    }
}

/// The error a Dataverse error body describes, or the status and an excerpt.
fn api_error(reply: &Reply) -> ConnectorError {
    #[derive(Deserialize)]
    struct Body {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let detail = match serde_json::from_slice::<Body>(&reply.body) {
        Ok(b) if b.error.code.is_empty() => excerpt(b.error.message.as_bytes()),
        Ok(b) => format!("{}: {}", b.error.code, excerpt(b.error.message.as_bytes())),
        Err(_) => excerpt(&reply.body),
    };
    reply.bad_response(detail)
}

impl Dataverse {
    pub fn new(http: HttpSystem, map: TableMap) -> Self {
        Dataverse {
            http,
            map: Arc::new(map),
        }
    }

    fn record_url(&self, id: &SentinelId) -> String {
        format!("{}/{}({})", self.map.base, self.map.table, id.uuid())
    }

    fn collection_url(&self) -> String {
        format!("{}/{}", self.map.base, self.map.table)
    }

    fn body(&self, s: &Sentinel, with_id: bool) -> Value {
        let mut body = self.map.fields.clone();
        body.insert(
            self.map.key_column.clone(),
            Value::String(s.id.key().to_string()),
        );
        body.insert(
            self.map.payload_column.clone(),
            Value::String(s.payload.clone()),
        );
        if with_id {
            body.insert(
                self.map.id_column.clone(),
                Value::String(s.id.uuid().to_string()),
            );
        }
        Value::Object(body)
    }

    /// Creates the sentinel's record, with `extra` (a parent's bind) in the body.
    async fn create(
        &self,
        s: &Sentinel,
        extra: Option<(String, Value)>,
    ) -> Result<(), ConnectorError> {
        let with = |mut body: Value| {
            if let (Some((k, v)), Value::Object(m)) = (extra.clone(), &mut body) {
                m.insert(k, v);
            }
            body
        };
        let reply = match self.map.create {
            CreateMode::Upsert => {
                let url = self.record_url(&s.id);
                let body = with(self.body(s, false));
                self.http
                    .send("write", |c: &Client| {
                        odata(c.patch(&url))
                            .header("If-None-Match", "*")
                            .json(&body)
                    })
                    .await?
            }
            CreateMode::Post => {
                let url = self.collection_url();
                let body = with(self.body(s, true));
                let select = self.map.id_column.clone();
                self.http
                    .send("write", |c: &Client| {
                        odata(c.post(&url))
                            .query(&[("$select", select.as_str())])
                            .header("Prefer", "return=representation")
                            .json(&body)
                    })
                    .await?
            }
        };
        // Create-only upsert of an id that exists: an earlier attempt of this very write
        // landed (ids are fresh UUIDs), so the sentinel is there.
        if reply.status == StatusCode::PRECONDITION_FAILED && self.map.create == CreateMode::Upsert
        {
            return Ok(());
        }
        self.stored(&reply, "a write")
    }

    fn select(&self) -> String {
        format!("{},{}", self.map.key_column, self.map.payload_column)
    }

    /// The payload column of a returned row, if it is a string.
    fn payload_of(&self, row: &Value) -> Option<String> {
        row.get(&self.map.payload_column)
            .and_then(Value::as_str)
            .map(str::to_string)
    }
}

#[derive(Deserialize)]
struct Collection {
    #[serde(default)]
    value: Vec<Value>,
}

#[async_trait]
impl Source for Dataverse {
    /// An upsert of the record by its id: creates it the first time, then each version.
    async fn update(&self, s: &Sentinel) -> Result<Updated, ConnectorError> {
        let url = self.record_url(&s.id);
        let body = self.body(s, false);
        let reply = self
            .http
            .send("update", |c: &Client| odata(c.patch(&url)).json(&body))
            .await?;
        self.stored(&reply, "an update")?;
        Ok(reply.updated())
    }

    async fn write(&self, s: &Sentinel) -> Result<(), ConnectorError> {
        self.create(s, None).await
    }

    /// The child binds its parent with `<parent_column>@odata.bind` (fact sheet: associating
    /// on create), so Dataverse stores the reference in the same write.
    async fn write_child(&self, s: &Sentinel, parent: &SentinelId) -> Result<(), ConnectorError> {
        let Some(column) = &self.map.parent_column else {
            return Err(ConnectorError::BadResponse {
                status: 0,
                detail: "no parent_column is configured".to_string(),
            });
        };
        let bind = (
            format!("{column}@odata.bind"),
            Value::String(format!("/{}({})", self.map.table, parent.uuid())),
        );
        self.create(s, Some(bind)).await
    }
    /// `GET <table>(<id>)?$select=versionnumber`: the row version every Dataverse row has,
    /// in the space Synapse Link's and Dataverse search's watermarks count in.
    async fn version_of(&self, id: &SentinelId) -> Result<Option<u64>, ConnectorError> {
        let url = self.record_url(id);
        let reply = self
            .http
            .send("read", |c: &Client| {
                odata(c.get(&url)).query(&[("$select", "versionnumber")])
            })
            .await?;
        match reply.status {
            StatusCode::OK => {
                let row: Value = reply.json()?;
                match row.get("versionnumber") {
                    Some(Value::Number(n)) => Ok(n.as_u64()),
                    Some(Value::String(s)) => Ok(s.parse().ok()),
                    _ => Ok(None),
                }
            }
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(api_error(&reply)),
        }
    }

    async fn read(&self, id: &SentinelId) -> Result<Lookup, ConnectorError> {
        let url = self.record_url(id);
        let select = self.select();
        let reply = self
            .http
            .send("read", |c: &Client| {
                odata(c.get(&url))
                    .header("If-None-Match", "null")
                    .query(&[("$select", select.as_str())])
            })
            .await?;
        match reply.status {
            StatusCode::OK => {
                let row: Value = reply.json()?;
                Ok(Lookup::Present {
                    payload: self.payload_of(&row),
                })
            }
            StatusCode::NOT_FOUND => Ok(Lookup::Absent),
            _ => Err(api_error(&reply)),
        }
    }

    async fn delete(&self, id: &SentinelId) -> Result<(), ConnectorError> {
        let url = self.record_url(id);
        let reply = self
            .http
            .send("delete", |c: &Client| odata(c.delete(&url)))
            .await?;
        match reply.status {
            // 204 is the documented answer. A 200 is not: a proxy's page or a garbled answer
            // must not make lagwatch forget a sentinel that may still be there.
            StatusCode::NO_CONTENT | StatusCode::NOT_FOUND => Ok(()),
            _ => Err(api_error(&reply)),
        }
    }

    async fn list_own(
        &self,
        prefix: &str,
        before: DateTime<Utc>,
    ) -> Result<Vec<SentinelId>, ConnectorError> {
        let filter = format!(
            "startswith({},{}) and createdon lt {}",
            self.map.key_column,
            literal(prefix),
            before.to_rfc3339_opts(SecondsFormat::Secs, true)
        );
        let select = format!("{},{}", self.map.id_column, self.map.key_column);
        super::wire::sweep(
            &self.http,
            &self.collection_url(),
            &[("$select", select.as_str()), ("$filter", filter.as_str())],
            &self.map.key_column,
            |r| odata(r).header("If-None-Match", "null"),
            api_error,
        )
        .await
    }
}

#[async_trait]
impl Target for Dataverse {
    /// One `$filter` with every key: one query, answered from one state of the table.
    fn reads_together(&self) -> bool {
        true
    }

    async fn lookup_together(&self, ids: &[SentinelId]) -> Result<Vec<Lookup>, ConnectorError> {
        let rows = self.rows_with_keys(ids).await?;
        Ok(ids
            .iter()
            .map(|id| {
                rows.iter()
                    // Dataverse compares strings without regard to case; so are its rows matched.
                    .find(|row| {
                        row.get(&self.map.key_column)
                            .and_then(Value::as_str)
                            .is_some_and(|k| k.eq_ignore_ascii_case(id.key()))
                    })
                    .map_or(Lookup::Absent, |row| Lookup::Present {
                        payload: self.payload_of(row),
                    })
            })
            .collect())
    }

    async fn lookup(&self, id: &SentinelId) -> Result<Lookup, ConnectorError> {
        let rows = self.rows_with_keys(std::slice::from_ref(id)).await?;
        Ok(match rows.first() {
            Some(row) => Lookup::Present {
                payload: self.payload_of(row),
            },
            None => Lookup::Absent,
        })
    }
}

impl Dataverse {
    /// The rows whose key column is one of `ids`' keys, in one query (`$filter` with `or`,
    /// `$top` the number of keys): a lookup, or a pair's read of both.
    async fn rows_with_keys(&self, ids: &[SentinelId]) -> Result<Vec<Value>, ConnectorError> {
        let url = self.collection_url();
        let select = self.select();
        let filter = ids
            .iter()
            .map(|id| format!("{} eq {}", self.map.key_column, literal(id.key())))
            .collect::<Vec<_>>()
            .join(" or ");
        let top = ids.len().to_string();
        let reply = self
            .http
            .send("lookup", |c: &Client| {
                odata(c.get(&url)).header("If-None-Match", "null").query(&[
                    ("$select", select.as_str()),
                    ("$filter", filter.as_str()),
                    ("$top", top.as_str()),
                ])
            })
            .await?;
        if reply.status != StatusCode::OK {
            return Err(api_error(&reply));
        }
        let page: Collection = reply.json()?;
        Ok(page.value)
    }
}

/// Most rows the Web API returns per page (fact sheet §1.3); `odata.maxpagesize` only lowers it.
pub const MAX_INVENTORY_PAGE: u32 = 5000;

/// Lists a table for reconciliation, from either side of a path: `GET {base}/{table}` with
/// `$select` of the asked columns (and `$filter={column} ge {instant}` for a windowed scope),
/// `Prefer: odata.maxpagesize`, then each `@odata.nextLink` exactly as the server wrote it.
///
/// Why no `$orderby`: server-driven paging already walks the table in a stable order, sorting
/// costs the server, and the runner sorts rows itself. Why the next link is checked: it
/// carries our bearer token, so it must stay on the configured environment's origin.
#[async_trait]
impl Inventory for Dataverse {
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
            headers: |req| odata(req).header("If-None-Match", "null"),
            error: api_error,
        };
        lister
            .page(query, next, || {
                let table = query.table.as_deref().unwrap_or(&self.map.table);
                let mut params = vec![("$select", query.columns.join(","))];
                if let Some((column, since)) = &query.changed_since {
                    let filter = format!("{column} ge {}", odata_timestamp(*since));
                    params.push(("$filter", filter));
                }
                (format!("{}/{table}", self.map.base), params)
            })
            .await
    }
}
