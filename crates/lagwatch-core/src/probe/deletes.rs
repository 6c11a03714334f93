//! Delete propagation (the `deletes` guarantee): after a sentinel's delete is acknowledged,
//! every target that had shown it is read until the row is gone.
//!
//! The delete lag is estimated exactly as a write's lag, with the roles of the reads swapped:
//! the last read that still found the row bounds it from below, the first read that found it
//! gone from above, and the midpoint is reported with half the interval as its uncertainty.
//! After the first absent read the target is read again for the path's `confirm` window: a row
//! that comes back is a resurrection, and the delete is watched on as if it had not arrived (its
//! lag is then measured to the last read that found the row). A
//! row still there at the read at the end of the window (`contract.deletes`, else the path's
//! timeout) is a lost delete: its lag is not known, so none is reported. Failed reads are no
//! observation, as for writes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::time::{Instant, sleep_until};

use super::cycle::{Cycle, bounded, note, wall_of};
use super::estimate::{self, LagEstimate};
use super::path::PathHandle;
use super::schedule;
use crate::connector::Lookup;
use crate::gate::NotAdmitted;
use crate::sentinel::Sentinel;

/// How watching a delete ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteOutcome {
    /// Read absent, and still absent through the confirm window.
    Gone,
    /// Still there at the read at the end of the delete window.
    Lost,
    /// No read at the end of the window got an answer: whether it went is not known.
    Unknown,
}

/// How one sentinel's delete went on one path, kept beside its probe's trace.
#[derive(Debug, Clone, Copy)]
pub struct DeleteTrace {
    /// The probe (`ProbeTrace::seq`) whose sentinel was deleted.
    pub seq: u64,
    /// When the source acknowledged the delete, on lagwatch's wall clock.
    pub acked_at: DateTime<Utc>,
    pub outcome: DeleteOutcome,
    pub estimate: Option<LagEstimate>,
    pub reads: u16,
    pub resurrections: u16,
}

/// A delete as `/api/v1/probes` shows it under its probe.
#[derive(Debug, Clone, Serialize)]
pub struct DeleteView {
    pub acknowledged_at: String,
    pub outcome: DeleteOutcome,
    pub lag_seconds: Option<f64>,
    pub lag_uncertainty_seconds: Option<f64>,
    pub reads: u16,
    pub resurrections: u16,
}

impl DeleteTrace {
    pub fn view(&self) -> DeleteView {
        DeleteView {
            acknowledged_at: self
                .acked_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            outcome: self.outcome,
            lag_seconds: self.estimate.map(|e| e.lag.as_secs_f64()),
            lag_uncertainty_seconds: self.estimate.map(|e| e.uncertainty.as_secs_f64()),
            reads: self.reads,
            resurrections: self.resurrections,
        }
    }
}

/// How a watch ends when no read at the end of its window got an answer: gone if a read had
/// found the row gone (and none has found it back since), else unknown.
fn without_a_last_read(
    gone: Option<(Instant, LagEstimate)>,
) -> (DeleteOutcome, Option<LagEstimate>) {
    match gone {
        Some((_, est)) => (DeleteOutcome::Gone, Some(est)),
        None => (DeleteOutcome::Unknown, None),
    }
}

impl Cycle {
    /// Reads `path`'s target after the delete of `sentinel` (sent at `sent`, acknowledged at
    /// `acked`) until it is gone for the confirm window, or until the read at `acked + window`
    /// settles it (module docs). Shutdown ends the watch with nothing recorded.
    pub(crate) async fn watch_delete(
        &self,
        path: &PathHandle,
        sentinel: &Sentinel,
        sent: Instant,
        acked: Instant,
        window: Duration,
    ) {
        let spec = &path.spec;
        let deadline = acked + window;
        let confirm = spec.confirm.get();
        let confirm_gap = (confirm / 3).max(spec.poll.min_gap);
        let request_timeout = spec.request_timeout.get();
        let expect = path.expectation();
        let mut prev: Option<Duration> = None;
        let mut last_present: Option<Instant> = None;
        let mut gone: Option<(Instant, LagEstimate)> = None;
        let mut reads: u16 = 0;
        let mut resurrections: u16 = 0;
        let acked_at = wall_of(acked);
        let finish = |outcome: DeleteOutcome,
                      estimate: Option<LagEstimate>,
                      reads: u16,
                      resurrections: u16| {
            match outcome {
                DeleteOutcome::Gone => {
                    tracing::debug!(source = %spec.source, target = %spec.target, sentinel = %sentinel.id, reads, delete_lag_seconds = estimate.map(|e| e.lag.as_secs_f64()), "Delete arrived.");
                }
                DeleteOutcome::Lost => {
                    tracing::warn!(source = %spec.source, target = %spec.target, sentinel = %sentinel.id, reads, window_seconds = window.as_secs_f64(), declared = spec.contract.deletes.is_some(), "Delete lost: the target still shows a deleted sentinel at the end of its delete window.");
                }
                DeleteOutcome::Unknown => {
                    tracing::debug!(source = %spec.source, target = %spec.target, sentinel = %sentinel.id, reads, "Delete not settled: no read at the end of its window got an answer.");
                }
            }
            path.on_delete(
                sentinel.id.key(),
                DeleteTrace {
                    seq: self.seq,
                    acked_at,
                    outcome,
                    estimate,
                    reads,
                    resurrections,
                },
            );
        };

        loop {
            let offset = match (gone, prev) {
                (Some(_), Some(p)) => p + confirm_gap,
                // Deletes usually travel the path's pipeline as writes do: the window learned
                // from its lags places the reads.
                _ => schedule::next_offset(prev, &spec.poll, expect.as_ref(), rand::random()),
            };
            let at = (acked + offset).min(deadline);
            if let Some((gone_at, est)) = gone
                && (acked + offset >= gone_at + confirm || acked + offset >= deadline)
            {
                return finish(DeleteOutcome::Gone, Some(est), reads, resurrections);
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = sleep_until(at) => {}
            }
            let limit = deadline.saturating_duration_since(Instant::now()) + request_timeout;
            let permit = match path.gate.admit_within(limit, &self.shutdown).await {
                Ok(permit) => permit,
                Err(NotAdmitted::ShuttingDown) => return,
                Err(NotAdmitted::TimedOut) => {
                    let (outcome, est) = without_a_last_read(gone);
                    return finish(outcome, est, reads, resurrections);
                }
            };
            let req_sent = Instant::now();
            prev = Some(req_sent.saturating_duration_since(acked).max(at - acked));
            let at_deadline = req_sent >= deadline;
            let result = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                r = bounded(request_timeout, path.target.lookup(&sentinel.id)) => r,
            };
            let req_answered = Instant::now();
            drop(permit);
            note(&path.gate, &result);
            reads = reads.saturating_add(1);
            match result {
                Ok(Lookup::Absent) => {
                    if gone.is_none() {
                        gone = Some((
                            req_answered,
                            estimate::estimate(sent, acked, last_present, req_answered),
                        ));
                    }
                    if confirm.is_zero() || at_deadline {
                        let est = gone.map(|(_, e)| e);
                        return finish(DeleteOutcome::Gone, est, reads, resurrections);
                    }
                }
                Ok(Lookup::Present { .. }) => {
                    if gone.take().is_some() {
                        resurrections = resurrections.saturating_add(1);
                        path.on_resurrection(sentinel.id.key());
                        tracing::warn!(source = %spec.source, target = %spec.target, sentinel = %sentinel.id, declared = spec.contract.deletes.is_some(), "Deleted sentinel came back: the target showed it again after a read found it gone; watching the delete on.");
                    }
                    last_present = Some(req_sent);
                    if at_deadline {
                        return finish(DeleteOutcome::Lost, None, reads, resurrections);
                    }
                }
                Err(e) => {
                    path.on_lookup_error(e.kind(), &e.to_string());
                    tracing::debug!(source = %spec.source, target = %spec.target, sentinel = %sentinel.id, error = %e, "Lookup after a delete failed.");
                    if at_deadline {
                        let (outcome, est) = without_a_last_read(gone);
                        return finish(outcome, est, reads, resurrections);
                    }
                }
            }
        }
    }
}
