//! `elasticsearch`: an Elasticsearch or OpenSearch index fed from Dynamics 365 by a pipeline.
//!
//! Why two modes: Elasticsearch has two notions of "arrived" that differ by the index's
//! **refresh interval** (fact sheet §6.3). A document `GET` is real-time: it finds a document as
//! soon as it is indexed. A search only finds it after the next refresh — every 1 s by default,
//! but only on shards searched in the last 30 s (`index.search.idle.after`), so an idle index
//! can take longer, and the first search waits for a refresh. The configuration says which one
//! is measured, with [`EsMode`]:
//!
//! - `indexed`: `GET {base}/{index}/_doc/{id}` (the document `_id` is the sentinel key) →
//!   `{"_index","_id","found":true,"_source":{…}}`, or `404 {"found":false}` →
//!   [`Lookup::Absent`]. A 404 with an `error` body (`index_not_found_exception`) is an error:
//!   the index is missing, which is not "not yet".
//! - `searchable`: `POST {base}/{index}/_search` with
//!   `{"query":{"term":{"<key_field>":"<key>"}},"size":1}` on a `keyword` field →
//!   `hits.hits[0]._source`; no hit is `Absent`. A term query is exact, so a hit with another
//!   key is an error, never a hit.
//!
//! Authentication (the system's `auth` in [`HttpSystem`]): basic (user and password), or an
//! API key sent as `Authorization: ApiKey <base64(id:api_key)>` (a header credential). Errors
//! come as `{"error":{"type","reason",…},"status":n}`. OpenSearch answers the same shapes.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use super::http_inventory::{OPERATION, check_query, page_size};
use super::status::{self, elasticsearch_refresh::ElasticsearchRefresh};
use super::wire::{es_error, payload_text};
use super::{BuildContext, System, SystemKind, SystemSpec, check_url, decode_as};
use crate::auth::{Accepts, ApiKeyStyle, AuthBlock};
use crate::config::Issue;
use crate::config::platform::Surface;
use crate::connector::inventory::{Inventory, InventoryPage, InventoryQuery, json_row, refused};
use crate::connector::status::StatusReader;
use crate::connector::{ConnectorError, Lookup, Target};
use crate::gate::Gate;
use crate::net::{HttpSystem, Reply, excerpt};
use crate::percent;
use crate::sentinel::SentinelId;

/// Which arrival is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EsMode {
    /// The document is indexed (real-time `GET` by `_id`): pipeline lag only.
    #[default]
    Indexed,
    /// The document is searchable (`_search` with a term query): pipeline lag plus refresh.
    Searchable,
}

/// Where sentinels land in an Elasticsearch/OpenSearch cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EsIndex {
    /// Cluster URL, `https://es.example.com:9200` (no trailing slash).
    pub base: String,
    /// Index (or alias) name.
    pub index: String,
    /// `indexed` (document GET, real-time) or `searchable` (search, after a refresh).
    pub mode: EsMode,
    /// `keyword` field holding the sentinel key, for `searchable` mode (in `indexed` mode the
    /// document `_id` must be the sentinel key). A `text` field would be analysed and never
    /// match a term query; with dynamic mapping use `<field>.keyword`.
    pub key_field: String,
    /// `_source` field holding the payload, compared with what was written.
    pub payload_field: String,
}

/// Config of a `kind: elasticsearch` system (Elasticsearch or OpenSearch).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticsearchConfig {
    /// Cluster URL, `https://es.example.com:9200`.
    pub url: String,
    pub index: String,
    #[serde(default)]
    pub mode: EsMode,
    /// `keyword` field with the sentinel key; needed in `searchable` mode.
    #[serde(default)]
    pub key_field: Option<String>,
    pub payload_field: String,
    /// `basic`, `api_key` (the encoded key Elasticsearch returns) or `none`.
    pub auth: AuthBlock,
}

/// Registry entry: types and checks a `kind: elasticsearch` block.
///
/// # Errors
/// An [`Issue`] naming the offending key.
pub fn decode(key: &str, value: Value) -> Result<Box<dyn SystemKind>, Issue> {
    let mut c: ElasticsearchConfig = decode_as(key, value)?;
    check_url(
        &format!("{key}.url"),
        &c.url,
        "a cluster URL such as https://es.example.com:9200",
    )?;
    // A path prefix (a cluster behind a proxy) stays; the index or an API path pasted after
    // it goes.
    let why = "the index is the system's index key, and lagwatch adds /<index>/_doc and /<index>/_search itself";
    super::check_base_url(
        &format!("{key}.url"),
        &c.url,
        "https://es.example.com:9200",
        &[("_*", why), (c.index.to_ascii_lowercase().as_str(), why)],
    )?;
    index_name(&c.index).map_err(|reason| Issue::new(format!("{key}.index"), reason))?;
    match (&c.mode, &c.key_field) {
        (EsMode::Searchable, None) => {
            return Err(Issue::new(
                format!("{key}.key_field"),
                "searchable mode finds the sentinel with a term query on this keyword field; \
                 name it (e.g. key or key.keyword)",
            ));
        }
        (EsMode::Indexed, Some(_)) => {
            return Err(Issue::new(
                format!("{key}.key_field"),
                "indexed mode reads the document whose _id is the sentinel key; key_field is \
                 only for searchable mode, remove it",
            ));
        }
        _ => {}
    }
    c.auth.resolve(&format!("{key}.auth"), Accepts::STATIC)?;
    Ok(Box::new(c))
}

/// Checks an index (or alias) name: lower case, none of `\/*?"<>|,#:` or a space, not starting
/// with `-`, `_` or `+`.
///
/// # Errors
/// A sentence quoting the name.
pub fn index_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && !name.starts_with(['-', '_', '+'])
        && name.chars().all(|ch| {
            !ch.is_ascii_uppercase()
                && !matches!(
                    ch,
                    '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ' ' | ',' | '#' | ':'
                )
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{name}\" is not an index name (lower case, no spaces or \\/*?\"<>|,#:, not starting with -, _ or +)"
        ))
    }
}

impl SystemSpec for ElasticsearchConfig {
    fn kind(&self) -> &'static str {
        "elasticsearch"
    }

    /// The index's refresh statistics (`systems::status`).
    fn status_surfaces(&self) -> &'static [&'static str] {
        &["elasticsearch_refresh"]
    }

    fn can_list(&self) -> Result<(), String> {
        Ok(())
    }
    fn can_write(&self) -> Result<(), String> {
        Err(
            "an index is fed by its pipeline; write sentinels into the system it copies and \
             probe this one as a target"
                .to_string(),
        )
    }

    fn describe(&self) -> String {
        format!(
            "{} index {} ({:?}, payload {}), auth {}",
            self.url,
            self.index,
            self.mode,
            self.payload_field,
            self.auth.method()
        )
    }
}

impl SystemKind for ElasticsearchConfig {
    fn build(&self, name: &str, cx: &BuildContext, gate: Arc<Gate>) -> Result<System, Issue> {
        let http = super::http_system(
            name,
            cx,
            &gate,
            self.auth.credential(),
            || Err(Issue::new(format!("systems.{name}.auth"), "no Entra scope")),
            Some(ApiKeyStyle {
                header: "Authorization",
                prefix: "ApiKey ",
            }),
        )?;
        let base = self.url.trim_end_matches('/').to_string();
        let status = {
            let (http, base, index) = (http.clone(), base.clone(), self.index.clone());
            status::surfaces(self.kind(), move |surface| match surface {
                Surface::ElasticsearchRefresh {} => Some(Arc::new(ElasticsearchRefresh::new(
                    http.clone(),
                    base.clone(),
                    index.clone(),
                ))
                    as Arc<dyn StatusReader>),
                _ => None,
            })
        };
        let connector = Arc::new(Elasticsearch::new(
            http,
            EsIndex {
                base,
                index: self.index.clone(),
                mode: self.mode,
                key_field: self.key_field.clone().unwrap_or_default(),
                payload_field: self.payload_field.clone(),
            },
        ));
        Ok(
            System::target_only(name, self.kind(), gate, connector.clone())
                .with_inventory(connector)
                .with_status(status),
        )
    }
}

/// The connector: one index of one cluster.
pub struct Elasticsearch {
    http: HttpSystem,
    index: EsIndex,
}

impl Elasticsearch {
    pub fn new(http: HttpSystem, index: EsIndex) -> Self {
        Elasticsearch { http, index }
    }

    fn index_url(&self) -> String {
        self.index_url_of(&self.index.index)
    }

    fn index_url_of(&self, index: &str) -> String {
        format!("{}/{}", self.index.base, percent::component(index))
    }

    fn payload(&self, source: Option<&Value>) -> Option<String> {
        source?
            .get(&self.index.payload_field)
            .and_then(payload_text)
    }

    async fn indexed(&self, id: &SentinelId) -> Result<Lookup, ConnectorError> {
        let url = format!("{}/_doc/{}", self.index_url(), percent::component(id.key()));
        let reply = self
            .http
            .send("lookup", |c: &Client| {
                c.get(&url).header("Accept", "application/json")
            })
            .await?;
        if !matches!(reply.status, StatusCode::OK | StatusCode::NOT_FOUND) {
            return Err(es_error(&reply));
        }
        let doc: Value = reply.json()?;
        if doc.get("error").is_some() {
            return Err(es_error(&reply));
        }
        match doc.get("found").and_then(Value::as_bool) {
            Some(true) if reply.status == StatusCode::OK => Ok(Lookup::Present {
                payload: self.payload(doc.get("_source")),
            }),
            Some(false) => Ok(Lookup::Absent),
            _ => Err(reply.bad_response(format!(
                "expected a document with \"found\", got {}",
                excerpt(&reply.body)
            ))),
        }
    }

    /// One `_search` with `body`: its `hits.hits`, and the reply (for errors about them).
    async fn search(&self, url: &str, body: &Value) -> Result<(Vec<Value>, Reply), ConnectorError> {
        let reply = self
            .http
            .send("lookup", |c: &Client| {
                c.post(url).header("Accept", "application/json").json(body)
            })
            .await?;
        if reply.status != StatusCode::OK {
            return Err(es_error(&reply));
        }
        let mut answer: Value = reply.json()?;
        let Some(Value::Array(hits)) = answer.pointer_mut("/hits/hits").map(Value::take) else {
            return Err(
                reply.bad_response(format!("expected hits.hits, got {}", excerpt(&reply.body)))
            );
        };
        Ok((hits, reply))
    }

    async fn searchable(&self, id: &SentinelId) -> Result<Lookup, ConnectorError> {
        let url = format!("{}/_search", self.index_url());
        let mut term = serde_json::Map::new();
        term.insert(self.index.key_field.clone(), json!(id.key()));
        let body = json!({"query": {"term": term}, "size": 1});
        let (hits, reply) = self.search(&url, &body).await?;
        let Some(hit) = hits.first() else {
            return Ok(Lookup::Absent);
        };
        let source = hit.get("_source");
        match source.and_then(|s| s.get(&self.index.key_field)) {
            None => {}
            Some(Value::String(k)) if k == id.key() => {}
            Some(other) => {
                return Err(reply.bad_response(format!(
                    "term query on {} = {} returned a document with {}",
                    self.index.key_field,
                    id.key(),
                    excerpt(other.to_string().as_bytes())
                )));
            }
        }
        Ok(Lookup::Present {
            payload: self.payload(source),
        })
    }
}

#[async_trait]
impl Target for Elasticsearch {
    async fn lookup(&self, id: &SentinelId) -> Result<Lookup, ConnectorError> {
        match self.index.mode {
            EsMode::Indexed => self.indexed(id).await,
            EsMode::Searchable => self.searchable(id).await,
        }
    }

    /// In `searchable` mode several keys go in one `_search` (a `bool` of `should` term
    /// queries): one request, answered from one refreshed view of each shard.
    fn reads_together(&self) -> bool {
        self.index.mode == EsMode::Searchable
    }

    async fn lookup_together(&self, ids: &[SentinelId]) -> Result<Vec<Lookup>, ConnectorError> {
        let url = format!("{}/_search", self.index_url());
        let should: Vec<Value> = ids
            .iter()
            .map(|id| {
                let mut term = serde_json::Map::new();
                term.insert(self.index.key_field.clone(), json!(id.key()));
                json!({"term": term})
            })
            .collect();
        let body = json!({"query": {"bool": {"should": should}}, "size": ids.len()});
        let (hits, _) = self.search(&url, &body).await?;
        Ok(ids
            .iter()
            .map(|id| {
                hits.iter()
                    .filter_map(|h| h.get("_source"))
                    .find(|s| {
                        s.get(&self.index.key_field).and_then(Value::as_str) == Some(id.key())
                    })
                    .map_or(Lookup::Absent, |s| Lookup::Present {
                        payload: self.payload(Some(s)),
                    })
            })
            .collect())
    }
}

/// Most hits one search returns: `from + size` may not pass `index.max_result_window`, 10,000
/// by default.
pub const MAX_INVENTORY_PAGE: u32 = 10_000;

/// Lists every document of an index for reconciliation, with `search_after`:
/// `POST {url}/{index}/_search` with
/// `{"size":n,"sort":[{"<first>":"asc"}],"_source":[columns],"query":{"match_all":{}},"track_total_hits":false}`
/// and, after the first page, `"search_after":<the last hit's sort values>`. `first` is the
/// query's first column (the runner lists the row key first), which must be unique per document
/// and sortable: a `keyword`, numeric or date field with doc values (`_id` cannot be sorted on
/// by default since Elasticsearch 8, and a `text` field not at all). The configured `key_field`
/// is not used: `indexed` mode has none, and it names where probes look, not the row key of
/// the index read. The continuation is the JSON array of the last hit's `sort` values.
/// `track_total_hits: false` spares counting every match for a total nobody reads.
///
/// Why no point in time (PIT): a PIT would keep every page on one snapshot, but it must be
/// opened and closed by requests of their own that the one-page-per-call contract has no place
/// for (the runner may also stop between pages, leaving it to expire), it pins segments on the
/// cluster for as long as its keep-alive, and Elasticsearch and OpenSearch open it with
/// different APIs. Without it a document written while listing may or may not be seen, which
/// reconciliation already treats as lag; keyset order on a unique key never skips or repeats
/// a document that stays. A `changed_since` scope is not sent (the field's mapping is not
/// known here); the runner filters.
#[async_trait]
impl Inventory for Elasticsearch {
    fn check(&self, query: &InventoryQuery) -> Result<(), String> {
        check_query(query, index_name)
    }

    async fn fetch(
        &self,
        query: &InventoryQuery,
        next: Option<&str>,
    ) -> Result<InventoryPage, ConnectorError> {
        let after = next
            .map(|n| match serde_json::from_str::<Value>(n) {
                Ok(v @ Value::Array(_)) => Ok(v),
                _ => Err(refused(format!(
                    "the continuation {} is not the sort values this inventory returned",
                    excerpt(n.as_bytes())
                ))),
            })
            .transpose()?;
        let key = query
            .columns
            .first()
            .map(String::as_str)
            .unwrap_or_default();
        let size = page_size(query.page_size, MAX_INVENTORY_PAGE);
        let mut sort = serde_json::Map::new();
        sort.insert(key.to_string(), json!("asc"));
        let mut body = json!({
            "size": size,
            "sort": [sort],
            "_source": query.columns,
            "query": {"match_all": {}},
            "track_total_hits": false,
        });
        if let (Some(after), Some(b)) = (after, body.as_object_mut()) {
            b.insert("search_after".to_string(), after);
        }
        let url = format!(
            "{}/_search",
            self.index_url_of(query.table.as_deref().unwrap_or(&self.index.index))
        );
        let reply = self
            .http
            .send(OPERATION, |c: &Client| {
                c.post(&url)
                    .header("Accept", "application/json")
                    .json(&body)
            })
            .await?;
        if reply.status != StatusCode::OK {
            return Err(es_error(&reply));
        }
        let answer: Value = reply.json()?;
        let Some(hits) = answer.pointer("/hits/hits").and_then(Value::as_array) else {
            return Err(
                reply.bad_response(format!("expected hits.hits, got {}", excerpt(&reply.body)))
            );
        };
        let rows = hits
            .iter()
            .map(|hit| match hit.get("_source").and_then(Value::as_object) {
                Some(source) => Ok(json_row(source, &query.columns)),
                None => Err(reply.bad_response(format!(
                    "a hit without a _source object (is _source disabled?): {}",
                    excerpt(hit.to_string().as_bytes())
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        // A short page is the last one; a full one continues after its last hit.
        let next = match hits.last() {
            Some(last) if hits.len() >= size as usize => match last.get("sort") {
                Some(v @ Value::Array(_)) => Some(v.to_string()),
                _ => {
                    return Err(reply.bad_response(
                        "the last hit has no sort values to search after".to_string(),
                    ));
                }
            },
            _ => None,
        };
        Ok(InventoryPage { rows, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_follow_the_cluster_rules() {
        assert!(index_name("accounts-2026.01").is_ok());
        for bad in ["", "Accounts", "_x", "a,b", "a b", "a/b", "a*"] {
            assert!(index_name(bad).is_err(), "{bad}");
        }
    }
}
