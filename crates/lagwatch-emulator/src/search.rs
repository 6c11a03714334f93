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
//! - `$orderby` (`orderby`): `field [asc|desc]`, comma-separated. `top` defaults to 50; above
//!   1,000 the answer holds 1,000 documents and `@odata.nextLink` (GET: the query with
//!   `$skip`/`$top` moved on; POST: with `@search.nextPageParameters`), as the service does.
//!
//! Seeded rows ([`super::seeded`]): each replica's copy of its source's seeded rows is in
//! the index as documents (the drift, then `map`/`transform`; the key is the source key
//! column's text), before the live documents. A full listing pages by key: `$orderby=<key
//! field> asc` with `$filter=<key field> gt '<last key>'`. Index order is key order for
//! generated keys, so the bound becomes a start index by binary search and the live documents
//! are merged in: a page costs its rows, never a sort of the index. Other orders over seeded
//! documents are refused (400). `$count` and `docs/$count` are arithmetic without a filter
//! or search text, and otherwise count by walking from the key bound.
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
use super::seeded::{Doc, Order, SeedView, cmp_json, lower_bound, walk_docs};
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
    orderby: Option<String>,
    top: Option<usize>,
    skip: usize,
    count: bool,
    /// Where the next page of a `top` above [`MAX_TOP`] is asked for: the GET query, or
    /// the POST body.
    next: NextPage,
}

/// How a request's next page is written.
enum NextPage {
    /// `GET …/docs?…`: the other query parameters and the URL of the collection.
    Get { url: String, rest: String },
    /// `POST …/docs/search`: the body and the URL it was posted to.
    Post {
        url: String,
        body: Map<String, Value>,
    },
}

/// Most documents one search returns (`top` above it gets a next page, as the service
/// answers: `@odata.nextLink`, and `@search.nextPageParameters` for POST).
const MAX_TOP: usize = 1000;

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
        if let [i, name, s] = req.segments.as_slice()
            && i == "indexers"
            && s == "status"
        {
            if req.method != Method::GET {
                return search_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "Use GET for an indexer's status.",
                );
            }
            return self.indexer_status(&req.host, service, name);
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
                let seeded: u64 = self
                    .replica_views(&replicas)
                    .iter()
                    .map(SeedView::held_count)
                    .sum();
                let n = seeded + self.target_rows(&replicas, Visibility::Read).len() as u64;
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
                    orderby: req.query.get("$orderby").map(str::to_string),
                    top,
                    skip,
                    count: req.query.get("$count") == Some("true"),
                    next: NextPage::Get {
                        url: format!("http://{}{}", req.host, req.path),
                        rest: req.query.encode_without(&["$skip", "$top"]),
                    },
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
                    orderby: text("orderby"),
                    top,
                    skip,
                    count: body.get("count").and_then(Value::as_bool).unwrap_or(false),
                    next: NextPage::Post {
                        url: format!(
                            "http://{}{}?{}",
                            req.host,
                            req.path,
                            req.query.encode_without(&[])
                        ),
                        body: body.as_object().cloned().unwrap_or_default(),
                    },
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
        let seeded = self.replica_views(replicas).iter().find_map(|v| {
            v.doc(v.index_of_key(key, false)?)
                .filter(|d| d.id == key)
                .map(|d| d.fields)
        });
        let found = seeded.or_else(|| {
            self.target_row_by_key(replicas, key, Visibility::Read)
                .map(|r| r.fields)
        });
        match found {
            Some(fields) => json_response(
                StatusCode::OK,
                &Value::Object(project(fields, select.as_deref())),
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
        let matches = |f: &Map<String, Value>| {
            filter
                .as_ref()
                .is_none_or(|flt| flt.matches(f, Dialect::SEARCH))
                && (text.is_empty()
                    || text == "*"
                    || f.values()
                        .any(|v| v.as_str().is_some_and(|s| s.to_lowercase().contains(&text))))
        };
        let views = self.replica_views(replicas);
        let mut live: Vec<Doc> = self
            .target_rows(replicas, Visibility::Read)
            .into_iter()
            .map(|r| Doc {
                id: r.key,
                fields: r.fields,
            })
            .collect();
        let order = match sr.orderby.as_deref().map(|o| parse_orderby(o, &fields)) {
            None => Order::Index,
            Some(Err(e)) => return search_error(StatusCode::BAD_REQUEST, &e),
            Some(Ok(keys)) => match keys.as_slice() {
                [(field, false)] if !views.is_empty() => Order::Key {
                    field: field.clone(),
                    after: filter.as_ref().and_then(|f| lower_bound(f, field)),
                },
                _ if !views.is_empty() => {
                    return search_error(
                        StatusCode::BAD_REQUEST,
                        "$orderby over seeded documents is supported on the key field, \
                         ascending, only (by the emulator)",
                    );
                }
                _ => {
                    live.sort_by(|a, b| {
                        for (f, desc) in &keys {
                            let o = cmp_json(
                                a.fields.get(f).unwrap_or(&Value::Null),
                                b.fields.get(f).unwrap_or(&Value::Null),
                            );
                            let o = if *desc { o.reverse() } else { o };
                            if o != std::cmp::Ordering::Equal {
                                return o;
                            }
                        }
                        std::cmp::Ordering::Equal
                    });
                    Order::Index
                }
            },
        };
        let top = sr.top.unwrap_or(50);
        let page = top.min(MAX_TOP);
        // Counting needs every match unless it is arithmetic (no filter, no search text).
        let plain = filter.is_none() && (text.is_empty() || text == "*");
        let walk_all = sr.count && !plain;
        let mut seen = 0usize;
        let mut chosen: Vec<Map<String, Value>> = Vec::new();
        let mut more = false;
        let walked = walk_docs(&views, live, &order, |d| {
            if !matches(&d.fields) {
                return true;
            }
            seen += 1;
            if seen > sr.skip.saturating_add(page) {
                more = true;
                return walk_all;
            }
            if seen > sr.skip {
                chosen.push(d.fields);
            }
            true
        });
        if let Err(e) = walked {
            return search_error(StatusCode::BAD_REQUEST, &e);
        }
        let total = if walk_all {
            seen as u64
        } else if sr.count {
            let live_count = self.target_rows(replicas, Visibility::Read).len() as u64;
            views.iter().map(SeedView::held_count).sum::<u64>() + live_count
        } else {
            0
        };
        let value: Vec<Value> = chosen
            .into_iter()
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
        if more && top > page {
            let (skip, left) = (sr.skip.saturating_add(page), top - page);
            match &sr.next {
                NextPage::Get { url, rest } => {
                    let sep = if rest.is_empty() { "" } else { "&" };
                    body.insert(
                        "@odata.nextLink".into(),
                        Value::String(format!("{url}?{rest}{sep}$skip={skip}&$top={left}")),
                    );
                }
                NextPage::Post { url, body: params } => {
                    let mut params = params.clone();
                    params.insert("skip".into(), json!(skip));
                    params.insert("top".into(), json!(left));
                    body.insert("@odata.nextLink".into(), Value::String(url.clone()));
                    body.insert("@search.nextPageParameters".into(), Value::Object(params));
                }
            }
        }
        body.insert("value".into(), Value::Array(value));
        json_response(StatusCode::OK, &Value::Object(body))
    }
}

/// `$orderby`: `field [asc|desc]` items of known fields.
fn parse_orderby(s: &str, fields: &[String]) -> Result<Vec<(String, bool)>, String> {
    s.split(',')
        .map(|item| {
            let mut parts = item.split_whitespace();
            let field = parts.next().unwrap_or_default().to_string();
            let desc = match parts.next().map(str::to_ascii_lowercase).as_deref() {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(other) => {
                    return Err(format!("Invalid expression: '{other}' is not asc or desc."));
                }
            };
            if !fields.contains(&field) {
                return Err(format!(
                    "Invalid expression: Could not find a property named '{field}' on type 'search.document'."
                ));
            }
            Ok((field, desc))
        })
        .collect()
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
