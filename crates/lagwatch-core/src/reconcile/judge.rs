//! Judging a run's comparisons: drift or lag, transient or persistent, healed.
//!
//! Pure: the clock enters as arguments and the previous run's state as a value, so every rule
//! below is unit-tested without I/O.
//!
//! - A difference whose source row changed at or after `cutoff` (run start − settle window)
//!   is **unsettled**: replication may still be carrying it. So is a stale or mismatched row
//!   whose replica copy changed after the cutoff, and a replica newer than the source (the
//!   source changed while it was read).
//! - An **extra** key has no source row to date its delete, so it is judged only once it has
//!   been extra for longer than the settle window: it must have been seen extra by a run whose
//!   read ended at or before the cutoff. A windowed run (`changed_within`) cannot tell an extra
//!   key from one outside the window, so it ignores keys found only in the replica.
//! - A judged key is **persistent** when it was already discrepant (judged or not) in the
//!   previous run, else **transient**.
//! - A key judged discrepant in the previous run **heals** when it now agrees, or (whole-table
//!   runs) when it is gone from both sides. In a windowed run a remembered key that is no longer
//!   in the window is dropped, neither healed nor discrepant.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::diff::{Comparison, Kind, Record};

/// What the previous runs remember of one discrepant key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: Kind,
    /// Past the settle window (reported), or still possibly in flight.
    pub judged: bool,
    /// Consecutive runs that found this key discrepant, this one included.
    pub runs: u32,
    /// When a run first found it discrepant (the end of that run's reads).
    pub first_seen: DateTime<Utc>,
    pub source_version: Option<String>,
    pub replica_version: Option<String>,
    pub source_changed: Option<DateTime<Utc>>,
}

impl Entry {
    pub fn persistent(&self) -> bool {
        self.runs >= 2
    }
}

/// The discrepancies remembered between runs of one entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Normalised key → entry, in key order.
    pub entries: BTreeMap<String, Entry>,
    /// More keys were discrepant than `max_keys`; those beyond it were not remembered.
    #[serde(default)]
    pub truncated: bool,
}

/// Counts of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// `[kind][persistent as usize]`, kinds in [`Kind::ALL`] order.
    pub discrepancies: [[u64; 2]; 4],
    /// Healed keys by the kind they had.
    pub healed: [u64; 4],
    pub unsettled: u64,
    /// Keys compared (present on at least one side and in scope).
    pub compared: u64,
}

impl Tally {
    pub fn count(&self, kind: Kind, persistent: bool) -> u64 {
        self.discrepancies[kind_index(kind)][usize::from(persistent)]
    }
    pub fn persistent_total(&self) -> u64 {
        self.discrepancies.iter().map(|k| k[1]).sum()
    }
    pub fn total(&self) -> u64 {
        self.discrepancies.iter().map(|k| k[0] + k[1]).sum()
    }
}

pub fn kind_index(kind: Kind) -> usize {
    match kind {
        Kind::Missing => 0,
        Kind::Extra => 1,
        Kind::Stale => 2,
        Kind::Mismatched => 3,
    }
}

/// Judges one run's comparisons against the previous state.
pub struct Judge<'a> {
    prev: &'a State,
    /// Run start − settle window, on lagwatch's clock: dates extra keys' first sightings.
    cutoff: DateTime<Utc>,
    /// The same instant on the source's clock, for rows' `changed` times.
    changed_cutoff: DateTime<Utc>,
    /// When this run's reads ended: the time a newly seen extra key is dated by.
    seen_at: DateTime<Utc>,
    windowed: bool,
    max_keys: usize,
    visited: HashSet<&'a str>,
    next: State,
    tally: Tally,
}

impl<'a> Judge<'a> {
    pub fn new(
        prev: &'a State,
        cutoff: DateTime<Utc>,
        seen_at: DateTime<Utc>,
        windowed: bool,
        max_keys: usize,
    ) -> Judge<'a> {
        Judge {
            prev,
            cutoff,
            changed_cutoff: cutoff,
            seen_at,
            windowed,
            max_keys,
            visited: HashSet::new(),
            next: State::default(),
            tally: Tally::default(),
        }
    }

    /// The cutoff for `changed` times, when the source's clock differs from lagwatch's
    /// (default: the same instant as `cutoff`).
    #[must_use]
    pub fn with_changed_cutoff(mut self, changed_cutoff: DateTime<Utc>) -> Self {
        self.changed_cutoff = changed_cutoff;
        self
    }

    fn recent(&self, r: Option<&Record>) -> bool {
        r.and_then(|r| r.changed)
            .is_some_and(|c| c >= self.changed_cutoff)
    }

    /// Takes one comparison (in any order).
    pub fn add(&mut self, c: Comparison) {
        let prev = self.prev.entries.get_key_value(c.key());
        if let Some((k, _)) = prev {
            self.visited.insert(k.as_str());
        }
        let prev = prev.map(|(_, e)| e);
        let (kind, source, replica) = match c {
            Comparison::Equal { .. } => {
                self.tally.compared += 1;
                if let Some(p) = prev.filter(|p| p.judged) {
                    self.tally.healed[kind_index(p.kind)] += 1;
                }
                return;
            }
            Comparison::ReplicaNewer { .. } => {
                self.tally.compared += 1;
                self.tally.unsettled += 1;
                return;
            }
            Comparison::Differ {
                kind,
                source,
                replica,
            } => (kind, source, replica),
        };
        if kind == Kind::Extra && self.windowed {
            return;
        }
        self.tally.compared += 1;
        let judged = match kind {
            Kind::Missing => !self.recent(source.as_ref()),
            Kind::Stale | Kind::Mismatched => {
                !self.recent(source.as_ref()) && !self.recent(replica.as_ref())
            }
            Kind::Extra => {
                prev.is_some_and(|p| p.kind == Kind::Extra && p.first_seen <= self.cutoff)
            }
        };
        let runs = prev.map_or(1, |p| p.runs.saturating_add(1));
        let entry = Entry {
            kind,
            judged,
            runs,
            // An extra key keeps its first sighting even when its kind is unchanged; any key
            // whose kind changed starts again.
            first_seen: prev
                .filter(|p| p.kind == kind)
                .map_or(self.seen_at, |p| p.first_seen),
            source_version: source.as_ref().and_then(|r| r.version.clone()),
            replica_version: replica.as_ref().and_then(|r| r.version.clone()),
            source_changed: source.as_ref().and_then(|r| r.changed),
        };
        if judged {
            self.tally.discrepancies[kind_index(kind)][usize::from(entry.persistent())] += 1;
        } else {
            self.tally.unsettled += 1;
        }
        let key = source.or(replica).map(|r| r.key).unwrap_or_default();
        if self.next.entries.len() < self.max_keys {
            self.next.entries.insert(key, entry);
        } else {
            self.next.truncated = true;
        }
    }

    /// The run's tally and the state to remember for the next run.
    pub fn finish(mut self) -> (Tally, State) {
        if !self.windowed {
            for (k, e) in &self.prev.entries {
                if e.judged && !self.visited.contains(k.as_str()) {
                    self.tally.healed[kind_index(e.kind)] += 1;
                }
            }
        }
        (self.tally, self.next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0)
            .single()
            .expect("time")
    }

    fn rec(key: &str, changed: Option<i64>) -> Record {
        Record {
            key: key.into(),
            version: Some("1".into()),
            changed: changed.map(t),
            hash: None,
        }
    }

    fn differ(kind: Kind, key: &str, src: Option<i64>, rep: Option<i64>) -> Comparison {
        let has_source = kind != Kind::Extra;
        let has_replica = kind != Kind::Missing;
        Comparison::Differ {
            kind,
            source: has_source.then(|| rec(key, src)),
            replica: has_replica.then(|| rec(key, rep)),
        }
    }

    fn equal(key: &str) -> Comparison {
        Comparison::Equal {
            source: rec(key, Some(0)),
            replica: rec(key, Some(0)),
        }
    }

    /// One run: cutoff at 100, reads ended at 200.
    fn run(prev: &State, windowed: bool, cs: Vec<Comparison>) -> (Tally, State) {
        let mut j = Judge::new(prev, t(100), t(200), windowed, 1000);
        for c in cs {
            j.add(c);
        }
        j.finish()
    }

    #[test]
    fn differences_inside_the_settle_window_are_not_judged() {
        let (tally, state) = run(
            &State::default(),
            false,
            vec![
                differ(Kind::Missing, "a", Some(100), None),
                differ(Kind::Missing, "b", Some(99), None),
                differ(Kind::Stale, "c", Some(50), Some(150)),
                differ(Kind::Stale, "d", Some(50), Some(60)),
                differ(Kind::Mismatched, "e", Some(120), Some(60)),
                differ(Kind::Missing, "f", None, None),
                Comparison::ReplicaNewer {
                    source: rec("g", Some(0)),
                    replica: rec("g", Some(0)),
                },
            ],
        );
        assert_eq!(
            tally.count(Kind::Missing, false),
            2,
            "b, and f with no changed time"
        );
        assert_eq!(tally.count(Kind::Stale, false), 1, "d");
        assert_eq!(tally.count(Kind::Mismatched, false), 0);
        assert_eq!(tally.unsettled, 4, "a, c, e, g");
        assert_eq!(tally.compared, 7);
        assert!(!state.entries["a"].judged && state.entries["b"].judged);
        assert!(
            !state.entries.contains_key("g"),
            "replica-newer is not remembered"
        );
    }

    #[test]
    fn extra_keys_are_judged_once_older_than_the_settle_window() {
        // First sighting: unsettled, dated by the end of the reads.
        let (tally, s1) = run(
            &State::default(),
            false,
            vec![differ(Kind::Extra, "x", None, None)],
        );
        assert_eq!(tally.unsettled, 1);
        assert_eq!(s1.entries["x"].first_seen, t(200));
        // Next run with cutoff 100: first seen at 200 is not older than the window yet.
        let (tally, s2) = run(&s1, false, vec![differ(Kind::Extra, "x", None, None)]);
        assert_eq!(tally.unsettled, 1);
        assert_eq!(
            s2.entries["x"].first_seen,
            t(200),
            "keeps its first sighting"
        );
        // A later run whose cutoff passed the first sighting judges it, as persistent.
        let mut j = Judge::new(&s2, t(250), t(400), false, 1000);
        j.add(differ(Kind::Extra, "x", None, None));
        let (tally, s3) = j.finish();
        assert_eq!(tally.count(Kind::Extra, true), 1);
        assert!(s3.entries["x"].judged && s3.entries["x"].runs == 3);
    }

    #[test]
    fn extras_are_dated_on_lagwatchs_clock_whatever_the_source_clock_says() {
        let (_, s1) = run(
            &State::default(),
            false,
            vec![differ(Kind::Extra, "x", None, None)],
        );
        // Next run: on lagwatch's clock the window passed the first sighting (cutoff 250 >
        // 200); the source's clock runs 100 s behind, which moves only the changed cutoff.
        let mut j = Judge::new(&s1, t(250), t(400), false, 10).with_changed_cutoff(t(150));
        j.add(differ(Kind::Extra, "x", None, None));
        j.add(differ(Kind::Missing, "m", Some(160), None));
        let (tally, _) = j.finish();
        assert_eq!(tally.count(Kind::Extra, true), 1);
        assert_eq!(
            tally.unsettled, 1,
            "m changed after the source-clock cutoff"
        );
    }

    #[test]
    fn persistence_needs_two_consecutive_runs_and_healing_is_counted() {
        let first = vec![
            differ(Kind::Missing, "a", Some(0), None),
            differ(Kind::Stale, "b", Some(0), Some(0)),
            differ(Kind::Mismatched, "c", Some(0), Some(0)),
            differ(Kind::Missing, "d", Some(150), None),
        ];
        let (t1, s1) = run(&State::default(), false, first);
        assert_eq!(t1.persistent_total(), 0);
        assert_eq!(t1.total(), 3);
        // Second run: a still missing (persistent), b healed, c gone from both sides (healed),
        // d now judged and persistent (it was discrepant, in flight, last time).
        let (t2, s2) = run(
            &s1,
            false,
            vec![
                differ(Kind::Missing, "a", Some(0), None),
                equal("b"),
                differ(Kind::Missing, "d", Some(150 - 100), None),
            ],
        );
        assert_eq!(t2.count(Kind::Missing, true), 2);
        assert_eq!(t2.healed, [0, 0, 1, 1]);
        assert_eq!(s2.entries.len(), 2);
        assert_eq!(s2.entries["a"].first_seen, t(200));
        // An unsettled key that agrees next time is not "healed": it was never reported.
        let (t3, _) = run(&s1, false, vec![equal("d")]);
        assert_eq!(
            t3.healed,
            [1, 0, 1, 1],
            "a, b, c healed by absence; d never judged"
        );
    }

    #[test]
    fn windowed_runs_ignore_replica_only_keys_and_forget_out_of_window_keys() {
        let (_, s1) = run(
            &State::default(),
            false,
            vec![differ(Kind::Missing, "a", Some(0), None)],
        );
        let (t2, s2) = run(
            &s1,
            true,
            vec![differ(Kind::Extra, "z", None, None), equal("b")],
        );
        assert_eq!(t2.total() + t2.unsettled, 0);
        assert_eq!(t2.healed, [0; 4], "a left the window: not healed");
        assert_eq!(t2.compared, 1);
        assert!(s2.entries.is_empty());
    }

    #[test]
    fn remembered_keys_are_capped_but_counts_are_exact() {
        let empty = State::default();
        let mut j = Judge::new(&empty, t(100), t(200), false, 2);
        for k in ["a", "b", "c", "d"] {
            j.add(differ(Kind::Missing, k, Some(0), None));
        }
        let (tally, s) = j.finish();
        assert_eq!(tally.count(Kind::Missing, false), 4);
        assert_eq!(s.entries.len(), 2);
        assert!(s.truncated);
    }

    #[test]
    fn a_key_that_changes_kind_starts_its_first_sighting_again_but_stays_persistent() {
        let (_, s1) = run(
            &State::default(),
            false,
            vec![differ(Kind::Missing, "a", Some(0), None)],
        );
        let mut j = Judge::new(&s1, t(300), t(400), false, 10);
        j.add(differ(Kind::Stale, "a", Some(0), Some(0)));
        let (tally, s2) = j.finish();
        assert_eq!(tally.count(Kind::Stale, true), 1);
        assert_eq!(s2.entries["a"].first_seen, t(400));
    }

    #[test]
    fn state_round_trips_through_json() {
        let (_, s) = run(
            &State::default(),
            false,
            vec![differ(Kind::Stale, "k", Some(0), Some(0))],
        );
        let text = serde_json::to_string(&s).expect("json");
        let back: State = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, s);
    }
}
