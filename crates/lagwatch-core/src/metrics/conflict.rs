//! The conflict probe families (`conflicts:`), registered with every other lagwatch metric.
//!
//! Labels: `a`, `b` (the configured systems, in the order of `between`) and `outcome` (the
//! fixed list below). The canary's key is never a label: it is in `/api/v1/conflicts` and in
//! the WARN line of every probe that did not end `converged_same`.

use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// Outcomes of a conflict probe, as `docs/conflicts.md` defines them.
pub const OUTCOMES: [&str; 5] = [
    "converged_same",
    "diverged",
    "policy_violated",
    "rejected",
    "error",
];

/// Time-to-agreement buckets, 100 ms to 30 min: dual-write agrees in about a second, a queued
/// link in minutes.
pub const AGREEMENT_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

#[derive(Clone)]
pub struct ConflictMetrics {
    pub probes: IntCounterVec,
    pub agreement: HistogramVec,
    pub skew: GaugeVec,
    pub spread: GaugeVec,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // Registration fails only for malformed names or duplicates: static programming errors.
    r.expect("static metric definition is valid")
}

impl ConflictMetrics {
    pub fn register(registry: &Registry) -> ConflictMetrics {
        let probes = must(IntCounterVec::new(
            Opts::new(
                "lagwatch_conflict_probes_total",
                "Conflict probes by outcome: converged_same (both sides ended on one value, not the one the policy says loses), diverged (different values at the timeout), policy_violated (one value, the one the policy says loses), rejected (a side refused its update as a conflict), error.",
            ),
            &["a", "b", "outcome"],
        ));
        must(registry.register(Box::new(probes.clone())));
        let agreement = must(HistogramVec::new(
            HistogramOpts::new(
                "lagwatch_conflict_agreement_seconds",
                "Time from the later acknowledgement of a conflict probe's two updates until both sides showed the same value (the first of two agreeing reads of both sides).",
            )
            .buckets(AGREEMENT_BUCKETS.to_vec()),
            &["a", "b"],
        ));
        must(registry.register(Box::new(agreement.clone())));
        let skew = must(GaugeVec::new(
            Opts::new(
                "lagwatch_conflict_skew_seconds",
                "Clock skew between the two systems of a conflict probe at its last probe: a's clock minus b's, from lagwatch's clock offset estimates. Last-writer-wins decides on these clocks, so a skew larger than the time between two updates can keep the earlier one.",
            ),
            &["a", "b"],
        ));
        must(registry.register(Box::new(skew.clone())));
        let spread = must(GaugeVec::new(
            Opts::new(
                "lagwatch_conflict_spread_seconds",
                "Configured time between a conflict probe's two updates (0: sent together); a skew above it can turn last-writer-wins around.",
            ),
            &["a", "b"],
        ));
        must(registry.register(Box::new(spread.clone())));
        ConflictMetrics {
            probes,
            agreement,
            skew,
            spread,
        }
    }

    /// Creates the series an alert compares at 0, and the configured spread.
    pub fn init(&self, a: &str, b: &str, spread_seconds: f64) {
        for o in OUTCOMES {
            self.probes.with_label_values(&[a, b, o]);
        }
        self.agreement.with_label_values(&[a, b]);
        self.spread.with_label_values(&[a, b]).set(spread_seconds);
    }

    /// Removes a pair a reloaded configuration no longer probes.
    pub fn forget(&self, a: &str, b: &str) {
        for o in OUTCOMES {
            let _ = self.probes.remove_label_values(&[a, b, o]);
        }
        let _ = self.agreement.remove_label_values(&[a, b]);
        let _ = self.skew.remove_label_values(&[a, b]);
        let _ = self.spread.remove_label_values(&[a, b]);
    }
}
