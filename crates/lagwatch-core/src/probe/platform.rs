//! The platform's own status beside the canary: a path's `platform_status:` surface is read
//! every `interval`, and each claim is judged against what the path's sentinels show.
//!
//! Times a platform reports are on its clock; they are moved onto lagwatch's by the system's
//! clock offset estimate before anything is compared, and each comparison allows the path's
//! `grace` plus the offset's uncertainty. A surface that counts syncs instead of timing them
//! (Elasticsearch's refreshes) gives a sync between two reads: after the earlier, by the later;
//! a count that does not move says no sync since the read that first showed it.
//!
//! [`judge`] is the pure verdict, one of:
//!
//! | verdict | when |
//! |---|---|
//! | `healthy_but_stuck` | a sentinel unseen past the objective, while the platform says healthy and claims a sync `grace` or more after that sentinel's write |
//! | `explained` | a sentinel unseen past the objective, and the platform reports an error, a pause, not running, or no sync since the write |
//! | `watermark_passed_canary_missing` | a sentinel unseen past the objective whose row version the platform's watermark has passed |
//! | `status_stale` | sentinels arrive, but the platform reports an error, a pause or not running, or its last sync is older than a sentinel written `grace` after it that had already arrived when the platform was read |
//! | `agree` | sentinels arrive and the platform says healthy with a sync no older than them |
//! | `unknown` | no claim yet, the last read failed, or a state lagwatch cannot map |

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

use super::cycle::admitted;
use super::path::PathHandle;
use crate::config::platform::StatusSpec;
use crate::connector::status::{Claim, ClaimState, StatusReader};
use crate::gate::Gate;
use crate::metrics::Metrics;

/// Claims kept per path for the API: at the default minute, two hours.
const KEPT: usize = 120;

/// A verdict on a path's canary and its platform's claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Agree,
    Explained,
    HealthyButStuck,
    WatermarkPassedCanaryMissing,
    StatusStale,
    Unknown,
}

impl Verdict {
    /// Every verdict, in the order of the `verdict` label of `lagwatch_status_verdict`.
    pub const ALL: [Verdict; 6] = [
        Verdict::Agree,
        Verdict::Explained,
        Verdict::HealthyButStuck,
        Verdict::WatermarkPassedCanaryMissing,
        Verdict::StatusStale,
        Verdict::Unknown,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Verdict::Agree => "agree",
            Verdict::Explained => "explained",
            Verdict::HealthyButStuck => "healthy_but_stuck",
            Verdict::WatermarkPassedCanaryMissing => "watermark_passed_canary_missing",
            Verdict::StatusStale => "status_stale",
            Verdict::Unknown => "unknown",
        }
    }
}

/// One read of the surface, as kept.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimRecord {
    /// When lagwatch read it (its wall clock).
    pub read_at: DateTime<Utc>,
    pub claim: Claim,
    /// The platform's last sync on lagwatch's clock: it happened after `sync_after` and, as
    /// far as the platform says, by `sync_by` (equal for a surface that times its syncs).
    pub sync_after: Option<DateTime<Utc>>,
    pub sync_by: Option<DateTime<Utc>>,
    /// The offset applied (the system's clock minus lagwatch's), when known.
    pub clock_offset_seconds: Option<f64>,
}

/// What a path's sentinels show, for [`judge`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Canary {
    /// The acknowledgement (lagwatch's wall clock) of the oldest sentinel not yet seen, when
    /// it has been unseen for longer than the objective.
    pub stuck_since: Option<DateTime<Utc>>,
    /// The row version the source gave that sentinel, when the source reports one.
    pub stuck_version: Option<u64>,
    /// The newest sentinel known to have arrived before the claim was read: its
    /// acknowledgement.
    pub arrived_written: Option<DateTime<Utc>>,
}

/// The verdict on `canary` and the latest `claim` (`None`: no claim yet, or the last read
/// failed), allowing `tolerance` between times, with why in words.
pub fn judge(
    canary: Canary,
    claim: Option<&ClaimRecord>,
    tolerance: Duration,
) -> (Verdict, String) {
    let Some(c) = claim else {
        return (Verdict::Unknown, "no readable platform status".to_string());
    };
    let tol = chrono::Duration::from_std(tolerance).unwrap_or_default();
    let state = c.claim.state;
    if let Some(since) = canary.stuck_since {
        if let (Some(v), Some(w)) = (canary.stuck_version, c.claim.watermark)
            && w >= v
        {
            return (
                Verdict::WatermarkPassedCanaryMissing,
                format!("the platform's watermark {w} passed the missing sentinel's version {v}"),
            );
        }
        return match state {
            ClaimState::Error | ClaimState::Paused | ClaimState::NotRunning => (
                Verdict::Explained,
                format!("stuck, and the platform says {}", state.label()),
            ),
            ClaimState::Unknown => (
                Verdict::Unknown,
                format!(
                    "stuck; the platform's state {} is not one lagwatch maps",
                    c.claim.raw
                ),
            ),
            ClaimState::Healthy => match c.sync_after {
                Some(after) if after >= since + tol => (
                    Verdict::HealthyButStuck,
                    format!(
                        "stuck since {}, while the platform says healthy and synced at {}",
                        since.format("%H:%M:%S"),
                        after.format("%H:%M:%S")
                    ),
                ),
                Some(after) => (
                    Verdict::Explained,
                    format!(
                        "stuck, and the platform's last sync ({}) was before the write",
                        after.format("%H:%M:%S")
                    ),
                ),
                None => (
                    Verdict::Explained,
                    "stuck, and the platform reports no sync since the write".to_string(),
                ),
            },
        };
    }
    let Some(written) = canary.arrived_written else {
        return (Verdict::Unknown, "no sentinel has arrived yet".to_string());
    };
    match state {
        ClaimState::Error | ClaimState::Paused | ClaimState::NotRunning => (
            Verdict::StatusStale,
            format!("sentinels arrive, but the platform says {}", state.label()),
        ),
        ClaimState::Unknown => (
            Verdict::Unknown,
            format!(
                "the platform's state {} is not one lagwatch maps",
                c.claim.raw
            ),
        ),
        ClaimState::Healthy => match c.sync_by {
            Some(by) if written > by + tol => (
                Verdict::StatusStale,
                format!(
                    "a sentinel written at {} had arrived, but the platform's last sync is {}",
                    written.format("%H:%M:%S"),
                    by.format("%H:%M:%S")
                ),
            ),
            _ => (
                Verdict::Agree,
                "sentinels arrive and the platform says healthy".to_string(),
            ),
        },
    }
}

/// When the last sync happened, for a surface that counts syncs (`n` at a read at `now`):
/// after `sync_after` and by `sync_by`. A count grown since the read before puts a sync
/// between the two; an unchanged count keeps what the read that first showed it said, so a
/// count that never moves says no sync since that read; a first read (or a count that went
/// down: a restart) says only that the last one was by now.
fn counted_sync(
    prev: Option<&ClaimRecord>,
    n: u64,
    now: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    match prev.and_then(|p| p.claim.syncs.map(|count| (p, count))) {
        Some((p, count)) if n > count => (Some(p.read_at), Some(now)),
        Some((p, count)) if n == count => (p.sync_after, p.sync_by),
        _ => (None, Some(now)),
    }
}

/// A path's platform status: its reader, the claims read, and the verdict.
pub struct PlatformWatch {
    pub spec: StatusSpec,
    pub path: Arc<PathHandle>,
    reader: Arc<dyn StatusReader>,
    gate: Arc<Gate>,
    metrics: Metrics,
    state: Mutex<WatchState>,
}

#[derive(Default)]
struct WatchState {
    claims: VecDeque<ClaimRecord>,
    /// The last read failed: its error kind and message.
    failing: Option<(&'static str, String)>,
    verdict: Option<(Verdict, String)>,
}

/// What the API shows of a path's platform status.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformView {
    pub surface: &'static str,
    pub system: String,
    pub verdict: Verdict,
    pub why: String,
    pub latest: Option<ClaimRecord>,
    /// The last read's error, when it failed.
    pub error: Option<String>,
}

impl PlatformWatch {
    pub fn new(
        spec: StatusSpec,
        path: Arc<PathHandle>,
        reader: Arc<dyn StatusReader>,
        gate: Arc<Gate>,
        metrics: Metrics,
    ) -> Self {
        metrics
            .platform
            .init(&path.spec.source, &path.spec.target, spec.surface.name());
        PlatformWatch {
            spec,
            path,
            reader,
            gate,
            metrics,
            state: Mutex::default(),
        }
    }

    fn labels(&self) -> [&str; 3] {
        [
            self.path.spec.source.as_str(),
            self.path.spec.target.as_str(),
            self.spec.surface.name(),
        ]
    }

    /// Reads the surface every `interval` until shutdown.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            self.read_once(&shutdown).await;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = sleep(self.spec.interval.get()) => {}
            }
        }
    }

    /// One read of the surface, kept and judged.
    pub async fn read_once(&self, shutdown: &CancellationToken) {
        let limit = self.path.spec.request_timeout.get();
        let Some(read) = admitted(&self.gate, limit, shutdown, self.reader.read()).await else {
            return;
        };
        let [source, target, surface] = self.labels();
        match read {
            Ok(claim) => {
                let offset = self.metrics.clock_offset_of(&self.spec.system);
                let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let now = Utc::now();
                let record = self.record(&st.claims, claim, now, offset);
                self.metrics.platform.claimed(
                    (source, target, surface),
                    record.claim.state,
                    record.sync_by,
                    record.claim.watermark,
                );
                st.failing = None;
                if st.claims.len() >= KEPT {
                    st.claims.pop_front();
                }
                st.claims.push_back(record);
            }
            Err(e) => {
                tracing::warn!(
                    source, target, surface, system = %self.spec.system, error = %e,
                    "Reading the platform's status failed; check the permission docs/platform-status.md names for this surface."
                );
                self.metrics
                    .platform
                    .errors
                    .with_label_values(&[source, target, surface, e.kind()])
                    .inc();
                let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                st.failing = Some((e.kind(), e.to_string()));
            }
        }
        self.refresh();
    }

    /// A claim read at `now`, its times on lagwatch's clock.
    fn record(
        &self,
        earlier: &VecDeque<ClaimRecord>,
        claim: Claim,
        now: DateTime<Utc>,
        offset: Option<f64>,
    ) -> ClaimRecord {
        let shift = |t: DateTime<Utc>| {
            t - chrono::Duration::milliseconds((offset.unwrap_or(0.0) * 1000.0).round() as i64)
        };
        let (sync_after, sync_by) = match (claim.last_sync, claim.syncs) {
            (Some(t), _) => (Some(shift(t)), Some(shift(t))),
            (None, Some(n)) => counted_sync(earlier.back(), n, now),
            (None, None) => (None, None),
        };
        ClaimRecord {
            read_at: now,
            claim,
            sync_after,
            sync_by,
            clock_offset_seconds: offset,
        }
    }

    /// What the path's sentinels show now.
    fn canary(&self, read_at: Option<DateTime<Utc>>) -> Canary {
        let now = Instant::now();
        let wall = Utc::now();
        let st = self.path.state();
        let staleness = st.staleness(now);
        let stuck_since = (staleness > self.path.spec.objective.get())
            .then(|| wall - chrono::Duration::from_std(staleness).unwrap_or_default());
        // The oldest pending sentinel is the one unseen longest (or one written after it,
        // when that one resolved unseen): its version, if the source gave one.
        let stuck_version = stuck_since
            .and(st.pending.keys().next())
            .and_then(|seq| st.versions.get(seq).copied());
        let arrived_written = st
            .traces
            .iter()
            .rev()
            .filter(|t| t.outcome == super::Outcome::Converged)
            .filter_map(|t| {
                let e = t.estimate()?;
                let seen = t.acked_at()
                    + chrono::Duration::from_std(e.lag + e.uncertainty).unwrap_or_default();
                read_at.is_none_or(|r| seen <= r).then(|| t.acked_at())
            })
            .next();
        Canary {
            stuck_since,
            stuck_version,
            arrived_written,
        }
    }

    /// Judges the latest claim against the canary now and exports the verdict.
    pub fn refresh(&self) {
        let (latest, failing) = {
            let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            (st.claims.back().cloned(), st.failing.is_some())
        };
        let claim = latest.as_ref().filter(|_| !failing);
        let canary = self.canary(claim.map(|c| c.read_at));
        let uncertainty = self
            .metrics
            .clock_offset_uncertainty
            .get_metric_with_label_values(&[&self.spec.system])
            .map(|g| g.get())
            .unwrap_or(0.0);
        let tolerance = self.spec.grace.get() + Duration::from_secs_f64(uncertainty.max(0.0));
        let (verdict, why) = judge(canary, claim, tolerance);
        let [source, target, _] = self.labels();
        self.metrics
            .platform
            .verdict(source, target, verdict.label());
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.verdict = Some((verdict, why));
    }

    /// The claims kept, oldest first.
    pub fn claims(&self) -> Vec<ClaimRecord> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.claims.iter().cloned().collect()
    }

    pub fn view(&self) -> PlatformView {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (verdict, why) = st
            .verdict
            .clone()
            .unwrap_or((Verdict::Unknown, "not read yet".to_string()));
        PlatformView {
            surface: self.spec.surface.name(),
            system: self.spec.system.clone(),
            verdict,
            why,
            latest: st.claims.back().cloned(),
            error: st.failing.as_ref().map(|(_, m)| m.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).expect("a time")
    }

    fn claim(state: ClaimState, sync: Option<i64>, read: i64) -> ClaimRecord {
        ClaimRecord {
            read_at: at(read),
            claim: Claim {
                state,
                raw: "raw".to_string(),
                last_sync: sync.map(at),
                watermark: None,
                syncs: None,
                detail: None,
            },
            sync_after: sync.map(at),
            sync_by: sync.map(at),
            clock_offset_seconds: Some(0.0),
        }
    }

    fn stuck(since: i64) -> Canary {
        Canary {
            stuck_since: Some(at(since)),
            stuck_version: None,
            arrived_written: None,
        }
    }

    fn flowing(written: i64) -> Canary {
        Canary {
            stuck_since: None,
            stuck_version: None,
            arrived_written: Some(at(written)),
        }
    }

    const TOL: Duration = Duration::from_secs(10);

    #[test]
    fn a_stuck_canary_is_explained_by_an_unhealthy_platform_or_no_sync_since_the_write() {
        for state in [
            ClaimState::Error,
            ClaimState::Paused,
            ClaimState::NotRunning,
        ] {
            let c = claim(state, Some(200), 300);
            assert_eq!(judge(stuck(100), Some(&c), TOL).0, Verdict::Explained);
        }
        // Healthy, but its last sync was before the write (or within the grace after it).
        let c = claim(ClaimState::Healthy, Some(105), 300);
        assert_eq!(judge(stuck(100), Some(&c), TOL).0, Verdict::Explained);
        let c = claim(ClaimState::Healthy, None, 300);
        assert_eq!(judge(stuck(100), Some(&c), TOL).0, Verdict::Explained);
    }

    #[test]
    fn healthy_with_a_sync_after_the_write_while_stuck_is_the_headline() {
        let c = claim(ClaimState::Healthy, Some(110), 300);
        assert_eq!(judge(stuck(100), Some(&c), TOL).0, Verdict::HealthyButStuck);
    }

    #[test]
    fn a_watermark_past_the_missing_sentinels_version_is_the_strongest_evidence() {
        let mut c = claim(ClaimState::Healthy, Some(90), 300);
        c.claim.watermark = Some(5000);
        let mut canary = stuck(100);
        canary.stuck_version = Some(4999);
        assert_eq!(
            judge(canary, Some(&c), TOL).0,
            Verdict::WatermarkPassedCanaryMissing
        );
        canary.stuck_version = Some(5001);
        assert_eq!(judge(canary, Some(&c), TOL).0, Verdict::Explained);
    }

    #[test]
    fn flowing_sentinels_make_an_unhealthy_or_lagging_status_stale() {
        let c = claim(ClaimState::Error, Some(290), 300);
        assert_eq!(judge(flowing(280), Some(&c), TOL).0, Verdict::StatusStale);
        // A sentinel written 20 s after the platform's last sync had already arrived.
        let c = claim(ClaimState::Healthy, Some(200), 300);
        assert_eq!(judge(flowing(220), Some(&c), TOL).0, Verdict::StatusStale);
        // Within the tolerance: agree.
        let c = claim(ClaimState::Healthy, Some(215), 300);
        assert_eq!(judge(flowing(220), Some(&c), TOL).0, Verdict::Agree);
    }

    #[test]
    fn no_claim_or_an_unmapped_state_is_no_verdict() {
        assert_eq!(judge(stuck(100), None, TOL).0, Verdict::Unknown);
        let c = claim(ClaimState::Unknown, Some(200), 300);
        assert_eq!(judge(stuck(100), Some(&c), TOL).0, Verdict::Unknown);
        assert_eq!(judge(flowing(100), Some(&c), TOL).0, Verdict::Unknown);
        let c = claim(ClaimState::Healthy, Some(200), 300);
        let nothing = Canary {
            stuck_since: None,
            stuck_version: None,
            arrived_written: None,
        };
        assert_eq!(judge(nothing, Some(&c), TOL).0, Verdict::Unknown);
    }

    #[test]
    fn a_count_of_syncs_dates_the_last_one_between_reads_and_a_frozen_count_from_its_first() {
        let read = |secs: i64, syncs: u64| {
            let mut c = claim(ClaimState::Healthy, None, secs);
            c.claim.syncs = Some(syncs);
            c
        };
        // First read: the last sync was by then, no earlier bound.
        assert_eq!(counted_sync(None, 7, at(100)), (None, Some(at(100))));
        // Grown since the read at 100: a sync between 100 and 130.
        let mut first = read(100, 7);
        (first.sync_after, first.sync_by) = (None, Some(at(100)));
        assert_eq!(
            counted_sync(Some(&first), 9, at(130)),
            (Some(at(100)), Some(at(130)))
        );
        // Unchanged: still the bounds of the read that first showed the count.
        let mut second = read(130, 9);
        (second.sync_after, second.sync_by) = (Some(at(100)), Some(at(130)));
        assert_eq!(
            counted_sync(Some(&second), 9, at(160)),
            (Some(at(100)), Some(at(130)))
        );
        // Gone down (the cluster restarted): only "by now".
        assert_eq!(
            counted_sync(Some(&second), 2, at(190)),
            (None, Some(at(190)))
        );
        // A frozen count makes a sentinel written after its first read and arrived stale.
        let mut frozen = read(160, 9);
        (frozen.sync_after, frozen.sync_by) = (Some(at(100)), Some(at(130)));
        assert_eq!(
            judge(flowing(150), Some(&frozen), TOL).0,
            Verdict::StatusStale
        );
    }
}
