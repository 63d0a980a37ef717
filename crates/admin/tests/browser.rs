//! An owner in headless Chromium with the real worker on the Odoo 18
//! fixture template: signs in, creates a plan, a customer and a tenant for
//! them, watches it become active, suspends and resumes it, and finds each
//! step in the audit log. Screenshots of the main pages go to
//! `target/screenshots/admin-*.png`.

mod common;
#[path = "common/webdriver.rs"]
mod webdriver;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, ensure};
use common::{OWNER_EMAIL, OWNER_PASSWORD, TestApp};
use saas_testkit::odoo::{OdooWorld, ROLE};
use saas_testkit::{ServiceProcess, free_port, wait_for_http};
use uuid::Uuid;
use webdriver::{Browser, tools};

/// Builds the worker binary next to admin's (the lead's crate).
fn worker_binary() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let admin = Path::new(env!("CARGO_BIN_EXE_admin"));
    let release = admin
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
    let path = admin.with_file_name("worker");
    ensure!(path.exists(), "{} missing after the build", path.display());
    Ok(path)
}

async fn start_worker(app: &TestApp, world: &OdooWorld) -> anyhow::Result<ServiceProcess> {
    let port = free_port()?;
    let env: HashMap<String, String> = [
        ("DATABASE_URL", app.db.url.clone()),
        ("REDIS_URL", saas_testkit::redis_url()),
        ("REDIS_KEY_PREFIX", app.prefix.clone()),
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
            format!("file://{}", world.path().join("backups").display()),
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

/// The Odoo server of the world, with its template already listed.
async fn register_server(app: &TestApp, world: &OdooWorld) -> anyhow::Result<()> {
    let server = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO servers (id, name, public_url, internal_url, pg_url, odoo_db_role, filestore_root, capacity)
         VALUES ($1, 'odoo-test', $2, $2, $3, $4, $5, 10)",
    )
    .bind(server)
    .bind(&world.odoo_url)
    .bind(saas_testkit::admin_database_url())
    .bind(ROLE)
    .bind(world.filestore_root.to_string_lossy().as_ref())
    .execute(&app.pool)
    .await?;
    sqlx::query(
        "INSERT INTO server_templates (server_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(server)
    .bind(format!("tpl_{}", world.template))
    .execute(&app.pool)
    .await?;
    Ok(())
}

#[tokio::test]
async fn owner_journey_in_headless_chromium() -> anyhow::Result<()> {
    let Some((chromium, chromedriver)) = tools()? else {
        return Ok(());
    };
    let world = OdooWorld::new().await?;
    let app = TestApp::start().await?;
    register_server(&app, &world).await?;
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
    let long = Duration::from_secs(90);
    let short = Duration::from_secs(15);
    let plan_code = format!("plan-{}", world.suffix);
    let customer = format!("buyer-{}@example.com", world.suffix);
    let subdomain = format!("shop-{}", world.suffix);

    browser.goto(&app.url("/")).await?;
    browser.wait_text("h1", "odoo-saas admin", short).await?;
    browser.screenshot("1-login").await?;
    browser.fill("input[name=email]", OWNER_EMAIL).await?;
    browser.fill("input[name=password]", OWNER_PASSWORD).await?;
    browser.click("form button[type=submit]").await?;
    browser.wait_text("h1", "Dashboard", short).await?;
    browser.screenshot("2-dashboard").await?;

    browser.goto(&app.url("/plans")).await?;
    browser
        .fill("#new-plan input[name=code]", &plan_code)
        .await?;
    browser
        .fill("#new-plan input[name=name]", "Browser plan")
        .await?;
    browser
        .fill("#new-plan input[name=template]", &world.template)
        .await?;
    browser.click("#new-plan button[type=submit]").await?;
    browser
        .wait_text("h1", &format!("Plan {plan_code}"), short)
        .await?;
    browser.goto(&app.url("/plans")).await?;
    browser.wait_text("#plans", &plan_code, short).await?;
    browser.screenshot("3-plans").await?;

    browser.goto(&app.url("/customers")).await?;
    browser
        .fill("#new-customer input[name=email]", &customer)
        .await?;
    browser
        .fill(
            "#new-customer input[name=company_name]",
            "Browser Buyer Ltd",
        )
        .await?;
    browser.click("#new-customer button[type=submit]").await?;
    browser.wait_text("h1", &customer, short).await?;
    browser.screenshot("4-customer").await?;

    browser.click("a.button[href^='/tenants/new']").await?;
    browser.wait_text("h1", "New tenant", short).await?;
    browser.fill("input[name=subdomain]", &subdomain).await?;
    browser
        .fill("input[name=admin_password]", "odoo-admin-pass")
        .await?;
    browser.screenshot("5-new-tenant").await?;
    browser.click("form.card button[type=submit]").await?;
    browser
        .wait_text("h1", &format!("Tenant {subdomain} created"), long)
        .await?;
    browser.click("a.button[href^='/tenants/']").await?;
    browser.wait_text("h1", &subdomain, short).await?;
    let url = browser.url().await?;
    let tenant = url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    Uuid::parse_str(&tenant).with_context(|| format!("no tenant id in {url}"))?;
    // The page polls and reloads itself when the state changes.
    browser.wait_text("#tenant-state", "active", long).await?;
    browser.screenshot("6-tenant-active").await?;

    for (action, state) in [("suspend", "suspended"), ("resume", "active")] {
        browser
            .fill(
                &format!("#action-{action} input[name=reason]"),
                &format!("browser test {action}"),
            )
            .await?;
        browser
            .click(&format!("#action-{action} input[name=confirm]"))
            .await?;
        browser
            .click(&format!("#action-{action} button[type=submit]"))
            .await?;
        browser
            .wait_text(".notice", &format!("{action} requested"), short)
            .await?;
        browser.wait_text("#tenant-state", state, long).await?;
        browser.screenshot(&format!("7-tenant-{state}")).await?;
    }

    browser.goto(&app.url("/tenants")).await?;
    browser.wait_text("#tenants", &subdomain, short).await?;
    browser.screenshot("8-tenants").await?;
    browser.goto(&app.url("/operations")).await?;
    browser.wait_text("#operations", "resume", short).await?;
    browser.screenshot("9-operations").await?;
    browser.goto(&app.url("/queues")).await?;
    browser.wait_text("h1", "Queues", short).await?;
    browser.screenshot("10-queues").await?;

    browser
        .goto(&app.url(&format!("/audit?target=tenant:{tenant}")))
        .await?;
    for action in [
        "tenant.create",
        "tenant.provision",
        "tenant.suspend",
        "tenant.resume",
    ] {
        browser.wait_text("#audit", action, short).await?;
    }
    browser.screenshot("11-audit-tenant").await?;
    browser.goto(&app.url("/audit")).await?;
    for action in ["plan.create", "customer.create", "operator.login"] {
        browser.wait_text("#audit", action, short).await?;
    }
    browser.screenshot("12-audit").await?;
    // The provisioned database is real: cloned from the fixture template.
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&subdomain)
            .fetch_one(&app.pool)
            .await?;
    ensure!(exists, "no tenant database {subdomain}");
    Ok(())
}
