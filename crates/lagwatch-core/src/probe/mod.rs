//! The probe engine: long-lived tasks that write sentinels and time their arrival.
//!
//! Paths that share a source and an interval form a *group*; each group writes one sentinel
//! per tick that fans out to every path of the group with a free in-flight slot. Each sentinel
//! runs as one [`cycle`] task. The engine runs in the background on its own timers (the
//! cloudprober model); `/metrics` only reads state. Tasks are tracked, stop on the shutdown
//! token, and delete their sentinels on the way out.

pub mod canary;
pub mod causal;
pub mod conflict;
pub mod cycle;
pub mod deletes;
pub mod estimate;
pub mod history;
pub mod path;
pub mod platform;
pub mod schedule;
pub mod trace;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::connector::Source;
use crate::gate::Gate;
use crate::ledger::{Ledger, Snapshot};
use crate::metrics::Metrics;
use crate::sentinel::{Sentinel, SentinelId, Writer};
use crate::systems::System;
pub use path::{Outcome, PathHandle};

use estimate::LagEstimate;
use tokio::sync::broadcast;

/// One sentinel resolved on one path, as published to [`Engine::subscribe`]rs: the record
/// benchmarks and tests compare with ground truth. Never exported as a metric (it carries the
/// sentinel id).
#[derive(Debug, Clone)]
pub struct ProbeRecord {
    pub source: Arc<str>,
    pub target: Arc<str>,
    pub sentinel: SentinelId,
    /// Write order within the source (continued across restarts through the ledger).
    pub seq: u64,
    pub outcome: Outcome,
    pub estimate: Option<LagEstimate>,
    /// Lookups sent to the target for this sentinel (including confirmation reads).
    pub reads: u32,
    /// Written by an earlier process and resumed from the ledger: the estimate spans the
    /// restart on the wall clock (the lower bound is the last miss persisted at shutdown, 0
    /// after a crash), and it is not in `lagwatch_lag_seconds`.
    pub resumed: bool,
}

/// Deadline of each request of the start-up sweep.
const SWEEP_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Records buffered per subscriber before the oldest are dropped: tests and benchmarks
/// subscribe (the product does not), and a subscriber that keeps up needs far fewer; each
/// slot is allocated up front and filled once a subscriber exists.
const RECORD_BUFFER: usize = 8_192;

/// Shortest gap between two checks of a source for another live process using this
/// instance's name (each check lists this instance's sentinels there: one request).
const INSTANCE_CHECK_MIN: Duration = Duration::from_secs(10);

/// How long `lagwatch_instance_conflict` stays 1 after another writer's sentinel was last
/// seen: its sentinels live only seconds, so a check between two of them sees none.
const INSTANCE_CONFLICT_HOLD: Duration = Duration::from_secs(15 * 60);

/// How often owed deletes (failed deletes, writes of unknown fate) are retried.
const JANITOR_PERIOD: Duration = Duration::from_secs(30);

/// Once shutdown begins, how long the engine waits for its tasks (cycles deleting their
/// sentinels within their own, shorter grace) before it returns regardless. Below
/// Kubernetes' default 30 s termination grace, so lagwatch exits 0 before a SIGKILL.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(20);

/// Why the engine could not be assembled from a config and its built systems.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("system \"{0}\" was not built")]
    MissingSystem(String),
    #[error("system \"{0}\" cannot be written")]
    NotASource(String),
    #[error("system \"{0}\" cannot be read")]
    NotATarget(String),
    #[error("system \"{0}\" cannot read its platform status: {1}")]
    NoStatus(String, String),
}

struct Group {
    source_name: Arc<str>,
    source: Arc<dyn Source>,
    gate: Arc<Gate>,
    interval: Duration,
    paths: Vec<Arc<PathHandle>>,
    seq: AtomicU64,
}

impl Group {
    /// The group's update canary: its key, and how often it is written (the shortest
    /// `update_interval` of the group's paths that read it).
    fn canary(&self, instance: &str) -> Option<(SentinelId, Duration)> {
        let every = self
            .paths
            .iter()
            .filter_map(|p| p.spec.update_interval)
            .min()?
            .get();
        let group = format!("{}@{}ms", self.source_name, self.interval.as_millis());
        Some((SentinelId::canary(instance, &group), every))
    }
}

/// The assembled engine. Cheap to share; [`Engine::run`] drives it.
pub struct Engine {
    instance: Arc<str>,
    groups: Vec<Arc<Group>>,
    paths: Vec<Arc<PathHandle>>,
    sources: Vec<(Arc<str>, Arc<dyn Source>, Duration)>,
    gates: Vec<Arc<Gate>>,
    metrics: Metrics,
    records: broadcast::Sender<ProbeRecord>,
    state_dir: Option<std::path::PathBuf>,
    /// Opened when the engine starts running (never by [`Engine::new`]).
    ledger: std::sync::OnceLock<Arc<Ledger>>,
    owed: Arc<cycle::Owed>,
    conflicts: Vec<Arc<conflict::ConflictProber>>,
    platform: Vec<Arc<platform::PlatformWatch>>,
    /// This process's shard and the paths of the file other shards measure (source, target,
    /// owning shard), for the status page and API.
    shard: crate::config::Shard,
    unowned: Vec<(String, String, u32)>,
    /// Per source, when a sentinel of another live writer of this instance was last seen.
    foreign_seen: std::sync::Mutex<HashMap<Arc<str>, Instant>>,
}

impl Engine {
    /// Wires paths to their built systems and creates every metric series at 0.
    ///
    /// # Errors
    /// [`EngineError`] if a path names a system that was not built in the needed role (a
    /// validated config never does).
    pub fn new(
        config: &Config,
        systems: &HashMap<String, System>,
        metrics: Metrics,
    ) -> Result<Engine, EngineError> {
        let mut groups: Vec<Group> = Vec::new();
        let mut paths = Vec::new();
        for spec in &config.paths {
            let src = systems
                .get(&spec.source)
                .ok_or_else(|| EngineError::MissingSystem(spec.source.clone()))?;
            let source = src
                .source
                .clone()
                .ok_or_else(|| EngineError::NotASource(spec.source.clone()))?;
            let target = systems
                .get(&spec.target)
                .ok_or_else(|| EngineError::MissingSystem(spec.target.clone()))?
                .target
                .clone()
                .ok_or_else(|| EngineError::NotATarget(spec.target.clone()))?;
            let target_gate = systems
                .get(&spec.target)
                .map(|s| s.gate.clone())
                .ok_or_else(|| EngineError::MissingSystem(spec.target.clone()))?;
            let handle = Arc::new(PathHandle::new(spec.clone(), target, target_gate, &metrics));
            paths.push(handle.clone());
            let interval = spec.interval.get();
            match groups
                .iter_mut()
                .find(|g| *g.source_name == *spec.source && g.interval == interval)
            {
                Some(g) => g.paths.push(handle),
                None => groups.push(Group {
                    source_name: Arc::from(spec.source.as_str()),
                    source,
                    gate: src.gate.clone(),
                    interval,
                    paths: vec![handle],
                    seq: AtomicU64::new(0),
                }),
            }
        }
        let groups: Vec<Arc<Group>> = groups.into_iter().map(Arc::new).collect();

        let mut sources: Vec<(Arc<str>, Arc<dyn Source>, Duration)> = Vec::new();
        for g in &groups {
            metrics.init_source(&g.source_name);
            let longest = config
                .longest_timeout(&g.source_name)
                .map(|d| d.get())
                .unwrap_or_default();
            if !sources.iter().any(|(n, _, _)| *n == g.source_name) {
                sources.push((g.source_name.clone(), g.source.clone(), longest));
            }
        }
        for name in systems.keys() {
            metrics.init_system(name);
        }
        let instance: Arc<str> = Arc::from(config.instance.as_str());
        let mut conflicts = Vec::new();
        for spec in &config.conflicts {
            let link = |name: &str| -> Result<conflict::Link, EngineError> {
                let s = systems
                    .get(name)
                    .ok_or_else(|| EngineError::MissingSystem(name.to_string()))?;
                Ok(conflict::Link {
                    name: Arc::from(name),
                    source: s
                        .source
                        .clone()
                        .ok_or_else(|| EngineError::NotASource(name.to_string()))?,
                    gate: s.gate.clone(),
                })
            };
            conflicts.push(Arc::new(conflict::ConflictProber::new(
                instance.clone(),
                spec.clone(),
                link(&spec.a)?,
                link(&spec.b)?,
                metrics.clone(),
            )));
        }
        let mut watches = Vec::new();
        for p in &paths {
            let Some(status) = &p.spec.platform_status else {
                continue;
            };
            let system = systems
                .get(&status.system)
                .ok_or_else(|| EngineError::MissingSystem(status.system.clone()))?;
            let reader = system
                .status
                .as_ref()
                .ok_or_else(|| {
                    EngineError::NoStatus(
                        status.system.clone(),
                        "its kind has no status surface".to_string(),
                    )
                })?
                .reader(&status.surface)
                .map_err(|why| EngineError::NoStatus(status.system.clone(), why))?;
            watches.push(Arc::new(platform::PlatformWatch::new(
                status.clone(),
                p.clone(),
                reader,
                system.gate.clone(),
                metrics.clone(),
            )));
        }
        Ok(Engine {
            platform: watches,
            conflicts,
            instance,
            groups,
            paths,
            sources,
            gates: systems.values().map(|s| s.gate.clone()).collect(),
            metrics,
            records: broadcast::channel(RECORD_BUFFER).0,
            state_dir: config.state_dir.clone(),
            ledger: std::sync::OnceLock::new(),
            owed: Arc::default(),
            shard: config.shard,
            unowned: config.unowned.clone(),
            foreign_seen: std::sync::Mutex::default(),
        })
    }

    /// The probe ledger, once the engine runs.
    pub fn ledger(&self) -> Option<&Arc<Ledger>> {
        self.ledger.get()
    }

    /// Deletes still owed to sources (retried every 30 s; a write of unknown fate is deleted
    /// again each round until it can no longer appear).
    pub fn owed_deletes(&self) -> usize {
        self.owed.len()
    }

    /// Every path, in config order.
    pub fn paths(&self) -> &[Arc<PathHandle>] {
        &self.paths
    }

    /// Every conflict probe, in config order.
    pub fn conflicts(&self) -> &[Arc<conflict::ConflictProber>] {
        &self.conflicts
    }

    /// Every path's platform status watch, in config order.
    pub fn platform(&self) -> &[Arc<platform::PlatformWatch>] {
        &self.platform
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// This process's shard.
    pub fn shard(&self) -> crate::config::Shard {
        self.shard
    }

    /// The configured paths other shards measure: source, target, owning shard.
    pub fn unowned(&self) -> &[(String, String, u32)] {
        &self.unowned
    }

    /// Whether another live process wrote sentinels under this instance's name into a source
    /// within the last [`INSTANCE_CONFLICT_HOLD`].
    pub fn instance_conflict(&self) -> bool {
        let now = Instant::now();
        self.foreign_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .any(|&t| now.saturating_duration_since(t) < INSTANCE_CONFLICT_HOLD)
    }

    /// A stream of every resolved probe from now on. A slow subscriber loses the oldest
    /// records (it sees `Lagged`), never slows the engine.
    pub fn subscribe(&self) -> broadcast::Receiver<ProbeRecord> {
        self.records.subscribe()
    }

    /// True once every path has started its first probe.
    pub fn ready(&self) -> bool {
        self.paths.iter().all(|p| p.state().started)
    }

    /// Brings time-dependent gauges up to now (call before rendering metrics).
    pub fn refresh(&self) {
        let now = Instant::now();
        for p in &self.paths {
            p.refresh(now);
        }
        for g in &self.gates {
            g.refresh();
        }
        for w in &self.platform {
            w.refresh();
        }
        self.metrics
            .instance_conflict
            .set(i64::from(self.instance_conflict()));
        // Exported while the source owes deletes: 0 would say nothing the alert needs.
        for (source, _, _) in &self.sources {
            match i64::try_from(self.owed.count(source)).unwrap_or(i64::MAX) {
                0 => {
                    let _ = self.metrics.deletes_owed.remove_label_values(&[source]);
                }
                owed => self
                    .metrics
                    .deletes_owed
                    .with_label_values(&[source])
                    .set(owed),
            }
        }
    }

    /// Runs until `shutdown` is cancelled, then lets in-flight cycles clean up (bounded by their
    /// own shutdown grace, and all of it by [`SHUTDOWN_DEADLINE`]) and returns.
    ///
    /// First it opens the ledger (in `state_dir`) and picks up what an earlier process left:
    /// sentinels still in flight are polled to their outcomes, finished ones deleted, sequence
    /// numbers continued and staleness carried over.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let ledger = match self.state_dir.clone() {
            Some(dir) => {
                let metrics = self.metrics.clone();
                tokio::task::spawn_blocking(move || Ledger::open(&dir, &metrics))
                    .await
                    .unwrap_or_else(|_| Ledger::disabled())
            }
            None => Ledger::disabled(),
        };
        let ledger = self.ledger.get_or_init(|| ledger).clone();
        let snapshot = ledger.take_snapshot();
        let known: Arc<HashSet<String>> =
            Arc::new(snapshot.entries.iter().map(|e| e.id.clone()).collect());
        let count_lost = ledger.is_up();

        let tracker = TaskTracker::new();
        self.resume(&snapshot, &ledger, &shutdown, &tracker);
        for (name, source, longest) in self.sources.clone() {
            let gate = self
                .groups
                .iter()
                .find(|g| g.source_name == name)
                .map(|g| g.gate.clone());
            let engine = self.clone();
            let shutdown = shutdown.clone();
            let known = known.clone();
            tracker.spawn(async move {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = engine.sweep(&name, source, gate, longest, &known, count_lost) => {}
                }
            });
        }
        {
            let engine = self.clone();
            let shutdown = shutdown.clone();
            let ledger = ledger.clone();
            tracker.spawn(async move { engine.janitor(ledger, shutdown).await });
        }
        for (name, source, _) in self.sources.clone() {
            let engine = self.clone();
            let shutdown = shutdown.clone();
            tracker.spawn(async move { engine.check_instance(name, source, shutdown).await });
        }
        for group in &self.groups {
            let engine = self.clone();
            let group = group.clone();
            let shutdown = shutdown.clone();
            let inner = tracker.clone();
            let ledger = ledger.clone();
            tracker.spawn(async move { engine.run_group(group, shutdown, inner, ledger).await });
        }
        for group in &self.groups {
            let Some((id, every)) = group.canary(&self.instance) else {
                continue;
            };
            let versions = Arc::new(canary::Versions::default());
            let request_timeout = group
                .paths
                .iter()
                .map(|p| p.spec.request_timeout.get())
                .min()
                .unwrap_or(Duration::from_secs(30));
            tracker.spawn(canary::write_canary(
                self.instance.clone(),
                group.source_name.clone(),
                group.source.clone(),
                group.gate.clone(),
                id.clone(),
                every,
                request_timeout,
                versions.clone(),
                shutdown.clone(),
            ));
            for p in group
                .paths
                .iter()
                .filter(|p| p.spec.update_interval.is_some())
            {
                tracker.spawn(canary::read_canary(
                    p.clone(),
                    id.clone(),
                    every,
                    versions.clone(),
                    shutdown.clone(),
                ));
            }
        }
        for group in &self.groups {
            let paths: Vec<Arc<PathHandle>> = group
                .paths
                .iter()
                .filter(|p| p.spec.pair_interval.is_some())
                .cloned()
                .collect();
            let Some(every) = paths.iter().filter_map(|p| p.spec.pair_interval).min() else {
                continue;
            };
            let request_timeout = paths
                .iter()
                .map(|p| p.spec.request_timeout.get())
                .min()
                .unwrap_or(Duration::from_secs(30));
            let writer = Arc::new(causal::PairWriter {
                instance: self.instance.clone(),
                source_name: group.source_name.clone(),
                source: group.source.clone(),
                gate: group.gate.clone(),
                metrics: self.metrics.clone(),
                owed: self.owed.clone(),
                paths,
                every: every.get(),
                request_timeout,
                unknown_write_grace: self.unknown_write_grace(&group.source_name),
            });
            tracker.spawn(writer.run(tracker.clone(), shutdown.clone()));
        }
        for prober in &self.conflicts {
            tracker.spawn(prober.clone().run(shutdown.clone()));
        }
        for watch in &self.platform {
            tracker.spawn(watch.clone().run(shutdown.clone()));
        }
        shutdown.cancelled().await;
        tracker.close();
        if tokio::time::timeout(SHUTDOWN_DEADLINE, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(deadline = ?SHUTDOWN_DEADLINE, "Shutdown deadline reached with requests still running; the ledger keeps what they had not finished.");
        }
        for debt in self.owed.pending() {
            tracing::warn!(source = %debt.source, sentinel = %debt.id, "Sentinel left in the source at shutdown: its delete is still owed; the ledger or the next start-up sweep deletes it.");
        }
    }

    /// Takes up an earlier process's unfinished sentinels (see [`Engine::run`]).
    fn resume(
        &self,
        snapshot: &Snapshot,
        ledger: &Arc<Ledger>,
        shutdown: &CancellationToken,
        tracker: &TaskTracker,
    ) {
        for g in &self.groups {
            if let Some(max) = snapshot.max_seq(&g.source_name) {
                g.seq.fetch_max(max + 1, Ordering::Relaxed);
            }
        }
        for p in &self.paths {
            let key = (p.spec.source.clone(), p.spec.target.clone());
            if let Some(since) = snapshot
                .unseen
                .get(&key)
                .copied()
                .and_then(cycle::instant_of)
            {
                p.restore_unseen(since);
            }
        }
        for entry in &snapshot.entries {
            let Some(group) = self.groups.iter().find(|g| *g.source_name == *entry.source) else {
                tracing::warn!(source = %entry.source, sentinel = %entry.id, "The ledger holds a sentinel of a source no longer configured; kept until it is configured again.");
                continue;
            };
            let Some(id) = SentinelId::parse(&entry.id) else {
                continue;
            };
            let mut paths = Vec::new();
            let mut misses = Vec::new();
            for (target, miss) in &entry.probes {
                match group_path(&self.groups, &entry.source, target) {
                    Some(p) => {
                        paths.push(p);
                        misses.push(miss.and_then(cycle::instant_of));
                    }
                    None => {
                        tracing::info!(source = %entry.source, target = %target, "A resumed sentinel's path is no longer configured; dropped from it.");
                    }
                }
            }
            let times = entry
                .sent_at
                .zip(entry.acked_at)
                .and_then(|(s, a)| Some((cycle::instant_of(s)?, cycle::instant_of(a)?)));
            let (sent, acked) = match times {
                Some(t) if !entry.undeleted && !paths.is_empty() => t,
                _ => {
                    // Nothing left to measure (all paths done, the write's fate unknown, or
                    // acknowledged before this host's clock began): only the delete is owed,
                    // repeated while an unanswered write may still land.
                    let grace = self.unknown_write_grace(&group.source_name);
                    self.owed.push(cycle::Debt {
                        source: group.source_name.clone(),
                        id,
                        repeat_until: entry.acked_at.is_none().then(|| entry.written_at + grace),
                    });
                    continue;
                }
            };
            let sentinel = Sentinel::restore(&self.instance, id, entry.seq, entry.written_at);
            for p in &paths {
                p.reserve_resumed(entry.seq, acked);
            }
            tracing::info!(source = %entry.source, sentinel = %sentinel.id, paths = paths.len(), "Resuming a probe left in flight by an earlier run.");
            let cycle = self.cycle(group, paths, entry.seq, shutdown, ledger);
            tracker.spawn(cycle.resume(cycle::Resumed {
                sentinel,
                sent,
                acked,
                last_misses: misses,
            }));
        }
    }

    fn cycle(
        &self,
        group: &Group,
        paths: Vec<Arc<PathHandle>>,
        seq: u64,
        shutdown: &CancellationToken,
        ledger: &Arc<Ledger>,
    ) -> cycle::Cycle {
        let request_timeout = paths
            .iter()
            .map(|p| p.spec.request_timeout.get())
            .max()
            .unwrap_or(Duration::from_secs(30));
        let retention = paths
            .iter()
            .map(|p| p.spec.retention.get())
            .max()
            .unwrap_or_default();
        cycle::Cycle {
            instance: self.instance.clone(),
            source_name: group.source_name.clone(),
            source: group.source.clone(),
            source_gate: group.gate.clone(),
            paths,
            metrics: self.metrics.clone(),
            seq,
            request_timeout,
            retention,
            shutdown: shutdown.clone(),
            records: self.records.clone(),
            ledger: ledger.clone(),
            owed: self.owed.clone(),
            unknown_write_grace: self.unknown_write_grace(&group.source_name),
        }
    }

    /// How long after an unanswered write to `source` its sentinel may still appear: the
    /// longest path timeout of the source, at least a minute.
    fn unknown_write_grace(&self, source: &str) -> chrono::Duration {
        let longest = self
            .sources
            .iter()
            .find(|(n, _, _)| **n == *source)
            .map(|(_, _, l)| *l)
            .unwrap_or_default();
        chrono::Duration::from_std(longest.max(Duration::from_secs(60)))
            .unwrap_or(chrono::Duration::minutes(1))
    }

    /// Retries owed deletes: at start (what the ledger left) and every [`JANITOR_PERIOD`].
    async fn janitor(&self, ledger: Arc<Ledger>, shutdown: CancellationToken) {
        loop {
            for debt in self.owed.pending() {
                if shutdown.is_cancelled() {
                    break;
                }
                let Some(group) = self.groups.iter().find(|g| g.source_name == debt.source) else {
                    self.owed.settle(&debt.id);
                    continue;
                };
                let deleted = cycle::delete_sentinel(
                    &group.source_name,
                    group.source.as_ref(),
                    &group.gate,
                    &self.metrics,
                    &debt.id,
                    SWEEP_REQUEST_TIMEOUT,
                    &shutdown,
                )
                .await;
                match deleted {
                    // Gone for now; an unanswered write may still land: again next round.
                    Ok(_) if debt.repeat_until.is_some_and(|t| Utc::now() < t) => {}
                    Ok(_) => {
                        ledger.forget(debt.id.key()).await;
                        self.owed.settle(&debt.id);
                    }
                    Err(e) => {
                        tracing::warn!(source = %debt.source, sentinel = %debt.id, outcome = e.outcome(), error = %e, "Owed sentinel delete failed again; retried in 30 s.");
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(JANITOR_PERIOD) => {}
            }
        }
    }

    /// Deletes this instance's sentinels left behind by an earlier run: only those older than
    /// the longest timeout of the source's paths, so nothing still in flight is touched.
    ///
    /// Sentinels the ledger holds are skipped (they are being resumed); with a ledger that was
    /// up, any other found is one it lost, counted in `lagwatch_sentinels_lost_total`.
    async fn sweep(
        &self,
        name: &str,
        source: Arc<dyn Source>,
        gate: Option<Arc<Gate>>,
        longest_timeout: Duration,
        known: &HashSet<String>,
        count_lost: bool,
    ) {
        let admit = || async {
            match &gate {
                Some(g) => Some(g.admit().await),
                None => None,
            }
        };
        let now = Utc::now();
        let before =
            now - chrono::Duration::from_std(longest_timeout).unwrap_or(chrono::Duration::zero());
        let prefix = SentinelId::owner_prefix(&self.instance);
        let limit = SWEEP_REQUEST_TIMEOUT;
        // Writers other than this process with sentinels younger than the longest timeout that
        // the ledger does not know: another live process of this instance (or a crash moments
        // ago without a ledger). Their older sentinels are theirs to delete, not ours.
        let permit = admit().await;
        let recent = cycle::bounded(
            limit,
            source.list_own(&prefix, now + chrono::Duration::minutes(1)),
        )
        .await;
        drop(permit);
        let me = Writer::this_process();
        let live: HashSet<u32> = recent
            .unwrap_or_default()
            .iter()
            .filter(|id| id.owner() == Some(&*self.instance) && !known.contains(id.key()))
            .filter(|id| id.written_at().is_some_and(|t| t >= before))
            .filter_map(SentinelId::writer)
            .filter(|&w| w != me.nonce)
            .collect();
        let permit = admit().await;
        let listed = cycle::bounded(limit, source.list_own(&prefix, before)).await;
        drop(permit);
        let leftovers: Vec<SentinelId> = match listed {
            Ok(l) => l
                .into_iter()
                // Exactly this instance: "lagwatch-prod-" also starts "lagwatch-prod-eu-…".
                .filter(|id| id.owner() == Some(&*self.instance))
                .filter(|id| !known.contains(id.key()))
                // The update canaries are meant to stay.
                .filter(|id| !id.is_canary())
                .filter(|id| {
                    let keep = id.writer().is_some_and(|w| live.contains(&w));
                    if keep {
                        tracing::info!(source = %name, sentinel = %id, "Start-up sweep leaves an old sentinel of this instance alone: its writer wrote others within the longest timeout (another live process with this instance name, or one that crashed moments ago).");
                    }
                    !keep
                })
                .collect(),
            Err(e) => {
                tracing::warn!(source = %name, error = %e, "Start-up sweep could not list old sentinels.");
                return;
            }
        };
        if !leftovers.is_empty() {
            tracing::info!(source = %name, count = leftovers.len(), "Deleting sentinels left by an earlier run.");
            if count_lost {
                self.metrics
                    .sentinels_lost
                    .with_label_values(&[name])
                    .inc_by(leftovers.len() as u64);
            }
        }
        for id in leftovers {
            let permit = admit().await;
            let deleted = cycle::bounded(limit, source.delete(&id)).await;
            drop(permit);
            let outcome = match deleted {
                Ok(()) => "ok",
                Err(e) => {
                    let e = cycle::DeleteFailed::Failed(e);
                    tracing::warn!(source = %name, sentinel = %id, outcome = e.outcome(), error = %e, "Sweep could not delete a sentinel.");
                    "error"
                }
            };
            self.metrics
                .deletes
                .with_label_values(&[name, outcome])
                .inc();
        }
    }

    /// Watches `source` for sentinels under this instance's name that another live process
    /// writes (see [`Writer::is_foreign`]): one listing every two of the source's shortest
    /// intervals, at least [`INSTANCE_CHECK_MIN`] apart. Nothing found is deleted: the other
    /// process deletes its own. Sets `lagwatch_instance_conflict` (through
    /// [`Engine::refresh`]) and says so in a WARN line.
    async fn check_instance(
        self: Arc<Self>,
        name: Arc<str>,
        source: Arc<dyn Source>,
        shutdown: CancellationToken,
    ) {
        let groups: Vec<&Arc<Group>> = self
            .groups
            .iter()
            .filter(|g| g.source_name == name)
            .collect();
        let (Some(shortest), Some(gate)) = (
            groups.iter().map(|g| g.interval).min(),
            groups.first().map(|g| g.gate.clone()),
        ) else {
            return;
        };
        let every = (shortest * 2).max(INSTANCE_CHECK_MIN);
        let me = Writer::this_process();
        let prefix = SentinelId::owner_prefix(&self.instance);
        let mut warned: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            // Through the gate like every call during operation: abandoned at shutdown, and a
            // 429 pauses the source's other callers too.
            let listing = source.list_own(&prefix, Utc::now() + chrono::Duration::minutes(1));
            let Some(Ok(listed)) =
                cycle::admitted(&gate, SWEEP_REQUEST_TIMEOUT, &shutdown, listing).await
            else {
                continue;
            };
            let foreign: Vec<&SentinelId> = listed
                .iter()
                .filter(|id| me.is_foreign(&self.instance, id))
                .collect();
            let Some(first) = foreign.first() else {
                continue;
            };
            let now = Instant::now();
            self.foreign_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.clone(), now);
            if warned.is_none_or(|t| now.duration_since(t) >= INSTANCE_CONFLICT_HOLD) {
                warned = Some(now);
                tracing::warn!(
                    source = %name,
                    instance = %self.instance,
                    sentinel = %first,
                    count = foreign.len(),
                    "Another live lagwatch writes sentinels under this instance name into this source; give each process its own instance (--instance). Their sentinels are left to them."
                );
            }
            self.metrics.instance_conflict.set(1);
        }
    }

    async fn run_group(
        self: Arc<Self>,
        group: Arc<Group>,
        shutdown: CancellationToken,
        tracker: TaskTracker,
        ledger: Arc<Ledger>,
    ) {
        // Spread groups over the first interval (at most 10 s, so readiness comes quickly) so
        // they do not all write at once, and stay spread afterwards.
        let spread = group.interval.min(Duration::from_secs(10));
        let first = Instant::now() + spread.mul_f64(rand::random::<f64>());
        let mut ticker = tokio::time::interval_at(first, group.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let paths: Vec<Arc<PathHandle>> = group
                .paths
                .iter()
                .filter(|p| p.try_reserve())
                .cloned()
                .collect();
            if paths.is_empty() {
                continue;
            }
            let seq = group.seq.fetch_add(1, Ordering::Relaxed);
            let cycle = self.cycle(&group, paths, seq, &shutdown, &ledger);
            tracker.spawn(cycle.run());
        }
    }
}

/// The path of `source` to `target` among the groups.
fn group_path(groups: &[Arc<Group>], source: &str, target: &str) -> Option<Arc<PathHandle>> {
    groups
        .iter()
        .filter(|g| *g.source_name == *source)
        .flat_map(|g| g.paths.iter())
        .find(|p| p.spec.target == target)
        .cloned()
}
