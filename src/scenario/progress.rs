//! Progress bars for a scenario run: one bar per phase (a spinner when its length is unknown),
//! and notes (faults firing, failed checks) printed above them.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use oxstack_scenarios::Observer;

/// Draws the run's progress on stderr (nothing when quiet or not a terminal).
pub struct Bars {
    quiet: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl Bars {
    pub fn new(quiet: bool) -> Self {
        Self { quiet, bar: Mutex::new(None) }
    }

    /// Removes the current bar.
    pub fn clear(&self) {
        if let Some(bar) = self.lock().take() {
            bar.finish_and_clear();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        self.bar.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Observer for Bars {
    fn phase_started(&self, name: &str, total: Option<u64>) {
        self.clear();
        let bar = match total {
            Some(n) => ProgressBar::new(n).with_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:40}] {pos}/{len} {msg} ({per_sec}, eta {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
            None => ProgressBar::new_spinner(),
        };
        if self.quiet {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.set_message(name.to_string());
        *self.lock() = Some(bar);
    }

    fn advanced(&self, n: u64) {
        if let Some(bar) = self.lock().as_ref() {
            bar.inc(n);
        }
    }

    fn phase_finished(&self, _name: &str) {
        self.clear();
    }

    fn note(&self, message: &str) {
        match self.lock().as_ref() {
            Some(bar) if !self.quiet => bar.println(message),
            _ if !self.quiet => eprintln!("{message}"),
            _ => {}
        }
    }
}
