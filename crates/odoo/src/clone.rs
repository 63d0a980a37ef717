//! Provisioning's clone step. The template is copied under a side name, marked as
//! the tenant's (`COMMENT ON DATABASE`) and closed to PUBLIC, and only then
//! renamed to the tenant's name. The rename is atomic, so a database under the
//! tenant's name always carries its marker: one without it (or with another
//! tenant's) was not made here for this tenant and is never adopted.

use std::time::{Duration, Instant};

use sqlx::{Executor as _, PgConnection};
use uuid::Uuid;

use crate::access::close_to_public;
use crate::error::{OdooError, Result};
use crate::ident::{check_db_name, quoted};
use crate::marker::{is_marked_for, write_marker};
use crate::ownership::examine;
use crate::provision::{CrashPoint, ProvisionStep, terminate_idle};
use crate::server::OdooServer;
use crate::swap::side_name;
use saas_core::error_chain::Chain;

/// Tag of provisioning's side clones: `<db>_clone_<8 letters>`.
const CLONE_TAG: &str = "clone";

/// What [`clone_database`] makes.
pub(crate) struct CloneRequest<'a> {
    pub template: &'a str,
    pub db: &'a str,
    pub tenant_id: Uuid,
    pub busy_timeout: Duration,
    /// Crash injection: stop with the side clone made and marked, not renamed.
    pub crash_before_rename: bool,
}

/// Makes `db` from the template for the tenant; `Ok(false)` when an earlier run
/// already made it (it carries the tenant's marker), [`OdooError::ForeignDatabase`]
/// when a database of that name is anyone else's.
pub(crate) async fn clone_database(
    server: &OdooServer,
    request: &CloneRequest<'_>,
) -> Result<bool> {
    let CloneRequest { db, tenant_id, .. } = *request;
    let role = &server.odoo_db_role;
    let mut admin = server.connect_admin().await?;
    drop_stale_clones(&mut admin, db, tenant_id).await?;
    if examine(&mut admin, role, db, tenant_id)
        .await?
        .ours_or_missing(db)?
    {
        return Ok(false);
    }
    check_template(&mut admin, role, request.template).await?;

    let side = side_name(db, CLONE_TAG);
    create_from_template(
        &mut admin,
        role,
        request.template,
        &side,
        request.busy_timeout,
    )
    .await?;
    if let Err(e) = prepare(&mut admin, &side, tenant_id).await {
        drop_database(&mut admin, &side).await;
        return Err(e);
    }
    if request.crash_before_rename {
        return Err(OdooError::Interrupted(CrashPoint::During(
            ProvisionStep::CloneDatabase,
        )));
    }
    let renamed = admin
        .execute(format!("ALTER DATABASE {} RENAME TO {}", quoted(&side), quoted(db)).as_str())
        .await;
    match renamed {
        Ok(_) => Ok(true),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {
            // Someone took the name since the check: a concurrent run for this
            // tenant (then it is ours) or anyone else (then it is refused).
            drop_database(&mut admin, &side).await;
            examine(&mut admin, role, db, tenant_id)
                .await?
                .ours_or_missing(db)
                .map(|_| false)
        }
        Err(e) => {
            drop_database(&mut admin, &side).await;
            Err(e.into())
        }
    }
}

/// Drops side clones that an interrupted run of this tenant left behind: only
/// those carrying this tenant's marker, so a neighbour's (whose shortened name
/// may look alike) is never touched. Returns how many were dropped.
///
/// A run that died between `CREATE DATABASE` and the marker leaves an unmarked
/// side clone; nothing proves it is ours, so it stays for an operator.
pub(crate) async fn drop_stale_clones(
    admin: &mut PgConnection,
    db: &str,
    tenant_id: Uuid,
) -> Result<usize> {
    // `side_name` without its random letters: the (possibly shortened) name and tag.
    let prefix = side_name(db, CLONE_TAG);
    let prefix = prefix.trim_end_matches(|c: char| c.is_ascii_lowercase());
    let candidates: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database \
         WHERE starts_with(datname, $1) AND datname ~ '_clone_[a-z]{8}$' AND datname <> $2",
    )
    .bind(prefix)
    .bind(db)
    .fetch_all(&mut *admin)
    .await?;
    let mut dropped = 0;
    for name in &candidates {
        if check_db_name(name).is_err() || !is_marked_for(admin, name, tenant_id).await? {
            continue;
        }
        tracing::info!("dropping a side clone left by an interrupted provisioning");
        admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quoted(name)).as_str())
            .await?;
        dropped += 1;
    }
    Ok(dropped)
}

/// Drops the side clones of tenant `tenant_id` (database name `db`) left by
/// interrupted provisioning runs, e.g. when a tenant whose provisioning failed
/// is deleted. Returns how many were dropped.
pub async fn drop_unfinished_clones(
    server: &OdooServer,
    db: &str,
    tenant_id: Uuid,
) -> Result<usize> {
    check_db_name(db)?;
    let mut admin = server.connect_admin().await?;
    drop_stale_clones(&mut admin, db, tenant_id).await
}

/// Only a template owned by the Odoo role is cloned: one anybody else made under
/// a template's name could hand a planted user to every new tenant.
async fn check_template(admin: &mut PgConnection, role: &str, template: &str) -> Result<()> {
    let found: Option<(String, bool)> = sqlx::query_as(
        "SELECT pg_get_userbyid(datdba)::text, datistemplate FROM pg_database WHERE datname = $1",
    )
    .bind(template)
    .fetch_optional(&mut *admin)
    .await?;
    match found {
        None => Err(OdooError::TemplateMissing(template.to_owned())),
        Some((owner, true)) if owner == role => Ok(()),
        Some((owner, is_template)) => Err(OdooError::invalid(
            "template",
            format!(
                "{template:?} is not a template database of the Odoo role \
                 (owner {owner:?}, IS_TEMPLATE {is_template})"
            ),
        )),
    }
}

/// The marker and the closed ACL, both before the database gets its final name.
async fn prepare(admin: &mut PgConnection, side: &str, tenant_id: Uuid) -> Result<()> {
    write_marker(admin, side, tenant_id).await?;
    close_to_public(admin, side).await
}

async fn drop_database(admin: &mut PgConnection, db: &str) {
    let dropped = admin
        .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quoted(db)).as_str())
        .await;
    if let Err(e) = dropped {
        tracing::warn!(error = %Chain(&e), "could not drop a side clone; the next run drops it");
    }
}

/// Other sessions still connected to `db`.
async fn other_sessions(admin: &mut PgConnection, db: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(db)
    .fetch_one(admin)
    .await?)
}

/// `CREATE DATABASE target OWNER role TEMPLATE template`, retried while the
/// template is busy. A sealed template refuses connections, so it is busy only
/// while an operator has opened it (or it predates sealing).
async fn create_from_template(
    admin: &mut PgConnection,
    role: &str,
    template: &str,
    target: &str,
    busy_timeout: Duration,
) -> Result<()> {
    let sql = format!(
        "CREATE DATABASE {} OWNER {} TEMPLATE {}",
        quoted(target),
        quoted(role),
        quoted(template)
    );
    let started = Instant::now();
    let mut pause = Duration::from_millis(25);
    loop {
        let closed = terminate_idle(admin, template).await?;
        if closed > 0 {
            tracing::debug!(closed, "closed idle sessions on the template");
        }
        // PostgreSQL itself waits up to 5 s for other sessions inside CREATE DATABASE;
        // asking first keeps the wait bounded by `busy_timeout`.
        let busy = closed == 0 && other_sessions(admin, template).await? > 0;
        if !busy {
            match admin.execute(sql.as_str()).await {
                Ok(_) => return Ok(()),
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55006") => {}
                Err(e) => return Err(e.into()),
            }
        }
        if started.elapsed() + pause > busy_timeout {
            return Err(OdooError::TemplateBusy {
                template: template.to_owned(),
                waited: started.elapsed(),
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}
