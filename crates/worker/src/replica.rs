//! The replica store (`BACKUP_REPLICA_URL`): each new backup is copied there
//! once its primary copy is recorded; maintenance copies whatever an
//! earlier attempt could not (the replica down, the portal's uploads). A
//! restore reads the primary copy and falls back to the replica when the
//! primary is missing or corrupt, recording that the primary was lost and
//! writing it back from the replica.

use saas_core::backup_store::StoreRole;
use saas_odoo::{BackupStore, OdooError, OdooServer, RestoreOptions};
use uuid::Uuid;

use crate::handlers::HandlerError;
use crate::platform::{Inner, odoo_error};
use crate::servers::TenantPlacement;
use saas_core::error_chain::Chain;

/// Backups copied per maintenance round, oldest first.
const REPLICATE_BATCH: i64 = 20;

/// Copies backup `id` (object `key`) to the replica, when there is one, and
/// records it; a failure is logged and left to maintenance.
pub(crate) async fn copy_logged(inner: &Inner, id: Uuid, key: &str) {
    if let Err(err) = copy(inner, id, key).await {
        tracing::warn!(backup = %id, error = %Chain(&err), "copying the backup to the replica failed; maintenance retries");
    }
}

async fn copy(inner: &Inner, id: Uuid, key: &str) -> Result<(), OdooError> {
    let Some(replica) = &inner.replica else {
        return Ok(());
    };
    let size = inner.store.copy_to(replica, key).await?;
    sqlx::query("UPDATE backups SET replica_at = now() WHERE id = $1")
        .bind(id)
        .execute(&inner.pool)
        .await?;
    tracing::info!(backup = %id, size, "backup copied to the replica");
    Ok(())
}

/// Copies the backups the replica does not have yet (maintenance).
pub(crate) async fn replicate_missing(inner: &Inner) {
    if inner.replica.is_none() {
        return;
    }
    let missing: Result<Vec<(Uuid, String)>, sqlx::Error> = sqlx::query_as(
        "SELECT id, object_key FROM backups
         WHERE replica_at IS NULL AND primary_lost_at IS NULL
         ORDER BY created_at LIMIT $1",
    )
    .bind(REPLICATE_BATCH)
    .fetch_all(&inner.pool)
    .await;
    match missing {
        Ok(missing) => {
            for (id, key) in missing {
                copy_logged(inner, id, &key).await;
            }
        }
        Err(err) => tracing::warn!(error = %Chain(&err), "listing backups to replicate failed"),
    }
}

/// Restores backup `backup_id` from its primary copy, or its replica when
/// the primary is missing or corrupt (the recorded SHA-256 decides).
pub(crate) async fn restore_from_copies(
    inner: &Inner,
    server: &OdooServer,
    placement: &TenantPlacement,
    backup_id: Uuid,
    key: &str,
    sha256: &str,
    options: &RestoreOptions,
) -> Result<(), HandlerError> {
    let mut copies: Vec<&BackupStore> = vec![&inner.store];
    if let Some(replica) = &inner.replica {
        copies.push(replica);
    }
    let (_, source) = saas_odoo::restore_tenant_from_copies(
        server,
        &placement.db_name,
        &copies,
        key,
        Some(sha256),
        options,
    )
    .await
    .map_err(odoo_error)?;
    if source == StoreRole::Replica {
        tracing::warn!(backup = %backup_id, "restored from the replica: the primary copy is missing or corrupt");
        sqlx::query("UPDATE backups SET primary_lost_at = now() WHERE id = $1")
            .bind(backup_id)
            .execute(&inner.pool)
            .await?;
        repair_primary(inner, backup_id, key).await;
    }
    Ok(())
}

/// Writes the primary copy back from the replica (best effort).
async fn repair_primary(inner: &Inner, id: Uuid, key: &str) {
    let Some(replica) = &inner.replica else {
        return;
    };
    let repaired = async {
        replica.copy_to(&inner.store, key).await?;
        sqlx::query("UPDATE backups SET primary_lost_at = NULL WHERE id = $1")
            .bind(id)
            .execute(&inner.pool)
            .await?;
        Ok::<(), OdooError>(())
    };
    match repaired.await {
        Ok(()) => tracing::info!(backup = %id, "primary copy written back from the replica"),
        Err(err) => {
            tracing::warn!(backup = %id, error = %Chain(&err), "writing the primary copy back failed")
        }
    }
}
