//! Every metric lagwatch exports, with its HELP text and unit: the low-cardinality families
//! here, in a `prometheus` registry; the per-path and per-system bulk in [`series`], written
//! directly (every user's Prometheus pays for each sample, every scrape).
//!
//! The names and label sets are a public contract: dashboards, alert rules and users depend on
//! them. Label values are configured names (source, target, system) or fixed enums (outcome,
//! operation, status, kind); a sentinel id never becomes a label (it is an exemplar). A series
//! that alerts compare exists at 0 from start-up, so `rate()`, `increase()` and `absent()`
//! behave from the first scrape; one that only counts events appears with the first.

pub mod conflict;
pub mod expose;
pub mod platform;
pub mod reconcile;
pub mod series;

pub use expose::Format;

use prometheus::{
    CounterVec, Gauge, GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Outcomes of a sentinel write.
/// Kinds of `lagwatch_token_errors_total`.
pub const TOKEN_ERROR_KINDS: [&str; 2] = ["transport", "auth"];

pub const WRITE_OUTCOMES: &[&str] = &["ok", "error", "throttled"];

/// Operations a source performs.
pub const SOURCE_OPERATIONS: &[&str] = &["write", "read", "delete", "list", "update"];
/// Operations a target performs.
pub const TARGET_OPERATIONS: &[&str] = &["lookup"];
/// Operations of a system that lists its rows for reconciliation (one page per request).
pub const INVENTORY_OPERATIONS: &[&str] = &["inventory"];
/// Operations of a system read for its platform's own status (`platform_status:`).
pub const STATUS_OPERATIONS: &[&str] = &["status"];
/// The metric families. Cheap to clone (every field is reference-counted).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// The per-path families (most of the samples), written directly.
    pub paths: std::sync::Arc<series::PathFamilies>,
    /// Request counts and durations per system, written directly.
    pub systems: std::sync::Arc<series::SystemFamilies>,
    /// Size of the last exposition, to size the next one.
    last_size: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub writes: IntCounterVec,
    pub deletes: IntCounterVec,
    pub ryw_violations: IntCounterVec,
    pub throttled: IntCounterVec,
    /// Calls given up before they were sent because the gate did not admit them in time.
    pub admission_timeouts: IntCounterVec,
    pub throttle_wait: CounterVec,
    pub system_up: IntGaugeVec,
    pub clock_offset: GaugeVec,
    pub clock_offset_uncertainty: GaugeVec,
    pub lake_objects_listed: IntCounterVec,
    pub lake_bytes_read: IntCounterVec,
    pub lake_last_folder: GaugeVec,
    pub build_info: IntGaugeVec,
    /// 1 while the probe ledger persists, 0 after it failed to open or write; no series
    /// without a `state_dir` (nothing to persist by configuration).
    pub ledger_up: IntGaugeVec,
    pub token_errors: IntCounterVec,
    pub ledger_errors: IntCounterVec,
    pub sentinels_lost: IntCounterVec,
    /// Sentinel deletes not yet confirmed, per source (set from the engine at each scrape).
    pub deletes_owed: IntGaugeVec,
    /// 1 when the last configuration reload succeeded (or none was tried), 0 when the last
    /// one was rejected and the previous configuration is still running.
    pub config_reload_successful: IntGauge,
    /// Unix time of the last successful configuration load (start-up or reload).
    pub config_reload_success_timestamp: Gauge,
    /// Always 1, labelled with this process's shard index and total (`--shard`).
    pub shard_info: IntGaugeVec,
    /// The total number of shards this process was told.
    pub shard_count: IntGauge,
    /// 1 while another live process writes sentinels under this process's instance name.
    pub instance_conflict: IntGauge,
    /// The reconciliation families (`lagwatch_discrepancies`, `lagwatch_reconcile_*`).
    pub reconcile: reconcile::ReconcileMetrics,
    /// The conflict probe families (`lagwatch_conflict_*`).
    pub conflict: conflict::ConflictMetrics,
    /// The platform status families (`lagwatch_platform_*`, `lagwatch_status_verdict`).
    pub platform: platform::PlatformMetrics,
    /// Latest clock offset estimate per system (seconds, its clock minus ours), for the
    /// engine to correct timestamps a system wrote (see `clock::ClockTracker`).
    offsets: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, f64>>>,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // Registration fails only for malformed names or duplicates: static programming errors.
    r.expect("static metric definition is valid")
}

impl Metrics {
    /// Creates and registers every family (including process metrics on Linux).
    pub fn new() -> Self {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = must(GaugeVec::new(Opts::new(name, help), labels));
            must(registry.register(Box::new(g.clone())));
            g
        };
        let igauge = |name: &str, help: &str, labels: &[&str]| {
            let g = must(IntGaugeVec::new(Opts::new(name, help), labels));
            must(registry.register(Box::new(g.clone())));
            g
        };
        let plain = |name: &str, help: &str| {
            let g = must(IntGauge::with_opts(Opts::new(name, help)));
            must(registry.register(Box::new(g.clone())));
            g
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = must(IntCounterVec::new(Opts::new(name, help), labels));
            must(registry.register(Box::new(c.clone())));
            c
        };
        let m = Metrics {
            writes: counter(
                "lagwatch_sentinel_writes_total",
                "Sentinel writes to a source by outcome (ok, error, throttled).",
                &["source", "outcome"],
            ),
            deletes: counter(
                "lagwatch_sentinel_deletes_total",
                "Sentinel deletions (cleanup and start-up sweep) by outcome (ok, error).",
                &["source", "outcome"],
            ),
            ryw_violations: counter(
                "lagwatch_read_your_writes_violations_total",
                "Sentinels the source itself did not return when read right after it acknowledged the write.",
                &["source"],
            ),
            throttled: counter(
                "lagwatch_throttled_total",
                "Throttling responses (HTTP 429) from a system; lagwatch then sends it nothing until Retry-After has passed.",
                &["system"],
            ),
            admission_timeouts: counter(
                "lagwatch_admission_timeouts_total",
                "Calls to a system that lagwatch gave up before sending because its own admission control (a throttling pause, the request budget or the concurrency cap) did not let them through in time. Nothing was sent; not throttling by the system.",
                &["system"],
            ),
            throttle_wait: {
                let c = must(CounterVec::new(
                    Opts::new(
                        "lagwatch_throttle_wait_seconds_total",
                        "Time calls spent waiting for a system's throttling pause, request budget or concurrency slot.",
                    ),
                    &["system"],
                ));
                must(registry.register(Box::new(c.clone())));
                c
            },
            system_up: igauge(
                "lagwatch_system_up",
                "1 if the last request to a system got an answer below HTTP 500, 0 if it failed in transport, timed out or got a 5xx; exported from the first request on.",
                &["system"],
            ),
            clock_offset: gauge(
                "lagwatch_clock_offset_seconds",
                "Clock offset of a system (its clock minus lagwatch's), from HTTP Date headers; exported once measured.",
                &["system"],
            ),
            clock_offset_uncertainty: gauge(
                "lagwatch_clock_offset_uncertainty_seconds",
                "Half-width of the bounds on lagwatch_clock_offset_seconds.",
                &["system"],
            ),
            lake_objects_listed: counter(
                "lagwatch_lake_objects_listed_total",
                "Folders and files listed while scanning a lake target for new data (per poll cost).",
                &["target"],
            ),
            lake_bytes_read: counter(
                "lagwatch_lake_bytes_read_total",
                "Bytes read from a lake target's files (manifests, change logs, data).",
                &["target"],
            ),
            lake_last_folder: gauge(
                "lagwatch_lake_last_folder_timestamp_seconds",
                "Time of a lake target's newest data: its newest complete incremental folder (synapse_link_csv, layout incremental), the last-modified time of its newest partition file (layout table), or its newest commit (delta); an old value means the lake is stuck.",
                &["target"],
            ),
            build_info: igauge(
                "lagwatch_build_info",
                "Always 1; labels carry the version and source revision of this build.",
                &["version", "revision"],
            ),
            token_errors: counter(
                "lagwatch_token_errors_total",
                "Requests to a system that could not be sent because no Entra ID token could be had, by kind: transport (token endpoint unreachable, 5xx, or garbage) or auth (credentials refused). The system itself was not contacted.",
                &["system", "kind"],
            ),
            ledger_up: igauge(
                "lagwatch_ledger_up",
                "1 while the probe ledger (state_dir/ledger.sqlite) persists in-flight sentinels, 0 after it failed to open or to write: a restart then loses their measurements. Absent without a state_dir.",
                &[],
            ),
            ledger_errors: counter(
                "lagwatch_ledger_errors_total",
                "Probe ledger operations that failed, by operation (open, write).",
                &["operation"],
            ),
            sentinels_lost: counter(
                "lagwatch_sentinels_lost_total",
                "Sentinels of this instance the start-up sweep found in a source that the ledger did not know (lost by a ledger that was down, or written before it existed); deleted.",
                &["source"],
            ),
            deletes_owed: igauge(
                "lagwatch_sentinel_deletes_owed",
                "Sentinels this process still has to delete from a source (a delete that failed, or a write whose fate is unknown), retried every 30 s; exported while there are any. Growing means sentinel records are piling up in the source.",
                &["source"],
            ),
            config_reload_successful: plain(
                "lagwatch_config_last_reload_successful",
                "1 if the last configuration reload (SIGHUP or POST /-/reload) succeeded or none was tried, 0 if it was rejected and the previous configuration is still running.",
            ),
            config_reload_success_timestamp: {
                let g = must(Gauge::with_opts(Opts::new(
                    "lagwatch_config_last_reload_success_timestamp_seconds",
                    "Unix time of the last successful configuration load: start-up, then every accepted reload.",
                )));
                must(registry.register(Box::new(g.clone())));
                g
            },
            shard_info: igauge(
                "lagwatch_shard_info",
                "Always 1; labels carry this process's shard index (from 0) and the total number of shards it was told (--shard or shard:). Members of one job that disagree on the total, or a missing index, leave paths unmeasured.",
                &["index", "total"],
            ),
            shard_count: plain(
                "lagwatch_total_shards",
                "The total number of shards this process was told (1 when not sharded).",
            ),
            instance_conflict: plain(
                "lagwatch_instance_conflict",
                "1 when sentinels under this process's instance name appeared in a source that this process did not write: another live lagwatch uses the same instance name against the same source. Give each process its own instance name.",
            ),
            reconcile: reconcile::ReconcileMetrics::register(&registry),
            conflict: conflict::ConflictMetrics::register(&registry),
            platform: platform::PlatformMetrics::register(&registry),
            registry,
            paths: std::sync::Arc::default(),
            systems: std::sync::Arc::default(),
            last_size: std::sync::Arc::default(),
            offsets: std::sync::Arc::default(),
        };
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), crate::REVISION])
            .set(1);
        // The configuration this registry is created for was loaded just now.
        m.config_reloaded(true);
        m.set_shard(crate::config::Shard::default());
        #[cfg(target_os = "linux")]
        {
            let pc = prometheus::process_collector::ProcessCollector::for_self();
            // A second registration of the process collector is impossible here: one registry.
            let _ = m.registry.register(Box::new(pc));
        }
        m
    }

    /// Records the result of a configuration load: on success the gauge goes to 1 and the
    /// timestamp to now; on failure only the gauge drops to 0, so the timestamp keeps saying
    /// since when the running configuration is in force.
    pub fn config_reloaded(&self, ok: bool) {
        self.config_reload_successful.set(i64::from(ok));
        if ok {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default();
            self.config_reload_success_timestamp.set(now);
        }
    }

    /// Exports the shard this process measures (replacing a shard a reload changed).
    pub fn set_shard(&self, shard: crate::config::Shard) {
        self.shard_info.reset();
        self.shard_info
            .with_label_values(&[&shard.index.to_string(), &shard.total.to_string()])
            .set(1);
        self.shard_count.set(i64::from(shard.total));
    }

    /// Removes every series of a path that a reloaded configuration no longer has, so a
    /// removed path does not linger in `/metrics` (and in alerts) with its last values.
    pub fn forget_path(&self, source: &str, target: &str) {
        self.paths.forget(source, target);
    }

    /// Removes the series of a source that no path of a reloaded configuration writes to.
    pub fn forget_source(&self, source: &str) {
        for o in WRITE_OUTCOMES {
            let _ = self.writes.remove_label_values(&[source, o]);
        }
        for o in ["ok", "error"] {
            let _ = self.deletes.remove_label_values(&[source, o]);
        }
        let _ = self.ryw_violations.remove_label_values(&[source]);
        let _ = self.sentinels_lost.remove_label_values(&[source]);
        let _ = self.deletes_owed.remove_label_values(&[source]);
    }

    /// Removes the series of a system a reloaded configuration no longer has.
    pub fn forget_system(&self, system: &str) {
        let _ = self.throttled.remove_label_values(&[system]);
        let _ = self.throttle_wait.remove_label_values(&[system]);
        let _ = self.system_up.remove_label_values(&[system]);
        let _ = self.clock_offset.remove_label_values(&[system]);
        let _ = self.clock_offset_uncertainty.remove_label_values(&[system]);
        let _ = self.lake_objects_listed.remove_label_values(&[system]);
        let _ = self.lake_bytes_read.remove_label_values(&[system]);
        let _ = self.lake_last_folder.remove_label_values(&[system]);
        for kind in TOKEN_ERROR_KINDS {
            let _ = self.token_errors.remove_label_values(&[system, kind]);
        }
        self.systems.forget(system);
        self.offsets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(system);
    }

    /// Remembers the latest clock offset estimate of `system`.
    pub fn set_clock_offset(&self, system: &str, seconds: f64) {
        self.offsets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(system.to_string(), seconds);
    }

    /// The latest clock offset estimate of `system` (its clock minus lagwatch's), once measured.
    pub fn clock_offset_of(&self, system: &str) -> Option<f64> {
        self.offsets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(system)
            .copied()
    }

    /// Creates the series of one source that exist from start-up (the ones alerts compare).
    pub fn init_source(&self, source: &str) {
        // `throttled` writes appear with the first 429 (the throttling alert compares rates
        // over 30 minutes: the first one alone decides nothing).
        for o in ["ok", "error"] {
            self.writes.with_label_values(&[source, o]);
        }
        for o in ["ok", "error"] {
            self.deletes.with_label_values(&[source, o]);
        }
        self.ryw_violations.with_label_values(&[source]);
    }

    /// Creates the series of one system that exist from start-up: its request budget use and
    /// the time spent in its requests. Request counts, throttling and waits appear with their
    /// first event.
    pub fn init_system(&self, system: &str) {
        self.systems.system(system);
    }

    /// Records one request to a monitored system.
    pub fn observe_request(&self, system: &str, operation: &str, status: &str, seconds: f64) {
        self.systems.observe(system, operation, status, seconds);
    }

    /// `lagwatch_requests_total` of a system, operation and status class (0 before any).
    pub fn requests(&self, system: &str, operation: &str, status: &str) -> u64 {
        self.systems.requests(system, operation, status)
    }

    /// Renders the text exposition format 0.0.4.
    pub fn render(&self) -> String {
        self.render_as(Format::Text)
    }

    /// Renders the exposition in `format`: the directly written families, then the registry's.
    pub fn render_as(&self, format: Format) -> String {
        // Sized like the last one: a large exposition is written without regrowing.
        let hint = self.last_size.load(std::sync::atomic::Ordering::Relaxed);
        let mut out = String::with_capacity(hint + hint / 8 + 4096);
        self.paths.write(&mut out, format);
        self.systems.write(&mut out, format);
        expose::gathered(&mut out, format, &self.registry.gather());
        if format == Format::OpenMetrics {
            out.push_str("# EOF\n");
        }
        self.last_size
            .store(out.len(), std::sync::atomic::Ordering::Relaxed);
        out
    }

    /// The content type of [`Metrics::render`].
    pub fn content_type() -> &'static str {
        Format::Text.content_type()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
