//! Backup downloads: the zip streamed from the object store the worker
//! writes to (`BACKUP_STORE_URL`), never held whole in memory.

use std::sync::Arc;

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _};
use uuid::Uuid;

use crate::auth::{CurrentOperator, Role};
use crate::error::{Error, Result};
use crate::state::AppState;
use saas_core::error_chain::Chain;

/// Opens the store named by `url` (`file:///dir`); `None` (downloads answer
/// 503) when it cannot be opened, e.g. the directory is not mounted here.
pub fn open(url: &str) -> Option<Arc<dyn ObjectStore>> {
    let parsed = url::Url::parse(url).ok()?;
    if parsed.scheme() != "file" {
        tracing::warn!(
            "BACKUP_STORE_URL: only file:// stores can be read by admin; downloads answer 503"
        );
        return None;
    }
    let dir = parsed.to_file_path().ok()?;
    match object_store::local::LocalFileSystem::new_with_prefix(&dir) {
        Ok(store) => Some(Arc::new(store)),
        Err(err) => {
            tracing::warn!(error = %Chain(&err), "backup store (BACKUP_STORE_URL) cannot be opened; downloads answer 503");
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
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT b.object_key, t.subdomain FROM backups b JOIN tenants t ON t.id = b.tenant_id
         WHERE b.id = $1 AND b.tenant_id = $2",
    )
    .bind(backup)
    .bind(tenant)
    .fetch_optional(&state.db)
    .await?;
    let (key, subdomain) = row.ok_or(Error::NotFound("backup"))?;
    let store =
        open(&state.settings.backup_store_url).ok_or(Error::Unavailable("the backup store"))?;
    let path = ObjectPath::parse(&key).map_err(|_| Error::NotFound("backup file"))?;
    if key.is_empty() || path.parts().any(|p| p.as_ref() == "..") {
        return Err(Error::NotFound("backup file"));
    }
    let object = match store.get(&path).await {
        Ok(object) => object,
        Err(object_store::Error::NotFound { .. }) => return Err(Error::NotFound("backup file")),
        Err(err) => return Err(Error::Internal(err.into())),
    };
    let size = object.meta.size;
    let mut tx = state.db.begin().await?;
    crate::actions::record(
        &mut tx,
        user,
        "backup.download",
        format!("tenant:{tenant}"),
        serde_json::json!({ "backup": backup, "size": size }),
    )
    .await?;
    tx.commit().await?;
    let stream = object
        .into_stream()
        .map(|chunk| chunk.map_err(std::io::Error::other));
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
