//! The small OData subset the emulated services share: query strings, `$select` and `$filter`.
//!
//! `$filter` follows the Dataverse query document (fact sheet §1.3): `eq ne gt ge lt le`,
//! `and or not`, parentheses, `startswith/endswith/contains(col,'text')`, string literals in
//! single quotes with `''` for a quote, unquoted DateTimeOffset literals
//! (`createdon lt 2026-01-01T00:00:00Z`), numbers, GUIDs, `true`/`false`/`null`. String
//! comparisons are case-insensitive in Dataverse (§1.3); F&O adds wildcard equality
//! (`Field eq '*retail*'`, §4.1). Each service picks its [`Dialect`].

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, Utc};
use percent_encoding::{AsciiSet, utf8_percent_encode};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Decodes `%XX` escapes (and `+` as a space when `plus_is_space`, as in query strings).
///
/// # Errors
/// A bad escape or text that is not UTF-8.
pub fn percent_decode(s: &str, plus_is_space: bool) -> Result<String, String> {
    let hex = |i: usize| s.as_bytes().get(i).is_some_and(u8::is_ascii_hexdigit);
    if s.bytes()
        .enumerate()
        .any(|(i, b)| b == b'%' && !(hex(i + 1) && hex(i + 2)))
    {
        return Err(format!("bad percent escape in \"{s}\""));
    }
    let spaced = if plus_is_space {
        std::borrow::Cow::Owned(s.replace('+', " "))
    } else {
        std::borrow::Cow::Borrowed(s)
    };
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| format!("\"{s}\" does not decode to UTF-8"))
}

/// Decoded `name=value` pairs of a query string, in order.
#[derive(Debug, Default, Clone)]
pub struct QueryString(pub Vec<(String, String)>);

impl QueryString {
    /// Parses a raw query string (`None` when the URI has none).
    ///
    /// # Errors
    /// A bad percent escape.
    pub fn parse(raw: Option<&str>) -> Result<Self, String> {
        let mut pairs = Vec::new();
        for part in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((percent_decode(k, true)?, percent_decode(v, true)?));
        }
        Ok(QueryString(pairs))
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Re-encodes the pairs except those named in `skip`.
    pub fn encode_without(&self, skip: &[&str]) -> String {
        let part = |s: &str| utf8_percent_encode(s, QUERY_PART).to_string();
        self.0
            .iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .map(|(k, v)| format!("{}={}", part(k), part(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// A query component as OData links show it: `$`, `,`, `'`, `(`, `)`, `:` stay readable.
const QUERY_PART: &AsciiSet = &lagwatch::percent::COMPONENT
    .remove(b'$')
    .remove(b',')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b':');

/// Splits a `$select` value into column names.
///
/// # Errors
/// An empty item.
pub fn parse_select(s: &str) -> Result<Vec<String>, String> {
    let cols: Vec<String> = s.split(',').map(|c| c.trim().to_string()).collect();
    if cols.iter().any(String::is_empty) {
        return Err(format!("invalid $select \"{s}\""));
    }
    Ok(cols)
}

/// Parses a `$top` value.
///
/// # Errors
/// Not a non-negative integer.
pub fn parse_top(s: &str) -> Result<usize, String> {
    s.trim()
        .parse::<usize>()
        .map_err(|_| format!("invalid $top \"{s}\": expected a non-negative integer"))
}

/// How a service compares strings.
#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    /// Dataverse: string filters are case-insensitive.
    pub case_insensitive: bool,
    /// F&O: `*` in an `eq`/`ne` string literal is a wildcard.
    pub wildcards: bool,
}

impl Dialect {
    pub const DATAVERSE: Dialect = Dialect {
        case_insensitive: true,
        wildcards: false,
    };
    pub const FNO: Dialect = Dialect {
        case_insensitive: true,
        wildcards: true,
    };
    pub const SEARCH: Dialect = Dialect {
        case_insensitive: false,
        wildcards: false,
    };
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A string function of one column and one literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    StartsWith,
    EndsWith,
    Contains,
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
    DateTime(DateTime<Utc>),
    Guid(Uuid),
}

/// A parsed `$filter`.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Cmp {
        field: String,
        op: Op,
        lit: Lit,
    },
    Func {
        func: Func,
        field: String,
        arg: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    Comma,
    Str(String),
    Word(String),
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                toks.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            '\'' => {
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated string literal".to_string()),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            text.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            text.push(ch);
                            i += 1;
                        }
                    }
                }
                toks.push(Tok::Str(text));
            }
            c if is_word_char(c) => {
                let start = i;
                while i < chars.len() && is_word_char(chars[i]) {
                    i += 1;
                }
                toks.push(Tok::Word(chars[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected character '{other}'")),
        }
    }
    Ok(toks)
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | ':' | '-' | '+' | '/' | '@')
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn expect(&mut self, t: Tok) -> Result<(), String> {
        match self.next() {
            Some(got) if got == t => Ok(()),
            Some(got) => Err(format!("expected {t:?}, found {got:?}")),
            None => Err(format!("expected {t:?} at the end")),
        }
    }

    fn or(&mut self) -> Result<Filter, String> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, String> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, String> {
        if self.keyword("not") {
            self.pos += 1;
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Filter, String> {
        match self.next() {
            Some(Tok::LParen) => {
                let inner = self.or()?;
                self.expect(Tok::RParen)?;
                Ok(inner)
            }
            Some(Tok::Word(w)) => {
                let func = match w.to_ascii_lowercase().as_str() {
                    "startswith" => Some(Func::StartsWith),
                    "endswith" => Some(Func::EndsWith),
                    "contains" => Some(Func::Contains),
                    _ => None,
                };
                if let (Some(func), Some(Tok::LParen)) = (func, self.peek()) {
                    self.pos += 1;
                    let field = match self.next() {
                        Some(Tok::Word(f)) => f,
                        other => return Err(format!("expected a column name, found {other:?}")),
                    };
                    self.expect(Tok::Comma)?;
                    let arg = match self.next() {
                        Some(Tok::Str(s)) => s,
                        other => {
                            return Err(format!("expected a string literal, found {other:?}"));
                        }
                    };
                    self.expect(Tok::RParen)?;
                    return Ok(Filter::Func { func, field, arg });
                }
                let op = match self.next() {
                    Some(Tok::Word(o)) => match o.to_ascii_lowercase().as_str() {
                        "eq" => Op::Eq,
                        "ne" => Op::Ne,
                        "gt" => Op::Gt,
                        "ge" => Op::Ge,
                        "lt" => Op::Lt,
                        "le" => Op::Le,
                        _ => return Err(format!("unknown operator \"{o}\"")),
                    },
                    other => {
                        return Err(format!("expected an operator after {w}, found {other:?}"));
                    }
                };
                let lit = match self.next() {
                    Some(Tok::Str(s)) => Lit::Str(s),
                    Some(Tok::Word(v)) => literal(&v)?,
                    other => return Err(format!("expected a literal, found {other:?}")),
                };
                Ok(Filter::Cmp { field: w, op, lit })
            }
            other => Err(format!("expected a condition, found {other:?}")),
        }
    }
}

fn literal(v: &str) -> Result<Lit, String> {
    match v.to_ascii_lowercase().as_str() {
        "null" => return Ok(Lit::Null),
        "true" => return Ok(Lit::Bool(true)),
        "false" => return Ok(Lit::Bool(false)),
        _ => {}
    }
    if let Ok(i) = v.parse::<i64>() {
        return Ok(Lit::Int(i));
    }
    if let Ok(f) = v.parse::<f64>()
        && f.is_finite()
    {
        return Ok(Lit::Float(f));
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(v) {
        return Ok(Lit::DateTime(dt.with_timezone(&Utc)));
    }
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d")
        && let Some(dt) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(Lit::DateTime(dt.and_utc()));
    }
    if let Ok(g) = Uuid::parse_str(v) {
        return Ok(Lit::Guid(g));
    }
    Err(format!("unrecognised literal \"{v}\""))
}

/// Parses a `$filter` expression.
///
/// # Errors
/// A sentence saying what was expected.
pub fn parse_filter(s: &str) -> Result<Filter, String> {
    let mut p = Parser {
        toks: lex(s)?,
        pos: 0,
    };
    let f = p.or()?;
    if let Some(t) = p.peek() {
        return Err(format!("unexpected {t:?} after the end of the condition"));
    }
    Ok(f)
}

impl Filter {
    /// Every column the filter names.
    pub fn fields(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Filter::And(a, b) | Filter::Or(a, b) => {
                a.collect(out);
                b.collect(out);
            }
            Filter::Not(a) => a.collect(out),
            Filter::Cmp { field, .. } | Filter::Func { field, .. } => out.push(field),
        }
    }

    /// Whether `row` matches.
    pub fn matches(&self, row: &Map<String, Value>, d: Dialect) -> bool {
        match self {
            Filter::And(a, b) => a.matches(row, d) && b.matches(row, d),
            Filter::Or(a, b) => a.matches(row, d) || b.matches(row, d),
            Filter::Not(a) => !a.matches(row, d),
            Filter::Cmp { field, op, lit } => {
                compare(row.get(field).unwrap_or(&Value::Null), *op, lit, d)
            }
            Filter::Func { func, field, arg } => {
                let Some(Value::String(v)) = row.get(field) else {
                    return false;
                };
                let (v, arg) = fold(v, arg, d);
                match func {
                    Func::StartsWith => v.starts_with(&arg),
                    Func::EndsWith => v.ends_with(&arg),
                    Func::Contains => v.contains(&arg),
                }
            }
        }
    }
}

fn fold(a: &str, b: &str, d: Dialect) -> (String, String) {
    if d.case_insensitive {
        (a.to_lowercase(), b.to_lowercase())
    } else {
        (a.to_string(), b.to_string())
    }
}

fn compare(v: &Value, op: Op, lit: &Lit, d: Dialect) -> bool {
    if matches!(lit, Lit::Null) || v.is_null() {
        let both = matches!(lit, Lit::Null) && v.is_null();
        return match op {
            Op::Eq => both,
            Op::Ne => !both,
            _ => false,
        };
    }
    if let (Lit::Str(pattern), Value::String(s), true, Op::Eq | Op::Ne) = (lit, v, d.wildcards, op)
        && pattern.contains('*')
    {
        let (s, pattern) = fold(s, pattern, d);
        return glob(&s, &pattern) == (op == Op::Eq);
    }
    let ord = match (lit, v) {
        (Lit::Str(l), Value::String(s)) => {
            let (s, l) = fold(s, l, d);
            Some(s.cmp(&l))
        }
        (Lit::Int(_) | Lit::Float(_), Value::Number(n)) => {
            let l = match lit {
                Lit::Int(i) => *i as f64,
                Lit::Float(f) => *f,
                _ => 0.0,
            };
            n.as_f64().and_then(|x| x.partial_cmp(&l))
        }
        (Lit::Bool(l), Value::Bool(b)) => Some(b.cmp(l)),
        (Lit::DateTime(l), Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc).cmp(l)),
        (Lit::Guid(l), Value::String(s)) => Uuid::parse_str(s).ok().map(|g| g.cmp(l)),
        _ => None,
    };
    match ord {
        None => op == Op::Ne,
        Some(o) => match op {
            Op::Eq => o == Ordering::Equal,
            Op::Ne => o != Ordering::Equal,
            Op::Gt => o == Ordering::Greater,
            Op::Ge => o != Ordering::Less,
            Op::Lt => o == Ordering::Less,
            Op::Le => o != Ordering::Greater,
        },
    }
}

/// `*`-only glob matching.
fn glob(s: &str, pattern: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let Some((first, rest)) = parts.split_first() else {
        return s.is_empty();
    };
    let Some(mut remaining) = s.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return remaining.is_empty();
    };
    for m in middle {
        match remaining.find(m) {
            Some(i) => remaining = &remaining[i + m.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn filters_of_the_documents_parse_and_match() {
        let r = row(json!({
            "accountnumber": "SENT-01", "name": "O'Bryan", "createdon": "2025-12-31T23:59:59Z",
            "customertypecode": 3, "description": null
        }));
        let d = Dialect::DATAVERSE;
        for (f, want) in [
            ("accountnumber eq 'SENT-01'", true),
            ("accountnumber eq 'sent-01'", true),
            ("name eq 'O''Bryan'", true),
            ("startswith(accountnumber,'SENT-')", true),
            (
                "startswith(accountnumber,'SENT-') and createdon lt 2026-01-01T00:00:00Z",
                true,
            ),
            ("createdon lt 2025-01-01T00:00:00Z", false),
            ("customertypecode eq 3 and not (description ne null)", true),
            ("customertypecode gt 3 or contains(name,'bry')", true),
        ] {
            let parsed = parse_filter(f).unwrap_or_else(|e| panic!("{f}: {e}"));
            assert_eq!(parsed.matches(&r, d), want, "{f}");
        }
        assert!(
            parse_filter("CustomerAccount eq '*NT-0*'")
                .unwrap()
                .matches(&row(json!({"CustomerAccount": "SENT-01"})), Dialect::FNO)
        );
        for bad in [
            "name eq",
            "name foo 'x'",
            "(name eq 'x'",
            "name eq 'x' extra",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_strings_decode() {
        let q = QueryString::parse(Some(
            "$select=a,b&$filter=name%20eq%20'x+y'&cross-company=true",
        ))
        .unwrap();
        assert_eq!(q.get("$filter"), Some("name eq 'x y'"));
        assert_eq!(q.get("cross-company"), Some("true"));
        assert!(QueryString::parse(Some("a=%zz")).is_err());
    }
}
