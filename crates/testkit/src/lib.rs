//! Helpers shared by the workspace's tests: every test owns its world.
//!
//! - [`TestDb`] creates a fresh PostgreSQL database and drops it when the test ends.
//! - [`redis_prefix`] gives a unique key prefix (or use [`TestRedis`] for a whole
//!   logical database number chosen per test).
//! - [`free_port`] and [`ServiceProcess`] start a real binary on a free port.
//! - [`PrivatePostgres`] and [`PrivateRedis`] are servers of one test's own,
//!   to restart, pause and kill in fault tests.
//!
//! The server is found from `TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and `TEST_REDIS_URL`
//! (default `redis://127.0.0.1:6379`).

pub mod bench;
pub mod contract;
pub mod garage;
pub mod odoo;
pub mod private;
mod process;
pub mod python;
pub mod real_odoo;
pub mod web;
pub mod webdriver;

pub use garage::PrivateGarage;
pub use private::{PrivatePostgres, PrivateRedis};
pub use process::{ServiceProcess, free_port, wait_for_http};

use rand::Rng;
use sqlx::{Connection, Executor, PgConnection};
use url::Url;

/// Admin connection URL of the PostgreSQL server the tests use.
pub fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// URL of the Redis server the tests use (logical database 0).
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A short random lower-case suffix, safe inside identifiers and key names.
pub fn unique_suffix() -> String {
    let mut rng = rand::rng();
    (0..10)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect()
}

/// A Redis key prefix no other test uses, e.g. `test:kqzjwe…:`.
pub fn redis_prefix() -> String {
    format!("test:{}:", unique_suffix())
}

/// A database created for one test and dropped (with `FORCE`) when dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// Creates an empty database named `t_<prefix>_<random>`.
    pub async fn new(prefix: &str) -> anyhow::Result<Self> {
        let name = format!("t_{}_{}", prefix, unique_suffix());
        create_database(&name).await?;
        let url = database_url(&name)?;
        Ok(Self { name, url })
    }

    /// A pool on this database.
    pub async fn pool(&self) -> anyhow::Result<sqlx::PgPool> {
        Ok(sqlx::postgres::PgPoolOptions::new()
            .max_connections(5)
            .connect(&self.url)
            .await?)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside or outside a runtime; a thread of its own works in both.
        let handle = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                let _ = runtime.block_on(drop_database(&name));
            }
        });
        let _ = handle.join();
    }
}

/// URL of database `name` on the test server.
pub fn database_url(name: &str) -> anyhow::Result<String> {
    let mut url = Url::parse(&admin_database_url())?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

/// Creates database `name` (an identifier the caller made safe).
pub async fn create_database(name: &str) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(&admin_database_url()).await?;
    conn.execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
        .await?;
    Ok(())
}

/// Drops database `name` if it exists, closing its connections.
pub async fn drop_database(name: &str) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(&admin_database_url()).await?;
    conn.execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str())
        .await?;
    Ok(())
}

/// Deletes every key below `prefix` in the test Redis.
pub async fn clear_redis_prefix(prefix: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(redis_url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await?;
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(keys).query_async(&mut conn).await?;
    }
    Ok(())
}

/// Replaces (or appends) the section `name` of `bench/RESULTS.md` at the
/// workspace root, between `<!-- name:start -->` and `<!-- name:end -->`
/// markers, so every benchmark owns its section of the one results file.
pub fn write_bench_section(name: &str, body: &str) -> anyhow::Result<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = root.join("bench/RESULTS.md");
    std::fs::create_dir_all(root.join("bench"))?;
    let existing = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        "# Benchmark results\n\nWritten by the bench programs; each owns one section.\n".to_owned()
    });
    let start = format!("<!-- {name}:start -->");
    let end = format!("<!-- {name}:end -->");
    let section = format!("{start}\n{}\n{end}", body.trim_end());
    let updated = match (existing.find(&start), existing.find(&end)) {
        (Some(s), Some(e)) if e > s => {
            format!("{}{section}{}", &existing[..s], &existing[e + end.len()..])
        }
        _ => format!("{}\n{section}\n", existing.trim_end()),
    };
    std::fs::write(&path, updated)?;
    Ok(path)
}

/// A Redis key prefix of one test; every key under it is deleted when the
/// guard is dropped.
pub struct RedisPrefix(pub String);

impl RedisPrefix {
    pub fn new() -> Self {
        Self(redis_prefix())
    }
}

impl Default for RedisPrefix {
    fn default() -> Self {
        Self::new()
    }
}

impl std::ops::Deref for RedisPrefix {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let prefix = self.0.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = runtime.block_on(clear_redis_prefix(&prefix));
            }
        })
        .join();
    }
}

/// The tests every service binary must pass (health, readiness, metrics,
/// configuration errors, port conflicts, unreachable PostgreSQL, graceful
/// shutdown, slow and idle clients), generated for one binary. `$binary` is a
/// [`contract::Binary`] expression and `$database` an async expression
/// giving a migrated (or, for admin, empty) [`TestDb`].
#[macro_export]
macro_rules! service_contract_tests {
    ($binary:expr, $database:expr) => {
        #[tokio::test]
        async fn serves_health_readiness_and_metrics() -> anyhow::Result<()> {
            $crate::contract::health_ready_metrics(&$binary, &$database.await?).await
        }

        #[tokio::test]
        async fn readyz_names_unreachable_redis() -> anyhow::Result<()> {
            $crate::contract::readyz_names_unreachable_redis(&$binary, &$database.await?).await
        }

        #[tokio::test]
        async fn bad_configuration_exits_2_naming_the_variable() -> anyhow::Result<()> {
            $crate::contract::bad_config_exits_2(&$binary, &$database.await?).await
        }

        #[tokio::test]
        async fn port_in_use_names_the_variable() -> anyhow::Result<()> {
            $crate::contract::port_in_use_is_named(&$binary, &$database.await?).await
        }

        #[tokio::test]
        async fn sigterm_lets_a_slow_request_finish_then_exits_0() -> anyhow::Result<()> {
            $crate::contract::sigterm_drains_slow_request(&$binary, &$database.await?).await
        }

        #[tokio::test]
        async fn slow_and_idle_clients_are_cut_off_and_connections_capped() -> anyhow::Result<()> {
            $crate::contract::slow_clients_are_cut_off(&$binary, &$database.await?).await
        }

        #[tokio::test]
        async fn unreachable_database_names_host_port_and_variable() -> anyhow::Result<()> {
            $crate::contract::unreachable_database_is_named(&$binary, &$database.await?).await
        }
    };
}
