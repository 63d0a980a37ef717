//! No-op operations end to end on the local PostgreSQL and Redis: from the
//! row being inserted (by the same core function admin and portal call) to
//! the operation succeeding in an in-process worker. Reports throughput and
//! enqueue-to-start latency, on an idle machine and with one busy loop per
//! core beside it; in the same run, RQ 3's SimpleWorker (the replaced stack's
//! queue, `bench/rq/`) on the same Redis with the same shape of work. Writes
//! `bench/RESULTS.md`.
//!
//! `cargo bench -p worker --bench ops_throughput` (OPS=5000 to change the count;
//! needs python3 with venv, pip installs RQ under target/bench-rq).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use saas_core::config::{Env, WorkerSettings};
use saas_core::ops::{self, Actor, Operation, OperationKind, OpsQueue};
use saas_core::{Config, Service};
use saas_testkit::bench::{CpuLoad, rq_bench};
use saas_testkit::{TestDb, free_port, redis_prefix};
use worker::handlers::{HandlerError, Handlers};
use worker::lease::Lease;

struct Noop;

impl Handlers for Noop {
    fn run(&self, _: Operation, _: Lease) -> BoxFuture<'static, Result<(), HandlerError>> {
        Box::pin(async { Ok(()) })
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// What one burst of `tenants.len()` no-op operations measured.
struct Burst {
    throughput: f64,
    enqueue_rate: f64,
    p50: f64,
    p99: f64,
}

/// Requests one `kind` operation per tenant from `producers` concurrent
/// producers; the ids, in no particular order.
async fn enqueue_all(
    pool: &sqlx::PgPool,
    queue: Option<&Arc<OpsQueue>>,
    tenants: &[uuid::Uuid],
    kind: OperationKind,
    producers: usize,
) -> anyhow::Result<Vec<uuid::Uuid>> {
    let mut handles = Vec::new();
    for chunk in tenants.chunks(tenants.len().div_ceil(producers)) {
        let chunk = chunk.to_vec();
        let pool = pool.clone();
        let queue = queue.cloned();
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(chunk.len());
            for tenant in chunk {
                let requested = ops::request_change(
                    &pool,
                    queue.as_deref(),
                    tenant,
                    kind,
                    serde_json::json!({}),
                    &Actor::system("bench"),
                )
                .await?;
                ids.push(requested.operation.id);
            }
            anyhow::Ok(ids)
        }));
    }
    let mut ids = Vec::with_capacity(tenants.len());
    for handle in handles {
        ids.extend(handle.await??);
    }
    Ok(ids)
}

/// Waits until every operation of `ids` succeeded.
async fn wait_succeeded(pool: &sqlx::PgPool, ids: &[uuid::Uuid]) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM operations WHERE id = ANY($1) AND state = 'succeeded'",
        )
        .bind(ids)
        .fetch_one(pool)
        .await?;
        if usize::try_from(done)? >= ids.len() {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "only {done} of {} finished",
            ids.len()
        );
        // The poll reads every id: often enough for the end to be noticed,
        // rarely enough not to load the PostgreSQL under test (the figures
        // come from the rows' own timestamps, not from this loop).
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Requests one `kind` operation per tenant from `producers` concurrent
/// producers, waits until all succeeded, and reads throughput (first insert
/// to last success) and enqueue-to-start latency from the rows.
async fn burst(
    pool: &sqlx::PgPool,
    queue: &Arc<OpsQueue>,
    tenants: &[uuid::Uuid],
    kind: OperationKind,
    producers: usize,
) -> anyhow::Result<Burst> {
    let started = Instant::now();
    let ids = enqueue_all(pool, Some(queue), tenants, kind, producers).await?;
    let enqueued_in = started.elapsed();
    wait_succeeded(pool, &ids).await?;
    let mut latencies: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM (started_at - created_at))::float8 * 1000 FROM operations
         WHERE id = ANY($1) ORDER BY 1",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    latencies.sort_by(f64::total_cmp);
    let span: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM (max(finished_at) - min(created_at)))::float8 FROM operations
         WHERE id = ANY($1)",
    )
    .bind(&ids)
    .fetch_one(pool)
    .await?;
    Ok(Burst {
        throughput: ids.len() as f64 / span,
        enqueue_rate: ids.len() as f64 / enqueued_in.as_secs_f64(),
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
    })
}

/// Stores one `kind` operation per tenant without pushing any, then pushes
/// them all (`producers` pushers) to the running worker, and returns its
/// drain rate: operations over first start to last success (the queue
/// engine alone, without the producers' transactions).
async fn drain(
    pool: &sqlx::PgPool,
    queue: &Arc<OpsQueue>,
    tenants: &[uuid::Uuid],
    kind: OperationKind,
    producers: usize,
) -> anyhow::Result<f64> {
    let ids = enqueue_all(pool, None, tenants, kind, producers).await?;
    let mut pushers = Vec::new();
    for chunk in ids.chunks(ids.len().div_ceil(producers)) {
        let chunk = chunk.to_vec();
        let queue = Arc::clone(queue);
        pushers.push(tokio::spawn(async move {
            for id in chunk {
                queue.push(id).await?;
            }
            anyhow::Ok(())
        }));
    }
    for pusher in pushers {
        pusher.await??;
    }
    wait_succeeded(pool, &ids).await?;
    let span: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM (max(finished_at) - min(started_at)))::float8 FROM operations
         WHERE id = ANY($1)",
    )
    .bind(&ids)
    .fetch_one(pool)
    .await?;
    Ok(ids.len() as f64 / span)
}

/// CPU seconds used so far by the PostgreSQL backends serving this bench's
/// database, by this process (producers and worker), and by Redis (the
/// whole server: other clients count too), read from /proc and INFO.
#[derive(Clone, Copy)]
struct CpuUse {
    postgres: f64,
    process: f64,
    redis: f64,
}

fn proc_cpu_seconds(pid: &str) -> f64 {
    // Fields 14 and 15 of /proc/<pid>/stat (after the parenthesised name):
    // user and system time in clock ticks (USER_HZ, 100 on Linux).
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let user: f64 = fields.get(11)?.parse().ok()?;
            let system: f64 = fields.get(12)?.parse().ok()?;
            Some((user + system) / 100.0)
        })
        .unwrap_or(0.0)
}

async fn cpu_use(pool: &sqlx::PgPool, queue: &OpsQueue) -> anyhow::Result<CpuUse> {
    let pids: Vec<i32> =
        sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            .fetch_all(pool)
            .await?;
    let postgres = pids
        .iter()
        .map(|pid| proc_cpu_seconds(&pid.to_string()))
        .sum();
    if std::env::var("BENCH_QUICK").is_ok_and(|quick| quick == "1") {
        let by_name: Vec<(String, i32)> = sqlx::query_as(
            "SELECT application_name, pid FROM pg_stat_activity WHERE datname = current_database()",
        )
        .fetch_all(pool)
        .await?;
        let mut split = std::collections::BTreeMap::<String, f64>::new();
        for (name, pid) in by_name {
            *split.entry(name).or_default() += proc_cpu_seconds(&pid.to_string());
        }
        eprintln!("  PostgreSQL CPU so far by application: {split:?}");
    }
    let mut conn = queue.connection();
    let info: String = redis::cmd("INFO").arg("cpu").query_async(&mut conn).await?;
    let redis = info
        .lines()
        .filter(|line| line.starts_with("used_cpu_sys:") || line.starts_with("used_cpu_user:"))
        .filter_map(|line| line.split_once(':')?.1.trim().parse::<f64>().ok())
        .sum();
    Ok(CpuUse {
        postgres,
        process: proc_cpu_seconds("self"),
        redis,
    })
}

impl CpuUse {
    /// Microseconds of CPU per operation between `before` and `self`.
    fn per_op(self, before: CpuUse, ops: usize) -> String {
        let us = |now: f64, then: f64| (now - then) * 1e6 / ops as f64;
        format!(
            "PostgreSQL {:.0} µs, this process {:.0} µs, Redis {:.0} µs",
            us(self.postgres, before.postgres),
            us(self.process, before.process),
            us(self.redis, before.redis)
        )
    }
}

/// An in-process worker serving until stopped.
struct RunningWorker {
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningWorker {
    async fn start(config: Config, settings: WorkerSettings, port: u16) -> anyhow::Result<Self> {
        let app = worker::build(&config, settings, |_| async { Ok(Noop) }).await?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(app.serve(listener, async move {
            let _ = stop_rx.await;
        }));
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(Self { stop, served })
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.served.await;
    }
}

/// RQ's report as the same measures.
fn rq_burst(report: &serde_json::Value) -> anyhow::Result<Burst> {
    let field = |name: &str| {
        report[name]
            .as_f64()
            .ok_or_else(|| anyhow::anyhow!("rq_bench.py reported no {name}"))
    };
    Ok(Burst {
        throughput: field("throughput")?,
        enqueue_rate: field("enqueue_rate")?,
        p50: field("burst_p50")?,
        p99: field("burst_p99")?,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: usize = std::env::var("OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let concurrency: usize = std::env::var("BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let db = TestDb::new("bench_ops").await?;
    let pool = db.pool().await?;
    saas_core::db::MIGRATOR.run(&pool).await?;
    sqlx::raw_sql(
        "INSERT INTO customers (id, email, company_name, password_hash)
             VALUES ('00000000-0000-0000-0000-000000000001', 'c@example.com', 'Acme', 'x');
         INSERT INTO plans (id, code, name, max_users, max_storage_mb, max_backups, template)
             VALUES ('00000000-0000-0000-0000-000000000002', 'starter', 'Starter', 3, 1024, 7, 'starter');",
    )
    .execute(&pool)
    .await?;
    sqlx::query(
        "INSERT INTO tenants (id, subdomain, customer_id, plan_id, state, db_name)
         SELECT gen_random_uuid(), 'bench-' || n, '00000000-0000-0000-0000-000000000001',
                '00000000-0000-0000-0000-000000000002', 'active', 't_bench_' || n
         FROM generate_series(1, $1) AS n",
    )
    .bind(i32::try_from(count)?)
    .execute(&pool)
    .await?;
    let tenants: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM tenants ORDER BY subdomain")
        .fetch_all(&pool)
        .await?;

    let prefix = redis_prefix();
    let port = free_port()?;
    let env = Env::from_pairs([
        ("DATABASE_URL", db.url.as_str()),
        ("REDIS_URL", saas_testkit::redis_url().as_str()),
        ("SECRET_KEY", "bench-secret-key-0123456789abcdef-0123"),
        ("BIND_ADDR", "127.0.0.1"),
        ("WORKER_PORT", port.to_string().as_str()),
        ("REDIS_KEY_PREFIX", prefix.as_str()),
        ("WORKER_CONCURRENCY", concurrency.to_string().as_str()),
        ("DB_MAX_CONNECTIONS", "40"),
        ("LOG_LEVEL", "warn"),
        // Nothing is lost here: the reconciler would only push the drain's
        // stored operations before the bench does.
        ("RECONCILE_INTERVAL_MS", "600000"),
    ]);
    let config = Config::from_env(Service::Worker, &env)?;
    saas_core::telemetry::init_tracing(&config);
    let settings = WorkerSettings::from_env(&env)?;
    let running = RunningWorker::start(config.clone(), settings.clone(), port).await?;
    let redis = redis::Client::open(saas_testkit::redis_url())?;
    let queue = Arc::new(OpsQueue::connect(&redis, &prefix).await?);
    let producers: usize = std::env::var("BENCH_PRODUCERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let cpu_before = cpu_use(&pool, &queue).await?;
    let started = Instant::now();
    let idle = burst(
        &pool,
        &queue,
        &tenants,
        OperationKind::HealthCheck,
        producers,
    )
    .await?;
    let elapsed = started.elapsed();
    eprintln!("ours, idle: {:.0} ops/s", idle.throughput);
    let cpu_after = cpu_use(&pool, &queue).await?;
    let idle_cpu = cpu_after.per_op(cpu_before, tenants.len());
    eprintln!("ours, idle, CPU per operation: {idle_cpu}");
    // BENCH_QUICK=1: only the idle burst and drain, printed, nothing written
    // (for profiling a change; the figures of record come from a full run).
    if std::env::var("BENCH_QUICK").is_ok_and(|quick| quick == "1") {
        let drained = drain(
            &pool,
            &queue,
            &tenants,
            OperationKind::CollectUsage,
            producers,
        )
        .await?;
        eprintln!("ours, drain idle: {drained:.0} ops/s");
        let drained_cpu = cpu_use(&pool, &queue)
            .await?
            .per_op(cpu_after, tenants.len());
        eprintln!("ours, drain idle (requests included), CPU per operation: {drained_cpu}");
        running.stop().await;
        saas_testkit::clear_redis_prefix(&prefix).await?;
        return Ok(());
    }

    // Pickup latency with an idle queue: one operation at a time, 10 ms apart.
    let samples: usize = 200;
    let mut idle_latencies = Vec::with_capacity(samples);
    for tenant in tenants.iter().take(samples) {
        let requested = ops::request_change(
            &pool,
            Some(&queue),
            *tenant,
            OperationKind::CollectUsage,
            serde_json::json!({}),
            &Actor::system("bench"),
        )
        .await?;
        let id = requested.operation.id;
        let waited = Instant::now();
        loop {
            let op = ops::store::get(&pool, id).await?;
            if let Some(Operation {
                started_at: Some(started_at),
                created_at,
                ..
            }) = op
            {
                idle_latencies.push(
                    (started_at - created_at).num_microseconds().unwrap_or(0) as f64 / 1000.0,
                );
                break;
            }
            anyhow::ensure!(
                waited.elapsed() < Duration::from_secs(30),
                "operation never started"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    idle_latencies.sort_by(f64::total_cmp);

    // Latency at a steady offered load of 1,000 operations/s (the target
    // throughput), paced by 8 producers for 3 s on tenants not used above.
    let paced_rate = 1000.0_f64;
    let paced_tenants: Vec<uuid::Uuid> = tenants.iter().skip(samples).take(3000).copied().collect();
    let paced_started = Instant::now();
    let mut handles = Vec::new();
    for (producer, chunk) in paced_tenants
        .chunks(paced_tenants.len().div_ceil(producers))
        .enumerate()
    {
        let chunk = chunk.to_vec();
        let pool = pool.clone();
        let queue = Arc::clone(&queue);
        handles.push(tokio::spawn(async move {
            for (n, tenant) in chunk.into_iter().enumerate() {
                // Producer p sends its n-th request at (n * producers + p) / rate.
                let due = Duration::from_secs_f64((n * producers + producer) as f64 / paced_rate);
                tokio::time::sleep_until(tokio::time::Instant::from_std(paced_started + due)).await;
                ops::request_change(
                    &pool,
                    Some(&queue),
                    tenant,
                    OperationKind::Backup,
                    serde_json::json!({}),
                    &Actor::system("bench"),
                )
                .await?;
            }
            anyhow::Ok(())
        }));
    }
    for handle in handles {
        handle.await??;
    }
    loop {
        let pending: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM operations WHERE kind = 'backup' AND state <> 'succeeded'",
        )
        .fetch_one(&pool)
        .await?;
        if pending == 0 {
            break;
        }
        anyhow::ensure!(
            paced_started.elapsed() < Duration::from_secs(120),
            "{pending} paced operations unfinished"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut paced_latencies: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM (started_at - created_at))::float8 * 1000 FROM operations
         WHERE kind = 'backup' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await?;
    paced_latencies.sort_by(f64::total_cmp);
    let paced_span: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM (max(finished_at) - min(created_at)))::float8 FROM operations WHERE kind = 'backup'",
    )
    .fetch_one(&pool)
    .await?;
    let paced_done = paced_latencies.len() as f64 / paced_span;

    // The same burst with every core busy beside it, then RQ idle and loaded
    // on the same Redis (its own logical database, `rq:*` keys cleared
    // before and after).
    let load = CpuLoad::start()?;
    let loaded = burst(
        &pool,
        &queue,
        &tenants,
        OperationKind::CollectUsage,
        producers,
    )
    .await?;
    eprintln!("ours, loaded: {:.0} ops/s", loaded.throughput);
    let rq_url = format!("{}/13", saas_testkit::redis_url().trim_end_matches('/'));
    let rq_loaded_report = tokio::task::block_in_place(|| rq_bench(&rq_url, count, producers))?;
    let rq_loaded = rq_burst(&rq_loaded_report)?;
    eprintln!("RQ, loaded: {:.0} jobs/s", rq_loaded.throughput);
    let busy = load.processes();
    drop(load);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rq_idle_report = tokio::task::block_in_place(|| rq_bench(&rq_url, count, producers))?;
    let rq_idle = rq_burst(&rq_idle_report)?;
    eprintln!("RQ, idle: {:.0} jobs/s", rq_idle.throughput);
    // The queue engine alone: operations stored first, then pushed to the
    // running worker at once.
    let drained = drain(
        &pool,
        &queue,
        &tenants,
        OperationKind::HealthCheck,
        producers,
    )
    .await?;
    eprintln!("ours, drain idle: {drained:.0} ops/s");
    let load = CpuLoad::start()?;
    let drained_loaded = drain(
        &pool,
        &queue,
        &tenants,
        OperationKind::CollectUsage,
        producers,
    )
    .await?;
    drop(load);
    eprintln!("ours, drain loaded: {drained_loaded:.0} ops/s");
    running.stop().await;
    let rq_field =
        |report: &serde_json::Value, name: &str| report[name].as_f64().unwrap_or(f64::NAN);
    let rq_drained = rq_field(&rq_idle_report, "drain");
    let rq_drained_loaded = rq_field(&rq_loaded_report, "drain");
    let ratio_drain = drained / rq_drained;
    let ratio_drain_loaded = drained_loaded / rq_drained_loaded;

    let rq_idle_p50 = rq_idle_report["idle_p50"].as_f64().unwrap_or(f64::NAN);
    let rq_idle_p99 = rq_idle_report["idle_p99"].as_f64().unwrap_or(f64::NAN);
    let ratio_idle = idle.throughput / rq_idle.throughput;
    let ratio_loaded = loaded.throughput / rq_loaded.throughput;
    let verdict = |ratio: f64, target: f64| {
        if ratio >= target {
            format!("{ratio:.1}× (target ≥ {target:.0}×: met)")
        } else {
            format!("{ratio:.1}× (target ≥ {target:.0}×: **not met**)")
        }
    };
    let body = format!(
        "## Operations engine\n\n\
         No-op operations end to end, row inserted by `ops::request_change` (transaction with audit entry, \
         then push to apalis-redis) to `succeeded` in one worker process (`WORKER_CONCURRENCY={concurrency}`, \
         each attempt claiming its lease and recording its result fenced by it), \
         {producers} concurrent producers, local PostgreSQL 15 and Redis 7 on this 2-core machine.\n\n\
         | measure | value |\n|---|---|\n\
         | operations | {count} |\n\
         | throughput (first insert to last success) | {:.0} ops/s |\n\
         | enqueue rate | {:.0} ops/s |\n\
         | enqueue-to-start latency under that burst, p50 | {:.1} ms |\n\
         | enqueue-to-start latency under that burst, p99 | {:.1} ms |\n\
         | enqueue-to-start latency, idle queue ({samples} one at a time), p50 | {:.1} ms |\n\
         | enqueue-to-start latency, idle queue, p99 | {:.1} ms |\n\
         | steady load: {} operations offered at {paced_rate:.0}/s, completed at | {paced_done:.0} ops/s |\n\
         | enqueue-to-start latency at that steady load, p50 | {:.1} ms |\n\
         | enqueue-to-start latency at that steady load, p99 | {:.1} ms |\n\
         | wall time of the first burst | {:.2} s |\n\
         | CPU per operation in that burst | {idle_cpu} |\n\n\
         ### Next to RQ 3\n\n\
         In the same run, RQ 3.0.0 (`bench/rq/rq_bench.py`): one `SimpleWorker` process (no fork per job, \
         logging at WARNING), {producers} producer threads enqueueing {count} no-op jobs on the same Redis \
         (its own logical database); throughput from the jobs' own `enqueued_at`/`ended_at`. RQ keeps \
         nothing in PostgreSQL, so it does less per job than this engine. \
         \"Loaded\": {busy} busy-loop processes (one per core) running beside both.\n\n\
         | measure | this engine | RQ 3 SimpleWorker | ratio |\n|---|---|---|---|\n\
         | idle: throughput | {:.0} ops/s | {:.0} jobs/s | {} |\n\
         | idle: enqueue-to-start p50 / p99 in the burst | {:.1} / {:.1} ms | {:.1} / {:.1} ms | |\n\
         | idle: enqueue-to-start p50 / p99, one at a time | {:.1} / {:.1} ms | {rq_idle_p50:.1} / {rq_idle_p99:.1} ms | |\n\
         | loaded: throughput | {:.0} ops/s | {:.0} jobs/s | {} |\n\
         | loaded: enqueue-to-start p50 / p99 in the burst | {:.1} / {:.1} ms | {:.1} / {:.1} ms | |\n\
         | idle: drain of a filled queue | {drained:.0} ops/s | {rq_drained:.0} jobs/s | {} |\n\
         | loaded: drain of a filled queue | {drained_loaded:.0} ops/s | {rq_drained_loaded:.0} jobs/s | {} |\n\n\
         \"Throughput\" is the whole system: producers requesting through `ops::request_change` (a \
         transaction with the tenant check and the audit entry, then the push) while the worker runs, \
         so it is bounded by whichever side is slower; RQ's producers only talk to Redis, so its \
         throughput is its worker's. \"Drain\" is the queue engine alone: {count} operations stored \
         (the same request transactions, no push), then pushed to the running worker at once (RQ: \
         enqueued while no worker runs, then a SimpleWorker started); operations over the first start \
         to the last success.\n\n\
         Run: `cargo bench -p worker --bench ops_throughput` (measured {}).\n",
        idle.throughput,
        idle.enqueue_rate,
        idle.p50,
        idle.p99,
        percentile(&idle_latencies, 50.0),
        percentile(&idle_latencies, 99.0),
        paced_latencies.len(),
        percentile(&paced_latencies, 50.0),
        percentile(&paced_latencies, 99.0),
        elapsed.as_secs_f64(),
        idle.throughput,
        rq_idle.throughput,
        verdict(ratio_idle, 10.0),
        idle.p50,
        idle.p99,
        rq_idle.p50,
        rq_idle.p99,
        percentile(&idle_latencies, 50.0),
        percentile(&idle_latencies, 99.0),
        loaded.throughput,
        rq_loaded.throughput,
        verdict(ratio_loaded, 5.0),
        loaded.p50,
        loaded.p99,
        rq_loaded.p50,
        rq_loaded.p99,
        verdict(ratio_drain, 10.0),
        verdict(ratio_drain_loaded, 5.0),
        chrono::Utc::now().format("%Y-%m-%d"),
    );
    let path = saas_testkit::write_bench_section("ops-engine", &body)?;
    println!("{body}\nwritten to {}", path.display());
    saas_testkit::clear_redis_prefix(&prefix).await?;
    Ok(())
}
