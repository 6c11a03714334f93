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
//! Deletes propagate like writes: the source forgets the record at once, and each replica
//! holding it draws a delete lag from the same distribution (pushed by stall outages as a
//! write is) and keeps showing the record until `gone_at` = delete + lag. Replication applies
//! in order, so a delete never overtakes the write it follows: if the write had not arrived,
//! `gone_at` is at least its `visible_at` (and when the drawn lag would have been shorter, the
//! record never shows), and no flap glimpse shows it from `gone_at` on. On purpose, a delete
//! can be dropped (`delete_drop_probability`: the record stays) or undone for a while
//! (`resurrect_probability`: visible again during `[gone_at + resurrect_after, gone_at +
//! resurrect_after + resurrect_for)`, then gone for good). Each outcome is in the ground truth
//! ([`Truth`]: `deleted_at`, `gone_at`, `delete_dropped`, `resurrected`).
//!
//! The landscape records the exact instant each record became (stably) visible in each
//! replica, so tests and benchmarks compare measured lag with the truth. All instants are
//! `tokio::time::Instant`, so paused-time tests run hours of lag in milliseconds.
//!
//! Memory stays bounded at the scale bench's hundreds of writes a second: the truth store
//! keeps [`TRUTH_CAPACITY`] entries; a deleted record leaves its replica's map once it is gone
//! and past its resurrection window (a few expired ones are purged on each commit and delete,
//! oldest first, never a scan of the map), and a record whose delete was dropped leaves it when
//! its truth is forgotten, or [`DROPPED_DELETE_KEPT`] after the delete at the latest.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
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
use lagwatch::connector::{ConnectorError, Lookup, Source, Target, Updated};
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
    /// Replica: share of deletes that never reach it (the record stays visible).
    #[serde(default)]
    pub delete_drop_probability: f64,
    /// Replica: share of deletes undone for a while: the record is visible again from
    /// `resurrect_after` after it was gone, for `resurrect_for`, then gone for good.
    #[serde(default)]
    pub resurrect_probability: f64,
    #[serde(default = "default_resurrect_after")]
    pub resurrect_after: Dur,
    #[serde(default = "default_resurrect_for")]
    pub resurrect_for: Dur,
    /// Replica: share of children (records written with a reference to another) applied
    /// before their parent, which is held until `child_first_for` after the child arrived.
    /// Otherwise a replica never applies a child before its parent.
    #[serde(default)]
    pub child_first_probability: f64,
    #[serde(default = "default_child_first_for")]
    pub child_first_for: Dur,
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
fn default_resurrect_after() -> Dur {
    DEFAULT_RESURRECT_AFTER
}
fn default_resurrect_for() -> Dur {
    DEFAULT_RESURRECT_FOR
}
fn default_child_first_for() -> Dur {
    DEFAULT_CHILD_FIRST_FOR
}

/// How long a replica that applied a child first holds its parent after the child arrived,
/// unless `child_first_for` says otherwise.
pub const DEFAULT_CHILD_FIRST_FOR: Dur = Dur::secs(3);

/// How long after a replica stopped showing a deleted record a resurrection shows it again,
/// unless `resurrect_after` says otherwise.
pub const DEFAULT_RESURRECT_AFTER: Dur = Dur::secs(1);
/// How long a resurrection shows the record, unless `resurrect_for` says otherwise.
pub const DEFAULT_RESURRECT_FOR: Dur = Dur::secs(3);

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
        ("delete_drop_probability", c.delete_drop_probability),
        ("resurrect_probability", c.resurrect_probability),
        ("child_first_probability", c.child_first_probability),
        ("stale_read_probability", c.stale_read_probability),
    ] {
        if !(0.0..=1.0).contains(&p) {
            return Err(Issue::new(
                format!("{key}.{name}"),
                format!("a probability is between 0 and 1, not {p}"),
            ));
        }
    }
    validate_resurrection(key, c.resurrect_for)?;
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

/// Checks a resurrection window the way a `simulated` replica's is checked (for the
/// emulator's scenarios too): a window of 0s would record a resurrection nobody can see.
///
/// # Errors
/// An [`Issue`] naming `resurrect_for` under `key`.
pub fn validate_resurrection(key: &str, resurrect_for: Dur) -> Result<(), Issue> {
    if resurrect_for.get().is_zero() {
        return Err(Issue::new(
            format!("{key}.resurrect_for"),
            "a resurrection shows the record again for a while: more than 0s",
        ));
    }
    Ok(())
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

    fn can_update(&self) -> Result<(), String> {
        self.can_write()
    }

    fn can_link(&self) -> Result<(), String> {
        self.can_write()
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
            ("deletes dropped", self.delete_drop_probability),
            ("deletes undone for a while", self.resurrect_probability),
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
                    status: None,
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
                    status: None,
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
    /// A delete never reaches the replica: the record stays.
    pub delete_drop_probability: f64,
    /// A delete is undone for `resurrect_for`, `resurrect_after` after the record was gone.
    pub resurrect_probability: f64,
    pub resurrect_after: Dur,
    pub resurrect_for: Dur,
    /// A child is applied before its parent (held `child_first_for` after the child).
    pub child_first_probability: f64,
    pub child_first_for: Dur,
    /// An update (a write of a record the replica holds, not deleted) is lost: drawn like
    /// `drop_probability`, but only for updates, so a change log built from the landscape
    /// (the emulator's lakes) can lose a version and never the record. The entry says so
    /// ([`VersionFate::Dropped`]).
    pub version_drop_probability: f64,
    /// An update that is not lost is marked [`VersionFate::Duplicated`]: the landscape
    /// shows it once, and a change log built from it writes its row twice.
    pub version_duplicate_probability: f64,
    pub outages: Vec<Outage>,
}

impl ReplicaSpec {
    /// A replica with lag `lag` and nothing else: no drops, mismatches, flaps, dropped or
    /// undone deletes, or outages.
    pub fn with_lag(lag: LagSpec) -> Self {
        ReplicaSpec {
            lag,
            drop_probability: 0.0,
            mismatch_probability: 0.0,
            flap_probability: 0.0,
            delete_drop_probability: 0.0,
            resurrect_probability: 0.0,
            resurrect_after: DEFAULT_RESURRECT_AFTER,
            resurrect_for: DEFAULT_RESURRECT_FOR,
            child_first_probability: 0.0,
            child_first_for: DEFAULT_CHILD_FIRST_FOR,
            version_drop_probability: 0.0,
            version_duplicate_probability: 0.0,
            outages: Vec::new(),
        }
    }

    fn from_config(c: &SimulatedConfig, lag: LagSpec) -> Self {
        ReplicaSpec {
            lag,
            drop_probability: c.drop_probability,
            mismatch_probability: c.mismatch_probability,
            flap_probability: c.flap_probability,
            delete_drop_probability: c.delete_drop_probability,
            resurrect_probability: c.resurrect_probability,
            resurrect_after: c.resurrect_after,
            resurrect_for: c.resurrect_for,
            child_first_probability: c.child_first_probability,
            child_first_for: c.child_first_for,
            // A simulated replica is a snapshot: it may skip versions legally.
            version_drop_probability: 0.0,
            version_duplicate_probability: 0.0,
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
    /// When the source applied a delete of the record (and forgot it); `None` while it lives.
    pub deleted_at: Option<Instant>,
    /// When the replica stopped showing it after the delete (at least `visible_at`: deletes
    /// apply in order); `None` while it lives or if the delete was dropped.
    pub gone_at: Option<Instant>,
    /// The delete never reaches the replica: the record stays visible.
    pub delete_dropped: bool,
    /// `[from, to)`: after it was gone, the record is visible again during this window, then
    /// gone for good.
    pub resurrected: Option<(Instant, Instant)>,
    /// For a child applied before its parent: `[from, to)`, when the replica showed it and
    /// not the parent.
    pub child_first: Option<(Instant, Instant)>,
}

impl Truth {
    /// The true lag, if the record arrived.
    pub fn lag(&self) -> Option<Duration> {
        self.visible_at
            .map(|v| v.saturating_duration_since(self.committed_at))
    }

    /// The true delete lag, from the source's delete to the replica's `gone_at`, if the
    /// record was deleted and the delete arrived.
    pub fn delete_lag(&self) -> Option<Duration> {
        Some(self.gone_at?.saturating_duration_since(self.deleted_at?))
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
    /// What the version draws made of this write.
    version: VersionFate,
    /// The source deleted it: how the delete goes in this replica.
    deletion: Option<Deletion>,
    /// Earlier versions still travelling or last shown, oldest first, with when each arrives
    /// (and its glimpse): until this version arrives a read returns the newest of them that
    /// shows (a replica keeps its last version while newer ones travel). At most
    /// [`PRIOR_VERSIONS`].
    prior: Vec<Prior>,
}

/// An earlier version of a replica record: its content, arrival and glimpse.
type Prior = (String, Option<Instant>, Option<(Instant, Instant)>);

/// Earlier versions a replica record remembers (an update canary's, a few lags' worth).
const PRIOR_VERSIONS: usize = 64;

impl ReplicaRecord {
    /// The content a read at `now` returns, if any.
    fn shown_at(&self, now: Instant) -> Option<&str> {
        let d = self.deletion;
        if shown(
            self.visible_at,
            self.glimpse,
            d.and_then(|d| d.gone_at),
            d.and_then(|d| d.resurrected),
            now,
        ) {
            Some(&self.payload)
        } else if d.is_none() {
            self.prior
                .iter()
                .rev()
                .find(|(_, at, glimpse)| shown(*at, *glimpse, None, None, now))
                .map(|(p, ..)| p.as_str())
        } else {
            None
        }
    }

    /// The versions a record committed over this one at `now` keeps: this one's earlier
    /// versions and itself, without those a newer arrived version hides for good.
    fn into_prior(self, now: Instant) -> Vec<Prior> {
        if self.deletion.is_some() {
            return Vec::new();
        }
        let mut prior = self.prior;
        prior.push((self.payload, self.visible_at, self.glimpse));
        if let Some(newest_arrived) = prior
            .iter()
            .rposition(|(_, at, _)| at.is_some_and(|a| now >= a))
        {
            prior.drain(..newest_arrived);
        }
        if prior.len() > PRIOR_VERSIONS {
            let extra = prior.len() - PRIOR_VERSIONS;
            prior.drain(..extra);
        }
        prior
    }
}

/// How a delete goes in one replica.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Deletion {
    /// Which delete of the landscape (several can share an instant under paused time): what
    /// a purge checks before removing a record, so a recreated record is never purged.
    seq: u64,
    deleted_at: Instant,
    /// `None`: the delete was dropped.
    gone_at: Option<Instant>,
    resurrected: Option<(Instant, Instant)>,
}

impl Deletion {
    /// When the record has left the replica for good, if it does.
    fn over_at(&self) -> Option<Instant> {
        let gone = self.gone_at?;
        Some(self.resurrected.map_or(gone, |(_, to)| to.max(gone)))
    }
}

/// Whether a read at `now` sees a record: settled or inside its glimpse, and not yet gone
/// after a delete; or inside a resurrection.
fn shown(
    visible_at: Option<Instant>,
    glimpse: Option<(Instant, Instant)>,
    gone_at: Option<Instant>,
    resurrected: Option<(Instant, Instant)>,
    now: Instant,
) -> bool {
    let within = |(a, b): (Instant, Instant)| now >= a && now < b;
    let arrived = visible_at.is_some_and(|v| now >= v) || glimpse.is_some_and(within);
    (arrived && gone_at.is_none_or(|g| now < g)) || resurrected.is_some_and(within)
}

/// A deleted record still in a replica's map, to be removed once `until` has passed.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Tombstone {
    until: Instant,
    seq: u64,
    replica: Arc<str>,
    key: Arc<str>,
}

/// What the version draws ([`ReplicaSpec::version_drop_probability`],
/// [`ReplicaSpec::version_duplicate_probability`]) made of one write. A create is always
/// [`VersionFate::Once`]: the draws are for updates only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VersionFate {
    /// As every create, and every update the draws missed.
    #[default]
    Once,
    /// Lost: `visible_at` is `None`, as for a dropped write.
    Dropped,
    /// Arrives (the replica shows it once); a change log holds its row twice.
    Duplicated,
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
    /// When the source deleted it; `None` while it lives.
    pub deleted_at: Option<Instant>,
    /// When the replica stops showing it after the delete; `None` while it lives or if the
    /// delete was dropped.
    pub gone_at: Option<Instant>,
    /// The delete never reaches the replica.
    pub delete_dropped: bool,
    /// `[from, to)`: visible again after it was gone.
    pub resurrected: Option<(Instant, Instant)>,
    /// What the version draws made of this write.
    pub version: VersionFate,
}

impl ReplicaEntry {
    /// Whether a read at `now` sees the record: settled or inside its glimpse, and not gone
    /// after a delete; or inside a resurrection.
    pub fn visible(&self, now: Instant) -> bool {
        shown(
            self.visible_at,
            self.glimpse,
            self.gone_at,
            self.resurrected,
            now,
        )
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
    /// Deleted records in the replicas' maps, soonest leaving first.
    tombstones: BinaryHeap<Reverse<Tombstone>>,
    /// Deletes drawn so far (each [`Deletion`]'s `seq`).
    deletes: u64,
}

impl World {
    /// Removes records whose tombstone expired by `now` from their replica's map (unless the
    /// key was written again since): a few per call ([`PURGE_BATCH`], or one per replica if
    /// there are more, as many as one delete adds), so a call never pays for a backlog and
    /// the backlog never grows.
    fn purge(&mut self, now: Instant) {
        for _ in 0..PURGE_BATCH.max(self.replicas.len()) {
            if self
                .tombstones
                .peek()
                .is_none_or(|Reverse(t)| t.until > now)
            {
                return;
            }
            let Some(Reverse(t)) = self.tombstones.pop() else {
                return;
            };
            if let Some(r) = self.replicas.get_mut(&*t.replica)
                && r.records
                    .get(&*t.key)
                    .and_then(|rec| rec.deletion)
                    .is_some_and(|d| d.seq == t.seq)
            {
                r.records.remove(&*t.key);
            }
        }
    }
}

/// Expired tombstones purged per commit or delete (see [`World::purge`]).
const PURGE_BATCH: usize = 16;

/// Longest a replica keeps a record whose delete it never received (a dropped delete), when
/// the landscape has not forgotten the record's truth before: an hour, beyond any probe's
/// deadline for a delete, and bounded for a run that drops deletes at the scale bench's rate.
pub const DROPPED_DELETE_KEPT: Duration = Duration::from_secs(3600);

/// Most ground-truth entries (key × replica) kept; the oldest keys are forgotten first. At
/// the scale bench's 100 entries a second that is four minutes, far beyond any probe's wait
/// for the truth of what it just resolved (and the demo's few paths keep hours). A delete
/// updates its key's entries in place, so a deleted key's truth is kept as long.
pub const TRUTH_CAPACITY: usize = 25_000;

/// The shared world of all simulated systems of one process.
pub struct Landscape {
    start: Instant,
    world: Mutex<World>,
    rng: Mutex<StdRng>,
    /// The delete draws: apart from the write draws, so a seeded run's writes draw what they
    /// drew before deletes had a lag of their own.
    delete_rng: Mutex<StdRng>,
}

/// Mixed into a source's `seed` for the delete draws.
const DELETE_SEED: u64 = 0x0de1_e7e5_0de1_e7e5;

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
            delete_rng: Mutex::new(StdRng::from_os_rng()),
        }
    }

    fn world(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock leaves plain maps behind; keep serving them.
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add_source(&self, name: &str, seed: Option<u64>) {
        if let Some(seed) = seed {
            *self.rng.lock().unwrap_or_else(|e| e.into_inner()) = StdRng::seed_from_u64(seed);
            *self.delete_rng.lock().unwrap_or_else(|e| e.into_inner()) =
                StdRng::seed_from_u64(seed ^ DELETE_SEED);
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

    /// Commits `key` to `source` at `now` as a child of `parent` (a record that references
    /// it): as [`commit_record`](Self::commit_record), except that each replica applies it
    /// no earlier than the parent, unless its `child_first_probability` draw hits: then the
    /// parent is held until `child_first_for` after the child arrived, and the child's truth
    /// records the window it showed alone.
    pub fn commit_child(&self, source: &str, key: &str, payload: &str, parent: &str, now: Instant) {
        self.commit(source, key, payload, now);
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let mut w = self.world();
        let World {
            replicas, truth, ..
        } = &mut *w;
        for r in replicas.values_mut().filter(|r| r.source == source) {
            let name = r.name.clone();
            let (Some(parent_at), Some(child_at)) = (
                r.records.get(parent).and_then(|p| p.visible_at),
                r.records.get(key).and_then(|c| c.visible_at),
            ) else {
                continue;
            };
            let first = r.spec.child_first_probability > 0.0
                && rng.random::<f64>() < r.spec.child_first_probability;
            let (child_at, parent_at, window) = if first {
                let held = child_at + r.spec.child_first_for.get();
                (
                    child_at,
                    parent_at.max(held),
                    Some((child_at, parent_at.max(held))),
                )
            } else {
                (child_at.max(parent_at), parent_at, None)
            };
            if let Some(c) = r.records.get_mut(key) {
                c.visible_at = Some(child_at);
                c.glimpse = None;
            }
            if let Some(p) = r.records.get_mut(parent) {
                p.visible_at = Some(parent_at);
                p.glimpse = None;
            }
            for (k, at, win) in [(key, child_at, window), (parent, parent_at, None)] {
                if let Some(t) = truth
                    .get_mut(k)
                    .and_then(|v| v.iter_mut().find(|(n, _)| *n == name))
                {
                    t.1.visible_at = Some(at);
                    if win.is_some() {
                        t.1.child_first = win;
                    }
                }
            }
        }
    }

    /// Deletes `key` from `source` at `now`: the source forgets it at once; every replica
    /// holding it draws its delete lag, drop and resurrection, as a simulated source's delete
    /// does, and the ground truth of the key records them.
    pub fn delete_record(&self, source: &str, key: &str, now: Instant) {
        self.delete(source, key, now);
    }

    /// What `replica` holds for `key` (visible or not yet), if anything.
    pub fn replica_entry(&self, replica: &str, key: &str) -> Option<ReplicaEntry> {
        let w = self.world();
        let rec = w.replicas.get(replica)?.records.get(key)?;
        let d = rec.deletion;
        Some(ReplicaEntry {
            payload: rec.payload.clone(),
            visible_at: rec.visible_at,
            glimpse: rec.glimpse,
            mismatched: rec.mismatched,
            deleted_at: d.map(|d| d.deleted_at),
            gone_at: d.and_then(|d| d.gone_at),
            delete_dropped: d.is_some_and(|d| d.gone_at.is_none()),
            resurrected: d.and_then(|d| d.resurrected),
            version: rec.version,
        })
    }

    /// When a change sent through `replica` at `now` arrives, drawn as a write's is (its
    /// lag, from the seeded generator, held by stall outages); `None` when its drop draw
    /// loses it. Records nothing: for changes the caller keeps the truth of itself (the
    /// emulator's link writes to copies, which have no record of their own to commit).
    pub fn draw_arrival(&self, replica: &str, now: Instant) -> Option<Instant> {
        let spec = self.world().replicas.get(replica)?.spec.clone();
        let (lag, dropped) = {
            let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
            let lag = Self::sample_lag(&mut rng, &spec.lag);
            (lag, rng.random::<f64>() < spec.drop_probability)
        };
        (!dropped).then(|| self.arrival(&spec, now, lag))
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
        outage_end(self.start, &spec.outages, at, mode)
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

    /// When a change sent at `now` with replication lag `lag` reaches a replica: stall
    /// outages at either end hold it until they end.
    fn arrival(&self, spec: &ReplicaSpec, now: Instant, lag: Duration) -> Instant {
        let mut at = now + lag;
        for probe_at in [now, at] {
            if let Some(end) = self.outage(spec, probe_at, OutageMode::Stall) {
                at = at.max(end);
            }
        }
        at
    }

    fn commit(&self, source: &str, key: &str, payload: &str, now: Instant) {
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let mut w = self.world();
        w.purge(now);
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
            // Drawn after the others and only when above 0, so a seeded run without them
            // draws what it drew before they existed; a write already lost draws none.
            let update = w
                .replicas
                .get(&*name)
                .and_then(|r| r.records.get(key))
                .is_some_and(|rec| rec.deletion.is_none());
            let mut draw = |p: f64| update && !dropped && p > 0.0 && rng.random::<f64>() < p;
            let version = if draw(spec.version_drop_probability) {
                VersionFate::Dropped
            } else if draw(spec.version_duplicate_probability) {
                VersionFate::Duplicated
            } else {
                VersionFate::Once
            };
            let dropped = dropped || version == VersionFate::Dropped;
            let visible = self.arrival(&spec, now, lag);
            let visible_at = (!dropped).then_some(visible);
            let glimpse = (flap && !dropped && lag > Duration::from_millis(100))
                .then(|| (now + lag.mul_f64(0.4), now + lag.mul_f64(0.7)));
            let payload = if mismatch {
                payload.replace("\"instance\"", "\"Instance\"")
            } else {
                payload.to_string()
            };
            if let Some(r) = w.replicas.get_mut(&*name) {
                let prior = r
                    .records
                    .remove(key)
                    .map(|old| old.into_prior(now))
                    .unwrap_or_default();
                r.records.insert(
                    key.to_string(),
                    ReplicaRecord {
                        payload,
                        visible_at,
                        glimpse,
                        mismatched: mismatch,
                        version,
                        deletion: None,
                        prior,
                    },
                );
            }
            truths.push((
                name,
                Truth {
                    committed_at: now,
                    visible_at,
                    deleted_at: None,
                    gone_at: None,
                    delete_dropped: false,
                    resurrected: None,
                    child_first: None,
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
                // A record whose delete was dropped stays for as long as its truth does.
                for (replica, _) in gone.iter().filter(|(_, t)| t.delete_dropped) {
                    if let Some(r) = w.replicas.get_mut(&**replica)
                        && r.records
                            .get(&*old)
                            .and_then(|rec| rec.deletion)
                            .is_some_and(|d| d.gone_at.is_none())
                    {
                        r.records.remove(&*old);
                    }
                }
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
        Ok(match rec.shown_at(now) {
            Some(p) => Lookup::Present {
                payload: Some(p.to_string()),
            },
            None => Lookup::Absent,
        })
    }

    /// How a delete sent at `now` goes in a replica holding a record that becomes visible at
    /// `visible_at`: its lag (after stalls, never before the write: in order), drop and
    /// resurrection. A draw happens only when its probability is above 0, so the defaults
    /// draw nothing but the lag.
    fn draw_deletion(
        &self,
        rng: &mut StdRng,
        spec: &ReplicaSpec,
        visible_at: Option<Instant>,
        now: Instant,
        seq: u64,
    ) -> Deletion {
        let lag = Self::sample_lag(rng, &spec.lag);
        let mut draw = |p: f64| p > 0.0 && rng.random::<f64>() < p;
        let mut gone = self.arrival(spec, now, lag);
        if let Some(v) = visible_at {
            gone = gone.max(v);
        }
        let dropped = draw(spec.delete_drop_probability);
        let resurrected = (!dropped && visible_at.is_some() && draw(spec.resurrect_probability))
            .then(|| {
                let from = gone + spec.resurrect_after.get();
                (from, from + spec.resurrect_for.get())
            });
        Deletion {
            seq,
            deleted_at: now,
            gone_at: (!dropped).then_some(gone),
            resurrected,
        }
    }

    fn delete(&self, source: &str, key: &str, now: Instant) {
        let mut rng = self.delete_rng.lock().unwrap_or_else(|e| e.into_inner());
        let mut w = self.world();
        w.purge(now);
        if let Some(m) = w.sources.get_mut(source) {
            m.remove(key);
        }
        let shared_key: Arc<str> = Arc::from(key);
        let mut drawn = Vec::new();
        let World {
            replicas,
            tombstones,
            deletes,
            ..
        } = &mut *w;
        for r in replicas.values_mut().filter(|r| r.source == source) {
            // A record deleted before keeps its first delete.
            let Some(rec) = r.records.get_mut(key).filter(|rec| rec.deletion.is_none()) else {
                continue;
            };
            *deletes += 1;
            let d = self.draw_deletion(&mut rng, &r.spec, rec.visible_at, now, *deletes);
            rec.deletion = Some(d);
            tombstones.push(Reverse(Tombstone {
                until: d.over_at().unwrap_or(now + DROPPED_DELETE_KEPT),
                seq: d.seq,
                replica: r.name.clone(),
                key: shared_key.clone(),
            }));
            drawn.push((r.name.clone(), d));
        }
        let Some(known) = w.truth.get_mut(key) else {
            return;
        };
        for (name, d) in drawn {
            if let Some((_, t)) = known.iter_mut().find(|(n, _)| *n == name) {
                t.deleted_at = Some(d.deleted_at);
                t.gone_at = d.gone_at;
                t.delete_dropped = d.gone_at.is_none();
                t.resurrected = d.resurrected;
            }
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

/// If one of `outages` (scheduled from `start`) of `mode` is in force at `at`, when it ends:
/// the rule every outage and paused window follows.
pub fn outage_end(
    start: Instant,
    outages: &[Outage],
    at: Instant,
    mode: OutageMode,
) -> Option<Instant> {
    outage_window(start, outages, at, mode).map(|(_, end)| end)
}

/// As [`outage_end`], the occurrence in force at `at` as `[from, to)` (the emulator's status
/// surfaces ask about instants other than now, and when a window began).
pub fn outage_window(
    start: Instant,
    outages: &[Outage],
    at: Instant,
    mode: OutageMode,
) -> Option<(Instant, Instant)> {
    let since = at.checked_duration_since(start)?;
    for o in outages.iter().filter(|o| o.mode == mode) {
        let begin = o.start.get();
        if since < begin {
            continue;
        }
        let into = since - begin;
        let into_cycle = match o.every {
            Some(every) if !every.get().is_zero() => {
                Duration::from_nanos((into.as_nanos() % every.get().as_nanos()) as u64)
            }
            _ => into,
        };
        if into_cycle < o.duration.get() {
            return Some((at - into_cycle, at + (o.duration.get() - into_cycle)));
        }
    }
    None
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
    /// What a read of `id` at `now` answers: the replica's state, or the source's.
    fn read_at(&self, id: &SentinelId, now: Instant) -> Result<Lookup, ConnectorError> {
        if self.replica {
            self.landscape.read_replica(&self.name, id.key(), now)
        } else {
            Ok(self.landscape.read_source(&self.name, id.key()))
        }
    }

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

    /// A write again: the landscape replaces the record, and each replica keeps showing the
    /// version it had until the new one arrives.
    async fn update(&self, s: &Sentinel) -> Result<Updated, ConnectorError> {
        self.call("update", self.write_latency, |now| {
            self.landscape
                .commit(&self.name, s.id.key(), &s.payload, now);
            Ok(Updated::default())
        })
        .await
    }

    /// A write that references `parent`: each replica applies it after the parent, unless
    /// its `child_first_probability` says otherwise.
    async fn write_child(&self, s: &Sentinel, parent: &SentinelId) -> Result<(), ConnectorError> {
        self.call("write", self.write_latency, |now| {
            self.landscape
                .commit_child(&self.name, s.id.key(), &s.payload, parent.key(), now);
            Ok(())
        })
        .await
    }

    async fn delete(&self, id: &SentinelId) -> Result<(), ConnectorError> {
        self.call("delete", self.write_latency, |now| {
            self.landscape.delete(&self.name, id.key(), now);
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
        self.call("lookup", self.read_latency, |now| self.read_at(id, now))
            .await
    }

    /// Every key is read at one instant of the landscape.
    fn reads_together(&self) -> bool {
        true
    }

    async fn lookup_together(&self, ids: &[SentinelId]) -> Result<Vec<Lookup>, ConnectorError> {
        self.call("lookup", self.read_latency, |now| {
            ids.iter().map(|id| self.read_at(id, now)).collect()
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
            outages: vec![Outage {
                start: Dur::secs(10),
                duration: Dur::secs(5),
                every: Some(Dur::secs(60)),
                mode: OutageMode::Stall,
            }],
            ..ReplicaSpec::with_lag(spec(Distribution::Fixed))
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

    /// A replica with a fixed lag of 2 s and nothing else.
    fn plain() -> ReplicaSpec {
        ReplicaSpec::with_lag(spec(Distribution::Fixed))
    }

    fn present(l: &Landscape, replica: &str, key: &str, at: Instant) -> bool {
        matches!(l.read_replica(replica, key, at), Ok(Lookup::Present { .. }))
    }

    #[tokio::test(start_paused = true)]
    async fn a_delete_takes_the_replica_lag_and_applies_in_order() {
        let l = Landscape::new();
        l.add_source("src", Some(3));
        l.add_replica("rep", "src", plain());
        let at = |ms: u64| l.start + Duration::from_millis(ms);
        // Arrived at 2 s, deleted at 5 s: shown until 7 s, the source forgets it at once.
        l.commit("src", "k", "{}", at(0));
        l.delete("src", "k", at(5000));
        assert_eq!(l.read_source("src", "k"), Lookup::Absent);
        assert!(
            l.list("src", "", Utc::now() + chrono::Duration::hours(1))
                .is_empty()
        );
        assert!(present(&l, "rep", "k", at(6999)));
        assert!(!present(&l, "rep", "k", at(7000)));
        let t = l.truth("rep", "k").unwrap();
        assert_eq!(
            (t.deleted_at, t.gone_at, t.delete_dropped, t.resurrected),
            (Some(at(5000)), Some(at(7000)), false, None)
        );
        assert_eq!(t.delete_lag(), Some(Duration::from_secs(2)));
        // Deleted before it arrived: the delete follows the write, which shows from 2 s.
        l.commit("src", "early", "{}", at(10_000));
        l.delete("src", "early", at(11_000));
        assert!(!present(&l, "rep", "early", at(11_999)));
        assert!(present(&l, "rep", "early", at(12_000)));
        assert!(!present(&l, "rep", "early", at(13_000)));
        // A delete drawn shorter than the write's lag never lets the write show.
        let l = Landscape::new();
        l.add_source("src", Some(3));
        let uniform = LagSpec {
            distribution: Distribution::Uniform,
            min: Some(Dur::secs(0)),
            max: Some(Dur::secs(10)),
            ..spec(Distribution::Fixed)
        };
        l.add_replica("rep", "src", ReplicaSpec::with_lag(uniform));
        let at = |ms: u64| l.start + Duration::from_millis(ms);
        let mut overtaken = 0;
        for i in 0..200 {
            let key = format!("k{i}");
            l.commit("src", &key, "{}", at(0));
            l.delete("src", &key, at(1));
            let t = l.truth("rep", &key).unwrap();
            let (visible, gone) = (t.visible_at.unwrap(), t.gone_at.unwrap());
            assert!(gone >= visible, "in order: {t:?}");
            assert_eq!(present(&l, "rep", &key, visible), gone > visible, "{t:?}");
            assert!(!present(&l, "rep", &key, gone), "{t:?}");
            assert!(!present(&l, "rep", &key, visible - Duration::from_nanos(1)));
            overtaken += usize::from(gone == visible);
        }
        assert!(
            (50..150).contains(&overtaken),
            "both cases drawn: {overtaken}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn no_glimpse_after_the_delete_applied_and_stalls_push_deletes() {
        let l = Landscape::new();
        l.add_source("src", Some(5));
        let lag = LagSpec {
            value: Some(Dur::secs(10)),
            ..spec(Distribution::Fixed)
        };
        l.add_replica(
            "flap",
            "src",
            ReplicaSpec {
                flap_probability: 1.0,
                ..ReplicaSpec::with_lag(lag.clone())
            },
        );
        let at = |ms: u64| l.start + Duration::from_millis(ms);
        // Glimpse 4-7 s, settles at 10 s; the delete at 0 s is gone at 10 s: the glimpse
        // shows (before the delete applies), nothing after.
        l.commit("src", "k", "{}", at(0));
        l.delete("src", "k", at(0));
        assert!(present(&l, "flap", "k", at(4000)));
        assert!(!present(&l, "flap", "k", at(7000)));
        assert!(!present(&l, "flap", "k", at(10_000)));
        let l = Landscape::new();
        l.add_source("src", Some(5));
        l.add_replica(
            "stall",
            "src",
            ReplicaSpec {
                outages: vec![Outage {
                    start: Dur::secs(20),
                    duration: Dur::secs(30),
                    every: None,
                    mode: OutageMode::Stall,
                }],
                ..ReplicaSpec::with_lag(lag)
            },
        );
        l.commit("src", "k", "{}", at(0));
        l.delete("src", "k", at(15_000));
        let t = l.truth("stall", "k").unwrap();
        assert_eq!(t.gone_at, Some(at(50_000)), "held until the stall ends");
        assert!(present(&l, "stall", "k", at(49_999)));
    }

    #[tokio::test(start_paused = true)]
    async fn dropped_and_undone_deletes_are_in_the_truth() {
        let l = Landscape::new();
        l.add_source("src", Some(9));
        let with = |drop: f64, back: f64| ReplicaSpec {
            delete_drop_probability: drop,
            resurrect_probability: back,
            resurrect_after: Dur::millis(500),
            resurrect_for: Dur::secs(2),
            ..plain()
        };
        l.add_replica("dropping", "src", with(1.0, 0.0));
        l.add_replica("undoing", "src", with(0.0, 1.0));
        l.add_replica("plain", "src", plain());
        let at = |ms: u64| l.start + Duration::from_millis(ms);
        l.commit("src", "k", "{}", at(0));
        l.delete("src", "k", at(3000));
        let t = l.truth("dropping", "k").unwrap();
        assert!(t.delete_dropped && t.gone_at.is_none() && t.resurrected.is_none());
        assert_eq!(t.deleted_at, Some(at(3000)));
        assert!(present(&l, "dropping", "k", at(3_000_000)));
        let t = l.truth("undoing", "k").unwrap();
        assert_eq!(t.gone_at, Some(at(5000)));
        assert_eq!(t.resurrected, Some((at(5500), at(7500))));
        assert!(!t.delete_dropped);
        for (ms, shown) in [(4999, true), (5000, false), (5499, false), (5500, true)] {
            assert_eq!(present(&l, "undoing", "k", at(ms)), shown, "{ms} ms");
        }
        for (ms, shown) in [(7499, true), (7500, false), (60_000, false)] {
            assert_eq!(present(&l, "undoing", "k", at(ms)), shown, "{ms} ms");
        }
        let t = l.truth("plain", "k").unwrap();
        assert!(!t.delete_dropped && t.resurrected.is_none() && t.gone_at.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn deleted_records_leave_the_maps_once_gone() {
        let l = Landscape::new();
        l.add_source("src", Some(1));
        l.add_replica(
            "undoing",
            "src",
            ReplicaSpec {
                resurrect_probability: 1.0,
                ..plain()
            },
        );
        l.add_replica(
            "dropping",
            "src",
            ReplicaSpec {
                delete_drop_probability: 1.0,
                ..plain()
            },
        );
        let at = |s: u64| l.start + Duration::from_secs(s);
        let held = |replica: &str| l.world().replicas[replica].records.len();
        for i in 0..100 {
            l.commit("src", &format!("k{i}"), "{}", at(0));
            l.delete("src", &format!("k{i}"), at(1));
        }
        // Gone at 3 s, back 4-7 s: still held at 6 s, so a write then purges nothing.
        l.commit("src", "x", "{}", at(6));
        assert_eq!(held("undoing"), 101);
        // From 7 s each write or delete purges a few (PURGE_BATCH), the soonest gone first.
        for i in 0..10 {
            l.commit("src", &format!("y{i}"), "{}", at(7));
        }
        assert_eq!(held("undoing"), 101 + 10 - 100, "{}", held("undoing"));
        assert_eq!(held("dropping"), 111, "a dropped delete keeps its record");
        assert!(
            l.truth("undoing", "k5").is_some(),
            "the truth outlives the record"
        );
        // Written again after its delete: a tombstone never removes the new record.
        l.commit("src", "r", "{}", at(8));
        l.delete("src", "r", at(8));
        l.commit("src", "r", "{}", at(8));
        for i in 0..10 {
            l.commit("src", &format!("z{i}"), "{}", at(100));
        }
        assert!(present(&l, "undoing", "r", at(100)));
        // Dropped deletes go with their truth, or after DROPPED_DELETE_KEPT.
        for i in 0..TRUTH_CAPACITY {
            l.commit("src", &format!("w{i}"), "{}", at(100));
        }
        assert!(l.truth("dropping", "k0").is_none());
        assert!(!l.world().replicas["dropping"].records.contains_key("k0"));
        l.delete("src", "w0", at(101));
        let late = l.start + Duration::from_secs(101) + DROPPED_DELETE_KEPT;
        assert!(present(&l, "dropping", "w0", late - Duration::from_secs(1)));
        for i in 0..10 {
            l.commit("src", &format!("v{i}"), "{}", late);
        }
        assert!(!l.world().replicas["dropping"].records.contains_key("w0"));
    }

    #[tokio::test(start_paused = true)]
    async fn version_draws_hit_updates_only_and_repeat_with_the_seed() {
        // One source per replica, as the emulator has them: a source's replicas draw in map
        // order, which no seed fixes.
        const REPLICAS: [(&str, f64, f64); 3] = [
            ("losing", 1.0, 1.0),
            ("doubling", 0.0, 1.0),
            ("mixed", 0.3, 0.3),
        ];
        let fates = |seed: u64| {
            let l = Landscape::new();
            l.add_source("losing", Some(seed));
            for (name, drop, dup) in REPLICAS {
                l.add_source(name, None);
                let spec = ReplicaSpec {
                    version_drop_probability: drop,
                    version_duplicate_probability: dup,
                    ..plain()
                };
                l.add_replica(name, name, spec);
            }
            let now = Instant::now();
            let commit = || {
                for (name, ..) in REPLICAS {
                    l.commit(name, "k", "{}", now);
                }
            };
            let fate = |r: &str| l.replica_entry(r, "k").map(|e| (e.version, e.visible_at));
            commit();
            let mut seen = vec![(fate("losing"), fate("doubling"))];
            let mut mixed = Vec::new();
            for _ in 0..40 {
                commit();
                seen.push((fate("losing"), fate("doubling")));
                mixed.push(fate("mixed").map(|(v, _)| v));
            }
            for (name, ..) in REPLICAS {
                l.delete(name, "k", now);
            }
            commit();
            seen.push((fate("losing"), fate("doubling")));
            (seen, mixed)
        };
        let (seen, mixed) = fates(11);
        let arrives = Some(Instant::now() + Duration::from_secs(2));
        let create = (
            Some((VersionFate::Once, arrives)),
            Some((VersionFate::Once, arrives)),
        );
        assert_eq!(seen[0], create, "a create is never lost nor doubled");
        assert_eq!(seen[seen.len() - 1], create, "nor one after a delete");
        for update in &seen[1..seen.len() - 1] {
            assert_eq!(
                *update,
                (
                    Some((VersionFate::Dropped, None)),
                    Some((VersionFate::Duplicated, arrives))
                )
            );
        }
        assert!(mixed.contains(&Some(VersionFate::Dropped)));
        assert!(mixed.contains(&Some(VersionFate::Duplicated)));
        assert!(mixed.contains(&Some(VersionFate::Once)));
        assert_eq!(fates(11).1, mixed, "the same seed draws the same versions");
    }

    #[test]
    fn the_truth_store_forgets_its_oldest_keys_first() {
        let l = Landscape::new();
        let spec = || ReplicaSpec::with_lag(spec(Distribution::Fixed));
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
