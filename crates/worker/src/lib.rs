//! The worker: runs operations from the Redis queue with PostgreSQL as the
//! truth; serves only `/healthz`, `/readyz` and `/metrics` on `WORKER_PORT`
//! (5002).
//!
//! `main` stays thin: [`build`] makes the application from a validated
//! configuration and [`App::serve`] runs it on any listener, so tests start
//! it on port 0 with handlers of their own.

pub mod background;
pub mod connections;
pub mod consumer;
pub mod domains;
pub mod engine;
mod failed_provisions;
pub mod handlers;
pub mod lease;
pub mod metrics;
mod outcome;
pub mod platform;
mod replica;
pub mod schedule;
mod secrets;
pub mod servers;
pub mod sweep;
pub mod tenant_lock;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use saas_core::config::WorkerSettings;
use saas_core::ops::OpsQueue;
use saas_core::ops::workers::{self, worker_name};
use saas_core::readiness::Component;
use saas_core::run::{self, SchemaPolicy};
use saas_core::{Config, StartupError};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::engine::Engine;
use crate::handlers::Handlers;
use crate::metrics::WorkerMetrics;
use saas_core::error_chain::Chain;

/// The worker application, ready to serve.
pub struct App<H> {
    router: Router,
    limits: saas_core::edge::HttpLimits,
    parts: Parts<H>,
}

struct Parts<H> {
    pool: sqlx::PgPool,
    redis: redis::Client,
    prefix: String,
    settings: WorkerSettings,
    metrics: WorkerMetrics,
    handlers: Arc<H>,
    /// The queue consumer's readiness, part of `/readyz`.
    queue: Component,
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
    let router = base.router(saas_core::service::metrics_router(base.deps.clone()));
    let queue = base.deps.components.add("queue");
    let handlers = make_handlers(base.deps.db.clone()).await?;
    handlers.watch_readiness(&base.deps.components);
    Ok(App {
        router,
        limits: config.http,
        parts: Parts {
            pool: base.deps.db.clone(),
            redis: base.deps.redis.clone(),
            prefix: config.redis_key_prefix.clone(),
            settings,
            metrics,
            handlers: Arc::new(handlers),
            queue,
        },
    })
}

impl<H: Handlers> App<H> {
    /// Serves health and metrics and runs operations until `shutdown`
    /// resolves; then stops taking jobs, lets running operations finish for
    /// up to `WORKER_SHUTDOWN_TIMEOUT`, and returns. When the engine cannot
    /// continue (its queue consumer stayed down for
    /// `WORKER_QUEUE_GIVE_UP_SECS`), it stops serving and returns the
    /// reason as an error, so that the process exits non-zero.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let http = tokio::spawn(saas_core::service::serve(
            listener,
            self.router,
            self.limits,
            stopped(stop_rx.clone()),
        ));
        let grace = self.parts.settings.shutdown_timeout;
        let mut work = tokio::spawn(run_engine(self.parts, stop_rx));
        tokio::pin!(shutdown);
        let ended = tokio::select! {
            () = &mut shutdown => None,
            ended = &mut work => Some(ended),
        };
        let _ = stop_tx.send(true);
        if let Some(ended) = ended {
            let reason = match ended {
                Ok(Err(reason)) => reason,
                Ok(Ok(())) => "the engine ended without being asked to".to_owned(),
                Err(join) => format!("the engine stopped abnormally: {join}"),
            };
            tracing::error!(error = %reason, "the worker cannot continue; exiting");
            let _ = http.await;
            return Err(std::io::Error::other(reason));
        }
        tracing::info!("shutdown requested: no new operations; waiting for running ones");
        match tokio::time::timeout(grace, &mut work).await {
            Ok(Ok(_)) => {}
            Ok(Err(join)) => {
                tracing::error!(error = %Chain(&join), "the engine stopped abnormally")
            }
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
/// once before taking jobs; starts sweeping the backup store of what
/// interrupted backups left.
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
        tracing::warn!(error = %Chain(err.as_ref()), "cannot list the servers' templates yet");
    }
    platform::seed_template_plans(&pool, &data_plane.templates).await;
    if let Err(err) = servers::write_routing_map_from(&pool, &data_plane).await {
        tracing::warn!(error = %Chain(&err), "cannot write the routing map yet");
    }
    let (store, replica) = saas_odoo::BackupStore::from_settings(&data_plane.backup)
        .map_err(|err| StartupError::Internal(format!("BACKUP_STORE_URL: {}", Chain(&err))))?;
    // Leftovers of backups a crash cut short go at start, then periodically,
    // in both stores.
    for store in std::iter::once(store).chain(replica) {
        tokio::spawn(sweep::sweep_periodically(pool.clone(), store));
    }
    platform::PlatformHandlers::new(pool, data_plane, config.public_urls(), config.sealing_key())
        .map_err(|err| StartupError::Internal(format!("BACKUP_STORE_URL: {}", Chain(&err))))
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Runs the engine until `stop` is set (then `Ok`), or until it cannot
/// continue (then the reason).
async fn run_engine<H: Handlers>(
    parts: Parts<H>,
    stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let Some(queue) = connect_queue(&parts, stop.clone()).await? else {
        return Ok(());
    };
    let hostname = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "worker".to_owned());
    let name = worker_name(&hostname);
    tracing::info!(worker = %name, concurrency = parts.settings.concurrency, "worker started");
    let settings = parts.settings.clone();
    let engine = Arc::new(Engine::new(
        parts.pool.clone(),
        queue.clone(),
        name.clone(),
        parts.handlers,
        parts.settings,
        parts.metrics,
    ));
    let mut essential = tokio::task::JoinSet::new();
    essential.spawn(lease::renew_leases(
        Arc::clone(&engine.leases),
        parts.pool,
        settings.heartbeat_every,
        settings.orphan_after,
    ));
    essential.spawn(background::beat(Arc::clone(&engine), hostname));
    essential.spawn(background::reconcile(Arc::clone(&engine)));
    essential.spawn(background::maintain(Arc::clone(&engine)));
    essential.spawn(connections::watch(
        engine.pool.clone(),
        engine.metrics.clone(),
    ));
    let supervised = consumer::supervise(Arc::clone(&engine), parts.redis, parts.queue, stop);
    let outcome = tokio::select! {
        supervised = supervised => supervised.map_err(|gave_up| gave_up.to_string()),
        // The loops never end; one that does (a panic) leaves the worker
        // without leases or reconciler: better restarted than half alive.
        ended = essential.join_next() => Err(format!("a background task ended: {ended:?}")),
    };
    // Whatever stopped the consumer, running operations finish first (their
    // leases are still renewed meanwhile).
    if !engine.wait_idle(settings.shutdown_timeout).await {
        tracing::warn!(
            "operations still running after WORKER_SHUTDOWN_TIMEOUT; the reconciler will run them again"
        );
    }
    essential.abort_all();
    let mut conn = queue.connection();
    if let Err(err) = workers::remove(&mut conn, queue.prefix(), &name).await {
        tracing::warn!(error = %Chain(&err), "could not deregister the worker");
    }
    if let Err(err) = queue.forget_consumers_of(&name).await {
        tracing::warn!(error = %Chain(&err), "could not deregister the worker's queue consumers");
    }
    tracing::info!(worker = %name, "worker stopped");
    outcome
}

/// Connects the queue, retrying every second until Redis answers (`None`
/// when the worker is asked to stop first), at most
/// `WORKER_QUEUE_GIVE_UP_SECS`.
async fn connect_queue<H>(
    parts: &Parts<H>,
    mut stop: watch::Receiver<bool>,
) -> Result<Option<OpsQueue>, String> {
    let started = Instant::now();
    let mut warned = false;
    loop {
        let attempt = tokio::time::timeout(
            Duration::from_secs(5),
            OpsQueue::connect(&parts.redis, &parts.prefix),
        );
        let outcome = tokio::select! {
            outcome = attempt => outcome,
            _ = stop.wait_for(|stop| *stop) => return Ok(None),
        };
        let reason = match outcome {
            Ok(Ok(queue)) => return Ok(Some(queue)),
            Ok(Err(err)) => format!("Redis is not reachable (REDIS_URL): {}", Chain(&err)),
            Err(_) => "Redis does not answer (REDIS_URL)".to_owned(),
        };
        parts.queue.set_down(reason.clone());
        if started.elapsed() >= parts.settings.queue_give_up {
            return Err(format!(
                "{reason}; gave up after {:?} (WORKER_QUEUE_GIVE_UP_SECS)",
                started.elapsed()
            ));
        }
        if !warned {
            tracing::warn!(error = %reason, "retrying every second");
            warned = true;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.wait_for(|stop| *stop) => return Ok(None),
        }
    }
}
