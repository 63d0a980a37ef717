//! Deleting a tenant and measuring what it uses.

use crate::backup::{BackupInfo, backup_tenant};
use crate::error::Result;
use crate::filestore::{remove_tree, tree_size};
use crate::guest::read_as_guest;
use crate::ident::check_db_name;
use crate::provision::database_owner;
use crate::server::OdooServer;
use crate::store::BackupStore;

/// What [`delete_tenant`] found and removed.
#[derive(Clone, Debug)]
pub struct DeleteReport {
    /// The final backup, when one was asked for and the database still existed.
    pub final_backup: Option<BackupInfo>,
    pub dropped_database: bool,
    pub removed_filestore: bool,
}

/// Where the final backup of a deleted tenant goes.
#[derive(Clone, Copy, Debug)]
pub struct FinalBackup<'a> {
    pub store: &'a BackupStore,
    pub key: &'a str,
}

/// Drops the tenant database (closing its sessions) and removes its filestore,
/// after a final backup when `final_backup` is given (a failed backup stops the
/// delete). Running it again is harmless: a database already gone is not backed up
/// again.
#[tracing::instrument(skip_all)]
pub async fn delete_tenant(
    server: &OdooServer,
    db: &str,
    final_backup: Option<FinalBackup<'_>>,
) -> Result<DeleteReport> {
    check_db_name(db)?;
    let mut admin = server.connect_admin().await?;
    let existed = database_owner(&mut admin, db).await?.is_some();
    let final_backup = match final_backup {
        Some(target) if existed => Some(backup_tenant(server, db, target.store, target.key).await?),
        _ => None,
    };
    // Leftovers of an interrupted restore go too.
    let mut doomed = crate::swap::side_databases(&mut admin, db, "restore").await?;
    doomed.extend(crate::swap::side_databases(&mut admin, db, "old").await?);
    if existed {
        doomed.push(db.to_owned());
    }
    for name in doomed {
        crate::swap::drop_database(&mut admin, &name).await?;
    }
    let dir = server.filestore_dir(db)?;
    let removed_filestore = tokio::task::spawn_blocking(move || {
        let existed = dir.exists();
        remove_tree(&dir).map(|()| existed)
    })
    .await??;
    Ok(DeleteReport {
        final_backup,
        dropped_database: existed,
        removed_filestore,
    })
}

/// What a tenant uses, for plan limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub db_bytes: i64,
    pub filestore_bytes: u64,
    /// Active internal users: `res_users` active and not share, without Odoo's own
    /// (`__system__`, the public user and the user templates).
    pub active_users: i64,
}

/// Logins of the users Odoo creates for itself.
pub const SYSTEM_LOGINS: [&str; 4] = ["__system__", "public", "portaltemplate", "default"];

/// Measures database size, filestore size and active internal users of `db`.
#[tracing::instrument(skip_all)]
pub async fn collect_usage(server: &OdooServer, db: &str) -> Result<Usage> {
    check_db_name(db)?;
    let mut admin = server.connect_admin().await?;
    let db_bytes: i64 = sqlx::query_scalar("SELECT pg_database_size($1::text)")
        .bind(db)
        .fetch_one(&mut admin)
        .await?;
    // res_users may be whatever the customer's dump made it (a view calling
    // their function): it is read by a guest that may read nothing else.
    let active_users: i64 = read_as_guest(
        server,
        db,
        &["res_users"],
        "measuring usage",
        async |conn| {
            Ok(sqlx::query_scalar(
                "SELECT count(*) FROM res_users \
             WHERE active AND NOT COALESCE(share, false) AND id <> 1 AND login <> ALL($1)",
            )
            .bind(SYSTEM_LOGINS.map(str::to_owned).to_vec())
            .fetch_one(conn)
            .await?)
        },
    )
    .await?;
    let dir = server.filestore_dir(db)?;
    let filestore_bytes = tokio::task::spawn_blocking(move || tree_size(&dir)).await??;
    Ok(Usage {
        db_bytes,
        filestore_bytes,
        active_users,
    })
}
