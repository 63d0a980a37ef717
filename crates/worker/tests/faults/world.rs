//! One fault test's world: its own PostgreSQL and Redis servers, the
//! platform schema, tenants, worker processes, and what the handlers
//! recorded.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use chrono::{DateTime, Utc};
use saas_core::ops::{self, Actor, Operation, OperationKind, OpsQueue};
use saas_testkit::{PrivatePostgres, PrivateRedis, ServiceProcess, free_port};
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tempfile::TempDir;
use uuid::Uuid;

pub const CUSTOMER: &str = "00000000-0000-0000-0000-000000000001";
pub const PLAN: &str = "00000000-0000-0000-0000-000000000002";
const PREFIX: &str = "faults:";

pub struct World {
    pub pg: PrivatePostgres,
    pub redis: PrivateRedis,
    pub db_url: String,
    pub pool: PgPool,
    pub scratch: TempDir,
}

/// A worker process and its port.
pub struct Worker {
    pub process: ServiceProcess,
    pub port: u16,
}

/// One handler invocation, as the test handlers record it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Run {
    pub operation_id: Uuid,
    pub tenant_id: Uuid,
    pub attempt: i32,
    pub pid: i32,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
}

impl World {
    pub async fn new() -> anyhow::Result<Self> {
        let (pg, redis) = tokio::try_join!(PrivatePostgres::start(), PrivateRedis::start())?;
        let db_url = pg.create_database("platform").await?;
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(3))
            .connect(&db_url)
            .await?;
        saas_core::db::MIGRATOR.run(&pool).await?;
        sqlx::raw_sql(&format!(
            "CREATE TABLE fault_runs (id bigserial PRIMARY KEY, operation_id uuid NOT NULL,
                 tenant_id uuid NOT NULL, attempt int NOT NULL, pid int NOT NULL,
                 started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
                 finished_at timestamptz, outcome text);
             CREATE TABLE fault_results (id bigserial PRIMARY KEY, operation_id uuid NOT NULL,
                 attempt int NOT NULL, recorded_at timestamptz NOT NULL DEFAULT clock_timestamp());
             INSERT INTO customers (id, email, company_name, password_hash)
                 VALUES ('{CUSTOMER}', 'c@example.com', 'Acme', 'x');
             INSERT INTO plans (id, code, name, max_users, max_storage_mb, max_backups, template)
                 VALUES ('{PLAN}', 'starter', 'Starter', 3, 1024, 7, 'starter');"
        ))
        .execute(&pool)
        .await?;
        Ok(Self {
            pg,
            redis,
            db_url,
            pool,
            scratch: tempfile::tempdir()?,
        })
    }

    /// `count` active tenants.
    pub async fn tenants(&self, count: usize) -> anyhow::Result<Vec<Uuid>> {
        let mut ids = Vec::new();
        for n in 0..count {
            let id = Uuid::new_v4();
            sqlx::query(&format!(
                "INSERT INTO tenants (id, subdomain, customer_id, plan_id, state, db_name)
                 VALUES ($1, $2, '{CUSTOMER}', '{PLAN}', 'active', $3)"
            ))
            .bind(id)
            .bind(format!("shop-{n:03}"))
            .bind(format!("t_shop_{n:03}"))
            .execute(&self.pool)
            .await?;
            ids.push(id);
        }
        Ok(ids)
    }

    /// Requests `kind` for every tenant (pushed to Redis like admin does).
    pub async fn request_each(
        &self,
        tenants: &[Uuid],
        kind: OperationKind,
        args: impl Fn(usize) -> Value,
    ) -> anyhow::Result<Vec<Uuid>> {
        let client = redis::Client::open(self.redis.url())?;
        let queue = OpsQueue::connect(&client, PREFIX).await?;
        let mut ids = Vec::new();
        for (n, tenant) in tenants.iter().enumerate() {
            let requested = ops::request_change(
                &self.pool,
                Some(&queue),
                *tenant,
                kind,
                args(n),
                &Actor::system("fault-test"),
            )
            .await?;
            ids.push(requested.operation.id);
        }
        Ok(ids)
    }

    /// The environment of a worker process against this world.
    pub fn env(&self, port: u16, extra: &[(&str, &str)]) -> HashMap<String, String> {
        let store = format!("file://{}/backups", self.scratch.path().display());
        let routing = format!("{}/routing/tenants.map", self.scratch.path().display());
        let mut env: HashMap<String, String> = [
            ("DATABASE_URL", self.db_url.clone()),
            ("REDIS_URL", self.redis.url()),
            (
                "SECRET_KEY",
                "fault-test-secret-key-0123456789abcdef".to_owned(),
            ),
            ("BIND_ADDR", "127.0.0.1".to_owned()),
            ("WORKER_PORT", port.to_string()),
            ("SCHEMA_WAIT_SECS", "10".to_owned()),
            ("LOG_LEVEL", "info,sqlx=warn".to_owned()),
            ("REDIS_KEY_PREFIX", PREFIX.to_owned()),
            ("WORKER_CONCURRENCY", "4".to_owned()),
            ("RECONCILE_INTERVAL_MS", "500".to_owned()),
            ("WORKER_RETRY_BASE_MS", "100".to_owned()),
            ("BACKUP_STORE_URL", store),
            ("ROUTING_MAP_PATH", routing),
            ("ODOO_PROBE_TIMEOUT_SECS", "0".to_owned()),
            ("FAULT_TEST_CHILD", "1".to_owned()),
            ("FAULT_SCRATCH", self.scratch.path().display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (key, value) in extra {
            env.insert((*key).to_owned(), (*value).to_owned());
        }
        env
    }

    /// A worker process running the real worker library with the fault
    /// handlers (this test binary re-executed), serving `/healthz`.
    pub async fn worker(&self, extra: &[(&str, &str)]) -> anyhow::Result<Worker> {
        let exe = std::env::current_exe()?;
        self.spawn(
            &exe,
            &["child_worker_entry", "--exact", "--ignored", "--nocapture"],
            extra,
        )
        .await
    }

    /// The real worker binary, with the platform handlers.
    pub async fn real_worker(&self, extra: &[(&str, &str)]) -> anyhow::Result<Worker> {
        self.spawn(
            std::path::Path::new(env!("CARGO_BIN_EXE_worker")),
            &[],
            extra,
        )
        .await
    }

    async fn spawn(
        &self,
        program: &std::path::Path,
        args: &[&str],
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Worker> {
        let port = free_port()?;
        let mut process = ServiceProcess::spawn(program, args, &self.env(port, extra))?;
        let url = format!("http://127.0.0.1:{port}/healthz");
        for _ in 0..400 {
            if reqwest::get(&url).await.is_ok() {
                return Ok(Worker { process, port });
            }
            if let Ok(status) = process.wait(Duration::from_millis(50)).await {
                anyhow::bail!("worker exited with {status}:\n{}", process.log());
            }
        }
        anyhow::bail!("worker never served /healthz:\n{}", process.log())
    }

    /// Waits until every operation in `ids` is final; PostgreSQL may be
    /// away meanwhile (errors are retried until `timeout`).
    pub async fn settle(&self, ids: &[Uuid], timeout: Duration) -> anyhow::Result<Vec<Operation>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let current: anyhow::Result<Vec<Operation>> = async {
                Ok(sqlx::query_as(&format!(
                    "SELECT {} FROM operations WHERE id = ANY($1)",
                    ops::model::COLUMNS
                ))
                .bind(ids)
                .fetch_all(&self.pool)
                .await?)
            }
            .await;
            if let Ok(all) = &current
                && all.len() == ids.len()
                && all.iter().all(|op| op.state.is_final())
            {
                return Ok(all.clone());
            }
            if tokio::time::Instant::now() >= deadline {
                let pending: Vec<_> = current?
                    .into_iter()
                    .filter(|op| !op.state.is_final())
                    .map(|op| (op.id, op.state, op.attempts, op.last_error))
                    .collect();
                anyhow::bail!(
                    "{} operations not finished within {timeout:?}: {pending:?}",
                    pending.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// How many results each operation recorded (absent: none).
    pub async fn results(&self) -> anyhow::Result<HashMap<Uuid, i64>> {
        let rows: Vec<(Uuid, i64)> = sqlx::query_as(
            "SELECT operation_id, count(*) FROM fault_results GROUP BY operation_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }

    pub async fn runs(&self) -> anyhow::Result<Vec<Run>> {
        Ok(sqlx::query_as(
            "SELECT operation_id, tenant_id, attempt, pid, started_at, finished_at, outcome
             FROM fault_runs ORDER BY started_at",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// How many results are recorded so far.
    pub async fn result_count(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM fault_results")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Waits until at least `count` results are recorded.
    pub async fn wait_results(&self, count: i64, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.result_count().await? < count {
            ensure!(
                tokio::time::Instant::now() < deadline,
                "fewer than {count} results within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}

impl Worker {
    /// The status `/readyz` answers, and its body.
    pub async fn readyz(&self) -> anyhow::Result<(u16, Value)> {
        let response = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{}/readyz", self.port))
            .timeout(Duration::from_secs(5))
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// The value of the metric `name` (no labels) on `/metrics`.
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", self.port))
            .await?
            .text()
            .await?;
        text.lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .with_context(|| format!("no {name} in /metrics"))
    }

    /// Fails if the process exited.
    pub async fn ensure_alive(&mut self) -> anyhow::Result<()> {
        if let Ok(status) = self.process.wait(Duration::from_millis(10)).await {
            anyhow::bail!("the worker exited with {status}:\n{}", self.process.log());
        }
        Ok(())
    }
}

/// Every operation succeeded and recorded exactly one result.
pub async fn ensure_each_succeeded_once(world: &World, done: &[Operation]) -> anyhow::Result<()> {
    let results = world.results().await?;
    for op in done {
        ensure!(op.state == ops::OperationState::Succeeded, "{op:?}");
        let recorded = results.get(&op.id).copied().unwrap_or(0);
        ensure!(
            recorded == 1,
            "operation {} recorded {recorded} results",
            op.id
        );
    }
    Ok(())
}

/// No two runs of one key (tenant or operation) overlap, and every run ended.
pub fn ensure_no_overlap(runs: &[Run], key: impl Fn(&Run) -> Uuid) -> anyhow::Result<()> {
    let mut by_key: HashMap<Uuid, Vec<&Run>> = HashMap::new();
    for run in runs {
        by_key.entry(key(run)).or_default().push(run);
    }
    for (id, mut mine) in by_key {
        mine.sort_by_key(|run| run.started_at);
        for pair in mine.windows(2) {
            let ended = pair[0]
                .finished_at
                .with_context(|| format!("a run of {id} never ended: {:?}", pair[0]))?;
            ensure!(
                ended <= pair[1].started_at,
                "two runs of {id} overlapped: {:?} and {:?}",
                pair[0],
                pair[1]
            );
        }
    }
    Ok(())
}
