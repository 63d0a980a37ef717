//! The worker's background loops: liveness in Redis, maintenance, and the
//! reconciler. (Leases are renewed by [`crate::lease::renew_leases`].)

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use saas_core::ops::store;
use saas_core::ops::workers::{self, WorkerInfo};

use crate::engine::Engine;
use crate::handlers::Handlers;
use saas_core::error_chain::Chain;

/// Publishes this worker's liveness in Redis (what admin lists and
/// `workers_alive` counts) every heartbeat, until the task is aborted. The
/// entry lives as long as a lease, so a stall shorter than that does not
/// make the worker look dead.
pub async fn beat<H: Handlers>(engine: Arc<Engine<H>>, hostname: String) {
    let started_at = Utc::now();
    let mut conn = engine.queue.connection();
    let every = engine.settings.heartbeat_every;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let info = WorkerInfo {
            name: engine.name.clone(),
            hostname: hostname.clone(),
            pid: std::process::id(),
            started_at,
            heartbeat_at: Utc::now(),
            concurrency: engine.settings.concurrency,
            running: engine.running(),
        };
        let prefix = engine.queue.prefix();
        let beat = workers::beat(&mut conn, prefix, &info, engine.settings.orphan_after);
        match tokio::time::timeout(every, beat).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %Chain(&err), "heartbeat to Redis failed"),
            Err(_) => tracing::warn!("heartbeat to Redis: no answer within {every:?}"),
        }
        match tokio::time::timeout(every, workers::live(&mut conn, prefix)).await {
            Ok(Ok(live)) => engine
                .metrics
                .workers_alive
                .set(i64::try_from(live.len()).unwrap_or(i64::MAX)),
            Ok(Err(err)) => tracing::warn!(error = %Chain(&err), "listing live workers failed"),
            Err(_) => tracing::warn!("listing live workers: no answer within {every:?}"),
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
                match engine.queue.vacuum().await {
                    Ok(removed) => tracing::debug!(removed, "finished jobs removed from Redis"),
                    Err(err) => {
                        tracing::warn!(error = %Chain(&err), "removing finished jobs from Redis failed")
                    }
                }
                match engine.queue.reap_consumer_metadata().await {
                    Ok(0) => {}
                    Ok(reaped) => {
                        tracing::info!(reaped, "metadata of gone queue consumers removed")
                    }
                    Err(err) => {
                        tracing::warn!(error = %Chain(&err), "removing gone consumers' metadata failed")
                    }
                }
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %Chain(&err), "maintenance lock: Redis failed"),
        }
    }
}

/// Compares PostgreSQL (the truth) with Redis (the transport) every
/// `reconcile_interval`: operations whose lease expired go back to the
/// queue, and queued operations Redis does not hold are pushed again (all
/// due ones after the queue consumer had to be restarted, since Redis may
/// have lost its jobs and markers alike). Safe to run in every worker: a
/// duplicate push is ignored at claim time.
pub async fn reconcile<H: Handlers>(engine: Arc<Engine<H>>) {
    let mut tick = tokio::time::interval(engine.settings.reconcile_interval);
    loop {
        tick.tick().await;
        if let Err(err) = reconcile_once(&engine).await {
            tracing::warn!(error = %Chain(err.as_ref()), "reconciler pass failed");
        }
    }
}

/// One reconciler pass; returns how many operations it pushed.
pub async fn reconcile_once<H: Handlers>(engine: &Engine<H>) -> anyhow::Result<usize> {
    let recovered = store::recover_orphans(&engine.pool, engine.settings.orphan_after).await?;
    for id in &recovered.failed {
        tracing::error!(operation = %id, "operation's lease expired (its worker died or stalled) and no attempts remain: failed");
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
        tracing::warn!(operation = %id, "operation's lease expired (its worker died or stalled): queued again");
        engine.queue.push(*id).await?;
        engine
            .metrics
            .requeued
            .with_label_values(&["worker_died"])
            .inc();
        pushed += 1;
    }
    let resync = engine.take_resync();
    match push_unpushed(engine, resync).await {
        Ok(count) => pushed += count,
        Err(err) => {
            if resync {
                engine.request_resync();
            }
            return Err(err);
        }
    }
    engine
        .metrics
        .queue_depth
        .set(store::queue_depth(&engine.pool).await?);
    Ok(pushed)
}

/// Pushes the due operations Redis does not hold (all of them on `resync`).
async fn push_unpushed<H: Handlers>(engine: &Engine<H>, resync: bool) -> anyhow::Result<usize> {
    let due = store::due(&engine.pool, 1000).await?;
    let unpushed = if resync {
        due
    } else {
        engine.queue.missing(&due).await?
    };
    for id in &unpushed {
        engine.queue.push(*id).await?;
        engine
            .metrics
            .requeued
            .with_label_values(&["not_in_redis"])
            .inc();
    }
    Ok(unpushed.len())
}
