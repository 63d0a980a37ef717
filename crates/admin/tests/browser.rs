//! An owner in headless Chromium with the real worker on the Odoo 18
//! fixture template: signs in, creates a plan, a customer and a tenant for
//! them, watches it become active, suspends and resumes it, and finds each
//! step in the audit log. Screenshots of the main pages go to
//! `target/screenshots/admin-*.png`.

mod common;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, ensure};
use common::{OWNER_EMAIL, OWNER_PASSWORD, TestApp};
use saas_testkit::odoo::{OdooWorld, worker_binary};
use saas_testkit::webdriver::{Browser, tools};
use uuid::Uuid;

#[tokio::test]
async fn owner_journey_in_headless_chromium() -> anyhow::Result<()> {
    let Some((chromium, chromedriver)) = tools()? else {
        return Ok(());
    };
    let world = OdooWorld::new().await?;
    let app = TestApp::start().await?;
    world.register_server(&app.pool).await?;
    let worker = world
        .start_worker(
            &worker_binary(Path::new(env!("CARGO_BIN_EXE_admin")))?,
            &app.db.url,
            &app.prefix,
            &world.path().join("backups"),
        )
        .await?;
    let browser = Browser::start(&chromium, &chromedriver, "admin").await?;
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
    // The template is picked from those found on the servers, not typed.
    browser
        .click(&format!(
            "#new-plan select[name=template] option[value='{}']",
            world.template
        ))
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
