//! Reading what the `lagwatch` binary logs on stderr (`--log.format=logfmt|json`) as records:
//! one map of keys to text values per line.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// One log line: key to value (JSON numbers and booleans as their text).
pub type Record = BTreeMap<String, String>;

/// The `key=value` pairs of a logfmt line, in order: a value is bare (no space, `=` or `"`)
/// or in double quotes with `\"`, `\\`, `\n`, `\r`, `\t` and `\uXXXX` escapes; pairs are
/// separated by one space. Anything else is an error naming where the line broke.
pub fn logfmt(line: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut rest = line;
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or_else(|| format!("a key without '=' at {rest:?}"))?;
        let key = &rest[..eq];
        if key.is_empty() || key.contains([' ', '"']) {
            return Err(format!("bad key {key:?} in {line:?}"));
        }
        rest = &rest[eq + 1..];
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                let (i, c) = chars
                    .next()
                    .ok_or_else(|| format!("unterminated value of {key} in {line:?}"))?;
                match c {
                    '"' => break i + 1,
                    '\\' => match chars.next().map(|(_, c)| c) {
                        Some('"') => out.push('"'),
                        Some('\\') => out.push('\\'),
                        Some('n') => out.push('\n'),
                        Some('r') => out.push('\r'),
                        Some('t') => out.push('\t'),
                        Some('u') => {
                            let hex: String = (0..4)
                                .filter_map(|_| chars.next())
                                .map(|(_, c)| c)
                                .collect();
                            let code = u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or_else(|| format!("bad \\u escape in {line:?}"))?;
                            out.push(code);
                        }
                        other => return Err(format!("bad escape {other:?} in {line:?}")),
                    },
                    c => out.push(c),
                }
            };
            value = out;
            rest = &quoted[end..];
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            value = rest[..end].to_string();
            if value.is_empty() || value.contains(['=', '"']) {
                return Err(format!("bad bare value of {key} in {line:?}"));
            }
            rest = &rest[end..];
        }
        pairs.push((key.to_string(), value));
        if let Some(next) = rest.strip_prefix(' ') {
            if next.is_empty() || next.starts_with(' ') {
                return Err(format!("stray space in {line:?}"));
            }
            rest = next;
        } else if !rest.is_empty() {
            return Err(format!("no space after {key} in {line:?}"));
        }
    }
    Ok(pairs)
}

/// One line of either format as a record; panics naming the line when it is neither.
pub fn record(line: &str) -> Record {
    if line.starts_with('{') {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let object = v
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {line}"));
        object
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect()
    } else {
        let pairs = logfmt(line).unwrap_or_else(|e| panic!("not logfmt: {e}"));
        let keys: Vec<&str> = pairs.iter().take(4).map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["ts", "level", "module", "msg"], "{line}");
        pairs.into_iter().collect()
    }
}

/// Every complete line of a log file as a record (each must parse).
pub fn records(file: &Path) -> Vec<Record> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete.lines().map(record).collect()
}

/// Waits up to `limit` for a line of `file` that `wanted` accepts; panics naming `what`
/// otherwise.
pub fn wait_for(
    file: &Path,
    what: &str,
    limit: Duration,
    wanted: impl Fn(&Record) -> bool,
) -> Record {
    let mut found = None;
    super::wait_until(what, limit, || {
        found = records(file).into_iter().find(|r| wanted(r));
        found.is_some()
    });
    found.expect("found")
}

/// The value of `key` in `r`, or "".
pub fn get<'a>(r: &'a Record, key: &str) -> &'a str {
    r.get(key).map_or("", String::as_str)
}
