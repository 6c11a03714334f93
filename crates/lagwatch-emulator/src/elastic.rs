//! Elasticsearch/OpenSearch document and search APIs, fact sheet §6.3.
//!
//! Base `/es/{cluster}/`. Indexes are the Elasticsearch targets of the scenario's replicas;
//! a document's `_id` is the value of the replica's `key` column, `_source` the mapped columns.
//! Each record has two visibility instants, as §6.3 describes:
//!
//! - **indexed** (the replica's lag): `GET /{index}/_doc/{id}` is real-time, so it finds the
//!   document from then on → `{"_index","_id","_version","_seq_no","_primary_term",
//!   "found":true,"_source":{…}}`, else `404` `{"_index","_id","found":false}`; `HEAD` answers
//!   the status only.
//! - **searchable**: the first refresh at or after indexing; refreshes happen every
//!   `refresh_interval` (default 1s) from the emulator's start. `POST|GET /{index}/_search`
//!   with `{"query":{"term":{"field":"value"}}}` (also `match`, `match_all`, `ids`, and
//!   `bool` with `must`/`filter`/`should`/`must_not`; `size`, `from`) finds it from then on.
//!
//! A deleted row ([`super::replication`]) follows the same two clocks: `_doc` finds it until
//! the replica's `gone_at` (and during a resurrection window), `_search` until the first
//! refresh at or after `gone_at` (and from the first refresh at or after a resurrection's
//! start to the first at or after its end).
//!
//! `GET /` answers the cluster banner. Authentication when the cluster configures `users` or
//! `api_keys`: `Authorization: Basic …` or `Authorization: ApiKey base64(id:key)`; else `401`
//! with a `security_exception`. Unknown index → `404` `index_not_found_exception`;
//! `unavailable` outages → `503`. Left out: the 30 s idle-shard behaviour and `_refresh`.
//!
//! `_search` also takes `sort` (a field, `{field: order}` or `{field: {"order": …}}`, a
//! `.keyword` suffix naming the same field; hits then carry `sort` values and a null
//! `_score`), `search_after` (with `sort`, `from` 0), `_source` filtering (`false`, patterns,
//! `{includes, excludes}`) and `track_total_hits` (default 10,000: beyond, `"relation":
//! "gte"`). `from + size` is at most 10,000 (`index.max_result_window`), else `400`.
//!
//! Seeded rows ([`super::seeded`]): each replica's copy of its source's seeded rows is in the
//! index (the drift, then `map`/`transform`; `_id` is the source key column's text), always
//! searchable, before the live documents. A full listing sorts on the key field ascending with
//! `search_after`: index order is key order for generated keys, so a page starts by binary
//! search and costs its rows. Other sorts over seeded documents are refused (400). A
//! `match_all` total is arithmetic; other queries count by walking, up to the tracked limit.

use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::replication::{ReplicaDef, Visibility};
use super::scenario::Target;
use super::seeded::{Doc, Order, SeedView, cmp_json, walk_docs};
use super::{Emulator, Req, b64_decode, empty_response, hv, json_response};

/// `index.max_result_window`: `from + size` of one search (the default of every index).
const MAX_RESULT_WINDOW: usize = 10_000;

/// Hits counted exactly by default (`track_total_hits`); beyond, `"relation": "gte"`.
const DEFAULT_TRACK_TOTAL_HITS: u64 = 10_000;

/// `_seq_no` of seeded documents: above any live document's.
const SEEDED_SEQ_NO: u64 = 1 << 40;

fn es_error(status: StatusCode, kind: &str, reason: &str, extra: Map<String, Value>) -> Response {
    let mut cause = Map::new();
    cause.insert("type".into(), json!(kind));
    cause.insert("reason".into(), json!(reason));
    let mut err = cause.clone();
    for (k, v) in extra {
        cause.insert(k.clone(), v.clone());
        err.insert(k, v);
    }
    err.insert("root_cause".into(), json!([Value::Object(cause)]));
    json_response(
        status,
        &json!({"error": Value::Object(err), "status": status.as_u16()}),
    )
}

/// A parsed query.
enum Query {
    All,
    Term(String, Value),
    Match(String, String),
    Ids(Vec<String>),
    Bool {
        must: Vec<Query>,
        should: Vec<Query>,
        must_not: Vec<Query>,
    },
}

fn field_name(f: &str) -> String {
    f.strip_suffix(".keyword").unwrap_or(f).to_string()
}

fn single(obj: &Value, what: &str) -> Result<(String, Value), String> {
    let m = obj
        .as_object()
        .filter(|m| m.len() == 1)
        .ok_or_else(|| format!("[{what}] query malformed, expected one field"))?;
    let (k, v) = m
        .iter()
        .next()
        .ok_or_else(|| format!("[{what}] query is empty"))?;
    Ok((k.clone(), v.clone()))
}

fn parse_query(q: &Value) -> Result<Query, String> {
    let (kind, body) = single(q, "query")?;
    match kind.as_str() {
        "match_all" => Ok(Query::All),
        "term" => {
            let (field, v) = single(&body, "term")?;
            let v = match v {
                Value::Object(m) => m
                    .get("value")
                    .cloned()
                    .ok_or("[term] query does not support a field without [value]")?,
                other => other,
            };
            Ok(Query::Term(field_name(&field), v))
        }
        "match" => {
            let (field, v) = single(&body, "match")?;
            let text = match &v {
                Value::Object(m) => m.get("query").cloned().unwrap_or(Value::Null),
                other => other.clone(),
            };
            let text = match text {
                Value::String(s) => s,
                Value::Null => return Err("[match] query needs a [query]".to_string()),
                other => other.to_string(),
            };
            Ok(Query::Match(field_name(&field), text))
        }
        "ids" => {
            let values = body
                .get("values")
                .and_then(Value::as_array)
                .ok_or("[ids] query needs [values]")?;
            Ok(Query::Ids(
                values
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    .collect(),
            ))
        }
        "bool" => {
            let list = |k: &str| -> Result<Vec<Query>, String> {
                match body.get(k) {
                    None => Ok(Vec::new()),
                    Some(Value::Array(a)) => a.iter().map(parse_query).collect(),
                    Some(one) => Ok(vec![parse_query(one)?]),
                }
            };
            let mut must = list("must")?;
            must.extend(list("filter")?);
            Ok(Query::Bool {
                must,
                should: list("should")?,
                must_not: list("must_not")?,
            })
        }
        other => Err(format!("unknown query [{other}]")),
    }
}

impl Query {
    fn matches(&self, id: &str, src: &Map<String, Value>) -> bool {
        match self {
            Query::All => true,
            Query::Term(f, v) => src.get(f) == Some(v),
            Query::Match(f, text) => src.get(f).is_some_and(|v| {
                let s = v.as_str().map_or_else(|| v.to_string(), str::to_lowercase);
                text.to_lowercase()
                    .split_whitespace()
                    .any(|t| s.split(|c: char| !c.is_alphanumeric()).any(|w| w == t) || s == t)
            }),
            Query::Ids(ids) => ids.iter().any(|i| i == id),
            Query::Bool {
                must,
                should,
                must_not,
            } => {
                must.iter().all(|q| q.matches(id, src))
                    && !must_not.iter().any(|q| q.matches(id, src))
                    && (should.is_empty()
                        || !must.is_empty()
                        || should.iter().any(|q| q.matches(id, src)))
            }
        }
    }
}

impl Emulator {
    fn es_authenticate(&self, req: &Req, cluster: &str) -> Result<(), Response> {
        let Some(c) = self.scenario.elasticsearch.get(cluster) else {
            return Ok(());
        };
        if c.users.is_empty() && c.api_keys.is_empty() {
            return Ok(());
        }
        let challenge = |reason: String| {
            let mut extra = Map::new();
            extra.insert(
                "header".into(),
                json!({"WWW-Authenticate": ["Basic realm=\"security\" charset=\"UTF-8\"", "ApiKey"]}),
            );
            let mut r = es_error(
                StatusCode::UNAUTHORIZED,
                "security_exception",
                &reason,
                extra,
            );
            r.headers_mut().append(
                header::WWW_AUTHENTICATE,
                hv("Basic realm=\"security\" charset=\"UTF-8\""),
            );
            r.headers_mut()
                .append(header::WWW_AUTHENTICATE, hv("ApiKey"));
            Err(r)
        };
        let Some(auth) = req.header("authorization") else {
            return challenge(format!(
                "missing authentication credentials for REST request [{}]",
                req.path
            ));
        };
        let (scheme, value) = auth.split_once(' ').unwrap_or((auth, ""));
        let decoded = b64_decode(value.trim()).and_then(|b| String::from_utf8(b).ok());
        if scheme.eq_ignore_ascii_case("basic") {
            if let Some((user, pass)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
                if c.users.get(user).is_some_and(|p| p == pass) {
                    return Ok(());
                }
                return challenge(format!(
                    "unable to authenticate user [{user}] for REST request [{}]",
                    req.path
                ));
            }
        } else if scheme.eq_ignore_ascii_case("apikey") {
            let ok = c
                .api_keys
                .iter()
                .any(|k| decoded.as_deref() == Some(k.as_str()) || value.trim() == k.as_str());
            if ok {
                return Ok(());
            }
        }
        challenge(format!(
            "unable to authenticate with provided credentials and anonymous access is not allowed for this request [{}]",
            req.path
        ))
    }

    pub(crate) fn elastic(&self, req: &Req, cluster: &str) -> Response {
        if let Err(r) = self.es_authenticate(req, cluster) {
            return r;
        }
        let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
        if matches!(segs.as_slice(), [] | [""]) {
            return json_response(
                StatusCode::OK,
                &json!({
                    "name": format!("{cluster}-node-1"),
                    "cluster_name": cluster,
                    "version": {"number": "8.15.0", "distribution": "emulated"},
                    "tagline": "You Know, for Search",
                }),
            );
        }
        let index = segs.first().copied().unwrap_or_default();
        let replicas = self.replicas_for(
            |t| matches!(t, Target::Elasticsearch { cluster: c, index: i } if c == cluster && i == index),
        );
        if replicas.is_empty() {
            let mut extra = Map::new();
            extra.insert("index".into(), json!(index));
            extra.insert("resource.type".into(), json!("index_or_alias"));
            extra.insert("resource.id".into(), json!(index));
            return es_error(
                StatusCode::NOT_FOUND,
                "index_not_found_exception",
                &format!("no such index [{index}]"),
                extra,
            );
        }
        if self.unavailable(&replicas).is_some() {
            return es_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable_shards_exception",
                "primary shard is not active (emulated outage)",
                Map::new(),
            );
        }
        match (&req.method, &segs[1..]) {
            (&Method::GET | &Method::HEAD, ["_doc", id]) => self.es_get(req, &replicas, index, id),
            (&Method::GET, ["_stats"]) => self.es_stats(req, index, &replicas, None),
            (&Method::GET, ["_stats", metrics]) => {
                self.es_stats(req, index, &replicas, Some(metrics))
            }
            (&Method::GET | &Method::POST, ["_search"]) => {
                self.es_search(req, cluster, &replicas, index)
            }
            _ => es_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "illegal_argument_exception",
                &format!(
                    "Incorrect HTTP method for uri [{}] and method [{}]",
                    req.path, req.method
                ),
                Map::new(),
            ),
        }
    }

    fn es_get(&self, req: &Req, replicas: &[&ReplicaDef], index: &str, id: &str) -> Response {
        // Seeded documents take sequence numbers above any live row's.
        let seeded = self.replica_views(replicas).iter().find_map(|v| {
            let i = v.index_of_key(id, false)?;
            v.doc(i)
                .filter(|d| d.id == id)
                .map(|d| (SEEDED_SEQ_NO + i, d.fields))
        });
        let row = seeded.or_else(|| {
            self.target_row_by_key(replicas, id, Visibility::Read)
                .map(|r| (r.seq - 1, r.fields))
        });
        if req.method == Method::HEAD {
            return empty_response(if row.is_some() {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            });
        }
        match row {
            Some((seq_no, fields)) => json_response(
                StatusCode::OK,
                &json!({
                    "_index": index,
                    "_id": id,
                    "_version": 1,
                    "_seq_no": seq_no,
                    "_primary_term": 1,
                    "found": true,
                    "_source": Value::Object(fields),
                }),
            ),
            None => json_response(
                StatusCode::NOT_FOUND,
                &json!({"_index": index, "_id": id, "found": false}),
            ),
        }
    }

    fn es_search(
        &self,
        req: &Req,
        cluster: &str,
        replicas: &[&ReplicaDef],
        index: &str,
    ) -> Response {
        let parsing = |reason: String| {
            es_error(
                StatusCode::BAD_REQUEST,
                "parsing_exception",
                &reason,
                Map::new(),
            )
        };
        let body: Value = if req.body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            match serde_json::from_slice(&req.body) {
                Ok(v @ Value::Object(_)) => v,
                _ => return parsing("request body is not a JSON object".to_string()),
            }
        };
        let query = match body.get("query") {
            None => Query::All,
            Some(q) => match parse_query(q) {
                Ok(q) => q,
                Err(e) => return parsing(e),
            },
        };
        let num = |k: &str, default: usize| -> usize {
            body.get(k)
                .and_then(Value::as_u64)
                .or_else(|| req.query.get(k).and_then(|v| v.parse().ok()))
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(default)
        };
        let (size, from) = (num("size", 10), num("from", 0));
        let illegal = |reason: &str| {
            es_error(
                StatusCode::BAD_REQUEST,
                "illegal_argument_exception",
                reason,
                Map::new(),
            )
        };
        if from.saturating_add(size) > MAX_RESULT_WINDOW {
            return illegal(&format!(
                "Result window is too large, from + size must be less than or equal to: \
                 [{MAX_RESULT_WINDOW}] but was [{}]. See the scroll api for a more efficient way \
                 to request large data sets.",
                from.saturating_add(size)
            ));
        }
        let sort = match body.get("sort").map(parse_sort) {
            None => Vec::new(),
            Some(Ok(s)) => s,
            Some(Err(e)) => return parsing(e),
        };
        let after = match body.get("search_after") {
            None | Some(Value::Null) => None,
            Some(Value::Array(values)) => {
                if sort.is_empty() {
                    return illegal("Sort must contain at least one field.");
                }
                if values.len() != sort.len() {
                    return illegal(&format!(
                        "search_after has {} value(s) but sort has {}.",
                        values.len(),
                        sort.len()
                    ));
                }
                if from > 0 {
                    return illegal(
                        "`from` parameter must be set to 0 when `search_after` is used.",
                    );
                }
                values.first().cloned()
            }
            Some(_) => return parsing("[search_after] must be an array".to_string()),
        };
        let source = match body.get("_source").map(SourceFilter::parse) {
            None => SourceFilter::All,
            Some(Ok(f)) => f,
            Some(Err(e)) => return parsing(e),
        };
        let track = match body.get("track_total_hits") {
            None | Some(Value::Null) => Some(DEFAULT_TRACK_TOTAL_HITS),
            Some(Value::Bool(true)) => Some(u64::MAX),
            Some(Value::Bool(false)) => None,
            Some(v) => match v.as_u64() {
                Some(n) => Some(n),
                None => return parsing("[track_total_hits] must be a boolean or a number".into()),
            },
        };
        let refresh = self
            .scenario
            .elasticsearch
            .get(cluster)
            .map(|c| c.refresh_interval.get())
            .unwrap_or(std::time::Duration::from_secs(1));
        let views = self.replica_views(replicas);
        let mut live: Vec<Doc> = self
            .target_rows(replicas, Visibility::Search { refresh })
            .into_iter()
            .map(|r| Doc {
                id: r.key,
                fields: r.fields,
            })
            .collect();
        let order = match sort.as_slice() {
            [] => Order::Index,
            [(field, false)] if !views.is_empty() => Order::Key {
                field: field.clone(),
                after: after.map(|v| (v, false)),
            },
            _ if !views.is_empty() => {
                return illegal(
                    "sorting seeded documents is supported on one field, the key field, \
                     ascending, only (by the emulator)",
                );
            }
            keys => {
                let value = |d: &Doc, f: &str| d.fields.get(f).cloned().unwrap_or(Value::Null);
                if let Some(a) = &after {
                    let (f, desc) = &keys[0];
                    live.retain(|d| {
                        let o = cmp_json(&value(d, f), a);
                        if *desc {
                            o == std::cmp::Ordering::Less
                        } else {
                            o == std::cmp::Ordering::Greater
                        }
                    });
                }
                live.sort_by(|a, b| {
                    for (f, desc) in keys {
                        let o = cmp_json(&value(a, f), &value(b, f));
                        let o = if *desc { o.reverse() } else { o };
                        if o != std::cmp::Ordering::Equal {
                            return o;
                        }
                    }
                    std::cmp::Ordering::Equal
                });
                Order::Index
            }
        };
        let mut hits: Vec<Doc> = Vec::new();
        let mut seen = 0usize;
        let walked = walk_docs(&views, live, &order, |d| {
            if !query.matches(&d.id, &d.fields) {
                return true;
            }
            if hits.len() >= size {
                return false;
            }
            seen += 1;
            if seen > from {
                hits.push(d);
            }
            hits.len() < size
        });
        if let Err(e) = walked {
            return illegal(&e);
        }
        let total = track.map(|limit| self.es_total(&views, replicas, refresh, &query, limit));
        let page: Vec<Value> = hits
            .into_iter()
            .map(|d| {
                let mut hit = Map::new();
                hit.insert("_index".into(), json!(index));
                hit.insert("_id".into(), json!(d.id));
                hit.insert(
                    "_score".into(),
                    if sort.is_empty() {
                        json!(1.0)
                    } else {
                        Value::Null
                    },
                );
                if !sort.is_empty() {
                    let keys: Vec<Value> = sort
                        .iter()
                        .map(|(f, _)| d.fields.get(f).cloned().unwrap_or(Value::Null))
                        .collect();
                    hit.insert("sort".into(), Value::Array(keys));
                }
                if let Some(src) = source.apply(d.fields) {
                    hit.insert("_source".into(), Value::Object(src));
                }
                Value::Object(hit)
            })
            .collect();
        let mut hits_obj = Map::new();
        if let Some((value, exact)) = total {
            hits_obj.insert(
                "total".into(),
                json!({"value": value, "relation": if exact { "eq" } else { "gte" }}),
            );
        }
        let any = total.is_none_or(|(v, _)| v > 0) && !page.is_empty();
        hits_obj.insert(
            "max_score".into(),
            if any && sort.is_empty() {
                json!(1.0)
            } else {
                Value::Null
            },
        );
        hits_obj.insert("hits".into(), Value::Array(page));
        json_response(
            StatusCode::OK,
            &json!({
                "took": 1,
                "timed_out": false,
                "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                "hits": Value::Object(hits_obj),
            }),
        )
    }

    /// `hits.total`: the number of matches up to `limit` and whether it is exact. A
    /// `match_all` over seeded documents is counted without a walk.
    fn es_total(
        &self,
        views: &[SeedView],
        replicas: &[&ReplicaDef],
        refresh: std::time::Duration,
        query: &Query,
        limit: u64,
    ) -> (u64, bool) {
        let live = self.target_rows(replicas, Visibility::Search { refresh });
        if matches!(query, Query::All) {
            let n = views.iter().map(SeedView::held_count).sum::<u64>() + live.len() as u64;
            return if n > limit { (limit, false) } else { (n, true) };
        }
        let live: Vec<Doc> = live
            .into_iter()
            .map(|r| Doc {
                id: r.key,
                fields: r.fields,
            })
            .collect();
        let mut n = 0u64;
        let mut over = false;
        // Index order cannot fail.
        let _ = walk_docs(views, live, &Order::Index, |d| {
            if query.matches(&d.id, &d.fields) {
                if n == limit {
                    over = true;
                    return false;
                }
                n += 1;
            }
            true
        });
        (n, !over)
    }
}

/// `sort`: a field name, `{field: "asc"|"desc"}`, `{field: {"order": …}}`, or an array of
/// them; `.keyword` suffixes name the same field here. Returns `(field, descending)`.
fn parse_sort(v: &Value) -> Result<Vec<(String, bool)>, String> {
    let one = |item: &Value| -> Result<(String, bool), String> {
        let (field, order) = match item {
            Value::String(f) => (f.clone(), None),
            Value::Object(m) if m.len() == 1 => {
                let (f, o) = m.iter().next().ok_or("[sort] entry is empty")?;
                let order = match o {
                    Value::String(o) => Some(o.clone()),
                    Value::Object(spec) => spec
                        .get("order")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    _ => return Err(format!("[sort] option of [{f}] is malformed")),
                };
                (f.clone(), order)
            }
            _ => return Err("[sort] entries are field names or {field: order}".to_string()),
        };
        let desc = match order.as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(o) => return Err(format!("[sort] unknown order [{o}]")),
        };
        Ok((field_name(&field), desc))
    };
    match v {
        Value::Array(items) => items.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

/// `_source` filtering: `false`, `true`, a pattern, a list of patterns, or
/// `{"includes": …, "excludes": …}`; patterns may use `*`.
enum SourceFilter {
    All,
    None,
    Fields {
        includes: Vec<String>,
        excludes: Vec<String>,
    },
}

impl SourceFilter {
    fn parse(v: &Value) -> Result<SourceFilter, String> {
        let list = |v: Option<&Value>| -> Result<Vec<String>, String> {
            match v {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::String(s)) => Ok(vec![s.clone()]),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|p| {
                        p.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| "[_source] patterns are strings".to_string())
                    })
                    .collect(),
                Some(_) => Err("[_source] patterns are strings".to_string()),
            }
        };
        match v {
            Value::Bool(true) => Ok(SourceFilter::All),
            Value::Bool(false) => Ok(SourceFilter::None),
            Value::String(_) | Value::Array(_) => Ok(SourceFilter::Fields {
                includes: list(Some(v))?,
                excludes: Vec::new(),
            }),
            Value::Object(m) => Ok(SourceFilter::Fields {
                includes: list(m.get("includes").or_else(|| m.get("include")))?,
                excludes: list(m.get("excludes").or_else(|| m.get("exclude")))?,
            }),
            _ => Err("[_source] must be a boolean, a pattern, a list or an object".to_string()),
        }
    }

    fn apply(&self, src: Map<String, Value>) -> Option<Map<String, Value>> {
        match self {
            SourceFilter::All => Some(src),
            SourceFilter::None => None,
            SourceFilter::Fields { includes, excludes } => Some(
                src.into_iter()
                    .filter(|(k, _)| {
                        (includes.is_empty() || includes.iter().any(|p| wildcard(p, k)))
                            && !excludes.iter().any(|p| wildcard(p, k))
                    })
                    .collect(),
            ),
        }
    }
}

/// Elasticsearch's simple `*` patterns.
fn wildcard(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, rest)) => {
            let Some(mut left) = name.strip_prefix(head) else {
                return false;
            };
            let parts: Vec<&str> = rest.split('*').collect();
            let Some((last, middle)) = parts.split_last() else {
                return true;
            };
            for m in middle {
                match left.find(m) {
                    Some(i) => left = &left[i + m.len()..],
                    None => return false,
                }
            }
            left.ends_with(last)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_and_source_filters_parse() {
        assert_eq!(
            parse_sort(&json!([{"k.keyword": {"order": "asc"}}, {"n": "desc"}, "x"])),
            Ok(vec![
                ("k".to_string(), false),
                ("n".to_string(), true),
                ("x".to_string(), false)
            ])
        );
        assert!(parse_sort(&json!({"k": "up"})).is_err());
        let src: Map<String, Value> = json!({"name": 1, "number": 2, "other": 3})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let f = SourceFilter::parse(&json!({"includes": ["n*"], "excludes": ["number"]}))
            .unwrap_or(SourceFilter::All);
        let kept = f.apply(src.clone()).unwrap_or_default();
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["name"]);
        assert!(matches!(
            SourceFilter::parse(&json!(false)),
            Ok(SourceFilter::None)
        ));
        assert!(wildcard("*", "anything"));
        assert!(wildcard("a*c", "abc"));
        assert!(!wildcard("a*c", "abd"));
    }
}
