//! Inside a freshly restored database. The guest that ran the dump checks
//! it and stamps the tenant's identity: whatever the dump's triggers, rules
//! or views do to those statements, they do with the guest's rights. Then
//! the platform hands the database to the Odoo role with DDL only.

use sqlx::{Acquire as _, Executor as _, PgConnection};
use url::Url;
use uuid::Uuid;

use crate::configure::set_param;
use crate::error::{OdooError, Result};
use crate::guest::Guest;
use crate::ident::quoted;
use crate::marker::write_marker;
use crate::provision::PROVISIONED_MARKER;
use crate::server::OdooServer;

/// Added to Odoo's signaling sequences above the old database's values: Odoo
/// reloads when a value differs from the one it cached, and the old database
/// keeps counting for the seconds between reading it and the swap.
const SIGNAL_MARGIN: i64 = 1000;

const SIGNALING: &str = "schemaname = 'public' AND (sequencename = 'base_registry_signaling' \
     OR sequencename LIKE 'base\\_cache\\_signaling%')";

/// As the guest on the restored database: it looks like Odoo, defines no
/// SECURITY DEFINER function, Odoo's signaling is above `old_signals`, and it
/// carries the tenant's identity.
pub(crate) async fn check_and_stamp(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    base_url: &Url,
    old_signals: &[(String, i64)],
) -> Result<()> {
    verify(conn).await?;
    refuse_security_definer(conn).await?;
    bump_signaling(conn, old_signals).await?;
    stamp_identity(conn, tenant_id, base_url).await
}

/// A restored database must look like Odoo: base installed, users present.
async fn verify(conn: &mut PgConnection) -> Result<()> {
    const STEP: &str = "verifying the database";
    let tables: (bool, bool) = sqlx::query_as(
        "SELECT pg_catalog.to_regclass('public.ir_module_module') IS NOT NULL, \
                pg_catalog.to_regclass('public.res_users') IS NOT NULL",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(OdooError::guest(STEP))?;
    if tables != (true, true) {
        return Err(OdooError::VerificationFailed(
            "no ir_module_module or res_users table: not an Odoo database".into(),
        ));
    }
    let base: Option<String> =
        sqlx::query_scalar("SELECT state::text FROM ir_module_module WHERE name = 'base'")
            .fetch_optional(&mut *conn)
            .await
            .map_err(OdooError::guest(STEP))?;
    if base.as_deref() != Some("installed") {
        return Err(OdooError::VerificationFailed(
            "module base is not installed".into(),
        ));
    }
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM res_users")
        .fetch_one(&mut *conn)
        .await
        .map_err(OdooError::guest(STEP))?;
    if users == 0 {
        return Err(OdooError::VerificationFailed("no users".into()));
    }
    Ok(())
}

/// Once the database is handed over, every function in it belongs to the Odoo
/// role, and a SECURITY DEFINER one would run with that role's rights for
/// whoever calls it (a platform read through a guest included): refused.
/// Odoo itself defines none.
async fn refuse_security_definer(conn: &mut PgConnection) -> Result<()> {
    let count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_catalog.pg_proc p \
         JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
         WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(OdooError::guest("checking its functions"))?;
    if count > 0 {
        return Err(OdooError::VerificationFailed(
            "the dump defines SECURITY DEFINER functions, which are not allowed".into(),
        ));
    }
    Ok(())
}

/// Odoo's signaling sequences of the tenant's current database and their
/// `last_value`, read by the platform from the catalog view `pg_sequences`
/// (no customer object is involved).
pub(crate) async fn old_signaling(server: &OdooServer, db: &str) -> Result<Vec<(String, i64)>> {
    let mut conn = server.connect_db_for_ddl(db).await?;
    let values = sqlx::query_as(&format!(
        "SELECT sequencename::text, COALESCE(last_value, 1) FROM pg_catalog.pg_sequences \
         WHERE {SIGNALING}"
    ))
    .fetch_all(&mut conn)
    .await?;
    Ok(values)
}

/// Sets each signaling sequence above the old database's value, so a running
/// Odoo notices the database changed and drops its registry and caches.
async fn bump_signaling(conn: &mut PgConnection, old: &[(String, i64)]) -> Result<()> {
    const STEP: &str = "signaling Odoo";
    let current: Vec<(String, i64)> = sqlx::query_as(&format!(
        "SELECT sequencename::text, COALESCE(last_value, 1) FROM pg_catalog.pg_sequences \
         WHERE {SIGNALING}"
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(OdooError::guest(STEP))?;
    for (name, value) in current {
        let previous = old.iter().find(|(n, _)| *n == name).map_or(0, |(_, v)| *v);
        sqlx::query(
            "SELECT pg_catalog.setval(pg_catalog.format('public.%I', $1::text)::pg_catalog.regclass, $2)",
        )
        .bind(&name)
        .bind(previous.max(value).saturating_add(SIGNAL_MARGIN))
        .execute(&mut *conn)
        .await
        .map_err(OdooError::guest(STEP))?;
    }
    Ok(())
}

/// The tenant's identity, not the backup's: its `web.base.url`, a fresh
/// `database.secret`, `database.uuid` = the tenant id, and the provisioned
/// marker. Users and passwords stay: they are the customer's own.
async fn stamp_identity(conn: &mut PgConnection, tenant_id: Uuid, base_url: &Url) -> Result<()> {
    const STEP: &str = "re-applying the tenant's settings";
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
    let params = [
        (
            "web.base.url",
            base_url.as_str().trim_end_matches('/').to_owned(),
        ),
        ("database.secret", Uuid::new_v4().to_string()),
        ("database.uuid", tenant_id.to_string()),
        (PROVISIONED_MARKER, now),
    ];
    let mut tx = conn.begin().await.map_err(OdooError::guest(STEP))?;
    for (key, value) in params {
        set_param(&mut tx, key, &value)
            .await
            .map_err(|e| e.in_guest(STEP))?;
    }
    tx.commit().await.map_err(OdooError::guest(STEP))?;
    Ok(())
}

/// From the guest to the Odoo role, by the platform (DDL only): the guest's
/// sessions end, the settings the dump gave the database are reset, the
/// guest's objects (and the database) are reassigned to the Odoo role and the
/// guest dropped; the database may no longer be a template nor be limited,
/// PUBLIC has no CONNECT, and the tenant's marker is written.
pub(crate) async fn hand_over(
    server: &OdooServer,
    admin: &mut PgConnection,
    db: &str,
    guest: &mut Guest,
    tenant_id: Uuid,
) -> Result<()> {
    guest.lock_out(admin, db).await?;
    reset_database(admin, db).await?;
    guest.finish(server, admin).await?;
    let name = quoted(db);
    admin
        .execute(
            format!(
                "ALTER DATABASE {name} OWNER TO {role}; REVOKE ALL ON DATABASE {name} FROM PUBLIC",
                role = quoted(&server.odoo_db_role)
            )
            .as_str(),
        )
        .await?;
    write_marker(admin, db, tenant_id).await
}

/// What the owner of a database may change about it, put back: no settings
/// of its own (they would apply to every later session, the platform's and
/// Odoo's), not a template, no connection limit.
pub(crate) async fn reset_database(admin: &mut PgConnection, db: &str) -> Result<()> {
    let name = quoted(db);
    admin
        .execute(
            format!(
                "ALTER DATABASE {name} RESET ALL; \
                 ALTER DATABASE {name} WITH IS_TEMPLATE false ALLOW_CONNECTIONS true CONNECTION LIMIT -1"
            )
            .as_str(),
        )
        .await?;
    Ok(())
}
