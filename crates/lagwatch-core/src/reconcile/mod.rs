//! Reconciliation: compare a source table with each replica, find what differs, and tell drift
//! (something was lost or went stale) from lag (it is still on its way).
//!
//! Data flow of one run (one configured entry of a path): the replica, then the source, is read
//! page by page through the side's [`inventory::Inventory`] (the system's own connector, gate
//! and budget) → each row becomes a comparable [`diff::Record`] ([`spec`]: compound key,
//! version, changed time, hash of normalised compared columns) → an external sort by key
//! ([`sort`]) → one record per key ([`run`]) → the pure merge [`diff`] → [`judge`]: settle
//! window, persistence, healing → metrics ([`metrics`]), the remembered state ([`store`]) and
//! the keys behind `/api/v1/discrepancies`.
//!
//! The settle window is derived from the path's live lag: twice the highest of its recent
//! converged probe lags (which, with 16 kept, stands for the p99), never less than the
//! entry's `settle_floor`. Before the path has converged a few probes (and in the one-shot
//! CLI) nothing is known of its lag but its timeout, which then stands in: a path whose lag
//! exceeds its objective must not have its rows in flight judged as drift.

pub mod diff;
pub mod judge;
pub mod progress;
pub mod run;
pub mod sort;
pub mod spec;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Issue};
use crate::metrics::Metrics;
use crate::probe::path::PathHandle;
use crate::systems::System;

use crate::config::reconcile::ReconcileSpec;
use diff::Kind;
use judge::{State, Tally, kind_index};
use run::{RunError, RunOutput, Runner, SideReader, SideStats};
use store::Store;

/// Delay before an entry's first run, at most (its interval if shorter).
const FIRST_RUN_AFTER: Duration = Duration::from_secs(10);

/// What the last run of an entry did, for the API and the status page.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub outcome: &'static str,
    /// Why it failed (`outcome` = error).
    pub error: Option<String>,
    pub settle_window_seconds: f64,
    /// Judged discrepancies: kind → (transient, persistent).
    pub discrepancies: HashMap<&'static str, [u64; 2]>,
    pub unsettled: u64,
    pub compared: u64,
    pub source_rows: u64,
    pub target_rows: u64,
    pub source_pages: u64,
    pub target_pages: u64,
    pub unkeyed_rows: u64,
    pub duplicate_keys: u64,
    /// Rows skipped because their key is a lagwatch sentinel's (this or another instance's).
    pub sentinel_rows: u64,
    /// More keys were discrepant than `max_keys`: the API lists only the first ones.
    pub truncated: bool,
}

/// One configured entry and what it remembers.
pub struct EntryHandle {
    pub source: String,
    pub target: String,
    pub spec: ReconcileSpec,
    runner: Runner,
    store: Store,
    path: Option<Arc<PathHandle>>,
    /// The settle window while the path's lag is unknown: its timeout.
    fallback: Duration,
    metrics: Metrics,
    state: Mutex<EntryState>,
}

#[derive(Default)]
struct EntryState {
    remembered: State,
    last: Option<RunSummary>,
}

/// A discrepant key as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DiscrepancyView {
    pub source: String,
    pub target: String,
    pub table: String,
    /// Compound keys joined with `|`.
    pub key: String,
    pub kind: Kind,
    pub persistence: &'static str,
    pub first_seen: DateTime<Utc>,
    pub source_version: Option<String>,
    pub replica_version: Option<String>,
    pub source_changed: Option<DateTime<Utc>>,
}

impl EntryHandle {
    fn lock(&self) -> MutexGuard<'_, EntryState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The settle window a run started now would use.
    pub fn settle_window(&self) -> Duration {
        let floor = self.spec.settle_floor.get();
        let basis = self
            .path
            .as_ref()
            .and_then(|p| p.recent_high())
            .map_or(self.fallback, |high| high.saturating_mul(2));
        floor.max(basis)
    }

    pub fn last_run(&self) -> Option<RunSummary> {
        self.lock().last.clone()
    }

    /// Judged discrepancies remembered from the last run, in key order.
    pub fn discrepancies(&self) -> Vec<DiscrepancyView> {
        let st = self.lock();
        st.remembered
            .entries
            .iter()
            .filter(|(_, e)| e.judged)
            .map(|(k, e)| DiscrepancyView {
                source: self.source.clone(),
                target: self.target.clone(),
                table: self.spec.name.clone(),
                key: spec::display_key(k),
                kind: e.kind,
                persistence: if e.persistent() {
                    "persistent"
                } else {
                    "transient"
                },
                first_seen: e.first_seen,
                source_version: e.source_version.clone(),
                replica_version: e.replica_version.clone(),
                source_changed: e.source_changed,
            })
            .collect()
    }

    /// Runs once now: reads, compares, remembers, saves and exports.
    ///
    /// # Errors
    /// [`RunError`] when the run failed (counted as `outcome="error"`).
    pub async fn run_once(&self, cancel: &CancellationToken) -> Result<RunOutput, RunError> {
        self.run_once_observed(cancel, &progress::Unobserved).await
    }

    /// Where the row counts of this entry's last run are remembered (for the progress of the
    /// next one, [`progress::Expected`]); `None` without a state_dir.
    pub fn progress_file(&self) -> Option<std::path::PathBuf> {
        self.store.path().map(progress::Expected::file_beside)
    }

    /// As [`EntryHandle::run_once`], telling `observer` of every page read (`lagwatch
    /// reconcile`'s progress on a terminal).
    ///
    /// # Errors
    /// As [`EntryHandle::run_once`].
    pub async fn run_once_observed(
        &self,
        cancel: &CancellationToken,
        observer: &dyn progress::Observer,
    ) -> Result<RunOutput, RunError> {
        let prev = self.lock().remembered.clone();
        let settle = self.settle_window();
        let started = Utc::now();
        let t0 = std::time::Instant::now();
        // The source's `changed` times are on its clock: move the cutoff onto it.
        let offset = self.metrics.clock_offset_of(&self.source).unwrap_or(0.0);
        let result = self
            .runner
            .run_observed(&prev, settle, offset, cancel, observer)
            .await;
        let m = &self.metrics.reconcile;
        let e = [
            self.source.as_str(),
            self.target.as_str(),
            self.spec.name.as_str(),
        ];
        if !matches!(result, Err(RunError::Cancelled)) {
            m.duration
                .with_label_values(&e)
                .observe(t0.elapsed().as_secs_f64());
        }
        match &result {
            Ok(out) => {
                if let Err(err) = self.store.save(&out.state) {
                    tracing::error!(source = %self.source, target = %self.target, table = %self.spec.name, error = %err, "Saving reconciliation state failed; persistence will restart after a restart.");
                }
                self.export(out);
                let mut st = self.lock();
                st.remembered = out.state.clone();
                st.last = Some(summary(out));
            }
            Err(RunError::Cancelled) => {}
            Err(err) => {
                m.runs.with_label_values(&[e[0], e[1], e[2], "error"]).inc();
                tracing::warn!(source = %self.source, target = %self.target, table = %self.spec.name, error = %err, "Reconciliation run failed.");
                let mut st = self.lock();
                st.last = Some(RunSummary {
                    started,
                    finished: Utc::now(),
                    outcome: "error",
                    error: Some(err.to_string()),
                    settle_window_seconds: settle.as_secs_f64(),
                    ..st.last.clone().map_or_else(empty_summary, |mut l| {
                        l.outcome = "error";
                        l
                    })
                });
            }
        }
        result
    }

    fn export(&self, out: &RunOutput) {
        let m = &self.metrics.reconcile;
        let (s, t, n) = (
            self.source.as_str(),
            self.target.as_str(),
            self.spec.name.as_str(),
        );
        for kind in Kind::ALL {
            for (i, p) in crate::metrics::reconcile::PERSISTENCE.iter().enumerate() {
                m.discrepancies
                    .with_label_values(&[s, t, n, kind.label(), p])
                    .set(i64::try_from(out.tally.count(kind, i == 1)).unwrap_or(i64::MAX));
            }
            m.healed
                .with_label_values(&[s, t, n, kind.label()])
                .inc_by(out.tally.healed[kind_index(kind)]);
        }
        m.runs.with_label_values(&[s, t, n, "success"]).inc();
        m.rows_compared
            .with_label_values(&[s, t, n])
            .inc_by(out.tally.compared);
        m.unsettled
            .with_label_values(&[s, t, n])
            .set(i64::try_from(out.tally.unsettled).unwrap_or(i64::MAX));
        m.last_success
            .with_label_values(&[s, t, n])
            .set(out.finished.timestamp_millis() as f64 / 1000.0);
        m.settle_window
            .with_label_values(&[s, t, n])
            .set(out.settle.as_secs_f64());
    }

    /// Runs every interval until `shutdown`.
    async fn schedule(self: Arc<Self>, shutdown: CancellationToken) {
        let first = self.spec.interval.get().min(FIRST_RUN_AFTER);
        let mut wait = first;
        loop {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => return,
            }
            let _ = self.run_once(&shutdown).await;
            if shutdown.is_cancelled() {
                return;
            }
            wait = self.spec.interval.get();
        }
    }
}

fn empty_summary() -> RunSummary {
    RunSummary {
        started: DateTime::<Utc>::UNIX_EPOCH,
        finished: DateTime::<Utc>::UNIX_EPOCH,
        outcome: "error",
        error: None,
        settle_window_seconds: 0.0,
        discrepancies: HashMap::new(),
        unsettled: 0,
        compared: 0,
        source_rows: 0,
        target_rows: 0,
        source_pages: 0,
        target_pages: 0,
        unkeyed_rows: 0,
        duplicate_keys: 0,
        sentinel_rows: 0,
        truncated: false,
    }
}

fn summary(out: &RunOutput) -> RunSummary {
    let t: &Tally = &out.tally;
    let (s, g): (&SideStats, &SideStats) = (&out.source, &out.target);
    RunSummary {
        started: out.started,
        finished: out.finished,
        outcome: "success",
        error: None,
        settle_window_seconds: out.settle.as_secs_f64(),
        discrepancies: Kind::ALL
            .iter()
            .map(|k| (k.label(), [t.count(*k, false), t.count(*k, true)]))
            .collect(),
        unsettled: t.unsettled,
        compared: t.compared,
        source_rows: s.rows,
        target_rows: g.rows,
        source_pages: s.pages,
        target_pages: g.pages,
        unkeyed_rows: s.unkeyed + g.unkeyed,
        duplicate_keys: s.duplicates + g.duplicates,
        sentinel_rows: s.sentinels + g.sentinels,
        truncated: out.state.truncated,
    }
}

/// Every configured reconciliation entry.
pub struct Reconciler {
    entries: Vec<Arc<EntryHandle>>,
}

impl Reconciler {
    /// Builds the entries of every path from built systems and the engine's path handles.
    ///
    /// # Errors
    /// An [`Issue`] at `paths[i].reconcile[j]` when a side's system has no inventory or
    /// rejects the query.
    pub fn build(
        config: &Config,
        systems: &HashMap<String, System>,
        paths: &[Arc<PathHandle>],
        metrics: &Metrics,
    ) -> Result<Reconciler, Issue> {
        // Sorted runs spill beside the state when there is one (containers often mount only
        // that directory writable), else into the temp dir.
        let work_dir = config
            .state_dir
            .as_ref()
            .map_or_else(std::env::temp_dir, |d| d.join("tmp"));
        if config.state_dir.is_some()
            && let Err(e) = std::fs::create_dir_all(&work_dir)
        {
            return Err(Issue::new(
                "state_dir",
                format!("cannot create {}: {e}", work_dir.display()),
            ));
        }
        let mut entries = Vec::new();
        for (i, path) in config.paths.iter().enumerate() {
            for (j, spec) in path.reconcile.iter().enumerate() {
                let key = format!("paths[{i}].reconcile[{j}]");
                let side = |which: &str,
                            name: &str,
                            s: &crate::config::reconcile::Side|
                 -> Result<SideReader, Issue> {
                    let system = systems.get(name).ok_or_else(|| {
                        Issue::new(
                            format!("{key}.{which}"),
                            format!("system {name} was not built"),
                        )
                    })?;
                    let inventory = system.inventory.clone().ok_or_else(|| {
                        Issue::new(
                            format!("{key}.{which}"),
                            format!(
                                "system \"{name}\" (kind {}) cannot list its rows",
                                system.kind
                            ),
                        )
                    })?;
                    inventory
                        .check(&s.query(spec.page_size, None))
                        .map_err(|why| Issue::new(format!("{key}.{which}"), why))?;
                    Ok(SideReader {
                        system: name.to_string(),
                        inventory,
                        gate: system.gate.clone(),
                        spec: s.clone(),
                    })
                };
                let runner = Runner {
                    source: side("source", &path.source, &spec.source)?,
                    target: side("target", &path.target, &spec.target)?,
                    spec: spec.clone(),
                    request_timeout: path.request_timeout.get(),
                    work_dir: work_dir.clone(),
                    sort_chunk: crate::config::reconcile::default::SORT_CHUNK,
                };
                let store = Store::new(
                    config.state_dir.as_deref(),
                    &path.source,
                    &path.target,
                    &spec.name,
                );
                let remembered = store.load().unwrap_or_else(|e| {
                    tracing::error!(error = %e, "Cannot read remembered reconciliation state; every discrepancy starts as transient.");
                    State::default()
                });
                metrics.reconcile.init(
                    &path.source,
                    &path.target,
                    &spec.name,
                    spec.interval.get().as_secs_f64(),
                );
                entries.push(Arc::new(EntryHandle {
                    source: path.source.clone(),
                    target: path.target.clone(),
                    spec: spec.clone(),
                    runner,
                    store,
                    path: paths
                        .iter()
                        .find(|p| p.spec.source == path.source && p.spec.target == path.target)
                        .cloned(),
                    fallback: path.timeout.get(),
                    metrics: metrics.clone(),
                    state: Mutex::new(EntryState {
                        remembered,
                        last: None,
                    }),
                }));
            }
        }
        Ok(Reconciler { entries })
    }

    pub fn entries(&self) -> &[Arc<EntryHandle>] {
        &self.entries
    }

    /// The entry of `source` → `target` named `name` (the only one of the path if `None`).
    pub fn find(&self, source: &str, target: &str, name: Option<&str>) -> Vec<Arc<EntryHandle>> {
        self.entries
            .iter()
            .filter(|e| e.source == source && e.target == target)
            .filter(|e| name.is_none_or(|n| e.spec.name == n))
            .cloned()
            .collect()
    }

    /// Runs every entry on its interval until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let tasks: Vec<_> = self
            .entries
            .iter()
            .map(|e| tokio::spawn(e.clone().schedule(shutdown.clone())))
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    }
}
