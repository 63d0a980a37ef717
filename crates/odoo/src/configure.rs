//! Provisioning's configure step: the new database gets its own identity and the
//! tenant's credentials, in one transaction that ends with the `saas.provisioned`
//! parameter.
//!
//! This step connects into the tenant database as the platform's superuser. That
//! is safe only because the database is always our own marked clone of a sealed
//! template (the clone step refuses anything else): no customer has had a chance
//! to put a view or trigger in it. Never point it at a database a customer used.

use sqlx::{Acquire as _, PgConnection};

use crate::error::{OdooError, Result};
use crate::provision::{CrashPoint, PROVISIONED_MARKER, ProvisionSpec, ProvisionStep};
use crate::server::OdooServer;

/// Configures `spec.db_name`; returns `false` when it was already configured.
/// `password_hash` gives the admin password's hash, asked for only when the
/// database still needs it.
pub(crate) async fn configure(
    server: &OdooServer,
    spec: &ProvisionSpec,
    password_hash: impl AsyncFnOnce() -> Result<String>,
    crash_before_commit: bool,
) -> Result<bool> {
    let mut conn = server.connect_db(&spec.db_name).await?;
    let mut tx = conn.begin().await?;
    // Two concurrent runs for one tenant: the second waits, then sees the marker.
    sqlx::query("SELECT pg_advisory_xact_lock(4242001)")
        .execute(&mut *tx)
        .await?;
    // Reading a table of a resumed database runs no customer code: it is our
    // own marked clone, configured by nobody but this function.
    if configured(&mut tx).await? {
        return Ok(false);
    }
    let password_hash = password_hash().await?;
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
    let params = [
        // The tenant id: stable across restores (which put the same value back),
        // and unique, as Odoo expects of its database uuid.
        ("database.uuid", spec.tenant_id.to_string()),
        ("database.secret", uuid::Uuid::new_v4().to_string()),
        ("database.create_date", now.clone()),
        (
            "web.base.url",
            spec.base_url.as_str().trim_end_matches('/').to_owned(),
        ),
    ];
    for (key, value) in params {
        set_param(&mut tx, key, &value).await?;
    }
    name_company(&mut tx, &spec.company_name).await?;
    set_admin(&mut tx, &spec.admin_login, &password_hash).await?;

    set_param(&mut tx, PROVISIONED_MARKER, &now).await?;
    if crash_before_commit {
        drop(tx);
        return Err(OdooError::Interrupted(CrashPoint::During(
            ProvisionStep::Configure,
        )));
    }
    tx.commit().await?;
    Ok(true)
}

async fn configured(conn: &mut PgConnection) -> Result<bool> {
    let has_table: bool =
        sqlx::query_scalar("SELECT to_regclass('public.ir_config_parameter') IS NOT NULL")
            .fetch_one(&mut *conn)
            .await?;
    if !has_table {
        return Ok(false);
    }
    let value: Option<String> =
        sqlx::query_scalar("SELECT value FROM ir_config_parameter WHERE key = $1")
            .bind(PROVISIONED_MARKER)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(value.is_some())
}

/// Company 1 and its partner get the customer's company name.
async fn name_company(conn: &mut PgConnection, name: &str) -> Result<()> {
    let partner: Option<i32> = sqlx::query_scalar(
        "UPDATE res_company SET name = $1, write_date = now() AT TIME ZONE 'UTC' \
         WHERE id = 1 RETURNING partner_id",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    let partner = partner.ok_or_else(|| {
        OdooError::VerificationFailed("the template has no company with id 1".into())
    })?;
    sqlx::query(
        "UPDATE res_partner SET name = $1, complete_name = $1, \
         write_date = now() AT TIME ZONE 'UTC' WHERE id = $2",
    )
    .bind(name)
    .bind(partner)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The admin user (id 2) gets the customer's login, password and email.
async fn set_admin(conn: &mut PgConnection, login: &str, password_hash: &str) -> Result<()> {
    let partner: Option<i32> = sqlx::query_scalar(
        "UPDATE res_users SET login = $1, password = $2, write_date = now() AT TIME ZONE 'UTC' \
         WHERE id = 2 RETURNING partner_id",
    )
    .bind(login)
    .bind(password_hash)
    .fetch_optional(&mut *conn)
    .await?;
    let partner = partner.ok_or_else(|| {
        OdooError::VerificationFailed("the template has no admin user with id 2".into())
    })?;
    sqlx::query(
        "UPDATE res_partner SET email = $1, write_date = now() AT TIME ZONE 'UTC' WHERE id = $2",
    )
    .bind(login)
    .bind(partner)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn set_param(conn: &mut PgConnection, key: &str, value: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO ir_config_parameter (key, value, create_uid, write_uid, create_date, write_date) \
         VALUES ($1, $2, 1, 1, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC') \
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, write_uid = 1, \
         write_date = EXCLUDED.write_date",
    )
    .bind(key)
    .bind(value)
    .execute(conn)
    .await?;
    Ok(())
}
