//! An Odoo world for tests above the data plane (worker, admin, portal): a
//! template database loaded from the real Odoo 18 fixture with a small
//! filestore and sealed like a real one (`odoo/seal-template.sql`: closed to
//! connections, no known password), its asset bundles stored in it the way
//! `odoo/build-templates.sh` has Odoo store them, and a local HTTP server
//! answering the login page, sign-in, web client and asset bundles the way
//! Odoo 18 with `dbfilter = ^%d$` does ([`web_client`]). Every database whose
//! name contains the world's suffix is dropped when the world is dropped, so
//! give tenants subdomains that contain [`OdooWorld::suffix`].

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sqlx::{Connection as _, Executor as _, PgConnection};

mod seal;
pub mod web_client;

pub use seal::{seal_sql_path, seal_template};
pub use web_client::FixtureWeb;

/// Tests' bundles are the real ones' sizes divided by this (92 KB in all).
pub const TEST_BUNDLE_DIVISOR: usize = 100;

/// The role that owns tenant databases in tests (shared by all tests).
pub const ROLE: &str = "saas_odoo_test";

/// The Odoo 18 fixture shipped with the test kit
/// (`crates/testkit/fixtures/odoo18/template.sql`), or `ODOO18_FIXTURE`.
pub fn fixture_path() -> PathBuf {
    if let Ok(path) = std::env::var("ODOO18_FIXTURE") {
        return PathBuf::from(path);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/odoo18/template.sql")
}

pub struct OdooWorld {
    /// Unique to this world; part of every database name it drops.
    pub suffix: String,
    /// The plan template name: the database is `tpl_<template>`.
    pub template: String,
    /// `<dir>/filestore`: the filestore root to register for the server.
    pub filestore_root: PathBuf,
    /// Base URL of the fake Odoo.
    pub odoo_url: String,
    /// The fake Odoo's sessions and the bundles it had to compile.
    pub web: std::sync::Arc<FixtureWeb>,
    dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl OdooWorld {
    /// The role, sealed template `tpl_<suffix>` with a small filestore and
    /// asset bundles ([`TEST_BUNDLE_DIVISOR`]), and the fake Odoo.
    pub async fn new() -> anyhow::Result<Self> {
        Self::with_bundles(web_client::bundles(TEST_BUNDLE_DIVISOR)).await
    }

    /// [`OdooWorld::new`] with the asset bundles at their real sizes
    /// (9.2 MB), for benchmarks.
    pub async fn with_real_bundles() -> anyhow::Result<Self> {
        Self::with_bundles(web_client::bundles(1)).await
    }

    async fn with_bundles(bundles: Vec<web_client::Bundle>) -> anyhow::Result<Self> {
        let suffix = crate::unique_suffix();
        let template = suffix.clone();
        let dir = tempfile::tempdir()?;
        let filestore_root = dir.path().join("filestore");
        ensure_role().await?;
        let database = format!("tpl_{template}");
        let building = format!("{database}__building");
        load_fixture(&building).await?;
        let files = filestore_root.join(&database).join("ab");
        std::fs::create_dir_all(&files)?;
        std::fs::write(files.join("ab12cd34"), b"an attachment of the template\n")?;
        // What warm-assets.py has Odoo do; build-templates.sh then moves the
        // building database's filestore to the template's.
        web_client::store_bundles(&building, &filestore_root.join(&database), &bundles).await?;
        seal_template(&building, &database).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let odoo_url = format!("http://{}", listener.local_addr()?);
        let web = FixtureWeb::new(filestore_root.clone(), bundles);
        let app = web.router();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            suffix,
            template,
            filestore_root,
            odoo_url,
            web,
            dir,
            server,
        })
    }

    /// Asset bundles the fake Odoo compiled because a tenant's database did
    /// not have them (0 when every tenant got them with the template).
    pub fn compiled_bundles(&self) -> usize {
        self.web.compiled()
    }

    /// A scratch directory that lives as long as the world.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for OdooWorld {
    fn drop(&mut self) {
        self.server.abort();
        let suffix = self.suffix.clone();
        let handle = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = runtime.block_on(drop_databases_containing(&suffix));
            }
        });
        let _ = handle.join();
    }
}

pub async fn drop_databases_containing(suffix: &str) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(&crate::admin_database_url()).await?;
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE strpos(datname, $1) > 0")
            .bind(suffix)
            .fetch_all(&mut admin)
            .await?;
    for name in names {
        let _ = admin
            .execute(format!(r#"ALTER DATABASE "{name}" IS_TEMPLATE false"#).as_str())
            .await;
        let _ = admin
            .execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str())
            .await;
    }
    Ok(())
}

/// Creates database `db` owned by [`ROLE`] and loads the Odoo 18 fixture into
/// it as that role (so its objects belong to the role, as Odoo's would).
pub async fn load_fixture(db: &str) -> anyhow::Result<()> {
    admin_exec(&format!(r#"CREATE DATABASE "{db}" OWNER {ROLE}"#)).await?;
    let output = tokio::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(fixture_path())
        .arg(crate::database_url(db)?)
        .env("PGOPTIONS", format!("-c role={ROLE}"))
        .output()
        .await
        .context("running psql")?;
    anyhow::ensure!(
        output.status.success(),
        "loading the Odoo fixture failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// URL of database `db` for a session as `role` (local auth is trust, so a
/// connection attempt checks exactly the role's CONNECT privilege).
pub fn database_url_as(role: &str, db: &str) -> anyhow::Result<String> {
    let mut url = url::Url::parse(&crate::database_url(db)?)?;
    url.set_username(role)
        .map_err(|()| anyhow::anyhow!("cannot set the user of the test database URL"))?;
    url.set_password(None)
        .map_err(|()| anyhow::anyhow!("cannot clear the password of the test database URL"))?;
    Ok(url.to_string())
}

/// Creates the shared test role once (a concurrent creation is fine).
pub async fn ensure_role() -> anyhow::Result<()> {
    admin_exec(&format!(
        "DO $$ BEGIN CREATE ROLE {ROLE} LOGIN; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
    ))
    .await
}

pub async fn admin_exec(sql: &str) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(&crate::admin_database_url()).await?;
    admin.execute(sql).await?;
    Ok(())
}

impl OdooWorld {
    /// Registers the world's Odoo as a server of the platform database
    /// `pool`, with its template already listed (as the worker would).
    pub async fn register_server(&self, pool: &sqlx::PgPool) -> anyhow::Result<uuid::Uuid> {
        let server = uuid::Uuid::new_v4();
        sqlx::query(
            "INSERT INTO servers (id, name, public_url, internal_url, pg_url, odoo_db_role, filestore_root, capacity)
             VALUES ($1, 'odoo-test', $2, $2, $3, $4, $5, 10)",
        )
        .bind(server)
        .bind(&self.odoo_url)
        .bind(crate::admin_database_url())
        .bind(ROLE)
        .bind(self.filestore_root.to_string_lossy().as_ref())
        .execute(pool)
        .await?;
        sqlx::query(
            "INSERT INTO server_templates (server_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(server)
        .bind(format!("tpl_{}", self.template))
        .execute(pool)
        .await?;
        Ok(server)
    }

    /// Starts the real worker binary `worker` against platform database
    /// `database_url` and Redis prefix `redis_prefix`, writing backups to
    /// `backups_dir` and the routing map inside the world; waits for `/healthz`.
    pub async fn start_worker(
        &self,
        worker: &Path,
        database_url: &str,
        redis_prefix: &str,
        backups_dir: &Path,
    ) -> anyhow::Result<crate::ServiceProcess> {
        let port = crate::free_port()?;
        let env: std::collections::HashMap<String, String> = [
            ("DATABASE_URL", database_url.to_owned()),
            ("REDIS_URL", crate::redis_url()),
            ("REDIS_KEY_PREFIX", redis_prefix.to_owned()),
            ("SECRET_KEY", crate::contract::SECRET_KEY.to_owned()),
            ("BIND_ADDR", "127.0.0.1".to_owned()),
            ("WORKER_PORT", port.to_string()),
            ("BASE_DOMAIN", "saas.test".to_owned()),
            ("PUBLIC_SCHEME", "http".to_owned()),
            (
                "ROUTING_MAP_PATH",
                self.routing_map().to_string_lossy().into_owned(),
            ),
            (
                "BACKUP_STORE_URL",
                format!("file://{}", backups_dir.display()),
            ),
            ("ODOO_PROBE_TIMEOUT_SECS", "20".to_owned()),
            ("RECONCILE_INTERVAL_MS", "200".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let process = crate::ServiceProcess::spawn(worker, &[], &env)?;
        crate::wait_for_http(
            &format!("http://127.0.0.1:{port}/healthz"),
            std::time::Duration::from_secs(30),
        )
        .await?;
        Ok(process)
    }

    /// The routing map a worker started by [`OdooWorld::start_worker`] writes.
    pub fn routing_map(&self) -> PathBuf {
        self.dir.path().join("routing/tenants.map")
    }
}

/// Builds the worker binary into the directory of `sibling` (another
/// binary of the workspace, e.g. `env!("CARGO_BIN_EXE_admin")`, whose build
/// profile it follows) and returns its path: tests of admin and portal run
/// the real worker.
pub fn worker_binary(sibling: &Path) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let release = sibling
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|dir| dir == "release");
    let mut args = vec!["build", "-q", "-p", "worker"];
    if release {
        args.push("--release");
    }
    let status = std::process::Command::new(cargo)
        .args(&args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .status()?;
    anyhow::ensure!(status.success(), "cargo build -p worker failed");
    let path = sibling.with_file_name("worker");
    anyhow::ensure!(path.exists(), "{} missing after the build", path.display());
    Ok(path)
}
