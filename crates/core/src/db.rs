//! The platform database: pool, migrations, and waiting for the schema.

use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::{Config, Service};
use crate::error_chain::Chain;
use crate::startup::StartupError;

/// The platform schema, embedded in every binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Connects to the platform database, retrying while the server is not yet
/// reachable (up to `config.schema_wait`); refused credentials fail at once.
pub async fn connect(config: &Config) -> Result<PgPool, StartupError> {
    let options: PgConnectOptions = config
        .database_url
        .expose_secret()
        .parse()
        .map_err(|err: sqlx::Error| StartupError::from_database(config, &err))?;
    let options = options.application_name(config.service.name());
    // admin and portal answer requests: a connection PostgreSQL dropped (a
    // restart) must be found before a request's statement fails on it, so
    // each acquire pings first. The worker runs every statement again when
    // it fails (a claim goes back to the queue, an outcome is recorded again,
    // a renewal or a schedule runs at its next tick, a handler's attempt is
    // retried), so it skips the ping: a round trip on every acquire, about a
    // quarter of PostgreSQL's work per operation (bench/RESULTS.md).
    let ping_before_use = config.service != Service::Worker;
    let deadline = Instant::now() + config.schema_wait;
    loop {
        let attempt = PgPoolOptions::new()
            .max_connections(config.db_max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .test_before_acquire(ping_before_use)
            .connect_with(options.clone())
            .await;
        match attempt {
            Ok(pool) => return Ok(pool),
            Err(err) => {
                let startup = StartupError::from_database(config, &err);
                if !startup.is_transient() || Instant::now() >= deadline {
                    return Err(startup);
                }
                tracing::warn!(error = %Chain(&startup), "PostgreSQL not reachable yet, retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Applies every pending migration (idempotent).
pub async fn migrate(pool: &PgPool) -> Result<(), StartupError> {
    MIGRATOR
        .run(pool)
        .await
        .map_err(|err| StartupError::Migrate(crate::error_chain::chain(&err)))
}

/// The newest migration version this binary knows.
pub fn expected_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The newest migration applied successfully, if the migrations table exists.
pub async fn applied_version(pool: &PgPool) -> Result<Option<i64>, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(None);
    }
    sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
}

/// Waits (bounded by `config.schema_wait`) until admin has migrated the schema
/// to at least the version this binary expects, logging while it waits.
pub async fn wait_for_schema(config: &Config, pool: &PgPool) -> Result<(), StartupError> {
    let expected = expected_version();
    let started = Instant::now();
    let mut logged = false;
    loop {
        let applied = applied_version(pool)
            .await
            .map_err(|err| StartupError::from_database(config, &err))?;
        if applied.is_some_and(|v| v >= expected) {
            return Ok(());
        }
        if started.elapsed() >= config.schema_wait {
            return Err(StartupError::SchemaNotReady {
                database: config.database_name(),
                waited_secs: config.schema_wait.as_secs(),
                applied: applied.map_or_else(|| "none".to_owned(), |v| v.to_string()),
                expected: expected.to_string(),
            });
        }
        if !logged {
            tracing::info!(
                expected,
                applied = ?applied,
                "waiting for admin to migrate the platform schema"
            );
            logged = true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Creates the platform database if it does not exist, connecting to the
/// server's `postgres` database with the same credentials (used by the local
/// run script and `admin migrate --create-database`).
pub async fn create_database_if_missing(config: &Config) -> Result<bool, StartupError> {
    use sqlx::{Connection, PgConnection};
    let options: PgConnectOptions = config
        .database_url
        .expose_secret()
        .parse()
        .map_err(|err: sqlx::Error| StartupError::from_database(config, &err))?;
    let name = config.database_name();
    let mut conn = PgConnection::connect_with(&options.database("postgres"))
        .await
        .map_err(|err| StartupError::from_database(config, &err))?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .map_err(|err| StartupError::from_database(config, &err))?;
    if exists {
        return Ok(false);
    }
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    sqlx::query(&format!("CREATE DATABASE {quoted}"))
        .execute(&mut conn)
        .await
        .map_err(|err| StartupError::from_database(config, &err))?;
    Ok(true)
}
