//! The lease of a running attempt, as its handler sees it, and the loop that
//! renews the leases of every attempt this process runs.
//!
//! A lease is lost when a renewal finds it taken over, or when it could not
//! be renewed for so long that another worker may have taken it over (the
//! worker fences itself: after a stall it assumes the worst).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use saas_core::ops::lease;
use sqlx::{PgConnection, PgPool};
use tokio::sync::watch;
use uuid::Uuid;

use crate::handlers::HandlerError;
use saas_core::error_chain::Chain;

/// One attempt's lease: its operation, its token, and whether it was lost.
#[derive(Clone)]
pub struct Lease {
    inner: Arc<Inner>,
}

struct Inner {
    operation_id: Uuid,
    token: Uuid,
    pool: PgPool,
    lost: watch::Sender<bool>,
    renewed_at: Mutex<Instant>,
    /// Set once the attempt records its outcome: a renewal that races the
    /// final write and finds the operation no longer running is not a
    /// takeover.
    finishing: AtomicBool,
}

impl Lease {
    pub(crate) fn new(operation_id: Uuid, token: Uuid, pool: PgPool) -> Self {
        let (lost, _) = watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                operation_id,
                token,
                pool,
                lost,
                renewed_at: Mutex::new(Instant::now()),
                finishing: AtomicBool::new(false),
            }),
        }
    }

    pub fn operation_id(&self) -> Uuid {
        self.inner.operation_id
    }

    /// The attempt token written in `operations.lease` when it was claimed.
    pub fn token(&self) -> Uuid {
        self.inner.token
    }

    /// Whether this process knows the lease is lost (no query).
    pub fn is_lost(&self) -> bool {
        *self.inner.lost.borrow()
    }

    /// Resolves once the lease is lost: the attempt should stop.
    pub async fn lost(&self) {
        let mut changes = self.inner.lost.subscribe();
        let _ = changes.wait_for(|lost| *lost).await;
    }

    /// Fails when the lease is lost or taken over (asks PostgreSQL): call it
    /// before a step that must not be done by a taken-over attempt.
    pub async fn check(&self) -> Result<(), HandlerError> {
        let mut conn = self.inner.pool.acquire().await?;
        self.guard(&mut conn).await
    }

    /// In the caller's transaction: fails unless the lease still holds, and
    /// keeps it from being taken over until the transaction ends, so what
    /// the transaction writes commits only for the current attempt.
    pub async fn guard(&self, conn: &mut PgConnection) -> Result<(), HandlerError> {
        if self.is_lost() {
            return Err(taken_over());
        }
        if lease::holds(conn, self.operation_id(), self.token()).await? {
            Ok(())
        } else {
            self.mark_lost();
            Err(taken_over())
        }
    }

    /// In the caller's transaction: marks the operation succeeded, failing
    /// unless the lease still holds, so the handler's result and the
    /// operation's success commit together, exactly once.
    pub async fn complete(&self, conn: &mut PgConnection) -> Result<(), HandlerError> {
        if self.is_lost() {
            return Err(taken_over());
        }
        self.finishing();
        if lease::complete(conn, self.operation_id(), self.token()).await? {
            Ok(())
        } else {
            self.mark_lost();
            Err(taken_over())
        }
    }

    /// The attempt is about to record its outcome (the write itself is
    /// fenced by the token in PostgreSQL, not by this flag).
    pub(crate) fn finishing(&self) {
        self.inner.finishing.store(true, Ordering::Release);
    }

    fn is_finishing(&self) -> bool {
        self.inner.finishing.load(Ordering::Acquire)
    }

    /// Marks the lease lost; true when it was not already.
    pub(crate) fn mark_lost(&self) -> bool {
        self.inner.lost.send_if_modified(|lost| {
            let first = !*lost;
            *lost = true;
            first
        })
    }

    fn renewed(&self, at: Instant) {
        if let Ok(mut renewed_at) = self.inner.renewed_at.lock() {
            *renewed_at = at;
        }
    }

    fn since_renewed(&self) -> Duration {
        self.inner
            .renewed_at
            .lock()
            .map(|at| at.elapsed())
            .unwrap_or(Duration::MAX)
    }
}

/// What a handler returns when its lease was taken over.
pub fn taken_over() -> HandlerError {
    HandlerError::permanent("this attempt's lease was taken over by another worker")
        .telling_customer("interrupted; it is being run again")
}

/// The leases of the attempts this process runs.
#[derive(Default)]
pub struct Leases {
    held: Mutex<HashMap<Uuid, Lease>>,
}

impl Leases {
    pub fn insert(&self, lease: Lease) {
        if let Ok(mut held) = self.held.lock() {
            held.insert(lease.operation_id(), lease);
        }
    }

    pub fn remove(&self, operation_id: Uuid) {
        if let Ok(mut held) = self.held.lock() {
            held.remove(&operation_id);
        }
    }

    pub fn ids(&self) -> Vec<Uuid> {
        self.held
            .lock()
            .map(|held| held.keys().copied().collect())
            .unwrap_or_default()
    }

    fn all(&self) -> Vec<Lease> {
        self.held
            .lock()
            .map(|held| held.values().cloned().collect())
            .unwrap_or_default()
    }

    fn holds(&self, lease: &Lease) -> bool {
        self.held.lock().is_ok_and(|held| {
            held.get(&lease.operation_id())
                .is_some_and(|current| current.token() == lease.token())
        })
    }

    /// One renewal: every lease PostgreSQL still knows as its attempt's is
    /// renewed; one it does not is lost; one that could not be renewed for
    /// nearly `tolerance` is given up, since another worker may take it
    /// over at `tolerance` (after a stall of this process, for instance).
    pub async fn renew_once(&self, pool: &PgPool, every: Duration, tolerance: Duration) -> usize {
        let held = self.all();
        if held.is_empty() {
            return 0;
        }
        let pairs: Vec<(Uuid, Uuid)> = held
            .iter()
            .map(|lease| (lease.operation_id(), lease.token()))
            .collect();
        let asked = Instant::now();
        let mut lost = 0;
        match tokio::time::timeout(every, lease::renew(pool, &pairs)).await {
            Ok(Ok(renewed)) => {
                for lease in &held {
                    if renewed.contains(&lease.operation_id()) {
                        lease.renewed(asked);
                    } else if self.holds(lease) && !lease.is_finishing() && lease.mark_lost() {
                        tracing::warn!(operation = %lease.operation_id(), "lease taken over by another worker; stopping the attempt");
                        lost += 1;
                    }
                }
                return lost;
            }
            Ok(Err(err)) => tracing::warn!(error = %Chain(&err), "renewing leases failed"),
            Err(_) => tracing::warn!("renewing leases: PostgreSQL did not answer within {every:?}"),
        }
        for lease in &held {
            if lease.since_renewed() + every >= tolerance && lease.mark_lost() {
                tracing::error!(
                    operation = %lease.operation_id(),
                    "lease not renewed for {:?}; another worker may take it over, so the attempt stops",
                    lease.since_renewed()
                );
                lost += 1;
            }
        }
        lost
    }
}

/// Renews every `every` until aborted.
pub async fn renew_leases(leases: Arc<Leases>, pool: PgPool, every: Duration, tolerance: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        leases.renew_once(&pool, every, tolerance).await;
    }
}
