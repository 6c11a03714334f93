//! Dataverse Web API, fact sheet §1 (operations, headers, errors) and §2 (service protection).
//!
//! Base `/{env}/api/data/v9.2/` (any `v9.x` is accepted, §1.1). Per configured entity set:
//!
//! - `POST /{set}` → `204` + `OData-EntityId`; with `Prefer: return=representation` → `201`
//!   and the row (`@odata.etag`, id, `createdon` in whole UTC seconds with `Z`,
//!   `versionnumber`, honouring `$select`), `Preference-Applied`, and no `OData-EntityId`
//!   (§1.3). The body may name the id column to choose the GUID.
//! - `PATCH /{set}({id})` upsert → `204` (`200` + row with `return=representation`);
//!   `If-None-Match: *` on an existing row → `412` "A record with matching key values already
//!   exists."; `If-Match: *` on a missing row → `404` "… Does Not Exist"; `If-Match: W/"n"`
//!   that is not the row's ETag → `412` (§1.3, S4).
//! - `GET /{set}({id})?$select=…` → `200` / `404`; `If-None-Match` with the row's ETag → `304`.
//! - `GET /{set}?$select&$filter&$top&$orderby&$count=true` with server-driven paging:
//!   `Prefer: odata.maxpagesize=N` (at most 5,000, the default), `@odata.nextLink` absolute
//!   URLs with a `$skiptoken` paging cookie. With `$top` (at most 5,000) the result is not
//!   paged. `$skip` is refused as Dataverse does.
//! - `DELETE /{set}({id})` → `204` / `404`.
//! - `GET WhoAmI` and the service document, for connectivity checks.
//!
//! Every response carries `OData-Version: 4.0`; errors are `{"error":{"code","message"}}`
//! (§1.5). Authentication: `Authorization: Bearer` with a token of the emulated Entra endpoint
//! for this environment's resource, else `401` with `WWW-Authenticate` and codes named after
//! §1.5's list (`MissingCrmAuthenticationToken`, `InvalidAuthTicket`, `ExpiredAuthTicket`; the
//! documents give no hex values for them). Service protection (§2): with `throttle`, each
//! caller (client id) gets `requests` per sliding `per`; beyond it `429`, `Retry-After` in
//! whole seconds and code `0x80072322`; each request sent while throttled lengthens the
//! penalty by `retry_after` (up to `max_retry_after`), as the documents warn. Sets that are
//! targets of a Dataverse replica also show the replicated rows (read-only copies; local rows
//! win, and `DELETE` hides a copy), whether the replica comes from another set or, by
//! dual-write, from a writable F&O entity ([`super::fno`]); a copy is never replicated on.
//! A `PATCH` of a copy from F&O whose replica is in a link ([`super::link`]) changes its
//! linked columns as a link write instead of making a row of the table's own; a linked
//! row serves its resolved values. `createdon`/`modifiedon` read the environment's clock
//! (its `clock_skew`).
//!
//! Seeded rows ([`super::seed`], served through [`super::seeded`]): a set lists its own
//! seeded rows (source view: deleted rows absent, in-flight rows modified at the time of the
//! request), then each Dataverse replica's copy of a seeded source into it (its drift; the
//! source's ids, the mapped columns, the copy's version and times), then the stored rows and
//! the live replicated ones. A page walks row indices from the position its paging cookie
//! carries, so it costs the rows it walks, not the table; `$count` is arithmetic without
//! `$filter` and a pass over the table with one. `$orderby` over a set with seeded rows is
//! refused (400). Seeded rows are found by id (`GET /{set}({id})`) and are read-only
//! (`PATCH`/`DELETE` → 405).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::MutexGuard;
use std::time::Duration;

use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Map, Value, json};
use tokio::time::Instant;
use uuid::Uuid;

use super::entra::AuthFailure;
use super::link::{self, Book, Planned, Side};
use super::odata::{self, Dialect, Filter};
use super::replication::Visibility;
use super::scenario::{ColumnType, SYSTEM_COLUMNS, Table, Target, Throttle};
use super::seeded::{Cursor, SeedView, walk_segments};
use super::{Emulator, Req, hv, json_response};

/// Largest page (§1.3).
const MAX_PAGE: usize = 5000;

/// The rows of one entity set.
#[derive(Default)]
pub(crate) struct TableStore {
    rows: HashMap<Uuid, Row>,
    /// Replicated copies deleted through this environment's API.
    hidden: HashSet<Uuid>,
    seq: u64,
}

impl TableStore {
    /// Rows written through the Web API, not deleted.
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }
}

struct Row {
    fields: Map<String, Value>,
    createdon: DateTime<Utc>,
    modifiedon: DateTime<Utc>,
    versionnumber: u64,
    seq: u64,
}

/// One caller's service-protection state.
#[derive(Default)]
pub(crate) struct ThrottleState {
    window: VecDeque<Instant>,
    blocked_until: Option<Instant>,
    penalty: Duration,
}

impl ThrottleState {
    /// `Err(retry_after)` if the request is refused.
    fn admit(&mut self, t: &Throttle, now: Instant) -> Result<(), Duration> {
        if let Some(until) = self.blocked_until {
            if now < until {
                self.penalty = (self.penalty + t.retry_after.get()).min(t.max_retry_after.get());
                let until = until.max(now + self.penalty);
                self.blocked_until = Some(until);
                return Err(until - now);
            }
            self.blocked_until = None;
            self.window.clear();
        }
        while self
            .window
            .front()
            .is_some_and(|&f| now.saturating_duration_since(f) >= t.per.get())
        {
            self.window.pop_front();
        }
        if self.window.len() >= t.requests as usize {
            self.penalty = t.retry_after.get();
            self.blocked_until = Some(now + self.penalty);
            return Err(self.penalty);
        }
        self.window.push_back(now);
        Ok(())
    }
}

/// An OData response with the Dataverse headers.
pub(crate) fn dv_json(status: StatusCode, body: &Value) -> Response {
    let mut r = json_response(status, body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        hv("application/json; odata.metadata=minimal"),
    );
    h.insert("odata-version", hv("4.0"));
    r
}

fn dv_empty(status: StatusCode) -> Response {
    let mut r = super::empty_response(status);
    r.headers_mut().insert("odata-version", hv("4.0"));
    r
}

/// `{"error":{"code","message"}}` (§1.5).
pub(crate) fn dv_error(status: StatusCode, code: &str, message: &str) -> Response {
    dv_json(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

/// `405` for a method the resource does not take; `why` ends the sentence (or is empty).
pub(crate) fn dv_wrong_method(method: &Method, why: &str) -> Response {
    dv_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "0x80060888",
        &format!("The HTTP method '{method}' is not allowed on this resource{why}."),
    )
}

fn bad_request(message: &str) -> Response {
    dv_error(StatusCode::BAD_REQUEST, "0x80060888", message)
}

/// Whole seconds, `Z` (§1.4).
pub(crate) fn dv_time(t: DateTime<Utc>) -> String {
    t.trunc_subsecs(0)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// The `Prefer` preferences of a request, lower-cased names.
fn preferences(req: &Req) -> Vec<(String, String)> {
    req.headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            )
        })
        .collect()
}

/// A deterministic GUID from text (for WhoAmI).
fn guid_of(text: &str) -> Uuid {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in text.bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013B);
    }
    uuid::Builder::from_random_bytes(h.to_be_bytes()).into_uuid()
}

impl Emulator {
    /// Resources whose tokens this environment accepts.
    pub(crate) fn dataverse_resources(&self, env: &str, host: &str) -> Vec<String> {
        let mut out = vec![
            self.scenario
                .dataverse
                .get(env)
                .and_then(|e| e.resource.clone())
                .unwrap_or_else(|| format!("https://{env}.crm.dynamics.com")),
        ];
        if !host.is_empty() {
            out.push(format!("http://{host}/{env}"));
        }
        out
    }

    pub(crate) fn dataverse(&self, req: &Req, env: &str) -> Response {
        let accepted = self.dataverse_resources(env, &req.host);
        let token = match self.bearer(req, &accepted) {
            Ok(t) => t,
            Err(f) => return self.dv_unauthorized(env, req, f),
        };
        if let Some(t) = self.scenario.dataverse.get(env).and_then(|e| e.throttle) {
            let admitted = {
                let mut st = self.state();
                st.throttles
                    .entry((env.to_string(), token.client_id.clone()))
                    .or_default()
                    .admit(&t, Instant::now())
            };
            if let Err(wait) = admitted {
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                let per = t.per.get().as_secs_f64();
                let mut r = dv_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "0x80072322",
                    &format!(
                        "Number of requests exceeded the limit of {} over time window of {} seconds.",
                        t.requests, per
                    ),
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, hv(&secs.max(1).to_string()));
                return r;
            }
        }
        let base = format!("http://{}/{env}/api/data/v9.2/", req.host);
        match req.segments.as_slice() {
            [] => self.service_document(req, env, &base),
            [s] if s.is_empty() => self.service_document(req, env, &base),
            [s] if s == "WhoAmI" || s == "WhoAmI()" => {
                if req.method != Method::GET {
                    return dv_error(StatusCode::METHOD_NOT_ALLOWED, "", "WhoAmI is a function");
                }
                dv_json(
                    StatusCode::OK,
                    &json!({
                        "@odata.context": format!("{base}$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse"),
                        "BusinessUnitId": guid_of(&format!("bu:{env}")).to_string(),
                        "UserId": guid_of(&format!("user:{env}:{}", token.client_id)).to_string(),
                        "OrganizationId": guid_of(&format!("org:{env}")).to_string(),
                    }),
                )
            }
            [s] if self.is_synapse_set(env, s) => self.synapse_link(req, env, s, &base),
            [s] if self.is_search_operation(env, s) => match s.as_str() {
                "searchquery" => self.search_query(req, env, &base),
                _ => self.search_status(req, env, &base),
            },
            [s] => self.entity_request(req, env, s, &base),
            [first, ..] => dv_error(
                StatusCode::NOT_IMPLEMENTED,
                "0x80060888",
                &format!("Navigation below '{first}' is not supported by the emulator."),
            ),
        }
    }

    fn dv_unauthorized(&self, env: &str, req: &Req, f: AuthFailure) -> Response {
        let (code, message) = match f {
            AuthFailure::Missing => (
                "MissingCrmAuthenticationToken",
                "The request is missing an Authorization: Bearer token.",
            ),
            AuthFailure::Unknown => (
                "InvalidAuthTicket",
                "The bearer token was not issued by the emulated Entra endpoint.",
            ),
            AuthFailure::Expired => ("ExpiredAuthTicket", "The bearer token has expired."),
            AuthFailure::WrongResource => (
                "InvalidAuthTicket",
                "The bearer token was issued for another resource than this environment.",
            ),
        };
        let tenant = self
            .scenario
            .credentials
            .first()
            .map_or("common", |c| c.tenant.as_str());
        let resource = self
            .dataverse_resources(env, &req.host)
            .into_iter()
            .next()
            .unwrap_or_default();
        let mut r = dv_error(StatusCode::UNAUTHORIZED, code, message);
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            hv(&format!(
                "Bearer authorization_uri=http://{}/entra/{tenant}/oauth2/authorize, resource_id={resource}/",
                req.host
            )),
        );
        r
    }

    fn service_document(&self, req: &Req, env: &str, base: &str) -> Response {
        if req.method != Method::GET {
            return dv_error(StatusCode::METHOD_NOT_ALLOWED, "", "Method not allowed.");
        }
        let sets: Vec<Value> = self
            .scenario
            .dataverse
            .get(env)
            .map(|e| {
                e.tables
                    .keys()
                    .map(|s| json!({"name": s, "kind": "EntitySet", "url": s}))
                    .collect()
            })
            .unwrap_or_default();
        dv_json(
            StatusCode::OK,
            &json!({"@odata.context": format!("{base}$metadata"), "value": sets}),
        )
    }

    fn entity_request(&self, req: &Req, env: &str, segment: &str, base: &str) -> Response {
        let (set, key) = match segment.split_once('(') {
            Some((set, rest)) => match rest.strip_suffix(')') {
                Some(k) => (set, Some(k)),
                None => return bad_request("Bad Request - Error in query syntax."),
            },
            None => (segment, None),
        };
        let Some(table) = self
            .scenario
            .dataverse
            .get(env)
            .and_then(|e| e.tables.get(set))
        else {
            return dv_error(
                StatusCode::NOT_FOUND,
                "0x80060888",
                &format!("Resource not found for the segment '{set}'."),
            );
        };
        let id = match key {
            None => None,
            Some(k) => {
                let k =
                    k.split_once('=').map_or(
                        k,
                        |(col, v)| if col == table.id_column(set) { v } else { k },
                    );
                match Uuid::parse_str(k.trim()) {
                    Ok(id) => Some(id),
                    Err(_) => {
                        return bad_request(&format!(
                            "Bad Request - Error in query syntax: '{k}' is not a GUID, and no alternate keys are defined for {}.",
                            table.logical(set)
                        ));
                    }
                }
            }
        };
        let cx = Cx {
            env,
            set,
            table,
            base,
        };
        match (&req.method, id) {
            (&Method::POST, None) => self.create(req, &cx),
            (&Method::GET, None) => self.query(req, &cx),
            (&Method::GET, Some(id)) => self.retrieve(req, &cx, id),
            (&Method::PATCH | &Method::DELETE, Some(id))
                if self.seeded_by_id(&cx, id).is_some() =>
            {
                dv_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "0x80060888",
                    "Seeded rows are read-only in the emulator.",
                )
            }
            (&Method::PATCH, Some(id)) => self.upsert(req, &cx, id),
            (&Method::DELETE, Some(id)) => self.delete(&cx, id),
            _ => dv_wrong_method(&req.method, ""),
        }
    }

    /// The JSON body of a create or update: the chosen id (if any) and the column values.
    fn parse_body(
        &self,
        req: &Req,
        cx: &Cx,
    ) -> Result<(Option<Uuid>, Map<String, Value>), Response> {
        if let Some(ct) = req.header("content-type")
            && !ct.to_ascii_lowercase().contains("application/json")
        {
            return Err(dv_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "0x80048d19",
                &format!("The content type '{ct}' is not supported; send application/json."),
            ));
        }
        let payload_error = |detail: &str| {
            dv_error(
                StatusCode::BAD_REQUEST,
                "0x80048d19",
                &format!(
                    "Error identified in Payload provided by the user for Entity :'{}', For more information on this error please follow this help link https://go.microsoft.com/fwlink/?linkid=2195293 ----> InnerException : {detail}",
                    cx.set
                ),
            )
        };
        let body: Value = serde_json::from_slice(&req.body)
            .map_err(|e| payload_error(&format!("the body is not JSON: {e}")))?;
        let Value::Object(obj) = body else {
            return Err(payload_error("the body is not a JSON object"));
        };
        let id_col = cx.table.id_column(cx.set);
        let logical = cx.table.logical(cx.set);
        let mut id = None;
        let mut fields = Map::new();
        for (k, v) in obj {
            if let Some(nav) = k.strip_suffix("@odata.bind") {
                let (column, id) = self.bind(cx, nav, &v)?;
                fields.insert(column, Value::String(id.to_string()));
                continue;
            }
            if k.starts_with('@') || k.contains('@') {
                continue;
            }
            if k == id_col {
                match v.as_str().and_then(|s| Uuid::parse_str(s).ok()) {
                    Some(g) => id = Some(g),
                    None => return Err(payload_error(&format!("'{k}' must be a GUID"))),
                }
                continue;
            }
            if SYSTEM_COLUMNS.contains(&k.as_str()) {
                continue;
            }
            let Some(ty) = cx.table.columns.get(&k) else {
                return Err(bad_request(&format!(
                    "The property '{k}' does not exist on type 'Microsoft.Dynamics.CRM.{logical}'. Make sure to only use property names that are defined by the type."
                )));
            };
            let ok = match (ty, &v) {
                (_, Value::Null) | (ColumnType::String, Value::String(_)) => true,
                (ColumnType::Int, Value::Number(n)) => {
                    n.as_i64().is_some_and(|i| i32::try_from(i).is_ok())
                }
                (ColumnType::Bool, Value::Bool(_)) => true,
                _ => false,
            };
            if !ok {
                let edm = match ty {
                    ColumnType::String => "Edm.String",
                    ColumnType::Int => "Edm.Int32",
                    ColumnType::Bool => "Edm.Boolean",
                };
                return Err(payload_error(&format!(
                    "Cannot convert the literal '{v}' to the expected type '{edm}'."
                )));
            }
            fields.insert(k, v);
        }
        Ok((id, fields))
    }

    /// Checks `<nav>@odata.bind: "/<set>(<guid>)"` against the table's lookups and the
    /// referenced record (Dataverse refuses a bind to a record that does not exist with
    /// 0x80040217); the lookup's value column (`_<nav>_value`) and the referenced id.
    fn bind(&self, cx: &Cx, nav: &str, v: &Value) -> Result<(String, Uuid), Response> {
        let logical = cx.table.logical(cx.set);
        let Some(set) = cx.table.lookups.get(nav) else {
            return Err(bad_request(&format!(
                "An undeclared property '{nav}' which only has property annotations in the payload but no property value was found in the payload. In OData, only declared navigation properties and declared named streams can be represented as properties without values. (type 'Microsoft.Dynamics.CRM.{logical}')"
            )));
        };
        let target = v
            .as_str()
            .and_then(|s| s.trim_start_matches('/').strip_prefix(set.as_str()))
            .and_then(|s| s.strip_prefix('(')?.strip_suffix(')'))
            .and_then(|g| Uuid::parse_str(g).ok());
        let Some(id) = target else {
            return Err(bad_request(&format!(
                "The value of '{nav}@odata.bind' must be the entity path /{set}(<guid>), not {v}."
            )));
        };
        let exists = self
            .state()
            .tables
            .get(&(cx.env.to_string(), set.clone()))
            .is_some_and(|t| t.rows.contains_key(&id));
        if !exists {
            return Err(dv_error(
                StatusCode::BAD_REQUEST,
                "0x80040217",
                &format!(
                    "{} With Id = {id} Does Not Exist",
                    set.strip_suffix('s').unwrap_or(set)
                ),
            ));
        }
        Ok((format!("_{nav}_value"), id))
    }

    /// The row as a full JSON object (id, every column, lookups, system columns).
    fn full_row(cx: &Cx, id: Uuid, row: &Row) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(cx.table.id_column(cx.set), Value::String(id.to_string()));
        for c in cx.table.columns.keys() {
            m.insert(c.clone(), row.fields.get(c).cloned().unwrap_or(Value::Null));
        }
        for nav in cx.table.lookups.keys() {
            let c = format!("_{nav}_value");
            let v = row.fields.get(&c).cloned().unwrap_or(Value::Null);
            m.insert(c, v);
        }
        m.insert("createdon".into(), Value::String(dv_time(row.createdon)));
        m.insert("modifiedon".into(), Value::String(dv_time(row.modifiedon)));
        m.insert("versionnumber".into(), json!(row.versionnumber));
        m
    }

    /// Rows replicated into this set that it shows now, as full rows with their version.
    fn replicated_rows(&self, cx: &Cx) -> Result<Vec<ReplicatedRow>, Response> {
        let replicas = self.replicas_for(
            |t| matches!(t, Target::Dataverse { env, table } if env == cx.env && table == cx.set),
        );
        if replicas.is_empty() {
            return Ok(Vec::new());
        }
        if self.unavailable(&replicas).is_some() {
            return Err(dv_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "",
                "Service Unavailable (emulated outage).",
            ));
        }
        let hidden: HashSet<Uuid> = {
            let st = self.state();
            let store = st.tables.get(&(cx.env.to_string(), cx.set.to_string()));
            store.map(|s| s.hidden.clone()).unwrap_or_default()
        };
        let mut out = Vec::new();
        for r in self.target_rows(&replicas, Visibility::Read) {
            if hidden.contains(&r.id) {
                continue;
            }
            let source: Map<String, Value> =
                serde_json::from_str(&r.entry.payload).unwrap_or_default();
            let version = source
                .get("versionnumber")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let arrived = r
                .entry
                .glimpse
                .map(|(a, _)| a)
                .into_iter()
                .chain(r.entry.visible_at)
                .min()
                .map_or_else(
                    || self.dataverse_time(cx.env, Instant::now()),
                    |i| self.dataverse_time(cx.env, i),
                );
            let mut m = Map::new();
            m.insert(cx.table.id_column(cx.set), Value::String(r.id.to_string()));
            for c in cx.table.columns.keys() {
                m.insert(c.clone(), r.fields.get(c).cloned().unwrap_or(Value::Null));
            }
            m.insert("createdon".into(), Value::String(dv_time(arrived)));
            m.insert("modifiedon".into(), Value::String(dv_time(arrived)));
            m.insert("versionnumber".into(), json!(version));
            out.push((r.id, version, m));
        }
        Ok(out)
    }

    /// The seeded rows this set shows, as segments of its listing: its own seed (source
    /// view), then the copies of every Dataverse replica into it whose source is seeded.
    fn dv_segments<'a>(&'a self, cx: &Cx<'a>) -> Vec<SeedView<'a>> {
        let mut out: Vec<SeedView<'a>> = self.source_view(cx.env, cx.set).into_iter().collect();
        let replicas = self.replicas_for(
            |t| matches!(t, Target::Dataverse { env, table } if env == cx.env && table == cx.set),
        );
        out.extend(self.replica_views(&replicas));
        out
    }

    /// Row `i` of seeded segment `v` as this set shows it: the source row, or the replica's
    /// copy in the target table's columns (the source's id, the mapped columns, the copy's
    /// system columns); `None` when the view does not hold it.
    fn seeded_dv_row(
        cx: &Cx,
        v: &SeedView,
        i: u64,
        now: DateTime<Utc>,
    ) -> Option<(Map<String, Value>, u64)> {
        let Some(r) = v.replica else {
            return v.source_row(i, now);
        };
        let (copy, version, _) = v.copy_row(i)?;
        let shaped = r.shape_row(&copy, false);
        let mut m = Map::new();
        m.insert(
            cx.table.id_column(cx.set),
            Value::String(v.id(i).to_string()),
        );
        for c in cx.table.columns.keys() {
            m.insert(c.clone(), shaped.get(c).cloned().unwrap_or(Value::Null));
        }
        for c in SYSTEM_COLUMNS {
            m.insert(
                (*c).to_string(),
                copy.get(*c).cloned().unwrap_or(Value::Null),
            );
        }
        Some((m, version))
    }

    /// The seeded row with id `id` this set shows now, with its version.
    fn seeded_by_id(&self, cx: &Cx, id: Uuid) -> Option<(Map<String, Value>, u64)> {
        let now = self.dataverse_time(cx.env, Instant::now());
        self.dv_segments(cx)
            .iter()
            .find_map(|v| Self::seeded_dv_row(cx, v, v.index_of_id(id)?, now))
    }

    fn representation(
        full: &Map<String, Value>,
        version: u64,
        select: Option<&[String]>,
        id_col: &str,
    ) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("@odata.etag".into(), Value::String(etag(version)));
        for (k, v) in full {
            let wanted = select.is_none_or(|s| s.iter().any(|c| c == k)) || k == id_col;
            if wanted {
                m.insert(k.clone(), v.clone());
            }
        }
        m
    }

    fn parse_select(&self, req: &Req, cx: &Cx) -> Result<Option<Vec<String>>, Response> {
        let Some(s) = req.query.get("$select") else {
            return Ok(None);
        };
        let cols = odata::parse_select(s).map_err(|e| bad_request(&e))?;
        if let Some(c) = cols.iter().find(|c| !cx.table.has_column(cx.set, c)) {
            return Err(bad_request(&format!(
                "Could not find a property named '{c}' on type 'Microsoft.Dynamics.CRM.{}'.",
                cx.table.logical(cx.set)
            )));
        }
        Ok(Some(cols))
    }

    fn context(cx: &Cx, select: Option<&[String]>, entity: bool) -> String {
        let cols = select
            .map(|s| format!("({})", s.join(",")))
            .unwrap_or_default();
        let suffix = if entity { "/$entity" } else { "" };
        format!("{}$metadata#{}{cols}{suffix}", cx.base, cx.set)
    }

    fn next_version(&self, env: &str) -> u64 {
        let mut st = self.state();
        let v = st.versions.entry(env.to_string()).or_insert(1_000_000);
        *v += 1;
        *v
    }

    fn create(&self, req: &Req, cx: &Cx) -> Response {
        let select = match self.parse_select(req, cx) {
            Ok(s) => s,
            Err(r) => return r,
        };
        let (id, fields) = match self.parse_body(req, cx) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let id = id.unwrap_or_else(|| uuid::Builder::from_random_bytes(rand::random()).into_uuid());
        let version = self.next_version(cx.env);
        let now = self.dataverse_time(cx.env, Instant::now()).trunc_subsecs(0);
        // A link write is checked against its policy before anything is stored, and the
        // link's writes stay locked until it is recorded.
        let link = self.dv_link(cx.env, cx.set);
        let mut book = link.map(|_| self.link_book());
        let planned = link.and_then(|li| {
            let row = Row {
                fields: fields.clone(),
                createdon: now,
                modifiedon: now,
                versionnumber: version,
                seq: 0,
            };
            self.plan_link_write(li, Side::A, &Self::full_row(cx, id, &row), &fields)
        });
        if let (Some(b), Some(p)) = (book.as_deref_mut(), &planned)
            && self.link_admit(b, p).is_err()
        {
            return dv_reject();
        }
        let full = {
            let mut st = self.state();
            let Some(store) = st.tables.get_mut(&(cx.env.to_string(), cx.set.to_string())) else {
                return dv_error(StatusCode::NOT_FOUND, "0x80060888", "Resource not found.");
            };
            if store.rows.contains_key(&id) {
                return dv_error(
                    StatusCode::PRECONDITION_FAILED,
                    "0x80040237",
                    "A record with matching key values already exists.",
                );
            }
            store.seq += 1;
            let row = Row {
                fields,
                createdon: now,
                modifiedon: now,
                versionnumber: version,
                seq: store.seq,
            };
            let full = Self::full_row(cx, id, &row);
            store.rows.insert(id, row);
            store.hidden.remove(&id);
            full
        };
        self.replicate(cx.env, cx.set, id, &full);
        self.link_committed(book, planned, id);
        self.written(
            req,
            cx,
            id,
            &full,
            version,
            select.as_deref(),
            StatusCode::CREATED,
        )
    }

    /// The answer to a successful write: 204 + `OData-EntityId`, or the row on request.
    #[allow(clippy::too_many_arguments)]
    fn written(
        &self,
        req: &Req,
        cx: &Cx,
        id: Uuid,
        full: &Map<String, Value>,
        version: u64,
        select: Option<&[String]>,
        with_body: StatusCode,
    ) -> Response {
        let representation = preferences(req)
            .iter()
            .any(|(k, v)| k == "return" && v == "representation");
        if representation {
            let mut full = full.clone();
            self.dv_overlay(cx, [&mut full]);
            let mut body =
                Self::representation(&full, version, select, &cx.table.id_column(cx.set));
            let mut ordered = Map::new();
            ordered.insert(
                "@odata.context".into(),
                Value::String(Self::context(cx, select, true)),
            );
            ordered.append(&mut body);
            let mut r = dv_json(with_body, &Value::Object(ordered));
            r.headers_mut()
                .insert("preference-applied", hv("return=representation"));
            r.headers_mut().insert(header::ETAG, hv(&etag(version)));
            r
        } else {
            let mut r = dv_empty(StatusCode::NO_CONTENT);
            r.headers_mut().insert(
                "odata-entityid",
                hv(&format!("{}{}({id})", cx.base, cx.set)),
            );
            r
        }
    }

    fn upsert(&self, req: &Req, cx: &Cx, id: Uuid) -> Response {
        let select = match self.parse_select(req, cx) {
            Ok(s) => s,
            Err(r) => return r,
        };
        let (body_id, fields) = match self.parse_body(req, cx) {
            Ok(b) => b,
            Err(r) => return r,
        };
        if body_id.is_some_and(|b| b != id) {
            return bad_request("The id in the body does not match the id in the URL.");
        }
        let if_match = req.header("if-match").map(str::trim);
        let if_none_match = req.header("if-none-match").map(str::trim);
        let link = self.dv_link(cx.env, cx.set);
        let existing = {
            let st = self.state();
            st.tables
                .get(&(cx.env.to_string(), cx.set.to_string()))
                .and_then(|s| s.rows.get(&id))
                .map(|row| Self::full_row(cx, id, row))
        };
        if let Some(li) = link
            && existing.is_none()
        {
            match self.linked_dv_copy(cx, li, id) {
                Err(r) => return r,
                Ok(Some(copy)) => {
                    return self.dv_copy_write(req, cx, li, id, copy, fields, select.as_deref());
                }
                Ok(None) => {}
            }
        }
        let version = self.next_version(cx.env);
        let now = self.dataverse_time(cx.env, Instant::now()).trunc_subsecs(0);
        let mut book = link.map(|_| self.link_book());
        let planned = link.and_then(|li| {
            let mut after = existing.unwrap_or_else(|| {
                let row = Row {
                    fields: Map::new(),
                    createdon: now,
                    modifiedon: now,
                    versionnumber: version,
                    seq: 0,
                };
                Self::full_row(cx, id, &row)
            });
            after.extend(fields.clone());
            self.plan_link_write(li, Side::A, &after, &fields)
        });
        if let (Some(b), Some(p)) = (book.as_deref_mut(), &planned)
            && self.link_admit(b, p).is_err()
        {
            return dv_reject();
        }
        let full = {
            let mut st = self.state();
            let Some(store) = st.tables.get_mut(&(cx.env.to_string(), cx.set.to_string())) else {
                return dv_error(StatusCode::NOT_FOUND, "0x80060888", "Resource not found.");
            };
            let exists = store.rows.get(&id).map(|r| r.versionnumber);
            match (exists, if_match, if_none_match) {
                (Some(_), _, Some("*")) => {
                    return dv_error(
                        StatusCode::PRECONDITION_FAILED,
                        "0x80040237",
                        "A record with matching key values already exists.",
                    );
                }
                (None, Some(_), _) => {
                    return dv_error(
                        StatusCode::NOT_FOUND,
                        "0x80040217",
                        &format!("{} With Id = {id} Does Not Exist", cx.table.logical(cx.set)),
                    );
                }
                (Some(v), Some(m), _) if m != "*" && m != etag(v) => {
                    return dv_error(
                        StatusCode::PRECONDITION_FAILED,
                        "0x80060882",
                        "The version of the existing record doesn't match the RowVersion property provided.",
                    );
                }
                _ => {}
            }
            store.seq += 1;
            let seq = store.seq;
            let row = store.rows.entry(id).or_insert_with(|| Row {
                fields: Map::new(),
                createdon: now,
                modifiedon: now,
                versionnumber: version,
                seq,
            });
            for (k, v) in fields {
                row.fields.insert(k, v);
            }
            row.modifiedon = now;
            row.versionnumber = version;
            let full = Self::full_row(cx, id, row);
            store.hidden.remove(&id);
            full
        };
        self.replicate(cx.env, cx.set, id, &full);
        self.link_committed(book, planned, id);
        // §1.3: PATCH with return=representation answers 200 with the row, created or not.
        self.written(
            req,
            cx,
            id,
            &full,
            version,
            select.as_deref(),
            StatusCode::OK,
        )
    }

    fn retrieve(&self, req: &Req, cx: &Cx, id: Uuid) -> Response {
        let select = match self.parse_select(req, cx) {
            Ok(s) => s,
            Err(r) => return r,
        };
        let local = {
            let st = self.state();
            st.tables
                .get(&(cx.env.to_string(), cx.set.to_string()))
                .and_then(|s| s.rows.get(&id))
                .map(|row| (Self::full_row(cx, id, row), row.versionnumber))
        };
        let found = match local.or_else(|| self.seeded_by_id(cx, id)) {
            Some(f) => Some(f),
            None => match self.replicated_rows(cx) {
                Ok(rows) => rows
                    .into_iter()
                    .find(|(rid, _, _)| *rid == id)
                    .map(|(_, v, m)| (m, v)),
                Err(r) => return r,
            },
        };
        let Some((mut full, version)) = found else {
            return dv_error(
                StatusCode::NOT_FOUND,
                "0x80040217",
                &format!("{} With Id = {id} Does Not Exist", cx.table.logical(cx.set)),
            );
        };
        self.dv_overlay(cx, [&mut full]);
        if req.header("if-none-match").map(str::trim) == Some(etag(version).as_str()) {
            return dv_empty(StatusCode::NOT_MODIFIED);
        }
        let mut body = Map::new();
        body.insert(
            "@odata.context".into(),
            Value::String(Self::context(cx, select.as_deref(), true)),
        );
        body.append(&mut Self::representation(
            &full,
            version,
            select.as_deref(),
            &cx.table.id_column(cx.set),
        ));
        let mut r = dv_json(StatusCode::OK, &Value::Object(body));
        r.headers_mut().insert(header::ETAG, hv(&etag(version)));
        r
    }

    fn delete(&self, cx: &Cx, id: Uuid) -> Response {
        let removed = {
            let mut st = self.state();
            st.tables
                .get_mut(&(cx.env.to_string(), cx.set.to_string()))
                .and_then(|s| s.rows.remove(&id))
                .is_some()
        };
        if removed {
            self.unreplicate(cx.env, cx.set, id);
            return dv_empty(StatusCode::NO_CONTENT);
        }
        let replicated = self
            .replicated_rows(cx)
            .map(|rows| rows.iter().any(|(rid, _, _)| *rid == id))
            .unwrap_or(false);
        if replicated {
            let mut st = self.state();
            if let Some(s) = st.tables.get_mut(&(cx.env.to_string(), cx.set.to_string())) {
                s.hidden.insert(id);
            }
            return dv_empty(StatusCode::NO_CONTENT);
        }
        dv_error(
            StatusCode::NOT_FOUND,
            "0x80040217",
            &format!("{} With Id = {id} Does Not Exist", cx.table.logical(cx.set)),
        )
    }

    fn query(&self, req: &Req, cx: &Cx) -> Response {
        for unsupported in ["$skip", "$expand", "$apply", "$search"] {
            if req.query.get(unsupported).is_some() {
                let msg = if unsupported == "$skip" {
                    "The query parameter $skip is not supported.".to_string()
                } else {
                    format!("The query parameter {unsupported} is not supported by the emulator.")
                };
                return bad_request(&msg);
            }
        }
        let select = match self.parse_select(req, cx) {
            Ok(s) => s,
            Err(r) => return r,
        };
        let logical = cx.table.logical(cx.set);
        let filter: Option<Filter> = match req.query.get("$filter") {
            None => None,
            Some(f) => match odata::parse_filter(f) {
                Ok(parsed) => {
                    if let Some(c) = parsed
                        .fields()
                        .into_iter()
                        .find(|c| !cx.table.has_column(cx.set, c))
                    {
                        return bad_request(&format!(
                            "Could not find a property named '{c}' on type 'Microsoft.Dynamics.CRM.{logical}'."
                        ));
                    }
                    Some(parsed)
                }
                Err(e) => return bad_request(&format!("Syntax error in $filter: {e}")),
            },
        };
        let top = match req.query.get("$top").map(odata::parse_top) {
            None => None,
            Some(Ok(t)) => Some(t),
            Some(Err(e)) => return bad_request(&e),
        };
        let order = match req.query.get("$orderby").map(|o| parse_orderby(o, cx)) {
            None => Vec::new(),
            Some(Ok(o)) => o,
            Some(Err(e)) => return bad_request(&e),
        };
        let count = req.query.get("$count") == Some("true");
        let prefs = preferences(req);
        let max_page = prefs
            .iter()
            .find(|(k, _)| k == "odata.maxpagesize")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .filter(|n| *n > 0);
        let page_size = max_page.unwrap_or(MAX_PAGE).min(MAX_PAGE);
        let (page, from) = match req.query.get("$skiptoken") {
            None => (1, Cursor::default()),
            Some(t) => match position_of(t) {
                Some(p) => p,
                None => {
                    return bad_request("The $skiptoken is not a paging cookie of this service.");
                }
            },
        };
        let segments = self.dv_segments(cx);
        if !segments.is_empty() && !order.is_empty() {
            return bad_request("$orderby over seeded rows is not supported by the emulator.");
        }

        let mut rows: Vec<(u64, u64, Map<String, Value>)> = {
            let st = self.state();
            st.tables
                .get(&(cx.env.to_string(), cx.set.to_string()))
                .map(|s| {
                    s.rows
                        .iter()
                        .map(|(id, r)| (r.seq, r.versionnumber, Self::full_row(cx, *id, r)))
                        .collect()
                })
                .unwrap_or_default()
        };
        match self.replicated_rows(cx) {
            Ok(replicated) => {
                let local: HashSet<String> = rows
                    .iter()
                    .filter_map(|(_, _, m)| {
                        m.get(&cx.table.id_column(cx.set))
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .collect();
                for (id, version, m) in replicated {
                    if !local.contains(&id.to_string()) {
                        rows.push((u64::MAX / 2 + version, version, m));
                    }
                }
            }
            Err(r) => return r,
        }
        self.dv_overlay(cx, rows.iter_mut().map(|(_, _, m)| m));
        rows.retain(|(_, _, m)| {
            filter
                .as_ref()
                .is_none_or(|f| f.matches(m, Dialect::DATAVERSE))
        });
        rows.sort_by(|a, b| {
            for (col, desc) in &order {
                let o = cmp_values(a.2.get(col), b.2.get(col));
                let o = if *desc { o.reverse() } else { o };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            a.0.cmp(&b.0)
        });
        let now = self.dataverse_time(cx.env, Instant::now());
        let seeded_row = |s: usize, i: u64| -> Option<(u64, Map<String, Value>)> {
            let (m, v) = Self::seeded_dv_row(cx, &segments[s], i, now)?;
            filter
                .as_ref()
                .is_none_or(|f| f.matches(&m, Dialect::DATAVERSE))
                .then_some((v, m))
        };
        let total = if count {
            let seeded: u64 = segments
                .iter()
                .enumerate()
                .map(|(s, v)| match &filter {
                    None => v.held_count(),
                    Some(_) => (0..v.rows())
                        .filter(|&i| seeded_row(s, i).is_some())
                        .count() as u64,
                })
                .sum();
            seeded + rows.len() as u64
        } else {
            0
        };
        let seg_rows: Vec<u64> = segments.iter().map(SeedView::rows).collect();
        let tail: Vec<(u64, Map<String, Value>)> =
            rows.into_iter().map(|(_, v, m)| (v, m)).collect();
        let want = top.map_or(page_size, |t| t.min(MAX_PAGE));
        let (chosen, next) = walk_segments(&seg_rows, tail, from, want, seeded_row);
        // With `$top` the result is not paged.
        let next = next.filter(|_| top.is_none());
        let id_col = cx.table.id_column(cx.set);
        let last_id = chosen
            .last()
            .and_then(|(_, m)| m.get(&id_col))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let first_id = chosen
            .first()
            .and_then(|(_, m)| m.get(&id_col))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let value: Vec<Value> = chosen
            .iter()
            .map(|(v, m)| Value::Object(Self::representation(m, *v, select.as_deref(), &id_col)))
            .collect();
        let mut body = Map::new();
        body.insert(
            "@odata.context".into(),
            Value::String(Self::context(cx, select.as_deref(), false)),
        );
        if count {
            body.insert("@odata.count".into(), json!(total));
        }
        body.insert("value".into(), Value::Array(value));
        if let Some(position) = next {
            let next_page = page + 1;
            let cookie = format!(
                "<cookie pagenumber=\"{next_page}\" pagingcookie=\"{}\" istracking=\"False\" />",
                lagwatch::percent::component(&format!(
                    "<cookie page=\"{page}\" position=\"{}\"><{id_col} last=\"{{{}}}\" first=\"{{{}}}\" /></cookie>",
                    position.encode(),
                    last_id.to_uppercase(),
                    first_id.to_uppercase()
                ))
            );
            let rest = req.query.encode_without(&["$skiptoken"]);
            let sep = if rest.is_empty() { "" } else { "&" };
            body.insert(
                "@odata.nextLink".into(),
                Value::String(format!(
                    "{}{}?{rest}{sep}$skiptoken={}",
                    cx.base,
                    cx.set,
                    lagwatch::percent::component(&cookie)
                )),
            );
        }
        let mut r = dv_json(StatusCode::OK, &Value::Object(body));
        if let Some(n) = max_page {
            r.headers_mut()
                .insert("preference-applied", hv(&format!("odata.maxpagesize={n}")));
        }
        r
    }
}

/// The answer to a write the `reject` policy of a link refused ([`super::link`]).
fn dv_reject() -> Response {
    dv_error(
        StatusCode::BAD_REQUEST,
        link::DV_REJECT_CODE,
        link::DV_REJECT_MESSAGE,
    )
}

impl Emulator {
    /// Overlays the resolved values of the link whose side is this table, if any
    /// ([`super::link`]), on `rows` (full rows), `modifiedon` with them.
    fn dv_overlay<'a>(&self, cx: &Cx, rows: impl IntoIterator<Item = &'a mut Map<String, Value>>) {
        if let Some(li) = self.dv_link(cx.env, cx.set) {
            self.link_overlay(li, Side::A, rows, Some("modifiedon"));
        }
    }

    /// Records the planned link write of row `id` once stored and replicated: delivered
    /// when the carrying replica shows that version. Releases the link's writes.
    fn link_committed(
        &self,
        book: Option<MutexGuard<'_, Book>>,
        planned: Option<Planned>,
        id: Uuid,
    ) {
        if let (Some(mut b), Some(p)) = (book, planned) {
            let carrier = self.links()[p.link].out;
            let delivery = self.delivery_via(carrier, id);
            self.link_commit(&mut b, p, delivery);
        }
    }

    /// The copy with id `id` the link's F&O → Dataverse replica put into this table and it
    /// shows now (its served row and version); `None` when there is none.
    fn linked_dv_copy(&self, cx: &Cx, li: usize, id: Uuid) -> Result<Option<Served>, Response> {
        let back = &self.replicas[self.links()[li].back];
        if !self
            .target_rows(&[back], Visibility::Read)
            .iter()
            .any(|r| r.id == id)
        {
            return Ok(None);
        }
        Ok(self
            .replicated_rows(cx)?
            .into_iter()
            .find(|(rid, _, _)| *rid == id)
            .map(|(_, v, m)| (v, m)))
    }

    /// `PATCH` of a copy dual-written from F&O, in a link: a link write on this side, which
    /// changes the served row without forking a row of the table's own. Only the columns the
    /// link carries can change (the key may be repeated).
    #[allow(clippy::too_many_arguments)]
    fn dv_copy_write(
        &self,
        req: &Req,
        cx: &Cx,
        li: usize,
        id: Uuid,
        (version, copy): Served,
        fields: Map<String, Value>,
        select: Option<&[String]>,
    ) -> Response {
        if req.header("if-none-match").map(str::trim) == Some("*") {
            return dv_error(
                StatusCode::PRECONDITION_FAILED,
                "0x80040237",
                "A record with matching key values already exists.",
            );
        }
        if let Some(m) = req.header("if-match").map(str::trim)
            && m != "*"
            && m != etag(version)
        {
            return dv_error(
                StatusCode::PRECONDITION_FAILED,
                "0x80060882",
                "The version of the existing record doesn't match the RowVersion property provided.",
            );
        }
        let def = &self.links()[li];
        let linked = def.fields(Side::A);
        for (k, v) in &fields {
            let same_key = k == &def.key_a && copy.get(k) == Some(v);
            if !same_key && !linked.contains(&k.as_str()) {
                return bad_request(&format!(
                    "The emulator holds this row as a copy dual-written from finance and operations apps: only the columns link {} carries can change here ({}); '{k}' is not one of them.",
                    def.name,
                    linked.join(", ")
                ));
            }
        }
        let mut after = copy;
        after.extend(fields.clone());
        let mut book = self.link_book();
        if let Some(p) = self.plan_link_write(li, Side::A, &after, &fields) {
            if self.link_admit(&mut book, &p).is_err() {
                return dv_reject();
            }
            let delivery = self.delivery_drawn(def.out, p.committed);
            self.link_commit(&mut book, p, delivery);
        }
        drop(book);
        self.written(req, cx, id, &after, version, select, StatusCode::OK)
    }
}

/// A served row's version and full row.
type Served = (u64, Map<String, Value>);

/// A replicated row: id, version and the full row.
type ReplicatedRow = (Uuid, u64, Map<String, Value>);

/// What an entity-set request works on.
struct Cx<'a> {
    env: &'a str,
    set: &'a str,
    table: &'a Table,
    base: &'a str,
}

/// The page number of a paging cookie (`<cookie pagenumber="2" pagingcookie="…" …`) and the
/// position it carries: the emulator keeps where the next page starts (seeded segment, row
/// index, rows of the tail served) in the inner cookie, where Dataverse keeps the first and
/// last ids of the page.
fn position_of(token: &str) -> Option<(usize, Cursor)> {
    let rest = token.split_once("pagenumber=\"")?.1;
    let n: usize = rest.split_once('"')?.0.parse().ok()?;
    let inner = token.split_once("pagingcookie=\"")?.1.split_once('"')?.0;
    let inner = odata::percent_decode(inner, false).ok()?;
    let pos = inner.split_once("position=\"")?.1.split_once('"')?.0;
    Some((n, Cursor::decode(pos)?)).filter(|(n, _)| *n >= 1)
}

fn parse_orderby(s: &str, cx: &Cx) -> Result<Vec<(String, bool)>, String> {
    s.split(',')
        .map(|item| {
            let mut parts = item.split_whitespace();
            let col = parts.next().unwrap_or_default().to_string();
            let desc = match parts.next().map(str::to_ascii_lowercase).as_deref() {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(other) => return Err(format!("invalid $orderby direction \"{other}\"")),
            };
            if !cx.table.has_column(cx.set, &col) {
                return Err(format!(
                    "Could not find a property named '{col}' on type 'Microsoft.Dynamics.CRM.{}'.",
                    cx.table.logical(cx.set)
                ));
            }
            Ok((col, desc))
        })
        .collect()
}

fn cmp_values(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Some(Value::String(x)), Some(Value::String(y))) => x.to_lowercase().cmp(&y.to_lowercase()),
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (None | Some(Value::Null), None | Some(Value::Null)) => Ordering::Equal,
        (None | Some(Value::Null), _) => Ordering::Less,
        (_, None | Some(Value::Null)) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lagwatch::config::Dur;

    #[tokio::test(start_paused = true)]
    async fn throttling_lengthens_for_clients_that_keep_sending() {
        let t = Throttle {
            requests: 2,
            per: Dur::secs(10),
            retry_after: Dur::secs(5),
            max_retry_after: Dur::secs(12),
        };
        let mut s = ThrottleState::default();
        let now = Instant::now();
        assert!(s.admit(&t, now).is_ok());
        assert!(s.admit(&t, now).is_ok());
        assert_eq!(s.admit(&t, now), Err(Duration::from_secs(5)));
        assert_eq!(s.admit(&t, now), Err(Duration::from_secs(10)));
        assert_eq!(s.admit(&t, now), Err(Duration::from_secs(12)), "capped");
        let later = now + Duration::from_secs(13);
        assert!(
            s.admit(&t, later).is_ok(),
            "a fresh budget after the penalty"
        );
    }

    #[test]
    fn paging_cookies_round_trip() {
        let inner = lagwatch::percent::component(
            "<cookie page=\"2\" position=\"1.42.3\"><id last=\"{A}\" /></cookie>",
        );
        assert_eq!(
            position_of(&format!(
                "<cookie pagenumber=\"3\" pagingcookie=\"{inner}\" istracking=\"False\" />"
            )),
            Some((
                3,
                Cursor {
                    seg: 1,
                    i: 42,
                    tail: 3
                }
            ))
        );
        assert_eq!(position_of("junk"), None);
        assert_eq!(
            position_of("<cookie pagenumber=\"3\" pagingcookie=\"x\" />"),
            None
        );
    }
}
