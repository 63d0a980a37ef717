//! Schedules request operations through the same core function as everyone
//! else, once per period, never twice.

use saas_core::ops::OpsQueue;
use saas_testkit::{TestDb, clear_redis_prefix, redis_prefix};
use sqlx::PgPool;
use uuid::Uuid;

async fn tenant(
    pool: &PgPool,
    subdomain: &str,
    state: &str,
    trial_ends: Option<&str>,
) -> anyhow::Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query(&format!(
        "INSERT INTO tenants (id, subdomain, customer_id, plan_id, state, db_name, trial_ends_at, usage_collected_at)
         VALUES ($1, $2, '00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000002', $3, $2,
                 {}, now())",
        trial_ends.unwrap_or("NULL")
    ))
    .bind(id)
    .bind(subdomain)
    .bind(state)
    .execute(pool)
    .await?;
    Ok(id)
}

async fn kinds(pool: &PgPool, tenant: Uuid) -> anyhow::Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT kind FROM operations WHERE tenant_id = $1 ORDER BY kind")
            .bind(tenant)
            .fetch_all(pool)
            .await?,
    )
}

#[tokio::test]
async fn schedules_request_each_due_operation_once() -> anyhow::Result<()> {
    let db = TestDb::new("schedule").await?;
    let pool = db.pool().await?;
    saas_core::db::MIGRATOR.run(&pool).await?;
    sqlx::raw_sql(
        "INSERT INTO customers (id, email, company_name, password_hash)
             VALUES ('00000000-0000-0000-0000-000000000001', 'c@example.com', 'Acme', 'x');
         INSERT INTO plans (id, code, name, max_users, max_storage_mb, max_backups, template, backup_hour_utc, grace_days)
             VALUES ('00000000-0000-0000-0000-000000000002', 'trial', 'Trial', 3, 1024, 7, 'basic', 0, 7);",
    )
    .execute(&pool)
    .await?;
    let healthy = tenant(&pool, "healthy", "active", None).await?;
    let expired = tenant(&pool, "expired", "active", Some("now() - interval '1 day'")).await?;
    let abandoned = tenant(
        &pool,
        "abandoned",
        "suspended",
        Some("now() - interval '30 days'"),
    )
    .await?;
    let prefix = redis_prefix();
    let queue =
        OpsQueue::connect(&redis::Client::open(saas_testkit::redis_url())?, &prefix).await?;

    let first = worker::schedule::run_once(&pool, &queue).await?;
    assert!(first > 0);
    assert_eq!(kinds(&pool, healthy).await?, ["backup", "health_check"]);
    assert_eq!(
        kinds(&pool, expired).await?,
        ["backup", "health_check", "suspend"]
    );
    assert_eq!(kinds(&pool, abandoned).await?, ["delete"]);
    let args: serde_json::Value =
        sqlx::query_scalar("SELECT args FROM operations WHERE tenant_id = $1 AND kind = 'backup'")
            .bind(healthy)
            .fetch_one(&pool)
            .await?;
    assert_eq!(args["kind"], "scheduled");

    // Running again (another tick, or another worker) adds nothing, even once
    // the first backup has run.
    sqlx::query(
        "UPDATE operations SET state = 'succeeded', finished_at = now() WHERE kind = 'backup'",
    )
    .execute(&pool)
    .await?;
    assert_eq!(worker::schedule::run_once(&pool, &queue).await?, 0);
    assert_eq!(kinds(&pool, healthy).await?, ["backup", "health_check"]);
    clear_redis_prefix(&prefix).await
}
