//! PostgreSQL over TLS, as a `--db` URL asks for it: `sslmode=require` encrypts, and
//! `verify-ca` / `verify-full` check the server's certificate against `sslrootcert` (the name
//! too, for `verify-full`); without the CA, or by a name the certificate does not hold, the
//! connection is refused rather than made in the clear.
//!
//! Needs a server that serves TLS: `OXSTACK_TEST_PG_URL` of one started with `OXSTACK_PG_TLS=1`
//! (`ci/pg.sh`, which makes a certificate for 127.0.0.1 and exports its CA as
//! `OXSTACK_TEST_PG_TLS_CA`); `ci/test.sh` starts one for this test alone. Without both
//! variables it says SKIPPED and passes.

use oxstack_db::Db;

/// Whether the connection a reader of `db` uses is encrypted, as the server sees it.
async fn encrypted(db: &Db) -> bool {
    sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(db.r())
        .await
        .expect("pg_stat_ssl")
}

#[tokio::test]
async fn sslmode_encrypts_and_the_verify_modes_check_the_servers_certificate() {
    let (Ok(url), Ok(ca)) =
        (std::env::var("OXSTACK_TEST_PG_URL"), std::env::var("OXSTACK_TEST_PG_TLS_CA"))
    else {
        eprintln!(
            "SKIPPED: OXSTACK_TEST_PG_URL and OXSTACK_TEST_PG_TLS_CA are not both set; ci/test.sh \
             starts a PostgreSQL that serves TLS (OXSTACK_PG_TLS=1 in ci/pg.sh) for this test"
        );
        return;
    };
    assert!(url.contains("@127.0.0.1:") && !url.contains('?'), "unexpected URL {url}");
    let at = |host: &str, query: &str| format!("{}?{query}", url.replacen("127.0.0.1", host, 1));

    // Plain, so that the checks below can tell the difference.
    let plain = Db::connect(&at("127.0.0.1", "sslmode=disable")).await.expect("plain");
    assert!(!encrypted(&plain).await, "sslmode=disable is not encrypted");
    plain.close().await;

    // Encrypted; `require` does not check the certificate (as libpq).
    let db = Db::connect(&at("127.0.0.1", "sslmode=require")).await.expect("require");
    assert!(encrypted(&db).await, "sslmode=require is encrypted");
    db.close().await;

    // Checked against the CA, with the name (the certificate is for 127.0.0.1).
    let full = at("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}"));
    let db = Db::connect(&full).await.expect("verify-full with the server's CA");
    assert!(encrypted(&db).await);
    db.close().await;

    // Refused: no CA that signed it (the system's roots), or a name it does not hold.
    let refused = [
        at("127.0.0.1", "sslmode=verify-ca"),
        at("127.0.0.1", "sslmode=verify-full"),
        at("localhost", &format!("sslmode=verify-full&sslrootcert={ca}")),
    ];
    for url in refused {
        let err = Db::connect(&url).await.err().unwrap_or_else(|| panic!("{url} connected"));
        let message = err.to_string();
        assert!(
            message.contains("certificate") || message.contains("Certificate"),
            "{url}: {message}"
        );
    }
    // verify-ca checks the CA but not the name: by `localhost` it connects.
    let by_name = at("localhost", &format!("sslmode=verify-ca&sslrootcert={ca}"));
    let db = Db::connect(&by_name).await.expect("verify-ca by another name");
    assert!(encrypted(&db).await);
    db.close().await;
}
