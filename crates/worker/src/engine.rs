//! Runs one operation: claim it in PostgreSQL under a fresh lease, take the
//! tenant's lock, call its handler (stopping it if the lease is lost),
//! record the outcome, and start the tenant's next queued operation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use saas_core::config::WorkerSettings;
use saas_core::ops::{Claim, Operation, OpsQueue, store};
use sqlx::PgPool;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::handlers::{HandlerError, Handlers};
use crate::lease::{Lease, Leases, taken_over};
use crate::metrics::WorkerMetrics;
use crate::tenant_lock::{LockState, TenantLock, TenantLocks};
use saas_core::error_chain::Chain;

/// What recording an outcome learnt of the tenant's next due operation.
pub(crate) enum Next {
    /// Answered with the outcome: this one, or none.
    Known(Option<Uuid>),
    /// Not asked.
    Unknown,
}

/// How long an attempt waits for its tenant's lock (held by an earlier
/// attempt that has not stopped yet) before it goes back to the queue.
const TENANT_LOCK_WAIT: Duration = Duration::from_secs(20);
/// When an attempt that found its tenant locked is due again.
pub(crate) const BUSY_TENANT_RETRY: Duration = Duration::from_secs(2);
/// How long a handler whose lease was lost may take to stop by itself
/// before the engine drops it.
const LOST_LEASE_GRACE: Duration = Duration::from_secs(3);

/// Everything a worker process needs to run operations.
pub struct Engine<H> {
    pub pool: PgPool,
    pub queue: OpsQueue,
    pub name: String,
    pub handlers: Arc<H>,
    pub settings: WorkerSettings,
    pub metrics: WorkerMetrics,
    pub leases: Arc<Leases>,
    locks: TenantLocks,
    /// One permit per operation that may run at once, whichever queue
    /// consumer (a restarted one included) fetched it.
    slots: Arc<Semaphore>,
    /// Set when Redis may have lost jobs: the reconciler then pushes every
    /// due operation again, whatever Redis' markers say.
    resync: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl<H: Handlers> Engine<H> {
    pub fn new(
        pool: PgPool,
        queue: OpsQueue,
        name: String,
        handlers: Arc<H>,
        settings: WorkerSettings,
        metrics: WorkerMetrics,
    ) -> Self {
        let slots = settings.concurrency;
        let locks = TenantLocks::new(&pool, u32::try_from(slots + 1).unwrap_or(u32::MAX));
        Self {
            pool,
            queue,
            name,
            handlers,
            settings,
            metrics,
            leases: Arc::new(Leases::default()),
            locks,
            slots: Arc::new(Semaphore::new(slots)),
            resync: AtomicBool::new(false),
        }
    }

    /// Ids of the operations this process runs right now.
    pub fn running(&self) -> Vec<Uuid> {
        self.leases.ids()
    }

    pub fn locks(&self) -> &TenantLocks {
        &self.locks
    }

    /// Asks the reconciler to push every due operation again.
    pub fn request_resync(&self) {
        self.resync.store(true, Ordering::SeqCst);
    }

    pub(crate) fn take_resync(&self) -> bool {
        self.resync.swap(false, Ordering::SeqCst)
    }

    /// Runs operation `id` on a task of its own, holding one of the
    /// process' slots: a queue consumer that dies meanwhile (Redis flushed
    /// or restarted) does not take the running operation with it.
    pub async fn spawn_process(self: &Arc<Self>, id: Uuid) {
        let Ok(permit) = Arc::clone(&self.slots).acquire_owned().await else {
            return;
        };
        let engine = Arc::clone(self);
        let task = tokio::spawn(async move {
            let _permit = permit;
            if let Err(err) = engine.process(id).await {
                tracing::error!(error = %Chain(&err), operation = %id, "processing failed");
            }
        });
        if let Err(join) = task.await {
            tracing::error!(error = %Chain(&join), operation = %id, "processing stopped abnormally");
        }
    }

    /// Waits until no operation runs in this process, at most `timeout`.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let all = u32::try_from(self.settings.concurrency).unwrap_or(u32::MAX);
        tokio::time::timeout(timeout, self.slots.acquire_many(all))
            .await
            .is_ok()
    }

    /// Handles one job from the queue.
    #[tracing::instrument(skip_all, fields(operation = %id, worker = %self.name))]
    pub async fn process(&self, id: Uuid) -> Result<(), EngineError> {
        let token = Uuid::new_v4();
        let (claim, lock) = match self.locks.claim(id, &self.name, token).await {
            Ok(claimed) => claimed,
            Err(err) => {
                // Let the reconciler push it again once the database answers.
                self.forget(id).await;
                return Err(err.into());
            }
        };
        let operation = match claim {
            Claim::Claimed(operation) => *operation,
            Claim::NotQueued => return Ok(()),
            Claim::NotDue(_) | Claim::TenantBusy => {
                self.forget(id).await;
                return Ok(());
            }
        };
        let lease = Lease::new(id, token, self.pool.clone());
        self.leases.insert(lease.clone());
        let finished = self.attempt(&operation, &lease, lock).await;
        self.leases.remove(id);
        let Some(next) = finished else {
            self.forget(id).await;
            return Ok(());
        };
        let next = match next {
            Next::Known(next) => next,
            Next::Unknown => store::next_for_tenant(&self.pool, operation.tenant_id).await?,
        };
        if let Some(next) = next
            && let Err(err) = self.queue.push(next).await
        {
            tracing::warn!(error = %Chain(&err), "could not push the tenant's next operation; the reconciler will");
        }
        Ok(())
    }

    /// One claimed attempt, under the tenant's lock (`lock` when the claim
    /// brought it, else waited for); `None` when it went back to the queue
    /// without running, else what the outcome said of the tenant's next
    /// operation.
    async fn attempt(
        &self,
        operation: &Operation,
        lease: &Lease,
        lock: Option<TenantLock>,
    ) -> Option<Next> {
        let kind = operation.kind;
        let lock = match lock {
            Some(lock) => lock,
            None => match self
                .locks
                .acquire(operation.tenant_id, lease, TENANT_LOCK_WAIT)
                .await
            {
                Ok(Some(lock)) => lock,
                outcome => {
                    if let Err(err) = outcome {
                        tracing::warn!(error = %Chain(&err), "cannot take the tenant lock");
                    }
                    self.release(operation, lease).await;
                    return None;
                }
            },
        };
        tracing::info!(%kind, attempt = operation.attempts, "operation started");
        let started = Instant::now();
        let (result, lock) = self.run_handler(operation, lease, lock).await;
        self.metrics
            .duration
            .with_label_values(&[kind.as_str()])
            .observe(started.elapsed().as_secs_f64());
        // Recorded before (a success: as) the lock goes, so the tenant's
        // next attempt finds this one's outcome.
        let next = match result {
            Ok(()) => {
                lease.finishing();
                match lock.succeed_and_release(operation.id, lease.token()).await {
                    Ok(recorded) => self.succeeded(kind.as_str(), recorded),
                    Err(err) => {
                        tracing::warn!(error = %Chain(&err), "recording the success on the lock's connection failed; recording it again");
                        self.record_durably(operation, lease, Ok(())).await
                    }
                }
            }
            Err(_) => {
                let next = self.record_durably(operation, lease, result).await;
                lock.release().await;
                next
            }
        };
        Some(next)
    }

    /// Runs the handler on a task of its own (a panic fails the attempt
    /// instead of the worker), checking the tenant lock at every heartbeat;
    /// when the lease is lost the handler gets [`LOST_LEASE_GRACE`] to stop,
    /// then it is dropped. Returns the lock only once the handler is gone.
    async fn run_handler(
        &self,
        operation: &Operation,
        lease: &Lease,
        mut lock: TenantLock,
    ) -> (Result<(), HandlerError>, TenantLock) {
        let mut task = tokio::spawn(self.handlers.run(operation.clone(), lease.clone()));
        let mut check = tokio::time::interval(self.settings.heartbeat_every);
        check.tick().await;
        loop {
            tokio::select! {
                joined = &mut task => return (joined_result(joined), lock),
                () = lease.lost() => break,
                _ = check.tick() => {
                    if lock.ensure(&self.locks).await == LockState::Lost && lease.mark_lost() {
                        tracing::error!("the tenant lock was lost (PostgreSQL restarted and another attempt took it); stopping");
                    }
                }
            }
        }
        match tokio::time::timeout(LOST_LEASE_GRACE, &mut task).await {
            Ok(joined) => (joined_result(joined), lock),
            Err(_) => {
                tracing::warn!(
                    "the handler did not stop within {LOST_LEASE_GRACE:?} of losing its lease; dropping it"
                );
                task.abort();
                let _ = task.await;
                (Err(taken_over()), lock)
            }
        }
    }

    pub(crate) async fn forget(&self, id: Uuid) {
        if let Err(err) = self.queue.forget(id).await {
            tracing::warn!(error = %Chain(&err), operation = %id, "could not clear the pushed marker");
        }
    }
}

fn joined_result(
    joined: Result<Result<(), HandlerError>, tokio::task::JoinError>,
) -> Result<(), HandlerError> {
    joined.unwrap_or_else(|join| {
        Err(
            HandlerError::transient(format!("the handler panicked: {join}"))
                .telling_customer("an internal error; it is being retried"),
        )
    })
}
