//! Removes what interrupted backups leave in a backup store (the primary
//! and the replica alike): multipart staging files (`<key>#<n>` in a
//! `file://` store), unfinished multipart uploads (an S3 store) and objects
//! under a tenant's prefix that no `backups` row records.
//!
//! A backup being written right now is never touched: every attempt holds
//! its tenant's lock for its whole run, so the sweep works on a tenant only
//! while it holds that lock itself. Unrecorded objects must in addition be
//! older than [`UNRECORDED_GRACE`], for whatever writes a finished object a
//! moment before its row (an older worker during a rolling upgrade).

use std::collections::HashSet;
use std::time::Duration;

use saas_odoo::store_sweep::{StagingFile, local_staging_files};
use saas_odoo::{BackupStore, OdooError};
use sqlx::PgPool;
use uuid::Uuid;

use crate::tenant_lock::TenantLocks;
use saas_core::error_chain::Chain;

/// How old an object no `backups` row records must be to be removed.
pub const UNRECORDED_GRACE: Duration = Duration::from_secs(3600);
/// Between sweeps of a worker.
pub const SWEEP_EVERY: Duration = Duration::from_secs(6 * 3600);
/// When a sweep found tenants busy, it looks at them again this soon.
pub const BUSY_RETRY: Duration = Duration::from_secs(60);

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub staging_removed: usize,
    pub unrecorded_removed: usize,
    /// Unfinished S3 multipart uploads aborted.
    pub uploads_aborted: usize,
    /// Tenants skipped because an attempt held their lock.
    pub busy: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("backup store: {0}")]
    Store(#[from] OdooError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Io(String),
}

/// Sweeps every tenant prefix (`<tenant id>/`) of the store once, then
/// aborts S3 uploads elsewhere in the store (the portal's) older than `grace`.
pub async fn sweep_once(
    pool: &PgPool,
    locks: &TenantLocks,
    store: &BackupStore,
    grace: Duration,
) -> Result<SweepReport, SweepError> {
    let store_url = store.url();
    let mut report = SweepReport::default();
    let uploads = store.incomplete_uploads(None).await?;
    // A tenant whose only leftover is an unfinished upload has no object
    // to list its prefix by: its uploads name it too.
    let mut tenants: Vec<Uuid> = store
        .top_level_prefixes()
        .await?
        .iter()
        .map(String::as_str)
        .chain(
            uploads
                .iter()
                .filter_map(|upload| upload.key.split('/').next()),
        )
        // Only the worker's own tenant prefixes: the portal keeps uploads elsewhere.
        .filter_map(|prefix| prefix.parse::<Uuid>().ok())
        .collect();
    tenants.sort_unstable();
    tenants.dedup();
    for tenant_id in tenants {
        let Some(lock) = locks.try_acquire(tenant_id).await? else {
            report.busy += 1;
            continue;
        };
        let swept = sweep_tenant(pool, store, store_url, tenant_id, grace).await;
        lock.release().await;
        let (staging, unrecorded, aborted) = swept?;
        report.staging_removed += staging;
        report.unrecorded_removed += unrecorded;
        report.uploads_aborted += aborted;
    }
    let cutoff = cutoff(grace);
    for upload in uploads {
        let tenant_prefix = upload
            .key
            .split('/')
            .next()
            .is_some_and(|first| first.parse::<Uuid>().is_ok());
        if tenant_prefix || upload.initiated > cutoff {
            continue;
        }
        tracing::warn!(key = %upload.key, initiated = %upload.initiated, "aborting an old unfinished upload");
        store.abort_upload(&upload).await?;
        report.uploads_aborted += 1;
    }
    Ok(report)
}

fn cutoff(grace: Duration) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
        - chrono::Duration::from_std(grace).unwrap_or_else(|_| chrono::Duration::days(3650))
}

/// One tenant's leftovers, under its lock; returns how many staging files,
/// unrecorded objects and unfinished uploads went. No attempt of the tenant
/// runs while the lock is held, so each of its unfinished uploads is dead.
async fn sweep_tenant(
    pool: &PgPool,
    store: &BackupStore,
    store_url: &str,
    tenant_id: Uuid,
    grace: Duration,
) -> Result<(usize, usize, usize), SweepError> {
    let prefix = tenant_id.to_string();
    let url = store_url.to_owned();
    let staging_prefix = prefix.clone();
    let staging: Vec<StagingFile> =
        tokio::task::spawn_blocking(move || local_staging_files(&url, &staging_prefix))
            .await
            .map_err(|join| SweepError::Io(join.to_string()))??;
    for file in &staging {
        tracing::warn!(path = %file.path.display(), modified = %file.modified, "removing the staging file of an interrupted backup");
        match tokio::fs::remove_file(&file.path).await {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(SweepError::Io(format!("{}: {err}", file.path.display()))),
        }
    }
    let mut aborted = 0;
    for upload in store.incomplete_uploads(Some(&prefix)).await? {
        tracing::warn!(key = %upload.key, initiated = %upload.initiated, "aborting the unfinished upload of an interrupted backup");
        store.abort_upload(&upload).await?;
        aborted += 1;
    }
    let recorded: HashSet<String> =
        sqlx::query_scalar::<_, String>("SELECT object_key FROM backups WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect();
    let cutoff = cutoff(grace);
    let mut unrecorded = 0;
    for object in store.list_under(&prefix).await? {
        if recorded.contains(&object.key) || object.last_modified > cutoff {
            continue;
        }
        tracing::warn!(key = %object.key, size = object.size, modified = %object.last_modified, "removing an object no backup records");
        store.delete(&object.key).await?;
        unrecorded += 1;
    }
    Ok((staging.len(), unrecorded, aborted))
}

/// Sweeps at start, then every [`SWEEP_EVERY`] (sooner after a sweep that
/// found tenants busy), until the task is dropped.
pub async fn sweep_periodically(pool: PgPool, store: BackupStore) {
    let locks = TenantLocks::new(&pool, 1);
    let role = store.role().as_str();
    loop {
        let next = match sweep_once(&pool, &locks, &store, UNRECORDED_GRACE).await {
            Ok(report) => {
                if report.staging_removed + report.unrecorded_removed + report.uploads_aborted > 0 {
                    tracing::info!(store = role, ?report, "backup store swept");
                }
                if report.busy > 0 {
                    BUSY_RETRY
                } else {
                    SWEEP_EVERY
                }
            }
            Err(err) => {
                tracing::warn!(store = role, error = %Chain(&err), "sweeping the backup store failed");
                BUSY_RETRY
            }
        };
        tokio::time::sleep(next).await;
    }
}
