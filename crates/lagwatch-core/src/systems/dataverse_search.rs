//! `dataverse_search`: Dataverse search (the built-in relevance index), as a target.
//!
//! Why: the search box of model-driven apps reads this index, not the table, and the index
//! trails the table by "up to 15 minutes" (fact sheet §6.2, source S44); a record can be saved
//! and still not be findable. The sentinel is written into a search-enabled table through the
//! `dataverse` kind and looked for here with the `searchquery` Web API action, in the request
//! shape of fact sheet §6.2 (source S43):
//!
//! ```http
//! POST {base}/searchquery            (base = https://<org>.crm.dynamics.com/api/data/v9.2)
//! Accept: application/json
//! OData-MaxVersion: 4.0
//! OData-Version: 4.0
//! If-None-Match: null
//! Content-Type: application/json
//!
//! {"search":"\"<key>\"",
//!  "entities":"[{\"Name\":\"account\",\"SelectColumns\":[\"accountnumber\",\"description\"],\"SearchColumns\":[\"accountnumber\"]}]",
//!  "top":1,"count":true}
//! → 200 {"response":"{\"Error\":null,\"Value\":[{\"Id\",\"EntityName\",\"ObjectTypeCode\",\"Attributes\":{…},\"Highlights\",\"Score\"}],…,\"Count\":1}"}
//! ```
//!
//! Exact match: the key is quoted, which asks for the exact phrase (§6.2); inside the quotes
//! `\` and `"` are escaped with `\`. Sentinel keys are at most 78 characters, within the
//! 100-character limit of `search`. `entities` is a JSON *string* and `response` is escaped
//! JSON inside JSON (§6.2). Because relevance search can still rank something else first,
//! only a result of the configured table whose key column equals the sentinel key (ignoring
//! case, as Dataverse compares text) is a hit; anything else is [`Lookup::Absent`]. An `Error`
//! inside the response is a [`ConnectorError::BadResponse`].
//!
//! **Throttling:** Dataverse search allows **1 request per second per user** (fact sheet §6.2,
//! source S8), far below the Web API's 6,000 per 5 minutes; the system's request budget must
//! stay under it, and a `429` with `Retry-After` is handled by [`HttpSystem`] like any other.
//! Authentication is the same Entra bearer token as the environment's Web API.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::{Client, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::status::{self, dataverse_search::DataverseSearchStatus};
use super::wire::{odata, odata_error, payload_text, search_error, string_wrapped};
use super::{BuildContext, System, SystemKind, SystemSpec, check_names, decode_as};
use crate::auth::{Accepts, AuthBlock};
use crate::config::Issue;
use crate::config::Limits;
use crate::config::platform::Surface;
use crate::connector::status::StatusReader;
use crate::connector::{ConnectorError, Lookup, Target};
use crate::gate::Gate;
use crate::net::HttpSystem;
use crate::sentinel::SentinelId;

/// Where sentinels are searched for in a Dataverse environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTable {
    /// Web API base, `https://<org>.crm.dynamics.com/api/data/v9.2` (no trailing slash).
    pub base: String,
    /// Logical (singular) name of the sentinel table, e.g. `account` — not the entity set name
    /// `accounts`. The table must be enabled for Dataverse search.
    pub entity: String,
    /// Column holding the sentinel key, e.g. `accountnumber`; must be a searchable column of
    /// the table's search index (Quick Find view "find columns").
    pub key_column: String,
    /// Column holding the payload, e.g. `description`; must be in the index's view columns to
    /// be returned.
    pub payload_column: String,
}

/// Config of a `kind: dataverse_search` system.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataverseSearchConfig {
    /// Environment URL, `https://<org>.crm.dynamics.com`.
    pub url: String,
    #[serde(default = "super::wire::default_api_version")]
    pub api_version: String,
    /// Logical (singular) table name, e.g. `account`.
    pub entity: String,
    pub key_column: String,
    pub payload_column: String,
    pub auth: AuthBlock,
    /// Token scope; `<environment URL>/.default` when absent.
    #[serde(default)]
    pub scope: Option<String>,
}

/// Registry entry: types and checks a `kind: dataverse_search` block.
///
/// # Errors
/// An [`Issue`] naming the offending key.
pub fn decode(key: &str, value: Value) -> Result<Box<dyn SystemKind>, Issue> {
    let mut c: DataverseSearchConfig = decode_as(key, value)?;
    super::wire::check_environment_url(&format!("{key}.url"), &c.url)?;
    check_names(
        key,
        "a Dataverse logical name",
        &[
            ("entity", &c.entity),
            ("key_column", &c.key_column),
            ("payload_column", &c.payload_column),
        ],
    )?;
    c.auth.resolve(&format!("{key}.auth"), Accepts::ENTRA)?;
    Ok(Box::new(c))
}

impl SystemSpec for DataverseSearchConfig {
    fn kind(&self) -> &'static str {
        "dataverse_search"
    }

    fn can_write(&self) -> Result<(), String> {
        Err(
            "Dataverse search indexes a table; write sentinels into that table with a \
             dataverse system and probe this one as a target"
                .to_string(),
        )
    }

    /// The search status function, through the same Web API (`systems::status`).
    fn status_surfaces(&self) -> &'static [&'static str] {
        &["dataverse_search"]
    }

    /// Dataverse search allows one request per second per user (fact sheet §6.2): keep
    /// under it, one at a time.
    fn default_limits(&self) -> Limits {
        Limits {
            max_concurrency: 1,
            requests: 50,
            per: crate::config::Dur::secs(60),
            ..Limits::default()
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} search on {} (key {}, payload {}), auth {}",
            self.url,
            self.entity,
            self.key_column,
            self.payload_column,
            self.auth.method()
        )
    }
}

impl SystemKind for DataverseSearchConfig {
    fn build(&self, name: &str, cx: &BuildContext, gate: Arc<Gate>) -> Result<System, Issue> {
        let http = super::http_system(
            name,
            cx,
            &gate,
            self.auth.credential(),
            || super::scope_or_derived(name, self.scope.as_deref(), &self.url),
            None,
        )?;
        let base = super::wire::web_api_base(&self.url, &self.api_version);
        let status = {
            let (http, base) = (http.clone(), base.clone());
            status::surfaces(self.kind(), move |surface| match surface {
                Surface::DataverseSearch { table } => Some(Arc::new(DataverseSearchStatus::new(
                    http.clone(),
                    base.clone(),
                    table.clone(),
                ))
                    as Arc<dyn StatusReader>),
                _ => None,
            })
        };
        let connector = Arc::new(DataverseSearch::new(
            http,
            SearchTable {
                base,
                entity: self.entity.clone(),
                key_column: self.key_column.clone(),
                payload_column: self.payload_column.clone(),
            },
        ));
        Ok(System::target_only(name, self.kind(), gate, connector).with_status(status))
    }
}

/// The connector: one table of one environment's search index.
pub struct DataverseSearch {
    http: HttpSystem,
    table: SearchTable,
}

/// The search term asking for exactly `key` (§6.2: quotes for an exact match, `\` escapes).
pub fn exact_phrase(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 2);
    out.push('"');
    for c in key.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Results {
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    value: Option<Vec<Hit>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Hit {
    #[serde(default)]
    entity_name: String,
    #[serde(default)]
    attributes: Map<String, Value>,
}

impl DataverseSearch {
    pub fn new(http: HttpSystem, table: SearchTable) -> Self {
        DataverseSearch { http, table }
    }

    /// The request body of §6.2 for `key`.
    fn body(&self, key: &str) -> Value {
        // Written by hand to keep the documented member order; names are JSON-quoted.
        let q = |s: &str| Value::String(s.to_string()).to_string();
        let entities = format!(
            "[{{\"Name\":{},\"SelectColumns\":[{},{}],\"SearchColumns\":[{}]}}]",
            q(&self.table.entity),
            q(&self.table.key_column),
            q(&self.table.payload_column),
            q(&self.table.key_column),
        );
        json!({
            "search": exact_phrase(key),
            "entities": entities,
            "top": 1,
            "count": true,
        })
    }
}

#[async_trait]
impl Target for DataverseSearch {
    async fn lookup(&self, id: &SentinelId) -> Result<Lookup, ConnectorError> {
        let url = format!("{}/searchquery", self.table.base);
        let body = self.body(id.key());
        let reply = self
            .http
            .send("lookup", |c: &Client| {
                odata(c.post(&url))
                    .header("If-None-Match", "null")
                    .json(&body)
            })
            .await?;
        if reply.status != StatusCode::OK {
            return Err(odata_error(&reply));
        }
        let results: Results = string_wrapped(&reply)?;
        if let Some(message) = search_error(results.error.as_ref()) {
            return Err(reply.bad_response(format!("search error: {message}")));
        }
        let Some(hits) = results.value else {
            return Err(reply.bad_response("response has no Value"));
        };
        let hit = hits.iter().find(|h| {
            h.entity_name.eq_ignore_ascii_case(&self.table.entity)
                && h.attributes
                    .get(&self.table.key_column)
                    .and_then(Value::as_str)
                    .is_some_and(|k| k.eq_ignore_ascii_case(id.key()))
        });
        Ok(match hit {
            Some(h) => Lookup::Present {
                payload: h
                    .attributes
                    .get(&self.table.payload_column)
                    .and_then(payload_text),
            },
            None => Lookup::Absent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_phrase_is_quoted_and_escaped() {
        assert_eq!(exact_phrase("lagwatch-a-1"), "\"lagwatch-a-1\"");
        assert_eq!(exact_phrase(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
