//! Operations in PostgreSQL, the truth: request, claim, finish, retry, cancel,
//! and recovery of operations whose worker vanished.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::model::{COLUMNS, Operation, OperationKind, OperationState};

/// A change someone asked for.
#[derive(Debug, Clone)]
pub struct NewOperation {
    pub tenant_id: Uuid,
    pub kind: OperationKind,
    pub args: serde_json::Value,
    pub requested_by: String,
}

/// The operation a request resolved to.
#[derive(Debug, Clone)]
pub struct Requested {
    pub operation: Operation,
    /// False when an operation of the same kind was already queued for the
    /// tenant and is returned instead of a new one.
    pub created: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("operation not found")]
    NotFound,
    #[error("the operation is {0}; only {1} operations can be {2}")]
    WrongState(OperationState, &'static str, &'static str),
    #[error("an operation of this kind is already queued for the tenant")]
    AlreadyQueued,
    /// Retrying would need a tenant state change the lifecycle refuses.
    #[error("cannot be retried: {0}")]
    Transition(#[from] crate::domain::TransitionRefused),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Inserts the operation in the caller's transaction, or returns the one of
/// the same kind already queued for the tenant.
pub async fn request(
    conn: &mut PgConnection,
    new: &NewOperation,
) -> Result<Requested, sqlx::Error> {
    for _ in 0..5 {
        let inserted: Option<Operation> = sqlx::query_as(&format!(
            "INSERT INTO operations (id, tenant_id, kind, args, state, max_attempts, requested_by)
             VALUES ($1, $2, $3, $4, 'queued', $5, $6)
             ON CONFLICT (tenant_id, kind) WHERE state = 'queued' DO NOTHING
             RETURNING {COLUMNS}"
        ))
        .bind(Uuid::new_v4())
        .bind(new.tenant_id)
        .bind(new.kind.as_str())
        .bind(&new.args)
        .bind(new.kind.max_attempts())
        .bind(&new.requested_by)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(operation) = inserted {
            return Ok(Requested {
                operation,
                created: true,
            });
        }
        let queued: Option<Operation> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM operations WHERE tenant_id = $1 AND kind = $2 AND state = 'queued'"
        ))
        .bind(new.tenant_id)
        .bind(new.kind.as_str())
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(operation) = queued {
            return Ok(Requested {
                operation,
                created: false,
            });
        }
        // The queued one started between the two statements: try again.
    }
    Err(sqlx::Error::Protocol(
        "operation request kept racing with workers".to_owned(),
    ))
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<Operation>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM operations WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// What happened when a worker tried to start an operation.
#[derive(Debug)]
pub enum Claim {
    /// The worker now runs it; `attempts` counts this attempt.
    Claimed(Box<Operation>),
    /// Finished, cancelled, or running elsewhere: nothing to do.
    NotQueued,
    /// Queued but waiting for its backoff to pass.
    NotDue(DateTime<Utc>),
    /// Another operation of the tenant runs, or an older one waits first.
    TenantBusy,
}

/// Starts operation `id` on `worker` under the attempt token `lease` if it
/// is queued, due, the oldest queued operation of its tenant, and no other
/// operation of the tenant runs (the unique index on running operations
/// decides races between processes).
#[tracing::instrument(skip_all, fields(operation = %id))]
pub async fn claim(
    pool: &PgPool,
    id: Uuid,
    worker: &str,
    lease: Uuid,
) -> Result<Claim, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    Ok(claim_on(&mut conn, id, worker, lease, false).await?.0)
}

/// A claimed row and whether the tenant's lock came with it.
#[derive(sqlx::FromRow)]
struct ClaimedRow {
    #[sqlx(flatten)]
    operation: Operation,
    locked: bool,
}

/// [`claim`] on `conn`; with `lock_tenant`, the same statement also tries
/// the tenant's session-level advisory lock ([`super::lease::tenant_lock_key`])
/// on `conn` once the row is claimed, and the answer says whether it got
/// it (false: another session holds it). One round trip for both. Should
/// this fail, `conn` may hold the lock: the caller closes it.
pub async fn claim_on(
    conn: &mut PgConnection,
    id: Uuid,
    worker: &str,
    lease: Uuid,
    lock_tenant: bool,
) -> Result<(Claim, bool), sqlx::Error> {
    let locked = if lock_tenant {
        format!(
            "pg_try_advisory_lock({})",
            super::lease::TENANT_LOCK_KEY_SQL.replace("$tenant", "claimed.tenant_id")
        )
    } else {
        "false".to_owned()
    };
    // The row is found by its key and locked first (`target`: the latest
    // version, whoever changed it meanwhile; a row another transaction holds
    // is skipped, and the answer below says why), and its state is checked
    // on that locked version; the older-queued check is a subplan run for that
    // one row (OFFSET 0 keeps PostgreSQL from turning it into a join). Put
    // as one `UPDATE ... WHERE id = $1 AND state = 'queued' AND NOT EXISTS`,
    // the planner, on the statistics of a young table (a new platform, the
    // benchmark), found the row by scanning every queued operation through
    // the partial index and ran the anti-join without the tenant in its
    // index condition: thousands of index entries read per claim.
    //
    // A tenant's operations run in order, except behind a `sync_domains`
    // waiting for its retry: that one waits for a customer's DNS records
    // (retrying for about half an hour) and touches nothing another
    // operation does, so it must not hold back the tenant's backups or a
    // plan change meanwhile.
    let claimed = sqlx::query_as::<_, ClaimedRow>(&format!(
        "WITH target AS MATERIALIZED (
             SELECT id, tenant_id, state, run_after, created_at FROM operations
             WHERE id = $1 FOR NO KEY UPDATE SKIP LOCKED),
         claimed AS (
             UPDATE operations o SET state = 'running', worker = $2, lease = $3, attempts = attempts + 1,
                    started_at = now(), heartbeat_at = now()
             FROM target t
             WHERE o.id = t.id AND t.state = 'queued' AND t.run_after <= now()
               AND NOT EXISTS (
                   SELECT 1 FROM operations older
                   WHERE older.tenant_id = t.tenant_id AND older.state = 'queued'
                     AND (older.created_at, older.id) < (t.created_at, t.id)
                     AND NOT (older.kind = 'sync_domains' AND older.run_after > now())
                   OFFSET 0)
             RETURNING {})
         SELECT claimed.*, {locked} AS locked FROM claimed",
        COLUMNS
            .split(", ")
            .map(|column| format!("o.{}", column.trim()))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .bind(id)
    .bind(worker)
    .bind(lease)
    .fetch_optional(&mut *conn)
    .await;
    match claimed {
        Ok(Some(row)) => return Ok((Claim::Claimed(Box::new(row.operation)), row.locked)),
        Ok(None) => {}
        Err(err) if is_unique_violation(&err, "operations_one_running_per_tenant") => {
            return Ok((Claim::TenantBusy, false));
        }
        Err(err) => return Err(err),
    }
    let current: Option<(String, DateTime<Utc>)> =
        sqlx::query_as("SELECT state, run_after FROM operations WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    let claim = match current {
        Some((state, run_after)) if state == "queued" => {
            if run_after > Utc::now() {
                Claim::NotDue(run_after)
            } else {
                Claim::TenantBusy
            }
        }
        _ => Claim::NotQueued,
    };
    Ok((claim, false))
}

/// Records success of the attempt holding `lease`; false when the lease was
/// taken over (the attempt was presumed dead and the operation re-queued)
/// and nothing was recorded. An attempt that already recorded its success
/// itself ([`super::lease::complete`]) counts as recorded.
pub async fn succeed(pool: &PgPool, id: Uuid, lease: Uuid) -> Result<bool, sqlx::Error> {
    Ok(succeed_then_next(pool, id, lease).await?.is_some())
}

/// The success of the attempt holding `$2` on operation `$1`, returning the
/// tenant's next due operation (`next`); no row when the lease was taken
/// over. Recording it again answers the same.
const SUCCEED_RETURNING_NEXT: &str =
    "UPDATE operations o SET state = CASE WHEN state = 'running' THEN 'succeeded' ELSE state END,
            finished_at = CASE WHEN state = 'running' THEN now() ELSE finished_at END
     WHERE id = $1 AND lease = $2 AND state IN ('running', 'succeeded')
     RETURNING (SELECT next.id FROM operations next
                WHERE next.tenant_id = o.tenant_id AND next.state = 'queued' AND next.run_after <= now()
                ORDER BY next.created_at, next.id LIMIT 1) AS next";

/// [`succeed`], answering in the same statement with the tenant's next due
/// operation ([`next_for_tenant`]): `None` when nothing was recorded,
/// `Some(next)` when it was.
pub async fn succeed_then_next(
    pool: &PgPool,
    id: Uuid,
    lease: Uuid,
) -> Result<Option<Option<Uuid>>, sqlx::Error> {
    sqlx::query_scalar(SUCCEED_RETURNING_NEXT)
        .bind(id)
        .bind(lease)
        .fetch_optional(pool)
        .await
}

/// [`succeed_then_next`] on the connection that holds the tenant's lock,
/// releasing the lock in the same statement: one round trip for both.
/// Committed durably whatever `conn`'s `synchronous_commit` (the lock
/// connections commit claims without waiting for the disk). The lock goes
/// a moment before the success commits; the tenant's next attempt cannot
/// start meanwhile, since claiming it waits on this row in
/// `operations_one_running_per_tenant` until the commit. Also answers
/// whether the lock was held.
pub async fn succeed_then_next_unlocking(
    conn: &mut PgConnection,
    id: Uuid,
    lease: Uuid,
    tenant_id: Uuid,
) -> Result<(Option<Option<Uuid>>, bool), sqlx::Error> {
    let (durable, recorded, next, unlocked): (String, bool, Option<Uuid>, bool) =
        sqlx::query_as(&format!(
            "WITH done AS ({SUCCEED_RETURNING_NEXT})
             SELECT set_config('synchronous_commit', 'on', true),
                    EXISTS (SELECT 1 FROM done), (SELECT next FROM done),
                    pg_advisory_unlock($3)"
        ))
        .bind(id)
        .bind(lease)
        .bind(super::lease::tenant_lock_key(tenant_id))
        .fetch_one(&mut *conn)
        .await?;
    debug_assert_eq!(durable, "on");
    Ok((recorded.then_some(next), unlocked))
}

/// What a failed attempt led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Queued again, to run after the backoff.
    Retrying(DateTime<Utc>),
    /// No attempts left (or the error is permanent): failed for good.
    Failed,
    /// The attempt's lease was taken over: nothing was recorded.
    Lost,
}

/// Exponential backoff: `base * 2^(attempt-1)`, at most five minutes.
pub fn backoff(base: Duration, attempt: i32) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1).clamp(0, 16)).unwrap_or(0);
    base.saturating_mul(2u32.saturating_pow(exponent))
        .min(Duration::from_secs(300))
}

/// Why an attempt failed: the full reason for operators, and what the
/// customer may read.
#[derive(Debug, Clone, Copy)]
pub struct AttemptError<'a> {
    pub detail: &'a str,
    pub customer: &'a str,
    pub retryable: bool,
}

/// Records a failed attempt: queued again after a backoff while attempts
/// remain and the error is `retryable`, failed for good otherwise.
#[tracing::instrument(skip_all, fields(operation = %id))]
pub async fn fail_attempt(
    pool: &PgPool,
    id: Uuid,
    lease: Uuid,
    error: AttemptError<'_>,
    backoff_base: Duration,
) -> Result<FailureOutcome, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let row: Option<(i32, i32)> = sqlx::query_as(
        "SELECT attempts, max_attempts FROM operations
         WHERE id = $1 AND state = 'running' AND lease = $2 FOR UPDATE",
    )
    .bind(id)
    .bind(lease)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((attempts, max_attempts)) = row else {
        return Ok(FailureOutcome::Lost);
    };
    let outcome = if error.retryable && attempts < max_attempts {
        let delay = chrono::Duration::from_std(backoff(backoff_base, attempts))
            .unwrap_or_else(|_| chrono::Duration::seconds(300));
        let run_after = Utc::now() + delay;
        let requeued = sqlx::query(
            "UPDATE operations SET state = 'queued', worker = NULL, lease = NULL, last_error = $2, run_after = $3,
                    customer_error = $4
             WHERE id = $1",
        )
        .bind(id)
        .bind(error.detail)
        .bind(run_after)
        .bind(error.customer)
        .execute(&mut *tx)
        .await;
        match requeued {
            Ok(_) => FailureOutcome::Retrying(run_after),
            Err(err) if is_unique_violation(&err, "operations_one_queued_per_kind") => {
                tx.rollback().await?;
                tx = pool.begin().await?;
                let note = " (not retried: a newer request of the same kind is queued)";
                mark_failed(
                    &mut tx,
                    id,
                    &format!("{}{note}", error.detail),
                    &format!("{}{note}", error.customer),
                )
                .await?;
                FailureOutcome::Failed
            }
            Err(err) => return Err(err),
        }
    } else {
        mark_failed(&mut tx, id, error.detail, error.customer).await?;
        FailureOutcome::Failed
    };
    tx.commit().await?;
    Ok(outcome)
}

async fn mark_failed(
    conn: &mut PgConnection,
    id: Uuid,
    detail: &str,
    customer: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE operations SET state = 'failed', worker = NULL, lease = NULL, last_error = $2, finished_at = now(),
                customer_error = $3
         WHERE id = $1",
    )
    .bind(id)
    .bind(detail)
    .bind(customer)
    .execute(conn)
    .await?;
    Ok(())
}

/// Operations queued again or failed because their worker stopped beating.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    pub requeued: Vec<Uuid>,
    pub failed: Vec<Uuid>,
}

/// Takes over running operations whose lease was not renewed for `stale`:
/// back to the queue (the interrupted attempt stays counted, its lease is
/// cleared so it can record nothing more), or failed when no attempts remain.
pub async fn recover_orphans(pool: &PgPool, stale: Duration) -> Result<Recovered, sqlx::Error> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "UPDATE operations SET
             state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
             finished_at = CASE WHEN attempts >= max_attempts THEN now() END,
             last_error = 'worker ' || coalesce(worker, '?') || ' stopped while running this operation',
             customer_error = 'interrupted by a platform restart',
             worker = NULL, lease = NULL, run_after = now()
         WHERE id IN (
             SELECT id FROM operations
             WHERE state = 'running' AND heartbeat_at < now() - make_interval(secs => $1)
             -- A row locked by its attempt's open transaction (which commits
             -- the attempt's result) is not abandoned; the rest are taken over
             -- without waiting for it.
             FOR UPDATE SKIP LOCKED)
         RETURNING id, state",
    )
    .bind(stale.as_secs_f64())
    .fetch_all(pool)
    .await?;
    let mut recovered = Recovered::default();
    for (id, state) in rows {
        if state == "queued" {
            recovered.requeued.push(id);
        } else {
            recovered.failed.push(id);
        }
    }
    Ok(recovered)
}

/// Queued operations whose time has come, oldest first.
pub async fn due(pool: &PgPool, limit: i64) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM operations WHERE state = 'queued' AND run_after <= now()
         ORDER BY created_at, id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The oldest queued operation of a tenant, to start right after another ends.
pub async fn next_for_tenant(pool: &PgPool, tenant_id: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM operations WHERE tenant_id = $1 AND state = 'queued' AND run_after <= now()
         ORDER BY created_at, id LIMIT 1",
    )
    .bind(tenant_id)
    .fetch_optional(pool)
    .await
}

/// Number of queued operations.
pub async fn queue_depth(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM operations WHERE state = 'queued'")
        .fetch_one(pool)
        .await
}

/// Puts a failed operation back in the queue with a fresh set of attempts,
/// and moves the tenant back to the state the request put it in (a failed
/// provision's tenant is `provisioning` again), through the lifecycle rules:
/// a retried attempt finds the tenant as its first attempt did.
pub async fn retry(conn: &mut PgConnection, id: Uuid) -> Result<Operation, OpsError> {
    let current = state_for_update(conn, id).await?;
    if current != OperationState::Failed {
        return Err(OpsError::WrongState(current, "failed", "retried"));
    }
    let retried = sqlx::query_as::<_, Operation>(&format!(
        "UPDATE operations SET state = 'queued', attempts = 0, run_after = now(), finished_at = NULL,
                worker = NULL, lease = NULL
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .fetch_one(&mut *conn)
    .await;
    let operation = match retried {
        Ok(operation) => operation,
        Err(err) if is_unique_violation(&err, "operations_one_queued_per_kind") => {
            return Err(OpsError::AlreadyQueued);
        }
        Err(err) => return Err(err.into()),
    };
    reenter_request_state(conn, &operation).await?;
    Ok(operation)
}

/// Moves the tenant of `operation` to the state its request moves it to,
/// when it is not there (see [`super::precondition`]).
async fn reenter_request_state(
    conn: &mut PgConnection,
    operation: &Operation,
) -> Result<(), OpsError> {
    let Some(next) = super::precondition(operation.kind).1 else {
        return Ok(());
    };
    let state: Option<String> =
        sqlx::query_scalar("SELECT state FROM tenants WHERE id = $1 FOR UPDATE")
            .bind(operation.tenant_id)
            .fetch_optional(&mut *conn)
            .await?;
    let state: crate::domain::TenantState = state.ok_or(OpsError::NotFound)?.parse().map_err(
        |e: crate::domain::tenant::UnknownState| {
            OpsError::Database(sqlx::Error::Protocol(e.to_string()))
        },
    )?;
    if state != next {
        crate::domain::transition(state, next)?;
        sqlx::query("UPDATE tenants SET state = $2, updated_at = now() WHERE id = $1")
            .bind(operation.tenant_id)
            .bind(next.as_str())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Cancels a queued operation.
pub async fn cancel(conn: &mut PgConnection, id: Uuid) -> Result<Operation, OpsError> {
    let current = state_for_update(conn, id).await?;
    if current != OperationState::Queued {
        return Err(OpsError::WrongState(current, "queued", "cancelled"));
    }
    let cancelled = sqlx::query_as::<_, Operation>(&format!(
        "UPDATE operations SET state = 'cancelled', finished_at = now() WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    // A tenant whose provisioning will never run is failed (it may then be
    // provisioned again or deleted), not left provisioning for ever.
    if cancelled.kind == OperationKind::Provision {
        sqlx::query(
            "UPDATE tenants SET state = 'failed', updated_at = now() WHERE id = $1 AND state = 'provisioning'",
        )
        .bind(cancelled.tenant_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(cancelled)
}

async fn state_for_update(conn: &mut PgConnection, id: Uuid) -> Result<OperationState, OpsError> {
    let state: Option<String> =
        sqlx::query_scalar("SELECT state FROM operations WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    let state = state.ok_or(OpsError::NotFound)?;
    state
        .parse()
        .map_err(|e: String| OpsError::Database(sqlx::Error::Protocol(e)))
}

pub(crate) fn is_unique_violation(err: &sqlx::Error, constraint: &str) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.is_unique_violation() && db.constraint() == Some(constraint))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 1), Duration::from_millis(100));
        assert_eq!(backoff(base, 2), Duration::from_millis(200));
        assert_eq!(backoff(base, 4), Duration::from_millis(800));
        assert_eq!(backoff(base, 40), Duration::from_secs(300));
        assert_eq!(backoff(base, 0), Duration::from_millis(100));
    }
}
