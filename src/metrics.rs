//! Every metric lagwatch exports, declared in one place with its HELP text and unit.
//!
//! The names and label sets here are a public contract: dashboards, alert rules and users
//! depend on them. Label values are configured names (source, target, system) or fixed enums
//! (outcome, operation, status, kind); a sentinel id never becomes a label. Every series that
//! can exist is created at start-up at 0, so `rate()` and `absent()` behave from the first
//! scrape.

use prometheus::{
    CounterVec, Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Lag buckets, 50 ms to 24 h, with common objectives (1 s, 5 s, 30 s, 1 m, 5 m, 15 m, 1 h) as
/// bucket bounds, so quantiles near them are sharp and rules can fall back on the bucket at the
/// objective; `lagwatch_probes_within_objective_total` is exact for any objective.
pub const LAG_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0,
    1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0,
];

/// Request duration buckets, 10 ms to 30 s (few: one histogram per system and operation).
pub const REQUEST_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Outcomes of a probe on one path.
pub const OUTCOMES: &[&str] = &["converged", "timeout", "mismatch", "error", "halted"];
/// Outcomes of a sentinel write.
pub const WRITE_OUTCOMES: &[&str] = &["ok", "error", "throttled"];
/// Status classes of a request.
pub const STATUS_CLASSES: &[&str] = &["2xx", "4xx", "5xx", "transport_error"];
/// Operations a source performs.
pub const SOURCE_OPERATIONS: &[&str] = &["write", "read", "delete", "list"];
/// Operations a target performs.
pub const TARGET_OPERATIONS: &[&str] = &["lookup"];
/// Operations of a system that lists its rows for reconciliation (one page per request).
pub const INVENTORY_OPERATIONS: &[&str] = &["inventory"];
/// Error kinds of a failed lookup (see `ConnectorError::kind`). Their series appear on the
/// first error, so a healthy path does not carry six zero series.
pub const ERROR_KINDS: &[&str] = &[
    "throttled",
    "auth",
    "transport",
    "unavailable",
    "bad_response",
    "timeout",
];

/// The metric families. Cheap to clone (every field is reference-counted).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub lag: HistogramVec,
    pub last_lag: GaugeVec,
    pub lag_uncertainty: GaugeVec,
    pub staleness: GaugeVec,
    pub last_converged: GaugeVec,
    pub probes: IntCounterVec,
    pub in_flight: IntGaugeVec,
    pub objective: GaugeVec,
    pub timeout: GaugeVec,
    pub within_objective: IntCounterVec,
    pub probes_skipped: IntCounterVec,
    pub lookup_errors: IntCounterVec,
    pub writes: IntCounterVec,
    pub deletes: IntCounterVec,
    pub ryw_violations: IntCounterVec,
    pub monotonic_violations: IntCounterVec,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub throttled: IntCounterVec,
    /// Calls given up before they were sent because the gate did not admit them in time.
    pub admission_timeouts: IntCounterVec,
    pub throttle_wait: CounterVec,
    pub budget_used: GaugeVec,
    pub system_up: IntGaugeVec,
    pub clock_offset: GaugeVec,
    pub clock_offset_uncertainty: GaugeVec,
    pub lake_objects_listed: IntCounterVec,
    pub lake_bytes_read: IntCounterVec,
    pub lake_last_folder: GaugeVec,
    pub apply_lag: HistogramVec,
    pub build_info: IntGaugeVec,
    /// 1 while the probe ledger persists, 0 after it failed to open or write; no series
    /// without a `state_dir` (nothing to persist by configuration).
    pub ledger_up: IntGaugeVec,
    pub token_errors: IntCounterVec,
    pub ledger_errors: IntCounterVec,
    pub probes_resumed: IntCounterVec,
    pub sentinels_lost: IntCounterVec,
    /// Sentinel deletes not yet confirmed, per source (set from the engine at each scrape).
    pub deletes_owed: IntGaugeVec,
    /// 1 when the last configuration reload succeeded (or none was tried), 0 when the last
    /// one was rejected and the previous configuration is still running.
    pub config_reload_successful: IntGauge,
    /// Unix time of the last successful configuration load (start-up or reload).
    pub config_reload_success_timestamp: Gauge,
    /// The reconciliation families (`lagwatch_discrepancies`, `lagwatch_reconcile_*`).
    pub reconcile: crate::reconcile::metrics::ReconcileMetrics,
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
        let path = &["source", "target"];
        let hist = |name: &str, help: &str, buckets: &[f64], labels: &[&str]| {
            let h = must(HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                labels,
            ));
            must(registry.register(Box::new(h.clone())));
            h
        };
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
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = must(IntCounterVec::new(Opts::new(name, help), labels));
            must(registry.register(Box::new(c.clone())));
            c
        };
        let m = Metrics {
            lag: hist(
                "lagwatch_lag_seconds",
                "Replication lag of converged sentinels: midpoint of the interval the arrival is known to lie in.",
                LAG_BUCKETS,
                path,
            ),
            last_lag: gauge(
                "lagwatch_last_lag_seconds",
                "Lag of the most recently converged sentinel.",
                path,
            ),
            lag_uncertainty: gauge(
                "lagwatch_lag_uncertainty_seconds",
                "Half-width of the last lag estimate: the true lag is within last_lag plus or minus this.",
                path,
            ),
            staleness: gauge(
                "lagwatch_staleness_seconds",
                "Age of the oldest sentinel not yet seen at the target, 0 when none is pending; rises in real time while a path is stuck.",
                path,
            ),
            last_converged: gauge(
                "lagwatch_last_converged_timestamp_seconds",
                "Unix time at which the last sentinel was seen at the target (0 if never).",
                path,
            ),
            probes: counter(
                "lagwatch_probes_total",
                "Resolved probes by outcome: converged, timeout (a read sent at or after the deadline answered absent), mismatch (seen with other content), error (never seen, and the reads at the deadline failed: unknown), halted (still missing from a synchronous target such as dual-write after its grace: the replication is not running).",
                &["source", "target", "outcome"],
            ),
            in_flight: igauge(
                "lagwatch_probes_in_flight",
                "Sentinels of the path written (or being written) and not yet resolved.",
                path,
            ),
            objective: gauge(
                "lagwatch_lag_objective_seconds",
                "Configured lag objective of the path, so one alert rule serves every path.",
                path,
            ),
            within_objective: counter(
                "lagwatch_probes_within_objective_total",
                "Probes of the path that converged with a lag (the midpoint estimate, as in lagwatch_lag_seconds) at or below the path's objective: the good events of an objective, exact for any objective.",
                path,
            ),
            timeout: gauge(
                "lagwatch_probe_timeout_seconds",
                "Configured timeout of the path: a sentinel not seen by then counts as not converged. Lets alerts say \"no convergence for N timeouts\" with one rule for every path.",
                path,
            ),
            probes_skipped: counter(
                "lagwatch_probes_skipped_total",
                "Sentinel writes skipped for a path because max_in_flight sentinels were already pending.",
                path,
            ),
            lookup_errors: counter(
                "lagwatch_lookup_errors_total",
                "Failed target lookups by error kind (no lag is ever derived from these).",
                &["source", "target", "kind"],
            ),
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
            monotonic_violations: counter(
                "lagwatch_monotonic_read_violations_total",
                "Sentinels a target showed and then lost again within the confirmation window.",
                path,
            ),
            requests: counter(
                "lagwatch_requests_total",
                "Requests to monitored systems by operation and status class (or transport_error).",
                &["system", "operation", "status"],
            ),
            request_duration: hist(
                "lagwatch_request_duration_seconds",
                "Duration of requests to monitored systems.",
                REQUEST_BUCKETS,
                &["system", "operation"],
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
            budget_used: gauge(
                "lagwatch_request_budget_used_ratio",
                "Share of a system's request budget used in the current window (1 = polls are being stretched).",
                &["system"],
            ),
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
            apply_lag: hist(
                "lagwatch_apply_lag_seconds",
                "Lag by the target's own clock: the time the target's pipeline says it applied a sentinel (a lake's SinkCreatedOn) minus its write time, corrected by the source's clock offset. Exported for targets that record it.",
                LAG_BUCKETS,
                path,
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
            probes_resumed: counter(
                "lagwatch_probes_resumed_total",
                "Probes an earlier process left in flight, resumed from the ledger and ended by this one, by outcome. Their lags are measured on the wall clock across the restart and are not in lagwatch_lag_seconds.",
                &["source", "target", "outcome"],
            ),
            sentinels_lost: counter(
                "lagwatch_sentinels_lost_total",
                "Sentinels of this instance the start-up sweep found in a source that the ledger did not know (lost by a ledger that was down, or written before it existed); deleted.",
                &["source"],
            ),
            deletes_owed: igauge(
                "lagwatch_sentinel_deletes_owed",
                "Sentinels this process still has to delete from a source (a delete that failed, or a write whose fate is unknown), retried every 30 s. Growing means sentinel records are piling up in the source.",
                &["source"],
            ),
            config_reload_successful: {
                let g = must(IntGauge::with_opts(Opts::new(
                    "lagwatch_config_last_reload_successful",
                    "1 if the last configuration reload (SIGHUP or POST /-/reload) succeeded or none was tried, 0 if it was rejected and the previous configuration is still running.",
                )));
                must(registry.register(Box::new(g.clone())));
                g
            },
            config_reload_success_timestamp: {
                let g = must(Gauge::with_opts(Opts::new(
                    "lagwatch_config_last_reload_success_timestamp_seconds",
                    "Unix time of the last successful configuration load: start-up, then every accepted reload.",
                )));
                must(registry.register(Box::new(g.clone())));
                g
            },
            reconcile: crate::reconcile::metrics::ReconcileMetrics::register(&registry),
            registry,
            offsets: std::sync::Arc::default(),
        };
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), crate::REVISION])
            .set(1);
        // The configuration this registry is created for was loaded just now.
        m.config_reloaded(true);
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

    /// Removes every series of a path that a reloaded configuration no longer has, so a
    /// removed path does not linger in `/metrics` (and in alerts) with its last values.
    pub fn forget_path(&self, source: &str, target: &str) {
        let l = &[source, target];
        let _ = self.lag.remove_label_values(l);
        let _ = self.last_lag.remove_label_values(l);
        let _ = self.lag_uncertainty.remove_label_values(l);
        let _ = self.staleness.remove_label_values(l);
        let _ = self.last_converged.remove_label_values(l);
        let _ = self.in_flight.remove_label_values(l);
        let _ = self.objective.remove_label_values(l);
        let _ = self.timeout.remove_label_values(l);
        let _ = self.within_objective.remove_label_values(l);
        let _ = self.probes_skipped.remove_label_values(l);
        let _ = self.monotonic_violations.remove_label_values(l);
        let _ = self.apply_lag.remove_label_values(l);
        for o in OUTCOMES {
            let _ = self.probes.remove_label_values(&[source, target, o]);
            let _ = self
                .probes_resumed
                .remove_label_values(&[source, target, o]);
        }
        for kind in crate::connector::ConnectorError::KINDS {
            let _ = self
                .lookup_errors
                .remove_label_values(&[source, target, kind]);
        }
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
        let _ = self.budget_used.remove_label_values(&[system]);
        let _ = self.system_up.remove_label_values(&[system]);
        let _ = self.clock_offset.remove_label_values(&[system]);
        let _ = self.clock_offset_uncertainty.remove_label_values(&[system]);
        let _ = self.lake_objects_listed.remove_label_values(&[system]);
        let _ = self.lake_bytes_read.remove_label_values(&[system]);
        let _ = self.lake_last_folder.remove_label_values(&[system]);
        for kind in crate::net::TOKEN_ERROR_KINDS {
            let _ = self.token_errors.remove_label_values(&[system, kind]);
        }
        let ops = SOURCE_OPERATIONS
            .iter()
            .chain(TARGET_OPERATIONS)
            .chain(INVENTORY_OPERATIONS);
        for op in ops {
            let _ = self.request_duration.remove_label_values(&[system, op]);
            for st in STATUS_CLASSES {
                let _ = self.requests.remove_label_values(&[system, op, st]);
            }
        }
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

    /// Creates every series of one path at 0.
    pub fn init_path(
        &self,
        source: &str,
        target: &str,
        objective_seconds: f64,
        timeout_seconds: f64,
    ) {
        let l = &[source, target];
        self.lag.with_label_values(l);
        self.last_lag.with_label_values(l);
        self.lag_uncertainty.with_label_values(l);
        self.staleness.with_label_values(l);
        self.last_converged.with_label_values(l);
        self.in_flight.with_label_values(l);
        self.probes_skipped.with_label_values(l);
        self.within_objective.with_label_values(l);
        self.monotonic_violations.with_label_values(l);
        self.objective.with_label_values(l).set(objective_seconds);
        self.timeout.with_label_values(l).set(timeout_seconds);
        for o in OUTCOMES {
            self.probes.with_label_values(&[source, target, o]);
            self.probes_resumed.with_label_values(&[source, target, o]);
        }
        for kind in crate::connector::ConnectorError::KINDS {
            self.lookup_errors
                .with_label_values(&[source, target, kind]);
        }
    }

    /// Creates every series of one source at 0.
    pub fn init_source(&self, source: &str) {
        for o in WRITE_OUTCOMES {
            self.writes.with_label_values(&[source, o]);
        }
        for o in ["ok", "error"] {
            self.deletes.with_label_values(&[source, o]);
        }
        self.ryw_violations.with_label_values(&[source]);
        self.sentinels_lost.with_label_values(&[source]);
        self.deletes_owed.with_label_values(&[source]);
    }

    /// Creates the request series of one system at 0.
    pub fn init_system(&self, system: &str, operations: &[&str]) {
        self.throttled.with_label_values(&[system]);
        self.throttle_wait.with_label_values(&[system]);
        self.budget_used.with_label_values(&[system]);
        for op in operations {
            self.request_duration.with_label_values(&[system, op]);
            for st in STATUS_CLASSES {
                self.requests.with_label_values(&[system, op, st]);
            }
        }
    }

    /// Records one request to a monitored system.
    pub fn observe_request(&self, system: &str, operation: &str, status: &str, seconds: f64) {
        self.requests
            .with_label_values(&[system, operation, status])
            .inc();
        self.request_duration
            .with_label_values(&[system, operation])
            .observe(seconds);
    }

    /// Renders the text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut buf = Vec::with_capacity(64 * 1024);
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "Encoding metrics failed.");
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    /// The content type of [`Metrics::render`].
    pub fn content_type() -> &'static str {
        "text/plain; version=0.0.4; charset=utf-8"
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
