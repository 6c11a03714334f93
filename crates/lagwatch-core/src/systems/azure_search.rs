//! `azure_search`: an Azure AI Search index fed from Dataverse (by push code or an indexer).
//!
//! Why: a search index is often what users of an integration see first, and its freshness is
//! set by a push pipeline or an indexer schedule (at least 5 minutes, fact sheet §6.1), not by
//! Dataverse. Two ways to look, chosen by [`SearchMode`] (fact sheet §6.1, data-plane
//! `api-version` `2025-09-01`):
//!
//! - `lookup`, when the sentinel key is the document key:
//!   `GET {endpoint}/indexes/{index}/docs/{key}?api-version=…&$select={key_field},{payload_field}`
//!   → `200` with the document's fields, or `404` → [`Lookup::Absent`]. Keys are
//!   case-sensitive and must be URL-safe; sentinel keys (`lagwatch-<instance>-<uuid>`) are,
//!   and are percent-encoded anyway. A 404 whose body is an error naming the index ("The
//!   index 'x' for service 'y' was not found.") is an error, not a miss: a missing document's
//!   404 is not documented to carry a body (§6.1 marks it ❓), a missing index's does.
//! - `filter`, when the key is an ordinary filterable field:
//!   `POST {endpoint}/indexes/{index}/docs/search?api-version=…` with
//!   `{"filter":"{key_field} eq '{key}'","select":"{key_field},{payload_field}","top":1}` →
//!   `{"value":[{"@search.score":…,…fields}]}`; an empty `value` is `Absent`. Filter string
//!   equality is exact, so a returned document with another key is an error, never a hit.
//!
//! Both measure searchability after the index's own refresh. Authentication is either the
//! `api-key` header (a query key is enough) or an Entra bearer token for
//! `https://search.azure.com/.default` with a search data reader role (§6.1); both are the
//! system's `auth` in [`HttpSystem`]. Errors come as `{"error":{"code","message"}}`.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use super::http_inventory::{OPERATION, check_query, collection_objects, page_size};
use super::status::{self, azure_search_indexer::AzureSearchIndexer};
use super::wire::{Collection, literal, odata_error, odata_error_detail, payload_text};
use super::{BuildContext, System, SystemKind, SystemSpec, check_names, check_url, decode_as};
use crate::auth::{Accepts, ApiKeyStyle, AuthBlock, SEARCH_SCOPE};
use crate::config::Issue;
use crate::config::platform::Surface;
use crate::connector::inventory::{Inventory, InventoryPage, InventoryQuery, json_row, refused};
use crate::connector::status::StatusReader;
use crate::connector::{ConnectorError, Lookup, Target};
use crate::gate::Gate;
use crate::net::{HttpSystem, Reply, excerpt};
use crate::percent;
use crate::sentinel::SentinelId;

/// Latest stable data-plane version (fact sheet §6.1).
pub const DEFAULT_API_VERSION: &str = "2025-09-01";

/// How the sentinel is found in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    /// The document key is the sentinel key: one `GET …/docs/{key}`.
    #[default]
    Lookup,
    /// The sentinel key is in a filterable field: one `POST …/docs/search` with a filter.
    Filter,
}

/// Where sentinels land in an Azure AI Search service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchIndex {
    /// Service endpoint, `https://<service>.search.windows.net` (no trailing slash).
    pub endpoint: String,
    /// Index name.
    pub index: String,
    /// Data-plane `api-version`; [`DEFAULT_API_VERSION`] unless the service needs another.
    pub api_version: String,
    /// `lookup` (the document key is the sentinel key) or `filter` (the key is a field).
    pub mode: SearchMode,
    /// Field holding the sentinel key: the index's key field in `lookup` mode, a filterable
    /// string field in `filter` mode. Must be retrievable.
    pub key_field: String,
    /// Retrievable field holding the sentinel payload, compared with what was written.
    pub payload_field: String,
}

/// Config of a `kind: azure_search` system.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureSearchConfig {
    /// Service endpoint, `https://<service>.search.windows.net`.
    pub endpoint: String,
    pub index: String,
    #[serde(default = "default_api_version")]
    pub api_version: String,
    #[serde(default)]
    pub mode: SearchMode,
    pub key_field: String,
    pub payload_field: String,
    /// `api_key` (a query key is enough) or an Entra method.
    pub auth: AuthBlock,
    /// Entra token scope; `https://search.azure.com/.default` when absent.
    #[serde(default)]
    pub scope: Option<String>,
}

fn default_api_version() -> String {
    DEFAULT_API_VERSION.to_string()
}

/// Registry entry: types and checks a `kind: azure_search` block.
///
/// # Errors
/// An [`Issue`] naming the offending key.
pub fn decode(key: &str, value: Value) -> Result<Box<dyn SystemKind>, Issue> {
    let mut c: AzureSearchConfig = decode_as(key, value)?;
    check_url(
        &format!("{key}.endpoint"),
        &c.endpoint,
        "a search service endpoint such as https://contoso.search.windows.net",
    )?;
    super::check_base_url(
        &format!("{key}.endpoint"),
        &c.endpoint,
        "https://contoso.search.windows.net",
        &[(
            "indexes",
            "the index is the system's index key, and lagwatch adds /indexes/<index>/docs itself",
        )],
    )?;
    index_name(&c.index).map_err(|reason| Issue::new(format!("{key}.index"), reason))?;
    check_names(
        key,
        "a field name",
        &[
            ("key_field", &c.key_field),
            ("payload_field", &c.payload_field),
        ],
    )?;
    c.auth
        .resolve(&format!("{key}.auth"), Accepts::ENTRA_OR_KEY)?;
    Ok(Box::new(c))
}

/// Checks an index name: lower-case letters, digits and `-`, at most 128 characters.
///
/// # Errors
/// A sentence quoting the name.
pub fn index_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{name}\" is not an index name (lower-case letters, digits, -)"
        ))
    }
}

impl SystemSpec for AzureSearchConfig {
    fn kind(&self) -> &'static str {
        "azure_search"
    }

    /// An indexer's status and history, on the same service (`systems::status`).
    fn status_surfaces(&self) -> &'static [&'static str] {
        &["azure_search_indexer"]
    }

    fn can_list(&self) -> Result<(), String> {
        Ok(())
    }
    fn can_write(&self) -> Result<(), String> {
        Err(
            "a search index is fed by its pipeline or indexer; write sentinels into the \
             system it indexes and probe this one as a target"
                .to_string(),
        )
    }

    fn describe(&self) -> String {
        format!(
            "{} index {} ({:?} on {}, payload {}), auth {}",
            self.endpoint,
            self.index,
            self.mode,
            self.key_field,
            self.payload_field,
            self.auth.method()
        )
    }
}

impl SystemKind for AzureSearchConfig {
    fn build(&self, name: &str, cx: &BuildContext, gate: Arc<Gate>) -> Result<System, Issue> {
        let http = super::http_system(
            name,
            cx,
            &gate,
            self.auth.credential(),
            || {
                Ok(self
                    .scope
                    .clone()
                    .unwrap_or_else(|| SEARCH_SCOPE.to_string()))
            },
            Some(ApiKeyStyle {
                header: "api-key",
                prefix: "",
            }),
        )?;
        let endpoint = self.endpoint.trim_end_matches('/').to_string();
        let status = {
            let (http, endpoint, version) =
                (http.clone(), endpoint.clone(), self.api_version.clone());
            status::surfaces(self.kind(), move |surface| match surface {
                Surface::AzureSearchIndexer { indexer } => Some(Arc::new(AzureSearchIndexer::new(
                    http.clone(),
                    endpoint.clone(),
                    version.clone(),
                    indexer.clone(),
                ))
                    as Arc<dyn StatusReader>),
                _ => None,
            })
        };
        let connector = Arc::new(AzureSearch::new(
            http,
            SearchIndex {
                endpoint,
                index: self.index.clone(),
                api_version: self.api_version.clone(),
                mode: self.mode,
                key_field: self.key_field.clone(),
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

/// The connector: one index of one search service.
pub struct AzureSearch {
    http: HttpSystem,
    index: SearchIndex,
}

impl AzureSearch {
    pub fn new(http: HttpSystem, index: SearchIndex) -> Self {
        AzureSearch { http, index }
    }

    fn docs_url(&self) -> String {
        self.docs_url_of(&self.index.index)
    }

    fn docs_url_of(&self, index: &str) -> String {
        format!(
            "{}/indexes/{}/docs",
            self.index.endpoint,
            percent::component(index)
        )
    }

    fn select(&self) -> String {
        format!("{},{}", self.index.key_field, self.index.payload_field)
    }

    fn payload(&self, doc: &Value) -> Option<String> {
        doc.get(&self.index.payload_field).and_then(payload_text)
    }

    async fn by_key(&self, id: &SentinelId) -> Result<Lookup, ConnectorError> {
        let url = format!("{}/{}", self.docs_url(), percent::component(id.key()));
        let select = self.select();
        let version = self.index.api_version.as_str();
        let reply = self
            .http
            .send("lookup", |c: &Client| {
                c.get(&url)
                    .header("Accept", "application/json")
                    .header("Content-Type", "application/json")
                    .query(&[("api-version", version), ("$select", select.as_str())])
            })
            .await?;
        match reply.status {
            StatusCode::OK => {
                let doc: Value = reply.json()?;
                if !doc.is_object() {
                    return Err(not_a_document(&reply));
                }
                Ok(Lookup::Present {
                    payload: self.payload(&doc),
                })
            }
            StatusCode::NOT_FOUND if index_missing(&reply.body) => Err(odata_error(&reply)),
            StatusCode::NOT_FOUND => Ok(Lookup::Absent),
            _ => Err(odata_error(&reply)),
        }
    }

    /// The documents whose key field is one of `ids`' keys: one search request (its
    /// `filter` the keys `or`ed), answered by one replica of the index.
    async fn search_keys(&self, ids: &[SentinelId]) -> Result<(Vec<Value>, Reply), ConnectorError> {
        let url = format!("{}/search", self.docs_url());
        let version = self.index.api_version.as_str();
        let filter = ids
            .iter()
            .map(|id| format!("{} eq {}", self.index.key_field, literal(id.key())))
            .collect::<Vec<_>>()
            .join(" or ");
        let body = json!({
            "filter": filter,
            "select": self.select(),
            "top": ids.len(),
        });
        let reply = self
            .http
            .send("lookup", |c: &Client| {
                c.post(&url)
                    .header("Accept", "application/json")
                    .query(&[("api-version", version)])
                    .json(&body)
            })
            .await?;
        if reply.status != StatusCode::OK {
            return Err(odata_error(&reply));
        }
        let page: Collection = reply.json()?;
        Ok((page.value, reply))
    }

    async fn by_filter(&self, id: &SentinelId) -> Result<Lookup, ConnectorError> {
        let (docs, reply) = self.search_keys(std::slice::from_ref(id)).await?;
        let Some(doc) = docs.first() else {
            return Ok(Lookup::Absent);
        };
        match doc.get(&self.index.key_field) {
            Some(Value::String(k)) if k == id.key() => {}
            None => {}
            Some(other) => {
                return Err(reply.bad_response(format!(
                    "filtered on {} eq '{}' and got a document with {}",
                    self.index.key_field,
                    id.key(),
                    excerpt(other.to_string().as_bytes())
                )));
            }
        }
        Ok(Lookup::Present {
            payload: self.payload(doc),
        })
    }
}

fn not_a_document(reply: &Reply) -> ConnectorError {
    reply.bad_response(format!(
        "expected a document object, got {}",
        excerpt(&reply.body)
    ))
}

/// Whether a 404 says the index (not the document) does not exist.
fn index_missing(body: &[u8]) -> bool {
    odata_error_detail(body).is_some_and(|m| m.to_ascii_lowercase().contains("index '"))
}

#[async_trait]
impl Target for AzureSearch {
    async fn lookup(&self, id: &SentinelId) -> Result<Lookup, ConnectorError> {
        match self.index.mode {
            SearchMode::Lookup => self.by_key(id).await,
            SearchMode::Filter => self.by_filter(id).await,
        }
    }

    /// In `filter` mode several keys go in one search request (one replica answers it).
    fn reads_together(&self) -> bool {
        self.index.mode == SearchMode::Filter
    }

    async fn lookup_together(&self, ids: &[SentinelId]) -> Result<Vec<Lookup>, ConnectorError> {
        let (docs, _) = self.search_keys(ids).await?;
        Ok(ids
            .iter()
            .map(|id| {
                docs.iter()
                    .find(|d| {
                        d.get(&self.index.key_field).and_then(Value::as_str) == Some(id.key())
                    })
                    .map_or(Lookup::Absent, |d| Lookup::Present {
                        payload: self.payload(d),
                    })
            })
            .collect())
    }
}

/// Most documents one search request returns (`$top`); more would come back cut at this many,
/// with a next-page link.
pub const MAX_INVENTORY_PAGE: u32 = 1000;

/// Lists every document of an index for reconciliation, by keyset paging:
/// `GET {endpoint}/indexes/{index}/docs?api-version=…&search=*&$select={columns}&$top={n}&$orderby={first} asc`,
/// then the same with `&$filter={first} gt {last value}`, where `first` is the query's first
/// column (the runner lists the row key first). The continuation is the last document's value
/// of that column as JSON (`"key-0042"`), so a string and a number keep their literal forms.
///
/// Why keyset and not `$skip`: `$skip` cannot go past 100,000 documents, and Microsoft's
/// advice for reading further is exactly this, an `$orderby` on a field unique per document
/// with a range `$filter`. Each page costs the same however deep it is, and a document added
/// or removed while listing does not shift the pages after it. The first column must therefore
/// be unique, sortable and filterable (the document key is). The configured `key_field` is not
/// used: it names where probes look for sentinels, which need not be the key of the index read.
/// A `changed_since` scope is not sent (the field's type in the index is not known here); the
/// runner filters.
#[async_trait]
impl Inventory for AzureSearch {
    fn check(&self, query: &InventoryQuery) -> Result<(), String> {
        check_query(query, index_name)
    }

    async fn fetch(
        &self,
        query: &InventoryQuery,
        next: Option<&str>,
    ) -> Result<InventoryPage, ConnectorError> {
        let after = next.map(keyset_literal).transpose().map_err(refused)?;
        let key = query
            .columns
            .first()
            .map(String::as_str)
            .unwrap_or_default();
        let top = page_size(query.page_size, MAX_INVENTORY_PAGE);
        let url = self.docs_url_of(query.table.as_deref().unwrap_or(&self.index.index));
        let mut params = vec![
            ("api-version", self.index.api_version.clone()),
            ("search", "*".to_string()),
            ("$select", query.columns.join(",")),
            ("$top", top.to_string()),
            ("$orderby", format!("{key} asc")),
        ];
        if let Some(after) = after {
            params.push(("$filter", format!("{key} gt {after}")));
        }
        let reply = self
            .http
            .send(OPERATION, |c: &Client| {
                c.get(&url)
                    .header("Accept", "application/json")
                    .query(&params)
            })
            .await?;
        if reply.status != StatusCode::OK {
            return Err(odata_error(&reply));
        }
        let body: Value = reply.json()?;
        let docs = collection_objects(&reply, &body)?;
        let rows = docs.iter().map(|d| json_row(d, &query.columns)).collect();
        // A short page without a next-page link is the end; a full page, or one the service cut
        // short and says so, continues after its last key.
        let more = docs.len() >= top as usize || body.get("@odata.nextLink").is_some();
        let next = match docs.last() {
            Some(last) if more => Some(match last.get(key) {
                Some(v @ (Value::String(_) | Value::Number(_))) => v.to_string(),
                other => {
                    return Err(reply.bad_response(format!(
                        "the last document has {} for {key}, so the next page cannot start \
                         after it; the first column must be the document key",
                        other.map_or("no value".to_string(), Value::to_string)
                    )));
                }
            }),
            _ => None,
        };
        Ok(InventoryPage { rows, next })
    }
}

/// The OData literal of a continuation (the JSON of the last key): a string quoted with single
/// quotes doubled, a number as written.
///
/// # Errors
/// A sentence when the continuation is not a JSON string or number.
pub fn keyset_literal(continuation: &str) -> Result<String, String> {
    match serde_json::from_str::<Value>(continuation) {
        Ok(Value::String(s)) => Ok(literal(&s)),
        Ok(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(format!(
            "the continuation {} is not a key this inventory returned",
            excerpt(continuation.as_bytes())
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyset_continuations_become_odata_literals() {
        assert_eq!(keyset_literal(r#""O'Bryan""#).unwrap(), "'O''Bryan'");
        assert_eq!(keyset_literal(r#""a''b""#).unwrap(), "'a''''b'");
        assert_eq!(keyset_literal("42").unwrap(), "42");
        for bad in ["O'Bryan", "null", "[1]", "{}", ""] {
            assert!(keyset_literal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn index_names_follow_the_service_rules() {
        assert!(index_name("accounts-2").is_ok());
        assert!(index_name("Accounts").is_err());
        assert!(index_name("a/b").is_err());
        assert!(index_name(&"a".repeat(129)).is_err());
    }
}
