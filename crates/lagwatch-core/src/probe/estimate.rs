//! The lag estimate and its stated bound.
//!
//! Write at `sent`, acknowledged at `acked`; the last read that missed was sent at `miss`, the
//! first read that hit was answered at `hit`. The record became visible after the miss was
//! served and before the hit was served; the write committed between `sent` and `acked`. So
//! the true lag lies in `[miss − acked, hit − sent]`. We report the midpoint and half the
//! interval, which makes "the true lag is within the stated uncertainty" a checkable claim.

use std::time::Duration;

use tokio::time::Instant;

/// A lag with its half-width: the true lag is in `[lag − uncertainty, lag + uncertainty]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LagEstimate {
    pub lag: Duration,
    pub uncertainty: Duration,
}

impl LagEstimate {
    pub fn lower(&self) -> Duration {
        self.lag.saturating_sub(self.uncertainty)
    }
    pub fn upper(&self) -> Duration {
        self.lag + self.uncertainty
    }
    /// Whether `truth` lies inside the stated bound (with `slack` for clock granularity).
    pub fn contains(&self, truth: Duration, slack: Duration) -> bool {
        truth + slack >= self.lower() && truth <= self.upper() + slack
    }
}

/// Builds the estimate; a miss sent before the write was acknowledged gives a lower bound of 0.
pub fn estimate(
    sent: Instant,
    acked: Instant,
    last_miss_sent: Option<Instant>,
    first_hit_answered: Instant,
) -> LagEstimate {
    let lower = last_miss_sent
        .map(|m| m.saturating_duration_since(acked))
        .unwrap_or(Duration::ZERO);
    let upper = first_hit_answered
        .saturating_duration_since(sent)
        .max(lower);
    let half = (upper - lower) / 2;
    LagEstimate {
        lag: lower + half,
        uncertainty: half,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn midpoint_and_half_width() {
        let b = Instant::now();
        // sent 0, acked 100, miss sent at 1100, hit answered at 2100.
        let e = estimate(b, at(b, 100), Some(at(b, 1100)), at(b, 2100));
        assert_eq!(e.lower(), Duration::from_millis(1000));
        assert_eq!(e.upper(), Duration::from_millis(2100));
        assert_eq!(e.lag, Duration::from_millis(1550));
        assert_eq!(e.uncertainty, Duration::from_millis(550));
    }

    #[test]
    fn no_miss_means_it_may_have_been_immediate() {
        let b = Instant::now();
        let e = estimate(b, at(b, 50), None, at(b, 300));
        assert_eq!(e.lower(), Duration::ZERO);
        assert_eq!(e.upper(), Duration::from_millis(300));
        assert!(e.contains(Duration::ZERO, Duration::ZERO));
        assert!(!e.contains(Duration::from_millis(301), Duration::ZERO));
    }

    #[test]
    fn a_miss_before_the_ack_gives_no_negative_bound() {
        let b = Instant::now();
        let e = estimate(b, at(b, 200), Some(at(b, 100)), at(b, 400));
        assert_eq!(e.lower(), Duration::ZERO);
    }
}
