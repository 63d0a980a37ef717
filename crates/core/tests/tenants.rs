//! Creating tenants: validation, limits, placement, races.

use std::time::Duration;

use saas_core::ops::store::{self, AttemptError, Claim};
use saas_core::ops::{Actor, OperationKind, OperationState, secrets};
use saas_core::sealing::{Purpose, SealError, SealingKey};
use saas_core::tenants::{self, CreateError, NewTenant};
use saas_testkit::TestDb;
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::PgPool;
use uuid::Uuid;

const PASSWORD: &str = "a long odoo admin password";

fn key() -> &'static SealingKey {
    static KEY: std::sync::LazyLock<SealingKey> = std::sync::LazyLock::new(|| {
        SealingKey::derive(&SecretString::from(
            "test-secret-key-0123456789abcdef-0123".to_owned(),
        ))
    });
    &KEY
}

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
        admin_password: SecretString::from(PASSWORD),
    }
}

#[tokio::test]
async fn creating_a_tenant_queues_its_provision_with_the_password_sealed() -> anyhow::Result<()> {
    let (_db, pool, plan) = world(true, 10).await?;
    let owner = customer(&pool, "owner@example.com").await?;
    let (tenant, op) = tenants::create(
        &pool,
        None,
        key(),
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
    assert!(
        !shown.contains(PASSWORD) && !shown.contains("password"),
        "{shown}"
    );
    let audit: String = sqlx::query_scalar("SELECT string_agg(details::text, ' ') FROM audit_log")
        .fetch_one(&pool)
        .await?;
    assert!(!audit.contains(PASSWORD), "{audit}");
    // Stored sealed with the operation, bound to the tenant.
    let sealed = secrets::sealed(&pool, op.id, Purpose::OdooAdminPassword)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no sealed password"))?;
    assert!(
        !sealed
            .windows(PASSWORD.len())
            .any(|w| w == PASSWORD.as_bytes())
    );
    let opened = key().open(Purpose::OdooAdminPassword, tenant.id, &sealed)?;
    assert_eq!(opened.expose_secret(), PASSWORD);
    assert_eq!(
        key()
            .open(Purpose::OdooAdminPassword, Uuid::new_v4(), &sealed)
            .err(),
        Some(SealError::Rejected)
    );
    let clear: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM operations WHERE args::text LIKE '%' || $1 || '%'",
    )
    .bind(PASSWORD)
    .fetch_one(&pool)
    .await?;
    assert_eq!(clear, 0);
    Ok(())
}

/// The sealed copy lives exactly as long as its operation: kept through a
/// retried attempt, gone on success, on failure for good and on
/// cancellation.
#[tokio::test]
async fn the_sealed_password_is_erased_when_the_operation_ends() -> anyhow::Result<()> {
    let (_db, pool, plan) = world(true, 10).await?;
    let owner = customer(&pool, "owner@example.com").await?;
    let actor = Actor::system("test");
    sqlx::query("UPDATE plans SET max_instances = 10")
        .execute(&pool)
        .await?;
    let mut ops = Vec::new();
    for name in ["succeeds", "fails", "cancelled", "orphaned"] {
        let (_, op) = tenants::create(&pool, None, key(), &new(owner, plan, name), &actor).await?;
        assert!(secrets::held(&pool, op.id).await?, "{name}");
        ops.push(op.id);
    }
    let claim = async |id: Uuid| -> anyhow::Result<Uuid> {
        let lease = Uuid::new_v4();
        match store::claim(&pool, id, "test-worker", lease).await? {
            Claim::Claimed(_) => Ok(lease),
            other => anyhow::bail!("not claimed: {other:?}"),
        }
    };
    let retryable = AttemptError {
        detail: "probe timed out",
        customer: "Odoo did not answer in time",
        retryable: true,
    };

    let lease = claim(ops[0]).await?;
    store::fail_attempt(&pool, ops[0], lease, retryable, Duration::ZERO).await?;
    assert!(
        secrets::held(&pool, ops[0]).await?,
        "a retried attempt needs it again"
    );
    let lease = claim(ops[0]).await?;
    assert!(store::succeed(&pool, ops[0], lease).await?);
    assert!(!secrets::held(&pool, ops[0]).await?, "kept after success");

    let lease = claim(ops[1]).await?;
    let permanent = AttemptError {
        retryable: false,
        ..retryable
    };
    store::fail_attempt(&pool, ops[1], lease, permanent, Duration::ZERO).await?;
    assert!(
        !secrets::held(&pool, ops[1]).await?,
        "kept after failing for good"
    );

    store::cancel(&mut *pool.acquire().await?, ops[2]).await?;
    assert!(
        !secrets::held(&pool, ops[2]).await?,
        "kept after cancellation"
    );

    // A worker that vanished on its last attempt: the takeover fails it.
    claim(ops[3]).await?;
    sqlx::query("UPDATE operations SET attempts = max_attempts, heartbeat_at = now() - interval '1 hour' WHERE id = $1")
        .bind(ops[3])
        .execute(&pool)
        .await?;
    let recovered = store::recover_orphans(&pool, Duration::from_secs(60)).await?;
    assert_eq!(recovered.failed, vec![ops[3]]);
    assert!(
        !secrets::held(&pool, ops[3]).await?,
        "kept after the takeover failed it"
    );

    // Nothing is stored for an operation that is no longer queued.
    let mut conn = pool.acquire().await?;
    let stored = secrets::store(&mut conn, ops[0], Purpose::OdooAdminPassword, &[1; 64]).await?;
    assert!(!stored);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM operation_secrets")
        .fetch_one(&pool)
        .await?;
    assert_eq!(left, 0);
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
        tenants::create(&pool, None, key(), &for_a, &actor),
        tenants::create(&pool, None, key(), &for_b, &actor),
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
    let err = tenants::create(&pool, None, key(), &new(owner, plan, "Bad_Name"), &actor)
        .await
        .err();
    assert_eq!(err.as_ref().and_then(CreateError::field), Some("subdomain"));
    let err = tenants::create(
        &pool,
        None,
        key(),
        &new(owner, Uuid::new_v4(), "acme"),
        &actor,
    )
    .await
    .err();
    assert!(matches!(err, Some(CreateError::PlanNotFound)));
    tenants::create(&pool, None, key(), &new(owner, plan, "one"), &actor).await?;
    tenants::create(&pool, None, key(), &new(owner, plan, "two"), &actor).await?;
    let err = tenants::create(&pool, None, key(), &new(owner, plan, "three"), &actor)
        .await
        .err();
    assert!(matches!(err, Some(CreateError::Limit(_))), "{err:?}");

    let (_db2, pool, plan) = world(false, 10).await?;
    let owner = customer(&pool, "owner@example.com").await?;
    let err = tenants::create(&pool, None, key(), &new(owner, plan, "acme"), &actor)
        .await
        .err();
    assert!(
        err.as_ref()
            .is_some_and(|e| e.to_string().contains("tpl_basic")),
        "{err:?}"
    );

    let (_db3, pool, plan) = world(true, 0).await?;
    let owner = customer(&pool, "owner@example.com").await?;
    let err = tenants::create(&pool, None, key(), &new(owner, plan, "acme"), &actor)
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
    let (tenant, op) =
        tenants::create(&pool, None, key(), &new(owner, plan, "acme"), &actor).await?;
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

/// A password reset requested again while the first waits: one operation,
/// holding the newest password, and the repetition audited; nothing of
/// either password in clear anywhere.
#[tokio::test]
async fn a_repeated_secret_request_replaces_the_queued_secret() -> anyhow::Result<()> {
    let (_db, pool, plan) = world(true, 10).await?;
    let owner = customer(&pool, "owner@example.com").await?;
    let actor = Actor::system("test");
    let (tenant, _) =
        tenants::create(&pool, None, key(), &new(owner, plan, "acme"), &actor).await?;
    sqlx::query("UPDATE tenants SET state = 'active' WHERE id = $1")
        .bind(tenant.id)
        .execute(&pool)
        .await?;
    let mut ids = Vec::new();
    for password in ["the first new password", "the second new password"] {
        let value = SecretString::from(password);
        let requested = saas_core::ops::request_change_with_secret(
            &pool,
            None,
            tenant.id,
            OperationKind::ResetAdminPassword,
            serde_json::json!({}),
            &actor,
            &saas_core::ops::Secret {
                key: key(),
                purpose: Purpose::OdooAdminPassword,
                value: &value,
            },
        )
        .await?;
        ids.push((requested.operation.id, requested.created));
    }
    assert_eq!(ids[0].0, ids[1].0, "a second operation was made");
    assert!(ids[0].1 && !ids[1].1);
    let sealed = secrets::sealed(&pool, ids[0].0, Purpose::OdooAdminPassword)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no sealed password"))?;
    let opened = key().open(Purpose::OdooAdminPassword, tenant.id, &sealed)?;
    assert_eq!(opened.expose_secret(), "the second new password");
    let audit: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT details FROM audit_log WHERE action = 'tenant.reset_admin_password' ORDER BY id",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert_eq!(audit[1]["repeated"], true);
    let text = serde_json::to_string(&audit)?;
    assert!(!text.contains("new password"), "{text}");
    // Refused where the lifecycle refuses it, like any operation.
    sqlx::query("UPDATE tenants SET state = 'deleting' WHERE id = $1")
        .bind(tenant.id)
        .execute(&pool)
        .await?;
    let value = SecretString::from("a third new password");
    let refused = saas_core::ops::request_change_with_secret(
        &pool,
        None,
        tenant.id,
        OperationKind::ResetAdminPassword,
        serde_json::json!({}),
        &actor,
        &saas_core::ops::Secret {
            key: key(),
            purpose: Purpose::OdooAdminPassword,
            value: &value,
        },
    )
    .await;
    assert!(
        matches!(
            refused,
            Err(saas_core::ops::RequestError::NotAllowed { .. })
        ),
        "{refused:?}"
    );
    Ok(())
}
