//! The real worker binary running the real data plane against the Odoo 18
//! fixture template and a local server answering like Odoo, with operations
//! requested the way admin and portal request them.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use saas_core::ops::{self, Actor, OperationKind, OperationState, OpsQueue};
use saas_testkit::odoo::{OdooWorld, ROLE};
use saas_testkit::{RedisPrefix, ServiceProcess, TestDb, free_port};
use sqlx::PgPool;
use uuid::Uuid;

pub struct Platform {
    pub pool: PgPool,
    pub queue: OpsQueue,
    pub map: std::path::PathBuf,
    pub backups: std::path::PathBuf,
    /// The worker's HTTP port (`/healthz`, `/readyz`, `/metrics`).
    pub port: u16,
    _prefix: RedisPrefix,
    pub worker: ServiceProcess,
    _db: TestDb,
}

impl Platform {
    pub async fn start(world: &OdooWorld) -> anyhow::Result<Self> {
        Self::start_with(world, &[]).await
    }

    /// Starts the worker with `extra` environment variables on top of the
    /// defaults (later entries win).
    pub async fn start_with(world: &OdooWorld, extra: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::start_after(world, extra, async |_| Ok(())).await
    }

    /// [`Platform::start_with`], running `prepare` on the migrated platform
    /// database (with the world's server registered) before the worker
    /// starts.
    pub async fn start_after(
        world: &OdooWorld,
        extra: &[(&str, &str)],
        prepare: impl AsyncFnOnce(&PgPool) -> anyhow::Result<()>,
    ) -> anyhow::Result<Self> {
        let db = TestDb::new("platform").await?;
        let pool = db.pool().await?;
        saas_core::db::MIGRATOR.run(&pool).await?;
        sqlx::query(
            "INSERT INTO servers (id, name, public_url, internal_url, pg_url, odoo_db_role, filestore_root, capacity)
             VALUES ($1, 'odoo-test', $2, $2, $3, $4, $5, 10)",
        )
        .bind(Uuid::new_v4())
        .bind(&world.odoo_url)
        .bind(saas_testkit::admin_database_url())
        .bind(ROLE)
        .bind(world.filestore_root.to_string_lossy().as_ref())
        .execute(&pool)
        .await?;
        prepare(&pool).await?;
        let map = world.path().join("routing/tenants.map");
        let backups = world.path().join("backups");
        let prefix = RedisPrefix::new();
        let port = free_port()?;
        let env: HashMap<String, String> = [
            ("DATABASE_URL", db.url.clone()),
            ("REDIS_URL", saas_testkit::redis_url()),
            ("REDIS_KEY_PREFIX", prefix.0.clone()),
            ("SECRET_KEY", SECRET_KEY.to_owned()),
            ("BIND_ADDR", "127.0.0.1".to_owned()),
            ("WORKER_PORT", port.to_string()),
            ("BASE_DOMAIN", "saas.test".to_owned()),
            ("PUBLIC_SCHEME", "https".to_owned()),
            ("ROUTING_MAP_PATH", map.to_string_lossy().into_owned()),
            ("BACKUP_STORE_URL", format!("file://{}", backups.display())),
            ("ODOO_PROBE_TIMEOUT_SECS", "20".to_owned()),
            ("RECONCILE_INTERVAL_MS", "200".to_owned()),
        ]
        .into_iter()
        .chain(extra.iter().map(|(k, v)| (*k, (*v).to_owned())))
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let worker = ServiceProcess::spawn(
            std::path::Path::new(env!("CARGO_BIN_EXE_worker")),
            &[],
            &env,
        )?;
        saas_testkit::wait_for_http(
            &format!("http://127.0.0.1:{port}/healthz"),
            Duration::from_secs(20),
        )
        .await?;
        let redis = redis::Client::open(saas_testkit::redis_url())?;
        let queue = OpsQueue::connect(&redis, &prefix).await?;
        Ok(Self {
            pool,
            queue,
            map,
            backups,
            port,
            _prefix: prefix,
            worker,
            _db: db,
        })
    }

    pub async fn wait_state(&self, tenant: Uuid, state: &str) -> anyhow::Result<()> {
        for _ in 0..300 {
            let now: String = sqlx::query_scalar("SELECT state FROM tenants WHERE id = $1")
                .bind(tenant)
                .fetch_one(&self.pool)
                .await?;
            if now == state {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let ops: Vec<(String, String, Option<String>)> =
            sqlx::query_as("SELECT kind, state, last_error FROM operations WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_all(&self.pool)
                .await?;
        anyhow::bail!(
            "tenant never became {state}; operations: {ops:?}; worker log:\n{}",
            self.worker.log()
        )
    }

    /// Waits until no operation of the tenant is queued or running (the
    /// routing map is written after the state changes).
    pub async fn wait_idle(&self, tenant: Uuid) -> anyhow::Result<()> {
        for _ in 0..300 {
            let busy: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM operations WHERE tenant_id = $1 AND state IN ('queued', 'running'))",
            )
            .bind(tenant)
            .fetch_one(&self.pool)
            .await?;
            if !busy {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("operations of the tenant never finished")
    }

    pub async fn run(
        &self,
        tenant: Uuid,
        kind: OperationKind,
        args: serde_json::Value,
    ) -> anyhow::Result<()> {
        let requested = ops::request_change(
            &self.pool,
            Some(&self.queue),
            tenant,
            kind,
            args,
            &Actor::system("test"),
        )
        .await?;
        for _ in 0..300 {
            let op = ops::store::get(&self.pool, requested.operation.id)
                .await?
                .context("operation vanished")?;
            match op.state {
                OperationState::Succeeded => return Ok(()),
                OperationState::Failed | OperationState::Cancelled => {
                    anyhow::bail!("{kind} {:?}: {:?}", op.state, op.last_error)
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        anyhow::bail!("{kind} did not finish; worker log:\n{}", self.worker.log())
    }

    pub fn map(&self) -> String {
        std::fs::read_to_string(&self.map).unwrap_or_default()
    }
}

/// A tenant requested the way the portal requests one.
pub struct NewTenantSpec<'a> {
    pub subdomain: &'a str,
    pub max_backups: i32,
    pub max_storage_mb: i32,
}

/// What [`Platform::request_tenant`] made.
pub struct Requested {
    pub tenant: Uuid,
    pub plan: Uuid,
    /// The customer's email: the Odoo admin's login.
    pub login: String,
    /// The Odoo admin password the customer chose (sealed with the
    /// provision; the worker writes its hash).
    pub password: String,
    /// The provision operation.
    pub provision: Uuid,
}

/// The admin password [`Platform::request_tenant`] chooses.
pub const ODOO_PASSWORD: &str = "s3cret-odoo-pass";

/// The `SECRET_KEY` the worker runs with.
pub const SECRET_KEY: &str = "test-secret-key-0123456789abcdef-0123";

/// The sealing key derived from [`SECRET_KEY`], as admin and portal derive it.
pub fn sealing_key() -> saas_core::sealing::SealingKey {
    saas_core::sealing::SealingKey::derive(&secrecy::SecretString::from(SECRET_KEY.to_owned()))
}

/// The admin user's login and password hash in tenant database `db`.
pub async fn admin_user(db: &str) -> anyhow::Result<(String, String)> {
    use sqlx::Connection as _;
    let mut odoo = sqlx::PgConnection::connect(&saas_testkit::database_url(db)?).await?;
    Ok(
        sqlx::query_as("SELECT login, password FROM res_users WHERE id = 2")
            .fetch_one(&mut odoo)
            .await?,
    )
}

impl Platform {
    /// Waits until the worker recorded the world's template on the server
    /// (placement needs it).
    pub async fn wait_template(&self, world: &OdooWorld) -> anyhow::Result<()> {
        for _ in 0..100 {
            let found: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM server_templates WHERE name = $1)",
            )
            .bind(format!("tpl_{}", world.template))
            .fetch_one(&self.pool)
            .await?;
            if found {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("the worker never recorded the template")
    }

    /// A plan on the world's template, a customer `owner@shop.test` and a
    /// tenant whose provision is queued.
    pub async fn request_tenant(
        &self,
        world: &OdooWorld,
        spec: &NewTenantSpec<'_>,
    ) -> anyhow::Result<Requested> {
        self.wait_template(world).await?;
        let plan = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO plans (id, code, name, max_users, max_storage_mb, max_backups, template)
             VALUES ($1, $3, 'Basic', 5, $4, $5, $2)",
        )
        .bind(plan)
        .bind(&world.template)
        .bind(format!("basic-{}", &plan.simple().to_string()[..8]))
        .bind(spec.max_storage_mb)
        .bind(spec.max_backups)
        .execute(&self.pool)
        .await?;
        let customer = Uuid::new_v4();
        let login = format!("owner-{}@shop.test", &customer.simple().to_string()[..8]);
        sqlx::query(
            "INSERT INTO customers (id, email, company_name, password_hash)
             VALUES ($1, $2, 'Shop Ltd', 'x')",
        )
        .bind(customer)
        .bind(&login)
        .execute(&self.pool)
        .await?;
        let (tenant, provision) = saas_core::tenants::create(
            &self.pool,
            Some(&self.queue),
            &sealing_key(),
            &saas_core::tenants::NewTenant {
                customer_id: customer,
                plan_id: plan,
                subdomain: spec.subdomain.to_owned(),
                admin_password: secrecy::SecretString::from(ODOO_PASSWORD),
            },
            &Actor::system("test"),
        )
        .await?;
        Ok(Requested {
            tenant: tenant.id,
            plan,
            login,
            password: ODOO_PASSWORD.to_owned(),
            provision: provision.id,
        })
    }

    /// [`Platform::request_tenant`], then waits until the tenant is active
    /// and its operations are done.
    pub async fn active_tenant(
        &self,
        world: &OdooWorld,
        spec: &NewTenantSpec<'_>,
    ) -> anyhow::Result<Requested> {
        let requested = self.request_tenant(world, spec).await?;
        self.wait_state(requested.tenant, "active").await?;
        self.wait_idle(requested.tenant).await?;
        Ok(requested)
    }

    /// Requests `kind` for `tenant` and returns the operation id without
    /// waiting.
    pub async fn request(
        &self,
        tenant: Uuid,
        kind: OperationKind,
        args: serde_json::Value,
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

    /// Waits until operation `id` is final; returns it.
    pub async fn wait_final(&self, id: Uuid) -> anyhow::Result<ops::Operation> {
        for _ in 0..600 {
            let op = ops::store::get(&self.pool, id)
                .await?
                .context("operation vanished")?;
            if op.state.is_final() {
                return Ok(op);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!(
            "operation {id} did not finish; worker log:\n{}",
            self.worker.log()
        )
    }
}

/// Databases of the test cluster whose names contain `fragment`.
pub async fn databases_like(fragment: &str) -> anyhow::Result<Vec<String>> {
    use sqlx::Connection as _;
    let mut admin = sqlx::PgConnection::connect(&saas_testkit::admin_database_url()).await?;
    Ok(sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE strpos(datname, $1) > 0 ORDER BY 1",
    )
    .bind(fragment)
    .fetch_all(&mut admin)
    .await?)
}
