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

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

use super::cycle::{bounded, note};
use super::path::PathHandle;
use crate::connector::{Lookup, Source};
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
        if let Ok(permit) = gate.admit_within(request_timeout, &shutdown).await {
            let written = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = bounded(request_timeout, source.update(&canary)) => r,
            };
            let acked = Instant::now();
            drop(permit);
            note(&gate, &written);
            match written {
                Ok(()) => versions.push(Version { version, acked }),
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
pub(crate) async fn read_canary(
    path: Arc<PathHandle>,
    id: SentinelId,
    every: Duration,
    versions: Arc<Versions>,
    shutdown: CancellationToken,
) {
    let request_timeout = path.spec.request_timeout.get();
    let mut wait = every / 2;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = sleep(wait) => {}
        }
        wait = every;
        let Ok(permit) = path.gate.admit_within(request_timeout, &shutdown).await else {
            continue;
        };
        let sent = Instant::now();
        let read = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = bounded(request_timeout, path.target.lookup(&id)) => r,
        };
        drop(permit);
        note(&path.gate, &read);
        match read {
            Ok(Lookup::Present { payload: Some(p) }) => match Sentinel::seq_of(&p) {
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
            Ok(Lookup::Present { payload: None }) => {
                tracing::info!(source = %path.spec.source, target = %path.spec.target, "The target does not return the sentinel's content, so the canary's version cannot be read: no k-staleness on this path.");
                return;
            }
            // No version at all: every version a timeout old is not reached.
            Ok(Lookup::Absent) => settle(&path, &versions, &id, 0, sent),
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
