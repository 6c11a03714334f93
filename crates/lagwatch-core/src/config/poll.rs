//! How a path polls its targets, as configured (`poll:`): the parameters the probe engine's
//! pure schedule (`probe::schedule`) works from.

use std::time::Duration;

/// Poll parameters of one path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PollPolicy {
    /// Delay from the write's acknowledgement to the first read.
    pub first: Duration,
    /// Growth of the gap between reads outside a learned window (`t × factor`).
    pub factor: f64,
    /// Largest gap between two reads outside a learned window.
    pub max_gap: Duration,
    /// Each gap is scaled by a random factor in `1 ± jitter`.
    pub jitter: f64,
    /// Relative accuracy aimed for inside a learned window (0.03 = 3 % of the lag).
    pub precision: f64,
    /// Smallest gap between two reads, whatever the precision asks for.
    pub min_gap: Duration,
    /// Reads spent climbing from the first read to the start of a learned window.
    pub approach_reads: u32,
    /// Reads that may be spent crossing a learned window; wider windows get coarser gaps.
    pub window_reads: u32,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            first: Duration::from_millis(250),
            factor: 1.5,
            max_gap: Duration::from_secs(60),
            jitter: 0.1,
            precision: 0.03,
            min_gap: Duration::from_millis(100),
            approach_reads: 2,
            window_reads: 6,
        }
    }
}
