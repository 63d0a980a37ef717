//! No-op operations end to end on the local PostgreSQL and Redis: from the
//! row being inserted (by the same core function admin and portal call) to
//! the operation succeeding in an in-process worker. Reports throughput and
//! enqueue-to-start latency; writes `bench/RESULTS.md`.
//!
//! `cargo bench -p worker --bench ops_throughput` (OPS=5000 to change the count).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use saas_core::config::{Env, WorkerSettings};
use saas_core::ops::{self, Actor, Operation, OperationKind, OpsQueue};
use saas_core::{Config, Service};
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
    ]);
    let config = Config::from_env(Service::Worker, &env)?;
    saas_core::telemetry::init_tracing(&config);
    let settings = WorkerSettings::from_env(&env)?;
    let app = worker::build(&config, settings, |_| async { Ok(Noop) }).await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(app.serve(listener, async move {
        let _ = stop_rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let redis = redis::Client::open(saas_testkit::redis_url())?;
    let queue = Arc::new(OpsQueue::connect(&redis, &prefix).await?);
    let started = Instant::now();
    let producers = 8;
    let mut handles = Vec::new();
    for chunk in tenants.chunks(count.div_ceil(producers)) {
        let chunk = chunk.to_vec();
        let pool = pool.clone();
        let queue = Arc::clone(&queue);
        handles.push(tokio::spawn(async move {
            for tenant in chunk {
                ops::request_change(
                    &pool,
                    Some(&queue),
                    tenant,
                    OperationKind::HealthCheck,
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
    let enqueued_in = started.elapsed();
    loop {
        let done: i64 =
            sqlx::query_scalar("SELECT count(*) FROM operations WHERE state = 'succeeded'")
                .fetch_one(&pool)
                .await?;
        if usize::try_from(done)? >= count {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "only {done} of {count} finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();

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
        tokio::time::sleep(Duration::from_millis(20)).await;
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
    let _ = stop_tx.send(());
    let _ = served.await;

    let mut latencies: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM (started_at - created_at))::float8 * 1000 FROM operations
         WHERE kind = 'health_check' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await?;
    latencies.sort_by(f64::total_cmp);
    let span: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM (max(finished_at) - min(created_at)))::float8 FROM operations
         WHERE kind = 'health_check'",
    )
    .fetch_one(&pool)
    .await?;
    let throughput = count as f64 / span;
    let body = format!(
        "## Operations engine (issue 3)\n\n\
         No-op operations end to end, row inserted by `ops::request_change` (transaction with audit entry, \
         then push to apalis-redis) to `succeeded` in one worker process (`WORKER_CONCURRENCY={concurrency}`), \
         {producers} concurrent producers, local PostgreSQL 15 and Redis 7 on this 2-core machine.\n\n\
         | measure | value |\n|---|---|\n\
         | operations | {count} |\n\
         | throughput (first insert to last success) | {throughput:.0} ops/s |\n\
         | enqueue rate | {:.0} ops/s |\n\
         | enqueue-to-start latency under that burst, p50 | {:.1} ms |\n\
         | enqueue-to-start latency under that burst, p99 | {:.1} ms |\n\
         | enqueue-to-start latency, idle queue ({samples} one at a time), p50 | {:.1} ms |\n\
         | enqueue-to-start latency, idle queue, p99 | {:.1} ms |\n\
         | steady load: {} operations offered at {paced_rate:.0}/s, completed at | {paced_done:.0} ops/s |\n\
         | enqueue-to-start latency at that steady load, p50 | {:.1} ms |\n\
         | enqueue-to-start latency at that steady load, p99 | {:.1} ms |\n\
         | wall time | {:.2} s |\n\n\
         Target: at least 1,000 ops/s and p50 under 10 ms (the replaced RQ stack: about 100 no-op jobs/s).\n\
         Run: `cargo bench -p worker --bench ops_throughput` (measured {}).\n",
        count as f64 / enqueued_in.as_secs_f64(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        percentile(&idle_latencies, 50.0),
        percentile(&idle_latencies, 99.0),
        paced_latencies.len(),
        percentile(&paced_latencies, 50.0),
        percentile(&paced_latencies, 99.0),
        elapsed.as_secs_f64(),
        chrono::Utc::now().format("%Y-%m-%d"),
    );
    let path = saas_testkit::write_bench_section("ops-engine", &body)?;
    println!("{body}\nwritten to {}", path.display());
    saas_testkit::clear_redis_prefix(&prefix).await?;
    Ok(())
}
