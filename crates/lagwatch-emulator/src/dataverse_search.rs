//! Dataverse search (relevance search), fact sheet §6.2: the `searchquery` action of a
//! Dataverse environment's Web API, over the tables of its `dataverse_search` replicas.
//!
//! A replica `{ kind: dataverse_search, env, table }` of a table is that table's search index:
//! a record version becomes findable after the replica's lag (the ground truth's
//! `visible_at`), with every knob of replication (drops, stalls, paused maps, flaps,
//! mismatches, deletes). The index holds the table's columns (id, configured columns, lookups
//! as `_<nav>_value`, `createdon`, `modifiedon`, `versionnumber`); rows seeded at start-up are
//! not in it (a phrase search walks every document, and a seeded table can hold millions).
//!
//! `POST /{env}/api/data/v9.2/searchquery` takes the documented body (S43):
//!
//! ```json
//! {"search":"\"lagwatch-a-1\"",
//!  "entities":"[{\"Name\":\"account\",\"SelectColumns\":[\"name\",\"description\"],\"SearchColumns\":[\"name\"],\"Filter\":\"statecode eq 0\"}]",
//!  "filter":"…","top":1,"skip":0,"count":true,"orderby":"…","options":"…","facets":"…","propertybag":"…"}
//! ```
//!
//! and answers `200` `{"@odata.context":"…#Microsoft.Dynamics.CRM.searchqueryResponse",
//! "response":"<JSON>"}`, the JSON inside the string being `{"Error":null,"Value":[{"Id",
//! "EntityName","ObjectTypeCode","Attributes":{"@search.objecttypecode":1,…},"Highlights":
//! {"name":["{crmhit}…{/crmhit}"]},"Score"}],"Facets":{},"QueryContext":null,"Count":n}`
//! (`Count` −1 without `count: true`). `ObjectTypeCode` is 0 and the table's code is in
//! `@search.objecttypecode`, as in the documented answer.
//!
//! - `search` (required, 1 to 100 characters) is read in the simple syntax: quoted phrases
//!   (`\` escapes `"` and `\`), words (a trailing `*` matches a prefix), `+` before a term
//!   requires it and `-` excludes it; a record matches when a term does (`searchmode` any,
//!   the default). Text is compared as lower-case runs of letters and digits, so a phrase
//!   matches where its words follow each other in a column; `*` alone matches every record.
//!   Grouping parentheses and the Lucene syntax of `options` are not emulated: a term of no
//!   letters or digits (an operator left unescaped) is refused.
//! - `entities` (a JSON *string*: `Name`, `SelectColumns`, `SearchColumns`, `Filter`, member
//!   names in any case) limits the tables; without it every indexed table of the environment
//!   is searched. No `SearchColumns`: the primary name column only; no `SelectColumns`: it
//!   alone is returned. `Filter` (per table) and `filter` (every table) are the Web API's
//!   `$filter` subset ([`super::odata`]).
//! - `top` defaults to 50, at most 100; `skip`; results by score, then in the order records
//!   were first indexed.
//!
//! A request that is not that shape is the Web API's `400` (`0x80040203`, or `0x80048d19` for a
//! body that is not a JSON object; an unknown parameter is refused, as for any action). A
//! table that is not indexed, or a column it does not have, is the search service's own error
//! inside `response` (`"Error":{"code":"","message":…,"propertybag":{}}`, `Value` empty): the
//! documents give the `ErrorDetail` shape but no codes. An environment without a Dataverse
//! search replica has search not provisioned: `searchquery` is a `400` saying so (and
//! `searchstatus` says `notprovisioned`, [`crate::status`]). An `unavailable` outage of the
//! replica answers `503`.
//!
//! Primary name column (a table's `primarynamefield`): `name` when the table has that column,
//! else its first string column, else its id. Object type codes: 1 for `account`, 2 for
//! `contact`, `10000 +` the table's position in its environment otherwise (custom tables).

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::dataverse::{dv_error, dv_json, dv_wrong_method};
use super::odata::{self, Dialect, Filter};
use super::replication::{ReplicaDef, Visibility};
use super::scenario::{ColumnType, Table, Target};
use super::{Emulator, Req};

/// The operations of Dataverse search this module and [`crate::status`] serve.
pub(crate) const OPERATIONS: &[&str] = &["searchquery", "searchstatus"];

/// Longest `search` term (§6.2).
const MAX_SEARCH: usize = 100;

/// Most results of one query (§6.2), and the default.
const MAX_TOP: usize = 100;
const DEFAULT_TOP: usize = 50;

/// The parameters of the `searchquery` action (S43).
const PARAMETERS: &[&str] = &[
    "search",
    "entities",
    "filter",
    "orderby",
    "top",
    "skip",
    "count",
    "options",
    "facets",
    "propertybag",
];

/// One table's index: the replica that fills it and the table's metadata.
pub(crate) struct Indexed<'a> {
    pub replica: &'a ReplicaDef,
    pub logical: String,
    pub object_type_code: u32,
    pub primary_name: String,
    /// Every indexed column, the id first.
    pub columns: Vec<String>,
}

/// The primary name column of `table` (see the module docs).
pub(crate) fn primary_name(table: &Table, set: &str) -> String {
    if table.columns.contains_key("name") {
        return "name".to_string();
    }
    table
        .columns
        .iter()
        .find(|(_, t)| **t == ColumnType::String)
        .map_or_else(|| table.id_column(set), |(c, _)| c.clone())
}

/// A table's object type code: the system tables' own, `10000 + position` for the others.
fn object_type_code(logical: &str, position: usize) -> u32 {
    match logical {
        "account" => 1,
        "contact" => 2,
        _ => 10_000 + u32::try_from(position).unwrap_or(u32::MAX - 10_000),
    }
}

/// A search error of the service, inside `response`.
fn search_failure(message: &str) -> Value {
    json!({"Error": {"code": "", "message": message, "propertybag": {}},
           "Value": [], "Facets": {}, "QueryContext": null, "Count": 0})
}

/// `{"@odata.context", "response": "<inner as JSON text>"}`, the answer of both operations.
pub(crate) fn string_wrapped(base: &str, response_type: &str, inner: &Value) -> Response {
    dv_json(
        StatusCode::OK,
        &json!({
            "@odata.context": format!("{base}$metadata#Microsoft.Dynamics.CRM.{response_type}"),
            "response": inner.to_string(),
        }),
    )
}

fn invalid(message: &str) -> Response {
    dv_error(StatusCode::BAD_REQUEST, "0x80040203", message)
}

/// A term of a simple-syntax query.
#[derive(Debug, Clone, PartialEq)]
struct Term {
    /// Lower-case words that must follow each other.
    words: Vec<String>,
    /// The last word matches as a prefix (`word*`).
    prefix: bool,
    occur: Occur,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Occur {
    Should,
    Must,
    MustNot,
}

/// The lower-case runs of letters and digits of `text`, with their byte ranges.
fn words(text: &str) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((text[s..i].to_lowercase(), s, i));
                start = None;
            }
            _ => {}
        }
    }
    out
}

/// Parses a simple-syntax query into terms (see the module docs).
fn parse_query(q: &str) -> Result<Vec<Term>, String> {
    let mut terms = Vec::new();
    let mut chars = q.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == '|') {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            break;
        };
        let occur = match first {
            '+' => Occur::Must,
            '-' => Occur::MustNot,
            _ => Occur::Should,
        };
        if occur != Occur::Should {
            chars.next();
        }
        let mut text = String::new();
        let mut prefix = false;
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => text.extend(chars.next()),
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => text.push(c),
                }
            }
            if !closed {
                return Err(format!("the phrase in \"{q}\" has no closing quote"));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '|' {
                    break;
                }
                chars.next();
                match c {
                    '\\' => text.extend(chars.next()),
                    '*' if chars.peek().is_none_or(|n| n.is_whitespace() || *n == '|') => {
                        prefix = true;
                    }
                    c => text.push(c),
                }
            }
        }
        let words: Vec<String> = words(&text).into_iter().map(|(w, _, _)| w).collect();
        if words.is_empty() && !(prefix && occur == Occur::Should) {
            return Err(format!(
                "\"{q}\" has a term without letters or digits; escape operators with \\"
            ));
        }
        if !words.is_empty() {
            terms.push(Term {
                words,
                prefix,
                occur,
            });
        }
    }
    Ok(terms)
}

/// Where `term` occurs in `text`: the byte range of its first occurrence.
fn find(term: &Term, text: &str) -> Option<(usize, usize)> {
    let have = words(text);
    let n = term.words.len();
    (0..have.len().saturating_sub(n - 1)).find_map(|i| {
        let hit = term.words.iter().enumerate().all(|(j, w)| {
            let h = &have[i + j].0;
            if term.prefix && j + 1 == n {
                h.starts_with(w.as_str())
            } else {
                h == w
            }
        });
        hit.then(|| (have[i].1, have[i + n - 1].2))
    })
}

/// The score of a record whose searched columns are `fields` (by name), and the highlights:
/// `None` when it does not match. No terms (`*`) match every record.
fn score(terms: &[Term], fields: &[(&str, &str)]) -> Option<(f64, Map<String, Value>)> {
    if terms.is_empty() {
        return Some((1.0, Map::new()));
    }
    let mut highlights: Map<String, Value> = Map::new();
    let mut score = 0.0;
    let mut should = false;
    for t in terms {
        let mut hit = false;
        for (name, text) in fields {
            if let Some((a, b)) = find(t, text) {
                hit = true;
                if t.occur != Occur::MustNot {
                    let marked = format!(
                        "{}{{crmhit}}{}{{/crmhit}}{}",
                        &text[..a],
                        &text[a..b],
                        &text[b..]
                    );
                    let list = highlights
                        .entry((*name).to_string())
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(l) = list
                        && !l.iter().any(|v| v.as_str() == Some(marked.as_str()))
                    {
                        l.push(Value::String(marked));
                    }
                }
            }
        }
        match (t.occur, hit) {
            (Occur::Must, false) | (Occur::MustNot, true) => return None,
            (Occur::MustNot, false) => {}
            (_, true) => {
                should = true;
                score += t.words.len() as f64;
            }
            (Occur::Should, false) => {}
        }
    }
    let musts = terms.iter().any(|t| t.occur == Occur::Must);
    (should || musts).then_some((score, highlights))
}

/// One table of `entities`, as asked.
struct Asked {
    name: String,
    select: Vec<String>,
    search: Vec<String>,
    filter: Option<String>,
}

/// `entities`: a JSON string of `[{Name, SelectColumns, SearchColumns, Filter}]`.
fn parse_entities(v: &Value) -> Result<Vec<Asked>, String> {
    let Value::String(text) = v else {
        return Err(
            "entities must be a string holding a JSON array of {Name, SelectColumns, \
             SearchColumns, Filter}"
                .to_string(),
        );
    };
    let parsed: Value =
        serde_json::from_str(text).map_err(|e| format!("entities is not JSON ({e}): {text}"))?;
    let Value::Array(items) = parsed else {
        return Err(format!("entities is not a JSON array: {text}"));
    };
    let strings = |v: &Value, member: &str| -> Result<Vec<String>, String> {
        match v {
            Value::Null => Ok(Vec::new()),
            Value::Array(a) => a
                .iter()
                .map(|s| {
                    s.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("{member} holds column names, not {s}"))
                })
                .collect(),
            other => Err(format!("{member} is a list of column names, not {other}")),
        }
    };
    items
        .iter()
        .map(|item| {
            let Value::Object(m) = item else {
                return Err(format!("an entity of entities is not an object: {item}"));
            };
            let mut asked = Asked {
                name: String::new(),
                select: Vec::new(),
                search: Vec::new(),
                filter: None,
            };
            for (k, v) in m {
                match k.to_ascii_lowercase().as_str() {
                    "name" => {
                        asked.name = v
                            .as_str()
                            .ok_or_else(|| format!("Name is a table's logical name, not {v}"))?
                            .to_string();
                    }
                    "selectcolumns" => asked.select = strings(v, "SelectColumns")?,
                    "searchcolumns" => asked.search = strings(v, "SearchColumns")?,
                    "filter" => {
                        asked.filter = match v {
                            Value::Null => None,
                            Value::String(s) => Some(s.clone()),
                            other => return Err(format!("Filter is a string, not {other}")),
                        };
                    }
                    _ => {
                        return Err(format!(
                            "\"{k}\" is not a member of a search entity (Name, SelectColumns, \
                             SearchColumns, Filter)"
                        ));
                    }
                }
            }
            if asked.name.is_empty() {
                return Err("an entity of entities has no Name".to_string());
            }
            Ok(asked)
        })
        .collect()
}

impl Emulator {
    /// Whether `segment` of environment `env` is a Dataverse search operation (and not a
    /// table the scenario declares).
    pub(crate) fn is_search_operation(&self, env: &str, segment: &str) -> bool {
        OPERATIONS.contains(&segment)
            && self
                .scenario
                .dataverse
                .get(env)
                .is_some_and(|e| !e.tables.contains_key(segment))
    }

    /// The tables of environment `env` Dataverse search indexes, in the environment's order.
    pub(crate) fn indexed_tables(&self, env: &str) -> Vec<Indexed<'_>> {
        let Some(e) = self.scenario.dataverse.get(env) else {
            return Vec::new();
        };
        e.tables
            .iter()
            .enumerate()
            .filter_map(|(position, (set, table))| {
                let replica = self.replicas.iter().find(|r| {
                    matches!(&r.target, Target::DataverseSearch { env: te, table: ts }
                        if te == env && ts == set)
                })?;
                let logical = table.logical(set);
                Some(Indexed {
                    replica,
                    object_type_code: object_type_code(&logical, position),
                    logical,
                    primary_name: primary_name(table, set),
                    columns: replica.map.iter().map(|(_, to)| to.clone()).collect(),
                })
            })
            .collect()
    }

    /// The index of Dataverse search replica `r`, if it is one.
    pub(crate) fn indexed_table(&self, r: &ReplicaDef) -> Option<Indexed<'_>> {
        let Target::DataverseSearch { env, .. } = &r.target else {
            return None;
        };
        self.indexed_tables(env)
            .into_iter()
            .find(|i| i.replica.name == r.name)
    }

    /// `POST /{env}/api/data/v9.2/searchquery` (see the module docs).
    pub(crate) fn search_query(&self, req: &Req, env: &str, base: &str) -> Response {
        if req.method != Method::POST {
            return dv_wrong_method(&req.method, ": searchquery is an action (POST)");
        }
        let body: Map<String, Value> = match serde_json::from_slice(&req.body) {
            Ok(Value::Object(m)) => m,
            _ => {
                return dv_error(
                    StatusCode::BAD_REQUEST,
                    "0x80048d19",
                    "Error identified in Payload provided by the user: the body of searchquery \
                     must be a JSON object of its parameters.",
                );
            }
        };
        if let Some(k) = body.keys().find(|k| !PARAMETERS.contains(&k.as_str())) {
            return invalid(&format!(
                "The parameter '{k}' in the request payload is not a valid parameter for the \
                 operation 'searchquery'."
            ));
        }
        let search = match body.get("search") {
            Some(Value::String(s)) if (1..=MAX_SEARCH).contains(&s.chars().count()) => s.clone(),
            Some(Value::String(s)) => {
                return invalid(&format!(
                    "search must be 1 to {MAX_SEARCH} characters, not {}.",
                    s.chars().count()
                ));
            }
            _ => return invalid("search (a string) is required."),
        };
        let number = |k: &str, default: usize| -> Result<usize, Response> {
            match body.get(k) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| invalid(&format!("{k} must be a non-negative integer."))),
            }
        };
        let (top, skip) = match (number("top", DEFAULT_TOP), number("skip", 0)) {
            (Ok(t), Ok(s)) => (t, s),
            (Err(r), _) | (_, Err(r)) => return r,
        };
        if top > MAX_TOP {
            return invalid(&format!("top must be at most {MAX_TOP}, not {top}."));
        }
        let count = match body.get("count") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return invalid("count must be true or false."),
        };
        for k in ["filter", "orderby", "options", "facets", "propertybag"] {
            if body.get(k).is_some_and(|v| !v.is_string() && !v.is_null()) {
                return invalid(&format!("{k} must be a string."));
            }
        }
        let asked = match body.get("entities") {
            None | Some(Value::Null) => None,
            Some(v) => match parse_entities(v) {
                Ok(a) => Some(a),
                Err(e) => return invalid(&e),
            },
        };
        let terms = match parse_query(&search) {
            Ok(t) => t,
            Err(e) => return invalid(&e),
        };
        let indexed = self.indexed_tables(env);
        if indexed.is_empty() {
            return invalid(&format!(
                "Dataverse search is not provisioned in this environment ({env}): no table is \
                 indexed."
            ));
        }
        let replicas: Vec<&ReplicaDef> = indexed.iter().map(|i| i.replica).collect();
        if self.unavailable(&replicas).is_some() {
            return dv_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "",
                "Service Unavailable (emulated outage of Dataverse search).",
            );
        }
        let global = match body.get("filter").and_then(Value::as_str) {
            None => None,
            Some(f) => match odata::parse_filter(f) {
                Ok(f) => Some(f),
                Err(e) => {
                    return self.search_answer(base, &search_failure(&format!("filter: {e}")));
                }
            },
        };
        let plan = match plan(&indexed, asked) {
            Ok(p) => p,
            Err(e) => return self.search_answer(base, &search_failure(&e)),
        };
        let mut hits: Vec<(f64, u64, Value)> = Vec::new();
        for (ix, p) in &plan {
            for row in self.target_rows(&[ix.replica], Visibility::Read) {
                let passes = |f: &Option<Filter>| {
                    f.as_ref()
                        .is_none_or(|f| f.matches(&row.fields, Dialect::DATAVERSE))
                };
                if !passes(&p.filter) || !passes(&global) {
                    continue;
                }
                let searched: Vec<(&str, &str)> = p
                    .search
                    .iter()
                    .filter_map(|c| Some((c.as_str(), row.fields.get(c)?.as_str()?)))
                    .collect();
                let Some((score, highlights)) = score(&terms, &searched) else {
                    continue;
                };
                let mut attributes = Map::new();
                attributes.insert("@search.objecttypecode".into(), json!(ix.object_type_code));
                for c in &p.select {
                    attributes.insert(c.clone(), row.fields.get(c).cloned().unwrap_or(Value::Null));
                }
                hits.push((
                    score,
                    row.seq,
                    json!({
                        "Id": row.id.to_string(),
                        "EntityName": ix.logical,
                        "ObjectTypeCode": 0,
                        "Attributes": attributes,
                        "Highlights": highlights,
                        "Score": score,
                    }),
                ));
            }
        }
        hits.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let total = hits.len();
        let value: Vec<Value> = hits.into_iter().skip(skip).take(top).map(|h| h.2).collect();
        let inner = json!({
            "Error": null,
            "Value": value,
            "Facets": {},
            "QueryContext": null,
            "Count": if count { i64::try_from(total).unwrap_or(i64::MAX) } else { -1 },
        });
        self.search_answer(base, &inner)
    }

    fn search_answer(&self, base: &str, inner: &Value) -> Response {
        string_wrapped(base, "searchqueryResponse", inner)
    }
}

/// What is searched in one table: its columns to return, to search, and its filter.
struct Plan {
    select: Vec<String>,
    search: Vec<String>,
    filter: Option<Filter>,
}

/// The tables `asked` names (every indexed one without `entities`), checked against the
/// index: an error names the table or column the index does not have.
fn plan<'a>(
    indexed: &'a [Indexed<'a>],
    asked: Option<Vec<Asked>>,
) -> Result<Vec<(&'a Indexed<'a>, Plan)>, String> {
    let Some(asked) = asked else {
        return Ok(indexed
            .iter()
            .map(|ix| {
                let primary = vec![ix.primary_name.clone()];
                (
                    ix,
                    Plan {
                        select: primary.clone(),
                        search: primary,
                        filter: None,
                    },
                )
            })
            .collect());
    };
    asked
        .into_iter()
        .map(|a| {
            let ix = indexed
                .iter()
                .find(|ix| ix.logical.eq_ignore_ascii_case(&a.name))
                .ok_or_else(|| {
                    format!(
                        "The entity '{}' is not enabled for Dataverse search (indexed: {}).",
                        a.name,
                        indexed
                            .iter()
                            .map(|i| i.logical.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            let column = |c: &String| {
                ix.columns
                    .iter()
                    .find(|k| k.eq_ignore_ascii_case(c))
                    .cloned()
                    .ok_or_else(|| {
                        format!(
                            "The column '{c}' of entity '{}' is not in the search index.",
                            ix.logical
                        )
                    })
            };
            let or_primary = |cols: Vec<String>| {
                if cols.is_empty() {
                    vec![ix.primary_name.clone()]
                } else {
                    cols
                }
            };
            let select = a.select.iter().map(column).collect::<Result<Vec<_>, _>>()?;
            let search = a.search.iter().map(column).collect::<Result<Vec<_>, _>>()?;
            let filter = match &a.filter {
                None => None,
                Some(f) => {
                    let f = odata::parse_filter(f)
                        .map_err(|e| format!("Filter of entity '{}': {e}", ix.logical))?;
                    if let Some(c) = f
                        .fields()
                        .into_iter()
                        .find(|c| !ix.columns.iter().any(|k| k == c))
                    {
                        return Err(format!(
                            "Filter of entity '{}': the column '{c}' is not in the search index.",
                            ix.logical
                        ));
                    }
                    Some(f)
                }
            };
            Ok((
                ix,
                Plan {
                    select: or_primary(select),
                    search: or_primary(search),
                    filter,
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(q: &str) -> Vec<Term> {
        parse_query(q).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_quoted_key_is_one_phrase_of_its_words() {
        let t = term(r#""lagwatch-plat-0193ab""#);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].words, ["lagwatch", "plat", "0193ab"]);
        assert_eq!((t[0].prefix, t[0].occur), (false, Occur::Should));
        // Escapes inside the phrase are the characters themselves.
        assert_eq!(term(r#""a\"b\\c""#)[0].words, ["a", "b", "c"]);
        assert!(parse_query(r#""open"#).is_err());
        assert!(parse_query("*").is_ok_and(|t| t.is_empty()), "everything");
        assert!(parse_query("a && b").is_err());
    }

    #[test]
    fn words_prefixes_and_operators_are_read() {
        let t = term("alp* +contoso -fabrikam | x\\+y");
        let got: Vec<(Vec<String>, bool, Occur)> = t
            .into_iter()
            .map(|t| (t.words, t.prefix, t.occur))
            .collect();
        assert_eq!(
            got,
            vec![
                (vec!["alp".to_string()], true, Occur::Should),
                (vec!["contoso".to_string()], false, Occur::Must),
                (vec!["fabrikam".to_string()], false, Occur::MustNot),
                (vec!["x".to_string(), "y".to_string()], false, Occur::Should),
            ]
        );
    }

    #[test]
    fn a_phrase_matches_consecutive_words_only_and_is_highlighted() {
        let key = r#""lagwatch-a-1""#;
        let hit = score(&term(key), &[("name", "LAGWATCH-a-1")]).expect("a match");
        assert_eq!(hit.1["name"], json!(["{crmhit}LAGWATCH-a-1{/crmhit}"]));
        // Another sentinel shares words, not the phrase.
        assert!(score(&term(key), &[("name", "lagwatch-a-10")]).is_none());
        assert!(score(&term(key), &[("name", "lagwatch-b-1")]).is_none());
        assert!(score(&term(key), &[("name", "1-a-lagwatch")]).is_none());
        // Inside longer text, by words.
        let hit = score(&term(key), &[("name", "see lagwatch a 1 here")]).expect("a match");
        assert_eq!(
            hit.1["name"],
            json!(["see {crmhit}lagwatch a 1{/crmhit} here"])
        );
    }

    #[test]
    fn any_term_matches_unless_one_is_required_or_excluded() {
        let fields = [("name", "Contoso Pharmaceuticals")];
        assert!(score(&term("contoso fabrikam"), &fields).is_some());
        assert!(score(&term("+fabrikam contoso"), &fields).is_none());
        assert!(score(&term("contoso -pharma*"), &fields).is_none());
        assert!(score(&term("pharma*"), &fields).is_some());
        assert!(score(&term("pharma"), &fields).is_none());
        assert!(
            score(&term("-fabrikam"), &fields).is_none(),
            "nothing to match"
        );
        assert!(score(&term("*"), &fields).is_some(), "everything");
    }

    #[test]
    fn entities_are_a_json_string_with_members_in_any_case() {
        let v = json!(
            r#"[{"Name":"account","SelectColumns":["name"],"searchcolumns":["name"],"filter":"statecode eq 0"}]"#
        );
        let a = parse_entities(&v).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a[0].name, "account");
        assert_eq!(
            (a[0].select.clone(), a[0].search.clone()),
            (vec!["name".to_string()], vec!["name".to_string()])
        );
        assert_eq!(a[0].filter.as_deref(), Some("statecode eq 0"));
        for bad in [
            json!([{"Name": "account"}]),
            json!("{\"Name\":\"account\"}"),
            json!("[{\"Name\":\"account\",\"Columns\":[]}]"),
            json!("[{\"SelectColumns\":[]}]"),
            json!("[{\"Name\":\"account\",\"SearchColumns\":\"name\"}]"),
            json!("not json"),
        ] {
            assert!(parse_entities(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn codes_and_primary_names_follow_the_table() {
        assert_eq!(object_type_code("account", 3), 1);
        assert_eq!(object_type_code("contact", 0), 2);
        assert_eq!(object_type_code("lagwatch_probe", 2), 10_002);
        let t: Table =
            serde_json::from_value(json!({"columns": {"accountnumber": "string", "count": "int"}}))
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(primary_name(&t, "accounts"), "accountnumber");
        let t: Table = serde_json::from_value(json!({"columns": {"count": "int"}}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(primary_name(&t, "accounts"), "accountid");
    }
}
