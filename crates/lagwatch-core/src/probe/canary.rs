//! Update canaries (contract measures M3–M5): one long-lived record per source group, written
//! again with an increasing version every `update_interval` and read at every target of the
//! group, so each read says how stale the target was.
//!
//! For a read sent at `s` that returned version `m`, with the versions the source acknowledged
//! before `s`: k-staleness is how many of them are newer than `m` (0: the latest), and, when
//! `k > 0`, time staleness is `s` minus the acknowledgement of the first of them (how long the
//! read had been stale), as Bailis et al. define them for PBS. A version lower than one the path
//! already read is a monotonic-read regression. Versions are the write's Unix milliseconds
//! (and at least one more than the last), so they keep increasing across restarts; a version
//! from before this process's first one counts every version since as newer, and its time
//! staleness from this process's first version (a lower bound). Failed writes and reads are no
//! observation. The canary record stays in the source when lagwatch stops (its key is
//! `lagwatch-<instance>-<uuid v8>`; the start-up sweep leaves it).

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

use super::cycle::admitted;
use super::path::PathHandle;
use crate::connector::{Lookup, RowLog, Source};
use crate::gate::Gate;
use crate::sentinel::{Sentinel, SentinelId};

/// Versions remembered per canary: at the default 15 s, an hour.
const KEPT: usize = 256;

/// One acknowledged version of a canary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Version {
    pub version: u64,
    pub acked: Instant,
}

/// The acknowledged versions of one canary, oldest first.
#[derive(Debug, Default)]
pub struct Versions(Mutex<VecDeque<Version>>);

impl Versions {
    fn push(&self, v: Version) {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= KEPT {
            q.pop_front();
        }
        q.push_back(v);
    }

    /// Every version acknowledged and still kept, in order.
    fn all(&self) -> BTreeSet<u64> {
        let q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        q.iter().map(|v| v.version).collect()
    }

    /// See [`lost_versions`].
    pub fn lost(&self, settled: u64, m: u64, sent: Instant, timeout: Duration) -> (u64, u64) {
        let q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        lost_versions(q.iter().copied(), settled, m, sent, timeout)
    }

    /// k-staleness and time staleness of a read sent at `sent` that returned `m` (module
    /// docs); `None` before any version was acknowledged.
    pub fn staleness(&self, m: u64, sent: Instant) -> Option<(u64, Option<Duration>)> {
        let q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        staleness(q.iter().copied(), m, sent)
    }
}

/// The versions a read shows lost under `updates: latest`: those acknowledged at least
/// `timeout` before the read was `sent`, newer than `settled` (the newest version already
/// reached or counted) and than `m` (the version it returned). Returns how many, and the new
/// `settled`: `m` or the newest counted, whichever is higher.
pub fn lost_versions(
    versions: impl Iterator<Item = Version>,
    settled: u64,
    m: u64,
    sent: Instant,
    timeout: Duration,
) -> (u64, u64) {
    let mut lost = 0;
    let mut settled = settled.max(m);
    for v in versions {
        if v.version > settled && v.acked + timeout <= sent {
            lost += 1;
            settled = v.version;
        }
    }
    (lost, settled)
}

/// See [`Versions::staleness`]; `versions` oldest first.
pub fn staleness(
    versions: impl Iterator<Item = Version>,
    m: u64,
    sent: Instant,
) -> Option<(u64, Option<Duration>)> {
    let mut any = false;
    let mut k = 0;
    let mut first_newer: Option<Instant> = None;
    for v in versions.filter(|v| v.acked < sent) {
        any = true;
        if v.version > m {
            k += 1;
            first_newer.get_or_insert(v.acked);
        }
    }
    any.then(|| (k, first_newer.map(|a| sent.saturating_duration_since(a))))
}

/// What a path's reader knows of a change log's rows of the canary (`updates: every`): how
/// many it has read, the versions of this process among them, and the newest version judged.
///
/// A version acknowledged at least `timeout` before a read was sent, and not among the rows,
/// is lost, once; a row repeating a version already among them is a duplicate, per repeat.
/// Only this process's versions count: a row of a version it never had acknowledged (a write
/// that timed out here but was applied, an earlier process's) is neither.
#[derive(Debug, Default)]
pub struct LogCheck {
    rows: u64,
    shown: BTreeSet<u64>,
    judged: u64,
}

impl LogCheck {
    /// Takes the rows of `log` not read before, as versions (`None`: a row without one).
    /// Returns how many repeated a version already shown.
    pub fn read(&mut self, log: &RowLog, ours: &Versions) -> u64 {
        let mine = ours.all();
        let mut duplicated = 0;
        for m in log.after(self.rows).filter_map(|p| Sentinel::seq_of(p?)) {
            // A row may come before its write's acknowledgement reached this process: kept.
            if !self.shown.insert(m) && mine.contains(&m) {
                duplicated += 1;
            }
        }
        self.rows = log.rows;
        // Versions older than every one still kept can no longer be judged or repeated.
        if let Some(oldest) = mine.first() {
            self.shown = self.shown.split_off(oldest);
        }
        duplicated
    }

    /// The versions a read sent at `sent` shows lost: acknowledged `timeout` or more before
    /// it, newer than the last judged, and not shown.
    pub fn lost(&mut self, ours: &Versions, sent: Instant, timeout: Duration) -> u64 {
        let q = ours.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut lost = 0;
        let mut judged = self.judged;
        for v in q
            .iter()
            .filter(|v| v.version > self.judged && v.acked + timeout <= sent)
        {
            lost += u64::from(!self.shown.contains(&v.version));
            judged = v.version;
        }
        self.judged = judged;
        lost
    }
}

/// Writes the canary of a source group every `every`, from start-up until shutdown.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn write_canary(
    instance: Arc<str>,
    source_name: Arc<str>,
    source: Arc<dyn Source>,
    gate: Arc<Gate>,
    id: SentinelId,
    every: Duration,
    request_timeout: Duration,
    versions: Arc<Versions>,
    shutdown: CancellationToken,
) {
    let mut last = 0u64;
    loop {
        let version = (last + 1).max(u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0));
        last = version;
        let canary = Sentinel::restore(&instance, id.clone(), version, Utc::now());
        if let Some(written) =
            admitted(&gate, request_timeout, &shutdown, source.update(&canary)).await
        {
            let acked = Instant::now();
            match written {
                Ok(_) => versions.push(Version { version, acked }),
                Err(e) => {
                    tracing::debug!(source = %source_name, sentinel = %id, error = %e, "Canary update failed.");
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = sleep(every) => {}
        }
    }
}

/// Counts the versions a read sent at `sent` that returned `m` shows lost (`updates: latest`).
fn settle(path: &PathHandle, versions: &Versions, id: &SentinelId, m: u64, sent: Instant) {
    let settled = path.state().canary_settled;
    let (lost, settled) = versions.lost(settled, m, sent, path.spec.timeout.get());
    path.on_canary_settled(id.key(), settled, lost);
}

/// Reads a group's canary at `path`'s target every `every` (half a period after the writes).
/// At a change log the read is the canary's rows, the newest of which is what a lookup
/// returns, and every version is also checked (`updates: every`).
pub(crate) async fn read_canary(
    path: Arc<PathHandle>,
    id: SentinelId,
    every: Duration,
    versions: Arc<Versions>,
    shutdown: CancellationToken,
) {
    let request_timeout = path.spec.request_timeout.get();
    let log = path.checks_versions();
    let mut check = LogCheck::default();
    let mut wait = every / 2;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = sleep(wait) => {}
        }
        wait = every;
        let call = async {
            let sent = Instant::now();
            if !log {
                return Ok((sent, path.target.lookup(&id).await?));
            }
            let rows = path.target.lookup_log(&id).await?;
            let duplicated = check.read(&rows, &versions);
            let lost = check.lost(&versions, sent, path.spec.timeout.get());
            path.on_versions(id.key(), lost, duplicated);
            let newest = match rows.recent.back() {
                Some(payload) => Lookup::Present {
                    payload: payload.clone(),
                },
                None => Lookup::Absent,
            };
            Ok((sent, newest))
        };
        let Some(read) = admitted(&path.gate, request_timeout, &shutdown, call).await else {
            continue;
        };
        match read {
            Ok((sent, Lookup::Present { payload: Some(p) })) => match Sentinel::seq_of(&p) {
                Some(m) => {
                    if let Some((k, stale_for)) = versions.staleness(m, sent) {
                        path.on_canary_read(id.key(), m, k, stale_for);
                    }
                    settle(&path, &versions, &id, m, sent);
                }
                None => {
                    tracing::debug!(source = %path.spec.source, target = %path.spec.target, sentinel = %id, "The canary read back holds no version.");
                }
            },
            Ok((_, Lookup::Present { payload: None })) => {
                tracing::info!(source = %path.spec.source, target = %path.spec.target, "The target does not return the sentinel's content, so the canary's version cannot be read: no k-staleness on this path.");
                return;
            }
            // No version at all: every version a timeout old is not reached.
            Ok((sent, Lookup::Absent)) => settle(&path, &versions, &id, 0, sent),
            Err(e) => path.on_lookup_error(e.kind(), &e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Versions `101..=100 + n`, version `100 + i` acknowledged `10 i` seconds after `t0`.
    fn every_ten_seconds(t0: Instant, n: u64) -> Vec<Version> {
        (1..=n)
            .map(|i| Version {
                version: 100 + i,
                acked: t0 + Duration::from_secs(10 * i),
            })
            .collect()
    }

    #[test]
    fn k_counts_the_versions_acknowledged_before_the_read_and_newer_than_it_returned() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let vs = every_ten_seconds(t0, 5);
        // Read at 45 s: versions 101..=104 acknowledged before it.
        let s = at(45);
        assert_eq!(staleness(vs.iter().copied(), 104, s), Some((0, None)));
        assert_eq!(
            staleness(vs.iter().copied(), 102, s),
            Some((2, Some(Duration::from_secs(15))))
        );
        // A version from before this process: every one since is newer, stale since the first.
        assert_eq!(
            staleness(vs.iter().copied(), 7, s),
            Some((4, Some(Duration::from_secs(35))))
        );
        // A version acknowledged after the read was sent is not one it could have seen.
        assert_eq!(staleness(vs.iter().copied(), 105, s), Some((0, None)));
        assert_eq!(staleness(vs.iter().copied(), 104, at(5)), None);
    }

    #[test]
    fn a_version_is_lost_once_when_a_read_a_timeout_after_it_still_returns_an_older_one() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let vs = every_ten_seconds(t0, 6);
        let timeout = Duration::from_secs(25);
        // At 45 s the read returns 101: 102 (acked at 20 s) is 25 s old, lost; 103 is not yet.
        assert_eq!(
            lost_versions(vs.iter().copied(), 0, 101, at(45), timeout),
            (1, 102)
        );
        // The next read still returns 101: 103 is now lost, 102 is not counted again.
        assert_eq!(
            lost_versions(vs.iter().copied(), 102, 101, at(55), timeout),
            (1, 103)
        );
        // A read that returns 105 reaches every version up to it: nothing lost.
        assert_eq!(
            lost_versions(vs.iter().copied(), 103, 105, at(65), timeout),
            (0, 105)
        );
        // A newer version than those kept settles at least it.
        assert_eq!(
            lost_versions(vs.iter().copied(), 0, 200, at(90), timeout),
            (0, 200)
        );
    }

    /// A change log of the canary with rows of `versions`, each as a sentinel payload.
    fn log_of(versions: &[u64]) -> RowLog {
        let mut log = RowLog::default();
        for &v in versions {
            let s = Sentinel::restore("t", SentinelId::canary("t", "g"), v, Utc::now());
            log.push(Some(s.payload));
        }
        log
    }

    #[test]
    fn a_change_log_loses_the_versions_it_never_shows_and_repeats_are_duplicates() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let ours = Versions::default();
        for v in every_ten_seconds(t0, 6) {
            ours.push(v);
        }
        let timeout = Duration::from_secs(25);
        let mut check = LogCheck::default();
        // At 45 s the log has 101, 103, 103 (and 99, from before this process, twice).
        let log = log_of(&[99, 101, 99, 103, 103]);
        assert_eq!(check.read(&log, &ours), 1);
        // 101 and 102 were acknowledged 25 s before: 102 was never shown.
        assert_eq!(check.lost(&ours, at(45), timeout), 1);
        // The same rows again: nothing new, nothing judged twice.
        assert_eq!(check.read(&log, &ours), 0);
        assert_eq!(check.lost(&ours, at(45), timeout), 0);
        // Later rows: 102 (late, after it was judged lost: not a duplicate), 104, 104 again.
        let log = log_of(&[99, 101, 99, 103, 103, 102, 104, 104, 105]);
        assert_eq!(check.read(&log, &ours), 1);
        // At 80 s, 103..=105 are judged: all shown; 106 is not yet a timeout old.
        assert_eq!(check.lost(&ours, at(80), timeout), 0);
        assert_eq!(check.lost(&ours, at(90), timeout), 1);
    }

    #[test]
    fn only_the_newest_versions_are_kept() {
        let v = Versions::default();
        let t0 = Instant::now();
        for i in 0..(KEPT as u64 + 10) {
            v.push(Version {
                version: i,
                acked: t0,
            });
        }
        let q = v.0.lock().unwrap();
        assert_eq!(q.len(), KEPT);
        assert_eq!(q.front().map(|x| x.version), Some(10));
    }
}
