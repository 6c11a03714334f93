//! The platform status families (`platform_status:` on a path): what the platform claims, and
//! the verdict beside the canary.
//!
//! Labels: `source`, `target` (the path), `surface` (the configured surface's name), `state`
//! (the fixed [`ClaimState`] list), `verdict` (the fixed list of `probe::platform::Verdict`),
//! `kind` (a connector error kind). State sets export 1 on the current value, 0 on the others.

use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::connector::status::ClaimState;

/// Values of the `verdict` label, in the order of `probe::platform::Verdict::ALL`.
pub const VERDICTS: [&str; 6] = [
    "agree",
    "explained",
    "healthy_but_stuck",
    "watermark_passed_canary_missing",
    "status_stale",
    "unknown",
];

#[derive(Clone)]
pub struct PlatformMetrics {
    pub state: IntGaugeVec,
    pub last_sync: GaugeVec,
    pub watermark: GaugeVec,
    pub last_read: GaugeVec,
    pub errors: IntCounterVec,
    pub verdict: IntGaugeVec,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // Registration fails only for malformed names or duplicates: static programming errors.
    r.expect("static metric definition is valid")
}

impl PlatformMetrics {
    pub fn register(registry: &Registry) -> PlatformMetrics {
        let igauge = |name: &str, help: &str, labels: &[&str]| {
            let g = must(IntGaugeVec::new(Opts::new(name, help), labels));
            must(registry.register(Box::new(g.clone())));
            g
        };
        let gauge = |name: &str, help: &str| {
            let g = must(GaugeVec::new(
                Opts::new(name, help),
                &["source", "target", "surface"],
            ));
            must(registry.register(Box::new(g.clone())));
            g
        };
        let errors = must(IntCounterVec::new(
            Opts::new(
                "lagwatch_platform_status_errors_total",
                "Failed reads of a path's platform status surface, by error kind (auth: grant the permission docs/platform-status.md names for the surface; bad_response: an answer lagwatch cannot read). A failed read leaves the verdict unknown and never changes a probe.",
            ),
            &["source", "target", "surface", "kind"],
        ));
        must(registry.register(Box::new(errors.clone())));
        PlatformMetrics {
            state: igauge(
                "lagwatch_platform_state",
                "What the platform's own status surface says of the path's replication (state set: 1 on the current state of healthy, error, paused, not_running, unknown).",
                &["source", "target", "surface", "state"],
            ),
            last_sync: gauge(
                "lagwatch_platform_last_sync_timestamp_seconds",
                "Unix time of the last sync the platform claims (on lagwatch's clock: the platform's time minus the system's clock offset); for a surface that counts syncs, the latest read that saw a new one.",
            ),
            watermark: gauge(
                "lagwatch_platform_watermark",
                "The row version the platform says it has synced up to (Dataverse versionnumber space), where the surface has one.",
            ),
            last_read: gauge(
                "lagwatch_platform_last_read_timestamp_seconds",
                "Unix time of the last successful read of the path's platform status surface (0 before the first): reads failing since then leave the verdict unknown.",
            ),
            errors,
            verdict: igauge(
                "lagwatch_status_verdict",
                "The path's canary judged beside its platform's claim (state set): agree, explained (stuck, and the platform knows), healthy_but_stuck (stuck while the platform claims a sync after the write), watermark_passed_canary_missing, status_stale (data flows, the platform's status does not), unknown.",
                &["source", "target", "verdict"],
            ),
        }
    }

    /// Creates the state sets at 0 (and `unknown` verdict at 1) and the last read at 0 for a
    /// path's surface.
    pub fn init(&self, source: &str, target: &str, surface: &str) {
        self.last_read
            .with_label_values(&[source, target, surface])
            .set(0.0);
        for s in ClaimState::ALL {
            self.state
                .with_label_values(&[source, target, surface, s.label()]);
        }
        for v in VERDICTS {
            self.verdict
                .with_label_values(&[source, target, v])
                .set(i64::from(v == "unknown"));
        }
    }

    /// Exports a claim: its state, its last sync (on lagwatch's clock) and watermark.
    pub fn claimed(
        &self,
        (source, target, surface): (&str, &str, &str),
        state: ClaimState,
        last_sync: Option<chrono::DateTime<chrono::Utc>>,
        watermark: Option<u64>,
    ) {
        for s in ClaimState::ALL {
            self.state
                .with_label_values(&[source, target, surface, s.label()])
                .set(i64::from(s == state));
        }
        self.last_read
            .with_label_values(&[source, target, surface])
            .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
        if let Some(t) = last_sync {
            self.last_sync
                .with_label_values(&[source, target, surface])
                .set(t.timestamp_millis() as f64 / 1000.0);
        }
        if let Some(w) = watermark {
            self.watermark
                .with_label_values(&[source, target, surface])
                .set(w as f64);
        }
    }

    /// Sets the verdict state set to `verdict`.
    pub fn verdict(&self, source: &str, target: &str, verdict: &str) {
        for v in VERDICTS {
            self.verdict
                .with_label_values(&[source, target, v])
                .set(i64::from(v == verdict));
        }
    }

    /// Removes a path's series when a reload drops its surface.
    pub fn forget(&self, source: &str, target: &str, surface: &str) {
        for s in ClaimState::ALL {
            let _ = self
                .state
                .remove_label_values(&[source, target, surface, s.label()]);
        }
        for v in VERDICTS {
            let _ = self.verdict.remove_label_values(&[source, target, v]);
        }
        let _ = self
            .last_sync
            .remove_label_values(&[source, target, surface]);
        let _ = self
            .watermark
            .remove_label_values(&[source, target, surface]);
    }
}
