//! The worker's background loops: heartbeat and reconciler.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use saas_core::ops::store;
use saas_core::ops::workers::{self, WorkerInfo};

use crate::engine::Engine;
use crate::handlers::Handlers;

/// How long a heartbeat key lives without being refreshed.
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(10);
/// How often the worker refreshes its heartbeat.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

/// Publishes this worker's liveness in Redis and refreshes `heartbeat_at` of
/// its running operations in PostgreSQL, until the task is aborted.
pub async fn heartbeat<H: Handlers>(engine: Arc<Engine<H>>, hostname: String) {
    let started_at = Utc::now();
    let mut conn = engine.queue.connection();
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    loop {
        tick.tick().await;
        let running = engine.running();
        let info = WorkerInfo {
            name: engine.name.clone(),
            hostname: hostname.clone(),
            pid: std::process::id(),
            started_at,
            heartbeat_at: Utc::now(),
            concurrency: engine.settings.concurrency,
            running: running.clone(),
        };
        if let Err(err) =
            workers::beat(&mut conn, engine.queue.prefix(), &info, HEARTBEAT_TTL).await
        {
            tracing::warn!(error = %err, "heartbeat to Redis failed");
        }
        if let Err(err) = store::heartbeat(&engine.pool, &engine.name, &running).await {
            tracing::warn!(error = %err, "heartbeat to PostgreSQL failed");
        }
        match workers::live(&mut conn, engine.queue.prefix()).await {
            Ok(live) => engine
                .metrics
                .workers_alive
                .set(i64::try_from(live.len()).unwrap_or(i64::MAX)),
            Err(err) => tracing::warn!(error = %err, "listing live workers failed"),
        }
    }
}

/// How often one of the workers runs the handlers' maintenance.
pub const MAINTENANCE_EVERY: Duration = Duration::from_secs(30);

/// Runs the handlers' maintenance every [`MAINTENANCE_EVERY`] in whichever
/// worker takes the lock for that period, so schedules run once however
/// many workers there are.
pub async fn maintain<H: Handlers>(engine: Arc<Engine<H>>) {
    let mut tick = tokio::time::interval(MAINTENANCE_EVERY);
    let lock = format!("{}maintenance:lock", engine.queue.prefix());
    loop {
        tick.tick().await;
        let mut conn = engine.queue.connection();
        let taken: redis::RedisResult<Option<String>> = redis::cmd("SET")
            .arg(&lock)
            .arg(&engine.name)
            .arg("NX")
            .arg("PX")
            .arg(
                u64::try_from(MAINTENANCE_EVERY.as_millis())
                    .unwrap_or(30_000)
                    .saturating_sub(1000),
            )
            .query_async(&mut conn)
            .await;
        match taken {
            Ok(Some(_)) => {
                let context = crate::handlers::Maintenance {
                    queue: engine.queue.clone(),
                    metrics: engine.metrics.clone(),
                };
                engine.handlers.maintain(context).await;
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "maintenance lock: Redis failed"),
        }
    }
}

/// Compares PostgreSQL (the truth) with Redis (the transport) every
/// `reconcile_interval`: operations whose worker stopped beating go back to
/// the queue, and queued operations Redis does not hold are pushed again.
/// Safe to run in every worker: a duplicate push is ignored at claim time.
pub async fn reconcile<H: Handlers>(engine: Arc<Engine<H>>) {
    let mut tick = tokio::time::interval(engine.settings.reconcile_interval);
    loop {
        tick.tick().await;
        if let Err(err) = reconcile_once(&engine).await {
            tracing::warn!(error = %err, "reconciler pass failed");
        }
    }
}

/// One reconciler pass; returns how many operations it pushed.
pub async fn reconcile_once<H: Handlers>(engine: &Engine<H>) -> anyhow::Result<usize> {
    let recovered = store::recover_orphans(&engine.pool, engine.settings.orphan_after).await?;
    for id in &recovered.failed {
        tracing::error!(operation = %id, "operation's worker died and no attempts remain: failed");
        if let Some(operation) = store::get(&engine.pool, *id).await? {
            engine
                .handlers
                .failed(
                    operation,
                    "worker stopped while running this operation".to_owned(),
                )
                .await;
        }
    }
    let mut pushed = 0;
    for id in &recovered.requeued {
        tracing::warn!(operation = %id, "operation's worker died: queued again");
        engine.queue.push(*id).await?;
        engine
            .metrics
            .requeued
            .with_label_values(&["worker_died"])
            .inc();
        pushed += 1;
    }
    let due = store::due(&engine.pool, 1000).await?;
    for id in engine.queue.missing(&due).await? {
        engine.queue.push(id).await?;
        engine
            .metrics
            .requeued
            .with_label_values(&["not_in_redis"])
            .inc();
        pushed += 1;
    }
    engine
        .metrics
        .queue_depth
        .set(store::queue_depth(&engine.pool).await?);
    Ok(pushed)
}
