//! Status readers: what each platform says about its own sync, one file per surface, read
//! through the owning kind's [`HttpSystem`] (its gate, budget, credentials and request
//! metrics, counted as operation [`OPERATION`]).
//!
//! Why here and not in the kinds: a kind offers a surface, but the surface's API is another
//! one than the kind's (Synapse Link's tables are read through the Dataverse Web API, an
//! indexer's status beside the index a target reads). The readers share no kind's code: each
//! is handed the kind's `HttpSystem` and base URL, and the kinds build them through
//! [`Surfaces`]. The facts behind every request and mapping are in the shared fact sheet
//! `platform-status.md`; `docs/design/platform-status.md` lists them per reader.
//!
//! Every reader maps only what Microsoft (or Elastic) documents; anything else is
//! [`ClaimState::Unknown`] with the platform's own words in [`Claim::raw`]. An answer that is
//! not the documented shape is a [`ConnectorError::BadResponse`], never a guess; a 401/403
//! names the permission the surface needs, which is often more than the kind's own reads need
//! (an indexer's status wants an admin key where a query key finds documents).

pub mod azure_search_indexer;
pub mod dataverse_search;
pub mod dual_write;
pub mod elasticsearch_refresh;
pub mod fabric_link;
pub mod synapse_link;

use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Utc};
use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{Map, Value};

use crate::config::platform::Surface;
use crate::connector::ConnectorError;
use crate::connector::status::{Claim, ClaimState, StatusReader, StatusSurfaces};
use crate::net::{HttpSystem, Reply, excerpt};

/// The operation every status request is counted as in `lagwatch_requests_total`.
pub const OPERATION: &str = "status";

/// The status surfaces of a system of `kind`, as [`crate::systems::System::status`] holds
/// them: `make` turns a configured surface into its reader (sharing the system's
/// `HttpSystem`), or `None` when the kind does not offer it.
pub fn surfaces<F>(kind: &'static str, make: F) -> Arc<dyn StatusSurfaces>
where
    F: Fn(&Surface) -> Option<Arc<dyn StatusReader>> + Send + Sync + 'static,
{
    Arc::new(Surfaces { kind, make })
}

struct Surfaces<F> {
    kind: &'static str,
    make: F,
}

impl<F> StatusSurfaces for Surfaces<F>
where
    F: Fn(&Surface) -> Option<Arc<dyn StatusReader>> + Send + Sync + 'static,
{
    /// The loader already checked the kind offers the surface; a refusal here means the
    /// kind's `status_surfaces()` and its builder disagree.
    fn reader(&self, surface: &Surface) -> Result<Arc<dyn StatusReader>, String> {
        (self.make)(surface).ok_or_else(|| {
            format!(
                "kind {} offers no {} status surface",
                self.kind,
                surface.name()
            )
        })
    }
}

/// What a surface needs that a kind's own reads may not have, said when the platform refuses
/// or does not know the request.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    /// The permission to grant, for a 401/403 (from the fact sheet's permission column).
    pub grant: &'static str,
    /// What a 404 most likely means (the surface is not installed, the name is wrong).
    pub missing: &'static str,
}

impl Access {
    /// `e` with the permission to grant, when the platform refused the request (an HTTP
    /// 401/403, not a token that could not be had: that is the credentials', said already).
    fn refused(&self, e: ConnectorError) -> ConnectorError {
        match e {
            ConnectorError::Auth(c) if c.contains("HTTP 401") || c.contains("HTTP 403") => {
                let message = format!("{}; to read this status, grant {}", &*c, self.grant);
                ConnectorError::Auth(c.reworded(message))
            }
            other => other,
        }
    }
}

/// One status request: `build` sent as [`OPERATION`]; a 200 is the reply, a 404 the
/// platform's error (read by `error`) with what it most likely means, anything else its error.
///
/// # Errors
/// As [`HttpSystem::send`], 401/403 naming [`Access::grant`], and any status but 200.
pub async fn get(
    http: &HttpSystem,
    access: &Access,
    build: impl Fn(&Client) -> RequestBuilder,
    error: fn(&Reply) -> ConnectorError,
) -> Result<Reply, ConnectorError> {
    let reply = http
        .send(OPERATION, build)
        .await
        .map_err(|e| access.refused(e))?;
    match reply.status {
        StatusCode::OK => Ok(reply),
        StatusCode::NOT_FOUND => Err(match error(&reply) {
            ConnectorError::BadResponse { status, detail } => ConnectorError::BadResponse {
                status,
                detail: format!("{detail} ({})", access.missing),
            },
            other => other,
        }),
        _ => Err(error(&reply)),
    }
}

/// The rows of an OData collection answer (`{"value":[{…},…]}`), each an object; anything
/// else is a bad response. Further pages (`@odata.nextLink`) are not read: every status query
/// filters to a table or a map, a handful of rows.
///
/// # Errors
/// [`ConnectorError::BadResponse`] for a body that is not such a collection.
pub fn rows(reply: &Reply) -> Result<Vec<Map<String, Value>>, ConnectorError> {
    let body: Value = reply.json()?;
    let Some(Value::Array(value)) = body.get("value") else {
        return Err(reply.bad_response(format!(
            "expected an OData collection {{\"value\":[…]}}, got {}",
            excerpt(&reply.body)
        )));
    };
    value
        .iter()
        .map(|row| match row {
            Value::Object(m) => Ok(m.clone()),
            other => Err(reply.bad_response(format!(
                "expected rows as objects, got {}",
                excerpt(other.to_string().as_bytes())
            ))),
        })
        .collect()
}

/// A claim in `state` saying `raw`, with nothing else.
pub fn claim(state: ClaimState, raw: impl Into<String>) -> Claim {
    Claim {
        state,
        raw: raw.into(),
        last_sync: None,
        watermark: None,
        syncs: None,
        detail: None,
    }
}

/// A field read from a row, or why it is not what the documentation says it is.
pub type Field<T> = Result<T, String>;

/// An integer code (an OData option set value) of `row`; `None` when absent or null.
pub fn code(row: &Map<String, Value>, field: &str) -> Field<Option<i64>> {
    match row.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{field} is not an integer code: {}", short(v))),
    }
}

/// A text field of `row`; `None` when absent or null.
pub fn text<'a>(row: &'a Map<String, Value>, field: &str) -> Field<Option<&'a str>> {
    match row.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(format!("{field} is not text: {}", short(v))),
    }
}

/// An instant the platform wrote (RFC 3339, as the Dataverse Web API and Azure write UTC
/// date-times); `None` when absent or null.
pub fn instant(row: &Map<String, Value>, field: &str) -> Field<Option<DateTime<Utc>>> {
    match text(row, field)? {
        None => Ok(None),
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| {
                format!(
                    "{field} is not a date-time ({e}): {}",
                    excerpt(s.as_bytes())
                )
            }),
    }
}

/// A row version (Dataverse `versionnumber` space): a non-negative integer, as a JSON number
/// (`Edm.Int64`) or as digits (an `Edm.String` column); `None` when absent, null or empty.
pub fn version(row: &Map<String, Value>, field: &str) -> Field<Option<u64>> {
    match row.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("{field} is not a version number: {}", excerpt(s.as_bytes()))),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{field} is not a version number: {}", short(v))),
    }
}

/// Dataverse search's `"<version>!<MM/dd/yyyy HH:mm:ss>"` watermark
/// (`"73630169!09/12/2022 14:26:14"`): the version and the time, taken as UTC because the
/// text has no zone (the fact sheet marks this unverified).
pub fn version_at(s: &str) -> Field<(u64, DateTime<Utc>)> {
    let bad = || {
        format!(
            "not \"<version>!MM/dd/yyyy HH:mm:ss\": {}",
            excerpt(s.as_bytes())
        )
    };
    let (version, time) = s.split_once('!').ok_or_else(bad)?;
    let version = version.trim().parse().map_err(|_| bad())?;
    let time = NaiveDateTime::parse_from_str(time.trim(), "%m/%d/%Y %H:%M:%S")
        .map_err(|_| bad())?
        .and_utc();
    Ok((version, time))
}

/// A JSON value in a message: compact and short.
fn short(v: &Value) -> String {
    excerpt(v.to_string().as_bytes())
}

/// `code (Label)` as the platform documents the code, or the bare code when undocumented.
pub fn labelled(field: &str, code: i64, labels: &[(i64, &str)]) -> String {
    match labels.iter().find(|(c, _)| *c == code) {
        Some((_, label)) => format!("{field}={code} ({label})"),
        None => format!("{field}={code}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn the_search_watermark_is_a_version_and_a_utc_time() {
        let (v, t) = version_at("73630169!09/12/2022 14:26:14").unwrap();
        assert_eq!(v, 73_630_169);
        assert_eq!(t.to_rfc3339(), "2022-09-12T14:26:14+00:00");
        assert!(version_at("1555508!10/16/2023 02:21:59").is_ok());
        for bad in [
            "",
            "73630169",
            "x!09/12/2022 14:26:14",
            "1!2022-09-12T14:26:14Z",
        ] {
            assert!(version_at(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fields_are_read_strictly() {
        let r = row(
            json!({"n": 2, "s": "x", "v": "123", "w": 9, "t": "2026-01-02T03:04:05Z",
            "bad": "2", "neg": -1, "empty": ""}),
        );
        assert_eq!(code(&r, "n"), Ok(Some(2)));
        assert_eq!(code(&r, "absent"), Ok(None));
        assert!(code(&r, "bad").is_err());
        assert_eq!(text(&r, "s"), Ok(Some("x")));
        assert!(text(&r, "n").is_err());
        assert_eq!(version(&r, "v"), Ok(Some(123)));
        assert_eq!(version(&r, "w"), Ok(Some(9)));
        assert_eq!(version(&r, "empty"), Ok(None));
        assert!(version(&r, "neg").is_err());
        assert!(version(&r, "s").is_err());
        assert_eq!(
            instant(&r, "t").unwrap().map(|t| t.timestamp()),
            Some(1_767_323_045)
        );
        assert!(instant(&r, "s").is_err());
    }

    #[test]
    fn codes_carry_their_documented_labels() {
        let labels = [(1, "Active")];
        assert_eq!(
            labelled("profilestate", 1, &labels),
            "profilestate=1 (Active)"
        );
        assert_eq!(labelled("profilestate", 9, &labels), "profilestate=9");
    }

    #[test]
    fn only_a_refusal_by_the_platform_names_the_grant() {
        let access = Access {
            grant: "the X role",
            missing: "not installed",
        };
        let refused = ConnectorError::Auth("GET h/p: HTTP 403: denied".into());
        let e = access.refused(refused);
        assert!(
            e.to_string()
                .ends_with("to read this status, grant the X role"),
            "{e}"
        );
        let token = ConnectorError::Auth("token endpoint said invalid_client".into());
        assert!(!access.refused(token).to_string().contains("grant"));
    }
}
