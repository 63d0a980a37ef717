//! Who may connect to a tenant database. Odoo's `/xmlrpc` and `/jsonrpc` take the
//! database name from the request body, so the routing map alone cannot keep a
//! suspended tenant closed: any tenant's hostname reaches the same Odoo. The
//! privilege to connect is therefore taken from the Odoo role in PostgreSQL
//! itself, which also stops the tenant's crons.
//!
//! This is deliberately not the `CONNECTION LIMIT` that a restore sets during its
//! swap: the two mechanisms never undo each other (a restore ending with
//! `CONNECTION LIMIT -1` does not resume a suspended tenant, a resume does not
//! reopen a database a restore is swapping).

use std::time::Duration;

use sqlx::{Executor as _, PgConnection};

use crate::error::{OdooError, Result};
use crate::ident::{check_db_name, quoted};
use crate::provision::database_owner;
use crate::server::OdooServer;

/// How many times sessions are looked for and terminated after the revoke: a
/// session that passed the privilege check just before the revoke committed may
/// appear a moment after the first pass.
const TERMINATE_PASSES: u32 = 20;

/// Takes the right to connect to `db` from the Odoo role (and from PUBLIC), then
/// terminates every session on it. The platform's own superuser sessions
/// (backups, restores) still connect. Idempotent.
#[tracing::instrument(skip_all)]
pub async fn suspend_tenant(server: &OdooServer, db: &str) -> Result<()> {
    check_db_name(db)?;
    let mut admin = server.connect_admin().await?;
    ensure_exists(&mut admin, db).await?;
    close_to_public(&mut admin, db).await?;
    admin
        .execute(
            format!(
                "REVOKE CONNECT ON DATABASE {} FROM {}",
                quoted(db),
                quoted(&server.odoo_db_role)
            )
            .as_str(),
        )
        .await?;
    terminate_sessions(&mut admin, db).await
}

/// Gives the Odoo role back the right to connect to `db`: exactly what
/// [`suspend_tenant`] took (PUBLIC stays without it, as provisioning left it).
/// Idempotent.
#[tracing::instrument(skip_all)]
pub async fn resume_tenant(server: &OdooServer, db: &str) -> Result<()> {
    check_db_name(db)?;
    let mut admin = server.connect_admin().await?;
    ensure_exists(&mut admin, db).await?;
    admin
        .execute(
            format!(
                "GRANT CONNECT ON DATABASE {} TO {}",
                quoted(db),
                quoted(&server.odoo_db_role)
            )
            .as_str(),
        )
        .await?;
    // A database made before PUBLIC lost its rights (or by a restore) is closed
    // to PUBLIC too; for one provisioned here this changes nothing.
    close_to_public(&mut admin, db).await
}

/// Whether the Odoo role may open a connection to `db` (the catalog's answer; no
/// connection is made): `false` while the tenant is suspended.
pub async fn odoo_may_connect(server: &OdooServer, db: &str) -> Result<bool> {
    check_db_name(db)?;
    let mut admin = server.connect_admin().await?;
    ensure_exists(&mut admin, db).await?;
    Ok(
        sqlx::query_scalar("SELECT has_database_privilege($1, $2, 'CONNECT')")
            .bind(&server.odoo_db_role)
            .bind(db)
            .fetch_one(&mut admin)
            .await?,
    )
}

/// `REVOKE ALL ON DATABASE db FROM PUBLIC`: no role but the owner (the Odoo
/// role, whose rights become explicit in the ACL) and superusers may connect,
/// so no tenant-level role can open a neighbour's database.
pub(crate) async fn close_to_public(admin: &mut PgConnection, db: &str) -> Result<()> {
    admin
        .execute(format!("REVOKE ALL ON DATABASE {} FROM PUBLIC", quoted(db)).as_str())
        .await?;
    Ok(())
}

async fn ensure_exists(admin: &mut PgConnection, db: &str) -> Result<()> {
    match database_owner(admin, db).await? {
        Some(_) => Ok(()),
        None => Err(OdooError::DatabaseMissing(db.to_owned())),
    }
}

/// Terminates every other session on `db` until a pass finds none.
async fn terminate_sessions(admin: &mut PgConnection, db: &str) -> Result<()> {
    let mut remaining = 0;
    for pass in 0..TERMINATE_PASSES {
        // The timeout makes each call wait until the session has really gone.
        remaining = sqlx::query_scalar::<_, i64>(
            "SELECT count(pg_terminate_backend(pid, 2000)) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(db)
        .fetch_one(&mut *admin)
        .await?;
        if remaining == 0 {
            return Ok(());
        }
        tracing::debug!(pass, sessions = remaining, "terminated sessions");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(OdooError::SessionsRemain {
        db: db.to_owned(),
        sessions: remaining,
    })
}
