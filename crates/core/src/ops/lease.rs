//! Fencing: an attempt of an operation holds a lease (the token written
//! when it claimed the row, renewed while it runs) and a session-level
//! advisory lock on its tenant. The lease decides who may record a result;
//! the tenant lock keeps a second attempt off the tenant's database and
//! files until the first one's connection is gone, even when the first was
//! only stalled and has not yet noticed that its lease was taken over.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::store::is_unique_violation;

/// The advisory lock key of a tenant: its id folded into 64 bits. A
/// collision only makes two tenants take turns.
pub fn tenant_lock_key(tenant_id: Uuid) -> i64 {
    let (high, low) = tenant_id.as_u64_pair();
    i64::from_be_bytes((high ^ low).to_be_bytes())
}

/// [`tenant_lock_key`] computed by PostgreSQL from the uuid expression that
/// replaces `$tenant`, so a statement can lock the tenant of a row it
/// claims (tested equal to the Rust function).
pub const TENANT_LOCK_KEY_SQL: &str = "(('x' || encode(substring(uuid_send($tenant) FROM 1 FOR 8), 'hex'))::bit(64)::bigint \
     # ('x' || encode(substring(uuid_send($tenant) FROM 9 FOR 8), 'hex'))::bit(64)::bigint)";

/// Takes the tenant's session-level advisory lock on `conn` without
/// waiting; false when another session holds it.
pub async fn try_lock_tenant(
    conn: &mut PgConnection,
    tenant_id: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(tenant_lock_key(tenant_id))
        .fetch_one(conn)
        .await
}

/// Releases the tenant's lock held by `conn`; false when `conn` did not hold it.
pub async fn unlock_tenant(conn: &mut PgConnection, tenant_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_advisory_unlock($1)")
        .bind(tenant_lock_key(tenant_id))
        .fetch_one(conn)
        .await
}

/// Renews the leases `held` (operation id, token); returns the ids whose
/// lease is still this attempt's. An id missing from the answer was taken
/// over or has finished.
pub async fn renew(pool: &PgPool, held: &[(Uuid, Uuid)]) -> Result<Vec<Uuid>, sqlx::Error> {
    if held.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, tokens): (Vec<Uuid>, Vec<Uuid>) = held.iter().copied().unzip();
    sqlx::query_scalar(
        "UPDATE operations o SET heartbeat_at = now()
         FROM unnest($1::uuid[], $2::uuid[]) AS held(id, lease)
         WHERE o.id = held.id AND o.lease = held.lease AND o.state = 'running'
         RETURNING o.id",
    )
    .bind(ids)
    .bind(tokens)
    .fetch_all(pool)
    .await
}

/// Whether `lease` is still the attempt of operation `id`, locking the row
/// for the rest of the caller's transaction: a takeover then waits for the
/// transaction, so what it writes commits only while the lease holds.
pub async fn holds(conn: &mut PgConnection, id: Uuid, lease: Uuid) -> Result<bool, sqlx::Error> {
    let held: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM operations WHERE id = $1 AND lease = $2 AND state = 'running' FOR SHARE",
    )
    .bind(id)
    .bind(lease)
    .fetch_optional(conn)
    .await?;
    Ok(held.is_some())
}

/// Records the success of the attempt holding `lease` in the caller's
/// transaction, so the handler's result and the operation's success commit
/// together (exactly once, even if the worker dies right after); false when
/// the lease was taken over.
pub async fn complete(conn: &mut PgConnection, id: Uuid, lease: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE operations SET state = 'succeeded', finished_at = now(), heartbeat_at = now()
         WHERE id = $1 AND lease = $2 AND state = 'running'",
    )
    .bind(id)
    .bind(lease)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Puts a claimed operation back in the queue without counting the attempt
/// (it never started: its tenant was still locked by an earlier attempt),
/// due after `delay`. False when the lease was no longer held.
pub async fn release(
    pool: &PgPool,
    id: Uuid,
    lease: Uuid,
    delay: Duration,
) -> Result<bool, sqlx::Error> {
    let released = sqlx::query(
        "UPDATE operations SET state = 'queued', worker = NULL, lease = NULL,
                attempts = greatest(attempts - 1, 0), started_at = NULL,
                run_after = now() + make_interval(secs => $3)
         WHERE id = $1 AND lease = $2 AND state = 'running'",
    )
    .bind(id)
    .bind(lease)
    .bind(delay.as_secs_f64())
    .execute(pool)
    .await;
    match released {
        Ok(done) => Ok(done.rows_affected() == 1),
        // A newer request of the same kind was queued meanwhile: it does
        // the same work, so this one steps aside.
        Err(err) if is_unique_violation(&err, "operations_one_queued_per_kind") => {
            let cancelled = sqlx::query(
                "UPDATE operations SET state = 'cancelled', worker = NULL, lease = NULL, finished_at = now(),
                        last_error = 'superseded by a newer request of the same kind while its tenant was busy'
                 WHERE id = $1 AND lease = $2 AND state = 'running'",
            )
            .bind(id)
            .bind(lease)
            .execute(pool)
            .await?;
            Ok(cancelled.rows_affected() == 1)
        }
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_differ_per_tenant_and_are_stable() {
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        assert_eq!(tenant_lock_key(a), tenant_lock_key(a));
        assert_ne!(tenant_lock_key(a), tenant_lock_key(b));
    }
}
