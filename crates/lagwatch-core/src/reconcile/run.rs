//! One reconciliation run: read both sides through their inventories, sort, diff, judge.
//!
//! The replica is read completely **before** the source. With `cutoff = run start − settle`
//! (moved onto the source's clock by its measured offset, and one second earlier because
//! Dataverse stores `modifiedon` in whole seconds)
//! and replication no slower than the settle window, a source row that changed before the
//! cutoff had reached the replica before the replica was read, and a source change made after
//! the replica was read shows in the source read with a `changed` time after the cutoff, so
//! it is unsettled — never a false stale or mismatched row.
//!
//! Pacing is the runner's: every page waits at the system's gate (429 pause, concurrency,
//! budget), and while a system's budget is more than half used by others the runner waits, so
//! a large table never starves the probes. Throttling is retried after Retry-After; transient
//! failures (unavailable, transport, timeout) three times with backoff; anything else ends
//! the run as an error.

use super::progress::{Observer, Unobserved};
use std::cell::{Cell, RefCell};
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::diff::{Record, diff};
use super::judge::{Judge, State, Tally};
use super::sort::{Item, Sorted, Sorter};
use super::spec::RowError;
use crate::config::reconcile::{ReconcileSpec, Side};
use crate::connector::ConnectorError;
use crate::connector::inventory::{Inventory, InventoryShape};
use crate::gate::Gate;

/// Coarsest precision of a `changed` time: Dataverse writes `modifiedon` in whole seconds, so
/// a row changed at 10:00:00.9 says 10:00:00; the cutoff moves back by this much.
const CHANGED_PRECISION: Duration = Duration::from_secs(1);
/// Share of a system's request budget above which reconciliation waits for the probes.
const BUDGET_SHARE: f64 = 0.5;
/// Retries of a page after a transient failure, with doubling backoff from 1 s.
const TRANSIENT_RETRIES: u32 = 3;
/// Consecutive throttling answers to one page before the run gives up.
const THROTTLE_RETRIES: u32 = 20;

/// One side as the runner reads it.
#[derive(Clone)]
pub struct SideReader {
    pub system: String,
    pub inventory: Arc<dyn Inventory>,
    pub gate: Arc<Gate>,
    pub spec: Side,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("reading {side} {system}: {source}")]
    Connector {
        side: &'static str,
        system: String,
        #[source]
        source: ConnectorError,
    },
    #[error("reading {side} {system}: {error}")]
    Row {
        side: &'static str,
        system: String,
        error: RowError,
    },
    #[error("{side} {system} cannot be read this way: {reason}")]
    Query {
        side: &'static str,
        system: String,
        reason: String,
    },
    #[error("sorting on disk: {0}")]
    Io(#[from] io::Error),
    #[error("stopped by shutdown")]
    Cancelled,
}

/// What a run read on one side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SideStats {
    pub pages: u64,
    pub rows: u64,
    /// Rows without a key (a null key column): not comparable, skipped.
    pub unkeyed: u64,
    /// Rows of a current-state side whose key was already read (compound key not unique).
    pub duplicates: u64,
    /// Rows keyed by a sentinel key of any lagwatch instance (`lagwatch-<instance>-<uuid>`):
    /// probes, not the customer's data, skipped.
    pub sentinels: u64,
    pub spilled_bytes: u64,
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub settle: Duration,
    pub tally: Tally,
    pub state: State,
    pub source: SideStats,
    pub target: SideStats,
}

/// Reads, sorts and compares one entry.
pub struct Runner {
    pub source: SideReader,
    pub target: SideReader,
    pub spec: ReconcileSpec,
    /// Deadline of one page request.
    pub request_timeout: Duration,
    /// Where sort runs spill.
    pub work_dir: PathBuf,
    /// Records held in memory per side before spilling.
    pub sort_chunk: usize,
}

impl Runner {
    /// One run against the previous state, with `settle` as the settle window.
    ///
    /// # Errors
    /// [`RunError`]: a side could not be read, a row could not be understood, the disk failed,
    /// or `cancel` fired.
    pub async fn run(
        &self,
        prev: &State,
        settle: Duration,
        source_clock_offset: f64,
        cancel: &CancellationToken,
    ) -> Result<RunOutput, RunError> {
        self.run_observed(prev, settle, source_clock_offset, cancel, &Unobserved)
            .await
    }

    /// As [`Runner::run`], telling `observer` of every page read.
    ///
    /// # Errors
    /// As [`Runner::run`].
    pub async fn run_observed(
        &self,
        prev: &State,
        settle: Duration,
        source_clock_offset: f64,
        cancel: &CancellationToken,
        observer: &dyn Observer,
    ) -> Result<RunOutput, RunError> {
        let started = Utc::now();
        let settle_td = chrono::TimeDelta::from_std(settle + CHANGED_PRECISION)
            .unwrap_or(chrono::TimeDelta::MAX);
        let offset = chrono::TimeDelta::milliseconds((source_clock_offset * 1000.0) as i64);
        let cutoff = started - settle_td;
        // Rows' `changed` times are on the source's clock; first sightings on ours.
        let changed_cutoff = cutoff + offset;
        let since = self.spec.changed_within.and_then(|w| {
            chrono::TimeDelta::from_std(w.get())
                .ok()
                .map(|w| started - w)
        });
        // The replica first: see the module documentation.
        let (replica, target_stats) = self
            .read_side("target", &self.target, None, cancel, observer)
            .await?;
        let (source, source_stats) = self
            .read_side("source", &self.source, since, cancel, observer)
            .await?;
        let seen_at = Utc::now();
        let prev = prev.clone();
        let windowed = since.is_some();
        let max_keys = self.spec.max_keys;
        let shapes = (self.source.inventory.shape(), self.target.inventory.shape());
        let (tally, state, dup_s, dup_t) = tokio::task::spawn_blocking(move || {
            let err: Rc<RefCell<Option<io::Error>>> = Rc::default();
            let dup_s = Rc::new(Cell::new(0u64));
            let dup_t = Rc::new(Cell::new(0u64));
            let s = Latest::new(source, shapes.0, err.clone(), dup_s.clone());
            let r = Latest::new(replica, shapes.1, err.clone(), dup_t.clone());
            let mut judge = Judge::new(&prev, cutoff, seen_at, windowed, max_keys)
                .with_changed_cutoff(changed_cutoff);
            for c in diff(s, r) {
                judge.add(c);
            }
            let (tally, state) = judge.finish();
            match err.take() {
                Some(e) => Err(e),
                None => Ok((tally, state, dup_s.get(), dup_t.get())),
            }
        })
        .await
        .map_err(|e| io::Error::other(e.to_string()))??;
        Ok(RunOutput {
            started,
            finished: Utc::now(),
            settle,
            tally,
            state,
            source: SideStats {
                duplicates: dup_s,
                ..source_stats
            },
            target: SideStats {
                duplicates: dup_t,
                ..target_stats
            },
        })
    }

    /// Reads every page of one side into a sorter.
    async fn read_side(
        &self,
        side: &'static str,
        reader: &SideReader,
        since: Option<DateTime<Utc>>,
        cancel: &CancellationToken,
        observer: &dyn Observer,
    ) -> Result<(Sorted, SideStats), RunError> {
        let query = reader.spec.query(self.spec.page_size, since);
        reader
            .inventory
            .check(&query)
            .map_err(|reason| RunError::Query {
                side,
                system: reader.system.clone(),
                reason,
            })?;
        observer.side_start(side);
        let mut sorter = Sorter::new(&self.work_dir, self.sort_chunk);
        let mut stats = SideStats::default();
        let mut next: Option<String> = None;
        let mut seq = 0u64;
        loop {
            let page = self
                .fetch(side, reader, &query, next.as_deref(), cancel)
                .await?;
            stats.pages += 1;
            let spec = reader.spec.clone();
            let system = reader.system.clone();
            // Parsing, hashing and sorting a page is CPU and disk work: off the runtime's
            // workers, whose timers time the probes.
            let rows = page.rows;
            let (s, st, sq) = tokio::task::spawn_blocking(move || {
                let mut st = stats;
                let mut sq = seq;
                for row in rows {
                    st.rows += 1;
                    let record = match spec.record(&row) {
                        Ok(r) => r,
                        Err(RowError::NullKey { .. }) => {
                            st.unkeyed += 1;
                            continue;
                        }
                        Err(error) => {
                            return Err(RunError::Row {
                                side,
                                system: system.clone(),
                                error,
                            });
                        }
                    };
                    if record
                        .key
                        .split(super::spec::KEY_SEPARATOR)
                        .any(crate::sentinel::SentinelId::is_sentinel_key)
                    {
                        st.sentinels += 1;
                        continue;
                    }
                    if let (Some(since), Some(changed)) = (since, record.changed)
                        && changed < since
                    {
                        continue;
                    }
                    sq += 1;
                    sorter.push(Item {
                        record,
                        seq: sq,
                        deleted: row.deleted,
                    })?;
                }
                Ok((sorter, st, sq))
            })
            .await
            .map_err(|e| io::Error::other(e.to_string()))??;
            sorter = s;
            stats = st;
            seq = sq;
            observer.page(side, stats.pages, stats.rows);
            match page.next {
                Some(n) => next = Some(n),
                None => break,
            }
        }
        observer.side_done(side);
        stats.spilled_bytes = sorter.spilled_bytes;
        let sorted = tokio::task::spawn_blocking(move || sorter.finish())
            .await
            .map_err(|e| io::Error::other(e.to_string()))??;
        Ok((sorted, stats))
    }

    /// One page, with the gate, budget share, timeout and retries.
    async fn fetch(
        &self,
        side: &'static str,
        reader: &SideReader,
        query: &crate::connector::inventory::InventoryQuery,
        next: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<crate::connector::inventory::InventoryPage, RunError> {
        let mut transient = 0u32;
        let mut throttled = 0u32;
        loop {
            while reader.gate.used_share() > BUDGET_SHARE {
                pause(Duration::from_secs(1), cancel).await?;
            }
            let result = {
                let _permit = tokio::select! {
                    p = reader.gate.admit() => p,
                    () = cancel.cancelled() => return Err(RunError::Cancelled),
                };
                tokio::select! {
                    r = tokio::time::timeout(self.request_timeout, reader.inventory.page(query, next)) => {
                        r.unwrap_or(Err(ConnectorError::Timeout))
                    }
                    () = cancel.cancelled() => return Err(RunError::Cancelled),
                }
            };
            let error = match result {
                Ok(page) => return Ok(page),
                Err(e) => e,
            };
            match &error {
                ConnectorError::Throttled { retry_after } if throttled < THROTTLE_RETRIES => {
                    throttled += 1;
                    reader.gate.throttled(*retry_after);
                }
                ConnectorError::Unavailable { .. }
                | ConnectorError::Transport(_)
                | ConnectorError::Timeout
                    if transient < TRANSIENT_RETRIES =>
                {
                    pause(Duration::from_secs(1 << transient), cancel).await?;
                    transient += 1;
                }
                _ => {
                    return Err(RunError::Connector {
                        side,
                        system: reader.system.clone(),
                        source: error,
                    });
                }
            }
            tracing::debug!(side, system = %reader.system, error = %error, "Retrying an inventory page.");
        }
    }
}

async fn pause(d: Duration, cancel: &CancellationToken) -> Result<(), RunError> {
    tokio::select! {
        () = tokio::time::sleep(d) => Ok(()),
        () = cancel.cancelled() => Err(RunError::Cancelled),
    }
}

/// One record per key from a sorted side: for a change log the last one read (none when it
/// is a delete), for a current-state side the first (later ones are counted as duplicates).
/// The first I/O error ends the stream and is kept in `err`.
struct Latest {
    inner: std::iter::Peekable<Sorted>,
    shape: InventoryShape,
    err: Rc<RefCell<Option<io::Error>>>,
    duplicates: Rc<Cell<u64>>,
}

impl Latest {
    fn new(
        sorted: Sorted,
        shape: InventoryShape,
        err: Rc<RefCell<Option<io::Error>>>,
        duplicates: Rc<Cell<u64>>,
    ) -> Latest {
        Latest {
            inner: sorted.peekable(),
            shape,
            err,
            duplicates,
        }
    }

    fn pull(&mut self) -> Option<Item> {
        match self.inner.next()? {
            Ok(item) => Some(item),
            Err(e) => {
                self.err.borrow_mut().get_or_insert(e);
                None
            }
        }
    }
}

impl Iterator for Latest {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        loop {
            if self.err.borrow().is_some() {
                return None;
            }
            let mut current = self.pull()?;
            while let Some(Ok(peek)) = self.inner.peek() {
                if peek.record.key != current.record.key {
                    break;
                }
                let Some(later) = self.pull() else { break };
                match self.shape {
                    InventoryShape::Changes => current = later,
                    InventoryShape::Current => self.duplicates.set(self.duplicates.get() + 1),
                }
            }
            if self.shape == InventoryShape::Changes && current.deleted {
                continue;
            }
            return Some(current.record);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::inventory::{InventoryPage, InventoryQuery, InventoryRow};
    use crate::reconcile::diff::Kind;
    use async_trait::async_trait;
    use std::sync::Mutex;

    /// A side served from memory, `per_page` rows a page; `failures` are returned first.
    struct Pages {
        rows: Vec<InventoryRow>,
        per_page: usize,
        shape: InventoryShape,
        failures: Mutex<Vec<ConnectorError>>,
        calls: Mutex<u32>,
    }

    #[async_trait]
    impl Inventory for Pages {
        fn shape(&self) -> InventoryShape {
            self.shape
        }
        async fn fetch(
            &self,
            _q: &InventoryQuery,
            next: Option<&str>,
        ) -> Result<InventoryPage, ConnectorError> {
            *self.calls.lock().expect("calls") += 1;
            if let Some(e) = self.failures.lock().expect("failures").pop() {
                return Err(e);
            }
            let start: usize =
                next.map_or(Ok(0), str::parse)
                    .map_err(|_| ConnectorError::BadResponse {
                        status: 200,
                        detail: "cursor".into(),
                    })?;
            let end = (start + self.per_page).min(self.rows.len());
            Ok(InventoryPage {
                rows: self.rows[start..end].to_vec(),
                next: (end < self.rows.len()).then(|| end.to_string()),
            })
        }
    }

    fn row(key: &str, version: u64, changed: &str, deleted: bool) -> InventoryRow {
        InventoryRow {
            values: vec![
                Some(key.to_string()),
                Some(version.to_string()),
                Some(changed.to_string()),
            ],
            deleted,
        }
    }

    fn side(rows: Vec<InventoryRow>, shape: InventoryShape) -> Arc<Pages> {
        Arc::new(Pages {
            rows,
            per_page: 2,
            shape,
            failures: Mutex::new(Vec::new()),
            calls: Mutex::new(0),
        })
    }

    fn runner(source: Arc<Pages>, target: Arc<Pages>, dir: &std::path::Path) -> Runner {
        let s = Side {
            table: None,
            key: vec!["k".into()],
            version: Some("v".into()),
            changed: Some("c".into()),
            compare: Vec::new(),
            normalize: Vec::new(),
        };
        let reader = |inv: Arc<Pages>, name: &str| SideReader {
            system: name.into(),
            inventory: inv,
            gate: Arc::new(Gate::unlimited_for_tests()),
            spec: s.clone(),
        };
        Runner {
            source: reader(source, "src"),
            target: reader(target, "rep"),
            spec: ReconcileSpec {
                name: "t".into(),
                interval: crate::config::Dur::secs(60),
                changed_within: None,
                settle_floor: crate::config::Dur::secs(60),
                page_size: 2,
                max_keys: 100,
                source: s.clone(),
                target: s,
            },
            request_timeout: Duration::from_secs(5),
            work_dir: dir.to_path_buf(),
            sort_chunk: 3,
        }
    }

    const OLD: &str = "2020-01-01T00:00:00Z";

    /// A run without earlier state, settling after 1 s.
    async fn fresh_run(r: Runner) -> RunOutput {
        r.run(
            &State::default(),
            Duration::from_secs(1),
            0.0,
            &CancellationToken::new(),
        )
        .await
        .expect("run")
    }

    #[tokio::test]
    async fn a_change_log_side_keeps_the_last_row_per_key_and_drops_deletes() {
        let dir = tempfile::tempdir().expect("dir");
        let now = Utc::now().to_rfc3339();
        let source = side(
            vec![
                row("e", 1, OLD, false),
                row("a", 2, OLD, false),
                row("b", 5, OLD, false),
                row("c", 1, OLD, false),
                row("f", 9, &now, false),
                row("g", 1, OLD, false),
            ],
            InventoryShape::Current,
        );
        let lake = side(
            vec![
                row("a", 1, OLD, false),
                row("b", 4, OLD, false),
                row("a", 2, OLD, false),
                row("b", 5, OLD, false),
                row("c", 1, OLD, false),
                row("c", 1, OLD, true),
                row("d", 1, OLD, false),
                row("e", 1, OLD, false),
                row("g", 2, OLD, false),
            ],
            InventoryShape::Changes,
        );
        let r = runner(source.clone(), lake.clone(), dir.path());
        let out = r
            .run(
                &State::default(),
                Duration::from_secs(60),
                0.0,
                &CancellationToken::new(),
            )
            .await
            .expect("run");
        let t = &out.tally;
        // a, b, e agree; c deleted in the lake → missing; d extra (unsettled: first sighting);
        // f missing but changed just now → unsettled; g: the replica is newer → unsettled.
        assert_eq!(t.count(Kind::Missing, false), 1, "{t:?}");
        assert_eq!(t.total(), 1);
        assert_eq!(t.unsettled, 3);
        assert_eq!(t.compared, 7);
        assert_eq!(out.source.rows, 6);
        assert_eq!(out.target.rows, 9);
        assert_eq!(out.target.pages, 5);
        assert!(
            out.target.spilled_bytes > 0,
            "9 rows with a chunk of 3 spill"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("dir").count(),
            0,
            "spills removed"
        );
        assert!(out.state.entries.contains_key("c") && out.state.entries.contains_key("d"));
    }

    #[tokio::test]
    async fn duplicate_keys_of_a_current_side_are_counted_not_compared_twice() {
        let dir = tempfile::tempdir().expect("dir");
        let source = side(
            vec![row("a", 1, OLD, false), row("a", 2, OLD, false)],
            InventoryShape::Current,
        );
        let target = side(vec![row("a", 1, OLD, false)], InventoryShape::Current);
        let out = fresh_run(runner(source, target, dir.path())).await;
        assert_eq!(out.source.duplicates, 1);
        assert_eq!(out.tally.compared, 1);
        assert_eq!(
            out.tally.total(),
            0,
            "the first row read counts: version 1 = 1"
        );
    }

    #[tokio::test]
    async fn sentinels_of_every_instance_are_not_drift() {
        let dir = tempfile::tempdir().expect("dir");
        // This instance's sentinel was deleted from the source but is still in the replica;
        // another instance's is only in the source; a canary only in the replica.
        let mine = crate::sentinel::SentinelId::new("demo");
        let theirs = crate::sentinel::SentinelId::new("other-pod-1");
        let canary = crate::sentinel::SentinelId::canary("demo", "crm@30s");
        let source = side(
            vec![
                row("a", 1, OLD, false),
                row(theirs.key(), 1, OLD, false),
                // Looks like one, is not: a customer's key with the prefix.
                row("lagwatch-demo-not-a-uuid", 1, OLD, false),
            ],
            InventoryShape::Current,
        );
        let target = side(
            vec![
                row("a", 1, OLD, false),
                row(mine.key(), 1, OLD, false),
                row(canary.key(), 3, OLD, false),
            ],
            InventoryShape::Current,
        );
        let out = fresh_run(runner(source, target, dir.path())).await;
        assert_eq!(out.source.sentinels, 1);
        assert_eq!(out.target.sentinels, 2);
        assert_eq!(out.tally.compared, 2, "a, and the customer's look-alike");
        assert!(
            out.state
                .entries
                .keys()
                .all(|k| k == "lagwatch-demo-not-a-uuid"),
            "only the look-alike is discrepant: {:?}",
            out.state.entries.keys().collect::<Vec<_>>()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_and_transient_failures_are_retried_and_others_end_the_run() {
        let dir = tempfile::tempdir().expect("dir");
        let source = side(vec![row("a", 1, OLD, false)], InventoryShape::Current);
        let target = side(vec![row("a", 1, OLD, false)], InventoryShape::Current);
        target.failures.lock().expect("f").extend([
            ConnectorError::Timeout,
            ConnectorError::Throttled {
                retry_after: Some(Duration::from_secs(30)),
            },
        ]);
        let r = runner(source.clone(), target.clone(), dir.path());
        let t0 = tokio::time::Instant::now();
        let out = r
            .run(
                &State::default(),
                Duration::from_secs(1),
                0.0,
                &CancellationToken::new(),
            )
            .await
            .expect("retried");
        assert_eq!(*target.calls.lock().expect("calls"), 3);
        assert!(
            t0.elapsed() >= Duration::from_secs(31),
            "waited Retry-After and the backoff"
        );
        assert_eq!(out.tally.compared, 1);

        source
            .failures
            .lock()
            .expect("f")
            .push(ConnectorError::Auth("denied".into()));
        let e = r
            .run(
                &State::default(),
                Duration::from_secs(1),
                0.0,
                &CancellationToken::new(),
            )
            .await
            .expect_err("auth is not retried");
        assert!(
            matches!(e, RunError::Connector { side: "source", .. }),
            "{e}"
        );
        assert!(e.to_string().contains("reading source src"), "{e}");
    }

    #[tokio::test]
    async fn an_unreadable_changed_value_names_the_column() {
        let dir = tempfile::tempdir().expect("dir");
        let source = side(
            vec![row("a", 1, "last tuesday", false)],
            InventoryShape::Current,
        );
        let target = side(Vec::new(), InventoryShape::Current);
        let e = runner(source, target, dir.path())
            .run(
                &State::default(),
                Duration::from_secs(1),
                0.0,
                &CancellationToken::new(),
            )
            .await
            .expect_err("bad time");
        assert!(
            e.to_string().contains("column c holds \"last tuesday\""),
            "{e}"
        );
    }
}
