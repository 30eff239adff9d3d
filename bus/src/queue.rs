//! Per-resource serialization: one FIFO queue per resource key.
//!
//! `SyncQueues::enter(key)` waits its turn behind every earlier operation on the same key and
//! returns a guard; dropping the guard lets the next one in. Queues for idle keys are removed, so
//! memory grows with the number of resources being operated on, not with the number that exist.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};
use uuid::Uuid;

/// All per-resource queues of one management node.
#[derive(Default, Debug)]
pub struct SyncQueues {
    queues: Mutex<HashMap<Uuid, Arc<AsyncMutex<()>>>>,
}

/// Holding this means it is your turn on the resource.
#[derive(Debug)]
pub struct QueueGuard<'a> {
    owner: &'a SyncQueues,
    key: Uuid,
    guard: Option<OwnedMutexGuard<()>>,
}

impl SyncQueues {
    /// Waits until every earlier operation on `key` has finished.
    pub async fn enter(&self, key: Uuid) -> QueueGuard<'_> {
        let slot = {
            let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
            queues.entry(key).or_default().clone()
        };
        // tokio's Mutex is fair (FIFO), so waiters are served in arrival order.
        let guard = slot.lock_owned().await;
        QueueGuard { owner: self, key, guard: Some(guard) }
    }

    /// How many resources currently have a queue (for tests and metrics).
    pub fn active(&self) -> usize {
        self.queues.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for QueueGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut queues = self.owner.queues.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = queues.get(&self.key) {
            // Only the map holds it and nobody waits: the queue is idle, forget it.
            if Arc::strong_count(slot) == 1 {
                queues.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn operations_on_one_key_never_interleave() {
        let queues = Arc::new(SyncQueues::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let max_inside = Arc::new(AtomicUsize::new(0));
        let key = Uuid::new_v4();
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (queues, inside, max_inside) = (queues.clone(), inside.clone(), max_inside.clone());
            tasks.push(tokio::spawn(async move {
                let _turn = queues.enter(key).await;
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                max_inside.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_micros(200)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(max_inside.load(Ordering::SeqCst), 1);
        assert_eq!(queues.active(), 0, "idle queues are removed");
    }

    #[tokio::test]
    async fn different_keys_run_side_by_side() {
        let queues = SyncQueues::default();
        let a = queues.enter(Uuid::new_v4()).await;
        let b = queues.enter(Uuid::new_v4()).await;
        assert_eq!(queues.active(), 2);
        drop(a);
        drop(b);
        assert_eq!(queues.active(), 0);
    }
}
