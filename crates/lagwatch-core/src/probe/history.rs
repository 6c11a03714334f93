//! A path's consistency measurements by the hour, and the sentinels that broke a guarantee:
//! what a contract report over a window (`contracts.rs`) is summed from.
//!
//! Why hours: the Prometheus counters say everything since start-up, a report says what
//! happened over a window; an hourly slot is 312 bytes, so a week of them costs a path 52 KB,
//! and a fresh process holds one.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::metrics::series::{READ_AGE_BOUNDS, VERSION_BOUNDS};

/// k-staleness buckets of a slot: one per bound of [`VERSION_BOUNDS`] (a read counts in the
/// first whose bound is at least its k), and one above the last.
pub const K_BUCKETS: usize = VERSION_BOUNDS.len() + 1;

/// Hours of history each path keeps (a week).
pub const HOURS: usize = 168;

/// Sentinels kept as evidence per path and kind, newest last: a lagging path's many late
/// probes never push out its rare regressions or lost deletes.
pub const EVIDENCE: usize = 16;

/// What one hour of a path measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Slot {
    /// Hours since the Unix epoch.
    hour: i64,
    /// When the slot's first event was counted (Unix seconds): a process that started within
    /// the hour has nothing from before.
    first_at: i64,
    /// t-visibility reads by result (fresh, stale) and age bucket.
    pub reads: [[u32; READ_AGE_BOUNDS.len()]; 2],
    /// Probes resolved (not resumed ones: their lag is not measured).
    pub probes: u64,
    /// Of those, seen within the objective.
    pub within_objective: u64,
    /// Of those, seen at all (converged or with other content).
    pub seen: u64,
    /// Sentinels seen and then missing from a later read.
    pub regressions: u64,
    pub deletes_gone: u64,
    pub deletes_lost: u64,
    pub resurrections: u64,
    /// Reads of the update canary, and those that returned an older version than the latest.
    pub canary_reads: u64,
    pub canary_stale: u64,
    /// The canary's reads by k-staleness bucket ([`K_BUCKETS`]).
    pub canary_k: [u32; K_BUCKETS],
    /// Canary versions not reached a timeout after their acknowledgement.
    pub updates_lost: u64,
    /// Canary versions a change-log target never showed within a timeout of their
    /// acknowledgement, and those it showed more than once (`updates: every`).
    pub versions_lost: u64,
    pub versions_duplicated: u64,
    /// Sentinels an ordered target showed before one written earlier, and the first sightings
    /// such a target could have shown one at.
    pub inversions: u64,
    pub ordered_sightings: u64,
    /// Causal pairs with both seen: in order, and with the child seen without its parent.
    pub pairs_ordered: u64,
    pub pairs_violated: u64,
}

impl Slot {
    fn add(&mut self, o: &Slot) {
        for (mine, theirs) in self.reads.iter_mut().zip(&o.reads) {
            for (a, b) in mine.iter_mut().zip(theirs) {
                *a = a.saturating_add(*b);
            }
        }
        self.probes += o.probes;
        self.within_objective += o.within_objective;
        self.seen += o.seen;
        self.regressions += o.regressions;
        self.deletes_gone += o.deletes_gone;
        self.deletes_lost += o.deletes_lost;
        self.resurrections += o.resurrections;
        self.canary_reads += o.canary_reads;
        self.canary_stale += o.canary_stale;
        for (a, b) in self.canary_k.iter_mut().zip(&o.canary_k) {
            *a = a.saturating_add(*b);
        }
        self.updates_lost += o.updates_lost;
        self.versions_lost += o.versions_lost;
        self.versions_duplicated += o.versions_duplicated;
        self.inversions += o.inversions;
        self.ordered_sightings += o.ordered_sightings;
        self.pairs_ordered += o.pairs_ordered;
        self.pairs_violated += o.pairs_violated;
    }
}

/// The last [`HOURS`] hours of a path, oldest first; hours without any event have no slot.
#[derive(Debug, Default)]
pub struct History {
    slots: VecDeque<Slot>,
}

impl History {
    /// The slot of the hour `now` falls in, created (and the oldest dropped) as time goes on.
    pub fn at(&mut self, now: DateTime<Utc>) -> &mut Slot {
        let hour = now.timestamp().div_euclid(3600);
        if self.slots.back().is_none_or(|s| s.hour < hour) {
            self.slots.push_back(Slot {
                hour,
                first_at: now.timestamp(),
                ..Slot::default()
            });
        }
        while self
            .slots
            .front()
            .is_some_and(|s| s.hour <= hour - HOURS as i64)
        {
            self.slots.pop_front();
        }
        // A wall clock stepped back lands in the newest slot rather than reordering them.
        let last = self.slots.len() - 1;
        &mut self.slots[last]
    }

    /// Everything from the hour `from` falls in, and when the first event counted happened.
    pub fn since(&self, from: DateTime<Utc>) -> (Slot, Option<DateTime<Utc>>) {
        let hour = from.timestamp().div_euclid(3600);
        let mut sum = Slot::default();
        let mut first = None;
        for s in self.slots.iter().filter(|s| s.hour >= hour) {
            first.get_or_insert(s.first_at);
            sum.add(s);
        }
        (sum, first.and_then(|t| DateTime::from_timestamp(t, 0)))
    }
}

/// Why a sentinel is evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvidenceKind {
    /// Not seen within the objective (visibility).
    Late,
    /// Seen, then missing from a later read (monotonic reads).
    Regressed,
    /// Still at the target at the end of its delete window (deletes).
    DeleteLost,
    /// Back at the target after a read found it gone (deletes).
    Resurrected,
    /// A causal pair's child, read at the target without its parent (causal).
    ChildFirst,
    /// The update canary, whose versions the target had not reached a timeout after their
    /// acknowledgement (updates).
    UpdateLost,
    /// The update canary, some of whose versions a change-log target never showed, or
    /// showed more than once (updates: every).
    VersionsBroken,
    /// Shown by an ordered target before a sentinel written earlier (order).
    OutOfOrder,
}

impl EvidenceKind {
    pub fn words(self) -> &'static str {
        match self {
            EvidenceKind::Late => "not seen within the objective",
            EvidenceKind::Regressed => {
                "seen, then missing from a later read (or, the canary, an older version after a newer)"
            }
            EvidenceKind::DeleteLost => "still there at the end of its delete window",
            EvidenceKind::Resurrected => "back after a read had found it deleted",
            EvidenceKind::ChildFirst => "a child read without the parent it references",
            EvidenceKind::OutOfOrder => "shown before a sentinel written earlier on the path",
            EvidenceKind::UpdateLost => {
                "canary versions the target had not reached a timeout after their acknowledgement"
            }
            EvidenceKind::VersionsBroken => {
                "canary versions the change log never showed within a timeout, or showed twice"
            }
        }
    }
}

/// One sentinel that broke a guarantee.
#[derive(Debug, Clone)]
pub struct Evidence {
    pub at: DateTime<Utc>,
    pub kind: EvidenceKind,
    pub sentinel: Arc<str>,
}

/// Keeps `e`, dropping the oldest of its kind beyond [`EVIDENCE`].
pub fn keep(ring: &mut VecDeque<Evidence>, e: Evidence) {
    if ring.iter().filter(|x| x.kind == e.kind).count() >= EVIDENCE
        && let Some(i) = ring.iter().position(|x| x.kind == e.kind)
    {
        ring.remove(i);
    }
    ring.push_back(e);
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_slot_is_as_small_as_the_module_docs_say() {
        assert_eq!(std::mem::size_of::<super::Slot>(), 312);
    }

    use super::*;

    fn at(h: i64, m: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(h * 3600 + m * 60, 0).unwrap()
    }

    #[test]
    fn a_window_sums_the_hours_it_reaches_into_and_says_from_when() {
        let mut h = History::default();
        h.at(at(100, 5)).probes += 1;
        h.at(at(100, 50)).probes += 2;
        h.at(at(102, 1)).probes += 4;
        h.at(at(103, 59)).regressions += 1;
        let (sum, first) = h.since(at(102, 30));
        assert_eq!((sum.probes, sum.regressions), (4, 1));
        assert_eq!(first, Some(at(102, 1)), "from the hour's first event");
        let (sum, first) = h.since(at(99, 0));
        assert_eq!(sum.probes, 7);
        assert_eq!(first, Some(at(100, 5)));
        assert_eq!(h.since(at(104, 0)).1, None);
    }

    #[test]
    fn only_a_week_is_kept() {
        let mut h = History::default();
        for hour in 0..400 {
            h.at(at(hour, 0)).probes += 1;
        }
        assert_eq!(h.slots.len(), HOURS);
        assert_eq!(h.since(at(0, 0)).0.probes, HOURS as u64);
        // A clock stepped back counts in the newest hour.
        h.at(at(10, 0)).probes += 1;
        assert_eq!(h.since(at(399, 0)).0.probes, 2);
    }

    #[test]
    fn evidence_keeps_the_newest_of_each_kind() {
        let mut ring = VecDeque::new();
        let e = |h: i64, kind| Evidence {
            at: at(h, 0),
            kind,
            sentinel: Arc::from("s"),
        };
        keep(&mut ring, e(0, EvidenceKind::DeleteLost));
        for i in 1..(EVIDENCE as i64 + 6) {
            keep(&mut ring, e(i, EvidenceKind::Late));
        }
        assert_eq!(ring.len(), EVIDENCE + 1);
        assert_eq!(ring.front().unwrap().kind, EvidenceKind::DeleteLost, "kept");
        assert_eq!(ring[1].at, at(6, 0), "the oldest late ones went");
    }
}
