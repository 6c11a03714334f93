//! Conflict probes: do two systems linked both ways end on the same value after concurrent
//! updates, and does the declared policy decide which?
//!
//! Each probe of a pair `(a, b)` uses one long-lived canary row (a v8 key, never swept). The
//! row is created in `a` when missing and must show in `b` before the probe goes on. Then `a`
//! gets version `v` and `b` version `v + 1`, `spread` apart (together when 0), each timed on
//! the monotonic clock around its acknowledgement, with the system's own clock (`Date`) noted.
//! From the later acknowledgement both sides are read together until two rounds in a row
//! show one value on both, or the timeout passes; a round sent at or after the deadline
//! decides a divergence. [`judge`] is the pure decision.
//!
//! What the policy predicts is judged on lagwatch's clock, the true order: under
//! last-writer-wins the update sent after the other was acknowledged must win, and
//! overlapping updates may end either way. The servers' `Date` stamps are reported beside it:
//! where they order the two updates the other way round, the skew between the clocks
//! explains a `policy_violated`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use super::cycle::admitted;
use crate::config::conflict::{ConflictSpec, Policy};
use crate::connector::{ConnectorError, Lookup, Source, Updated};
use crate::gate::Gate;
use crate::metrics::Metrics;
use crate::sentinel::{Sentinel, SentinelId};

/// Probes remembered per pair for `/api/v1/conflicts`: at the default 15 minutes, a day.
const KEPT: usize = 96;

/// Reads of both sides start this long after the later acknowledgement, then double.
const FIRST_READ: Duration = Duration::from_millis(250);
/// The longest gap between two rounds of reads: the bound on the time to agreement.
const MAX_READ_GAP: Duration = Duration::from_secs(5);

/// Which side of the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    A,
    B,
}

/// One side of the pair as the prober uses it.
pub struct Link {
    pub name: Arc<str>,
    pub source: Arc<dyn Source>,
    pub gate: Arc<Gate>,
}

/// What became of one side's update.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateReport {
    /// The canary version written on this side.
    pub version: u64,
    /// Wall-clock send and acknowledgement (informational; the order is judged on the
    /// monotonic clock).
    pub sent_at: DateTime<Utc>,
    pub acked_at: Option<DateTime<Utc>>,
    /// The system's own clock when it acknowledged (`Date`).
    pub server_time: Option<DateTime<Utc>>,
    /// `ok`, `rejected` or `error`.
    pub result: &'static str,
    pub error: Option<String>,
}

/// What a round of reads saw on one side: a version of this probe, something else, nothing.
/// Shown in the API as `a`, `b` (whose update), `other` (with its version when it has one) or
/// `absent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// A version this probe wrote.
    Ours(Side),
    /// Content that is neither of this probe's versions (an older version, another writer's).
    Other(Option<u64>),
    /// No row.
    Absent,
}

impl Serialize for Seen {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Seen::Ours(Side::A) => s.serialize_str("a"),
            Seen::Ours(Side::B) => s.serialize_str("b"),
            Seen::Other(Some(v)) => s.serialize_str(&format!("other (version {v})")),
            Seen::Other(None) => s.serialize_str("other"),
            Seen::Absent => s.serialize_str("absent"),
        }
    }
}

/// One conflict probe, for the API and the WARN line.
#[derive(Debug, Clone, Serialize)]
pub struct ConflictProbe {
    pub canary: String,
    pub started_at: DateTime<Utc>,
    pub outcome: &'static str,
    /// Why, in a sentence.
    pub reason: String,
    pub a: Option<UpdateReport>,
    pub b: Option<UpdateReport>,
    /// The side whose update both ended on, when they agreed on one of them.
    pub agreed_on: Option<Side>,
    /// What each side showed at the last round of reads.
    pub last_seen: Option<(Seen, Seen)>,
    /// b already showed a's update when b's was sent (with a `spread`): not a conflict, and
    /// b's update, the later, must win.
    pub sequential: bool,
    /// The side the policy says wins, judged on lagwatch's clock (`None`: either may).
    pub expected: Option<Side>,
    /// Under last-writer-wins, the side the servers' own stamps make the later writer
    /// (`None`: the stamps cannot tell, whole seconds apart or missing).
    pub later_by_server_stamps: Option<Side>,
    /// a's clock minus b's at the probe, from lagwatch's clock offset estimates.
    pub skew_seconds: Option<f64>,
    /// From the later acknowledgement until the first of two agreeing rounds: sent after
    /// `agreement_after_seconds`, answered by `agreement_seconds`.
    pub agreement_after_seconds: Option<f64>,
    pub agreement_seconds: Option<f64>,
}

/// How one update went, for [`judge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// Acknowledged: sent and answered at these instants.
    Ok { sent: Instant, acked: Instant },
    /// Refused by the system as a conflict (a 4xx answer other than 401, 403, 404, 429).
    Rejected,
    /// Failed otherwise (transport, timeout, 5xx, throttled, auth).
    Failed,
}

/// How the reads ended, for [`judge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Two rounds in a row showed one value on both sides.
    Agreed(Seen),
    /// A round sent at or after the deadline showed these on a and b, not one value.
    Differ(Seen, Seen),
    /// The last round could not read a side.
    Unread,
}

/// The side the policy says must win, judged on lagwatch's clock (`None`: either may).
/// `sequential`: b showed a's update before b's was sent, so b's is simply the later change,
/// which every policy but `manual` keeps; a policy decides only between concurrent ones.
pub fn expected(policy: &Policy, a_name: &str, a: Ack, b: Ack, sequential: bool) -> Option<Side> {
    match (a, b) {
        (Ack::Ok { .. }, Ack::Ok { .. }) => {}
        // Only one update was made: it must be what both end on.
        (Ack::Ok { .. }, _) => return Some(Side::A),
        (_, Ack::Ok { .. }) => return Some(Side::B),
        _ => return None,
    }
    let (
        Ack::Ok {
            sent: sa,
            acked: aa,
        },
        Ack::Ok {
            sent: sb,
            acked: ab,
        },
    ) = (a, b)
    else {
        return None;
    };
    match policy {
        Policy::Manual => None,
        _ if sequential => Some(Side::B),
        Policy::LastWriterWins if aa < sb => Some(Side::B),
        Policy::LastWriterWins if ab < sa => Some(Side::A),
        // Overlapping updates: the system's commit order is not visible from here.
        Policy::LastWriterWins => None,
        Policy::SourceWins(s) if s == a_name => Some(Side::A),
        Policy::SourceWins(_) => Some(Side::B),
    }
}

/// The outcome of a probe and why, in words naming the systems (`names`: a's and b's).
pub fn judge(
    a: Ack,
    b: Ack,
    expected: Option<Side>,
    ending: Ending,
    names: (&str, &str),
) -> (&'static str, String) {
    let name = |s: Side| match s {
        Side::A => names.0,
        Side::B => names.1,
    };
    let describe = |s: Seen| match s {
        Seen::Ours(side) => format!("{}'s update", name(side)),
        Seen::Other(Some(v)) => format!("another value (version {v})"),
        Seen::Other(None) => "another value".to_string(),
        Seen::Absent => "no row".to_string(),
    };
    if [a, b].contains(&Ack::Failed) {
        return ("error", "an update failed (not as a conflict)".to_string());
    }
    let rejected = [a, b].iter().filter(|x| **x == Ack::Rejected).count();
    match ending {
        Ending::Unread => ("error", "a side could not be read at the end".to_string()),
        Ending::Agreed(Seen::Absent) => (
            "error",
            "the canary row is gone from both sides".to_string(),
        ),
        Ending::Differ(..) if rejected > 0 => (
            "rejected",
            "a side refused its update as a conflict, and the sides still differ".to_string(),
        ),
        _ if rejected > 0 => (
            "rejected",
            "a side refused its update as a conflict".to_string(),
        ),
        Ending::Agreed(Seen::Other(_)) => (
            "error",
            "both sides hold a value neither update wrote (another writer?)".to_string(),
        ),
        Ending::Differ(x, y) => (
            "diverged",
            format!(
                "at the timeout {} shows {}, {} shows {}",
                names.0,
                describe(x),
                names.1,
                describe(y)
            ),
        ),
        Ending::Agreed(Seen::Ours(side)) => match expected {
            Some(e) if e != side => (
                "policy_violated",
                format!(
                    "both ended on {}'s update; the policy keeps {}'s",
                    name(side),
                    name(e)
                ),
            ),
            _ => (
                "converged_same",
                format!("both ended on {}'s update", name(side)),
            ),
        },
    }
}

/// Whether a failed update is the system refusing it (a conflict), not a failure to ask.
fn is_rejection(e: &ConnectorError) -> bool {
    matches!(e, ConnectorError::BadResponse { status, .. } if (400..500).contains(status) && *status != 404)
}

/// The prober of one pair: its spec, its two sides, its recent probes.
pub struct ConflictProber {
    pub spec: ConflictSpec,
    instance: Arc<str>,
    a: Link,
    b: Link,
    metrics: Metrics,
    id: SentinelId,
    recent: Mutex<VecDeque<ConflictProbe>>,
    last_version: Mutex<u64>,
}

impl ConflictProber {
    pub fn new(instance: Arc<str>, spec: ConflictSpec, a: Link, b: Link, metrics: Metrics) -> Self {
        metrics
            .conflict
            .init(&spec.a, &spec.b, spec.spread.get().as_secs_f64());
        let id = SentinelId::canary(&instance, &format!("conflict:{}:{}", spec.a, spec.b));
        ConflictProber {
            spec,
            instance,
            a,
            b,
            metrics,
            id,
            recent: Mutex::default(),
            last_version: Mutex::new(0),
        }
    }

    /// The canary row's key.
    pub fn canary(&self) -> &SentinelId {
        &self.id
    }

    /// The probes remembered, newest last.
    pub fn recent(&self) -> Vec<ConflictProbe> {
        let q = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        q.iter().cloned().collect()
    }

    /// Probes every `interval` from start-up until shutdown.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let started = Instant::now();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.probe(&shutdown) => {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = sleep_until(started + self.spec.interval.get()) => {}
            }
        }
    }

    fn record(&self, p: ConflictProbe) {
        let (a, b) = (self.spec.a.as_str(), self.spec.b.as_str());
        self.metrics
            .conflict
            .probes
            .with_label_values(&[a, b, p.outcome])
            .inc();
        if let Some(s) = p.agreement_seconds {
            self.metrics
                .conflict
                .agreement
                .with_label_values(&[a, b])
                .observe(s);
        }
        if p.outcome != "converged_same" {
            tracing::warn!(
                a = %a, b = %b, canary = %p.canary, outcome = p.outcome,
                policy = %self.spec.policy.describe(), reason = %p.reason,
                skew_seconds = ?p.skew_seconds,
                "Conflict probe did not end on the value the policy keeps."
            );
        } else {
            tracing::debug!(a = %a, b = %b, canary = %p.canary, reason = %p.reason, "Conflict probe converged.");
        }
        let mut q = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= KEPT {
            q.pop_front();
        }
        q.push_back(p);
    }

    fn link(&self, side: Side) -> &Link {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    /// One request to a side, admitted by its gate and bounded by the request timeout.
    async fn call<T, F>(
        &self,
        side: Side,
        shutdown: &CancellationToken,
        f: F,
    ) -> Result<T, ConnectorError>
    where
        F: std::future::Future<Output = Result<T, ConnectorError>>,
    {
        let limit = self.spec.request_timeout.get();
        // Never sent (not admitted in time, or shutting down): no answer within the limit.
        admitted(&self.link(side).gate, limit, shutdown, f)
            .await
            .unwrap_or(Err(ConnectorError::Timeout))
    }

    async fn read(
        &self,
        side: Side,
        shutdown: &CancellationToken,
    ) -> Result<Lookup, ConnectorError> {
        let source = self.link(side).source.clone();
        self.call(side, shutdown, source.read(&self.id)).await
    }

    fn seen(&self, l: &Lookup, version: u64) -> Seen {
        match l {
            Lookup::Absent => Seen::Absent,
            Lookup::Present { payload } => match payload.as_deref().and_then(Sentinel::seq_of) {
                Some(v) if v == version => Seen::Ours(Side::A),
                Some(v) if v == version + 1 => Seen::Ours(Side::B),
                v => Seen::Other(v),
            },
        }
    }

    /// Creates the canary in `a` when it is missing there and waits until `b` shows it.
    async fn ensure(&self, shutdown: &CancellationToken) -> Result<(), String> {
        let deadline = Instant::now() + self.spec.timeout.get();
        match self.read(Side::A, shutdown).await {
            Ok(Lookup::Present { .. }) => {}
            Ok(Lookup::Absent) => {
                let v = self.next_version();
                let s = Sentinel::restore(&self.instance, self.id.clone(), v, Utc::now());
                let source = self.a.source.clone();
                self.call(Side::A, shutdown, source.update(&s))
                    .await
                    .map_err(|e| {
                        format!("creating the canary row in {} failed: {e}", self.spec.a)
                    })?;
            }
            Err(e) => {
                return Err(format!(
                    "reading the canary row in {} failed: {e}",
                    self.spec.a
                ));
            }
        }
        let mut wait = FIRST_READ;
        loop {
            let last = Instant::now() >= deadline;
            match self.read(Side::B, shutdown).await {
                Ok(Lookup::Present { .. }) => return Ok(()),
                Ok(Lookup::Absent) if last => {
                    return Err(format!(
                        "the canary row did not reach {} within the timeout ({})",
                        self.spec.b, self.spec.timeout
                    ));
                }
                Err(e) if last => {
                    return Err(format!(
                        "reading the canary row in {} failed: {e}",
                        self.spec.b
                    ));
                }
                _ => {}
            }
            sleep(wait.min(deadline.saturating_duration_since(Instant::now()))).await;
            wait = (wait * 2).min(MAX_READ_GAP);
        }
    }

    fn next_version(&self) -> u64 {
        let mut last = self.last_version.lock().unwrap_or_else(|e| e.into_inner());
        let now = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
        let v = (*last + 2).max(now);
        *last = v + 1;
        v
    }

    async fn update(
        &self,
        side: Side,
        version: u64,
        shutdown: &CancellationToken,
    ) -> (Ack, UpdateReport) {
        let s = Sentinel::restore(&self.instance, self.id.clone(), version, Utc::now());
        let source = self.link(side).source.clone();
        let sent_at = Utc::now();
        let sent = Instant::now();
        let r: Result<Updated, ConnectorError> = self.call(side, shutdown, source.update(&s)).await;
        let acked = Instant::now();
        let mut report = UpdateReport {
            version,
            sent_at,
            acked_at: None,
            server_time: None,
            result: "ok",
            error: None,
        };
        let ack = match r {
            Ok(u) => {
                report.acked_at = Some(Utc::now());
                report.server_time = u.server_time;
                Ack::Ok { sent, acked }
            }
            Err(e) => {
                let rejected = is_rejection(&e);
                report.result = if rejected { "rejected" } else { "error" };
                report.error = Some(e.to_string());
                if rejected { Ack::Rejected } else { Ack::Failed }
            }
        };
        (ack, report)
    }

    /// One probe, start to outcome, counted in the metrics and kept for the API: what the
    /// loop of [`ConflictProber::run`] does every `interval`.
    pub async fn probe(&self, shutdown: &CancellationToken) -> ConflictProbe {
        let p = self.measure(shutdown).await;
        self.record(p.clone());
        p
    }

    async fn measure(&self, shutdown: &CancellationToken) -> ConflictProbe {
        let mut p = ConflictProbe {
            canary: self.id.key().to_string(),
            started_at: Utc::now(),
            outcome: "error",
            reason: String::new(),
            a: None,
            b: None,
            agreed_on: None,
            last_seen: None,
            sequential: false,
            expected: None,
            later_by_server_stamps: None,
            skew_seconds: None,
            agreement_after_seconds: None,
            agreement_seconds: None,
        };
        if let Err(why) = self.ensure(shutdown).await {
            p.reason = why;
            self.note_skew(&mut p);
            return p;
        }
        let version = self.next_version();
        let spread = self.spec.spread.get();
        let ((ack_a, rep_a), (sequential, (ack_b, rep_b))) =
            tokio::join!(self.update(Side::A, version, shutdown), async {
                if spread.is_zero() {
                    return (false, self.update(Side::B, version + 1, shutdown).await);
                }
                sleep(spread).await;
                // Already showing a's update, b's is a later one, not a conflict.
                let seen = matches!(
                    self.read(Side::B, shutdown).await,
                    Ok(l) if self.seen(&l, version) == Seen::Ours(Side::A)
                );
                (seen, self.update(Side::B, version + 1, shutdown).await)
            });
        p.sequential = sequential;
        p.later_by_server_stamps = match (rep_a.server_time, rep_b.server_time) {
            (Some(x), Some(y)) if x > y => Some(Side::A),
            (Some(x), Some(y)) if y > x => Some(Side::B),
            _ => None,
        };
        p.a = Some(rep_a);
        p.b = Some(rep_b);
        let expected = expected(&self.spec.policy, &self.spec.a, ack_a, ack_b, sequential);
        p.expected = expected;
        let from = match (ack_a, ack_b) {
            (Ack::Ok { acked: x, .. }, Ack::Ok { acked: y, .. }) => x.max(y),
            (Ack::Ok { acked, .. }, _) | (_, Ack::Ok { acked, .. }) => acked,
            _ => Instant::now(),
        };
        let ending = if [ack_a, ack_b].contains(&Ack::Failed) {
            Ending::Unread
        } else {
            self.read_until_agreed(from, version, &mut p, shutdown)
                .await
        };
        if let Ending::Agreed(Seen::Ours(side)) = ending {
            p.agreed_on = Some(side);
        }
        let (outcome, reason) = judge(ack_a, ack_b, expected, ending, (&self.spec.a, &self.spec.b));
        p.outcome = outcome;
        p.reason = reason;
        self.note_skew(&mut p);
        p
    }

    /// The skew between the two systems' clocks as lagwatch estimates them at the end of the
    /// probe, whose requests gave the estimates their latest samples.
    fn note_skew(&self, p: &mut ConflictProbe) {
        let (Some(oa), Some(ob)) = (
            self.metrics.clock_offset_of(&self.spec.a),
            self.metrics.clock_offset_of(&self.spec.b),
        ) else {
            return;
        };
        p.skew_seconds = Some(oa - ob);
        self.metrics
            .conflict
            .skew
            .with_label_values(&[&self.spec.a, &self.spec.b])
            .set(oa - ob);
    }

    /// Reads both sides from `from` (the later acknowledgement) until two rounds in a row
    /// agree, or a round sent at or after the deadline decides.
    async fn read_until_agreed(
        &self,
        from: Instant,
        version: u64,
        p: &mut ConflictProbe,
        shutdown: &CancellationToken,
    ) -> Ending {
        let deadline = from + self.spec.timeout.get();
        let mut wait = FIRST_READ;
        let mut next = from + wait;
        // The first round of the current run of agreeing rounds: (answered, value).
        let mut agreeing: Option<(Instant, Seen)> = None;
        let mut last_disagreeing = from;
        loop {
            sleep_until(next).await;
            let sent = Instant::now();
            let (ra, rb) = tokio::join!(self.read(Side::A, shutdown), self.read(Side::B, shutdown));
            let answered = Instant::now();
            let at_deadline = sent >= deadline;
            match (ra, rb) {
                (Ok(la), Ok(lb)) => {
                    let (sa, sb) = (self.seen(&la, version), self.seen(&lb, version));
                    p.last_seen = Some((sa, sb));
                    if sa == sb && sa != Seen::Absent {
                        match agreeing {
                            Some((first_answered, v)) if v == sa => {
                                p.agreement_after_seconds = Some(
                                    last_disagreeing
                                        .saturating_duration_since(from)
                                        .as_secs_f64(),
                                );
                                p.agreement_seconds = Some(
                                    first_answered.saturating_duration_since(from).as_secs_f64(),
                                );
                                return Ending::Agreed(sa);
                            }
                            _ => agreeing = Some((answered, sa)),
                        }
                        if at_deadline {
                            // One agreeing round at the deadline: no time left to confirm it.
                            p.agreement_after_seconds = Some(
                                last_disagreeing
                                    .saturating_duration_since(from)
                                    .as_secs_f64(),
                            );
                            p.agreement_seconds =
                                Some(answered.saturating_duration_since(from).as_secs_f64());
                            return Ending::Agreed(sa);
                        }
                    } else {
                        agreeing = None;
                        last_disagreeing = sent;
                        if at_deadline {
                            return Ending::Differ(sa, sb);
                        }
                    }
                }
                _ if at_deadline => return Ending::Unread,
                _ => {}
            }
            if shutdown.is_cancelled() {
                return Ending::Unread;
            }
            wait = (wait * 2).min(MAX_READ_GAP);
            next = if agreeing.is_some() {
                // Confirm soon: the agreement's time is already bounded by the first round.
                Instant::now() + FIRST_READ
            } else {
                (Instant::now() + wait).min(deadline)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(sent_ms: u64, acked_ms: u64, t0: Instant) -> Ack {
        Ack::Ok {
            sent: t0 + Duration::from_millis(sent_ms),
            acked: t0 + Duration::from_millis(acked_ms),
        }
    }

    #[test]
    fn last_writer_wins_expects_the_update_sent_after_the_other_was_acknowledged() {
        let t0 = Instant::now();
        let lww = Policy::LastWriterWins;
        assert_eq!(
            expected(&lww, "crm", ok(0, 100, t0), ok(1000, 1100, t0), false),
            Some(Side::B)
        );
        assert_eq!(
            expected(&lww, "crm", ok(1000, 1100, t0), ok(0, 100, t0), false),
            Some(Side::A)
        );
        // Overlapping: either may win.
        assert_eq!(
            expected(&lww, "crm", ok(0, 100, t0), ok(50, 150, t0), false),
            None
        );
        assert_eq!(
            expected(
                &Policy::Manual,
                "crm",
                ok(0, 100, t0),
                ok(1000, 1100, t0),
                true
            ),
            None
        );
        let crm = Policy::SourceWins("crm".into());
        assert_eq!(
            expected(&crm, "crm", ok(0, 100, t0), ok(1000, 1100, t0), false),
            Some(Side::A)
        );
        let fno = Policy::SourceWins("fno".into());
        assert_eq!(
            expected(&fno, "crm", ok(1000, 1100, t0), ok(0, 100, t0), false),
            Some(Side::B)
        );
        // b had seen a's update: b's is the later change, whoever the policy favours.
        assert_eq!(
            expected(&crm, "crm", ok(0, 100, t0), ok(1000, 1100, t0), true),
            Some(Side::B)
        );
        // One update refused: the other is what both must end on.
        assert_eq!(
            expected(&fno, "crm", ok(0, 100, t0), Ack::Rejected, false),
            Some(Side::A)
        );
    }

    #[test]
    fn every_outcome_is_decided_from_the_acknowledgements_and_the_last_reads() {
        let t0 = Instant::now();
        let (a, b) = (ok(0, 100, t0), ok(1000, 1100, t0));
        let agreed = |s| Ending::Agreed(Seen::Ours(s));
        let outcome = |a, b, e, ending| judge(a, b, e, ending, ("crm", "fno")).0;
        assert_eq!(
            outcome(a, b, Some(Side::B), agreed(Side::B)),
            "converged_same"
        );
        assert_eq!(outcome(a, b, None, agreed(Side::A)), "converged_same");
        assert_eq!(
            outcome(a, b, Some(Side::B), agreed(Side::A)),
            "policy_violated"
        );
        let differ = Ending::Differ(Seen::Ours(Side::A), Seen::Ours(Side::B));
        assert_eq!(outcome(a, b, Some(Side::B), differ), "diverged");
        assert_eq!(
            judge(a, b, Some(Side::B), differ, ("crm", "fno")).1,
            "at the timeout crm shows crm's update, fno shows fno's update"
        );
        assert_eq!(
            judge(a, b, Some(Side::B), agreed(Side::A), ("crm", "fno")).1,
            "both ended on crm's update; the policy keeps fno's"
        );
        assert_eq!(
            outcome(a, Ack::Rejected, Some(Side::A), agreed(Side::A)),
            "rejected"
        );
        let foreign = Ending::Agreed(Seen::Other(Some(7)));
        assert_eq!(
            outcome(Ack::Rejected, Ack::Rejected, None, foreign),
            "rejected"
        );
        assert_eq!(
            outcome(a, Ack::Failed, Some(Side::A), Ending::Unread),
            "error"
        );
        assert_eq!(outcome(a, b, None, Ending::Unread), "error");
        assert_eq!(outcome(a, b, None, foreign), "error");
        assert_eq!(outcome(a, b, None, Ending::Agreed(Seen::Absent)), "error");
    }

    #[test]
    fn a_conflict_refusal_is_a_4xx_answer_but_not_a_missing_row() {
        let bad = |status| ConnectorError::BadResponse {
            status,
            detail: String::new(),
        };
        assert!(is_rejection(&bad(400)));
        assert!(is_rejection(&bad(409)));
        assert!(is_rejection(&bad(412)));
        assert!(!is_rejection(&bad(404)));
        assert!(!is_rejection(&bad(0)));
        assert!(!is_rejection(&ConnectorError::Timeout));
        assert!(!is_rejection(&ConnectorError::Unavailable {
            status: 503,
            detail: String::new()
        }));
    }
}
