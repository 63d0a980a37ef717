//! The queue consumer and what keeps it alive. apalis-redis stops a consumer
//! for good on the first failed heartbeat ("worker not registered" after a
//! FLUSHALL or a Redis restart, or after another consumer reaped it during a
//! stall); this supervisor registers a new one under a fresh name, with
//! backoff, and reports the queue down (`/readyz`, `queue_consumer_up`)
//! meanwhile. Operations run on tasks of their own, so a consumer's death
//! never cuts one short. When the consumer stays down for
//! `WORKER_QUEUE_GIVE_UP_SECS` the supervisor gives up, and the process
//! exits non-zero for its own supervisor to restart it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use saas_core::ops::OperationJob;
use saas_core::readiness::Component;
use tokio::sync::watch;

use crate::engine::Engine;
use crate::handlers::Handlers;

/// The first wait before registering again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Why the supervisor gave up.
#[derive(Debug, thiserror::Error)]
#[error(
    "the queue consumer could not run for {down:?} (WORKER_QUEUE_GIVE_UP_SECS); last error: {last}"
)]
pub struct GaveUp {
    pub down: Duration,
    pub last: String,
}

/// Runs queue consumers one after the other until `stop` is set; an error
/// when they stayed down too long.
pub async fn supervise<H: Handlers>(
    engine: Arc<Engine<H>>,
    redis: redis::Client,
    queue: Component,
    mut stop: watch::Receiver<bool>,
) -> Result<(), GaveUp> {
    let mut backoff = FIRST_BACKOFF;
    let mut down_since = Instant::now();
    for generation in 1u64.. {
        // A fresh name per registration: apalis refuses a name it still
        // believes alive (WorkerAlreadyExists), and the old one may be.
        let name = format!("{}-{generation}", engine.name);
        let beat = Arc::new(Mutex::new(None::<Instant>));
        let outcome = consume(&engine, &redis, &name, &queue, &beat, stop.clone()).await;
        if *stop.borrow() {
            return Ok(());
        }
        engine.metrics.queue_consumer_up.set(0);
        let reason = match outcome {
            Ok(()) => "it stopped by itself".to_owned(),
            Err(reason) => reason,
        };
        queue.set_down(format!("queue consumer down: {reason}"));
        if beat.lock().is_ok_and(|beat| beat.is_some()) {
            down_since = Instant::now();
            backoff = FIRST_BACKOFF;
        }
        let down = down_since.elapsed();
        if down >= engine.settings.queue_give_up {
            tracing::error!(error = %reason, "the queue consumer stayed down too long; exiting so the process is restarted");
            return Err(GaveUp { down, last: reason });
        }
        tracing::error!(consumer = %name, error = %reason, retry_in = ?backoff, "the queue consumer stopped; registering a new one");
        // Whatever Redis lost (a flush, a restart) is pushed again.
        engine.request_resync();
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|stop| *stop) => return Ok(()),
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    Ok(())
}

/// One consumer, until it stops, `stop` is set, or it has not beaten for
/// the lease tolerance (a consumer wedged on a Redis that does not answer).
async fn consume<H: Handlers>(
    engine: &Arc<Engine<H>>,
    redis: &redis::Client,
    name: &str,
    queue: &Component,
    beat: &Arc<Mutex<Option<Instant>>>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let on_event = {
        let beat = Arc::clone(beat);
        let queue = queue.clone();
        let up = engine.metrics.queue_consumer_up.clone();
        move |_: &WorkerContext, event: &Event| {
            // A heartbeat event follows a successful registration and every
            // successful keep-alive.
            if matches!(event, Event::HeartBeat) {
                if let Ok(mut beat) = beat.lock() {
                    *beat = Some(Instant::now());
                }
                queue.set_up();
                up.set(1);
            }
        }
    };
    let storage = engine
        .queue
        .storage(
            engine.settings.heartbeat_every,
            engine.settings.orphan_after,
        )
        .poll_with_stream(engine.queue.wake_signals(redis.clone()));
    let worker = WorkerBuilder::new(name)
        .backend(storage)
        .data(Arc::clone(engine))
        .concurrency(engine.settings.concurrency)
        .on_event(on_event)
        .build(handle_job::<H>);
    tracing::info!(consumer = %name, "queue consumer starting");
    let mut until_stopped = stop.clone();
    let run = worker.run_until(async move {
        let _ = until_stopped.wait_for(|stop| *stop).await;
        Ok::<(), std::io::Error>(())
    });
    let started = Instant::now();
    let tolerance = engine.settings.orphan_after;
    let wedged = async {
        loop {
            tokio::time::sleep(engine.settings.heartbeat_every).await;
            let last = beat.lock().ok().and_then(|beat| *beat).unwrap_or(started);
            if last.elapsed() > tolerance && !*stop.borrow_and_update() {
                return last.elapsed();
            }
        }
    };
    tokio::select! {
        ran = run => ran.map_err(|err| saas_core::error_chain::chain(&err)),
        silent = wedged => Err(format!("no heartbeat for {silent:?}")),
    }
}

async fn handle_job<H: Handlers>(
    job: OperationJob,
    engine: Data<Arc<Engine<H>>>,
) -> Result<(), BoxDynError> {
    // Errors are the engine's to log and the reconciler's to retry: apalis
    // must not push the job again on its own.
    engine.spawn_process(job.operation_id).await;
    Ok(())
}
