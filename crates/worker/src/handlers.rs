//! What each kind of operation does. The engine calls a [`Handlers`]
//! implementation; every handler must be idempotent, because an attempt cut
//! off by a crash runs again.

use futures::future::BoxFuture;
use saas_core::ops::{Operation, OpsQueue};

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
    pub message: String,
    pub retryable: bool,
}

impl HandlerError {
    /// A failure that may pass (a busy template, a timeout, a lost connection).
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure that will not pass by retrying (bad arguments, a refused state).
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
        }
    }
}

impl From<sqlx::Error> for HandlerError {
    fn from(err: sqlx::Error) -> Self {
        HandlerError::transient(format!("database: {err}"))
    }
}

/// Runs operations of every kind.
pub trait Handlers: Send + Sync + 'static {
    fn run(&self, operation: Operation) -> BoxFuture<'static, Result<(), HandlerError>>;

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
}
