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

/// Requests a `kind` operation of `tenant` as admin and portal do; its id.
async fn request(pool: &PgPool, tenant: Uuid, kind: OperationKind) -> anyhow::Result<Uuid> {
    Ok(saas_core::ops::request_change(
        pool,
        None,
        tenant,
        kind,
        serde_json::json!({}),
        &Actor::system("test"),
    )
    .await?
    .operation
    .id)
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

#[tokio::test]
async fn postgres_computes_the_same_tenant_lock_key_as_rust() -> anyhow::Result<()> {
    let (_db, pool, _tenant) = world().await?;
    let mut ids: Vec<Uuid> = (0..200).map(|_| Uuid::new_v4()).collect();
    ids.push(Uuid::nil());
    ids.push(Uuid::max());
    ids.push(Uuid::from_u128(0x8000_0000_0000_0000_0000_0000_0000_0001));
    let sql = format!(
        "SELECT {} FROM unnest($1::uuid[]) AS t(id)",
        lease::TENANT_LOCK_KEY_SQL.replace("$tenant", "t.id")
    );
    let keys: Vec<i64> = sqlx::query_scalar(&sql).bind(&ids).fetch_all(&pool).await?;
    let expected: Vec<i64> = ids.iter().map(|id| lease::tenant_lock_key(*id)).collect();
    assert_eq!(keys, expected);
    Ok(())
}

#[tokio::test]
async fn a_claim_can_take_the_tenant_lock_in_the_same_statement() -> anyhow::Result<()> {
    let (db, pool, tenant) = world().await?;
    let backup = request(&pool, tenant, OperationKind::Backup).await?;
    let usage = request(&pool, tenant, OperationKind::CollectUsage).await?;

    // A stalled attempt's session still holds the tenant: the claim
    // succeeds, the lock does not come with it.
    let mut stalled = PgConnection::connect(&db.url).await?;
    assert!(lease::try_lock_tenant(&mut stalled, tenant).await?);
    let mut conn = PgConnection::connect(&db.url).await?;
    let token = Uuid::new_v4();
    let (claim, locked) = store::claim_on(&mut conn, backup, "w-1", token, true).await?;
    assert!(matches!(claim, Claim::Claimed(_)), "{claim:?}");
    assert!(!locked);
    assert!(lease::release(&pool, backup, token, Duration::ZERO).await?);

    // Once it is gone, claim and lock arrive together, on that session.
    assert!(lease::unlock_tenant(&mut stalled, tenant).await?);
    let token = Uuid::new_v4();
    let (claim, locked) = store::claim_on(&mut conn, backup, "w-1", token, true).await?;
    assert!(matches!(claim, Claim::Claimed(_)), "{claim:?}");
    assert!(locked);
    assert!(!lease::try_lock_tenant(&mut stalled, tenant).await?);

    // The tenant's next operation waits for this one and is named by the
    // success that ends it; a stranger's token records nothing.
    let (claim, locked) = store::claim_on(&mut conn, usage, "w-1", Uuid::new_v4(), true).await?;
    assert!(matches!(claim, Claim::TenantBusy), "{claim:?}");
    assert!(!locked);
    assert_eq!(
        store::succeed_then_next(&pool, backup, Uuid::new_v4()).await?,
        None
    );
    assert_eq!(
        store::succeed_then_next(&pool, backup, token).await?,
        Some(Some(usage))
    );
    assert!(lease::unlock_tenant(&mut conn, tenant).await?);
    assert!(lease::try_lock_tenant(&mut stalled, tenant).await?);
    Ok(())
}

#[tokio::test]
async fn a_success_and_its_tenant_unlock_are_one_durable_statement() -> anyhow::Result<()> {
    let (db, pool, tenant) = world().await?;
    let backup = request(&pool, tenant, OperationKind::Backup).await?;
    let usage = request(&pool, tenant, OperationKind::CollectUsage).await?;
    // A lock connection as the worker's: claims commit without waiting.
    let mut conn = PgConnection::connect(&db.url).await?;
    sqlx::query("SET synchronous_commit = off")
        .execute(&mut conn)
        .await?;
    let mut other = PgConnection::connect(&db.url).await?;
    let token = Uuid::new_v4();
    let (claim, locked) = store::claim_on(&mut conn, backup, "w-1", token, true).await?;
    assert!(matches!(claim, Claim::Claimed(_)) && locked, "{claim:?}");

    // A stranger's token records nothing, and the lock goes all the same.
    let (recorded, unlocked) =
        store::succeed_then_next_unlocking(&mut conn, backup, Uuid::new_v4(), tenant).await?;
    assert_eq!(recorded, None);
    assert!(unlocked);
    assert!(lease::try_lock_tenant(&mut other, tenant).await?);
    assert!(lease::unlock_tenant(&mut other, tenant).await?);
    assert!(lease::try_lock_tenant(&mut conn, tenant).await?);

    // The attempt's own: succeeded, the next operation named, the lock
    // released; the session's setting is back to off afterwards.
    let (recorded, unlocked) =
        store::succeed_then_next_unlocking(&mut conn, backup, token, tenant).await?;
    assert_eq!(recorded, Some(Some(usage)));
    assert!(unlocked);
    assert!(lease::try_lock_tenant(&mut other, tenant).await?);
    let state: String = sqlx::query_scalar("SELECT state FROM operations WHERE id = $1")
        .bind(backup)
        .fetch_one(&pool)
        .await?;
    assert_eq!(state, "succeeded");
    let setting: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(setting, "off");
    // Recording again is answered the same (a retry after a lost reply);
    // no lock held now: unlocked says so.
    let (recorded, unlocked) =
        store::succeed_then_next_unlocking(&mut conn, backup, token, tenant).await?;
    assert_eq!(recorded, Some(Some(usage)));
    assert!(!unlocked);
    Ok(())
}
