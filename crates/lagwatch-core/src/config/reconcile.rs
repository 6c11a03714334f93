//! What to reconcile on a path (`paths[i].reconcile[j]` in YAML), as configured; how a side's
//! rows become comparable records is `reconcile::spec`.
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

use super::{Dur, Issue};

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
