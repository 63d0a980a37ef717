//! The real worker binary running the real data plane against the Odoo 18
//! fixture template and a local server answering like Odoo: a tenant is
//! provisioned, backed up, suspended, resumed and deleted through operations
//! requested the way admin and portal request them.

use std::collections::HashMap;
use std::io::Read as _;
use std::time::Duration;

use anyhow::{Context, ensure};
use saas_core::ops::{self, Actor, OperationKind, OperationState, OpsQueue};
use saas_core::tenants::{self, NewTenant};
use saas_testkit::odoo::{OdooWorld, ROLE};
use saas_testkit::{RedisPrefix, ServiceProcess, TestDb, free_port};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

struct Platform {
    pool: PgPool,
    queue: OpsQueue,
    map: std::path::PathBuf,
    backups: std::path::PathBuf,
    _prefix: RedisPrefix,
    _worker: ServiceProcess,
    _db: TestDb,
}

impl Platform {
    async fn start(world: &OdooWorld) -> anyhow::Result<Self> {
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
        let map = world.path().join("routing/tenants.map");
        let backups = world.path().join("backups");
        let prefix = RedisPrefix::new();
        let port = free_port()?;
        let env: HashMap<String, String> = [
            ("DATABASE_URL", db.url.clone()),
            ("REDIS_URL", saas_testkit::redis_url()),
            ("REDIS_KEY_PREFIX", prefix.0.clone()),
            (
                "SECRET_KEY",
                "test-secret-key-0123456789abcdef-0123".to_owned(),
            ),
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
            _prefix: prefix,
            _worker: worker,
            _db: db,
        })
    }

    async fn wait_state(&self, tenant: Uuid, state: &str) -> anyhow::Result<()> {
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
            self._worker.log()
        )
    }

    /// Waits until no operation of the tenant is queued or running (the
    /// routing map is written after the state changes).
    async fn wait_idle(&self, tenant: Uuid) -> anyhow::Result<()> {
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

    async fn run(
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
        anyhow::bail!("{kind} did not finish; worker log:\n{}", self._worker.log())
    }

    fn map(&self) -> String {
        std::fs::read_to_string(&self.map).unwrap_or_default()
    }
}

#[tokio::test]
async fn a_tenant_lives_its_whole_life_through_the_worker() -> anyhow::Result<()> {
    let world = OdooWorld::new().await?;
    let platform = Platform::start(&world).await?;
    let pool = &platform.pool;

    // The worker found the template on the server, so placement can use it.
    let mut found = false;
    for _ in 0..100 {
        found =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM server_templates WHERE name = $1)")
                .bind(format!("tpl_{}", world.template))
                .fetch_one(pool)
                .await?;
        if found {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(found, "the worker never recorded the template");

    let plan = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO plans (id, code, name, max_users, max_storage_mb, max_backups, template)
         VALUES ($1, 'basic', 'Basic', 5, 2048, 5, $2)",
    )
    .bind(plan)
    .bind(&world.template)
    .execute(pool)
    .await?;
    let customer = Uuid::new_v4();
    sqlx::query("INSERT INTO customers (id, email, company_name, password_hash) VALUES ($1, 'owner@shop.test', 'Shop Ltd', 'x')")
        .bind(customer)
        .execute(pool)
        .await?;
    let password_hash =
        saas_core::auth::odoo_password::hash_password_with("s3cret-odoo-pass", 1000, &[7; 16]);
    let subdomain = format!("shop-{}", world.suffix);
    let (tenant, _) = tenants::create(
        pool,
        Some(&platform.queue),
        &NewTenant {
            customer_id: customer,
            plan_id: plan,
            subdomain: subdomain.clone(),
            admin_password_hash: password_hash.clone(),
        },
        &Actor::system("test"),
    )
    .await?;

    platform.wait_state(tenant.id, "active").await?;
    platform.wait_idle(tenant.id).await?;
    let mut odoo = sqlx::PgConnection::connect(&saas_testkit::database_url(&subdomain)?).await?;
    let (login, stored): (String, String) =
        sqlx::query_as("SELECT login, password FROM res_users WHERE id = 2")
            .fetch_one(&mut odoo)
            .await?;
    ensure!(
        login == "owner@shop.test" && stored == password_hash,
        "admin user not configured: {login}"
    );
    let base_url: String =
        sqlx::query_scalar("SELECT value FROM ir_config_parameter WHERE key = 'web.base.url'")
            .fetch_one(&mut odoo)
            .await?;
    ensure!(
        base_url == format!("https://{subdomain}.saas.test"),
        "{base_url}"
    );
    let uuid: String =
        sqlx::query_scalar("SELECT value FROM ir_config_parameter WHERE key = 'database.uuid'")
            .fetch_one(&mut odoo)
            .await?;
    ensure!(uuid == tenant.id.to_string(), "database.uuid {uuid}");
    drop(odoo);
    let upstream = world.odoo_url.trim_start_matches("http://").to_owned();
    ensure!(
        platform.map().contains(&format!("{subdomain} {upstream};")),
        "map: {}",
        platform.map()
    );

    platform
        .run(
            tenant.id,
            OperationKind::Backup,
            json!({ "kind": "manual" }),
        )
        .await?;
    let (key, size): (String, i64) =
        sqlx::query_as("SELECT object_key, size_bytes FROM backups WHERE tenant_id = $1")
            .bind(tenant.id)
            .fetch_one(pool)
            .await?;
    let file = std::fs::File::open(platform.backups.join(&key))?;
    ensure!(i64::try_from(file.metadata()?.len())? == size);
    let mut zip = zip::ZipArchive::new(file)?;
    let mut manifest = String::new();
    zip.by_name("manifest.json")?
        .read_to_string(&mut manifest)?;
    ensure!(manifest.contains(&subdomain), "{manifest}");
    ensure!(zip.by_name("dump.sql").is_ok());

    platform
        .run(
            tenant.id,
            OperationKind::Suspend,
            json!({ "reason": "unpaid invoice" }),
        )
        .await?;
    ensure!(
        platform.map().contains(&format!("{subdomain} suspended;")),
        "map: {}",
        platform.map()
    );
    // Enforced where Odoo connects, not only in nginx: the Odoo role can no
    // longer open the tenant's database (XML-RPC through another host, crons).
    let as_odoo = saas_testkit::odoo::database_url_as(ROLE, &subdomain)?;
    match sqlx::PgConnection::connect(&as_odoo).await {
        Err(err) => ensure!(err.to_string().contains("permission denied"), "{err}"),
        Ok(_) => anyhow::bail!("the Odoo role connected to a suspended tenant"),
    }
    platform
        .run(tenant.id, OperationKind::Resume, json!({}))
        .await?;
    ensure!(
        platform.map().contains(&format!("{subdomain} {upstream};")),
        "map: {}",
        platform.map()
    );
    sqlx::PgConnection::connect(&as_odoo)
        .await
        .context("the Odoo role cannot connect after the resume")?;

    platform
        .run(tenant.id, OperationKind::CollectUsage, json!({}))
        .await?;
    let users: i32 = sqlx::query_scalar("SELECT usage_users FROM tenants WHERE id = $1")
        .bind(tenant.id)
        .fetch_one(pool)
        .await?;
    ensure!(users >= 1, "usage not collected");

    platform
        .run(tenant.id, OperationKind::Delete, json!({}))
        .await?;
    platform.wait_state(tenant.id, "deleted").await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&subdomain)
            .fetch_one(&mut sqlx::PgConnection::connect(&saas_testkit::admin_database_url()).await?)
            .await?;
    ensure!(!exists, "the tenant database survived its deletion");
    let final_backups: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM backups WHERE tenant_id = $1 AND kind = 'pre_delete'",
    )
    .bind(tenant.id)
    .fetch_one(pool)
    .await?;
    ensure!(final_backups == 1, "{final_backups} final backups");
    ensure!(
        !platform.map().contains(&subdomain),
        "map: {}",
        platform.map()
    );
    Ok(())
}

use sqlx::Connection as _;
