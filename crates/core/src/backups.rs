//! Backups in the platform database (the zips live in object storage).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// One row of `backups`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Backup {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub object_key: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub kind: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// When the worker copied it to the replica store (`BACKUP_REPLICA_URL`).
    pub replica_at: Option<DateTime<Utc>>,
    /// When its primary copy was found missing or corrupt.
    pub primary_lost_at: Option<DateTime<Utc>>,
}

impl Backup {
    /// Where good copies exist, for operators: `primary`, `replica`, both
    /// (`primary+replica`), or `none`.
    pub fn copies(&self) -> &'static str {
        match (self.primary_lost_at.is_none(), self.replica_at.is_some()) {
            (true, true) => "primary+replica",
            (true, false) => "primary",
            (false, true) => "replica",
            (false, false) => "none",
        }
    }
}

pub const COLUMNS: &str = "b.id, b.tenant_id, b.object_key, b.size_bytes, b.sha256, b.kind, \
     b.created_at, b.expires_at, b.replica_at, b.primary_lost_at";

/// A tenant's backups, newest first.
pub async fn list_for_tenant(pool: &PgPool, tenant_id: Uuid) -> Result<Vec<Backup>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM backups b WHERE b.tenant_id = $1 ORDER BY b.created_at DESC, b.id"
    ))
    .bind(tenant_id)
    .fetch_all(pool)
    .await
}

/// A backup of one of `customer_id`'s tenants; `None` for anyone else's.
pub async fn get_for_customer(
    pool: &PgPool,
    customer_id: Uuid,
    id: Uuid,
) -> Result<Option<Backup>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM backups b JOIN tenants t ON t.id = b.tenant_id
         WHERE b.id = $1 AND t.customer_id = $2"
    ))
    .bind(id)
    .bind(customer_id)
    .fetch_optional(pool)
    .await
}

/// A backup to record.
#[derive(Debug, Clone)]
pub struct NewBackup<'a> {
    pub tenant_id: Uuid,
    pub object_key: &'a str,
    pub size_bytes: i64,
    pub sha256: &'a str,
    /// `scheduled`, `manual`, `pre_delete`, `pre_restore` or `upload`.
    pub kind: &'a str,
    pub expires_at: Option<DateTime<Utc>>,
}

pub async fn insert(conn: &mut PgConnection, new: &NewBackup<'_>) -> Result<Backup, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO backups AS b (id, tenant_id, object_key, size_bytes, sha256, kind, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(new.tenant_id)
    .bind(new.object_key)
    .bind(new.size_bytes)
    .bind(new.sha256)
    .bind(new.kind)
    .bind(new.expires_at)
    .fetch_one(conn)
    .await
}

/// Kinds a customer makes (a "Back up now" and an upload): they count
/// against the plan's `max_backups` together, apart from scheduled ones.
pub const MANUAL_KINDS: [&str; 2] = ["manual", "upload"];

/// The tenant's manual and uploaded backups beyond the newest `keep`,
/// oldest first, never one a queued or running restore still needs: what
/// retention removes (with `keep` = the plan's `max_backups`) or what the
/// next manual backup would push out (`max_backups - 1`).
pub async fn manual_beyond(
    pool: &PgPool,
    tenant_id: Uuid,
    keep: i64,
) -> Result<Vec<Backup>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM backups b
         WHERE b.tenant_id = $1 AND b.kind = ANY($3)
           AND b.id NOT IN (
               SELECT id FROM backups WHERE tenant_id = $1 AND kind = ANY($3)
               ORDER BY created_at DESC, id LIMIT $2)
           AND NOT EXISTS (
               SELECT 1 FROM operations o
               WHERE o.tenant_id = $1 AND o.kind = 'restore' AND o.state IN ('queued', 'running')
                 AND o.args->>'backup_id' = b.id::text)
         ORDER BY b.created_at, b.id"
    ))
    .bind(tenant_id)
    .bind(keep.max(0))
    .bind(MANUAL_KINDS.map(str::to_owned).to_vec())
    .fetch_all(pool)
    .await
}
