//! Counts of operations by outcome over a run, to see what the random sequences exercise.
//! Printed (to stderr, shown with `--nocapture`) every [`EVERY`] cases and after the last one
//! when `OXSTACK_MODEL_STATS` is set.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// Print the table every this many cases.
pub const EVERY: u32 = 500;

static COUNTS: Mutex<BTreeMap<(&'static str, String), u64>> = Mutex::new(BTreeMap::new());
static CASES: AtomicU32 = AtomicU32::new(0);

/// Counts one operation of `kind` that ended with `outcome` (`ok` or an error code).
pub fn record(kind: &'static str, outcome: &str) {
    let mut counts = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    *counts.entry((kind, outcome.to_string())).or_default() += 1;
}

/// Counts a finished case and prints the table when it is time.
pub fn case_done(cases: u32) {
    let done = CASES.fetch_add(1, Ordering::Relaxed) + 1;
    if std::env::var_os("OXSTACK_MODEL_STATS").is_some()
        && (done.is_multiple_of(EVERY) || done == cases)
    {
        eprintln!("after {done} cases:\n{}", table());
    }
}

/// The counts as a table: one line per operation and outcome.
pub fn table() -> String {
    let counts = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    counts.iter().map(|((kind, outcome), n)| format!("{kind:>22} {outcome:<24} {n:>7}\n")).collect()
}
