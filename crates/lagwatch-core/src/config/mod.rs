//! Configuration: the YAML file users write, checked before anything starts.
//!
//! Loading is two-phase. The YAML is parsed into a generic tree (so syntax errors carry a line
//! and column), then typed with `serde_path_to_error` so every error names the key path
//! (`paths[2].timeout`). Each system block is typed by its kind's own config struct, found in
//! the registry in `systems`. Semantic checks (unknown systems, unwritable sources, duplicate
//! paths, timeouts shorter than the first poll) run last. Every error is a [`ConfigError`] that
//! names the file, the key and the reason. Nothing here opens a connection.
//!
//! Errors are collected, not stopped at: each top-level key, each system, each path and the
//! conflicts are typed and checked on their own, so [`Config::check_with`] returns every error
//! of a file at once ([`ConfigErrors`]), one per block at most. A path naming a system that
//! failed is not checked further (its errors would only repeat the system's).

pub mod conflict;
pub mod duration;
pub mod limits;
pub mod platform;
pub mod poll;
pub mod reconcile;
pub mod secret;
pub mod shard;
pub mod starter;
pub mod syntax;
pub mod system;
pub mod tls;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;

pub use duration::Dur;
pub use limits::{Limits, LimitsOverride};
pub use poll::PollPolicy;
pub use secret::Secret;
pub use shard::Shard;
pub use tls::OutgoingTls;

use system::{Declared, Decode, Systems};

/// A configuration error: which file, which key, and a sentence saying why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read the file: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: not valid YAML: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}: {key}: {reason}")]
    Invalid {
        file: String,
        key: String,
        reason: String,
    },
}

impl ConfigError {
    /// The key path the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// A key path and a reason; turned into [`ConfigError::Invalid`] once the file name is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub key: String,
    pub reason: String,
}

impl Issue {
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Issue {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Every error found in one file, in the order of the blocks they are about.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The first error (there is always one).
    pub fn first(self) -> ConfigError {
        let mut errors = self.0;
        if errors.is_empty() {
            // Not made by the loader; kept total rather than panicking.
            return ConfigError::Syntax {
                file: String::new(),
                message: "no error".to_string(),
            };
        }
        errors.swap_remove(0)
    }
}

impl std::fmt::Display for ConfigErrors {
    /// One error a line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// How a file is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Read `env:`/`file:` secrets (what `run` needs); false checks their shape only
    /// (`check-config --no-resolve`, see [`secret::without_resolving`]).
    pub resolve_secrets: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            resolve_secrets: true,
        }
    }
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Where it was loaded from, for messages.
    pub file: String,
    /// Stable name of this lagwatch instance. It is written into every sentinel, so a restart
    /// (or another instance watching the same source) never deletes sentinels it does not own.
    pub instance: String,
    pub server: ServerConfig,
    /// Named systems, each typed by its kind's own config (see `systems`).
    pub systems: Systems,
    /// Each system's `limits:` (throttling pause, concurrency, request budget).
    pub limits: BTreeMap<String, Limits>,
    pub paths: Vec<PathSpec>,
    /// Conflict probes between systems linked both ways (`conflicts:`).
    pub conflicts: Vec<conflict::ConflictSpec>,
    /// Where state that must survive a restart is kept (reconciliation's remembered
    /// discrepancies); `None`: in memory only.
    pub state_dir: Option<std::path::PathBuf>,
    /// Extra trust for outgoing HTTPS (`tls.ca_files`); verification itself is always on.
    pub tls: OutgoingTls,
    /// This process's shard (`shard:` or `--shard`); 0/1, every path, unless given.
    pub shard: Shard,
    /// Paths of the file that other shards measure, taken out of `paths` by
    /// [`Config::keep_shard`]: source, target and the owning shard's index.
    pub unowned: Vec<(String, String, u32)>,
}

/// What the command line overrides of the file (`lagwatch run --instance --shard`), applied
/// again to the file on every reload.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub instance: Option<String>,
    pub shard: Option<Shard>,
}

/// Settings of the HTTP server.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address for `/metrics`, the status page and the API. `--listen` overrides it.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
}

/// One measured path, with every default resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct PathSpec {
    pub source: String,
    pub target: String,
    /// How often a sentinel is written. Paths with the same source and interval share writes.
    pub interval: Dur,
    /// How long after the write a sentinel may take before the path counts it as `timeout`.
    pub timeout: Dur,
    /// The lag the path is expected to stay under (exported for alert rules).
    pub objective: Dur,
    /// Sentinels of this path in flight at once; beyond it, writes for the path are skipped.
    pub max_in_flight: u32,
    /// Keep reading this long after the first hit, to catch replicas that lose the record again.
    pub confirm: Dur,
    /// Keep each sentinel this long after its targets resolved before deleting it.
    pub retention: Dur,
    /// Deadline of one request to the source or target.
    pub request_timeout: Dur,
    pub poll: PollPolicy,
    /// Tables compared between source and target (see `reconcile::spec`).
    pub reconcile: Vec<crate::config::reconcile::ReconcileSpec>,
    /// The guarantees the path promises beyond its objective (`contract:`).
    pub contract: Contract,
    /// How long after a sentinel's delete is acknowledged the target is watched for the row
    /// to go: the declared `contract.deletes`, else the timeout; `None` for a target kind
    /// whose reads cannot show a delete (`docs/measurement.md`, "Deletes").
    pub delete_watch: Option<Dur>,
    /// The delete of one sentinel in this many (by sequence number) is watched.
    pub delete_sample: u32,
    /// How often the source group's update canary is written and read at the target; `None`:
    /// no canary (not configured, `0s`, or the source or target cannot run one).
    pub update_interval: Option<Dur>,
    /// How often the source group writes a causal pair (a parent, then a child referencing
    /// it) that this path's target is read for; `None`: no pairs (`0s`, or the source cannot
    /// write a reference).
    pub pair_interval: Option<Dur>,
    /// What the target's reads can show, else why not (for reports).
    pub observable: Observable,
    /// The target system's `kind:` (for reports).
    pub target_kind: String,
    /// For a link replication writes in the source's transaction (dual-write while its map
    /// runs, either way): how long after the acknowledgement a sentinel may still be missing
    /// before the probe ends `halted` instead of waiting for a lag. `None`: asynchronous.
    pub sync_grace: Option<Dur>,
    /// The platform's own status read beside the canary (`platform_status:`).
    pub platform_status: Option<platform::StatusSpec>,
}

/// What a target kind's reads can show of its guarantees: `Err` says why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observable {
    /// A sentinel missing from a read after an earlier read found it (monotonic reads).
    pub regressions: Result<(), String>,
    /// A deleted sentinel gone (deletes).
    pub deletes: Result<(), String>,
    /// A child read without its parent (causal): the source must write references.
    pub causal: Result<(), String>,
}

/// What a path promises beyond its lag objective: each guarantee declared under `contract:`
/// (per path or in `defaults`), else what its target's kind promises. A measured violation of
/// a declared guarantee counts in `lagwatch_contract_violations_total`; an undeclared one is
/// only reported by its own metric. Only guarantees lagwatch measures can be declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Contract {
    /// A reader never sees an older state after a newer one: a sentinel once seen at the
    /// target is never missing from a later read.
    pub monotonic_reads: bool,
    /// A row deleted in the source is gone from the target within this, and stays gone.
    pub deletes: Option<Dur>,
    /// A record is never visible at the target before the record it references (a child
    /// before its parent).
    pub causal: bool,
    /// What the target does with a record's successive versions (measured by the update
    /// canary).
    pub updates: Option<Updates>,
}

/// `contract.updates`: the promise about a record's versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Updates {
    /// A snapshot target ends on the latest version: intermediate versions may be skipped,
    /// but every version is reached (it or a newer one shown) within the path's timeout.
    Latest,
    /// A change log: every version arrives, once. A version not shown within the path's
    /// timeout is lost, a repeated one duplicated (order is measured on sentinels).
    Every,
}

impl Updates {
    /// As the configuration spells it.
    pub fn name(self) -> &'static str {
        match self {
            Updates::Latest => "latest",
            Updates::Every => "every",
        }
    }
}

impl Contract {
    /// How many guarantees a contract can declare.
    pub const N: usize = 4;

    /// Every guarantee a contract can declare, as `lagwatch_contract_violations_total` names it.
    pub const GUARANTEES: [&'static str; Self::N] =
        ["monotonic_reads", "deletes", "causal", "updates"];

    /// The index of `monotonic_reads` in [`Contract::GUARANTEES`].
    pub const MONOTONIC_READS: usize = 0;

    /// The index of `deletes` in [`Contract::GUARANTEES`].
    pub const DELETES: usize = 1;

    /// The index of `causal` in [`Contract::GUARANTEES`].
    pub const CAUSAL: usize = 2;

    /// The index of `updates` in [`Contract::GUARANTEES`].
    pub const UPDATES: usize = 3;

    /// Whether each guarantee of [`Contract::GUARANTEES`] is declared, in that order.
    pub fn declared(&self) -> [bool; Self::N] {
        [
            self.monotonic_reads,
            self.deletes.is_some(),
            self.causal,
            self.updates.is_some(),
        ]
    }

    /// The declared guarantees in words, for `check-config` ("monotonic_reads, deletes
    /// within 10m").
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.monotonic_reads {
            out.push("monotonic_reads".to_string());
        }
        if let Some(d) = self.deletes {
            out.push(format!("deletes within {d}"));
        }
        if self.causal {
            out.push("causal".to_string());
        }
        if let Some(u) = self.updates {
            out.push(format!("updates: {}", u.name()));
        }
        out
    }
}

/// `contract:` as written.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContract {
    /// The lag objective, as `objective` (one of the two, not both).
    visibility: Option<Dur>,
    monotonic_reads: Option<bool>,
    deletes: Option<Dur>,
    causal: Option<bool>,
    updates: Option<Updates>,
}

/// Path settings that may be given per path or once under `defaults`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PathSettings {
    interval: Option<Dur>,
    timeout: Option<Dur>,
    objective: Option<Dur>,
    max_in_flight: Option<u32>,
    confirm: Option<Dur>,
    retention: Option<Dur>,
    request_timeout: Option<Dur>,
    poll: Option<PollSettings>,
    contract: Option<RawContract>,
    delete_sample: Option<u32>,
    update_interval: Option<Dur>,
    pair_interval: Option<Dur>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PollSettings {
    first: Option<Dur>,
    factor: Option<f64>,
    max_gap: Option<Dur>,
    jitter: Option<f64>,
    precision: Option<f64>,
}

/// A path as written; serde cannot combine `flatten` with `deny_unknown_fields`, so the
/// settings are repeated here and moved into [`PathSettings`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPath {
    source: String,
    target: String,
    interval: Option<Dur>,
    timeout: Option<Dur>,
    objective: Option<Dur>,
    max_in_flight: Option<u32>,
    confirm: Option<Dur>,
    retention: Option<Dur>,
    request_timeout: Option<Dur>,
    poll: Option<PollSettings>,
    contract: Option<RawContract>,
    delete_sample: Option<u32>,
    update_interval: Option<Dur>,
    pair_interval: Option<Dur>,
    #[serde(default)]
    reconcile: Vec<crate::config::reconcile::RawReconcile>,
    /// Typed by [`platform::resolve`], which knows which system offers the surface.
    #[serde(default)]
    platform_status: Option<serde_json::Value>,
}

impl RawPath {
    fn settings(&self) -> PathSettings {
        PathSettings {
            interval: self.interval,
            timeout: self.timeout,
            objective: self.objective,
            max_in_flight: self.max_in_flight,
            confirm: self.confirm,
            retention: self.retention,
            request_timeout: self.request_timeout,
            poll: self.poll.clone(),
            contract: self.contract,
            delete_sample: self.delete_sample,
            update_interval: self.update_interval,
            pair_interval: self.pair_interval,
        }
    }
}

/// The top level as written: each key kept as its YAML tree (`Some` when present, even
/// empty) and typed on its own, so that an error in one does not hide those in another.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default, deserialize_with = "present")]
    instance: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    server: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    defaults: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    systems: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    paths: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    conflicts: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    state_dir: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    tls: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    shard: Option<serde_json::Value>,
}

/// A key that is there, whatever its value (an empty value included).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// The keys allowed at the top level of a file, as serde lists them.
fn top_level_keys() -> Vec<String> {
    allowed_keys::<RawConfig>()
}

/// The keys a strictly typed block `T` allows: serde lists them when it meets an unknown one.
fn allowed_keys<T: DeserializeOwned>() -> Vec<String> {
    let probe = serde_json::json!({ "\u{1}": null });
    match serde_json::from_value::<T>(probe) {
        Err(e) => quoted_list(&e.to_string())
            .map(|l| l.split(", ").map(str::to_string).collect())
            .unwrap_or_default(),
        Ok(_) => Vec::new(),
    }
}

/// Built-in path defaults; `defaults:` in the file overrides them, a path overrides both.
pub mod default {
    use super::Dur;
    pub const INTERVAL: Dur = Dur::secs(30);
    pub const TIMEOUT: Dur = Dur::secs(600);
    pub const OBJECTIVE: Dur = Dur::secs(300);
    pub const MAX_IN_FLIGHT: u32 = 10;
    pub const CONFIRM: Dur = Dur::secs(0);
    pub const RETENTION: Dur = Dur::secs(0);
    /// One delete in four is watched (BENCHMARKS.md, "API cost").
    pub const DELETE_SAMPLE: u32 = 4;
    /// A causal pair every five minutes per source group (BENCHMARKS.md, "API cost").
    pub const PAIR_INTERVAL: Dur = Dur::secs(300);
    /// An update canary every 15 seconds per source group, where the source can write a
    /// record again and the target shows its versions: under most paths' lag, and with the
    /// other consistency measures under 10 % of Dataverse's budget (BENCHMARKS.md).
    pub const UPDATE_INTERVAL: Dur = Dur::secs(15);
    pub const REQUEST_TIMEOUT: Dur = Dur::secs(30);
}

impl Config {
    /// Loads and validates a configuration file, typing each system with `kinds` (the
    /// registry of kinds; `Config::load` in `systems` passes lagwatch's own).
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, the key path and the reason.
    pub fn load_with(path: &Path, kinds: Decode<'_>) -> Result<Config, ConfigError> {
        Config::load_all_with(path, kinds, LoadOptions::default()).map_err(ConfigErrors::first)
    }

    /// Loads and validates a configuration file as [`Config::load_with`], returning every
    /// error of the file.
    ///
    /// # Errors
    /// [`ConfigErrors`]: each names the file, the key path and the reason.
    pub fn load_all_with(
        path: &Path,
        kinds: Decode<'_>,
        options: LoadOptions,
    ) -> Result<Config, ConfigErrors> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| {
            ConfigErrors(vec![ConfigError::Read {
                file: file.clone(),
                source,
            }])
        })?;
        Config::check_with(&file, &text, kinds, options)
    }

    /// Validates configuration text; `file` is only used in messages.
    ///
    /// # Errors
    /// As [`Config::load_with`].
    pub fn from_yaml_with(
        file: &str,
        text: &str,
        kinds: Decode<'_>,
    ) -> Result<Config, ConfigError> {
        Config::check_with(file, text, kinds, LoadOptions::default()).map_err(ConfigErrors::first)
    }

    /// Validates configuration text, returning every error; `file` is only used in messages.
    ///
    /// # Errors
    /// As [`Config::load_all_with`].
    pub fn check_with(
        file: &str,
        text: &str,
        kinds: Decode<'_>,
        options: LoadOptions,
    ) -> Result<Config, ConfigErrors> {
        let tree: serde_json::Value = serde_saphyr::from_str(text).map_err(|e| {
            ConfigErrors(vec![ConfigError::Syntax {
                file: file.to_string(),
                message: syntax::message(&e, text),
            }])
        })?;
        let load = || from_tree(tree, kinds);
        let loaded = if options.resolve_secrets {
            load()
        } else {
            secret::without_resolving(load)
        };
        loaded.map_err(|issues| {
            ConfigErrors(
                issues
                    .into_iter()
                    .map(|issue| ConfigError::Invalid {
                        file: file.to_string(),
                        key: issue.key,
                        reason: issue.reason,
                    })
                    .collect(),
            )
        })
    }

    /// The longest timeout of any path from `source`: the start-up sweep deletes only own
    /// sentinels older than this, so it never races a probe still in flight.
    pub fn longest_timeout(&self, source: &str) -> Option<Dur> {
        self.paths
            .iter()
            .filter(|p| p.source == source)
            .map(|p| p.timeout)
            .max()
    }

    /// Applies what the command line overrides (`--instance`, `--shard`).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `--instance` for a name that is not one.
    pub fn apply(&mut self, overrides: &Overrides) -> Result<(), ConfigError> {
        if let Some(name) = &overrides.instance {
            check_instance(name).map_err(|reason| ConfigError::Invalid {
                file: "command line".to_string(),
                key: "--instance".to_string(),
                reason,
            })?;
            self.instance.clone_from(name);
        }
        if let Some(shard) = overrides.shard {
            self.shard = shard;
        }
        Ok(())
    }

    /// Takes the paths other shards own out of `paths` (into `unowned`) and the conflict
    /// pairs they own out of `conflicts`; with one shard, nothing. Idempotent.
    pub fn keep_shard(&mut self) {
        let shard = self.shard;
        let (own, other): (Vec<PathSpec>, Vec<PathSpec>) = std::mem::take(&mut self.paths)
            .into_iter()
            .partition(|p| shard.owns(&p.source, &p.target));
        self.paths = own;
        self.unowned.extend(other.into_iter().map(|p| {
            let owner = Shard::owner_of(shard.total, &p.source, &p.target);
            (p.source, p.target, owner)
        }));
        self.conflicts.retain(|c| shard.owns(&c.a, &c.b));
    }

    /// A human-readable rendering of the resolved configuration (secrets stay redacted).
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "instance: {}", self.instance);
        if self.shard.total > 1 {
            let _ = writeln!(
                out,
                "shard: {} (measures {} of {} paths)",
                self.shard,
                self.paths.len(),
                self.paths.len() + self.unowned.len()
            );
            for (source, target, owner) in &self.unowned {
                let _ = writeln!(out, "  {source} -> {target}: owned by shard {owner}");
            }
        }
        if let Some(listen) = self.server.listen {
            let _ = writeln!(out, "listen: {listen}");
        }
        let _ = writeln!(out, "systems ({}):", self.systems.len());
        for (name, sys) in &self.systems {
            let mut roles = Vec::new();
            if sys.can_write().is_ok() {
                roles.push("source");
            }
            if sys.can_read().is_ok() {
                roles.push("target");
            }
            let _ = writeln!(
                out,
                "  {name}: kind {} ({}): {}",
                sys.kind(),
                roles.join(", "),
                sys.describe()
            );
            if let Some(l) = self.limits.get(name) {
                let _ = writeln!(
                    out,
                    "    limits: {} in flight, {} requests per {}, {} pause after a 429 without Retry-After, at most {}",
                    l.max_concurrency, l.requests, l.per, l.default_retry_after, l.max_retry_after
                );
            }
        }
        let _ = writeln!(out, "paths ({}):", self.paths.len());
        for p in &self.paths {
            let _ = writeln!(
                out,
                "  {} -> {}: every {}, timeout {}, objective {}, max {} in flight, confirm {}, retention {}, first poll {}, poll factor {}, max gap {}",
                p.source,
                p.target,
                p.interval,
                p.timeout,
                p.objective,
                p.max_in_flight,
                p.confirm,
                p.retention,
                Dur(p.poll.first),
                p.poll.factor,
                Dur(p.poll.max_gap),
            );
            let declared = p.contract.describe();
            if !declared.is_empty() {
                let _ = writeln!(out, "    contract: {}", declared.join(", "));
            }
            let mut measures = Vec::new();
            if let Some(d) = p.delete_watch {
                measures.push(format!(
                    "deletes watched for {d} (one in {})",
                    p.delete_sample
                ));
            }
            if let Some(d) = p.update_interval {
                measures.push(format!("update canary every {d}"));
            }
            if let Some(d) = p.pair_interval {
                measures.push(format!("causal pairs every {d}"));
            }
            if !measures.is_empty() {
                let _ = writeln!(out, "    measures: {}", measures.join(", "));
            }
            for r in &p.reconcile {
                let side = |s: &crate::config::reconcile::Side| {
                    format!(
                        "{}key [{}]{}{}",
                        s.table
                            .as_deref()
                            .map(|t| format!("{t}: "))
                            .unwrap_or_default(),
                        s.key.join(", "),
                        s.version
                            .as_deref()
                            .map(|v| format!(", version {v}"))
                            .unwrap_or_default(),
                        if s.compare.is_empty() {
                            String::new()
                        } else {
                            format!(", compare [{}]", s.compare.join(", "))
                        }
                    )
                };
                let _ = writeln!(
                    out,
                    "    reconcile {}: every {}, {}, settle floor {}; source {}; target {}",
                    r.name,
                    r.interval,
                    r.changed_within.map_or_else(
                        || "whole table".to_string(),
                        |w| format!("rows changed within {w}")
                    ),
                    r.settle_floor,
                    side(&r.source),
                    side(&r.target),
                );
            }
        }
        if !self.conflicts.is_empty() {
            let _ = writeln!(out, "conflicts ({}):", self.conflicts.len());
            for c in &self.conflicts {
                let _ = writeln!(
                    out,
                    "  {} <-> {}: policy {}, every {}, spread {}, timeout {}",
                    c.a,
                    c.b,
                    c.policy.describe(),
                    c.interval,
                    c.spread,
                    c.timeout
                );
            }
        }
        if let Some(dir) = &self.state_dir {
            let _ = writeln!(out, "state_dir: {}", dir.display());
        }
        if let Some(tls) = self.tls.describe() {
            let _ = writeln!(out, "{tls}");
        }
        let mut groups: Vec<(&str, Dur, Vec<&str>)> = Vec::new();
        for p in &self.paths {
            match groups
                .iter_mut()
                .find(|(s, i, _)| *s == p.source && *i == p.interval)
            {
                Some((_, _, targets)) => targets.push(&p.target),
                None => groups.push((&p.source, p.interval, vec![&p.target])),
            }
        }
        let _ = writeln!(out, "sentinel writes ({}):", groups.len());
        for (source, interval, targets) in groups {
            let _ = writeln!(out, "  {source} every {interval} -> {}", targets.join(", "));
        }
        out
    }
}

/// Types a sub-tree with key-path tracking; `prefix` is the path of the sub-tree itself.
pub fn decode<T: DeserializeOwned>(prefix: &str, value: serde_json::Value) -> Result<T, Issue> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.inner().to_string();
        let path = e.path().to_string();
        humanize(prefix, &path, &inner)
    })
}

/// Joins a key prefix and a relative path; empty means the top level of the file.
fn join_key(prefix: &str, path: &str) -> String {
    let path = if path == "." { "" } else { path };
    match (prefix.is_empty(), path.is_empty()) {
        (_, true) => prefix.to_string(),
        (true, false) => path.to_string(),
        (false, false) if path.starts_with('[') => format!("{prefix}{path}"),
        (false, false) => format!("{prefix}.{path}"),
    }
}

/// Rewrites serde's messages into sentences for people who write YAML, not Rust.
fn humanize(prefix: &str, path: &str, message: &str) -> Issue {
    let key = join_key(prefix, path);
    let (key, reason) = if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.trim_end_matches('`');
        (join_key(&key, field), "required key is missing".to_string())
    } else if message.starts_with("unknown field `") {
        // serde_path_to_error already put the unknown key itself into the path.
        let reason = match quoted_list(message) {
            Some(list) => format!("unknown key; the keys allowed here are: {list}"),
            None => "unknown key; no keys are allowed here".to_string(),
        };
        (key, reason)
    } else if let Some(rest) = message.strip_prefix("unknown variant `") {
        let value = rest.split('`').next().unwrap_or_default();
        let reason = match quoted_list(message) {
            Some(list) => format!("unknown value \"{value}\"; the values allowed here are: {list}"),
            None => format!("unknown value \"{value}\""),
        };
        (key, reason)
    } else if let Some(rest) = message.strip_prefix("invalid type: ") {
        (key, wrong_type(rest, false))
    } else if let Some(rest) = message.strip_prefix("invalid value: ") {
        (key, wrong_type(rest, true))
    } else if message == "invalid socket address syntax" {
        (
            key,
            "invalid address: write an IP address and a port, such as 0.0.0.0:9464 (host names are not accepted)".to_string(),
        )
    } else {
        (key, message.to_string())
    };
    let key = if key.is_empty() {
        "(top level)".to_string()
    } else {
        key
    };
    Issue::new(key, reason)
}

/// The back-quoted names after "expected" in a serde message (`a`, `a` or `b`, one of `a`,
/// `b`, `c`), as a plain comma-separated list.
fn quoted_list(message: &str) -> Option<String> {
    let (_, expected) = message.split_once(", expected ")?;
    let names: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    (!names.is_empty()).then(|| names.join(", "))
}

/// "integer `30`, expected a string" -> "expected a string, found the number 30".
fn wrong_type(rest: &str, out_of_range: bool) -> String {
    let Some((found, expected)) = rest.split_once(", expected ") else {
        return rest.to_string();
    };
    let found_scalar = ["integer ", "floating point ", "boolean "]
        .iter()
        .any(|p| found.starts_with(p));
    let hint = if expected == "a string" && found_scalar {
        " (put it in quotes to use it as text)"
    } else {
        ""
    };
    format!(
        "expected {}, found {}{hint}",
        expected_phrase(expected, out_of_range),
        found_phrase(found)
    )
}

/// Says what serde's `Unexpected` describes in YAML words.
fn found_phrase(found: &str) -> String {
    let inner = |s: &str| s.trim_matches('`').to_string();
    if let Some(v) = found.strip_prefix("integer ") {
        format!("the number {}", inner(v))
    } else if let Some(v) = found.strip_prefix("floating point ") {
        format!("the number {}", inner(v))
    } else if let Some(v) = found.strip_prefix("boolean ") {
        inner(v)
    } else if let Some(v) = found.strip_prefix("string ") {
        format!("the text {v}")
    } else {
        match found {
            "unit value" | "null" => "an empty value".to_string(),
            "sequence" => "a list".to_string(),
            "map" => "a mapping".to_string(),
            other => other.to_string(),
        }
    }
}

/// Says what serde's `Expected` (often a Rust type name) means in YAML words.
fn expected_phrase(expected: &str, out_of_range: bool) -> String {
    let whole = |max: &str| {
        if out_of_range {
            format!("a whole number from 0 to {max}")
        } else {
            "a whole number".to_string()
        }
    };
    match expected {
        "u8" => whole("255"),
        "u16" => whole("65535"),
        "u32" => whole("4294967295"),
        "u64" | "usize" => whole("18446744073709551615"),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".to_string(),
        "f32" | "f64" => "a number".to_string(),
        "a boolean" => "true or false".to_string(),
        "a sequence" => "a list".to_string(),
        "a map" | "map" => "a mapping".to_string(),
        // serde_json's message for an enum given as something other than a name.
        "string or map" => "a string".to_string(),
        "socket address" => "an IP address and a port, such as 0.0.0.0:9464".to_string(),
        other if other.starts_with("struct ") => "a mapping".to_string(),
        other if other.starts_with("enum ") => "a string".to_string(),
        other => other.to_string(),
    }
}

/// Checks an instance name (`instance:` or `--instance`): why it is not one, if it is not.
///
/// # Errors
/// A sentence naming the rule.
pub fn check_instance(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{name}\" is not a valid instance name: use 1 to 32 lowercase letters, digits or dashes; it is written into every sentinel and must stay the same across restarts"
        ))
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Types and checks the whole file, collecting an error per block rather than stopping at the
/// first.
fn from_tree(tree: serde_json::Value, kinds: Decode<'_>) -> Result<Config, Vec<Issue>> {
    if !tree.is_object() {
        return Err(vec![Issue::new(
            "(top level)",
            "the file must be a mapping with the keys instance, systems and paths",
        )]);
    }
    let mut issues = Vec::new();
    let raw: RawConfig = match decode("", tree.clone()) {
        Ok(raw) => raw,
        Err(issue) => {
            // Unknown top-level keys: every one of them, and the known ones still checked.
            let serde_json::Value::Object(mut map) = tree else {
                return Err(vec![issue]);
            };
            let known = top_level_keys();
            let unknown: Vec<String> = map.keys().filter(|k| !known.contains(k)).cloned().collect();
            if unknown.is_empty() {
                return Err(vec![issue]);
            }
            for k in unknown {
                map.remove(&k);
                issues.push(misplaced_top_level(&k, &known));
            }
            match decode("", serde_json::Value::Object(map)) {
                Ok(raw) => raw,
                Err(issue) => {
                    issues.push(issue);
                    return Err(issues);
                }
            }
        }
    };
    let mut note = |issue: Issue| issues.push(issue);
    let required = |key: &str, v: &Option<serde_json::Value>| -> Result<serde_json::Value, Issue> {
        v.clone()
            .ok_or_else(|| Issue::new(key, "required key is missing"))
    };

    let instance: Option<String> =
        match required("instance", &raw.instance).and_then(|v| decode::<String>("instance", v)) {
            Ok(i) => Some(i),
            Err(e) => {
                note(e);
                None
            }
        };
    if let Some(instance) = &instance
        && let Err(why) = check_instance(instance)
    {
        note(Issue::new("instance", why));
    }
    let shard: Shard = match raw.shard {
        None => Shard::default(),
        Some(v) => decode::<shard::RawShard>("shard", v)
            .and_then(Shard::from_raw)
            .map_err(&mut note)
            .unwrap_or_default(),
    };
    let server: ServerConfig = optional(&mut note, "server", raw.server);
    let defaults: PathSettings = optional(&mut note, "defaults", raw.defaults);
    let state_dir: Option<std::path::PathBuf> = optional(&mut note, "state_dir", raw.state_dir);
    let raw_tls: Option<tls::RawTls> = match raw.tls {
        None => Some(tls::RawTls::default()),
        Some(v) => decode("tls", v).map_err(&mut note).ok(),
    };
    let tls = raw_tls.and_then(|t| OutgoingTls::load(t).map_err(&mut note).ok());

    // Systems, each on its own; the names of those that failed, so that paths naming them
    // are not reported again.
    let mut systems = BTreeMap::new();
    let mut limits = BTreeMap::new();
    let mut failed: Vec<String> = Vec::new();
    let raw_systems: Option<BTreeMap<String, serde_json::Value>> =
        match required("systems", &raw.systems).and_then(|v| decode("systems", v)) {
            Ok(s) => Some(s),
            Err(e) => {
                note(e);
                None
            }
        };
    if let Some(raw_systems) = raw_systems {
        if raw_systems.is_empty() {
            note(Issue::new("systems", "at least one system is required"));
        }
        for (name, value) in raw_systems {
            let key = format!("systems.{name}");
            if !valid_name(&name) {
                note(Issue::new(
                    key,
                    "system names are metric labels: use 1 to 64 letters, digits, '-' or '_'",
                ));
                failed.push(name);
                continue;
            }
            if let Some(issue) = misindented_system(&name, &value) {
                note(issue);
                failed.push(name);
                continue;
            }
            match kinds(&key, value) {
                Ok((spec, system_limits)) => {
                    limits.insert(name.clone(), system_limits);
                    systems.insert(name, spec);
                }
                Err(issue) => {
                    note(issue);
                    failed.push(name);
                }
            }
        }
    }
    // An error that names a system which failed to load only repeats that system's error.
    let about_failed = |issue: &Issue| {
        failed
            .iter()
            .any(|f| issue.reason.contains(&format!("\"{f}\"")))
    };
    for (name, spec) in &systems {
        if let Err(issue) = spec.validate(name, &systems)
            && !about_failed(&issue)
        {
            note(issue);
        }
    }

    let mut paths = Vec::new();
    let raw_paths: Option<Vec<serde_json::Value>> =
        match required("paths", &raw.paths).and_then(|v| decode("paths", v)) {
            Ok(p) => Some(p),
            Err(e) => {
                note(e);
                None
            }
        };
    if let Some(raw_paths) = raw_paths {
        if raw_paths.is_empty() {
            note(Issue::new("paths", "at least one path is required"));
        }
        let mut seen: HashMap<(String, String), usize> = HashMap::new();
        for (i, value) in raw_paths.into_iter().enumerate() {
            let key = format!("paths[{i}]");
            let raw_path: RawPath = match decode(&key, value) {
                Ok(p) => p,
                Err(e) => {
                    note(e);
                    continue;
                }
            };
            if failed.contains(&raw_path.source) || failed.contains(&raw_path.target) {
                continue;
            }
            let spec = match resolve_path(&key, raw_path, &defaults, &systems) {
                Ok(spec) => spec,
                Err(e) => {
                    note(e);
                    continue;
                }
            };
            if let Some(first) = seen.insert((spec.source.clone(), spec.target.clone()), i) {
                note(Issue::new(
                    key,
                    format!(
                        "duplicate path {} -> {}: paths[{first}] already measures it",
                        spec.source, spec.target
                    ),
                ));
                continue;
            }
            paths.push(spec);
        }
    }
    let raw_conflicts: Vec<conflict::RawConflict> = optional(&mut note, "conflicts", raw.conflicts);
    let conflicts = conflict::resolve(raw_conflicts, &systems)
        .map_err(|e| {
            if !about_failed(&e) {
                note(e);
            }
        })
        .unwrap_or_default();

    match (instance, tls) {
        (Some(instance), Some(tls)) if issues.is_empty() => Ok(Config {
            file: String::new(),
            instance,
            server,
            systems,
            limits,
            paths,
            conflicts,
            state_dir,
            tls,
            shard,
            unowned: Vec::new(),
        }),
        _ => Err(issues),
    }
}

/// A top-level block that may be absent: its default then, and when it does not type, its
/// error noted and the default used so that the rest is still checked.
fn optional<T: DeserializeOwned + Default>(
    note: &mut impl FnMut(Issue),
    key: &str,
    value: Option<serde_json::Value>,
) -> T {
    match value {
        None => T::default(),
        Some(v) => decode(key, v).unwrap_or_else(|e| {
            note(e);
            T::default()
        }),
    }
}

/// The error for an unknown top-level key `k`: the allowed keys, and where `k` belongs when
/// it is a key of a path or of a system (a block indented too little).
fn misplaced_top_level(k: &str, known: &[String]) -> Issue {
    let mut reason = format!(
        "unknown key; the keys allowed here are: {}",
        known.join(", ")
    );
    if let Some(blocks) = owner_of(k, "the top level") {
        let _ = write!(
            reason,
            " (`{k}` is a key of {blocks}: the block looks mis-indented)"
        );
    }
    Issue::new(k, reason)
}

/// Which blocks of the file other than `here` (and other than a system) have a key named
/// `k`, for messages about a key found where it does not belong.
fn owner_of(k: &str, here: &str) -> Option<String> {
    let blocks: [(&'static str, Vec<String>); 4] = [
        ("the top level", top_level_keys()),
        ("a path (under paths:)", allowed_keys::<RawPath>()),
        ("defaults", allowed_keys::<PathSettings>()),
        (
            "poll (of a path or defaults)",
            allowed_keys::<PollSettings>(),
        ),
    ];
    let owners: Vec<&str> = blocks
        .iter()
        .filter(|(block, keys)| *block != here && keys.iter().any(|x| x == k))
        .map(|(block, _)| *block)
        .collect();
    (!owners.is_empty()).then(|| owners.join(" and of "))
}

/// A "system" under `systems:` that is no system but a key of another block, indented one
/// level too little (a path's `interval`, a `poll:`): told by its name being such a key while
/// its value has no `kind`. Keys of system kinds (a stray `fields:`) are told by the registry,
/// which knows the kinds.
fn misindented_system(name: &str, value: &serde_json::Value) -> Option<Issue> {
    let has_kind = value.as_object().is_some_and(|m| m.contains_key("kind"));
    if has_kind {
        return None;
    }
    let block = owner_of(name, "systems")?;
    Some(Issue::new(
        format!("systems.{name}"),
        format!(
            "looks mis-indented: `{name}` is a key of {block}, not a system (a system has a kind); indent it under the block it belongs to"
        ),
    ))
}

/// Chooses a setting from the path, then `defaults`, then the built-in value, and remembers
/// which key it came from so an error names the line the user must edit.
fn pick<T: Copy>(
    (key, defaults_key): (&str, &str),
    name: &str,
    own: Option<T>,
    defaults: Option<T>,
    builtin: T,
) -> (T, String) {
    given((key, defaults_key), name, own, defaults)
        .unwrap_or_else(|| (builtin, format!("{key}.{name}")))
}

/// `name` as the path or `defaults` gives it, with the key that gave it (for messages about
/// it); `None` when neither does.
fn given<T: Copy>(
    (key, defaults_key): (&str, &str),
    name: &str,
    own: Option<T>,
    defaults: Option<T>,
) -> Option<(T, String)> {
    match (own, defaults) {
        (Some(v), _) => Some((v, format!("{key}.{name}"))),
        (None, Some(v)) => Some((v, format!("{defaults_key}.{name}"))),
        (None, None) => None,
    }
}

fn resolve_path(
    key: &str,
    raw: RawPath,
    defaults: &PathSettings,
    systems: &Systems,
) -> Result<PathSpec, Issue> {
    let known = || systems.keys().cloned().collect::<Vec<_>>().join(", ");
    let source = systems.get(&raw.source).ok_or_else(|| {
        Issue::new(
            format!("{key}.source"),
            format!(
                "unknown system \"{}\"; the systems defined are: {}",
                raw.source,
                known()
            ),
        )
    })?;
    let target = systems.get(&raw.target).ok_or_else(|| {
        Issue::new(
            format!("{key}.target"),
            format!(
                "unknown system \"{}\"; the systems defined are: {}",
                raw.target,
                known()
            ),
        )
    })?;
    if raw.source == raw.target {
        return Err(Issue::new(
            format!("{key}.target"),
            "a path needs two different systems; the source's own read-back is checked on every write already",
        ));
    }
    source.can_write().map_err(|why| {
        Issue::new(
            format!("{key}.source"),
            format!(
                "system \"{}\" (kind {}) cannot be a source: {why}",
                raw.source,
                source.kind()
            ),
        )
    })?;
    target.can_read().map_err(|why| {
        Issue::new(
            format!("{key}.target"),
            format!(
                "system \"{}\" (kind {}) cannot be a target: {why}",
                raw.target,
                target.kind()
            ),
        )
    })?;

    let own = &raw.settings();
    let keys = (key, "defaults");
    let (interval, interval_key) = pick(
        keys,
        "interval",
        own.interval,
        defaults.interval,
        default::INTERVAL,
    );
    let (timeout, timeout_key) = pick(
        keys,
        "timeout",
        own.timeout,
        defaults.timeout,
        default::TIMEOUT,
    );
    let own_contract = own.contract.unwrap_or_default();
    let defaults_contract = defaults.contract.unwrap_or_default();
    for (settings, contract, at) in [
        (own, own_contract, key),
        (defaults, defaults_contract, "defaults"),
    ] {
        if settings.objective.is_some() && contract.visibility.is_some() {
            return Err(Issue::new(
                format!("{at}.contract.visibility"),
                "the objective is given twice: as objective and as contract.visibility; keep one",
            ));
        }
    }
    let (objective, objective_key) = match (
        own.objective,
        own_contract.visibility,
        defaults.objective,
        defaults_contract.visibility,
    ) {
        (Some(v), ..) => (v, format!("{key}.objective")),
        (None, Some(v), ..) => (v, format!("{key}.contract.visibility")),
        (None, None, Some(v), _) => (v, "defaults.objective".to_string()),
        (None, None, None, Some(v)) => (v, "defaults.contract.visibility".to_string()),
        (None, None, None, None) => (default::OBJECTIVE, format!("{key}.objective")),
    };
    let contract_keys = (&*format!("{key}.contract"), "defaults.contract");
    let (monotonic_reads, _) = pick(
        contract_keys,
        "monotonic_reads",
        own_contract.monotonic_reads,
        defaults_contract.monotonic_reads,
        target.monotonic_reads(),
    );
    let deletes = given(
        contract_keys,
        "deletes",
        own_contract.deletes,
        defaults_contract.deletes,
    );
    let observes_deletes = target.observes_deletes();
    let (delete_sample, sample_key) = pick(
        keys,
        "delete_sample",
        own.delete_sample,
        defaults.delete_sample,
        default::DELETE_SAMPLE,
    );
    if delete_sample == 0 {
        return Err(Issue::new(
            sample_key,
            "delete_sample must be at least 1 (1: every sentinel's delete is watched, 4: one in four)",
        ));
    }
    let watch_deletes = observes_deletes.is_ok();
    let update_interval = match (own.update_interval, defaults.update_interval) {
        (Some(d), _) if !d.get().is_zero() => {
            if let Err(why) = source.can_update() {
                return Err(Issue::new(
                    format!("{key}.update_interval"),
                    format!(
                        "system \"{}\" (kind {}) cannot run an update canary: {why}; leave update_interval out",
                        raw.source,
                        source.kind()
                    ),
                ));
            }
            if let Err(why) = target.shows_versions() {
                return Err(Issue::new(
                    format!("{key}.update_interval"),
                    format!(
                        "system \"{}\" (kind {}) cannot show a canary's newer versions: {why}; leave update_interval out",
                        raw.target,
                        target.kind()
                    ),
                ));
            }
            Some(d)
        }
        (Some(_), _) => None,
        // From defaults (or the default): where the source and target can run one.
        (None, d) => {
            let d = d.unwrap_or(default::UPDATE_INTERVAL);
            (!d.get().is_zero() && source.can_update().is_ok() && target.shows_versions().is_ok())
                .then_some(d)
        }
    };
    let (pair_interval, causal) = resolve_pairs(key, &raw, own, defaults, source, target)?;
    let updates = given(
        contract_keys,
        "updates",
        own_contract.updates,
        defaults_contract.updates,
    );
    if let Some((u, at)) = &updates {
        if *u == Updates::Every
            && let Err(why) = target.keeps_versions()
        {
            return Err(Issue::new(
                at.clone(),
                format!(
                    "updates: every (a change log: every version arrives once) cannot be measured on system \"{}\" (kind {}): {why}; declare updates: latest, or leave it out",
                    raw.target,
                    target.kind()
                ),
            ));
        }
        if update_interval.is_none() {
            let which = u.name();
            return Err(Issue::new(
                at.clone(),
                format!(
                    "updates: {which} is measured by the update canary, which this path does not run; give it an update_interval (a source that can write a record again, a target that returns its content)"
                ),
            ));
        }
    }
    if let Some((d, at)) = &deletes {
        if d.get().is_zero() {
            return Err(Issue::new(
                at.clone(),
                "a delete cannot be gone within 0s; give how long the target may take",
            ));
        }
        if let Err(why) = &observes_deletes {
            let inherited = if at.starts_with("defaults") {
                format!(" (inherited by {key}; declare it per path instead)")
            } else {
                String::new()
            };
            return Err(Issue::new(
                at.clone(),
                format!(
                    "system \"{}\" (kind {}) cannot show that a delete arrived: {why}{inherited}",
                    raw.target,
                    target.kind()
                ),
            ));
        }
    }
    let (max_in_flight, max_key) = pick(
        keys,
        "max_in_flight",
        own.max_in_flight,
        defaults.max_in_flight,
        default::MAX_IN_FLIGHT,
    );
    let (confirm, _) = pick(
        keys,
        "confirm",
        own.confirm,
        defaults.confirm,
        default::CONFIRM,
    );
    let (retention, _) = pick(
        keys,
        "retention",
        own.retention,
        defaults.retention,
        default::RETENTION,
    );
    let (request_timeout, request_timeout_key) = pick(
        keys,
        "request_timeout",
        own.request_timeout,
        defaults.request_timeout,
        default::REQUEST_TIMEOUT,
    );
    let poll = resolve_poll(key, own.poll.as_ref(), defaults.poll.as_ref())?;

    if interval.get().is_zero() {
        return Err(Issue::new(
            interval_key,
            "the interval must be longer than 0s",
        ));
    }
    if objective.get().is_zero() {
        return Err(Issue::new(
            objective_key,
            "the objective must be longer than 0s",
        ));
    }
    if request_timeout.get().is_zero() {
        return Err(Issue::new(
            request_timeout_key,
            "the request timeout must be longer than 0s",
        ));
    }
    if max_in_flight == 0 {
        return Err(Issue::new(
            max_key,
            "max_in_flight must be at least 1, or the path never probes",
        ));
    }
    if timeout.get() <= poll.first {
        return Err(Issue::new(
            timeout_key,
            format!(
                "the timeout ({timeout}) must be longer than the first poll ({}), or no sentinel is ever read",
                Dur(poll.first)
            ),
        ));
    }
    // The grace is the dual-written side's: the target (Dataverse → F&O) or the source
    // (F&O → Dataverse).
    let sync_grace = match (
        target.synchronous_within(),
        source.dual_writes_to(target.kind()),
    ) {
        (Some(g), _) => Some((g, raw.target.clone())),
        (None, Some(g)) => Some((g, raw.source.clone())),
        (None, None) => None,
    };
    if let Some((grace, system)) = &sync_grace
        && timeout.get() <= *grace
    {
        return Err(Issue::new(
            timeout_key,
            format!(
                "the timeout ({timeout}) must be longer than the sync_grace of system \"{system}\" ({}), or a stopped replication is reported as a timeout instead of halted",
                Dur(*grace)
            ),
        ));
    }
    if objective > timeout {
        return Err(Issue::new(
            objective_key,
            format!(
                "the objective ({objective}) is longer than the timeout ({timeout}): lags above the timeout are never measured"
            ),
        ));
    }
    let mut reconcile: Vec<crate::config::reconcile::ReconcileSpec> = Vec::new();
    for (j, r) in raw.reconcile.into_iter().enumerate() {
        let rkey = format!("{key}.reconcile[{j}]");
        let spec = r.validate(&rkey, &raw.target)?;
        if reconcile.iter().any(|o| o.name == spec.name) {
            return Err(Issue::new(
                format!("{rkey}.name"),
                format!(
                    "another reconciliation of this path is already named \"{}\"; give each a distinct name",
                    spec.name
                ),
            ));
        }
        for (side, system) in [("source", &raw.source), ("target", &raw.target)] {
            if let Some(kind) = systems.get(system)
                && let Err(why) = kind.can_list()
            {
                return Err(Issue::new(
                    format!("{rkey}.{side}"),
                    format!(
                        "system \"{system}\" (kind {}) cannot be reconciled: {why}",
                        kind.kind()
                    ),
                ));
            }
        }
        reconcile.push(spec);
    }
    let platform_status = raw
        .platform_status
        .map(|v| {
            platform::resolve(
                key,
                v,
                (&raw.source, source.status_surfaces()),
                (&raw.target, target.status_surfaces()),
            )
        })
        .transpose()?;
    Ok(PathSpec {
        platform_status,
        reconcile,
        source: raw.source,
        target: raw.target,
        interval,
        timeout,
        objective,
        max_in_flight,
        confirm,
        retention,
        request_timeout,
        poll,
        contract: Contract {
            monotonic_reads,
            deletes: deletes.as_ref().map(|(d, _)| *d),
            causal,
            updates: updates.map(|(u, _)| u),
        },
        pair_interval,
        delete_sample,
        update_interval,
        delete_watch: watch_deletes.then(|| deletes.as_ref().map_or(timeout, |(d, _)| *d)),
        observable: Observable {
            regressions: target.observes_regressions(),
            deletes: observes_deletes,
            causal: source.can_link(),
        },
        target_kind: target.kind().to_string(),
        sync_grace: sync_grace.map(|(g, _)| Dur(g)),
    })
}

/// `pair_interval` and `contract.causal` of a path: pairs every [`default::PAIR_INTERVAL`]
/// where the source can write a reference, unless set otherwise; `causal` from the path, the
/// defaults, else the target kind's promise when pairs can check it. A declared `causal` that
/// no pair would check, or pairs the source cannot write, are errors naming the key.
fn resolve_pairs(
    key: &str,
    raw: &RawPath,
    own: &PathSettings,
    defaults: &PathSettings,
    source: &Declared,
    target: &Declared,
) -> Result<(Option<Dur>, bool), Issue> {
    let cannot = |why: &str| {
        format!(
            "system \"{}\" (kind {}) cannot write a causal pair: {why}",
            raw.source,
            source.kind()
        )
    };
    let pair_interval = match (own.pair_interval, defaults.pair_interval) {
        (Some(d), _) if !d.get().is_zero() => {
            if let Err(why) = source.can_link() {
                return Err(Issue::new(
                    format!("{key}.pair_interval"),
                    format!("{}; leave pair_interval out", cannot(&why)),
                ));
            }
            Some(d)
        }
        (Some(_), _) => None,
        (None, d) => {
            let d = d.unwrap_or(default::PAIR_INTERVAL);
            (!d.get().is_zero() && source.can_link().is_ok()).then_some(d)
        }
    };
    let declared = given(
        (&format!("{key}.contract"), "defaults.contract"),
        "causal",
        own.contract.and_then(|c| c.causal),
        defaults.contract.and_then(|c| c.causal),
    );
    let causal = match declared {
        Some((true, at)) if pair_interval.is_none() => {
            let why = match source.can_link() {
                Err(why) => cannot(&why),
                Ok(()) => "causal pairs are off (pair_interval: 0s), so nothing would check it"
                    .to_string(),
            };
            return Err(Issue::new(at, why));
        }
        Some((c, _)) => c,
        None => pair_interval.is_some() && target.causal(),
    };
    Ok((pair_interval, causal))
}

fn resolve_poll(
    key: &str,
    own: Option<&PollSettings>,
    defaults: Option<&PollSettings>,
) -> Result<PollPolicy, Issue> {
    let builtin = PollPolicy::default();
    let key = format!("{key}.poll");
    let keys = (key.as_str(), "defaults.poll");
    let (first, _) = pick(
        keys,
        "first",
        own.and_then(|p| p.first),
        defaults.and_then(|p| p.first),
        Dur(builtin.first),
    );
    let (factor, factor_key) = pick(
        keys,
        "factor",
        own.and_then(|p| p.factor),
        defaults.and_then(|p| p.factor),
        builtin.factor,
    );
    let (max_gap, max_gap_key) = pick(
        keys,
        "max_gap",
        own.and_then(|p| p.max_gap),
        defaults.and_then(|p| p.max_gap),
        Dur(builtin.max_gap),
    );
    let (jitter, jitter_key) = pick(
        keys,
        "jitter",
        own.and_then(|p| p.jitter),
        defaults.and_then(|p| p.jitter),
        builtin.jitter,
    );
    let (precision, precision_key) = pick(
        keys,
        "precision",
        own.and_then(|p| p.precision),
        defaults.and_then(|p| p.precision),
        builtin.precision,
    );
    if !(1.0..=10.0).contains(&factor) {
        return Err(Issue::new(
            factor_key,
            format!("the poll factor must be between 1 and 10, not {factor}"),
        ));
    }
    if !(0.0..=0.5).contains(&jitter) {
        return Err(Issue::new(
            jitter_key,
            format!("jitter is a fraction between 0 and 0.5, not {jitter}"),
        ));
    }
    if !(0.001..=0.5).contains(&precision) {
        return Err(Issue::new(
            precision_key,
            format!("precision is a relative error between 0.001 and 0.5, not {precision}"),
        ));
    }
    if max_gap.get() < first.get() || max_gap.get().is_zero() {
        return Err(Issue::new(
            max_gap_key,
            format!(
                "the largest gap between polls ({max_gap}) must be at least the first poll ({first})"
            ),
        ));
    }
    Ok(PollPolicy {
        first: first.get(),
        factor,
        max_gap: max_gap.get(),
        jitter,
        precision,
        ..builtin
    })
}
