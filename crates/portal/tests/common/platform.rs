//! The real worker binary and an Odoo world behind a portal under test.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::ensure;
use saas_testkit::odoo::{OdooWorld, ROLE};
use saas_testkit::{ServiceProcess, free_port, wait_for_http};

use super::{Options, ServerRow, TestApp};

/// Builds the worker binary next to the portal's (the lead's crate).
pub fn worker_binary() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let portal = Path::new(env!("CARGO_BIN_EXE_portal"));
    let release = portal
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
    ensure!(status.success(), "cargo build -p worker failed");
    let path = portal.with_file_name("worker");
    ensure!(path.exists(), "{} missing after the build", path.display());
    Ok(path)
}

/// The real worker for `app`'s database, Redis prefix and backup store.
pub async fn start_worker(app: &TestApp, world: &OdooWorld) -> anyhow::Result<ServiceProcess> {
    let port = free_port()?;
    let env: HashMap<String, String> = [
        ("DATABASE_URL", app.db.url.clone()),
        ("REDIS_URL", saas_testkit::redis_url()),
        ("REDIS_KEY_PREFIX", app.redis_prefix.clone()),
        (
            "SECRET_KEY",
            "test-secret-key-0123456789abcdef-0123".to_owned(),
        ),
        ("BIND_ADDR", "127.0.0.1".to_owned()),
        ("WORKER_PORT", port.to_string()),
        ("BASE_DOMAIN", "saas.test".to_owned()),
        ("PUBLIC_SCHEME", "http".to_owned()),
        (
            "ROUTING_MAP_PATH",
            world
                .path()
                .join("routing/tenants.map")
                .to_string_lossy()
                .into_owned(),
        ),
        (
            "BACKUP_STORE_URL",
            format!("file://{}", app.backups_dir.path().display()),
        ),
        ("ODOO_PROBE_TIMEOUT_SECS", "20".to_owned()),
        ("RECONCILE_INTERVAL_MS", "200".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let worker = ServiceProcess::spawn(&worker_binary()?, &[], &env)?;
    wait_for_http(
        &format!("http://127.0.0.1:{port}/healthz"),
        Duration::from_secs(30),
    )
    .await?;
    Ok(worker)
}

pub fn options(world: &OdooWorld) -> Options {
    Options {
        template: world.template.clone(),
        extra_env: Vec::new(),
        server: Some(ServerRow {
            internal_url: world.odoo_url.clone(),
            pg_url: saas_testkit::admin_database_url(),
            role: ROLE.to_owned(),
            filestore_root: world.filestore_root.to_string_lossy().into_owned(),
        }),
    }
}
