//! Recording an attempt's outcome under its lease: succeeded, retried,
//! failed, or nothing at all when the lease was taken over.

use std::time::Duration;

use saas_core::ops::{FailureOutcome, Operation, lease as leases, store};

use crate::engine::{BUSY_TENANT_RETRY, Engine, EngineError, Next};
use crate::handlers::{HandlerError, Handlers};
use crate::lease::Lease;
use saas_core::error_chain::Chain;

/// Between attempts to record an outcome while PostgreSQL does not answer.
const RECORD_RETRY: Duration = Duration::from_secs(1);

impl<H: Handlers> Engine<H> {
    /// Records the outcome, retrying while PostgreSQL does not answer and
    /// the lease may still be ours (the lease renewal gives it up when
    /// PostgreSQL stays away as long as the lease lasts).
    pub(crate) async fn record_durably(
        &self,
        operation: &Operation,
        lease: &Lease,
        result: Result<(), HandlerError>,
    ) -> Next {
        lease.finishing();
        loop {
            match self.record(operation, lease, result.clone()).await {
                Ok(next) => return next,
                Err(err) if lease.is_lost() => {
                    tracing::warn!(error = %Chain(&err), "outcome not recorded and the lease is lost; the operation runs again");
                    return Next::Unknown;
                }
                Err(err) => {
                    tracing::warn!(error = %Chain(&err), "recording the outcome failed; retrying");
                    tokio::time::sleep(RECORD_RETRY).await;
                }
            }
        }
    }

    async fn record(
        &self,
        operation: &Operation,
        lease: &Lease,
        result: Result<(), HandlerError>,
    ) -> Result<Next, EngineError> {
        let id = operation.id;
        let kind = operation.kind.as_str();
        match result {
            Ok(()) => {
                let recorded = store::succeed_then_next(&self.pool, id, lease.token()).await?;
                return Ok(self.succeeded(kind, recorded));
            }
            Err(err) => {
                let outcome = store::fail_attempt(
                    &self.pool,
                    id,
                    lease.token(),
                    store::AttemptError {
                        detail: &err.message,
                        customer: &err.customer,
                        retryable: err.retryable,
                    },
                    self.settings.retry_base,
                )
                .await?;
                match outcome {
                    FailureOutcome::Retrying(run_after) => {
                        self.count(kind, "retried");
                        tracing::warn!(kind, error = %Chain(&err), %run_after, "operation attempt failed; retrying");
                        self.forget(id).await;
                    }
                    FailureOutcome::Failed => {
                        self.count(kind, "failed");
                        tracing::error!(kind, error = %Chain(&err), "operation failed");
                        self.handlers
                            .failed(operation.clone(), err.message.clone())
                            .await;
                    }
                    FailureOutcome::Lost => {
                        tracing::warn!(kind, error = %Chain(&err), "attempt failed after its lease was taken over; not recorded");
                    }
                }
            }
        }
        Ok(Next::Unknown)
    }

    /// Counts and logs a success as recorded (`None`: the lease was taken
    /// over and nothing was).
    pub(crate) fn succeeded(&self, kind: &str, recorded: Option<Option<uuid::Uuid>>) -> Next {
        match recorded {
            Some(next) => {
                self.count(kind, "succeeded");
                tracing::info!(kind, "operation succeeded");
                Next::Known(next)
            }
            None => {
                tracing::warn!(
                    kind,
                    "operation finished after its lease was taken over; not recorded"
                );
                Next::Unknown
            }
        }
    }

    /// Puts an attempt that could not start back in the queue, uncounted.
    pub(crate) async fn release(&self, operation: &Operation, lease: &Lease) {
        loop {
            match leases::release(&self.pool, operation.id, lease.token(), BUSY_TENANT_RETRY).await
            {
                Ok(_) => {
                    tracing::info!("tenant busy; operation queued again");
                    return;
                }
                Err(err) if lease.is_lost() => {
                    tracing::warn!(error = %Chain(&err), "could not queue the operation again; it is taken over");
                    return;
                }
                Err(err) => {
                    tracing::warn!(error = %Chain(&err), "queueing the operation again failed; retrying");
                    tokio::time::sleep(RECORD_RETRY).await;
                }
            }
        }
    }

    fn count(&self, kind: &str, outcome: &str) {
        self.metrics
            .operations
            .with_label_values(&[kind, outcome])
            .inc();
    }
}
