//! `lagwatch reconcile`'s progress on a terminal: a line per side (target, then source, in the
//! order a run reads them) with pages, rows, rate and, from the previous run's row counts, a
//! bar and an ETA. The numbers come from `lagwatch::reconcile::progress`; this draws them on
//! stderr, and only when both stdout and stderr are terminals, so that piped JSON or CSV and
//! logs collected from stderr get none of it.

use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use lagwatch::reconcile::progress::{Expected, Observer, SideProgress};

/// Whether progress is drawn: stdout and stderr both on a terminal.
pub fn wanted() -> bool {
    std::io::stdout().is_terminal() && std::io::stderr().is_terminal()
}

/// The progress lines of one entry's run.
pub struct Lines {
    bars: [(&'static str, ProgressBar, Option<u64>); 2],
    started: Mutex<[Option<Instant>; 2]>,
    _multi: MultiProgress,
}

impl Lines {
    /// Lines for the run of entry `name` whose previous row counts are remembered at `file`.
    pub fn new(name: &str, file: Option<&Path>) -> Lines {
        let expected = file.and_then(Expected::load);
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
        let bar = |side: &'static str| {
            let known = expected.map(|e| e.of(side)).filter(|n| *n > 0);
            let (bar, template) = match known {
                Some(n) => (ProgressBar::new(n), "{prefix:<20} [{bar:24}] {msg}"),
                None => (ProgressBar::no_length(), "{prefix:<20} {spinner} {msg}"),
            };
            let style = ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            let bar = multi.add(bar.with_style(style));
            bar.set_prefix(format!("{name} {side}"));
            bar.set_message("waiting");
            (side, bar, known)
        };
        Lines {
            bars: [bar("target"), bar("source")],
            started: Mutex::new([None, None]),
            _multi: multi,
        }
    }

    fn index(side: &str) -> usize {
        usize::from(side == "source")
    }

    fn elapsed(&self, side: &str) -> Duration {
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        let at = started[Self::index(side)].get_or_insert_with(Instant::now);
        at.elapsed()
    }

    /// Clears the lines (before the result is printed).
    pub fn finish(&self) {
        for (_, bar, _) in &self.bars {
            bar.finish_and_clear();
        }
    }
}

impl Observer for Lines {
    fn page(&self, side: &'static str, pages: u64, rows: u64) {
        let elapsed = self.elapsed(side);
        let (_, bar, expected) = &self.bars[Self::index(side)];
        let p = SideProgress {
            pages,
            rows,
            expected: *expected,
            elapsed,
        };
        bar.set_position(rows);
        bar.set_message(p.describe());
        bar.tick();
    }

    fn side_done(&self, side: &'static str) {
        let (_, bar, _) = &self.bars[Self::index(side)];
        if let Some(len) = bar.length() {
            bar.set_length(bar.position().max(len));
            bar.set_position(bar.length().unwrap_or(len));
        }
        bar.set_message(format!("{} (done)", bar.message()));
    }
}

/// Remembers the row counts of a run for the next one's ETA; a failure only loses the ETA.
pub fn remember(file: Option<&Path>, source_rows: u64, target_rows: u64) {
    let Some(file) = file else {
        return;
    };
    let counts = Expected {
        source_rows,
        target_rows,
    };
    if let Err(e) = counts.save(file) {
        tracing::debug!(file = %file.display(), error = %e, "Could not remember the row counts for the next run's progress.");
    }
}
