//! When to read a target next: the poll schedule, a pure function of time since the write.
//!
//! Polling is the source of measurement error: the true arrival lies somewhere between the
//! last miss and the first hit, so the gap between two reads *is* the uncertainty. The schedule
//! spends reads where they buy accuracy:
//!
//! 1. **Dense start.** The first read comes `first` after the write is acknowledged, so a
//!    near-synchronous path (dual-write) is measured in fractions of a second.
//! 2. **Learned window.** Once a path has converged a few times, [`Expectation`] holds the range
//!    its recent lags fell in. Reads before that range climb a short geometric ladder and land
//!    exactly on its start; inside it they are spaced `2 × precision × t` apart, so the half-gap
//!    (the reported uncertainty) is about `precision` of the lag. A wide range is covered in a
//!    bounded number of reads, trading precision for cost rather than the other way round.
//! 3. **Geometric fallback.** Outside any window (no history yet, or a lag beyond what was
//!    seen), gaps grow by `factor` up to `max_gap`.
//!
//! Jitter spreads reads of many sentinels so they do not synchronise. Nothing here sleeps or
//! reads a clock; the engine passes in elapsed time and a random number.

use std::time::Duration;

use crate::config::PollPolicy;

/// The range recent lags of a path fell in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expectation {
    pub lo: Duration,
    pub hi: Duration,
}

/// Fewest converged probes before a path's history shapes its schedule.
pub const MIN_SAMPLES: usize = 4;
/// Margin added around the observed range, as a fraction of its ends...
const MARGIN: f64 = 0.05;
/// ...and as a power of its ratio (max / min).
const SPREAD_MARGIN: f64 = 0.1;

impl Expectation {
    /// The window learned from recent lag estimates, or `None` with too little history.
    pub fn from_recent(lags: &[Duration]) -> Option<Expectation> {
        if lags.len() < MIN_SAMPLES {
            return None;
        }
        let min = lags.iter().min()?.as_secs_f64().max(1e-3);
        let max = lags.iter().max()?.as_secs_f64().max(min);
        // A wide spread says the next lag may well fall outside what was seen: widen with it,
        // on a log scale, so a wide window still starts well above zero.
        let widen = (max / min).powf(SPREAD_MARGIN);
        let lo = min * (1.0 - MARGIN) / widen;
        let hi = max * (1.0 + MARGIN) * widen;
        Some(Expectation {
            lo: Duration::from_secs_f64(lo),
            hi: Duration::from_secs_f64(hi),
        })
    }
}

fn jittered(gap: f64, policy: &PollPolicy, unit: f64) -> f64 {
    gap * (1.0 + policy.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0))
}

/// The offset (from the write's acknowledgement) of the next read, given the previous read's
/// offset. `unit` is a uniform random number in `[0, 1]` for jitter.
pub fn next_offset(
    prev: Option<Duration>,
    policy: &PollPolicy,
    expect: Option<&Expectation>,
    unit: f64,
) -> Duration {
    let Some(prev) = prev else {
        return policy.first;
    };
    let t = prev.as_secs_f64();
    let min_gap = policy.min_gap.as_secs_f64();
    if let Some(e) = expect {
        let lo = e.lo.as_secs_f64();
        let hi = e.hi.as_secs_f64();
        if t < lo {
            // Climb towards the window in `approach_reads` geometric steps and land on its start.
            let first = policy.first.as_secs_f64().max(min_gap);
            let ratio = (lo / first).max(1.0);
            let step = ratio.powf(1.0 / f64::from(policy.approach_reads.max(1)));
            let next = (t * step).max(t + min_gap);
            let next = t + jittered(next - t, policy, unit);
            return Duration::from_secs_f64(if next >= lo * (1.0 - MARGIN) {
                lo.max(t + min_gap)
            } else {
                next
            });
        }
        if t < hi {
            let spread = (hi / lo.max(policy.first.as_secs_f64()).max(min_gap)).max(1.0);
            let needed = (spread.powf(1.0 / f64::from(policy.window_reads.max(1))) - 1.0) / 2.0;
            // Never coarser than the geometric fallback would be.
            let coarsest = ((policy.factor - 1.0) / 2.0).max(policy.precision);
            let precision = needed.clamp(policy.precision, coarsest);
            // Jitter only shortens gaps here, so the precision promised is kept.
            let gap = (2.0 * precision * t).max(min_gap);
            let gap = (gap * (1.0 - policy.jitter * unit.clamp(0.0, 1.0))).max(min_gap);
            return Duration::from_secs_f64(t + gap);
        }
    }
    let gap = ((policy.factor - 1.0) * t).clamp(min_gap, policy.max_gap.as_secs_f64());
    let gap = jittered(gap, policy, unit).max(min_gap);
    Duration::from_secs_f64(t + gap)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(policy: &PollPolicy, expect: Option<&Expectation>, until: Duration) -> Vec<f64> {
        let mut out = Vec::new();
        let mut prev = None;
        loop {
            let next = next_offset(prev, policy, expect, 0.5);
            if next > until {
                return out;
            }
            out.push(next.as_secs_f64());
            prev = Some(next);
        }
    }

    #[test]
    fn first_read_is_dense_and_gaps_grow_geometrically_to_the_cap() {
        let p = PollPolicy {
            jitter: 0.0,
            ..PollPolicy::default()
        };
        let o = offsets(&p, None, Duration::from_secs(600));
        assert_eq!(o[0], 0.25);
        assert!((o[1] - 0.375).abs() < 1e-9, "{o:?}");
        for w in o.windows(3) {
            let (g1, g2) = (w[1] - w[0], w[2] - w[1]);
            assert!(g2 >= g1 - 1e-9, "gaps never shrink: {o:?}");
            assert!(g2 <= 60.0 + 1e-9, "gaps are capped: {o:?}");
        }
        let last_gaps: Vec<f64> = o.windows(2).map(|w| w[1] - w[0]).rev().take(3).collect();
        assert!(
            last_gaps.iter().all(|g| (g - 60.0).abs() < 1e-6),
            "{last_gaps:?}"
        );
    }

    #[test]
    fn geometric_phase_bounds_relative_error_by_the_factor() {
        let p = PollPolicy {
            jitter: 0.0,
            max_gap: Duration::from_secs(100_000),
            ..PollPolicy::default()
        };
        let o = offsets(&p, None, Duration::from_secs(3600));
        for w in o.windows(2).filter(|w| w[0] > 2.0) {
            assert!((w[1] / w[0] - 1.5).abs() < 1e-6, "{w:?}");
        }
    }

    #[test]
    fn jitter_stays_within_its_bounds_and_never_goes_backwards() {
        let p = PollPolicy::default();
        for unit in [0.0, 0.25, 0.5, 1.0] {
            let mut prev = Some(Duration::from_secs(10));
            let next = next_offset(prev, &p, None, unit).as_secs_f64();
            let gap = next - 10.0;
            assert!((4.5 - 1e-9..=5.5 + 1e-9).contains(&gap), "{unit}: {gap}");
            prev = Some(Duration::from_secs_f64(next));
            assert!(next_offset(prev, &p, None, unit) > prev.unwrap());
        }
    }

    #[test]
    fn learned_window_is_reached_in_few_reads_and_crossed_densely() {
        let p = PollPolicy {
            jitter: 0.0,
            ..PollPolicy::default()
        };
        let e = Expectation {
            lo: Duration::from_secs(3420),
            hi: Duration::from_secs(3780),
        };
        let o = offsets(&p, Some(&e), Duration::from_secs(3780));
        let before: Vec<_> = o.iter().filter(|t| **t < 3420.0).collect();
        assert!(before.len() <= 1 + p.approach_reads as usize, "{o:?}");
        assert!(o.contains(&3420.0), "lands on the window start: {o:?}");
        for w in o.windows(2).filter(|w| w[0] >= 3420.0) {
            let half_gap = (w[1] - w[0]) / 2.0;
            assert!(half_gap <= 0.03 * w[1] + 1e-6, "{w:?}");
        }
        let inside = o.iter().filter(|t| **t >= 3420.0).count();
        assert!(inside <= p.window_reads as usize + 1, "{o:?}");
    }

    #[test]
    fn wide_windows_cost_a_bounded_number_of_reads() {
        let p = PollPolicy {
            jitter: 0.0,
            ..PollPolicy::default()
        };
        let e = Expectation {
            lo: Duration::from_secs(2),
            hi: Duration::from_secs(200),
        };
        let o = offsets(&p, Some(&e), Duration::from_secs(200));
        let inside: Vec<f64> = o.iter().copied().filter(|t| *t >= 2.0).collect();
        // Crossing 2 s to 200 s in 6 reads would mean gaps of 115 % of t; the schedule never
        // gets coarser than its geometric fallback (factor 1.5), so it spends more reads...
        for w in inside.windows(2) {
            assert!(w[1] / w[0] <= 1.5 + 1e-9, "{w:?}");
        }
        // ...but no more than that fallback would.
        let fallback_reads = (100f64.ln() / 1.5f64.ln()).ceil() as usize + 1;
        assert!(inside.len() <= fallback_reads, "{o:?}");
    }

    #[test]
    fn past_the_window_it_falls_back_to_geometric() {
        let p = PollPolicy {
            jitter: 0.0,
            ..PollPolicy::default()
        };
        let e = Expectation {
            lo: Duration::from_secs(10),
            hi: Duration::from_secs(11),
        };
        let next = next_offset(Some(Duration::from_secs(20)), &p, Some(&e), 0.5);
        assert_eq!(next, Duration::from_secs(30));
    }

    #[test]
    fn expectation_needs_history_and_adds_a_margin() {
        let s = |v: &[u64]| {
            v.iter()
                .map(|x| Duration::from_secs(*x))
                .collect::<Vec<_>>()
        };
        assert_eq!(Expectation::from_recent(&s(&[10, 11, 12])), None);
        let e = Expectation::from_recent(&s(&[10, 11, 12, 20])).unwrap();
        let widen = 2f64.powf(0.1);
        assert!((e.lo.as_secs_f64() - 9.5 / widen).abs() < 1e-6, "{e:?}");
        assert!((e.hi.as_secs_f64() - 21.0 * widen).abs() < 1e-6, "{e:?}");
        // A wide history still gives a window well above zero.
        let e = Expectation::from_recent(&s(&[3, 10, 30, 300])).unwrap();
        assert!(e.lo.as_secs_f64() > 1.5, "{e:?}");
    }
}
