//! Retention: rows deleted once older than the number of seconds a global config says, in
//! batches so no write holds the database long ([`prune`]), by a background loop on every node
//! that runs every minute and at once when a config changes ([`run_pruner`]). The job service's
//! finished jobs (`job.retention_secs`) and the audit log (`audit.retention_secs`) are kept so.

use std::future::Future;

use oxstack_db::DbError;
use tokio::sync::watch;

use crate::config::{ConfigName, GlobalConfig};
use crate::error::EngineResult;

/// How many rows one delete takes.
pub(crate) const PRUNE_BATCH: u32 = 1000;

/// Deletes what is older than `retention` as of `now_ms` (Unix milliseconds): `delete(cutoff,
/// batch)` deletes at most `batch` rows older than `cutoff` and says how many, and is called
/// until it deletes less than a batch. How many in all.
pub(crate) async fn prune<F, Fut>(
    config: &GlobalConfig,
    retention: ConfigName,
    now_ms: i64,
    mut delete: F,
) -> EngineResult<u64>
where
    F: FnMut(i64, u32) -> Fut,
    Fut: Future<Output = Result<u64, DbError>>,
{
    let cutoff = now_ms.saturating_sub(config.secs(retention).as_millis() as i64);
    let mut deleted = 0;
    loop {
        let batch = delete(cutoff, PRUNE_BATCH).await?;
        deleted += batch;
        if batch < u64::from(PRUNE_BATCH) {
            return Ok(deleted);
        }
    }
}

/// Background task: `prune(now_ms)` every `min(retention, 60 s)`, and at once when a global
/// config changes, until the node shuts down; what it deleted, or could not, is logged as
/// `what`. Every node prunes (the deletes are by age, so nodes doing it at once delete each
/// row once).
pub(crate) async fn run_pruner<F, Fut>(
    config: &GlobalConfig,
    retention: ConfigName,
    shutdown: &watch::Receiver<bool>,
    what: &'static str,
    mut prune: F,
) where
    F: FnMut(i64) -> Fut,
    Fut: Future<Output = EngineResult<u64>>,
{
    let mut shutdown = shutdown.clone();
    let mut config_changes = config.subscribe();
    while config.next_sweep(retention, &mut config_changes, &mut shutdown).await {
        match prune(crate::time::now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "pruned {what} past their retention"),
            Err(e) => tracing::warn!(%e, "could not prune {what}"),
        }
    }
}
