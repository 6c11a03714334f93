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
//! `GET /` answers the cluster banner. Authentication when the cluster configures `users` or
//! `api_keys`: `Authorization: Basic …` or `Authorization: ApiKey base64(id:key)`; else `401`
//! with a `security_exception`. Unknown index → `404` `index_not_found_exception`;
//! `unavailable` outages → `503`. Left out: the 30 s idle-shard behaviour and `_refresh`.

use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::replication::{ReplicaDef, Visibility};
use super::scenario::Target;
use super::{Emulator, Req, b64_decode, empty_response, hv, json_response};

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
        let row = self.target_row_by_key(replicas, id, Visibility::Read);
        if req.method == Method::HEAD {
            return empty_response(if row.is_some() {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            });
        }
        match row {
            Some(r) => json_response(
                StatusCode::OK,
                &json!({
                    "_index": index,
                    "_id": id,
                    "_version": 1,
                    "_seq_no": r.seq - 1,
                    "_primary_term": 1,
                    "found": true,
                    "_source": Value::Object(r.fields),
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
        let refresh = self
            .scenario
            .elasticsearch
            .get(cluster)
            .map(|c| c.refresh_interval.get())
            .unwrap_or(std::time::Duration::from_secs(1));
        let hits: Vec<_> = self
            .target_rows(replicas, Visibility::Search { refresh })
            .into_iter()
            .filter(|r| query.matches(&r.key, &r.fields))
            .collect();
        let total = hits.len();
        let page: Vec<Value> = hits
            .into_iter()
            .skip(from)
            .take(size)
            .map(|r| {
                json!({
                    "_index": index,
                    "_id": r.key,
                    "_score": 1.0,
                    "_source": Value::Object(r.fields),
                })
            })
            .collect();
        json_response(
            StatusCode::OK,
            &json!({
                "took": 1,
                "timed_out": false,
                "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                "hits": {
                    "total": {"value": total, "relation": "eq"},
                    "max_score": if total > 0 { json!(1.0) } else { Value::Null },
                    "hits": page,
                },
            }),
        )
    }
}
