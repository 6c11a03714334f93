//! How a side's rows become comparable [`Record`]s: the key joined, the version made
//! comparable, the compared columns normalised and hashed. The entries themselves are
//! configuration (`config::reconcile`).

use super::diff::Record;
use crate::config::reconcile::{Normalize, Side};
use crate::connector::inventory::{InventoryQuery, InventoryRow};

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
    use crate::config::reconcile::*;

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
