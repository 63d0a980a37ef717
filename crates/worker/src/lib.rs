//! The worker: runs operations from the Redis queue with PostgreSQL as the
//! truth; serves only `/healthz`, `/readyz` and `/metrics` on `WORKER_PORT`
//! (5002).
//!
//! `main` stays thin: [`build`] makes the application from a validated
//! configuration and [`App::serve`] runs it on any listener, so tests start
//! it on port 0 with handlers of their own.

pub mod background;
pub mod engine;
mod failed_provisions;
pub mod handlers;
pub mod metrics;
pub mod platform;
pub mod schedule;
pub mod servers;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use axum::Router;
use saas_core::config::WorkerSettings;
use saas_core::ops::workers::{self, worker_name};
use saas_core::ops::{OperationJob, OpsQueue};
use saas_core::run::{self, SchemaPolicy};
use saas_core::{Config, StartupError};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::engine::Engine;
use crate::handlers::Handlers;
use crate::metrics::WorkerMetrics;

/// The worker application, ready to serve.
pub struct App<H> {
    router: Router,
    parts: Parts<H>,
}

struct Parts<H> {
    pool: sqlx::PgPool,
    redis: redis::Client,
    prefix: String,
    settings: WorkerSettings,
    metrics: WorkerMetrics,
    handlers: Arc<H>,
}

/// Connects to PostgreSQL, waits until admin has migrated the schema, and
/// prepares the engine; Redis is connected when serving starts (and retried
/// until it answers), so `/readyz` can report it missing.
pub async fn build<H, F, Fut>(
    config: &Config,
    settings: WorkerSettings,
    make_handlers: F,
) -> Result<App<H>, StartupError>
where
    H: Handlers,
    F: FnOnce(sqlx::PgPool) -> Fut,
    Fut: Future<Output = Result<H, StartupError>>,
{
    let base = run::start(config, SchemaPolicy::Wait).await?;
    let metrics = WorkerMetrics::register(&base.deps.metrics.registry)
        .map_err(|err| StartupError::Internal(err.to_string()))?;
    let router = base.router(Router::new());
    let handlers = make_handlers(base.deps.db.clone()).await?;
    Ok(App {
        router,
        parts: Parts {
            pool: base.deps.db.clone(),
            redis: base.deps.redis.clone(),
            prefix: config.redis_key_prefix.clone(),
            settings,
            metrics,
            handlers: Arc::new(handlers),
        },
    })
}

impl<H: Handlers> App<H> {
    /// Serves health and metrics and runs operations until `shutdown`
    /// resolves; then stops taking jobs, lets running operations finish for
    /// up to `WORKER_SHUTDOWN_TIMEOUT`, and returns.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let http = tokio::spawn(saas_core::service::serve(
            listener,
            self.router,
            stopped(stop_rx.clone()),
        ));
        let grace = self.parts.settings.shutdown_timeout;
        let mut work = tokio::spawn(run_engine(self.parts, stop_rx));
        shutdown.await;
        let _ = stop_tx.send(true);
        tracing::info!("shutdown requested: no new operations; waiting for running ones");
        match tokio::time::timeout(grace, &mut work).await {
            Ok(Ok(())) => {}
            Ok(Err(join)) => tracing::error!(error = %join, "the engine stopped abnormally"),
            Err(_) => {
                tracing::warn!(
                    "operations still running after WORKER_SHUTDOWN_TIMEOUT ({grace:?}); \
                     the reconciler will run them again"
                );
                work.abort();
            }
        }
        match http.await {
            Ok(served) => served,
            Err(join) => Err(std::io::Error::other(join)),
        }
    }
}

/// Prepares the platform handlers: registers the stack's default Odoo server
/// when configured, records the templates found and writes the routing map
/// once before taking jobs.
pub async fn start_platform(
    config: &Config,
    data_plane: saas_core::config::DataPlaneSettings,
    pool: sqlx::PgPool,
) -> Result<platform::PlatformHandlers, StartupError> {
    if let Some(default) = &data_plane.default_server {
        servers::ensure_default_server(&pool, &config.database_url, default)
            .await
            .map_err(|err| StartupError::from_database(config, &err))?;
    }
    if let Err(err) = servers::refresh_templates(&pool).await {
        tracing::warn!(error = %err, "cannot list the servers' templates yet");
    }
    if let Err(err) = servers::write_routing_map_from(&pool, &data_plane.routing_map_path).await {
        tracing::warn!(error = %err, "cannot write the routing map yet");
    }
    platform::PlatformHandlers::new(
        pool,
        data_plane,
        config.public_scheme.clone(),
        config.base_domain.clone(),
    )
    .map_err(|err| StartupError::Internal(format!("BACKUP_STORE_URL: {err}")))
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn run_engine<H: Handlers>(parts: Parts<H>, stop: watch::Receiver<bool>) {
    let Some(queue) = connect_queue(&parts, stop.clone()).await else {
        return;
    };
    let redis_client = parts.redis.clone();
    let hostname = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "worker".to_owned());
    let name = worker_name(&hostname);
    tracing::info!(worker = %name, concurrency = parts.settings.concurrency, "worker started");
    let engine = Arc::new(Engine::new(
        parts.pool,
        queue.clone(),
        name.clone(),
        parts.handlers,
        parts.settings.clone(),
        parts.metrics,
    ));
    let heartbeat = tokio::spawn(background::heartbeat(Arc::clone(&engine), hostname));
    let reconciler = tokio::spawn(background::reconcile(Arc::clone(&engine)));
    let maintenance = tokio::spawn(background::maintain(Arc::clone(&engine)));
    let worker = WorkerBuilder::new(name.as_str())
        .backend(
            queue
                .storage(background::HEARTBEAT_EVERY)
                .poll_with_stream(queue.wake_signals(redis_client)),
        )
        .data(Arc::clone(&engine))
        .concurrency(parts.settings.concurrency)
        .build(handle_job::<H>);
    let result = worker
        .run_until(async move {
            stopped(stop).await;
            Ok::<(), std::io::Error>(())
        })
        .await;
    if let Err(err) = result {
        tracing::error!(error = %err, "the queue consumer stopped");
    }
    reconciler.abort();
    maintenance.abort();
    heartbeat.abort();
    let mut conn = queue.connection();
    if let Err(err) = workers::remove(&mut conn, queue.prefix(), &name).await {
        tracing::warn!(error = %err, "could not deregister the worker");
    }
    tracing::info!(worker = %name, "worker stopped");
}

/// Connects the queue, retrying every second until Redis answers or the
/// worker is asked to stop.
async fn connect_queue<H>(parts: &Parts<H>, mut stop: watch::Receiver<bool>) -> Option<OpsQueue> {
    let mut warned = false;
    loop {
        let attempt = tokio::time::timeout(
            Duration::from_secs(5),
            OpsQueue::connect(&parts.redis, &parts.prefix),
        );
        let outcome = tokio::select! {
            outcome = attempt => outcome,
            _ = stop.wait_for(|stop| *stop) => return None,
        };
        match outcome {
            Ok(Ok(queue)) => return Some(queue),
            Ok(Err(err)) if !warned => {
                tracing::warn!(error = %err, "Redis is not reachable (REDIS_URL); retrying every second");
                warned = true;
            }
            Err(_) if !warned => {
                tracing::warn!("Redis does not answer (REDIS_URL); retrying every second");
                warned = true;
            }
            _ => {}
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.wait_for(|stop| *stop) => return None,
        }
    }
}

async fn handle_job<H: Handlers>(
    job: OperationJob,
    engine: Data<Arc<Engine<H>>>,
) -> Result<(), BoxDynError> {
    engine.process(job.operation_id).await.map_err(|err| {
        tracing::error!(error = %err, operation = %job.operation_id, "processing failed");
        Box::new(err) as BoxDynError
    })
}
