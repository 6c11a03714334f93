//! One path's live state: in-flight sentinels, staleness, recent lags and outcome history.
//!
//! The engine reports what happened through the `on_*` methods; they update the path's
//! metrics and its state together, so `/metrics`, the status page and the API never disagree.
//! Everything kept is bounded: pending sentinels by `max_in_flight`, recent lags and history by
//! fixed capacities.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::causal::PairTrace;
use super::deletes::{DeleteOutcome, DeleteTrace};
use super::estimate::LagEstimate;
use super::history::{self, Evidence, EvidenceKind, History, Slot};
use super::schedule::Expectation;
use super::trace::{self, PathRules, ProbeTrace};
use crate::config::PathSpec;
use crate::connector::Target;
use crate::gate::Gate;
use crate::metrics::Metrics;
use crate::metrics::series::{Exemplar, PathSeries, PathShape};
use crate::sentinel::SentinelId;

/// How a probe on one path ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Converged,
    Timeout,
    Mismatch,
    Error,
    /// Still absent from a synchronous target after its grace: the replication is not
    /// running (a paused or stopped dual-write map), which is no lag at all.
    Halted,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        crate::metrics::series::OUTCOMES[self as usize]
    }
    /// The outcome named by its label.
    pub fn parse(label: &str) -> Option<Outcome> {
        [
            Outcome::Converged,
            Outcome::Timeout,
            Outcome::Mismatch,
            Outcome::Error,
            Outcome::Halted,
        ]
        .into_iter()
        .find(|o| o.label() == label)
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// The health of a path, as an operator reads it (`lagwatch_path_state`, the status page, the
/// API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathStatus {
    /// Nothing resolved yet.
    Idle,
    Converging,
    Lagging,
    Stuck,
    Failing,
    Halted,
}

impl PathStatus {
    pub fn label(self) -> &'static str {
        crate::metrics::series::STATES[self as usize]
    }
}

/// Converged lags remembered for the schedule's learned window.
const RECENT_LAGS: usize = 16;
/// Resolved probes remembered for the status page (at most an hour of them).
const HISTORY: usize = 720;
const HISTORY_AGE: Duration = Duration::from_secs(3600);

/// One resolved probe, as the status page remembers it: 12 bytes, so an hour of history for
/// a thousand paths stays in the low megabytes.
#[derive(Debug, Clone, Copy)]
pub struct Resolved {
    /// When it resolved, in tenths of a second after the path's `history_epoch`.
    at_ds: u32,
    /// The lag in seconds; NaN when the probe did not converge.
    lag_seconds: f32,
    pub outcome: Outcome,
}

impl Resolved {
    /// The lag of a converged probe.
    pub fn lag(&self) -> Option<f64> {
        (!self.lag_seconds.is_nan()).then_some(f64::from(self.lag_seconds))
    }
}

/// The newest resolved probe (by write order, not resolution order).
#[derive(Debug, Clone, Copy)]
pub struct LastProbe {
    pub seq: u64,
    pub outcome: Outcome,
}

/// Mutable state of a path.
#[derive(Debug, Default)]
pub struct PathState {
    /// Sentinels reserved for this path: being written, or written and unresolved.
    pub reserved: u32,
    /// Written and unresolved sentinels: seq to the instant the write was acknowledged.
    pub pending: BTreeMap<u64, Instant>,
    /// The row versions the source gave pending sentinels, where a platform watermark wants
    /// them (`Source::version_of`).
    pub versions: BTreeMap<u64, u64>,
    /// Acknowledgement of the oldest sentinel that resolved without being seen since the last
    /// one that was seen. Keeps staleness rising through timeouts while a path is stuck.
    pub unseen_since: Option<Instant>,
    pub recent: VecDeque<Duration>,
    pub history: VecDeque<Resolved>,
    /// The instant `history` counts its times from (the first probe it remembers).
    history_epoch: Option<Instant>,
    /// The last [`trace::RING`] resolved probes, read by read (`/api/v1/probes`).
    pub traces: VecDeque<ProbeTrace>,
    pub last_probe: Option<LastProbe>,
    pub last_estimate: Option<LagEstimate>,
    pub last_converged_at: Option<DateTime<Utc>>,
    pub last_error: Option<(&'static str, DateTime<Utc>)>,
    /// The message of `last_error` (a connector error's text: never a secret).
    pub last_error_message: Option<Box<str>>,
    /// When the source last acknowledged a sentinel of this path.
    pub last_written_at: Option<DateTime<Utc>>,
    /// A write for this path has been attempted (readiness).
    pub started: bool,
    /// When each declared guarantee (`Contract::GUARANTEES` order) was last broken.
    pub contract_broken_at: [Option<DateTime<Utc>>; crate::config::Contract::N],
    /// How the deletes of the last [`trace::RING`] watched sentinels went, oldest first.
    pub deletes: VecDeque<DeleteTrace>,
    /// The path's measurements by the hour, for contract reports over a window.
    pub hours: History,
    /// The latest sentinels that broke a guarantee, oldest first.
    pub evidence: VecDeque<Evidence>,
    /// The newest canary version a read at this target returned.
    pub canary_seen: Option<u64>,
    /// The newest canary version reached or counted lost (`updates: latest`).
    pub canary_settled: u64,
    /// How the last [`trace::RING`] causal pairs went, oldest first.
    pub pairs: VecDeque<PairTrace>,
    /// Sentinels written on this path that no read has found yet, by sequence number: the
    /// earlier ones an ordered target must show before a later one.
    pub awaiting: BTreeMap<u64, SentinelId>,
}

impl PathState {
    /// Age of the oldest sentinel not yet seen at the target, zero if none.
    pub fn staleness(&self, now: Instant) -> Duration {
        let oldest = self.pending.values().next().copied();
        let since = match (oldest, self.unseen_since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        since.map_or(Duration::ZERO, |s| now.saturating_duration_since(s))
    }

    /// The path's state now: `failing` when the last probe erred or arrived changed, or an
    /// error came after the last convergence (unless the last probe timed out); `halted` after
    /// a halt; `stuck` after a timeout or with a sentinel pending longer than the timeout;
    /// `lagging` when the last lag or the staleness is above the objective; `converging` once
    /// anything resolved; `idle` before.
    pub fn status(&self, now: Instant, objective: Duration, timeout: Duration) -> PathStatus {
        let staleness = self.staleness(now);
        let last_outcome = self.last_probe.map(|l| l.outcome);
        let error_after_convergence = match (self.last_error, self.last_converged_at) {
            (Some((_, e)), Some(c)) => e > c,
            (Some(_), None) => true,
            _ => false,
        };
        let last_lag = self.last_estimate.map(|e| e.lag);
        if matches!(last_outcome, Some(Outcome::Error | Outcome::Mismatch)) {
            PathStatus::Failing
        } else if last_outcome == Some(Outcome::Halted) {
            PathStatus::Halted
        } else if error_after_convergence && last_outcome != Some(Outcome::Timeout) {
            PathStatus::Failing
        } else if last_outcome == Some(Outcome::Timeout) || staleness >= timeout {
            PathStatus::Stuck
        } else if last_lag.is_some_and(|l| l > objective) || staleness > objective {
            PathStatus::Lagging
        } else if last_outcome.is_some() {
            PathStatus::Converging
        } else {
            PathStatus::Idle
        }
    }

    fn remember(&mut self, now: Instant, lag_seconds: f32, outcome: Outcome) {
        let epoch = *self.history_epoch.get_or_insert(now);
        let at_ds = deciseconds(now.saturating_duration_since(epoch));
        self.history.push_back(Resolved {
            at_ds,
            lag_seconds,
            outcome,
        });
        self.prune(now);
    }

    fn prune(&mut self, now: Instant) {
        let Some(epoch) = self.history_epoch else {
            return;
        };
        let now_ds = deciseconds(now.saturating_duration_since(epoch));
        let max_age = deciseconds(HISTORY_AGE);
        while self
            .history
            .front()
            .is_some_and(|r| now_ds.saturating_sub(r.at_ds) > max_age)
            || self.history.len() > HISTORY
        {
            self.history.pop_front();
        }
    }
}

fn deciseconds(d: Duration) -> u32 {
    u32::try_from(d.as_millis() / 100).unwrap_or(u32::MAX)
}

/// A path with its target connector, metrics and state.
pub struct PathHandle {
    pub spec: PathSpec,
    pub target: Arc<dyn Target>,
    /// The target system's admission control.
    pub gate: Arc<Gate>,
    m: Arc<PathSeries>,
    state: Mutex<PathState>,
}

/// Keeps `item` in `ring`, dropping the oldest beyond [`trace::RING`].
fn keep_last<T>(ring: &mut VecDeque<T>, item: T) {
    if ring.len() >= trace::RING {
        ring.pop_front();
    }
    ring.push_back(item);
}

/// See [`PathHandle::checks_order`].
fn checks_order(target: &dyn Target) -> bool {
    target.applies_in_order() && target.reads_together()
}

impl PathHandle {
    pub fn new(
        spec: PathSpec,
        target: Arc<dyn Target>,
        gate: Arc<Gate>,
        metrics: &Metrics,
    ) -> Self {
        let m = metrics.paths.path(
            &spec.source,
            &spec.target,
            PathShape {
                objective: spec.objective.get().as_secs_f64(),
                timeout: spec.timeout.get().as_secs_f64(),
                synchronous: spec.sync_grace.is_some(),
                records_apply_time: target.records_apply_time(),
                declared: spec.contract.declared(),
                delete_window: spec.delete_watch.map(|d| d.get().as_secs_f64()),
                canary: spec.update_interval.is_some(),
                pairs: spec.pair_interval.is_some(),
                ordered: checks_order(target.as_ref()),
                versions: spec.update_interval.is_some() && target.keeps_versions(),
            },
        );
        PathHandle {
            spec,
            target,
            gate,
            m,
            state: Mutex::new(PathState::default()),
        }
    }

    /// Whether the path's canary reads check every version (`updates: every`): a canary read
    /// at a change log.
    pub fn checks_versions(&self) -> bool {
        self.spec.update_interval.is_some() && self.target.keeps_versions()
    }

    /// Whether the path's reads check order (`lagwatch_order_inversions_total`): a target
    /// that applies writes in order and reads several keys in one request.
    pub fn checks_order(&self) -> bool {
        checks_order(self.target.as_ref())
    }

    /// The state, for reading (status page, API, tests).
    pub fn state(&self) -> MutexGuard<'_, PathState> {
        // The state is plain data; a panic elsewhere must not take monitoring down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves a slot for a new sentinel, or counts a skip when `max_in_flight` are pending.
    pub fn try_reserve(&self) -> bool {
        let mut s = self.state();
        s.started = true;
        if s.reserved >= self.spec.max_in_flight {
            self.m.skipped.inc();
            return false;
        }
        s.reserved += 1;
        self.m
            .in_flight
            .store(i64::from(s.reserved), Ordering::Relaxed);
        true
    }

    /// Takes a slot for a sentinel an earlier process left in flight (from the ledger), even
    /// past `max_in_flight`: it is out there already and must end in an outcome.
    pub fn reserve_resumed(&self, seq: u64, acked: Instant) {
        let mut s = self.state();
        s.reserved += 1;
        s.pending.insert(seq, acked);
        self.m
            .in_flight
            .store(i64::from(s.reserved), Ordering::Relaxed);
    }

    /// Restores "unseen since" from the ledger, so staleness keeps rising through a restart.
    pub fn restore_unseen(&self, since: Instant) {
        let mut s = self.state();
        s.unseen_since = Some(s.unseen_since.map_or(since, |u| u.min(since)));
    }

    /// Gives a reserved slot back without an outcome: the write failed (a measurement gap, not
    /// lag) or the process is shutting down.
    pub fn release(&self, seq: Option<u64>) {
        let mut s = self.state();
        s.reserved = s.reserved.saturating_sub(1);
        if let Some(seq) = seq {
            s.pending.remove(&seq);
            s.versions.remove(&seq);
            s.versions.remove(&seq);
            s.awaiting.remove(&seq);
        }
        self.m
            .in_flight
            .store(i64::from(s.reserved), Ordering::Relaxed);
    }

    /// Whether this path wants each sentinel's row version (its platform status has a
    /// watermark to compare it with).
    pub fn wants_versions(&self) -> bool {
        self.spec
            .platform_status
            .as_ref()
            .is_some_and(|p| p.surface.has_watermark())
    }

    /// The row version the source gave a pending sentinel.
    pub fn on_version(&self, seq: u64, version: u64) {
        let mut s = self.state();
        if s.pending.contains_key(&seq) {
            s.versions.insert(seq, version);
        }
    }

    pub fn on_written(&self, seq: u64, id: &SentinelId, acked: Instant) {
        let mut s = self.state();
        s.pending.insert(seq, acked);
        s.awaiting.insert(seq, id.clone());
        s.last_written_at = Some(Utc::now());
    }

    pub fn on_write_failed(&self, kind: &'static str, message: &str) {
        let mut s = self.state();
        s.last_error = Some((kind, Utc::now()));
        s.last_error_message = Some(message.into());
    }

    pub fn on_lookup_error(&self, kind: &'static str, message: &str) {
        self.m.lookup_error(kind);
        let mut s = self.state();
        s.last_error = Some((kind, Utc::now()));
        s.last_error_message = Some(message.into());
    }

    /// A read of a sentinel `age` after its write was acknowledged: fresh (it was there) or
    /// stale (absent), for the t-visibility curve.
    pub fn on_read(&self, age: Duration, fresh: bool) {
        let bucket = self.m.read_observed(age.as_secs_f64(), fresh);
        let mut s = self.state();
        let slot = &mut s.hours.at(Utc::now()).reads[usize::from(!fresh)][bucket];
        *slot = slot.saturating_add(1);
    }

    /// Violations of the declared guarantee `Contract::GUARANTEES[i]` since start-up.
    pub fn contract_violations(&self, i: usize) -> u64 {
        self.m.contract_violations(i)
    }

    /// `sentinel` was seen and then missing from a later read.
    pub fn on_monotonic_violation(&self, sentinel: &str) {
        self.m.monotonic.inc();
        self.evidence(EvidenceKind::Regressed, sentinel, |h| h.regressions += 1);
        if self.spec.contract.monotonic_reads {
            self.contract_broken(crate::config::Contract::MONOTONIC_READS);
        }
    }

    /// A read of the update canary `canary` returned version `m`, `k` versions behind the
    /// latest acknowledged before it was sent (for `stale_for`): the staleness histograms, and
    /// a regression when an earlier read returned a newer version.
    pub fn on_canary_read(&self, canary: &str, m: u64, k: u64, stale_for: Option<Duration>) {
        if let Some(h) = &self.m.version_staleness {
            h.observe(k as f64, None);
        }
        if let (Some(h), Some(d)) = (&self.m.time_staleness, stale_for) {
            h.observe(d.as_secs_f64(), None);
        }
        let regressed = {
            let mut s = self.state();
            let slot = s.hours.at(Utc::now());
            slot.canary_reads += 1;
            slot.canary_stale += u64::from(k > 0);
            let bucket = crate::metrics::series::VERSION_BOUNDS
                .iter()
                .position(|b| k as f64 <= *b)
                .unwrap_or(crate::metrics::series::VERSION_BOUNDS.len());
            if let Some(n) = slot.canary_k.get_mut(bucket) {
                *n = n.saturating_add(1);
            }
            slot.seen += 1;
            let regressed = s.canary_seen.is_some_and(|seen| m < seen);
            s.canary_seen = Some(s.canary_seen.map_or(m, |seen| seen.max(m)));
            regressed
        };
        if regressed {
            if self.spec.contract.monotonic_reads {
                tracing::warn!(source = %self.spec.source, target = %self.spec.target, sentinel = %canary, version = m, guarantee = "monotonic_reads", "Path broke its declared monotonic_reads guarantee: the target returned an older canary version after a newer one.");
            } else {
                tracing::info!(source = %self.spec.source, target = %self.spec.target, sentinel = %canary, version = m, "Target returned an older canary version after a newer one.");
            }
            self.on_monotonic_violation(canary);
        }
    }

    /// A canary read at a change log found `lost` versions it never showed within a timeout
    /// and `duplicated` rows repeating a version it had shown (`updates: every`).
    pub fn on_versions(&self, canary: &str, lost: u64, duplicated: u64) {
        if lost + duplicated == 0 {
            return;
        }
        self.m.versions_lost.inc_by(lost);
        self.m.versions_duplicated.inc_by(duplicated);
        let declared = self.spec.contract.updates == Some(crate::config::Updates::Every);
        if declared {
            tracing::warn!(source = %self.spec.source, target = %self.spec.target, sentinel = %canary, lost, duplicated, timeout = %self.spec.timeout, guarantee = "updates", "Path broke its declared updates: every guarantee: the change log lost or repeated canary versions.");
        } else {
            tracing::info!(source = %self.spec.source, target = %self.spec.target, sentinel = %canary, lost, duplicated, timeout = %self.spec.timeout, "The change log lost or repeated canary versions.");
        }
        self.evidence(EvidenceKind::VersionsBroken, canary, |h| {
            h.versions_lost += lost;
            h.versions_duplicated += duplicated;
        });
        if declared {
            for _ in 0..lost + duplicated {
                self.contract_broken(crate::config::Contract::UPDATES);
            }
        }
    }

    /// A canary read settled the versions up to `settled`: `lost` of them had not been
    /// reached a timeout after their acknowledgement (`lagwatch_updates_lost_total`, and a
    /// violation of a declared `updates: latest`).
    pub fn on_canary_settled(&self, canary: &str, settled: u64, lost: u64) {
        {
            let mut s = self.state();
            s.canary_settled = s.canary_settled.max(settled);
        }
        if lost == 0 {
            return;
        }
        self.m.updates_lost.inc_by(lost);
        let declared = self.spec.contract.updates.is_some();
        tracing::warn!(source = %self.spec.source, target = %self.spec.target, sentinel = %canary, versions = lost, timeout = %self.spec.timeout, declared, "Updates lost: the target had not reached canary versions a timeout after the source acknowledged them.");
        self.evidence(EvidenceKind::UpdateLost, canary, |h| h.updates_lost += lost);
        if declared {
            for _ in 0..lost {
                self.contract_broken(crate::config::Contract::UPDATES);
            }
        }
    }

    /// Counts an event in this hour's history and keeps `sentinel` as its evidence.
    fn evidence(&self, kind: EvidenceKind, sentinel: &str, count: impl FnOnce(&mut Slot)) {
        let now = Utc::now();
        let mut s = self.state();
        count(s.hours.at(now));
        history::keep(
            &mut s.evidence,
            Evidence {
                at: now,
                kind,
                sentinel: Arc::from(sentinel),
            },
        );
    }

    fn contract_broken(&self, i: usize) {
        self.m.contract_violated(i);
        self.state().contract_broken_at[i] = Some(Utc::now());
    }

    /// A deleted sentinel showed again after a read had found it gone.
    pub fn on_resurrection(&self, sentinel: &str) {
        self.m.resurrections.inc();
        self.evidence(EvidenceKind::Resurrected, sentinel, |h| {
            h.resurrections += 1
        });
        if self.spec.contract.deletes.is_some() {
            self.contract_broken(crate::config::Contract::DELETES);
        }
    }

    /// Records how the delete of `sentinel` went: its lag in `lagwatch_delete_lag_seconds`
    /// (the sentinel as the bucket's exemplar), a lost delete in `lagwatch_deletes_lost_total`
    /// (a contract violation when `deletes` is declared), and the trace for the API.
    pub fn on_delete(&self, sentinel: &str, trace: DeleteTrace) {
        match (trace.outcome, trace.estimate, &self.m.delete_lag) {
            (DeleteOutcome::Gone, Some(e), Some(h)) => {
                let secs = e.lag.as_secs_f64();
                h.observe(
                    secs,
                    Some(Exemplar {
                        sentinel: Arc::from(sentinel),
                        value: secs,
                        timestamp: Utc::now().timestamp_millis() as f64 / 1000.0,
                    }),
                );
            }
            (DeleteOutcome::Lost, ..) => {
                self.m.deletes_lost.inc();
                self.evidence(EvidenceKind::DeleteLost, sentinel, |h| h.deletes_lost += 1);
                if self.spec.contract.deletes.is_some() {
                    self.contract_broken(crate::config::Contract::DELETES);
                }
            }
            _ => {}
        }
        let mut s = self.state();
        if trace.outcome == DeleteOutcome::Gone {
            s.hours.at(Utc::now()).deletes_gone += 1;
        }
        keep_last(&mut s.deletes, trace);
    }

    /// Records how a causal pair went: `lagwatch_causal_pairs_total`, a violation in
    /// `lagwatch_causal_violations_total` (and the contract's, when `causal` is declared),
    /// an ordered pair's gap, the hour's history and the trace for `/api/v1/pairs`.
    pub fn on_pair(&self, trace: PairTrace) {
        use super::causal::{Certainty, PairResult};
        let certainty = trace.certainty.map(|c| match c {
            Certainty::Certain => 0,
            Certainty::Suspected => 1,
        });
        let result = match trace.result {
            PairResult::Ordered => 0,
            PairResult::Violated => 1,
            PairResult::Incomplete => 2,
        };
        self.m.pair(result, certainty);
        if let (Some(h), Some(gap)) = (&self.m.causal_gap, trace.gap()) {
            let secs = gap.as_secs_f64();
            h.observe(
                secs,
                Some(Exemplar {
                    sentinel: Arc::from(trace.child.key()),
                    value: secs,
                    timestamp: Utc::now().timestamp_millis() as f64 / 1000.0,
                }),
            );
        }
        match trace.result {
            PairResult::Violated => {
                self.evidence(EvidenceKind::ChildFirst, trace.child.key(), |h| {
                    h.pairs_violated += 1
                });
                if self.spec.contract.causal {
                    self.contract_broken(crate::config::Contract::CAUSAL);
                }
            }
            PairResult::Ordered => self.state().hours.at(Utc::now()).pairs_ordered += 1,
            PairResult::Incomplete => {}
        }
        keep_last(&mut self.state().pairs, trace);
    }

    /// Sentinels written before `seq` on this path that no read has found yet, the newest
    /// `at_most` of them, oldest first.
    pub fn awaiting_before(&self, seq: u64, at_most: usize) -> Vec<SentinelId> {
        let s = self.state();
        let mut ids: Vec<SentinelId> = s
            .awaiting
            .range(..seq)
            .rev()
            .take(at_most)
            .map(|(_, id)| id.clone())
            .collect();
        ids.reverse();
        ids
    }

    /// The first read of a target that applies in order to find `sentinel` (`seq`), when
    /// `missing` sentinels written before it were absent from the same read: an order
    /// inversion if any (`lagwatch_order_inversions_total`, once per sentinel).
    pub fn on_ordered_sighting(&self, sentinel: &str, seq: u64, missing: usize) {
        {
            let mut s = self.state();
            s.awaiting.remove(&seq);
            s.hours.at(Utc::now()).ordered_sightings += 1;
        }
        if missing == 0 {
            return;
        }
        self.m.order_inversions.inc();
        tracing::warn!(source = %self.spec.source, target = %self.spec.target, sentinel = %sentinel, earlier_missing = missing, "Order inversion: the target showed a sentinel while one written earlier on the path was still missing from the same read.");
        self.evidence(EvidenceKind::OutOfOrder, sentinel, |h| h.inversions += 1);
    }

    /// Records the lag the target's own clock gives a converged sentinel.
    pub fn on_applied(&self, seconds: f64) {
        if let Some(h) = &self.m.apply_lag {
            h.observe(seconds, None);
        }
    }

    /// Keeps a resolved probe's trace, dropping the oldest beyond [`trace::RING`].
    pub fn record(&self, trace: ProbeTrace) {
        let mut s = self.state();
        if s.traces.len() >= trace::RING {
            s.traces.pop_front();
        } else if s.traces.capacity() < trace::RING {
            // The whole ring at once (17.6 KB; its pages become resident as it fills): growing
            // by doubling left each path's outgrown buffers behind as holes in the heap, which
            // the scale bench saw as resident memory long after.
            let more = trace::RING - s.traces.len();
            s.traces.reserve_exact(more);
        }
        s.traces.push_back(trace);
    }

    /// What an outcome's reason on this path refers to.
    pub fn rules(&self) -> PathRules {
        PathRules {
            timeout: self.spec.timeout.get(),
            sync_grace: self.spec.sync_grace.map(|d| d.get()),
        }
    }

    /// Records how a sentinel ended on this path and frees its slot. A `resumed` probe (left
    /// in flight by an earlier process) counts its outcome, but its lag, measured on the wall
    /// clock across a restart, stays out of the lag histogram and the learned window.
    /// Returns the new "unseen since" when it changed (for the ledger).
    /// `sentinel` (its key) becomes the exemplar of the lag bucket it falls in.
    #[allow(clippy::too_many_arguments)]
    pub fn on_resolved(
        &self,
        sentinel: &str,
        seq: u64,
        acked: Instant,
        outcome: Outcome,
        estimate: Option<LagEstimate>,
        resumed: bool,
    ) -> Option<Option<Instant>> {
        let now = Instant::now();
        let mut s = self.state();
        let unseen_before = s.unseen_since;
        s.pending.remove(&seq);
        s.awaiting.remove(&seq);
        s.reserved = s.reserved.saturating_sub(1);
        self.m
            .in_flight
            .store(i64::from(s.reserved), Ordering::Relaxed);
        self.m.probe(outcome.index(), resumed);
        match outcome {
            Outcome::Converged | Outcome::Mismatch => {
                if s.unseen_since.is_some_and(|u| u <= acked) {
                    s.unseen_since = None;
                }
            }
            Outcome::Timeout | Outcome::Error | Outcome::Halted => {
                s.unseen_since = Some(s.unseen_since.map_or(acked, |u| u.min(acked)));
            }
        }
        if outcome == Outcome::Mismatch {
            s.last_error = Some(("mismatch", Utc::now()));
            s.last_error_message =
                Some("the target holds the sentinel with different content".into());
        }
        if resumed {
            if outcome == Outcome::Converged {
                let wall = Utc::now();
                self.m
                    .last_converged
                    .set(wall.timestamp_millis() as f64 / 1000.0);
                s.last_converged_at = Some(wall);
            }
        } else if let (Outcome::Converged, Some(e)) = (outcome, estimate) {
            let wall = Utc::now();
            self.m.lag.observe(
                e.lag.as_secs_f64(),
                Some(Exemplar {
                    sentinel: Arc::from(sentinel),
                    value: e.lag.as_secs_f64(),
                    timestamp: wall.timestamp_millis() as f64 / 1000.0,
                }),
            );
            if e.lag <= self.spec.objective.get() {
                self.m.within_objective.inc();
            }
            self.m.last_lag.set(e.lag.as_secs_f64());
            self.m.uncertainty.set(e.uncertainty.as_secs_f64());
            self.m
                .last_converged
                .set(wall.timestamp_millis() as f64 / 1000.0);
            s.last_converged_at = Some(wall);
            s.last_estimate = Some(e);
            s.recent.push_back(e.lag);
            if s.recent.len() > RECENT_LAGS {
                s.recent.pop_front();
            }
        }
        if s.last_probe.is_none_or(|l| seq >= l.seq) {
            s.last_probe = Some(LastProbe { seq, outcome });
        }
        if !resumed {
            let within = outcome == Outcome::Converged
                && estimate.is_some_and(|e| e.lag <= self.spec.objective.get());
            let wall = Utc::now();
            let slot = s.hours.at(wall);
            slot.probes += 1;
            slot.within_objective += u64::from(within);
            slot.seen += u64::from(matches!(outcome, Outcome::Converged | Outcome::Mismatch));
            if !within {
                history::keep(
                    &mut s.evidence,
                    Evidence {
                        at: wall,
                        kind: EvidenceKind::Late,
                        sentinel: Arc::from(sentinel),
                    },
                );
            }
        }
        let lag_seconds = match (outcome, estimate) {
            (Outcome::Converged, Some(e)) if !resumed => e.lag.as_secs_f32(),
            _ => f32::NAN,
        };
        s.remember(now, lag_seconds, outcome);
        self.m.staleness.set(s.staleness(now).as_secs_f64());
        (s.unseen_since != unseen_before).then_some(s.unseen_since)
    }

    /// The learned window of recent lags, if there is enough history.
    pub fn expectation(&self) -> Option<Expectation> {
        let s = self.state();
        let lags: Vec<Duration> = s.recent.iter().copied().collect();
        Expectation::from_recent(&lags)
    }

    /// The highest recent converged lag, once there are enough of them: with the 16 kept it
    /// stands for the path's recent p99 (reconciliation's settle window is derived from it).
    pub fn recent_high(&self) -> Option<Duration> {
        let s = self.state();
        if s.recent.len() < super::schedule::MIN_SAMPLES {
            return None;
        }
        s.recent.iter().copied().max()
    }

    /// Brings time-dependent gauges (staleness) up to `now`; called before each scrape.
    pub fn refresh(&self, now: Instant) {
        let mut s = self.state();
        s.prune(now);
        self.m.staleness.set(s.staleness(now).as_secs_f64());
        let status = s.status(now, self.spec.objective.get(), self.spec.timeout.get());
        self.m.set_state(status as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_an_hour_and_at_most_its_cap() {
        let mut s = PathState::default();
        let t0 = Instant::now();
        s.remember(t0, 1.5, Outcome::Converged);
        s.remember(t0 + Duration::from_secs(1800), f32::NAN, Outcome::Timeout);
        assert_eq!(s.history.len(), 2);
        assert_eq!(s.history[0].lag(), Some(1.5));
        assert_eq!(s.history[1].lag(), None);
        // An hour and a bit after the first: it ages out, on a scrape as on a probe.
        s.prune(t0 + HISTORY_AGE + Duration::from_millis(200));
        assert_eq!(s.history.len(), 1);
        assert_eq!(s.history[0].outcome, Outcome::Timeout);
        let t1 = t0 + Duration::from_secs(1801);
        for i in 0..HISTORY as u64 + 5 {
            s.remember(t1 + Duration::from_millis(i), 0.1, Outcome::Converged);
        }
        assert_eq!(s.history.len(), HISTORY);
        assert_eq!(std::mem::size_of::<Resolved>(), 12);
    }
}
