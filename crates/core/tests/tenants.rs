//! Creating tenants: validation, limits, placement, races.

use saas_core::ops::{Actor, OperationKind, OperationState};
use saas_core::tenants::{self, CreateError, NewTenant};
use saas_testkit::TestDb;
use sqlx::PgPool;
use uuid::Uuid;

async fn world(template_on_server: bool, capacity: i32) -> anyhow::Result<(TestDb, PgPool, Uuid)> {
    let db = TestDb::new("tenants").await?;
    let pool = db.pool().await?;
    saas_core::db::MIGRATOR.run(&pool).await?;
    let plan = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO plans (id, code, name, max_users, max_storage_mb, max_backups, max_instances, template, trial_days)
         VALUES ($1, 'trial', 'Trial', 3, 1024, 3, 2, 'basic', 14)",
    )
    .bind(plan)
    .execute(&pool)
    .await?;
    let server = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO servers (id, name, public_url, internal_url, pg_url, filestore_root, capacity)
         VALUES ($1, 'odoo-1', 'https://saas.example', 'http://odoo:8069', 'postgres://odoo@db/postgres', '/var/lib/odoo/filestore', $2)",
    )
    .bind(server)
    .bind(capacity)
    .execute(&pool)
    .await?;
    if template_on_server {
        sqlx::query("INSERT INTO server_templates (server_id, name) VALUES ($1, 'tpl_basic')")
            .bind(server)
            .execute(&pool)
            .await?;
    }
    Ok((db, pool, plan))
}

async fn customer(pool: &PgPool, email: &str) -> anyhow::Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO customers (id, email, company_name, password_hash) VALUES ($1, $2, 'Acme', 'x')")
        .bind(id)
        .bind(email)
        .execute(pool)
        .await?;
    Ok(id)
}

fn new(customer_id: Uuid, plan_id: Uuid, subdomain: &str) -> NewTenant {
    NewTenant {
        customer_id,
        plan_id,
        subdomain: subdomain.to_owned(),
        admin_password_hash: "$pbkdf2-sha512$600000$c2FsdA$aGFzaA".to_owned(),
    }
}

#[tokio::test]
async fn creating_a_tenant_queues_its_provision_without_exposing_the_hash() -> anyhow::Result<()> {
    let (_db, pool, plan) = world(true, 10).await?;
    let owner = customer(&pool, "owner@example.com").await?;
    let (tenant, op) = tenants::create(
        &pool,
        None,
        &new(owner, plan, "acme"),
        &Actor::system("test"),
    )
    .await?;
    assert_eq!(tenant.state, "provisioning");
    assert_eq!(tenant.db_name, "acme");
    assert!(tenant.trial_ends_at.is_some());
    assert_eq!(op.kind, OperationKind::Provision);
    assert_eq!(op.state, OperationState::Queued);
    assert_eq!(op.args["admin_login"], "owner@example.com");
    let shown = serde_json::to_string(&op)?;
    assert!(!shown.contains("pbkdf2"), "{shown}");
    let audit: String = sqlx::query_scalar("SELECT string_agg(details::text, ' ') FROM audit_log")
        .fetch_one(&pool)
        .await?;
    assert!(!audit.contains("pbkdf2"), "{audit}");
    Ok(())
}

#[tokio::test]
async fn two_customers_racing_for_a_subdomain_one_wins() -> anyhow::Result<()> {
    let (_db, pool, plan) = world(true, 10).await?;
    let a = customer(&pool, "a@example.com").await?;
    let b = customer(&pool, "b@example.com").await?;
    let actor = Actor::system("test");
    let (for_a, for_b) = (new(a, plan, "contested"), new(b, plan, "contested"));
    let (first, second) = tokio::join!(
        tenants::create(&pool, None, &for_a, &actor),
        tenants::create(&pool, None, &for_b, &actor),
    );
    let wins = [first.is_ok(), second.is_ok()]
        .iter()
        .filter(|ok| **ok)
        .count();
    assert_eq!(wins, 1);
    let loser = if first.is_err() {
        first.err()
    } else {
        second.err()
    };
    assert!(
        matches!(loser, Some(CreateError::SubdomainTaken)),
        "{loser:?}"
    );
    Ok(())
}

#[tokio::test]
async fn limits_and_placement_refuse_with_a_reason() -> anyhow::Result<()> {
    let actor = Actor::system("test");
    let (_db, pool, plan) = world(true, 10).await?;
    let owner = customer(&pool, "owner@example.com").await?;
    let err = tenants::create(&pool, None, &new(owner, plan, "Bad_Name"), &actor)
        .await
        .err();
    assert_eq!(err.as_ref().and_then(CreateError::field), Some("subdomain"));
    let err = tenants::create(&pool, None, &new(owner, Uuid::new_v4(), "acme"), &actor)
        .await
        .err();
    assert!(matches!(err, Some(CreateError::PlanNotFound)));
    tenants::create(&pool, None, &new(owner, plan, "one"), &actor).await?;
    tenants::create(&pool, None, &new(owner, plan, "two"), &actor).await?;
    let err = tenants::create(&pool, None, &new(owner, plan, "three"), &actor)
        .await
        .err();
    assert!(matches!(err, Some(CreateError::Limit(_))), "{err:?}");

    let (_db2, pool, plan) = world(false, 10).await?;
    let owner = customer(&pool, "owner@example.com").await?;
    let err = tenants::create(&pool, None, &new(owner, plan, "acme"), &actor)
        .await
        .err();
    assert!(
        err.as_ref()
            .is_some_and(|e| e.to_string().contains("tpl_basic")),
        "{err:?}"
    );

    let (_db3, pool, plan) = world(true, 0).await?;
    let owner = customer(&pool, "owner@example.com").await?;
    let err = tenants::create(&pool, None, &new(owner, plan, "acme"), &actor)
        .await
        .err();
    assert!(
        err.as_ref().is_some_and(|e| e.to_string().contains("full")),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test]
async fn cancelling_a_queued_provision_fails_the_tenant_so_it_can_be_retried() -> anyhow::Result<()>
{
    let (_db, pool, plan) = world(true, 10).await?;
    let owner = customer(&pool, "owner@example.com").await?;
    let actor = Actor::system("test");
    let (tenant, op) = tenants::create(&pool, None, &new(owner, plan, "acme"), &actor).await?;
    let mut conn = pool.acquire().await?;
    saas_core::ops::store::cancel(&mut conn, op.id).await?;
    drop(conn);
    let state: String = sqlx::query_scalar("SELECT state FROM tenants WHERE id = $1")
        .bind(tenant.id)
        .fetch_one(&pool)
        .await?;
    assert_eq!(state, "failed");
    let again = saas_core::ops::request_change(
        &pool,
        None,
        tenant.id,
        OperationKind::Provision,
        serde_json::json!({}),
        &actor,
    )
    .await?;
    assert!(again.created);
    let state: String = sqlx::query_scalar("SELECT state FROM tenants WHERE id = $1")
        .bind(tenant.id)
        .fetch_one(&pool)
        .await?;
    assert_eq!(state, "provisioning");
    Ok(())
}
