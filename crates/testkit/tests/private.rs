//! The private servers fault tests drive: they start, answer, pause,
//! restart and lose their data the way the tests rely on.

use std::time::Duration;

use anyhow::ensure;
use saas_testkit::{PrivatePostgres, PrivateRedis};
use sqlx::Connection;

#[tokio::test]
async fn private_postgres_pauses_resumes_and_restarts() -> anyhow::Result<()> {
    let pg = PrivatePostgres::start().await?;
    let url = pg.create_database("app").await?;
    let mut conn = sqlx::PgConnection::connect(&url).await?;
    sqlx::query("CREATE TABLE t (n int)")
        .execute(&mut conn)
        .await?;

    pg.pause()?;
    let hung = tokio::time::timeout(
        Duration::from_millis(500),
        sqlx::query("INSERT INTO t VALUES (1)").execute(&mut conn),
    )
    .await;
    ensure!(hung.is_err(), "a paused server answered");
    pg.resume()?;
    // The connection that waited is usable again once the reply arrives.
    let mut conn = sqlx::PgConnection::connect(&url).await?;
    sqlx::query("INSERT INTO t VALUES (2)")
        .execute(&mut conn)
        .await?;

    pg.restart().await?;
    ensure!(
        sqlx::query("SELECT 1").execute(&mut conn).await.is_err(),
        "a connection survived the restart"
    );
    let mut conn = sqlx::PgConnection::connect(&url).await?;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(&mut conn)
        .await?;
    ensure!(rows >= 1, "committed rows lost: {rows}");
    Ok(())
}

#[tokio::test]
async fn private_redis_flushes_and_restarts_empty() -> anyhow::Result<()> {
    let mut redis = PrivateRedis::start().await?;
    let client = redis::Client::open(redis.url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async::<()>(&mut conn)
        .await?;
    redis.flushall().await?;
    let gone: Option<String> = redis::cmd("GET").arg("k").query_async(&mut conn).await?;
    ensure!(gone.is_none());
    redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async::<()>(&mut conn)
        .await?;
    redis.restart().await?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let gone: Option<String> = redis::cmd("GET").arg("k").query_async(&mut conn).await?;
    ensure!(gone.is_none(), "a restarted Redis kept its keys");
    Ok(())
}
