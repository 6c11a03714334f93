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
    /// When each side started reading, and what it read last.
    sides: Mutex<[(Option<Instant>, Option<SideProgress>); 2]>,
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
            sides: Mutex::new([(None, None), (None, None)]),
            _multi: multi,
        }
    }

    fn index(side: &str) -> usize {
        usize::from(side == "source")
    }

    /// Clears the lines (before the result is printed).
    pub fn finish(&self) {
        for (_, bar, _) in &self.bars {
            bar.finish_and_clear();
        }
    }
}

impl Observer for Lines {
    fn side_start(&self, side: &'static str) {
        let mut sides = self.sides.lock().unwrap_or_else(|e| e.into_inner());
        sides[Self::index(side)].0 = Some(Instant::now());
        self.bars[Self::index(side)].1.set_message("reading");
    }

    fn page(&self, side: &'static str, pages: u64, rows: u64) {
        let i = Self::index(side);
        let (_, bar, expected) = &self.bars[i];
        let mut sides = self.sides.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = sides[i]
            .0
            .get_or_insert_with(Instant::now)
            .elapsed()
            .max(Duration::from_millis(1));
        let p = SideProgress {
            pages,
            rows,
            expected: *expected,
            elapsed,
        };
        sides[i].1 = Some(p);
        bar.set_position(rows);
        bar.set_message(p.describe());
    }

    fn side_done(&self, side: &'static str) {
        let i = Self::index(side);
        let (_, bar, _) = &self.bars[i];
        let sides = self.sides.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(len) = bar.length() {
            bar.set_length(bar.position().max(len));
            bar.set_position(bar.length().unwrap_or(len));
        }
        if let Some(p) = sides[i].1 {
            bar.set_message(p.describe_done());
        }
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
