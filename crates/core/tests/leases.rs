//! Operation leases and tenant locks against the real PostgreSQL: an
//! attempt whose lease was taken over records nothing, and a tenant lock
//! stays with its session until released or the session ends.

use std::time::Duration;

use saas_core::ops::lease;
use saas_core::ops::store::{self, AttemptError};
use saas_core::ops::{Actor, Claim, FailureOutcome, OperationKind, OperationState};
use saas_testkit::TestDb;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

async fn world() -> anyhow::Result<(TestDb, PgPool, Uuid)> {
    let db = TestDb::new("leases").await?;
    let pool = db.pool().await?;
    saas_core::db::MIGRATOR.run(&pool).await?;
    let tenant = Uuid::new_v4();
    sqlx::raw_sql(&format!(
        "INSERT INTO customers (id, email, company_name, password_hash)
             VALUES ('00000000-0000-0000-0000-000000000001', 'c@example.com', 'Acme', 'x');
         INSERT INTO plans (id, code, name, max_users, max_storage_mb, max_backups, template)
             VALUES ('00000000-0000-0000-0000-000000000002', 'starter', 'Starter', 3, 1024, 7, 'starter');
         INSERT INTO tenants (id, subdomain, customer_id, plan_id, state, db_name)
             VALUES ('{tenant}', 'acme', '00000000-0000-0000-0000-000000000001',
                     '00000000-0000-0000-0000-000000000002', 'active', 't_acme');"
    ))
    .execute(&pool)
    .await?;
    Ok((db, pool, tenant))
}

async fn claimed(pool: &PgPool, id: Uuid, token: Uuid) -> anyhow::Result<()> {
    match store::claim(pool, id, "w-1", token).await? {
        Claim::Claimed(_) => Ok(()),
        other => anyhow::bail!("not claimed: {other:?}"),
    }
}

const FAILED: AttemptError<'static> = AttemptError {
    detail: "boom",
    customer: "boom",
    retryable: true,
};

#[tokio::test]
async fn a_taken_over_attempt_can_record_nothing() -> anyhow::Result<()> {
    let (_db, pool, tenant) = world().await?;
    let op = saas_core::ops::request_change(
        &pool,
        None,
        tenant,
        OperationKind::Backup,
        serde_json::json!({}),
        &Actor::system("test"),
    )
    .await?
    .operation
    .id;
    let first = Uuid::new_v4();
    claimed(&pool, op, first).await?;
    assert_eq!(lease::renew(&pool, &[(op, first)]).await?, vec![op]);
    assert_eq!(
        lease::renew(&pool, &[(op, Uuid::new_v4())]).await?,
        Vec::<Uuid>::new()
    );

    // The reconciler finds it stale (a zero tolerance: at once) and takes it over.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let recovered = store::recover_orphans(&pool, Duration::ZERO).await?;
    assert_eq!(recovered.requeued, vec![op]);
    let second = Uuid::new_v4();
    claimed(&pool, op, second).await?;

    assert_eq!(
        lease::renew(&pool, &[(op, first)]).await?,
        Vec::<Uuid>::new()
    );
    let mut tx = pool.begin().await?;
    assert!(!lease::holds(&mut tx, op, first).await?);
    assert!(!lease::complete(&mut tx, op, first).await?);
    tx.rollback().await?;
    assert!(!store::succeed(&pool, op, first).await?);
    assert_eq!(
        store::fail_attempt(&pool, op, first, FAILED, Duration::from_millis(1)).await?,
        FailureOutcome::Lost
    );

    // The current attempt completes in its own transaction; the engine's
    // later `succeed` counts that as recorded.
    let mut tx = pool.begin().await?;
    assert!(lease::holds(&mut tx, op, second).await?);
    assert!(lease::complete(&mut tx, op, second).await?);
    tx.commit().await?;
    assert!(store::succeed(&pool, op, second).await?);
    let done = store::get(&pool, op)
        .await?
        .ok_or_else(|| anyhow::anyhow!("gone"))?;
    assert_eq!(done.state, OperationState::Succeeded);
    assert_eq!(done.attempts, 2);
    Ok(())
}

#[tokio::test]
async fn a_released_claim_is_queued_again_uncounted() -> anyhow::Result<()> {
    let (_db, pool, tenant) = world().await?;
    let op = saas_core::ops::request_change(
        &pool,
        None,
        tenant,
        OperationKind::Backup,
        serde_json::json!({}),
        &Actor::system("test"),
    )
    .await?
    .operation
    .id;
    let token = Uuid::new_v4();
    claimed(&pool, op, token).await?;
    assert!(!lease::release(&pool, op, Uuid::new_v4(), Duration::ZERO).await?);
    assert!(lease::release(&pool, op, token, Duration::from_secs(60)).await?);
    let queued = store::get(&pool, op)
        .await?
        .ok_or_else(|| anyhow::anyhow!("gone"))?;
    assert_eq!(queued.state, OperationState::Queued);
    assert_eq!(queued.attempts, 0);
    assert!(matches!(
        store::claim(&pool, op, "w-1", Uuid::new_v4()).await?,
        Claim::NotDue(_)
    ));
    Ok(())
}

#[tokio::test]
async fn a_tenant_lock_stays_with_its_session_until_released_or_closed() -> anyhow::Result<()> {
    let (db, _pool, tenant) = world().await?;
    let mut first = PgConnection::connect(&db.url).await?;
    let mut second = PgConnection::connect(&db.url).await?;
    assert!(lease::try_lock_tenant(&mut first, tenant).await?);
    assert!(!lease::try_lock_tenant(&mut second, tenant).await?);
    assert!(lease::try_lock_tenant(&mut second, Uuid::new_v4()).await?);
    assert!(lease::unlock_tenant(&mut first, tenant).await?);
    assert!(lease::try_lock_tenant(&mut second, tenant).await?);
    // A session that ends (a killed worker's) releases what it held.
    second.close().await?;
    for _ in 0..100 {
        if lease::try_lock_tenant(&mut first, tenant).await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("the closed session's lock was never released")
}
