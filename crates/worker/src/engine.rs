//! Runs one operation: claim it in PostgreSQL, call its handler, record the
//! outcome, and start the tenant's next queued operation.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use saas_core::config::WorkerSettings;
use saas_core::ops::{Claim, FailureOutcome, OpsQueue, store};
use sqlx::PgPool;
use uuid::Uuid;

use crate::handlers::{HandlerError, Handlers};
use crate::metrics::WorkerMetrics;

/// Everything a worker process needs to run operations.
pub struct Engine<H> {
    pub pool: PgPool,
    pub queue: OpsQueue,
    pub name: String,
    pub handlers: Arc<H>,
    pub settings: WorkerSettings,
    pub metrics: WorkerMetrics,
    running: Mutex<HashSet<Uuid>>,
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
        Self {
            pool,
            queue,
            name,
            handlers,
            settings,
            metrics,
            running: Mutex::new(HashSet::new()),
        }
    }

    /// Ids of the operations this process runs right now.
    pub fn running(&self) -> Vec<Uuid> {
        self.running
            .lock()
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default()
    }

    fn mark_running(&self, id: Uuid, running: bool) {
        if let Ok(mut set) = self.running.lock() {
            if running {
                set.insert(id);
            } else {
                set.remove(&id);
            }
        }
    }

    /// Handles one job from the queue.
    #[tracing::instrument(skip_all, fields(operation = %id, worker = %self.name))]
    pub async fn process(&self, id: Uuid) -> Result<(), EngineError> {
        let claim = match store::claim(&self.pool, id, &self.name).await {
            Ok(claim) => claim,
            Err(err) => {
                // Let the reconciler push it again once the database answers.
                self.forget(id).await;
                return Err(err.into());
            }
        };
        let operation = match claim {
            Claim::Claimed(operation) => operation,
            Claim::NotQueued => return Ok(()),
            Claim::NotDue(_) | Claim::TenantBusy => {
                self.forget(id).await;
                return Ok(());
            }
        };
        let kind = operation.kind;
        let tenant_id = operation.tenant_id;
        tracing::info!(%kind, attempt = operation.attempts, "operation started");
        self.mark_running(id, true);
        let started = Instant::now();
        let handler = self.handlers.run(operation.clone());
        // A panicking handler fails its attempt instead of taking the worker down.
        let result = match tokio::spawn(handler).await {
            Ok(result) => result,
            Err(join) => Err(
                HandlerError::transient(format!("the handler panicked: {join}"))
                    .telling_customer("an internal error; it is being retried"),
            ),
        };
        self.metrics
            .duration
            .with_label_values(&[kind.as_str()])
            .observe(started.elapsed().as_secs_f64());
        let outcome = self.record(id, &operation, result).await;
        self.mark_running(id, false);
        outcome?;
        if let Some(next) = store::next_for_tenant(&self.pool, tenant_id).await?
            && let Err(err) = self.queue.push(next).await
        {
            tracing::warn!(error = %err, "could not push the tenant's next operation; the reconciler will");
        }
        Ok(())
    }

    async fn record(
        &self,
        id: Uuid,
        operation: &saas_core::ops::Operation,
        result: Result<(), HandlerError>,
    ) -> Result<(), EngineError> {
        let kind = operation.kind.as_str();
        match result {
            Ok(()) => {
                if store::succeed(&self.pool, id, &self.name).await? {
                    self.metrics
                        .operations
                        .with_label_values(&[kind, "succeeded"])
                        .inc();
                    tracing::info!(kind, "operation succeeded");
                } else {
                    tracing::warn!(
                        kind,
                        "operation finished after it was taken from this worker"
                    );
                }
            }
            Err(err) => {
                let outcome = store::fail_attempt(
                    &self.pool,
                    id,
                    &self.name,
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
                        self.metrics
                            .operations
                            .with_label_values(&[kind, "retried"])
                            .inc();
                        tracing::warn!(kind, error = %err, %run_after, "operation attempt failed; retrying");
                        self.forget(id).await;
                    }
                    FailureOutcome::Failed => {
                        self.metrics
                            .operations
                            .with_label_values(&[kind, "failed"])
                            .inc();
                        tracing::error!(kind, error = %err, "operation failed");
                        self.handlers
                            .failed(operation.clone(), err.message.clone())
                            .await;
                    }
                    FailureOutcome::Lost => {
                        tracing::warn!(
                            kind,
                            "operation failed after it was taken from this worker"
                        );
                    }
                }
            }
        }
        Ok(())
    }

    async fn forget(&self, id: Uuid) {
        if let Err(err) = self.queue.forget(id).await {
            tracing::warn!(error = %err, operation = %id, "could not clear the pushed marker");
        }
    }
}
