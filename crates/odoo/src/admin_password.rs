//! A new password for a tenant's Odoo admin user (id 2, whose login
//! provisioning set to the customer's email), for customers who lost theirs.
//!
//! The tenant database is the customer's by now: it may hold triggers,
//! rules or policies on `res_users` that run with the rights of whoever
//! updates it. So the platform's superuser only checks the catalog and
//! grants; the update itself runs as a throw-away guest that may read
//! `res_users.id` and write `res_users.password` (and `write_date`) and
//! nothing else, so whatever fires, fires harmlessly.

use std::time::Duration;

use sqlx::{Connection as _, Executor as _, PgConnection};
use uuid::Uuid;

use crate::error::{OdooError, Result};
use crate::guest::Guest;
use crate::ident::quoted;
use crate::ownership::{TenantDatabase, tenant_database};
use crate::server::OdooServer;

/// The admin user provisioning configures (Odoo's `base.user_admin`).
pub const ADMIN_USER_ID: i32 = 2;
const WORK: Duration = Duration::from_secs(5 * 60);
const TEMP_FILES: u64 = 64 << 20;
const STEP: &str = "setting the admin password";

/// Writes `password_hash` (Odoo's `$pbkdf2-sha512$...`) as the password of
/// the admin user of tenant `tenant_id`'s database `db`. Writing the same
/// hash again changes nothing, so a repeated attempt is harmless.
#[tracing::instrument(skip_all)]
pub async fn set_admin_password(
    server: &OdooServer,
    db: &str,
    tenant_id: Uuid,
    password_hash: &str,
) -> Result<()> {
    if !password_hash.starts_with("$pbkdf2-sha512$") {
        return Err(OdooError::invalid(
            "admin password hash",
            "not a pbkdf2-sha512 hash",
        ));
    }
    match tenant_database(server, db, tenant_id).await? {
        TenantDatabase::Ours => {}
        TenantDatabase::Missing => return Err(OdooError::DatabaseMissing(db.to_owned())),
        TenantDatabase::Foreign { reason } => {
            return Err(OdooError::ForeignDatabase {
                db: db.to_owned(),
                reason,
            });
        }
    }
    let mut admin = server.connect_admin().await?;
    let guest = Guest::create(&mut admin, "admin password", db, WORK, TEMP_FILES).await?;
    let result = async {
        guest.grant_connect(&mut admin, db).await?;
        let with_write_date = grant_password_columns(server, db, guest.name()).await?;
        let mut conn = guest.connect(server, db).await?;
        let updated = write_hash(&mut conn, password_hash, with_write_date).await;
        let _ = conn.close().await;
        updated
    }
    .await;
    let finished = guest.finish(server, &mut admin).await;
    result?;
    finished
}

/// `SELECT (id)` and `UPDATE (password[, write_date])` on `public.res_users`
/// for the guest (true when `write_date` is among them); a database without
/// those columns is refused.
async fn grant_password_columns(server: &OdooServer, db: &str, guest: &str) -> Result<bool> {
    let mut conn = server.connect_db_for_ddl(db).await?;
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT a.attname::text FROM pg_catalog.pg_attribute a \
         JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relname = 'res_users' AND c.relkind IN ('r', 'p') \
           AND a.attnum > 0 AND NOT a.attisdropped \
           AND a.attname IN ('id', 'password', 'write_date')",
    )
    .fetch_all(&mut conn)
    .await?;
    let has = |name: &str| columns.iter().any(|c| c == name);
    if !has("id") || !has("password") {
        let _ = conn.close().await;
        return Err(OdooError::VerificationFailed(
            "the database has no res_users table with id and password columns".to_owned(),
        ));
    }
    let with_write_date = has("write_date");
    let update = if with_write_date {
        "password, write_date"
    } else {
        "password"
    };
    let guest = quoted(guest);
    let sql = format!(
        "GRANT USAGE ON SCHEMA public TO {guest}; \
         GRANT SELECT (id), UPDATE ({update}) ON TABLE public.res_users TO {guest}"
    );
    conn.execute(sql.as_str()).await?;
    let _ = conn.close().await;
    Ok(with_write_date)
}

async fn write_hash(
    conn: &mut PgConnection,
    password_hash: &str,
    with_write_date: bool,
) -> Result<()> {
    let sql = if with_write_date {
        "UPDATE public.res_users SET password = $1, write_date = now() AT TIME ZONE 'UTC' \
         WHERE id = $2"
    } else {
        "UPDATE public.res_users SET password = $1 WHERE id = $2"
    };
    let updated = sqlx::query(sql)
        .bind(password_hash)
        .bind(ADMIN_USER_ID)
        .execute(&mut *conn)
        .await
        .map_err(OdooError::guest(STEP))?;
    if updated.rows_affected() != 1 {
        return Err(OdooError::VerificationFailed(format!(
            "the admin user (id {ADMIN_USER_ID}) was not found in res_users"
        )));
    }
    Ok(())
}
