//! Azure AI Search data plane, fact sheet §6.1.
//!
//! Base `/search/{service}/`. Indexes are the search targets of the scenario's replicas; a
//! document's key is the value of the replica's `key` column, its fields the mapped columns.
//!
//! - `GET /indexes/{index}/docs/{key}?api-version=…` (or the OData form `docs('{key}')`),
//!   optional `$select` → `200` with the document's fields, or `404` (the fact sheet leaves
//!   the 404 unverified; the emulator sends it with an empty body).
//! - `POST /indexes/{index}/docs/search?api-version=…` with `{"search","filter","select",
//!   "top","skip","count"}`, and `GET /indexes/{index}/docs?search=…&$filter=…&$select=…&$top=…
//!   &$count=true` → `{"@odata.context":…,("@odata.count":n,)"value":[{"@search.score":1.0,…}]}`.
//!   `filter` is the shared OData subset with case-sensitive string equality; `search` is `*`
//!   or text that must occur in a text field (case-insensitive; quotes for a phrase).
//! - `GET /indexes/{index}/docs/$count` → the number of documents as text.
//!
//! `api-version` is required (any documented stable version, §6.1, or a `-preview`); else
//! `400`. Authentication: an `api-key` header from the scenario, or a bearer token for
//! `https://search.azure.com` (§3.1); none → `401`, a wrong key → `403`. Replica flapping shows
//! a document early and loses it again; `unavailable` outages answer `503`.

use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::odata::{self, Dialect, Filter};
use super::replication::{ReplicaDef, Visibility};
use super::scenario::Target;
use super::{Emulator, Req, empty_response, hv, json_response};

/// Stable data-plane versions (§6.1).
const API_VERSIONS: &[&str] = &[
    "2019-05-06",
    "2020-06-30",
    "2023-11-01",
    "2024-07-01",
    "2025-09-01",
];

fn search_error(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({"error": {"code": "", "message": message}}))
}

/// A search request, from either the GET or the POST form.
struct SearchRequest {
    search: String,
    filter: Option<String>,
    select: Option<String>,
    top: Option<usize>,
    skip: usize,
    count: bool,
}

impl Emulator {
    pub(crate) fn search_resources(&self, service: &str, host: &str) -> Vec<String> {
        let mut out = vec!["https://search.azure.com".to_string()];
        if !host.is_empty() {
            out.push(format!("http://{host}/search/{service}"));
        }
        out
    }

    pub(crate) fn search(&self, req: &Req, service: &str) -> Response {
        let keys = self
            .scenario
            .search
            .get(service)
            .map(|s| s.api_keys.clone())
            .unwrap_or_default();
        match req.header("api-key") {
            Some(k) if keys.iter().any(|c| c == k) => {}
            Some(_) => return search_error(StatusCode::FORBIDDEN, "The api-key is not valid."),
            None => {
                let accepted = self.search_resources(service, &req.host);
                if self.bearer(req, &accepted).is_err() {
                    let mut r = search_error(
                        StatusCode::UNAUTHORIZED,
                        "Send an api-key header or an Authorization: Bearer token.",
                    );
                    r.headers_mut()
                        .insert(header::WWW_AUTHENTICATE, hv("Bearer"));
                    return r;
                }
            }
        }
        let version = req.query.get("api-version").unwrap_or("");
        if !(API_VERSIONS.contains(&version) || version.ends_with("-preview")) {
            return search_error(
                StatusCode::BAD_REQUEST,
                "Invalid or missing api-version query string parameter.",
            );
        }
        let (index, rest) = match req.segments.as_slice() {
            [i, index, rest @ ..] if i == "indexes" => (index.as_str(), rest),
            _ => {
                return search_error(
                    StatusCode::NOT_FOUND,
                    &format!("No resource at {}.", req.path),
                );
            }
        };
        let replicas = self.replicas_for(
            |t| matches!(t, Target::Search { service: s, index: i } if s == service && i == index),
        );
        if replicas.is_empty() {
            return search_error(
                StatusCode::NOT_FOUND,
                &format!("The index '{index}' for service '{service}' was not found."),
            );
        }
        if self.unavailable(&replicas).is_some() {
            return search_error(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
        }
        let context = format!(
            "http://{}/search/{service}/indexes('{index}')/$metadata#docs(*)",
            req.host
        );
        let odata_key = rest.first().and_then(|s| {
            s.strip_prefix("docs('")
                .and_then(|k| k.strip_suffix("')"))
                .map(|k| k.replace("''", "'"))
        });
        match (&req.method, rest) {
            (&Method::GET, [d]) if odata_key.is_some() && d.starts_with("docs(") => {
                let key = odata_key.unwrap_or_default();
                self.lookup(req, &replicas, &key)
            }
            (&Method::GET, [d, c]) if d == "docs" && c == "$count" => {
                let n = self.target_rows(&replicas, Visibility::Read).len();
                let mut r = empty_response(StatusCode::OK);
                *r.body_mut() = axum::body::Body::from(n.to_string());
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, hv("text/plain"));
                r
            }
            (&Method::GET, [d, key]) if d == "docs" => self.lookup(req, &replicas, key),
            (&Method::GET, [d]) if d == "docs" => {
                let top = match req.query.get("$top").map(odata::parse_top) {
                    None => None,
                    Some(Ok(t)) => Some(t),
                    Some(Err(e)) => return search_error(StatusCode::BAD_REQUEST, &e),
                };
                let skip = match req.query.get("$skip").map(odata::parse_top) {
                    None => 0,
                    Some(Ok(t)) => t,
                    Some(Err(e)) => return search_error(StatusCode::BAD_REQUEST, &e),
                };
                let sr = SearchRequest {
                    search: req.query.get("search").unwrap_or("*").to_string(),
                    filter: req.query.get("$filter").map(str::to_string),
                    select: req.query.get("$select").map(str::to_string),
                    top,
                    skip,
                    count: req.query.get("$count") == Some("true"),
                };
                self.run_search(&replicas, &sr, &context)
            }
            (&Method::POST, [d, s])
                if d == "docs" && (s == "search" || s == "search.post.search") =>
            {
                let body: Value = match serde_json::from_slice(&req.body) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => {
                        return search_error(
                            StatusCode::BAD_REQUEST,
                            "The request body must be a JSON object.",
                        );
                    }
                };
                let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
                let num = |k: &str| -> Result<Option<usize>, Response> {
                    match body.get(k) {
                        None | Some(Value::Null) => Ok(None),
                        Some(v) => v
                            .as_u64()
                            .and_then(|n| usize::try_from(n).ok())
                            .map(Some)
                            .ok_or_else(|| {
                                search_error(
                                    StatusCode::BAD_REQUEST,
                                    &format!("'{k}' must be a non-negative integer."),
                                )
                            }),
                    }
                };
                let (top, skip) = match (num("top"), num("skip")) {
                    (Ok(t), Ok(s)) => (t, s.unwrap_or(0)),
                    (Err(r), _) | (_, Err(r)) => return r,
                };
                let sr = SearchRequest {
                    search: text("search").unwrap_or_else(|| "*".to_string()),
                    filter: text("filter"),
                    select: text("select"),
                    top,
                    skip,
                    count: body.get("count").and_then(Value::as_bool).unwrap_or(false),
                };
                self.run_search(&replicas, &sr, &context)
            }
            _ => search_error(
                StatusCode::NOT_FOUND,
                &format!("No resource at {} for {}.", req.path, req.method),
            ),
        }
    }

    fn lookup(&self, req: &Req, replicas: &[&ReplicaDef], key: &str) -> Response {
        let fields = known_fields(replicas);
        let select = match req.query.get("$select").map(odata::parse_select) {
            None => None,
            Some(Ok(cols)) if cols.iter().all(|c| c == "*" || fields.contains(c)) => {
                Some(cols).filter(|c| !c.iter().any(|x| x == "*"))
            }
            Some(Ok(cols)) => {
                let bad = cols
                    .into_iter()
                    .find(|c| !fields.contains(c))
                    .unwrap_or_default();
                return search_error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "Invalid expression: Could not find a property named '{bad}' on type 'search.document'."
                    ),
                );
            }
            Some(Err(e)) => return search_error(StatusCode::BAD_REQUEST, &e),
        };
        match self.target_row_by_key(replicas, key, Visibility::Read) {
            Some(row) => json_response(
                StatusCode::OK,
                &Value::Object(project(row.fields, select.as_deref())),
            ),
            None => empty_response(StatusCode::NOT_FOUND),
        }
    }

    fn run_search(&self, replicas: &[&ReplicaDef], sr: &SearchRequest, context: &str) -> Response {
        let fields = known_fields(replicas);
        let filter: Option<Filter> = match sr.filter.as_deref().map(odata::parse_filter) {
            None => None,
            Some(Ok(f)) => {
                if let Some(c) = f
                    .fields()
                    .into_iter()
                    .find(|c| !fields.iter().any(|k| k == c))
                {
                    return search_error(
                        StatusCode::BAD_REQUEST,
                        &format!(
                            "Invalid expression: Could not find a property named '{c}' on type 'search.document'."
                        ),
                    );
                }
                Some(f)
            }
            Some(Err(e)) => {
                return search_error(StatusCode::BAD_REQUEST, &format!("Invalid expression: {e}"));
            }
        };
        let select = match sr.select.as_deref().map(odata::parse_select) {
            None => None,
            Some(Ok(cols)) => {
                if let Some(c) = cols.iter().find(|c| *c != "*" && !fields.contains(c)) {
                    return search_error(
                        StatusCode::BAD_REQUEST,
                        &format!(
                            "Invalid expression: Could not find a property named '{c}' on type 'search.document'."
                        ),
                    );
                }
                Some(cols).filter(|c| !c.iter().any(|x| x == "*"))
            }
            Some(Err(e)) => return search_error(StatusCode::BAD_REQUEST, &e),
        };
        let text = sr.search.trim().trim_matches('"').to_lowercase();
        let mut rows: Vec<Map<String, Value>> = self
            .target_rows(replicas, Visibility::Read)
            .into_iter()
            .map(|r| r.fields)
            .filter(|f| {
                filter
                    .as_ref()
                    .is_none_or(|flt| flt.matches(f, Dialect::SEARCH))
            })
            .filter(|f| {
                text.is_empty()
                    || text == "*"
                    || f.values()
                        .any(|v| v.as_str().is_some_and(|s| s.to_lowercase().contains(&text)))
            })
            .collect();
        let total = rows.len();
        let value: Vec<Value> = rows
            .drain(..)
            .skip(sr.skip)
            .take(sr.top.unwrap_or(50))
            .map(|f| {
                let mut m = Map::new();
                m.insert("@search.score".into(), json!(1.0));
                m.append(&mut project(f, select.as_deref()));
                Value::Object(m)
            })
            .collect();
        let mut body = Map::new();
        body.insert("@odata.context".into(), Value::String(context.to_string()));
        if sr.count {
            body.insert("@odata.count".into(), json!(total));
        }
        body.insert("value".into(), Value::Array(value));
        json_response(StatusCode::OK, &Value::Object(body))
    }
}

fn known_fields(replicas: &[&ReplicaDef]) -> Vec<String> {
    let mut out = Vec::new();
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
            .filter(|(k, _)| cols.iter().any(|c| c == k))
            .collect(),
    }
}
