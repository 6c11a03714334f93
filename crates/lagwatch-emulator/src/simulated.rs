//! `simulated`: an in-process landscape of a source and its replicas, with known ground truth.
//!
//! A simulated system without `replica_of` is a source: it accepts writes after
//! `write_latency` (committing half-way through the call). A system with `replica_of: <source>`
//! is a replica: each committed write becomes visible after a lag drawn from its distribution
//! (fixed, uniform, or log-normal by median and p99), unless it is dropped; it can transform the
//! content (mismatch), show a record early and lose it again before it settles (flap: visible
//! from 40 % to 70 % of the lag, then hidden until the lag, as a search replica can),
//! and suffer scheduled outages that either stall replication or fail reads.
//!
//! The landscape records the exact instant each record became (stably) visible in each
//! replica, so tests and benchmarks compare measured lag with the truth. All instants are
//! `tokio::time::Instant`, so paused-time tests run hours of lag in milliseconds.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use tokio::time::Instant;

use lagwatch::app::App;
use lagwatch::config::{Dur, Issue};
use lagwatch::connector::{ConnectorError, Lookup, Source, Target};
use lagwatch::gate::Gate;
use lagwatch::metrics::Metrics;
use lagwatch::sentinel::{Sentinel, SentinelId};
use lagwatch::systems::{
    BuildContext, Entry, System, SystemKind, SystemSpec, Systems, decode_as, kind,
};

/// How long a replica's lag is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    Fixed,
    Uniform,
    LogNormal,
}

impl Distribution {
    /// The name as written in YAML.
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Fixed => "fixed",
            Distribution::Uniform => "uniform",
            Distribution::LogNormal => "log_normal",
        }
    }
}

/// A lag distribution: `fixed` uses `value`; `uniform` uses `min` and `max`; `log_normal`
/// uses `median` and `p99`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LagSpec {
    pub distribution: Distribution,
    pub value: Option<Dur>,
    pub min: Option<Dur>,
    pub max: Option<Dur>,
    pub median: Option<Dur>,
    pub p99: Option<Dur>,
}

/// What an outage does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OutageMode {
    /// Replication stops; reads work; everything written meanwhile arrives when it ends.
    #[default]
    Stall,
    /// Reads fail with HTTP 503 while it lasts.
    Unavailable,
}

/// A scheduled outage, relative to the landscape's start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outage {
    pub start: Dur,
    pub duration: Dur,
    /// Repeat every this long (from `start`); once if absent.
    pub every: Option<Dur>,
    #[serde(default)]
    pub mode: OutageMode,
}

/// Config of one simulated system.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedConfig {
    /// Makes this system a replica of the named simulated source.
    pub replica_of: Option<String>,
    /// Duration of a write call (sources) or a read call (both).
    #[serde(default = "default_write_latency")]
    pub write_latency: Dur,
    #[serde(default = "default_read_latency")]
    pub read_latency: Dur,
    pub lag: Option<LagSpec>,
    #[serde(default)]
    pub drop_probability: f64,
    #[serde(default)]
    pub mismatch_probability: f64,
    #[serde(default)]
    pub flap_probability: f64,
    /// Source only: share of reads that miss a record the source has acknowledged (a source
    /// that breaks read-your-own-writes, as a stale read replica behind a load balancer does).
    #[serde(default)]
    pub stale_read_probability: f64,
    #[serde(default)]
    pub outages: Vec<Outage>,
    /// Service protection: 429 with Retry-After beyond a request rate.
    pub throttle: Option<ThrottleSpec>,
    /// Seed of the random draws, for reproducible runs.
    pub seed: Option<u64>,
}

fn default_write_latency() -> Dur {
    Dur::millis(20)
}
fn default_read_latency() -> Dur {
    Dur::millis(5)
}

/// Registry entry: types and checks a `kind: simulated` block.
///
/// # Errors
/// An [`Issue`] naming the offending key.
pub fn decode(key: &str, value: serde_json::Value) -> Result<Box<dyn SystemKind>, Issue> {
    let c: SimulatedConfig = decode_as(key, value)?;
    for (name, p) in [
        ("drop_probability", c.drop_probability),
        ("mismatch_probability", c.mismatch_probability),
        ("flap_probability", c.flap_probability),
        ("stale_read_probability", c.stale_read_probability),
    ] {
        if !(0.0..=1.0).contains(&p) {
            return Err(Issue::new(
                format!("{key}.{name}"),
                format!("a probability is between 0 and 1, not {p}"),
            ));
        }
    }
    match (&c.replica_of, &c.lag) {
        (Some(_), None) => {
            return Err(Issue::new(
                format!("{key}.lag"),
                "a replica needs a lag distribution",
            ));
        }
        (None, Some(_)) => {
            return Err(Issue::new(
                format!("{key}.lag"),
                "only a replica (with replica_of) has a lag",
            ));
        }
        _ => {}
    }
    if let Some(lag) = &c.lag {
        check_lag(&format!("{key}.lag"), lag)?;
    }
    if c.replica_of.is_some() && c.stale_read_probability > 0.0 {
        return Err(Issue::new(
            format!("{key}.stale_read_probability"),
            "only a source (without replica_of) has stale reads; a replica's lag is its own",
        ));
    }
    for (i, o) in c.outages.iter().enumerate() {
        if let Some(every) = o.every
            && every <= o.duration
        {
            return Err(Issue::new(
                format!("{key}.outages[{i}].every"),
                "an outage must repeat less often than it lasts",
            ));
        }
    }
    Ok(Box::new(c))
}

/// Checks a lag distribution the way a `simulated` replica's `lag` is checked (for other
/// configurations that reuse [`LagSpec`], such as the emulator's scenarios).
///
/// # Errors
/// An [`Issue`] naming the missing or inconsistent key under `key`.
pub fn validate_lag(key: &str, l: &LagSpec) -> Result<(), Issue> {
    check_lag(key, l)
}

fn check_lag(key: &str, l: &LagSpec) -> Result<(), Issue> {
    let need = |v: Option<Dur>, name: &str| {
        v.ok_or_else(|| {
            Issue::new(
                format!("{key}.{name}"),
                format!(
                    "required key is missing for a {} distribution",
                    l.distribution.name()
                ),
            )
        })
    };
    match l.distribution {
        Distribution::Fixed => {
            need(l.value, "value")?;
        }
        Distribution::Uniform => {
            let (min, max) = (need(l.min, "min")?, need(l.max, "max")?);
            if max < min {
                return Err(Issue::new(format!("{key}.max"), "max is below min"));
            }
        }
        Distribution::LogNormal => {
            let (median, p99) = (need(l.median, "median")?, need(l.p99, "p99")?);
            if p99 < median || median.get().is_zero() {
                return Err(Issue::new(
                    format!("{key}.p99"),
                    "p99 must be at least the median, and the median above 0s",
                ));
            }
        }
    }
    Ok(())
}

impl SystemSpec for SimulatedConfig {
    fn kind(&self) -> &'static str {
        "simulated"
    }

    fn can_write(&self) -> Result<(), String> {
        match &self.replica_of {
            Some(src) => Err(format!(
                "it is a read-only replica of \"{src}\"; write to \"{src}\" instead"
            )),
            None => Ok(()),
        }
    }

    fn describe(&self) -> String {
        let Some(src) = &self.replica_of else {
            return format!(
                "writes take {}, reads {}{}",
                self.write_latency,
                self.read_latency,
                if self.stale_read_probability > 0.0 {
                    format!(", {} of read-backs stale", self.stale_read_probability)
                } else {
                    String::new()
                }
            );
        };
        let lag = self
            .lag
            .as_ref()
            .map_or(String::new(), |l| match l.distribution {
                Distribution::Fixed => format!("fixed {}", l.value.unwrap_or_default()),
                Distribution::Uniform => format!(
                    "uniform {} to {}",
                    l.min.unwrap_or_default(),
                    l.max.unwrap_or_default()
                ),
                Distribution::LogNormal => format!(
                    "log-normal, median {}, p99 {}",
                    l.median.unwrap_or_default(),
                    l.p99.unwrap_or_default()
                ),
            });
        let mut extras = Vec::new();
        for (what, p) in [
            ("dropped", self.drop_probability),
            ("changed", self.mismatch_probability),
            ("flapping", self.flap_probability),
        ] {
            if p > 0.0 {
                extras.push(format!("{p} {what}"));
            }
        }
        if !self.outages.is_empty() {
            extras.push(format!("{} scheduled outage(s)", self.outages.len()));
        }
        let extras = if extras.is_empty() {
            String::new()
        } else {
            format!("; {}", extras.join(", "))
        };
        format!("replica of {src}, lag {lag}{extras}")
    }

    fn validate(&self, name: &str, systems: &Systems) -> Result<(), Issue> {
        let Some(src) = &self.replica_of else {
            return Ok(());
        };
        let key = format!("systems.{name}.replica_of");
        match systems.get(src) {
            None => Err(Issue::new(
                key,
                format!(
                    "unknown system \"{src}\"; a replica copies a simulated source defined under systems"
                ),
            )),
            Some(other) if other.kind() != "simulated" || other.can_write().is_err() => {
                Err(Issue::new(
                    key,
                    format!(
                        "\"{src}\" is not a simulated source (a simulated system without replica_of)"
                    ),
                ))
            }
            Some(_) => Ok(()),
        }
    }
}

/// The `simulated` kind, to join to lagwatch's registry ([`crate::REGISTRY`] does).
pub const KINDS: &[Entry] = &[kind::<SimulatedConfig>("simulated", decode)];

/// The landscape of `app`'s simulated systems (empty unless its config has some), whose
/// ground truth tests and benchmarks read.
pub fn landscape(app: &App) -> Arc<Landscape> {
    app.shared.get_or_insert_with(Landscape::new)
}

impl SystemKind for SimulatedConfig {
    fn build(&self, name: &str, cx: &BuildContext, gate: Arc<Gate>) -> Result<System, Issue> {
        let landscape = cx.shared.get_or_insert_with(Landscape::new);
        let node = Arc::new(SimNode {
            name: name.to_string(),
            landscape: landscape.clone(),
            metrics: cx.metrics.clone(),
            write_latency: self.write_latency.get(),
            read_latency: self.read_latency.get(),
            replica: self.replica_of.is_some(),
            stale_read_probability: self.stale_read_probability,
            gate: gate.clone(),
            throttle: self.throttle.map(|t| Mutex::new(Throttle::new(t))),
        });
        match &self.replica_of {
            None => {
                landscape.add_source(name, self.seed);
                Ok(System {
                    name: name.to_string(),
                    kind: self.kind(),
                    gate,
                    source: Some(node.clone()),
                    target: Some(node),
                    inventory: None,
                })
            }
            Some(src) => {
                let lag = self.lag.clone().ok_or_else(|| {
                    Issue::new(format!("systems.{name}.lag"), "a replica needs a lag")
                })?;
                landscape.add_replica(name, src, ReplicaSpec::from_config(self, lag));
                Ok(System {
                    name: name.to_string(),
                    kind: self.kind(),
                    gate,
                    source: None,
                    target: Some(node),
                    inventory: None,
                })
            }
        }
    }
}

/// A replica's behaviour, fixed at build time.
#[derive(Debug, Clone)]
pub struct ReplicaSpec {
    pub lag: LagSpec,
    pub drop_probability: f64,
    pub mismatch_probability: f64,
    pub flap_probability: f64,
    pub outages: Vec<Outage>,
}

impl ReplicaSpec {
    fn from_config(c: &SimulatedConfig, lag: LagSpec) -> Self {
        ReplicaSpec {
            lag,
            drop_probability: c.drop_probability,
            mismatch_probability: c.mismatch_probability,
            flap_probability: c.flap_probability,
            outages: c.outages.clone(),
        }
    }
}

/// Ground truth of one record in one replica.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Truth {
    /// When the source committed the write.
    pub committed_at: Instant,
    /// When it became stably visible in the replica; `None` if the replica dropped it.
    pub visible_at: Option<Instant>,
}

impl Truth {
    /// The true lag, if the record arrived.
    pub fn lag(&self) -> Option<Duration> {
        self.visible_at
            .map(|v| v.saturating_duration_since(self.committed_at))
    }
}

struct SourceRecord {
    payload: String,
    written_at: DateTime<Utc>,
}

struct ReplicaRecord {
    payload: String,
    visible_at: Option<Instant>,
    /// A brief early appearance, `[from, to)`, before the record settles at `visible_at`.
    glimpse: Option<(Instant, Instant)>,
    /// The mismatch draw hit: the content arrives changed.
    mismatched: bool,
}

/// What a replica holds for one record: the replicated content and when it is visible. For
/// code that serves a replica over a protocol (the emulator) and shapes the content itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaEntry {
    /// The payload as committed to the source (with the landscape's own mismatch change
    /// applied when `mismatched`).
    pub payload: String,
    /// When it became stably visible; `None` if the replica dropped it.
    pub visible_at: Option<Instant>,
    /// A brief early appearance `[from, to)` before it settles (flap).
    pub glimpse: Option<(Instant, Instant)>,
    /// The record arrives with changed content.
    pub mismatched: bool,
}

impl ReplicaEntry {
    /// Whether a read at `now` sees the record (settled, or inside its glimpse).
    pub fn visible(&self, now: Instant) -> bool {
        self.visible_at.is_some_and(|v| now >= v)
            || self.glimpse.is_some_and(|(a, b)| now >= a && now < b)
    }
}

struct Replica {
    /// The replica's name, shared by its ground-truth entries.
    name: Arc<str>,
    source: String,
    spec: ReplicaSpec,
    records: HashMap<String, ReplicaRecord>,
}

#[derive(Default)]
struct World {
    sources: HashMap<String, HashMap<String, SourceRecord>>,
    replicas: HashMap<String, Replica>,
    /// Ground truth per committed key, one entry per replica of its source. The key is
    /// stored once (shared with the order queue) and replica names are shared, so an entry
    /// costs about 80 bytes: at scale (hundreds of writes a second) the store is the
    /// simulator's largest holding, inside the process whose memory the scale bench measures.
    truth: HashMap<Arc<str>, Vec<(Arc<str>, Truth)>>,
    truth_order: VecDeque<Arc<str>>,
    truth_entries: usize,
}

/// Most ground-truth entries (key × replica) kept; the oldest keys are forgotten first. At
/// the scale bench's 100 entries a second that is four minutes, far beyond any probe's wait
/// for the truth of what it just resolved (and the demo's few paths keep hours).
const TRUTH_CAPACITY: usize = 25_000;

/// The shared world of all simulated systems of one process.
pub struct Landscape {
    start: Instant,
    world: Mutex<World>,
    rng: Mutex<StdRng>,
}

impl Default for Landscape {
    fn default() -> Self {
        Self::new()
    }
}

impl Landscape {
    pub fn new() -> Self {
        Landscape {
            start: Instant::now(),
            world: Mutex::new(World::default()),
            rng: Mutex::new(StdRng::from_os_rng()),
        }
    }

    fn world(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock leaves plain maps behind; keep serving them.
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add_source(&self, name: &str, seed: Option<u64>) {
        if let Some(seed) = seed {
            *self.rng.lock().unwrap_or_else(|e| e.into_inner()) = StdRng::seed_from_u64(seed);
        }
        self.world().sources.entry(name.to_string()).or_default();
    }

    fn add_replica(&self, name: &str, source: &str, spec: ReplicaSpec) {
        self.world().replicas.insert(
            name.to_string(),
            Replica {
                name: Arc::from(name),
                source: source.to_string(),
                spec,
                records: HashMap::new(),
            },
        );
    }

    /// The instant the landscape was created: outages are scheduled relative to it.
    pub fn started_at(&self) -> Instant {
        self.start
    }

    /// Registers a source (a no-op if it exists); a `seed` reseeds the shared random draws.
    pub fn register_source(&self, name: &str, seed: Option<u64>) {
        self.add_source(name, seed);
    }

    /// Registers (or replaces) a replica of `source` with the given behaviour.
    pub fn register_replica(&self, name: &str, source: &str, spec: ReplicaSpec) {
        self.add_replica(name, source, spec);
    }

    /// Commits a write of `key` to `source` at `now`: every replica of the source draws its
    /// lag, drop, mismatch and flap, exactly as a simulated source's write does, and the ground
    /// truth is recorded.
    pub fn commit_record(&self, source: &str, key: &str, payload: &str, now: Instant) {
        self.commit(source, key, payload, now);
    }

    /// Deletes `key` from `source` and from every replica of it, immediately.
    pub fn delete_record(&self, source: &str, key: &str) {
        self.delete(source, key);
    }

    /// What `replica` holds for `key` (visible or not yet), if anything.
    pub fn replica_entry(&self, replica: &str, key: &str) -> Option<ReplicaEntry> {
        let w = self.world();
        let rec = w.replicas.get(replica)?.records.get(key)?;
        Some(ReplicaEntry {
            payload: rec.payload.clone(),
            visible_at: rec.visible_at,
            glimpse: rec.glimpse,
            mismatched: rec.mismatched,
        })
    }

    /// If `replica` is in an `unavailable` outage at `now`, when that outage ends.
    pub fn unavailable_until(&self, replica: &str, now: Instant) -> Option<Instant> {
        let spec = self.world().replicas.get(replica)?.spec.clone();
        self.outage(&spec, now, OutageMode::Unavailable)
    }

    /// Ground truth of `key` in `replica`, while it is remembered.
    pub fn truth(&self, replica: &str, key: &str) -> Option<Truth> {
        self.world()
            .truth
            .get(key)?
            .iter()
            .find(|(r, _)| &**r == replica)
            .map(|(_, t)| *t)
    }

    /// Keys currently stored in a simulated source (to check that nothing leaked).
    pub fn source_keys(&self, source: &str) -> Vec<String> {
        self.world()
            .sources
            .get(source)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Puts a record into a source as if an earlier run had left it there (tests of the sweep).
    pub fn insert_leftover(&self, source: &str, key: &str, written_at: DateTime<Utc>) {
        self.world()
            .sources
            .entry(source.to_string())
            .or_default()
            .insert(
                key.to_string(),
                SourceRecord {
                    payload: String::new(),
                    written_at,
                },
            );
    }

    fn outage(&self, spec: &ReplicaSpec, at: Instant, mode: OutageMode) -> Option<Instant> {
        let since = at.checked_duration_since(self.start)?;
        for o in spec.outages.iter().filter(|o| o.mode == mode) {
            let start = o.start.get();
            if since < start {
                continue;
            }
            let into = since - start;
            let into_cycle = match o.every {
                Some(every) if !every.get().is_zero() => {
                    Duration::from_nanos((into.as_nanos() % every.get().as_nanos()) as u64)
                }
                _ => into,
            };
            if into_cycle < o.duration.get() {
                return Some(at + (o.duration.get() - into_cycle));
            }
        }
        None
    }

    fn sample_lag(rng: &mut StdRng, l: &LagSpec) -> Duration {
        let secs = |d: Option<Dur>| d.map(|d| d.get().as_secs_f64()).unwrap_or(0.0);
        let s = match l.distribution {
            Distribution::Fixed => secs(l.value),
            Distribution::Uniform => {
                let (a, b) = (secs(l.min), secs(l.max));
                a + (b - a) * rng.random::<f64>()
            }
            Distribution::LogNormal => {
                let (m, p99) = (secs(l.median), secs(l.p99));
                let sigma = (p99 / m).ln() / 2.326_347_874;
                // Box-Muller: one standard normal from two uniforms.
                let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
                let u2: f64 = rng.random();
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                m * (sigma * z).exp()
            }
        };
        Duration::from_secs_f64(s.clamp(0.0, 366.0 * 86400.0))
    }

    fn commit(&self, source: &str, key: &str, payload: &str, now: Instant) {
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let mut w = self.world();
        w.sources.entry(source.to_string()).or_default().insert(
            key.to_string(),
            SourceRecord {
                payload: payload.to_string(),
                written_at: Utc::now(),
            },
        );
        let names: Vec<Arc<str>> = w
            .replicas
            .values()
            .filter(|r| r.source == source)
            .map(|r| r.name.clone())
            .collect();
        let mut truths = Vec::with_capacity(names.len());
        for name in names {
            let Some(spec) = w.replicas.get(&*name).map(|r| r.spec.clone()) else {
                continue;
            };
            let lag = Self::sample_lag(&mut rng, &spec.lag);
            let dropped = rng.random::<f64>() < spec.drop_probability;
            let mismatch = rng.random::<f64>() < spec.mismatch_probability;
            let flap = rng.random::<f64>() < spec.flap_probability;
            let mut visible = now + lag;
            for probe_at in [now, visible] {
                if let Some(end) = self.outage(&spec, probe_at, OutageMode::Stall) {
                    visible = visible.max(end);
                }
            }
            let visible_at = (!dropped).then_some(visible);
            let glimpse = (flap && !dropped && lag > Duration::from_millis(100))
                .then(|| (now + lag.mul_f64(0.4), now + lag.mul_f64(0.7)));
            let payload = if mismatch {
                payload.replace("\"instance\"", "\"Instance\"")
            } else {
                payload.to_string()
            };
            if let Some(r) = w.replicas.get_mut(&*name) {
                r.records.insert(
                    key.to_string(),
                    ReplicaRecord {
                        payload,
                        visible_at,
                        glimpse,
                        mismatched: mismatch,
                    },
                );
            }
            truths.push((
                name,
                Truth {
                    committed_at: now,
                    visible_at,
                },
            ));
        }
        if truths.is_empty() {
            return;
        }
        // The same key may be committed to several sources (the emulator commits per
        // replica): a commit replaces the truth of its own replicas and keeps the others'.
        let World {
            truth,
            truth_order,
            truth_entries,
            ..
        } = &mut *w;
        match truth.get_mut(key) {
            Some(known) => {
                for (name, t) in truths {
                    match known.iter_mut().find(|(n, _)| *n == name) {
                        Some(slot) => slot.1 = t,
                        None => {
                            known.push((name, t));
                            *truth_entries += 1;
                        }
                    }
                }
            }
            None => {
                let key: Arc<str> = Arc::from(key);
                *truth_entries += truths.len();
                truth.insert(key.clone(), truths);
                truth_order.push_back(key);
            }
        }
        while w.truth_entries > TRUTH_CAPACITY {
            let Some(old) = w.truth_order.pop_front() else {
                break;
            };
            if let Some(gone) = w.truth.remove(&old) {
                w.truth_entries -= gone.len();
            }
        }
    }

    fn read_source(&self, source: &str, key: &str) -> Lookup {
        match self.world().sources.get(source).and_then(|m| m.get(key)) {
            Some(r) => Lookup::Present {
                payload: Some(r.payload.clone()),
            },
            None => Lookup::Absent,
        }
    }

    fn read_replica(
        &self,
        replica: &str,
        key: &str,
        now: Instant,
    ) -> Result<Lookup, ConnectorError> {
        let w = self.world();
        let Some(r) = w.replicas.get(replica) else {
            return Ok(Lookup::Absent);
        };
        if self.outage(&r.spec, now, OutageMode::Unavailable).is_some() {
            return Err(ConnectorError::Unavailable {
                status: 503,
                detail: "simulated outage".to_string(),
            });
        }
        let Some(rec) = r.records.get(key) else {
            return Ok(Lookup::Absent);
        };
        let settled = rec.visible_at.is_some_and(|v| now >= v);
        let glimpsed = rec.glimpse.is_some_and(|(a, b)| now >= a && now < b);
        Ok(if settled || glimpsed {
            Lookup::Present {
                payload: Some(rec.payload.clone()),
            }
        } else {
            Lookup::Absent
        })
    }

    fn delete(&self, source: &str, key: &str) {
        let mut w = self.world();
        if let Some(m) = w.sources.get_mut(source) {
            m.remove(key);
        }
        for r in w.replicas.values_mut().filter(|r| r.source == source) {
            r.records.remove(key);
        }
    }

    fn list(&self, source: &str, prefix: &str, before: DateTime<Utc>) -> Vec<SentinelId> {
        self.world()
            .sources
            .get(source)
            .map(|m| {
                m.iter()
                    .filter(|(k, r)| k.starts_with(prefix) && r.written_at < before)
                    .filter_map(|(k, _)| SentinelId::parse(k))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// One simulated system's connector (source, replica, or both).
struct SimNode {
    name: String,
    landscape: Arc<Landscape>,
    metrics: Metrics,
    write_latency: Duration,
    read_latency: Duration,
    replica: bool,
    stale_read_probability: f64,
    gate: Arc<Gate>,
    throttle: Option<Mutex<Throttle>>,
}

/// Simulated service protection: at most `requests` per `per`, then 429 with `retry_after`,
/// lengthened for every request that arrives while throttled (as Dataverse does).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleSpec {
    pub requests: u32,
    pub per: Dur,
    pub retry_after: Dur,
}

struct Throttle {
    spec: ThrottleSpec,
    window_start: Option<Instant>,
    count: u32,
    blocked_until: Option<Instant>,
}

impl Throttle {
    fn new(spec: ThrottleSpec) -> Self {
        Throttle {
            spec,
            window_start: None,
            count: 0,
            blocked_until: None,
        }
    }

    /// `Some(retry_after)` if this request is refused.
    fn check(&mut self, now: Instant) -> Option<Duration> {
        if let Some(until) = self.blocked_until.filter(|u| *u > now) {
            // Sending while throttled lengthens the penalty.
            let until = until + self.spec.retry_after.get() / 2;
            self.blocked_until = Some(until);
            return Some(until - now);
        }
        let start = *self.window_start.get_or_insert(now);
        if now.saturating_duration_since(start) >= self.spec.per.get() {
            self.window_start = Some(now);
            self.count = 0;
        }
        self.count += 1;
        if self.count > self.spec.requests {
            let until = now + self.spec.retry_after.get();
            self.blocked_until = Some(until);
            return Some(self.spec.retry_after.get());
        }
        None
    }
}

impl SimNode {
    /// Waits half the latency, runs `f` at that instant, waits the other half: the simulated
    /// server acts in the middle of the call, as a real one does somewhere inside it.
    async fn call<T>(
        &self,
        operation: &str,
        latency: Duration,
        f: impl FnOnce(Instant) -> Result<T, ConnectorError>,
    ) -> Result<T, ConnectorError> {
        let started = Instant::now();
        self.gate.record_request();
        tokio::time::sleep(latency / 2).await;
        let refused = self.throttle.as_ref().and_then(|t| {
            t.lock()
                .unwrap_or_else(|e| e.into_inner())
                .check(Instant::now())
        });
        let r = match refused {
            Some(retry_after) => Err(ConnectorError::Throttled {
                retry_after: Some(retry_after),
            }),
            None => f(Instant::now()),
        };
        tokio::time::sleep(latency - latency / 2).await;
        let status = match &r {
            Ok(_) => "2xx",
            Err(e) => e.status_class(),
        };
        self.metrics.observe_request(
            &self.name,
            operation,
            status,
            started.elapsed().as_secs_f64(),
        );
        r
    }
}

#[async_trait]
impl Source for SimNode {
    async fn write(&self, s: &Sentinel) -> Result<(), ConnectorError> {
        self.call("write", self.write_latency, |now| {
            self.landscape
                .commit(&self.name, s.id.key(), &s.payload, now);
            Ok(())
        })
        .await
    }

    async fn read(&self, id: &SentinelId) -> Result<Lookup, ConnectorError> {
        let stale = rand::random::<f64>() < self.stale_read_probability;
        self.call("read", self.read_latency, |_| {
            if stale {
                return Ok(Lookup::Absent);
            }
            Ok(self.landscape.read_source(&self.name, id.key()))
        })
        .await
    }

    async fn delete(&self, id: &SentinelId) -> Result<(), ConnectorError> {
        self.call("delete", self.write_latency, |_| {
            self.landscape.delete(&self.name, id.key());
            Ok(())
        })
        .await
    }

    async fn list_own(
        &self,
        prefix: &str,
        before: DateTime<Utc>,
    ) -> Result<Vec<SentinelId>, ConnectorError> {
        self.call("list", self.read_latency, |_| {
            Ok(self.landscape.list(&self.name, prefix, before))
        })
        .await
    }
}

#[async_trait]
impl Target for SimNode {
    async fn lookup(&self, id: &SentinelId) -> Result<Lookup, ConnectorError> {
        self.call("lookup", self.read_latency, |now| {
            if self.replica {
                self.landscape.read_replica(&self.name, id.key(), now)
            } else {
                Ok(self.landscape.read_source(&self.name, id.key()))
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(distribution: Distribution) -> LagSpec {
        LagSpec {
            distribution,
            value: Some(Dur::secs(2)),
            min: Some(Dur::secs(1)),
            max: Some(Dur::secs(3)),
            median: Some(Dur::secs(10)),
            p99: Some(Dur::secs(40)),
        }
    }

    #[test]
    fn distributions_have_their_documented_shape() {
        let mut rng = StdRng::seed_from_u64(7);
        assert_eq!(
            Landscape::sample_lag(&mut rng, &spec(Distribution::Fixed)),
            Duration::from_secs(2)
        );
        let u: Vec<f64> = (0..2000)
            .map(|_| Landscape::sample_lag(&mut rng, &spec(Distribution::Uniform)).as_secs_f64())
            .collect();
        assert!(u.iter().all(|x| (1.0..=3.0).contains(x)));
        let mut ln: Vec<f64> = (0..20_000)
            .map(|_| Landscape::sample_lag(&mut rng, &spec(Distribution::LogNormal)).as_secs_f64())
            .collect();
        ln.sort_by(f64::total_cmp);
        let median = ln[ln.len() / 2];
        let p99 = ln[ln.len() * 99 / 100];
        assert!((median - 10.0).abs() < 0.5, "median {median}");
        assert!((p99 - 40.0).abs() < 4.0, "p99 {p99}");
    }

    #[tokio::test(start_paused = true)]
    async fn outages_repeat_and_stall_replication() {
        let l = Landscape::new();
        let spec = ReplicaSpec {
            lag: spec(Distribution::Fixed),
            drop_probability: 0.0,
            mismatch_probability: 0.0,
            flap_probability: 0.0,
            outages: vec![Outage {
                start: Dur::secs(10),
                duration: Dur::secs(5),
                every: Some(Dur::secs(60)),
                mode: OutageMode::Stall,
            }],
        };
        let at = |s: u64| l.start + Duration::from_secs(s);
        assert_eq!(l.outage(&spec, at(9), OutageMode::Stall), None);
        assert_eq!(l.outage(&spec, at(12), OutageMode::Stall), Some(at(15)));
        assert_eq!(l.outage(&spec, at(72), OutageMode::Stall), Some(at(75)));
        assert_eq!(l.outage(&spec, at(12), OutageMode::Unavailable), None);
        l.add_source("src", Some(1));
        l.add_replica("rep", "src", spec);
        l.commit("src", "k", "{}", at(11));
        let t = l.truth("rep", "k").unwrap();
        assert_eq!(t.visible_at, Some(at(15)), "stalled until the outage ends");
        assert_eq!(l.read_replica("rep", "k", at(14)).unwrap(), Lookup::Absent);
        assert!(matches!(
            l.read_replica("rep", "k", at(15)).unwrap(),
            Lookup::Present { .. }
        ));
    }

    #[test]
    fn the_truth_store_forgets_its_oldest_keys_first() {
        let l = Landscape::new();
        let spec = || ReplicaSpec {
            lag: spec(Distribution::Fixed),
            drop_probability: 0.0,
            mismatch_probability: 0.0,
            flap_probability: 0.0,
            outages: Vec::new(),
        };
        l.add_source("src", Some(1));
        l.add_replica("a", "src", spec());
        l.add_replica("b", "src", spec());
        l.add_source("other", None);
        l.add_replica("c", "other", spec());
        let now = Instant::now();
        // The same key committed to another source keeps both sources' replicas.
        l.commit("src", "k0", "{}", now);
        l.commit("other", "k0", "{}", now);
        assert!(l.truth("a", "k0").is_some() && l.truth("c", "k0").is_some());
        // Two entries per key from now on: the store keeps the newest keys within its cap.
        let keys = TRUTH_CAPACITY / 2 + 10;
        for i in 1..keys {
            l.commit("src", &format!("k{i}"), "{}", now);
        }
        l.commit("src", "k11", "{}", now); // re-committed: replaced, not counted twice
        assert!(l.truth("a", "k9").is_none() && l.truth("c", "k0").is_none());
        assert!(l.truth("a", "k10").is_some() && l.truth("b", "k11").is_some());
        assert!(l.truth("b", &format!("k{}", keys - 1)).is_some());
        assert!(l.truth("c", "k11").is_none(), "not a replica of its source");
        let w = l.world();
        assert_eq!(w.truth_entries, TRUTH_CAPACITY);
        assert_eq!(w.truth.len(), TRUTH_CAPACITY / 2);
    }
}
