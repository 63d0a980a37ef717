//! What each kind of operation does. The engine calls a [`Handlers`]
//! implementation; every handler must be idempotent, because an attempt cut
//! off by a crash runs again.

use futures::future::BoxFuture;
use saas_core::ops::{Operation, OpsQueue};

use crate::lease::Lease;
use crate::metrics::WorkerMetrics;

/// What periodic maintenance may use.
#[derive(Clone)]
pub struct Maintenance {
    pub queue: OpsQueue,
    pub metrics: WorkerMetrics,
}

/// Why an attempt failed, and whether trying again may help.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    /// The full reason, for operators (admin, the worker's log).
    pub message: String,
    /// What the customer may read: the handler's own words, never a tool's
    /// output or data from outside the customer's database.
    pub customer: String,
    pub retryable: bool,
}

impl HandlerError {
    /// A failure that may pass (a busy template, a timeout, a lost
    /// connection); `message` is the worker's own words, safe to show.
    pub fn transient(message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            customer: message.clone(),
            message,
            retryable: true,
        }
    }

    /// A failure that will not pass by retrying (bad arguments, a refused
    /// state); `message` is the worker's own words, safe to show.
    pub fn permanent(message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            customer: message.clone(),
            message,
            retryable: false,
        }
    }

    /// The same failure, told to the customer as `customer`.
    pub fn telling_customer(mut self, customer: impl Into<String>) -> Self {
        self.customer = customer.into();
        self
    }
}

impl From<sqlx::Error> for HandlerError {
    fn from(err: sqlx::Error) -> Self {
        HandlerError::transient(format!("database: {}", saas_core::error_chain::chain(&err)))
            .telling_customer("a temporary problem with the platform database")
    }
}

/// Runs operations of every kind.
pub trait Handlers: Send + Sync + 'static {
    /// Runs one attempt of `operation`. `lease` is the attempt's: while it
    /// runs, the engine holds the tenant's lock and renews the lease; once
    /// the lease is lost (taken over by another worker after a stall) the
    /// attempt must stop touching the tenant. A handler records results
    /// (rows, state changes) in a transaction that first calls
    /// [`Lease::guard`] (or [`Lease::complete`], which also marks the
    /// operation succeeded in that transaction), so a taken-over attempt
    /// commits nothing; [`Lease::lost`] resolves when it should give up,
    /// otherwise the engine drops it a few seconds later.
    fn run(
        &self,
        operation: Operation,
        lease: Lease,
    ) -> BoxFuture<'static, Result<(), HandlerError>>;

    /// Called once when an operation has failed for good (no attempts left
    /// or a permanent error), e.g. to mark a tenant whose provision failed.
    fn failed(&self, operation: Operation, error: String) -> BoxFuture<'static, ()> {
        let _ = (operation, error);
        Box::pin(async {})
    }

    /// Periodic work of one worker at a time (schedules, routing map,
    /// templates), run every [`crate::background::MAINTENANCE_EVERY`].
    fn maintain(&self, context: Maintenance) -> BoxFuture<'static, ()> {
        let _ = context;
        Box::pin(async {})
    }

    /// Adds what the handlers depend on beyond PostgreSQL and Redis (the
    /// backup stores) to `/readyz`, once at start.
    fn watch_readiness(&self, components: &saas_core::readiness::Components) {
        let _ = components;
    }
}
