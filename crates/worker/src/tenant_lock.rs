//! The tenant lock an attempt holds for its whole run: a session-level
//! advisory lock on a connection of its own. PostgreSQL releases it only
//! when the attempt releases it or its connection dies, so an attempt that
//! took over from a stalled worker waits until the stalled one has stopped
//! touching the tenant (or its process died), however long the stall.

use std::time::{Duration, Instant};

use saas_core::ops::{Claim, lease, store};
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool, Postgres};
use uuid::Uuid;

use crate::lease::Lease;
use saas_core::error_chain::Chain;

/// How long a check of the lock's connection may take.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// The connections tenant locks are held on, apart from the main pool so
/// that handlers can never exhaust them.
#[derive(Clone)]
pub struct TenantLocks {
    pool: PgPool,
}

/// Whether a held lock is still held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockState {
    Held,
    /// Its connection died and another session holds the lock now.
    Lost,
    /// PostgreSQL does not answer: cannot tell yet.
    Unknown,
}

impl TenantLocks {
    /// A lazily connected pool of `size` lock connections to the database
    /// `main` connects to. A connection goes back to it only once its lock
    /// was released ([`TenantLock::release`]); one that may still hold a
    /// lock is closed instead, which releases it.
    ///
    /// Claims run on these connections ([`store::claim_on`]), with
    /// `synchronous_commit` off: a claim that a crash of PostgreSQL loses
    /// only leaves its operation queued, to run again, while the crash ends
    /// every session and so every lock its attempt held; the outcome an
    /// attempt records later commits durably on the main pool, and with it
    /// everything written before.
    pub fn new(main: &PgPool, size: u32) -> Self {
        let options = main
            .connect_options()
            .as_ref()
            .clone()
            .options([("synchronous_commit", "off")])
            // Told apart from the main pool's in pg_stat_activity: these
            // sessions hold the tenants' advisory locks.
            .application_name("worker-tenant-locks");
        let pool = PgPoolOptions::new()
            .max_connections(size)
            .min_connections(0)
            // A claim on a dead connection fails and its operation goes
            // back to the queue; no ping before every claim (see db::connect).
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(options);
        Self { pool }
    }

    /// Claims operation `id` for `worker` under `token` on a lock
    /// connection, taking its tenant's lock in the same statement: the
    /// claim, and the lock when it came with it (another session holds it
    /// otherwise).
    pub async fn claim(
        &self,
        id: Uuid,
        worker: &str,
        token: Uuid,
    ) -> Result<(Claim, Option<TenantLock>), sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        match store::claim_on(&mut conn, id, worker, token, true).await {
            Ok((Claim::Claimed(operation), true)) => {
                let tenant_id = operation.tenant_id;
                Ok((
                    Claim::Claimed(operation),
                    Some(TenantLock {
                        conn: Some(conn),
                        tenant_id,
                    }),
                ))
            }
            Ok((claim, _)) => Ok((claim, None)),
            Err(err) => {
                // It may hold the lock: closing it releases it.
                conn.close_on_drop();
                Err(err)
            }
        }
    }

    /// Takes the lock of `tenant_id`, waiting up to `wait` for whoever holds
    /// it (polling, so the wait ends when `lease` is lost); `None` when it
    /// stayed taken. Errors are retried until `wait` is over.
    pub async fn acquire(
        &self,
        tenant_id: Uuid,
        lease: &Lease,
        wait: Duration,
    ) -> Result<Option<TenantLock>, sqlx::Error> {
        let deadline = Instant::now() + wait;
        let mut logged = false;
        loop {
            match self.try_acquire(tenant_id).await {
                Ok(Some(lock)) => return Ok(Some(lock)),
                Ok(None) if !logged => {
                    tracing::warn!(tenant = %tenant_id, "tenant locked by an earlier attempt (a stalled or stopping worker); waiting");
                    logged = true;
                }
                Ok(None) => {}
                Err(err) if Instant::now() >= deadline => return Err(err),
                Err(err) => {
                    tracing::warn!(error = %Chain(&err), "taking the tenant lock failed; retrying")
                }
            }
            if Instant::now() >= deadline || lease.is_lost() {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Takes the lock of `tenant_id` if nobody holds it.
    pub async fn try_acquire(&self, tenant_id: Uuid) -> Result<Option<TenantLock>, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        if lease::try_lock_tenant(&mut conn, tenant_id).await? {
            Ok(Some(TenantLock {
                conn: Some(conn),
                tenant_id,
            }))
        } else {
            Ok(None)
        }
    }
}

/// A held tenant lock; released by [`TenantLock::release`] (or, should it
/// be dropped, by closing its connection).
pub struct TenantLock {
    conn: Option<PoolConnection<Postgres>>,
    tenant_id: Uuid,
}

impl TenantLock {
    /// Checks that the lock's connection is alive; after PostgreSQL dropped
    /// it (a restart) the lock is taken again on a new one if nobody else
    /// took it meanwhile.
    pub async fn ensure(&mut self, locks: &TenantLocks) -> LockState {
        if let Some(conn) = self.conn.as_mut() {
            let ping = tokio::time::timeout(PING_TIMEOUT, conn.execute("SELECT 1")).await;
            match ping {
                Ok(Ok(_)) => return LockState::Held,
                Err(_) => return LockState::Unknown,
                Ok(Err(err)) => {
                    tracing::warn!(error = %Chain(&err), tenant = %self.tenant_id, "the tenant lock's connection failed; taking the lock again");
                    if let Some(mut dead) = self.conn.take() {
                        dead.close_on_drop();
                    }
                }
            }
        }
        match locks.try_acquire(self.tenant_id).await {
            Ok(Some(mut again)) => {
                self.conn = again.conn.take();
                LockState::Held
            }
            Ok(None) => LockState::Lost,
            Err(_) => LockState::Unknown,
        }
    }

    /// Records the attempt's success and releases the lock in one statement
    /// ([`store::succeed_then_next_unlocking`]): `None` when the lease was
    /// taken over, else the tenant's next due operation. On an error the
    /// connection is closed (which releases the lock) and the caller records
    /// the outcome on its own.
    pub async fn succeed_and_release(
        mut self,
        id: Uuid,
        lease: Uuid,
    ) -> Result<Option<Option<Uuid>>, sqlx::Error> {
        let Some(mut conn) = self.conn.take() else {
            return Err(sqlx::Error::PoolClosed);
        };
        let done = tokio::time::timeout(
            PING_TIMEOUT,
            store::succeed_then_next_unlocking(&mut conn, id, lease, self.tenant_id),
        )
        .await;
        match done {
            Ok(Ok((recorded, unlocked))) => {
                if !unlocked {
                    conn.close_on_drop();
                }
                Ok(recorded)
            }
            Ok(Err(err)) => {
                conn.close_on_drop();
                Err(err)
            }
            Err(_) => {
                conn.close_on_drop();
                Err(sqlx::Error::PoolTimedOut)
            }
        }
    }

    /// Releases the lock; a failure closes the connection, which releases it too.
    pub async fn release(mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let unlocked = tokio::time::timeout(
            PING_TIMEOUT,
            lease::unlock_tenant(&mut conn, self.tenant_id),
        )
        .await;
        if !matches!(unlocked, Ok(Ok(true))) {
            conn.close_on_drop();
        }
    }
}

impl Drop for TenantLock {
    fn drop(&mut self) {
        // Dropped without `release` (the attempt was cancelled): closing the
        // connection releases the lock at once.
        if let Some(conn) = self.conn.as_mut() {
            conn.close_on_drop();
        }
    }
}
