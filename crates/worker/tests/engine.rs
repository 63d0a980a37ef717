//! The operations engine in real worker processes against the real
//! PostgreSQL and Redis: crashes, Redis losing everything, concurrency per
//! tenant, restarts, graceful shutdown, retries.
//!
//! Each worker process is this test binary re-executed with
//! `ENGINE_TEST_CHILD=1`, running the real worker library with test handlers
//! that sleep, fail on demand and record what they did in the test database.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use saas_core::ops::{self, Actor, Operation, OperationKind, OpsQueue};
use saas_testkit::contract::Binary;
use saas_testkit::{RedisPrefix, ServiceProcess, TestDb, free_port};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;
use worker::handlers::{HandlerError, Handlers};
use worker::lease::Lease;

/// Handlers that do what their arguments say and record it.
struct TestHandlers {
    pool: PgPool,
}

impl Handlers for TestHandlers {
    fn run(
        &self,
        operation: Operation,
        _lease: Lease,
    ) -> BoxFuture<'static, Result<(), HandlerError>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let run_id: i64 = sqlx::query_scalar(
                "INSERT INTO test_runs (operation_id, tenant_id, attempt) VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(operation.id)
            .bind(operation.tenant_id)
            .bind(operation.attempts)
            .fetch_one(&pool)
            .await?;
            let first_only = operation.args["sleep_first_ms"]
                .as_u64()
                .filter(|_| operation.attempts == 1);
            let sleep_ms = first_only.unwrap_or(operation.args["sleep_ms"].as_u64().unwrap_or(0));
            tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
            let fail_times = operation.args["fail_times"].as_i64().unwrap_or(0);
            sqlx::query("UPDATE test_runs SET finished_at = clock_timestamp() WHERE id = $1")
                .bind(run_id)
                .execute(&pool)
                .await?;
            if i64::from(operation.attempts) <= fail_times {
                return Err(HandlerError::transient(format!(
                    "injected failure #{}",
                    operation.attempts
                )));
            }
            // The effect: idempotent, so a repeated attempt cannot apply it twice.
            sqlx::query(
                "INSERT INTO test_effects (operation_id) VALUES ($1) ON CONFLICT DO NOTHING",
            )
            .bind(operation.id)
            .execute(&pool)
            .await?;
            Ok(())
        })
    }
}

/// The worker process body, run when this binary is re-executed as a child.
#[test]
#[ignore = "entry point of the worker child processes, not a test by itself"]
fn child_worker_entry() {
    if std::env::var_os("ENGINE_TEST_CHILD").is_none() {
        return;
    }
    let config = match saas_core::run::config(saas_core::Service::Worker) {
        Ok(config) => config,
        Err(_) => std::process::exit(2),
    };
    let env = saas_core::Env::from_process();
    let Ok(settings) = saas_core::config::WorkerSettings::from_env(&env) else {
        std::process::exit(2);
    };
    let code = saas_core::run::block_on(&config, async {
        let app = worker::build(&config, settings, |pool| async move {
            Ok(TestHandlers { pool })
        })
        .await?;
        let listener = saas_core::service::bind(&config).await?;
        app.serve(listener, saas_core::service::shutdown_signal())
            .await
            .map_err(|err| saas_core::StartupError::Internal(err.to_string()))
    });
    std::process::exit(if code == std::process::ExitCode::SUCCESS {
        0
    } else {
        1
    });
}

/// One test's world: its database, its Redis prefix, its tenants.
struct World {
    db: TestDb,
    pool: PgPool,
    prefix: RedisPrefix,
    queue: OpsQueue,
}

impl World {
    async fn new(name: &str) -> anyhow::Result<Self> {
        let db = TestDb::new(name).await?;
        let pool = db.pool().await?;
        saas_core::db::MIGRATOR.run(&pool).await?;
        sqlx::raw_sql(
            "CREATE TABLE test_runs (id bigserial PRIMARY KEY, operation_id uuid NOT NULL, tenant_id uuid NOT NULL,
                 attempt int NOT NULL, started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
                 finished_at timestamptz);
             CREATE TABLE test_effects (operation_id uuid PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO customers (id, email, company_name, password_hash)
                 VALUES ('00000000-0000-0000-0000-000000000001', 'c@example.com', 'Acme', 'x');
             INSERT INTO plans (id, code, name, max_users, max_storage_mb, max_backups, template)
                 VALUES ('00000000-0000-0000-0000-000000000002', 'starter', 'Starter', 3, 1024, 7, 'starter');",
        )
        .execute(&pool)
        .await?;
        let prefix = RedisPrefix::new();
        let redis = redis::Client::open(saas_testkit::redis_url())?;
        let queue = OpsQueue::connect(&redis, &prefix).await?;
        Ok(Self {
            db,
            pool,
            prefix,
            queue,
        })
    }

    async fn tenant(&self, subdomain: &str) -> anyhow::Result<Uuid> {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO tenants (id, subdomain, customer_id, plan_id, state, db_name)
             VALUES ($1, $2, '00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000002',
                     'active', $3)",
        )
        .bind(id)
        .bind(subdomain)
        .bind(format!("t_{}", subdomain.replace('-', "_")))
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    async fn request(
        &self,
        tenant: Uuid,
        kind: OperationKind,
        args: Value,
    ) -> anyhow::Result<Uuid> {
        let requested = ops::request_change(
            &self.pool,
            Some(&self.queue),
            tenant,
            kind,
            args,
            &Actor::system("test"),
        )
        .await?;
        Ok(requested.operation.id)
    }

    fn env(&self, extra: &[(&str, &str)]) -> anyhow::Result<HashMap<String, String>> {
        let binary = Binary::new("", "WORKER_PORT");
        let mut env = binary.env(&self.db, free_port()?);
        for (key, value) in [
            ("ENGINE_TEST_CHILD", "1"),
            ("REDIS_KEY_PREFIX", &*self.prefix),
            ("WORKER_CONCURRENCY", "4"),
            ("RECONCILE_INTERVAL_MS", "200"),
            ("ORPHAN_AFTER_SECS", "3"),
            ("WORKER_HEARTBEAT_SECS", "1"),
            ("WORKER_RETRY_BASE_MS", "100"),
        ]
        .into_iter()
        .chain(extra.iter().copied())
        {
            env.insert(key.to_owned(), value.to_owned());
        }
        Ok(env)
    }

    /// Starts a worker child process and waits until it serves `/healthz`.
    async fn worker(&self, extra: &[(&str, &str)]) -> anyhow::Result<ServiceProcess> {
        let exe = std::env::current_exe()?;
        let env = self.env(extra)?;
        let port = env.get("WORKER_PORT").context("no port")?.clone();
        let mut process = ServiceProcess::spawn(
            &exe,
            &["child_worker_entry", "--exact", "--ignored", "--nocapture"],
            &env,
        )?;
        let url = format!("http://127.0.0.1:{port}/healthz");
        for _ in 0..200 {
            if reqwest::get(&url).await.is_ok() {
                return Ok(process);
            }
            if let Ok(status) = process.wait(Duration::from_millis(50)).await {
                anyhow::bail!("worker exited with {status}:\n{}", process.log());
            }
        }
        anyhow::bail!("worker never served /healthz:\n{}", process.log())
    }

    async fn operation(&self, id: Uuid) -> anyhow::Result<Operation> {
        ops::store::get(&self.pool, id)
            .await?
            .context("operation vanished")
    }

    /// Waits until every operation in `ids` is in a final state.
    async fn settle(&self, ids: &[Uuid], timeout: Duration) -> anyhow::Result<Vec<Operation>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut all = Vec::new();
            for id in ids {
                all.push(self.operation(*id).await?);
            }
            if all.iter().all(|op| op.state.is_final()) {
                return Ok(all);
            }
            if tokio::time::Instant::now() >= deadline {
                let pending: Vec<_> = all
                    .iter()
                    .filter(|op| !op.state.is_final())
                    .map(|op| (op.id, op.state))
                    .collect();
                anyhow::bail!(
                    "{} operations not finished within {timeout:?}: {pending:?}",
                    pending.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_running(&self, id: Uuid) -> anyhow::Result<()> {
        for _ in 0..200 {
            if self.operation(id).await?.state == ops::OperationState::Running {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        anyhow::bail!("operation {id} never started")
    }

    async fn effects(&self, id: Uuid) -> anyhow::Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM test_effects WHERE operation_id = $1")
                .bind(id)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

#[tokio::test]
async fn sigkill_mid_operation_then_a_new_worker_completes_it_once() -> anyhow::Result<()> {
    let world = World::new("kill").await?;
    let tenant = world.tenant("acme").await?;
    let op = world
        .request(tenant, OperationKind::Backup, json!({ "sleep_ms": 1500 }))
        .await?;
    let first = world.worker(&[]).await?;
    world.wait_running(op).await?;
    first.signal("KILL")?;
    drop(first);
    let _second = world.worker(&[]).await?;
    let done = world.settle(&[op], Duration::from_secs(30)).await?;
    ensure!(
        done[0].state == ops::OperationState::Succeeded,
        "{:?}",
        done[0]
    );
    ensure!(
        done[0].attempts == 2,
        "attempts {} should count the interruption",
        done[0].attempts
    );
    ensure!(
        done[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("stopped while running")),
        "{:?}",
        done[0].last_error
    );
    ensure!(
        world.effects(op).await? == 1,
        "the effect did not happen exactly once"
    );
    Ok(())
}

#[tokio::test]
async fn redis_losing_every_key_loses_no_operation() -> anyhow::Result<()> {
    let world = World::new("flush").await?;
    let mut ids = Vec::new();
    for n in 0..50 {
        let tenant = world.tenant(&format!("shop-{n:02}")).await?;
        ids.push(
            world
                .request(tenant, OperationKind::Backup, json!({}))
                .await?,
        );
    }
    // What FLUSHALL does to this deployment: every key under its prefix goes.
    saas_testkit::clear_redis_prefix(&world.prefix).await?;
    let _worker = world.worker(&[]).await?;
    let done = world.settle(&ids, Duration::from_secs(60)).await?;
    for op in &done {
        ensure!(op.state == ops::OperationState::Succeeded, "{op:?}");
        ensure!(world.effects(op.id).await? == 1);
    }
    Ok(())
}

#[tokio::test]
async fn two_workers_never_run_two_operations_of_one_tenant_at_once() -> anyhow::Result<()> {
    let world = World::new("serial").await?;
    let tenant = world.tenant("acme").await?;
    let other = world.tenant("other").await?;
    let _a = world.worker(&[]).await?;
    let _b = world.worker(&[]).await?;
    let kinds = [
        OperationKind::Backup,
        OperationKind::CollectUsage,
        OperationKind::HealthCheck,
        OperationKind::PruneBackups,
        OperationKind::ChangePlan,
    ];
    let mut ids = Vec::new();
    for kind in kinds {
        ids.push(
            world
                .request(tenant, kind, json!({ "sleep_ms": 300 }))
                .await?,
        );
        ids.push(
            world
                .request(other, kind, json!({ "sleep_ms": 300 }))
                .await?,
        );
    }
    world.settle(&ids, Duration::from_secs(60)).await?;
    let runs: Vec<(Uuid, DateTime<Utc>, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT tenant_id, started_at, finished_at FROM test_runs ORDER BY started_at",
    )
    .fetch_all(&world.pool)
    .await?;
    ensure!(runs.len() == 10, "{} runs", runs.len());
    for tenant_id in [tenant, other] {
        let mine: Vec<_> = runs.iter().filter(|run| run.0 == tenant_id).collect();
        for pair in mine.windows(2) {
            let finished = pair[0].2.context("a run never finished")?;
            ensure!(
                finished <= pair[1].1,
                "two operations of one tenant overlapped: {pair:?}"
            );
        }
    }
    // The two tenants did run side by side: the workers were not serialised.
    let overlapping = runs.iter().any(|a| {
        runs.iter()
            .any(|b| a.0 != b.0 && a.1 < b.2.unwrap_or(b.1) && b.1 < a.2.unwrap_or(a.1))
    });
    ensure!(
        overlapping,
        "operations of different tenants never ran concurrently"
    );
    Ok(())
}

#[tokio::test]
async fn a_worker_restarted_three_times_starts_cleanly_each_time() -> anyhow::Result<()> {
    let world = World::new("restart").await?;
    let tenant = world.tenant("acme").await?;
    let kinds = [
        OperationKind::Backup,
        OperationKind::CollectUsage,
        OperationKind::HealthCheck,
    ];
    for kind in kinds {
        let mut process = world.worker(&[]).await?;
        let op = world.request(tenant, kind, json!({})).await?;
        let done = world.settle(&[op], Duration::from_secs(20)).await?;
        ensure!(
            done[0].state == ops::OperationState::Succeeded,
            "{kind}: {:?}",
            done[0]
        );
        process.signal("TERM")?;
        let status = process.wait(Duration::from_secs(15)).await?;
        let log = process.log();
        ensure!(status.success(), "{kind}: exit {status}:\n{log}");
        ensure!(!log.to_lowercase().contains("already exists"), "{log}");
    }
    let redis = redis::Client::open(saas_testkit::redis_url())?;
    let mut conn = redis.get_multiplexed_async_connection().await?;
    let live = saas_core::ops::workers::live(&mut conn, &world.prefix).await?;
    ensure!(
        live.is_empty(),
        "stopped workers are still listed: {live:?}"
    );
    Ok(())
}

#[tokio::test]
async fn sigterm_lets_the_running_operation_finish_then_exits_0() -> anyhow::Result<()> {
    let world = World::new("term").await?;
    let tenant = world.tenant("acme").await?;
    let mut process = world.worker(&[]).await?;
    let op = world
        .request(tenant, OperationKind::Backup, json!({ "sleep_ms": 1500 }))
        .await?;
    world.wait_running(op).await?;
    process.signal("TERM")?;
    let status = process.wait(Duration::from_secs(20)).await?;
    ensure!(status.success(), "exit {status}:\n{}", process.log());
    let done = world.operation(op).await?;
    ensure!(
        done.state == ops::OperationState::Succeeded,
        "{done:?}\n{}",
        process.log()
    );
    ensure!(done.attempts == 1);
    ensure!(world.effects(op).await? == 1);
    Ok(())
}

#[tokio::test]
async fn failures_retry_with_backoff_then_fail_for_good_with_the_error() -> anyhow::Result<()> {
    let world = World::new("retry").await?;
    let flaky = world.tenant("flaky").await?;
    let broken = world.tenant("broken").await?;
    let _worker = world.worker(&[]).await?;
    let recovers = world
        .request(flaky, OperationKind::Backup, json!({ "fail_times": 2 }))
        .await?;
    let never = world
        .request(broken, OperationKind::Backup, json!({ "fail_times": 99 }))
        .await?;
    let done = world
        .settle(&[recovers, never], Duration::from_secs(30))
        .await?;

    ensure!(
        done[0].state == ops::OperationState::Succeeded,
        "{:?}",
        done[0]
    );
    ensure!(done[0].attempts == 3);
    ensure!(world.effects(recovers).await? == 1);

    let max = OperationKind::Backup.max_attempts();
    ensure!(
        done[1].state == ops::OperationState::Failed,
        "{:?}",
        done[1]
    );
    ensure!(done[1].attempts == max, "attempts {}", done[1].attempts);
    ensure!(
        done[1].last_error.as_deref() == Some(format!("injected failure #{max}").as_str()),
        "{:?}",
        done[1].last_error
    );
    ensure!(world.effects(never).await? == 0);

    // Each wait between attempts is at least the doubling backoff (base 100 ms).
    let runs: Vec<(i32, DateTime<Utc>, Option<DateTime<Utc>>)> =
        sqlx::query_as("SELECT attempt, started_at, finished_at FROM test_runs WHERE operation_id = $1 ORDER BY attempt")
            .bind(never)
            .fetch_all(&world.pool)
            .await?;
    ensure!(runs.len() == usize::try_from(max)?, "{runs:?}");
    for pair in runs.windows(2) {
        let gap = pair[1].1 - pair[0].2.context("unfinished run")?;
        let expected = chrono::Duration::milliseconds(100 * (1 << (pair[0].0 - 1)));
        ensure!(
            gap >= expected,
            "attempt {} came {gap} after the previous one, expected at least {expected}",
            pair[1].0
        );
    }
    Ok(())
}

/// A handler that ignores its lease is dropped a few seconds after the
/// lease was taken over, recording nothing, and the tenant is free at once
/// for the next attempt.
#[tokio::test]
async fn a_taken_over_attempt_is_stopped_and_the_next_one_runs() -> anyhow::Result<()> {
    let world = World::new("takeover").await?;
    let tenant = world.tenant("acme").await?;
    let _worker = world.worker(&[]).await?;
    let op = world
        .request(
            tenant,
            OperationKind::Backup,
            json!({ "sleep_first_ms": 60_000 }),
        )
        .await?;
    world.wait_running(op).await?;
    // What the reconciler of a worker that thought this one dead does.
    sqlx::query(
        "UPDATE operations SET state = 'queued', lease = NULL, worker = NULL, run_after = now()
         WHERE id = $1",
    )
    .bind(op)
    .execute(&world.pool)
    .await?;
    let done = world.settle(&[op], Duration::from_secs(20)).await?;
    ensure!(
        done[0].state == ops::OperationState::Succeeded && done[0].attempts == 2,
        "{:?}",
        done[0]
    );
    let runs: Vec<(i32, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT attempt, finished_at FROM test_runs WHERE operation_id = $1 ORDER BY attempt",
    )
    .bind(op)
    .fetch_all(&world.pool)
    .await?;
    ensure!(
        runs.len() == 2 && runs[0].1.is_none() && runs[1].1.is_some(),
        "the taken-over run was not cut short: {runs:?}"
    );
    ensure!(world.effects(op).await? == 1);
    Ok(())
}

/// Keys under `prefix` whose name matches `pattern` (a SCAN glob after the prefix).
async fn redis_keys(prefix: &str, pattern: &str) -> anyhow::Result<Vec<String>> {
    let client = redis::Client::open(saas_testkit::redis_url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut keys = Vec::new();
    let mut found: redis::AsyncIter<'_, String> =
        redis::AsyncCommands::scan_match(&mut conn, format!("{prefix}{pattern}")).await?;
    while let Some(key) = futures::StreamExt::next(&mut found).await {
        keys.push(key?);
    }
    Ok(keys)
}

#[tokio::test]
async fn finished_jobs_do_not_stay_in_redis() -> anyhow::Result<()> {
    let world = World::new("vacuum").await?;
    let mut ids = Vec::new();
    for n in 0..30 {
        let tenant = world.tenant(&format!("shop-{n:02}")).await?;
        ids.push(
            world
                .request(tenant, OperationKind::Backup, json!({}))
                .await?,
        );
    }
    let worker = world.worker(&[]).await?;
    let done = world.settle(&ids, Duration::from_secs(60)).await?;
    ensure!(
        done.iter()
            .all(|op| op.state == ops::OperationState::Succeeded)
    );
    // apalis acknowledges after the row is final: wait until its
    // bookkeeping is over, every job's metadata in a terminal status (a job
    // still "Running" when the worker goes is never vacuumed: only its
    // orphan re-queue by another worker would end it).
    let queue = world.queue.queue_name();
    let client = redis::Client::open(saas_testkit::redis_url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    // Every job has its metadata (some may be vacuumed already by the
    // worker's maintenance, hence the bounded wait)...
    for _ in 0..100 {
        if redis_keys(&world.prefix, "*:meta:*").await?.len() >= ids.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ...and none is still being acknowledged.
    let mut unfinished = Vec::new();
    for _ in 0..200 {
        unfinished.clear();
        for key in redis_keys(&world.prefix, "*:meta:*").await? {
            let status: Option<String> = redis::cmd("HGET")
                .arg(&key)
                .arg("status")
                .query_async(&mut conn)
                .await?;
            if !matches!(status.as_deref(), Some("Done" | "Failed" | "Killed")) {
                unfinished.push((key, status));
            }
        }
        if unfinished.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(
        unfinished.is_empty(),
        "jobs whose operation finished are not acknowledged in apalis: {unfinished:?}"
    );
    drop(worker);

    // The worker's own maintenance may have removed some already.
    world.queue.vacuum().await?;
    let left = redis_keys(&world.prefix, "*").await?;
    ensure!(
        left.iter()
            .all(|key| !key.contains(":meta:") && !key.ends_with(":done")),
        "finished jobs left keys behind: {left:?}"
    );
    let data: usize = redis::cmd("HLEN")
        .arg(format!("{queue}:data"))
        .query_async(&mut conn)
        .await?;
    ensure!(data == 0, "{data} finished jobs' data left in {queue}:data");
    Ok(())
}
