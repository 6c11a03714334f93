//! The per-path families, held as lagwatch's own atomics and written straight into the
//! exposition: no registry walk, no intermediate protobuf, one pass per family.
//!
//! These are most of the samples of a large deployment, so they follow two rules:
//!
//! - **A series exists when it says something.** Always present: what alerts, rules and the
//!   objective need (`lagwatch_lag_seconds`, `lagwatch_probes_total` for `converged` and
//!   `timeout` — and `halted` on synchronous targets —, `lagwatch_probes_within_objective_total`,
//!   staleness, in-flight, objective, timeout, `lagwatch_path_state`). Everything else appears
//!   with its first event (the last lag once something converged, error kinds on the first
//!   error, resumed probes after a restart).
//! - **Lag buckets come from the objective**: `objective × {1/8, 1/4, 1/2, 1, 2}`. The
//!   objective is always a bucket bound (the SLO ratio is exact from the histogram too), the
//!   quantiles around it are sharp, and a path measured in hours carries as few buckets as one
//!   measured in seconds. Each bucket keeps its latest exemplar: the sentinel that fell in it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::expose::{self, Format, Kind};
use crate::config::Contract;
use crate::connector::ConnectorError;

/// Multiples of the objective used as lag bucket bounds.
pub const LAG_BUCKET_FACTORS: [f64; 5] = [0.125, 0.25, 0.5, 1.0, 2.0];

/// Outcome labels, in `Outcome` order (`Outcome::label` reads them from here).
pub const OUTCOMES: [&str; 5] = ["converged", "timeout", "mismatch", "error", "halted"];

/// Upper bounds, in seconds, of the age buckets of `lagwatch_reads_total` (the last is
/// `+Inf`): fixed for every path, so t-visibility curves compare across paths and lagwatch
/// versions. Ages from a quarter second (dual-write) to hours (lakes).
pub const READ_AGE_BOUNDS: [f64; 16] = [
    0.25,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    20.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    7200.0,
    f64::INFINITY,
];

/// Buckets of `lagwatch_version_staleness` (versions behind; Fibonacci, as PBS plots k).
pub const VERSION_BOUNDS: [f64; 8] = [0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0];

/// `age_le` values of [`READ_AGE_BOUNDS`], as exported.
const READ_AGE_LABELS: [&str; 16] = [
    "0.25", "0.5", "1", "2", "5", "10", "20", "30", "60", "120", "300", "600", "1800", "3600",
    "7200", "+Inf",
];

/// The `result` of a t-visibility read: index 0 in [`PathSeries`]' read counters.
const READ_RESULTS: [&str; 2] = ["fresh", "stale"];

/// `result` values of `lagwatch_causal_pairs_total`, in `PairResult` order.
pub const PAIR_RESULTS: [&str; 3] = ["ordered", "violated", "incomplete"];

/// `certainty` values of `lagwatch_causal_violations_total`.
pub const CERTAINTIES: [&str; 2] = ["certain", "suspected"];

/// `lagwatch_path_state` values, in `PathStatus` order.
pub const STATES: [&str; 6] = [
    "idle",
    "converging",
    "lagging",
    "stuck",
    "failing",
    "halted",
];

/// An `f64` that can be shared and updated without a lock.
#[derive(Debug, Default)]
pub struct AtomicF64(AtomicU64);

impl AtomicF64 {
    pub fn new(v: f64) -> Self {
        AtomicF64(AtomicU64::new(v.to_bits()))
    }
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
    pub fn add(&self, v: f64) {
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(cur) + v).to_bits();
            match self
                .0
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(seen) => cur = seen,
            }
        }
    }
}

/// The probe behind a bucket's count: the latest observation that fell in it.
#[derive(Debug, Clone)]
pub struct Exemplar {
    /// The sentinel's key.
    pub sentinel: Arc<str>,
    pub value: f64,
    /// Unix time of the observation, in seconds.
    pub timestamp: f64,
}

/// A cumulative histogram with fixed bounds and one exemplar per bucket.
#[derive(Debug)]
pub struct Histogram {
    bounds: Box<[f64]>,
    /// Per bucket (non-cumulative), the last one for `+Inf`.
    counts: Box<[AtomicU64]>,
    sum: AtomicF64,
    count: AtomicU64,
    exemplars: Mutex<Box<[Option<Exemplar>]>>,
}

impl Histogram {
    pub fn new(bounds: &[f64]) -> Histogram {
        let n = bounds.len() + 1;
        Histogram {
            bounds: bounds.into(),
            counts: (0..n).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicF64::new(0.0),
            count: AtomicU64::new(0),
            exemplars: Mutex::new(vec![None; n].into_boxed_slice()),
        }
    }

    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    /// Counts one observation; with `exemplar`, it becomes its bucket's exemplar.
    pub fn observe(&self, v: f64, exemplar: Option<Exemplar>) {
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum.add(v);
        self.count.fetch_add(1, Ordering::Relaxed);
        if let Some(e) = exemplar {
            self.exemplars.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(e);
        }
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn sum(&self) -> f64 {
        self.sum.get()
    }

    /// Cumulative count of observations `<= bound` for each bound, then the total.
    pub fn cumulative(&self) -> Vec<u64> {
        let mut acc = 0;
        self.counts
            .iter()
            .map(|c| {
                acc += c.load(Ordering::Relaxed);
                acc
            })
            .collect()
    }

    fn write(&self, out: &mut String, format: Format, name: &str, labels: &str) {
        // Exemplars are read under their lock while the buckets are written (OpenMetrics only).
        let guard = match format {
            Format::OpenMetrics => Some(self.exemplars.lock().unwrap_or_else(|e| e.into_inner())),
            Format::Text => None,
        };
        let mut acc = 0;
        for (i, c) in self.counts.iter().enumerate() {
            acc += c.load(Ordering::Relaxed);
            out.push_str(name);
            out.push_str("_bucket{");
            out.push_str(labels);
            out.push_str(",le=\"");
            match self.bounds.get(i) {
                Some(b) => expose::float(out, *b),
                None => out.push_str("+Inf"),
            }
            out.push_str("\"} ");
            expose::int(out, acc);
            if let Some(Some(e)) = guard.as_ref().and_then(|x| x.get(i)) {
                out.push_str(" # {sentinel=\"");
                expose::escape_into(out, &e.sentinel);
                out.push_str("\"} ");
                expose::float(out, e.value);
                out.push(' ');
                expose::millis(out, e.timestamp);
            }
            out.push('\n');
        }
        drop(guard);
        out.push_str(name);
        out.push_str("_sum{");
        out.push_str(labels);
        out.push_str("} ");
        expose::float(out, self.sum());
        out.push('\n');
        out.push_str(name);
        out.push_str("_count{");
        out.push_str(labels);
        out.push_str("} ");
        expose::int(out, acc);
        out.push('\n');
    }
}

/// An event counter; whether it is written at 0 is up to its family (see `counted`).
#[derive(Debug, Default)]
pub struct Lazy(AtomicU64);

impl Lazy {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Every per-path series of one path.
#[derive(Debug)]
pub struct PathSeries {
    pub source: String,
    pub target: String,
    /// `source="…",target="…"`, rendered once.
    labels: String,
    pub lag: Histogram,
    /// Only for targets that record when they applied a record.
    pub apply_lag: Option<Histogram>,
    /// NaN until the first convergence (then exported).
    pub last_lag: AtomicF64,
    pub uncertainty: AtomicF64,
    pub last_converged: AtomicF64,
    pub staleness: AtomicF64,
    pub in_flight: AtomicI64,
    pub objective: f64,
    pub timeout: f64,
    probes: [Lazy; 5],
    /// Outcomes exported at 0: converged, timeout, and halted for a synchronous target.
    always: [bool; 5],
    resumed: [Lazy; 5],
    pub within_objective: Lazy,
    pub skipped: Lazy,
    pub monotonic: Lazy,
    lookup_errors: [Lazy; 6],
    /// t-visibility reads by result (fresh, stale) and age bucket.
    reads: [[Lazy; 16]; 2],
    /// Violations of declared guarantees, by guarantee.
    contract_violations: [Lazy; Contract::N],
    declared: [bool; Contract::N],
    /// How long deleted sentinels took to go; only for a target whose reads show a delete.
    pub delete_lag: Option<Histogram>,
    /// The delete window (`PathShape::delete_window`) the series were made for.
    delete_window: Option<f64>,
    /// Deletes still not gone at the end of the delete window.
    pub deletes_lost: Lazy,
    /// Deleted sentinels seen gone and then back.
    pub resurrections: Lazy,
    /// Canary versions not reached a timeout after their acknowledgement; with a canary.
    pub updates_lost: Lazy,
    /// Canary versions a change log never showed within a timeout, and those it showed again.
    pub versions_lost: Lazy,
    pub versions_duplicated: Lazy,
    /// The path checks every version (`versions_*` series exist from start-up).
    versions: bool,
    /// Sentinels an ordered target showed before an earlier one.
    pub order_inversions: Lazy,
    /// The target claims ordered apply (its inversion series exists from start-up).
    ordered: bool,
    /// k-staleness of the update canary's reads (versions behind); with a canary only.
    pub version_staleness: Option<Histogram>,
    /// How long a stale canary read had been stale; with a canary only.
    pub time_staleness: Option<Histogram>,
    /// Causal pairs by result (`PAIR_RESULTS`); exported where pairs run.
    pairs: [Lazy; 3],
    /// Children seen without their parent, by certainty (`CERTAINTIES`).
    causal_violations: [Lazy; 2],
    /// From a pair's parent's first sighting to its child's; where pairs run.
    pub causal_gap: Option<Histogram>,
    /// `result="…",source="…",target="…"` for each result, rendered once.
    read_labels: [String; 2],
    state: AtomicU8,
    /// The label set of each state, sorted by name (`source`, `state`, `target`).
    state_labels: [String; 6],
}

/// What a path's series are made from.
#[derive(Debug, Clone, Copy)]
pub struct PathShape {
    pub objective: f64,
    pub timeout: f64,
    /// A synchronous target (its `halted` outcome is exported at 0).
    pub synchronous: bool,
    pub records_apply_time: bool,
    /// The guarantees the path's contract declares (`Contract::GUARANTEES` order): their
    /// violation series exist at 0 from start-up.
    pub declared: [bool; Contract::N],
    /// How long a delete is watched (seconds), if the target's reads show deletes: the delete
    /// series exist from start-up, their buckets those of the lag plus this bound.
    pub delete_window: Option<f64>,
    /// The path reads an update canary (its staleness series exist from start-up).
    pub canary: bool,
    /// The path is read for causal pairs (their series exist from start-up).
    pub pairs: bool,
    /// The target claims to apply writes in order (its inversion series exist from start-up).
    pub ordered: bool,
    /// The path reads a canary at a change log that keeps every version (the lost and
    /// duplicated version series exist from start-up).
    pub versions: bool,
}

impl PathSeries {
    fn new(source: &str, target: &str, shape: PathShape) -> PathSeries {
        let mut labels = String::from("source=\"");
        expose::escape_into(&mut labels, source);
        labels.push_str("\",target=\"");
        expose::escape_into(&mut labels, target);
        labels.push('"');
        let bounds = lag_bounds(shape.objective);
        let read_labels = READ_RESULTS.map(|r| format!("result=\"{r}\",{labels}"));
        let state_labels = STATES.map(|st| {
            let mut l = String::from("source=\"");
            expose::escape_into(&mut l, source);
            l.push_str("\",state=\"");
            l.push_str(st);
            l.push_str("\",target=\"");
            expose::escape_into(&mut l, target);
            l.push('"');
            l
        });
        PathSeries {
            source: source.to_string(),
            target: target.to_string(),
            labels,
            lag: Histogram::new(&bounds),
            apply_lag: shape.records_apply_time.then(|| Histogram::new(&bounds)),
            last_lag: AtomicF64::new(f64::NAN),
            uncertainty: AtomicF64::new(f64::NAN),
            last_converged: AtomicF64::new(f64::NAN),
            staleness: AtomicF64::new(0.0),
            in_flight: AtomicI64::new(0),
            objective: shape.objective,
            timeout: shape.timeout,
            probes: Default::default(),
            always: [true, true, false, false, shape.synchronous],
            resumed: Default::default(),
            within_objective: Lazy::default(),
            skipped: Lazy::default(),
            monotonic: Lazy::default(),
            lookup_errors: Default::default(),
            reads: Default::default(),
            read_labels,
            contract_violations: Default::default(),
            declared: shape.declared,
            delete_lag: shape.delete_window.map(|w| {
                let mut b = bounds.clone();
                if !b.contains(&w) {
                    b.push(w);
                    b.sort_by(f64::total_cmp);
                }
                Histogram::new(&b)
            }),
            delete_window: shape.delete_window,
            deletes_lost: Lazy::default(),
            resurrections: Lazy::default(),
            updates_lost: Lazy::default(),
            versions_lost: Lazy::default(),
            versions_duplicated: Lazy::default(),
            versions: shape.versions,
            order_inversions: Lazy::default(),
            ordered: shape.ordered,
            version_staleness: shape.canary.then(|| Histogram::new(&VERSION_BOUNDS)),
            time_staleness: shape.canary.then(|| Histogram::new(&bounds)),
            pairs: Default::default(),
            causal_violations: Default::default(),
            causal_gap: shape.pairs.then(|| Histogram::new(&bounds)),
            state: AtomicU8::new(0),
            state_labels,
        }
    }

    /// Counts a t-visibility read of age `age` seconds (since the write's acknowledgement):
    /// `fresh` when it returned the sentinel, stale when it answered absent.
    /// Returns the bucket's index in [`READ_AGE_BOUNDS`].
    pub fn read_observed(&self, age: f64, fresh: bool) -> usize {
        let bucket = READ_AGE_BOUNDS
            .iter()
            .position(|b| age <= *b)
            .unwrap_or(READ_AGE_BOUNDS.len() - 1);
        self.reads[usize::from(!fresh)][bucket].inc();
        bucket
    }

    /// Reads counted in the age bucket ending at `READ_AGE_BOUNDS[bucket]`, by result.
    pub fn reads_in(&self, bucket: usize, fresh: bool) -> u64 {
        self.reads[usize::from(!fresh)]
            .get(bucket)
            .map_or(0, Lazy::get)
    }

    fn fits(&self, shape: PathShape) -> bool {
        self.objective == shape.objective
            && self.timeout == shape.timeout
            && self.always[4] == shape.synchronous
            && self.apply_lag.is_some() == shape.records_apply_time
            && self.declared == shape.declared
            && self.delete_window == shape.delete_window
            && self.version_staleness.is_some() == shape.canary
            && self.causal_gap.is_some() == shape.pairs
            && self.ordered == shape.ordered
            && self.versions == shape.versions
    }

    /// Counts a causal pair by result (index into [`PAIR_RESULTS`]) and, for a violated one,
    /// its certainty (index into [`CERTAINTIES`]).
    pub fn pair(&self, result: usize, certainty: Option<usize>) {
        if let Some(c) = self.pairs.get(result) {
            c.inc();
        }
        if let Some(c) = certainty.and_then(|i| self.causal_violations.get(i)) {
            c.inc();
        }
    }

    /// Causal pairs counted with result `PAIR_RESULTS[i]` since start-up.
    pub fn pairs(&self, i: usize) -> u64 {
        self.pairs.get(i).map_or(0, Lazy::get)
    }

    /// Violations of the guarantee `GUARANTEES[i]` counted since start-up.
    pub fn contract_violations(&self, i: usize) -> u64 {
        self.contract_violations.get(i).map_or(0, Lazy::get)
    }

    /// Counts a measured violation of the declared guarantee `GUARANTEES[i]`.
    pub fn contract_violated(&self, i: usize) {
        if let Some(c) = self.contract_violations.get(i) {
            c.inc();
        }
    }

    /// Counts a resolved probe by outcome index (`Outcome` order).
    /// (`lagwatch_probes_total` counts resumed probes too; `lagwatch_probes_resumed_total`
    /// only those.)
    pub fn probe(&self, outcome: usize, resumed: bool) {
        self.probes[outcome].inc();
        if resumed {
            self.resumed[outcome].inc();
        }
    }

    pub fn probes(&self, outcome: usize) -> u64 {
        self.probes[outcome].get()
    }

    pub fn lookup_error(&self, kind: &str) {
        if let Some(i) = ConnectorError::KINDS.iter().position(|k| *k == kind) {
            self.lookup_errors[i].inc();
        }
    }

    /// Sets the path's state (index into [`STATES`]).
    pub fn set_state(&self, state: usize) {
        self.state.store(state as u8, Ordering::Relaxed);
    }
}

/// The lag bucket bounds of a path with this objective.
pub fn lag_bounds(objective: f64) -> Vec<f64> {
    LAG_BUCKET_FACTORS
        .iter()
        .map(|f| objective * f)
        .filter(|b| *b > 0.0)
        .collect()
}

/// Every path's series, in the order their paths were configured.
#[derive(Debug, Default)]
pub struct PathFamilies {
    paths: RwLock<Vec<Arc<PathSeries>>>,
}

struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    write: fn(&PathSeries, &mut String, Format, &'static str),
}

/// An event counter: exported from its first event.
fn counted(out: &mut String, name: &str, labels: &str, n: u64) {
    if n > 0 {
        expose::sample_u64(out, name, labels, n);
    }
}

/// Counters by a label: each value exported from its first event, or from start-up where
/// `at_zero(index)` says so.
fn by_label(
    out: &mut String,
    name: &str,
    label: &str,
    values: &[&str],
    counters: &[Lazy],
    labels: &str,
    at_zero: impl Fn(usize) -> bool,
) {
    for (i, (value, c)) in values.iter().zip(counters).enumerate() {
        let n = c.get();
        if n > 0 || at_zero(i) {
            sample_label_first(out, name, label, value, labels, n);
        }
    }
}

fn gauge_if_set(out: &mut String, name: &str, labels: &str, v: f64) {
    if !v.is_nan() {
        expose::sample(out, name, labels, v);
    }
}

/// Writes `name{label="value",<labels>} n`: label sets are sorted by name, as the
/// `prometheus` crate writes them, and these labels sort before `source`.
fn sample_label_first(
    out: &mut String,
    name: &str,
    label: &str,
    value: &str,
    labels: &str,
    n: u64,
) {
    out.push_str(name);
    out.push('{');
    out.push_str(label);
    out.push_str("=\"");
    out.push_str(value);
    out.push_str("\",");
    out.push_str(labels);
    out.push_str("} ");
    expose::int(out, n);
    out.push('\n');
}

/// Writes a histogram the path has only for some targets.
fn optional(out: &mut String, f: Format, name: &str, p: &PathSeries, h: Option<&Histogram>) {
    if let Some(h) = h {
        h.write(out, f, name, &p.labels);
    }
}

/// Writes a delete counter of a path whose deletes are watched (at 0 from start-up).
fn where_deletes_watched(out: &mut String, name: &str, p: &PathSeries, n: u64) {
    if p.delete_lag.is_some() {
        expose::sample_u64(out, name, &p.labels, n);
    }
}

const FAMILIES: &[Family] = &[
    Family {
        name: "lagwatch_lag_seconds",
        help: "Replication lag of converged sentinels: midpoint of the interval the arrival is known to lie in. Buckets are multiples of the path's objective (1/8, 1/4, 1/2, 1, 2); in OpenMetrics each bucket carries the sentinel of its latest probe as an exemplar.",
        kind: Kind::Histogram,
        write: |p, out, f, name| p.lag.write(out, f, name, &p.labels),
    },
    Family {
        name: "lagwatch_apply_lag_seconds",
        help: "Lag by the target's own clock: the time the target's pipeline says it applied a sentinel (a lake's SinkCreatedOn) minus its write time, corrected by the source's clock offset. Exported for targets that record it; buckets as lagwatch_lag_seconds.",
        kind: Kind::Histogram,
        write: |p, out, f, name| optional(out, f, name, p, p.apply_lag.as_ref()),
    },
    Family {
        name: "lagwatch_last_lag_seconds",
        help: "Lag of the most recently converged sentinel; exported from the first convergence.",
        kind: Kind::Gauge,
        write: |p, out, _, name| gauge_if_set(out, name, &p.labels, p.last_lag.get()),
    },
    Family {
        name: "lagwatch_lag_uncertainty_seconds",
        help: "Half-width of the last lag estimate: the true lag is within last_lag plus or minus this; exported from the first convergence.",
        kind: Kind::Gauge,
        write: |p, out, _, name| gauge_if_set(out, name, &p.labels, p.uncertainty.get()),
    },
    Family {
        name: "lagwatch_staleness_seconds",
        help: "Age of the oldest sentinel not yet seen at the target, 0 when none is pending; rises in real time while a path is stuck.",
        kind: Kind::Gauge,
        write: |p, out, _, name| expose::sample(out, name, &p.labels, p.staleness.get()),
    },
    Family {
        name: "lagwatch_last_converged_timestamp_seconds",
        help: "Unix time at which the last sentinel was seen at the target; exported from the first convergence.",
        kind: Kind::Gauge,
        write: |p, out, _, name| gauge_if_set(out, name, &p.labels, p.last_converged.get()),
    },
    Family {
        name: "lagwatch_probes_total",
        help: "Resolved probes by outcome: converged, timeout (a read sent at or after the deadline answered absent), mismatch (seen with other content), error (never seen, and the reads at the deadline failed: unknown), halted (still missing from a synchronous target such as dual-write after its grace: the replication is not running). converged and timeout (and halted on synchronous targets) exist from start-up, the others from their first probe.",
        kind: Kind::Counter,
        write: |p, out, _, name| {
            by_label(out, name, "outcome", &OUTCOMES, &p.probes, &p.labels, |i| {
                p.always[i]
            });
        },
    },
    Family {
        name: "lagwatch_probes_in_flight",
        help: "Sentinels of the path written (or being written) and not yet resolved.",
        kind: Kind::Gauge,
        write: |p, out, _, name| {
            expose::sample(
                out,
                name,
                &p.labels,
                p.in_flight.load(Ordering::Relaxed) as f64,
            );
        },
    },
    Family {
        name: "lagwatch_lag_objective_seconds",
        help: "Configured lag objective of the path, so one alert rule serves every path.",
        kind: Kind::Gauge,
        write: |p, out, _, name| expose::sample(out, name, &p.labels, p.objective),
    },
    Family {
        name: "lagwatch_probe_timeout_seconds",
        help: "Configured timeout of the path: a sentinel not seen by then counts as not converged. Lets alerts say \"no convergence for N timeouts\" with one rule for every path.",
        kind: Kind::Gauge,
        write: |p, out, _, name| expose::sample(out, name, &p.labels, p.timeout),
    },
    Family {
        name: "lagwatch_probes_within_objective_total",
        help: "Probes of the path that converged with a lag (the midpoint estimate, as in lagwatch_lag_seconds) at or below the path's objective: the good events of an objective, exact for any objective.",
        kind: Kind::Counter,
        write: |p, out, _, name| {
            expose::sample_u64(out, name, &p.labels, p.within_objective.get());
        },
    },
    Family {
        name: "lagwatch_probes_skipped_total",
        help: "Sentinel writes skipped for a path because max_in_flight sentinels were already pending; exported from the first skip.",
        kind: Kind::Counter,
        write: |p, out, _, name| counted(out, name, &p.labels, p.skipped.get()),
    },
    Family {
        name: "lagwatch_monotonic_read_violations_total",
        help: "Monotonic-read regressions: sentinels a target showed and then lost again within the confirmation window, and update-canary reads that returned an older version than an earlier read; exported from the first.",
        kind: Kind::Counter,
        write: |p, out, _, name| counted(out, name, &p.labels, p.monotonic.get()),
    },
    Family {
        name: "lagwatch_lookup_errors_total",
        help: "Failed target lookups by error kind (no lag is ever derived from these); a kind is exported from its first error.",
        kind: Kind::Counter,
        write: |p, out, _, name| {
            let (kinds, counters) = (&ConnectorError::KINDS, &p.lookup_errors);
            by_label(out, name, "kind", kinds, counters, &p.labels, |_| false);
        },
    },
    Family {
        name: "lagwatch_reads_total",
        help: "t-visibility: target reads of sentinels by age and result. age_le is the upper bound of the read's age bucket (seconds from the write's acknowledgement to the read; buckets are not cumulative), result is fresh (the sentinel was there) or stale (absent); failed reads and reads of other content are not counted. fresh / (fresh + stale) of one bucket is the probability that a read of that age sees the write. A series appears with its first read.",
        kind: Kind::Counter,
        write: |p, out, _, name| {
            for (r, labels) in p.read_labels.iter().enumerate() {
                for (b, age) in READ_AGE_LABELS.iter().enumerate() {
                    let n = p.reads[r][b].get();
                    if n > 0 {
                        sample_label_first(out, name, "age_le", age, labels, n);
                    }
                }
            }
        },
    },
    Family {
        name: "lagwatch_contract_violations_total",
        help: "Measured violations of a guarantee the path's contract declares (contract: in the configuration, or its target kind's default), by guarantee: monotonic_reads (a sentinel seen at the target was missing from a later read), deletes (a deleted sentinel was still there at the end of contract.deletes, or came back after it had gone), causal (a read showed a causal pair's child without its parent). Exported at 0 for each declared guarantee; an undeclared one is not counted here.",
        kind: Kind::Counter,
        write: |p, out, _, name| {
            for (i, g) in crate::config::Contract::GUARANTEES.iter().enumerate() {
                if p.declared[i] {
                    let n = p.contract_violations[i].get();
                    sample_label_first(out, name, "guarantee", g, &p.labels, n);
                }
            }
        },
    },
    Family {
        name: "lagwatch_delete_lag_seconds",
        help: "Delete lag: from the source's acknowledgement of a sentinel's delete to its absence at the target, the midpoint of the interval the delete is known to have arrived in (as lagwatch_lag_seconds), for sentinels the target had shown. Buckets as lagwatch_lag_seconds plus the delete window; exported for targets whose reads show deletes; each bucket's exemplar names its latest sentinel.",
        kind: Kind::Histogram,
        write: |p, out, f, name| optional(out, f, name, p, p.delete_lag.as_ref()),
    },
    Family {
        name: "lagwatch_version_staleness",
        help: "k-staleness of the update canary: for each read of the source group's canary row at the target, how many versions acknowledged before the read was sent are newer than the version it returned (0: the latest). Exported for paths that read a canary (update_interval).",
        kind: Kind::Histogram,
        write: |p, out, f, name| optional(out, f, name, p, p.version_staleness.as_ref()),
    },
    Family {
        name: "lagwatch_time_staleness_seconds",
        help: "Time staleness of the update canary: for a read that returned an older version than the latest acknowledged, how long before the read the next version had been acknowledged. Buckets as lagwatch_lag_seconds; exported for paths that read a canary.",
        kind: Kind::Histogram,
        write: |p, out, f, name| optional(out, f, name, p, p.time_staleness.as_ref()),
    },
    Family {
        name: "lagwatch_order_inversions_total",
        help: "Sentinels a target that claims to apply writes in order (a change-log lake) showed while a sentinel written earlier on the path was still missing from the same read (a consistent-prefix violation), counted once per sentinel at its first sighting. Exported at 0 for such targets.",
        kind: Kind::Counter,
        write: |p, out, _, name| {
            if p.ordered {
                expose::sample_u64(out, name, &p.labels, p.order_inversions.get());
            }
        },
    },
    Family {
        name: "lagwatch_updates_lost_total",
        help: "Update-canary versions the target had not reached (returned that version or a newer one) when a read sent a path timeout or more after their acknowledgement returned an older one: updates a snapshot target lost or held back past the timeout. Each version counts once. Exported at 0 for paths that read a canary.",
        kind: Kind::Counter,
        write: |p, out, _, name| {
            if p.version_staleness.is_some() {
                expose::sample_u64(out, name, &p.labels, p.updates_lost.get());
            }
        },
    },
    Family {
        name: "lagwatch_versions_lost_total",
        help: "Update-canary versions a change-log target (a lake of incremental update folders) had not shown as a row of their own when a read sent a path timeout or more after their acknowledgement: versions the log lost (updates: every). Each version counts once. Exported at 0 for paths that read a canary at a change log.",
        kind: Kind::Counter,
        write: |p, out, _, name| {
            if p.versions {
                expose::sample_u64(out, name, &p.labels, p.versions_lost.get());
            }
        },
    },
    Family {
        name: "lagwatch_versions_duplicated_total",
        help: "Rows of a change-log target that repeated an update-canary version it had already shown (updates: every), one per repeat. Exported at 0 for paths that read a canary at a change log.",
        kind: Kind::Counter,
        write: |p, out, _, name| {
            if p.versions {
                expose::sample_u64(out, name, &p.labels, p.versions_duplicated.get());
            }
        },
    },
    Family {
        name: "lagwatch_causal_pairs_total",
        help: "Causal pairs read at the target, by result: ordered (the child was never seen without its parent), violated (a read showed the child and not its parent), incomplete (the timeout came before both were seen; no verdict). A pair is a parent sentinel and, after the source acknowledged it, a child sentinel that references it, written every pair_interval per source group. ordered and violated are exported at 0 where pairs run.",
        kind: Kind::Counter,
        write: |p, out, _, name| {
            if p.causal_gap.is_some() {
                // ordered and violated from start-up, incomplete from its first.
                by_label(
                    out,
                    name,
                    "result",
                    &PAIR_RESULTS,
                    &p.pairs,
                    &p.labels,
                    |i| i < 2,
                );
            }
        },
    },
    Family {
        name: "lagwatch_causal_violations_total",
        help: "Causal pairs whose child a read showed while its parent was absent, by certainty: certain when one read of the target answered for both (one query, one search request, one lake scan), suspected when the target was read for each in turn (child first). Exported at 0 where pairs run.",
        kind: Kind::Counter,
        write: |p, out, _, name| {
            if p.causal_gap.is_some() {
                let (values, counters) = (&CERTAINTIES, &p.causal_violations);
                by_label(out, name, "certainty", values, counters, &p.labels, |_| {
                    true
                });
            }
        },
    },
    Family {
        name: "lagwatch_causal_gap_seconds",
        help: "For ordered causal pairs, how long after the parent's first sighting at the target the child was first seen (0 when one read found both): the answer instants of the first reads that found each. Buckets as lagwatch_lag_seconds; exported where pairs run.",
        kind: Kind::Histogram,
        write: |p, out, f, name| optional(out, f, name, p, p.causal_gap.as_ref()),
    },
    Family {
        name: "lagwatch_deletes_lost_total",
        help: "Deleted sentinels the target still showed at the end of the delete window (contract.deletes, else the path's timeout). Exported at 0 for targets whose reads show deletes.",
        kind: Kind::Counter,
        write: |p, out, _, name| where_deletes_watched(out, name, p, p.deletes_lost.get()),
    },
    Family {
        name: "lagwatch_resurrections_total",
        help: "Deleted sentinels the target showed again after a read had found them gone (watched for the path's confirm window after the first absent read). Exported at 0 for targets whose reads show deletes.",
        kind: Kind::Counter,
        write: |p, out, _, name| where_deletes_watched(out, name, p, p.resurrections.get()),
    },
    Family {
        name: "lagwatch_probes_resumed_total",
        help: "Probes an earlier process left in flight, resumed from the ledger and ended by this one, by outcome. Their lags are measured on the wall clock across the restart and are not in lagwatch_lag_seconds.",
        kind: Kind::Counter,
        write: |p, out, _, name| {
            by_label(
                out,
                name,
                "outcome",
                &OUTCOMES,
                &p.resumed,
                &p.labels,
                |_| false,
            );
        },
    },
    Family {
        name: "lagwatch_path_state",
        help: "The path's state, as on the status page: 1 on the current one of idle (nothing resolved yet), converging (arrives within the objective), lagging (above it), stuck (a sentinel timed out or is pending longer than the timeout), failing (reads or writes fail, or content arrives changed), halted (a synchronous target lacks a sentinel after its grace), 0 on the others.",
        kind: Kind::StateSet,
        write: |p, out, _, name| {
            let current = usize::from(p.state.load(Ordering::Relaxed));
            for (i, l) in p.state_labels.iter().enumerate() {
                expose::sample_u64(out, name, l, u64::from(i == current));
            }
        },
    },
];

impl PathFamilies {
    /// The series of a path: the existing ones when the path kept its shape (a reload keeps
    /// counting), new ones otherwise.
    pub fn path(&self, source: &str, target: &str, shape: PathShape) -> Arc<PathSeries> {
        let mut paths = self.paths.write().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = paths
            .iter()
            .position(|p| p.source == source && p.target == target)
        {
            if paths[i].fits(shape) {
                return paths[i].clone();
            }
            paths.remove(i);
        }
        let series = Arc::new(PathSeries::new(source, target, shape));
        paths.push(series.clone());
        series
    }

    /// The series of a configured path.
    pub fn get(&self, source: &str, target: &str) -> Option<Arc<PathSeries>> {
        self.paths
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|p| p.source == source && p.target == target)
            .cloned()
    }

    /// Drops a path's series (a reload removed the path).
    pub fn forget(&self, source: &str, target: &str) {
        self.paths
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|p| !(p.source == source && p.target == target));
    }

    /// Writes every per-path family.
    pub fn write(&self, out: &mut String, format: Format) {
        let paths = self.paths.read().unwrap_or_else(|e| e.into_inner()).clone();
        if paths.is_empty() {
            return;
        }
        for f in FAMILIES {
            let start = out.len();
            expose::header(out, format, f.name, f.help, f.kind);
            let body = out.len();
            for p in &paths {
                (f.write)(p, out, format, f.name);
            }
            if out.len() == body {
                // No series of this family yet: no header either.
                out.truncate(start);
            }
        }
    }
}

/// Status classes of a request, in the order they are written.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "4xx", "5xx", "transport_error"];

/// The request series of one system: counts by operation and status class (each from its
/// first request), the time spent in requests (with the counts, the mean latency; every read of
/// every probe, with its times, is in `/api/v1/probes`), and the share of its request budget in
/// use.
#[derive(Debug, Default)]
pub struct SystemSeries {
    /// `system="…"`, rendered once.
    labels: String,
    /// (operation, status class) → count.
    requests: Mutex<Vec<(&'static str, usize, u64)>>,
    seconds: AtomicF64,
    /// Share of the request budget used in the current window, set at each scrape.
    pub budget_used: AtomicF64,
}

/// Every system's request series.
#[derive(Debug, Default)]
pub struct SystemFamilies {
    systems: RwLock<HashMap<String, Arc<SystemSeries>>>,
}

impl SystemFamilies {
    /// The series of a system, created (at 0) on first use.
    pub fn system(&self, system: &str) -> Arc<SystemSeries> {
        if let Some(s) = self
            .systems
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(system)
        {
            return s.clone();
        }
        let mut systems = self.systems.write().unwrap_or_else(|e| e.into_inner());
        systems
            .entry(system.to_string())
            .or_insert_with(|| {
                let mut labels = String::from("system=\"");
                expose::escape_into(&mut labels, system);
                labels.push('"');
                Arc::new(SystemSeries {
                    labels,
                    ..SystemSeries::default()
                })
            })
            .clone()
    }

    /// Counts one request. `operation` is one of the fixed operations (`write`, `read`,
    /// `delete`, `list`, `lookup`, `inventory`, `status`); anything else is counted as `other`.
    pub fn observe(&self, system: &str, operation: &str, status: &str, seconds: f64) {
        let operation = super::SOURCE_OPERATIONS
            .iter()
            .chain(super::TARGET_OPERATIONS)
            .chain(super::INVENTORY_OPERATIONS)
            .chain(super::STATUS_OPERATIONS)
            .find(|o| **o == operation)
            .copied()
            .unwrap_or("other");
        let s = self.system(system);
        let status = STATUS_CLASSES
            .iter()
            .position(|c| *c == status)
            .unwrap_or(STATUS_CLASSES.len() - 1);
        {
            let mut r = s.requests.lock().unwrap_or_else(|e| e.into_inner());
            match r
                .iter_mut()
                .find(|(o, st, _)| *o == operation && *st == status)
            {
                Some(entry) => entry.2 += 1,
                None => r.push((operation, status, 1)),
            }
        }
        s.seconds.add(seconds);
    }

    /// Requests counted for a system, operation and status class (0 if none).
    pub fn requests(&self, system: &str, operation: &str, status: &str) -> u64 {
        let Some(s) = self
            .systems
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(system)
            .cloned()
        else {
            return 0;
        };
        let r = s.requests.lock().unwrap_or_else(|e| e.into_inner());
        r.iter()
            .filter(|(o, st, _)| *o == operation && STATUS_CLASSES[*st] == status)
            .map(|(_, _, n)| n)
            .sum()
    }

    pub fn forget(&self, system: &str) {
        self.systems
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(system);
    }

    /// Writes `lagwatch_requests_total`, `lagwatch_request_seconds_total` and
    /// `lagwatch_request_budget_used_ratio`.
    pub fn write(&self, out: &mut String, format: Format) {
        let mut systems: Vec<Arc<SystemSeries>> = self
            .systems
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        if systems.is_empty() {
            return;
        }
        systems.sort_by(|a, b| a.labels.cmp(&b.labels));
        let name = "lagwatch_requests_total";
        let start = out.len();
        expose::header(
            out,
            format,
            name,
            "Requests to monitored systems by operation and status class (or transport_error); a combination is exported from its first request.",
            Kind::Counter,
        );
        let body = out.len();
        for s in &systems {
            let mut r = s.requests.lock().unwrap_or_else(|e| e.into_inner()).clone();
            r.sort_unstable();
            for (op, status, n) in r {
                out.push_str(name);
                out.push_str("{operation=\"");
                out.push_str(op);
                out.push_str("\",status=\"");
                out.push_str(STATUS_CLASSES[status]);
                out.push_str("\",");
                out.push_str(&s.labels);
                out.push_str("} ");
                expose::int(out, n);
                out.push('\n');
            }
        }
        if out.len() == body {
            out.truncate(start);
        }
        let name = "lagwatch_request_seconds_total";
        expose::header(
            out,
            format,
            name,
            "Seconds spent in requests to a system; divided by lagwatch_requests_total, the mean request duration.",
            Kind::Counter,
        );
        for s in &systems {
            expose::sample(out, name, &s.labels, s.seconds.get());
        }
        let name = "lagwatch_request_budget_used_ratio";
        expose::header(
            out,
            format,
            name,
            "Share of a system's request budget used in the current window (1 = polls are being stretched).",
            Kind::Gauge,
        );
        for s in &systems {
            expose::sample(out, name, &s.labels, s.budget_used.get());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_falls_in_the_bucket_its_age_is_at_most() {
        let p = PathSeries::new("s", "t", shape());
        p.read_observed(0.0, true);
        p.read_observed(1.0, false);
        p.read_observed(1.000_001, false);
        p.read_observed(7200.5, true);
        assert_eq!(p.reads_in(0, true), 1);
        assert_eq!(p.reads_in(2, false), 1, "exactly on a bound: that bucket");
        assert_eq!(p.reads_in(3, false), 1);
        assert_eq!(p.reads_in(15, true), 1);
        let mut out = String::new();
        for f in FAMILIES.iter().filter(|f| f.name == "lagwatch_reads_total") {
            (f.write)(&p, &mut out, Format::Text, f.name);
        }
        assert_eq!(
            out,
            "lagwatch_reads_total{age_le=\"0.25\",result=\"fresh\",source=\"s\",target=\"t\"} 1\n\
             lagwatch_reads_total{age_le=\"+Inf\",result=\"fresh\",source=\"s\",target=\"t\"} 1\n\
             lagwatch_reads_total{age_le=\"1\",result=\"stale\",source=\"s\",target=\"t\"} 1\n\
             lagwatch_reads_total{age_le=\"2\",result=\"stale\",source=\"s\",target=\"t\"} 1\n"
        );
    }

    fn shape() -> PathShape {
        PathShape {
            objective: 30.0,
            timeout: 120.0,
            synchronous: false,
            records_apply_time: false,
            declared: [false; Contract::N],
            delete_window: None,
            canary: false,
            pairs: false,
            ordered: false,
            versions: false,
        }
    }

    #[test]
    fn buckets_are_multiples_of_the_objective_and_exemplars_follow_the_bucket() {
        let f = PathFamilies::default();
        let p = f.path("crm", "lake", shape());
        assert_eq!(p.lag.bounds(), &[3.75, 7.5, 15.0, 30.0, 60.0]);
        let ex = |s: &str, v: f64| {
            Some(Exemplar {
                sentinel: Arc::from(s),
                value: v,
                timestamp: 1_700_000_000.5,
            })
        };
        p.lag.observe(30.0, ex("a", 30.0));
        p.lag.observe(31.0, ex("b", 31.0));
        p.lag.observe(500.0, ex("c", 500.0));
        assert_eq!(p.lag.cumulative(), vec![0, 0, 0, 1, 2, 3]);
        let mut text = String::new();
        f.write(&mut text, Format::Text);
        assert!(!text.contains('#') || !text.contains("sentinel="));
        assert!(
            text.contains(
                "lagwatch_lag_seconds_bucket{source=\"crm\",target=\"lake\",le=\"30\"} 1\n"
            )
        );
        let mut om = String::new();
        f.write(&mut om, Format::OpenMetrics);
        assert!(om.contains(
            "lagwatch_lag_seconds_bucket{source=\"crm\",target=\"lake\",le=\"60\"} 2 # {sentinel=\"b\"} 31 1700000000.500\n"
        ), "{om}");
        assert!(om.contains("le=\"+Inf\"} 3 # {sentinel=\"c\"} 500 "));
        assert!(om.contains("# TYPE lagwatch_probes counter\n"));
        assert!(om.contains("# TYPE lagwatch_path_state gauge\n"));
    }

    #[test]
    fn series_exist_when_they_say_something() {
        let f = PathFamilies::default();
        let p = f.path(
            "crm",
            "fno",
            PathShape {
                synchronous: true,
                ..shape()
            },
        );
        let mut text = String::new();
        f.write(&mut text, Format::Text);
        for present in [
            "lagwatch_probes_total{outcome=\"converged\",source=\"crm\",target=\"fno\"} 0",
            "lagwatch_probes_total{outcome=\"timeout\",source=\"crm\",target=\"fno\"} 0",
            "lagwatch_probes_total{outcome=\"halted\",source=\"crm\",target=\"fno\"} 0",
            "lagwatch_path_state{source=\"crm\",state=\"idle\",target=\"fno\"} 1",
            "lagwatch_path_state{source=\"crm\",state=\"stuck\",target=\"fno\"} 0",
            "lagwatch_lag_objective_seconds{source=\"crm\",target=\"fno\"} 30",
        ] {
            assert!(text.contains(present), "{present}\n{text}");
        }
        for absent in [
            "outcome=\"error\"",
            "lagwatch_last_lag_seconds",
            "lagwatch_lookup_errors_total",
        ] {
            assert!(!text.contains(absent), "{absent}");
        }
        p.probe(3, false);
        p.lookup_error("unavailable");
        p.last_lag.set(1.5);
        p.set_state(4);
        let mut text = String::new();
        f.write(&mut text, Format::Text);
        assert!(
            text.contains(
                "lagwatch_probes_total{outcome=\"error\",source=\"crm\",target=\"fno\"} 1"
            )
        );
        assert!(text.contains(
            "lagwatch_lookup_errors_total{kind=\"unavailable\",source=\"crm\",target=\"fno\"} 1"
        ));
        assert!(text.contains("lagwatch_last_lag_seconds{source=\"crm\",target=\"fno\"} 1.5"));
        assert!(text.contains("state=\"failing\",target=\"fno\"} 1"));
    }

    #[test]
    fn a_reload_keeps_a_path_that_kept_its_shape() {
        let f = PathFamilies::default();
        let a = f.path("crm", "fno", shape());
        a.within_objective.inc();
        let b = f.path("crm", "fno", shape());
        assert_eq!(b.within_objective.get(), 1);
        let c = f.path(
            "crm",
            "fno",
            PathShape {
                objective: 10.0,
                ..shape()
            },
        );
        assert_eq!(c.within_objective.get(), 0, "new buckets, new series");
        f.forget("crm", "fno");
        let mut text = String::new();
        f.write(&mut text, Format::Text);
        assert!(text.is_empty());
    }
}
