//! Sealed secrets of operations (`operation_secrets`): stored with the
//! request in its transaction, read by the worker, erased by the database
//! when the operation ends (migration 0009's trigger).

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::sealing::Purpose;

/// Stores `sealed` for operation `id`, replacing what a queued operation
/// held (a repeated request carries the newest secret). Nothing is stored
/// for an operation that is no longer queued; false then.
pub async fn store(
    conn: &mut PgConnection,
    id: Uuid,
    purpose: Purpose,
    sealed: &[u8],
) -> Result<bool, sqlx::Error> {
    let stored = sqlx::query(
        "INSERT INTO operation_secrets (operation_id, purpose, sealed)
         SELECT id, $2, $3 FROM operations WHERE id = $1 AND state = 'queued'
         ON CONFLICT (operation_id) DO UPDATE
             SET purpose = EXCLUDED.purpose, sealed = EXCLUDED.sealed, created_at = now()",
    )
    .bind(id)
    .bind(purpose.as_str())
    .bind(sealed)
    .execute(conn)
    .await?;
    Ok(stored.rows_affected() == 1)
}

/// The sealed secret of operation `id` for `purpose`, if it still has one.
pub async fn sealed(
    pool: &PgPool,
    id: Uuid,
    purpose: Purpose,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT sealed FROM operation_secrets WHERE operation_id = $1 AND purpose = $2",
    )
    .bind(id)
    .bind(purpose.as_str())
    .fetch_optional(pool)
    .await
}

/// Whether operation `id` still holds a sealed secret.
pub async fn held(pool: &PgPool, id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM operation_secrets WHERE operation_id = $1)")
        .bind(id)
        .fetch_one(pool)
        .await
}
