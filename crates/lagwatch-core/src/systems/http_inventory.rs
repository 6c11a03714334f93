//! What the HTTP kinds' [`Inventory`](crate::connector::inventory::Inventory) implementations
//! share: the check of a query's names, page-size caps, and OData collection pages with their
//! `@odata.nextLink`.
//!
//! Why a next link is checked before it is followed: the link comes from the response body, and
//! the request that follows it carries the system's bearer token. A link to another origin (a
//! compromised or misconfigured proxy, a redirect injected into a body) would hand that token to
//! whoever runs it, so such a link is a [`ConnectorError::BadResponse`], both when a page names
//! it and when a continuation naming it is passed back in.

use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{Map, Value};
use url::Url;

use super::is_name;
use crate::connector::ConnectorError;
use crate::connector::inventory::{InventoryPage, InventoryQuery, json_row};
use crate::net::{HttpSystem, Reply, excerpt};

/// The request operation every inventory page is counted under in `lagwatch_requests_total`.
pub const OPERATION: &str = "inventory";

/// Checks the names of a query that end up in URLs, filters or request bodies: every column and
/// the `changed_since` column must be made of letters, digits and `_`, and there must be at least
/// one column. `table` checks a `table` override by the kind's own naming rules.
///
/// # Errors
/// A sentence naming the offending value.
pub fn check_query(
    query: &InventoryQuery,
    table: impl Fn(&str) -> Result<(), String>,
) -> Result<(), String> {
    if let Some(t) = &query.table {
        table(t)?;
    }
    if query.columns.is_empty() {
        return Err("at least one column must be read".to_string());
    }
    let changed = query.changed_since.as_ref().map(|(c, _)| c);
    for c in query.columns.iter().chain(changed) {
        if !is_name(c) {
            return Err(format!(
                "\"{c}\" is not a column name this kind can read (letters, digits, _)"
            ));
        }
    }
    Ok(())
}

/// Table-name rule of the OData kinds (entity sets): letters, digits and `_`.
///
/// # Errors
/// A sentence quoting the name.
pub fn odata_table(name: &str) -> Result<(), String> {
    if is_name(name) {
        Ok(())
    } else {
        Err(format!(
            "\"{name}\" is not an entity set name (letters, digits, _)"
        ))
    }
}

/// The page size to ask for: what the runner asked, at least 1 and at most the API's `max`.
pub fn page_size(requested: u32, max: u32) -> u32 {
    requested.clamp(1, max)
}

/// A `DateTimeOffset` literal for `$filter` (`2026-01-02T03:04:05Z`, unquoted as OData v4
/// writes it): whole seconds when the instant has no fraction, else milliseconds, the finest
/// precision Dataverse stores. Truncating to milliseconds only ever widens a `ge` filter.
pub fn odata_timestamp(t: DateTime<Utc>) -> String {
    let millis = t.nanosecond() / 1_000_000 * 1_000_000;
    let t = t.with_nanosecond(millis).unwrap_or(t);
    let format = if millis == 0 {
        SecondsFormat::Secs
    } else {
        SecondsFormat::Millis
    };
    t.to_rfc3339_opts(format, true)
}

use crate::connector::inventory::refused;

/// `link` as an absolute URL on the same origin (scheme, host, port) as `base`, resolving a
/// relative link against `base` as OData allows.
///
/// # Errors
/// A sentence saying why the link is not followed; it quotes the host, never a token.
pub fn same_origin(base: &Url, link: &str) -> Result<Url, String> {
    let url = base
        .join(link)
        .map_err(|e| format!("the next link is not a URL ({e})"))?;
    if url.origin() != base.origin() {
        return Err(format!(
            "the next link points to {}, not to the configured {}; it is not followed, so the \
             credentials are not sent there",
            url.origin().ascii_serialization(),
            base.origin().ascii_serialization()
        ));
    }
    Ok(url)
}

/// How one OData service (Dataverse, F&O) is listed: server-driven paging with
/// `Prefer: odata.maxpagesize` and `@odata.nextLink`, the only difference between the two
/// being the URL of the first page, the headers and how an error body reads.
pub struct ODataLister<'a> {
    pub http: &'a HttpSystem,
    /// The configured URL: every next link must stay on its origin.
    pub base: &'a str,
    /// Most rows per page the service returns.
    pub max_page: u32,
    /// The service's headers on every request.
    pub headers: fn(RequestBuilder) -> RequestBuilder,
    /// The error a status other than 200 means.
    pub error: fn(&Reply) -> ConnectorError,
}

impl ODataLister<'_> {
    /// One page: the first (`first` gives its URL and query) when `next` is `None`, else the
    /// next link `next`, followed exactly once it is checked to be on the configured origin.
    ///
    /// # Errors
    /// `BadResponse` with status 0 for a continuation on another origin (nothing is sent), else
    /// as [`HttpSystem::send`], `error` and [`odata_collection`].
    pub async fn page(
        &self,
        query: &InventoryQuery,
        next: Option<&str>,
        first: impl FnOnce() -> (String, Vec<(&'static str, String)>),
    ) -> Result<InventoryPage, ConnectorError> {
        let base = Url::parse(self.base)
            .map_err(|e| refused(format!("the configured URL is not a URL: {e}")))?;
        let request = match next {
            None => {
                let (url, params) = first();
                PageRequest::First(url, params)
            }
            Some(link) => PageRequest::Next(same_origin(&base, link).map_err(refused)?),
        };
        let prefer = format!(
            "odata.maxpagesize={}",
            page_size(query.page_size, self.max_page)
        );
        let reply = self
            .http
            .send(OPERATION, |c: &Client| {
                let req = match &request {
                    PageRequest::First(url, params) => c.get(url).query(params),
                    PageRequest::Next(link) => c.get(link.clone()),
                };
                (self.headers)(req).header("Prefer", prefer.as_str())
            })
            .await?;
        if reply.status != StatusCode::OK {
            return Err((self.error)(&reply));
        }
        odata_collection(&reply, &query.columns, &base)
    }
}

/// The first page's URL and query, or a checked next link.
enum PageRequest {
    First(String, Vec<(&'static str, String)>),
    Next(Url),
}

/// Reads an OData collection page (`{"value":[{…},…],"@odata.nextLink":"…"}`): one row per
/// object of `value` with the `columns` in order, and the next link, checked to be on `base`'s
/// origin, as the continuation.
///
/// # Errors
/// `BadResponse` naming what was wrong: a body that is not JSON, no `value` array, a row that is
/// not an object, a next link that is not a string or points elsewhere.
pub fn odata_collection(
    reply: &Reply,
    columns: &[String],
    base: &Url,
) -> Result<InventoryPage, ConnectorError> {
    let bad = |detail: String| reply.bad_response(detail);
    let body: Value = reply.json()?;
    let rows = collection_objects(reply, &body)?
        .into_iter()
        .map(|row| json_row(row, columns))
        .collect();
    let next = match body.get("@odata.nextLink") {
        None | Some(Value::Null) => None,
        Some(Value::String(link)) => Some(same_origin(base, link).map_err(bad)?.to_string()),
        Some(other) => {
            return Err(bad(format!(
                "@odata.nextLink is not a string: {}",
                excerpt(other.to_string().as_bytes())
            )));
        }
    };
    Ok(InventoryPage { rows, next })
}

/// The objects of an OData collection's `value` array (Dataverse, F&O, Azure AI Search).
///
/// # Errors
/// `BadResponse` when `body` has no `value` array or an element is not an object.
pub fn collection_objects<'a>(
    reply: &Reply,
    body: &'a Value,
) -> Result<Vec<&'a Map<String, Value>>, ConnectorError> {
    let bad = |detail: String| reply.bad_response(detail);
    let Some(values) = body.get("value").and_then(Value::as_array) else {
        return Err(bad(format!(
            "expected a collection with a \"value\" array, got {}",
            excerpt(&reply.body)
        )));
    };
    values
        .iter()
        .map(|v| {
            v.as_object().ok_or_else(|| {
                bad(format!(
                    "expected an object per row, got {}",
                    excerpt(v.to_string().as_bytes())
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn query(columns: &[&str]) -> InventoryQuery {
        InventoryQuery {
            table: None,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            changed_since: None,
            page_size: 100,
        }
    }

    #[test]
    fn timestamps_are_whole_seconds_or_milliseconds_in_utc() {
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(odata_timestamp(t), "2026-01-02T03:04:05Z");
        let t = t.with_nanosecond(123_456_789).unwrap();
        assert_eq!(odata_timestamp(t), "2026-01-02T03:04:05.123Z");
        let t = t.with_nanosecond(999_999).unwrap();
        assert_eq!(odata_timestamp(t), "2026-01-02T03:04:05Z");
    }

    #[test]
    fn page_sizes_are_capped_both_ways() {
        assert_eq!(page_size(0, 5000), 1);
        assert_eq!(page_size(20_000, 5000), 5000);
        assert_eq!(page_size(250, 5000), 250);
    }

    #[test]
    fn next_links_stay_on_the_configured_origin() {
        let base = Url::parse("https://org.crm.dynamics.com/api/data/v9.2").unwrap();
        let ok = "https://ORG.crm.dynamics.com:443/api/data/v9.2/accounts?$skiptoken=x";
        assert_eq!(
            same_origin(&base, ok).unwrap().as_str(),
            "https://org.crm.dynamics.com/api/data/v9.2/accounts?$skiptoken=x"
        );
        assert_eq!(
            same_origin(&base, "/api/data/v9.2/accounts?p=2")
                .unwrap()
                .as_str(),
            "https://org.crm.dynamics.com/api/data/v9.2/accounts?p=2"
        );
        for foreign in [
            "https://evil.example/api/data/v9.2/accounts",
            "http://org.crm.dynamics.com/api/data/v9.2/accounts",
            "https://org.crm.dynamics.com:8443/api/data/v9.2/accounts",
            "https://org.crm.dynamics.com.evil.example/x",
            "//evil.example/x",
        ] {
            let e = same_origin(&base, foreign).unwrap_err();
            assert!(e.contains("not to the configured"), "{foreign}: {e}");
        }
    }

    #[test]
    fn queries_with_unsafe_names_are_refused() {
        let any = |_: &str| Ok(());
        assert!(check_query(&query(&["accountid", "_parentid_value"]), any).is_ok());
        assert!(check_query(&query(&[]), any).is_err());
        let e = check_query(&query(&["name eq 'x'"]), any).unwrap_err();
        assert!(e.contains("\"name eq 'x'\""), "{e}");
        let mut q = query(&["accountid"]);
        q.changed_since = Some(("modifiedon ge 0 or 1".into(), Utc::now()));
        assert!(check_query(&q, any).is_err());
        let mut q = query(&["accountid"]);
        q.table = Some("accounts?x".into());
        assert!(check_query(&q, odata_table).is_err());
    }
}
