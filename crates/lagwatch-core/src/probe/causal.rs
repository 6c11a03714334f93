//! Causal pairs (contract measure M8, the `causal` guarantee): a parent sentinel, and once the
//! source acknowledged it, a child sentinel that references it; every target of the source
//! group is then read for both until both are seen.
//!
//! A read that shows the child and not its parent is a violation: a reader of the target saw
//! an effect before its cause. It is **certain** when one read answered for both keys (one
//! query, one search request, one lake scan: `Target::reads_together`), and only
//! **suspected** when the target was read for each in turn; the child is read first then, so
//! a parent absent from the later read was absent when the child was seen too, unless the
//! target lost it in between. A pair with both seen and no such read is ordered; its gap is
//! from the first read that found the parent to the first that found the child (answer
//! instants; 0 when one read found both). A pair not wholly seen by the path's timeout is
//! incomplete: no verdict. Failed reads are no observation, as everywhere.
//!
//! A pair is written every `pair_interval` per source group (the shortest of its paths'), the
//! first one interval after start-up. Both sentinels are ordinary sentinel keys: deleted (child
//! first) once every path is done, owed to the janitor when a delete fails, and found by the
//! next start-up sweep if the process stops in between. A child the source refuses (a lookup
//! that does not resolve) is a write error, not a violation.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::future::join_all;
use serde::Serialize;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use super::cycle::{
    Debt, Owed, admitted, bounded, delete_sentinel, lookup_together, note, wall_of,
};
use super::path::PathHandle;
use super::schedule;
use crate::connector::{ConnectorError, Lookup, Source, Target};
use crate::gate::{Gate, NotAdmitted};
use crate::metrics::Metrics;
use crate::sentinel::{Sentinel, SentinelId};

/// How a pair ended on one path (`lagwatch_causal_pairs_total{result}`, in `PAIR_RESULTS`
/// order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PairResult {
    Ordered,
    Violated,
    Incomplete,
}

/// How sure a violation is (`CERTAINTIES` order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Certainty {
    /// One read answered for both keys.
    Certain,
    /// The child and the parent were read one after the other.
    Suspected,
}

/// How one pair went on one path, kept in the path's ring for `/api/v1/pairs`.
#[derive(Debug, Clone)]
pub struct PairTrace {
    pub parent: SentinelId,
    pub child: SentinelId,
    /// When the source acknowledged the child, on lagwatch's wall clock.
    pub acked_at: DateTime<Utc>,
    pub result: PairResult,
    pub certainty: Option<Certainty>,
    /// From the child's acknowledgement to the first read that found each (its answer).
    pub parent_seen: Option<Duration>,
    pub child_seen: Option<Duration>,
    pub reads: u16,
}

impl PairTrace {
    /// The ordered pair's gap: child first seen minus parent first seen.
    pub fn gap(&self) -> Option<Duration> {
        match (self.result, self.parent_seen, self.child_seen) {
            (PairResult::Ordered, Some(p), Some(c)) => Some(c.saturating_sub(p)),
            _ => None,
        }
    }

    pub fn view(&self, source: &str, target: &str) -> PairView {
        PairView {
            source: source.to_string(),
            target: target.to_string(),
            parent: self.parent.key().to_string(),
            child: self.child.key().to_string(),
            acknowledged_at: self.acked_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            result: self.result,
            certainty: self.certainty,
            parent_seen_after_seconds: self.parent_seen.map(|d| d.as_secs_f64()),
            child_seen_after_seconds: self.child_seen.map(|d| d.as_secs_f64()),
            gap_seconds: self.gap().map(|d| d.as_secs_f64()),
            reads: self.reads,
        }
    }
}

/// A pair as `/api/v1/pairs` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PairView {
    pub source: String,
    pub target: String,
    pub parent: String,
    pub child: String,
    pub acknowledged_at: String,
    pub result: PairResult,
    pub certainty: Option<Certainty>,
    pub parent_seen_after_seconds: Option<f64>,
    pub child_seen_after_seconds: Option<f64>,
    pub gap_seconds: Option<f64>,
    pub reads: u16,
}

/// What one read said of the pair: (parent, child) present, or `None` if it failed.
fn judge(parent: &Lookup, child: &Lookup) -> (bool, bool) {
    (
        matches!(parent, Lookup::Present { .. }),
        matches!(child, Lookup::Present { .. }),
    )
}

/// Everything a source group's pair writer needs.
pub(crate) struct PairWriter {
    pub instance: Arc<str>,
    pub source_name: Arc<str>,
    pub source: Arc<dyn Source>,
    pub gate: Arc<Gate>,
    pub metrics: Metrics,
    pub owed: Arc<Owed>,
    pub paths: Vec<Arc<PathHandle>>,
    pub every: Duration,
    pub request_timeout: Duration,
    /// How long after an unanswered write its record may still appear.
    pub unknown_write_grace: chrono::Duration,
}

impl PairWriter {
    /// Writes a pair every `every` until shutdown; each pair is read and deleted in a task of
    /// its own on `tracker`, so a slow path never delays the next pair.
    pub(crate) async fn run(
        self: Arc<Self>,
        tracker: tokio_util::task::TaskTracker,
        shutdown: CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = sleep(self.every) => {}
            }
            let Some((parent, child, acked)) = self.write_pair(&shutdown).await else {
                continue;
            };
            let me = self.clone();
            let shutdown = shutdown.clone();
            tracker.spawn(async move { me.follow(parent, child, acked, shutdown).await });
        }
    }

    /// One write through the gate; `None` when it was not sent (not admitted, shutdown).
    async fn send(
        &self,
        write: impl Future<Output = Result<(), ConnectorError>>,
        shutdown: &CancellationToken,
    ) -> Option<Result<Instant, ConnectorError>> {
        let written = admitted(&self.gate, self.request_timeout, shutdown, write).await?;
        let acked = Instant::now();
        Some(written.map(|()| acked))
    }

    /// Writes the parent, then the child; the child's acknowledgement, or `None` when the
    /// pair could not be written (what may exist is owed to the janitor).
    async fn write_pair(
        &self,
        shutdown: &CancellationToken,
    ) -> Option<(Sentinel, Sentinel, Instant)> {
        let parent = Sentinel::new(&self.instance, 0, Utc::now());
        match self.send(self.source.write(&parent), shutdown).await? {
            Ok(_) => {}
            Err(e) => {
                self.failed("parent", &parent, &e);
                return None;
            }
        }
        let child = Sentinel::new(&self.instance, 1, Utc::now());
        let written = self
            .send(self.source.write_child(&child, &parent.id), shutdown)
            .await;
        match written {
            Some(Ok(acked)) => Some((parent, child, acked)),
            Some(Err(e)) => {
                self.failed("child", &child, &e);
                self.owe(&parent.id, None);
                None
            }
            None => {
                self.owe(&parent.id, None);
                None
            }
        }
    }

    /// A pair's write failed: a refused one (429) wrote nothing; any other may still land.
    fn failed(&self, which: &str, s: &Sentinel, e: &ConnectorError) {
        tracing::warn!(source = %self.source_name, sentinel = %s.id, error = %e, "Causal pair not written: the {which}'s write failed.");
        if !matches!(e, ConnectorError::Throttled { .. }) {
            self.owe(&s.id, Some(s.written_at + self.unknown_write_grace));
        }
    }

    fn owe(&self, id: &SentinelId, repeat_until: Option<DateTime<Utc>>) {
        self.owed.push(Debt {
            source: self.source_name.clone(),
            id: id.clone(),
            repeat_until,
        });
    }

    /// Reads every path for the pair, then deletes it (child first).
    async fn follow(
        &self,
        parent: Sentinel,
        child: Sentinel,
        acked: Instant,
        shutdown: CancellationToken,
    ) {
        let reads = self
            .paths
            .iter()
            .map(|p| read_pair(p, &parent.id, &child.id, acked, &shutdown));
        join_all(reads).await;
        for s in [&child, &parent] {
            let deleted = delete_sentinel(
                &self.source_name,
                self.source.as_ref(),
                &self.gate,
                &self.metrics,
                &s.id,
                self.request_timeout,
                &shutdown,
            )
            .await;
            if let Err(e) = deleted {
                tracing::debug!(source = %self.source_name, sentinel = %s.id, outcome = e.outcome(), "A causal pair's delete failed; it is retried.");
                self.owe(&s.id, None);
            }
        }
    }
}

/// Reads `path`'s target for a pair whose child was acknowledged at `acked`, on the path's
/// schedule, until both are seen or the path's timeout; records the result on the path.
/// Shutdown ends it with nothing recorded.
async fn read_pair(
    path: &PathHandle,
    parent: &SentinelId,
    child: &SentinelId,
    acked: Instant,
    shutdown: &CancellationToken,
) {
    let spec = &path.spec;
    let deadline = acked + spec.timeout.get();
    let request_timeout = spec.request_timeout.get();
    let together = path.target.reads_together();
    let expect = path.expectation();
    let mut trace = PairTrace {
        parent: parent.clone(),
        child: child.clone(),
        acked_at: wall_of(acked),
        result: PairResult::Incomplete,
        certainty: None,
        parent_seen: None,
        child_seen: None,
        reads: 0,
    };
    let mut prev: Option<Duration> = None;
    loop {
        let offset = schedule::next_offset(prev, &spec.poll, expect.as_ref(), rand::random());
        let at = (acked + offset).min(deadline);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = sleep_until(at) => {}
        }
        let limit = deadline.saturating_duration_since(Instant::now()) + request_timeout;
        let permit = match path.gate.admit_within(limit, shutdown).await {
            Ok(permit) => permit,
            Err(NotAdmitted::ShuttingDown) => return,
            Err(NotAdmitted::TimedOut) => break,
        };
        let sent = Instant::now();
        prev = Some(sent.saturating_duration_since(acked).max(at - acked));
        let at_deadline = sent >= deadline;
        let read = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = read_both(path.target.as_ref(), parent, child, together, request_timeout) => r,
        };
        let answered = Instant::now();
        drop(permit);
        note(&path.gate, &read);
        trace.reads = trace.reads.saturating_add(1);
        match read {
            Ok((p, c)) => {
                let (p, c) = judge(&p, &c);
                let since = answered.saturating_duration_since(acked);
                if p && trace.parent_seen.is_none() {
                    trace.parent_seen = Some(since);
                }
                if c && trace.child_seen.is_none() {
                    trace.child_seen = Some(since);
                }
                if c && !p && trace.certainty.is_none() {
                    let certainty = if together {
                        Certainty::Certain
                    } else {
                        Certainty::Suspected
                    };
                    trace.certainty = Some(certainty);
                    tracing::warn!(source = %spec.source, target = %spec.target, sentinel = %child, parent = %parent, ?certainty, declared = spec.contract.causal, "Causal violation: a read of the target showed a child without the parent it references.");
                }
                if trace.parent_seen.is_some() && trace.child_seen.is_some() {
                    break;
                }
            }
            Err(e) => {
                path.on_lookup_error(e.kind(), &e.to_string());
                tracing::debug!(source = %spec.source, target = %spec.target, sentinel = %child, error = %e, "Read of a causal pair failed.");
            }
        }
        if at_deadline {
            break;
        }
    }
    trace.result = match (trace.certainty, trace.parent_seen, trace.child_seen) {
        (Some(_), ..) => PairResult::Violated,
        (None, Some(_), Some(_)) => PairResult::Ordered,
        _ => PairResult::Incomplete,
    };
    path.on_pair(trace);
}

/// One read of both keys (`together`), else the child and then the parent.
async fn read_both(
    target: &dyn Target,
    parent: &SentinelId,
    child: &SentinelId,
    together: bool,
    limit: Duration,
) -> Result<(Lookup, Lookup), ConnectorError> {
    if together {
        let ids = [parent.clone(), child.clone()];
        let mut found = bounded(limit, lookup_together(target, &ids)).await?;
        let c = found.pop().unwrap_or(Lookup::Absent);
        let p = found.pop().unwrap_or(Lookup::Absent);
        return Ok((p, c));
    }
    let c = bounded(limit, target.lookup(child)).await?;
    let p = bounded(limit, target.lookup(parent)).await?;
    Ok((p, c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use std::sync::Mutex;

    /// A target read one key at a time that shows the child from its first read and the
    /// parent from the `parent_from`-th lookup of the parent on.
    struct OneAtATime {
        child: SentinelId,
        parent_from: usize,
        parent_reads: Mutex<usize>,
    }

    #[async_trait]
    impl Target for OneAtATime {
        async fn lookup(&self, id: &SentinelId) -> Result<Lookup, ConnectorError> {
            if *id == self.child {
                return Ok(Lookup::Present { payload: None });
            }
            let mut n = self.parent_reads.lock().unwrap_or_else(|e| e.into_inner());
            *n += 1;
            Ok(if *n >= self.parent_from {
                Lookup::Present { payload: None }
            } else {
                Lookup::Absent
            })
        }
    }

    fn path(target: Arc<dyn Target>) -> PathHandle {
        let config = crate::config::Config::from_yaml(
            "t.yaml",
            r#"
instance: t
systems:
  crm:
    kind: dataverse
    url: https://contoso.crm.dynamics.com
    table: accounts
    id_column: accountid
    key_column: accountnumber
    payload_column: description
    parent_column: parentaccountid
    auth: { method: managed_identity, endpoint: http://127.0.0.1:1/token }
  crm2:
    kind: dataverse
    url: https://contoso2.crm.dynamics.com
    table: accounts
    id_column: accountid
    key_column: accountnumber
    payload_column: description
    auth: { method: managed_identity, endpoint: http://127.0.0.1:1/token }
paths:
  - { source: crm, target: crm2, timeout: 30s, objective: 10s, contract: { causal: true } }
"#,
        )
        .expect("a valid configuration");
        let spec = config.paths[0].clone();
        assert!(spec.contract.causal && spec.pair_interval.is_some());
        PathHandle::new(
            spec,
            target,
            Arc::new(Gate::unlimited_for_tests()),
            &Metrics::new(),
        )
    }

    async fn run(parent_from: usize) -> PairTrace {
        let (parent, child) = (SentinelId::new("t"), SentinelId::new("t"));
        let p = path(Arc::new(OneAtATime {
            child: child.clone(),
            parent_from,
            parent_reads: Mutex::new(0),
        }));
        read_pair(
            &p,
            &parent,
            &child,
            Instant::now(),
            &CancellationToken::new(),
        )
        .await;
        let trace = p.state().pairs.back().cloned().expect("a recorded pair");
        assert_eq!((trace.parent.clone(), trace.child.clone()), (parent, child));
        trace
    }

    #[tokio::test(start_paused = true)]
    async fn read_one_key_at_a_time_a_child_without_its_parent_is_only_suspected() {
        let t = run(3).await;
        assert_eq!(t.result, PairResult::Violated);
        assert_eq!(t.certainty, Some(Certainty::Suspected));
        assert_eq!(t.reads, 3, "read on until both were seen");
        assert!(t.parent_seen > t.child_seen);
        assert_eq!(t.gap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn both_seen_in_the_first_read_is_ordered_with_no_gap() {
        let t = run(1).await;
        assert_eq!(t.result, PairResult::Ordered);
        assert_eq!(t.certainty, None);
        assert_eq!(t.reads, 1);
        assert_eq!(t.gap(), Some(Duration::ZERO));
    }

    fn trace(result: PairResult, p: Option<u64>, c: Option<u64>) -> PairTrace {
        PairTrace {
            parent: SentinelId::new("t"),
            child: SentinelId::new("t"),
            acked_at: Utc::now(),
            result,
            certainty: None,
            parent_seen: p.map(Duration::from_secs),
            child_seen: c.map(Duration::from_secs),
            reads: 3,
        }
    }

    #[test]
    fn only_an_ordered_pair_has_a_gap_and_one_read_of_both_is_none() {
        let t = trace(PairResult::Ordered, Some(2), Some(5));
        assert_eq!(t.gap(), Some(Duration::from_secs(3)));
        assert_eq!(
            trace(PairResult::Ordered, Some(4), Some(4)).gap(),
            Some(Duration::ZERO)
        );
        assert_eq!(trace(PairResult::Violated, Some(6), Some(4)).gap(), None);
        assert_eq!(trace(PairResult::Incomplete, Some(6), None).gap(), None);
        let v = t.view("crm", "fno");
        assert_eq!(v.gap_seconds, Some(3.0));
        assert_eq!(v.result, PairResult::Ordered);
    }

    #[test]
    fn a_read_is_judged_by_presence_not_content() {
        let there = Lookup::Present { payload: None };
        assert_eq!(judge(&Lookup::Absent, &there), (false, true));
        assert_eq!(judge(&there, &Lookup::Absent), (true, false));
    }
}
