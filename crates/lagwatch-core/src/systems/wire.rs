//! What the HTTP kinds share about their APIs' wire formats, so that no kind borrows from
//! another: OData request headers and error bodies (F&O, Dataverse, Azure AI Search), `$filter`
//! string literals, `value` collections, a payload value as text, Dataverse search's JSON
//! inside a string, and Elasticsearch's error bodies.

use reqwest::RequestBuilder;
use serde::Deserialize;
use serde_json::Value;

use crate::connector::ConnectorError;
use crate::net::{HttpSystem, Reply, excerpt};
use crate::sentinel::SentinelId;

/// Headers of every F&O and Dataverse OData request (fact sheet §1.2, §4.1).
pub fn odata(req: RequestBuilder) -> RequestBuilder {
    req.header("Accept", "application/json")
        .header("OData-MaxVersion", "4.0")
        .header("OData-Version", "4.0")
}

/// The error an OData-style body `{"error":{"code","message"}}` describes (F&O, Azure AI
/// Search, Dataverse), or the status and an excerpt of whatever came instead.
pub fn odata_error(reply: &Reply) -> ConnectorError {
    reply.bad_response(odata_error_detail(&reply.body).unwrap_or_else(|| excerpt(&reply.body)))
}

/// `code: message` of an OData error body, if it is one.
pub fn odata_error_detail(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Body {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        message: Option<String>,
    }
    let b: Body = serde_json::from_slice(body).ok()?;
    let message = excerpt(b.error.message.unwrap_or_default().as_bytes());
    Some(match b.error.code.filter(|c| !c.is_empty()) {
        Some(code) => format!("{code}: {message}"),
        None => message,
    })
}

#[derive(Deserialize)]
pub struct Collection {
    pub value: Vec<Value>,
}

/// Largest number of pages a start-up sweep reads.
const MAX_SWEEP_PAGES: usize = 200;
/// Page size a sweep asks for.
const SWEEP_PAGE: u32 = 500;

/// The sentinels an OData collection lists, for the start-up sweep: `query` on the first
/// request to `collection`, then each `@odata.nextLink` as it is, once it is checked to be on
/// the collection's origin (the bearer token goes with every request); the keys are read from
/// `key_field` and only sentinel keys kept. `prepare` adds the service's headers, `error` reads
/// its error bodies. At most [`MAX_SWEEP_PAGES`] pages: what is left waits for the next start.
///
/// # Errors
/// The first failed page's.
pub async fn sweep(
    http: &HttpSystem,
    collection: &str,
    query: &[(&str, &str)],
    key_field: &str,
    prepare: fn(RequestBuilder) -> RequestBuilder,
    error: fn(&Reply) -> ConnectorError,
) -> Result<Vec<SentinelId>, ConnectorError> {
    let base = url::Url::parse(collection).map_err(|e| ConnectorError::BadResponse {
        status: 0,
        detail: format!("the configured URL is not a URL ({e})"),
    })?;
    let mut next = Some(collection.to_string());
    let mut first = true;
    let mut out = Vec::new();
    for _ in 0..MAX_SWEEP_PAGES {
        let Some(url) = next.take() else { break };
        let with_query = first;
        let reply = http
            .send("list", |c: &reqwest::Client| {
                let req = prepare(c.get(&url))
                    .header("Prefer", format!("odata.maxpagesize={SWEEP_PAGE}"));
                if with_query { req.query(query) } else { req }
            })
            .await?;
        first = false;
        if reply.status != reqwest::StatusCode::OK {
            return Err(error(&reply));
        }
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            value: Vec<Value>,
            #[serde(rename = "@odata.nextLink")]
            next_link: Option<String>,
        }
        let page: Page = reply.json()?;
        out.extend(
            page.value
                .iter()
                .filter_map(|row| row.get(key_field)?.as_str())
                .filter_map(SentinelId::parse),
        );
        next = match page.next_link {
            None => None,
            Some(link) => Some(
                super::http_inventory::same_origin(&base, &link)
                    .map_err(|detail| reply.bad_response(detail))?
                    .to_string(),
            ),
        };
    }
    Ok(out)
}

/// The JSON inside the `response` string of a Dataverse search answer (`searchquery`,
/// `searchstatus`: `{"response":"<escaped JSON>"}`, fact sheet §6.2), typed as `T`. Either
/// layer not being what it should is a bad response.
///
/// # Errors
/// [`ConnectorError::BadResponse`] naming the layer that is not the expected JSON.
pub fn string_wrapped<T: serde::de::DeserializeOwned>(reply: &Reply) -> Result<T, ConnectorError> {
    #[derive(Deserialize)]
    struct Outer {
        response: String,
    }
    let outer: Outer = reply.json()?;
    serde_json::from_str(&outer.response)
        .map_err(|e| reply.bad_response(format!("response is not the expected JSON: {e}")))
}

/// The message of an `Error` a Dataverse search answer carries inside its `response`, if it
/// carries one (`null` is none): its `message`/`Message`, else the value as JSON.
pub fn search_error(error: Option<&Value>) -> Option<String> {
    let err = error.filter(|e| !e.is_null())?;
    let message = ["message", "Message"]
        .iter()
        .find_map(|k| err.get(*k).and_then(Value::as_str))
        .map_or_else(|| err.to_string(), str::to_string);
    Some(excerpt(message.as_bytes()))
}

/// The error an Elasticsearch body describes (`{"error":{"type","reason"}}` or
/// `{"error":"text"}`), or the status and an excerpt.
pub fn es_error(reply: &Reply) -> ConnectorError {
    let detail = serde_json::from_slice::<Value>(&reply.body)
        .ok()
        .and_then(|v| match v.get("error")? {
            Value::String(s) => Some(excerpt(s.as_bytes())),
            e @ Value::Object(_) => {
                let kind = e.get("type").and_then(Value::as_str).unwrap_or("error");
                let reason = e.get("reason").and_then(Value::as_str).unwrap_or("");
                Some(format!("{kind}: {}", excerpt(reason.as_bytes())))
            }
            _ => None,
        })
        .unwrap_or_else(|| excerpt(&reply.body));
    reply.bad_response(detail)
}

/// Quotes a string literal for `$filter`: single quotes are doubled.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Text of a payload value: strings as they are, `null` as nothing, anything else as compact
/// JSON (a replica that stored the payload as a JSON object gives back the sentinel's text,
/// whose keys are already sorted).
pub fn payload_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The Dataverse Web API version lagwatch speaks unless a system says otherwise (`dataverse`
/// and `dataverse_search` alike).
pub fn default_api_version() -> String {
    "v9.2".to_string()
}

/// The Dataverse Web API base of an environment: `<url>/api/data/<version>`, no trailing slash.
pub fn web_api_base(url: &str, api_version: &str) -> String {
    format!("{}/api/data/{api_version}", url.trim_end_matches('/'))
}

/// Checks a Dataverse environment URL at `key`: an `http(s)` URL without the Web API path
/// or an app's address pasted after it (`/api/data/v9.2`, `/main.aspx?…`).
///
/// # Errors
/// An [`Issue`](crate::config::Issue) at `key` saying what to remove.
pub fn check_environment_url(key: &str, url: &str) -> Result<(), crate::config::Issue> {
    super::check_url(
        key,
        url,
        "an environment URL such as https://contoso.crm.dynamics.com",
    )?;
    super::check_base_url(
        key,
        url,
        "https://contoso.crm.dynamics.com",
        ENVIRONMENT_URL_HINTS,
    )
}

/// Why paths pasted after a Dataverse environment URL go (for
/// [`check_base_url`](super::check_base_url)).
const ENVIRONMENT_URL_HINTS: &[(&str, &str)] = &[
    (
        "api",
        "lagwatch adds the Web API path (/api/data/v9.2) itself; api_version sets its version",
    ),
    (
        "main.aspx",
        "that is an app's address; the environment URL is the part before it",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odata_error_bodies_are_read() {
        assert_eq!(
            odata_error_detail(br#"{"error":{"code":"","message":"No  such\nentity"}}"#),
            Some("No such entity".to_string())
        );
        assert_eq!(
            odata_error_detail(br#"{"error":{"code":"X1","message":"m"}}"#),
            Some("X1: m".to_string())
        );
        assert_eq!(odata_error_detail(b"<html>"), None);
    }

    #[test]
    fn literals_double_quotes() {
        assert_eq!(literal("O'Bryan"), "'O''Bryan'");
        assert_eq!(literal("lagwatch-x-"), "'lagwatch-x-'");
    }
}
