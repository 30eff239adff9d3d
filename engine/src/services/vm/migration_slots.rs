//! How many live migrations one node runs at once: `vm.migration_parallelism`, read each time a
//! migration asks for a slot, so a change through the API applies to the next migration without
//! a restart. Lowering it never stops one already running: new ones wait until fewer than the
//! new limit run.

use std::sync::Mutex;

use tokio::sync::Notify;

/// The running-migration count and the wake-up of those waiting for a slot.
#[derive(Debug, Default)]
pub struct MigrationSlots {
    running: Mutex<usize>,
    freed: Notify,
}

/// A slot, given back when dropped.
#[derive(Debug)]
pub struct MigrationSlot<'a> {
    slots: &'a MigrationSlots,
}

impl MigrationSlots {
    /// Waits until fewer than `limit()` (at least 1) migrations run, then takes a slot.
    pub async fn acquire(&self, limit: impl Fn() -> usize) -> MigrationSlot<'_> {
        loop {
            // Registered before the check, so a slot freed in between still wakes this one.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
                if *running < limit().max(1) {
                    *running += 1;
                    return MigrationSlot { slots: self };
                }
            }
            freed.await;
        }
    }

    /// Migrations running now.
    pub fn running(&self) -> usize {
        *self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for MigrationSlot<'_> {
    fn drop(&mut self) {
        let mut running = self.slots.running.lock().unwrap_or_else(|e| e.into_inner());
        *running = running.saturating_sub(1);
        drop(running);
        // Wake every waiter: each checks the limit again, which may have grown meanwhile.
        self.slots.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::FutureExt;

    use super::*;

    #[tokio::test]
    async fn the_limit_is_read_at_each_request_and_lowering_it_stops_no_one() {
        let slots = MigrationSlots::default();
        let limit = AtomicUsize::new(2);
        let limit_now = || limit.load(Ordering::SeqCst);
        let a = slots.acquire(limit_now).await;
        let b = slots.acquire(limit_now).await;
        assert!(slots.acquire(limit_now).now_or_never().is_none(), "two of two run");

        limit.store(3, Ordering::SeqCst);
        let c = slots.acquire(limit_now).now_or_never().expect("raised to 3: a third runs");
        assert_eq!(slots.running(), 3);

        // Lowered to 1: the three keep running; a new one waits until fewer than one run.
        limit.store(1, Ordering::SeqCst);
        let mut waiting = Box::pin(slots.acquire(limit_now));
        assert!(waiting.as_mut().now_or_never().is_none());
        drop(a);
        drop(b);
        assert!(waiting.as_mut().now_or_never().is_none(), "one still runs: at the limit");
        drop(c);
        let d = waiting.now_or_never().expect("none runs: the waiter gets its slot");
        assert_eq!(slots.running(), 1);
        drop(d);
        assert_eq!(slots.running(), 0);
    }

    #[tokio::test]
    async fn a_waiter_wakes_when_a_slot_is_freed() {
        let slots = std::sync::Arc::new(MigrationSlots::default());
        let first = slots.acquire(|| 1).await;
        let waiter = {
            let slots = slots.clone();
            tokio::spawn(async move {
                let _slot = slots.acquire(|| 1).await;
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(first);
        waiter.await.expect("the waiter got the freed slot");
        assert_eq!(slots.running(), 0);
    }

    #[tokio::test]
    async fn a_zero_limit_still_lets_one_run() {
        let slots = MigrationSlots::default();
        let _one = slots.acquire(|| 0).await;
        assert!(slots.acquire(|| 0).now_or_never().is_none());
    }
}
