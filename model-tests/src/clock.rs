//! The model clock in the engine's terms. The engine stamps a VM's destroy with the wall clock
//! (`state_changed_at`) and expunges, in one sweep as of a time T, every VM Destroyed at or
//! before T - `vm.expunge_period_secs` (`Engine::expunge_due`). The model counts time in
//! seconds it moves on by `AdvanceClock` steps, which take no real time.
//!
//! So the SUT notes the wall-clock millisecond at which the model clock reached each value
//! ([`ClockMarks`]) and sweeps as of T = (the mark just after model time `now - period`,
//! less 1 ms) + period: a VM destroyed before the model clock moved past `now - period` has a
//! stamp at or before that and is due; one destroyed after it is not. That is exactly the
//! model's rule (due when destroyed at model time `<= now - period`), whatever real time the
//! case takes. Each mark is taken between two 2 ms pauses, so no destroy shares its
//! millisecond.

use std::sync::Mutex;
use std::time::Duration;

use oxstack_engine::time::now_ms;

/// When the model clock reached each value: (model seconds, wall-clock Unix ms), ascending.
#[derive(Debug)]
pub struct ClockMarks(Mutex<Vec<(u64, i64)>>);

/// The pause on either side of a mark.
const APART: Duration = Duration::from_millis(2);

impl ClockMarks {
    /// Model time 0 is now (before any VM of the case exists).
    pub fn start() -> Self {
        Self(Mutex::new(vec![(0, now_ms())]))
    }

    /// Notes that the model clock reached `clock` now, and returns the time to sweep as of so
    /// that the engine expunges exactly the VMs the model destroyed at or before
    /// `clock - period_secs`.
    pub async fn advance(&self, clock: u64, period_secs: u64) -> i64 {
        tokio::time::sleep(APART).await;
        let mark = now_ms();
        tokio::time::sleep(APART).await;
        let mut marks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        marks.push((clock, mark));
        let period_ms = i64::try_from(period_secs.saturating_mul(1_000)).unwrap_or(i64::MAX / 2);
        let last_due = clock.checked_sub(period_secs);
        // The first mark past the last model time that is due: destroys stamped before it were
        // made at a model time that is due. Model time `clock` itself is never due (period >= 1).
        let next = match last_due {
            None => marks[0].1,
            Some(due) => marks.iter().find(|(c, _)| *c > due).map_or(mark, |(_, ms)| *ms),
        };
        next - 1 + period_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sweep_time_counts_the_period_back_to_the_mark_after_the_last_due_time() {
        let marks = ClockMarks::start();
        let start = marks.0.lock().unwrap()[0].1;
        // Nothing is due before the period has passed since model time 0.
        let t = marks.advance(500, 1_500).await;
        assert_eq!(t - 1_500_000, start - 1);
        let at_500 = marks.0.lock().unwrap()[1].1;
        assert!(at_500 > start, "marks are apart");
        // At 1,500 with period 1,000: model times 0..=500 are due, so destroys before the mark
        // of 1,000 (the first after 500) are due.
        let _ = marks.advance(1_000, 1_000).await;
        let at_1000 = marks.0.lock().unwrap()[2].1;
        let t = marks.advance(1_500, 1_000).await;
        assert_eq!(t - 1_000_000, at_1000 - 1);
        // With the period just passed at the current time, only the one before it counts.
        let t = marks.advance(2_000, 500).await;
        let at_2000 = marks.0.lock().unwrap()[4].1;
        assert_eq!(t - 500_000, at_2000 - 1);
    }
}
