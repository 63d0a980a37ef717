//! Backup downloads: the plain Odoo zip streamed from the stores the worker
//! writes to (`BACKUP_STORE_URL`, else `BACKUP_REPLICA_URL`), decrypted when
//! it is stored encrypted and checked against its recorded SHA-256 as it
//! goes, never held whole in memory.

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use saas_core::backup_store::{BackupCopies, BackupStoreSettings, ReadError};
use uuid::Uuid;

use crate::auth::{CurrentOperator, Role};
use crate::error::{Error, Result};
use crate::state::AppState;

/// Opens the stores; `None` (downloads answer 503) when they cannot be
/// opened, e.g. the directory is not mounted here.
pub fn open(settings: &BackupStoreSettings) -> Option<BackupCopies> {
    match BackupCopies::open(settings) {
        Ok(copies) => Some(copies),
        Err(reason) => {
            tracing::warn!(%reason, "the backup stores cannot be opened; downloads answer 503");
            None
        }
    }
}

/// Streams backup `backup` of tenant `tenant`, recording who downloaded it.
pub async fn download(
    state: &AppState,
    user: &CurrentOperator,
    tenant: Uuid,
    backup: Uuid,
) -> Result<Response> {
    user.require(Role::Operator)?;
    let row: Option<(String, String, i64, String)> = sqlx::query_as(
        "SELECT b.object_key, t.subdomain, b.size_bytes, b.sha256
         FROM backups b JOIN tenants t ON t.id = b.tenant_id
         WHERE b.id = $1 AND b.tenant_id = $2",
    )
    .bind(backup)
    .bind(tenant)
    .fetch_optional(&state.db)
    .await?;
    let (key, subdomain, size, sha256) = row.ok_or(Error::NotFound("backup"))?;
    let copies = state
        .backups
        .as_ref()
        .ok_or(Error::Unavailable("the backup store"))?;
    let (source, stream) = match copies.read_plain(&key, &sha256).await {
        Ok(found) => found,
        Err(ReadError::NotFound | ReadError::BadKey(_)) => {
            return Err(Error::NotFound("backup file"));
        }
        Err(ReadError::Store(err)) => return Err(Error::Internal(err.into())),
    };
    let mut tx = state.db.begin().await?;
    crate::actions::record(
        &mut tx,
        user,
        "backup.download",
        format!("tenant:{tenant}"),
        serde_json::json!({ "backup": backup, "size": size, "from": source.as_str() }),
    )
    .await?;
    tx.commit().await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{subdomain}-{backup}.zip\""),
            ),
            (header::CACHE_CONTROL, "private, no-store".to_owned()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
