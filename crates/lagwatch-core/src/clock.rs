//! Clock offset of a monitored system relative to lagwatch, from HTTP `Date` headers.
//!
//! A response's `Date` (whole seconds) was stamped by the server between the instant the
//! request left and the instant the answer arrived, so one exchange bounds the offset
//! (server − local) to `[date − received, date + 1 s − sent]`. As in NTP's clock filter, many
//! exchanges at different sub-second phases narrow it: the offset is in the intersection of
//! their intervals. If the intersection becomes empty (the offset moved: a clock was stepped
//! or drifted), only the newest samples are kept. Last-write-wins integrations break when this
//! offset grows, so it is exported per system with its uncertainty.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

use prometheus::Gauge;

use crate::metrics::Metrics;

/// Bounds on the offset, in seconds (server clock minus lagwatch's clock).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OffsetBounds {
    pub lo: f64,
    pub hi: f64,
}

impl OffsetBounds {
    pub fn midpoint(&self) -> f64 {
        (self.lo + self.hi) / 2.0
    }
    pub fn half_width(&self) -> f64 {
        (self.hi - self.lo) / 2.0
    }
}

fn unix(t: SystemTime) -> f64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// The bounds one exchange gives: `date` has one-second resolution.
pub fn bounds(sent: SystemTime, received: SystemTime, date: SystemTime) -> OffsetBounds {
    let d = unix(date);
    OffsetBounds {
        lo: d - unix(received),
        hi: d + 1.0 - unix(sent),
    }
}

/// Parses an HTTP `Date` header (IMF-fixdate, RFC 9110).
pub fn parse_http_date(v: &str) -> Option<SystemTime> {
    let t = chrono::DateTime::parse_from_rfc2822(v.trim()).ok()?;
    let secs = u64::try_from(t.timestamp()).ok()?;
    Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// Samples kept for the intersection.
const WINDOW: usize = 32;

/// Tracks one system's offset and exports it.
pub struct ClockTracker {
    system: String,
    metrics: Metrics,
    samples: Mutex<VecDeque<OffsetBounds>>,
    offset: Gauge,
    uncertainty: Gauge,
}

impl ClockTracker {
    pub fn new(system: &str, metrics: &Metrics) -> Self {
        ClockTracker {
            system: system.to_string(),
            metrics: metrics.clone(),
            samples: Mutex::new(VecDeque::with_capacity(WINDOW)),
            offset: metrics.clock_offset.with_label_values(&[system]),
            uncertainty: metrics
                .clock_offset_uncertainty
                .with_label_values(&[system]),
        }
    }

    /// Adds one exchange and updates the exported estimate.
    pub fn observe(&self, sample: OffsetBounds) -> OffsetBounds {
        let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        s.push_back(sample);
        while s.len() > WINDOW {
            s.pop_front();
        }
        let best = loop {
            let lo = s.iter().map(|b| b.lo).fold(f64::MIN, f64::max);
            let hi = s.iter().map(|b| b.hi).fold(f64::MAX, f64::min);
            if lo <= hi {
                break OffsetBounds { lo, hi };
            }
            // Inconsistent: the offset changed. Forget the oldest until consistent again.
            s.pop_front();
        };
        self.offset.set(best.midpoint());
        self.metrics.set_clock_offset(&self.system, best.midpoint());
        self.uncertainty.set(best.half_width());
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: f64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs)
    }

    #[test]
    fn one_exchange_bounds_the_offset() {
        // Server 2.3 s ahead; request sent at 100.0, answered at 100.2 local.
        // The server stamped during [102.3, 102.5] → Date 102.
        let b = bounds(at(100.0), at(100.2), at(102.0));
        assert!(
            (b.lo - 1.8).abs() < 1e-9 && (b.hi - 3.0).abs() < 1e-9,
            "{b:?}"
        );
        assert!(b.lo <= 2.3 && 2.3 <= b.hi);
    }

    #[test]
    fn many_exchanges_narrow_it_and_a_step_resets_it() {
        let m = Metrics::new();
        let t = ClockTracker::new("x", &m);
        let true_offset = 2.3;
        let mut last = None;
        for i in 0..32 {
            let sent = 1000.0 + f64::from(i) * 1.37;
            let served = sent + 0.05 + true_offset;
            let b = bounds(at(sent), at(sent + 0.1), at(served.floor()));
            last = Some(t.observe(b));
        }
        let est = last.unwrap();
        assert!(est.lo <= true_offset && true_offset <= est.hi, "{est:?}");
        assert!(est.half_width() < 0.15, "narrowed to {est:?}");
        // The server's clock is stepped by −10 s.
        let mut est = est;
        for i in 0..5 {
            let sent = 2000.0 + f64::from(i) * 1.37;
            let served = sent + 0.05 + true_offset - 10.0;
            est = t.observe(bounds(at(sent), at(sent + 0.1), at(served.floor())));
        }
        assert!(
            est.lo <= true_offset - 10.0 && true_offset - 10.0 <= est.hi,
            "{est:?}"
        );
    }

    #[test]
    fn http_dates_parse() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(unix(t), 784_111_777.0);
        assert!(parse_http_date("yesterday").is_none());
    }
}
