//! Shards (`shard: {index, total}` or `--shard I/N`): which paths this process measures when
//! several processes split one configuration.
//!
//! Each path goes to the shard with the highest rendezvous score of (path id, shard index),
//! the path id being `source/target`. Every shard computes the same assignment from the same
//! file, with no coordination, and changing the total from N to N+1 moves only the paths whose
//! new shard scores highest: about 1/(N+1) of them. A conflict pair `a <-> b` follows the path
//! id `a/b`; reconciliation entries and platform status reads are part of their path.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use super::Issue;
use crate::sentinel::checksum;

/// The largest number of shards accepted: far beyond any estate, small enough that a typo
/// (`0/10000`) is caught.
pub const MAX_TOTAL: u32 = 1024;

/// This process's share of the paths: shard `index` of `total` (from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub total: u32,
}

impl Default for Shard {
    /// The only shard: every path.
    fn default() -> Self {
        Shard { index: 0, total: 1 }
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.total)
    }
}

/// `shard:` as written.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShard {
    index: u32,
    total: u32,
}

impl Shard {
    /// A shard, if `index` and `total` make one; else why not.
    ///
    /// # Errors
    /// A sentence for a total of 0 or above [`MAX_TOTAL`], or an index not below the total.
    pub fn new(index: u32, total: u32) -> Result<Shard, String> {
        if total == 0 || total > MAX_TOTAL {
            return Err(format!(
                "the total must be from 1 to {MAX_TOTAL} shards, not {total}"
            ));
        }
        if index >= total {
            return Err(format!(
                "the index counts from 0 and must be below the total: {index} is not below {total} (shards of {total} are 0 to {})",
                total - 1
            ));
        }
        Ok(Shard { index, total })
    }

    /// `shard:` of the file, checked (errors name `shard.index` or `shard.total`).
    ///
    /// # Errors
    /// [`Issue`] naming the key at fault.
    pub fn from_raw(raw: RawShard) -> Result<Shard, Issue> {
        Shard::new(raw.index, raw.total).map_err(|why| {
            let key = if raw.total == 0 || raw.total > MAX_TOTAL {
                "shard.total"
            } else {
                "shard.index"
            };
            Issue::new(key, why)
        })
    }

    /// The shard that owns the path `source` -> `target`.
    pub fn owner_of(total: u32, source: &str, target: &str) -> u32 {
        let id = path_id(source, target);
        (0..total.max(1))
            .max_by_key(|&i| (score(&id, i), std::cmp::Reverse(i)))
            .unwrap_or(0)
    }

    /// Whether this shard measures the path `source` -> `target`.
    pub fn owns(&self, source: &str, target: &str) -> bool {
        self.total <= 1 || Shard::owner_of(self.total, source, target) == self.index
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `I/N`, as `--shard` takes it.
    fn from_str(s: &str) -> Result<Shard, String> {
        let (i, n) = s.split_once('/').ok_or_else(|| {
            format!(
                "\"{s}\" is not a shard: write INDEX/TOTAL, such as 0/3 (the index counts from 0)"
            )
        })?;
        let number = |v: &str, what: &str| {
            v.trim().parse::<u32>().map_err(|_| {
                format!("\"{s}\": the {what} \"{v}\" is not a whole number; write INDEX/TOTAL, such as 0/3")
            })
        };
        Shard::new(number(i, "index")?, number(n, "total")?)
    }
}

/// The id a path is hashed by: `source/target` (system names hold no `/`).
pub fn path_id(source: &str, target: &str) -> String {
    format!("{source}/{target}")
}

/// The rendezvous score of `id` on shard `index`: FNV-1a of the id, mixed with the index and
/// finished with MurmurHash3's 64-bit finaliser, so that similar ids score independently.
/// Fixed constants: the same on every platform, version and process (std's hashers are not).
fn score(id: &str, index: u32) -> u64 {
    let seeded = checksum(id) ^ fmix64(u64::from(index).wrapping_add(1));
    fmix64(seeded)
}

fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("crm-{}", i % 7), format!("target-{i}")))
            .collect()
    }

    #[test]
    fn parsing_and_validation_say_what_is_wrong() {
        assert_eq!("2/3".parse::<Shard>(), Ok(Shard { index: 2, total: 3 }));
        assert_eq!(" 0 / 1 ".trim().parse::<Shard>(), Ok(Shard::default()));
        let e = "3/3".parse::<Shard>().unwrap_err();
        assert!(e.contains("3 is not below 3"), "{e}");
        let e = "0/0".parse::<Shard>().unwrap_err();
        assert!(e.contains("from 1 to 1024"), "{e}");
        let e = "1".parse::<Shard>().unwrap_err();
        assert!(e.contains("INDEX/TOTAL"), "{e}");
        let e = "a/2".parse::<Shard>().unwrap_err();
        assert!(e.contains("index \"a\""), "{e}");
        let e = Shard::from_raw(RawShard { index: 5, total: 2 }).unwrap_err();
        assert_eq!(e.key, "shard.index");
        let e = Shard::from_raw(RawShard { index: 0, total: 0 }).unwrap_err();
        assert_eq!(e.key, "shard.total");
    }

    #[test]
    fn the_assignment_is_fixed_across_processes_and_versions() {
        // Pinned: a change of the hash would move paths between running shards on upgrade.
        assert_eq!(score("crm/fno", 0), score("crm/fno", 0));
        let owners: Vec<u32> = ["crm/fno", "crm/lake", "fno/crm", "crm/search"]
            .iter()
            .map(|id| {
                let (s, t) = id.split_once('/').unwrap();
                Shard::owner_of(4, s, t)
            })
            .collect();
        assert_eq!(owners, PINNED_OWNERS);
        assert_eq!(Shard::owner_of(1, "a", "b"), 0);
        assert!(Shard::default().owns("a", "b"));
    }

    /// The owners of the four paths of the test above among 4 shards.
    const PINNED_OWNERS: [u32; 4] = [0, 1, 2, 3];

    #[test]
    fn shards_get_a_balanced_share() {
        let paths = ids(10_000);
        for total in [2u32, 3, 5, 8] {
            let mut count = vec![0usize; total as usize];
            for (s, t) in &paths {
                count[Shard::owner_of(total, s, t) as usize] += 1;
            }
            let fair = paths.len() / total as usize;
            for (i, c) in count.iter().enumerate() {
                assert!(
                    c.abs_diff(fair) * 10 < fair,
                    "{total} shards: shard {i} has {c} of {} paths, fair {fair}: {count:?}",
                    paths.len()
                );
            }
        }
    }

    #[test]
    fn growing_or_shrinking_by_one_moves_about_one_in_n() {
        let paths = ids(10_000);
        for n in [1u32, 2, 3, 4, 7] {
            let mut moved = 0usize;
            for (s, t) in &paths {
                let before = Shard::owner_of(n, s, t);
                let after = Shard::owner_of(n + 1, s, t);
                if before != after {
                    // Only to the new shard: no path moves between the old ones.
                    assert_eq!(after, n, "{s}/{t} moved from {before} to {after}");
                    moved += 1;
                }
            }
            let expected = paths.len() / (n as usize + 1);
            assert!(
                moved.abs_diff(expected) * 10 < expected,
                "{n} -> {} shards moved {moved} of {} paths, expected about {expected}",
                n + 1,
                paths.len()
            );
        }
    }
}
