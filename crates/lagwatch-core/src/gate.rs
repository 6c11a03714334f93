//! Per-system admission control: throttling (429 + Retry-After), a concurrency cap, and a
//! request budget over a sliding window.
//!
//! The engine asks the gate before every call to a system ([`Gate::admit`]) and waits there,
//! *before* it takes the timestamps a lag estimate is built from, so waiting stretches the poll
//! schedule but never inflates a measured lag. The connector layer tells the gate about every
//! request it actually sent ([`Gate::record_request`]) and about throttling it met
//! ([`Gate::throttled`]). While a system is throttled nothing is sent to it at all: Dataverse
//! lengthens the penalty of clients that keep sending.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use prometheus::{CounterVec, IntCounterVec};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Limits;
use crate::metrics::Metrics;

#[derive(Debug, Default)]
struct State {
    throttled_until: Option<Instant>,
    sent: VecDeque<Instant>,
    /// A cleanup request sent during shutdown was throttled: send no more of them.
    cleanup_refused: bool,
}

/// Why [`Gate::admit_within`] gave up without a permit. Nothing was sent, and this is not
/// throttling by the system: it must never pause the system or count as a 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotAdmitted {
    /// The gate's own wait (a throttling pause, the budget, the concurrency cap) outlasted the
    /// caller's limit; counted in `lagwatch_admission_timeouts_total`.
    #[error("not admitted by lagwatch's own limits for this system in time")]
    TimedOut,
    /// Shutdown began while waiting.
    #[error("shutting down")]
    ShuttingDown,
}

/// The gate of one system. Shared by every path and source using that system.
pub struct Gate {
    limits: Limits,
    slots: std::sync::Arc<Semaphore>,
    state: Mutex<State>,
    /// These three are created with their first event: a healthy system carries no zeros.
    throttled_total: IntCounterVec,
    admission_timeouts: IntCounterVec,
    wait_seconds: CounterVec,
    system: String,
    series: std::sync::Arc<crate::metrics::series::SystemSeries>,
}

/// Held while a call is in flight; dropping it frees the concurrency slot.
pub struct Permit {
    _slot: OwnedSemaphorePermit,
}

impl Gate {
    pub fn new(system: &str, limits: Limits, metrics: &Metrics) -> Self {
        Gate {
            slots: std::sync::Arc::new(Semaphore::new(limits.max_concurrency.max(1) as usize)),
            limits,
            state: Mutex::new(State::default()),
            throttled_total: metrics.throttled.clone(),
            admission_timeouts: metrics.admission_timeouts.clone(),
            wait_seconds: metrics.throttle_wait.clone(),
            system: system.to_owned(),
            series: metrics.systems.system(system),
        }
    }

    /// A gate with default limits and throwaway metrics, for tests and tools.
    pub fn unlimited_for_tests() -> Self {
        Gate::new(
            "test",
            Limits {
                max_concurrency: 1024,
                requests: u32::MAX,
                ..Limits::default()
            },
            &Metrics::new(),
        )
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long a new request must wait now, if at all.
    fn wait_needed(&self, now: Instant) -> Option<Instant> {
        let mut s = self.state();
        let window = self.limits.per.get();
        while s
            .sent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            s.sent.pop_front();
        }
        let throttle = s.throttled_until.filter(|t| *t > now);
        let budget = (s.sent.len() >= self.limits.requests as usize)
            .then(|| s.sent.front().map(|t| *t + window))
            .flatten();
        match (throttle, budget) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Waits until a request may be sent: not throttled, within budget, a slot free. Only a
    /// real wait is counted in `lagwatch_throttle_wait_seconds_total`.
    pub async fn admit(&self) -> Permit {
        let started = Instant::now();
        let mut waited = false;
        while let Some(until) = self.wait_needed(Instant::now()) {
            waited = true;
            tokio::time::sleep_until(until).await;
        }
        let slot = match self.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                waited = true;
                self.slots
                    .clone()
                    .acquire_owned()
                    .await
                    .unwrap_or_else(|_| unreachable!("the gate's semaphore is never closed"))
            }
        };
        if waited {
            self.wait_seconds
                .with_label_values(&[&self.system])
                .inc_by(started.elapsed().as_secs_f64());
        }
        Permit { _slot: slot }
    }

    /// Waits for admission as [`Gate::admit`] does, but at most `limit` and only until
    /// `shutdown`. A timeout is counted as an admission timeout of this system, never as
    /// throttling.
    ///
    /// # Errors
    /// [`NotAdmitted`] when no permit came in time or shutdown began.
    pub async fn admit_within(
        &self,
        limit: Duration,
        shutdown: &CancellationToken,
    ) -> Result<Permit, NotAdmitted> {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => Err(NotAdmitted::ShuttingDown),
            p = tokio::time::timeout(limit, self.admit()) => p.map_err(|_| {
                self.admission_timeouts.with_label_values(&[&self.system]).inc();
                NotAdmitted::TimedOut
            }),
        }
    }

    /// Admission for the deletes lagwatch sends once while it shuts down: only the
    /// concurrency cap applies, not a throttling pause or the budget, because the process is
    /// leaving and a sentinel left behind stays in the user's data. Once one of them is
    /// throttled ([`Gate::refuse_cleanup`]) no further one is admitted; `None` then, or when
    /// no slot frees within `limit`.
    pub async fn admit_for_cleanup(&self, limit: Duration) -> Option<Permit> {
        if self.state().cleanup_refused {
            return None;
        }
        let slot = tokio::time::timeout(limit, self.slots.clone().acquire_owned())
            .await
            .ok()?
            .ok()?;
        Some(Permit { _slot: slot })
    }

    /// A cleanup request sent during shutdown was throttled: no more are admitted.
    pub fn refuse_cleanup(&self) {
        self.state().cleanup_refused = true;
    }

    /// Counts one request actually sent to the system (budget accounting).
    pub fn record_request(&self) {
        let now = Instant::now();
        let mut s = self.state();
        s.sent.push_back(now);
        let cap = self.limits.requests as usize;
        while s.sent.len() > cap.saturating_add(1024) {
            s.sent.pop_front();
        }
    }

    /// The system answered 429: send nothing more until `retry_after` has passed.
    pub fn throttled(&self, retry_after: Option<Duration>) {
        self.throttled_total
            .with_label_values(&[&self.system])
            .inc();
        let cap = self.limits.max_retry_after.get();
        let pause = match retry_after {
            Some(asked) if asked > cap => {
                tracing::warn!(asked = ?asked, cap = ?cap, "A Retry-After longer than limits.max_retry_after; pausing for the maximum instead.");
                cap
            }
            Some(asked) => asked,
            None => self.limits.default_retry_after.get().min(cap),
        };
        let until = Instant::now() + pause;
        let mut s = self.state();
        s.throttled_until = Some(s.throttled_until.map_or(until, |t| t.max(until)));
    }

    /// Share of the request budget used in the current window (0 to 1 and beyond).
    pub fn used_share(&self) -> f64 {
        let now = Instant::now();
        let window = self.limits.per.get();
        let s = self.state();
        let used = s
            .sent
            .iter()
            .filter(|t| now.saturating_duration_since(**t) < window)
            .count();
        used as f64 / f64::from(self.limits.requests.max(1))
    }

    /// Share of the request budget used in the current window, refreshed for scrapes.
    pub fn refresh(&self) {
        self.series.budget_used.set(self.used_share());
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dur;

    fn gate(requests: u32, per: u64) -> Gate {
        Gate::new(
            "g",
            Limits {
                max_concurrency: 2,
                requests,
                per: Dur::secs(per),
                default_retry_after: Dur::secs(7),
                max_retry_after: Dur::secs(600),
            },
            &Metrics::new(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_beyond_the_maximum_pauses_for_the_maximum() {
        let g = gate(100, 60);
        g.throttled(Some(Duration::from_secs(86_400)));
        let t0 = Instant::now();
        let _p = g.admit().await;
        assert_eq!(t0.elapsed(), Duration::from_secs(600));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_stops_all_sending_until_it_passes() {
        let g = gate(100, 60);
        g.throttled(Some(Duration::from_secs(37)));
        let t0 = Instant::now();
        let _p = g.admit().await;
        assert_eq!(t0.elapsed(), Duration::from_secs(37));
        g.throttled(None);
        let t1 = Instant::now();
        let _q = g.admit().await;
        assert_eq!(
            t1.elapsed(),
            Duration::from_secs(7),
            "default pause without Retry-After"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_stretches_instead_of_failing() {
        let g = gate(3, 10);
        let t0 = Instant::now();
        for _ in 0..3 {
            let _p = g.admit().await;
            g.record_request();
        }
        assert_eq!(t0.elapsed(), Duration::ZERO);
        let _p = g.admit().await;
        assert_eq!(
            t0.elapsed(),
            Duration::from_secs(10),
            "waits for the window to slide"
        );
        g.refresh();
        assert!((g.series.budget_used.get() - 0.0).abs() < 1e-9);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_capped() {
        let g = std::sync::Arc::new(gate(100, 60));
        let a = g.admit().await;
        let _b = g.admit().await;
        let g2 = g.clone();
        let third = tokio::spawn(async move {
            let _c = g2.admit().await;
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!third.is_finished(), "a third call waits for a slot");
        drop(a);
        third.await.unwrap();
    }
}
