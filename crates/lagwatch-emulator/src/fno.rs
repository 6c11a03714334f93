//! Finance & Operations OData, fact sheet §4.1, holding rows written by dual-write (§4.3).
//!
//! Base `/fno/{env}/data/`. Entity sets are the F&O targets of the scenario's replicas
//! (`CustomersV3`, …); their rows are the replicated Dataverse rows under the replica's field
//! `map` and `transform`, plus `dataAreaId` (the replica's `company`) and an `@odata.etag`.
//!
//! - `GET /{Entity}?cross-company=true&$filter=Field eq 'value'&$select=…&$top=1` →
//!   `{"@odata.context":…,"value":[…]}`. Without `cross-company=true` only rows of the
//!   environment's `default_company` are returned (§4.1). `$filter` supports the shared
//!   subset (`eq ne gt ge lt le and or not`, parentheses) with F&O's wildcard equality
//!   (`Field eq '*text*'`); `$count=true` adds `@odata.count`. Server-driven paging:
//!   `Prefer: odata.maxpagesize=N`, at most 10,000 rows, which is also the page without the
//!   preference (§4.1 gives 10,000 as the maximum page); `@odata.nextLink` repeats the query
//!   with an opaque `$skiptoken` (the documents do not show F&O's own form; clients follow the
//!   link as it is). `$top` above the page size is paged too, the link carrying what is left.
//! - `GET /{Entity}(dataAreaId='usmf',CustomerAccount='…')` by key (⚠ in §4.1) → the row or 404.
//! - `GET /` → the service document.
//!
//! Authentication: a bearer token of the emulated Entra endpoint for the environment's
//! resource (default `https://<env>.operations.dynamics.com`), else `401`. While a replica
//! is in an `unavailable` outage reads of its entity fail with `503`. The dual-write map
//! state (`running`, `paused` windows, `stopped`) decides when rows appear, through the
//! replica's landscape model. Writes are left out.
//!
//! Seeded rows ([`super::seeded`]): an entity lists each replica's copy of its source's
//! seeded rows (the drift, then `map` and `transform`, the replica's `company`, an ETag over
//! a RecId of the replica's own range) before the live rows; the replica's `filter` decides
//! per seeded row. A company other than the caller's is left out without a walk. A key
//! lookup finds a seeded row when the key names the replica's key field.

use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::odata::{self, Dialect, Filter};
use super::replication::{ReplicaDef, Visibility};
use super::scenario::Target;
use super::seeded::{Cursor, SeedView, walk_segments};
use super::{Emulator, Req, b64_encode, hv, json_response};

/// RecIds of emulated rows start here (a typical F&O RecId range).
const RECID_BASE: u64 = 5_637_144_576;

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
        if req.method != Method::GET {
            return fno_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "The emulated F&O service is read-only: rows arrive through dual-write.",
            );
        }
        let base = format!("http://{}/fno/{env}/data/", req.host);
        let segment = match req.segments.as_slice() {
            [] => "",
            [s] => s.as_str(),
            _ => {
                return fno_error(
                    StatusCode::NOT_FOUND,
                    &format!(
                        "No HTTP resource was found that matches the request URI '{}'.",
                        req.path
                    ),
                );
            }
        };
        if segment.is_empty() {
            let mut names: Vec<&str> = self
                .replicas_for(|t| matches!(t, Target::Fno { env: e, .. } if e == env))
                .into_iter()
                .filter_map(|r| match &r.target {
                    Target::Fno { entity, .. } => Some(entity.as_str()),
                    _ => None,
                })
                .collect();
            names.sort_unstable();
            names.dedup();
            let value: Vec<Value> = names
                .iter()
                .map(|n| json!({"name": n, "kind": "EntitySet", "url": n}))
                .collect();
            return fno_json(
                &json!({"@odata.context": format!("{base}$metadata"), "value": value}),
            );
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
        if replicas.is_empty() {
            return fno_error(
                StatusCode::NOT_FOUND,
                &format!(
                    "No HTTP resource was found that matches the request URI '{}'.",
                    req.path
                ),
            );
        }
        if self.unavailable(&replicas).is_some() {
            return fno_error(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
        }
        let fields = known_fields(&replicas);
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

        let mut rows: Vec<Map<String, Value>> = Vec::new();
        for r in self.target_rows(&replicas, Visibility::Read) {
            let company = replicas
                .iter()
                .find(|d| d.name == r.replica)
                .map(|d| company_of(d))
                .unwrap_or_default();
            let mut row = Map::new();
            row.insert(
                "@odata.etag".into(),
                Value::String(etag(RECID_BASE + r.seq)),
            );
            row.insert("dataAreaId".into(), Value::String(company));
            for (k, v) in r.fields {
                row.insert(k, v);
            }
            rows.push(row);
        }
        let views = self.replica_views(&replicas);
        if let Some(key) = &key {
            if let Some((k, _)) = key.iter().find(|(k, _)| !fields.contains(k)) {
                return fno_error(
                    StatusCode::BAD_REQUEST,
                    &format!("Could not find a property named '{k}' on type '{type_name}'."),
                );
            }
            let matches_key = |row: &Map<String, Value>| {
                key.iter().all(|(k, v)| {
                    row.get(k)
                        .and_then(Value::as_str)
                        .is_some_and(|x| x.eq_ignore_ascii_case(v))
                })
            };
            let seeded = views.iter().enumerate().find_map(|(seg, v)| {
                let field = v.replica.and_then(|r| r.key_field.as_ref())?;
                let (_, value) = key.iter().find(|(k, _)| k == field)?;
                let row = seeded_row(seg, v, v.index_of_key(value, true)?)?;
                matches_key(&row).then_some(row)
            });
            let found = seeded.or_else(|| rows.into_iter().find(|row| matches_key(row)));
            return match found {
                Some(row) => {
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
}

/// The company (`dataAreaId`) of an F&O replica's rows.
fn company_of(r: &ReplicaDef) -> String {
    match &r.target {
        Target::Fno { company, .. } => company.clone(),
        _ => String::new(),
    }
}

/// A weak ETag over a RecId, as F&O sends them.
fn etag(recid: u64) -> String {
    format!("W/\"{}\"", b64_encode(format!("'1,{recid}'").as_bytes()))
}

/// Row `i` of seeded view `v` (the `seg`th of the entity) as an F&O row: the replica's copy
/// under its map, its company and an ETag over a RecId of its own range.
fn seeded_row(seg: usize, v: &SeedView, i: u64) -> Option<Map<String, Value>> {
    let doc = v.doc(i)?;
    let company = v.replica.map(company_of).unwrap_or_default();
    let recid = SEEDED_RECID_BASE + (seg as u64) * SEEDED_RECID_SPAN + i;
    let mut row = Map::new();
    row.insert("@odata.etag".into(), Value::String(etag(recid)));
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

fn known_fields(replicas: &[&ReplicaDef]) -> Vec<String> {
    let mut out = vec!["dataAreaId".to_string()];
    for r in replicas {
        for (_, to) in &r.map {
            if !out.contains(to) {
                out.push(to.clone());
            }
        }
    }
    out
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
