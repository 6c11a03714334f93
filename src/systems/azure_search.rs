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

use super::dataverse::literal;
use super::fo_odata::{Collection, odata_error, odata_error_detail};
use super::http::{encode_component, payload_text};
use super::{BuildContext, System, SystemKind, check_names, check_url, decode_as};
use crate::auth::{Accepts, ApiKeyStyle, AuthBlock, SEARCH_SCOPE};
use crate::config::Issue;
use crate::connector::{ConnectorError, Lookup, Target};
use crate::gate::Gate;
use crate::net::{HttpSystem, Reply, excerpt};
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
    let index_ok = !c.index.is_empty()
        && c.index.len() <= 128
        && c.index
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-');
    if !index_ok {
        return Err(Issue::new(
            format!("{key}.index"),
            format!(
                "\"{}\" is not an index name (lower-case letters, digits, -)",
                c.index
            ),
        ));
    }
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

impl SystemKind for AzureSearchConfig {
    fn kind(&self) -> &'static str {
        "azure_search"
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
        let connector = Arc::new(AzureSearch::new(
            http,
            SearchIndex {
                endpoint: self.endpoint.trim_end_matches('/').to_string(),
                index: self.index.clone(),
                api_version: self.api_version.clone(),
                mode: self.mode,
                key_field: self.key_field.clone(),
                payload_field: self.payload_field.clone(),
            },
        ));
        Ok(System::target_only(name, self.kind(), gate, connector))
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
        format!(
            "{}/indexes/{}/docs",
            self.index.endpoint,
            encode_component(&self.index.index)
        )
    }

    fn select(&self) -> String {
        format!("{},{}", self.index.key_field, self.index.payload_field)
    }

    fn payload(&self, doc: &Value) -> Option<String> {
        doc.get(&self.index.payload_field).and_then(payload_text)
    }

    async fn by_key(&self, id: &SentinelId) -> Result<Lookup, ConnectorError> {
        let url = format!("{}/{}", self.docs_url(), encode_component(id.key()));
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

    async fn by_filter(&self, id: &SentinelId) -> Result<Lookup, ConnectorError> {
        let url = format!("{}/search", self.docs_url());
        let version = self.index.api_version.as_str();
        let body = json!({
            "filter": format!("{} eq {}", self.index.key_field, literal(id.key())),
            "select": self.select(),
            "top": 1,
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
        let Some(doc) = page.value.first() else {
            return Ok(Lookup::Absent);
        };
        match doc.get(&self.index.key_field) {
            Some(Value::String(k)) if k == id.key() => {}
            None => {}
            Some(other) => {
                return Err(ConnectorError::BadResponse {
                    status: reply.status.as_u16(),
                    detail: format!(
                        "filtered on {} eq '{}' and got a document with {}",
                        self.index.key_field,
                        id.key(),
                        excerpt(other.to_string().as_bytes())
                    ),
                });
            }
        }
        Ok(Lookup::Present {
            payload: self.payload(doc),
        })
    }
}

fn not_a_document(reply: &Reply) -> ConnectorError {
    ConnectorError::BadResponse {
        status: reply.status.as_u16(),
        detail: format!("expected a document object, got {}", excerpt(&reply.body)),
    }
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
}
