//! Progress of one reconciliation run while it reads, for `lagwatch reconcile` on a terminal:
//! pages and rows per side as they arrive ([`Observer`]), the read rate, and an ETA from the
//! row counts of the previous run ([`Expected`], remembered beside the entry's state under
//! `state_dir`). The model is pure; drawing it is the command line's business.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Told of every page a run reads. Called on the runtime: keep it cheap.
pub trait Observer: Send + Sync {
    /// `side` ("source" or "target") starts reading (before its first page is asked for).
    fn side_start(&self, _side: &'static str) {}
    /// `side` has read `pages` pages and `rows` rows so far.
    fn page(&self, side: &'static str, pages: u64, rows: u64);
    /// `side` has read its last page.
    fn side_done(&self, _side: &'static str) {}
}

/// An observer that ignores everything (the scheduled runs of `lagwatch run`).
pub struct Unobserved;

impl Observer for Unobserved {
    fn page(&self, _side: &'static str, _pages: u64, _rows: u64) {}
}

/// How many rows each side had in the previous run: what this run probably reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Expected {
    pub source_rows: u64,
    pub target_rows: u64,
}

impl Expected {
    /// The rows expected of `side`.
    pub fn of(&self, side: &str) -> u64 {
        if side == "source" {
            self.source_rows
        } else {
            self.target_rows
        }
    }

    /// Where an entry whose state is kept at `state_file` remembers its row counts.
    pub fn file_beside(state_file: &Path) -> PathBuf {
        state_file.with_extension("progress.json")
    }

    /// The counts remembered at `file`; `None` when there are none (a first run) or the file
    /// cannot be read (progress then shows no ETA; nothing else depends on it).
    pub fn load(file: &Path) -> Option<Expected> {
        let text = std::fs::read_to_string(file).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Remembers the counts at `file`, creating its folder.
    ///
    /// # Errors
    /// The I/O error of creating the folder or writing the file.
    pub fn save(&self, file: &Path) -> std::io::Result<()> {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = serde_json::to_string(self).map_err(std::io::Error::other)?;
        std::fs::write(file, text)
    }
}

/// What one side has read, against what it is expected to read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SideProgress {
    pub pages: u64,
    pub rows: u64,
    /// Rows of the previous run, if known.
    pub expected: Option<u64>,
    /// Time spent reading this side so far.
    pub elapsed: Duration,
}

impl SideProgress {
    /// Rows a second so far; `None` before any time has passed.
    pub fn rate(&self) -> Option<f64> {
        let secs = self.elapsed.as_secs_f64();
        (secs > 0.0).then(|| self.rows as f64 / secs)
    }

    /// Time left at the rate so far to read the rows of the previous run: `None` without a
    /// previous run or a rate, zero once as many rows as then were read (the table grew: the
    /// rest is unknown).
    pub fn eta(&self) -> Option<Duration> {
        let expected = self.expected?;
        let rate = self.rate().filter(|r| *r > 0.0)?;
        let left = expected.saturating_sub(self.rows) as f64;
        Some(Duration::from_secs_f64(left / rate))
    }

    /// "12 pages, 6000 rows, 1500 rows/s, ETA 4s" (what is known of it).
    pub fn describe(&self) -> String {
        let mut parts = self.read();
        if let Some(eta) = self.eta() {
            parts.push(format!("ETA {}", short(eta)));
        }
        parts.join(", ")
    }

    /// "12 pages, 6000 rows, 1500 rows/s, done in 4s": a side read to its end.
    pub fn describe_done(&self) -> String {
        let mut parts = self.read();
        parts.push(format!("done in {}", short(self.elapsed)));
        parts.join(", ")
    }

    fn read(&self) -> Vec<String> {
        let mut parts = vec![
            format!("{} pages", self.pages),
            format!("{} rows", self.rows),
        ];
        if let Some(r) = self.rate() {
            parts.push(format!("{r:.0} rows/s"));
        }
        parts
    }
}

/// A duration in whole seconds, minutes and hours: `45s`, `3m20s`, `1h05m`.
pub fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(rows: u64, expected: Option<u64>, secs: u64) -> SideProgress {
        SideProgress {
            pages: rows / 500,
            rows,
            expected,
            elapsed: Duration::from_secs(secs),
        }
    }

    #[test]
    fn the_eta_is_what_is_left_of_the_previous_run_at_the_rate_so_far() {
        // 2000 rows in 4 s: 500 rows/s; 8000 left of 10000.
        let p = side(2000, Some(10_000), 4);
        assert_eq!(p.rate(), Some(500.0));
        assert_eq!(p.eta(), Some(Duration::from_secs(16)));
        assert_eq!(p.describe(), "4 pages, 2000 rows, 500 rows/s, ETA 16s");
        assert_eq!(
            p.describe_done(),
            "4 pages, 2000 rows, 500 rows/s, done in 4s"
        );
    }

    #[test]
    fn no_eta_without_a_previous_run_or_a_rate_and_zero_past_it() {
        assert_eq!(side(2000, None, 4).eta(), None);
        assert_eq!(side(0, Some(10), 0).eta(), None);
        assert_eq!(side(0, Some(10), 3).eta(), None, "no rows yet: no rate");
        assert_eq!(side(12, Some(10), 3).eta(), Some(Duration::ZERO));
        assert_eq!(
            side(2000, None, 4).describe(),
            "4 pages, 2000 rows, 500 rows/s"
        );
    }

    #[test]
    fn durations_read_short() {
        assert_eq!(short(Duration::from_secs(45)), "45s");
        assert_eq!(short(Duration::from_secs(200)), "3m20s");
        assert_eq!(short(Duration::from_secs(3900)), "1h05m");
    }

    #[test]
    fn expected_counts_are_remembered_beside_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("reconcile/crm/lake/accounts.json");
        let file = Expected::file_beside(&state);
        assert_eq!(
            file,
            dir.path().join("reconcile/crm/lake/accounts.progress.json")
        );
        assert_eq!(Expected::load(&file), None);
        let e = Expected {
            source_rows: 7,
            target_rows: 5,
        };
        e.save(&file).unwrap();
        assert_eq!(Expected::load(&file), Some(e));
        assert_eq!(e.of("source"), 7);
        assert_eq!(e.of("target"), 5);
    }
}
