//! The diff: a pure merge of two key-sorted streams of records into per-key comparisons.
//!
//! No I/O, no clock, no state: everything that reads systems, sorts, or decides whether a
//! difference is drift or lag lives elsewhere, so this part can be tested exhaustively.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};

/// One row of one side, reduced to what comparison needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The normalised key (compound keys joined, see [`crate::reconcile::spec`]).
    pub key: String,
    /// The version column's value, if configured and not null.
    pub version: Option<String>,
    /// When the row last changed on its own side, if configured and parseable.
    pub changed: Option<DateTime<Utc>>,
    /// Hash of the compared columns after normalisation, if any are configured.
    pub hash: Option<u64>,
}

/// What one key is, comparing the two sides.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// In the source, not in the replica.
    Missing,
    /// In the replica, gone from (or never in) the source.
    Extra,
    /// The replica holds an older version.
    Stale,
    /// Same (or unorderable) version, different content.
    Mismatched,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Missing, Kind::Extra, Kind::Stale, Kind::Mismatched];

    /// Label value (the exporter's list, `metrics::reconcile::DISCREPANCY_KINDS`).
    pub fn label(self) -> &'static str {
        crate::metrics::reconcile::DISCREPANCY_KINDS[self as usize]
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.label() == s)
    }
}

/// The comparison of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    /// Both sides agree.
    Equal { source: Record, replica: Record },
    /// The replica holds a newer version than the source snapshot: the source changed while
    /// it was being read, or the replica is ahead. Not drift.
    ReplicaNewer { source: Record, replica: Record },
    /// A difference of `kind`; a side is `None` when the key is not there.
    Differ {
        kind: Kind,
        source: Option<Record>,
        replica: Option<Record>,
    },
}

impl Comparison {
    pub fn key(&self) -> &str {
        match self {
            Comparison::Equal { source, .. } | Comparison::ReplicaNewer { source, .. } => {
                &source.key
            }
            Comparison::Differ {
                source, replica, ..
            } => source
                .as_ref()
                .or(replica.as_ref())
                .map_or("", |r| r.key.as_str()),
        }
    }
}

/// Orders two version values: as whole numbers when both are, as instants when both are
/// RFC 3339 timestamps; `None` when they cannot be ordered (different or unknown types).
pub fn compare_versions(a: &str, b: &str) -> Option<Ordering> {
    let (a, b) = (a.trim(), b.trim());
    if let (Ok(x), Ok(y)) = (a.parse::<i128>(), b.parse::<i128>()) {
        return Some(x.cmp(&y));
    }
    if let (Ok(x), Ok(y)) = (
        DateTime::parse_from_rfc3339(a),
        DateTime::parse_from_rfc3339(b),
    ) {
        return Some(x.cmp(&y));
    }
    (a == b).then_some(Ordering::Equal)
}

/// Compares one key present on both sides.
pub fn compare(source: Record, replica: Record) -> Comparison {
    let by_version = match (&source.version, &replica.version) {
        (Some(s), Some(r)) => Some(compare_versions(s, r)),
        (None, None) => None,
        // One side has no version value: it cannot be ordered.
        _ => Some(None),
    };
    let content_differs = matches!((source.hash, replica.hash), (Some(a), Some(b)) if a != b);
    match by_version {
        Some(Some(Ordering::Greater)) => Comparison::Differ {
            kind: Kind::Stale,
            source: Some(source),
            replica: Some(replica),
        },
        Some(Some(Ordering::Less)) => Comparison::ReplicaNewer { source, replica },
        Some(None) => Comparison::Differ {
            kind: Kind::Mismatched,
            source: Some(source),
            replica: Some(replica),
        },
        Some(Some(Ordering::Equal)) | None if content_differs => Comparison::Differ {
            kind: Kind::Mismatched,
            source: Some(source),
            replica: Some(replica),
        },
        Some(Some(Ordering::Equal)) | None => Comparison::Equal { source, replica },
    }
}

/// Merges two streams sorted by key (strictly increasing: one record per key) into one
/// comparison per key, in key order. Lazily: memory is one record per side.
pub fn diff<S, R>(source: S, replica: R) -> Diff<S::IntoIter, R::IntoIter>
where
    S: IntoIterator<Item = Record>,
    R: IntoIterator<Item = Record>,
{
    let mut source = source.into_iter();
    let mut replica = replica.into_iter();
    Diff {
        s: source.next(),
        r: replica.next(),
        source,
        replica,
    }
}

/// The iterator [`diff`] returns.
pub struct Diff<S, R> {
    source: S,
    replica: R,
    s: Option<Record>,
    r: Option<Record>,
}

impl<S: Iterator<Item = Record>, R: Iterator<Item = Record>> Iterator for Diff<S, R> {
    type Item = Comparison;

    fn next(&mut self) -> Option<Comparison> {
        let order = match (&self.s, &self.r) {
            (None, None) => return None,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(s), Some(r)) => s.key.cmp(&r.key),
        };
        match order {
            Ordering::Less => {
                let s = std::mem::replace(&mut self.s, self.source.next());
                Some(Comparison::Differ {
                    kind: Kind::Missing,
                    source: s,
                    replica: None,
                })
            }
            Ordering::Greater => {
                let r = std::mem::replace(&mut self.r, self.replica.next());
                Some(Comparison::Differ {
                    kind: Kind::Extra,
                    source: None,
                    replica: r,
                })
            }
            Ordering::Equal => {
                let s = std::mem::replace(&mut self.s, self.source.next());
                let r = std::mem::replace(&mut self.r, self.replica.next());
                match (s, r) {
                    (Some(s), Some(r)) => Some(compare(s, r)),
                    _ => None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn each_kind_has_its_own_label_and_parses_back() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.label()), Some(k));
        }
        let labels: std::collections::BTreeSet<_> = Kind::ALL.iter().map(|k| k.label()).collect();
        assert_eq!(labels.len(), Kind::ALL.len());
        assert_eq!(Kind::Mismatched.label(), "mismatched");
    }

    fn rec(key: &str, version: Option<&str>, hash: Option<u64>) -> Record {
        Record {
            key: key.to_string(),
            version: version.map(str::to_string),
            changed: None,
            hash,
        }
    }

    fn kinds(c: &[Comparison]) -> Vec<(String, &'static str)> {
        c.iter()
            .map(|c| {
                let what = match c {
                    Comparison::Equal { .. } => "equal",
                    Comparison::ReplicaNewer { .. } => "newer",
                    Comparison::Differ { kind, .. } => kind.label(),
                };
                (c.key().to_string(), what)
            })
            .collect()
    }

    #[test]
    fn versions_order_as_numbers_or_instants_only() {
        assert_eq!(compare_versions("10", "9"), Some(Ordering::Greater));
        assert_eq!(compare_versions(" 9 ", "9"), Some(Ordering::Equal));
        assert_eq!(compare_versions("-1", "2"), Some(Ordering::Less));
        assert_eq!(
            compare_versions("2026-01-01T00:00:01Z", "2026-01-01T01:00:00+01:00"),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare_versions("2026-01-01T00:00:00.5Z", "2026-01-01T00:00:00.500Z"),
            Some(Ordering::Equal)
        );
        // Text is not ordered: "b" is not newer than "a".
        assert_eq!(compare_versions("b", "a"), None);
        assert_eq!(compare_versions("a", "a"), Some(Ordering::Equal));
        // Mixed types cannot be ordered.
        assert_eq!(compare_versions("5", "2026-01-01T00:00:00Z"), None);
    }

    #[test]
    fn every_case_of_one_key_on_both_sides() {
        type Case = (
            Option<&'static str>,
            Option<&'static str>,
            Option<u64>,
            Option<u64>,
            &'static str,
        );
        let cases: &[Case] = &[
            (Some("2"), Some("2"), None, None, "equal"),
            (Some("2"), Some("2"), Some(1), Some(1), "equal"),
            (Some("2"), Some("2"), Some(1), Some(2), "mismatched"),
            (Some("3"), Some("2"), None, None, "stale"),
            (Some("3"), Some("2"), Some(1), Some(1), "stale"),
            (Some("2"), Some("3"), None, None, "newer"),
            (Some("2"), Some("3"), Some(1), Some(2), "newer"),
            (Some("x"), Some("y"), None, None, "mismatched"),
            (Some("2"), None, None, None, "mismatched"),
            (None, Some("2"), None, None, "mismatched"),
            (None, None, Some(1), Some(1), "equal"),
            (None, None, Some(1), Some(2), "mismatched"),
            (None, None, None, None, "equal"),
            // A hash on one side only compares nothing.
            (None, None, Some(1), None, "equal"),
        ];
        for (sv, rv, sh, rh, want) in cases {
            let got = compare(rec("k", *sv, *sh), rec("k", *rv, *rh));
            assert_eq!(
                kinds(&[got])[0].1,
                *want,
                "source {sv:?}/{sh:?} replica {rv:?}/{rh:?}"
            );
        }
    }

    #[test]
    fn merge_of_interleaved_streams() {
        let s = vec![
            rec("a", Some("1"), None),
            rec("b", Some("2"), None),
            rec("d", Some("5"), None),
            rec("f", Some("1"), None),
        ];
        let r = vec![
            rec("b", Some("1"), None),
            rec("c", Some("1"), None),
            rec("d", Some("5"), None),
            rec("g", Some("1"), None),
        ];
        let got: Vec<_> = diff(s, r).collect();
        assert_eq!(
            kinds(&got),
            vec![
                ("a".into(), "missing"),
                ("b".into(), "stale"),
                ("c".into(), "extra"),
                ("d".into(), "equal"),
                ("f".into(), "missing"),
                ("g".into(), "extra"),
            ]
        );
    }

    #[test]
    fn empty_sides() {
        assert_eq!(diff(Vec::new(), Vec::new()).count(), 0);
        let only_source: Vec<_> = diff(vec![rec("a", None, None)], Vec::new()).collect();
        assert_eq!(kinds(&only_source), vec![("a".into(), "missing")]);
        let only_replica: Vec<_> = diff(Vec::new(), vec![rec("a", None, None)]).collect();
        assert_eq!(kinds(&only_replica), vec![("a".into(), "extra")]);
    }

    /// A side as a map key → (version, hash), the model the property tests check against.
    type Side = BTreeMap<String, (Option<u8>, Option<u8>)>;

    fn side() -> impl Strategy<Value = Side> {
        // Few distinct keys, so the two sides overlap often.
        proptest::collection::btree_map(
            "[a-f]{1,2}",
            (proptest::option::of(0u8..4), proptest::option::of(0u8..3)),
            0..30,
        )
    }

    fn records(side: &Side) -> Vec<Record> {
        side.iter()
            .map(|(k, (v, h))| Record {
                key: k.clone(),
                version: v.map(|v| v.to_string()),
                changed: None,
                hash: h.map(u64::from),
            })
            .collect()
    }

    proptest! {
        #[test]
        fn diff_agrees_with_the_set_model(s in side(), r in side()) {
            let got: Vec<Comparison> = diff(records(&s), records(&r)).collect();
            // One comparison per key of the union, in order.
            let union: Vec<&String> = s.keys().chain(r.keys()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
            let got_keys: Vec<&str> = got.iter().map(Comparison::key).collect();
            prop_assert_eq!(got_keys, union.iter().map(|k| k.as_str()).collect::<Vec<_>>());
            for c in &got {
                let k = c.key();
                match (s.get(k), r.get(k)) {
                    (Some(_), None) => {
                        let ok = matches!(c, Comparison::Differ { kind: Kind::Missing, replica: None, .. });
                        prop_assert!(ok);
                    }
                    (None, Some(_)) => {
                        let ok = matches!(c, Comparison::Differ { kind: Kind::Extra, source: None, .. });
                        prop_assert!(ok);
                    }
                    (Some((sv, sh)), Some((rv, rh))) => {
                        let want = match (sv, rv) {
                            (Some(a), Some(b)) if a > b => "stale",
                            (Some(a), Some(b)) if a < b => "newer",
                            (Some(_), None) | (None, Some(_)) => "mismatched",
                            _ => match (sh, rh) {
                                (Some(a), Some(b)) if a != b => "mismatched",
                                _ => "equal",
                            },
                        };
                        prop_assert_eq!(kinds(std::slice::from_ref(c))[0].1, want);
                    }
                    (None, None) => prop_assert!(false, "key {} from nowhere", k),
                }
            }
        }

        #[test]
        fn swapping_sides_swaps_missing_and_extra(s in side(), r in side()) {
            let there: Vec<_> = kinds(&diff(records(&s), records(&r)).collect::<Vec<_>>());
            let back: Vec<_> = kinds(&diff(records(&r), records(&s)).collect::<Vec<_>>());
            prop_assert_eq!(there.len(), back.len());
            for ((k1, a), (k2, b)) in there.iter().zip(back.iter()) {
                prop_assert_eq!(k1, k2);
                let mirrored = match *a {
                    "missing" => "extra",
                    "extra" => "missing",
                    "stale" => "newer",
                    "newer" => "stale",
                    other => other,
                };
                prop_assert_eq!(mirrored, *b);
            }
        }

        #[test]
        fn a_side_against_itself_is_all_equal(s in side()) {
            // Versions equal to themselves and hashes equal: nothing differs (a version on
            // one side only is impossible here).
            let all_equal = diff(records(&s), records(&s)).all(|c| matches!(c, Comparison::Equal { .. }));
            prop_assert!(all_equal);
        }
    }
}
