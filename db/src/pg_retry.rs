//! Riding out a PostgreSQL restart: which errors mean "the server went away", and retrying
//! through them for a while.
//!
//! When PostgreSQL restarts, every pooled connection breaks and for a few seconds new ones are
//! refused ("the database system is starting up"). An operation in flight would fail on its
//! next statement, and so would its undo and the write that records its job's outcome, leaving
//! a VM mid-operation. Instead a statement that failed that way is run again, with backoff, for
//! up to [`RETRY_FOR`]: reads always (they change nothing), writes only when the failure came
//! before their `COMMIT` was sent (so the server rolled them back and running them again cannot
//! apply them twice; see [`PgWriter`](super::PgWriter)). After that the error is returned.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How long a statement is retried while the server is away.
pub const RETRY_FOR: Duration = Duration::from_secs(30);
/// The first pause between tries; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// Whether `e` says the connection or the server went away (not that the statement was wrong).
pub fn server_gone(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            // 08: connection exception; 57P01-57P03: admin shutdown, crash shutdown, cannot
            // connect now (starting up or shutting down).
            c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

/// Runs `attempt` until it succeeds, fails with an error `retry` does not accept, or
/// [`RETRY_FOR`] has passed since the first failure.
pub async fn retrying<T, E, F, Fut>(mut attempt: F, retry: impl Fn(&E) -> bool) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut deadline = None;
    let mut pause = FIRST_PAUSE;
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) if retry(&e) => {
                let until = *deadline.get_or_insert_with(|| Instant::now() + RETRY_FOR);
                if Instant::now() >= until {
                    return Err(e);
                }
                tracing::warn!(%e, ?pause, "PostgreSQL is away; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_what_it_is_told_to_until_the_deadline() {
        let tries = AtomicUsize::new(0);
        let ok: Result<u32, String> = retrying(
            || async {
                let n = tries.fetch_add(1, Ordering::SeqCst);
                if n < 3 {
                    Err("gone".to_string())
                } else {
                    Ok(7)
                }
            },
            |e| e == "gone",
        )
        .await;
        assert_eq!(ok, Ok(7));
        assert_eq!(tries.load(Ordering::SeqCst), 4);

        let other: Result<u32, String> =
            retrying(|| async { Err("bad sql".to_string()) }, |e| e == "gone").await;
        assert_eq!(other, Err("bad sql".into()), "not retried");

        let start = Instant::now();
        let never: Result<u32, String> =
            retrying(|| async { Err("gone".to_string()) }, |e| e == "gone").await;
        assert_eq!(never, Err("gone".into()));
        assert!(start.elapsed() >= RETRY_FOR, "gave up after {:?}", start.elapsed());
    }

    #[test]
    fn only_connection_failures_count_as_the_server_gone() {
        assert!(server_gone(&sqlx::Error::PoolTimedOut));
        assert!(server_gone(&sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into())));
        assert!(!server_gone(&sqlx::Error::RowNotFound));
        assert!(!server_gone(&sqlx::Error::PoolClosed));
    }
}
