//! Finance & Operations OData, fact sheet §4.1: rows dual-written from Dataverse (§4.3), and
//! rows callers write themselves into the entities the scenario declares writable, which
//! dual-write copies into Dataverse.
//!
//! Base `/fno/{env}/data/`. Entity sets are the F&O targets of the scenario's replicas
//! (`CustomersV3`, …) and the entities under `fno.<env>.entities`. A dual-written row is the
//! replicated Dataverse row under the replica's field `map` and `transform`, plus
//! `dataAreaId` (the replica's `company`) and an `@odata.etag`; a written row is what the
//! caller wrote, with its company, key and ETag.
//!
//! - `GET /{Entity}?cross-company=true&$filter=Field eq 'value'&$select=…&$top=1` →
//!   `{"@odata.context":…,"value":[…]}`: dual-written rows, then written ones in creation
//!   order. Without `cross-company=true` only rows of the environment's `default_company`
//!   are returned (§4.1). `$filter` supports the shared subset (`eq ne gt ge lt le and or
//!   not`, parentheses) with F&O's wildcard equality (`Field eq '*text*'`); `$count=true`
//!   adds `@odata.count`. Server-driven paging: `Prefer: odata.maxpagesize=N`, at most 10,000
//!   rows, which is also the page without the preference (§4.1 gives 10,000 as the maximum
//!   page); `@odata.nextLink` repeats the query with an opaque `$skiptoken` (the documents do
//!   not show F&O's own form; clients follow the link as it is). `$top` above the page size
//!   is paged too, the link carrying what is left.
//! - `GET /{Entity}(dataAreaId='usmf',CustomerAccount='…')` by key (⚠ in §4.1) → the row or
//!   404. Keys compare without regard to case, as F&O's do.
//! - `GET /` → the service document.
//!
//! Writable entities (`fno.<env>.entities.<Entity>`: `key`, `mandatory`, `number_sequence`,
//! `fields`; see [`super::scenario::FnoEntity`]). The documents show none of these answers
//! (§4.1 covers reads); they follow OData v4 and the shapes public F&O clients report:
//!
//! - `POST /{Entity}` with a JSON object → `201 Created`, `OData-Version: 4.0`, `Location:
//!   {base}{Entity}(dataAreaId='…',Key='…')` (values with `'` doubled and percent-encoded),
//!   an `ETag`, and the row: `@odata.context` (`$metadata#{Entity}/$entity`),
//!   `@odata.etag`, `dataAreaId` (from the body, lower-cased, else `default_company`), the
//!   key (from the body, else the next number of the company's sequence,
//!   `<number_sequence>-000001`), the other fields as written. Instance annotations
//!   (`@odata.type`) are ignored.
//! - `PATCH /{Entity}(dataAreaId='…',Key='…')` with a JSON object → `204`: the fields change,
//!   the ETag with them; `If-Match` with another ETag → `412`. The body may repeat the key,
//!   not change it.
//! - `DELETE /{Entity}(dataAreaId='…',Key='…')` → `204`.
//! - Refused: a mandatory field (or the key, without a number sequence) absent, `null` or
//!   blank → `400` `{"error":{"code":"","message":"Write failed for table row of type
//!   'CustomersV3'. Infolog: Error: Field 'CustomerGroupId' must be filled in.",
//!   "innererror":{"message":…,"type":"Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException","stacktrace":""}}}`;
//!   a key the company already has (written or dual-written) → `400`, the same shape, the
//!   Infolog saying "Cannot create a record in CustomersV3 (CustomersV3). CustomerAccount:
//!   …, dataAreaId: …. The record already exists."; a property the entity does not have
//!   ("The property 'X' does not exist on type 'Microsoft.Dynamics.DataEntities.…'"), a
//!   non-primitive value, a body that is not a JSON object → `400`; a `PATCH`/`DELETE` URL
//!   without exactly `dataAreaId` and the key → `400`; no such row → `404` ("No resource was
//!   found for '…'."); a row dual-written from Dataverse → `405` (the emulator holds it as a
//!   copy of the Dataverse row: change it there), except a `PATCH` of the linked fields of
//!   a copy whose replica is in a link ([`super::link`]: `204`, a link write; a copy
//!   without an entity key is numbered from the entity's sequence when first served); a method the resource does not take
//!   (`POST` to a row, `PATCH` to the set, `PUT`) → `405`; an entity that is neither declared
//!   nor a dual-write target → `404`; a write to a dual-write target nobody declared writable
//!   → `405`, as before writes existed.
//!
//! Every written change (create, update, delete) replicates through each replica whose
//! `source` is `fno:<env>/<Entity>` into its Dataverse table, on the replica's landscape
//! model like any other ([`super::replication`]): the Dataverse copy gets a new id (the
//! record id of the truth), the mapped columns, and a `versionnumber` of its environment.
//! Nothing is echoed: only writes made through a service's own API replicate, so a row
//! dual-written into an entity never goes back to Dataverse, nor a row dual-written into
//! Dataverse back to F&O (nor on to any other replica of that table; see
//! `docs/design/emulator.md`).
//!
//! Authentication (reads and writes): a bearer token of the emulated Entra endpoint for the
//! environment's resource (default `https://<env>.operations.dynamics.com`), else `401` with
//! `WWW-Authenticate: Bearer`. While a replica dual-writing into an entity is in an
//! `unavailable` outage, reads and writes of the entity fail with `503`; `/_faults` (prefix
//! `/fno/`, `methods` to single out writes) throttles (`429`, `Retry-After`) or fails them
//! like any request. The dual-write map state (`running`, `paused` windows, `stopped`)
//! decides when rows appear, through the replica's landscape model.
//!
//! Seeded rows ([`super::seeded`]): an entity lists each replica's copy of its source's
//! seeded rows (the drift, then `map` and `transform`, the replica's `company`, an ETag over
//! a RecId of the replica's own range) before the live rows; the replica's `filter` decides
//! per seeded row. A company other than the caller's is left out without a walk. A key
//! lookup finds a seeded row when the key names the replica's key field.

use std::collections::{HashMap, VecDeque};
use std::sync::MutexGuard;

use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use uuid::Uuid;

use super::link::{self, Book, Planned, Side};
use super::odata::{self, Dialect, Filter};
use super::replication::{Origin, ReplicaDef, Visibility};
use super::scenario::{FnoEntity, Target};
use super::seeded::{Cursor, SeedView, walk_segments};
use super::{Emulator, Req, b64_encode, hv, json_response};

/// RecIds of emulated rows start here (a typical F&O RecId range).
const RECID_BASE: u64 = 5_637_144_576;

/// RecIds of rows written through OData: a span of their own, between the dual-written rows'
/// and the seeded ones.
const WRITTEN_RECID_BASE: u64 = RECID_BASE + 500_000_000;

/// RecIds of seeded rows: each seeded view (replica) gets its own span above the live rows'.
const SEEDED_RECID_BASE: u64 = RECID_BASE + 1_000_000_000;
const SEEDED_RECID_SPAN: u64 = 10_000_000_000;

/// Largest page of server-driven paging, and the page when the client asks for none
/// (fact sheet §4.1: "server-driven paging, max page 10,000").
const MAX_PAGE: usize = 10_000;

fn fno_error(status: StatusCode, message: &str) -> Response {
    let mut r = json_response(status, &json!({"error": {"code": "", "message": message}}));
    r.headers_mut().insert("odata-version", hv("4.0"));
    r
}

fn fno_json(body: &Value) -> Response {
    let mut r = json_response(StatusCode::OK, body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        hv("application/json; odata.metadata=minimal"),
    );
    r.headers_mut().insert("odata-version", hv("4.0"));
    r
}

/// Parses `a='x',b='y'` (a compound key).
fn parse_key(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=')?;
        let after = after.trim_start().strip_prefix('\'')?;
        let mut value = String::new();
        let mut chars = after.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if chars.peek().map(|(_, c)| *c) == Some('\'') {
                    value.push('\'');
                    chars.next();
                } else {
                    end = Some(i + 1);
                    break;
                }
            } else {
                value.push(c);
            }
        }
        let end = end?;
        out.push((name.trim().to_string(), value));
        rest = after[end..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    (!out.is_empty()).then_some(out)
}

impl Emulator {
    /// Resources whose tokens this environment accepts.
    pub(crate) fn fno_resources(&self, env: &str, host: &str) -> Vec<String> {
        let mut out = vec![
            self.scenario
                .fno
                .get(env)
                .and_then(|e| e.resource.clone())
                .unwrap_or_else(|| format!("https://{env}.operations.dynamics.com")),
        ];
        if !host.is_empty() {
            out.push(format!("http://{host}/fno/{env}"));
        }
        out
    }

    pub(crate) fn fno(&self, req: &Req, env: &str) -> Response {
        let accepted = self.fno_resources(env, &req.host);
        if self.bearer(req, &accepted).is_err() {
            let mut r = super::empty_response(StatusCode::UNAUTHORIZED);
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, hv("Bearer"));
            return r;
        }
        let base = format!("http://{}/fno/{env}/data/", req.host);
        let segment = match req.segments.as_slice() {
            [] => "",
            [s] => s.as_str(),
            _ if req.method == Method::GET => {
                return fno_error(
                    StatusCode::NOT_FOUND,
                    &format!(
                        "No HTTP resource was found that matches the request URI '{}'.",
                        req.path
                    ),
                );
            }
            _ => return read_only(),
        };
        if segment.is_empty() {
            if req.method != Method::GET {
                return read_only();
            }
            return self.fno_service_document(env, &base);
        }
        if segment == crate::status::DUAL_WRITE_ENTITY {
            return self.dual_write_configs(req, env, &base);
        }
        let (entity, key) = match segment.split_once('(') {
            Some((e, rest)) => match rest.strip_suffix(')').and_then(parse_key) {
                Some(k) => (e, Some(k)),
                None => {
                    return fno_error(
                        StatusCode::BAD_REQUEST,
                        "The key in the request URI is not valid: write Entity(Field='value',…).",
                    );
                }
            },
            None => (segment, None),
        };
        let replicas = self.replicas_for(
            |t| matches!(t, Target::Fno { env: e, entity: n, .. } if e == env && n == entity),
        );
        let writable = self
            .scenario
            .fno
            .get(env)
            .and_then(|e| e.entities.get(entity));
        if replicas.is_empty() && writable.is_none() {
            return fno_error(
                StatusCode::NOT_FOUND,
                &format!(
                    "No HTTP resource was found that matches the request URI '{}'.",
                    req.path
                ),
            );
        }
        if req.method != Method::GET && writable.is_none() {
            return read_only();
        }
        // An outage of the dual-write into the entity takes the whole service down, writes
        // included.
        if self.unavailable(&replicas).is_some() {
            return fno_error(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
        }
        let Some(decl) = writable.filter(|_| req.method != Method::GET) else {
            return self.fno_read(req, env, entity, key, &replicas, &base, segment);
        };
        let cx = WriteCx {
            env,
            entity,
            decl,
            fields: self.scenario.fno_entity_fields(env, entity),
            replicas: &replicas,
            base: &base,
            type_name: format!("Microsoft.Dynamics.DataEntities.{entity}"),
        };
        match (&req.method, key) {
            (&Method::POST, None) => self.fno_create(req, &cx),
            (&Method::PATCH, Some(key)) => self.fno_update(req, &cx, &key, segment),
            (&Method::DELETE, Some(key)) => self.fno_delete(&cx, &key, segment),
            _ => fno_error(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!(
                    "The requested resource does not support http method '{}'.",
                    req.method
                ),
            ),
        }
    }

    /// `GET /`: the entity sets, dual-written and writable.
    fn fno_service_document(&self, env: &str, base: &str) -> Response {
        let mut names: Vec<&str> = self
            .replicas_for(|t| matches!(t, Target::Fno { env: e, .. } if e == env))
            .into_iter()
            .filter_map(|r| match &r.target {
                Target::Fno { entity, .. } => Some(entity.as_str()),
                _ => None,
            })
            .collect();
        if let Some(e) = self.scenario.fno.get(env) {
            names.extend(e.entities.keys().map(String::as_str));
        }
        names.sort_unstable();
        names.dedup();
        let value: Vec<Value> = names
            .iter()
            .map(|n| json!({"name": n, "kind": "EntitySet", "url": n}))
            .collect();
        fno_json(&json!({"@odata.context": format!("{base}$metadata"), "value": value}))
    }

    /// `GET /{Entity}` (a query) and `GET /{Entity}(…)` (by key).
    #[allow(clippy::too_many_arguments)]
    fn fno_read(
        &self,
        req: &Req,
        env: &str,
        entity: &str,
        key: Option<Vec<(String, String)>>,
        replicas: &[&ReplicaDef],
        base: &str,
        segment: &str,
    ) -> Response {
        let fields = self.scenario.fno_entity_fields(env, entity);
        let type_name = format!("Microsoft.Dynamics.DataEntities.{entity}");
        let select = match req.query.get("$select").map(odata::parse_select) {
            None => None,
            Some(Ok(cols)) => {
                if let Some(c) = cols.iter().find(|c| !fields.contains(c)) {
                    return fno_error(
                        StatusCode::BAD_REQUEST,
                        &format!("Could not find a property named '{c}' on type '{type_name}'."),
                    );
                }
                Some(cols)
            }
            Some(Err(e)) => return fno_error(StatusCode::BAD_REQUEST, &e),
        };
        let filter: Option<Filter> = match req.query.get("$filter").map(odata::parse_filter) {
            None => None,
            Some(Ok(f)) => {
                if let Some(c) = f
                    .fields()
                    .into_iter()
                    .find(|c| !fields.iter().any(|k| k == c))
                {
                    return fno_error(
                        StatusCode::BAD_REQUEST,
                        &format!("Could not find a property named '{c}' on type '{type_name}'."),
                    );
                }
                Some(f)
            }
            Some(Err(e)) => {
                return fno_error(
                    StatusCode::BAD_REQUEST,
                    &format!("Syntax error in $filter: {e}"),
                );
            }
        };
        let top = match req.query.get("$top").map(odata::parse_top) {
            None => None,
            Some(Ok(t)) => Some(t),
            Some(Err(e)) => return fno_error(StatusCode::BAD_REQUEST, &e),
        };
        let cross_company = req
            .query
            .get("cross-company")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let default_company = self
            .scenario
            .fno
            .get(env)
            .map(|e| e.default_company.clone())
            .unwrap_or_default();

        if let Some(key) = &key {
            if let Some((k, _)) = key.iter().find(|(k, _)| !fields.contains(k)) {
                return fno_error(
                    StatusCode::BAD_REQUEST,
                    &format!("Could not find a property named '{k}' on type '{type_name}'."),
                );
            }
            let found = self
                .written_rows(env, entity)
                .into_iter()
                .find(|row| matches_key(row, key))
                .or_else(|| self.dual_written_by_key(replicas, key));
            return match found {
                Some(mut row) => {
                    if let Some(li) = self.fno_link(env, entity) {
                        self.link_overlay(li, Side::B, [&mut row], None);
                    }
                    let mut body = Map::new();
                    body.insert(
                        "@odata.context".into(),
                        Value::String(format!("{base}$metadata#{entity}/$entity")),
                    );
                    body.append(&mut project(row, select.as_deref()));
                    fno_json(&Value::Object(body))
                }
                None => fno_error(
                    StatusCode::NOT_FOUND,
                    &format!("No resource was found for '{segment}'."),
                ),
            };
        }
        let mut rows = self.dual_written_rows(replicas);
        rows.extend(self.written_rows(env, entity));
        if let Some(li) = self.fno_link(env, entity) {
            self.link_overlay(li, Side::B, rows.iter_mut(), None);
        }
        let views = self.replica_views(replicas);
        let in_scope =
            |company: &str| cross_company || company.eq_ignore_ascii_case(&default_company);
        rows.retain(|row| {
            row.get("dataAreaId")
                .and_then(Value::as_str)
                .is_some_and(in_scope)
        });
        rows.retain(|row| filter.as_ref().is_none_or(|f| f.matches(row, Dialect::FNO)));
        // Views of another company than the caller's are left out whole, without a walk.
        let seg_rows: Vec<u64> = views
            .iter()
            .map(|v| {
                let company = v.replica.map(company_of).unwrap_or_default();
                if in_scope(&company) { v.rows() } else { 0 }
            })
            .collect();
        let listed = |seg: usize, i: u64| -> Option<Map<String, Value>> {
            let row = seeded_row(seg, &views[seg], i)?;
            filter
                .as_ref()
                .is_none_or(|f| f.matches(&row, Dialect::FNO))
                .then_some(row)
        };
        let total = if req.query.get("$count") == Some("true") {
            let seeded: u64 = views
                .iter()
                .enumerate()
                .filter(|(seg, _)| seg_rows[*seg] > 0)
                .map(|(seg, v)| match &filter {
                    None => v.held_count(),
                    Some(_) => (0..v.rows()).filter(|&i| listed(seg, i).is_some()).count() as u64,
                })
                .sum();
            Some(seeded + rows.len() as u64)
        } else {
            None
        };
        let max_page = preferred_page_size(req);
        let from = match req.query.get("$skiptoken") {
            None => Cursor::default(),
            Some(t) => match Cursor::decode(t) {
                Some(c) => c,
                None => {
                    return fno_error(
                        StatusCode::BAD_REQUEST,
                        "The $skiptoken is not one this service issued.",
                    );
                }
            },
        };
        let want = top.map_or(max_page.unwrap_or(MAX_PAGE), |t| {
            t.min(max_page.unwrap_or(MAX_PAGE))
        });
        let (chosen, next) = walk_segments(&seg_rows, rows, from, want, listed);
        // `$top` asks for that many rows at most: a page of them ends the listing.
        let next = next.filter(|_| top.is_none_or(|t| t > want));
        let value: Vec<Value> = chosen
            .into_iter()
            .map(|row| Value::Object(project(row, select.as_deref())))
            .collect();
        let cols = select
            .as_ref()
            .map(|s| format!("({})", s.join(",")))
            .unwrap_or_default();
        let mut body = Map::new();
        body.insert(
            "@odata.context".into(),
            Value::String(format!("{base}$metadata#{entity}{cols}")),
        );
        if let Some(total) = total {
            body.insert("@odata.count".into(), json!(total));
        }
        body.insert("value".into(), Value::Array(value));
        if let Some(position) = next {
            let mut rest = req.query.encode_without(&["$skiptoken", "$top"]);
            if let Some(t) = top {
                let left = t - want;
                rest = format!(
                    "{rest}{}$top={left}",
                    if rest.is_empty() { "" } else { "&" }
                );
            }
            let sep = if rest.is_empty() { "" } else { "&" };
            body.insert(
                "@odata.nextLink".into(),
                Value::String(format!(
                    "{base}{entity}?{rest}{sep}$skiptoken={}",
                    position.encode()
                )),
            );
        }
        let mut r = fno_json(&Value::Object(body));
        if let Some(n) = max_page {
            r.headers_mut()
                .insert("preference-applied", hv(&format!("odata.maxpagesize={n}")));
        }
        r
    }

    /// The live rows dual-write copied from Dataverse that `replicas` show now, as F&O rows.
    fn dual_written_rows(&self, replicas: &[&ReplicaDef]) -> Vec<Map<String, Value>> {
        let mut rows = Vec::new();
        for r in self.target_rows(replicas, Visibility::Read) {
            let company = replicas
                .iter()
                .find(|d| d.name == r.replica)
                .map(|d| company_of(d))
                .unwrap_or_default();
            let mut row = Map::new();
            row.insert(
                "@odata.etag".into(),
                Value::String(etag(1, RECID_BASE + r.seq)),
            );
            row.insert("dataAreaId".into(), Value::String(company));
            for (k, v) in r.fields {
                row.insert(k, v);
            }
            if let Some(def) = replicas.iter().find(|d| d.name == r.replica)
                && let Some((field, number)) = self.copy_number(def, r.id, &row)
            {
                row.insert(field, Value::String(number));
            }
            rows.push(row);
        }
        rows
    }

    /// The row dual-written from Dataverse (seeded or live) that `key` names, if any.
    fn dual_written_by_key(
        &self,
        replicas: &[&ReplicaDef],
        key: &[(String, String)],
    ) -> Option<Map<String, Value>> {
        let views = self.replica_views(replicas);
        let seeded = views.iter().enumerate().find_map(|(seg, v)| {
            let field = v.replica.and_then(|r| r.key_field.as_ref())?;
            let (_, value) = key.iter().find(|(k, _)| k == field)?;
            let row = seeded_row(seg, v, v.index_of_key(value, true)?)?;
            matches_key(&row, key).then_some(row)
        });
        seeded.or_else(|| {
            self.dual_written_rows(replicas)
                .into_iter()
                .find(|row| matches_key(row, key))
        })
    }

    /// The rows written through OData into `env/entity`, in the order they were created.
    fn written_rows(&self, env: &str, entity: &str) -> Vec<Map<String, Value>> {
        let st = self.state();
        let Some(store) = st.fno_rows.get(&(env.to_string(), entity.to_string())) else {
            return Vec::new();
        };
        let mut rows: Vec<&WrittenRow> = store.rows.values().collect();
        rows.sort_by_key(|w| w.seq);
        rows.into_iter().map(WrittenRow::representation).collect()
    }

    /// `POST /{Entity}`: a row of a writable entity.
    fn fno_create(&self, req: &Req, cx: &WriteCx) -> Response {
        let mut fields = match write_body(req, cx) {
            Ok(f) => f,
            Err(r) => return r,
        };
        let company = match fields.get("dataAreaId").and_then(Value::as_str) {
            Some(c) if !c.trim().is_empty() => c.trim().to_lowercase(),
            _ => self
                .scenario
                .fno
                .get(cx.env)
                .map(|e| e.default_company.to_lowercase())
                .unwrap_or_default(),
        };
        fields.insert("dataAreaId".into(), Value::String(company.clone()));
        let given = fields
            .get(&cx.decl.key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_string);
        let key = match (given, &cx.decl.number_sequence) {
            (Some(k), _) => k,
            (None, Some(code)) => {
                // F&O takes the number before the row is validated: a create that then fails
                // leaves a gap in the sequence, as a non-continuous sequence does.
                let mut st = self.state();
                let store = st
                    .fno_rows
                    .entry((cx.env.to_string(), cx.entity.to_string()))
                    .or_default();
                let n = store.numbers.entry(company.clone()).or_insert(0);
                *n += 1;
                format!("{code}-{n:06}")
            }
            (None, None) => return must_be_filled(cx.entity, &cx.decl.key),
        };
        fields.insert(cx.decl.key.clone(), Value::String(key.clone()));
        if let Some(f) = cx.decl.mandatory.iter().find(|f| !filled(fields.get(*f))) {
            return must_be_filled(cx.entity, f);
        }
        let entity_key = [
            ("dataAreaId".to_string(), company.clone()),
            (cx.decl.key.clone(), key.clone()),
        ];
        let exists = || {
            write_failed(
                cx.entity,
                &format!(
                    "Cannot create a record in {} ({}). {}: {key}, dataAreaId: {company}. The record already exists.",
                    cx.entity, cx.entity, cx.decl.key
                ),
            )
        };
        if self.dual_written_by_key(cx.replicas, &entity_key).is_some() {
            return exists();
        }
        // A link write is checked against its policy before anything is stored, and the
        // link's writes stay locked until it is recorded.
        let link = self.fno_link(cx.env, cx.entity);
        let mut book = link.map(|_| self.link_book());
        let planned = link.and_then(|li| self.plan_link_write(li, Side::B, &fields, &fields));
        if let (Some(b), Some(p)) = (book.as_deref_mut(), &planned)
            && self.link_admit(b, p).is_err()
        {
            return fno_reject(cx.entity);
        }
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let row = {
            let mut st = self.state();
            let store = st
                .fno_rows
                .entry((cx.env.to_string(), cx.entity.to_string()))
                .or_default();
            let slot = (company.clone(), key.to_lowercase());
            if store.rows.contains_key(&slot) {
                return exists();
            }
            store.seq += 1;
            let row = WrittenRow {
                id,
                fields,
                recid: WRITTEN_RECID_BASE + store.seq,
                version: 1,
                seq: store.seq,
            };
            store.rows.insert(slot, row.clone());
            row
        };
        self.replicate_from(Origin::Fno, cx.env, cx.entity, id, &row.fields);
        self.fno_link_committed(book, planned, id);
        let location = format!(
            "{}{}({})",
            cx.base,
            cx.entity,
            key_segment(&cx.decl.key, &company, &key)
        );
        let mut body = Map::new();
        body.insert(
            "@odata.context".into(),
            Value::String(format!("{}$metadata#{}/$entity", cx.base, cx.entity)),
        );
        body.append(&mut row.representation());
        let mut r = fno_json(&Value::Object(body));
        *r.status_mut() = StatusCode::CREATED;
        r.headers_mut().insert(header::LOCATION, hv(&location));
        r.headers_mut()
            .insert(header::ETAG, hv(&etag(row.version, row.recid)));
        r
    }

    /// `PATCH /{Entity}(dataAreaId='…',Key='…')`: changes fields of a written row.
    fn fno_update(
        &self,
        req: &Req,
        cx: &WriteCx,
        key: &[(String, String)],
        segment: &str,
    ) -> Response {
        let (company, value) = match entity_key(cx, key) {
            Ok(k) => k,
            Err(r) => return r,
        };
        let mut fields = match write_body(req, cx) {
            Ok(f) => f,
            Err(r) => return r,
        };
        for (k, url) in [("dataAreaId", &company), (cx.decl.key.as_str(), &value)] {
            match fields.remove(k) {
                None => {}
                Some(Value::String(v)) if v.trim().eq_ignore_ascii_case(url) => {}
                Some(_) => {
                    return write_failed(
                        cx.entity,
                        &format!(
                            "The key field '{k}' cannot be changed; delete the record and create it again."
                        ),
                    );
                }
            }
        }
        if let Some((f, _)) = fields
            .iter()
            .find(|(f, v)| cx.decl.mandatory.contains(f) && !filled(Some(v)))
        {
            return must_be_filled(cx.entity, f);
        }
        let if_match = req.header("if-match").map(str::trim).map(str::to_string);
        let link = self.fno_link(cx.env, cx.entity);
        let existing = {
            let st = self.state();
            st.fno_rows
                .get(&(cx.env.to_string(), cx.entity.to_string()))
                .and_then(|s| s.rows.get(&(company.clone(), value.to_lowercase())))
                .map(|row| row.fields.clone())
        };
        let Some(mut after) = existing else {
            if let Some(li) = link
                && let Some(copy) = self.linked_fno_copy(li, key)
            {
                return self.fno_copy_write(cx, li, copy, fields, if_match.as_deref());
            }
            return self.not_written(cx, key, segment);
        };
        after.extend(fields.clone());
        let mut book = link.map(|_| self.link_book());
        let planned = link.and_then(|li| self.plan_link_write(li, Side::B, &after, &fields));
        if let (Some(b), Some(p)) = (book.as_deref_mut(), &planned)
            && self.link_admit(b, p).is_err()
        {
            return fno_reject(cx.entity);
        }
        let updated = {
            let mut st = self.state();
            let row = st
                .fno_rows
                .get_mut(&(cx.env.to_string(), cx.entity.to_string()))
                .and_then(|s| s.rows.get_mut(&(company.clone(), value.to_lowercase())));
            match row {
                None => None,
                Some(row) => {
                    if let Some(m) = if_match.as_deref()
                        && m != "*"
                        && m != etag(row.version, row.recid)
                    {
                        return fno_error(
                            StatusCode::PRECONDITION_FAILED,
                            "The ETag of the request does not match the record's: it was changed since it was read.",
                        );
                    }
                    for (k, v) in fields {
                        row.fields.insert(k, v);
                    }
                    row.version += 1;
                    Some((row.id, row.fields.clone()))
                }
            }
        };
        match updated {
            Some((id, fields)) => {
                self.replicate_from(Origin::Fno, cx.env, cx.entity, id, &fields);
                self.fno_link_committed(book, planned, id);
                fno_empty(StatusCode::NO_CONTENT)
            }
            None => self.not_written(cx, key, segment),
        }
    }

    /// `DELETE /{Entity}(dataAreaId='…',Key='…')`: deletes a written row.
    fn fno_delete(&self, cx: &WriteCx, key: &[(String, String)], segment: &str) -> Response {
        let (company, value) = match entity_key(cx, key) {
            Ok(k) => k,
            Err(r) => return r,
        };
        let removed = {
            let mut st = self.state();
            st.fno_rows
                .get_mut(&(cx.env.to_string(), cx.entity.to_string()))
                .and_then(|s| s.rows.remove(&(company, value.to_lowercase())))
        };
        match removed {
            Some(row) => {
                self.unreplicate_from(Origin::Fno, cx.env, cx.entity, row.id);
                fno_empty(StatusCode::NO_CONTENT)
            }
            None => self.not_written(cx, key, segment),
        }
    }

    /// The answer to a change of a row that was not written through OData: `404`, or `405`
    /// for a row dual-written from Dataverse, which the emulator keeps read-only (it holds
    /// them as copies of the Dataverse rows, with no F&O version to change).
    fn not_written(&self, cx: &WriteCx, key: &[(String, String)], segment: &str) -> Response {
        if self.dual_written_by_key(cx.replicas, key).is_some() {
            return fno_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "Rows dual-written from Dataverse are read-only in the emulator: change them in Dataverse.",
            );
        }
        fno_error(
            StatusCode::NOT_FOUND,
            &format!("No resource was found for '{segment}'."),
        )
    }
}

impl Emulator {
    /// Records the planned link write of written row `id` once stored and replicated:
    /// delivered when the link's F&O → Dataverse replica shows that version. Releases the
    /// link's writes.
    fn fno_link_committed(
        &self,
        book: Option<MutexGuard<'_, Book>>,
        planned: Option<Planned>,
        id: Uuid,
    ) {
        if let (Some(mut b), Some(p)) = (book, planned) {
            let carrier = self.links()[p.link].back;
            let delivery = self.delivery_via(carrier, id);
            self.link_commit(&mut b, p, delivery);
        }
    }

    /// The live copy the link's Dataverse → F&O replica shows under entity key `key`.
    fn linked_fno_copy(&self, li: usize, key: &[(String, String)]) -> Option<Map<String, Value>> {
        let out = &self.replicas[self.links()[li].out];
        self.dual_written_rows(&[out])
            .into_iter()
            .find(|row| matches_key(row, key))
    }

    /// `PATCH` of a copy dual-written from Dataverse, in a link: a link write on this side
    /// (the emulator holds the copy as the Dataverse row's, so only the fields the link
    /// carries can change; the key fields were checked and removed already).
    fn fno_copy_write(
        &self,
        cx: &WriteCx,
        li: usize,
        copy: Map<String, Value>,
        fields: Map<String, Value>,
        if_match: Option<&str>,
    ) -> Response {
        if let Some(m) = if_match
            && m != "*"
            && copy.get("@odata.etag").and_then(Value::as_str) != Some(m)
        {
            return fno_error(
                StatusCode::PRECONDITION_FAILED,
                "The ETag of the request does not match the record's: it was changed since it was read.",
            );
        }
        let def = &self.links()[li];
        let linked = def.fields(Side::B);
        if let Some(k) = fields.keys().find(|k| !linked.contains(&k.as_str())) {
            return fno_error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "The emulator holds this row as a copy dual-written from Dataverse: only the fields link {} carries can change here ({}); '{k}' is not one of them.",
                    def.name,
                    linked.join(", ")
                ),
            );
        }
        let mut after = copy;
        after.extend(fields.clone());
        let mut book = self.link_book();
        if let Some(p) = self.plan_link_write(li, Side::B, &after, &fields) {
            if self.link_admit(&mut book, &p).is_err() {
                return fno_reject(cx.entity);
            }
            let delivery = self.delivery_drawn(def.back, p.committed);
            self.link_commit(&mut book, p, delivery);
        }
        fno_empty(StatusCode::NO_CONTENT)
    }

    /// The number a live copy of `r` (row `id`) shows as its entity key when the Dataverse
    /// row left it empty: F&O fills the key of a dual-written row from the entity's number
    /// sequence, as real dual-write does for an account number. Only copies of a replica in
    /// a link get one (other scenarios serve copies as before); the first read draws it from
    /// the company's sequence (shared with written rows), and it stays the copy's.
    fn copy_number(
        &self,
        r: &ReplicaDef,
        id: Uuid,
        row: &Map<String, Value>,
    ) -> Option<(String, String)> {
        if !self
            .links()
            .iter()
            .any(|l| self.replicas[l.out].name == r.name)
        {
            return None;
        }
        let Target::Fno {
            env,
            entity,
            company,
        } = &r.target
        else {
            return None;
        };
        let decl = self.scenario.fno.get(env)?.entities.get(entity)?;
        let code = decl.number_sequence.as_ref()?;
        if filled(row.get(&decl.key)) {
            return None;
        }
        let mut st = self.state();
        let store = st
            .fno_rows
            .entry((env.clone(), entity.clone()))
            .or_default();
        if let Some(n) = store.copy_numbers.get(&id) {
            return Some((decl.key.clone(), n.clone()));
        }
        let n = store.numbers.entry(company.to_lowercase()).or_insert(0);
        *n += 1;
        let number = format!("{code}-{n:06}");
        store.copy_numbers.insert(id, number.clone());
        store.copy_order.push_back(id);
        while store.copy_order.len() > COPY_NUMBERS_KEPT {
            if let Some(old) = store.copy_order.pop_front() {
                store.copy_numbers.remove(&old);
            }
        }
        Some((decl.key.clone(), number))
    }
}

/// Numbers given to copies remembered per entity (the oldest copy's is forgotten first).
const COPY_NUMBERS_KEPT: usize = 100_000;

/// The answer to a write the `reject` policy of a link refused ([`super::link`]).
fn fno_reject(entity: &str) -> Response {
    write_failed(entity, link::FNO_REJECT_INFOLOG)
}

/// What a write to a writable entity works on.
struct WriteCx<'a> {
    env: &'a str,
    entity: &'a str,
    decl: &'a FnoEntity,
    /// Every field of the entity ([`super::scenario::Scenario::fno_entity_fields`]).
    fields: Vec<String>,
    /// The replicas dual-writing Dataverse rows into the entity.
    replicas: &'a [&'a ReplicaDef],
    base: &'a str,
    type_name: String,
}

/// The rows of one writable entity written through OData.
#[derive(Default)]
pub(crate) struct EntityStore {
    /// By company and key, both lower-cased: F&O compares keys without regard to case.
    rows: HashMap<(String, String), WrittenRow>,
    /// The last number each company's sequence gave.
    numbers: HashMap<String, u64>,
    /// Numbers given to dual-written copies without a key ([`Emulator::copy_number`]), by
    /// the copy's record id, in the order given.
    copy_numbers: HashMap<Uuid, String>,
    copy_order: VecDeque<Uuid>,
    seq: u64,
}

#[derive(Clone)]
struct WrittenRow {
    /// The id dual-write gives the row's Dataverse copy, and its record id in the truth.
    id: Uuid,
    /// Every field the row has, `dataAreaId` and the key among them.
    fields: Map<String, Value>,
    recid: u64,
    /// RecVersion: 1 when created, one more per update, so the ETag changes with it.
    version: u64,
    /// Creation order, the order listings show written rows in.
    seq: u64,
}

impl WrittenRow {
    fn representation(&self) -> Map<String, Value> {
        let mut row = Map::new();
        row.insert(
            "@odata.etag".into(),
            Value::String(etag(self.version, self.recid)),
        );
        for (k, v) in &self.fields {
            row.insert(k.clone(), v.clone());
        }
        row
    }
}

/// The answer to a write of an entity nothing declared writable.
fn read_only() -> Response {
    fno_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "The emulated F&O service is read-only: rows arrive through dual-write.",
    )
}

fn fno_empty(status: StatusCode) -> Response {
    let mut r = super::empty_response(status);
    r.headers_mut().insert("odata-version", hv("4.0"));
    r
}

/// F&O's answer to a write its validation refused: the Infolog's error in the message, and
/// the inner error F&O adds with the exception's type.
fn write_failed(entity: &str, infolog: &str) -> Response {
    let message =
        format!("Write failed for table row of type '{entity}'. Infolog: Error: {infolog}");
    let mut r = json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error": {"code": "", "message": message, "innererror": {
            "message": message,
            "type": "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException",
            "stacktrace": "",
        }}}),
    );
    r.headers_mut().insert("odata-version", hv("4.0"));
    r
}

fn must_be_filled(entity: &str, field: &str) -> Response {
    write_failed(entity, &format!("Field '{field}' must be filled in."))
}

/// Whether a mandatory field holds a value: absent, `null` and blank text do not.
fn filled(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(_) => true,
    }
}

/// The fields of a write's JSON body: instance annotations (`@odata.type`) dropped, every
/// other property a declared field holding a primitive value, `dataAreaId` and the key text.
fn write_body(req: &Req, cx: &WriteCx) -> Result<Map<String, Value>, Response> {
    if let Some(ct) = req.header("content-type")
        && !ct.to_ascii_lowercase().contains("application/json")
    {
        return Err(fno_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!("The request entity's media type '{ct}' is not supported for this resource."),
        ));
    }
    let body = match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(o)) => o,
        Ok(_) => {
            return Err(fno_error(
                StatusCode::BAD_REQUEST,
                &format!("The request body must be a JSON object: one {}.", cx.entity),
            ));
        }
        Err(e) => {
            return Err(fno_error(
                StatusCode::BAD_REQUEST,
                &format!("The request body is not valid JSON: {e}"),
            ));
        }
    };
    let mut out = Map::new();
    for (k, v) in body {
        if k.starts_with('@') {
            continue;
        }
        if !cx.fields.contains(&k) {
            return Err(fno_error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "The property '{k}' does not exist on type '{}'. Make sure to only use property names that are defined by the type.",
                    cx.type_name
                ),
            ));
        }
        let text_only = k == "dataAreaId" || k == cx.decl.key;
        let ok = match &v {
            Value::Null => true,
            Value::String(_) => true,
            Value::Number(_) | Value::Bool(_) => !text_only,
            Value::Array(_) | Value::Object(_) => false,
        };
        if !ok {
            return Err(fno_error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "Cannot convert the literal '{v}' to the expected type of property '{k}'{}.",
                    if text_only { " (Edm.String)" } else { "" }
                ),
            ));
        }
        out.insert(k, v);
    }
    Ok(out)
}

/// The company and key value of a write's URL, which must name the whole entity key
/// (`dataAreaId` and the key field, fact sheet §4.1: "all key fields must be supplied").
fn entity_key(cx: &WriteCx, key: &[(String, String)]) -> Result<(String, String), Response> {
    let get = |name: &str| key.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    match (get("dataAreaId"), get(&cx.decl.key)) {
        (Some(company), Some(value)) if key.len() == 2 => Ok((company.to_lowercase(), value)),
        _ => Err(fno_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "The number of keys specified in the URI does not match number of key properties for the resource '{}': give dataAreaId and {}.",
                cx.type_name, cx.decl.key
            ),
        )),
    }
}

/// `dataAreaId='usmf',CustomerAccount='…'`: quotes doubled, then percent-encoded, so the URL
/// is valid whatever the key holds.
fn key_segment(field: &str, company: &str, key: &str) -> String {
    let enc = |v: &str| lagwatch::percent::component(&v.replace('\'', "''"));
    format!("dataAreaId='{}',{field}='{}'", enc(company), enc(key))
}

/// Whether `row` has every value of `key` (text, without regard to case).
fn matches_key(row: &Map<String, Value>, key: &[(String, String)]) -> bool {
    key.iter().all(|(k, v)| {
        row.get(k)
            .and_then(Value::as_str)
            .is_some_and(|x| x.eq_ignore_ascii_case(v))
    })
}

/// The company (`dataAreaId`) of an F&O replica's rows.
fn company_of(r: &ReplicaDef) -> String {
    match &r.target {
        Target::Fno { company, .. } => company.clone(),
        _ => String::new(),
    }
}

/// A weak ETag over a row's RecVersion and RecId, as F&O sends them.
fn etag(version: u64, recid: u64) -> String {
    format!(
        "W/\"{}\"",
        b64_encode(format!("'{version},{recid}'").as_bytes())
    )
}

/// Row `i` of seeded view `v` (the `seg`th of the entity) as an F&O row: the replica's copy
/// under its map, its company and an ETag over a RecId of its own range.
fn seeded_row(seg: usize, v: &SeedView, i: u64) -> Option<Map<String, Value>> {
    let doc = v.doc(i)?;
    let company = v.replica.map(company_of).unwrap_or_default();
    let recid = SEEDED_RECID_BASE + (seg as u64) * SEEDED_RECID_SPAN + i;
    let mut row = Map::new();
    row.insert("@odata.etag".into(), Value::String(etag(1, recid)));
    row.insert("dataAreaId".into(), Value::String(company));
    for (k, v) in doc.fields {
        row.insert(k, v);
    }
    Some(row)
}

/// `Prefer: odata.maxpagesize=N`, capped at the largest page F&O serves.
fn preferred_page_size(req: &Req) -> Option<usize> {
    req.headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("odata.maxpagesize"))
        .and_then(|(_, v)| v.trim().trim_matches('"').parse::<usize>().ok())
        .filter(|n| *n > 0)
        .map(|n| n.min(MAX_PAGE))
}

fn project(row: Map<String, Value>, select: Option<&[String]>) -> Map<String, Value> {
    match select {
        None => row,
        Some(cols) => row
            .into_iter()
            .filter(|(k, _)| k == "@odata.etag" || cols.iter().any(|c| c == k))
            .collect(),
    }
}

#[cfg(test)]
mod writes_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compound_keys_parse() {
        assert_eq!(
            parse_key("dataAreaId='usmf',CustomerAccount='O''B-1'"),
            Some(vec![
                ("dataAreaId".to_string(), "usmf".to_string()),
                ("CustomerAccount".to_string(), "O'B-1".to_string()),
            ])
        );
        assert_eq!(parse_key("x=1"), None);
    }
}
