//! The reconciliation metric families, registered with every other lagwatch metric.
//!
//! Labels: `source`, `target` (configured system names), `table` (the entry's configured
//! name), `kind` (missing, extra, stale, mismatched), `persistence` (transient, persistent),
//! `outcome` (success, error). No key ever becomes a label: keys are in the API.

use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// Values of the `kind` label, in the order of `reconcile::diff::Kind`, whose `label()` reads
/// them from here: one list for the exporter and the comparison.
pub const DISCREPANCY_KINDS: [&str; 4] = ["missing", "extra", "stale", "mismatched"];

/// Run duration buckets, 100 ms to 1 h.
pub const DURATION_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
pub const PERSISTENCE: [&str; 2] = ["transient", "persistent"];
pub const RUN_OUTCOMES: [&str; 2] = ["success", "error"];

#[derive(Clone)]
pub struct ReconcileMetrics {
    pub discrepancies: IntGaugeVec,
    pub healed: IntCounterVec,
    pub runs: IntCounterVec,
    pub duration: HistogramVec,
    pub rows_compared: IntCounterVec,
    pub unsettled: IntGaugeVec,
    pub last_success: GaugeVec,
    pub settle_window: GaugeVec,
    pub interval: GaugeVec,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // Registration fails only for malformed names or duplicates: static programming errors.
    r.expect("static metric definition is valid")
}

impl ReconcileMetrics {
    pub fn register(registry: &Registry) -> ReconcileMetrics {
        let entry = &["source", "target", "table"];
        let igauge = |name: &str, help: &str, labels: &[&str]| {
            let g = must(IntGaugeVec::new(Opts::new(name, help), labels));
            must(registry.register(Box::new(g.clone())));
            g
        };
        let gauge = |name: &str, help: &str| {
            let g = must(GaugeVec::new(Opts::new(name, help), entry));
            must(registry.register(Box::new(g.clone())));
            g
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = must(IntCounterVec::new(Opts::new(name, help), labels));
            must(registry.register(Box::new(c.clone())));
            c
        };
        let duration = must(HistogramVec::new(
            HistogramOpts::new(
                "lagwatch_reconcile_duration_seconds",
                "Duration of reconciliation runs (reading both sides, sorting, comparing).",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            entry,
        ));
        must(registry.register(Box::new(duration.clone())));
        ReconcileMetrics {
            discrepancies: igauge(
                "lagwatch_discrepancies",
                "Keys that differ between source and replica at the last run, past the settle window, by kind (missing, extra, stale, mismatched) and persistence (persistent: also discrepant in the previous run).",
                &["source", "target", "table", "kind", "persistence"],
            ),
            healed: counter(
                "lagwatch_discrepancies_healed_total",
                "Keys reported discrepant by a run that agree at the next one, by the kind they had.",
                &["source", "target", "table", "kind"],
            ),
            runs: counter(
                "lagwatch_reconcile_runs_total",
                "Reconciliation runs by outcome (success, error).",
                &["source", "target", "table", "outcome"],
            ),
            duration,
            rows_compared: counter(
                "lagwatch_reconcile_rows_compared_total",
                "Keys compared by reconciliation runs (present on either side and in scope).",
                entry,
            ),
            unsettled: igauge(
                "lagwatch_reconcile_unsettled",
                "Keys that differed at the last run but changed inside the settle window: possibly still in flight, not judged.",
                entry,
            ),
            last_success: gauge(
                "lagwatch_reconcile_last_success_timestamp_seconds",
                "Unix time the last successful reconciliation run finished (0 before the first).",
            ),
            settle_window: gauge(
                "lagwatch_reconcile_settle_window_seconds",
                "Settle window of the last run: differences changed more recently were not judged (max of the floor and twice the path's recent p99 lag).",
            ),
            interval: gauge(
                "lagwatch_reconcile_interval_seconds",
                "Configured time between reconciliation runs.",
            ),
        }
    }

    /// Creates every series of one entry at 0.
    pub fn init(&self, source: &str, target: &str, table: &str, interval_seconds: f64) {
        let e = &[source, target, table];
        for kind in DISCREPANCY_KINDS {
            for p in PERSISTENCE {
                self.discrepancies
                    .with_label_values(&[source, target, table, kind, p]);
            }
            self.healed
                .with_label_values(&[source, target, table, kind]);
        }
        for o in RUN_OUTCOMES {
            self.runs.with_label_values(&[source, target, table, o]);
        }
        self.duration.with_label_values(e);
        self.rows_compared.with_label_values(e);
        self.unsettled.with_label_values(e);
        self.last_success.with_label_values(e);
        self.settle_window.with_label_values(e);
        self.interval.with_label_values(e).set(interval_seconds);
    }

    /// Removes every series of an entry a reloaded configuration no longer has.
    pub fn forget(&self, source: &str, target: &str, table: &str) {
        let e = &[source, target, table];
        for kind in DISCREPANCY_KINDS {
            for p in PERSISTENCE {
                let _ = self
                    .discrepancies
                    .remove_label_values(&[source, target, table, kind, p]);
            }
            let _ = self
                .healed
                .remove_label_values(&[source, target, table, kind]);
        }
        for o in RUN_OUTCOMES {
            let _ = self.runs.remove_label_values(&[source, target, table, o]);
        }
        let _ = self.duration.remove_label_values(e);
        let _ = self.rows_compared.remove_label_values(e);
        let _ = self.unsettled.remove_label_values(e);
        let _ = self.last_success.remove_label_values(e);
        let _ = self.settle_window.remove_label_values(e);
        let _ = self.interval.remove_label_values(e);
    }
}
