//! What to reconcile on a path (`paths[i].reconcile[j]` in YAML), and how a side's rows become
//! comparable [`Record`]s.
//!
//! ```yaml
//! paths:
//!   - source: crm
//!     target: fno
//!     reconcile:
//!       - name: customers              # the `table` label; default the source table
//!         interval: 15m                # between runs (default 1h)
//!         changed_within: 24h          # scope: source rows changed in the last 24 h
//!                                      # (default: the whole table)
//!         settle_floor: 1m             # settle window = max(floor, 2 × the path's p99 lag)
//!         source:
//!           table: accounts            # default: the table the system probes
//!           key: [accountnumber]       # one or more columns (compound keys)
//!           changed: modifiedon        # when a row last changed (required on the source)
//!           compare: [name]            # hashed after normalisation
//!           normalize: [trim, lowercase]
//!         target:
//!           key: [CustomerAccount]     # same number of columns as the source's key
//!           compare: [OrganizationName]
//!           normalize: [trim, lowercase]
//! ```
//!
//! `version:` (one column per side, both or neither) says which copy is newer: values compare
//! as whole numbers (`versionnumber`) or as instants (`modifiedon`, `SinkModifiedOn`).

use serde::{Deserialize, Deserializer};

use super::diff::Record;
use super::inventory::{InventoryQuery, InventoryRow};
use crate::config::{Dur, Issue};

/// Defaults of a reconciliation entry.
pub mod default {
    use crate::config::Dur;
    pub const INTERVAL: Dur = Dur::secs(3600);
    pub const SETTLE_FLOOR: Dur = Dur::secs(60);
    pub const PAGE_SIZE: u32 = 5000;
    /// Discrepant keys remembered per entry (with their versions, for the API and persistence).
    pub const MAX_KEYS: usize = 100_000;
    /// Records held in memory per side before sorting spills to disk (about 20 MB).
    pub const SORT_CHUNK: usize = 100_000;
}

/// One normalisation step applied to key and compared values of a side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    /// Leading and trailing white space removed.
    Trim,
    /// Lower case (Dataverse compares keys and text case-insensitively).
    Lowercase,
    /// Runs of white space become one space.
    CollapseSpaces,
    /// An empty value counts as null (CSV cannot tell them apart).
    EmptyIsNull,
}

/// One side of a reconciliation entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSide {
    #[serde(default)]
    table: Option<String>,
    #[serde(deserialize_with = "one_or_many")]
    key: Vec<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    changed: Option<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    compare: Vec<String>,
    #[serde(default)]
    normalize: Vec<Normalize>,
}

/// A reconciliation entry as written under a path.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReconcile {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    interval: Option<Dur>,
    #[serde(default)]
    changed_within: Option<Dur>,
    #[serde(default)]
    settle_floor: Option<Dur>,
    #[serde(default)]
    page_size: Option<u32>,
    #[serde(default)]
    max_keys: Option<usize>,
    source: RawSide,
    target: RawSide,
}

/// A string or a list of strings, as a list.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    match OneOrMany::deserialize(d) {
        Ok(OneOrMany::One(s)) => Ok(vec![s]),
        Ok(OneOrMany::Many(v)) => Ok(v),
        Err(_) => Err(serde::de::Error::custom(
            "expected a column name or a list of column names",
        )),
    }
}

/// One validated side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    pub table: Option<String>,
    pub key: Vec<String>,
    pub version: Option<String>,
    pub changed: Option<String>,
    pub compare: Vec<String>,
    pub normalize: Vec<Normalize>,
}

/// One validated reconciliation entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileSpec {
    /// The `table` label and the name in the API and CLI.
    pub name: String,
    pub interval: Dur,
    /// Only source rows changed within this long before the run (the scope); `None`: all.
    pub changed_within: Option<Dur>,
    pub settle_floor: Dur,
    pub page_size: u32,
    pub max_keys: usize,
    pub source: Side,
    pub target: Side,
}

fn valid_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

impl RawSide {
    fn validate(self, key: &str) -> Result<Side, Issue> {
        if self.key.is_empty() {
            return Err(Issue::new(
                format!("{key}.key"),
                "name at least one key column",
            ));
        }
        let names = self
            .key
            .iter()
            .chain(&self.compare)
            .chain(&self.version)
            .chain(&self.changed)
            .chain(&self.table);
        for n in names {
            if !valid_label(n) {
                return Err(Issue::new(
                    key,
                    format!("\"{n}\" is not a column or table name (letters, digits, _, -, .)"),
                ));
            }
        }
        Ok(Side {
            table: self.table,
            key: self.key,
            version: self.version,
            changed: self.changed,
            compare: self.compare,
            normalize: self.normalize,
        })
    }
}

impl RawReconcile {
    /// Validates an entry at `key` (`paths[i].reconcile[j]`); `default_name` names it when
    /// `name:` is not given.
    ///
    /// # Errors
    /// An [`Issue`] naming the key and why.
    pub fn validate(self, key: &str, default_name: &str) -> Result<ReconcileSpec, Issue> {
        let source = self.source.validate(&format!("{key}.source"))?;
        let target = self.target.validate(&format!("{key}.target"))?;
        if source.key.len() != target.key.len() {
            return Err(Issue::new(
                format!("{key}.target.key"),
                format!(
                    "{} key column(s) here but {} on the source: both sides need the same number, in the same order",
                    target.key.len(),
                    source.key.len()
                ),
            ));
        }
        if source.compare.len() != target.compare.len() {
            return Err(Issue::new(
                format!("{key}.target.compare"),
                format!(
                    "{} compared column(s) here but {} on the source: they are compared pairwise, in order",
                    target.compare.len(),
                    source.compare.len()
                ),
            ));
        }
        match (&source.version, &target.version) {
            (Some(_), None) => {
                return Err(Issue::new(
                    format!("{key}.target.version"),
                    "the source has a version column, so the target needs the one that holds the same version",
                ));
            }
            (None, Some(_)) => {
                return Err(Issue::new(
                    format!("{key}.source.version"),
                    "the target has a version column, so the source needs one too",
                ));
            }
            _ => {}
        }
        if source.changed.is_none() {
            return Err(Issue::new(
                format!("{key}.source.changed"),
                "required: the settle window needs to know when each source row last changed (Dataverse: modifiedon)",
            ));
        }
        let name = self
            .name
            .or_else(|| source.table.clone())
            .unwrap_or_else(|| default_name.to_string());
        if !valid_label(&name) {
            return Err(Issue::new(
                format!("{key}.name"),
                format!("\"{name}\" is not a valid name (letters, digits, _, -, .; at most 64)"),
            ));
        }
        let interval = self.interval.unwrap_or(default::INTERVAL);
        if interval.get() < std::time::Duration::from_secs(1) {
            return Err(Issue::new(
                format!("{key}.interval"),
                "at least 1s between runs",
            ));
        }
        let page_size = self.page_size.unwrap_or(default::PAGE_SIZE);
        if !(1..=100_000).contains(&page_size) {
            return Err(Issue::new(
                format!("{key}.page_size"),
                "rows per page between 1 and 100000",
            ));
        }
        let max_keys = self.max_keys.unwrap_or(default::MAX_KEYS);
        if !(1..=10_000_000).contains(&max_keys) {
            return Err(Issue::new(
                format!("{key}.max_keys"),
                "between 1 and 10000000 remembered keys",
            ));
        }
        Ok(ReconcileSpec {
            name,
            interval,
            changed_within: self.changed_within,
            settle_floor: self.settle_floor.unwrap_or(default::SETTLE_FLOOR),
            page_size,
            max_keys,
            source,
            target,
        })
    }
}

/// Separates the parts of a compound key (a control character no key column holds).
pub const KEY_SEPARATOR: char = '\u{1f}';

/// Why a row could not become a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error("key column {column} is empty")]
    NullKey { column: String },
    #[error("column {column} holds \"{value}\", which is not a date and time")]
    BadTime { column: String, value: String },
    #[error("the row has {got} values for {want} columns")]
    Width { got: usize, want: usize },
}

impl Side {
    /// The columns to ask the inventory for: key, then version, changed, compared.
    pub fn columns(&self) -> Vec<String> {
        let mut c = self.key.clone();
        c.extend(self.version.iter().cloned());
        c.extend(self.changed.iter().cloned());
        c.extend(self.compare.iter().cloned());
        c
    }

    /// The inventory query of this side.
    pub fn query(
        &self,
        page_size: u32,
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> InventoryQuery {
        InventoryQuery {
            table: self.table.clone(),
            columns: self.columns(),
            changed_since: match (since, &self.changed) {
                (Some(t), Some(c)) => Some((c.clone(), t)),
                _ => None,
            },
            page_size,
        }
    }

    fn normalize(&self, v: &Option<String>) -> Option<String> {
        let mut s = v.clone()?;
        for n in &self.normalize {
            s = match n {
                Normalize::Trim => s.trim().to_string(),
                Normalize::Lowercase => s.to_lowercase(),
                Normalize::CollapseSpaces => s.split_whitespace().collect::<Vec<_>>().join(" "),
                Normalize::EmptyIsNull => {
                    if s.is_empty() {
                        return None;
                    }
                    s
                }
            };
        }
        Some(s)
    }

    /// The comparable record of an inventory row.
    ///
    /// # Errors
    /// [`RowError`] for a null key part, an unreadable `changed` value or a short row.
    pub fn record(&self, row: &InventoryRow) -> Result<Record, RowError> {
        let want = self.key.len()
            + usize::from(self.version.is_some())
            + usize::from(self.changed.is_some())
            + self.compare.len();
        if row.values.len() != want {
            return Err(RowError::Width {
                got: row.values.len(),
                want,
            });
        }
        let mut values = row.values.iter();
        let mut key = String::new();
        for (i, column) in self.key.iter().enumerate() {
            let v = values.next().and_then(|v| self.normalize(v));
            let Some(v) = v else {
                return Err(RowError::NullKey {
                    column: column.clone(),
                });
            };
            if i > 0 {
                key.push(KEY_SEPARATOR);
            }
            key.push_str(&v);
        }
        let version = if self.version.is_some() {
            values
                .next()
                .cloned()
                .flatten()
                .map(|v| canonical_version(&v))
        } else {
            None
        };
        let changed = match &self.changed {
            Some(column) => match values.next().cloned().flatten() {
                None => None,
                Some(v) if v.trim().is_empty() => None,
                Some(v) => Some(crate::lake::synapse::parse_datetime(&v).ok_or_else(|| {
                    RowError::BadTime {
                        column: column.clone(),
                        value: v.chars().take(64).collect(),
                    }
                })?),
            },
            None => None,
        };
        let hash = if self.compare.is_empty() {
            None
        } else {
            let mut h = Fnv::new();
            for v in values {
                match self.normalize(v) {
                    Some(s) => {
                        h.write(&[1]);
                        h.write(s.as_bytes());
                    }
                    None => h.write(&[0]),
                }
                h.write(&[0x1f]);
            }
            Some(h.0)
        };
        Ok(Record {
            key,
            version,
            changed,
            hash,
        })
    }
}

/// A version value in a form [`compare_versions`](super::diff::compare_versions) orders: whole
/// numbers as they are, any date-time format the exports use as RFC 3339 UTC, else unchanged.
fn canonical_version(v: &str) -> String {
    let t = v.trim();
    if t.parse::<i128>().is_ok() {
        return t.to_string();
    }
    match crate::lake::synapse::parse_datetime(t) {
        Some(d) => d.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        None => t.to_string(),
    }
}

/// A key as people read it: compound parts joined with `|`.
pub fn display_key(key: &str) -> String {
    key.replace(KEY_SEPARATOR, "|")
}

/// FNV-1a, 64 bits: stable across versions and platforms (the hash is persisted nowhere, but
/// both sides must hash alike within a run).
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(yaml: &str) -> RawReconcile {
        let v: serde_json::Value = serde_saphyr::from_str(yaml).expect("yaml");
        crate::config::decode("r", v).expect("decode")
    }

    fn row(values: &[Option<&str>]) -> InventoryRow {
        InventoryRow {
            values: values.iter().map(|v| v.map(str::to_string)).collect(),
            deleted: false,
        }
    }

    #[test]
    fn a_full_entry_validates_with_defaults() {
        let s = raw("source: {table: accounts, key: name, changed: modifiedon, version: versionnumber}\ntarget: {key: [OrganizationName], version: versionnumber}")
            .validate("paths[0].reconcile[0]", "fno")
            .expect("valid");
        assert_eq!(s.name, "accounts");
        assert_eq!(s.interval, default::INTERVAL);
        assert_eq!(
            s.source.columns(),
            vec!["name", "versionnumber", "modifiedon"]
        );
        assert_eq!(
            s.target.columns(),
            vec!["OrganizationName", "versionnumber"]
        );
    }

    #[test]
    fn invalid_entries_name_the_key() {
        let cases = [
            (
                "source: {key: [a, b], changed: c}\ntarget: {key: a}",
                "r.target.key",
            ),
            (
                "source: {key: a, changed: c, compare: [x]}\ntarget: {key: a}",
                "r.target.compare",
            ),
            (
                "source: {key: a, changed: c, version: v}\ntarget: {key: a}",
                "r.target.version",
            ),
            ("source: {key: a}\ntarget: {key: a}", "r.source.changed"),
            (
                "source: {key: [], changed: c}\ntarget: {key: a}",
                "r.source.key",
            ),
            (
                "source: {key: a, changed: c}\ntarget: {key: a}\ninterval: 0s",
                "r.interval",
            ),
            (
                "source: {key: \"a b\", changed: c}\ntarget: {key: a}",
                "r.source",
            ),
            (
                "source: {key: a, changed: c}\ntarget: {key: a}\npage_size: 0",
                "r.page_size",
            ),
        ];
        for (yaml, key) in cases {
            let e = raw(yaml).validate("r", "x").expect_err(yaml);
            assert_eq!(e.key, key, "{yaml}: {}", e.reason);
        }
    }

    #[test]
    fn records_normalise_keys_versions_times_and_hashes() {
        let side = Side {
            table: None,
            key: vec!["dataAreaId".into(), "CustomerAccount".into()],
            version: Some("SinkModifiedOn".into()),
            changed: Some("SinkModifiedOn".into()),
            compare: vec!["Name".into()],
            normalize: vec![Normalize::Trim, Normalize::Lowercase],
        };
        let a = side
            .record(&row(&[
                Some(" USMF"),
                Some("C-1 "),
                Some("11/26/2026 10:15:07 AM"),
                Some("2026-11-26T10:15:07Z"),
                Some(" Contoso "),
            ]))
            .expect("record");
        assert_eq!(a.key, format!("usmf{KEY_SEPARATOR}c-1"));
        assert_eq!(display_key(&a.key), "usmf|c-1");
        assert_eq!(a.version.as_deref(), Some("2026-11-26T10:15:07.000000000Z"));
        assert_eq!(a.changed.map(|c| c.timestamp()), Some(1_795_688_107));
        let b = side
            .record(&row(&[
                Some("usmf"),
                Some("c-1"),
                Some("1"),
                None,
                Some("contoso"),
            ]))
            .expect("record");
        assert_eq!(a.hash, b.hash, "normalised content hashes alike");
        let c = side
            .record(&row(&[
                Some("usmf"),
                Some("c-1"),
                None,
                None,
                Some("fabrikam"),
            ]))
            .expect("record");
        assert_ne!(a.hash, c.hash);
        let null = side
            .record(&row(&[Some("usmf"), Some("c-1"), None, None, None]))
            .expect("record");
        let empty = side
            .record(&row(&[Some("usmf"), Some("c-1"), None, None, Some("")]))
            .expect("record");
        assert_ne!(
            null.hash, empty.hash,
            "null and empty differ unless empty_is_null"
        );
        assert_eq!(
            side.record(&row(&[None, Some("c"), None, None, None])),
            Err(RowError::NullKey {
                column: "dataAreaId".into()
            })
        );
        assert!(matches!(
            side.record(&row(&[Some("a"), Some("c"), None, Some("yesterday"), None])),
            Err(RowError::BadTime { .. })
        ));
        assert!(matches!(
            side.record(&row(&[Some("a")])),
            Err(RowError::Width { got: 1, want: 5 })
        ));
    }
}
