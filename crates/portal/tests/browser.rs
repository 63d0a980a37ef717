//! The portal in headless Chromium with the real worker against the Odoo 18
//! fixture template: sign up, confirm the address from the outbox, create
//! an instance and watch it become active, back it up, download the zip,
//! delete the instance. Screenshots go to `target/screenshots/`.

mod common;

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, ensure};
use base64::Engine as _;
use common::webdriver::{Browser, tools};
use common::{Options, PASSWORD, ServerRow, TestApp};
use saas_testkit::odoo::{OdooWorld, ROLE};
use saas_testkit::{ServiceProcess, free_port, wait_for_http};
use serde_json::json;

/// Builds the worker binary next to the portal's (the lead's crate).
pub fn worker_binary() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = std::process::Command::new(cargo)
        .args(["build", "-q", "-p", "worker"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .status()?;
    ensure!(status.success(), "cargo build -p worker failed");
    let path = Path::new(env!("CARGO_BIN_EXE_portal")).with_file_name("worker");
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

#[tokio::test]
async fn customer_journey_in_headless_chromium() -> anyhow::Result<()> {
    let Some((chromium, chromedriver)) = tools()? else {
        return Ok(());
    };
    let stale =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots/portal-failure.png");
    let _ = std::fs::remove_file(stale);
    let world = OdooWorld::new().await?;
    let app = TestApp::start_with(options(&world)).await?;
    let worker = start_worker(&app, &world).await?;
    let browser = Browser::start(&chromium, &chromedriver).await?;
    let outcome = journey(&app, &world, &browser).await;
    if outcome.is_err() {
        let _ = browser.screenshot("failure").await;
        eprintln!("worker log:\n{}", worker.log());
    }
    browser.quit().await;
    outcome
}

async fn journey(app: &TestApp, world: &OdooWorld, browser: &Browser) -> anyhow::Result<()> {
    let email = format!("owner-{}@example.com", world.suffix);
    let subdomain = format!("shop-{}", world.suffix);
    let long = Duration::from_secs(90);

    browser.goto(&app.url("/signup")).await?;
    browser.fill("#email", &email).await?;
    browser.fill("#company_name", "Browser Test Ltd").await?;
    browser.fill("#password", PASSWORD).await?;
    browser.screenshot("1-signup").await?;
    browser.click("#signup").await?;
    browser.wait_text("h1", "Check your email", long).await?;

    let link = app.link_in_outbox(&email, "/verify?token=").await?;
    browser.goto(&link).await?;
    browser
        .wait_text("h1", "Email address confirmed", long)
        .await?;
    browser.screenshot("2-verified").await?;

    browser.goto(&app.url("/login")).await?;
    browser.fill("#email", &email).await?;
    browser.fill("#password", PASSWORD).await?;
    browser.click("#login").await?;
    browser.wait_text("h1", "Your instances", long).await?;

    browser.click("#new-instance").await?;
    browser.wait_text("h1", "New instance", long).await?;
    browser.fill("#subdomain", &subdomain).await?;
    browser
        .wait_text("#subdomain-status", "is available", long)
        .await?;
    browser.fill("#admin_password", PASSWORD).await?;
    browser.screenshot("3-create").await?;
    browser.click("#create").await?;
    browser.wait_text("h1", &subdomain, long).await?;
    browser.screenshot("4-provisioning").await?;
    browser.wait_text("#state", "active", long).await?;
    let open = browser.text("#open").await?;
    ensure!(
        open.contains(&format!("http://{subdomain}.saas.test")),
        "open link: {open}"
    );
    browser.screenshot("5-active").await?;

    browser.click("#backup-now").await?;
    browser.wait_text("#backups", "manual", long).await?;
    browser.screenshot("6-backup").await?;
    let download = browser
        .run_async(
            "const done = arguments[arguments.length - 1];
             const link = document.querySelector('a.download');
             fetch(link.href, { credentials: 'same-origin' })
               .then(r => r.arrayBuffer().then(buf => {
                 const bytes = new Uint8Array(buf); let s = '';
                 for (let i = 0; i < bytes.length; i++) { s += String.fromCharCode(bytes[i]); }
                 done({ status: r.status, disposition: r.headers.get('content-disposition'), body: btoa(s) });
               }))
               .catch(e => done({ error: String(e) }));",
            json!([]),
        )
        .await?;
    ensure!(download["status"] == 200, "download: {download}");
    ensure!(
        download["disposition"]
            .as_str()
            .is_some_and(|d| d.starts_with("attachment"))
    );
    let zip = base64::engine::general_purpose::STANDARD
        .decode(download["body"].as_str().context("no body")?)?;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip))?;
    let names: Vec<String> = archive
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()?;
    ensure!(
        names.iter().any(|n| n == "dump.sql") && names.iter().any(|n| n == "manifest.json"),
        "{names:?}"
    );
    let mut manifest = String::new();
    archive
        .by_name("manifest.json")?
        .read_to_string(&mut manifest)?;
    ensure!(serde_json::from_str::<serde_json::Value>(&manifest)?.is_object());

    browser.fill("#delete-confirm", &subdomain).await?;
    browser.click("#delete").await?;
    browser.wait_text("#state", "deleted", long).await?;
    browser.screenshot("7-deleted").await?;
    let kinds: Vec<String> = sqlx::query_scalar(
        "SELECT b.kind FROM backups b JOIN tenants t ON t.id = b.tenant_id WHERE t.subdomain = $1 ORDER BY b.created_at",
    )
    .bind(&subdomain)
    .fetch_all(&app.pool)
    .await?;
    ensure!(kinds == ["manual", "pre_delete"], "backups: {kinds:?}");
    Ok(())
}
