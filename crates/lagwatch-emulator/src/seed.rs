//! Business rows of a Dataverse table that exist before any write, and the exact drift of
//! each replica's copy of them, for reconciliation tests and benchmarks.
//!
//! Why generated, not stored: a benchmark reconciles a million rows per side; every row here
//! is a pure function of its index, so the emulator holds none of them and serves any page in
//! time proportional to the page. Drift is exact and deterministic, so a test can assert the
//! count of every kind, and `/_truth/_drift/{replica}` can list the keys.
//!
//! ```yaml
//! dataverse:
//!   crm:
//!     tables:
//!       accounts:
//!         columns: { name: string, customertypecode: int, description: string }
//!         seed:
//!           rows: 1000                        # rows 0..999
//!           values: { customertypecode: 3 }   # fixed values; other columns are generated
//!           deleted: 5                        # deleted in the source since (their deletes replicate,
//!                                             # unless a replica's drift.extra keeps them)
//!           in_flight: 4                      # updated in the source just now: never arrived yet
//! replicas:
//!   crm2:
//!     drift: { missing: 3, stale: 2, extra: 1, changed: 2 }
//! ```
//!
//! Row `i` of a seeded table (`N = rows`):
//! - id: a UUID derived from the environment, the set and `i`;
//! - a `string` column `c` is `"{c}-{i:08}"`, an `int` column is `i`, a `bool` column `i` odd,
//!   unless `values` fixes it;
//! - `createdon = T0 − (N − i) s` where `T0` is one hour before the emulator started, so every
//!   seeded row is old enough to be settled; `modifiedon = createdon + 1 s`;
//! - `versionnumber = 1_000_000 + 2 i + 1` (the version after one update).
//!
//! Drift picks distinct rows by position `p` in a fixed permutation of `0..N` (`p · P mod N`
//! for a prime `P` coprime to `N`): the source's `deleted` rows first, then its `in_flight`
//! rows, then each replica's `missing`, `stale` and `changed` rows; a replica's `extra` rows
//! are the first `extra` of the deleted ones (the deletes that never arrived).
//!
//! - source: every row but the deleted; an in-flight row has `versionnumber = 1_000_000 + 2 N + i`
//!   and `modifiedon` = the time of the request (always inside any settle window);
//! - replica: every row but the deleted ones that are not its `extra` and but its `missing`;
//!   a `stale` row has the version before (`1_000_000 + 2 i`, `modifiedon − 1 s`) and its string
//!   columns other than the key end in `" (previous)"`; a `changed` row has the same version as
//!   the source, with its string columns other than the key upper-cased; an in-flight row
//!   shows the version before the in-flight update (as the source had it before).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::scenario::ColumnType;

/// Generated rows of a table (`dataverse.<env>.tables.<set>.seed`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    pub rows: u64,
    /// Fixed values of some columns (others are generated from the row index).
    #[serde(default)]
    pub values: BTreeMap<String, Value>,
    /// Rows deleted in the source (their deletes reach replicas unless `drift.extra`).
    #[serde(default)]
    pub deleted: u64,
    /// Rows updated in the source at the time of each request: always in flight.
    #[serde(default)]
    pub in_flight: u64,
}

/// Exact drift of a replica's copy of the seeded rows (`replicas.<name>.drift`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Drift {
    /// Seeded rows that never reached the replica.
    #[serde(default)]
    pub missing: u64,
    /// Rows the replica holds in the version before the last update.
    #[serde(default)]
    pub stale: u64,
    /// Rows deleted in the source whose delete never reached the replica (at most `deleted`).
    #[serde(default)]
    pub extra: u64,
    /// Rows a transformation changed on the way: same version, different content.
    #[serde(default)]
    pub changed: u64,
}

/// What a seeded row is in one view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowFate {
    /// As generated.
    Normal,
    /// Source: deleted. Replica: absent, unless it is one of the replica's `extra` rows.
    Deleted,
    /// Source: updated just now. Replica: still the version before.
    InFlight,
    /// Replica only.
    Missing,
    Stale,
    Changed,
    /// Replica only: deleted in the source, still here.
    Extra,
}

/// The positions of every drift kind for one seeded table and (optionally) one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriftPlan {
    pub rows: u64,
    pub deleted: u64,
    pub in_flight: u64,
    pub drift: Drift,
    prime: u64,
    /// `prime⁻¹ mod rows`, kept so that [`position_of`](Self::position_of), called for every
    /// row a page walks, is one multiplication.
    inverse: u64,
}

/// Version of row `i` before its one update.
pub const VERSION_BASE: u64 = 1_000_000;

impl DriftPlan {
    /// The plan of `seed`, with `drift` for a replica's view (`Drift::default()` for the
    /// source).
    ///
    /// # Errors
    /// A sentence when the drift asks for more rows than the table has.
    pub fn new(seed: &Seed, drift: Drift) -> Result<DriftPlan, String> {
        let need = seed
            .deleted
            .saturating_add(seed.in_flight)
            .saturating_add(drift.missing)
            .saturating_add(drift.stale)
            .saturating_add(drift.changed);
        if need > seed.rows {
            return Err(format!(
                "deleted + in_flight + missing + stale + changed is {need}, more than the {} seeded rows",
                seed.rows
            ));
        }
        if drift.extra > seed.deleted {
            return Err(format!(
                "extra ({}) cannot exceed the seed's deleted rows ({})",
                drift.extra, seed.deleted
            ));
        }
        let prime = [1_000_003u64, 999_983, 1_000_033]
            .into_iter()
            .find(|p| !seed.rows.is_multiple_of(*p))
            .unwrap_or(1);
        let n = seed.rows.max(1);
        Ok(DriftPlan {
            rows: seed.rows,
            deleted: seed.deleted,
            in_flight: seed.in_flight,
            drift,
            prime,
            inverse: mod_inverse(prime % n, n),
        })
    }

    /// Row index at permutation position `p` (`p < rows`).
    pub fn index_at(&self, p: u64) -> u64 {
        ((u128::from(p) * u128::from(self.prime)) % u128::from(self.rows.max(1))) as u64
    }

    /// Permutation position of row `i`: the inverse of [`index_at`](Self::index_at).
    pub fn position_of(&self, i: u64) -> u64 {
        let n = self.rows.max(1);
        ((u128::from(i) * u128::from(self.inverse)) % u128::from(n)) as u64
    }

    /// What row `i` is in the source.
    pub fn source_fate(&self, i: u64) -> RowFate {
        let p = self.position_of(i);
        if p < self.deleted {
            RowFate::Deleted
        } else if p < self.deleted + self.in_flight {
            RowFate::InFlight
        } else {
            RowFate::Normal
        }
    }

    /// What row `i` is in the replica this plan was made for.
    pub fn replica_fate(&self, i: u64) -> RowFate {
        let p = self.position_of(i);
        let d = &self.drift;
        let mut edge = self.deleted;
        if p < edge {
            return if p < d.extra {
                RowFate::Extra
            } else {
                RowFate::Deleted
            };
        }
        edge += self.in_flight;
        if p < edge {
            return RowFate::InFlight;
        }
        for (count, fate) in [
            (d.missing, RowFate::Missing),
            (d.stale, RowFate::Stale),
            (d.changed, RowFate::Changed),
        ] {
            edge += count;
            if p < edge {
                return fate;
            }
        }
        RowFate::Normal
    }

    /// Rows of each fate in the replica view, by position range (for the truth endpoint):
    /// `(fate, first position, count)`.
    pub fn replica_ranges(&self) -> Vec<(RowFate, u64, u64)> {
        let d = &self.drift;
        let mut out = vec![
            (RowFate::Extra, 0, d.extra),
            (RowFate::Deleted, d.extra, self.deleted - d.extra),
        ];
        let mut edge = self.deleted;
        for (count, fate) in [
            (self.in_flight, RowFate::InFlight),
            (d.missing, RowFate::Missing),
            (d.stale, RowFate::Stale),
            (d.changed, RowFate::Changed),
        ] {
            out.push((fate, edge, count));
            edge += count;
        }
        out
    }
}

/// `a⁻¹ mod n` for `gcd(a, n) = 1` (extended Euclid).
fn mod_inverse(a: u64, n: u64) -> u64 {
    if n <= 1 {
        return 0;
    }
    let (mut t, mut new_t) = (0i128, 1i128);
    let (mut r, mut new_r) = (i128::from(n), i128::from(a));
    while new_r != 0 {
        let q = r / new_r;
        (t, new_t) = (new_t, t - q * new_t);
        (r, new_r) = (new_r, r - q * new_r);
    }
    if t < 0 {
        t += i128::from(n);
    }
    t as u64
}

/// The id of seeded row `i` of `env/set`: stable across runs and distinct per table.
pub fn row_id(env: &str, set: &str, i: u64) -> Uuid {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in env.bytes().chain([b'/']).chain(set.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // Version 8 (custom) UUID: the table hash, then the row index.
    let hi = (h & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_8000;
    let lo = (i & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    Uuid::from_u64_pair(hi, lo)
}

/// Seconds before the emulator's start of row `i`'s `createdon` (`modifiedon` is 1 s later).
pub fn created_age_secs(rows: u64, i: u64) -> u64 {
    3600 + (rows - i)
}

/// The generated columns of row `i` (without id and system columns), as the source has them.
pub fn generated_fields(
    columns: &BTreeMap<String, ColumnType>,
    seed: &Seed,
    i: u64,
) -> Map<String, Value> {
    let mut m = Map::new();
    for (c, t) in columns {
        m.insert(c.clone(), generated_value(c, *t, seed, i));
    }
    m
}

/// The value of one column `c` of type `t` in row `i` (as in [`generated_fields`]), for
/// callers that need only the key column of many rows.
pub fn generated_value(c: &str, t: ColumnType, seed: &Seed, i: u64) -> Value {
    match seed.values.get(c) {
        Some(v) => v.clone(),
        None => match t {
            ColumnType::String => Value::String(format!("{c}-{i:08}")),
            ColumnType::Int => json!(i),
            ColumnType::Bool => Value::Bool(i % 2 == 1),
        },
    }
}

/// Source version of row `i` given its fate.
pub fn source_version(rows: u64, i: u64, fate: RowFate) -> u64 {
    match fate {
        RowFate::InFlight => VERSION_BASE + 2 * rows + i,
        _ => VERSION_BASE + 2 * i + 1,
    }
}

/// A replica's copy of generated `fields` of row `i` for `fate` (`key_column` untouched), and
/// its version; `None` when the replica does not hold the row.
pub fn replica_copy(
    fields: &Map<String, Value>,
    key_column: &str,
    i: u64,
    fate: RowFate,
) -> Option<(Map<String, Value>, u64)> {
    let mut out = fields.clone();
    let edit = |out: &mut Map<String, Value>, f: &dyn Fn(&str) -> String| {
        for (k, v) in out.iter_mut() {
            if k != key_column
                && let Value::String(s) = v
            {
                *s = f(s);
            }
        }
    };
    let version = match fate {
        RowFate::Missing | RowFate::Deleted => return None,
        RowFate::Stale => {
            edit(&mut out, &|s| format!("{s} (previous)"));
            VERSION_BASE + 2 * i
        }
        RowFate::Changed => {
            edit(&mut out, &|s| s.to_uppercase());
            VERSION_BASE + 2 * i + 1
        }
        RowFate::Normal | RowFate::InFlight | RowFate::Extra => VERSION_BASE + 2 * i + 1,
    };
    Some((out, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(rows: u64, deleted: u64, in_flight: u64) -> Seed {
        Seed {
            rows,
            values: BTreeMap::new(),
            deleted,
            in_flight,
        }
    }

    #[test]
    fn the_permutation_is_a_bijection_with_its_inverse() {
        for rows in [1u64, 2, 7, 1000, 1_000_003 * 2] {
            let plan = DriftPlan::new(&seed(rows, 0, 0), Drift::default()).expect("plan");
            let sample: Vec<u64> = (0..rows.min(5000)).collect();
            let mut seen = std::collections::HashSet::new();
            for &p in &sample {
                let i = plan.index_at(p);
                assert!(i < rows);
                assert!(seen.insert(i), "rows={rows} p={p} repeats {i}");
                assert_eq!(plan.position_of(i), p, "rows={rows}");
            }
        }
    }

    #[test]
    fn every_fate_has_exactly_its_count() {
        let drift = Drift {
            missing: 7,
            stale: 5,
            extra: 2,
            changed: 3,
        };
        let plan = DriftPlan::new(&seed(1000, 4, 6), drift).expect("plan");
        let mut src = BTreeMap::new();
        let mut rep = BTreeMap::new();
        for i in 0..1000 {
            *src.entry(format!("{:?}", plan.source_fate(i))).or_insert(0) += 1;
            *rep.entry(format!("{:?}", plan.replica_fate(i)))
                .or_insert(0) += 1;
        }
        assert_eq!(src.get("Deleted"), Some(&4));
        assert_eq!(src.get("InFlight"), Some(&6));
        assert_eq!(src.get("Normal"), Some(&990));
        assert_eq!(rep.get("Extra"), Some(&2));
        assert_eq!(rep.get("Deleted"), Some(&2));
        assert_eq!(rep.get("InFlight"), Some(&6));
        assert_eq!(rep.get("Missing"), Some(&7));
        assert_eq!(rep.get("Stale"), Some(&5));
        assert_eq!(rep.get("Changed"), Some(&3));
        let ranges = plan.replica_ranges();
        let total: u64 = ranges.iter().map(|r| r.2).sum();
        assert_eq!(total, 4 + 6 + 7 + 5 + 3);
        for (fate, first, count) in ranges {
            for p in first..first + count {
                assert_eq!(plan.replica_fate(plan.index_at(p)), fate);
            }
        }
    }

    #[test]
    fn impossible_drift_is_refused() {
        assert!(
            DriftPlan::new(
                &seed(10, 5, 5),
                Drift {
                    missing: 1,
                    ..Drift::default()
                }
            )
            .is_err()
        );
        assert!(
            DriftPlan::new(
                &seed(10, 1, 0),
                Drift {
                    extra: 2,
                    ..Drift::default()
                }
            )
            .is_err()
        );
    }

    #[test]
    fn replica_copies_follow_their_fate() {
        let mut cols = BTreeMap::new();
        cols.insert("name".to_string(), ColumnType::String);
        cols.insert("description".to_string(), ColumnType::String);
        cols.insert("n".to_string(), ColumnType::Int);
        let s = seed(10, 0, 0);
        let f = generated_fields(&cols, &s, 3);
        assert_eq!(f["name"], json!("name-00000003"));
        assert_eq!(f["n"], json!(3));
        let (stale, v) = replica_copy(&f, "name", 3, RowFate::Stale).expect("held");
        assert_eq!(stale["name"], json!("name-00000003"));
        assert_eq!(
            stale["description"],
            json!("description-00000003 (previous)")
        );
        assert!(v < source_version(10, 3, RowFate::Normal));
        let (changed, v) = replica_copy(&f, "name", 3, RowFate::Changed).expect("held");
        assert_eq!(changed["description"], json!("DESCRIPTION-00000003"));
        assert_eq!(v, source_version(10, 3, RowFate::Normal));
        assert!(replica_copy(&f, "name", 3, RowFate::Missing).is_none());
        assert!(source_version(10, 3, RowFate::InFlight) > source_version(10, 9, RowFate::Normal));
        assert_ne!(row_id("crm", "accounts", 1), row_id("crm", "accounts", 2));
        assert_ne!(row_id("crm", "accounts", 1), row_id("crm2", "accounts", 1));
    }
}
