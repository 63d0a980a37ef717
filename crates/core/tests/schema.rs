//! The platform schema against a real, empty PostgreSQL database.

use saas_core::db::{MIGRATOR, applied_version, expected_version};
use saas_testkit::TestDb;
use sqlx::PgPool;
use uuid::Uuid;

async fn migrated(prefix: &str) -> anyhow::Result<(TestDb, PgPool)> {
    let db = TestDb::new(prefix).await?;
    let pool = db.pool().await?;
    MIGRATOR.run(&pool).await?;
    Ok((db, pool))
}

#[tokio::test]
async fn migrations_apply_to_an_empty_database_and_are_idempotent() -> anyhow::Result<()> {
    let db = TestDb::new("schema").await?;
    let pool = db.pool().await?;
    assert_eq!(applied_version(&pool).await?, None);
    MIGRATOR.run(&pool).await?;
    assert_eq!(applied_version(&pool).await?, Some(expected_version()));
    MIGRATOR.run(&pool).await?;
    assert_eq!(applied_version(&pool).await?, Some(expected_version()));
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await?;
    for table in [
        "audit_log",
        "backups",
        "customers",
        "operations",
        "operators",
        "plans",
        "servers",
        "tenants",
    ] {
        assert!(
            tables.iter().any(|t| t == table),
            "missing table {table}: {tables:?}"
        );
    }
    Ok(())
}

struct Fixture {
    customer: Uuid,
    plan: Uuid,
}

async fn fixture(pool: &PgPool) -> anyhow::Result<Fixture> {
    let customer = Uuid::new_v4();
    sqlx::query("INSERT INTO customers (id, email, company_name, password_hash) VALUES ($1, $2, 'Acme', 'x')")
        .bind(customer)
        .bind(format!("{customer}@example.com"))
        .execute(pool)
        .await?;
    let plan = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO plans (id, code, name, max_users, max_storage_mb, max_backups, template)
         VALUES ($1, 'starter', 'Starter', 3, 1024, 7, 'starter')",
    )
    .bind(plan)
    .execute(pool)
    .await?;
    Ok(Fixture { customer, plan })
}

async fn insert_tenant(
    pool: &PgPool,
    f: &Fixture,
    subdomain: &str,
    state: &str,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::new_v4();
    let deleted_at = (state == "deleted").then(chrono::Utc::now);
    sqlx::query(
        "INSERT INTO tenants (id, subdomain, customer_id, plan_id, state, db_name, deleted_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(subdomain)
    .bind(f.customer)
    .bind(f.plan)
    .bind(state)
    .bind(format!("t_{}", subdomain.replace('-', "_")))
    .bind(deleted_at)
    .execute(pool)
    .await?;
    Ok(id)
}

fn constraint(err: &sqlx::Error) -> Option<String> {
    err.as_database_error()
        .and_then(|e| e.constraint())
        .map(str::to_owned)
}

#[tokio::test]
async fn a_live_subdomain_is_unique() -> anyhow::Result<()> {
    let (_db, pool) = migrated("unique").await?;
    let f = fixture(&pool).await?;
    insert_tenant(&pool, &f, "acme", "active").await?;
    let Err(err) = insert_tenant(&pool, &f, "acme", "pending").await else {
        panic!("a second live tenant took the subdomain");
    };
    assert_eq!(
        constraint(&err).as_deref(),
        Some("tenants_live_subdomain_key")
    );
    Ok(())
}

#[tokio::test]
async fn a_subdomain_is_free_again_after_delete() -> anyhow::Result<()> {
    let (_db, pool) = migrated("reuse").await?;
    let f = fixture(&pool).await?;
    let first = insert_tenant(&pool, &f, "acme", "deleting").await?;
    sqlx::query("UPDATE tenants SET state = 'deleted', deleted_at = now() WHERE id = $1")
        .bind(first)
        .execute(&pool)
        .await?;
    insert_tenant(&pool, &f, "acme", "pending").await?;
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tenants WHERE subdomain = 'acme' AND state <> 'deleted'",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(live, 1);
    Ok(())
}

#[tokio::test]
async fn states_and_subdomains_are_checked_by_the_database() -> anyhow::Result<()> {
    let (_db, pool) = migrated("checks").await?;
    let f = fixture(&pool).await?;
    let err = insert_tenant(&pool, &f, "acme", "archived").await.err();
    assert!(
        err.as_ref().and_then(constraint).is_some(),
        "unknown state accepted"
    );
    let err = insert_tenant(&pool, &f, "Bad_Name", "pending").await.err();
    assert!(
        err.as_ref().and_then(constraint).is_some(),
        "invalid subdomain accepted"
    );
    // A deleted tenant must carry its deletion time and a live one must not.
    let err = sqlx::query(
        "INSERT INTO tenants (id, subdomain, customer_id, plan_id, state, db_name)
         VALUES ($1, 'ghost', $2, $3, 'deleted', 't_ghost')",
    )
    .bind(Uuid::new_v4())
    .bind(f.customer)
    .bind(f.plan)
    .execute(&pool)
    .await
    .err();
    assert!(
        err.as_ref().and_then(constraint).is_some(),
        "deleted without deleted_at accepted"
    );
    Ok(())
}

#[tokio::test]
async fn foreign_keys_protect_customers_and_plans() -> anyhow::Result<()> {
    let (_db, pool) = migrated("fk").await?;
    let f = fixture(&pool).await?;
    insert_tenant(&pool, &f, "acme", "active").await?;
    let err = sqlx::query("DELETE FROM plans WHERE id = $1")
        .bind(f.plan)
        .execute(&pool)
        .await
        .err();
    assert!(
        err.as_ref().and_then(constraint).is_some(),
        "a plan in use was deleted"
    );
    let err = sqlx::query("DELETE FROM customers WHERE id = $1")
        .bind(f.customer)
        .execute(&pool)
        .await
        .err();
    assert!(
        err.as_ref().and_then(constraint).is_some(),
        "a customer with tenants was deleted"
    );
    Ok(())
}

#[tokio::test]
async fn one_queued_operation_per_kind_and_one_running_per_tenant() -> anyhow::Result<()> {
    let (_db, pool) = migrated("ops").await?;
    let f = fixture(&pool).await?;
    let tenant = insert_tenant(&pool, &f, "acme", "active").await?;
    let insert = |kind: &'static str, state: &'static str| {
        sqlx::query("INSERT INTO operations (id, tenant_id, kind, state, requested_by) VALUES ($1, $2, $3, $4, 'test')")
            .bind(Uuid::new_v4())
            .bind(tenant)
            .bind(kind)
            .bind(state)
            .execute(&pool)
    };
    insert("backup", "queued").await?;
    assert!(
        insert("backup", "queued").await.is_err(),
        "two queued backups"
    );
    insert("suspend", "queued").await?;
    insert("backup", "running").await?;
    assert!(
        insert("resume", "running").await.is_err(),
        "two running operations"
    );
    Ok(())
}
