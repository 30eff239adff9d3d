//! Coalesced cache refreshes: any number of callers that find a cache stale at the same time
//! cause one reload from the database, not one each.
//!
//! A caller takes a [`Refresh::ticket`] before it reads the cache; when the cache fails it, it
//! calls [`Refresh::run`] with the ticket. The reload runs unless another one *started* after
//! the ticket was taken (that one read the database after this caller's failed read, so it
//! already saw whatever this caller is missing). Reloads never run two at a time.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::EngineResult;

/// See the module doc.
#[derive(Debug, Default)]
pub struct Refresh {
    started: AtomicU64,
    running: tokio::sync::Mutex<()>,
}

impl Refresh {
    /// Taken before reading the cache.
    pub fn ticket(&self) -> u64 {
        self.started.load(Ordering::Acquire)
    }

    /// Runs `reload` unless a reload started since `ticket`; returns whether it ran.
    pub async fn run<F, Fut>(&self, ticket: u64, reload: F) -> EngineResult<bool>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = EngineResult<()>>,
    {
        let _one_at_a_time = self.running.lock().await;
        if self.started.load(Ordering::Acquire) != ticket {
            return Ok(false);
        }
        self.started.fetch_add(1, Ordering::AcqRel);
        reload().await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[tokio::test]
    async fn callers_with_the_same_ticket_share_one_reload_and_a_later_ticket_gets_its_own() {
        let refresh = Refresh::default();
        let reloads = AtomicUsize::new(0);
        let reload = || async {
            reloads.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok(())
        };
        let ticket = refresh.ticket();
        let ran = futures::future::join_all((0..5).map(|_| refresh.run(ticket, reload))).await;
        let ran: Vec<bool> = ran.into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(ran.iter().filter(|r| **r).count(), 1, "{ran:?}");
        assert_eq!(reloads.load(Ordering::SeqCst), 1);
        let later = refresh.ticket();
        assert!(refresh.run(later, reload).await.unwrap());
        assert_eq!(reloads.load(Ordering::SeqCst), 2);
    }
}
