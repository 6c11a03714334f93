//! Azure AI Search indexer status (fact sheet §1.5): `GET /search/{svc}/indexers/{name}/status
//! ?api-version=…`, with the service's authentication (admin `api-key` or bearer).
//!
//! The search replica is what the indexer does, so its runs are derived from the records
//! replicated into the index ([`IndexerLog`]). Runs are scheduled every `indexer.every` from
//! the emulator's start and never overlap: a run starting at `s` processes every record (and
//! delete) committed since the previous successful run's start and before `s`, and ends at the
//! later of `s` + a short base duration (`every / 10`, at most 2 s) and the instant the last of
//! them became visible (or gone), as the replica drew it. So **a record committed before a
//! successful run's start is visible by that run's end**, whatever lag it drew; the next run
//! starts at the first schedule instant after the previous one ended. A record the replica
//! dropped is an `itemsFailed` of its run (with an `errors[]` entry, status still `success`).
//! A run that starts while the replica is paused, stalled, stopped or `unavailable` is a
//! `transientFailure` with an `errorMessage` and processes nothing (its records wait for the
//! next run). A run still waiting for its records is `inProgress` (no `endTime`). Times are
//! UTC with milliseconds (`startTime` rounded down, `endTime` up). The top-level `status` is
//! `running` ("able to run"); `executionHistory` holds the last 50 runs, newest first, and
//! `lastResult` is the newest.

use std::collections::VecDeque;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, DurationRound as _, Utc};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::super::replication::ReplicaDef;
use super::super::scenario::{LieKind, Target};
use super::super::{Emulator, json_response};
use super::{Claim, Condition, LOG_CAPACITY};

/// Runs kept (the history serves 50; a `stale_while_flowing` claim needs older ones).
const RUNS_KEPT: usize = 500;
/// Runs in `executionHistory`.
const HISTORY_SERVED: usize = 50;
/// Failed items named in a run's `errors[]`.
const ERRORS_KEPT: usize = 10;

/// A record (or delete) waiting for the indexer.
struct Item {
    key: String,
    committed: Instant,
    /// When the replica shows it (or stops showing it); `None`: never.
    arrival: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    TransientFailure(&'static str),
}

/// One run.
#[derive(Debug, Clone)]
struct Run {
    start: Instant,
    end: Instant,
    outcome: Outcome,
    processed: u64,
    failed: u64,
    errors: Vec<String>,
    /// Records waiting when it started (what a lying run claims to have processed).
    waiting: u64,
    /// The lie in force when it started.
    lie: Option<LieKind>,
}

/// An indexer's schedule and the runs it made.
pub(crate) struct IndexerLog {
    origin: Instant,
    every: Duration,
    items: VecDeque<Item>,
    runs: VecDeque<Run>,
    current: Option<Run>,
    next: Instant,
}

/// A run's shortest duration.
fn base_duration(every: Duration) -> Duration {
    (every / 10).clamp(Duration::from_millis(1), Duration::from_secs(2))
}

const UNREADABLE: &str = "Could not read changes from the data source: the source's change feed \
                          is not advancing (emulated pause or stall).";
const UNAVAILABLE: &str = "The index is not available: 503 Service Unavailable (emulated outage).";
const LIE_ERROR: &str = "An internal error occurred while the indexer ran; it will retry at the \
                         next scheduled run (emulated).";

impl IndexerLog {
    pub fn new(origin: Instant, every: Duration) -> IndexerLog {
        IndexerLog {
            origin,
            every,
            items: VecDeque::new(),
            runs: VecDeque::new(),
            current: None,
            next: origin + every,
        }
    }

    /// A record (or delete) `key` committed at `committed` shows (or leaves) at `arrival`.
    pub fn note(&mut self, key: &str, committed: Instant, arrival: Option<Instant>) {
        if self.items.len() >= LOG_CAPACITY {
            self.items.pop_front();
        }
        self.items.push_back(Item {
            key: key.to_string(),
            committed,
            arrival,
        });
    }

    /// The first schedule instant strictly after `t`.
    fn tick_after(&self, t: Instant) -> Instant {
        let step = self.every.as_nanos().max(1);
        let since = t.saturating_duration_since(self.origin).as_nanos();
        let k = since / step + 1;
        self.origin + Duration::from_nanos(u64::try_from(k * step).unwrap_or(u64::MAX))
    }

    /// Makes every run that started by `now`; `condition` and `lie` say what held at a run's
    /// start.
    pub fn advance(
        &mut self,
        now: Instant,
        condition: impl Fn(Instant) -> Condition,
        lie: impl Fn(Instant) -> Option<LieKind>,
    ) {
        loop {
            if let Some(cur) = &self.current {
                if cur.end > now {
                    return;
                }
                let next = self.tick_after(cur.end.max(cur.start));
                if let Some(done) = self.current.take() {
                    self.runs.push_back(done);
                    if self.runs.len() > RUNS_KEPT {
                        self.runs.pop_front();
                    }
                }
                self.next = next;
                continue;
            }
            let s = self.next;
            if s > now {
                return;
            }
            let base = base_duration(self.every);
            let waiting = self.items.iter().take_while(|i| i.committed < s).count();
            let mut run = Run {
                start: s,
                end: s + base,
                outcome: Outcome::Success,
                processed: 0,
                failed: 0,
                errors: Vec::new(),
                waiting: waiting as u64,
                lie: lie(s),
            };
            match condition(s) {
                Condition::Flowing => {
                    for item in self.items.drain(..waiting) {
                        match item.arrival {
                            Some(a) => {
                                run.processed += 1;
                                run.end = run.end.max(a);
                            }
                            None => {
                                run.failed += 1;
                                if run.errors.len() < ERRORS_KEPT {
                                    run.errors.push(item.key);
                                }
                            }
                        }
                    }
                }
                Condition::Unavailable => run.outcome = Outcome::TransientFailure(UNAVAILABLE),
                _ => run.outcome = Outcome::TransientFailure(UNREADABLE),
            }
            self.current = Some(run);
        }
    }

    /// The runs as claimed at `now`, newest first: honest, or with the lie each run started
    /// under, and without the runs since `frozen` (a `stale_while_flowing` in force).
    fn view(&self, now: Instant, honest: bool, frozen: Option<Instant>) -> Vec<RunView> {
        let base = base_duration(self.every);
        self.runs
            .iter()
            .chain(&self.current)
            .filter(|r| frozen.is_none_or(|f| r.start < f))
            .rev()
            .take(HISTORY_SERVED)
            .map(|r| {
                let mut v = RunView {
                    start: r.start,
                    end: (r.end <= now).then_some(r.end),
                    outcome: r.outcome,
                    processed: r.processed,
                    failed: r.failed,
                    errors: r.errors.clone(),
                };
                match r.lie.filter(|_| !honest) {
                    Some(LieKind::HealthyWhileStuck)
                        if r.outcome != Outcome::Success || r.end > r.start + base =>
                    {
                        v.outcome = Outcome::Success;
                        v.end = (r.start + base <= now).then_some(r.start + base);
                        v.processed = r.waiting;
                        v.failed = 0;
                        v.errors.clear();
                    }
                    Some(LieKind::ErrorWhileFlowing) if r.outcome == Outcome::Success => {
                        v.outcome = Outcome::TransientFailure(LIE_ERROR);
                        v.processed = 0;
                        v.failed = 0;
                        v.errors.clear();
                    }
                    _ => {}
                }
                v
            })
            .collect()
    }
}

/// A run as served.
struct RunView {
    start: Instant,
    /// `None` while in progress.
    end: Option<Instant>,
    outcome: Outcome,
    processed: u64,
    failed: u64,
    errors: Vec<String>,
}

impl RunView {
    fn status(&self) -> &'static str {
        match (self.end, self.outcome) {
            (None, _) => "inProgress",
            (_, Outcome::Success) => "success",
            (_, Outcome::TransientFailure(_)) => "transientFailure",
        }
    }
}

/// UTC with milliseconds, rounded down (`up`: rounded up).
fn ms_time(t: DateTime<Utc>, up: bool) -> String {
    let ms = chrono::Duration::milliseconds(1);
    let down = t.duration_trunc(ms).unwrap_or(t);
    let t = if up && down < t { down + ms } else { down };
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

impl Emulator {
    /// The claim of search replica `r`'s indexer: its status document as `raw`, the state of
    /// its newest run, and the end of its newest successful one as `last_sync`.
    pub(crate) fn indexer_claim(&self, r: &ReplicaDef, now: Instant, honest: bool) -> Claim {
        let (name, every) = self.scenario.indexer_of(&r.name).map_or_else(
            || (format!("{}-indexer", r.name), Duration::from_secs(30)),
            |(n, e)| (n, e.get()),
        );
        let frozen = self
            .lie_for(&r.name, now, honest)
            .filter(|l| l.kind == LieKind::StaleWhileFlowing)
            .map(|l| l.since);
        let runs = {
            let mut book = self.book();
            let log = book
                .indexers
                .entry(r.name.clone())
                .or_insert_with(|| IndexerLog::new(self.started, every));
            log.advance(
                now,
                |s| self.condition(&r.name, s),
                |s| self.lie_at(&r.name, s).map(|l| l.kind),
            );
            log.view(now, honest, frozen)
        };
        let json_run = |v: &RunView| {
            json!({
                "status": v.status(),
                "errorMessage": match (v.end, v.outcome) {
                    (Some(_), Outcome::TransientFailure(m)) => Value::String(m.to_string()),
                    _ => Value::Null,
                },
                "startTime": ms_time(self.wall_time(v.start), false),
                "endTime": v.end.map(|e| ms_time(self.wall_time(e), true)),
                "errors": v.errors.iter().map(|k| json!({
                    "key": k,
                    "name": null,
                    "errorMessage": "The document could not be indexed: the replica lost it (emulated drop).",
                    "statusCode": 500,
                    "details": null,
                    "documentationLink": null,
                })).collect::<Vec<_>>(),
                "warnings": [],
                "itemsProcessed": v.processed,
                "itemsFailed": v.failed,
                "initialTrackingState": null,
                "finalTrackingState": null,
            })
        };
        let history: Vec<Value> = runs.iter().map(json_run).collect();
        let mut claim = Claim::new(match runs.first() {
            None => "healthy",
            Some(v) => match v.status() {
                "success" => "healthy",
                "inProgress" => "in_progress",
                _ => "error",
            },
        });
        claim.last_sync = runs
            .iter()
            .find(|v| v.status() == "success")
            .and_then(|v| v.end);
        let mut raw = Map::new();
        raw.insert("name".into(), json!(name));
        raw.insert("status".into(), json!("running"));
        raw.insert(
            "lastResult".into(),
            history.first().cloned().unwrap_or(Value::Null),
        );
        raw.insert("executionHistory".into(), Value::Array(history));
        raw.insert(
            "limits".into(),
            json!({
                "maxRunTime": "PT2H",
                "maxDocumentExtractionSize": 16_777_216,
                "maxDocumentContentCharactersToExtract": 32_768,
            }),
        );
        claim.raw = raw;
        claim
    }

    /// `GET /search/{service}/indexers/{name}/status` (authenticated and versioned by the
    /// caller).
    pub(crate) fn indexer_status(&self, host: &str, service: &str, name: &str) -> Response {
        let r = self.replicas.iter().find(|r| {
            matches!(&r.target, Target::Search { service: s, .. } if s == service)
                && self
                    .scenario
                    .indexer_of(&r.name)
                    .is_some_and(|(n, _)| n == name)
        });
        let Some(r) = r else {
            return json_response(
                StatusCode::NOT_FOUND,
                &json!({"error": {"code": "", "message": format!("Indexer '{name}' was not found in service '{service}'.")}}),
            );
        };
        let mut body = self.indexer_claim(r, Instant::now(), false).raw;
        let mut out = Map::new();
        out.insert(
            "@odata.context".into(),
            json!(format!(
                "http://{host}/search/{service}/$metadata#Microsoft.Azure.Search.V2024_07_01.IndexerExecutionInfo"
            )),
        );
        out.append(&mut body);
        json_response(StatusCode::OK, &Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_record_committed_before_a_successful_run_is_visible_by_its_end() {
        let t0 = Instant::now();
        let mut log = IndexerLog::new(t0, secs(10));
        log.note("a", t0 + secs(2), Some(t0 + secs(13)));
        log.note("b", t0 + secs(3), Some(t0 + secs(4)));
        log.note("lost", t0 + secs(4), None);
        log.note("c", t0 + secs(11), Some(t0 + secs(12)));
        let flowing = |_| Condition::Flowing;
        log.advance(t0 + secs(12), flowing, |_| None);
        let v = log.view(t0 + secs(12), true, None);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].status(), "inProgress", "waits for a (visible at 13 s)");
        log.advance(t0 + secs(25), flowing, |_| None);
        let v = log.view(t0 + secs(25), true, None);
        assert_eq!(v.len(), 2, "the second run starts at 20 s");
        let first = &v[1];
        assert_eq!(first.status(), "success");
        assert_eq!(first.end, Some(t0 + secs(13)));
        assert_eq!((first.processed, first.failed), (2, 1));
        assert_eq!(first.errors, vec!["lost".to_string()]);
        assert_eq!(v[0].start, t0 + secs(20));
        assert_eq!(v[0].processed, 1, "c, committed during the first run");
    }

    #[test]
    fn runs_fail_while_stuck_and_the_lies_bend_them() {
        let t0 = Instant::now();
        let mut log = IndexerLog::new(t0, secs(10));
        log.note("a", t0 + secs(5), Some(t0 + secs(31)));
        let stalled = move |s: Instant| {
            if s < t0 + secs(30) {
                Condition::Stalled
            } else {
                Condition::Flowing
            }
        };
        let lie = |_| Some(LieKind::HealthyWhileStuck);
        log.advance(t0 + secs(45), stalled, lie);
        let honest = log.view(t0 + secs(45), true, None);
        let statuses: Vec<&str> = honest.iter().rev().map(RunView::status).collect();
        assert_eq!(
            statuses,
            ["transientFailure", "transientFailure", "success", "success"]
        );
        assert_eq!(honest[1].end, Some(t0 + secs(31)));
        let lied = log.view(t0 + secs(45), false, None);
        assert!(lied.iter().all(|v| v.status() == "success"));
        assert_eq!(lied[3].processed, 1, "claims the waiting record");
        let frozen = log.view(t0 + secs(45), false, Some(t0 + secs(25)));
        assert_eq!(frozen.len(), 2, "nothing after the freeze");
    }

    #[test]
    fn the_error_lie_fails_successful_runs_only() {
        let t0 = Instant::now();
        let mut log = IndexerLog::new(t0, secs(10));
        log.note("a", t0 + secs(1), Some(t0 + secs(2)));
        log.advance(
            t0 + secs(15),
            |_| Condition::Flowing,
            |_| Some(LieKind::ErrorWhileFlowing),
        );
        let v = log.view(t0 + secs(15), false, None);
        assert_eq!(v[0].status(), "transientFailure");
        assert_eq!(log.view(t0 + secs(15), true, None)[0].status(), "success");
    }

    #[test]
    fn times_round_outwards_to_milliseconds() {
        let t = DateTime::parse_from_rfc3339("2026-05-01T10:00:00.1234Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        assert_eq!(ms_time(t, false), "2026-05-01T10:00:00.123Z");
        assert_eq!(ms_time(t, true), "2026-05-01T10:00:00.124Z");
    }
}
