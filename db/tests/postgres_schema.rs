//! The PostgreSQL schema is the SQLite one translated, migration by migration: this test keeps
//! `migrations/postgres` in lockstep with `migrations/sqlite`. It applies `migrations/postgres`
//! to a scratch database on the server `OXSTACK_TEST_PG_URL` names, twice (the second run must
//! change nothing), and `migrations/sqlite` to an in-memory SQLite, then compares what the two
//! built: the tables; each table's columns in order, with their type (SQLite's INTEGER is
//! PostgreSQL's bigint), NOT NULL and default; the primary key, UNIQUE constraints and foreign
//! keys; the explicitly created indexes (by name, with their columns); the migrations applied.
//! It also checks that no PostgreSQL column is a 16- or 32-bit integer, since the engine reads
//! every integer as i64. The failure message lists every difference.
//!
//! Without `OXSTACK_TEST_PG_URL` it says SKIPPED and passes; `ci/test.sh` starts PostgreSQL
//! (`ci/pg.sh`) and sets it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::SqliteConnection;
use sqlx::{AssertSqlSafe, Connection};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A schema as facts, such as "hosts: column 09" -> "cpu_used bigint NOT NULL DEFAULT 0".
type Facts = BTreeMap<String, String>;

fn migrations(flavour: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(flavour)
}

#[tokio::test]
async fn postgres_migrations_build_the_sqlite_schema() {
    let Ok(url) = std::env::var("OXSTACK_TEST_PG_URL") else {
        eprintln!(
            "SKIPPED: OXSTACK_TEST_PG_URL is not set; ci/test.sh starts PostgreSQL and sets it"
        );
        return;
    };
    let admin_options = PgConnectOptions::from_str(&url).expect("OXSTACK_TEST_PG_URL");
    let mut admin = PgConnection::connect_with(&admin_options).await.expect("connecting");
    let db = format!("oxstack_schema_{}", uuid::Uuid::new_v4().simple());
    let create = format!("CREATE DATABASE {db}");
    sqlx::query(AssertSqlSafe(create)).execute(&mut admin).await.unwrap();

    let outcome = compare(admin_options.clone().database(&db)).await;

    let drop = format!("DROP DATABASE {db} WITH (FORCE)");
    sqlx::query(AssertSqlSafe(drop)).execute(&mut admin).await.unwrap();
    admin.close().await.unwrap();
    let differences = outcome.unwrap_or_else(|e| panic!("applying the migrations: {e}"));
    assert!(
        differences.is_empty(),
        "migrations/postgres does not build what migrations/sqlite builds \
         ({} differences):\n  {}",
        differences.len(),
        differences.join("\n  ")
    );
}

/// Applies both sets of migrations and lists every difference.
async fn compare(scratch: PgConnectOptions) -> Result<Vec<String>, BoxError> {
    let mut pg = PgConnection::connect_with(&scratch).await?;
    let pg_migrator = Migrator::new(migrations("postgres")).await?;
    pg_migrator.run(&mut pg).await?;
    let postgres = pg_facts(&mut pg).await?;
    pg_migrator.run(&mut pg).await?;
    let again = pg_facts(&mut pg).await?;

    let mut lite = SqliteConnection::connect("sqlite::memory:").await?;
    Migrator::new(migrations("sqlite")).await?.run(&mut lite).await?;
    let sqlite = sqlite_facts(&mut lite).await?;
    lite.close().await?;

    let mut out = differences("sqlite", &sqlite, "postgres", &postgres);
    for d in differences("first run", &postgres, "second run", &again) {
        out.push(format!("postgres migrations applied twice: {d}"));
    }
    let narrow: Vec<String> = sqlx::query_scalar(
        "SELECT table_name || '.' || column_name || ' is ' || data_type \
         FROM information_schema.columns WHERE table_schema = current_schema() \
           AND table_name <> '_sqlx_migrations' AND data_type IN ('integer', 'smallint')",
    )
    .fetch_all(&mut pg)
    .await?;
    out.extend(narrow.into_iter().map(|c| format!("{c} in postgres: integers must be bigint")));
    pg.close().await?;
    Ok(out)
}

/// Every fact one side has and the other has not, or has otherwise.
fn differences(a_name: &str, a: &Facts, b_name: &str, b: &Facts) -> Vec<String> {
    let show = |v: Option<&String>| v.map_or("(none)".to_string(), |v| format!("`{v}`"));
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: {a_name} {}, {b_name} {}", show(a.get(k)), show(b.get(k))))
        .collect()
}

fn column(name: &str, ty: &str, not_null: bool, default: Option<&str>) -> String {
    let not_null = if not_null { " NOT NULL" } else { "" };
    let default = default.map(|d| format!(" DEFAULT {d}")).unwrap_or_default();
    format!("{name} {ty}{not_null}{default}")
}

fn index(unique: bool, columns: &str, partial: bool) -> String {
    let unique = if unique { "UNIQUE " } else { "" };
    format!("{unique}({columns}){}", if partial { " partial" } else { "" })
}

const MIGRATIONS: &str =
    "SELECT version, description FROM _sqlx_migrations WHERE success ORDER BY version";

/// The migrations applied, from `_sqlx_migrations`.
fn migration_facts(rows: Vec<(i64, String)>) -> Facts {
    let mut f = Facts::from([("migrations applied".to_string(), rows.len().to_string())]);
    f.extend(rows.into_iter().map(|(version, name)| (format!("migration {version:04}"), name)));
    f
}

async fn sqlite_facts(c: &mut SqliteConnection) -> Result<Facts, BoxError> {
    let mut f = migration_facts(sqlx::query_as(MIGRATIONS).fetch_all(&mut *c).await?);
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND substr(name, 1, 7) <> 'sqlite_' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut *c)
    .await?;
    for t in &tables {
        f.insert(format!("{t}: table"), "exists".into());
        let cols: Vec<(String, String, i64, Option<String>, i64)> = sqlx::query_as(
            r#"SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info(?1) ORDER BY cid"#,
        )
        .bind(t.as_str())
        .fetch_all(&mut *c)
        .await?;
        let mut pk = Vec::new();
        for (i, (name, ty, not_null, dflt, pk_at)) in cols.into_iter().enumerate() {
            let ty = if ty == "INTEGER" { "bigint".to_string() } else { ty.to_lowercase() };
            // Compared as declared: SQLite lets a TEXT PRIMARY KEY without NOT NULL hold NULL,
            // where PostgreSQL's primary keys never do, so such a column is a difference.
            let not_null = not_null != 0;
            let key = format!("{t}: column {:02}", i + 1);
            f.insert(key, column(&name, &ty, not_null, dflt.as_deref()));
            if pk_at > 0 {
                pk.push((pk_at, name));
            }
        }
        pk.sort();
        let pk: Vec<String> = pk.into_iter().map(|(_, n)| n).collect();
        f.insert(format!("{t}: primary key"), format!("({})", pk.join(", ")));
        let indexes: Vec<(String, i64, String, i64, String)> = sqlx::query_as(
            r#"SELECT l.name, l."unique", l.origin, l.partial,
                      group_concat(coalesce(i.name, '<expr>'), ', ' ORDER BY i.seqno)
               FROM pragma_index_list(?1) l, pragma_index_info(l.name) i GROUP BY l.name"#,
        )
        .bind(t.as_str())
        .fetch_all(&mut *c)
        .await?;
        for (name, unique, origin, partial, cols) in indexes {
            match origin.as_str() {
                "c" => {
                    f.insert(format!("{t}: index {name}"), index(unique != 0, &cols, partial != 0))
                }
                "u" => f.insert(format!("{t}: unique ({cols})"), "UNIQUE".into()),
                _ => None, // "pk": the primary key's own index
            };
        }
        let fks: Vec<(String, String, Option<String>)> =
            sqlx::query_as(r#"SELECT "from", "table", "to" FROM pragma_foreign_key_list(?1)"#)
                .bind(t.as_str())
                .fetch_all(&mut *c)
                .await?;
        for (from, table, to) in fks {
            let to = to.unwrap_or_default();
            f.insert(format!("{t}: foreign key ({from})"), format!("{table}({to})"));
        }
    }
    Ok(f)
}

async fn pg_facts(c: &mut PgConnection) -> Result<Facts, BoxError> {
    let mut f = migration_facts(sqlx::query_as(MIGRATIONS).fetch_all(&mut *c).await?);
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
           AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut *c)
    .await?;
    for t in &tables {
        f.insert(format!("{t}: table"), "exists".into());
        let cols: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text, is_nullable::text, column_default::text \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(t.as_str())
        .fetch_all(&mut *c)
        .await?;
        for (i, (name, ty, nullable, dflt)) in cols.into_iter().enumerate() {
            // `''::text` is `''`: drop the cast PostgreSQL adds to a default.
            let dflt = dflt.map(|d| d.split("::").next().unwrap_or_default().to_string());
            let key = format!("{t}: column {:02}", i + 1);
            f.insert(key, column(&name, &ty, nullable == "NO", dflt.as_deref()));
        }
        f.insert(format!("{t}: primary key"), "()".into());
        let keys: Vec<(String, String)> = sqlx::query_as(
            "SELECT tc.constraint_type::text, \
                    string_agg(kcu.column_name::text, ', ' ORDER BY kcu.ordinal_position) \
             FROM information_schema.table_constraints tc \
             JOIN information_schema.key_column_usage kcu \
               ON kcu.constraint_schema = tc.constraint_schema \
              AND kcu.constraint_name = tc.constraint_name AND kcu.table_name = tc.table_name \
             WHERE tc.table_schema = current_schema() AND tc.table_name = $1 \
               AND tc.constraint_type IN ('PRIMARY KEY', 'UNIQUE') \
             GROUP BY tc.constraint_type, tc.constraint_name",
        )
        .bind(t.as_str())
        .fetch_all(&mut *c)
        .await?;
        for (kind, cols) in keys {
            match kind.as_str() {
                "PRIMARY KEY" => f.insert(format!("{t}: primary key"), format!("({cols})")),
                _ => f.insert(format!("{t}: unique ({cols})"), "UNIQUE".into()),
            };
        }
        // Only explicitly created indexes: not those backing a primary key or UNIQUE constraint.
        let indexes: Vec<(String, String)> = sqlx::query_as(
            "SELECT p.indexname::text, p.indexdef FROM pg_indexes p \
             WHERE p.schemaname = current_schema() AND p.tablename = $1 AND NOT EXISTS ( \
               SELECT 1 FROM pg_constraint k WHERE k.contype IN ('p', 'u', 'x') \
                 AND k.conindid = format('%I.%I', p.schemaname, p.indexname)::regclass)",
        )
        .bind(t.as_str())
        .fetch_all(&mut *c)
        .await?;
        for (name, def) in indexes {
            // e.g. `CREATE INDEX hosts_cluster ON public.hosts USING btree (cluster_uuid)`
            let body = def.split_once(" USING ").map_or(def.as_str(), |(_, b)| b);
            let (body, partial) =
                body.split_once(" WHERE ").map_or((body, false), |(b, _)| (b, true));
            let cols =
                body.split_once('(').and_then(|(_, r)| r.rsplit_once(')')).map_or(body, |c| c.0);
            let unique = def.starts_with("CREATE UNIQUE");
            f.insert(format!("{t}: index {name}"), index(unique, cols, partial));
        }
        let fks: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT a.attname::text, k.confrelid::regclass::text, fa.attname::text \
             FROM pg_constraint k CROSS JOIN LATERAL unnest(k.conkey, k.confkey) AS u(col, fcol) \
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.col \
             JOIN pg_attribute fa ON fa.attrelid = k.confrelid AND fa.attnum = u.fcol \
             WHERE k.contype = 'f' AND k.conrelid = $1::regclass",
        )
        .bind(t.as_str())
        .fetch_all(&mut *c)
        .await?;
        for (from, table, to) in fks {
            f.insert(format!("{t}: foreign key ({from})"), format!("{table}({to})"));
        }
    }
    Ok(f)
}
