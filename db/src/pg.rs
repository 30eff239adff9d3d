//! Connecting to PostgreSQL: the pool every node's reads and writes share, its migrations, and
//! throwaway databases for tests.
//!
//! Many management nodes connect to one PostgreSQL. Each starts by applying the migrations in
//! `migrations/postgres` (the same schema as `migrations/sqlite`, checked by
//! `tests/postgres_schema.rs`); sqlx takes an advisory lock for that, so nodes starting
//! together apply them once.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor};

use oxstack_hypervisor::secrets::redact_url;

use crate::DbError;

/// Connections one node keeps at most (three nodes stay well under PostgreSQL's default 100).
const MAX_CONNECTIONS: u32 = 16;
/// How long a statement waits for a free connection before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens the pool for `url` and applies the migrations.
pub async fn connect(url: &str) -> Result<PgPool, DbError> {
    let options: PgConnectOptions = url
        .parse()
        .map_err(|e| DbError::InvalidUrl(format!("bad database URL `{}`: {e}", redact_url(url))))?;
    let options = options.disable_statement_logging();
    let pool = PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // No ping before every statement (a round trip each): a connection the server dropped
        // fails its next statement before anything is sent to `COMMIT`, and `pg_retry` runs
        // that again on a fresh one.
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .map_err(|e| {
            DbError::open(format!("cannot reach PostgreSQL at `{}`", redact_url(url)), e)
        })?;
    sqlx::migrate!("./migrations/postgres")
        .run(&pool)
        .await
        .map_err(|e| DbError::open("database migration failed", e))?;
    Ok(pool)
}

/// Creates an empty database named `name` on the server of `server_url` (a URL of any database
/// there) and returns its URL. For tests: each gets a database of its own.
pub async fn create_database(server_url: &str, name: &str) -> Result<String, DbError> {
    let options: PgConnectOptions = server_url.parse().map_err(|e| {
        DbError::InvalidUrl(format!("bad database URL `{}`: {e}", redact_url(server_url)))
    })?;
    let mut conn = options.connect().await.map_err(|e| {
        DbError::open(format!("cannot reach PostgreSQL at `{}`", redact_url(server_url)), e)
    })?;
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(DbError::InvalidUrl(format!("bad database name `{name}`")));
    }
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await?;
    conn.close().await?;
    let mut url = url_without_database(server_url);
    url.push('/');
    url.push_str(name);
    Ok(url)
}

/// For tests: when `OXSTACK_TEST_DB=postgres`, the URL of a fresh database (named after
/// `tag`) on the server that `OXSTACK_TEST_PG_URL` names (ci/pg.sh starts one); `None` when
/// tests run on SQLite (`OXSTACK_TEST_DB` unset or `sqlite`).
pub async fn test_database(tag: &str) -> Result<Option<String>, DbError> {
    match std::env::var("OXSTACK_TEST_DB").as_deref() {
        Ok("postgres") => {}
        Ok("sqlite") | Ok("") | Err(_) => return Ok(None),
        Ok(other) => {
            return Err(DbError::InvalidUrl(format!(
                "OXSTACK_TEST_DB: unknown test database `{other}`: use sqlite or postgres"
            )))
        }
    }
    let server = std::env::var("OXSTACK_TEST_PG_URL").map_err(|_| {
        DbError::InvalidUrl(
            "OXSTACK_TEST_DB=postgres needs OXSTACK_TEST_PG_URL (ci/pg.sh sets it)".into(),
        )
    })?;
    let tag: String = tag
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .take(24)
        .collect();
    let name = format!("t_{tag}_{}", uuid::Uuid::new_v4().simple());
    create_database(&server, &name).await.map(Some)
}

/// `postgres://user@host:port/db?x` without its `/db` (and query).
fn url_without_database(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let rest = rest.split('?').next().unwrap_or(rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{authority}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_loses_only_its_database() {
        assert_eq!(
            url_without_database("postgres://postgres@127.0.0.1:55432/postgres?sslmode=disable"),
            "postgres://postgres@127.0.0.1:55432"
        );
        assert_eq!(url_without_database("postgresql://h"), "postgresql://h");
    }

    #[tokio::test]
    async fn a_database_that_cannot_be_reached_is_named_without_its_password() {
        // Port 1 on loopback: nothing listens there, so the connection is refused at once.
        let url = "postgres://oxstack:s3cret-pw@127.0.0.1:1/oxstack?connect_timeout=2";
        let err = connect(url).await.expect_err("nothing listens on port 1").to_string();
        assert!(err.contains("postgres://oxstack:***@127.0.0.1:1"), "{err}");
        assert!(!err.contains("s3cret-pw"), "{err}");
        let bad = connect("postgres://oxstack:s3cret-pw@127.0.0.1:notaport/x").await;
        let bad = bad.expect_err("a bad port").to_string();
        assert!(!bad.contains("s3cret-pw"), "{bad}");
    }
}
