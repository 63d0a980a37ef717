//! An Odoo world for tests above the data plane (worker, admin, portal): a
//! template database loaded from the real Odoo 18 fixture with a small
//! filestore, and a local HTTP server answering `/web/login` the way Odoo
//! with `dbfilter = ^%d$` does. Every database whose name contains the
//! world's suffix is dropped when the world is dropped, so give tenants
//! subdomains that contain [`OdooWorld::suffix`].

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use sqlx::{Connection as _, Executor as _, PgConnection};

/// The role that owns tenant databases in tests (shared by all tests).
pub const ROLE: &str = "saas_odoo_test";

/// `../shared/fixtures/odoo18/template.sql`, or `ODOO18_FIXTURE`.
pub fn fixture_path() -> PathBuf {
    if let Ok(path) = std::env::var("ODOO18_FIXTURE") {
        return PathBuf::from(path);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/odoo18/template.sql")
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
    dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl OdooWorld {
    /// The role, template `tpl_<suffix>` with a small filestore, and the fake Odoo.
    pub async fn new() -> anyhow::Result<Self> {
        let suffix = crate::unique_suffix();
        let template = suffix.clone();
        let dir = tempfile::tempdir()?;
        let filestore_root = dir.path().join("filestore");
        ensure_role().await?;
        let database = format!("tpl_{template}");
        admin_exec(&format!(r#"CREATE DATABASE "{database}" OWNER {ROLE}"#)).await?;
        let output = tokio::process::Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
            .arg(fixture_path())
            .arg(crate::database_url(&database)?)
            .env("PGOPTIONS", format!("-c role={ROLE}"))
            .output()
            .await
            .context("running psql")?;
        anyhow::ensure!(
            output.status.success(),
            "loading the Odoo fixture failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let files = filestore_root.join(&database).join("ab");
        std::fs::create_dir_all(&files)?;
        std::fs::write(files.join("ab12cd34"), b"an attachment of the template\n")?;
        admin_exec(&format!(r#"ALTER DATABASE "{database}" IS_TEMPLATE true"#)).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let odoo_url = format!("http://{}", listener.local_addr()?);
        let app = axum::Router::new().route("/web/login", get(login));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            suffix,
            template,
            filestore_root,
            odoo_url,
            dir,
            server,
        })
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

/// 200 when the first label of the Host names a provisioned database, like
/// Odoo with `dbfilter = ^%d$`; 404 otherwise.
async fn login(headers: HeaderMap) -> StatusCode {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let db = host.split('.').next().unwrap_or_default().to_owned();
    match provisioned(&db).await {
        Ok(true) => StatusCode::OK,
        _ => StatusCode::NOT_FOUND,
    }
}

async fn provisioned(db: &str) -> anyhow::Result<bool> {
    if db.is_empty()
        || !db
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Ok(false);
    }
    let mut conn = PgConnection::connect(&crate::database_url(db)?).await?;
    let marker: Option<String> =
        sqlx::query_scalar("SELECT value FROM ir_config_parameter WHERE key = 'saas.provisioned'")
            .fetch_optional(&mut conn)
            .await?;
    Ok(marker.is_some())
}
