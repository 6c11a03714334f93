//! One probe cycle: write a sentinel, read it back, poll every target, clean up.
//!
//! The cycle owns all timing. Connectors are called once per step; the instants around each
//! call are what the estimate is built from. A failed write ends the cycle with no outcome (a
//! gap in measurement, never a lag); a failed read is counted and polling goes on.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::CancellationToken;

use super::estimate::{self, LagEstimate};
use super::path::{Outcome, PathHandle};
use super::schedule;
use super::trace::{ReadError, ReadResult, Recorder};
use crate::connector::{ConnectorError, Lookup, Source, Target};
use crate::gate::{Gate, NotAdmitted};
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::sentinel::{Sentinel, SentinelId};

/// Everything one cycle needs.
pub(crate) struct Cycle {
    pub instance: Arc<str>,
    pub source_name: Arc<str>,
    pub source: Arc<dyn Source>,
    pub source_gate: Arc<Gate>,
    pub paths: Vec<Arc<PathHandle>>,
    pub metrics: Metrics,
    pub seq: u64,
    pub request_timeout: Duration,
    pub retention: Duration,
    pub shutdown: CancellationToken,
    pub records: tokio::sync::broadcast::Sender<super::ProbeRecord>,
    pub ledger: Arc<Ledger>,
    /// Deletes owed to the source, retried by the engine's janitor.
    pub owed: Arc<Owed>,
    /// How long after an unanswered write its sentinel may still appear.
    pub unknown_write_grace: chrono::Duration,
}

/// How polling one path for one sentinel ended.
#[derive(Debug)]
enum Polled {
    /// An outcome, and the record to publish once the ledger has it.
    Resolved(Outcome, Box<super::ProbeRecord>),
    /// Shutdown stopped it; the last miss so far, for the ledger.
    Interrupted { last_miss: Option<Instant> },
}

/// A sentinel an earlier process left in flight, as the ledger gave it back.
pub(crate) struct Resumed {
    pub sentinel: Sentinel,
    pub sent: Instant,
    pub acked: Instant,
    /// Per path (same order as the cycle's paths): the last miss persisted at shutdown.
    pub last_misses: Vec<Option<Instant>>,
}

/// A delete the source still owes.
#[derive(Debug, Clone)]
pub(crate) struct Debt {
    pub source: Arc<str>,
    pub id: SentinelId,
    /// For a write whose fate is unknown (it timed out, or the process stopped mid-write):
    /// the server may still apply it after a first delete found nothing, so the delete is
    /// repeated until then; `None` for a sentinel known to exist (a failed delete).
    pub repeat_until: Option<chrono::DateTime<Utc>>,
}

/// Deletes the source still owes: a failed delete, or a write whose fate is unknown.
///
/// A debt stays listed until [`Owed::settle`]: the janitor works through a copy, so the count
/// exported as `lagwatch_sentinel_deletes_owed` does not dip while a round is under way.
#[derive(Default)]
pub(crate) struct Owed(std::sync::Mutex<Vec<Debt>>);

impl Owed {
    fn debts(&self) -> std::sync::MutexGuard<'_, Vec<Debt>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Owes the delete of `debt.id`, once: a sentinel owed already (an engine restarted after
    /// a rejected reload finds its debts in the ledger again) keeps the first debt.
    pub(crate) fn push(&self, debt: Debt) {
        let mut debts = self.debts();
        if !debts.iter().any(|d| d.id == debt.id) {
            debts.push(debt);
        }
    }

    /// Every debt, for the janitor to retry; each stays owed until settled.
    pub(crate) fn pending(&self) -> Vec<Debt> {
        self.debts().clone()
    }

    /// The delete of `id` is no longer owed.
    pub(crate) fn settle(&self, id: &SentinelId) {
        self.debts().retain(|d| d.id != *id);
    }

    pub(crate) fn len(&self) -> usize {
        self.debts().len()
    }

    /// How many deletes `source` owes.
    pub(crate) fn count(&self, source: &str) -> usize {
        self.debts().iter().filter(|d| &*d.source == source).count()
    }
}

/// The wall-clock instant of a monotonic one (for the ledger).
pub(crate) fn wall_of(at: Instant) -> chrono::DateTime<Utc> {
    let now = Instant::now();
    let wall = Utc::now();
    let back = now.saturating_duration_since(at);
    let ahead = at.saturating_duration_since(now);
    wall - chrono::Duration::from_std(back).unwrap_or_default()
        + chrono::Duration::from_std(ahead).unwrap_or_default()
}

/// The monotonic instant of a wall-clock one from the ledger; `None` if it lies before this
/// host's monotonic clock began (the machine restarted since). A wall time in the future (the
/// clock stepped back) is taken as now.
pub(crate) fn instant_of(wall: chrono::DateTime<Utc>) -> Option<Instant> {
    let age = (Utc::now() - wall).to_std().unwrap_or(Duration::ZERO);
    Instant::now().checked_sub(age)
}

/// How long cleanup may take once shutdown has begun.
const SHUTDOWN_CLEANUP: Duration = Duration::from_secs(5);

/// Seconds from a write (lagwatch's clock) to when the target applied it (the target's
/// clock, taken to agree with the source's: both are the vendor's services), using the
/// source's clock offset when measured; never negative.
pub(crate) fn apply_lag(
    written: chrono::DateTime<Utc>,
    source_offset_seconds: Option<f64>,
    applied: chrono::DateTime<Utc>,
) -> f64 {
    let shift =
        chrono::Duration::microseconds((source_offset_seconds.unwrap_or(0.0) * 1e6).round() as i64);
    let lag = (applied - (written + shift))
        .num_microseconds()
        .unwrap_or(0) as f64
        / 1e6;
    lag.max(0.0)
}

/// Runs one connector call with a deadline; running out of time is [`ConnectorError::Timeout`].
pub(crate) async fn bounded<T>(
    limit: Duration,
    f: impl Future<Output = Result<T, ConnectorError>>,
) -> Result<T, ConnectorError> {
    match timeout(limit, f).await {
        Ok(r) => r,
        Err(_) => Err(ConnectorError::Timeout),
    }
}

/// One call to a system: admitted by its `gate` within `limit`, bounded by `limit`, given up
/// on shutdown, and the gate told of any throttling in the answer. `None`: never sent (not
/// admitted) or abandoned at shutdown.
pub(crate) async fn admitted<T>(
    gate: &Gate,
    limit: Duration,
    shutdown: &CancellationToken,
    call: impl Future<Output = Result<T, ConnectorError>>,
) -> Option<Result<T, ConnectorError>> {
    let permit = gate.admit_within(limit, shutdown).await.ok()?;
    let result = tokio::select! {
        _ = shutdown.cancelled() => return None,
        r = bounded(limit, call) => r,
    };
    drop(permit);
    note(gate, &result);
    Some(result)
}

/// Tells the gate about throttling the system answered with (a 429, a busy 503), so every
/// caller of that system pauses. Only a system's answer may do that: a call that was never
/// sent ([`NotAdmitted`]) never reaches here.
pub(crate) fn note<T>(gate: &Gate, result: &Result<T, ConnectorError>) {
    if let Err(ConnectorError::Throttled { retry_after }) = result {
        gate.throttled(*retry_after);
    }
}

/// Why a sentinel delete did not happen.
#[derive(Debug)]
pub(crate) enum DeleteFailed {
    /// Never sent: lagwatch's own admission gave up, or shutdown cleanup was refused.
    NotSent(&'static str),
    /// Sent, and the system failed it.
    Failed(ConnectorError),
}

impl DeleteFailed {
    /// How a failed delete is logged: `not_sent`, `throttled` or `error`.
    pub(crate) fn outcome(&self) -> &'static str {
        match self {
            DeleteFailed::NotSent(_) => "not_sent",
            DeleteFailed::Failed(ConnectorError::Throttled { .. }) => "throttled",
            DeleteFailed::Failed(_) => "error",
        }
    }
}

impl std::fmt::Display for DeleteFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeleteFailed::NotSent(why) => write!(f, "not sent: {why}"),
            DeleteFailed::Failed(e) => e.fmt(f),
        }
    }
}

/// Deletes one sentinel: with the gate's normal admission (at most `limit`) while running; once
/// shutdown has begun, once, past any throttling pause (see [`Gate::admit_for_cleanup`]).
/// Counts the delete in `lagwatch_sentinel_deletes_total` when it was sent. Returns when the
/// delete was sent (admitted), the start of its delete lag.
pub(crate) async fn delete_sentinel(
    source_name: &str,
    source: &dyn Source,
    gate: &Gate,
    metrics: &Metrics,
    id: &SentinelId,
    limit: Duration,
    shutdown: &CancellationToken,
) -> Result<Instant, DeleteFailed> {
    let cleanup = async || {
        gate.admit_for_cleanup(limit)
            .await
            .ok_or(DeleteFailed::NotSent(
                "shutting down, and the system throttled cleanup or had no free slot",
            ))
    };
    let permit = if shutdown.is_cancelled() {
        cleanup().await?
    } else {
        match gate.admit_within(limit, shutdown).await {
            Ok(permit) => permit,
            Err(NotAdmitted::ShuttingDown) => cleanup().await?,
            Err(NotAdmitted::TimedOut) => {
                return Err(DeleteFailed::NotSent(
                    "lagwatch's own limits for the source did not admit it in time",
                ));
            }
        }
    };
    let sent = Instant::now();
    let deleted = bounded(limit, source.delete(id)).await;
    drop(permit);
    note(gate, &deleted);
    if shutdown.is_cancelled() && matches!(deleted, Err(ConnectorError::Throttled { .. })) {
        gate.refuse_cleanup();
    }
    metrics
        .deletes
        .with_label_values(&[source_name, if deleted.is_ok() { "ok" } else { "error" }])
        .inc();
    deleted.map(|()| sent).map_err(DeleteFailed::Failed)
}

impl Cycle {
    pub(crate) async fn run(self) {
        let sentinel = Sentinel::new(&self.instance, self.seq, Utc::now());
        // Into the ledger before the write goes out, so a crash at any later point leaves a
        // record of a sentinel that may exist. Before the clock starts: not lag.
        let targets = self.paths.iter().map(|p| p.spec.target.clone()).collect();
        let durable = self
            .ledger
            .begin(
                sentinel.id.key(),
                &self.source_name,
                self.seq,
                sentinel.written_at,
                targets,
            )
            .await;
        // Waiting for the gate happens before the clock starts: it is not replication lag.
        let permit = match self
            .source_gate
            .admit_within(self.request_timeout, &self.shutdown)
            .await
        {
            Ok(permit) => permit,
            Err(why) => {
                // Nothing was sent, so nothing exists to delete; not a write and not throttling.
                if why == NotAdmitted::TimedOut {
                    tracing::warn!(source = %self.source_name, sentinel = %sentinel.id, outcome = "not_admitted", error = %why, waited = ?self.request_timeout, "Sentinel write not sent: lagwatch's own limits for the source (a throttling pause, the request budget or the concurrency cap) did not admit it within request_timeout; no probe this round.");
                }
                for p in &self.paths {
                    if why == NotAdmitted::TimedOut {
                        p.on_write_failed("write_not_admitted", &why.to_string());
                    }
                    p.release(None);
                }
                self.ledger.forget(sentinel.id.key()).await;
                return;
            }
        };
        let sent = Instant::now();
        let written = bounded(self.request_timeout, self.source.write(&sentinel)).await;
        let acked = Instant::now();
        drop(permit);
        note(&self.source_gate, &written);
        if let Err(e) = written {
            let throttled = matches!(e, ConnectorError::Throttled { .. });
            let outcome = if throttled { "throttled" } else { "error" };
            self.metrics
                .writes
                .with_label_values(&[&self.source_name, outcome])
                .inc();
            tracing::warn!(source = %self.source_name, sentinel = %sentinel.id, outcome, error = %e, "Sentinel write failed; no probe this round.");
            for p in &self.paths {
                p.on_write_failed(
                    if throttled {
                        "write_throttled"
                    } else {
                        "write_error"
                    },
                    &e.to_string(),
                );
                p.release(None);
            }
            if throttled {
                // Refused (429): nothing exists to delete.
                self.ledger.forget(sentinel.id.key()).await;
            } else {
                // A timeout, reset or 5xx may still have written it, now or later: the
                // janitor deletes it, repeatedly until it can no longer appear (a delete of a
                // record that does not exist succeeds).
                self.ledger.undeleted(sentinel.id.key()).await;
                self.owed.push(Debt {
                    source: self.source_name.clone(),
                    id: sentinel.id.clone(),
                    repeat_until: Some(sentinel.written_at + self.unknown_write_grace),
                });
            }
            return;
        }
        let acked_wall = Utc::now();
        let sent_wall = acked_wall - chrono::Duration::from_std(acked - sent).unwrap_or_default();
        let durable = durable
            && self
                .ledger
                .acked(sentinel.id.key(), sent_wall, acked_wall)
                .await;
        self.metrics
            .writes
            .with_label_values(&[&self.source_name, "ok"])
            .inc();
        for p in &self.paths {
            p.on_written(self.seq, &sentinel.id, acked);
        }
        let misses = vec![None; self.paths.len()];
        self.follow(sentinel, sent, acked, misses, durable, false)
            .await;
    }

    /// Ends the polls of a sentinel an earlier process left in flight (its paths' slots are
    /// already reserved), then deletes it.
    pub(crate) async fn resume(self, r: Resumed) {
        let durable = self.ledger.is_up();
        self.follow(r.sentinel, r.sent, r.acked, r.last_misses, durable, true)
            .await;
    }

    /// Polls every path of a written sentinel to its outcome, then deletes it. Interrupted by
    /// shutdown with a working ledger, the sentinel is left for the next process to resume;
    /// otherwise it is deleted within the shutdown grace.
    async fn follow(
        self,
        sentinel: Sentinel,
        sent: Instant,
        acked: Instant,
        last_misses: Vec<Option<Instant>>,
        durable: bool,
        resumed: bool,
    ) {
        let ryw = async {
            if !resumed {
                self.read_your_write(&sentinel).await;
                self.read_version(&sentinel).await;
            }
        };
        let polls = join_all(
            self.paths
                .iter()
                .zip(last_misses)
                .map(|(p, miss)| self.poll_target(p, &sentinel, sent, acked, miss, resumed)),
        );
        let ((), results) = tokio::join!(ryw, polls);
        let mut interrupted = false;
        for (p, polled) in self.paths.iter().zip(&results) {
            match *polled {
                // In the ledger as it resolved (`poll_target`).
                Polled::Resolved(..) => {}
                Polled::Interrupted { last_miss } => {
                    interrupted = true;
                    self.ledger
                        .interrupted(sentinel.id.key(), &p.spec.target, last_miss.map(wall_of))
                        .await;
                }
            }
        }
        if interrupted && durable && self.ledger.is_up() {
            tracing::debug!(source = %self.source_name, sentinel = %sentinel.id, "Shutting down: the sentinel stays in the source and the ledger for the next start to resume.");
            return;
        }

        if !interrupted && !self.retention.is_zero() {
            tokio::select! {
                _ = self.shutdown.cancelled() => {}
                _ = tokio::time::sleep(self.retention) => {}
            }
        }
        let limit = if self.shutdown.is_cancelled() {
            SHUTDOWN_CLEANUP.min(self.request_timeout)
        } else {
            self.request_timeout
        };
        let deleted = delete_sentinel(
            &self.source_name,
            self.source.as_ref(),
            &self.source_gate,
            &self.metrics,
            &sentinel.id,
            limit,
            &self.shutdown,
        )
        .await;
        match deleted {
            Ok(sent) => {
                let acked = Instant::now();
                self.ledger.forget(sentinel.id.key()).await;
                // Every path whose target showed the sentinel watches it go, for one sentinel
                // in the path's delete_sample (BENCHMARKS.md, "API cost").
                let watches = self.paths.iter().zip(&results).filter_map(|(p, polled)| {
                    let sampled = self
                        .seq
                        .is_multiple_of(u64::from(p.spec.delete_sample.max(1)));
                    let seen = matches!(
                        polled,
                        Polled::Resolved(Outcome::Converged | Outcome::Mismatch, _)
                    );
                    let window = p.spec.delete_watch?.get();
                    (sampled && seen).then(|| self.watch_delete(p, &sentinel, sent, acked, window))
                });
                join_all(watches).await;
            }
            Err(e) => {
                if self.shutdown.is_cancelled() {
                    tracing::warn!(source = %self.source_name, sentinel = %sentinel.id, outcome = e.outcome(), error = %e, "Sentinel left in the source at shutdown: its delete failed; the start-up sweep of the next run deletes it.");
                } else {
                    tracing::warn!(source = %self.source_name, sentinel = %sentinel.id, outcome = e.outcome(), error = %e, "Sentinel delete failed; it is retried every 30 s (and the next start-up sweep would find it).");
                }
                self.ledger.undeleted(sentinel.id.key()).await;
                self.owed.push(Debt {
                    source: self.source_name.clone(),
                    id: sentinel.id.clone(),
                    repeat_until: None,
                });
            }
        }
    }

    /// The sentinel's row version, for the paths whose platform watermark wants it: one read
    /// of the source, only when such a path exists. A failure leaves the version unknown.
    async fn read_version(&self, sentinel: &Sentinel) {
        let wanting: Vec<&Arc<PathHandle>> =
            self.paths.iter().filter(|p| p.wants_versions()).collect();
        if wanting.is_empty() {
            return;
        }
        let Some(read) = self.source_call(self.source.version_of(&sentinel.id)).await else {
            return;
        };
        match read {
            Ok(Some(v)) => {
                for p in wanting {
                    p.on_version(sentinel.seq, v);
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(source = %self.source_name, error = %e, "Reading the sentinel's row version failed.");
            }
        }
    }

    /// One call to the source, through its gate, within the request timeout.
    async fn source_call<T>(
        &self,
        call: impl Future<Output = Result<T, ConnectorError>>,
    ) -> Option<Result<T, ConnectorError>> {
        admitted(
            &self.source_gate,
            self.request_timeout,
            &self.shutdown,
            call,
        )
        .await
    }

    async fn read_your_write(&self, sentinel: &Sentinel) {
        let Some(read) = self.source_call(self.source.read(&sentinel.id)).await else {
            return;
        };
        match read {
            Ok(Lookup::Absent) => {
                self.metrics
                    .ryw_violations
                    .with_label_values(&[&self.source_name])
                    .inc();
                tracing::warn!(source = %self.source_name, sentinel = %sentinel.id, "Source did not return its own acknowledged write.");
            }
            Ok(Lookup::Present { .. }) => {}
            Err(e) => {
                tracing::debug!(source = %self.source_name, error = %e, "Read-your-writes check failed to read.");
            }
        }
    }

    /// Polls one target (see [`Cycle::poll_until_resolved`]); for a converged sentinel on a
    /// target that records when its pipeline applied it, also the apply lag: that time minus
    /// the write time, both on the source's clock (our write time shifted by its offset).
    async fn poll_target(
        &self,
        path: &PathHandle,
        sentinel: &Sentinel,
        sent: Instant,
        acked: Instant,
        last_miss: Option<Instant>,
        resumed: bool,
    ) -> Polled {
        let polled = self
            .poll_until_resolved(path, sentinel, sent, acked, last_miss, resumed)
            .await;
        if let Polled::Resolved(_, record) = &polled {
            // The outcome is durable before anyone hears of it: a crash in between would
            // otherwise let the next process resume, and count again, a probe already counted.
            self.ledger
                .resolved(sentinel.id.key(), &path.spec.target)
                .await;
            if self.records.receiver_count() > 0 {
                let _ = self.records.send((**record).clone());
            }
        }
        if matches!(polled, Polled::Resolved(Outcome::Converged, _))
            && !resumed
            && path.target.records_apply_time()
            && let Some(applied) = path.target.applied_at(&sentinel.id).await
        {
            let offset = self.metrics.clock_offset_of(&self.source_name);
            path.on_applied(apply_lag(sentinel.written_at, offset, applied));
        }
        polled
    }

    /// Polls one target until the sentinel is seen (and confirmed), or until the read at the
    /// path's deadline (`acked + timeout`) settles it. The last read is scheduled at the
    /// deadline itself, and what a read sent at or after the deadline answers decides:
    ///
    /// - absent: `timeout` — the sentinel was verifiably not there at the deadline;
    /// - present: `converged`, its lag measured like any other (never cut off by the deadline);
    /// - failed, or not admitted by lagwatch's own limits before `request_timeout` past the
    ///   deadline: `error` — whether it arrived in time is unknown.
    ///
    /// Shutdown interrupts every wait and the request in flight (the slot is released without
    /// an outcome). A resumed probe whose deadline passed while no process watched gets its
    /// deadline read at once.
    async fn poll_until_resolved(
        &self,
        path: &PathHandle,
        sentinel: &Sentinel,
        sent: Instant,
        acked: Instant,
        resumed_miss: Option<Instant>,
        resumed: bool,
    ) -> Polled {
        let spec = &path.spec;
        let deadline = acked + spec.timeout.get();
        let expect = path.expectation();
        let confirm = spec.confirm.get();
        let confirm_gap = (confirm / 3).max(spec.poll.min_gap);
        let request_timeout = spec.request_timeout.get();

        let mut prev: Option<Duration> = None;
        let mut last_miss: Option<Instant> = resumed_miss;
        let mut first_hit: Option<(Instant, LagEstimate)> = None;
        let mut rec = Recorder::new(acked);
        let acked_wall = wall_of(acked);

        let finish = |outcome: Outcome, estimate: Option<LagEstimate>, rec: Recorder| {
            let reads = u32::try_from(rec.len()).unwrap_or(u32::MAX);
            let trace = rec.finish(
                &sentinel.id,
                self.seq,
                sentinel.written_at,
                acked_wall,
                acked.saturating_duration_since(sent),
                outcome,
                estimate,
                resumed,
            );
            // Each outcome is logged once, here: what the probe found and why, in words.
            if outcome == Outcome::Converged {
                tracing::debug!(source = %spec.source, target = %spec.target, sentinel = %sentinel.id, outcome = outcome.label(), reads, lag_seconds = estimate.map(|e| e.lag.as_secs_f64()), why = %trace.why(path.rules()), "Probe converged.");
            } else {
                tracing::warn!(source = %spec.source, target = %spec.target, sentinel = %sentinel.id, outcome = outcome.label(), reads, resumed = resumed.then_some(true), why = %trace.why(path.rules()), error = trace.last_error().map(|e| &*e.message), "Probe did not converge.");
            }
            path.record(trace);
            if let Some(unseen) = path.on_resolved(
                sentinel.id.key(),
                self.seq,
                acked,
                outcome,
                estimate,
                resumed,
            ) {
                let (ledger, source, target) = (
                    self.ledger.clone(),
                    spec.source.clone(),
                    spec.target.clone(),
                );
                let since = unseen.map(wall_of);
                tokio::spawn(async move { ledger.unseen(&source, &target, since).await });
            }
            let record = super::ProbeRecord {
                source: self.source_name.clone(),
                target: Arc::from(spec.target.as_str()),
                sentinel: sentinel.id.clone(),
                seq: self.seq,
                outcome,
                estimate,
                reads,
                resumed,
            };
            Polled::Resolved(outcome, Box::new(record))
        };
        let interrupted = |last_miss: Option<Instant>| {
            path.release(Some(self.seq));
            Polled::Interrupted { last_miss }
        };

        // Resumed probes' neighbours are not known: only this process's sentinels are checked.
        let ordered = path.checks_order() && !resumed;
        loop {
            let offset = match (first_hit, prev) {
                (Some(_), Some(p)) => p + confirm_gap,
                _ => schedule::next_offset(prev, &spec.poll, expect.as_ref(), rand::random()),
            };
            // The last read goes out at the deadline itself, never a gap before it.
            let at = (acked + offset).min(deadline);
            if let Some((hit_at, est)) = first_hit
                && (acked + offset >= hit_at + confirm || acked + offset >= deadline)
            {
                return finish(Outcome::Converged, Some(est), rec);
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return interrupted(last_miss),
                _ = sleep_until(at) => {}
            }
            // A wait at the gate before the deadline delays the read; the deadline read may
            // wait up to a request timeout past it. Never lag: the clock starts when admitted.
            let limit = deadline.saturating_duration_since(Instant::now()) + request_timeout;
            let permit = match path.gate.admit_within(limit, &self.shutdown).await {
                Ok(permit) => permit,
                Err(NotAdmitted::ShuttingDown) => return interrupted(last_miss),
                Err(NotAdmitted::TimedOut) => return finish(Outcome::Error, None, rec),
            };
            let req_sent = Instant::now();
            // Continue the schedule from when the read really went out, so a wait at the gate
            // stretches the schedule instead of causing a burst of catch-up reads.
            prev = Some(req_sent.saturating_duration_since(acked).max(at - acked));
            let at_deadline = req_sent >= deadline;
            // Before the first hit, an ordered target is asked for the earlier sentinels still
            // missing too, in the same read: any still missing when this one shows is an order
            // inversion.
            let earlier = if first_hit.is_none() && ordered {
                path.awaiting_before(self.seq, ORDER_WINDOW)
            } else {
                Vec::new()
            };
            let result = tokio::select! {
                _ = self.shutdown.cancelled() => return interrupted(last_miss),
                r = bounded(request_timeout, read_in_order(path.target.as_ref(), &sentinel.id, &earlier)) => r,
            };
            let (result, missing_before) = match result {
                Ok((lookup, missing)) => (Ok(lookup), missing),
                Err(e) => (Err(e), 0),
            };
            let req_answered = Instant::now();
            drop(permit);
            note(&path.gate, &result);
            let read = match &result {
                Ok(Lookup::Absent) => ReadResult::Absent,
                Ok(Lookup::Present { payload: Some(p) }) if !sentinel.matches(p) => {
                    ReadResult::Mismatch
                }
                Ok(Lookup::Present { .. }) => ReadResult::Present,
                Err(_) => ReadResult::Error,
            };
            rec.read(
                req_sent,
                req_answered,
                read,
                result.as_ref().err().map(ReadError::of),
            );
            // t-visibility: what a read of this age saw. A resumed probe's acknowledgement is
            // from the wall clock of an earlier process, so its ages are left out (as its lag
            // is left out of the lag histogram).
            if !resumed {
                let age = req_sent.saturating_duration_since(acked);
                match read {
                    ReadResult::Present => path.on_read(age, true),
                    ReadResult::Absent => path.on_read(age, false),
                    ReadResult::Mismatch | ReadResult::Error => {}
                }
            }
            match result {
                Ok(Lookup::Absent) => {
                    if first_hit.is_none()
                        && let Some(grace) = spec.sync_grace.map(crate::config::Dur::get)
                        && req_sent.saturating_duration_since(acked) > grace
                    {
                        return finish(Outcome::Halted, None, rec);
                    }
                    if first_hit.take().is_some() {
                        path.on_monotonic_violation(sentinel.id.key());
                        // A declared guarantee broken can page (LagwatchContractViolated): the
                        // line that names its sentinel is a warning then.
                        if spec.contract.monotonic_reads {
                            tracing::warn!(source = %spec.source, target = %spec.target, sentinel = %sentinel.id, guarantee = "monotonic_reads", "Path broke its declared monotonic_reads guarantee: the target lost a sentinel it had shown; measuring to the last miss.");
                        } else {
                            tracing::info!(source = %spec.source, target = %spec.target, sentinel = %sentinel.id, "Target lost a sentinel it had shown; measuring to the last miss.");
                        }
                    }
                    last_miss = Some(req_sent);
                    if at_deadline {
                        return finish(Outcome::Timeout, None, rec);
                    }
                }
                Ok(Lookup::Present { payload }) => {
                    if first_hit.is_none() && ordered {
                        path.on_ordered_sighting(sentinel.id.key(), self.seq, missing_before);
                    }
                    if let Some(p) = payload
                        && !sentinel.matches(&p)
                    {
                        let est = estimate::estimate(sent, acked, last_miss, req_answered);
                        return finish(Outcome::Mismatch, Some(est), rec);
                    }
                    let (_, est) = *first_hit.get_or_insert_with(|| {
                        (
                            req_answered,
                            estimate::estimate(sent, acked, last_miss, req_answered),
                        )
                    });
                    if confirm.is_zero() || at_deadline {
                        return finish(Outcome::Converged, Some(est), rec);
                    }
                }
                Err(e) => {
                    path.on_lookup_error(e.kind(), &e.to_string());
                    tracing::debug!(source = %spec.source, target = %spec.target, sentinel = %sentinel.id, error = %e, "Lookup failed.");
                    if at_deadline {
                        if let Some((_, est)) = first_hit {
                            return finish(Outcome::Converged, Some(est), rec);
                        }
                        return finish(Outcome::Error, None, rec);
                    }
                }
            }
        }
    }
}

/// One read of every key of `ids` (`Target::lookup_together`), held to its contract: as many
/// answers as keys, or an error (never a key taken for absent for want of an answer).
pub(crate) async fn lookup_together(
    target: &dyn Target,
    ids: &[SentinelId],
) -> Result<Vec<Lookup>, ConnectorError> {
    let found = target.lookup_together(ids).await?;
    if found.len() != ids.len() {
        return Err(ConnectorError::BadResponse {
            status: 0,
            detail: format!("{} answers for {} keys", found.len(), ids.len()),
        });
    }
    Ok(found)
}

/// The earlier sentinels a read of an ordered target asks for with its own, at most.
const ORDER_WINDOW: usize = 32;

/// One read of `id` and, in the same request, of `earlier` (sentinels written before it that
/// no read found yet): the lookup of `id`, and how many of `earlier` are still missing.
async fn read_in_order(
    target: &dyn Target,
    id: &SentinelId,
    earlier: &[SentinelId],
) -> Result<(Lookup, usize), ConnectorError> {
    if earlier.is_empty() {
        return Ok((target.lookup(id).await?, 0));
    }
    let mut ids = earlier.to_vec();
    ids.push(id.clone());
    let mut found = lookup_together(target, &ids).await?;
    let own = found.pop().unwrap_or(Lookup::Absent);
    let missing = found.iter().filter(|l| **l == Lookup::Absent).count();
    Ok((own, missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_lag_is_measured_on_the_source_clock() {
        let t = |s: &str| s.parse::<chrono::DateTime<Utc>>().unwrap();
        let written = t("2026-11-02T10:00:00Z");
        let applied = t("2026-11-02T10:05:02Z");
        assert_eq!(apply_lag(written, None, applied), 302.0);
        // The source runs 2 s ahead of us: the write happened at 10:00:02 by its clock.
        assert_eq!(apply_lag(written, Some(2.0), applied), 300.0);
        assert_eq!(apply_lag(written, Some(-0.5), applied), 302.5);
        // Clock trouble never makes a negative lag.
        assert_eq!(apply_lag(applied, None, written), 0.0);
    }

    #[test]
    fn a_debt_is_owed_once_and_until_settled() {
        let owed = Owed::default();
        let debt = |source: &str, id: &SentinelId| Debt {
            source: Arc::from(source),
            id: id.clone(),
            repeat_until: None,
        };
        let (a, b) = (SentinelId::new("t"), SentinelId::new("t"));
        owed.push(debt("crm", &a));
        owed.push(debt("crm", &a));
        owed.push(debt("crm2", &b));
        assert_eq!(
            (owed.len(), owed.count("crm"), owed.count("crm2")),
            (2, 1, 1)
        );
        // A janitor round works on a copy: the count holds until a delete is confirmed.
        let round = owed.pending();
        assert_eq!(round.len(), 2);
        assert_eq!(owed.len(), 2);
        owed.settle(&a);
        assert_eq!((owed.count("crm"), owed.count("crm2")), (0, 1));
        owed.settle(&a);
        assert_eq!(owed.len(), 1);
    }
}
