//! The customer's Odoo admin password through the real worker: sealed by the
//! request, opened and hashed by the worker, erased when the operation
//! ends; a blob that does not open fails clearly; a password reset writes a
//! new hash as a guest, so a customer's trigger on `res_users` runs with no
//! rights worth having.

mod common;

use anyhow::ensure;
use common::{NewTenantSpec, ODOO_PASSWORD, Platform, admin_user, sealing_key};
use saas_core::auth::odoo_password::verify_password;
use saas_core::ops::{self, Actor, OperationKind, OperationState, secrets};
use saas_core::sealing::{Purpose, SealingKey};
use saas_testkit::odoo::OdooWorld;
use secrecy::SecretString;
use serde_json::json;
use sqlx::{Connection as _, PgPool};
use uuid::Uuid;

const NEW_PASSWORD: &str = "a brand new odoo password";

async fn reset(platform: &Platform, tenant: Uuid, password: &str) -> anyhow::Result<Uuid> {
    let value = SecretString::from(password.to_owned());
    let requested = ops::request_change_with_secret(
        &platform.pool,
        Some(&platform.queue),
        tenant,
        OperationKind::ResetAdminPassword,
        json!({}),
        &Actor::system("test"),
        &ops::Secret {
            key: &sealing_key(),
            purpose: Purpose::OdooAdminPassword,
            value: &value,
        },
    )
    .await?;
    Ok(requested.operation.id)
}

#[tokio::test]
async fn a_reset_writes_a_hash_of_the_new_password_and_erases_it() -> anyhow::Result<()> {
    let world = OdooWorld::new().await?;
    let platform = Platform::start(&world).await?;
    let subdomain = format!("reset-{}", world.suffix);
    let requested = platform
        .active_tenant(
            &world,
            &NewTenantSpec {
                subdomain: &subdomain,
                max_backups: 3,
                max_storage_mb: 1024,
            },
        )
        .await?;
    let op = reset(&platform, requested.tenant, NEW_PASSWORD).await?;
    let done = platform.wait_final(op).await?;
    ensure!(
        done.state == OperationState::Succeeded,
        "{:?}: {:?}",
        done.state,
        done.last_error
    );
    let (login, stored) = admin_user(&subdomain).await?;
    ensure!(login == requested.login, "the login changed: {login}");
    ensure!(
        verify_password(NEW_PASSWORD, &stored) && !verify_password(ODOO_PASSWORD, &stored),
        "the new hash does not verify: {stored}"
    );
    ensure!(
        !secrets::held(&platform.pool, op).await?,
        "sealed copy kept"
    );
    // Nothing of the password anywhere an operator or customer reads.
    let leaked: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM operations WHERE args::text LIKE '%' || $1 || '%' OR coalesce(last_error, '') LIKE '%' || $1 || '%')
              + (SELECT count(*) FROM audit_log WHERE details::text LIKE '%' || $1 || '%')",
    )
    .bind(NEW_PASSWORD)
    .fetch_one(&platform.pool)
    .await?;
    ensure!(leaked == 0, "the password is stored in clear");
    ensure!(
        !platform.worker.log().contains(NEW_PASSWORD) && !platform.worker.log().contains(&stored),
        "the password or its hash is in the worker's log"
    );
    Ok(())
}

/// A customer's database can carry a trigger on `res_users` (a restored
/// dump); it fires as the guest that writes the hash: refused, nothing it
/// tried happens, and the customer reads why.
#[tokio::test]
async fn a_customers_trigger_on_res_users_runs_without_rights() -> anyhow::Result<()> {
    let world = OdooWorld::new().await?;
    let platform = Platform::start(&world).await?;
    let subdomain = format!("trap-{}", world.suffix);
    let requested = platform
        .active_tenant(
            &world,
            &NewTenantSpec {
                subdomain: &subdomain,
                max_backups: 3,
                max_storage_mb: 1024,
            },
        )
        .await?;
    let mut odoo = sqlx::PgConnection::connect(&saas_testkit::database_url(&subdomain)?).await?;
    sqlx::raw_sql(&format!(
        "CREATE FUNCTION public.plant() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             INSERT INTO ir_config_parameter (key, value) VALUES ('planted', current_user);
             RETURN NEW;
         END $$;
         ALTER FUNCTION public.plant() OWNER TO {role};
         CREATE TRIGGER plant BEFORE UPDATE ON res_users FOR EACH ROW EXECUTE FUNCTION public.plant();",
        role = saas_testkit::odoo::ROLE
    ))
    .execute(&mut odoo)
    .await?;
    let op = reset(&platform, requested.tenant, NEW_PASSWORD).await?;
    let failed = platform.wait_final(op).await?;
    ensure!(failed.state == OperationState::Failed, "{failed:?}");
    let customer = failed.customer_error.clone().unwrap_or_default();
    ensure!(
        customer.contains("setting the admin password") && customer.contains("permission denied"),
        "{customer}"
    );
    let planted: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ir_config_parameter WHERE key = 'planted'")
            .fetch_one(&mut odoo)
            .await?;
    ensure!(planted == 0, "the trigger ran with rights");
    let (_, stored) = admin_user(&subdomain).await?;
    ensure!(
        verify_password(ODOO_PASSWORD, &stored),
        "the password changed"
    );
    ensure!(
        !secrets::held(&platform.pool, op).await?,
        "sealed copy kept"
    );

    // Retried by an operator after it failed for good: its password is gone,
    // and it says so instead of guessing one.
    let mut tx = platform.pool.begin().await?;
    ops::store::retry(&mut tx, op).await?;
    tx.commit().await?;
    ops::push_after_commit(Some(&platform.queue), op).await;
    let again = platform.wait_final(op).await?;
    ensure!(
        again.state == OperationState::Failed
            && again
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("erased")),
        "{again:?}"
    );
    let guests: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'saas\\_guest\\_%' AND shobj_description(oid, 'pg_authid') LIKE '%' || $1 || '%'")
            .bind(&subdomain)
            .fetch_one(&mut odoo)
            .await?;
    ensure!(guests == 0, "the guest role was left behind");
    Ok(())
}

/// A plan and a customer in the platform database, and a tenant requested
/// on them with its password sealed under `key`; the server already lists
/// the world's template. Runs before the worker starts.
async fn seed_tenant(
    pool: &PgPool,
    world: &OdooWorld,
    subdomain: &str,
    key: &SealingKey,
) -> anyhow::Result<(Uuid, Uuid)> {
    sqlx::query(
        "INSERT INTO server_templates (server_id, name) SELECT id, $1 FROM servers
         ON CONFLICT DO NOTHING",
    )
    .bind(format!("tpl_{}", world.template))
    .execute(pool)
    .await?;
    let plan = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO plans (id, code, name, max_users, max_storage_mb, max_backups, template)
         VALUES ($1, $2, 'Basic', 5, 1024, 3, $3)",
    )
    .bind(plan)
    .bind(format!("p-{}", &plan.simple().to_string()[..8]))
    .bind(&world.template)
    .execute(pool)
    .await?;
    let customer = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO customers (id, email, company_name, password_hash) VALUES ($1, $2, 'Shop', 'x')",
    )
    .bind(customer)
    .bind(format!("{subdomain}@shop.test"))
    .execute(pool)
    .await?;
    let (tenant, op) = saas_core::tenants::create(
        pool,
        None,
        key,
        &saas_core::tenants::NewTenant {
            customer_id: customer,
            plan_id: plan,
            subdomain: subdomain.to_owned(),
            admin_password: SecretString::from(ODOO_PASSWORD),
        },
        &Actor::system("test"),
    )
    .await?;
    Ok((tenant.id, op.id))
}

/// Sealed under another `SECRET_KEY`, or altered in the database: the
/// provision fails for good with the reason for operators, a plain text for
/// the customer, no panic, and the blob is erased. Retried by an operator,
/// the provision finishes with a random password the customer then resets.
#[tokio::test]
async fn a_foreign_or_tampered_seal_fails_the_provision_clearly() -> anyhow::Result<()> {
    let world = OdooWorld::new().await?;
    let foreign = format!("foreign-{}", world.suffix);
    let tampered = format!("tampered-{}", world.suffix);
    let mut seeded = Vec::new();
    let platform = Platform::start_after(&world, &[], async |pool| {
        let other_key = SealingKey::derive(&SecretString::from(
            "another-installations-secret-key-0123456789".to_owned(),
        ));
        seeded.push(seed_tenant(pool, &world, &foreign, &other_key).await?);
        let (tenant, op) = seed_tenant(pool, &world, &tampered, &sealing_key()).await?;
        sqlx::query(
            "UPDATE operation_secrets SET sealed = set_byte(sealed, 29, get_byte(sealed, 29) # 1)
             WHERE operation_id = $1",
        )
        .bind(op)
        .execute(pool)
        .await?;
        seeded.push((tenant, op));
        Ok(())
    })
    .await?;
    for (tenant, op) in &seeded {
        let failed = platform.wait_final(*op).await?;
        ensure!(failed.state == OperationState::Failed, "{failed:?}");
        let detail = failed.last_error.clone().unwrap_or_default();
        ensure!(
            detail.contains("sealed admin password") && detail.contains("does not open"),
            "{detail}"
        );
        let customer = failed.customer_error.clone().unwrap_or_default();
        ensure!(
            customer.contains("could not be read back") && !customer.contains("SECRET_KEY"),
            "{customer}"
        );
        ensure!(failed.attempts == 1, "a permanent failure was retried");
        ensure!(
            !secrets::held(&platform.pool, *op).await?,
            "sealed copy kept"
        );
        platform.wait_state(*tenant, "failed").await?;
    }
    ensure!(
        !platform.worker.log().contains("panicked"),
        "{}",
        platform.worker.log()
    );

    let (tenant, op) = seeded[0];
    let mut tx = platform.pool.begin().await?;
    ops::store::retry(&mut tx, op).await?;
    tx.commit().await?;
    ops::push_after_commit(Some(&platform.queue), op).await;
    let done = platform.wait_final(op).await?;
    ensure!(done.state == OperationState::Succeeded, "{done:?}");
    platform.wait_state(tenant, "active").await?;
    let (_, stored) = admin_user(&foreign).await?;
    ensure!(
        stored.starts_with("$pbkdf2-sha512$") && !verify_password(ODOO_PASSWORD, &stored),
        "the erased password was guessed back: {stored}"
    );
    let reset_op = reset(&platform, tenant, NEW_PASSWORD).await?;
    let reset_done = platform.wait_final(reset_op).await?;
    ensure!(
        reset_done.state == OperationState::Succeeded,
        "{reset_done:?}"
    );
    let (_, stored) = admin_user(&foreign).await?;
    ensure!(verify_password(NEW_PASSWORD, &stored));
    Ok(())
}
