//! Finance & Operations OData, fact sheet §4.1, holding rows written by dual-write (§4.3).
//!
//! Base `/fno/{env}/data/`. Entity sets are the F&O targets of the scenario's replicas
//! (`CustomersV3`, …); their rows are the replicated Dataverse rows under the replica's field
//! `map` and `transform`, plus `dataAreaId` (the replica's `company`) and an `@odata.etag`.
//!
//! - `GET /{Entity}?cross-company=true&$filter=Field eq 'value'&$select=…&$top=1` →
//!   `{"@odata.context":…,"value":[…]}`. Without `cross-company=true` only rows of the
//!   environment's `default_company` are returned (§4.1). `$filter` supports the shared
//!   subset (`eq ne gt ge lt le and or not`, parentheses) with F&O's wildcard equality
//!   (`Field eq '*text*'`); `$count=true` adds `@odata.count`.
//! - `GET /{Entity}(dataAreaId='usmf',CustomerAccount='…')` by key (⚠ in §4.1) → the row or 404.
//! - `GET /` → the service document.
//!
//! Authentication: a bearer token of the emulated Entra endpoint for the environment's
//! resource (default `https://<env>.operations.dynamics.com`), else `401`. While a replica
//! is in an `unavailable` outage reads of its entity fail with `503`. The dual-write map
//! state (`running`, `paused` windows, `stopped`) decides when rows appear, through the
//! replica's landscape model. Writes and server-driven paging are left out (the sentinel
//! lookups this emulates return one row).

use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::odata::{self, Dialect, Filter};
use super::replication::{ReplicaDef, Visibility};
use super::scenario::Target;
use super::{Emulator, Req, b64_encode, hv, json_response};

/// RecIds of emulated rows start here (a typical F&O RecId range).
const RECID_BASE: u64 = 5_637_144_576;

fn fno_error(status: StatusCode, message: &str) -> Response {
    let mut r = json_response(status, &json!({"error": {"code": "", "message": message}}));
    r.headers_mut().insert("odata-version", hv("4.0"));
    r
}

fn fno_json(body: &Value) -> Response {
    let mut r = json_response(StatusCode::OK, body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        hv("application/json; odata.metadata=minimal"),
    );
    r.headers_mut().insert("odata-version", hv("4.0"));
    r
}

/// Parses `a='x',b='y'` (a compound key).
fn parse_key(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=')?;
        let after = after.trim_start().strip_prefix('\'')?;
        let mut value = String::new();
        let mut chars = after.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if chars.peek().map(|(_, c)| *c) == Some('\'') {
                    value.push('\'');
                    chars.next();
                } else {
                    end = Some(i + 1);
                    break;
                }
            } else {
                value.push(c);
            }
        }
        let end = end?;
        out.push((name.trim().to_string(), value));
        rest = after[end..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    (!out.is_empty()).then_some(out)
}

impl Emulator {
    /// Resources whose tokens this environment accepts.
    pub(crate) fn fno_resources(&self, env: &str, host: &str) -> Vec<String> {
        let mut out = vec![
            self.scenario
                .fno
                .get(env)
                .and_then(|e| e.resource.clone())
                .unwrap_or_else(|| format!("https://{env}.operations.dynamics.com")),
        ];
        if !host.is_empty() {
            out.push(format!("http://{host}/fno/{env}"));
        }
        out
    }

    pub(crate) fn fno(&self, req: &Req, env: &str) -> Response {
        let accepted = self.fno_resources(env, &req.host);
        if self.bearer(req, &accepted).is_err() {
            let mut r = super::empty_response(StatusCode::UNAUTHORIZED);
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, hv("Bearer"));
            return r;
        }
        if req.method != Method::GET {
            return fno_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "The emulated F&O service is read-only: rows arrive through dual-write.",
            );
        }
        let base = format!("http://{}/fno/{env}/data/", req.host);
        let segment = match req.segments.as_slice() {
            [] => "",
            [s] => s.as_str(),
            _ => {
                return fno_error(
                    StatusCode::NOT_FOUND,
                    &format!(
                        "No HTTP resource was found that matches the request URI '{}'.",
                        req.path
                    ),
                );
            }
        };
        if segment.is_empty() {
            let mut names: Vec<&str> = self
                .replicas_for(|t| matches!(t, Target::Fno { env: e, .. } if e == env))
                .into_iter()
                .filter_map(|r| match &r.target {
                    Target::Fno { entity, .. } => Some(entity.as_str()),
                    _ => None,
                })
                .collect();
            names.sort_unstable();
            names.dedup();
            let value: Vec<Value> = names
                .iter()
                .map(|n| json!({"name": n, "kind": "EntitySet", "url": n}))
                .collect();
            return fno_json(
                &json!({"@odata.context": format!("{base}$metadata"), "value": value}),
            );
        }
        let (entity, key) = match segment.split_once('(') {
            Some((e, rest)) => match rest.strip_suffix(')').and_then(parse_key) {
                Some(k) => (e, Some(k)),
                None => {
                    return fno_error(
                        StatusCode::BAD_REQUEST,
                        "The key in the request URI is not valid: write Entity(Field='value',…).",
                    );
                }
            },
            None => (segment, None),
        };
        let replicas = self.replicas_for(
            |t| matches!(t, Target::Fno { env: e, entity: n, .. } if e == env && n == entity),
        );
        if replicas.is_empty() {
            return fno_error(
                StatusCode::NOT_FOUND,
                &format!(
                    "No HTTP resource was found that matches the request URI '{}'.",
                    req.path
                ),
            );
        }
        if self.unavailable(&replicas).is_some() {
            return fno_error(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
        }
        let fields = known_fields(&replicas);
        let type_name = format!("Microsoft.Dynamics.DataEntities.{entity}");
        let select = match req.query.get("$select").map(odata::parse_select) {
            None => None,
            Some(Ok(cols)) => {
                if let Some(c) = cols.iter().find(|c| !fields.contains(c)) {
                    return fno_error(
                        StatusCode::BAD_REQUEST,
                        &format!("Could not find a property named '{c}' on type '{type_name}'."),
                    );
                }
                Some(cols)
            }
            Some(Err(e)) => return fno_error(StatusCode::BAD_REQUEST, &e),
        };
        let filter: Option<Filter> = match req.query.get("$filter").map(odata::parse_filter) {
            None => None,
            Some(Ok(f)) => {
                if let Some(c) = f
                    .fields()
                    .into_iter()
                    .find(|c| !fields.iter().any(|k| k == c))
                {
                    return fno_error(
                        StatusCode::BAD_REQUEST,
                        &format!("Could not find a property named '{c}' on type '{type_name}'."),
                    );
                }
                Some(f)
            }
            Some(Err(e)) => {
                return fno_error(
                    StatusCode::BAD_REQUEST,
                    &format!("Syntax error in $filter: {e}"),
                );
            }
        };
        let top = match req.query.get("$top").map(odata::parse_top) {
            None => None,
            Some(Ok(t)) => Some(t),
            Some(Err(e)) => return fno_error(StatusCode::BAD_REQUEST, &e),
        };
        let cross_company = req
            .query
            .get("cross-company")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let default_company = self
            .scenario
            .fno
            .get(env)
            .map(|e| e.default_company.clone())
            .unwrap_or_default();

        let mut rows: Vec<Map<String, Value>> = Vec::new();
        for r in self.target_rows(&replicas, Visibility::Read) {
            let company = replicas
                .iter()
                .filter(|d| d.name == r.replica)
                .find_map(|d| match &d.target {
                    Target::Fno { company, .. } => Some(company.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            let mut row = Map::new();
            let recid = RECID_BASE + r.seq;
            row.insert(
                "@odata.etag".into(),
                Value::String(format!(
                    "W/\"{}\"",
                    b64_encode(format!("'1,{recid}'").as_bytes())
                )),
            );
            row.insert("dataAreaId".into(), Value::String(company));
            for (k, v) in r.fields {
                row.insert(k, v);
            }
            rows.push(row);
        }
        if let Some(key) = &key {
            if let Some((k, _)) = key.iter().find(|(k, _)| !fields.contains(k)) {
                return fno_error(
                    StatusCode::BAD_REQUEST,
                    &format!("Could not find a property named '{k}' on type '{type_name}'."),
                );
            }
            let found = rows.into_iter().find(|row| {
                key.iter().all(|(k, v)| {
                    row.get(k)
                        .and_then(Value::as_str)
                        .is_some_and(|x| x.eq_ignore_ascii_case(v))
                })
            });
            return match found {
                Some(row) => {
                    let mut body = Map::new();
                    body.insert(
                        "@odata.context".into(),
                        Value::String(format!("{base}$metadata#{entity}/$entity")),
                    );
                    body.append(&mut project(row, select.as_deref()));
                    fno_json(&Value::Object(body))
                }
                None => fno_error(
                    StatusCode::NOT_FOUND,
                    &format!("No resource was found for '{segment}'."),
                ),
            };
        }
        rows.retain(|row| {
            cross_company
                || row
                    .get("dataAreaId")
                    .and_then(Value::as_str)
                    .is_some_and(|c| c.eq_ignore_ascii_case(&default_company))
        });
        rows.retain(|row| filter.as_ref().is_none_or(|f| f.matches(row, Dialect::FNO)));
        let total = rows.len();
        let value: Vec<Value> = rows
            .into_iter()
            .take(top.unwrap_or(usize::MAX))
            .map(|row| Value::Object(project(row, select.as_deref())))
            .collect();
        let cols = select
            .as_ref()
            .map(|s| format!("({})", s.join(",")))
            .unwrap_or_default();
        let mut body = Map::new();
        body.insert(
            "@odata.context".into(),
            Value::String(format!("{base}$metadata#{entity}{cols}")),
        );
        if req.query.get("$count") == Some("true") {
            body.insert("@odata.count".into(), json!(total));
        }
        body.insert("value".into(), Value::Array(value));
        fno_json(&Value::Object(body))
    }
}

fn known_fields(replicas: &[&ReplicaDef]) -> Vec<String> {
    let mut out = vec!["dataAreaId".to_string()];
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
            .filter(|(k, _)| k == "@odata.etag" || cols.iter().any(|c| c == k))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compound_keys_parse() {
        assert_eq!(
            parse_key("dataAreaId='usmf',CustomerAccount='O''B-1'"),
            Some(vec![
                ("dataAreaId".to_string(), "usmf".to_string()),
                ("CustomerAccount".to_string(), "O'B-1".to_string()),
            ])
        );
        assert_eq!(parse_key("x=1"), None);
    }
}
